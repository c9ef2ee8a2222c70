//! The billing API example: a small axum service whose `/v1` routes are
//! protected by bearer tokens and per-route OAuth scopes.
//!
//! ```text
//! cargo run -p billing_api -- [--addr 127.0.0.1:3000] [--demo-tokens FILE]
//! ```
//!
//! With `--demo-tokens FILE` it issues one token per situation worth trying
//! (each scope, expired, revoked, access, refresh) and writes them to `FILE`
//! (mode 0600) before it accepts connections. Then, for example:
//!
//! ```text
//! TOKEN=$(jq -r '.[] | select(.label == "billing.read") | .token' FILE)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/v1/invoices
//! ```
//!
//! The dashboard page, Settings → API Tokens, is at
//! `http://127.0.0.1:3000/dashboard/login`; log in with the file's
//! `dashboard` entry (`jq '.[] | select(.label == "dashboard")' FILE`).
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default
//! `info,tower_token_auth=debug`); they never contain a token.

use billing_api as app;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tower_token_auth::peer::Peers;
use tracing_subscriber::EnvFilter;

/// Serves the billing API example: `/v1` routes protected by bearer tokens
/// and per-route OAuth scopes, the OAuth endpoints, and the dashboard.
#[derive(Debug, Parser)]
#[command(
    name = "billing_api",
    after_help = "\
Environment:
  RUST_LOG                 log filter (default info,tower_token_auth=debug)
  DATABASE_URL             where tokens live: unset = in memory; sqlite:PATH (build with
                           --features sqlite; the file is created when missing) or
                           postgres://… (build with --features postgres: with a
                           revocation-aware cache)
  RESOURCE                 this server's resource identifier (RFC 8707 / RFC 9728);
                           default http://ADDR. Tokens issued here are for it; tokens
                           for another resource are refused
  INTROSPECTION_URL        validate the /v1 routes' tokens by asking this RFC 7662
  INTROSPECTION_USER       endpoint (with this HTTP Basic login) instead of the local
  INTROSPECTION_PASSWORD   store (build with --features introspection)
  AUTHORIZATION_SERVER     with INTROSPECTION_URL: the issuer the RFC 9728 document
                           names; default the origin of INTROSPECTION_URL
  BILLING_API_PROFILE      development (default) or production: production refuses
                           requests not known to arrive over TLS on every route but
                           /health (403 https_required)
  TRUSTED_PROXIES          comma-separated IP addresses of the TLS-terminating proxies
                           whose forwarding headers are believed
  FAILED_AUTH_PER_MINUTE   failed authentications (bad tokens, refused grants, wrong
                           dashboard and introspection passwords) a client (an IPv4
                           address, an IPv6 /64) may make per minute, in both
                           profiles; then 429 with Retry-After (default 10). Other
                           clients are not affected, with one exception: the
                           throttle tracks at most 100 000 clients, and under a
                           flood of failures from more distinct clients than that,
                           the clients it has no room for share one budget of the
                           same size. While that shared budget is spent, a client
                           the throttle has not seen before is refused with 429
                           even with a valid token (the throttle answers before
                           any credential is looked at); clients it already tracks
                           keep their own budgets.

Serving limits: a client has 10 s to send a request's headers (a kept-alive
connection waiting for its next request too), a connection on which nothing
moves for 60 s is closed, a request has 30 s (then 408), at most 4096
connections are open at once (fewer when the open-file limit, ulimit -n, is
lower; further clients wait to be accepted), and a request body is at most
64 KiB (413 beyond)."
)]
struct Options {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", value_name = "ADDR")]
    addr: SocketAddr,
    /// Write demo tokens and the dashboard and introspection logins to FILE
    /// (JSON, mode 0600) before accepting connections.
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    demo_tokens: Option<PathBuf>,
}

fn non_empty_path(path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        Err("needs a file path".to_owned())
    } else {
        Ok(PathBuf::from(path))
    }
}

fn main() -> ExitCode {
    let options = Options::parse();

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,tower_token_auth=debug")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "billing_api stopped");
            ExitCode::FAILURE
        }
    }
}

/// How often a token's last use is written to the store at most.
const USAGE_INTERVAL: Duration = Duration::from_secs(60);

/// How often dead records (revoked or expired for longer than the
/// retention) are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

async fn run(options: Options) -> Result<(), app::demo::DemoError> {
    let profile = profile_from_env()?;
    let base_url = format!("http://{}", options.addr);
    let resource = env("RESOURCE").unwrap_or_else(|| base_url.clone());
    let tokens = app::tokens_for(open_store().await?, &resource);
    tokio::spawn(purge_periodically(tokens.clone()));
    let mut state =
        app::AppState::with_store(tokens, app::demo::DashboardLogin::generate()?, &base_url)
            .failed_auth_per_minute(failures_from_env()?)
            .track_usage(USAGE_INTERVAL)
            .peers(profile.peers);
    if let Some((remote, issuer)) = remote_lookup()? {
        state = state.validate_remotely(remote, &issuer);
    }
    if profile.https_required {
        tracing::info!(peers = ?state.peers, "production profile: HTTPS required");
        state = state.require_https();
    }
    tracing::info!(resource = %state.resource, throttle = ?state.throttle, "serving");

    // The demo file is complete before the listener exists, so a client
    // that waits for the port can read the file right away.
    if let Some(path) = &options.demo_tokens {
        let credentials = app::demo::issue(&state).await?;
        app::demo::write_file(path, &credentials)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            credentials = credentials.len(),
            "demo tokens written"
        );
    }

    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.addr))?;
    let local = listener.local_addr()?;
    tracing::info!("listening on http://{local}");
    tracing::info!("dashboard: http://{local}/dashboard/login");

    // DESIGN §6's limits; no more connections than open files allow.
    let mut limits = app::serve::Limits::default();
    if let Some(open_files) = app::serve::open_file_limit() {
        limits = limits.within_open_files(open_files);
    }
    tracing::info!(?limits, "serving limits");
    app::serve::serve(listener, app::app(state), limits, shutdown_signal()).await?;
    tracing::info!("shut down");
    Ok(())
}

/// `FAILED_AUTH_PER_MINUTE`, by default [`app::FAILURES_PER_MINUTE`].
fn failures_from_env() -> Result<NonZeroU32, String> {
    parse_failures(env("FAILED_AUTH_PER_MINUTE").as_deref())
}

fn parse_failures(value: Option<&str>) -> Result<NonZeroU32, String> {
    let Some(value) = value else {
        return Ok(NonZeroU32::new(app::FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
    };
    value.trim().parse::<NonZeroU32>().map_err(|_| {
        format!("FAILED_AUTH_PER_MINUTE: `{value}` is not a whole number of at least 1")
    })
}

/// A non-empty environment variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Deletes dead records every [`PURGE_INTERVAL`], so that nothing grows
/// without bound.
async fn purge_periodically(tokens: app::Tokens) {
    let mut every = tokio::time::interval(PURGE_INTERVAL);
    loop {
        every.tick().await;
        if let Err(error) = tokens.purge().await {
            tracing::warn!(%error, "purging dead token records failed; trying again later");
        }
    }
}

/// With `INTROSPECTION_URL` (and its login): a lookup that asks that RFC
/// 7662 endpoint, cached briefly, for the `/v1` routes, and the issuer of
/// the tokens it validates: `AUTHORIZATION_SERVER`, by default the origin
/// of `INTROSPECTION_URL` (this example's own issuer is its origin).
fn remote_lookup() -> Result<Option<(app::Lookup, String)>, String> {
    let Some(url) = env("INTROSPECTION_URL") else {
        return Ok(None);
    };
    #[cfg(feature = "introspection")]
    {
        use tower_token_auth::store::IntrospectionStore;
        use tower_token_auth::PayRequestScopes;

        let (Some(user), Some(password)) =
            (env("INTROSPECTION_USER"), env("INTROSPECTION_PASSWORD"))
        else {
            return Err(
                "INTROSPECTION_URL needs INTROSPECTION_USER and INTROSPECTION_PASSWORD".to_owned(),
            );
        };
        let remote = IntrospectionStore::<PayRequestScopes>::new(&url, &user, &password)
            .map_err(|e| format!("INTROSPECTION_URL: {e}"))?
            .cached();
        let issuer = match env("AUTHORIZATION_SERVER") {
            Some(issuer) => issuer,
            None => origin(&url)
                .ok_or_else(|| format!("INTROSPECTION_URL={url} is not an absolute http(s) URL"))?,
        };
        tracing::info!(%url, %issuer, "the /v1 routes validate tokens by introspection");
        Ok(Some((Arc::new(remote), issuer)))
    }
    #[cfg(not(feature = "introspection"))]
    {
        Err(format!(
            "INTROSPECTION_URL={url} needs a build with introspection support: \
             cargo run -p billing_api --features introspection"
        ))
    }
}

/// `scheme://authority` of an absolute URL.
#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
fn origin(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
}

/// What `BILLING_API_PROFILE` and `TRUSTED_PROXIES` ask for.
#[derive(Debug)]
struct Profile {
    /// Production: every route but `/health` requires HTTPS.
    https_required: bool,
    /// The trusted proxies, in either profile: the throttle tells the
    /// clients behind them apart by their forwarding headers.
    peers: Peers,
}

/// The profile from `BILLING_API_PROFILE` and `TRUSTED_PROXIES`.
fn profile_from_env() -> Result<Profile, String> {
    let profile = std::env::var("BILLING_API_PROFILE").unwrap_or_default();
    let proxies = std::env::var("TRUSTED_PROXIES").unwrap_or_default();
    parse_profile(&profile, &proxies)
}

fn parse_profile(profile: &str, proxies: &str) -> Result<Profile, String> {
    let https_required = match profile {
        "" | "development" => false,
        "production" => true,
        other => {
            return Err(format!(
                "BILLING_API_PROFILE: `{other}` is neither `development` nor `production`"
            ))
        }
    };
    let peers = proxies
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .try_fold(Peers::new(), |peers, proxy| {
            let ip = proxy.parse::<IpAddr>().map_err(|_| {
                format!("TRUSTED_PROXIES: `{proxy}` is not an IP address such as 10.0.0.2")
            })?;
            Ok::<_, String>(peers.trust_proxy(ip))
        })?;
    Ok(Profile {
        https_required,
        peers,
    })
}

/// The in-memory store, or the database `DATABASE_URL` names: SQLite
/// (`sqlite:PATH`, feature `sqlite`) or PostgreSQL (`postgres://…`, feature
/// `postgres`, with a revocation-aware cache). A URL this
/// build cannot serve is an error, never a silent fallback to memory.
async fn open_store() -> Result<app::Backend, app::demo::DemoError> {
    let Some(url) = env("DATABASE_URL") else {
        tracing::info!("token store: in memory");
        return Ok(Arc::new(tower_token_auth::MemoryStore::new()));
    };
    if url.starts_with("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let store = tower_token_auth_sqlx::SqliteStore::connect(&url)
                .await
                .map_err(|e| format!("cannot open DATABASE_URL: {e}"))?;
            tracing::info!("token store: SQLite");
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "sqlite"))]
        return Err("DATABASE_URL=sqlite:… needs a build with SQLite support: \
                    cargo run -p billing_api --features sqlite"
            .into());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return postgres_store(&url).await;
        #[cfg(not(feature = "postgres"))]
        return Err(
            "DATABASE_URL=postgres://… needs a build with PostgreSQL support: \
                    cargo run -p billing_api --features postgres"
                .into(),
        );
    }
    Err("DATABASE_URL must start with sqlite: or postgres://".into())
}

#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<app::Backend, app::demo::DemoError> {
    use tower_token_auth_sqlx::PgStore;

    // A short acquire timeout: when the database is down, requests answer
    // 503 quickly instead of hanging.
    let pool = tower_token_auth_sqlx::sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))?;
    let store = PgStore::new(pool);
    store.migrate().await?;
    Ok(with_cache(store))
}

/// A revocation-aware cache in front of PostgreSQL.
#[cfg(feature = "postgres")]
fn with_cache(
    store: tower_token_auth_sqlx::PgStore<tower_token_auth::PayRequestScopes>,
) -> app::Backend {
    let cache = tower_token_auth::store::CachedStore::new(store.clone());
    // Revocations on any instance evict this instance's cache.
    let _listener = store.spawn_revocation_listener(cache.clone());
    tracing::info!("token store: PostgreSQL with a revocation-aware cache");
    Arc::new(cache)
}

/// Resolves on Ctrl-C (or SIGTERM on Unix); in-flight requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of the store that has been revoked for `days` days, under a
    /// fresh id and digest.
    async fn dead_for(
        tokens: &app::Tokens,
        days: u64,
    ) -> tower_token_auth::token::TokenRecord<tower_token_auth::PayRequestScopes> {
        use tower_token_auth::manager::IssueRequest;
        use tower_token_auth::token::{TokenDigest, TokenId, TokenKind};
        let issued = tokens
            .issue(IssueRequest::new(
                TokenKind::PersonalAccess,
                "old",
                "user-1",
            ))
            .await
            .unwrap();
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(days * 86_400);
        let mut record = (*issued.record).clone();
        record.id = TokenId::random().unwrap();
        record.digest = TokenDigest::of(&format!("pr_pat_dead_{days}_{}", issued.record.id));
        record.revoked_at = Some(long_ago);
        record
    }

    /// The example purges dead records at start-up and then every hour:
    /// one revoked longer ago than the retention (7 days) is gone at the
    /// next hourly run, not before.
    #[tokio::test(start_paused = true)]
    async fn dead_records_are_purged_every_hour() {
        use tower_token_auth::store::{MemoryStore, TokenBackend as _};
        use tower_token_auth::TokenStore as _;

        let store = MemoryStore::new();
        let tokens = app::tokens_for(Arc::new(store.clone()), "http://127.0.0.1:3000");
        let settle = || async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        };
        let first = dead_for(&tokens, 8).await;
        store.insert(std::slice::from_ref(&first)).await.unwrap();
        tokio::spawn(purge_periodically(tokens.clone()));
        settle().await;
        assert!(
            store.find((&first.digest).into()).await.unwrap().is_none(),
            "purged at start-up"
        );

        let second = dead_for(&tokens, 8).await;
        let recent = dead_for(&tokens, 1).await;
        store
            .insert(&[second.clone(), recent.clone()])
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(3600 - 60)).await;
        settle().await;
        assert!(
            store.find((&second.digest).into()).await.unwrap().is_some(),
            "not yet an hour"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert!(
            store.find((&second.digest).into()).await.unwrap().is_none(),
            "purged after an hour"
        );
        assert!(
            store.find((&recent.digest).into()).await.unwrap().is_some(),
            "dead for less than the retention: kept"
        );
    }

    /// A request from `peer` whose `X-Forwarded-Proto` is `proto`.
    fn forwarded(peer: &str, proto: Option<&str>) -> axum::http::Request<()> {
        let mut request = axum::http::Request::get("/v1/invoices");
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        let mut request = request.body(()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request
            .extensions_mut()
            .insert(tower_token_auth::peer::PeerAddr(peer));
        request
    }

    #[test]
    fn production_believes_the_trusted_proxies_https_and_nobody_elses() {
        let production = parse_profile("production", " 10.0.0.2, ::1 ,").unwrap();
        assert!(production.https_required);
        let https = |peer, proto| production.peers.is_https(&forwarded(peer, proto));
        assert!(https("10.0.0.2:40000", Some("https")), "trusted IPv4 proxy");
        assert!(https("[::1]:40000", Some("https")), "trusted IPv6 proxy");
        assert!(
            https("[::ffff:10.0.0.2]:40000", Some("https")),
            "the IPv4 proxy on a dual-stack socket"
        );
        assert!(!https("10.0.0.3:40000", Some("https")), "an untrusted peer");
        assert!(
            !https("10.0.0.2:40000", Some("http")),
            "the proxy says http"
        );
        assert!(!https("10.0.0.2:40000", None), "the proxy says nothing");
        // Without TRUSTED_PROXIES nobody's header counts.
        let strict = parse_profile("production", "").unwrap();
        assert!(strict.https_required);
        assert!(!strict
            .peers
            .is_https(&forwarded("10.0.0.2:40000", Some("https"))));
        // Development requires no HTTPS, but still knows its proxies (for
        // the throttle).
        let development = parse_profile("", "10.0.0.2").unwrap();
        assert!(!development.https_required);
        assert!(development
            .peers
            .is_trusted_proxy(forwarded("10.0.0.2:1", None).extensions()));
        assert!(!parse_profile("development", "").unwrap().https_required);
    }

    #[test]
    fn bad_profiles_and_proxies_are_refused_by_name() {
        let bad_proxy = parse_profile("production", "10.0.0.2,proxy.local").unwrap_err();
        assert!(bad_proxy.contains("`proxy.local`"), "{bad_proxy}");
        let bad_profile = parse_profile("prod", "").unwrap_err();
        assert!(bad_profile.contains("`prod`"), "{bad_profile}");
    }

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        Options::try_parse_from(std::iter::once("billing_api").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_and_both_flag_forms() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.addr.to_string(), "127.0.0.1:3000");
        assert!(o.demo_tokens.is_none());
        let o = parse(&["--addr", "[::1]:8080", "--demo-tokens=/tmp/t.json"]).unwrap();
        assert_eq!(o.addr.to_string(), "[::1]:8080");
        assert_eq!(o.demo_tokens.unwrap(), PathBuf::from("/tmp/t.json"));
    }

    /// Issue 23, row 7: `--help` says what `FAILED_AUTH_PER_MINUTE` sets,
    /// and what a user may not expect: under a flood of failures from more
    /// clients than the throttle tracks, a new client is refused even with
    /// a valid token.
    #[test]
    fn the_failure_budget_comes_from_the_environment_and_help_says_what_it_costs() {
        assert_eq!(parse_failures(None).unwrap().get(), 10);
        assert_eq!(parse_failures(Some("25")).unwrap().get(), 25);
        for bad in ["0", "-1", "ten", "1.5"] {
            let error = parse_failures(Some(bad)).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
        let help = parse(&["--help"]).unwrap_err().to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for said in [
            "FAILED_AUTH_PER_MINUTE failed authentications",
            "(default 10)",
            "share one budget",
            "refused with 429 even with a valid token",
            "a request's headers",
            "64 KiB (413 beyond)",
        ] {
            assert!(flat.contains(said), "--help does not say {said:?}:\n{help}");
        }
    }

    #[test]
    fn help_unknown_flags_and_bad_addresses() {
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let text = help.to_string();
        for documented in [
            "--addr",
            "--demo-tokens",
            "DATABASE_URL",
            "RESOURCE",
            "INTROSPECTION_URL",
            "FAILED_AUTH_PER_MINUTE",
        ] {
            assert!(
                text.contains(documented),
                "{documented} missing from --help"
            );
        }
        assert!(parse(&["--port", "3000"])
            .unwrap_err()
            .to_string()
            .contains("--port"));
        assert!(parse(&["--addr", "localhost"])
            .unwrap_err()
            .to_string()
            .contains("localhost"));
        assert!(parse(&["--addr"]).is_err());
        assert!(parse(&["--demo-tokens="]).is_err());
    }
}
