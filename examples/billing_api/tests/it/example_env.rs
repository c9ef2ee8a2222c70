//! The `billing_api` example as its users start it: the real binary, in a
//! process of its own, configured by its environment. `DATABASE_URL` picks
//! the store (SQLite, PostgreSQL, or a clear refusal of anything else), and
//! `INTROSPECTION_URL` with its login makes a second instance validate the
//! first one's tokens.
//!
//! The binary is the package's own, which Cargo builds for its integration
//! tests with the same features as this test binary.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{header, Method, StatusCode};
use serde_json::Value;

use crate::support::pg;
use crate::support::socket::{self, Reply};

/// How long an instance may take to listen (or to stop, when it refuses
/// its configuration): the store is opened first, the demo tokens are
/// issued, then the port is bound.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Every variable the example reads, removed from the child's environment
/// so that the test's own (e.g. the PostgreSQL tests' `DATABASE_URL`)
/// never leaks in.
const EXAMPLE_ENV: [&str; 8] = [
    "DATABASE_URL",
    "RESOURCE",
    "INTROSPECTION_URL",
    "INTROSPECTION_USER",
    "INTROSPECTION_PASSWORD",
    "BILLING_API_PROFILE",
    "TRUSTED_PROXIES",
    "RUST_LOG",
];

/// The example binary: Cargo builds the package's binaries for its
/// integration tests, with the features of the test build (every one: this
/// module is compiled only with them).
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_billing_api"))
}

/// A directory of one test's own for files the example writes (its demo
/// file holds tokens): removed when the test passes, kept with the logs
/// when it fails.
fn scratch(test: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "example_env_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A free port of 127.0.0.1 (the example is told its address: its
/// resource identifier is `http://ADDR`).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// One `billing_api` process, killed when dropped.
struct Example {
    child: Child,
    addr: SocketAddr,
    credentials: HashMap<String, Value>,
}

/// How a start ended when the process did not come up.
struct Exited {
    status: ExitStatus,
    stderr: String,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts the example on `addr` with `env`, writing its demo file and
    /// log into `dir` under `name`, and waits until it listens. `Err` when
    /// the process exits first.
    async fn try_start(
        dir: &Path,
        name: &str,
        addr: SocketAddr,
        env: &[(&str, &str)],
    ) -> Result<Self, Exited> {
        let binary = tokio::task::spawn_blocking(binary).await.unwrap();
        let demo = dir.join(format!("{name}.demo.json"));
        let log = dir.join(format!("{name}.stderr"));
        let mut command = Command::new(binary);
        command
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--demo-tokens")
            .arg(&demo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for name in EXAMPLE_ENV {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "info").envs(env.iter().copied());
        let child = command.spawn().unwrap();
        let mut example = Self {
            child,
            addr,
            credentials: HashMap::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = example.child.try_wait().unwrap() {
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(Exited { status, stderr });
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not listen on {addr} within {START_TIMEOUT:?}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The demo file is complete before the port is bound.
        let file: Value = serde_json::from_slice(&std::fs::read(&demo).unwrap()).unwrap();
        example.credentials = file
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["label"].as_str().unwrap().to_owned(), e.clone()))
            .collect();
        Ok(example)
    }

    async fn start(dir: &Path, name: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Self {
        match Self::try_start(dir, name, addr, env).await {
            Ok(example) => example,
            Err(exited) => panic!(
                "the example exited ({}) instead of serving; its log:\n{}",
                exited.status, exited.stderr
            ),
        }
    }

    /// The process's exit when it is expected to refuse its configuration.
    async fn refuses(dir: &Path, env: &[(&str, &str)]) -> Exited {
        match Self::try_start(dir, "refused", free_addr(), env).await {
            Ok(example) => panic!("the example served on {} instead of exiting", example.addr),
            Err(exited) => exited,
        }
    }

    /// The `user` and `password` of the demo file's login `label`.
    fn login(&self, label: &str) -> (String, String) {
        let entry = &self.credentials[label];
        (
            entry["username"].as_str().unwrap().to_owned(),
            entry["password"].as_str().unwrap().to_owned(),
        )
    }

    fn basic(&self, label: &str) -> String {
        let (user, password) = self.login(label);
        let pair = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// A new `billing.read` personal access token through the dashboard
    /// API: its id and the token.
    async fn create_token(&self, name: &str) -> (String, String) {
        let reply = socket::send(
            self.addr,
            Method::POST,
            "/settings/api-tokens",
            Some(&self.basic("dashboard")),
            Some((
                "application/json",
                format!(r#"{{"name":"{name}","scopes":"billing.read"}}"#),
            )),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let json = reply.json();
        (
            json["id"].as_str().unwrap().to_owned(),
            json["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn invoices(&self, token: &str) -> Reply {
        socket::send(
            self.addr,
            Method::GET,
            "/v1/invoices",
            Some(&format!("Bearer {token}")),
            None,
        )
        .await
    }

    /// The ids of the dashboard user's tokens.
    async fn listed_ids(&self) -> Vec<String> {
        let reply = socket::send(
            self.addr,
            Method::GET,
            "/settings/api-tokens",
            Some(&self.basic("dashboard")),
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A token created over the API of an instance on `url` works there, and
/// on the next instance over the same database after the first was killed.
async fn tokens_survive_a_restart(dir: &Path, url: &str) {
    let env = [("DATABASE_URL", url)];
    let addr = free_addr();
    let first = Example::start(dir, "first", addr, &env).await;
    let (id, token) = first.create_token("survives a restart").await;
    assert_eq!(first.invoices(&token).await.status, StatusCode::OK);
    drop(first);

    // Same address, so the same resource identifier: the token is for it.
    let second = Example::start(dir, "second", addr, &env).await;
    let reply = second.invoices(&token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        second.listed_ids().await.contains(&id),
        "the restarted instance lists the token"
    );
}

#[tokio::test]
async fn sqlite_url_creates_the_file_and_its_tokens_survive_a_restart() {
    let dir = scratch("sqlite");
    let file = dir.join("tokens.db");
    assert!(!file.exists());
    let url = format!("sqlite:{}", file.display());
    tokens_survive_a_restart(&dir, &url).await;
    assert!(file.is_file(), "DATABASE_URL={url} created the file");
    assert!(std::fs::metadata(&file).unwrap().len() > 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_url_keeps_tokens_across_a_restart() {
    let db = pg::database().await;
    let options = &db.options;
    let url = format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        db.name
    );
    let dir = scratch("postgres");
    tokens_survive_a_restart(&dir, &url).await;
    // The tokens are in that database, not in memory.
    let pool = db.pool().await;
    let (count,): (i64,) =
        tower_token_auth_sqlx::sqlx::query_as("SELECT count(*) FROM tower_token_auth_tokens")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(count > 0, "the tokens are rows of the database");
    pool.close().await;
    db.finish().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_unsupported_database_url_stops_the_example_naming_the_schemes() {
    let dir = scratch("mysql");
    let exited = Example::refuses(&dir, &[("DATABASE_URL", "mysql://x")]).await;
    assert!(!exited.status.success(), "exit status {}", exited.status);
    for scheme in ["sqlite:", "postgres://"] {
        assert!(
            exited.stderr.contains(scheme),
            "the message names {scheme}:\n{}",
            exited.stderr
        );
    }
    assert!(!dir.join("refused.demo.json").exists(), "no demo file");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_introspecting_instance_accepts_the_first_instances_tokens() {
    let dir = scratch("introspection");
    let first = Example::start(&dir, "first", free_addr(), &[]).await;
    let (_, token) = first.create_token("introspected").await;
    let (user, password) = first.login("introspection");
    let introspect = format!("http://{}/oauth/introspect", first.addr);
    // The second instance is the same resource server, so it is told the
    // first one's resource identifier.
    let resource = format!("http://{}", first.addr);
    let second = Example::start(
        &dir,
        "second",
        free_addr(),
        &[
            ("RESOURCE", &resource),
            ("INTROSPECTION_URL", &introspect),
            ("INTROSPECTION_USER", &user),
            ("INTROSPECTION_PASSWORD", &password),
        ],
    )
    .await;
    let reply = second.invoices(&token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // A client that discovers the second instance (RFC 9728) is sent to the
    // first for its tokens: by default the origin of INTROSPECTION_URL.
    let document = socket::send(
        second.addr,
        Method::GET,
        "/.well-known/oauth-protected-resource",
        None,
        None,
    )
    .await
    .json();
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!([resource])
    );
    // A token the first instance does not know is refused by the second.
    let unknown = second.create_token("only on the second").await.1;
    let reply = second.invoices(&unknown).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
    drop((first, second));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn introspection_without_a_password_stops_the_example() {
    let dir = scratch("introspection_password");
    let exited = Example::refuses(
        &dir,
        &[
            ("INTROSPECTION_URL", "http://127.0.0.1:9/oauth/introspect"),
            ("INTROSPECTION_USER", "introspection"),
        ],
    )
    .await;
    assert!(!exited.status.success(), "exit status {}", exited.status);
    assert!(
        exited.stderr.contains("INTROSPECTION_PASSWORD"),
        "the message names the missing variable:\n{}",
        exited.stderr
    );
    std::fs::remove_dir_all(dir).unwrap();
}
