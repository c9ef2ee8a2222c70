use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use compact_str::CompactString;

use super::{RandomnessError, TokenDigest, TokenKind};

/// A token's public identifier, e.g. `tok_1f3a9c0d5e7b2a64`. Not a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(u64);

impl TokenId {
    /// A new random identifier.
    pub fn random() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|_| RandomnessError)?;
        Ok(Self(u64::from_le_bytes(bytes)))
    }

    /// Wraps a raw identifier (e.g. read from a database).
    pub const fn from_u64(id: u64) -> Self {
        Self(id)
    }

    /// The raw identifier.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tok_{:016x}", self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The error of parsing a [`TokenId`] that is not `tok_` and 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a token id is `tok_` followed by 16 hexadecimal digits")]
pub struct ParseTokenIdError;

impl FromStr for TokenId {
    type Err = ParseTokenIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("tok_").ok_or(ParseTokenIdError)?;
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseTokenIdError);
        }
        u64::from_str_radix(hex, 16)
            .map(Self)
            .map_err(|_| ParseTokenIdError)
    }
}

/// The identifier of a token family: the access and refresh tokens issued
/// from one grant and every rotation of it, e.g. `fam_09c1d2e3f4a5b6c7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(u64);

impl FamilyId {
    /// A new random identifier.
    pub fn random() -> Result<Self, RandomnessError> {
        TokenId::random().map(|id| Self(id.0))
    }

    /// Wraps a raw identifier (e.g. read from a database).
    pub const fn from_u64(id: u64) -> Self {
        Self(id)
    }

    /// The raw identifier.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fam_{:016x}", self.0)
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The family a token belongs to, and when the family began (for the
/// absolute age cap of refresh rotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The family.
    pub id: FamilyId,
    /// When its first token was issued.
    pub started_at: SystemTime,
}

/// A stored token: everything about it except its plaintext.
///
/// Built with [`new`](Self::new) and the `with_` methods (a backend that
/// decodes a row does so); the name, owner, hint and client id are read
/// through their methods, the other fields directly.
///
/// The fields a request reads (the digest, the expiry, the revocation, the
/// scopes and the kind) come first, in this order (`repr(C)`): with the
/// `Arc`'s counts before them they fill the first one or two cache lines
/// of the allocation, so a lookup in a store larger than the CPU's caches
/// misses fewer lines. Field order is no part of the API.
#[derive(Clone, PartialEq, Eq)]
#[repr(C)]
#[non_exhaustive]
pub struct TokenRecord<S> {
    /// SHA-256 of the plaintext: the lookup key.
    pub digest: TokenDigest,
    /// It is valid while `now < expires_at`.
    pub expires_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
    /// The scopes it holds, implied ones included.
    pub scopes: S,
    /// Its kind.
    pub kind: TokenKind,
    /// Public identifier.
    pub id: TokenId,
    /// The family of an access or refresh token issued by a grant; `None`
    /// for personal access tokens.
    pub family: Option<Family>,
    /// For a refresh token: when it was exchanged. A spent refresh token
    /// presented again revokes its family.
    pub spent_at: Option<SystemTime>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When the token last authenticated a request, as recorded (coalesced)
    /// by the middleware's [`UsageTracker`](crate::manager::UsageTracker).
    pub last_used_at: Option<SystemTime>,
    // The strings are stored inline up to 24 bytes (no heap allocation):
    // a private detail, read through `name()`, `owner()`, `hint()`.
    pub(crate) name: CompactString,
    pub(crate) owner: CompactString,
    pub(crate) hint: CompactString,
    /// The resources (RFC 8707 resource identifiers, absolute URIs) the
    /// token was issued for. Empty for a token issued with no audience
    /// (for example before audiences were recorded).
    pub audience: Vec<String>,
    pub(crate) client_id: Option<CompactString>,
}

impl<S> TokenRecord<S> {
    /// A record with no name, owner, hint, family, audience or client,
    /// neither revoked nor spent nor used: set those with the `with_`
    /// methods and the public fields.
    pub fn new(
        id: TokenId,
        digest: TokenDigest,
        kind: TokenKind,
        scopes: S,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            digest,
            expires_at,
            revoked_at: None,
            scopes,
            kind,
            id,
            family: None,
            spent_at: None,
            created_at,
            last_used_at: None,
            name: CompactString::default(),
            owner: CompactString::default(),
            hint: CompactString::default(),
            audience: Vec::new(),
            client_id: None,
        }
    }

    /// Sets the name.
    #[must_use]
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the owner.
    #[must_use]
    pub fn with_owner(mut self, owner: &str) -> Self {
        self.owner = owner.into();
        self
    }

    /// Sets the display hint.
    #[must_use]
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.hint = hint.into();
        self
    }

    /// Sets the OAuth client the token was issued to.
    #[must_use]
    pub fn with_client_id(mut self, client_id: Option<&str>) -> Self {
        self.client_id = client_id.map(Into::into);
        self
    }

    /// The name its owner gave it ("MCP Billing Agent").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who it belongs to, in the host application's terms (a user id).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// A display hint: prefix and last four characters (`pr_pat_…x9Qz`).
    pub fn hint(&self) -> &str {
        &self.hint
    }

    /// The OAuth client (its RFC 6749 §2.2 `client_id`) the token was
    /// issued to: set on the tokens of an authorization code grant and kept
    /// by every rotation of it. `None` for tokens issued directly: personal
    /// access tokens (unless their request names a client with
    /// [`IssueRequest::client_id`](crate::manager::IssueRequest::client_id))
    /// and [`TokenManager::issue_pair`](crate::manager::TokenManager::issue_pair)'s.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// Whether the token may be used at a resource server identified by
    /// one of `resources`: its audience names one of them.
    pub fn is_for_any(&self, resources: &[String]) -> bool {
        self.audience.iter().any(|a| resources.contains(a))
    }

    /// Whether the token has expired at `now` (valid while `now < expires_at`).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// Whether the token has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether the token is a refresh token that was already exchanged.
    pub fn is_spent(&self) -> bool {
        self.spent_at.is_some()
    }

    /// The token's status at `now`: revoked first, then spent, then
    /// expired.
    pub fn status_at(&self, now: SystemTime) -> TokenStatus {
        if self.is_revoked() {
            TokenStatus::Revoked
        } else if self.is_spent() {
            TokenStatus::Spent
        } else if self.is_expired_at(now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

/// Where a token stands: the `status` of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenStatus {
    /// It authenticates requests (or, for a refresh token, can be
    /// exchanged).
    Active,
    /// It reached its expiry.
    Expired,
    /// It was revoked.
    Revoked,
    /// A refresh token that was already exchanged: presenting it again
    /// revokes its family.
    Spent,
}

impl TokenStatus {
    /// `active`, `expired`, `revoked` or `spent`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::Spent => "spent",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<S: fmt::Debug> fmt::Debug for TokenRecord<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("kind", &self.kind)
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("hint", &self.hint)
            .field("family", &self.family)
            .field("spent_at", &self.spent_at)
            .field("last_used_at", &self.last_used_at)
            .field("audience", &self.audience)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `t` rounded down to a whole microsecond, as SQL timestamps keep it.
pub(crate) fn to_micros(t: SystemTime) -> SystemTime {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => t - Duration::from_nanos(u64::from(after.subsec_nanos() % 1_000)),
        Err(before) => {
            let extra = before.duration().subsec_nanos() % 1_000;
            match extra {
                0 => t,
                n => t - Duration::from_nanos(u64::from(1_000 - n)),
            }
        }
    }
}

/// A token's metadata as listings show it: no plaintext, no digest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenInfo<S> {
    /// Public identifier.
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// Its kind.
    pub kind: TokenKind,
    /// Its scopes, implied ones included.
    pub scopes: S,
    /// When it was created.
    pub created_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
    /// When it was exchanged, for a spent refresh token.
    pub spent_at: Option<SystemTime>,
    /// Its status when it was read.
    pub status: TokenStatus,
    /// Prefix and last four characters, e.g. `pr_pat_…x9Qz`.
    pub hint: String,
    /// The family, for tokens issued by a grant.
    pub family: Option<FamilyId>,
    /// When the token last authenticated a request (coalesced: may lag by
    /// up to the usage tracker's interval).
    pub last_used_at: Option<SystemTime>,
    /// The resources it was issued for.
    pub audience: Vec<String>,
    /// The OAuth client it was issued to, for the tokens of an
    /// authorization code grant.
    pub client_id: Option<String>,
}

impl<S: Copy> TokenInfo<S> {
    /// The metadata of `r`, with its status at `now`.
    pub fn of(r: &TokenRecord<S>, now: SystemTime) -> Self {
        Self {
            id: r.id,
            name: r.name.as_str().to_owned(),
            owner: r.owner.as_str().to_owned(),
            kind: r.kind,
            scopes: r.scopes,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            spent_at: r.spent_at,
            status: r.status_at(now),
            hint: r.hint.as_str().to_owned(),
            family: r.family.map(|f| f.id),
            last_used_at: r.last_used_at,
            audience: r.audience.clone(),
            client_id: r.client_id.as_deref().map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_round_trip_and_reject_garbage() {
        let id = TokenId::from_u64(0x1f3a_9c0d_5e7b_2a64);
        assert_eq!(id.to_string(), "tok_1f3a9c0d5e7b2a64");
        assert_eq!("tok_1f3a9c0d5e7b2a64".parse::<TokenId>(), Ok(id));
        for bad in [
            "",
            "tok_",
            "tok_123",
            "1f3a9c0d5e7b2a64",
            "tok_+f3a9c0d5e7b2a64",
            "tok_1f3a9c0d5e7b2a645",
        ] {
            assert_eq!(bad.parse::<TokenId>(), Err(ParseTokenIdError), "{bad}");
        }
    }
}
