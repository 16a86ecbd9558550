//! Expand/contract recipes on PostgreSQL, each under concurrent writers from the old and
//! the new code path during every step: both sides finish with 0 errors, and afterwards
//! every row holds exactly what the last write to it said (no lost or mismatched write).
//! Writers go through a healing pool and `zdm::healing::retry`, as the README advises.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{columns, TestDb};
use zdm::sqlx::{self, postgres::PgPoolOptions, PgConnection, PgPool};

/// What a side wrote last, per row id.
type Expected = Arc<Mutex<HashMap<i64, String>>>;

struct Writer {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(u64, u64, Vec<String>)>,
}

impl Writer {
    fn start<F, Fut>(pool: &PgPool, op: F) -> Writer
    where
        F: Fn(PgPool, u64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, pool) = (stop.clone(), pool.clone());
        let handle = tokio::spawn(async move {
            let (mut ops, mut errors, mut messages) = (0u64, 0u64, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = op(pool.clone(), ops).await {
                    errors += 1;
                    if messages.len() < 3 {
                        messages.push(e);
                    }
                }
                ops += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (ops, errors, messages)
        });
        Writer { stop, handle }
    }

    /// Stops it and asserts it never failed; returns how many operations it ran.
    async fn finish(self, side: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let (ops, errors, messages) = self.handle.await.unwrap();
        assert_eq!(errors, 0, "{side}: {errors} of {ops} operations failed: {messages:?}");
        assert!(ops > 10, "{side} ran only {ops} operations");
        ops
    }
}

async fn healing_pool(db: &TestDb) -> PgPool {
    zdm::healing::connect_with(PgPoolOptions::new().max_connections(6), db.options.clone()).await.unwrap()
}

/// `sql` with `binds` (text), through the stale-statement retry; returns the first column
/// of the first row as text, if any.
async fn q(pool: &PgPool, sql: &'static str, binds: Vec<String>) -> Result<Option<String>, String> {
    zdm::healing::retry(pool, move |conn: &mut PgConnection| {
        let binds = binds.clone();
        Box::pin(async move {
            let mut query = sqlx::query_scalar::<_, Option<String>>(sql);
            for b in binds {
                query = query.bind(b);
            }
            query.fetch_optional(conn).await.map(Option::flatten)
        })
    })
    .await
    .map_err(|e| e.to_string())
}

/// One writer step: insert a row, or update one of `own` rows and read it back.
async fn write_step(
    pool: &PgPool,
    n: u64,
    [insert, update, select]: [&'static str; 3],
    own: impl Fn(u64) -> i64,
    tag: &str,
    expected: &Expected,
) -> Result<(), String> {
    let value = format!("{tag}{n}");
    let id = if n.is_multiple_of(3) {
        let id: i64 = q(pool, insert, vec![value.clone()]).await?.ok_or("insert returned nothing")?.parse().unwrap();
        id
    } else {
        let id = own(n);
        q(pool, update, vec![value.clone(), id.to_string()]).await?;
        id
    };
    expected.lock().unwrap().insert(id, value.clone());
    match q(pool, select, vec![id.to_string()]).await? {
        Some(read) if read == value => Ok(()),
        other => Err(format!("row {id}: wrote {value:?}, read {other:?}")),
    }
}

type Step = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A code path that inserts, updates its own rows (odd or even ids, by `offset`) and reads
/// back, through the statements `[insert, update, select]`.
fn side(seen: &Expected, sql: [&'static str; 3], offset: i64, tag: &'static str) -> impl Fn(PgPool, u64) -> Step {
    let seen = seen.clone();
    move |pool, n| {
        let seen = seen.clone();
        Box::pin(async move {
            let own = move |n: u64| (n as i64 * 2 % SEEDED) + offset;
            write_step(&pool, n, sql, own, tag, &seen).await
        })
    }
}

async fn final_state(pool: &PgPool, sql: &'static str) -> HashMap<i64, String> {
    sqlx::query_as::<_, (i64, String)>(sql).fetch_all(pool).await.unwrap().into_iter().collect()
}

fn check(state: &HashMap<i64, String>, seeded: i64, seed: impl Fn(i64) -> String, sides: &[&Expected]) {
    let mut expected: HashMap<i64, String> = (1..=seeded).map(|id| (id, seed(id))).collect();
    for side in sides {
        expected.extend(side.lock().unwrap().iter().map(|(k, v)| (*k, v.clone())));
    }
    assert_eq!(state.len(), expected.len(), "row count");
    let wrong: Vec<_> = expected.iter().filter(|(id, v)| state.get(id) != Some(v)).take(5).collect();
    assert!(wrong.is_empty(), "lost or mismatched writes, e.g. {wrong:?}");
}

const SEEDED: i64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_column_keeps_both_builds_writing() {
    let db = TestDb::new().await;
    let pool = healing_pool(&db).await;
    let m = zdm::migrator!("tests/migrations/recipes_rename_column").backfill_in_background(false);
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO posts (title) SELECT 'seed' || g FROM generate_series(1, $1) g")
        .bind(SEEDED)
        .execute(&pool)
        .await
        .unwrap();

    let (old_seen, new_seen): (Expected, Expected) = Default::default();
    let old_sql = [
        "INSERT INTO posts (title) VALUES ($1) RETURNING id::text",
        "UPDATE posts SET title = $1 WHERE id = $2::bigint",
        "SELECT title FROM posts WHERE id = $1::bigint",
    ];
    let old = Writer::start(&pool, side(&old_seen, old_sql, 1, "old"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    m.run_pre(&pool).await.unwrap(); // adds headline, sync trigger, schedules backfill and drop
    let new_sql = [
        "INSERT INTO posts (headline) VALUES ($1) RETURNING id::text",
        "UPDATE posts SET headline = $1 WHERE id = $2::bigint",
        "SELECT headline FROM posts WHERE id = $1::bigint",
    ];
    let new = Writer::start(&pool, side(&new_seen, new_sql, 2, "new"));
    // The drop waits for the backfill.
    let waiting = m.run_post(&pool).await.unwrap();
    assert!(waiting.dropped.is_empty());
    assert!(
        waiting.notices.iter().any(|n| n.contains("backfill `rename public.posts.title to headline`")),
        "{waiting}"
    );
    let fills = m.run_backfills(&pool).await.unwrap();
    assert_eq!(fills.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;

    old.finish("old build").await; // the old build is gone
    let post = m.run_post(&pool).await.unwrap();
    assert!(
        matches!(&post.dropped[..], [d] if d.starts_with("dropped column public.posts.title (scheduled by migration 2")),
        "{post}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    new.finish("new build").await;

    assert_eq!(columns(&pool, "posts").await, ["id", "headline"]);
    let state = final_state(&pool, "SELECT id, headline FROM posts").await;
    check(&state, SEEDED, |id| format!("seed{id}"), &[&old_seen, &new_seen]);
    let leftovers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(leftovers, 0, "the sync trigger went with the old column");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_table_keeps_the_old_name_working_until_the_old_build_is_gone() {
    let db = TestDb::new().await;
    let pool = healing_pool(&db).await;
    let m = zdm::migrator!("tests/migrations/recipes_rename_table");
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO entries (body) SELECT 'seed' || g FROM generate_series(1, $1) g")
        .bind(SEEDED)
        .execute(&pool)
        .await
        .unwrap();

    let (old_seen, new_seen): (Expected, Expected) = Default::default();
    let old_sql = [
        "INSERT INTO entries (body) VALUES ($1) RETURNING id::text",
        "UPDATE entries SET body = $1 WHERE id = $2::bigint",
        "SELECT body FROM entries WHERE id = $1::bigint",
    ];
    let old = Writer::start(&pool, side(&old_seen, old_sql, 1, "old"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    m.run_pre(&pool).await.unwrap();
    let new_sql = [
        "INSERT INTO articles (body) VALUES ($1) RETURNING id::text",
        "UPDATE articles SET body = $1 WHERE id = $2::bigint",
        "SELECT body FROM articles WHERE id = $1::bigint",
    ];
    let new = Writer::start(&pool, side(&new_seen, new_sql, 2, "new"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.finish("old build").await;
    let post = m.run_post(&pool).await.unwrap();
    assert!(post.dropped.iter().any(|d| d.starts_with("dropped view public.entries")), "{post}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    new.finish("new build").await;

    let view: bool = sqlx::query_scalar("SELECT to_regclass('entries') IS NOT NULL").fetch_one(&pool).await.unwrap();
    assert!(!view);
    let state = final_state(&pool, "SELECT id, body FROM articles").await;
    check(&state, SEEDED, |id| format!("seed{id}"), &[&old_seen, &new_seen]);
    let drafts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM articles WHERE state = 'draft'").fetch_one(&pool).await.unwrap();
    assert_eq!(drafts as usize, state.len(), "inserts through the view got the table's defaults");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn change_column_type_swaps_after_deploy() {
    let db = TestDb::new().await;
    let pool = healing_pool(&db).await;
    let m = zdm::migrator!("tests/migrations/recipes_retype").backfill_in_background(false);
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO orders (amount) SELECT g FROM generate_series(1, $1) g")
        .bind(SEEDED)
        .execute(&pool)
        .await
        .unwrap();

    // Both builds write `amount`; they read it as bigint so either column type decodes.
    let writer = |seen: Expected, own_offset: i64, tag: &'static str| {
        move |pool: PgPool, n: u64| {
            let seen = seen.clone();
            async move {
                let value = (n as i64 % 100_000 + 1_000_000 * own_offset).to_string();
                let id = if n.is_multiple_of(3) {
                    q(&pool, "INSERT INTO orders (amount) VALUES ($1::integer) RETURNING id::text", vec![value.clone()])
                        .await?
                        .unwrap()
                        .parse()
                        .unwrap()
                } else {
                    let id = (n as i64 * 2 % SEEDED) + own_offset;
                    q(
                        &pool,
                        "UPDATE orders SET amount = $1::integer WHERE id = $2::bigint",
                        vec![value.clone(), id.to_string()],
                    )
                    .await?;
                    id
                };
                seen.lock().unwrap().insert(id, value.clone());
                let read =
                    q(&pool, "SELECT amount::bigint::text FROM orders WHERE id = $1::bigint", vec![id.to_string()])
                        .await?;
                if read.as_deref() != Some(value.as_str()) {
                    return Err(format!("{tag} row {id}: wrote {value}, read {read:?}"));
                }
                Ok(())
            }
        }
    };
    let (old_seen, new_seen): (Expected, Expected) = Default::default();
    let old = Writer::start(&pool, writer(old_seen.clone(), 1, "old"));
    m.clone().up_to(2).run_pre(&pool).await.unwrap();
    let new = Writer::start(&pool, writer(new_seen.clone(), 2, "new"));
    let waiting = m.run_post(&pool).await.unwrap();
    assert!(waiting.applied.is_empty(), "the finish waits for the backfill: {waiting}");
    m.run_backfills(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    old.finish("old build").await;
    let post = m.run_post(&pool).await.unwrap();
    assert_eq!(post.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3], "{post:?}");
    // The finish schedules the old column's drop; no old build is live, so it goes at once.
    assert!(post.dropped.iter().any(|d| d.contains("amount_zdm_old")), "{post}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    new.finish("new build").await;

    let ty: String = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'amount'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ty, "bigint");
    assert_eq!(columns(&pool, "orders").await, ["id", "amount"]);
    let state = final_state(&pool, "SELECT id, amount::text FROM orders").await;
    check(&state, SEEDED, |id| id.to_string(), &[&old_seen, &new_seen]);
}

#[zdm::migration(version = 2, description = "constraints the safe way", no_transaction)]
async fn add_constraints(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    zdm::recipes::add_not_null(conn, "books", "title").await?;
    let fk = zdm::recipes::ForeignKey {
        name: "books_author_fk",
        table: "books",
        columns: &["author_id"],
        references: "authors",
        referenced_columns: &["id"],
        actions: "ON DELETE CASCADE",
    };
    zdm::recipes::add_foreign_key(conn, &fk).await?;
    zdm::recipes::add_unique(conn, "books", &["isbn"], "books_isbn_key").await?;
    Ok(())
}

#[zdm::migration(version = 3, description = "inside a transaction")]
async fn add_not_null_in_a_transaction(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    zdm::recipes::add_not_null(conn, "books", "title").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn not_null_foreign_key_and_unique_are_added_under_writes() {
    let db = TestDb::new().await;
    let pool = healing_pool(&db).await;
    let m = zdm::migrator!("tests/migrations/recipes_constraints", rust = [add_constraints]);
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO authors SELECT g FROM generate_series(1, 100) g").execute(&pool).await.unwrap();
    sqlx::query("SELECT setval('authors_id_seq', 100)").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO books (author_id, isbn, title) SELECT g % 100 + 1, 'isbn-' || g, 'seed' || g FROM generate_series(1, $1) g")
        .bind(SEEDED)
        .execute(&pool)
        .await
        .unwrap();

    let writer = |seen: Expected, tag: &'static str| {
        move |pool: PgPool, n: u64| {
            let seen = seen.clone();
            async move {
                let title = format!("{tag}{n}");
                let id: i64 = q(&pool, "INSERT INTO books (author_id, isbn, title) VALUES ((random() * 99)::bigint + 1, $1, $1) RETURNING id::text", vec![title.clone()])
                    .await?
                    .unwrap()
                    .parse()
                    .unwrap();
                seen.lock().unwrap().insert(id, title);
                Ok(())
            }
        }
    };
    let (old_seen, new_seen): (Expected, Expected) = Default::default();
    let old = Writer::start(&pool, writer(old_seen.clone(), "old"));
    let new = Writer::start(&pool, writer(new_seen.clone(), "new"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    m.run_pre(&pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    old.finish("old build").await;
    new.finish("new build").await;

    let (not_null,): (bool,) =
        sqlx::query_as("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'books'::regclass AND attname = 'title'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(not_null);
    let constraints: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT conname::text, contype::text, convalidated FROM pg_constraint WHERE conrelid = 'books'::regclass ORDER BY conname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        constraints,
        [
            ("books_author_fk".into(), "f".into(), true),
            ("books_isbn_key".into(), "u".into(), true),
            ("books_pkey".into(), "p".into(), true)
        ],
        "the temporary NOT NULL check is gone"
    );
    let state = final_state(&pool, "SELECT id, title FROM books").await;
    check(&state, SEEDED, |id| format!("seed{id}"), &[&old_seen, &new_seen]);

    // Inside a migration transaction these recipes refuse, with the fix in the message.
    let db2 = TestDb::new().await;
    let pool2 = db2.pool(2).await;
    let err = zdm::migrator!("tests/migrations/recipes_constraints", rust = [add_not_null_in_a_transaction])
        .run_pre(&pool2)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a no_transaction migration"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_backfill_resumes_without_reapplying_or_skipping() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let rows = 40_000i64;
    let m = zdm::migrator!("tests/migrations/recipes_resume")
        .backfill_in_background(false)
        .backfill_target(Duration::from_millis(5));
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO counters (touched) SELECT 0 FROM generate_series(1, $1)")
        .bind(rows)
        .execute(&pool)
        .await
        .unwrap();
    m.run_pre(&pool).await.unwrap();

    // Kill the backfill in the middle of its run (the task is dropped mid-batch, so the
    // open batch's transaction is lost, as when the process dies).
    let batches = Arc::new(Mutex::new(0u32));
    let counted = batches.clone();
    let killed = m.clone().on_backfill_progress(move |_| *counted.lock().unwrap() += 1);
    let task = {
        let pool = pool.clone();
        tokio::spawn(async move { killed.run_backfills(&pool).await })
    };
    while *batches.lock().unwrap() < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task.abort();
    let _ = task.await;
    let (done, finished): (i64, bool) =
        sqlx::query_as("SELECT rows_done, finished_at IS NOT NULL FROM zdm_backfills WHERE name = 'touch'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(done > 0 && done < rows && !finished, "killed in the middle: {done} of {rows}");
    let touched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM counters WHERE touched = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(touched, done, "the progress row moves with its batch, never apart from it");

    // Resume: every row exactly once.
    let rows_after = m.run_backfills(&pool).await.unwrap();
    assert_eq!(rows_after[0].rows_done, rows);
    assert!(rows_after[0].finished);
    let counts: Vec<(i32, i64)> =
        sqlx::query_as("SELECT touched, count(*) FROM counters GROUP BY touched").fetch_all(&pool).await.unwrap();
    assert_eq!(counts, [(1, rows)], "none re-applied (2), none skipped (0)");
    let status = m.status(&pool).await.unwrap();
    assert!(status.to_string().contains("touch on public.counters (migration 2): 40000 rows"), "{status}");
}
