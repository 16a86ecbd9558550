//! PostgreSQL's deferred drops: their table, the SQL functions zdm installs
//! (`zdm_drop_column_later`, `zdm_drop_table_later`, the read-only trigger) and the
//! statements of each step of a due drop.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};
use zdm_core::gate::{DropRecord, DropStep, DropTarget, PendingDrop};
use zdm_core::ident::{qualified, quote_ident, quote_literal};
use zdm_core::retry::ExecPolicy;

use super::{instances, lease, session, simple};
use crate::backend::{Drops, StepGuard, StepOutcome};
use crate::error::{Doing, Error};
use crate::names::Names;

/// The drops table and the SQL functions migrations call, created with the registry.
pub(super) const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS {drops} (
    id           BIGSERIAL PRIMARY KEY,
    schema_name  TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    column_name  TEXT,
    scheduled_by BIGINT NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL,
    not_before   TIMESTAMPTZ,
    read_only_at TIMESTAMPTZ,
    dropped_at   TIMESTAMPTZ,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dropped')),
    is_view      BOOLEAN NOT NULL DEFAULT false,
    before_drop  TEXT,
    saved_default TEXT
);
-- The default a read-only step dropped, put back if a build that writes it returns.
ALTER TABLE {drops} ADD COLUMN IF NOT EXISTS saved_default TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS {drops_key} ON {drops} (schema_name, table_name, (coalesce(column_name, '')));

-- The schema and name of a relation, as the functions below record them.
CREATE OR REPLACE FUNCTION {obj:relation}(p_rel regclass, OUT schema_name text, OUT table_name text)
LANGUAGE sql STABLE AS $zdm$
    SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = p_rel
$zdm$;

-- Records a pending drop (again, when an earlier one of the same object was carried out).
CREATE OR REPLACE FUNCTION {obj:schedule_drop}(p_schema text, p_table text, p_column text, p_version bigint,
                                               p_min_delay interval, p_view boolean)
RETURNS void LANGUAGE sql AS $zdm$
    INSERT INTO {drops} AS d (schema_name, table_name, column_name, scheduled_by, scheduled_at, not_before, is_view)
    VALUES (p_schema, p_table, p_column, p_version, clock_timestamp(), clock_timestamp() + p_min_delay, p_view)
    ON CONFLICT (schema_name, table_name, (coalesce(column_name, ''))) DO UPDATE
        SET scheduled_by = EXCLUDED.scheduled_by, scheduled_at = EXCLUDED.scheduled_at, is_view = EXCLUDED.is_view,
            not_before = EXCLUDED.not_before, read_only_at = NULL, dropped_at = NULL, state = 'pending'
        WHERE d.state = 'dropped'
$zdm$;

CREATE OR REPLACE FUNCTION {fn_drop_column}(p_table text, p_column text, p_min_delay interval DEFAULT '0')
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := nullif(current_setting('zdm.migration_version', true), '')::bigint;
    v_rel regclass;
    v_schema text;
    v_table text;
    v_notnull boolean;
BEGIN
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'drop_column_later(%, %) must run inside a migration that zdm applies', p_table, p_column
            USING HINT = 'call it from a migration file or a #[zdm::migration] function';
    END IF;
    v_rel := p_table::regclass;
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    SELECT a.attnotnull INTO v_notnull FROM pg_attribute a
    WHERE a.attrelid = v_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'drop_column_later: table % has no column %', p_table, p_column;
    END IF;
    -- The old build may still insert rows without it once a new build stops writing it.
    IF v_notnull THEN
        EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I DROP NOT NULL', v_schema, v_table, p_column);
    END IF;
    PERFORM {obj:schedule_drop}(v_schema, v_table, p_column, v_version, p_min_delay, false);
END
$zdm$;

CREATE OR REPLACE FUNCTION {fn_drop_table}(p_table text, p_min_delay interval DEFAULT '0')
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := nullif(current_setting('zdm.migration_version', true), '')::bigint;
    v_rel regclass;
    v_schema text;
    v_table text;
    v_fk text;
BEGIN
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'drop_table_later(%) must run inside a migration that zdm applies', p_table
            USING HINT = 'call it from a migration file or a #[zdm::migration] function';
    END IF;
    v_rel := p_table::regclass;
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    SELECT format('%s on %s', conname, conrelid::regclass) INTO v_fk FROM pg_constraint
    WHERE contype = 'f' AND confrelid = v_rel AND conrelid <> v_rel LIMIT 1;
    IF v_fk IS NOT NULL THEN
        RAISE EXCEPTION 'drop_table_later(%): foreign key % still references it', p_table, v_fk
            USING HINT = 'drop that foreign key first (or schedule its table''s drop before this one)';
    END IF;
    PERFORM {obj:schedule_drop}(v_schema, v_table, NULL, v_version, p_min_delay, false);
END
$zdm$;

-- Arguments: the scheduling migration's version, then (for a column) the column's name.
CREATE OR REPLACE FUNCTION {fn_read_only}() RETURNS trigger LANGUAGE plpgsql AS $zdm$
BEGIN
    IF TG_NARGS = 1 THEN
        RAISE EXCEPTION 'table %.% is read-only: zdm drops it (scheduled by migration %)',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0]
            USING ERRCODE = '55000', HINT = 'this code still writes a table that a newer build removes; stop writing it';
    END IF;
    IF (TG_OP = 'INSERT' AND coalesce(to_jsonb(NEW) -> TG_ARGV[1], 'null'::jsonb) <> 'null'::jsonb)
       OR (TG_OP = 'UPDATE' AND (to_jsonb(NEW) -> TG_ARGV[1]) IS DISTINCT FROM (to_jsonb(OLD) -> TG_ARGV[1])) THEN
        RAISE EXCEPTION 'column %.%.% is read-only: zdm drops it (scheduled by migration %)',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[1], TG_ARGV[0]
            USING ERRCODE = '55000',
                  HINT = 'new rows must leave it NULL and updates must not change it; remove the field and list the column in #[zdm::ignored_columns]';
    END IF;
    RETURN NEW;
END
$zdm$;
"#;

pub(super) fn create_sql(names: &Names) -> String {
    names.sql(CREATE).replace("{drops_key}", &quote_ident(&format!("{}deferred_drops_target", names.prefix)))
}

/// The functions' signatures, for `to_regprocedure` in the bootstrap check.
pub(super) fn function_signatures(names: &Names) -> [String; 3] {
    [
        format!("{}(text, text, interval)", names.fn_drop_column),
        format!("{}(text, interval)", names.fn_drop_table),
        format!("{}()", names.fn_read_only),
    ]
}

/// `read_only` only while the drop's own trigger is really there (a column or table whose
/// trigger went missing is protected again); `gone` when the object no longer exists.
const LOAD_DROPS: &str = "\
SELECT id, schema_name, table_name, column_name, scheduled_by, scheduled_at, not_before,
       coalesce(not_before <= clock_timestamp(), true),
       read_only_at IS NOT NULL AND (is_view OR EXISTS (
           SELECT 1 FROM pg_trigger t WHERE t.tgrelid = to_regclass(format('%I.%I', schema_name, table_name))
           AND t.tgname = '{prefix}read_only_' || id)),
       state = 'dropped',
       extract(epoch FROM clock_timestamp() - scheduled_at)::float8, is_view, before_drop,
       CASE WHEN column_name IS NULL THEN to_regclass(format('%I.%I', schema_name, table_name)) IS NULL
            ELSE NOT EXISTS (SELECT 1 FROM pg_attribute a
                             WHERE a.attrelid = to_regclass(format('%I.%I', schema_name, table_name))
                             AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped) END
FROM {drops} ORDER BY id";

/// Every drop ever scheduled, with whether it has been carried out.
pub(super) async fn load_drops<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    names: &Names,
) -> Result<Vec<DropRecord>, Error> {
    let rows = simple::sql(names.sql(LOAD_DROPS)).fetch_all(executor).await.doing("reading the deferred drops")?;
    rows.iter()
        .map(|r| {
            let column: Option<String> = r.try_get(3)?;
            let not_before: Option<DateTime<Utc>> = r.try_get(6)?;
            let passed: bool = r.try_get(7)?;
            Ok(DropRecord {
                drop: PendingDrop {
                    id: r.try_get(0)?,
                    schema: r.try_get(1)?,
                    table: r.try_get(2)?,
                    target: match (column, r.try_get::<bool, _>(11)?) {
                        (Some(c), _) => DropTarget::Column(c),
                        (None, true) => DropTarget::View,
                        (None, false) => DropTarget::Table,
                    },
                    scheduled_by: r.try_get(4)?,
                    scheduled_at: r.try_get(5)?,
                    not_before: not_before.map(|t| (t, passed)),
                    read_only: r.try_get(8)?,
                    age: zdm_core::time::from_secs_f64(r.try_get(10)?),
                    before_drop: r.try_get(12)?,
                    gone: r.try_get(13)?,
                },
                dropped: r.try_get(9)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .doing("reading the deferred drops")
}

/// The name of a drop's own read-only trigger: one per drop, so two pending drops on one
/// table each keep their protection and removing one never removes the other.
pub(super) fn trigger_name(names: &Names, d: &PendingDrop) -> String {
    quote_ident(&format!("{}read_only_{}", names.prefix, d.id))
}

/// The statements of one step of a drop, run in one transaction.
pub(super) fn step_sql(names: &Names, d: &PendingDrop, step: DropStep) -> Vec<String> {
    let table = qualified(Some(&d.schema), &d.table);
    let version = quote_literal(&d.scheduled_by.to_string());
    let trigger = trigger_name(names, d);
    let mark = |set: &str| {
        format!(
            "UPDATE {} SET {set} WHERE id = {}; SELECT pg_notify({}, {version})",
            names.drops,
            d.id,
            quote_literal(crate::names::SCHEMA_CHANGED)
        )
    };
    let mut out: Vec<String> = match step {
        DropStep::Writable => Vec::new(),
        _ => d.before_drop.iter().cloned().collect(),
    };
    out.extend(match (&d.target, step) {
        (DropTarget::Column(c), DropStep::ReadOnly) => vec![
            // A default would write the column on every insert of the new build: kept
            // aside, for a rolled-back build that comes to rely on it again.
            format!(
                "UPDATE {} SET saved_default = (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d \
                 JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
                 WHERE a.attrelid = {}::regclass AND a.attname = {}) WHERE id = {}",
                names.drops,
                simple::literal(&table),
                simple::literal(c),
                d.id
            ),
            format!("ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT", quote_ident(c)),
            format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
            format!(
                "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW \
                 EXECUTE PROCEDURE {}({version}, {})",
                names.fn_read_only,
                simple::literal(c)
            ),
            mark("read_only_at = clock_timestamp()"),
        ],
        (DropTarget::Table, DropStep::ReadOnly) => vec![
            format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
            format!(
                "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
                 FOR EACH STATEMENT EXECUTE PROCEDURE {}({version})",
                names.fn_read_only
            ),
            mark("read_only_at = clock_timestamp()"),
        ],
        (DropTarget::Column(c), DropStep::Writable) => {
            let body = format!(
                "DECLARE v text; BEGIN \
                 SELECT saved_default INTO v FROM {} WHERE id = {}; \
                 IF v IS NOT NULL THEN EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', {}, {}, v); \
                 END IF; END",
                names.drops,
                d.id,
                simple::literal(&table),
                simple::literal(c)
            );
            // A dollar-quote tag that no name in the body contains.
            let mut tag = "zdm".to_string();
            while body.contains(&format!("${tag}$")) {
                tag.push('x');
            }
            vec![
                format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
                format!("DO ${tag}$ {body} ${tag}$"),
                mark("read_only_at = NULL"),
            ]
        }
        (DropTarget::Table, DropStep::Writable) => {
            vec![format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"), mark("read_only_at = NULL")]
        }
        (DropTarget::Column(c), DropStep::Drop) => vec![
            format!("DROP TRIGGER IF EXISTS {trigger} ON {table}"),
            format!("ALTER TABLE {table} DROP COLUMN IF EXISTS {}", quote_ident(c)),
            mark("state = 'dropped', dropped_at = clock_timestamp()"),
        ],
        (DropTarget::Table, DropStep::Drop) => {
            vec![format!("DROP TABLE IF EXISTS {table}"), mark("state = 'dropped', dropped_at = clock_timestamp()")]
        }
        // A view holds no data: nothing to protect while a delay runs.
        (DropTarget::View, DropStep::ReadOnly) => vec![mark("read_only_at = clock_timestamp()")],
        (DropTarget::View, DropStep::Writable) => vec![mark("read_only_at = NULL")],
        (DropTarget::View, DropStep::Drop) => {
            vec![format!("DROP VIEW IF EXISTS {table}"), mark("state = 'dropped', dropped_at = clock_timestamp()")]
        }
    });
    out
}

/// Runs a step under the lock-timeout schedule. In its transaction, before any DDL: the
/// registry lock (a booting build waits, or is seen), the lease, the drop's row (another
/// run may have carried it out) and the gate again from the live instances read there.
async fn run_step(
    pool: &PgPool,
    names: &Names,
    d: &PendingDrop,
    step: DropStep,
    policy: &ExecPolicy,
    guard: &StepGuard<'_>,
) -> Result<StepOutcome, Error> {
    let statements = step_sql(names, d, step);
    let meta = zdm_core::Migration::synthetic(d.scheduled_by);
    let schedule = policy.schedule(&meta);
    let mut last = String::new();
    for (n, attempt) in schedule.iter().enumerate() {
        let mut tx = pool.begin().await.doing("starting a deferred drop")?;
        let (lock_ms, statement_ms) = policy.timeouts_ms(&meta, zdm_core::exec::ExecClass::Normal, attempt);
        simple::sql(session::SET_TIMEOUTS)
            .bind(format!("{lock_ms}ms"))
            .bind(format!("{statement_ms}ms"))
            .bind(true)
            .execute(&mut *tx)
            .await
            .doing("setting a deferred drop's timeouts")?;
        let mut failed = instances::lock_registry(&mut tx, names).await.err();
        if failed.is_none() {
            if let Some(fence) = guard.fence {
                lease::check_fence(&mut tx, names, fence).await?;
            }
            if let Recheck::Stop(outcome) = still_due(&mut tx, names, d, step, guard).await? {
                let _ = tx.rollback().await;
                return Ok(outcome);
            }
            for sql in &statements {
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut *tx).await {
                    failed = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failed else {
            crate::fault::boundary("deferred drop step done, before commit");
            tx.commit().await.doing("committing a deferred drop")?;
            crate::fault::boundary("deferred drop step committed");
            return Ok(StepOutcome::Done);
        };
        let _ = tx.rollback().await;
        let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.to_string()).unwrap_or_default();
        last = e.to_string();
        if code == "2BP01" {
            // Another object still depends on it (e.g. the view a table rename left, which
            // goes first): nothing was applied; it waits for the next run.
            let detail = e.as_database_error().map(|d| d.message().to_string()).unwrap_or_default();
            return Ok(StepOutcome::Held(vec![zdm_core::gate::Blocker::Waits(format!(
                "another object still depends on it ({detail}); it is dropped once that is gone"
            ))]));
        }
        if !zdm_core::retry::is_retryable(&code) {
            break;
        }
        tracing::warn!(drop = %d, attempt = n + 1, error = %e, "deferred drop waited too long for its lock; retrying");
        if n + 1 < schedule.len() {
            tokio::time::sleep(attempt.pause_after).await;
        }
    }
    Ok(StepOutcome::Failed(last))
}

/// What the re-check inside a step's transaction decided.
enum Recheck {
    /// Still pending, and the gate still allows the step.
    Go,
    /// Stop here with this outcome (carried out meanwhile, or held back).
    Stop(StepOutcome),
}

/// Inside the step's transaction: the drop is still pending (row locked) and the gate,
/// asked again with the live instances of this moment, still allows the step.
async fn still_due(
    tx: &mut PgConnection,
    names: &Names,
    d: &PendingDrop,
    step: DropStep,
    guard: &StepGuard<'_>,
) -> Result<Recheck, Error> {
    let state: Option<String> = simple::sql(names.sql(LOCK_DROP))
        .bind(d.id)
        .scalar_optional(&mut *tx)
        .await
        .doing("reading a deferred drop")?;
    if state.as_deref() != Some("pending") {
        // Carried out (or removed) by another run in between: nothing left to do.
        return Ok(Recheck::Stop(StepOutcome::Held(Vec::new())));
    }
    let live = instances::live(&mut *tx, names, guard.instance_ttl.as_secs_f64()).await?;
    let blockers = (guard.recheck)(&live);
    if step.allowed(&blockers) {
        Ok(Recheck::Go)
    } else {
        tracing::info!(drop = %d, ?step, "the gate closed before the step ran; it waits");
        Ok(Recheck::Stop(StepOutcome::Held(blockers)))
    }
}

const LOCK_DROP: &str = "SELECT state FROM {drops} WHERE id = $1 FOR UPDATE";

impl Drops for PgPool {
    async fn load_drops(&self, names: &Names) -> Result<Vec<DropRecord>, Error> {
        load_drops(self, names).await
    }

    async fn drop_step(
        &self,
        names: &Names,
        drop: &PendingDrop,
        step: DropStep,
        policy: &ExecPolicy,
        guard: &StepGuard<'_>,
    ) -> Result<StepOutcome, Error> {
        run_step(self, names, drop, step, policy, guard).await
    }
}
