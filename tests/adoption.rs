//! Adding zdm to an app whose history sqlx already applied: nothing is re-run.

mod common;

use std::borrow::Cow;

use common::{versions, TestDb, TestSqlite};
use zdm::sqlx;
use zdm::State;

/// The app before zdm: sqlx applied the first two files of tests/migrations/adopt.
async fn sqlx_applied_two(pool: &sqlx::PgPool) {
    let mut before = sqlx::migrate!("tests/migrations/adopt");
    before.migrations = Cow::Owned(before.migrations[..2].to_vec());
    before.run(pool).await.unwrap();
}

#[tokio::test]
async fn sqlx_applied_versions_count_as_applied_on_postgres() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    sqlx_applied_two(&pool).await;

    let m = zdm::migrator!("tests/migrations/adopt");
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.rows[0].state, State::AppliedBySqlx);
    assert_eq!(versions(status.pending_pre()), [3]);
    let report = m.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cols, ["id", "email", "name", "created_at"]);
    let ledger: Vec<i64> = sqlx::query_scalar("SELECT version FROM zdm_migrations").fetch_all(&pool).await.unwrap();
    assert_eq!(ledger, [3], "history stays in _sqlx_migrations");
}

/// An app whose `sqlx.toml` moved sqlx's ledger (`[migrate] table-name`) into a schema:
/// zdm reads the same table.
#[tokio::test]
async fn a_moved_sqlx_ledger_counts_as_applied_on_postgres() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    sqlx::raw_sql(
        "CREATE SCHEMA app; CREATE TABLE app.\"Sqlx Ledger\" (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, checksum BYTEA NOT NULL, \
         execution_time BIGINT NOT NULL); \
         INSERT INTO app.\"Sqlx Ledger\" VALUES (1, 'users', now(), true, '\\x00', 1), (2, 'email', now(), true, '\\x00', 1);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let m = zdm::migrator!("tests/migrations/adopt").without_registration();
    let status = m.clone().status(&pool).await.unwrap();
    assert_eq!(status.rows[0].state, State::PendingPre, "without the setting, sqlx's rows are not found");
    let m = m.sqlx_table("app.Sqlx Ledger");
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.rows[0].state, State::AppliedBySqlx);
    assert_eq!(status.rows[1].state, State::AppliedBySqlx);
    assert_eq!(versions(status.pending_pre()), [3]);
    assert_eq!(m.newest_applied(&pool).await.unwrap(), Some(2));
}

#[tokio::test]
async fn sqlx_applied_versions_count_as_applied_on_sqlite() {
    let db = TestSqlite::new();
    let pool = db.pool(1).await;
    let mut before = sqlx::migrate!("tests/migrations/adopt");
    before.migrations = Cow::Owned(before.migrations[..2].to_vec());
    before.run(&pool).await.unwrap();
    let report = zdm::migrator!("tests/migrations/adopt", dialect = "sqlite").run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
}

#[tokio::test]
async fn diesel_layout_is_embedded_and_run() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/diesel");
    let versions: Vec<i64> = m.migrations().map(|m| m.version).collect();
    assert_eq!(versions, [20240101000000, 20240102000000]);
    assert!(m.migrations().nth(1).unwrap().no_transaction, "metadata.toml: run_in_transaction = false");
    m.run_pre(&pool).await.unwrap();
    let valid: bool =
        sqlx::query_scalar("SELECT indisvalid FROM pg_index WHERE indexrelid = 'posts_title_idx'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(valid);
}

#[tokio::test]
async fn diesel_applied_versions_count_as_applied() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    // The app before zdm: diesel ran the first migration and recorded it its way.
    sqlx::raw_sql(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY, run_on TIMESTAMP NOT NULL DEFAULT now());
         CREATE TABLE posts (id BIGINT PRIMARY KEY, title TEXT NOT NULL);
         INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let m = zdm::migrator!("tests/migrations/diesel");
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.rows[0].state, State::AppliedByDiesel);
    assert!(status.to_string().contains("applied (diesel)"));
    let report = m.run_pre(&pool).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [20240102000000], "history is not re-run");
    assert_eq!(zdm::baseline::newest_applied(&pool).await.unwrap(), Some(20240102000000));
}

#[tokio::test]
async fn a_baselined_history_runs_on_a_fresh_database_and_names_its_newest_version() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    assert_eq!(zdm::baseline::newest_applied(&pool).await.unwrap(), None);
    // The app before zdm: sqlx applied the first two files.
    let mut before = sqlx::migrate!("tests/migrations/adopt");
    before.migrations = Cow::Owned(before.migrations[..2].to_vec());
    before.run(&pool).await.unwrap();
    assert_eq!(zdm::baseline::newest_applied(&pool).await.unwrap(), Some(2), "the version to baseline at");

    // `baselined` holds an index built without CONCURRENTLY in its manifest: it compiles,
    // is embedded and runs on a fresh database.
    let fresh = TestDb::new().await;
    let fresh_pool = fresh.pool(2).await;
    let m = zdm::migrator!("tests/migrations/baselined");
    assert_eq!(m.run_all(&fresh_pool).await.unwrap().applied.len(), 3);
    let index: bool =
        sqlx::query_scalar("SELECT to_regclass('posts_title') IS NOT NULL").fetch_one(&fresh_pool).await.unwrap();
    assert!(index);
    assert_eq!(zdm::baseline::newest_applied(&fresh_pool).await.unwrap(), Some(3));

    // The same judgement at run time: the manifest silences history, and only history.
    let findings = zdm::lint::lint_dir("tests/migrations/baselined", &zdm::lint::LintConfig::default()).unwrap();
    assert!(findings.iter().all(|f| !f.blocks()), "{findings:?}");
    let dir = std::env::temp_dir().join(format!("zdm_baseline_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["0001_create.sql", "0002_old_habits.sql"] {
        std::fs::copy(format!("tests/migrations/baselined/{f}"), dir.join(f)).unwrap();
    }
    let blocking = || zdm::lint::lint_dir(&dir, &Default::default()).unwrap().iter().filter(|f| f.blocks()).count();
    assert_eq!(blocking(), 1, "without a manifest the old index is judged");
    zdm::baseline::write(&dir, 2).unwrap();
    assert_eq!(blocking(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The common boot reads zdm's and sqlx's rows through zdm's ledger function in one round
/// trip; a database that lacks the function (set up by an older zdm, or the function
/// dropped by hand) boots step by step, gets it back, and counts the same rows as applied.
#[tokio::test]
async fn the_one_round_trip_boot_and_its_fallback_count_the_same_rows() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    sqlx_applied_two(&pool).await;
    let m = zdm::migrator!("tests/migrations/adopt");
    assert_eq!(m.run_pre(&pool).await.unwrap().applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);

    let function = "SELECT count(*) FROM pg_proc WHERE proname = 'zdm_applied'";
    assert_eq!(sqlx::query_scalar::<_, i64>(function).fetch_one(&pool).await.unwrap(), 1);
    // Through the function: sqlx's two rows and zdm's one are applied, nothing runs again.
    assert!(m.run_pre(&pool).await.unwrap().applied.is_empty());
    // The boot reads what counts as applied through the function: one that also returns a
    // row the set does not know is seen (a notice of a newer build's migration).
    sqlx::raw_sql(
        "ALTER FUNCTION zdm_applied(text) RENAME TO zdm_applied_real;
         CREATE FUNCTION zdm_applied(p_sqlx text)
         RETURNS TABLE (o_zdm boolean, o_version bigint, o_description text, o_checksum bytea)
         LANGUAGE sql STABLE AS $$
             SELECT * FROM zdm_applied_real(p_sqlx)
             UNION ALL SELECT true, 99999999, 'seen through the function', '\\x00'::bytea $$;",
    )
    .execute(&pool)
    .await
    .unwrap();
    let report = m.run_pre(&pool).await.unwrap();
    assert!(report.notices.iter().any(|n| n.contains("99999999")), "the one-round-trip boot ran: {report}");
    sqlx::raw_sql("DROP FUNCTION zdm_applied(text); ALTER FUNCTION zdm_applied_real(text) RENAME TO zdm_applied;")
        .execute(&pool)
        .await
        .unwrap();

    sqlx::raw_sql("DROP FUNCTION zdm_applied(text)").execute(&pool).await.unwrap();
    let report = m.run_pre(&pool).await.unwrap();
    assert!(report.applied.is_empty(), "the step-by-step boot counts the same rows: {report}");
    assert!(report.instance.is_some(), "and registers");
    assert_eq!(sqlx::query_scalar::<_, i64>(function).fetch_one(&pool).await.unwrap(), 1, "recreated");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 1, "one registration per process, whichever way it booted");
}

/// A run that fails after its boot registered it takes the row back: nothing would keep
/// its heartbeat, yet the gate would count it as a live build for a TTL.
#[tokio::test]
async fn a_failed_run_takes_back_its_boot_registration() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/failing");
    // The first run creates zdm's tables (the step-by-step boot), the second boots in one
    // round trip, registering with its reads; both fail at migration 2.
    assert!(m.run_pre(&pool).await.is_err(), "the set's migration fails");
    assert!(m.run_pre(&pool).await.is_err(), "and again");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM zdm_instances").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 0, "no row left behind by the failed run");
}
