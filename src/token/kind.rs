use std::fmt;
use std::time::Duration;

const DAY: u64 = 24 * 60 * 60;

/// The kinds of token: three credentials of the seed, and the two OAuth
/// records the engine keeps beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A personal access token, created by a user in the dashboard
    /// (prefix tag `pat`, 180 days by default).
    PersonalAccess,
    /// An access token, issued with a refresh token (prefix tag `at`, 15
    /// days by default).
    Access,
    /// A refresh token (prefix tag `rt`, 30 days by default). It is never an
    /// API credential: it is only exchanged at the token endpoint.
    Refresh,
    /// An OAuth authorization code (prefix tag `ac`, 60 seconds by
    /// default): single use, exchanged once at the token endpoint for an
    /// access and a refresh token. Never an API credential.
    AuthorizationCode,
    /// The `client_id` of an OAuth client registered by RFC 7591 dynamic
    /// registration (prefix tag `cl`, 30 days by default). Not a secret and
    /// never an API credential: it names a public client.
    Client,
}

impl TokenKind {
    /// Every kind, in declaration order.
    pub const ALL: [TokenKind; 5] = [
        Self::PersonalAccess,
        Self::Access,
        Self::Refresh,
        Self::AuthorizationCode,
        Self::Client,
    ];

    /// The tag in the token prefix: `pat`, `at`, `rt`, `ac` or `cl`.
    pub const fn tag(self) -> &'static str {
        match self {
            Self::PersonalAccess => "pat",
            Self::Access => "at",
            Self::Refresh => "rt",
            Self::AuthorizationCode => "ac",
            Self::Client => "cl",
        }
    }

    /// The kind whose [`tag`](Self::tag) this is.
    #[inline]
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// A stable lower-case name: `personal_access`, `access`, `refresh`,
    /// `authorization_code`, `client`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PersonalAccess => "personal_access",
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::AuthorizationCode => "authorization_code",
            Self::Client => "client",
        }
    }

    /// Parses [`as_str`](Self::as_str) back.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether a token of this kind authenticates API requests.
    pub const fn authenticates(self) -> bool {
        matches!(self, Self::PersonalAccess | Self::Access)
    }

    /// Whether this kind is a token a user holds and sees in a listing
    /// (personal access, access and refresh tokens), as opposed to the
    /// OAuth machinery the engine keeps in the same store (authorization
    /// codes and client registrations).
    pub const fn is_token(self) -> bool {
        matches!(self, Self::PersonalAccess | Self::Access | Self::Refresh)
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each kind of token lives.
///
/// The defaults are the PayRequest lifetimes: personal access tokens 180
/// days (six months), access tokens 15 days, refresh tokens 30 days; an
/// authorization code lives 60 seconds (RFC 6749 §4.1.2 recommends at most
/// ten minutes) and a client registration 30 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Lifetime of a personal access token.
    pub personal_access: Duration,
    /// Lifetime of an access token.
    pub access: Duration,
    /// Lifetime of a refresh token.
    pub refresh: Duration,
    /// Lifetime of an authorization code.
    pub authorization_code: Duration,
    /// Lifetime of a dynamic client registration: a client registers again
    /// after it (grants it obtained live their own lifetimes).
    pub client: Duration,
}

impl Lifetimes {
    /// The lifetime of `kind`.
    pub const fn of(&self, kind: TokenKind) -> Duration {
        match kind {
            TokenKind::PersonalAccess => self.personal_access,
            TokenKind::Access => self.access,
            TokenKind::Refresh => self.refresh,
            TokenKind::AuthorizationCode => self.authorization_code,
            TokenKind::Client => self.client,
        }
    }
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            personal_access: Duration::from_secs(180 * DAY),
            access: Duration::from_secs(15 * DAY),
            refresh: Duration::from_secs(30 * DAY),
            authorization_code: Duration::from_secs(60),
            client: Duration::from_secs(30 * DAY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_lifetimes_match_the_seed() {
        let l = Lifetimes::default();
        assert_eq!(l.of(TokenKind::PersonalAccess).as_secs(), 180 * DAY);
        assert_eq!(l.of(TokenKind::Access).as_secs(), 15 * DAY);
        assert_eq!(l.of(TokenKind::Refresh).as_secs(), 30 * DAY);
        assert_eq!(l.of(TokenKind::AuthorizationCode).as_secs(), 60);
        assert_eq!(l.of(TokenKind::Client).as_secs(), 30 * DAY);
    }

    #[test]
    fn only_personal_access_and_access_tokens_authenticate() {
        assert!(TokenKind::PersonalAccess.authenticates());
        assert!(TokenKind::Access.authenticates());
        assert!(!TokenKind::Refresh.authenticates());
        assert!(!TokenKind::AuthorizationCode.authenticates());
        assert!(!TokenKind::Client.authenticates());
        assert!(TokenKind::Refresh.is_token());
        assert!(!TokenKind::AuthorizationCode.is_token());
        assert!(!TokenKind::Client.is_token());
        for k in TokenKind::ALL {
            assert_eq!(TokenKind::from_tag(k.tag()), Some(k));
            assert_eq!(TokenKind::from_name(k.as_str()), Some(k));
        }
    }
}
