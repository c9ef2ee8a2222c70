//! The authorization endpoint: the protocol half of `GET /oauth/authorize`.

use std::fmt;
use std::sync::Arc;

use bitflags::Flags as _;

use super::form::Form;
use super::grant::distinct_resources;
use crate::error::StoreError;
use crate::manager::{TokenError, TokenManager};
use crate::oauth::{is_s256_challenge, CodeRequest, OAuthClient};
use crate::scope::ScopeSet;
use crate::store::TokenBackend;

/// At most this many bytes of `state`.
const MAX_STATE: usize = 2048;

/// The authorization endpoint of the authorization code grant (RFC 6749
/// §4.1 as profiled by OAuth 2.1): it checks an authorization request and,
/// once the application's user has decided, builds the redirect back to
/// the client.
///
/// The endpoint is the protocol; the login and the consent page are the
/// application's (the `billing_api` example has both). The flow:
///
/// 1. `GET /oauth/authorize?…`: the application makes sure a user is
///    logged in (its own login, coming back to the same URL), then calls
///    [`validate`](Self::validate) with the query string.
///    - [`AuthorizationError::Invalid`]: an unknown client, or a
///      `redirect_uri` that is missing or not the client's. Show the
///      description on a page; never redirect (RFC 6749 §4.1.2.1), so the
///      endpoint is no open redirector.
///    - Any other error (PKCE missing or `plain`, an unknown scope, a
///      foreign resource, …): [`AuthorizationError::Redirect`] for a client
///      the service vouches for ([`vouch_for`](Self::vouch_for)): send the
///      user agent to the URL, which carries `error`, `state` and `iss`;
///      [`AuthorizationError::Invalid`] for any other client, since anyone
///      can register one: show it like the errors above.
///    - `Ok(pending)`: show the consent page: the client's name, its
///      `client_id` and redirect URI, and each of
///      [`PendingAuthorization::scope_names`].
/// 2. The user's answer (a `POST` carrying the same query string and a
///    CSRF token): validate again, then redirect to
///    [`approve`](Self::approve) with the scopes the user left ticked, or
///    to [`deny`](Self::deny) (`error=access_denied`).
///
/// The redirect carries `code`, `state` and `iss` (RFC 9207). The code is
/// single use, lives 60 seconds and is bound to the client, the redirect
/// URI, the PKCE challenge (S256 only), the granted scopes and the
/// resources; the [`TokenEndpoint`](super::TokenEndpoint) exchanges it.
///
/// ```
/// use tower_token_auth::oauth::{AuthorizationEndpoint, AuthorizationError};
/// use tower_token_auth::manager::TokenManager;
/// use tower_token_auth::oauth::{s256_challenge, ClientRegistration};
/// use tower_token_auth::{MemoryStore, PayRequestScopes as S};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenManager::new(MemoryStore::<S>::new());
/// let client = tokens
///     .register_client(
///         ClientRegistration::new(vec!["http://127.0.0.1:8123/cb".into()], "127.0.0.1")
///             .name("MCP Billing Agent"),
///     )
///     .await?;
/// let endpoint = AuthorizationEndpoint::new(tokens.clone(), "https://billing.example");
///
/// let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// let query = format!(
///     "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8123%2Fcb\
///      &scope=billing.read+customers.read&state=xyz&code_challenge={}&code_challenge_method=S256",
///     client.client_id,
///     s256_challenge(verifier),
/// );
/// let pending = endpoint.validate(&query).await?;
/// assert_eq!(pending.client.name, "MCP Billing Agent");
/// assert_eq!(pending.scope_names(), ["billing.read", "customers.read"]);
///
/// // The user unticks customers.read and allows the rest.
/// let back = endpoint.approve(&pending, "user-1", S::BILLING_READ).await?;
/// assert!(back.starts_with("http://127.0.0.1:8123/cb?code=pr_ac_"));
/// assert!(back.ends_with("&state=xyz&iss=https%3A%2F%2Fbilling.example"));
///
/// // A redirect URI the client did not register is shown, never followed.
/// let evil = query.replace("8123%2Fcb", "8123%2Fevil");
/// assert!(matches!(
///     endpoint.validate(&evil).await,
///     Err(AuthorizationError::Invalid(_))
/// ));
/// # Ok(())
/// # }
/// ```
pub struct AuthorizationEndpoint<B> {
    tokens: TokenManager<B>,
    issuer: Arc<str>,
    /// The clients whose invalid requests are redirected back to them.
    vouched: Arc<[String]>,
}

impl<B> Clone for AuthorizationEndpoint<B> {
    fn clone(&self) -> Self {
        Self {
            tokens: self.tokens.clone(),
            issuer: Arc::clone(&self.issuer),
            vouched: Arc::clone(&self.vouched),
        }
    }
}

impl<B> fmt::Debug for AuthorizationEndpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationEndpoint")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// An authorization request that passed every check, waiting for the
/// user's decision.
#[derive(Clone)]
pub struct PendingAuthorization<S> {
    /// The client asking.
    pub client: OAuthClient<S>,
    /// Where the answer goes (one of the client's redirect URIs).
    pub redirect_uri: String,
    /// The client's `state`, returned as it came.
    pub state: Option<String>,
    /// The scopes asked for (the default set when the request named none).
    pub scopes: S,
    /// The resources (RFC 8707) the tokens are asked for; empty for the
    /// manager's default audience.
    pub resources: Vec<String>,
    code_challenge: String,
}

impl<S: ScopeSet> PendingAuthorization<S> {
    /// The scopes asked for, one name per checkbox of a consent page: the
    /// shortest list (`billing.agent` stands for the scopes it implies).
    pub fn scope_names(&self) -> Vec<&'static str> {
        let wanted = self.scopes.scope_string();
        S::SCOPES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| wanted.split(' ').any(|w| w == *name))
            .collect()
    }
}

impl<S: fmt::Debug> fmt::Debug for PendingAuthorization<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("client", &self.client)
            .field("redirect_uri", &self.redirect_uri)
            .field("state", &self.state)
            .field("scopes", &self.scopes)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

/// Why an authorization request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorizationError {
    /// The client or its redirect URI cannot be trusted, or the request of
    /// a client the service does not vouch for is invalid: show this
    /// description to the user and do not redirect.
    #[error("invalid authorization request: {0}")]
    Invalid(&'static str),
    /// Send the user agent to this URL: the redirect URI of a client the
    /// service vouches for ([`AuthorizationEndpoint::vouch_for`]), with
    /// `error`, `error_description`, `state` and `iss`.
    #[error("authorization refused; redirect to the client")]
    Redirect(String),
    /// The store failed; show a 503 page.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<B: TokenBackend> AuthorizationEndpoint<B> {
    /// An endpoint over `tokens` for the authorization server `issuer`
    /// (its RFC 8414 `issuer`, sent back as `iss`).
    ///
    /// A `resource` parameter must name one of the manager's
    /// [default audience](crate::manager::IssuePolicy::default_audience)
    /// when it has one; without it, any absolute URI.
    pub fn new(tokens: TokenManager<B>, issuer: impl Into<String>) -> Self {
        Self {
            tokens,
            issuer: issuer.into().into(),
            vouched: Arc::from([]),
        }
    }

    /// Vouches for the client `client_id` (one the service registered
    /// itself, a first-party application): an invalid request of it is
    /// redirected back to its redirect URI with `error`
    /// ([`AuthorizationError::Redirect`], RFC 6749 §4.1.2.1). Without it,
    /// as for every client that registered itself (RFC 7591, open to
    /// anyone), an invalid request is shown on the page
    /// ([`AuthorizationError::Invalid`]): with open registration, a
    /// redirect of an error would make the server an open redirector
    /// (RFC 9700 §4.11.2).
    #[must_use]
    pub fn vouch_for(mut self, client_id: impl Into<String>) -> Self {
        let mut vouched = self.vouched.to_vec();
        vouched.push(client_id.into());
        self.vouched = vouched.into();
        self
    }

    /// Checks an authorization request (the query string of `GET
    /// /oauth/authorize`, without the `?`).
    pub async fn validate(
        &self,
        query: &str,
    ) -> Result<PendingAuthorization<B::Scopes>, AuthorizationError> {
        let form = Form::parse(query.as_bytes());
        let single = |name| form.one(name).map_err(|_| name);
        let (client_id, redirect_uri) = match (single("client_id"), single("redirect_uri")) {
            (Ok(Some(c)), Ok(Some(r))) => (c, r),
            (Ok(None), _) => return Err(AuthorizationError::Invalid("client_id is missing.")),
            (_, Ok(None)) => return Err(AuthorizationError::Invalid("redirect_uri is missing.")),
            _ => {
                return Err(AuthorizationError::Invalid(
                    "client_id or redirect_uri is repeated.",
                ))
            }
        };
        let Some(client) = self.tokens.client(client_id).await? else {
            return Err(AuthorizationError::Invalid(
                "This application is not registered (or its registration expired).",
            ));
        };
        if !client.accepts_redirect_uri(redirect_uri) {
            return Err(AuthorizationError::Invalid(
                "The redirect URI is not one this application registered.",
            ));
        }
        // From here on the redirect URI is the client's own: errors go
        // back to it if the service vouches for the client, and are shown
        // on the page otherwise.
        let state = single("state").unwrap_or_default();
        let vouched = self.vouched.iter().any(|c| c == client_id);
        let back = |error: &str, description: &'static str| {
            if !vouched {
                return AuthorizationError::Invalid(description);
            }
            let state = state.filter(|s| s.len() <= MAX_STATE);
            AuthorizationError::Redirect(self.redirect(
                redirect_uri,
                &[("error", error), ("error_description", description)],
                state,
            ))
        };
        for name in [
            "response_type",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
        ] {
            if single(name).is_err() {
                return Err(back("invalid_request", "A parameter is repeated."));
            }
        }
        if state.is_some_and(|s| s.len() > MAX_STATE) {
            return Err(back("invalid_request", "state is too long."));
        }
        match single("response_type") {
            Ok(Some("code")) => {}
            Ok(None) => return Err(back("invalid_request", "response_type is required.")),
            _ => {
                return Err(back(
                    "unsupported_response_type",
                    "Only response_type=code is supported.",
                ))
            }
        }
        let Ok(Some(code_challenge)) = single("code_challenge") else {
            return Err(back(
                "invalid_request",
                "code_challenge is required (PKCE, RFC 7636).",
            ));
        };
        if single("code_challenge_method") != Ok(Some("S256")) {
            return Err(back(
                "invalid_request",
                "code_challenge_method must be S256; plain is not supported.",
            ));
        }
        if !is_s256_challenge(code_challenge) {
            return Err(back(
                "invalid_request",
                "code_challenge is not an S256 challenge.",
            ));
        }
        let scopes = match single("scope") {
            Ok(Some(scope)) => match B::Scopes::parse_scope(scope) {
                Ok(s) if !s.is_empty() => s,
                Ok(_) => B::Scopes::DEFAULT,
                Err(_) => return Err(back("invalid_scope", "A requested scope is unknown.")),
            },
            _ => B::Scopes::DEFAULT,
        };
        if !client.scopes.contains(scopes) {
            return Err(back(
                "invalid_scope",
                "A requested scope is not one this application registered for.",
            ));
        }
        let Some(resources) = distinct_resources(form.all("resource")) else {
            return Err(back("invalid_target", "Too many resources are requested."));
        };
        let allowed = self.tokens.policy().get_default_audience();
        let acceptable = |r: &String| {
            r.contains("://")
                && !r.contains('#')
                && (allowed.is_empty()
                    || allowed
                        .iter()
                        .any(|a| a.trim_end_matches('/') == r.trim_end_matches('/')))
        };
        if !resources.iter().all(acceptable) {
            return Err(back(
                "invalid_target",
                "The requested resource is not served by this authorization server.",
            ));
        }
        // Recorded as this server names them, so the tokens' audience
        // matches the resource server's identifier exactly.
        let resources = resources
            .iter()
            .map(|r| {
                allowed
                    .iter()
                    .find(|a| a.trim_end_matches('/') == r.trim_end_matches('/'))
                    .unwrap_or(r)
                    .clone()
            })
            .collect();
        Ok(PendingAuthorization {
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            scopes,
            resources,
            code_challenge: code_challenge.to_owned(),
            client,
        })
    }

    /// The user allowed `pending` with the scopes `granted` (those of its
    /// scopes left ticked; others are ignored): issues the code and returns
    /// the URL to redirect the user agent to (`code`, `state`, `iss`).
    /// Nothing ticked is a denial.
    pub async fn approve(
        &self,
        pending: &PendingAuthorization<B::Scopes>,
        owner: &str,
        granted: B::Scopes,
    ) -> Result<String, TokenError> {
        let granted = granted.intersection(pending.scopes);
        if granted.is_empty() {
            return Ok(self.deny(pending));
        }
        let request = CodeRequest::new(
            &pending.client,
            pending.redirect_uri.clone(),
            pending.code_challenge.clone(),
            owner,
            granted,
        )
        .resources(pending.resources.clone());
        let code = self.tokens.issue_code(request).await?;
        Ok(self.redirect(
            &pending.redirect_uri,
            &[("code", code.expose_secret())],
            pending.state.as_deref(),
        ))
    }

    /// The user denied `pending`: the URL to redirect the user agent to
    /// (`error=access_denied`, `state`, `iss`).
    pub fn deny(&self, pending: &PendingAuthorization<B::Scopes>) -> String {
        self.redirect(
            &pending.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied the request."),
            ],
            pending.state.as_deref(),
        )
    }

    /// `redirect_uri` with `params`, `state` and `iss` added to its query.
    fn redirect(&self, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &self.issuer);
        let separator = if redirect_uri.contains('?') { '&' } else { '?' };
        format!("{redirect_uri}{separator}{}", query.finish())
    }
}
