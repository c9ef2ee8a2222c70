//! The integration tests of tower-token-auth-sqlx, in one test binary: the
//! conformance kit on every backend of the crate, and PostgreSQL as several
//! instances of a service use it (revocations reaching every instance's
//! cache, outages, races on two pools).
//!
//! The PostgreSQL tests need a real server: the one `DATABASE_URL` names,
//! or else a throwaway cluster that [`pg`] starts with `initdb` and
//! `pg_ctl` (without either, they fail and say how to get one).
//!
//! ```text
//! cargo test -p tower-token-auth-sqlx --all-features
//! cargo test -p tower-token-auth-sqlx --all-features --test it revocation_stress -- --nocapture
//! ```

mod conformance;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "postgres")]
mod postgres;
mod revocation_stress;
