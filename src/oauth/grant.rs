//! Authorization codes and client registrations: the OAuth 2.1 side of the
//! lifecycle engine.
//!
//! Both are records of the token table, of kinds
//! [`TokenKind::AuthorizationCode`] and [`TokenKind::Client`], so every
//! backend holds them with the primitives it already has: a code is spent
//! by the same atomic [`exchange`](crate::store::TokenBackend::exchange) as
//! a refresh token, and a code presented twice revokes its family (RFC 6749
//! §4.1.2) exactly as a replayed refresh token does.

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bitflags::Flags as _;
use sha2::{Digest as _, Sha256};

use crate::audit::AuditEvent;
use crate::error::StoreError;
use crate::manager::TokenManager;
use crate::manager::{GrantError, InvalidGrantReason, IssueRequest, TokenError, TokenPair};
use crate::scope::ScopeSet;
use crate::store::TokenBackend;
use crate::token::{Family, FamilyId, TokenRecord};
use crate::token::{TokenDigest, TokenKind, TokenSecret};

/// At most this many redirect URIs per client.
const MAX_REDIRECT_URIS: usize = 10;
/// At most this many bytes per redirect URI or resource.
const MAX_URI_LEN: usize = 2048;
/// At most this many distinct resources (RFC 8707) in one request.
pub(crate) const MAX_RESOURCES: usize = 16;

/// `resources` without repetitions, in their first order; `None` when more
/// than [`MAX_RESOURCES`] distinct ones remain.
pub(crate) fn distinct_resources(resources: Vec<String>) -> Option<Vec<String>> {
    let mut distinct: Vec<String> = Vec::new();
    for resource in resources {
        if !distinct.contains(&resource) {
            if distinct.len() == MAX_RESOURCES {
                return None;
            }
            distinct.push(resource);
        }
    }
    Some(distinct)
}

/// A public OAuth client registered by RFC 7591 dynamic client
/// registration (an MCP client, a CLI): it has a `client_id` and redirect
/// URIs, and no secret (`token_endpoint_auth_method: none`); PKCE protects
/// its codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient<S> {
    /// Its `client_id`: public, not a credential.
    pub client_id: String,
    /// The name it gave itself (`client_name`), shown on the consent page.
    /// Self-asserted: the page shows the `client_id` and redirect URI next
    /// to it.
    pub name: String,
    /// Its redirect URIs; an authorization request names one of them
    /// exactly.
    pub redirect_uris: Vec<String>,
    /// The scopes it may ask for (every scope when it registered none).
    pub scopes: S,
    /// When it registered.
    pub registered_at: SystemTime,
    /// When the registration ends (then the client registers again; the
    /// grants it obtained live on their own lifetimes).
    pub expires_at: SystemTime,
}

impl<S: ScopeSet> OAuthClient<S> {
    /// Whether `redirect_uri` is one of the client's: equal to a registered
    /// one, except that the port of a loopback IP literal (`127.0.0.1`,
    /// `[::1]`) may differ, as OAuth 2.1 §8.4.2 (RFC 8252 §7.3) requires
    /// for native apps that listen on an ephemeral port.
    pub fn accepts_redirect_uri(&self, redirect_uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| redirect_uri_matches(registered, redirect_uri))
    }

    fn from_record(client_id: &str, record: &TokenRecord<S>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            name: record.name.as_str().to_owned(),
            redirect_uris: record.audience.clone(),
            scopes: record.scopes,
            registered_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

/// What a client asks to be registered with (the parts of RFC 7591 client
/// metadata the engine keeps).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientRegistration<S> {
    /// `client_name`; `None` names the client after its first redirect
    /// URI's host.
    pub name: Option<String>,
    /// `redirect_uris`: at least one; each `https`, or `http` on a loopback
    /// host (`127.0.0.1`, `[::1]`, `localhost`) for native apps (RFC 8252
    /// §7.3); absolute, without a fragment.
    pub redirect_uris: Vec<String>,
    /// `scope`: the scopes the client may ask for; `None` for every scope.
    pub scopes: Option<S>,
    /// Where the registration comes from, in the application's terms (a
    /// client IP address or network): registrations are capped per source
    /// ([`IssuePolicy::clients_per_source`](crate::manager::IssuePolicy::clients_per_source)).
    pub source: String,
}

impl<S> ClientRegistration<S> {
    /// A registration of `redirect_uris` from `source`, with no name and
    /// every scope.
    pub fn new(redirect_uris: Vec<String>, source: impl Into<String>) -> Self {
        Self {
            name: None,
            redirect_uris,
            scopes: None,
            source: source.into(),
        }
    }

    /// Sets `client_name`.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the scopes the client may ask for.
    #[must_use]
    pub fn scopes(mut self, scopes: S) -> Self {
        self.scopes = Some(scopes);
        self
    }
}

/// Why a client registration was refused (RFC 7591 §3.2.2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// `invalid_redirect_uri`: a redirect URI is missing or not acceptable.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// `invalid_client_metadata`: another field is not acceptable.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// The source already holds its cap of live registrations.
    #[error("too many client registrations from this source")]
    TooMany,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an authorization code is issued for, once the user has allowed it:
/// the client, the redirect URI and PKCE challenge of the authorization
/// request, the scopes the user granted and the resources (RFC 8707) the
/// tokens will be for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CodeRequest<S> {
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's name: the grant's tokens carry it, so the user's token
    /// list names the grant after the client.
    pub client_name: String,
    /// The `redirect_uri` of the authorization request.
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (method `S256`: the unpadded base64url
    /// SHA-256 of the verifier, 43 characters).
    pub code_challenge: String,
    /// The scopes granted (the default set when empty).
    pub scopes: S,
    /// The resources the tokens are for; empty for the policy's default
    /// audience.
    pub resources: Vec<String>,
    /// The user who allowed it.
    pub owner: String,
}

impl<S> CodeRequest<S> {
    /// A code for `client`, sent to `redirect_uri` (one of the client's),
    /// for `owner`, bound to `code_challenge`.
    pub fn new(
        client: &OAuthClient<S>,
        redirect_uri: impl Into<String>,
        code_challenge: impl Into<String>,
        owner: impl Into<String>,
        scopes: S,
    ) -> Self {
        Self {
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.into(),
            code_challenge: code_challenge.into(),
            scopes,
            resources: Vec::new(),
            owner: owner.into(),
        }
    }

    /// Sets the resources (RFC 8707) the tokens will be for.
    #[must_use]
    pub fn resources(mut self, resources: Vec<String>) -> Self {
        self.resources = resources;
        self
    }
}

/// What the token endpoint's `authorization_code` grant presents (RFC 6749
/// §4.1.3, RFC 7636 §4.5, RFC 8707 §2.2). Its `Debug` shows neither the
/// code nor the verifier.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct CodeExchange<'a> {
    /// `code`.
    pub code: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `redirect_uri`: the one of the authorization request.
    pub redirect_uri: &'a str,
    /// `code_verifier` (RFC 7636).
    pub code_verifier: &'a str,
    /// `resource` parameters: a subset of the code's resources narrows the
    /// access token's audience; empty keeps them all.
    pub resources: &'a [String],
}

impl std::fmt::Debug for CodeExchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeExchange")
            .field("code", &"[redacted]")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &"[redacted]")
            .field("resources", &self.resources)
            .finish()
    }
}

impl<'a> CodeExchange<'a> {
    /// An exchange of `code` by `client_id` with `code_verifier`, for the
    /// code's whole audience.
    pub fn new(
        code: &'a str,
        client_id: &'a str,
        redirect_uri: &'a str,
        code_verifier: &'a str,
    ) -> Self {
        Self {
            code,
            client_id,
            redirect_uri,
            code_verifier,
            resources: &[],
        }
    }

    /// Narrows the access token to `resources`.
    #[must_use]
    pub fn resources(mut self, resources: &'a [String]) -> Self {
        self.resources = resources;
        self
    }
}

/// The record owner under which a source's client registrations are kept.
fn client_owner(source: &str) -> String {
    format!("oauth-client-registrations:{source}")
}

/// The S256 code challenge of `verifier` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is an RFC 7636 §4.1 code verifier: 43 to 128
/// characters of `[A-Za-z0-9-._~]`.
pub fn is_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Whether `challenge` is an S256 code challenge: 43 characters of
/// unpadded base64url (a SHA-256 digest).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored digest of a code: the code bound to the client, the redirect
/// URI and the PKCE challenge. A token request that differs in any of them
/// (or whose verifier does not hash to the challenge) looks up a digest
/// that is not stored, so the check is the store's constant-time lookup
/// itself and nothing about the mismatch leaks.
fn code_digest(code: &str, client_id: &str, redirect_uri: &str, challenge: &str) -> TokenDigest {
    let mut hash = Sha256::new();
    hash.update(b"tower-token-auth authorization code v1\0");
    for part in [code, client_id, redirect_uri, challenge] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    TokenDigest::from_bytes(hash.finalize().into())
}

/// Checks one redirect URI of a registration.
fn check_redirect_uri(uri: &str) -> Result<(), RegistrationError> {
    let bad = |why: &str| {
        Err(RegistrationError::InvalidRedirectUri(format!(
            "{why}: {}",
            uri.escape_debug()
        )))
    };
    if uri.len() > MAX_URI_LEN || uri.chars().any(char::is_control) {
        return bad("a redirect URI is at most 2048 bytes of printable text");
    }
    let (scheme, authority) = match redirect_uri_parts(uri) {
        Ok(parts) => parts,
        Err(why) => return bad(why),
    };
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(authority.host()) => Ok(()),
        _ => bad("a redirect URI is https, or http on a loopback host"),
    }
}

/// The scheme and authority of a redirect URI that is well-formed in the
/// strict sense both registration and authorization require: printable
/// ASCII without spaces, absolute, no fragment, no user information, a
/// host of host characters only (letters, digits, `.`, `-`, or a bracketed
/// IPv6 literal) and a port, if any, from 1 to 65535. Anything looser
/// could be spliced into a header (`;`, `,` in a Content-Security-Policy)
/// or land the code where the client does not expect it (a fragment).
fn redirect_uri_parts(uri: &str) -> Result<(&str, http::uri::Authority), &'static str> {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a redirect URI is printable ASCII without spaces");
    }
    if uri.contains('#') {
        return Err("a redirect URI has no fragment");
    }
    let Ok(parsed) = uri.parse::<http::Uri>() else {
        return Err("not an absolute URI");
    };
    let (Some(scheme), Some(authority)) = (parsed.scheme_str(), parsed.authority()) else {
        return Err("not an absolute URI");
    };
    let authority = authority.clone();
    if authority.as_str().contains('@') {
        return Err("a redirect URI carries no user information");
    }
    let (host, port) = match authority.as_str().rsplit_once(':') {
        Some((host, port)) if !host.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (authority.as_str(), None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => {
            !ipv6.is_empty()
                && ipv6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
    };
    if !host_ok {
        return Err(
            "a redirect URI's host is letters, digits, dots and hyphens, or an IPv6 literal",
        );
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65_535).contains(&p));
        if !valid {
            return Err("a redirect URI's port is a number from 1 to 65535");
        }
    }
    // The scheme is a slice of `uri`, for the caller's match.
    let scheme = &uri[..scheme.len()];
    Ok((scheme, authority))
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    // What was registered passed this check; a request must pass it too
    // (a fragment, say, is invisible to the comparison below).
    if redirect_uri_parts(requested).is_err() {
        return false;
    }
    if registered == requested {
        return true;
    }
    // Loopback IP literals: any port (RFC 8252 §7.3).
    let (Ok(a), Ok(b)) = (
        registered.parse::<http::Uri>(),
        requested.parse::<http::Uri>(),
    ) else {
        return false;
    };
    let loopback_ip = |u: &http::Uri| {
        u.scheme_str() == Some("http") && matches!(u.host(), Some("127.0.0.1" | "[::1]"))
    };
    loopback_ip(&a)
        && loopback_ip(&b)
        && a.host() == b.host()
        && a.path_and_query() == b.path_and_query()
        && !requested.contains('@')
}

impl<B: TokenBackend> TokenManager<B> {
    /// Registers a public OAuth client (RFC 7591): checks its metadata,
    /// enforces the per-source cap and stores it for
    /// [`Lifetimes::client`](crate::token::Lifetimes::client).
    pub async fn register_client(
        &self,
        registration: ClientRegistration<B::Scopes>,
    ) -> Result<OAuthClient<B::Scopes>, RegistrationError> {
        let ClientRegistration {
            name,
            redirect_uris,
            scopes,
            source,
        } = registration;
        if redirect_uris.is_empty() {
            return Err(RegistrationError::InvalidRedirectUri(
                "redirect_uris needs at least one URI".into(),
            ));
        }
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(RegistrationError::InvalidRedirectUri(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &redirect_uris {
            check_redirect_uri(uri)?;
        }
        let name = match name {
            Some(name) => name,
            None => redirect_uris[0]
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_else(|| "unnamed client".into()),
        };
        let scopes = match scopes {
            Some(s) if !s.is_empty() => s,
            _ => B::Scopes::all(),
        };
        if source.is_empty() {
            return Err(RegistrationError::InvalidClientMetadata(
                "a registration needs a source".into(),
            ));
        }
        let owner = client_owner(&source);
        let cap = self.inner.policy.get_clients_per_source();
        // A cheap refusal of a source that is plainly over its cap; the
        // check that holds under concurrency follows the insert.
        if self.live_clients(&owner).await? >= cap {
            return Err(RegistrationError::TooMany);
        }
        let request = IssueRequest::new(TokenKind::Client, name, owner.as_str())
            .scopes(scopes)
            .audience(redirect_uris);
        let (client_id, record) = match self.inner.policy.mint(request) {
            Ok(minted) => minted,
            Err(TokenError::InvalidInput(why)) => {
                return Err(RegistrationError::InvalidClientMetadata(why))
            }
            Err(TokenError::Store(error)) => return Err(error.into()),
            Err(TokenError::Conflict(why)) => {
                return Err(RegistrationError::InvalidClientMetadata(why.into()))
            }
        };
        self.backend_ref()
            .insert(std::slice::from_ref(&record))
            .await?;
        // Stored first, counted after: a registration that then sees more
        // than the cap of live ones (its own included) withdraws itself.
        // Every listing shows every record whose insert returned before it
        // (`TokenBackend::list`), so of racing registrations the one that
        // lists last sees all that stayed: at most the cap stay, on every
        // backend. Under a race some may withdraw although, in the end, a
        // slot was free; the client registers again.
        if self.live_clients(&owner).await? > cap {
            self.backend_ref().revoke(record.id, self.now()).await?;
            return Err(RegistrationError::TooMany);
        }
        self.emit(AuditEvent::ClientRegistered {
            id: record.id,
            name: record.name.as_str().to_owned(),
        });
        Ok(OAuthClient::from_record(client_id.expose_secret(), &record))
    }

    /// How many of `owner`'s client registrations are live now.
    async fn live_clients(&self, owner: &str) -> Result<usize, StoreError> {
        let now = self.now();
        Ok(self
            .backend_ref()
            .list(owner)
            .await?
            .iter()
            .filter(|r| r.kind == TokenKind::Client && !r.is_revoked() && !r.is_expired_at(now))
            .count())
    }

    /// The registered client of `client_id`, while its registration lives.
    pub async fn client(
        &self,
        client_id: &str,
    ) -> Result<Option<OAuthClient<B::Scopes>>, StoreError> {
        if self.inner.policy.get_format().check(client_id) != Ok(TokenKind::Client) {
            return Ok(None);
        }
        let now = self.now();
        Ok(self
            .backend_ref()
            .find(TokenDigest::of(client_id).into())
            .await?
            .filter(|r| r.kind == TokenKind::Client && !r.is_revoked() && !r.is_expired_at(now))
            .map(|r| OAuthClient::from_record(client_id, &r)))
    }

    /// Issues an authorization code once the user has allowed `request`:
    /// single use, valid for
    /// [`Lifetimes::authorization_code`](crate::token::Lifetimes::authorization_code)
    /// (60 seconds), bound to the client, the redirect URI, the PKCE
    /// challenge, the scopes and the resources. Its tokens will form a new
    /// grant (family), listed under the client's name.
    ///
    /// [`TokenError::InvalidInput`] for a challenge that is not S256.
    pub async fn issue_code(
        &self,
        request: CodeRequest<B::Scopes>,
    ) -> Result<TokenSecret, TokenError> {
        if !is_s256_challenge(&request.code_challenge) {
            return Err(TokenError::InvalidInput(
                "code_challenge must be an S256 challenge (43 base64url characters)".into(),
            ));
        }
        let Some(resources) = distinct_resources(request.resources.clone()) else {
            return Err(TokenError::InvalidInput(format!(
                "at most {MAX_RESOURCES} distinct resources"
            )));
        };
        let request = CodeRequest {
            resources,
            ..request
        };
        if request.resources.iter().any(|r| r.len() > MAX_URI_LEN) {
            return Err(TokenError::InvalidInput("a resource is too long".into()));
        }
        let now = self.now();
        let mut issue = IssueRequest::new(
            TokenKind::AuthorizationCode,
            request.client_name.clone(),
            request.owner.clone(),
        )
        .scopes(request.scopes)
        .client_id(request.client_id.clone());
        if !request.resources.is_empty() {
            issue = issue.audience(request.resources.clone());
        }
        let (code, mut record) = self.inner.policy.mint(issue)?;
        let family = Family {
            id: FamilyId::random()?,
            started_at: now,
        };
        record.family = Some(family);
        record.digest = code_digest(
            code.expose_secret(),
            &request.client_id,
            &request.redirect_uri,
            &request.code_challenge,
        );
        self.backend_ref()
            .insert(std::slice::from_ref(&record))
            .await?;
        self.emit(AuditEvent::AuthorizationCodeIssued {
            id: record.id,
            family: family.id,
            owner: record.owner.as_str().to_owned(),
            client: record.name.as_str().to_owned(),
        });
        Ok(code)
    }

    /// Exchanges an authorization code for an access token and a refresh
    /// token of a new grant (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.6).
    ///
    /// [`InvalidGrantReason::Unknown`] when no code matches: an unknown
    /// code, or a `client_id`, `redirect_uri` or `code_verifier` that is
    /// not the one the code was issued for (all look the same to the
    /// client). A code already exchanged revokes every token issued from it
    /// ([`InvalidGrantReason::Reused`], RFC 6749 §4.1.2); of two concurrent
    /// exchanges of one code, one succeeds and the grant ends revoked.
    pub async fn exchange_code(
        &self,
        request: &CodeExchange<'_>,
    ) -> Result<TokenPair<B::Scopes>, GrantError> {
        let invalid = |reason| Err(GrantError::InvalidGrant(reason));
        let policy = &self.inner.policy;
        if policy.get_format().check(request.code) != Ok(TokenKind::AuthorizationCode)
            || !is_code_verifier(request.code_verifier)
        {
            return invalid(InvalidGrantReason::Malformed);
        }
        let digest = code_digest(
            request.code,
            request.client_id,
            request.redirect_uri,
            &s256_challenge(request.code_verifier),
        );
        let now = self.now();
        let Some(code) = self.backend_ref().find(digest.into()).await? else {
            return invalid(InvalidGrantReason::Unknown);
        };
        if code.kind != TokenKind::AuthorizationCode {
            return invalid(InvalidGrantReason::Unknown);
        }
        let Some(family) = code.family else {
            return invalid(InvalidGrantReason::NoFamily);
        };
        if code.is_revoked() {
            return invalid(InvalidGrantReason::Revoked);
        }
        if code.is_spent() {
            return Err(self.replayed(&code, family.id).await);
        }
        if code.is_expired_at(now) {
            return invalid(InvalidGrantReason::Expired);
        }
        if request.resources.iter().any(|r| !code.audience.contains(r)) {
            return Err(GrantError::InvalidTarget);
        }
        let access_audience = if request.resources.is_empty() {
            code.audience.clone()
        } else {
            request.resources.to_vec()
        };
        self.spend(
            digest,
            &code,
            family,
            now,
            code.scopes,
            access_audience,
            |access, refresh| AuditEvent::AuthorizationCodeExchanged {
                code: code.id,
                access,
                refresh,
                owner: code.owner.as_str().to_owned(),
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::PayRequestScopes as S;
    use crate::MemoryStore;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const REDIRECT: &str = "http://127.0.0.1:8123/cb";

    async fn client(tokens: &TokenManager<MemoryStore<S>>) -> OAuthClient<S> {
        tokens
            .register_client(ClientRegistration::new(vec![REDIRECT.into()], "src"))
            .await
            .unwrap()
    }

    async fn code(
        tokens: &TokenManager<MemoryStore<S>>,
        client: &OAuthClient<S>,
        resources: &[&str],
    ) -> Result<String, TokenError> {
        let request = CodeRequest::new(
            client,
            REDIRECT,
            s256_challenge(VERIFIER),
            "u1",
            S::BILLING_READ,
        )
        .resources(resources.iter().map(|r| r.to_string()).collect());
        Ok(tokens.issue_code(request).await?.expose_secret().to_owned())
    }

    #[test]
    fn a_challenge_is_43_characters_of_base64url_exactly() {
        assert!(is_s256_challenge(&"_".repeat(43)));
        assert!(is_s256_challenge(&"-".repeat(43)));
        for bad in ['!', '=', '+', '/', '.'] {
            assert!(
                !is_s256_challenge(&format!("{}{bad}", "a".repeat(42))),
                "{bad}"
            );
        }
        assert!(!is_s256_challenge(&"a".repeat(44)));
    }

    #[test]
    fn a_redirect_uri_is_at_most_2048_bytes_of_printable_text() {
        let base = "https://a.example/";
        let longest = format!("{base}{}", "x".repeat(MAX_URI_LEN - base.len()));
        assert!(check_redirect_uri(&longest).is_ok());
        assert!(check_redirect_uri(&format!("{longest}x")).is_err());
        assert!(check_redirect_uri("https://a.example/\u{7}cb").is_err());
    }

    #[tokio::test]
    async fn registrations_take_ten_redirect_uris_and_no_scope_means_all() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let uris = |n: usize| (0..n).map(|i| format!("https://a.example/{i}")).collect();
        assert!(tokens
            .register_client(ClientRegistration::new(uris(MAX_REDIRECT_URIS), "s"))
            .await
            .is_ok());
        assert!(matches!(
            tokens
                .register_client(ClientRegistration::new(uris(MAX_REDIRECT_URIS + 1), "s"))
                .await,
            Err(RegistrationError::InvalidRedirectUri(_))
        ));
        let empty = tokens
            .register_client(ClientRegistration::new(uris(1), "s").scopes(S::empty()))
            .await
            .unwrap();
        assert_eq!(empty.scopes, S::all());
    }

    #[tokio::test]
    async fn a_resource_is_at_most_2048_bytes() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let client = client(&tokens).await;
        let base = "https://r.example/";
        let longest = format!("{base}{}", "x".repeat(MAX_URI_LEN - base.len()));
        assert!(code(&tokens, &client, &[&longest]).await.is_ok());
        assert!(matches!(
            code(&tokens, &client, &[&format!("{longest}x")]).await,
            Err(TokenError::InvalidInput(_))
        ));
    }

    #[tokio::test]
    async fn a_malformed_verifier_is_refused_before_any_lookup() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let client = client(&tokens).await;
        let code = code(&tokens, &client, &[]).await.unwrap();
        let refused = tokens
            .exchange_code(&CodeExchange::new(
                &code,
                &client.client_id,
                REDIRECT,
                "short",
            ))
            .await;
        assert!(
            matches!(
                refused,
                Err(GrantError::InvalidGrant(InvalidGrantReason::Malformed))
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn resources_narrow_the_access_token_and_never_widen_it() {
        let tokens = TokenManager::new(MemoryStore::<S>::new());
        let client = client(&tokens).await;
        let both = ["https://a.example/", "https://b.example/"];
        let first = code(&tokens, &client, &both).await.unwrap();
        let narrowed = ["https://a.example/".to_owned()];
        let pair = tokens
            .exchange_code(
                &CodeExchange::new(&first, &client.client_id, REDIRECT, VERIFIER)
                    .resources(&narrowed),
            )
            .await
            .unwrap();
        assert_eq!(pair.access.record.audience, narrowed);
        assert_eq!(pair.refresh.record.audience, both);
        let second = code(&tokens, &client, &both).await.unwrap();
        let foreign = ["https://c.example/".to_owned()];
        assert!(matches!(
            tokens
                .exchange_code(
                    &CodeExchange::new(&second, &client.client_id, REDIRECT, VERIFIER)
                        .resources(&foreign),
                )
                .await,
            Err(GrantError::InvalidTarget)
        ));
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(is_code_verifier(verifier));
        let challenge = s256_challenge(verifier);
        assert_eq!(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(is_s256_challenge(&challenge));
        assert!(!is_code_verifier("short"));
        assert!(!is_code_verifier(&"a".repeat(129)));
        assert!(!is_code_verifier(&format!("{}!", "a".repeat(43))));
        assert!(!is_s256_challenge("plain-challenge"));
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for good in [
            "https://app.example/cb",
            "http://127.0.0.1:33418/callback",
            "http://[::1]/cb",
            "http://localhost:8080/oauth/callback?x=1",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "/relative",
            "javascript:alert(1)",
            "https://user@app.example/cb",
            "ftp://127.0.0.1/cb",
            "",
        ] {
            assert!(
                matches!(
                    check_redirect_uri(bad),
                    Err(RegistrationError::InvalidRedirectUri(_))
                ),
                "{bad}"
            );
        }
    }

    /// Issue 23, rows 2 and 7: a fragment, a port past 65535 and anything
    /// but host characters in the authority are refused, at registration
    /// and when an authorization request names the URI.
    #[test]
    fn redirect_uris_with_a_fragment_a_bad_port_or_odd_authority_characters_are_refused() {
        for bad in [
            "https://a.example/cb#frag",
            "https://a.example:99999/cb",
            "https://a.example:0/cb",
            "https://a.example:/cb",
            "https://a;b.example/cb",
            "https://a,b.example/cb",
            "https://a.example;report-uri=x/cb",
            "https://a b.example/cb",
            "https://ex\u{e4}mple.example/cb",
            "http://127.0.0.1:99999/cb",
            "http://[::1;x]/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "registered {bad}");
        }
        for good in [
            "https://a.example/cb",
            "https://a-b.example:8443/cb?x=1",
            "http://127.0.0.1:65535/cb",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "refused {good}");
        }
        let registered = "http://127.0.0.1:9999/cb";
        for requested in [
            "http://127.0.0.1:9999/cb#frag",
            "http://127.0.0.1:99999/cb",
            "http://127.0.0.1:9999;x/cb",
        ] {
            assert!(!redirect_uri_matches(registered, requested), "{requested}");
        }
        assert!(redirect_uri_matches(registered, "http://127.0.0.1:4000/cb"));
    }

    #[test]
    fn loopback_ip_redirects_match_on_any_port_and_nothing_else_does() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb2"
        ));
        assert!(!redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example:444/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:9/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:9/other"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://[::1]/cb"
        ));
    }

    #[test]
    fn a_code_exchange_never_shows_its_code_or_verifier() {
        let code = "pr_ac_secretcodesecretcodesecretcode000000";
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let shown = format!(
            "{:?}",
            CodeExchange::new(code, "pr_cl_client", "https://a/cb", verifier)
        );
        assert!(
            !shown.contains(code) && !shown.contains(verifier),
            "{shown}"
        );
        assert!(shown.contains("pr_cl_client"));
    }

    #[test]
    fn the_code_digest_binds_every_part() {
        let base = code_digest("c", "client", "https://a/cb", "x");
        assert_ne!(base, code_digest("d", "client", "https://a/cb", "x"));
        assert_ne!(base, code_digest("c", "client2", "https://a/cb", "x"));
        assert_ne!(base, code_digest("c", "client", "https://a/cb2", "x"));
        assert_ne!(base, code_digest("c", "client", "https://a/cb", "y"));
        // Length prefixes: moving a byte between fields changes the digest.
        assert_ne!(
            code_digest("ab", "c", "u", "x"),
            code_digest("a", "bc", "u", "x")
        );
        assert_ne!(base, TokenDigest::of("c"));
    }
}
