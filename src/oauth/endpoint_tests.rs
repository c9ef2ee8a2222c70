//! The token and revocation endpoints, driven as services.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;
use tower_service::Service;

use super::form::MAX_BODY;
use super::*;
use crate::error::StoreError;
use crate::manager::{IssueRequest, TokenManager};
use crate::scope::PayRequestScopes as S;
use crate::store::{MemoryStore, TokenBackend, TokenStore};
use crate::token::{TokenDigest, TokenKind};

async fn post<Svc>(svc: Svc, body: &str) -> (StatusCode, serde_json::Value)
where
    Svc: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    let request = Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = svc.oneshot(request).await.unwrap();
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

#[tokio::test]
async fn refresh_grant_rotates_and_reports_errors() {
    let clock = Arc::new(crate::token::ManualClock::new(SystemTime::now()));
    let store = TokenManager::with_policy(
        MemoryStore::<S>::new(),
        crate::manager::IssuePolicy::default().clock(clock),
    );
    let pair = store
        .issue_pair("agent", "u1", Some(S::BILLING_AGENT))
        .await
        .unwrap();
    let endpoint = TokenEndpoint::new(store.clone());
    let rt = pair.refresh.secret.expose_secret();

    let (status, json) = post(
        endpoint.clone(),
        &format!("grant_type=refresh_token&refresh_token={rt}&scope=billing.read"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["scope"], "billing.read");
    assert_eq!(json["token_type"], "Bearer");
    assert_eq!(json["expires_in"], 15 * 86_400);
    let access = json["access_token"].as_str().unwrap();
    assert!(access.starts_with("pr_at_"));
    assert!(json["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("pr_rt_"));

    // Reuse: invalid_grant, and the family is revoked.
    let (status, json) = post(
        endpoint.clone(),
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let rotated = store
        .find(TokenDigest::of(access).into())
        .await
        .unwrap()
        .unwrap();
    assert!(rotated.is_revoked());

    for (body, error) in [
        ("grant_type=password&username=a", "unsupported_grant_type"),
        ("refresh_token=x", "invalid_request"),
        ("grant_type=refresh_token", "invalid_request"),
        (
            "grant_type=refresh_token&grant_type=refresh_token&refresh_token=x",
            "invalid_request",
        ),
        (
            "grant_type=refresh_token&refresh_token=garbage",
            "invalid_grant",
        ),
        (
            "grant_type=refresh_token&refresh_token=x&scope=billing.delete",
            "invalid_scope",
        ),
    ] {
        let (status, json) = post(endpoint.clone(), body).await;
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(error)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn widening_the_scope_is_invalid_scope() {
    let store = TokenManager::new(MemoryStore::new());
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&scope=billing.write",
        pair.refresh.secret.expose_secret()
    );
    let (status, json) = post(TokenEndpoint::new(store), &body).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
}

#[tokio::test]
async fn wrong_method_and_content_type_are_rejected() {
    let endpoint = TokenEndpoint::new(TokenManager::new(MemoryStore::new()));
    let get = Request::get("/").body(Full::<Bytes>::default()).unwrap();
    let response = endpoint.clone().oneshot(get).await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let json = Request::post("/")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    assert_eq!(
        endpoint.clone().oneshot(json).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let huge = Request::post("/")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(vec![b'a'; MAX_BODY + 1])))
        .unwrap();
    assert_eq!(
        endpoint.oneshot(huge).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn revocation_is_idempotent_and_takes_the_family() {
    let store = TokenManager::new(MemoryStore::new());
    let pair = store.issue_pair("agent", "u1", None).await.unwrap();
    let pat = store
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "ci", "u1"))
        .await
        .unwrap();
    let endpoint = RevocationEndpoint::new(store.clone());
    let body = format!(
        "token={}&token_type_hint=refresh_token",
        pair.refresh.secret.expose_secret()
    );
    assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
    assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
    assert!(store
        .find(pair.access.secret.digest().into())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    let body = format!("token={}", pat.secret.expose_secret());
    assert_eq!(post(endpoint.clone(), &body).await.0, StatusCode::OK);
    assert!(store
        .find(pat.secret.digest().into())
        .await
        .unwrap()
        .unwrap()
        .is_revoked());
    assert_eq!(
        post(endpoint.clone(), "token=unknown").await.0,
        StatusCode::OK
    );
    let (status, json) = post(endpoint, "token_type_hint=access_token").await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

/// A backend that is down: every call fails as unreachable. Counts the
/// lookups that reach it.
#[derive(Default)]
struct Down {
    lookups: std::sync::atomic::AtomicUsize,
}

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("connection refused".into()))
}

#[async_trait::async_trait]
impl TokenStore for Down {
    type Scopes = S;

    async fn find(&self, _: crate::token::Lookup<'_>) -> crate::store::FindResult<S> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        down()
    }

    fn find_now(&self, _: &TokenDigest) -> Option<crate::store::FindResult<S>> {
        None
    }
}

#[async_trait::async_trait]
impl TokenBackend for Down {
    async fn insert(&self, _: &[crate::token::TokenRecord<S>]) -> Result<(), StoreError> {
        down()
    }
    async fn get(
        &self,
        _: crate::token::TokenId,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        down()
    }
    async fn list(&self, _: &str) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
        down()
    }
    async fn update_scopes(
        &self,
        _: crate::token::TokenId,
        _: S,
        _: SystemTime,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        down()
    }
    async fn revoke(
        &self,
        _: crate::token::TokenId,
        _: SystemTime,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        down()
    }
    async fn revoke_family(
        &self,
        _: crate::token::FamilyId,
        _: SystemTime,
    ) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
        down()
    }
    async fn exchange(
        &self,
        _: &crate::store::Exchange<S>,
    ) -> Result<crate::store::ExchangeOutcome, StoreError> {
        down()
    }
    async fn record_use(
        &self,
        _: &[(crate::token::TokenId, SystemTime)],
    ) -> Result<(), StoreError> {
        down()
    }
    async fn purge(&self, _: SystemTime) -> Result<u64, StoreError> {
        down()
    }
}

#[tokio::test]
async fn a_store_that_is_down_is_503_never_200() {
    let format = crate::token::TokenFormat::default();
    let refresh = format.generate(TokenKind::Refresh).unwrap();
    let pat = format.generate(TokenKind::PersonalAccess).unwrap();
    let tokens = TokenManager::new(Down::default());

    let body = format!(
        "grant_type=refresh_token&refresh_token={}",
        refresh.expose_secret()
    );
    let (status, json) = post(TokenEndpoint::new(tokens.clone()), &body).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        )
    );
    assert!(json.get("access_token").is_none());

    // A revocation that did not happen is never reported as done.
    let body = format!("token={}", pat.expose_secret());
    let (status, json) = post(RevocationEndpoint::new(tokens), &body).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        )
    );
}

/// A backend whose reads work and whose writes that end tokens can be
/// made to fail: a database that answers lookups (a replica, a cache in
/// front) but cannot take the revocation or the exchange. Every other
/// call goes to the [`MemoryStore`] inside.
#[derive(Default)]
struct WritesDown {
    inner: MemoryStore<S>,
    failing: std::sync::atomic::AtomicBool,
}

impl WritesDown {
    fn fail(&self) {
        self.failing
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            down()
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for WritesDown {
    type Scopes = S;

    async fn find(&self, key: crate::token::Lookup<'_>) -> crate::store::FindResult<S> {
        self.inner.find(key).await
    }

    fn find_now(&self, digest: &TokenDigest) -> Option<crate::store::FindResult<S>> {
        self.inner.find_now(digest)
    }
}

#[async_trait::async_trait]
impl TokenBackend for WritesDown {
    async fn insert(&self, records: &[crate::token::TokenRecord<S>]) -> Result<(), StoreError> {
        self.inner.insert(records).await
    }
    async fn get(
        &self,
        id: crate::token::TokenId,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self, owner: &str) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
        self.inner.list(owner).await
    }
    async fn update_scopes(
        &self,
        id: crate::token::TokenId,
        scopes: S,
        now: SystemTime,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        self.inner.update_scopes(id, scopes, now).await
    }
    async fn revoke(
        &self,
        id: crate::token::TokenId,
        at: SystemTime,
    ) -> Result<Option<crate::store::SharedRecord<S>>, StoreError> {
        self.check()?;
        self.inner.revoke(id, at).await
    }
    async fn revoke_family(
        &self,
        family: crate::token::FamilyId,
        at: SystemTime,
    ) -> Result<Vec<crate::store::SharedRecord<S>>, StoreError> {
        self.check()?;
        self.inner.revoke_family(family, at).await
    }
    async fn exchange(
        &self,
        exchange: &crate::store::Exchange<S>,
    ) -> Result<crate::store::ExchangeOutcome, StoreError> {
        self.check()?;
        self.inner.exchange(exchange).await
    }
    async fn record_use(
        &self,
        uses: &[(crate::token::TokenId, SystemTime)],
    ) -> Result<(), StoreError> {
        self.inner.record_use(uses).await
    }
    async fn purge(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        self.inner.purge(cutoff).await
    }
}

/// The lookup finds the token, the write that would end or exchange it
/// fails: the client is told to try again (503), never that it worked
/// (200), and never that the grant is bad (400) when the family it
/// should have revoked is still live.
#[tokio::test]
async fn a_failed_revoke_or_exchange_after_a_good_lookup_is_503_never_200() {
    let tokens = TokenManager::new(WritesDown::default());
    let unavailable = (
        StatusCode::SERVICE_UNAVAILABLE,
        Some("temporarily_unavailable"),
    );
    let grant = |rt: &str| format!("grant_type=refresh_token&refresh_token={rt}");

    // One grant with a spent refresh token (its replay must revoke the
    // family), one untouched, and a personal access token.
    let replayed = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let replayed_rt = replayed.refresh.secret.expose_secret();
    let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(replayed_rt)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let live = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let pat = tokens
        .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "u1"))
        .await
        .unwrap();
    tokens.backend().fail();

    // The exchange fails.
    let live_rt = live.refresh.secret.expose_secret();
    let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(live_rt)).await;
    assert_eq!((status, json["error"].as_str()), unavailable, "{json}");
    assert!(json.get("access_token").is_none());
    // The replay's family revocation fails.
    let (status, json) = post(TokenEndpoint::new(tokens.clone()), &grant(replayed_rt)).await;
    assert_eq!((status, json["error"].as_str()), unavailable, "{json}");

    // RFC 7009: revoke (a personal access token) and revoke_family (a
    // refresh token, an access token) fail.
    for token in [
        pat.secret.expose_secret(),
        live_rt,
        live.access.secret.expose_secret(),
    ] {
        let body = format!("token={token}");
        let (status, json) = post(RevocationEndpoint::new(tokens.clone()), &body).await;
        assert_eq!((status, json["error"].as_str()), unavailable, "{json}");
    }
    // None of it happened: every token is still live.
    for token in [&pat, &live.refresh, &live.access, &replayed.access] {
        let record = tokens
            .find(token.record.digest.into())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !record.is_revoked() && !record.is_spent(),
            "{}",
            record.name
        );
    }
}

#[tokio::test]
async fn rfc_8707_2_resource_narrows_the_audience_and_never_widens_it() {
    let api = "https://api.example.com/";
    let billing = "https://billing.example.com/";
    let tokens = TokenManager::with_policy(
        MemoryStore::<S>::new(),
        crate::manager::IssuePolicy::default().default_audience([api, billing]),
    );
    let pair = tokens.issue_pair("agent", "u1", None).await.unwrap();
    let rt = pair.refresh.secret.expose_secret();
    let endpoint = TokenEndpoint::new(tokens.clone());

    let other = "https%3A%2F%2Fother.example%2F";
    let (status, json) = post(
        endpoint.clone(),
        &format!("grant_type=refresh_token&refresh_token={rt}&resource={other}"),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    let (status, json) = post(
        endpoint.clone(),
        &format!("grant_type=refresh_token&refresh_token={rt}&resource=relative%2Fpath"),
    )
    .await;
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );

    let (status, json) = post(
        endpoint,
        &format!(
            "grant_type=refresh_token&refresh_token={rt}&resource=https%3A%2F%2Fapi.example.com%2F"
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let access = TokenDigest::of(json["access_token"].as_str().unwrap());
    let refresh = TokenDigest::of(json["refresh_token"].as_str().unwrap());
    assert_eq!(
        tokens.find(access.into()).await.unwrap().unwrap().audience,
        [api]
    );
    assert_eq!(
        tokens.find(refresh.into()).await.unwrap().unwrap().audience,
        [api, billing],
        "the grant keeps its whole audience"
    );
}

/// RFC 7009 §2.2 answers 200 for an invalid token; one that is not
/// even well-formed (prefix, kind, length, checksum) is answered so
/// without asking the store, as the bearer middleware does.
#[tokio::test]
async fn revoking_garbage_answers_200_without_a_store_call() {
    let tokens = TokenManager::new(Down::default());
    let endpoint = RevocationEndpoint::new(tokens.clone());
    let format = crate::token::TokenFormat::default();
    let real = format.generate(TokenKind::Refresh).unwrap();
    let real = real.expose_secret();
    let wrong_checksum = format!(
        "{}{}",
        &real[..real.len() - 1],
        if real.ends_with('0') { '1' } else { '0' }
    );
    let other_service = crate::token::TokenFormat::new("xx")
        .unwrap()
        .generate(TokenKind::Refresh)
        .unwrap();
    for garbage in [
        "garbage".to_owned(),
        "pr_rt_".to_owned(),
        wrong_checksum,
        real.to_uppercase(),
        format!("{real}x"),
        other_service.expose_secret().to_owned(),
        "x".repeat(4000),
    ] {
        let (status, _) = post(endpoint.clone(), &format!("token={garbage}")).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            &garbage[..garbage.len().min(40)]
        );
    }
    let lookups = || {
        tokens
            .backend()
            .lookups
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(lookups(), 0, "garbage reached the store");
    // A well-formed token is looked up (here: the store is down).
    let (status, json) = post(endpoint, &format!("token={real}")).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        )
    );
    assert_eq!(lookups(), 1);
}
