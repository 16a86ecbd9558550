//! `Migrator::trace`: the pending migrations run in a scratch database, with the locks,
//! rewrites and scans the server really did, held against the lint's prediction.

mod common;

use common::TestDb;
use zdm::plan::{LockMode, TraceOptions};
use zdm::{sqlx, Migrator};

pub fn set(files: &[(&str, &str)]) -> Migrator {
    let files = files
        .iter()
        .map(|(name, sql)| zdm_core::source::SourceFile {
            path: format!("migrations/{name}"),
            bytes: sql.as_bytes().to_vec(),
        })
        .collect();
    Migrator::from_parsed(zdm_core::source::parse_files(files).unwrap(), "trace-test", "1.0.0").without_registration()
}

const HISTORY: (&str, &str) = (
    "0001_init.sql",
    "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n\
     CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL, title varchar(100) NOT NULL, body text, n int NOT NULL DEFAULT 0);\n",
);

#[tokio::test]
async fn each_statement_is_traced_and_held_against_the_prediction() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = set(&[
        HISTORY,
        (
            "0002_tighten.sql",
            "UPDATE posts SET body = '' WHERE body IS NULL;\n\
             ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n\
             ALTER TABLE posts ALTER COLUMN title TYPE varchar(200);\n\
             ALTER TABLE posts ALTER COLUMN n TYPE bigint;\n\
             ALTER TABLE posts ADD CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n",
        ),
        ("0003_index.sql", "-- zdm:no_transaction\nCREATE INDEX CONCURRENTLY posts_title ON posts (title);\n"),
    ]);
    m.clone().up_to(1).run_all(&pool).await.unwrap();

    let trace = m.trace(&pool, TraceOptions { sample_rows: 200 }).await.unwrap();
    println!("{trace}");
    assert_eq!(trace.replayed, [1]);
    assert!(trace.sampled.iter().all(|s| s.rows == 200 && s.skipped.is_none()), "{:?}", trace.sampled);
    assert!(trace.failed().is_none(), "{trace}");
    let tighten = &trace.migrations[0].statements;
    assert_eq!(tighten.len(), 5);
    assert_eq!(tighten[0].rows, 200, "the backfill touched every sampled row");
    assert_eq!(tighten[0].observed.locks[0].mode, LockMode::RowExclusiveLock);
    assert_eq!(tighten[1].observed.locks[0].mode, LockMode::AccessExclusiveLock);
    assert_eq!(tighten[1].observed.scans, ["posts"], "SET NOT NULL scans");
    assert!(tighten[2].observed.rewrites.is_empty(), "widening varchar is catalog-only");
    assert_eq!(tighten[3].observed.rewrites, ["posts"], "int to bigint rewrites");
    let fk = &tighten[4].observed;
    assert!(fk.locks.iter().all(|l| l.mode == LockMode::ShareRowExclusiveLock), "{fk:?}");
    assert!(fk.locks.iter().any(|l| l.table == "users"), "{fk:?}");
    let index = &trace.migrations[1].statements[0];
    assert!(index.sampled);
    assert!(index.observed.locks.iter().all(|l| l.mode <= LockMode::ShareUpdateExclusiveLock), "{index:?}");
    assert_eq!(trace.disagreements().count(), 0, "{trace}");
    assert!(trace.to_string().contains("0 disagreement(s)"), "{trace}");

    // Nothing ran against the real database, and the scratch one is gone.
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.pending_pre().count(), 2);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(&trace.scratch_database)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_statement_the_server_refuses_stops_the_trace_and_the_scratch_database_is_dropped() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = set(&[HISTORY, ("0002_bad.sql", "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\n")]);
    m.clone().up_to(1).run_all(&pool).await.unwrap();
    // With sample rows body is NULL everywhere: SET NOT NULL fails, as it would in production.
    let trace = m.trace(&pool, TraceOptions { sample_rows: 10 }).await.unwrap();
    let (_, failed) = trace.failed().expect("the statement fails");
    assert!(failed.error.as_deref().unwrap().contains("null"), "{trace}");
    assert!(trace.to_string().contains("FAILED migrations/0002_bad.sql:1"), "{trace}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'zdm\\_trace\\_%' AND datname = $1")
            .bind(&trace.scratch_database)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_sqlite_set_cannot_be_traced() {
    let db = TestDb::new().await;
    let pool = db.pool(1).await;
    let m = set(&[HISTORY]).dialect(zdm::Dialect::Sqlite);
    let err = m.trace(&pool, TraceOptions::default()).await.unwrap_err();
    assert!(matches!(err, zdm::Error::Unsupported { .. }), "{err}");
}

/// What the histories of real projects taught the prediction, each seen on the server.
#[tokio::test]
async fn what_real_histories_taught_is_what_the_server_does() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    // One statement a file: each is observed in a transaction of its own.
    const CHANGES: [&str; 12] = [
        "ALTER TABLE users ADD COLUMN token text NOT NULL DEFAULT token(8);",
        "ALTER TABLE users ALTER COLUMN seen TYPE timestamptz;",
        "ALTER TABLE users ALTER COLUMN name TYPE text;",
        "ALTER TABLE users ALTER COLUMN email TYPE text;",
        "DELETE FROM users WHERE id = 1;",
        "ANALYZE users;",
        "DROP INDEX users_seen_idx;",
        "ALTER TABLE posts DROP COLUMN user_id;",
        "DROP MATERIALIZED VIEW user_count;",
        "DROP FUNCTION touch() CASCADE;",
        "INSERT INTO posts (id) VALUES (3);",
        "DROP VIEW user_ids CASCADE;",
    ];
    let names: Vec<String> = (0..CHANGES.len()).map(|i| format!("{:04}_change.sql", i + 2)).collect();
    let mut files = vec![(
        "0001_history.sql",
        "CREATE FUNCTION token(n int) RETURNS text LANGUAGE sql AS $$ SELECT substr(md5(random()::text), 1, n) $$;\n\
             CREATE TABLE users (id bigint PRIMARY KEY, seen timestamp, name varchar(50), email varchar(50));\n\
             CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint,\n\
                 CONSTRAINT fk_posts_author FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE);\n\
             CREATE INDEX ON users (seen);\n\
             CREATE INDEX ON users (lower(name));\n\
             CREATE INDEX users_email ON users (email);\n\
             INSERT INTO users VALUES (1, now(), 'a', 'a'), (2, now(), 'b', 'b');\n\
             INSERT INTO posts VALUES (1, 1), (2, 2);\n\
             CREATE MATERIALIZED VIEW user_count AS SELECT count(*) FROM users;\n\
             CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n\
             CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();\n\
             CREATE MATERIALIZED VIEW post_count AS SELECT count(*) AS n FROM posts;\n\
             CREATE FUNCTION recount() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN REFRESH MATERIALIZED VIEW post_count; RETURN NULL; END $$;\n\
             CREATE TRIGGER posts_recount AFTER INSERT ON posts FOR EACH STATEMENT EXECUTE FUNCTION recount();\n\
             CREATE VIEW user_ids AS SELECT id FROM users;\n\
             CREATE MATERIALIZED VIEW user_total AS SELECT count(*) AS n FROM user_ids;\n",
    )];
    files.extend(names.iter().map(String::as_str).zip(CHANGES));
    let m = set(&files);
    let trace = m.trace(&pool, TraceOptions { sample_rows: 0 }).await.unwrap();
    println!("{trace}");
    assert!(trace.failed().is_none(), "{trace}");
    let s: Vec<_> = trace.migrations[1..].iter().map(|m| &m.statements[0]).collect();
    let lock = |i: usize, table: &str| s[i].observed.locks.iter().find(|l| l.table == table).map(|l| l.mode);
    // A default calling a function the set made without IMMUTABLE/STABLE: volatile, a rewrite.
    assert_eq!(s[0].observed.rewrites, ["users"]);
    // timestamp → timestamptz keeps the rows but builds the column's index again: a scan.
    assert!(s[1].observed.rewrites.is_empty() && s[1].observed.scans == ["users"], "{:?}", s[1]);
    // varchar → text: an expression index is built again, a plain one kept.
    assert_eq!(s[2].observed.scans, ["users"], "{:?}", s[2]);
    assert!(s[3].observed.scans.is_empty(), "{:?}", s[3]);
    // A cascading delete writes the children: ROW EXCLUSIVE, reported, not a disagreement.
    assert_eq!(lock(4, "posts"), Some(LockMode::RowExclusiveLock));
    assert!(s[4].predicted.unknown, "users has a trigger of the set");
    assert_eq!(lock(5, "users"), Some(LockMode::ShareUpdateExclusiveLock));
    // An unnamed index by its server name; a foreign key of any name goes with its column.
    assert_eq!(lock(6, "users"), Some(LockMode::AccessExclusiveLock));
    assert_eq!(lock(7, "users"), Some(LockMode::AccessExclusiveLock));
    assert_eq!(lock(8, "user_count"), Some(LockMode::AccessExclusiveLock));
    // DROP FUNCTION .. CASCADE drops the trigger: ACCESS EXCLUSIVE on its table.
    assert_eq!(lock(9, "users"), Some(LockMode::AccessExclusiveLock));
    // A trigger whose function refreshes a materialized view: the refresh's lock and storage.
    assert_eq!(lock(10, "post_count"), Some(LockMode::AccessExclusiveLock));
    assert_eq!(s[10].observed.rewrites, ["post_count"]);
    // DROP VIEW .. CASCADE drops the materialized view built on it.
    assert_eq!(lock(11, "user_total"), Some(LockMode::AccessExclusiveLock));
    assert_eq!(trace.disagreements().count(), 0, "{trace}");
}
