//! Test databases: each test gets a fresh PostgreSQL database (dropped afterwards, even
//! when the test panics) or a fresh SQLite file. `DATABASE_URL` points at the server
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use zdm::sqlx::{ConnectOptions, Connection, PgConnection, PgPool, SqlitePool};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A fresh PostgreSQL database, dropped when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = unique_name("zdm_test");
        let admin: PgConnectOptions = server_url().parse().expect("DATABASE_URL must be a postgres:// URL");
        let mut conn = admin.connect().await.unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {} ({e}); run the tests with scripts/test, which starts one",
                server_url()
            )
        });
        zdm::sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        TestDb { options: admin.database(&name), name }
    }

    /// A pool of up to `max` connections to this database.
    pub async fn pool(&self, max: u32) -> PgPool {
        PgPoolOptions::new().max_connections(max).connect_with(self.options.clone()).await.unwrap()
    }

    pub async fn conn(&self) -> PgConnection {
        self.options.connect().await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await; a plain thread with its own runtime works inside or outside one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let admin: PgConnectOptions = server_url().parse().unwrap();
                if let Ok(mut conn) = admin.connect().await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = zdm::sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            })
        })
        .join();
    }
}

/// A fresh SQLite database file, removed when this value is dropped.
pub struct TestSqlite {
    pub path: std::path::PathBuf,
}

impl TestSqlite {
    pub fn new() -> TestSqlite {
        TestSqlite { path: std::env::temp_dir().join(format!("{}.db", unique_name("zdm_test"))) }
    }

    pub async fn pool(&self, max: u32) -> SqlitePool {
        let options = SqliteConnectOptions::new().filename(&self.path).create_if_missing(true);
        SqlitePoolOptions::new().max_connections(max).connect_with(options).await.unwrap()
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// Versions in a status, by state.
pub fn versions<'a>(rows: impl Iterator<Item = &'a zdm::StatusRow>) -> Vec<i64> {
    rows.map(|r| r.version).collect()
}

/// The columns of `table` (any schema on the search path), in order.
pub async fn columns(pool: &PgPool, table: &str) -> Vec<String> {
    zdm::sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// `url` (a `postgres://` URL, with or without a database) naming the database `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (url, None),
    };
    let authority_at = url.find("://").map_or(0, |i| i + 3);
    let base = match url[authority_at..].find('/') {
        Some(slash) => &url[..authority_at + slash],
        None => url,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// The URL of `db` on the server itself (no pooler in between).
pub fn direct_url(db: &TestDb) -> String {
    with_database(&server_url(), &db.name)
}

/// Whether the tests run under CI, where nothing may be skipped for want of a tool.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The URL of `db` through a PgBouncer in transaction pooling mode: `ZDM_PGBOUNCER_URL`
/// (set by scripts/test, which starts one; no database name) with `db`'s name appended.
/// None when it is unset, after saying so on stderr: the caller skips. Under CI an unset
/// one is an error (panics): the PgBouncer tests must not pass by skipping.
pub fn pgbouncer_url(db: &TestDb) -> Option<String> {
    match std::env::var("ZDM_PGBOUNCER_URL") {
        Ok(base) if !base.trim().is_empty() => Some(with_database(base.trim(), &db.name)),
        _ if in_ci() => panic!(
            "CI is set but ZDM_PGBOUNCER_URL is not: scripts/test starts a PgBouncer when the \
             `pgbouncer` binary is installed (.ci/run installs it with apt-get install pgbouncer)"
        ),
        _ => {
            // Straight to stderr: the test harness captures eprintln! of passing tests.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no PgBouncer (ZDM_PGBOUNCER_URL is unset). Run the tests with scripts/test, which \
                 starts one when `pgbouncer` is installed (Debian/Ubuntu: apt-get install pgbouncer)"
            );
            None
        }
    }
}

/// Connect options for `db` through PgBouncer as users configure sqlx behind it: no
/// statement cache. None when there is no PgBouncer (see [`pgbouncer_url`]).
pub fn pgbouncer_options(db: &TestDb) -> Option<PgConnectOptions> {
    let url = pgbouncer_url(db)?;
    let options: PgConnectOptions =
        url.parse().unwrap_or_else(|e| panic!("ZDM_PGBOUNCER_URL must be a postgres:// URL ({url}: {e})"));
    Some(options.statement_cache_capacity(0))
}

/// A pool of up to `max` connections to `db` through PgBouncer (see [`pgbouncer_options`]).
pub async fn pgbouncer_pool(db: &TestDb, max: u32) -> Option<PgPool> {
    let options = pgbouncer_options(db)?;
    let pool = PgPoolOptions::new().max_connections(max).connect_with(options).await.unwrap_or_else(|e| {
        panic!("cannot connect to {} through PgBouncer at {:?} ({e})", db.name, std::env::var("ZDM_PGBOUNCER_URL"))
    });
    Some(pool)
}

/// Builds the probe app `tests/two_builds` with `features` (in `target/zdm-probes`, shared
/// by every test that builds it) and returns a copy of its binary named `copy_as`.
pub fn build_probe(features: &[&str], copy_as: &str) -> std::path::PathBuf {
    use std::path::PathBuf;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let app = repo.join("tests/two_builds");
    let target = repo.join("target/zdm-probes");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet"]).current_dir(&app).env("CARGO_TARGET_DIR", &target);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "probe build failed: {}", String::from_utf8_lossy(&out.stderr));
    // Copied under a name of this process's own, then renamed over the shared one: another
    // test process may be running the previous copy, and writing into a running binary
    // fails (ETXTBSY) where replacing its directory entry does not.
    let copy = target.join(copy_as);
    let staged = target.join(format!("{copy_as}.{}.tmp", std::process::id()));
    std::fs::copy(target.join("debug/zdm_two_builds"), &staged).unwrap();
    std::fs::rename(&staged, &copy).unwrap();
    copy
}

/// The URL of a test database on the server `DATABASE_URL` names.
pub fn db_url(db: &TestDb) -> String {
    let base = server_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{}", db.name)
}

/// A PostgreSQL server of the test's own (the system's `initdb`/`pg_ctl`, as user `zdmpg`
/// when the tests run as root), for faults that would disturb a shared server: a restart.
/// Stopped and removed when dropped. `None` when the system has no `initdb`.
pub struct PrivateServer {
    dir: std::path::PathBuf,
    bindir: std::path::PathBuf,
    pub port: u16,
    as_root: bool,
}

impl PrivateServer {
    pub fn start() -> Option<PrivateServer> {
        use std::process::Command;
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        let as_root = Command::new("id").arg("-u").output().ok().is_some_and(|o| o.stdout.starts_with(b"0\n"));
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("zdm-private-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = PrivateServer { dir, bindir, port, as_root };
        if as_root {
            let _ = Command::new("useradd").args(["--system", "--no-create-home", "zdmpg"]).output();
            let ok = Command::new("chown").arg("zdmpg").arg(&server.dir).status().unwrap().success();
            assert!(ok, "chown of the private server's directory failed");
        }
        let data = server.dir.join("data");
        server.pg(&["initdb", "-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        server.ctl("start");
        Some(server)
    }

    fn pg(&self, args: &[&str]) {
        let mut cmd = if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "zdmpg", "--"]).arg(self.bindir.join(args[0]));
            c
        } else {
            std::process::Command::new(self.bindir.join(args[0]))
        };
        let out = cmd.args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let mut args = vec!["pg_ctl", "-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "-o", &opts];
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.pg(&args);
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every connection is closed.
    pub fn restart(&self) {
        self.ctl("restart");
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let mut cmd = if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "zdmpg", "--"]).arg(self.bindir.join("pg_ctl"));
            c
        } else {
            std::process::Command::new(self.bindir.join("pg_ctl"))
        };
        let _ = cmd.args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
