//! What a plain migration removes (`ALTER TABLE .. DROP COLUMN`, `DROP TABLE`), read
//! before it runs and recorded with it, in the deferred drops' table: an older build whose
//! structs still map it then refuses to boot, whichever way the column went.

use sqlx::{AssertSqlSafe, PgConnection};

use super::simple;
use crate::error::{Doing, Error};
use crate::migration::{Body, Step};
use crate::names::Names;

/// Where the removed columns and tables of a migration live, read before it runs.
const RESOLVE_RELATION: &str = "SELECT n.nspname::text, c.relname::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";
/// Whether a column or table is gone.
const GONE: &str = "SELECT CASE WHEN $3::text IS NULL THEN to_regclass(format('%I.%I', $1, $2)) IS NULL \
     ELSE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(format('%I.%I', $1, $2)) \
     AND attname = $3 AND attnum > 0 AND NOT attisdropped) END";
const RECORD_REMOVED: &str = "\
INSERT INTO {drops} AS d (schema_name, table_name, column_name, scheduled_by, scheduled_at, dropped_at, state)
VALUES ($1, $2, $3, $4, clock_timestamp(), clock_timestamp(), 'dropped')
ON CONFLICT (schema_name, table_name, (coalesce(column_name, ''))) DO UPDATE
    SET state = 'dropped', dropped_at = clock_timestamp(), scheduled_by = EXCLUDED.scheduled_by";

/// A column (or a table, without `column`) a migration removes, where it lives.
pub(super) struct RemovedObject {
    schema: String,
    table: String,
    column: Option<String>,
}

/// Each object the migration's SQL removes that exists now.
pub(super) async fn resolve_removed(conn: &mut PgConnection, step: &Step) -> Result<Vec<RemovedObject>, Error> {
    let Body::Sql(sql) = step.body else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for r in zdm_core::removed::removed(sql) {
        let found: Option<(String, String)> = simple::sql(RESOLVE_RELATION)
            .bind(zdm_core::ident::quote_ident(&r.table))
            .row_as_optional(&mut *conn)
            .await
            .doing("reading what a migration removes")?;
        if let Some((schema, table)) = found {
            out.push(RemovedObject { schema, table, column: r.column });
        }
    }
    Ok(out)
}

/// Records what the migration removed, so an older build that maps it refuses to boot
/// (it would fail on its first query), whether it went by a deferred drop or a plain one.
pub(super) async fn record_removed(
    conn: &mut PgConnection,
    names: &Names,
    version: i64,
    removed: &[RemovedObject],
) -> Result<(), Error> {
    for RemovedObject { schema, table, column } in removed {
        let gone: bool = simple::sql(GONE)
            .bind(schema)
            .bind(table)
            .bind(column)
            .scalar(&mut *conn)
            .await
            .doing("checking what a migration removed")?;
        if gone {
            // A pending deferred drop of the same column: its read-only trigger goes too, or
            // a column re-added under that name later would be read-only.
            let pending: Option<i64> = simple::sql(names.sql(
                "SELECT id FROM {drops} WHERE schema_name = $1 AND table_name = $2 AND column_name = $3 \
                 AND state = 'pending'",
            ))
            .bind(schema)
            .bind(table)
            .bind(column)
            .scalar_optional(&mut *conn)
            .await
            .doing("recording what a migration removed")?;
            if let (Some(id), Some(_)) = (pending, column) {
                let trigger = zdm_core::ident::quote_ident(&format!("{}read_only_{id}", names.prefix));
                let table = zdm_core::ident::qualified(Some(schema), table);
                sqlx::raw_sql(AssertSqlSafe(format!("DROP TRIGGER IF EXISTS {trigger} ON {table}")))
                    .execute(&mut *conn)
                    .await
                    .doing("recording what a migration removed")?;
            }
            simple::sql(names.sql(RECORD_REMOVED))
                .bind(schema)
                .bind(table)
                .bind(column)
                .bind(version)
                .execute(&mut *conn)
                .await
                .doing("recording what a migration removed")?;
        }
    }
    Ok(())
}
