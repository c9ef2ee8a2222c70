//! The billing API example: a small axum service whose `/v1` routes are
//! protected by bearer tokens and per-route OAuth scopes.
//!
//! ```text
//! cargo run --example billing_api -- [--addr 127.0.0.1:3000] [--demo-tokens FILE]
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

mod app;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tower_token_auth::auth::Peers;
use tower_token_auth::store::TokenManager;
use tracing_subscriber::EnvFilter;

const USAGE: &str = "\
usage: billing_api [--addr ADDR] [--demo-tokens FILE]

Serves the billing API example with an in-memory token store, or with
PostgreSQL when DATABASE_URL is set (build with --features postgres).

options:
  --addr ADDR          address to listen on (default 127.0.0.1:3000)
  --demo-tokens FILE   write demo tokens and the dashboard login to FILE
                       (JSON, mode 0600) before accepting connections
  -h, --help           print this help

environment:
  RUST_LOG             log filter (default info,tower_token_auth=debug)
  DATABASE_URL         PostgreSQL connection string (with --features postgres)
  BILLING_API_PROFILE  `development` (default) or `production`: production
                       refuses requests not known to arrive over TLS on every
                       route but /health (403 https_required)
  TRUSTED_PROXIES      comma-separated IP addresses of the TLS-terminating
                       proxies whose forwarding headers are believed:
                       X-Forwarded-Proto / Forwarded proto= for HTTPS (in
                       production), X-Forwarded-For / Forwarded for= for the
                       client address the throttle counts failures against

Failed authentications (bad tokens, refused grants, wrong dashboard
passwords) are throttled per client in both profiles: 10 a minute, then
429 with Retry-After.";

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The parsed command line.
#[derive(Debug)]
struct Options {
    addr: SocketAddr,
    demo_tokens: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. `Err` is a message for
/// stderr (exit code 2).
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut addr = None;
    let mut demo_tokens = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--addr" => {
                let text = value("--addr")?;
                let parsed = text.parse::<SocketAddr>().map_err(|_| {
                    format!(
                        "--addr: `{text}` is not an address such as 127.0.0.1:3000 or [::1]:8080"
                    )
                })?;
                addr = Some(parsed);
            }
            "--demo-tokens" => {
                let path = value("--demo-tokens")?;
                if path.is_empty() {
                    return Err("--demo-tokens needs a file path".to_owned());
                }
                demo_tokens = Some(PathBuf::from(path));
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Command::Run(Options {
        addr: match addr {
            Some(addr) => addr,
            None => DEFAULT_ADDR.parse().map_err(|_| "bad default address")?,
        },
        demo_tokens,
    }))
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("billing_api: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

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

async fn run(options: Options) -> Result<(), app::demo::DemoError> {
    let profile = profile_from_env()?;
    let tokens = TokenManager::new(open_store().await?);
    let base_url = format!("http://{}", options.addr);
    let mut state =
        app::AppState::with_store(tokens, app::demo::DashboardLogin::generate()?, &base_url)
            .track_usage(USAGE_INTERVAL)
            .peers(profile.peers);
    if profile.https_required {
        tracing::info!(peers = ?state.peers, "production profile: HTTPS required");
        state = state.require_https();
    }
    tracing::info!(throttle = ?state.throttle, "failed authentications throttled per client");

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

    // The peer's address is what `TRUSTED_PROXIES` is checked against.
    let service = app::app(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
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

/// The in-memory store, or PostgreSQL when `DATABASE_URL` is set and the
/// example was built with `--features postgres` (plus a revocation-aware
/// cache with `--features postgres,cache`). The token manager goes over it.
async fn open_store() -> Result<app::Backend, app::demo::DemoError> {
    if let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        #[cfg(feature = "postgres")]
        return postgres_store(&url).await;
        #[cfg(not(feature = "postgres"))]
        {
            let _ = url;
            tracing::warn!(
                "DATABASE_URL is set, but this build has no PostgreSQL support: \
                 using the in-memory store (run with --features postgres)"
            );
        }
    }
    tracing::info!("token store: in memory");
    Ok(Arc::new(tower_token_auth::MemoryStore::new()))
}

#[cfg(feature = "postgres")]
async fn postgres_store(url: &str) -> Result<app::Backend, app::demo::DemoError> {
    use tower_token_auth::store::PgStore;

    // A short acquire timeout: when the database is down, requests answer
    // 503 quickly instead of hanging.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to DATABASE_URL: {e}"))?;
    let store = PgStore::new(pool);
    store.migrate().await?;
    Ok(with_cache(store))
}

/// With `cache`: a revocation-aware cache in front of PostgreSQL.
#[cfg(all(feature = "postgres", feature = "cache"))]
fn with_cache(store: tower_token_auth::store::PgStore) -> app::Backend {
    let cache = tower_token_auth::store::CachedStore::new(store.clone());
    // Revocations on any instance evict this instance's cache.
    let _listener = store.spawn_revocation_listener(cache.clone());
    tracing::info!("token store: PostgreSQL with a revocation-aware cache");
    Arc::new(cache)
}

#[cfg(all(feature = "postgres", not(feature = "cache")))]
fn with_cache(store: tower_token_auth::store::PgStore) -> app::Backend {
    tracing::info!("token store: PostgreSQL");
    Arc::new(store)
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
            .insert(tower_token_auth::auth::PeerAddr(peer));
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

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_and_both_flag_forms() {
        let Ok(Command::Run(o)) = parse(&[]) else {
            panic!()
        };
        assert_eq!(o.addr.to_string(), DEFAULT_ADDR);
        assert!(o.demo_tokens.is_none());
        let Ok(Command::Run(o)) = parse(&["--addr", "[::1]:8080", "--demo-tokens=/tmp/t.json"])
        else {
            panic!()
        };
        assert_eq!(o.addr.to_string(), "[::1]:8080");
        assert_eq!(o.demo_tokens.unwrap(), PathBuf::from("/tmp/t.json"));
    }

    #[test]
    fn help_unknown_flags_and_bad_addresses() {
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(parse(&["--port", "3000"]).unwrap_err().contains("--port"));
        assert!(parse(&["--addr", "localhost"])
            .unwrap_err()
            .contains("localhost"));
        assert!(parse(&["--addr"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--demo-tokens="]).is_err());
    }
}
