//! Revocation under concurrency: many tasks authenticate through the
//! `TokenAuthLayer` stack while others revoke the same tokens.
//!
//! Every attempt records the instant it started and whether it was
//! accepted; every revocation records the instant its call returned. The
//! guarantee: once `revoke` has returned, no attempt that starts afterwards
//! is accepted with that token, on the instance that revoked it. Another
//! instance sharing the PostgreSQL database learns of it by
//! `LISTEN/NOTIFY`, so there the bound is the listener's latency (asserted
//! under a second, and the largest lag observed is printed). Tokens never
//! revoked must be accepted throughout, and everything must finish in time
//! (no deadlock).
//!
//! `cargo test -p tower-token-auth-sqlx --all-features --test it
//! revocation_stress -- --nocapture` prints the counts. The in-memory
//! store runs the same scenario first, as the baseline of one instance.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::util::BoxCloneService;
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_token_auth::body::ResponseBody;
use tower_token_auth::manager::{IssueRequest, TokenManager};
use tower_token_auth::oauth::RevocationEndpoint;
use tower_token_auth::scope::PayRequestScopes as S;
use tower_token_auth::store::{MemoryStore, TokenBackend};
use tower_token_auth::token::{TokenId, TokenKind};
use tower_token_auth::TokenAuthLayer;

/// How long the request tasks run.
const RUN_FOR: Duration = Duration::from_secs(2);

/// Tasks sending requests, and tasks revoking.
const REQUEST_TASKS: usize = 16;
const REVOKE_TASKS: usize = 4;

/// The whole scenario must end within this (else: a deadlock).
const DEADLINE: Duration = Duration::from_secs(20);

type App = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Full<Bytes>>>, Infallible>;

/// A service behind `TokenAuthLayer` over the manager of one instance.
fn app<B: TokenBackend<Scopes = S>>(tokens: TokenManager<B>) -> App {
    BoxCloneService::new(
        ServiceBuilder::new()
            .layer(TokenAuthLayer::new(tokens))
            .service(service_fn(|_req: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("invoices"))))
            })),
    )
}

fn bearer(token: &str) -> Request<Full<Bytes>> {
    Request::get("/v1/invoices")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::default())
        .unwrap()
}

/// xorshift64: reproducible, cheap choices.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

// ---- the scenario ----

/// A token under test and how it gets revoked.
struct Target {
    /// The API credential the request tasks send.
    secret: String,
    revoke: Revoke,
}

enum Revoke {
    /// Never revoked: must be accepted throughout.
    Never,
    /// `TokenManager::revoke` with its id.
    ById(TokenId),
    /// RFC 7009 through `RevocationEndpoint`, with this token (the access
    /// token itself, or its family's refresh token).
    Endpoint(String),
}

/// One authentication attempt.
#[derive(Clone, Copy)]
struct Attempt {
    target: usize,
    instance: usize,
    start: Instant,
    end: Instant,
    status: StatusCode,
}

/// When a target's revocation was called and when the call returned.
#[derive(Clone, Copy)]
struct Revocation {
    called: Instant,
    returned: Instant,
}

/// Revokes one target; returns when the revocation call has returned.
type RevokeFn = Arc<dyn Fn(&Revoke) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs request tasks over every instance and revoke tasks over every
/// revocable target, for [`RUN_FOR`].
async fn run(
    apps: Vec<App>,
    targets: Vec<Target>,
    revoke: RevokeFn,
) -> (Vec<Attempt>, Vec<Option<Revocation>>) {
    let targets = Arc::new(targets);
    let revocations = Arc::new(Mutex::new(vec![None; targets.len()]));
    let started = Instant::now();
    let stop = started + RUN_FOR;

    let mut requesters = Vec::new();
    for task in 0..REQUEST_TASKS {
        let (apps, targets) = (apps.clone(), Arc::clone(&targets));
        requesters.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1);
            let mut attempts = Vec::new();
            while Instant::now() < stop {
                let target = (next(&mut seed) % targets.len() as u64) as usize;
                let instance = (next(&mut seed) % apps.len() as u64) as usize;
                let app = apps[instance].clone();
                let request = bearer(&targets[target].secret);
                let start = Instant::now();
                let response = app.oneshot(request).await.unwrap();
                attempts.push(Attempt {
                    target,
                    instance,
                    start,
                    end: Instant::now(),
                    status: response.status(),
                });
                tokio::task::yield_now().await;
            }
            attempts
        }));
    }

    let mut revokers = Vec::new();
    for task in 0..REVOKE_TASKS {
        let (targets, revoke) = (Arc::clone(&targets), Arc::clone(&revoke));
        let revocations = Arc::clone(&revocations);
        revokers.push(tokio::spawn(async move {
            let mut seed = 0xD1B5_4A32_D192_ED03 ^ (task as u64 + 1);
            let mine: Vec<usize> = (0..targets.len())
                .filter(|i| i % REVOKE_TASKS == task)
                .filter(|i| !matches!(targets[*i].revoke, Revoke::Never))
                .collect();
            // Spread the revocations over the middle of the run.
            let slot = RUN_FOR.mul_f64(0.8) / u32::try_from(mine.len().max(1)).unwrap();
            tokio::time::sleep(RUN_FOR / 10).await;
            for target in mine {
                let jitter = next(&mut seed) % u64::try_from(slot.as_micros()).unwrap().max(1);
                tokio::time::sleep(Duration::from_micros(jitter)).await;
                let called = Instant::now();
                revoke(&targets[target].revoke).await;
                let returned = Instant::now();
                revocations.lock().unwrap()[target] = Some(Revocation { called, returned });
            }
        }));
    }

    let mut attempts = Vec::new();
    for requester in requesters {
        attempts.extend(requester.await.expect("a request task panicked"));
    }
    for revoker in revokers {
        revoker.await.expect("a revoke task panicked");
    }
    let revocations = revocations.lock().unwrap().clone();
    (attempts, revocations)
}

/// What one instance saw.
#[derive(Debug, Default)]
struct Figures {
    attempts: usize,
    accepted: usize,
    refused: usize,
    /// Accepted while the revocation call was running.
    accepted_during_revoke: usize,
    /// Accepted although they started after the revocation returned.
    accepted_after_revoke: usize,
    /// The latest start of such an attempt, after the revocation returned.
    max_lag: Duration,
}

/// Counts per instance, and checks what holds on every instance: only
/// 200 and 401, every never-revoked token accepted, nothing refused before
/// its revocation was called, every revocable token revoked.
fn figures(
    instances: usize,
    planned: &[bool],
    attempts: &[Attempt],
    revocations: &[Option<Revocation>],
) -> Vec<Figures> {
    for (i, planned) in planned.iter().enumerate() {
        assert_eq!(
            revocations[i].is_some(),
            *planned,
            "target {i} revoked as planned"
        );
    }
    let mut figures: Vec<Figures> = (0..instances).map(|_| Figures::default()).collect();
    for attempt in attempts {
        let f = &mut figures[attempt.instance];
        f.attempts += 1;
        let revocation = revocations[attempt.target];
        match attempt.status {
            StatusCode::OK => {
                f.accepted += 1;
                if let Some(r) = revocation {
                    if attempt.start >= r.returned {
                        f.accepted_after_revoke += 1;
                        f.max_lag = f.max_lag.max(attempt.start - r.returned);
                    } else if attempt.start >= r.called {
                        f.accepted_during_revoke += 1;
                    }
                }
            }
            StatusCode::UNAUTHORIZED => {
                f.refused += 1;
                let r = revocation.unwrap_or_else(|| {
                    panic!("target {} is never revoked, yet refused", attempt.target)
                });
                assert!(
                    attempt.end >= r.called,
                    "target {} refused before its revocation was called",
                    attempt.target
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    for f in &figures {
        assert!(f.attempts > 100, "too few attempts to mean anything: {f:?}");
    }
    figures
}

/// Issues `count` targets through `tokens`: a third personal access tokens
/// revoked by id, a third access tokens revoked through the endpoint with
/// themselves, a third access tokens revoked through the endpoint with
/// their refresh token; and `kept` tokens never revoked.
async fn targets<B: TokenBackend<Scopes = S>>(
    tokens: &TokenManager<B>,
    count: usize,
    kept: usize,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for i in 0..count {
        let target = match i % 3 {
            0 => {
                let issued = tokens
                    .issue(IssueRequest::new(
                        TokenKind::PersonalAccess,
                        "stress",
                        "user-1",
                    ))
                    .await
                    .unwrap();
                Target {
                    secret: issued.secret.expose_secret().to_owned(),
                    revoke: Revoke::ById(issued.record.id),
                }
            }
            n => {
                let pair = tokens.issue_pair("stress", "user-1", None).await.unwrap();
                let access = pair.access.secret.expose_secret().to_owned();
                let by = if n == 1 {
                    access.clone()
                } else {
                    pair.refresh.secret.expose_secret().to_owned()
                };
                Target {
                    secret: access,
                    revoke: Revoke::Endpoint(by),
                }
            }
        };
        targets.push(target);
    }
    for _ in 0..kept {
        let issued = tokens
            .issue(IssueRequest::new(
                TokenKind::PersonalAccess,
                "kept",
                "user-1",
            ))
            .await
            .unwrap();
        targets.push(Target {
            secret: issued.secret.expose_secret().to_owned(),
            revoke: Revoke::Never,
        });
    }
    targets
}

/// Which targets are to be revoked.
fn planned(targets: &[Target]) -> Vec<bool> {
    targets
        .iter()
        .map(|t| !matches!(t.revoke, Revoke::Never))
        .collect()
}

/// Revokes through `tokens` (by id) and `RevocationEndpoint` over it.
fn revoke_through<B: TokenBackend<Scopes = S>>(tokens: TokenManager<B>) -> RevokeFn {
    let endpoint = RevocationEndpoint::new(tokens.clone());
    Arc::new(move |revoke: &Revoke| {
        let tokens = tokens.clone();
        let endpoint = endpoint.clone();
        let revoke = match revoke {
            Revoke::Never => unreachable!("never revoked"),
            Revoke::ById(id) => Ok(*id),
            Revoke::Endpoint(token) => Err(token.clone()),
        };
        Box::pin(async move {
            match revoke {
                Ok(id) => assert!(tokens.revoke(id).await.unwrap(), "revoked now"),
                Err(token) => {
                    let request = Request::post("/oauth/revoke")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Full::new(Bytes::from(format!("token={token}"))))
                        .unwrap();
                    let response = endpoint.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                }
            }
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_starting_after_revoke_returned_is_accepted_memory_store() {
    tokio::time::timeout(DEADLINE, async {
        let tokens = TokenManager::new(MemoryStore::new());
        let targets = targets(&tokens, 48, 16).await;
        let secrets: Vec<String> = targets.iter().map(|t| t.secret.clone()).collect();
        let planned = planned(&targets);
        let apps = vec![app(tokens.clone())];
        let (attempts, revocations) = run(apps.clone(), targets, revoke_through(tokens)).await;
        let figures = figures(1, &planned, &attempts, &revocations);
        let f = &figures[0];
        println!(
            "memory store: {} attempts in {RUN_FOR:?} by {REQUEST_TASKS} tasks, {} accepted, \
             {} refused; {} accepted while their revoke call was running, {} after it returned",
            f.attempts, f.accepted, f.refused, f.accepted_during_revoke, f.accepted_after_revoke
        );
        assert_eq!(
            f.accepted_after_revoke, 0,
            "accepted up to {:?} after revoke returned",
            f.max_lag
        );
        assert!(f.refused > 0 && f.accepted > 0, "{f:?}");
        for (secret, r) in secrets.iter().zip(&revocations) {
            let status = apps[0]
                .clone()
                .oneshot(bearer(secret))
                .await
                .unwrap()
                .status();
            let want = if r.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            assert_eq!(status, want);
        }
    })
    .await
    .expect("no deadlock: the scenario finishes in time");
}

/// Two instances over one PostgreSQL database, each with a cache that its
/// revocation listener keeps current.
#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use crate::pg;

    /// How late another instance may still accept a revoked token.
    const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

    /// Long enough that only revocations make a cache forget.
    const LONG_TTL: Duration = Duration::from_secs(600);

    /// Sends `token` to `app` until it is refused, for at most `bound`.
    async fn refused_within(app: &App, token: &str, bound: Duration) {
        let started = Instant::now();
        loop {
            let status = app.clone().oneshot(bearer(token)).await.unwrap().status();
            if status == StatusCode::UNAUTHORIZED {
                return;
            }
            assert!(started.elapsed() < bound, "still {status} after {bound:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_request_starting_after_revoke_returned_is_accepted_postgres_and_cache() {
        let db = pg::database().await;
        tokio::time::timeout(DEADLINE, async {
            let pg::TwoInstances {
                cache_a,
                cache_b,
                listeners,
                ..
            } = pg::two_instances(&db, LONG_TTL).await;

            // Each instance's manager goes over its cache: what it revokes
            // leaves its own cache at once, and the others' by NOTIFY.
            let tokens_a = TokenManager::new(cache_a.clone());
            let tokens_b = TokenManager::new(cache_b.clone());
            let targets = targets(&tokens_a, 24, 8).await;
            let secrets: Vec<String> = targets.iter().map(|t| t.secret.clone()).collect();
            let apps = vec![app(tokens_a.clone()), app(tokens_b)];
            // Both caches hold every token before the run.
            for secret in &secrets {
                for app in &apps {
                    let status = app.clone().oneshot(bearer(secret)).await.unwrap().status();
                    assert_eq!(status, StatusCode::OK);
                }
            }
            let planned = planned(&targets);
            let (attempts, revocations) =
                run(apps.clone(), targets, revoke_through(tokens_a)).await;
            let figures = figures(2, &planned, &attempts, &revocations);
            for (name, f) in ["A (revokes)", "B (other instance)"].iter().zip(&figures) {
                println!(
                    "PgStore + CachedStore, instance {name}: {} attempts, {} accepted, {} refused; \
                     {} accepted while their revoke call was running, {} after it returned \
                     (max lag {:?})",
                    f.attempts,
                    f.accepted,
                    f.refused,
                    f.accepted_during_revoke,
                    f.accepted_after_revoke,
                    f.max_lag
                );
            }
            assert_eq!(
                figures[0].accepted_after_revoke, 0,
                "instance A accepted up to {:?} after its own revoke returned",
                figures[0].max_lag
            );
            assert!(
                figures[1].max_lag < PROPAGATION_BOUND,
                "instance B accepted {:?} after revoke returned",
                figures[1].max_lag
            );
            for (secret, r) in secrets.iter().zip(&revocations) {
                for app in &apps {
                    if r.is_some() {
                        refused_within(app, secret, PROPAGATION_BOUND).await;
                    } else {
                        let status = app.clone().oneshot(bearer(secret)).await.unwrap().status();
                        assert_eq!(status, StatusCode::OK);
                    }
                }
            }
            listeners.iter().for_each(|l| l.abort());
        })
        .await
        .expect("no deadlock: the scenario finishes in time");
        db.finish().await;
    }
}
