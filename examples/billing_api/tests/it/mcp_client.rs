//! The official MCP client SDK connects to the `billing_api` example by
//! itself, through OAuth: `tests/mcp/connect.mjs` drives the TypeScript SDK
//! (`@modelcontextprotocol/sdk`, pinned in `tests/mcp/package.json`) and its
//! `auth()` against the example on a real socket. The SDK finds the
//! authorization server from the 401 and the RFC 9728 document, reads the
//! RFC 8414 metadata, registers a client (RFC 7591), sends the user to the
//! authorization URL with PKCE; the script logs in and allows as the user
//! would; the SDK exchanges the code, calls the API, refreshes. The script
//! also checks that a spent refresh token and a wrong PKCE verifier are
//! refused.
//!
//! This test checks the script's report and, on the server's side, that
//! the dashboard user now holds the grant the SDK's client got.
//!
//! It needs Node.js (20 or later) and npm, and installs the SDK with
//! `npm ci` in `tests/mcp` when `tests/mcp/node_modules` is missing. It
//! never skips: without `node` or `npm` it fails and says how to get them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tower_token_auth::token::TokenKind;
use tower_token_auth::token::TokenStatus;
use tower_token_auth::PayRequestScopes as S;

use crate::browser::serve;
use billing_api as app;

/// How to get Node.js and npm, for the failure messages.
const GET_NODE: &str = "install Node.js 20 or later with npm (Debian/Ubuntu: `apt-get install \
                        nodejs npm`, or https://nodejs.org), or put `node` and `npm` on the PATH";

/// The time the script gets, `npm ci` excluded.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// `tests/mcp`.
fn mcp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("mcp")
}

/// `tests/mcp/node_modules`, installed from the lock file when missing.
async fn install_sdk(dir: &Path) {
    if dir
        .join("node_modules/@modelcontextprotocol/sdk/package.json")
        .is_file()
    {
        return;
    }
    let cwd = dir.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run `npm ci` in {}: {e}; {GET_NODE}", dir.display()));
    assert!(
        output.status.success(),
        "`npm ci` in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `connect.mjs` against `base` and returns its report.
async fn connect(dir: &Path, base: &str, login: &app::demo::DashboardLogin) -> Value {
    // The output goes to files: the child is polled, and killed when it
    // takes too long (tokio's `process` is not among the dev features).
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let port = base.rsplit(':').next().unwrap_or_default();
    let out_path = out_dir.join(format!("mcp-client-{port}.stdout"));
    let err_path = out_dir.join(format!("mcp-client-{port}.stderr"));
    let mut child = std::process::Command::new("node")
        .arg("connect.mjs")
        .args([base, &login.username, &login.password])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node`: {e}; {GET_NODE}"));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "connect.mjs did not finish in {SCRIPT_TIMEOUT:?}; it printed:\n{}\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = std::process::Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    };
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "connect.mjs failed ({}):\n{stderr}\nits report: {stdout}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("connect.mjs printed no JSON report ({e}): {stdout}\n{stderr}"))
}

/// The SDK registers, is authorized by the dashboard user, exchanges the
/// code, calls the API and refreshes, all by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_mcp_typescript_sdk_connects_by_itself() {
    let started = Instant::now();
    let dir = mcp_dir();
    install_sdk(&dir).await;
    let installed = started.elapsed();
    let (addr, state) = serve().await;
    let base = format!("http://{addr}");
    let report = connect(&dir, &base, &state.dashboard).await;
    eprintln!(
        "mcp client: {:.1?} in all ({installed:.1?} to check or install the SDK)\n{report:#}",
        started.elapsed()
    );
    let steps = &report["steps"];

    assert_eq!(report["ok"], true, "{report:#}");
    // The SDK found everything from the 401.
    assert_eq!(steps["probe"]["status"], 401);
    assert_eq!(
        steps["probe"]["resource_metadata"],
        format!("{base}/.well-known/oauth-protected-resource")
    );
    let start = &steps["start"];
    assert_eq!(start["result"], "REDIRECT");
    assert_eq!(start["issuer"], base.as_str());
    assert_eq!(start["resource"], base.as_str());
    assert_eq!(start["code_challenge_method"], "S256");
    let requests: Vec<&str> = start["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for expected in [
        "GET /.well-known/oauth-protected-resource 200",
        "GET /.well-known/oauth-authorization-server 200",
        "POST /oauth/register 201",
    ] {
        assert!(requests.contains(&expected), "{expected} in {requests:?}");
    }
    let client_id = start["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("pr_cl_"), "client_id {client_id}");
    // The user logged in and allowed what the SDK asked for.
    let consent = &steps["consent"];
    assert_eq!(consent["logged_in"], true);
    assert_eq!(consent["consent_client_name"], "MCP Billing Agent");
    assert_eq!(
        consent["consent_scopes"],
        serde_json::json!(["billing.read"])
    );
    assert_eq!(consent["state_matches"], true);
    assert_eq!(consent["iss"], base.as_str());
    // The code for tokens, and the tokens at work.
    let exchange = &steps["exchange"];
    assert_eq!(exchange["result"], "AUTHORIZED");
    assert_eq!(exchange["has_refresh_token"], true);
    assert_eq!(
        exchange["requests"],
        serde_json::json!(["POST /oauth/token 200"])
    );
    assert_eq!(steps["api"]["invoices"], 200);
    assert_eq!(steps["api"]["customers"], 403);
    // The 403's challenge says what to step up to, as the SDK reads it.
    assert_eq!(steps["api"]["customers_error"], "insufficient_scope");
    assert_eq!(steps["api"]["customers_scope"], "customers.read");
    // The refresh, the SDK's way, and the spent refresh token refused.
    let refresh = &steps["refresh"];
    assert_eq!(refresh["result"], "AUTHORIZED");
    assert_eq!(refresh["redirected"], false);
    assert_eq!(refresh["new_access_token"], true);
    assert_eq!(refresh["new_refresh_token"], true);
    assert_eq!(refresh["invoices"], 200);
    assert_eq!(refresh["replay"], "invalid_grant");
    // Reuse of a spent refresh token revokes its family.
    assert_eq!(refresh["invoices_after_replay"], 401);
    // PKCE is enforced.
    assert_eq!(steps["pkce"]["wrong_verifier"], "invalid_grant");
    assert_eq!(steps["pkce"]["right_verifier"], true);
    // No step made the SDK throw its credentials away and start over.
    assert_eq!(report["invalidated"], serde_json::json!([]));

    // On the server's side: the dashboard user holds the grant of the
    // client the SDK registered, for billing.read only.
    let held = state.tokens.list(app::demo::DEMO_OWNER).await.unwrap();
    let grant: Vec<_> = held
        .iter()
        .filter(|t| t.name == "MCP Billing Agent")
        .collect();
    assert!(
        grant
            .iter()
            .any(|t| t.kind == TokenKind::Access && t.scopes == S::BILLING_READ),
        "no billing.read access token named MCP Billing Agent for {}: {held:#?}",
        app::demo::DEMO_OWNER
    );
    assert!(
        grant.iter().all(|t| t.audience == [base.clone()]),
        "a token of the grant is not for the resource {base}: {grant:#?}"
    );
    // The reuse of the spent refresh token revoked the first family; the
    // last authorization (the PKCE control) left one active pair.
    let active = |kind| {
        grant
            .iter()
            .filter(|t| t.kind == kind && t.status == TokenStatus::Active)
            .count()
    };
    assert_eq!(active(TokenKind::Access), 1, "{grant:#?}");
    assert_eq!(active(TokenKind::Refresh), 1, "{grant:#?}");
    assert!(
        grant
            .iter()
            .any(|t| t.kind == TokenKind::Refresh && t.status == TokenStatus::Revoked),
        "the family was not revoked when its spent refresh token came back: {grant:#?}"
    );
}
