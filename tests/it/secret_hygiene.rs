//! Secret hygiene: where a token's plaintext may be, and where it must not.
//!
//! - Logs: every `tracing` event at TRACE, through a token's whole life
//!   (issue, use, refresh, reuse of a spent refresh token, revocation) and
//!   every rejection, never contains a token, its random part or its
//!   digest. The log is the test binary's (see `support::logs`): the test
//!   finds what it logged by its span, and no token may be anywhere in it.
//! - Headers: `TokenAuth` marks `Authorization` sensitive before the inner
//!   service runs, so `{:?}` of the headers there (a handler, a trace
//!   layer) shows `Sensitive`, not the token.
//! - Memory: a dropped `TokenSecret` leaves zeros where its plaintext was;
//!   `TokenSecret` is not `Copy`, has no `Display` and no `Serialize`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tower_token_auth::audit::Audit;
use tower_token_auth::manager::UsageTracker;
use tower_token_auth::manager::{IssuePolicy, IssueRequest, TokenManager};
use tower_token_auth::oauth::{RevocationEndpoint, TokenEndpoint};
use tower_token_auth::peer::Tls;
use tower_token_auth::peer::{PeerAddr, Peers};
use tower_token_auth::require_https::RequireHttpsLayer;
use tower_token_auth::token::{ManualClock, TokenFormat, TokenKind, TokenSecret};
use tower_token_auth::{MemoryStore, PayRequestScopes as S, RequireScopeLayer, TokenAuthLayer};
use tracing::{Instrument, Level};

use crate::support::*;

// ---- the lifecycle ----

#[cfg(feature = "throttle")]
const ATTACKER: [u8; 4] = [203, 0, 113, 66];
const CLIENT: [u8; 4] = [198, 51, 100, 10];

type Req = Request<Full<Bytes>>;

/// A request over TLS from `CLIENT`, as the layer requires.
fn secure(mut request: Req) -> Req {
    request.extensions_mut().insert(Tls);
    request
        .extensions_mut()
        .insert(PeerAddr(SocketAddr::from((CLIENT, 50_000))));
    request
}

fn form(body: String) -> Req {
    Request::post("/oauth")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Status and JSON body of an endpoint's answer.
async fn answer(response: Response<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json)
}

/// The handler behind the layers: logs the request's headers at TRACE
/// with `Debug`, as a careless handler would.
async fn handler(request: Req) -> Result<Response<Full<Bytes>>, Infallible> {
    tracing::trace!(headers = ?request.headers(), uri = %request.uri(), "handler sees the request");
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_token_lifecycle_at_trace_never_logs_a_token() {
    // The subscriber first: a span made before it would record nothing.
    let logs = logs();
    async {
        let clock = Arc::new(ManualClock::new(start_time()));
        let audit = Audit::new();
        let tokens = TokenManager::with_policy(
            MemoryStore::<S>::new(),
            IssuePolicy::default()
                .clock(clock.clone())
                .audit(audit.clone()),
        );
        let (tracker, worker) = UsageTracker::new(tokens.clone(), Duration::from_millis(1));
        let usage = tokio::spawn(worker.run());
        let auth = TokenAuthLayer::new(tokens.clone())
            .audit(audit.clone())
            .track_usage(tracker);
        let https = RequireHttpsLayer::new(Peers::new()).audit(audit.clone());
        let throttle = tower_token_auth::throttle::ThrottleLayer::per_minute(
            std::num::NonZeroU32::new(20).unwrap(),
        )
        .audit(audit);
        // A trace layer that records every header, inside the authentication
        // layer as a service would put it behind its middleware.
        let api = ServiceBuilder::new()
            .layer(https)
            .layer(throttle)
            .layer(auth.clone())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(
                        DefaultMakeSpan::new()
                            .level(Level::TRACE)
                            .include_headers(true),
                    )
                    .on_request(DefaultOnRequest::new().level(Level::TRACE))
                    .on_response(
                        DefaultOnResponse::new()
                            .level(Level::TRACE)
                            .include_headers(true),
                    ),
            )
            .layer(auth.require(S::BILLING_READ))
            .service(service_fn(handler));
        let writer_only = ServiceBuilder::new()
            .layer(auth.clone())
            .layer(auth.require(S::BILLING_WRITE))
            .service(service_fn(handler));
        let token_endpoint = TokenEndpoint::new(tokens.clone());
        let revocation_endpoint = RevocationEndpoint::new(tokens.clone());
        let call = |request: Req| {
            let api = api.clone();
            async move { api.oneshot(request).await.unwrap().status().as_u16() }
        };
        let mut secrets: Vec<TokenSecret> = Vec::new();

        // Issue.
        let pat = tokens
            .issue(IssueRequest::new(TokenKind::PersonalAccess, "CI", "user-1").scopes(S::BILLING_READ))
            .await
            .unwrap();
        let pair = tokens
            .issue_pair("MCP Billing Agent", "user-1", None)
            .await
            .unwrap();
        let short = tokens
            .issue(
                IssueRequest::new(TokenKind::Access, "short-lived", "user-1")
                    .lifetime(Duration::from_secs(1)),
            )
            .await
            .unwrap();
        tracing::trace!(?pat, ?pair, "issued (Debug of the issued tokens)");
        let listed = tokens.list("user-1").await.unwrap();
        tracing::trace!(?listed, "listing");

        // Use.
        assert_eq!(call(secure(bearer(pat.secret.expose_secret()))).await, 200);
        assert_eq!(
            call(secure(bearer(pair.access.secret.expose_secret()))).await,
            200
        );

        // Refresh: rotate, use the new access token.
        let refresh = pair.refresh.secret.expose_secret();
        let (status, json) = answer(
            token_endpoint
                .clone()
                .oneshot(form(format!(
                    "grant_type=refresh_token&refresh_token={refresh}"
                )))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{json}");
        let new_access = TokenSecret::new(json["access_token"].as_str().unwrap().to_owned());
        let new_refresh = TokenSecret::new(json["refresh_token"].as_str().unwrap().to_owned());
        assert_eq!(call(secure(bearer(new_access.expose_secret()))).await, 200);

        // Reuse of the spent refresh token: the family is revoked.
        let (status, json) = answer(
            token_endpoint
                .clone()
                .oneshot(form(format!(
                    "grant_type=refresh_token&refresh_token={refresh}"
                )))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status.as_u16(), json["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert_eq!(call(secure(bearer(new_access.expose_secret()))).await, 401);
        let again = format!(
            "grant_type=refresh_token&refresh_token={}",
            new_refresh.expose_secret()
        );
        let (status, _) = answer(token_endpoint.clone().oneshot(form(again)).await.unwrap()).await;
        assert_eq!(status, 400);

        // Revoke through RFC 7009, then use.
        let body = format!(
            "token={}&token_type_hint=access_token",
            pat.secret.expose_secret()
        );
        let (status, _) = answer(
            revocation_endpoint
                .clone()
                .oneshot(form(body))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(call(secure(bearer(pat.secret.expose_secret()))).await, 401);

        // Every other rejection of the middleware.
        let live = tokens
            .issue(
                IssueRequest::new(TokenKind::PersonalAccess, "live", "user-1").scopes(S::BILLING_READ),
            )
            .await
            .unwrap();
        let live_token = live.secret.expose_secret();
        let unknown = TokenFormat::default()
            .generate(TokenKind::PersonalAccess)
            .unwrap();
        let mut typo = live_token.to_owned();
        typo.replace_range(
            typo.len() - 1..,
            if typo.ends_with('0') { "1" } else { "0" },
        );
        let typo = TokenSecret::new(typo);
        clock.advance(Duration::from_secs(2));
        let mut twice = secure(bearer(live_token));
        twice.headers_mut().append(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {live_token}")).unwrap(),
        );
        let basic = {
            let mut r = secure(request("/v1/invoices"));
            r.headers_mut().insert(
                AUTHORIZATION,
                HeaderValue::from_static("Basic ZGVtbzpwYXNz"),
            );
            r
        };
        let grammar = secure(with_authorization(
            HeaderValue::from_str(&format!("Bearer\t{live_token}")).unwrap(),
        ));
        let mut both = secure(bearer(live_token));
        *both.uri_mut() = format!("/v1/invoices?access_token={live_token}")
            .parse()
            .unwrap();
        for (what, request, status) in [
            ("no credentials", secure(request("/v1/invoices")), 401),
            ("another scheme", basic, 401),
            ("bad grammar", grammar, 401),
            ("bad checksum", secure(bearer(typo.expose_secret())), 401),
            (
                "unknown token",
                secure(bearer(unknown.expose_secret())),
                401,
            ),
            (
                "refresh token as a credential",
                secure(bearer(new_refresh.expose_secret())),
                401,
            ),
            ("expired", secure(bearer(short.secret.expose_secret())), 401),
            ("revoked", secure(bearer(pat.secret.expose_secret())), 401),
            ("two headers", twice, 400),
            (
                "token in the URL",
                secure(request(&format!("/v1/invoices?access_token={live_token}"))),
                400,
            ),
            ("header and URL", both, 400),
            ("plain HTTP", bearer(live_token), 403),
        ] {
            assert_eq!(call(request).await, status, "{what}");
        }
        let forbidden = writer_only
            .clone()
            .oneshot(secure(bearer(live_token)))
            .await
            .unwrap();
        assert_eq!(forbidden.status(), 403);
        #[cfg(feature = "throttle")]
        {
            let mut last = 0;
            for _ in 0..30 {
                let mut r = bearer(unknown.expose_secret());
                r.extensions_mut().insert(Tls);
                r.extensions_mut()
                    .insert(PeerAddr(SocketAddr::from((ATTACKER, 1))));
                last = call(r).await;
            }
            assert_eq!(last, 429);
        }
        let down = ServiceBuilder::new()
            .layer(crate::support::layer_over(FailingStore::new(Failure::Unavailable)))
            .layer(RequireScopeLayer::new(S::BILLING_READ))
            .service(service_fn(handler));
        assert_eq!(
            down.oneshot(bearer(live_token)).await.unwrap().status(),
            503
        );

        // Every error of the endpoints that reads a token.
        for body in [
            format!(
                "grant_type=refresh_token&refresh_token={}",
                typo.expose_secret()
            ),
            format!(
                "grant_type=refresh_token&refresh_token={}",
                unknown.expose_secret()
            ),
            format!("grant_type=refresh_token&refresh_token={live_token}"),
            format!("grant_type=password&refresh_token={live_token}"),
            format!("grant_type=refresh_token&refresh_token={live_token}&scope=billing.everything"),
            format!("grant_type=refresh_token&refresh_token={live_token}&refresh_token={live_token}"),
        ] {
            let (status, json) =
                answer(token_endpoint.clone().oneshot(form(body)).await.unwrap()).await;
            assert_eq!(status, 400, "{json}");
        }
        let body = format!("token={live_token}&token={live_token}");
        let (status, _) = answer(
            revocation_endpoint
                .clone()
                .oneshot(form(body))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400);

        // Regenerate, list again, let the usage worker write.
        let regenerated = tokens.regenerate(live.record.id).await.unwrap().unwrap();
        tracing::trace!(?regenerated, listed = ?tokens.list("user-1").await.unwrap(), "after regeneration");
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop((api, writer_only, auth));
        usage.abort();

        secrets.extend([
            pat.secret.clone(),
            pair.access.secret.clone(),
            pair.refresh.secret.clone(),
            short.secret.clone(),
            new_access,
            new_refresh,
            live.secret.clone(),
            unknown,
            typo,
            regenerated.secret.clone(),
        ]);
        let text = logs.of("secret_hygiene");
        for (what, needle) in [
            (
                "a trace layer span with headers",
                r#""authorization": Sensitive"#.to_owned(),
            ),
            (
                "the handler's headers",
                "handler sees the request".to_owned(),
            ),
            ("issuing", "token_created".to_owned()),
            ("rotation", "refresh_rotated".to_owned()),
            ("reuse", "family_revoked_on_reuse".to_owned()),
            ("revocation", "token_revoked".to_owned()),
            ("regeneration", "token_regenerated".to_owned()),
            ("rejections", "authentication_rejected".to_owned()),
            ("scope denial", "scope_denied".to_owned()),
            ("https", "https_required".to_owned()),
            ("a store outage", "connection refused".to_owned()),
            ("a token id", live.record.id.to_string()),
            #[cfg(feature = "throttle")]
            ("throttling", "too_many_requests".to_owned()),
        ] {
            assert!(
                text.contains(&needle),
                "the log shows {what} ({needle:?}):\n{text}"
            );
        }
        let secrets: Vec<&TokenSecret> = secrets.iter().collect();
        let everything = logs.text();
        assert_redacted("TRACE log", &everything, &secrets);
        println!(
            "{} bytes of TRACE log ({} of this test), no token in them",
            everything.len(),
            text.len()
        );
    }
    .instrument(test_span("secret_hygiene"))
    .await;
}

// ---- the Authorization header inside the stack ----

/// What the inner service saw of the `Authorization` header: whether it is
/// marked sensitive, and `{:?}` of all headers.
type Seen = Arc<Mutex<Vec<(Option<bool>, String)>>>;

fn recording(
    seen: Seen,
) -> impl tower::Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
       + Clone {
    service_fn(move |request: Req| {
        let seen = Arc::clone(&seen);
        async move {
            let sensitive = request
                .headers()
                .get(AUTHORIZATION)
                .map(HeaderValue::is_sensitive);
            seen.lock()
                .unwrap()
                .push((sensitive, format!("{:?}", request.headers())));
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

#[tokio::test]
async fn the_inner_service_sees_the_authorization_header_marked_sensitive() {
    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let token = issued.secret.expose_secret();
    let seen = Seen::default();
    let required = ServiceBuilder::new()
        .layer(fixture.layer())
        .service(recording(Arc::clone(&seen)));
    let optional = ServiceBuilder::new()
        .layer(fixture.layer().optional())
        .service(recording(Arc::clone(&seen)));

    assert_eq!(required.oneshot(bearer(token)).await.unwrap().status(), 200);
    // Optional authentication lets other schemes through: marked too.
    let mut basic = request("/v1/invoices");
    basic.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic ZGVtbzpzM2NyZXQ="),
    );
    assert_eq!(optional.clone().oneshot(basic).await.unwrap().status(), 200);
    assert_eq!(
        optional
            .oneshot(request("/v1/invoices"))
            .await
            .unwrap()
            .status(),
        200
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].0, Some(true), "the bearer credential is sensitive");
    assert!(
        seen[0].1.contains(r#""authorization": Sensitive"#),
        "{}",
        seen[0].1
    );
    assert_redacted("Debug of the headers", &seen[0].1, &[&issued.secret]);
    assert_eq!(seen[1].0, Some(true), "a Basic credential is sensitive too");
    assert!(!seen[1].1.contains("ZGVtbzpzM2NyZXQ="), "{}", seen[1].1);
    assert_eq!(seen[2].0, None);
}

/// The same inside an axum handler, behind `route_layer`.
#[cfg(feature = "axum")]
#[tokio::test]
async fn an_axum_handler_sees_the_authorization_header_marked_sensitive() {
    use axum::routing::get;

    let fixture = Fixture::new();
    let issued = fixture.pat(S::BILLING_READ).await;
    let router = axum::Router::new()
        .route(
            "/v1/invoices",
            get(|headers: http::HeaderMap| async move {
                let sensitive = headers[AUTHORIZATION].is_sensitive();
                format!("sensitive={sensitive} {headers:?}")
            }),
        )
        .route_layer(fixture.layer());
    let request = Request::get("/v1/invoices")
        .header(
            AUTHORIZATION,
            format!("Bearer {}", issued.secret.expose_secret()),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(body.starts_with("sensitive=true "), "{body}");
    assert!(body.contains(r#""authorization": Sensitive"#), "{body}");
    assert_redacted(
        "the handler's Debug of the headers",
        &body,
        &[&issued.secret],
    );
}

// ---- memory ----

/// Compiles only when `$ty` does not implement the trait: with an impl,
/// the item below is ambiguous between the two blanket impls.
macro_rules! assert_not_impl {
    ($ty:ty: $($bound:tt)+) => {{
        trait AmbiguousIfImpl<A> {
            fn item() {}
        }
        impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
        struct Implemented;
        impl<T: ?Sized + $($bound)+> AmbiguousIfImpl<Implemented> for T {}
        let _ = <$ty as AmbiguousIfImpl<_>>::item;
    }};
}

#[test]
fn a_secret_cannot_be_copied_displayed_or_serialized() {
    assert_not_impl!(TokenSecret: Copy);
    assert_not_impl!(TokenSecret: std::fmt::Display);
    assert_not_impl!(TokenSecret: serde::Serialize);
    assert!(
        std::mem::needs_drop::<TokenSecret>(),
        "dropping it runs code"
    );
}

/// Reads freed memory through `/proc/self/mem` (no `unsafe`): where a
/// dropped `TokenSecret` kept its plaintext, no 8 bytes of it are left,
/// while a plain `String` with the same text leaves it behind (the
/// control that shows the method sees freed memory at all). The first 16
/// bytes of a freed block may hold the allocator's own bookkeeping.
#[cfg(target_os = "linux")]
#[test]
fn a_dropped_secret_leaves_no_plaintext_in_memory() {
    use std::os::unix::fs::FileExt;

    let mem = std::fs::File::open("/proc/self/mem").expect("/proc/self/mem is readable");
    let leaves_behind =
        |residue: &[u8], plain: &[u8]| plain.windows(8).any(|w| residue.windows(8).any(|r| r == w));
    let format = TokenFormat::default();

    let secret = format.generate(TokenKind::PersonalAccess).unwrap();
    let clone = secret.clone();
    let plain = secret.expose_secret().as_bytes().to_vec();
    let at = [
        secret.expose_secret().as_ptr() as u64,
        clone.expose_secret().as_ptr() as u64,
    ];
    assert_ne!(at[0], at[1], "a clone has a buffer of its own");
    let mut residue = [vec![0u8; plain.len()], vec![0u8; plain.len()]];
    drop(clone);
    mem.read_exact_at(&mut residue[1], at[1]).unwrap();
    assert_eq!(
        secret.expose_secret().as_bytes(),
        plain,
        "dropping a clone leaves the original whole"
    );
    drop(secret);
    mem.read_exact_at(&mut residue[0], at[0]).unwrap();
    for residue in &residue {
        assert!(
            !leaves_behind(residue, &plain),
            "plaintext left in freed memory: {residue:?}"
        );
        assert!(
            residue[16..].iter().all(|b| *b == 0),
            "zeros after the allocator's header: {residue:?}"
        );
    }

    let control = String::from_utf8(plain.clone()).unwrap();
    let at = control.as_ptr() as u64;
    let mut residue = vec![0u8; plain.len()];
    drop(control);
    mem.read_exact_at(&mut residue, at).unwrap();
    assert!(
        leaves_behind(&residue, &plain),
        "a plain String leaves its text behind: the method works"
    );
}
