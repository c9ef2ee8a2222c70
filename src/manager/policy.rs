//! How the engine mints tokens: what a caller asks for ([`IssueRequest`]),
//! what it gets ([`IssuedToken`], [`TokenPair`]), and the policy every
//! token is minted and kept under ([`IssuePolicy`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::TokenError;
use crate::audit::Audit;
use crate::error::StoreError;
use crate::scope::ScopeSet;
use crate::token::{
    to_micros, Clock, Family, FamilyId, Lifetimes, SystemClock, TokenFormat, TokenId, TokenKind,
    TokenRecord, TokenSecret,
};

/// The longest token name accepted at issuance, in bytes.
const MAX_NAME_LEN: usize = 200;

/// What to issue: kind, name, owner and optionally scopes and a lifetime.
#[derive(Debug, Clone)]
pub struct IssueRequest<S> {
    /// The kind of token.
    pub kind: TokenKind,
    /// A descriptive name (1 to 200 bytes).
    pub name: String,
    /// The owner, in the host application's terms.
    pub owner: String,
    /// The scopes; `None` or an empty set means [`ScopeSet::DEFAULT`].
    pub scopes: Option<S>,
    /// A lifetime shorter than the kind's; `None` means the kind's lifetime.
    pub lifetime: Option<Duration>,
    /// The resources the token is for (RFC 8707); `None` means the
    /// policy's [default audience](IssuePolicy::default_audience).
    pub audience: Option<Vec<String>>,
    /// The OAuth client the token is issued to; `None` for none.
    pub client_id: Option<String>,
    /// The family of an access token minted by a grant.
    pub(crate) family: Option<Family>,
}

impl<S> IssueRequest<S> {
    /// A request for a token of `kind` with the default scopes and lifetime.
    pub fn new(kind: TokenKind, name: impl Into<String>, owner: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            owner: owner.into(),
            scopes: None,
            lifetime: None,
            audience: None,
            client_id: None,
            family: None,
        }
    }

    /// Sets the scopes.
    #[must_use]
    pub fn scopes(mut self, scopes: S) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Sets a lifetime, at most the kind's.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Sets the resources the token is for (RFC 8707 resource identifiers).
    #[must_use]
    pub fn audience<I, R>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.audience = Some(resources.into_iter().map(Into::into).collect());
        self
    }

    /// Names the OAuth client (its `client_id`) the token is issued to;
    /// introspection answers it (RFC 7662 §2.2).
    #[must_use]
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }
}

/// A newly issued token: the plaintext, shown once, and its record.
#[derive(Debug, Clone)]
pub struct IssuedToken<S> {
    /// The plaintext. It is not stored anywhere: hand it to the owner once.
    pub secret: TokenSecret,
    /// The stored record.
    pub record: Arc<TokenRecord<S>>,
}

/// An access token and the refresh token that renews it, of one family.
#[derive(Debug, Clone)]
pub struct TokenPair<S> {
    /// The access token.
    pub access: IssuedToken<S>,
    /// The refresh token.
    pub refresh: IssuedToken<S>,
}

/// The default absolute age cap of a token family: 90 days.
const DEFAULT_FAMILY_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);

/// How long dead records (revoked, expired) are kept by default before
/// [`TokenManager::purge`](super::TokenManager::purge) deletes them: 7 days.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// How many spent refresh tokens of one grant are kept by default for reuse
/// detection: 16.
pub const DEFAULT_REUSE_WINDOW: usize = 16;

/// The default cap on live client registrations per source.
pub const DEFAULT_CLIENTS_PER_SOURCE: usize = 10;

/// How the [`TokenManager`](super::TokenManager) mints tokens and runs
/// their lifecycle: the format, the lifetimes, the clock, the family age
/// cap, how long dead records are kept, how many spent refresh tokens a
/// grant keeps for reuse detection, and where audit events go.
///
/// The layer and the OAuth endpoints built over a manager take its format
/// and clock, so tokens are checked exactly as they were minted.
///
/// Each setting has a builder method named after it (`retention`) and a
/// getter of the same name with `get_` in front (`get_retention`), as
/// sqlx's `PoolOptions` does.
#[derive(Debug, Clone)]
pub struct IssuePolicy {
    format: TokenFormat,
    lifetimes: Lifetimes,
    clock: Arc<dyn Clock>,
    family_max_age: Duration,
    retention: Duration,
    reuse_window: usize,
    default_audience: Vec<String>,
    audit: Audit,
    clients_per_source: usize,
}

impl Default for IssuePolicy {
    fn default() -> Self {
        Self {
            format: TokenFormat::default(),
            lifetimes: Lifetimes::default(),
            clock: Arc::new(SystemClock),
            family_max_age: DEFAULT_FAMILY_MAX_AGE,
            retention: DEFAULT_RETENTION,
            reuse_window: DEFAULT_REUSE_WINDOW,
            default_audience: Vec::new(),
            audit: Audit::default(),
            clients_per_source: DEFAULT_CLIENTS_PER_SOURCE,
        }
    }
}

impl IssuePolicy {
    /// Sets the token format (service prefix).
    #[must_use]
    pub fn format(mut self, format: TokenFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets the lifetime of each kind (also the maximum a request may ask).
    #[must_use]
    pub fn lifetimes(mut self, lifetimes: Lifetimes) -> Self {
        self.lifetimes = lifetimes;
        self
    }

    /// Sets the clock that dates new tokens.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the absolute age cap of a token family (default 90 days): once
    /// the family's first token is that old, its refresh tokens are no longer
    /// exchanged, whatever their own expiry.
    #[must_use]
    pub fn family_max_age(mut self, max_age: Duration) -> Self {
        self.family_max_age = max_age;
        self
    }

    /// Sets how long a dead record (revoked, or expired) is kept before
    /// [`TokenManager::purge`](super::TokenManager::purge) deletes it
    /// (default [`DEFAULT_RETENTION`]). Listings show dead tokens until
    /// then.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Sets how many spent refresh tokens of one grant are kept (default
    /// [`DEFAULT_REUSE_WINDOW`], at least 1). A spent refresh token
    /// presented again revokes its grant while it is kept; one spent
    /// longer ago than that many rotations is refused as unknown, without
    /// revoking the grant. This is what bounds the storage of a grant
    /// however often it rotates.
    #[must_use]
    pub fn reuse_window(mut self, spent_tokens: usize) -> Self {
        self.reuse_window = spent_tokens.max(1);
        self
    }

    /// Sets the resources a token is issued for when its request names
    /// none (RFC 8707): the service's own resource identifier, so that the
    /// tokens its dashboard creates are bound to it.
    #[must_use]
    pub fn default_audience<I, R>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: Into<String>,
    {
        self.default_audience = resources.into_iter().map(Into::into).collect();
        self
    }

    /// The default audience. Set with [`default_audience`](Self::default_audience).
    pub fn get_default_audience(&self) -> &[String] {
        &self.default_audience
    }

    /// Sets where audit events go.
    #[must_use]
    pub fn audit(mut self, audit: Audit) -> Self {
        self.audit = audit;
        self
    }

    /// How long dead records are kept. Set with [`retention`](Self::retention).
    pub fn get_retention(&self) -> Duration {
        self.retention
    }

    /// How many spent refresh tokens of a grant are kept. Set with [`reuse_window`](Self::reuse_window).
    pub fn get_reuse_window(&self) -> usize {
        self.reuse_window
    }

    /// The clock. Set with [`clock`](Self::clock).
    pub fn get_clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The family age cap. Set with [`family_max_age`](Self::family_max_age).
    pub fn get_family_max_age(&self) -> Duration {
        self.family_max_age
    }

    /// The audit sink. Set with [`audit`](Self::audit).
    pub fn get_audit(&self) -> &Audit {
        &self.audit
    }

    /// The token format. Set with [`format`](Self::format).
    pub fn get_format(&self) -> &TokenFormat {
        &self.format
    }

    /// The lifetimes. Set with [`lifetimes`](Self::lifetimes).
    pub fn get_lifetimes(&self) -> &Lifetimes {
        &self.lifetimes
    }

    /// How many live client registrations (RFC 7591) one source may hold
    /// (default 10): registration is open to anyone, so it is bounded per
    /// source (the application says what a source is, for example a client
    /// IP address or network). Unused registrations expire after
    /// [`Lifetimes::client`].
    #[must_use]
    pub fn clients_per_source(mut self, max: usize) -> Self {
        self.clients_per_source = max.max(1);
        self
    }

    /// The cap on live client registrations per source. Set with [`clients_per_source`](Self::clients_per_source).
    pub fn get_clients_per_source(&self) -> usize {
        self.clients_per_source
    }

    /// The current time by this policy's clock, rounded down to the
    /// microsecond (what every backend keeps).
    pub fn now(&self) -> SystemTime {
        to_micros(self.clock.now())
    }

    /// Validates a request and mints its secret and record.
    pub(crate) fn mint<S: ScopeSet>(
        &self,
        request: IssueRequest<S>,
    ) -> Result<(TokenSecret, TokenRecord<S>), TokenError> {
        let name = request.name.trim();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(TokenError::InvalidInput(format!(
                "a token name is 1 to {MAX_NAME_LEN} bytes of printable text"
            )));
        }
        if request.owner.is_empty() {
            return Err(TokenError::InvalidInput("a token needs an owner".into()));
        }
        let max = self.lifetimes.of(request.kind);
        let lifetime = match request.lifetime {
            Some(l) if l > max => {
                return Err(TokenError::InvalidInput(format!(
                    "a {} token lives at most {} days",
                    request.kind,
                    max.as_secs() / 86_400
                )))
            }
            Some(l) if l.is_zero() => {
                return Err(TokenError::InvalidInput(
                    "a token lifetime must be positive".into(),
                ))
            }
            Some(l) => l,
            None => max,
        };
        let scopes = match request.scopes {
            Some(s) if !s.is_empty() => s,
            _ => S::DEFAULT,
        };
        let secret = self
            .format
            .generate(request.kind)
            .map_err(|_| StoreError::Randomness)?;
        let now = self.now();
        let record = TokenRecord {
            id: TokenId::random()?,
            digest: secret.digest(),
            name: name.into(),
            owner: request.owner.into(),
            kind: request.kind,
            scopes,
            created_at: now,
            expires_at: to_micros(now + lifetime),
            revoked_at: None,
            hint: secret.hint().into(),
            // A refresh token issued on its own starts a family of its own.
            family: match request.kind {
                TokenKind::Refresh => Some(Family {
                    id: FamilyId::random()?,
                    started_at: now,
                }),
                _ => request.family,
            },
            spent_at: None,
            last_used_at: None,
            audience: request
                .audience
                .unwrap_or_else(|| self.default_audience.clone()),
            client_id: request.client_id.map(Into::into),
        };
        Ok((secret, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;

    #[test]
    fn mint_applies_defaults_and_limits() {
        let p = IssuePolicy::default();
        let (secret, rec) = p
            .mint(IssueRequest::<S>::new(
                TokenKind::PersonalAccess,
                " CI ",
                "u1",
            ))
            .unwrap();
        assert_eq!(rec.scopes, S::BILLING_READ);
        assert_eq!(rec.name, "CI");
        assert_eq!(rec.digest, secret.digest());
        assert_eq!(
            rec.expires_at.duration_since(rec.created_at).unwrap(),
            Lifetimes::default().personal_access
        );
        let too_long = IssueRequest::<S>::new(TokenKind::Access, "x", "u1")
            .lifetime(Duration::from_secs(16 * 86_400));
        assert!(matches!(p.mint(too_long), Err(TokenError::InvalidInput(_))));
        assert!(matches!(
            p.mint(IssueRequest::<S>::new(TokenKind::Access, "  ", "u1")),
            Err(TokenError::InvalidInput(_))
        ));
        assert!(matches!(
            p.mint(IssueRequest::<S>::new(TokenKind::Access, "x", "")),
            Err(TokenError::InvalidInput(_))
        ));
    }

    #[test]
    fn record_debug_leaves_out_the_digest() {
        let (secret, rec) = IssuePolicy::default()
            .mint(IssueRequest::<S>::new(TokenKind::Access, "n", "o"))
            .unwrap();
        let dbg = format!("{rec:?}");
        assert!(!dbg.contains("digest"));
        assert!(!dbg.contains(secret.expose_secret()));
    }
}
