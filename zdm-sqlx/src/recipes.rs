//! Expand/contract recipes for Rust-coded migrations: the user states a change once and
//! zdm spreads it over the pre-deploy step, a batched backfill and the post-deploy step.
//!
//! The first four call SQL functions zdm installs (SQL-file users call the same:
//! `SELECT zdm_rename_column('posts', 'title', 'headline');`):
//!
//! * [`rename_column`]: adds the new column, a trigger keeps both in sync in both
//!   directions while old and new builds run, a backfill fills it, and the old column is
//!   dropped later (a deferred drop, after the backfill and once no old build is live).
//! * [`rename_table`]: renames and leaves an updatable view under the old name, in one
//!   transaction; the view is dropped later (deferred).
//! * [`change_column_type_begin`] (pre-deploy) / [`change_column_type_finish`]
//!   (after_deploy): a shadow column of the new type follows the column through a trigger
//!   and a backfill; the finish swaps them and drops the old one later.
//!
//! The last three run several statements that must each commit on their own, so they
//! need a `no_transaction` migration (`#[zdm::migration(version = N, no_transaction)]`):
//!
//! * [`add_not_null`]: `CHECK (c IS NOT NULL) NOT VALID`, `VALIDATE`, `SET NOT NULL`
//!   (which uses the valid check instead of scanning), drop the check;
//! * [`add_foreign_key`]: `NOT VALID`, then `VALIDATE`;
//! * [`add_unique`]: a unique index built `CONCURRENTLY`, then `ADD CONSTRAINT .. UNIQUE
//!   USING INDEX`.
//!
//! Each is idempotent, so a migration interrupted half-way can run again.

use sqlx::{AssertSqlSafe, PgConnection};
use zdm_core::ident::{qualified, quote_ident};

/// Calls `{schema}.{prefix}{function}(args.., [extra])`, named as the running migration's
/// migrator set them.
pub(crate) async fn call(
    conn: &mut PgConnection,
    function: &str,
    args: &[&str],
    extra: Option<&str>,
) -> Result<(), sqlx::Error> {
    let (schema, prefix): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT nullif(current_setting('zdm.schema', true), ''), nullif(current_setting('zdm.prefix', true), '')",
    )
    .fetch_one(&mut *conn)
    .await?;
    let Some(prefix) = prefix else {
        return Err(sqlx::Error::Protocol(format!(
            "zdm's {function} must be called inside a migration that zdm runs (a #[zdm::migration] function)"
        )));
    };
    let name = qualified(schema.as_deref(), &format!("{prefix}{function}"));
    let count = args.len() + usize::from(extra.is_some());
    let params: Vec<String> = (1..=count).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT {name}({})", params.join(", "));
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for a in args {
        q = q.bind(*a);
    }
    if let Some(e) = extra {
        q = q.bind(e);
    }
    q.execute(&mut *conn).await.map(drop)
}

/// Renames `table.old` to `new` across deploys (see the module docs).
pub async fn rename_column(conn: &mut PgConnection, table: &str, old: &str, new: &str) -> Result<(), sqlx::Error> {
    call(conn, "rename_column", &[table, old, new], None).await
}

/// Renames `old` to `new`, leaving an updatable view named `old` until no old build is live.
pub async fn rename_table(conn: &mut PgConnection, old: &str, new: &str) -> Result<(), sqlx::Error> {
    call(conn, "rename_table", &[old, new], None).await
}

/// Starts changing `table.column` to `new_type` (SQL type text, e.g. `"bigint"`).
pub async fn change_column_type_begin(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    new_type: &str,
) -> Result<(), sqlx::Error> {
    call(conn, "change_column_type_begin", &[table, column, new_type], None).await
}

/// Swaps the filled shadow column in (from an after_deploy migration).
pub async fn change_column_type_finish(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    call(conn, "change_column_type_finish", &[table, column], None).await
}

/// Refuses to run inside a transaction block: each step must commit on its own, or the
/// long `VALIDATE` / concurrent build would run under the short steps' strong locks.
async fn require_autocommit(conn: &mut PgConnection, what: &str) -> Result<(), sqlx::Error> {
    // A savepoint is refused outside a transaction block (SQLSTATE 25P01), taken inside one.
    let in_block = match sqlx::raw_sql("SAVEPOINT zdm_autocommit_probe").execute(&mut *conn).await {
        Ok(_) => {
            sqlx::raw_sql("RELEASE SAVEPOINT zdm_autocommit_probe").execute(&mut *conn).await?;
            true
        }
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("25P01") => false,
        Err(e) => return Err(e),
    };
    if in_block {
        return Err(sqlx::Error::Protocol(format!(
            "zdm::recipes::{what} needs a no_transaction migration: `#[zdm::migration(version = .., no_transaction)]`"
        )));
    }
    Ok(())
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await.map(drop)
}

async fn constraint_exists(conn: &mut PgConnection, table: &str, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2)")
        .bind(table)
        .bind(name)
        .fetch_one(&mut *conn)
        .await
}

/// `SET NOT NULL` without a long ACCESS EXCLUSIVE scan (PostgreSQL 12+).
pub async fn add_not_null(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    require_autocommit(conn, "add_not_null").await?;
    let t = table_sql(table);
    let check = format!("{}_{column}_not_null", table.rsplit('.').next().unwrap_or(table));
    let check = &check[..check.len().min(63)];
    let (c, k) = (quote_ident(column), quote_ident(check));
    if !constraint_exists(conn, table, check).await? {
        exec(conn, format!("ALTER TABLE {t} ADD CONSTRAINT {k} CHECK ({c} IS NOT NULL) NOT VALID")).await?;
    }
    // VALIDATE takes SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans.
    exec(conn, "SET statement_timeout = 0".into()).await?;
    exec(conn, format!("ALTER TABLE {t} VALIDATE CONSTRAINT {k}")).await?;
    exec(conn, format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL")).await?;
    exec(conn, format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {k}")).await
}

/// A foreign key to add with [`add_foreign_key`].
#[derive(Debug, Clone)]
pub struct ForeignKey<'a> {
    pub name: &'a str,
    pub table: &'a str,
    pub columns: &'a [&'a str],
    pub references: &'a str,
    pub referenced_columns: &'a [&'a str],
    /// e.g. `"ON DELETE CASCADE"` (SQL, as in a migration).
    pub actions: &'a str,
}

/// Adds a foreign key `NOT VALID` (a short lock), then validates it without blocking writes.
pub async fn add_foreign_key(conn: &mut PgConnection, fk: &ForeignKey<'_>) -> Result<(), sqlx::Error> {
    require_autocommit(conn, "add_foreign_key").await?;
    let t = table_sql(fk.table);
    let name = quote_ident(fk.name);
    if !constraint_exists(conn, fk.table, fk.name).await? {
        exec(
            conn,
            format!(
                "ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({}) {} NOT VALID",
                columns_sql(fk.columns),
                table_sql(fk.references),
                columns_sql(fk.referenced_columns),
                fk.actions
            ),
        )
        .await?;
    }
    exec(conn, "SET statement_timeout = 0".into()).await?;
    exec(conn, format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}")).await
}

/// Adds a unique constraint from an index built concurrently.
pub async fn add_unique(conn: &mut PgConnection, table: &str, columns: &[&str], name: &str) -> Result<(), sqlx::Error> {
    require_autocommit(conn, "add_unique").await?;
    if constraint_exists(conn, table, name).await? {
        return Ok(());
    }
    let t = table_sql(table);
    let index = quote_ident(name);
    // An interrupted concurrent build leaves an INVALID index that IF NOT EXISTS would keep.
    let valid: Option<bool> = sqlx::query_scalar(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE c.relname = $1 AND pg_table_is_visible(c.oid)",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    if valid == Some(false) {
        exec(conn, format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")).await?;
    }
    exec(conn, "SET statement_timeout = 0".into()).await?;
    exec(conn, format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {t} ({})", columns_sql(columns)))
        .await?;
    exec(conn, format!("ALTER TABLE {t} ADD CONSTRAINT {index} UNIQUE USING INDEX {index}")).await
}

/// `schema.table` or `table`, each part quoted.
fn table_sql(table: &str) -> String {
    match table.split_once('.') {
        Some((s, t)) => qualified(Some(s), t),
        None => quote_ident(table),
    }
}

fn columns_sql(columns: &[&str]) -> String {
    columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
}
