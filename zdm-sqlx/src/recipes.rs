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
//! They run each statement as zdm runs a `no_transaction` file (see [`run_statement`]):
//! the concurrent build and `VALIDATE` under the long lock timeout (30 min) and no
//! statement timeout; the brief `ACCESS EXCLUSIVE` / `SHARE ROW EXCLUSIVE` steps under the
//! short one, tried again after a pause when the lock wait times out; the migration's own
//! timeouts are put back afterwards.
//!
//! Each is idempotent, so a migration interrupted half-way can run again: what is done is
//! found and skipped, an INVALID index left by an interrupted build is dropped and rebuilt.
//!
//! Names are given as they are in the catalog (`"Post Ü"`, `"Title"`, not SQL-quoted),
//! `schema.table` for a table outside the search path; zdm quotes them. Names zdm derives
//! (the temporary check of [`add_not_null`]) are cut to PostgreSQL's 63 bytes at a
//! character boundary.

use sqlx::PgConnection;
use zdm_core::exec::ExecClass;
use zdm_core::ident::{clip_ident, qualified, quote_ident};
use zdm_core::retry::ExecPolicy;

use crate::backend::postgres::simple;
use crate::recipe_exec::{in_transaction_block, IndexRef, Planned, Runner};
pub use crate::recipe_exec::{run_statement, run_statement_with};

/// The quoted name of zdm's SQL function `{prefix}{function}`, in the schema and with the
/// prefix that the running migration's migrator set (zdm sets both for every migration it
/// runs); rebuilt from those settings and quoted, never a setting's text spliced in as SQL.
pub(crate) async fn function_name(conn: &mut PgConnection, function: &str) -> Result<String, sqlx::Error> {
    let (schema, prefix): (Option<String>, Option<String>) = simple::sql(
        "SELECT nullif(current_setting('zdm.schema', true), ''), nullif(current_setting('zdm.prefix', true), '')",
    )
    .row_as(&mut *conn)
    .await?;
    let Some(prefix) = prefix else {
        return Err(sqlx::Error::Protocol(format!(
            "zdm's {function} must be called inside a migration that zdm runs (a #[zdm::migration] function)"
        )));
    };
    Ok(qualified(schema.as_deref(), &format!("{prefix}{function}")))
}

/// Calls `{schema}.{prefix}{function}(args.., [extra])`, named as the running migration's
/// migrator set them.
async fn call(conn: &mut PgConnection, function: &str, args: &[&str], extra: Option<&str>) -> Result<(), sqlx::Error> {
    let name = function_name(conn, function).await?;
    let count = args.len() + usize::from(extra.is_some());
    let params: Vec<String> = (1..=count).map(|i| format!("${i}")).collect();
    let mut q = simple::sql(format!("SELECT {name}({})", params.join(", ")));
    for a in args {
        q = q.bind(*a);
    }
    if let Some(e) = extra {
        q = q.bind(e);
    }
    q.execute(&mut *conn).await.map(drop)
}

/// Schedules a backfill from a Rust-coded migration: `UPDATE table SET {set}` over every
/// row matching `filter`, in batches by the table's integer primary key. `set` and
/// `filter` are SQL, as in a migration file. Idempotent per `name`.
pub async fn backfill(
    conn: &mut PgConnection,
    name: &str,
    table: &str,
    set: &str,
    filter: Option<&str>,
) -> Result<(), sqlx::Error> {
    call(conn, "backfill", &[name, table, set], filter).await
}

/// Renames `table.old` to `new` across deploys (see the module docs).
pub async fn rename_column(conn: &mut PgConnection, table: &str, old: &str, new: &str) -> Result<(), sqlx::Error> {
    call(conn, "rename_column", &[&table_sql(table), old, new], None).await
}

/// Renames `old` to `new` (a bare name: the table stays in its schema), leaving an
/// updatable view named `old` until no old build is live.
pub async fn rename_table(conn: &mut PgConnection, old: &str, new: &str) -> Result<(), sqlx::Error> {
    call(conn, "rename_table", &[&table_sql(old), new], None).await
}

/// Starts changing `table.column` to `new_type` (SQL type text, e.g. `"bigint"`).
pub async fn change_column_type_begin(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    new_type: &str,
) -> Result<(), sqlx::Error> {
    call(conn, "change_column_type_begin", &[&table_sql(table), column, new_type], None).await
}

/// Swaps the filled shadow column in (from an after_deploy migration).
pub async fn change_column_type_finish(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    call(conn, "change_column_type_finish", &[&table_sql(table), column], None).await
}

/// Refuses to run inside a transaction block: each step must commit on its own, or the
/// long `VALIDATE` / concurrent build would run under the short steps' strong locks.
async fn require_autocommit(conn: &mut PgConnection, what: &str) -> Result<(), sqlx::Error> {
    if in_transaction_block(conn).await? {
        return Err(sqlx::Error::Protocol(format!(
            "zdm::recipes::{what} needs a no_transaction migration: `#[zdm::migration(version = .., no_transaction)]`"
        )));
    }
    Ok(())
}

/// Starts running a recipe's statements (see the module docs).
async fn runner<'c>(conn: &'c mut PgConnection, what: &str) -> Result<Runner<'c>, sqlx::Error> {
    require_autocommit(conn, what).await?;
    Runner::start(conn, ExecPolicy::default(), false).await
}

/// `(validated)` of constraint `name` on `table` (SQL), when it exists.
async fn constraint_state(conn: &mut PgConnection, table: &str, name: &str) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar("SELECT convalidated FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2")
        .persistent(false)
        .bind(table)
        .bind(clip_ident(name))
        .fetch_optional(&mut *conn)
        .await
}

/// `SET NOT NULL` without a long ACCESS EXCLUSIVE scan (PostgreSQL 12+).
pub async fn add_not_null(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    let mut r = runner(conn, "add_not_null").await?;
    let result = not_null_steps(&mut r, table, column).await;
    r.finish(result).await
}

async fn not_null_steps(r: &mut Runner<'_>, table: &str, column: &str) -> Result<(), sqlx::Error> {
    let t = table_sql(table);
    let base = table.rsplit('.').next().unwrap_or(table);
    let check = format!("{base}_{column}_not_null");
    let check = clip_ident(&check);
    let (c, k) = (quote_ident(column), quote_ident(check));
    let not_null: Option<bool> = sqlx::query_scalar(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 \
         AND NOT attisdropped",
    )
    .persistent(false)
    .bind(&t)
    .bind(column)
    .fetch_optional(r.conn())
    .await?;
    let Some(not_null) = not_null else {
        return Err(sqlx::Error::Protocol(format!("zdm::recipes::add_not_null: table {t} has no column {c}")));
    };
    let state = constraint_state(r.conn(), &t, check).await?;
    if !not_null {
        if state.is_none() {
            r.run(&Planned::normal(format!("ALTER TABLE {t} ADD CONSTRAINT {k} CHECK ({c} IS NOT NULL) NOT VALID")))
                .await?;
        }
        // VALIDATE takes SHARE UPDATE EXCLUSIVE: reads and writes go on while it scans.
        if state != Some(true) {
            r.run(&Planned::validate(format!("ALTER TABLE {t} VALIDATE CONSTRAINT {k}"))).await?;
        }
        // With the valid check, PostgreSQL 12+ skips the scan: a brief ACCESS EXCLUSIVE.
        r.run(&Planned::normal(format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"))).await?;
    }
    if not_null && state.is_none() {
        return Ok(());
    }
    r.run(&Planned::normal(format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {k}"))).await
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
    let mut r = runner(conn, "add_foreign_key").await?;
    let result = foreign_key_steps(&mut r, fk).await;
    r.finish(result).await
}

async fn foreign_key_steps(r: &mut Runner<'_>, fk: &ForeignKey<'_>) -> Result<(), sqlx::Error> {
    let t = table_sql(fk.table);
    let name = quote_ident(clip_ident(fk.name));
    let state = constraint_state(r.conn(), &t, fk.name).await?;
    if state.is_none() {
        // SHARE ROW EXCLUSIVE on both tables, briefly.
        r.run(&Planned::normal(format!(
            "ALTER TABLE {t} ADD CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({}) {} NOT VALID",
            columns_sql(fk.columns),
            table_sql(fk.references),
            columns_sql(fk.referenced_columns),
            fk.actions
        )))
        .await?;
    }
    if state != Some(true) {
        r.run(&Planned::validate(format!("ALTER TABLE {t} VALIDATE CONSTRAINT {name}"))).await?;
    }
    Ok(())
}

/// Adds a unique constraint from an index built concurrently.
pub async fn add_unique(conn: &mut PgConnection, table: &str, columns: &[&str], name: &str) -> Result<(), sqlx::Error> {
    let mut r = runner(conn, "add_unique").await?;
    let result = unique_steps(&mut r, table, columns, name).await;
    r.finish(result).await
}

async fn unique_steps(r: &mut Runner<'_>, table: &str, columns: &[&str], name: &str) -> Result<(), sqlx::Error> {
    let t = table_sql(table);
    if constraint_state(r.conn(), &t, name).await?.is_some() {
        return Ok(());
    }
    let index = quote_ident(clip_ident(name));
    // An interrupted build's INVALID index is dropped first (IF NOT EXISTS would keep it);
    // a valid one from an interrupted run is kept.
    r.run(&Planned {
        sql: format!("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {t} ({})", columns_sql(columns)),
        class: ExecClass::Concurrent,
        index: Some(IndexRef { name: name.to_string(), table: Some(t.clone()) }),
    })
    .await?;
    r.run(&Planned::normal(format!("ALTER TABLE {t} ADD CONSTRAINT {index} UNIQUE USING INDEX {index}"))).await
}

/// `schema.table` or `table`, each part quoted. A name that starts with `"` is read as
/// SQL (`"my.schema"."Odd ""name"""`): the way to name a schema or table that contains a
/// dot or starts with a quote.
fn table_sql(table: &str) -> String {
    if table.starts_with('"') {
        if let Some(parts) = split_quoted(table) {
            return parts.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join(".");
        }
    }
    match table.split_once('.') {
        Some((s, t)) => qualified(Some(s), t),
        None => quote_ident(table),
    }
}

/// The parts of a dotted SQL name whose parts are double-quoted identifiers or plain words.
fn split_quoted(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return (parts.len() <= 2).then_some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

fn columns_sql(columns: &[&str]) -> String {
    columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_as_sql_or_as_in_the_catalog() {
        assert_eq!(table_sql("posts"), "\"posts\"");
        assert_eq!(table_sql("app.Posts"), "\"app\".\"Posts\"");
        assert_eq!(table_sql("Post Ü"), "\"Post Ü\"");
        assert_eq!(table_sql("\"my.schema\".\"a \"\"b\"\"\""), "\"my.schema\".\"a \"\"b\"\"\"");
        assert_eq!(table_sql("\"A.b\""), "\"A.b\"");
        assert_eq!(table_sql("\"s\".Posts"), "\"s\".\"posts\"");
    }
}
