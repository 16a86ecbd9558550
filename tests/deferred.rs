//! Deferred drops and the gate of post-deploy work, on PostgreSQL: a drop (and an
//! after_deploy migration) waits while a live instance runs a build that predates it, runs
//! once that instance is gone; a minimum delay makes the column or table read-only first.
//!
//! "Another instance" is a row in the real registry table, written as a second process
//! would write it; `tests/two_builds.rs` does the same with two real processes.

mod common;

use std::time::{Duration, Instant};

use common::{columns, TestDb};
use zdm::sqlx::{self, PgPool};

/// This test binary's model: it no longer maps `posts.legacy` and reads no `old_audit`.
#[derive(sqlx::FromRow, Debug)]
#[zdm::ignored_columns(table = "posts", columns(legacy))]
#[allow(dead_code)]
struct Post {
    id: i64,
    #[sqlx(rename = "title")]
    headline: String,
}

fn migrator() -> zdm::Migrator {
    // A long TTL: the simulated old build must stay live however slow the machine is.
    zdm::migrator!("tests/migrations/deferred")
        .heartbeat(Duration::from_millis(100))
        .instance_ttl(Duration::from_secs(60))
}

async fn table_exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL").bind(table).fetch_one(pool).await.unwrap()
}

/// Registers another process running a build that embeds only `embedded` and maps
/// `posts.legacy`, exactly as its `run_pre` would.
async fn old_instance(pool: &PgPool, embedded: &[i64]) {
    sqlx::query(
        "INSERT INTO zdm_instances (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at, \
         embedded, mapped, ignored) VALUES ('old-host:4242:1', 'blog', '1.0.0', 'old-host', 4242, '0.1.0', now(), \
         clock_timestamp(), $1, ARRAY[E'posts\\tid\\tblog::Post', E'posts\\tlegacy\\tblog::Post'], '{}')",
    )
    .bind(embedded)
    .execute(pool)
    .await
    .unwrap();
}

async fn old_instance_stops(pool: &PgPool) {
    sqlx::query("DELETE FROM zdm_instances WHERE id = 'old-host:4242:1'").execute(pool).await.unwrap();
}

#[tokio::test]
async fn drops_wait_for_the_old_build_then_run() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    migrator().up_to(1).run_pre(&pool).await.unwrap();
    old_instance(&pool, &[1]).await;
    sqlx::query("INSERT INTO posts (title, legacy) VALUES ('kept', 'old data')").execute(&pool).await.unwrap();

    // The new build's pre-deploy step schedules the drops; the old build keeps writing.
    let pre = migrator().run_pre(&pool).await.unwrap();
    assert_eq!(pre.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);
    sqlx::query("INSERT INTO posts (title, legacy) VALUES ('old build', 'still written')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO old_audit (note) VALUES ('old build')").execute(&pool).await.unwrap();
    // NOT NULL was relaxed (default kept), so the new build may insert without it.
    sqlx::query("INSERT INTO posts (title, legacy) VALUES ('new build', NULL)").execute(&pool).await.unwrap();

    // run_post: the old build is live, so neither the drops nor after_deploy 3 run.
    let post = migrator().run_post(&pool).await.unwrap();
    assert!(post.applied.is_empty() && post.dropped.is_empty(), "{post}");
    assert!(
        post.notices.iter().any(|n| n.contains("after_deploy migration 3 waits") && n.contains("old-host")),
        "{post}"
    );
    assert_eq!(columns(&pool, "posts").await, ["id", "title", "legacy"]);
    assert!(table_exists(&pool, "old_audit").await);

    let status = migrator().status(&pool).await.unwrap();
    assert_eq!(status.deferred.len(), 2);
    for d in &status.deferred {
        assert!(!d.dropped);
        assert!(d.blockers.iter().any(|b| b.to_string().contains("old-host pid 4242")), "{:?}", d.blockers);
    }
    let column = status.deferred.iter().find(|d| d.drop.to_string().contains("column")).unwrap();
    assert!(column.blockers.iter().any(|b| b.to_string().contains("blog::Post")), "the old build maps it");
    let shown = status.to_string();
    assert!(shown.contains("deferred drops:") && shown.contains("drop column public.posts.legacy"), "{shown}");
    assert!(shown.contains("3: waits for: blog 1.0.0 on old-host pid 4242"), "{shown}");

    // The old build stops: everything runs, and the data the new build uses is intact.
    old_instance_stops(&pool).await;
    let post = migrator().run_post(&pool).await.unwrap();
    assert_eq!(post.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    assert_eq!(post.dropped.len(), 2, "{post}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title"]);
    assert!(!table_exists(&pool, "old_audit").await);
    let titles: Vec<String> = sqlx::query_scalar("SELECT title FROM posts ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(titles, ["kept", "old build", "new build"]);
    let status = migrator().status(&pool).await.unwrap();
    assert!(status.deferred.iter().all(|d| d.dropped && d.blockers.is_empty()));
    assert!(migrator().run_post(&pool).await.unwrap().dropped.is_empty(), "a drop runs once");
}

#[tokio::test]
async fn a_delay_makes_the_column_and_table_read_only_first() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/deferred_delay");
    let started = Instant::now();
    let report = m.run_all(&pool).await.unwrap();
    assert_eq!(report.dropped.len(), 2, "{report}");
    assert!(report.dropped.iter().all(|d| d.starts_with("made read-only")), "{report}");

    let err = sqlx::query("INSERT INTO posts (title, legacy) VALUES ('a', 'b')").execute(&pool).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("column public.posts.legacy is read-only") && msg.contains("migration 2"), "{msg}");
    // New rows that leave it NULL work: the default was dropped with the trigger.
    sqlx::query("INSERT INTO posts (title) VALUES ('new')").execute(&pool).await.unwrap();
    sqlx::query("UPDATE posts SET title = 'newer'").execute(&pool).await.unwrap();
    let err = sqlx::query("UPDATE posts SET legacy = 'x'").execute(&pool).await.unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
    for write in ["INSERT INTO old_audit (note) VALUES ('x')", "DELETE FROM old_audit", "TRUNCATE old_audit"] {
        let err = sqlx::query(write).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("table public.old_audit is read-only"), "{write}: {err}");
    }
    let status = m.status(&pool).await.unwrap();
    assert!(status.deferred.iter().all(|d| d.drop.read_only && matches!(d.blockers[..], [zdm::Blocker::Delay { .. }])));

    // Before the delay passes nothing is dropped; after it, run_post drops both.
    if started.elapsed() < Duration::from_millis(1500) {
        assert!(m.run_post(&pool).await.unwrap().dropped.is_empty());
    }
    // The delay counts from the migration's commit (the server's clock): poll until due.
    let mut report = m.run_post(&pool).await.unwrap();
    while report.dropped.is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = m.run_post(&pool).await.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(2), "dropped before the delay passed");
    assert_eq!(report.dropped.len(), 2, "{report}");
    assert_eq!(columns(&pool, "posts").await, ["id", "title"]);
    sqlx::query("INSERT INTO posts (title) VALUES ('after')").execute(&pool).await.unwrap();
}

#[tokio::test]
async fn run_post_when_safe_waits_for_the_old_build_to_expire() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = migrator().instance_ttl(Duration::from_secs(1));
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    let registered = Instant::now();
    old_instance(&pool, &[1]).await; // it never beats again: gone after the 1 s TTL
    m.run_pre(&pool).await.unwrap();
    let waiter = {
        let (m, pool) = (m.clone(), pool.clone());
        tokio::spawn(async move { m.run_post_when_safe(&pool).await })
    };
    let report =
        tokio::time::timeout(Duration::from_secs(30), waiter).await.expect("gate never opened").unwrap().unwrap();
    assert!(registered.elapsed() >= Duration::from_secs(1), "it waited for the old instance's TTL");
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    assert_eq!(report.dropped.len(), 2);
    assert_eq!(columns(&pool, "posts").await, ["id", "title"]);
}

#[tokio::test]
async fn the_registry_holds_this_process_until_it_stops() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    // A row whose heartbeat is long gone is pruned by the next heartbeat (not at boot).
    migrator().up_to(1).run_pre(&pool).await.unwrap();
    old_instance(&pool, &[1]).await;
    sqlx::query("UPDATE zdm_instances SET heartbeat_at = now() - interval '1 hour' WHERE pid = 4242")
        .execute(&pool)
        .await
        .unwrap();

    let report = migrator().run_pre(&pool).await.unwrap();
    let instance = report.instance.clone().expect("run_pre registers");
    let (id, app, embedded, mapped, ignored): (String, String, Vec<i64>, Vec<String>, Vec<String>) =
        sqlx::query_as("SELECT id, app_name, embedded, mapped, ignored FROM zdm_instances WHERE pid <> 4242")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(id, instance.id());
    assert_eq!(app, "zdm");
    assert_eq!(embedded, [1, 2, 3]);
    assert_eq!(
        mapped,
        [
            "posts\tid\tdeferred::Post",
            "posts\ttitle\tdeferred::Post",
            "app.Posts\tpostId\tdeferred::Renamed",
            "app.Posts\torder\tdeferred::Renamed"
        ]
    );
    assert_eq!(ignored, ["posts.legacy"]);
    assert_eq!(zdm::Migrator::clone(&migrator()).register(&pool).await.unwrap(), instance, "one row per process");

    let beat = || async {
        sqlx::query_scalar::<_, f64>(
            "SELECT extract(epoch FROM heartbeat_at)::float8 FROM zdm_instances WHERE pid <> 4242",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let first = beat().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(beat().await > first, "the heartbeat moves");
    let stale: i64 =
        sqlx::query_scalar("SELECT count(*) FROM zdm_instances WHERE pid = 4242").fetch_one(&pool).await.unwrap();
    assert_eq!(stale, 0, "the heartbeat pruned the row whose TTL ran out");

    instance.stop().await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn post_work_that_waits_too_long_is_reported() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    migrator().up_to(1).run_pre(&pool).await.unwrap();
    old_instance(&pool, &[1]).await;
    migrator().run_pre(&pool).await.unwrap();
    // As if the old build had kept running for two days.
    sqlx::query("UPDATE zdm_post_pending SET first_seen = now() - interval '2 days'").execute(&pool).await.unwrap();
    sqlx::query("UPDATE zdm_deferred_drops SET scheduled_at = now() - interval '2 days'").execute(&pool).await.unwrap();
    sqlx::query("UPDATE zdm_instances SET started_at = now() - interval '2 days'").execute(&pool).await.unwrap();

    let status = migrator().status(&pool).await.unwrap();
    assert_eq!(status.warnings.len(), 3, "{:#?}", status.warnings);
    assert!(
        status.warnings[0].contains("after_deploy migration 3 (cleanup) has waited 48.0 h"),
        "{}",
        status.warnings[0]
    );
    assert!(status.warnings.iter().all(|w| w.contains("blocked by blog 1.0.0 on old-host pid 4242")));
    assert!(status.to_string().contains("WARNING: drop column public.posts.legacy"));
    let post = migrator().run_post(&pool).await.unwrap();
    assert!(post.notices.iter().any(|n| n.contains("has waited 48.0 h")));
    // A shorter threshold is a setting.
    assert!(migrator().lag_warning(Duration::from_secs(3 * 86400)).status(&pool).await.unwrap().warnings.is_empty());
}

#[zdm::migration(version = 2, description = "schedule drops from rust")]
async fn schedule_from_rust(conn: &mut sqlx::PgConnection) -> Result<(), zdm::__private::BoxError> {
    zdm::drop_column_later(conn, "posts", "legacy").await?;
    zdm::drop_table_later_with_delay(conn, "public.old_audit", Duration::from_secs(3600)).await?;
    Ok(())
}

#[tokio::test]
async fn rust_migrations_schedule_drops_too() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/deferred_rust", rust = [schedule_from_rust]);
    m.run_pre(&pool).await.unwrap();
    let status = m.status(&pool).await.unwrap();
    let shown: Vec<String> = status.deferred.iter().map(|d| d.drop.to_string()).collect();
    assert_eq!(shown.len(), 2);
    assert!(shown[0].starts_with("drop column public.posts.legacy (scheduled by migration 2"), "{shown:?}");
    assert!(shown[1].starts_with("drop table public.old_audit"), "{shown:?}");
    let nullable: String = sqlx::query_scalar(
        "SELECT is_nullable::text FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'legacy'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(nullable, "YES");
    // run_post: the column is due; the table waits an hour, read-only meanwhile.
    let report = m.run_post(&pool).await.unwrap();
    assert_eq!(report.dropped.len(), 2, "{report}");
    assert!(report.dropped[0].starts_with("dropped column"), "{report}");
    assert!(report.dropped[1].starts_with("made read-only"), "{report}");

    // Outside a migration zdm runs, the helpers refuse with a clear message.
    let mut conn = pool.acquire().await.unwrap();
    let err = zdm::drop_column_later(&mut conn, "posts", "title").await.unwrap_err();
    assert!(err.to_string().contains("inside a migration that zdm runs"), "{err}");
    let err = sqlx::query("SELECT zdm_drop_column_later('posts', 'title')").execute(&mut *conn).await.unwrap_err();
    assert!(err.to_string().contains("must run inside a migration that zdm applies"), "{err}");
}

#[derive(sqlx::FromRow)]
#[sqlx(rename_all = "camelCase")]
#[zdm::model(table = "app.Posts")]
#[allow(dead_code)]
struct Renamed<T> {
    post_id: i64,
    #[sqlx(rename = "order")]
    position: T,
    #[sqlx(skip)]
    cached: Option<String>,
}

#[test]
fn model_structs_list_their_columns() {
    assert_eq!(Post::TABLE, "posts");
    assert_eq!(Post::COLUMNS, ["id", "title"]);
    assert_eq!(Post::COLUMN_LIST, r#""id", "title""#);
    assert_eq!(Post::SELECT, r#"SELECT "id", "title" FROM "posts""#);
    assert_eq!(Post::IGNORED_COLUMNS, ["legacy"]);
    assert_eq!(Renamed::<i32>::COLUMNS, ["postId", "order"]);
    assert_eq!(Renamed::<i32>::SELECT, r#"SELECT "postId", "order" FROM "app"."Posts""#);
    let names: Vec<&str> =
        zdm::__private::inventory::iter::<zdm::__private::RegisteredModel>.into_iter().map(|m| m.0.name).collect();
    assert!(names.contains(&"deferred::Post") && names.contains(&"deferred::Renamed"), "{names:?}");
}
