//! The conformance kit of `tower-token-auth`: the whole lifecycle
//! behaviour suite, to run against any
//! [`TokenBackend`](tower_token_auth::store::TokenBackend), the races the
//! trait's guarantees are about included.
//!
//! Every backend of the project (memory, SQLite, PostgreSQL, each also
//! behind the cache) passes it. A backend for another database runs it
//! from its own tests with one macro call, given an async function that
//! returns a fresh, empty backend; any [`ScopeSet`](tower_token_auth::scope::ScopeSet)
//! will do, the PayRequest one or the service's own.
//!
//! ```
//! // tests/conformance.rs of the crate that writes `MyBackend`
//! // ([dev-dependencies]: tower-token-auth-conformance).
//! use std::sync::Arc;
//! use tower_token_auth::token::ManualClock;
//! use tower_token_auth::PayRequestScopes;
//! # use tower_token_auth::MemoryStore as MyBackend; // stands in for yours
//! # trait Connect { async fn connect_to_an_empty_database() -> Self; }
//! # impl Connect for MyBackend<PayRequestScopes> {
//! #     async fn connect_to_an_empty_database() -> Self { Self::new() }
//! # }
//!
//! async fn fresh_backend(_clock: Arc<ManualClock>) -> MyBackend<PayRequestScopes> {
//!     MyBackend::connect_to_an_empty_database().await
//! }
//!
//! tower_token_auth_conformance::conformance_tests!(fresh_backend);
//! # fn main() {
//! #     // What each generated test does, for the doctest to run one.
//! #     tower_token_auth_conformance::__private::runtime().block_on(async {
//! #         let backend = fresh_backend(Arc::new(ManualClock::new(
//! #             tower_token_auth_conformance::start_time(),
//! #         ))).await;
//! #         let harness = tower_token_auth_conformance::Harness::new(backend);
//! #         tower_token_auth_conformance::revoke_family_and_exchange_of_one_family_are_serialised(
//! #             harness,
//! #         ).await.unwrap();
//! #     });
//! # }
//! ```
//!
//! That expands to one test per behaviour below, named after it, each on
//! a multi-threaded Tokio runtime of its own with two workers (as
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` would;
//! the calling crate needs no Tokio features of its own). The function
//! gets the clock the manager will run by, at [`start_time`]; most
//! backends ignore it, a backend that judges time itself (a cache in
//! front of another backend) takes it. A test fails with the
//! [`Violation`] its behaviour found, e.g.
//!
//! ```text
//! TokenBackend::exchange: of two concurrent exchanges of one refresh token exactly one must
//! be Exchanged and the other AlreadySpent; got [Exchanged, Exchanged] (schedule: second call
//! started after 1 poll of the first, then alternating polls)
//! ```
//!
//! # How races are forced
//!
//! The guarantees of the trait that matter most are about two calls at
//! once: two exchanges of one refresh token, a family revocation during an
//! exchange, a scope change during a revocation. The race behaviours
//! ([`exchanges_of_one_refresh_token_have_one_winner`] and the four after
//! it) make those calls meet *inside the backend*: they poll the first
//! call's future by hand up to each of its suspension points (a database
//! round trip, an async lock), start the second call there, and drive both
//! to completion, for every suspension point and in three orders (see
//! [`schedule`]). Each schedule runs on fresh records and is checked on
//! its own. A backend that checks, lets go of its lock or transaction,
//! then acts, is caught at the schedule that separates the two. A backend
//! that holds a real lock across an `.await` makes the other call wait,
//! which the driver allows for: it waits for real wake-ups, within
//! [`schedule::STUCK_AFTER`].
//!
//! Other behaviours park the manager between its own check of a refresh
//! token and the backend's atomic step ([`Gated`]), so that the backend,
//! not the manager, must see what happened in between.
//!
//! # Behaviours
//!
//! Each behaviour is a public async function, to call from a harness of
//! one's own; each returns `Err` with the [`Violation`] it found:
//!
//! ```
//! use tower_token_auth::bitflags::bitflags;
//! use tower_token_auth::scope::ScopeSet;
//! use tower_token_auth::MemoryStore;
//! use tower_token_auth_conformance::{self as kit, Harness};
//!
//! bitflags! {
//!     #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
//!     pub struct ShopScopes: u64 {
//!         const ORDERS_READ = 1 << 0;
//!         const ORDERS_WRITE = 1 << 1;
//!     }
//! }
//!
//! impl ScopeSet for ShopScopes {
//!     const SCOPES: &'static [(&'static str, Self)] =
//!         &[("orders.read", Self::ORDERS_READ), ("orders.write", Self::ORDERS_WRITE)];
//!     const DEFAULT: Self = Self::ORDERS_READ;
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), kit::Violation> {
//! kit::exchanges_of_one_refresh_token_have_one_winner(Harness::new(
//!     MemoryStore::<ShopScopes>::default(),
//! ))
//! .await?;
//! # Ok(())
//! # }
//! ```
//!
//! Issuing, listing, revoking: [`issue_find_list_get_and_revoke`],
//! [`listings_are_oldest_first_per_owner_with_a_status`],
//! [`default_scopes_and_refused_requests`],
//! [`revoke_family_revokes_every_token_of_it`],
//! [`revoking_any_member_revokes_the_whole_grant`],
//! [`revoke_by_digest_follows_rfc_7009`], [`regenerate_replaces_the_secret`],
//! [`concurrent_regenerations_have_one_winner`],
//! [`scope_changes_hold_from_the_next_lookup`].
//!
//! The refresh exchange: [`refresh_rotates_within_the_family`],
//! [`refresh_token_of_no_family_is_refused`],
//! [`reusing_a_spent_refresh_token_revokes_the_family`],
//! [`refresh_scope_may_narrow_but_not_widen`],
//! [`racing_exchanges_end_with_the_family_revoked`],
//! [`exchange_racing_a_family_revocation_stores_nothing_live`],
//! [`replays_exchanges_and_revocations_at_once_leave_nothing_live`],
//! [`a_grant_stays_bounded_however_often_it_rotates`].
//!
//! Races inside the backend:
//! [`exchanges_of_one_refresh_token_have_one_winner`],
//! [`revoke_family_and_exchange_of_one_family_are_serialised`],
//! [`update_scopes_racing_a_revocation_never_revives_the_token`],
//! [`concurrent_revocations_of_one_token_have_one_winner`],
//! [`record_use_racing_a_revocation_keeps_both_writes`].
//!
//! Usage, expiry, purge: [`record_use_keeps_the_latest_time`],
//! [`expiry_is_judged_at_the_boundary`],
//! [`refresh_tokens_expire_and_families_age_out`],
//! [`purge_deletes_only_what_is_dead_past_retention`].
//!
//! Authorization codes and clients:
//! [`authorization_codes_are_single_use_and_bound`],
//! [`a_reused_authorization_code_revokes_its_grant`],
//! [`racing_code_exchanges_end_with_the_grant_revoked`],
//! [`authorization_codes_expire`],
//! [`client_registrations_are_stored_capped_and_expire`].

mod harness;
mod lifecycle;
mod oauth;
mod picks;
mod races;
mod refresh;
pub mod schedule;
mod usage;
mod violation;

pub use harness::{start_time, EventLog, Gated, Harness, Parked};
pub use lifecycle::{
    concurrent_regenerations_have_one_winner, default_scopes_and_refused_requests,
    issue_find_list_get_and_revoke, listings_are_oldest_first_per_owner_with_a_status,
    regenerate_replaces_the_secret, revoke_by_digest_follows_rfc_7009,
    revoke_family_revokes_every_token_of_it, revoking_any_member_revokes_the_whole_grant,
    scope_changes_hold_from_the_next_lookup,
};
pub use oauth::{
    a_reused_authorization_code_revokes_its_grant, authorization_codes_are_single_use_and_bound,
    authorization_codes_expire, client_registrations_are_stored_capped_and_expire,
    racing_code_exchanges_end_with_the_grant_revoked,
};
pub use races::{
    concurrent_revocations_of_one_token_have_one_winner,
    exchanges_of_one_refresh_token_have_one_winner,
    record_use_racing_a_revocation_keeps_both_writes,
    revoke_family_and_exchange_of_one_family_are_serialised,
    update_scopes_racing_a_revocation_never_revives_the_token, STRESS_ROUNDS,
};
pub use refresh::{
    a_grant_stays_bounded_however_often_it_rotates,
    exchange_racing_a_family_revocation_stores_nothing_live,
    racing_exchanges_end_with_the_family_revoked, refresh_rotates_within_the_family,
    refresh_scope_may_narrow_but_not_widen, refresh_token_of_no_family_is_refused,
    replays_exchanges_and_revocations_at_once_leave_nothing_live,
    reusing_a_spent_refresh_token_revokes_the_family,
};
pub use usage::{
    expiry_is_judged_at_the_boundary, purge_deletes_only_what_is_dead_past_retention,
    record_use_keeps_the_latest_time, refresh_tokens_expire_and_families_age_out,
};
pub use violation::Violation;

/// The name of every behaviour, in the order
/// [`conformance_tests!`] runs them: one test each.
pub const BEHAVIOURS: &[&str] = &[
    "issue_find_list_get_and_revoke",
    "listings_are_oldest_first_per_owner_with_a_status",
    "default_scopes_and_refused_requests",
    "revoke_family_revokes_every_token_of_it",
    "revoking_any_member_revokes_the_whole_grant",
    "revoke_by_digest_follows_rfc_7009",
    "regenerate_replaces_the_secret",
    "concurrent_regenerations_have_one_winner",
    "scope_changes_hold_from_the_next_lookup",
    "refresh_rotates_within_the_family",
    "refresh_token_of_no_family_is_refused",
    "reusing_a_spent_refresh_token_revokes_the_family",
    "refresh_scope_may_narrow_but_not_widen",
    "racing_exchanges_end_with_the_family_revoked",
    "exchange_racing_a_family_revocation_stores_nothing_live",
    "replays_exchanges_and_revocations_at_once_leave_nothing_live",
    "a_grant_stays_bounded_however_often_it_rotates",
    "exchanges_of_one_refresh_token_have_one_winner",
    "revoke_family_and_exchange_of_one_family_are_serialised",
    "update_scopes_racing_a_revocation_never_revives_the_token",
    "concurrent_revocations_of_one_token_have_one_winner",
    "record_use_racing_a_revocation_keeps_both_writes",
    "record_use_keeps_the_latest_time",
    "expiry_is_judged_at_the_boundary",
    "refresh_tokens_expire_and_families_age_out",
    "purge_deletes_only_what_is_dead_past_retention",
    "authorization_codes_are_single_use_and_bound",
    "a_reused_authorization_code_revokes_its_grant",
    "racing_code_exchanges_end_with_the_grant_revoked",
    "authorization_codes_expire",
    "client_registrations_are_stored_capped_and_expire",
];

/// Runs one behaviour per test against the backends that `$new_backend`
/// makes: an async function (or a closure returning a future) that takes
/// the harness's clock (`Arc<ManualClock>`, at [`start_time`]) and returns
/// a fresh, empty backend of any scope set. See the [crate docs](crate).
///
/// Each test is named after its behaviour (see [`BEHAVIOURS`]), runs on a
/// multi-threaded Tokio runtime with two workers, and fails with the
/// [`Violation`] the behaviour found.
#[macro_export]
macro_rules! conformance_tests {
    ($new_backend:expr $(,)?) => {
        $crate::conformance_tests!(@each $new_backend;
            issue_find_list_get_and_revoke,
            listings_are_oldest_first_per_owner_with_a_status,
            default_scopes_and_refused_requests,
            revoke_family_revokes_every_token_of_it,
            revoking_any_member_revokes_the_whole_grant,
            revoke_by_digest_follows_rfc_7009,
            regenerate_replaces_the_secret,
            concurrent_regenerations_have_one_winner,
            scope_changes_hold_from_the_next_lookup,
            refresh_rotates_within_the_family,
            refresh_token_of_no_family_is_refused,
            reusing_a_spent_refresh_token_revokes_the_family,
            refresh_scope_may_narrow_but_not_widen,
            racing_exchanges_end_with_the_family_revoked,
            exchange_racing_a_family_revocation_stores_nothing_live,
            replays_exchanges_and_revocations_at_once_leave_nothing_live,
            a_grant_stays_bounded_however_often_it_rotates,
            exchanges_of_one_refresh_token_have_one_winner,
            revoke_family_and_exchange_of_one_family_are_serialised,
            update_scopes_racing_a_revocation_never_revives_the_token,
            concurrent_revocations_of_one_token_have_one_winner,
            record_use_racing_a_revocation_keeps_both_writes,
            record_use_keeps_the_latest_time,
            expiry_is_judged_at_the_boundary,
            refresh_tokens_expire_and_families_age_out,
            purge_deletes_only_what_is_dead_past_retention,
            authorization_codes_are_single_use_and_bound,
            a_reused_authorization_code_revokes_its_grant,
            racing_code_exchanges_end_with_the_grant_revoked,
            authorization_codes_expire,
            client_registrations_are_stored_capped_and_expire,
        );
    };
    (@each $new_backend:expr; $($behaviour:ident),* $(,)?) => {
        $(
            #[test]
            fn $behaviour() {
                $crate::__private::runtime().block_on(async {
                    let clock = ::std::sync::Arc::new($crate::__private::ManualClock::new(
                        $crate::start_time(),
                    ));
                    let backend = ($new_backend)(::std::sync::Arc::clone(&clock)).await;
                    let harness = $crate::Harness::with_clock(backend, clock);
                    if let ::std::result::Result::Err(violation) =
                        $crate::$behaviour(harness).await
                    {
                        ::std::panic!("{}", violation);
                    }
                });
            }
        )*
    };
}

/// What the macro's expansion names; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use tower_token_auth::token::ManualClock;

    /// The runtime of one generated test: multi-threaded, two workers,
    /// timers and I/O enabled.
    ///
    /// # Panics
    ///
    /// When the runtime cannot be built (the test cannot run at all).
    pub fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a Tokio runtime for the conformance test")
    }
}

#[cfg(test)]
mod tests {
    /// The macro's list and [`BEHAVIOURS`](super::BEHAVIOURS) are one list,
    /// written twice: they must not drift apart.
    #[test]
    fn the_macro_runs_every_behaviour_in_the_documented_order() {
        let source = include_str!("lib.rs");
        let start = source
            .find("@each $new_backend;\n")
            .expect("the macro's list");
        let list = &source[start..];
        let end = list.find(");").expect("the end of the list");
        let names: Vec<&str> = list[..end]
            .lines()
            .skip(1)
            .map(|line| line.trim().trim_end_matches(','))
            .filter(|name| !name.is_empty())
            .collect();
        assert_eq!(names, super::BEHAVIOURS);
    }
}
