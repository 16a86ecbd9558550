//! Statement by statement, the way zdm runs a `no_transaction` migration file, for the
//! recipes and for Rust-coded migrations ([`run_statement`]).
//!
//! Each statement gets the timeouts of its class (zdm_core::exec): `CREATE/DROP INDEX
//! CONCURRENTLY`, `REINDEX .. CONCURRENTLY` and `VALIDATE CONSTRAINT` wait up to
//! [`ExecPolicy::concurrent_lock_timeout`] (30 min) with no statement timeout, since their
//! locks do not block traffic and a short lock timeout would make a concurrent build fail
//! and leave an INVALID index; every other statement gets the schedule's short lock timeout
//! and the migration's statement timeout, and is tried again after a pause when its lock
//! wait times out (SQLSTATE 55P03) or it deadlocks. An INVALID index left by a failed
//! concurrent build is dropped concurrently before the next try; a valid one is kept and
//! its build skipped. The settings are made with `set_config(.., false)` before each
//! statement, and the migration's own values are put back afterwards, whatever happened.
//!
//! Inside a transaction block (a transactional Rust migration) nothing can be retried on its
//! own, and CONCURRENTLY is refused by PostgreSQL: each statement runs once, under its
//! class's timeouts set for the transaction only (`set_config(.., true)`), and a lock
//! timeout fails the migration, whose transaction zdm's executor retries as a whole.

use sqlx::{AssertSqlSafe, PgConnection};
use zdm_core::exec::{self, ExecClass};
use zdm_core::ident::{clip_ident, qualified};
use zdm_core::retry::{is_retryable, ExecPolicy};
use zdm_core::Migration;

/// Runs the statements of `sql` one by one (split as a migration file is: quotes, dollar
/// quotes and comments respected), each under the timeouts of its kind and with retries,
/// as zdm runs the statements of a `no_transaction` file; see the module docs. Use it in a
/// Rust-coded migration for `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT` and any DDL
/// that may wait for a lock:
///
/// ```ignore
/// use zdm::recipes::run_statement;
///
/// #[zdm::migration(version = 20240301000000, no_transaction)]
/// async fn index_posts_by_author(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
///     run_statement(conn, "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_author_idx ON posts (author_id)").await
/// }
/// ```
///
/// `migrations!` lints the SQL literal it is given, like any other in a Rust migration.
/// The retry schedule is [`ExecPolicy::default`]'s; [`run_statement_with`] takes another.
pub async fn run_statement(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    run_statement_with(conn, sql, &ExecPolicy::default()).await
}

/// [`run_statement`] with the timeouts and retries of `policy`.
pub async fn run_statement_with(conn: &mut PgConnection, sql: &str, policy: &ExecPolicy) -> Result<(), sqlx::Error> {
    let planned: Vec<Planned> = exec::statements(sql)
        .into_iter()
        .map(|s| Planned {
            sql: s.text.to_string(),
            class: s.class,
            index: s.creates_index.map(|name| IndexRef { name, table: None }),
        })
        .collect();
    let in_block = in_transaction_block(conn).await?;
    let mut runner = Runner::start(conn, policy.clone(), in_block).await?;
    let mut result = Ok(());
    for stmt in &planned {
        result = runner.run(stmt).await;
        if result.is_err() {
            break;
        }
    }
    runner.finish(result).await
}

/// One statement and how to run it.
pub(crate) struct Planned {
    pub sql: String,
    pub class: ExecClass,
    /// Set for `CREATE INDEX CONCURRENTLY name`: the index whose INVALID leftover to drop.
    pub index: Option<IndexRef>,
}

impl Planned {
    pub(crate) fn normal(sql: String) -> Planned {
        Planned { sql, class: ExecClass::Normal, index: None }
    }
    pub(crate) fn validate(sql: String) -> Planned {
        Planned { sql, class: ExecClass::Validate, index: None }
    }
}

/// An index a statement builds concurrently.
pub(crate) struct IndexRef {
    pub name: String,
    /// The table (as SQL, e.g. `"app"."books"`) whose schema holds the index; `None`: the
    /// index is found through the search path.
    pub table: Option<String>,
}

/// Runs statements on one connection and puts the migration's timeouts back at the end.
pub(crate) struct Runner<'c> {
    conn: &'c mut PgConnection,
    policy: ExecPolicy,
    in_block: bool,
    /// The migration's `lock_timeout` and `statement_timeout` before the first statement.
    lock_before: String,
    statement_before: String,
}

const READ_SETTINGS: &str = "SELECT current_setting('lock_timeout'), current_setting('statement_timeout')";
const SET_SETTINGS: &str = "SELECT set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)";
const INDEX_STATE: &str = "\
SELECT i.indisvalid, n.nspname::text
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1
  AND CASE WHEN $2::text IS NULL THEN pg_table_is_visible(c.oid)
           ELSE c.relnamespace = (SELECT t.relnamespace FROM pg_class t WHERE t.oid = $2::text::regclass) END";

impl<'c> Runner<'c> {
    pub(crate) async fn start(
        conn: &'c mut PgConnection,
        policy: ExecPolicy,
        in_block: bool,
    ) -> Result<Self, sqlx::Error> {
        let (lock_before, statement_before): (String, String) =
            sqlx::query_as(READ_SETTINGS).persistent(false).fetch_one(&mut *conn).await?;
        Ok(Runner { conn, policy, in_block, lock_before, statement_before })
    }

    /// The connection, for lookups between statements.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        self.conn
    }

    /// Puts the migration's timeouts back, then returns `result` (or the error of putting
    /// them back).
    pub(crate) async fn finish<T>(self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        let restored = set_timeouts(self.conn, &self.lock_before, &self.statement_before, self.in_block).await;
        let value = result?;
        restored?;
        Ok(value)
    }

    /// Runs one statement under its class's timeouts, retrying lock timeouts outside a
    /// transaction block.
    pub(crate) async fn run(&mut self, stmt: &Planned) -> Result<(), sqlx::Error> {
        let meta = Migration::synthetic(0);
        let schedule = self.policy.schedule(&meta);
        let tries = if self.in_block { 1 } else { schedule.len() };
        for (n, attempt) in schedule.iter().take(tries).enumerate() {
            let (lock_ms, _) = self.policy.timeouts_ms(&meta, stmt.class, attempt);
            let statement = match stmt.class {
                ExecClass::Normal => self.statement_before.clone(),
                ExecClass::Concurrent | ExecClass::Validate => "0".to_string(),
            };
            set_timeouts(self.conn, &format!("{lock_ms}ms"), &statement, self.in_block).await?;
            if let Some(index) = stmt.index.as_ref().filter(|_| !self.in_block) {
                match index_state(self.conn, index).await? {
                    Some((true, _)) => {
                        tracing::info!(index = %index.name, "index already built and valid; skipping its CREATE INDEX CONCURRENTLY");
                        return Ok(());
                    }
                    Some((false, schema)) => drop_invalid_index(self.conn, &schema, &index.name).await?,
                    None => {}
                }
            }
            let e = match sqlx::raw_sql(AssertSqlSafe(stmt.sql.as_str())).execute(&mut *self.conn).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(index) = stmt.index.as_ref().filter(|_| !self.in_block) {
                if let Some((false, schema)) = index_state(self.conn, index).await? {
                    drop_invalid_index(self.conn, &schema, &index.name).await?;
                }
            }
            let retryable = e.as_database_error().and_then(|d| d.code()).is_some_and(|code| is_retryable(&code));
            if !retryable || n + 1 == tries {
                return Err(e);
            }
            tracing::warn!(
                "attempt {} of {} gave up after lock_timeout {lock_ms} ms ({e}); retrying in {} ms: {}",
                n + 1,
                tries,
                attempt.pause_after.as_millis(),
                first_line(&stmt.sql)
            );
            tokio::time::sleep(attempt.pause_after).await;
        }
        unreachable!("the schedule has at least one attempt")
    }
}

async fn set_timeouts(conn: &mut PgConnection, lock: &str, statement: &str, local: bool) -> Result<(), sqlx::Error> {
    sqlx::query(SET_SETTINGS)
        .persistent(false)
        .bind(lock)
        .bind(statement)
        .bind(local)
        .execute(&mut *conn)
        .await
        .map(drop)
}

/// `(valid, schema)` of the index, when it exists.
async fn index_state(conn: &mut PgConnection, index: &IndexRef) -> Result<Option<(bool, String)>, sqlx::Error> {
    sqlx::query_as(INDEX_STATE)
        .persistent(false)
        .bind(clip_ident(&index.name))
        .bind(index.table.as_deref())
        .fetch_optional(&mut *conn)
        .await
}

/// A failed or interrupted `CREATE INDEX CONCURRENTLY` leaves an INVALID index that an
/// `IF NOT EXISTS` retry would silently keep: drop it (concurrently, under the long lock
/// timeout the build had) first.
async fn drop_invalid_index(conn: &mut PgConnection, schema: &str, index: &str) -> Result<(), sqlx::Error> {
    tracing::warn!(index = %index, "dropping the INVALID index a failed concurrent build left behind");
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", qualified(Some(schema), clip_ident(index)));
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await.map(drop)
}

/// Whether `conn` is inside a transaction block: a savepoint is refused outside one
/// (SQLSTATE 25P01) and taken inside one.
pub(crate) async fn in_transaction_block(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    match sqlx::raw_sql("SAVEPOINT zdm_autocommit_probe").execute(&mut *conn).await {
        Ok(_) => {
            sqlx::raw_sql("RELEASE SAVEPOINT zdm_autocommit_probe").execute(&mut *conn).await?;
            Ok(true)
        }
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("25P01") => Ok(false),
        Err(e) => Err(e),
    }
}

fn first_line(sql: &str) -> &str {
    let line = sql.trim().lines().next().unwrap_or("");
    match line.char_indices().nth(80) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}
