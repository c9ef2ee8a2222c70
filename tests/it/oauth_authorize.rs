//! The authorization code grant, paragraph by paragraph, on the library's
//! endpoints in memory: the authorization endpoint (RFC 6749 §4.1.1,
//! §4.1.2, §4.1.2.1 as profiled by OAuth 2.1; RFC 7636 PKCE; RFC 8707
//! `resource`; RFC 9207 `iss`), the code grant at the token endpoint (RFC
//! 6749 §4.1.3, RFC 7636 §4.6) and dynamic client registration (RFC 7591).
//! The whole flow through the example, in a browser and with a third-party
//! client library, is in `oauth_flow.rs`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::error::StoreError;
use tower_token_auth::manager::{IssuePolicy, TokenManager};
use tower_token_auth::oauth::{s256_challenge, ClientRegistration, OAuthClient};
use tower_token_auth::oauth::{
    AuthorizationEndpoint, AuthorizationError, RegistrationEndpoint, TokenEndpoint,
};
use tower_token_auth::peer::PeerAddr;
use tower_token_auth::store::{
    Exchange, ExchangeOutcome, FindResult, SharedRecord, TokenBackend, TokenStore,
};
use tower_token_auth::token::{FamilyId, Lookup, ManualClock, TokenDigest, TokenId, TokenRecord};
use tower_token_auth::{MemoryStore, PayRequestScopes as S};

use crate::support::start_time;

const ISSUER: &str = "https://billing.example";
const RESOURCE: &str = "https://billing.example/v1";
const REDIRECT: &str = "http://127.0.0.1:8123/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

type Tokens = TokenManager<MemoryStore<S>>;

struct Server {
    tokens: Tokens,
    clock: Arc<ManualClock>,
    authorize: AuthorizationEndpoint<MemoryStore<S>>,
    client: OAuthClient<S>,
}

impl Server {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(start_time()));
        let tokens = TokenManager::with_policy(
            MemoryStore::new(),
            IssuePolicy::default()
                .clock(clock.clone())
                .default_audience([RESOURCE]),
        );
        let client = tokens
            .register_client(
                ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1")
                    .name("MCP Billing Agent")
                    .scopes(S::BILLING_AGENT | S::CUSTOMERS_READ),
            )
            .await
            .unwrap();
        Self {
            // The tests of the errors that go back to the client are about
            // a client the service vouches for.
            authorize: AuthorizationEndpoint::new(tokens.clone(), ISSUER)
                .vouch_for(client.client_id.clone()),
            tokens,
            clock,
            client,
        }
    }

    /// A good authorization request's query, with `changes` applied: a
    /// `(name, Some(value))` replaces or adds a parameter, `(name, None)`
    /// removes it.
    fn query(&self, changes: &[(&str, Option<&str>)]) -> String {
        let challenge = s256_challenge(VERIFIER);
        let mut params: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", self.client.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "billing.read customers.read"),
            ("state", "st@te 1/2&x"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("resource", RESOURCE),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (name, value) in changes {
            params.retain(|(k, _)| k != name);
            if let Some(value) = value {
                params.push((name.to_string(), value.to_string()));
            }
        }
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish()
    }

    /// A code for the good request, allowed with `billing.read`.
    async fn code(&self) -> String {
        let pending = self.authorize.validate(&self.query(&[])).await.unwrap();
        let url = self
            .authorize
            .approve(&pending, "user-1", S::BILLING_READ)
            .await
            .unwrap();
        param(&url, "code").expect("a code")
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = Request::post("/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = TokenEndpoint::new(self.tokens.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", &self.client.client_id),
            ("code_verifier", verifier),
        ])
        .await
    }

    async fn is_revoked(&self, token: &str) -> bool {
        self.tokens
            .find(TokenDigest::of(token).into())
            .await
            .unwrap()
            .expect("stored")
            .is_revoked()
    }
}

/// The value of `name` in the query of `url`.
fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The redirect of a refused request, which must go to the client's
/// redirect URI with `error`, the state and `iss`.
fn redirected(refusal: Result<impl std::fmt::Debug, AuthorizationError>) -> String {
    match refusal {
        Err(AuthorizationError::Redirect(url)) => {
            assert!(url.starts_with(&format!("{REDIRECT}?")), "{url}");
            assert_eq!(param(&url, "state").as_deref(), Some("st@te 1/2&x"));
            assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));
            assert!(param(&url, "code").is_none());
            param(&url, "error").expect("an error")
        }
        other => panic!("expected a redirect to the client, got {other:?}"),
    }
}

// ---- RFC 6749 §4.1.2.1: what is shown, never redirected ----

#[tokio::test]
async fn an_unknown_client_or_a_foreign_redirect_uri_is_shown_never_redirected() {
    let s = Server::new().await;
    let cases = [
        s.query(&[("client_id", Some("pr_cl_unknown"))]),
        s.query(&[("client_id", None)]),
        s.query(&[("redirect_uri", None)]),
        s.query(&[("redirect_uri", Some("https://evil.example/callback"))]),
        s.query(&[(
            "redirect_uri",
            Some("http://127.0.0.1:8123/callback/../evil"),
        )]),
        format!(
            "{}&redirect_uri=https%3A%2F%2Fevil.example%2F",
            s.query(&[])
        ),
        format!("{}&client_id=x", s.query(&[])),
    ];
    for query in cases {
        match s.authorize.validate(&query).await {
            Err(AuthorizationError::Invalid(why)) => assert!(!why.is_empty()),
            other => panic!("{query}: must be shown, not redirected: {other:?}"),
        }
    }
    // An expired registration is an unknown client.
    s.clock.advance(s.tokens.policy().get_lifetimes().client);
    assert!(matches!(
        s.authorize.validate(&s.query(&[])).await,
        Err(AuthorizationError::Invalid(_))
    ));
}

/// Issue 23, rows 2 and 12: for a client registered with a loopback
/// redirect URI, a fragment (where the code would land), a port past 65535
/// or a non-ASCII redirect URI is no redirect URI of the client's: shown on
/// the page, never redirected, never a 500.
#[tokio::test]
async fn a_redirect_uri_with_a_fragment_a_bad_port_or_non_ascii_is_shown_never_redirected() {
    let s = Server::new().await;
    for redirect_uri in [
        "http://127.0.0.1:8123/callback#frag",
        "http://127.0.0.1:99999/callback",
        "http://127.0.0.1:8123/callb\u{e4}ck",
        "http://127.0.0.1:8123;x/callback",
    ] {
        match s
            .authorize
            .validate(&s.query(&[("redirect_uri", Some(redirect_uri))]))
            .await
        {
            Err(AuthorizationError::Invalid(why)) => assert!(!why.is_empty()),
            other => panic!("{redirect_uri}: must be shown, not redirected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_loopback_redirect_uri_may_use_any_port() {
    let s = Server::new().await;
    let other_port = "http://127.0.0.1:40001/callback";
    let pending = s
        .authorize
        .validate(&s.query(&[("redirect_uri", Some(other_port))]))
        .await
        .expect("RFC 8252 §7.3: any port on a loopback IP literal");
    assert_eq!(pending.redirect_uri, other_port);
}

/// Issue 23, row 6 (RFC 9700 §4.11.2): with open registration anyone can
/// register a redirect URI, so an invalid request of a client the service
/// does not vouch for is shown on the page, never redirected: otherwise
/// the server is an open redirector.
#[tokio::test]
async fn an_invalid_request_of_a_dynamically_registered_client_is_shown_never_redirected() {
    let s = Server::new().await;
    let open = AuthorizationEndpoint::new(s.tokens.clone(), ISSUER);
    for changes in [
        vec![("response_type", Some("token"))],
        vec![("response_type", None)],
        vec![("code_challenge", None)],
        vec![("code_challenge_method", Some("plain"))],
        vec![("scope", Some("admin"))],
        vec![("resource", Some("https://other.example/"))],
    ] {
        match open.validate(&s.query(&changes)).await {
            Err(AuthorizationError::Invalid(why)) => assert!(!why.is_empty()),
            other => panic!("{changes:?}: must be shown, not redirected: {other:?}"),
        }
    }
    // The good request still passes.
    assert!(open.validate(&s.query(&[])).await.is_ok());
}

// ---- the errors that go back to the client ----

#[tokio::test]
async fn pkce_is_required_and_plain_is_refused() {
    let s = Server::new().await;
    for changes in [
        vec![("code_challenge", None)],
        vec![("code_challenge_method", Some("plain"))],
        // RFC 7636 §4.3: no method means plain.
        vec![("code_challenge_method", None)],
        vec![("code_challenge", Some("too-short"))],
    ] {
        let error = redirected(s.authorize.validate(&s.query(&changes)).await);
        assert_eq!(error, "invalid_request", "{changes:?}");
    }
}

#[tokio::test]
async fn only_the_code_response_type_is_supported() {
    let s = Server::new().await;
    let error = redirected(
        s.authorize
            .validate(&s.query(&[("response_type", Some("token"))]))
            .await,
    );
    assert_eq!(error, "unsupported_response_type");
    let error = redirected(
        s.authorize
            .validate(&s.query(&[("response_type", None)]))
            .await,
    );
    assert_eq!(error, "invalid_request");
}

#[tokio::test]
async fn unknown_or_unregistered_scopes_are_invalid_scope() {
    let s = Server::new().await;
    for scope in ["billing.read admin", "products.write"] {
        let error = redirected(
            s.authorize
                .validate(&s.query(&[("scope", Some(scope))]))
                .await,
        );
        assert_eq!(error, "invalid_scope", "{scope}");
    }
    // No scope: the default set (the seed: billing.read).
    let pending = s
        .authorize
        .validate(&s.query(&[("scope", None)]))
        .await
        .unwrap();
    assert_eq!(pending.scopes, S::BILLING_READ);
    // One checkbox per requested scope, implied ones folded in.
    let pending = s
        .authorize
        .validate(&s.query(&[("scope", Some("billing.read billing.agent customers.read"))]))
        .await
        .unwrap();
    assert_eq!(pending.scope_names(), ["billing.agent", "customers.read"]);
}

/// RFC 8707 §2: a `resource` the authorization server does not consider
/// acceptable is refused with `invalid_target`.
#[tokio::test]
async fn rfc_8707_2_a_resource_this_server_does_not_serve_is_invalid_target() {
    let s = Server::new().await;
    let error = redirected(
        s.authorize
            .validate(&s.query(&[("resource", Some("https://other.example/"))]))
            .await,
    );
    assert_eq!(error, "invalid_target");
    // The server's own, with or without a trailing slash, is recorded as
    // the server names it.
    let pending = s
        .authorize
        .validate(&s.query(&[("resource", Some("https://billing.example/v1/"))]))
        .await
        .unwrap();
    assert_eq!(pending.resources, [RESOURCE]);
}

/// Issue 23, row 8: a resource named 1 400 times is one resource of the
/// grant (one audience entry, not 1 400), and more than 16 distinct ones
/// are `invalid_target`, at the authorization and the token endpoint.
#[tokio::test]
async fn repeated_resources_count_once_and_too_many_distinct_ones_are_invalid_target() {
    let s = Server::new().await;
    let repeated = "&resource=https%3A%2F%2Fbilling.example%2Fv1".repeat(1_400);
    let pending = s
        .authorize
        .validate(&format!("{}{repeated}", s.query(&[])))
        .await
        .unwrap();
    assert_eq!(pending.resources, [RESOURCE]);
    let url = s
        .authorize
        .approve(&pending, "user-1", S::BILLING_READ)
        .await
        .unwrap();
    let (status, granted) = s.exchange(&param(&url, "code").unwrap(), VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    let access = s
        .tokens
        .find(TokenDigest::of(granted["access_token"].as_str().unwrap()).into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.audience, [RESOURCE]);
    let mut refresh: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", granted["refresh_token"].as_str().unwrap()),
    ];
    // As many as fit in the endpoint's 8 KiB body.
    refresh.extend(std::iter::repeat_n(("resource", RESOURCE), 100));
    let (status, json) = s.token(&refresh).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let rotated = s
        .tokens
        .find(TokenDigest::of(json["access_token"].as_str().unwrap()).into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.audience, [RESOURCE]);

    // A server that serves any resource still takes at most 16 per request.
    let open = TokenManager::new(MemoryStore::<S>::new());
    let client = open
        .register_client(ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1"))
        .await
        .unwrap();
    let endpoint =
        AuthorizationEndpoint::new(open.clone(), ISSUER).vouch_for(client.client_id.clone());
    let challenge = s256_challenge(VERIFIER);
    let query = |n: usize| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs([
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "st@te 1/2&x"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]);
        for i in 0..n {
            query.append_pair("resource", &format!("https://r{i}.example/"));
        }
        query.finish()
    };
    assert!(endpoint.validate(&query(16)).await.is_ok());
    match endpoint.validate(&query(17)).await {
        Err(AuthorizationError::Redirect(url)) => {
            assert_eq!(
                param(&url, "error").as_deref(),
                Some("invalid_target"),
                "{url}"
            )
        }
        other => panic!("17 resources: {other:?}"),
    }
    let mut refresh: Vec<(String, String)> = vec![
        ("grant_type".into(), "refresh_token".into()),
        (
            "refresh_token".into(),
            granted["refresh_token"].as_str().unwrap().into(),
        ),
    ];
    refresh.extend((0..17).map(|i| ("resource".into(), format!("https://r{i}.example/"))));
    let pairs: Vec<(&str, &str)> = refresh
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, json) = s.token(&pairs).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_target");
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let s = Server::new().await;
    let query = format!("{}&scope=billing.write", s.query(&[]));
    assert_eq!(
        redirected(s.authorize.validate(&query).await),
        "invalid_request"
    );
}

// ---- RFC 6749 §4.1.2, RFC 9207: the answer ----

#[tokio::test]
async fn the_answer_carries_code_state_and_iss_and_deny_is_access_denied() {
    let s = Server::new().await;
    let pending = s.authorize.validate(&s.query(&[])).await.unwrap();
    assert_eq!(pending.client.name, "MCP Billing Agent");
    assert_eq!(pending.scopes, S::BILLING_READ | S::CUSTOMERS_READ);

    let url = s
        .authorize
        .approve(&pending, "user-1", S::BILLING_READ | S::PRODUCTS_WRITE)
        .await
        .unwrap();
    assert!(url.starts_with(&format!("{REDIRECT}?code=pr_ac_")), "{url}");
    assert_eq!(param(&url, "state").as_deref(), Some("st@te 1/2&x"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));
    assert!(param(&url, "error").is_none());

    let denied = s.authorize.deny(&pending);
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("st@te 1/2&x"));
    assert_eq!(param(&denied, "iss").as_deref(), Some(ISSUER));
    // Nothing ticked is a denial too.
    let none = s
        .authorize
        .approve(&pending, "user-1", S::empty())
        .await
        .unwrap();
    assert_eq!(param(&none, "error").as_deref(), Some("access_denied"));

    // The code holds what the user allowed, never more than was asked
    // (products.write was not asked for).
    let code = param(&url, "code").unwrap();
    let (status, json) = s.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["scope"], "billing.read");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 15 * 86_400);
    let access = s
        .tokens
        .find(TokenDigest::of(json["access_token"].as_str().unwrap()).into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(access.audience, [RESOURCE]);
    assert_eq!(access.owner(), "user-1");
    assert_eq!(access.name(), "MCP Billing Agent");
}

// ---- RFC 6749 §4.1.3, RFC 7636 §4.6: the code grant ----

#[tokio::test]
async fn the_code_grant_checks_verifier_client_and_redirect_uri() {
    let s = Server::new().await;
    let code = s.code().await;
    let wrong_verifier = "A".repeat(43);
    let other = s
        .tokens
        .register_client(ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.1"))
        .await
        .unwrap();
    for form in [
        vec![("code_verifier", wrong_verifier.as_str())],
        vec![("code_verifier", "short")],
        vec![("client_id", other.client_id.as_str())],
        vec![("redirect_uri", "http://127.0.0.1:8123/other")],
    ] {
        let mut request = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", s.client.client_id.as_str()),
            ("code_verifier", VERIFIER),
        ];
        for (name, value) in &form {
            request.retain(|(k, _)| k != name);
            request.push((name, value));
        }
        let (status, json) = s.token(&request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}");
        assert_eq!(json["error"], "invalid_grant", "{form:?}: {json}");
    }
    // Missing parameters are invalid_request.
    for missing in ["code", "redirect_uri", "client_id", "code_verifier"] {
        let mut request = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", s.client.client_id.as_str()),
            ("code_verifier", VERIFIER),
        ];
        request.retain(|(k, _)| *k != missing);
        let (status, json) = s.token(&request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(json["error"], "invalid_request", "{missing}");
    }
    // The mismatches spent nothing: the right request still works.
    let (status, json) = s.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn a_code_used_twice_revokes_the_tokens_issued_from_it() {
    let s = Server::new().await;
    let code = s.code().await;
    let (_, first) = s.exchange(&code, VERIFIER).await;
    let access = first["access_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, again) = s.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(again["error"], "invalid_grant");
    assert!(s.is_revoked(&access).await);
    assert!(
        s.is_revoked(refreshed["access_token"].as_str().unwrap())
            .await
    );
    assert!(
        s.is_revoked(refreshed["refresh_token"].as_str().unwrap())
            .await
    );
}

/// Issue 23, row 5: a refresh grant that names a `client_id` is refused
/// (`invalid_grant`) unless the grant is that client's, and the refusal
/// spends nothing: the client the grant belongs to refreshes it after.
#[tokio::test]
async fn a_refresh_naming_another_client_is_invalid_grant() {
    let s = Server::new().await;
    let other = s
        .tokens
        .register_client(ClientRegistration::new(vec![REDIRECT.into()], "127.0.0.2"))
        .await
        .unwrap();
    let (_, granted) = s.exchange(&s.code().await, VERIFIER).await;
    let refresh = granted["refresh_token"].as_str().unwrap();
    let (status, json) = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &other.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_grant");
    assert!(!s.is_revoked(refresh).await);
    let (status, json) = s
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &s.client.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn a_code_lives_sixty_seconds() {
    let s = Server::new().await;
    let code = s.code().await;
    s.clock.advance(Duration::from_secs(59));
    let fresh = s.code().await;
    s.clock.advance(Duration::from_secs(1));
    let (status, json) = s.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_grant");
    assert_eq!(
        json["error_description"],
        "The authorization code has expired."
    );
    let (status, json) = s.exchange(&fresh, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "{json}");
}

#[tokio::test]
async fn a_code_is_no_refresh_token_and_no_bearer_token() {
    let s = Server::new().await;
    let code = s.code().await;
    let (status, json) = s
        .token(&[("grant_type", "refresh_token"), ("refresh_token", &code)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_grant");
    // Stored only under its bound digest: the plain digest finds nothing.
    assert!(s
        .tokens
        .find(TokenDigest::of(&code).into())
        .await
        .unwrap()
        .is_none());
    let (status, _) = s.exchange(&code, VERIFIER).await;
    assert_eq!(status, StatusCode::OK, "the failed attempts spent nothing");
}

// ---- RFC 7591: registration ----

async fn register(tokens: &Tokens, peer: IpAddr, body: Value) -> (StatusCode, Value) {
    let mut request = Request::post("/oauth/register")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::new(peer, 50_000)));
    let response = RegistrationEndpoint::new(tokens.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

#[tokio::test]
async fn registration_answers_201_with_the_client_metadata() {
    let s = Server::new().await;
    let (status, json) = register(
        &s.tokens,
        HOME,
        json!({
            "client_name": "MCP Billing Agent",
            "redirect_uris": ["http://localhost:33418/oauth/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": "billing.agent",
            "software_id": "ignored",
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let client_id = json["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("pr_cl_"));
    assert_eq!(json["client_name"], "MCP Billing Agent");
    assert_eq!(
        json["redirect_uris"],
        json!(["http://localhost:33418/oauth/callback"])
    );
    assert_eq!(json["token_endpoint_auth_method"], "none");
    assert_eq!(json["scope"], "billing.agent");
    assert!(json.get("client_secret").is_none());
    let client = s.tokens.client(client_id).await.unwrap().unwrap();
    assert_eq!(client.scopes, S::BILLING_AGENT);
}

#[tokio::test]
async fn registration_refuses_bad_metadata_with_the_rfc_7591_errors() {
    let s = Server::new().await;
    let cases = [
        (json!({}), "invalid_redirect_uri"),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#x"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["myapp:/cb"]}),
            "invalid_redirect_uri",
        ),
        // Issue 23, row 7: nothing but host characters in the authority.
        (
            json!({"redirect_uris": ["https://a.example;script-src/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a,b.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1:99999/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "scope": "admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": 7}),
            "invalid_client_metadata",
        ),
        (json!(["not an object"]), "invalid_client_metadata"),
    ];
    for (body, error) in cases {
        let (status, json) = register(&s.tokens, HOME, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], error, "{body}: {json}");
    }
}

#[tokio::test]
async fn registrations_are_capped_per_network() {
    let tokens = TokenManager::with_policy(
        MemoryStore::<S>::new(),
        IssuePolicy::default().clients_per_source(2),
    );
    let body = json!({"redirect_uris": ["https://a.example/cb"]});
    // Two addresses of one IPv6 /64 are one source.
    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
    let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
    assert_eq!(
        register(&tokens, a, body.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&tokens, b, body.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, json) = register(&tokens, a, body.clone()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    // Another network is not affected.
    let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
    assert_eq!(
        register(&tokens, c, body.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(register(&tokens, HOME, body).await.0, StatusCode::CREATED);
}

/// A memory store whose first `parked` listings wait for each other: the
/// interleaving in which concurrent registrations from one source all read
/// the source's clients before any of them is stored.
struct ListingsMeet {
    store: MemoryStore<S>,
    parked: std::sync::atomic::AtomicUsize,
    barrier: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl TokenStore for ListingsMeet {
    type Scopes = S;
    async fn find(&self, key: Lookup<'_>) -> FindResult<S> {
        self.store.find(key).await
    }
    fn find_now(&self, digest: &TokenDigest) -> Option<FindResult<S>> {
        self.store.find_now(digest)
    }
}

#[async_trait::async_trait]
impl TokenBackend for ListingsMeet {
    async fn insert(&self, records: &[TokenRecord<S>]) -> Result<(), StoreError> {
        self.store.insert(records).await
    }
    async fn get(&self, id: TokenId) -> Result<Option<SharedRecord<S>>, StoreError> {
        self.store.get(id).await
    }
    async fn list(&self, owner: &str) -> Result<Vec<SharedRecord<S>>, StoreError> {
        let listed = self.store.list(owner).await;
        use std::sync::atomic::Ordering::SeqCst;
        // The first `parked` listings wait for each other; later ones pass.
        if self
            .parked
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.barrier.wait().await;
        }
        listed
    }
    async fn update_scopes(
        &self,
        id: TokenId,
        scopes: S,
        now: std::time::SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        self.store.update_scopes(id, scopes, now).await
    }
    async fn revoke(
        &self,
        id: TokenId,
        at: std::time::SystemTime,
    ) -> Result<Option<SharedRecord<S>>, StoreError> {
        self.store.revoke(id, at).await
    }
    async fn revoke_family(
        &self,
        family: FamilyId,
        at: std::time::SystemTime,
    ) -> Result<Vec<SharedRecord<S>>, StoreError> {
        self.store.revoke_family(family, at).await
    }
    async fn exchange(&self, x: &Exchange<S>) -> Result<ExchangeOutcome, StoreError> {
        self.store.exchange(x).await
    }
    async fn record_use(
        &self,
        uses: &[(TokenId, std::time::SystemTime)],
    ) -> Result<(), StoreError> {
        self.store.record_use(uses).await
    }
    async fn purge(&self, cutoff: std::time::SystemTime) -> Result<u64, StoreError> {
        self.store.purge(cutoff).await
    }
}

/// Issue 23, row 3: the per-source cap on live registrations holds when
/// concurrent registrations all read the source's clients before any of
/// them is stored (forced here: their listings wait for each other). The
/// engine stores first and counts after, so at most the cap stay live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_cap_holds_when_registrations_race() {
    const RACING: usize = 15;
    let cap = tower_token_auth::manager::DEFAULT_CLIENTS_PER_SOURCE;
    let backend = Arc::new(ListingsMeet {
        store: MemoryStore::new(),
        parked: std::sync::atomic::AtomicUsize::new(RACING),
        barrier: tokio::sync::Barrier::new(RACING),
    });
    let tokens = TokenManager::new(Arc::clone(&backend));
    let registrations: Vec<_> = (0..RACING)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move {
                tokens
                    .register_client(ClientRegistration::new(
                        vec![REDIRECT.into()],
                        "203.0.113.9",
                    ))
                    .await
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for registration in registrations {
        if let Ok(client) = registration.await.unwrap() {
            admitted.push(client);
        }
    }
    assert!(
        admitted.len() <= cap,
        "{} of {RACING} racing registrations from one source were admitted (cap {cap})",
        admitted.len()
    );
    // Every admitted client is live, and nothing else of the source is.
    for client in &admitted {
        assert!(tokens.client(&client.client_id).await.unwrap().is_some());
    }
    // Once the race is over, the source registers again up to the cap.
    for _ in admitted.len()..cap {
        tokens
            .register_client(ClientRegistration::new(
                vec![REDIRECT.into()],
                "203.0.113.9",
            ))
            .await
            .expect("a free slot");
    }
    assert!(matches!(
        tokens
            .register_client(ClientRegistration::new(
                vec![REDIRECT.into()],
                "203.0.113.9"
            ))
            .await,
        Err(tower_token_auth::oauth::RegistrationError::TooMany)
    ));
}
