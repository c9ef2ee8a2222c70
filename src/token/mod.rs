//! Tokens: kinds and lifetimes, the `<prefix><random><checksum>` format, the
//! secret and digest types, the clock expiry is judged by, and the record
//! types every other layer names ([`TokenRecord`], [`TokenId`],
//! [`TokenStatus`], [`TokenInfo`]).
//!
//! A token looks like `pr_pat_` + 30 random base62 characters (at least 160
//! bits from the operating system's CSPRNG) + a 6-character base62 CRC32
//! checksum. The prefix lets secret scanners recognise it; the checksum lets
//! the middleware reject typos and garbage without a store call. Only the
//! SHA-256 [`TokenDigest`] of a token is ever stored.
//!
//! ```
//! use tower_token_auth::token::{TokenDigest, TokenFormat, TokenKind};
//!
//! let format = TokenFormat::default(); // service prefix `pr`
//! let secret = format.generate(TokenKind::PersonalAccess)?;
//! assert!(secret.expose_secret().starts_with("pr_pat_"));
//! assert_eq!(format.check(secret.expose_secret()), Ok(TokenKind::PersonalAccess));
//!
//! // Debug never shows the value.
//! assert!(!format!("{secret:?}").contains(secret.expose_secret()));
//!
//! // One changed character fails the offline check.
//! let mut typo = secret.expose_secret().to_owned();
//! typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
//! assert!(format.check(&typo).is_err());
//!
//! // The store key.
//! let digest = TokenDigest::of(secret.expose_secret());
//! assert_eq!(digest, TokenDigest::of(secret.expose_secret()));
//! # Ok::<(), tower_token_auth::token::RandomnessError>(())
//! ```

mod clock;
mod format;
mod kind;
mod record;
mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use format::{InvalidServiceName, MalformedToken, RandomnessError, TokenFormat};
pub use kind::{Lifetimes, TokenKind};
pub(crate) use record::to_micros;
pub use record::{
    Family, FamilyId, ParseTokenIdError, TokenId, TokenInfo, TokenRecord, TokenStatus,
};
pub use secret::{Lookup, TokenDigest, TokenSecret};
