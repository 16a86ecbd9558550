//! Issue 12: zdm under faults, on a real PostgreSQL.
//!
//! * Kill at every boundary: the probe app (`tests/two_builds`, built with `--features
//!   faults`) runs a migration set — transactional files, a `no_transaction` file with two
//!   concurrent index builds, a batched backfill, a deferred drop, an after_deploy file —
//!   and aborts at zdm's k-th boundary (`ZDM_FAILPOINT=k`: between statements, before and
//!   after each commit), then runs again to the end. After every case each migration ran
//!   once, the ledger and its history agree, no INVALID index is left, no lease is held
//!   and the 100,000-row table is unchanged except where the migrations change it.
//!   CI runs one case per kind of boundary; `ZDM_FAULTS_FULL=1` runs every boundary.
//! * Connection faults: the server terminates the migrator's connection in the middle of
//!   a migration; the error is clear, nothing is half-recorded, the next run finishes. A
//!   private server (the system's `initdb`) restarts between two migrations: zdm resumes.
//! * Many instances: 16 processes boot at once against 50 migrations.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{db_url, TestDb};
use zdm::sqlx::{self, Connection, PgPool};

fn probe() -> &'static PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| common::build_probe(&["faults"], "zdm_fault_probe"))
}

async fn scalar<T>(pool: &PgPool, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

/// Checks every invariant of a finished `faults` run; returns the data checksum.
async fn finished_correctly(pool: &PgPool, case: &str) -> String {
    let effects: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, count(*) FROM effects GROUP BY 1 ORDER BY 1").fetch_all(pool).await.unwrap();
    assert_eq!(effects, [(1, 1), (2, 1), (4, 1), (5, 1), (6, 1)], "{case}: a migration ran twice or not at all");
    let ledger: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM zdm_migrations ORDER BY version").fetch_all(pool).await.unwrap();
    assert_eq!(ledger, (1..=6).map(|v| (v, true)).collect::<Vec<_>>(), "{case}: ledger");
    let successes: i64 =
        scalar(pool, "SELECT count(*) FROM zdm_migration_attempts WHERE success GROUP BY version HAVING count(*) > 1 UNION ALL SELECT 0 LIMIT 1").await;
    assert_eq!(successes, 0, "{case}: a version has two successful attempts");
    let attempts_ok: bool = scalar(
        pool,
        "SELECT bool_and(EXISTS (SELECT 1 FROM zdm_migration_attempts a WHERE a.version = m.version AND a.success \
         AND a.checksum = m.checksum)) FROM zdm_migrations m",
    )
    .await;
    assert!(attempts_ok, "{case}: a ledger row has no matching successful attempt");
    let indexes: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'items'::regclass AND NOT i.indisprimary ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [("items_note_idx".into(), true), ("items_payload_idx".into(), true)],
        "{case}: indexes (an INVALID leftover or a missing index)"
    );
    let touched: Vec<(i32, i64)> =
        sqlx::query_as("SELECT touched, count(*) FROM items GROUP BY 1").fetch_all(pool).await.unwrap();
    assert_eq!(touched, [(1, 100_000)], "{case}: the backfill skipped or repeated a batch");
    let legacy: bool = scalar(
        pool,
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'legacy')",
    )
    .await;
    assert!(!legacy, "{case}: the deferred drop did not happen");
    // A killed holder's lease lapses by itself within its TTL (1 s in the probe); a live
    // run gives it back when it ends.
    let started = Instant::now();
    while scalar::<i64>(pool, "SELECT count(*) FROM zdm_lease WHERE expires_at > clock_timestamp()").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(3), "{case}: the lease is held past its TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scalar(pool, "SELECT count(*) || ':' || md5(string_agg(id || ':' || payload || ':' || coalesce(note, '-'), ',' ORDER BY id)) FROM items").await
}

fn run_probe(url: &str, failpoint: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(probe());
    cmd.args(["faults", url]).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(k) = failpoint {
        cmd.env("ZDM_FAILPOINT", k);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_at_every_boundary_the_next_run_finishes_exactly_once() {
    // The reference run lists every boundary the set passes.
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let (ok, out) = run_probe(&db_url(&db), Some("0"));
    assert!(ok, "{out}");
    let boundaries: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("zdm boundary "))
        .map(|l| l.split_once(": ").map(|(_, what)| what.to_string()).unwrap_or_default())
        .collect();
    assert!(boundaries.len() >= 12, "{out}");
    let reference = finished_correctly(&pool, "reference run").await;
    drop(pool);
    drop(db);

    let full = std::env::var("ZDM_FAULTS_FULL").is_ok_and(|v| v == "1");
    // Each case: a boundary's name and which occurrence of it. CI: the first and the last
    // occurrence of each kind; full: every occurrence the reference run passed.
    let mut cases: Vec<(String, u64)> = Vec::new();
    let mut kinds: Vec<&String> = Vec::new();
    for what in &boundaries {
        if !kinds.contains(&what) {
            kinds.push(what);
        }
    }
    for what in kinds {
        let n = boundaries.iter().filter(|b| *b == what).count() as u64;
        let picks: Vec<u64> = if full {
            (1..=n).collect()
        } else if n > 1 {
            vec![1, n]
        } else {
            vec![1]
        };
        cases.extend(picks.into_iter().map(|k| (what.clone(), k)));
    }
    let mut table: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for (what, k) in cases {
        let db = TestDb::new().await;
        let url = db_url(&db);
        let failpoint = format!("{what}#{k}");
        let (ok, out) = run_probe(&url, Some(&failpoint));
        let entry = table.entry(what.clone()).or_default();
        if ok {
            // The adaptive backfill may take fewer batches than the reference run: this
            // occurrence was not reached; the run still has to be correct.
            entry.2 += 1;
        } else {
            assert!(out.contains("zdm failpoint "), "case {failpoint} died without the failpoint:\n{out}");
            let (ok, out) = run_probe(&url, None);
            assert!(ok, "case {failpoint}: the run after the kill failed:\n{out}");
            entry.0 += 1;
        }
        let pool = db.pool(2).await;
        let checksum = finished_correctly(&pool, &format!("killed at {failpoint}")).await;
        assert_eq!(checksum, reference, "case {failpoint}: the table's data changed");
        drop(pool);
    }
    eprintln!("kill at | killed and resumed | failures | occurrence not reached");
    for (what, (n, failed, unreached)) in &table {
        eprintln!("{what} | {n} | {failed} | {unreached}");
    }
    eprintln!(
        "boundaries in one run: {}; cases killed: {}",
        boundaries.len(),
        table.values().map(|v| v.0).sum::<u32>()
    );
}

/// Waits until a session of this database runs a statement that contains `prefix`.
async fn backend_running(pool: &PgPool, prefix: &str) -> i32 {
    let started = Instant::now();
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
             AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid() LIMIT 1",
        )
        .bind(prefix)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no session ran {prefix}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The server closes the migrator's connection in the middle of a migration (a failover,
/// an operator's `pg_terminate_backend`): run_pre reports it, nothing of the migration is
/// recorded as applied, and the next run_pre applies it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_closed_mid_migration_is_reported_and_the_next_run_finishes() {
    for (dir, statement, effects_after_kill) in [("slow_once", "pg_sleep(6)", 0), ("slow_notx", "pg_sleep(2)", 1)] {
        let db = TestDb::new().await;
        let pool = db.pool(4).await;
        let m = move || {
            match dir {
                "slow_once" => zdm::migrator!("tests/migrations/slow_once"),
                _ => zdm::migrator!("tests/migrations/slow_notx"),
            }
            .without_registration()
            .lease_ttl(Duration::from_secs(2))
        };
        let run = tokio::spawn({
            let pool = pool.clone();
            async move { m().run_pre(&pool).await }
        });
        let pid = backend_running(&pool, statement).await;
        let killed: bool =
            sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&pool).await.unwrap();
        assert!(killed);
        let err = run.await.unwrap().unwrap_err().to_string();
        assert!(err.contains("migration 2") || err.contains("database error"), "{dir}: {err}");
        assert!(err.contains("terminat") || err.contains("connection") || err.contains("closed"), "{dir}: {err}");
        let applied: i64 = scalar(&pool, "SELECT count(*) FROM zdm_migrations WHERE version = 2 AND success").await;
        assert_eq!(applied, 0, "{dir}: recorded as applied although it did not finish");
        let effects: i64 = scalar(&pool, "SELECT count(*) FROM effects").await;
        assert_eq!(effects, effects_after_kill, "{dir}");
        let report = m().run_pre(&pool).await.unwrap();
        assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2], "{dir}: {report}");
        let applied: i64 =
            scalar(&pool, "SELECT count(*) FROM zdm_migration_attempts WHERE version = 2 AND success").await;
        assert_eq!(applied, 1, "{dir}");
        eprintln!("{dir}: connection terminated mid-migration -> {err}");
    }
}

/// 16 processes boot at once against one database and 50 migrations: each migration is
/// applied once, all 16 register, every boot ends within the lease wait, and no waiter
/// holds a transaction open while it waits.
#[tokio::test(flavor = "multi_thread")]
async fn sixteen_processes_boot_at_once() {
    let bin = probe();
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = db_url(&db);
    let started = Instant::now();
    let mut children: Vec<_> = (0..16)
        .map(|_| {
            Command::new(bin)
                .args(["many", &url, "2500"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // While they boot: no session of this database may wait long on a lock inside a
    // transaction (waiters poll outside transactions; registrations queue briefly).
    let mut longest_xact = 0.0f64;
    let mut registered = std::collections::HashSet::new();
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert!(started.elapsed() < Duration::from_secs(90), "the boots did not finish");
        // A waiter is a session waiting on a lock: none may do that inside a transaction.
        let longest: Option<f64> = sqlx::query_scalar(
            "SELECT max(extract(epoch FROM clock_timestamp() - xact_start))::float8 FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        longest_xact = longest_xact.max(longest.unwrap_or(0.0));
        // Every process that registered (a quick one may have stopped before a slow one
        // registered: ids seen at any sample count).
        if let Ok(ids) = sqlx::query_scalar::<_, String>("SELECT id FROM zdm_instances WHERE app_name = 'many'")
            .fetch_all(&pool)
            .await
        {
            registered.extend(ids);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut boot_ms = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        let line = text.lines().find_map(|l| l.strip_prefix("booted ")).unwrap_or_else(|| panic!("{text}"));
        boot_ms.push(line.split(' ').next().unwrap().parse::<u64>().unwrap());
    }
    let per_version: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, count(*) FROM many_effects GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(per_version, (1..=50).map(|v| (v, 1)).collect::<Vec<_>>(), "each migration applied once");
    let attempts: i64 = scalar(&pool, "SELECT count(*) FROM zdm_migration_attempts WHERE success").await;
    assert_eq!(attempts, 50);
    assert_eq!(registered.len(), 16, "all 16 processes registered");
    assert!(longest_xact < 1.0, "a session waited on a lock in a transaction open for {longest_xact:.2} s");
    boot_ms.sort_unstable();
    assert!(*boot_ms.last().unwrap() < 60_000, "a boot outlasted the lease wait: {boot_ms:?}");
    eprintln!(
        "16 processes, 50 migrations: boot ms min {} median {} max {}; longest transaction waiting on a lock {:.3} s",
        boot_ms[0], boot_ms[8], boot_ms[15], longest_xact
    );
}

/// The server restarts between two migrations (here: while migration 2 waits out a lock
/// between its attempts): zdm resumes on fresh connections or stops with a clear error,
/// and a run after it finishes; every migration is recorded once, none half.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_restart_between_migrations_leaves_a_consistent_ledger() {
    let Some(server) = common::PrivateServer::start() else {
        assert!(std::env::var("CI").is_err(), "CI needs initdb for the restart test");
        eprintln!("skipped: no initdb on this machine");
        return;
    };
    let url = server.url("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(4).connect(&url).await.unwrap();
    let m = || {
        zdm::migrator!("tests/migrations/restart")
            .without_registration()
            .lock_timeout(Duration::from_millis(100))
            .lock_retries(40, Duration::from_millis(300))
            .lease_ttl(Duration::from_secs(2))
    };
    m().up_to(1).run_pre(&pool).await.unwrap();
    // A session holds a lock migration 2 needs; the restart ends it.
    let mut blocker = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE t IN ACCESS SHARE MODE").execute(&mut blocker).await.unwrap();
    let run = tokio::spawn({
        let pool = pool.clone();
        async move { m().run_pre(&pool).await }
    });
    tokio::time::sleep(Duration::from_millis(900)).await;
    let restarted = Instant::now();
    server.restart();
    let first = run.await.unwrap();
    eprintln!(
        "server restarted ({:.1} s); the run: {:?}",
        restarted.elapsed().as_secs_f64(),
        first.as_ref().map(|r| r.applied.len())
    );
    let fresh = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    match &first {
        Ok(report) => assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2, 3], "{report}"),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("database error while") || text.contains("migration 2"), "{text}");
            let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_migrations WHERE success")
                .fetch_one(&fresh)
                .await
                .unwrap();
            assert!(applied >= 1, "{text}");
            let report = m().run_pre(&fresh).await.unwrap();
            assert!(!report.applied.is_empty(), "{report}");
        }
    }
    let effects: Vec<(i64, i64)> =
        sqlx::query_as("SELECT version, count(*) FROM effects GROUP BY 1 ORDER BY 1").fetch_all(&fresh).await.unwrap();
    assert_eq!(effects, [(1, 1), (2, 1), (3, 1)]);
    let ledger: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM zdm_migrations ORDER BY 1").fetch_all(&fresh).await.unwrap();
    assert_eq!(ledger, [(1, true), (2, true), (3, true)]);
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT version FROM zdm_migration_attempts WHERE success GROUP BY 1 HAVING count(*) > 1) x",
    )
    .fetch_one(&fresh)
    .await
    .unwrap();
    assert_eq!(twice, 0);
    drop(pool);
    fresh.close().await;
}
