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

const LONG_TABLE: &str = "Lông tàblé nämé wïth ümlauts";
const LONG_COLUMN: &str = "çolumn wïth spacés ééé";

/// Every Rust recipe, twice in a row: what a re-run after a failure later in the migration
/// does. Names with spaces, capitals and non-ASCII letters throughout.
#[zdm::migration(version = 3, description = "every recipe twice", no_transaction)]
async fn every_recipe_twice(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    for _ in 0..2 {
        zdm::recipes::rename_column(conn, "Post Ü", "Tïtle x", "Headline ü").await?;
        zdm::recipes::rename_table(conn, "Old Naïve", "New Naïve").await?;
        zdm::recipes::change_column_type_begin(conn, "Post Ü", "amount", "bigint").await?;
        zdm::recipes::add_not_null(conn, "Post Ü", "Bödy x").await?;
        zdm::recipes::add_not_null(conn, LONG_TABLE, LONG_COLUMN).await?;
        let fk = zdm::recipes::ForeignKey {
            name: "Post Ü Äuthor fk",
            table: "Post Ü",
            columns: &["Äuthor"],
            references: "Äuthors",
            referenced_columns: &["id"],
            actions: "ON DELETE SET NULL",
        };
        zdm::recipes::add_foreign_key(conn, &fk).await?;
        zdm::recipes::add_unique(conn, "Post Ü", &["ÏSBN"], "Post Ü ÏSBN key").await?;
    }
    Ok(())
}

#[zdm::migration(version = 4, description = "finish twice", no_transaction, after_deploy)]
async fn finish_twice(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    for _ in 0..2 {
        zdm::recipes::change_column_type_finish(conn, "Post Ü", "amount").await?;
    }
    Ok(())
}

/// The first column of every row, sorted by bytes (whatever the database's collation).
async fn strings(pool: &PgPool, sql: &'static str) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(pool).await.unwrap();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_run_twice_add_nothing_twice_with_quoted_non_ascii_names() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/recipes_twice", rust = [every_recipe_twice, finish_twice])
        .backfill_in_background(false);
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query(r#"INSERT INTO "Äuthors" SELECT g FROM generate_series(1, 5) g"#).execute(&pool).await.unwrap();
    sqlx::query(
        r#"INSERT INTO "Post Ü" ("Tïtle x", amount, "Äuthor", "ÏSBN", "Bödy x", "Sümmary")
           SELECT 't' || g, g, g % 5 + 1, 'isbn-' || g, 'b' || g, 's' || g FROM generate_series(1, 50) g"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(r#"INSERT INTO "Old Naïve" (body) VALUES ('kept')"#).execute(&pool).await.unwrap();
    sqlx::query(r#"INSERT INTO "Lông tàblé nämé wïth ümlauts" ("çolumn wïth spacés ééé") VALUES ('v')"#)
        .execute(&pool)
        .await
        .unwrap();

    let report = m.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2, 3], "{report}");

    let columns = columns(&pool, "Post Ü").await;
    assert_eq!(
        columns,
        ["id", "Tïtle x", "amount", "Äuthor", "ÏSBN", "Bödy x", "Sümmary", "Sümmary ÿ", "Headline ü", "amount_zdm_new"],
        "one new column per recipe"
    );
    let triggers = strings(
        &pool,
        r#"SELECT tgname::text FROM pg_trigger WHERE tgrelid = '"Post Ü"'::regclass AND NOT tgisinternal"#,
    )
    .await;
    assert_eq!(triggers, ["zdm_cast_Post Ü_amount", "zdm_sync_Post Ü_Headline ü", "zdm_sync_Post Ü_Sümmary ÿ"]);
    let backfills = strings(&pool, "SELECT name FROM zdm_backfills").await;
    assert_eq!(
        backfills,
        [
            "rename public.Post Ü.Sümmary to Sümmary ÿ",
            "rename public.Post Ü.Tïtle x to Headline ü",
            "retype public.Post Ü.amount"
        ]
    );
    let drops = strings(
        &pool,
        "SELECT table_name || coalesce('.' || column_name, '') || CASE WHEN is_view THEN ' (view)' ELSE '' END \
         FROM zdm_deferred_drops WHERE state = 'pending'",
    )
    .await;
    assert_eq!(drops, ["Old Naïve (view)", "Post Ü.Sümmary", "Post Ü.Tïtle x"]);
    let relations =
        strings(&pool, "SELECT relname || ':' || relkind::text FROM pg_class WHERE relname LIKE '%Naïve'").await;
    assert_eq!(relations, ["New Naïve:r", "Old Naïve:v"], "renamed once, one view");
    let view_reads: i64 =
        sqlx::query_scalar(r#"SELECT count(*) FROM "Old Naïve" WHERE body = 'kept'"#).fetch_one(&pool).await.unwrap();
    assert_eq!(view_reads, 1);

    let mut constraints: Vec<(String, String, bool)> = sqlx::query_as(
        r#"SELECT conname::text, contype::text, convalidated FROM pg_constraint
           WHERE conrelid IN ('"Post Ü"'::regclass, '"Lông tàblé nämé wïth ümlauts"'::regclass)"#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    constraints.sort();
    assert_eq!(
        constraints,
        [
            ("Lông tàblé nämé wïth ümlauts_pkey".into(), "p".into(), true),
            ("Post Ü Äuthor fk".into(), "f".into(), true),
            ("Post Ü ÏSBN key".into(), "u".into(), true),
            ("Post Ü_pkey".into(), "p".into(), true),
        ],
        "the temporary NOT NULL checks are gone, nothing added twice"
    );
    let not_null: Vec<String> = strings(
        &pool,
        r#"SELECT attname::text FROM pg_attribute
           WHERE attrelid IN ('"Post Ü"'::regclass, '"Lông tàblé nämé wïth ümlauts"'::regclass)
             AND attnotnull AND attnum > 0 AND attname <> 'id'"#,
    )
    .await;
    assert_eq!(not_null, ["Bödy x", "amount", LONG_COLUMN]);

    // The after_deploy finish, twice, once the backfills are done.
    m.run_backfills(&pool).await.unwrap();
    let post = m.run_post(&pool).await.unwrap();
    assert!(post.applied.iter().any(|a| a.version == 4), "{post}");
    let ty: String = sqlx::query_scalar(
        "SELECT data_type::text FROM information_schema.columns WHERE table_name = 'Post Ü' AND column_name = 'amount'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ty, "bigint");
    let cast_triggers: i64 = sqlx::query_scalar(
        r#"SELECT count(*) FROM pg_trigger WHERE tgrelid = '"Post Ü"'::regclass AND tgname::text LIKE 'zdm_cast%'"#,
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(cast_triggers, 0);
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_migration_attempts WHERE NOT success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failed, 0, "every migration succeeded on its first attempt");
}

/// The longest lock wait seen per statement (by its text) in a database, sampled from
/// `pg_stat_activity` on a connection of its own.
struct LockWaits {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<HashMap<String, f64>>,
}

impl LockWaits {
    async fn watch(db: &TestDb) -> LockWaits {
        let mut conn = db.conn().await;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut longest: HashMap<String, f64> = HashMap::new();
            while !flag.load(Ordering::Relaxed) {
                let rows: Vec<(String, f64)> = sqlx::query_as(
                    "SELECT query, (extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8 \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                )
                .fetch_all(&mut conn)
                .await
                .unwrap();
                for (query, ms) in rows {
                    let e = longest.entry(query).or_default();
                    *e = e.max(ms);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            longest
        });
        LockWaits { stop, task }
    }

    /// The longest wait of a statement starting with `prefix`, in ms.
    async fn finish(self, prefix: &str) -> (f64, HashMap<String, f64>) {
        self.stop.store(true, Ordering::Relaxed);
        let all = self.task.await.unwrap();
        let longest = all.iter().filter(|(q, _)| q.starts_with(prefix)).map(|(_, ms)| *ms).fold(0.0, f64::max);
        (longest, all)
    }
}

/// Runs `sql` in a transaction on a connection of its own and keeps that transaction (and
/// its locks) open for `hold`; returns once the locks are taken.
async fn hold_lock(db: &TestDb, sql: &'static str, hold: Duration) -> tokio::task::JoinHandle<()> {
    use zdm::sqlx::Connection;
    let mut conn = db.conn().await;
    let (taken_tx, taken) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut tx = conn.begin().await.unwrap();
        sqlx::raw_sql(sql).execute(&mut *tx).await.unwrap();
        taken_tx.send(()).unwrap();
        tokio::time::sleep(hold).await;
        tx.commit().await.unwrap();
    });
    taken.await.unwrap();
    task
}

/// The migration's own timeouts, read before and after the recipes: they must come back.
async fn timeouts(conn: &mut PgConnection) -> Result<(String, String), sqlx::Error> {
    sqlx::query_as("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')").fetch_one(conn).await
}

#[zdm::migration(version = 2, description = "unique isbn", no_transaction)]
async fn unique_isbn(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    let before = timeouts(conn).await?;
    zdm::recipes::add_unique(conn, "books", &["isbn"], "books_isbn_key").await?;
    let after = timeouts(conn).await?;
    if before != after {
        return Err(format!("the recipe left the session's timeouts at {after:?} (they were {before:?})").into());
    }
    Ok(())
}

#[zdm::migration(version = 3, description = "author fk", no_transaction)]
async fn author_fk(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    let fk = zdm::recipes::ForeignKey {
        name: "books_author_fk",
        table: "books",
        columns: &["author_id"],
        references: "authors",
        referenced_columns: &["id"],
        actions: "",
    };
    zdm::recipes::add_foreign_key(conn, &fk).await?;
    zdm::recipes::run_statement(conn, "CREATE INDEX CONCURRENTLY IF NOT EXISTS books_author_idx ON books (author_id)")
        .await?;
    Ok(())
}

#[zdm::migration(version = 4, description = "title not null", no_transaction)]
async fn title_not_null(conn: &mut PgConnection) -> Result<(), zdm::__private::BoxError> {
    zdm::recipes::add_not_null(conn, "books", "title").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipes_wait_out_lock_holders_with_long_and_retried_lock_timeouts() {
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/recipes_constraints", rust = [unique_isbn, author_fk, title_not_null]);
    m.clone().up_to(1).run_pre(&pool).await.unwrap();
    sqlx::query("INSERT INTO authors SELECT g FROM generate_series(1, 10) g").execute(&pool).await.unwrap();
    sqlx::query("INSERT INTO books (author_id, isbn, title) SELECT g % 10 + 1, 'isbn-' || g, 't' || g FROM generate_series(1, 100) g")
        .execute(&pool)
        .await
        .unwrap();
    let hold = Duration::from_millis(1500);

    // 1. The concurrent build waits for a SHARE UPDATE EXCLUSIVE holder (a VACUUM, an
    // ANALYZE, another build) far longer than the migration's 100-500 ms lock timeout.
    let waits = LockWaits::watch(&db).await;
    let blocker = hold_lock(&db, "LOCK TABLE books IN SHARE UPDATE EXCLUSIVE MODE", hold).await;
    m.clone().up_to(2).run_pre(&pool).await.unwrap();
    blocker.await.unwrap();
    let (cic, all) = waits.finish("CREATE UNIQUE INDEX CONCURRENTLY").await;
    assert!(cic > 1000.0, "the concurrent build waited {cic} ms in one go (long lock timeout): {all:?}");

    // 2. ADD CONSTRAINT .. NOT VALID (SHARE ROW EXCLUSIVE) behind a writer's open
    // transaction: short waits, retried after pauses, until the writer commits.
    let waits = LockWaits::watch(&db).await;
    let started = std::time::Instant::now();
    let blocker = hold_lock(&db, "UPDATE books SET title = title WHERE id = 1", hold).await;
    m.clone().up_to(3).run_pre(&pool).await.unwrap();
    blocker.await.unwrap();
    let (add, all) = waits.finish(r#"ALTER TABLE "books" ADD CONSTRAINT"#).await;
    assert!(started.elapsed() >= hold, "it outlasted the writer");
    assert!(add > 0.0 && add < 700.0, "each try waited at most the short lock timeout, {add} ms: {all:?}");

    // 3. VALIDATE (a check left NOT VALID by an interrupted run) waits for a SHARE UPDATE
    // EXCLUSIVE holder in one go too.
    sqlx::query("ALTER TABLE books ADD CONSTRAINT books_title_not_null CHECK (title IS NOT NULL) NOT VALID")
        .execute(&pool)
        .await
        .unwrap();
    let waits = LockWaits::watch(&db).await;
    let blocker = hold_lock(&db, "LOCK TABLE books IN SHARE UPDATE EXCLUSIVE MODE", hold).await;
    m.run_pre(&pool).await.unwrap();
    blocker.await.unwrap();
    let (validate, all) = waits.finish(r#"ALTER TABLE "books" VALIDATE CONSTRAINT"#).await;
    assert!(validate > 1000.0, "VALIDATE waited {validate} ms in one go (long lock timeout): {all:?}");

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
        ]
    );
    let valid_indexes = strings(
        &pool,
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = 'books'::regclass AND i.indisvalid",
    )
    .await;
    assert_eq!(valid_indexes, ["books_author_idx", "books_isbn_key", "books_pkey"], "no INVALID leftover");
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_migration_attempts WHERE NOT success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failed, 0, "no migration failed: the recipes waited or retried inside it");
}
