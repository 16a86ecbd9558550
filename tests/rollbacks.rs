//! Issue 19: the gate, the lease and the drops stay safe under rollbacks and races, on a
//! real PostgreSQL. Each test is an operator's story that broke before: a rolled-back
//! build's run_post, two pending drops on one table, a lease that lapses during a long
//! migration, a lease taken over, a boot timeout that cancels run_pre, a column removed by
//! a plain after_deploy statement, a process that cannot heartbeat. The stories that need
//! two real processes are in `tests/two_builds.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{columns, TestDb};
use zdm::sqlx::{self, PgPool};

/// This binary's model structs: the build that still maps `notes.extra` and reads `old_log`.
#[derive(sqlx::FromRow, Debug)]
#[zdm::model(table = "notes")]
#[allow(dead_code)]
struct Note {
    id: i64,
    body: String,
    extra: Option<String>,
}

#[derive(sqlx::FromRow, Debug)]
#[zdm::model(table = "old_log")]
#[allow(dead_code)]
struct OldLog {
    id: i64,
}

/// Waits until a session of this database runs a statement containing `text`.
async fn wait_for_statement(pool: &PgPool, text: &str) {
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
             AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
        )
        .bind(text)
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no session ran {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops `run` (as a boot timeout would) once its migration runs `text`.
async fn cancel_while_running<F: std::future::Future<Output = Result<zdm::Report, zdm::Error>>>(
    run: F,
    watch: &PgPool,
    text: &str,
) {
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => panic!("the migration finished before it could be cancelled: {r:?}"),
        _ = async {
            wait_for_statement(watch, text).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        } => {}
    }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(pool).await.unwrap()
}

/// Decision 17: the calling process is a live build. The older build (without the
/// migration that scheduled the drops) runs run_post and run_post_when_safe alone: nothing
/// is dropped and status names this build as the blocker; the newer build drops later.
#[tokio::test]
async fn a_rolled_back_build_keeps_what_its_migrations_do_not_retire() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let new = || zdm::migrator!("tests/migrations/deferred").without_registration();
    let old = || new().up_to(1);
    assert_eq!(new().run_pre(&pool).await.unwrap().applied.len(), 2);

    let report = old().run_post(&pool).await.unwrap();
    assert!(report.dropped.is_empty(), "{report}");
    assert!(report.notices.iter().any(|n| n.contains("this build does not embed migration 2")), "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy"]);
    let status = old().status(&pool).await.unwrap();
    assert_eq!(status.deferred.len(), 2);
    for d in &status.deferred {
        assert!(d.blockers.contains(&zdm::Blocker::ThisBuild { version: 2 }), "{:?}", d.blockers);
    }
    assert!(status.to_string().contains("this build does not embed migration 2"), "{status}");

    // run_post_when_safe in the old build returns instead of waiting forever, dropping nothing.
    let report = tokio::time::timeout(Duration::from_secs(20), old().run_post_when_safe(&pool))
        .await
        .expect("run_post_when_safe returned")
        .unwrap();
    assert!(report.dropped.is_empty() && report.notices.iter().any(|n| n.contains("does not embed")), "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy"]);
    sqlx::query("INSERT INTO posts (title, legacy) VALUES ('old build', 'still written')")
        .execute(&pool)
        .await
        .unwrap();

    // The build that includes migration 2 carries the drops out.
    let report = new().run_post(&pool).await.unwrap();
    assert_eq!(report.dropped.len(), 2, "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title"]);
}

/// Two pending drops on one table: each column has its own read-only trigger; a trigger
/// that goes missing is put back by the next run_post, and the other one is untouched.
#[tokio::test]
async fn two_pending_drops_on_one_table_each_stay_read_only() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/two_drops").without_registration();
    let report = m.run_all(&pool).await.unwrap();
    assert_eq!(report.dropped.len(), 2, "{report}");
    assert!(report.dropped.iter().all(|d| d.starts_with("made read-only")), "{report}");
    let rejected = |column: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = format!("INSERT INTO posts (title, {column}) VALUES ('x', 'y')");
            match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await {
                Ok(_) => false,
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("column public.posts.{column} is read-only")), "{msg}");
                    true
                }
            }
        }
    };
    assert!(rejected("a").await && rejected("b").await, "both columns are protected");
    sqlx::query("INSERT INTO posts (title) VALUES ('fine')").execute(&pool).await.unwrap();
    let triggers = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let names = triggers().await;
    assert_eq!(names.len(), 2, "{names:?}");

    // Someone removes one protection (a restore, a cleanup script): writes to `a` pass.
    let a_id: i64 = count(&pool, "SELECT id FROM zdm_deferred_drops WHERE column_name = 'a'").await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER \"zdm_read_only_{a_id}\" ON posts")))
        .execute(&pool)
        .await
        .unwrap();
    assert!(!rejected("a").await && rejected("b").await);
    let report = m.run_post(&pool).await.unwrap();
    assert_eq!(report.dropped.len(), 1, "{report}");
    assert!(report.dropped[0].contains("posts.a"), "{report}");
    assert!(rejected("a").await && rejected("b").await, "re-installed, and b never lost its own");
    assert_eq!(triggers().await, names);
}

/// The lease renews on a connection of its own: a 6 s migration on a pool whose other
/// connection the app holds for twice the lease's TTL keeps its lease, and a second
/// migrator that arrives meanwhile waits and then finds the work done. The migration's
/// side effect happens once.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_migration_keeps_its_lease_while_the_app_holds_the_pool() {
    let db = TestDb::new().await;
    let pool_a = db.pool(2).await;
    let pool_b = db.pool(2).await;
    let m = || {
        zdm::migrator!("tests/migrations/slow_once")
            .lease_ttl(Duration::from_secs(2))
            .lock_wait(Duration::from_secs(30))
            .without_registration()
    };
    let first = tokio::spawn({
        let pool = pool_a.clone();
        async move { m().run_pre(&pool).await }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The app takes the pool's other connection and keeps it for 2 × lease_ttl.
    let held = pool_a.acquire().await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(held);
    });
    tokio::time::sleep(Duration::from_millis(2800)).await;
    let second = m().run_pre(&pool_b).await.unwrap();
    let first = first.await.unwrap().unwrap();
    release.await.unwrap();
    assert_eq!(first.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2], "{first}");
    assert!(second.applied.is_empty(), "the second migrator re-ran: {second}");
    assert_eq!(count(&pool_a, "SELECT count(*) FROM effects").await, 1, "the side effect ran twice");
    assert_eq!(count(&pool_a, "SELECT count(*) FROM zdm_migration_attempts WHERE version = 2").await, 1);
}

/// The lease fences its holder: a migrator whose lease was taken over while it worked
/// commits nothing (transactional file: rolled back at the ledger write) or stops before
/// its next statement (no_transaction file), and says who holds the lease.
#[tokio::test(flavor = "multi_thread")]
async fn a_migrator_that_lost_its_lease_commits_nothing_more() {
    for (dir, wait_ms, expected) in [("slow_once", 300, 0), ("slow_notx", 300, 1)] {
        let db = TestDb::new().await;
        let pool = db.pool(4).await;
        let m = match dir {
            "slow_once" => zdm::migrator!("tests/migrations/slow_once"),
            _ => zdm::migrator!("tests/migrations/slow_notx"),
        }
        .without_registration();
        let run = tokio::spawn({
            let pool = pool.clone();
            async move { m.run_pre(&pool).await }
        });
        // Steal it while migration 2 sleeps (after its first statement).
        wait_for_statement(&pool, "pg_sleep").await;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        sqlx::query("UPDATE zdm_lease SET owner = 'thief', expires_at = now() + interval '1 hour'")
            .execute(&pool)
            .await
            .unwrap();
        let err = run.await.unwrap().unwrap_err();
        assert!(matches!(err, zdm::Error::LeaseLost { ref holder } if holder == "thief"), "{dir}: {err}");
        assert!(err.to_string().contains("lost the migration lease to `thief`"), "{err}");
        assert_eq!(count(&pool, "SELECT count(*) FROM effects").await, expected, "{dir}");
        assert_eq!(count(&pool, "SELECT count(*) FROM zdm_migrations WHERE version = 2 AND success").await, 0);
    }
}

/// A boot timeout drops run_pre inside a `no_transaction` migration: the app's pooled
/// connection carries none of its settings, the lease is given back at once, its
/// statement does not run on, and the next run_pre continues from the ledger.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_boot_leaves_no_setting_no_lease_and_resumes() {
    let db = TestDb::new().await;
    let pool = db.pool(1).await;
    let m = || zdm::migrator!("tests/migrations/cancel_notx").without_registration();
    m().up_to(1).run_pre(&pool).await.unwrap();
    let watch = db.pool(1).await;
    cancel_while_running(m().run_pre(&pool), &watch, "pg_sleep(5)").await;

    let mut fresh = db.conn().await;
    for setting in ["lock_timeout", "statement_timeout", "zdm.migration_version"] {
        let sql = format!("SELECT current_setting('{setting}', true)");
        let on_pool: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).fetch_one(&pool).await.unwrap();
        let on_fresh: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut fresh).await.unwrap();
        // A custom setting once set LOCAL in a session reads as "" afterwards: the same as unset.
        let norm = |v: Option<String>| v.filter(|v| !v.is_empty());
        assert_eq!(norm(on_pool), norm(on_fresh), "{setting} leaked onto the pooled connection");
    }
    let started = Instant::now();
    while count(&pool, "SELECT count(*) FROM zdm_lease").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the lease stayed held after the cancel");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                    AND query LIKE 'SELECT pg_sleep(5)%' AND state = 'active'";
    while count(&pool, sleeping).await > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the cancelled statement ran on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = m().run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2], "{report}");
    assert_eq!(count(&pool, "SELECT count(*) FROM t").await, 1);
}

/// Decision 15 for every way a column goes: a plain `ALTER TABLE .. DROP COLUMN` and
/// `DROP TABLE` in an after_deploy migration are recorded, and a build whose structs map
/// them (this test binary) refuses to boot, naming the column and the migration.
#[tokio::test]
async fn a_build_refuses_to_boot_after_a_plain_drop_of_what_it_maps() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = || zdm::migrator!("tests/migrations/removed").without_registration();
    let report = m().run_all(&pool).await.unwrap();
    assert_eq!(report.applied.len(), 2, "{report}");
    let recorded: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT table_name, column_name, scheduled_by FROM zdm_deferred_drops WHERE state = 'dropped' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(recorded, [("notes".into(), Some("extra".into()), 2), ("old_log".into(), None, 2)]);

    let err = m().run_pre(&pool).await.unwrap_err().to_string();
    assert!(err.contains("maps what run_post already removed"), "{err}");
    assert!(err.contains("public.notes.extra") && err.contains("migration 2") && err.contains("Note"), "{err}");

    // Re-added by a later change: the build maps an existing column again and boots.
    sqlx::query("ALTER TABLE notes ADD COLUMN extra TEXT").execute(&pool).await.unwrap();
    sqlx::query("CREATE TABLE old_log (id BIGSERIAL PRIMARY KEY)").execute(&pool).await.unwrap();
    m().run_pre(&pool).await.unwrap();
}

/// Decision 18: when this process's own heartbeat cannot reach the registry, the gate
/// stays closed (the registry may be as stale as its own row); it opens again once the
/// heartbeat gets through.
#[tokio::test(flavor = "multi_thread")]
async fn the_gate_stays_closed_while_this_process_cannot_heartbeat() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = || {
        zdm::migrator!("tests/migrations/deferred")
            .heartbeat(Duration::from_millis(100))
            .instance_ttl(Duration::from_secs(1))
    };
    let report = m().run_pre(&pool).await.unwrap();
    let instance = report.instance.unwrap();
    // Another session locks the registry: every heartbeat write waits.
    let mut blocker = db.conn().await;
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("LOCK TABLE zdm_instances IN EXCLUSIVE MODE").execute(&mut blocker).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let status = m().status(&pool).await.unwrap();
    for d in &status.deferred {
        assert!(d.blockers.iter().any(|b| b.to_string().contains("own heartbeat")), "{:?}", d.blockers);
    }
    let report = m().run_post(&pool).await.unwrap();
    assert!(report.dropped.is_empty() && report.applied.is_empty(), "{report}");
    assert!(report.notices.iter().any(|n| n.contains("own heartbeat")), "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy"]);

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let started = Instant::now();
    let mut report = m().run_post(&pool).await.unwrap();
    while report.dropped.is_empty() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = m().run_post(&pool).await.unwrap();
    }
    assert_eq!(report.dropped.len(), 2, "{report}");
    instance.stop().await.unwrap();
}

/// `table_prefix` is spliced into names and literals: anything but a plain identifier is
/// refused with the setting named, before any SQL runs.
#[tokio::test]
async fn an_unusable_table_prefix_is_refused() {
    let db = TestDb::new().await;
    let pool = db.pool(1).await;
    for bad in ["zdm'; DROP TABLE x; --", "my prefix", "1zdm_", "ü_"] {
        let err = zdm::migrator!("tests/migrations/removed").table_prefix(bad).run_pre(&pool).await.unwrap_err();
        assert!(matches!(err, zdm::Error::Config(_)) && err.to_string().contains("table_prefix"), "{err}");
    }
    let tables = count(&pool, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").await;
    assert_eq!(tables, 0, "nothing was created");
    let m = zdm::migrator!("tests/migrations/removed").table_prefix("App_1_").without_registration();
    m.run_all(&pool).await.unwrap();
    assert_eq!(count(&pool, "SELECT count(*) FROM \"App_1_migrations\"").await, 2);
}

/// A rolled-back build that relies on a column's default: the read-only step dropped the
/// default; when the build that predates the drop registers again, the trigger is lifted
/// and the default restored, so its inserts that leave the column out work as before.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_build_gets_its_column_writable_with_its_default_again() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let new = || zdm::migrator!("tests/migrations/deferred_delay").heartbeat(Duration::from_millis(200));
    let report = new().run_all(&pool).await.unwrap();
    assert!(report.dropped.iter().any(|d| d.contains("made read-only") && d.contains("legacy")), "{report}");
    let default: Option<String> = sqlx::query_scalar(
        "SELECT column_default FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'legacy'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(default, None, "the read-only step drops the default");

    // The old build (without migration 2) boots again in this process.
    let report = new().up_to(1).run_pre(&pool).await.unwrap();
    assert!(report.dropped.iter().any(|d| d.contains("made writable again") && d.contains("legacy")), "{report}");
    sqlx::query("INSERT INTO posts (title) VALUES ('old build')").execute(&pool).await.unwrap();
    let legacy: Option<String> =
        sqlx::query_scalar("SELECT legacy FROM posts WHERE title = 'old build'").fetch_one(&pool).await.unwrap();
    assert_eq!(legacy.as_deref(), Some("old"), "the default is back");
    sqlx::query("UPDATE posts SET legacy = 'written'").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO old_audit (note) VALUES ('old build')").execute(&pool).await.unwrap();
    report.instance.unwrap().stop().await.unwrap();
}

/// Each row counts as live for its own build's TTL: a build configured with a short
/// `instance_ttl` does not take an old build that beats less often for gone.
#[tokio::test]
async fn an_old_build_with_a_longer_ttl_counts_as_live() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = || zdm::migrator!("tests/migrations/deferred").without_registration().instance_ttl(Duration::from_secs(1));
    m().run_pre(&pool).await.unwrap();
    // Its last beat was 3 s ago; it beats every 10 s with a 30 s TTL.
    sqlx::query(
        "INSERT INTO zdm_instances (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at, \
         embedded, mapped, ignored, ttl_s) VALUES ('old:1:1', 'blog', '1.0.0', 'old', 1, '0.1.0', now(), \
         clock_timestamp() - interval '3 seconds', '{1}', '{}', '{}', 30)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let report = m().run_post(&pool).await.unwrap();
    assert!(report.dropped.is_empty() && report.applied.is_empty(), "{report}");
    assert!(report.notices.iter().any(|n| n.contains("blog 1.0.0 on old")), "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy"]);
}

/// An after_deploy migration that drops a column waits while a live build's struct still
/// maps it, like a deferred drop does.
#[tokio::test]
async fn a_plain_after_deploy_drop_waits_for_a_build_that_maps_it() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = || zdm::migrator!("tests/migrations/removed").without_registration();
    m().run_pre(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO zdm_instances (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at, \
         embedded, mapped, ignored) VALUES ('other:1:1', 'notes', '2.0.0', 'other', 1, '0.1.0', now(), \
         clock_timestamp(), '{1,2}', ARRAY[E'notes\\textra\\tnotes::Note'], '{}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // This test binary maps notes.extra itself too: both hold the migration back.
    let report = m().run_post(&pool).await.unwrap();
    assert!(report.applied.is_empty(), "{report}");
    let text = report.to_string();
    assert!(text.contains("after_deploy migration 2 waits") && text.contains("notes::Note"), "{text}");
    assert!(text.contains("struct `rollbacks::Note` of this build still maps notes.extra"), "{text}");
    assert_eq!(columns(&pool, "notes").await, ["id", "body", "extra"]);
}

/// A boot timeout inside a transactional migration: its transaction is rolled back with
/// the dropped connection, the lease is given back, nothing is recorded, and the next
/// run applies it once.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_boot_inside_a_transaction_leaves_nothing_behind() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = || zdm::migrator!("tests/migrations/slow_once").without_registration();
    m().up_to(1).run_pre(&pool).await.unwrap();
    let watch = db.pool(1).await;
    cancel_while_running(m().run_pre(&pool), &watch, "pg_sleep(6)").await;
    let started = Instant::now();
    while count(&pool, "SELECT count(*) FROM zdm_lease").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the lease stayed held after the cancel");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM zdm_migrations WHERE version = 2").await, 0);
    let report = m().run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2], "{report}");
    assert_eq!(count(&pool, "SELECT count(*) FROM effects").await, 1, "the cancelled run's insert was rolled back");
}
