//! PostgreSQL for the tests: a real server, never a mock.
//!
//! The server is the one `DATABASE_URL` names when it is set (its role must
//! be allowed to `CREATE DATABASE`); otherwise a throwaway cluster that this
//! module creates with `initdb` and starts with `pg_ctl` on a free port of
//! 127.0.0.1, its socket and data in a temporary directory. As root, the
//! cluster runs as the `postgres` system user (`initdb` refuses root).
//! When neither is possible, the test fails and says how to get one.
//!
//! Every test gets a database of its own ([`database`]) on one cluster
//! shared by the test binary, so tests run in parallel. A watchdog process
//! stops each cluster and deletes its directory when the test binary exits,
//! however it exits. A test that needs to stop and start the server starts
//! a [`Cluster`] of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use tower_token_auth::scope::PayRequestScopes;
use tower_token_auth::store::CachedStore;
use tower_token_auth_sqlx::postgres::ListenerHandle;
use tower_token_auth_sqlx::{sqlx, PgStore};

/// What to do when there is no PostgreSQL to test against.
const HOW_TO_GET_POSTGRES: &str = "\
these tests need a real PostgreSQL server. Either set DATABASE_URL to a server \
whose role may CREATE DATABASE (e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres), \
or install the PostgreSQL server binaries (initdb, pg_ctl, postgres; on Debian: \
`apt-get install postgresql`, then put /usr/lib/postgresql/<version>/bin on PATH) so the \
tests can start a throwaway cluster. As root, a `postgres` system user is needed too.";

/// How long a test waits for a pool connection: short, so a stopped server
/// turns into an error (and a 503) quickly.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// The server the tests of this binary share.
pub enum Server {
    /// `DATABASE_URL`.
    External(Box<PgConnectOptions>),
    /// A throwaway cluster.
    Local(Cluster),
}

impl Server {
    /// Options to connect to `database` on this server.
    pub fn options(&self, database: &str) -> PgConnectOptions {
        match self {
            Self::External(options) => (**options).clone().database(database),
            Self::Local(cluster) => cluster.options(database),
        }
    }

    fn admin(&self) -> PgConnectOptions {
        match self {
            Self::External(options) => (**options).clone(),
            Self::Local(cluster) => cluster.options("postgres"),
        }
    }
}

/// The server of this test binary, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server::External(Box::new(
            PgConnectOptions::from_str(&url)
                .unwrap_or_else(|e| panic!("DATABASE_URL is not a PostgreSQL URL: {e}")),
        )),
        _ => Server::Local(Cluster::start()),
    })
}

/// A database of one test's own.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// How to connect to it.
    pub options: PgConnectOptions,
    external: bool,
}

/// Creates a fresh, empty database on the shared [`server`].
pub async fn database() -> TestDb {
    let server = tokio::task::spawn_blocking(server)
        .await
        .expect("starting PostgreSQL panicked");
    let name = create_database(server.admin()).await;
    TestDb {
        options: server.options(&name),
        name,
        external: matches!(server, Server::External(_)),
    }
}

/// Creates a fresh, empty database on `cluster`.
pub async fn database_on(cluster: &Cluster) -> TestDb {
    let name = create_database(cluster.options("postgres")).await;
    TestDb {
        options: cluster.options(&name),
        name,
        external: false,
    }
}

async fn create_database(admin: PgConnectOptions) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "tta_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = admin
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL: {e}\n{HOW_TO_GET_POSTGRES}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
    let _ = admin.close().await;
    name
}

impl TestDb {
    /// A new pool on this database, with a short acquire timeout.
    pub async fn pool(&self) -> PgPool {
        pool_options()
            .connect_with(self.options.clone())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }

    /// Drops the database when it lives on an external server (a throwaway
    /// cluster is deleted whole). Best effort.
    pub async fn finish(self) {
        if !self.external {
            return;
        }
        let admin = server().admin();
        if let Ok(mut admin) = admin.connect().await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
            let _ = admin.close().await;
        }
    }
}

/// The pool settings of the tests.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// A throwaway PostgreSQL cluster on 127.0.0.1.
pub struct Cluster {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    /// Run the server binaries as the `postgres` user (we are root).
    as_postgres: bool,
    /// Stop the server when this value is dropped (clusters of one test).
    stop_on_drop: bool,
}

impl Cluster {
    /// Creates and starts a cluster; it is stopped and deleted when the test
    /// binary exits.
    pub fn start() -> Self {
        let mut cluster = Self::create();
        cluster.start_server();
        cluster.watch();
        cluster
    }

    /// Like [`start`](Self::start), and also stopped when dropped: for a test
    /// that owns the cluster.
    pub fn start_owned() -> Self {
        let mut cluster = Self::start();
        cluster.stop_on_drop = true;
        cluster
    }

    /// Options to connect to `database` as the `postgres` superuser.
    pub fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database(database)
    }

    /// Stops the server (fast shutdown: connections are closed) and waits
    /// until it is down.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped server again, on the same port, and waits until it
    /// accepts connections.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn create() -> Self {
        let initdb = find_binary("initdb").unwrap_or_else(|| {
            panic!("no initdb on PATH, and DATABASE_URL is not set: {HOW_TO_GET_POSTGRES}")
        });
        let as_postgres = is_root();
        if as_postgres && !command_succeeds(Command::new("id").args(["-u", "postgres"])) {
            panic!(
                "running as root, where initdb refuses to run, and there is no `postgres` \
                 user to run it as: {HOW_TO_GET_POSTGRES}"
            );
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tta-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create the cluster's directory");
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres:")
                .arg(&dir)
                .output()
                .expect("cannot run chown");
            assert!(chown.status.success(), "chown of {} failed", dir.display());
        }
        let data = dir.join("data");
        let cluster = Self {
            dir,
            data,
            port: 0,
            as_postgres,
            stop_on_drop: false,
        };
        let out = cluster
            .command(&initdb)
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("cannot run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}\n{HOW_TO_GET_POSTGRES}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn start_server(&mut self) {
        // A free port can be taken between finding and binding it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port();
            let out = self.pg_ctl_start();
            if out.status.success() {
                return;
            }
            last = format!("{}\n{}", String::from_utf8_lossy(&out.stderr), self.log());
        }
        panic!("the PostgreSQL test cluster did not start: {last}");
    }

    fn pg_ctl_start(&self) -> Output {
        let settings = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &settings,
        ])
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let pg_ctl = find_binary("pg_ctl").expect("pg_ctl is next to initdb");
        self.command(&pg_ctl)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run pg_ctl")
    }

    fn command(&self, program: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Starts a watchdog that stops the server and deletes its directory
    /// once this process is gone. It runs in a process group of its own, so
    /// an interrupt of the test run does not kill it first.
    fn watch(&self) {
        use std::os::unix::process::CommandExt;
        let pg_ctl = find_binary("pg_ctl").expect("pg_ctl is next to initdb");
        let stop = format!(
            "{}'{}' -D '{}' stop -m immediate -w -t 30",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl.display(),
            self.data.display()
        );
        let script = format!(
            "trap '' INT HUP TERM; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {stop} >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        // Never waited for: it outlives this process on purpose.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start the cluster's watchdog");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w", "-t", "30"]);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command_succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `name` on PATH, or in Debian's versioned PostgreSQL directories.
fn find_binary(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin").join(name)))
            .filter(|candidate| candidate.is_file())
            .collect();
        versions.sort();
        versions.pop()
    })
}

/// Two instances of a service over one database, as two processes run
/// them: each a `PgStore` with a `CachedStore` of its own (entries kept up
/// to `ttl`) that its revocation listener keeps current.
pub struct TwoInstances {
    /// Instance A's store (it migrated the schema).
    pub store_a: PgStore<PayRequestScopes>,
    /// Instance A's cache.
    pub cache_a: InstanceCache,
    /// Instance B's cache.
    pub cache_b: InstanceCache,
    /// The two listeners, A's then B's.
    pub listeners: [ListenerHandle; 2],
}

/// The cache of one of [`TwoInstances`].
pub type InstanceCache = CachedStore<PgStore<PayRequestScopes>>;

/// [`TwoInstances`] on `db`, once both listeners are listening (at most
/// 5 s).
pub async fn two_instances(db: &TestDb, ttl: Duration) -> TwoInstances {
    let store_a = PgStore::new(db.pool().await);
    store_a.migrate().await.unwrap();
    let store_b = PgStore::new(db.pool().await);
    let cache_a = CachedStore::builder(store_a.clone()).ttl(ttl).build();
    let cache_b = CachedStore::builder(store_b.clone()).ttl(ttl).build();
    let mut listeners = [
        store_a.spawn_revocation_listener(cache_a.clone()),
        store_b.spawn_revocation_listener(cache_b.clone()),
    ];
    for (name, listener) in ["A", "B"].iter().zip(&mut listeners) {
        tokio::time::timeout(Duration::from_secs(5), listener.listening())
            .await
            .unwrap_or_else(|_| panic!("listener {name}: not listening within 5 s"));
    }
    TwoInstances {
        store_a,
        cache_a,
        cache_b,
        listeners,
    }
}
