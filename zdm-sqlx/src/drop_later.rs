//! Scheduling deferred drops from a Rust-coded migration (Discourse's ColumnDropper /
//! TableDropper, gated on live builds).
//!
//! A migration schedules a drop with [`drop_column_later`] / [`drop_table_later`] (or the
//! SQL functions `zdm_drop_column_later('posts', 'legacy')` and
//! `zdm_drop_table_later('old_audit')` that zdm installs). Scheduling only records the drop
//! and, for a column, relaxes `NOT NULL`: the build still serving may write it. Once no
//! live instance runs a build without the scheduling migration and none maps the column,
//! `run_post` drops it. With a minimum delay, the column or table is made read-only by a
//! trigger while the delay runs, so a forgotten writer fails loudly instead of losing data.

use std::time::Duration;

use sqlx::PgConnection;

use crate::backend::postgres::simple;

/// Schedules `table.column` for dropping once no live build needs it. Call it from a
/// Rust-coded migration (pre-deploy is fine: it only records the drop and drops
/// `NOT NULL`). `table` is read as SQL reads it: `posts`, `app.posts`, `"Posts"`.
pub async fn drop_column_later(conn: &mut PgConnection, table: &str, column: &str) -> Result<(), sqlx::Error> {
    drop_column_later_with_delay(conn, table, column, Duration::ZERO).await
}

/// [`drop_column_later`] that also waits at least `min_delay` after scheduling; the column
/// is read-only while the delay runs once no old build is live.
pub async fn drop_column_later_with_delay(
    conn: &mut PgConnection,
    table: &str,
    column: &str,
    min_delay: Duration,
) -> Result<(), sqlx::Error> {
    let f = crate::recipes::function_name(conn, "drop_column_later").await?;
    simple::sql(format!("SELECT {f}($1, $2, make_interval(secs => $3))"))
        .bind(table)
        .bind(column)
        .bind(min_delay.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Schedules `table` for dropping once no live build reads it.
pub async fn drop_table_later(conn: &mut PgConnection, table: &str) -> Result<(), sqlx::Error> {
    drop_table_later_with_delay(conn, table, Duration::ZERO).await
}

/// [`drop_table_later`] with a minimum delay, read-only while it runs.
pub async fn drop_table_later_with_delay(
    conn: &mut PgConnection,
    table: &str,
    min_delay: Duration,
) -> Result<(), sqlx::Error> {
    let f = crate::recipes::function_name(conn, "drop_table_later").await?;
    simple::sql(format!("SELECT {f}($1, make_interval(secs => $2))"))
        .bind(table)
        .bind(min_delay.as_secs_f64())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
