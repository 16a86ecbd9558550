//! [`Trace`]: the pending migrations run for real, in a scratch database, with what each
//! statement locked, rewrote and scanned, held against the lint's prediction.
//!
//! The scratch database is created on the server of the admin pool and always dropped
//! (also on an error or a panic: a guard). The migrations the real database has applied
//! are replayed there from the set's own files (optionally followed by N synthetic rows a
//! table, so scans and rewrites take visible time); then each pending statement runs as
//! zdm runs it: a transactional file in one transaction, a `no_transaction` file statement
//! by statement. Nothing runs against the real database but reading its ledger.
//!
//! How each observation is taken:
//! * **locks**: `pg_locks` of the statement's backend, read from a second connection while
//!   the statement's transaction is still open (so every lock it took is still held); the
//!   modes new since the previous statement are its own. A statement that cannot run in a
//!   transaction (`CONCURRENTLY`) is sampled while it runs, every 2 ms: a very short one may
//!   be seen with fewer locks than it took. A statement that acquires nothing new (its
//!   transaction already holds the locks it needs) shows what the transaction holds.
//! * **rewrites**: `pg_relation_filenode` of every user table before and after.
//! * **scans**: the `seq_scan` counter of every user table before and after (the current
//!   transaction's own counters, `pg_stat_xact_user_tables`; for a `CONCURRENTLY`
//!   statement the flushed ones, `pg_stat_user_tables`).
//! * **rows** and **duration**: what the server reports, and the client's clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool};
use zdm_core::ident::quote_ident;
use zdm_core::lint::{disagreements, Disagreement, LockMode, Observed, StatementPlan, TableLock};
use zdm_core::plan::Target;

use crate::backend::Backend;
use crate::error::{Doing, Error};
use crate::job::{load_applied, Job};
use crate::migration::{Body, RustRun, Step};
use crate::plan::{self, locks_cell, table, PlannedMigration};
use crate::runner;

/// How to trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceOptions {
    /// Synthetic rows inserted into every table after the replay (0: none), so scans and
    /// rewrites take visible time. Only NOT NULL columns without a default get a value;
    /// a table whose required columns zdm cannot synthesize is left empty (noted).
    pub sample_rows: u64,
}

/// One statement as the trace saw it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TracedStatement {
    pub line: usize,
    /// The lint's prediction (its `sql` is the statement).
    pub predicted: StatementPlan,
    /// The locks it acquired (see `observed`) are the ones new to its transaction; these
    /// are all the transaction holds once it ran (what live traffic meets meanwhile).
    pub held: Vec<TableLock>,
    pub observed: Observed,
    /// Rows the server reports as touched.
    pub rows: u64,
    pub ms: f64,
    /// Locks were sampled while it ran (a `CONCURRENTLY` statement), not read at its end.
    pub sampled: bool,
    /// The server refused it: the trace stops here.
    pub error: Option<String>,
    pub disagreements: Vec<Disagreement>,
}

/// One pending migration as the trace ran it.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct TracedMigration {
    pub plan: PlannedMigration,
    pub statements: Vec<TracedStatement>,
}

/// A table the sample filled (or could not).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Sampled {
    pub table: String,
    pub rows: u64,
    /// Why it stayed empty.
    pub skipped: Option<String>,
}

/// The result of [`Migrator::trace`](crate::Migrator::trace).
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Trace {
    /// The scratch database (created and dropped).
    pub scratch_database: String,
    /// The applied versions replayed there, in order.
    pub replayed: Vec<i64>,
    pub sampled: Vec<Sampled>,
    pub migrations: Vec<TracedMigration>,
    /// What the trace could not do (an applied version this set does not have, a
    /// Rust-coded migration run untraced, a statement the server refused).
    pub notes: Vec<String>,
    /// Wall time of the whole trace, replay included.
    pub total_ms: u64,
}

impl Trace {
    /// Every disagreement, with its migration and statement.
    pub fn disagreements(&self) -> impl Iterator<Item = (&TracedMigration, &TracedStatement, &Disagreement)> {
        self.migrations
            .iter()
            .flat_map(|m| m.statements.iter().flat_map(move |s| s.disagreements.iter().map(move |d| (m, s, d))))
    }

    /// A statement the server refused, if any.
    pub fn failed(&self) -> Option<(&TracedMigration, &TracedStatement)> {
        self.migrations.iter().find_map(|m| m.statements.iter().find(|s| s.error.is_some()).map(|s| (m, s)))
    }
}

pub(crate) async fn run(job: Job<'_>, admin: &PgPool, options: TraceOptions) -> Result<Trace, Error> {
    if job.settings.dialect == Some(zdm_core::Dialect::Sqlite) {
        return Err(Error::Unsupported { what: "lock traces", dialect: "SQLite" });
    }
    let started = Instant::now();
    let plan = plan::load(job, admin).await?;
    let names = job.settings.names();
    let found = admin.bootstrap(&names).await?;
    let applied = load_applied(admin, &names, found.foreign).await?;

    let scratch = Scratch::create(admin).await?;
    let result = trace_in(job, &scratch, plan, &applied, options).await;
    scratch.drop_now().await;
    let mut trace = result?;
    trace.total_ms = started.elapsed().as_millis() as u64;
    Ok(trace)
}

/// The scratch database; dropped by [`Scratch::drop_now`], or by `Drop` after a panic.
struct Scratch {
    name: String,
    admin: PgConnectOptions,
    options: PgConnectOptions,
    dropped: bool,
}

impl Scratch {
    async fn create(admin: &PgPool) -> Result<Scratch, Error> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let name = format!("zdm_trace_{}_{nanos}", std::process::id());
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {}", quote_ident(&name))))
            .execute(admin)
            .await
            .doing("creating the trace's scratch database (the admin connection needs CREATEDB)")?;
        let admin = admin.connect_options().as_ref().clone();
        let options = admin.clone().database(&name);
        tracing::info!(database = %name, "trace: scratch database created");
        Ok(Scratch { name, admin, options, dropped: false })
    }

    fn drop_sql(&self) -> String {
        format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&self.name))
    }

    async fn drop_now(mut self) {
        let result = async {
            let mut conn = self.admin.connect().await?;
            sqlx::raw_sql(AssertSqlSafe(self.drop_sql())).execute(&mut conn).await?;
            conn.close().await
        }
        .await;
        match result {
            Ok(()) => self.dropped = true,
            Err(e) => {
                tracing::warn!(database = %self.name, error = %e, "could not drop the scratch database; drop it by hand")
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Drop cannot await; a thread with a runtime of its own works inside or outside one.
        let (admin, sql, name) = (self.admin.clone(), self.drop_sql(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut conn = admin.connect().await.ok()?;
                if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await {
                    tracing::warn!(database = %name, error = %e, "could not drop the scratch database; drop it by hand");
                }
                Some(())
            })
        })
        .join();
    }
}

async fn trace_in(
    job: Job<'_>,
    scratch: &Scratch,
    plan: plan::Plan,
    applied: &[zdm_core::plan::Applied],
    options: TraceOptions,
) -> Result<Trace, Error> {
    let mut trace = Trace { scratch_database: scratch.name.clone(), ..Trace::default() };
    let is_applied = |v: i64| applied.iter().any(|a| a.version == v);
    for a in applied.iter().filter(|a| !job.steps.iter().any(|s| s.meta.version == a.version)) {
        trace.notes.push(format!(
            "applied migration {} ({}) is not in this set: the scratch database lacks it",
            a.version, a.description
        ));
    }

    // The replay: the applied history, run as zdm runs it, registered nowhere, and never
    // through a session URL that could lead back to the real database.
    let history: Vec<Step> = job.steps.iter().filter(|s| is_applied(s.meta.version)).copied().collect();
    let mut settings = job.settings.clone();
    settings.registers = false;
    settings.backfill_in_background = false;
    settings.session_url = Some(scratch.options.to_url_lossy().to_string());
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(scratch.options.clone())
        .await
        .doing("connecting to the scratch database")?;
    let replay = Job { steps: &history, settings: &settings };
    let report = runner::run(replay, &pool, Target::All).await;
    pool.close().await;
    report?;
    trace.replayed = history.iter().map(|s| s.meta.version).collect();

    let mut exec = PgConnection::connect_with(&scratch.options).await.doing("connecting to the scratch database")?;
    let mut watch = PgConnection::connect_with(&scratch.options).await.doing("connecting to the scratch database")?;
    let own = settings.names();
    let own_tables = [&own.raw_ledger, &own.raw_history, &own.raw_lease];
    if options.sample_rows > 0 {
        trace.sampled = fill(&mut exec, options.sample_rows, &own.prefix, &own_tables).await?;
    }
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .persistent(false)
        .fetch_one(&mut exec)
        .await
        .doing("reading the traced connection's backend")?;

    'migrations: for planned in plan.migrations {
        let step = job.steps.iter().find(|s| s.meta.version == planned.version).copied();
        let mut traced = TracedMigration { plan: planned, statements: Vec::new() };
        let Some(step) = step else { continue };
        let sql = match step.body {
            Body::Sql(sql) => sql,
            Body::Rust(run) => {
                trace.notes.push(format!("migration {} is Rust-coded: run untraced", step.meta.version));
                if let Err(e) = run_rust(&mut exec, run).await {
                    trace.notes.push(format!("migration {} failed in the scratch database: {e}", step.meta.version));
                    trace.migrations.push(traced);
                    break;
                }
                trace.migrations.push(traced);
                continue;
            }
        };
        let statements = zdm_core::exec::statements(sql);
        let predictions = traced.plan.statements.clone();
        let transactional = !step.meta.no_transaction;
        if transactional {
            simple(&mut exec, "BEGIN").await?;
        }
        let mut held = HashSet::new();
        for (st, predicted) in statements.iter().zip(predictions) {
            let mut one = if st.needs_no_transaction {
                concurrent(&mut exec, &mut watch, pid, st.text).await?
            } else {
                if !transactional {
                    simple(&mut exec, "BEGIN").await?;
                    held.clear();
                }
                let one = in_transaction(&mut exec, &mut watch, pid, st.text, &mut held).await?;
                if !transactional {
                    simple(&mut exec, if one.error.is_some() { "ROLLBACK" } else { "COMMIT" }).await?;
                }
                one
            };
            one.disagreements = disagreements(&predicted, &one.observed);
            let failed = one.error.clone();
            traced.statements.push(TracedStatement { line: st.line, predicted, ..one });
            if let Some(e) = failed {
                if transactional {
                    simple(&mut exec, "ROLLBACK").await?;
                }
                trace.notes.push(format!(
                    "{}:{}: the server refused the statement ({e}); the trace stops here",
                    step.meta.source, st.line
                ));
                trace.migrations.push(traced);
                break 'migrations;
            }
        }
        if transactional {
            simple(&mut exec, "COMMIT").await?;
        }
        trace.migrations.push(traced);
    }
    let _ = exec.close().await;
    let _ = watch.close().await;
    Ok(trace)
}

async fn run_rust(conn: &mut PgConnection, run: RustRun) -> Result<(), Error> {
    let RustRun::Postgres(f) = run else {
        return Err(Error::Unsupported { what: "SQLite Rust-coded migrations in a trace", dialect: "PostgreSQL" });
    };
    simple(conn, "BEGIN").await?;
    match f(conn).await {
        Ok(()) => simple(conn, "COMMIT").await,
        Err(e) => {
            simple(conn, "ROLLBACK").await?;
            Err(Error::Trace(e.to_string()))
        }
    }
}

async fn simple(conn: &mut PgConnection, sql: &'static str) -> Result<(), Error> {
    sqlx::raw_sql(sql).execute(conn).await.doing("controlling the traced transaction")?;
    Ok(())
}

/// A user table: its name and storage.
#[derive(Clone)]
struct Rel {
    name: String,
    filenode: Option<i64>,
}

const RELATIONS: &str = "SELECT c.oid::int8, c.relname::text, pg_relation_filenode(c.oid)::int8 \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'";
const XACT_SCANS: &str = "SELECT relid::int8, seq_scan FROM pg_stat_xact_user_tables";
const SCANS: &str = "SELECT relid::int8, seq_scan FROM pg_stat_user_tables";
const LOCKS: &str =
    "SELECT relation::int8, mode FROM pg_locks WHERE pid = $1 AND granted AND locktype = 'relation' AND relation IS NOT NULL";

async fn relations(conn: &mut PgConnection) -> Result<HashMap<i64, Rel>, Error> {
    let rows: Vec<(i64, String, Option<i64>)> =
        sqlx::query_as(RELATIONS).persistent(false).fetch_all(conn).await.doing("reading the user tables")?;
    Ok(rows.into_iter().map(|(oid, name, filenode)| (oid, Rel { name, filenode })).collect())
}

async fn scans(conn: &mut PgConnection, sql: &'static str) -> Result<HashMap<i64, i64>, Error> {
    let rows: Vec<(i64, Option<i64>)> =
        sqlx::query_as(sql).persistent(false).fetch_all(conn).await.doing("reading the scan counters")?;
    Ok(rows.into_iter().map(|(oid, n)| (oid, n.unwrap_or(0))).collect())
}

async fn locks(watch: &mut PgConnection, pid: i32) -> Result<HashSet<(i64, LockMode)>, Error> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as(LOCKS).bind(pid).persistent(false).fetch_all(watch).await.doing("reading pg_locks")?;
    Ok(rows.into_iter().filter_map(|(oid, mode)| Some((oid, LockMode::parse(&mode)?))).collect())
}

/// What changed between two readings, named by the tables of either.
fn observe(
    before: &HashMap<i64, Rel>,
    after: &HashMap<i64, Rel>,
    scans_before: &HashMap<i64, i64>,
    scans_after: &HashMap<i64, i64>,
    acquired: impl IntoIterator<Item = (i64, LockMode)>,
) -> Observed {
    let name = |oid: &i64| after.get(oid).or_else(|| before.get(oid)).map(|r| r.name.clone());
    let mut strongest: BTreeMap<String, LockMode> = BTreeMap::new();
    for (oid, mode) in acquired {
        if let Some(table) = name(&oid) {
            let m = strongest.entry(table).or_insert(mode);
            *m = (*m).max(mode);
        }
    }
    let mut locks: Vec<TableLock> = strongest.into_iter().map(|(table, mode)| TableLock { table, mode }).collect();
    locks.sort_by(|a, b| b.mode.cmp(&a.mode).then_with(|| a.table.cmp(&b.table)));
    let mut rewrites: Vec<String> = before
        .iter()
        .filter(|(oid, r)| {
            r.filenode.is_some() && after.get(oid).is_some_and(|a| a.filenode.is_some() && a.filenode != r.filenode)
        })
        .map(|(_, r)| r.name.clone())
        .collect();
    rewrites.sort();
    let mut scans: Vec<String> = scans_after
        .iter()
        .filter(|(oid, n)| before.contains_key(oid) && **n > scans_before.get(oid).copied().unwrap_or(0))
        .filter_map(|(oid, _)| name(oid))
        .collect();
    scans.sort();
    Observed { locks, rewrites, scans }
}

/// One statement inside the open transaction; `held` is what the transaction held before.
async fn in_transaction(
    exec: &mut PgConnection,
    watch: &mut PgConnection,
    pid: i32,
    sql: &str,
    held: &mut HashSet<(i64, LockMode)>,
) -> Result<TracedStatement, Error> {
    let before = relations(exec).await?;
    let scans_before = scans(exec, XACT_SCANS).await?;
    let t0 = Instant::now();
    let result = sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *exec).await;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (rows, error) = match result {
        Ok(r) => (r.rows_affected(), None),
        Err(e) => (0, Some(e.to_string())),
    };
    if error.is_some() {
        return Ok(statement(Observed::default(), rows, ms, false, error));
    }
    // The transaction is still open: every lock the statement took is still held.
    let now = locks(watch, pid).await?;
    let acquired: Vec<(i64, LockMode)> = now.difference(held).copied().collect();
    let after = relations(exec).await?;
    let scans_after = scans(exec, XACT_SCANS).await?;
    let mut one = statement(observe(&before, &after, &scans_before, &scans_after, acquired), rows, ms, false, None);
    one.held = observe(&before, &after, &HashMap::new(), &HashMap::new(), now.iter().copied()).locks;
    *held = now;
    Ok(one)
}

/// A statement that cannot run in a transaction block: locks sampled from `watch` while it
/// runs, scans from the flushed counters.
async fn concurrent(
    exec: &mut PgConnection,
    watch: &mut PgConnection,
    pid: i32,
    sql: &str,
) -> Result<TracedStatement, Error> {
    let before = relations(watch).await?;
    flush_stats(exec).await?;
    let scans_before = flushed_scans(watch).await?;
    let mut seen = HashSet::new();
    let t0 = Instant::now();
    let result = {
        let mut fut = std::pin::pin!(sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *exec));
        loop {
            // Poll as often as a reading takes: a short build is over in a few ms.
            match tokio::time::timeout(Duration::from_micros(100), &mut fut).await {
                Ok(r) => break r,
                Err(_) => seen.extend(locks(watch, pid).await?),
            }
        }
    };
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let (rows, error) = match result {
        Ok(r) => (r.rows_affected(), None),
        Err(e) => (0, Some(e.to_string())),
    };
    if error.is_some() {
        return Ok(statement(Observed::default(), rows, ms, true, error));
    }
    flush_stats(exec).await?;
    let scans_after = flushed_scans(watch).await?;
    let after = relations(watch).await?;
    let mut one = statement(observe(&before, &after, &scans_before, &scans_after, seen), rows, ms, true, None);
    one.held = one.observed.locks.clone();
    Ok(one)
}

/// Makes `conn`'s backend publish its scan counters now (PostgreSQL 15+; older servers
/// publish within a second, so the reading may lag there).
async fn flush_stats(conn: &mut PgConnection) -> Result<(), Error> {
    let has: bool = sqlx::query_scalar("SELECT to_regproc('pg_stat_force_next_flush') IS NOT NULL")
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .doing("reading the server's statistics functions")?;
    if has {
        simple(conn, "SELECT pg_stat_force_next_flush()").await?;
        // The flush happens when the backend goes idle after that query.
        simple(conn, "SELECT 1").await?;
    }
    Ok(())
}

async fn flushed_scans(watch: &mut PgConnection) -> Result<HashMap<i64, i64>, Error> {
    simple(watch, "SELECT pg_stat_clear_snapshot()").await?;
    scans(watch, SCANS).await
}

fn statement(observed: Observed, rows: u64, ms: f64, sampled: bool, error: Option<String>) -> TracedStatement {
    TracedStatement {
        line: 0,
        predicted: StatementPlan {
            version: 0,
            line: 0,
            sql: String::new(),
            locks: Vec::new(),
            rewrites: Vec::new(),
            scans: Vec::new(),
            unknown: false,
            needs_no_transaction: false,
            schemas: Vec::new(),
        },
        held: Vec::new(),
        observed,
        rows,
        ms,
        sampled,
        error,
        disagreements: Vec::new(),
    }
}

/// A column as the sample sees it.
struct Col {
    table_oid: i64,
    schema: String,
    table: String,
    name: String,
    /// `format_type`: `character varying(20)`, `public.mood`.
    ty: String,
    typname: String,
    /// `pg_type.typtype` and `typcategory`.
    typtype: String,
    category: String,
    required: bool,
}

const COLUMNS: &str = "SELECT c.oid::int8, n.nspname::text, c.relname::text, a.attname::text, \
        format_type(a.atttypid, a.atttypmod), t.typname::text, t.typtype::text, t.typcategory::text, \
        a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid \
     WHERE c.relkind = 'r' AND NOT c.relispartition AND n.nspname <> 'information_schema' \
       AND n.nspname NOT LIKE 'pg\\_%' AND a.attnum > 0 AND NOT a.attisdropped \
     ORDER BY c.oid, a.attnum";

/// A row of [`COLUMNS`], in its order.
type ColumnRow = (i64, String, String, String, String, String, String, String, bool);

/// The value of row `g.i` for a required column, or `None` when zdm cannot make one.
fn synthesize(c: &Col) -> Option<String> {
    let ty = &c.ty;
    let expr = match (c.typtype.as_str(), c.category.as_str(), c.typname.as_str()) {
        ("e", _, _) => format!("enum_first(NULL::{ty})"),
        (_, "A", _) => format!("'{{}}'::{ty}"),
        (_, _, "int2") => "(g.i % 32767)::int2".to_string(),
        (_, "N", _) => format!("g.i::{ty}"),
        (_, "S", _) => format!("g.i::text::{ty}"),
        (_, "B", _) => "g.i % 2 = 0".to_string(),
        (_, "D", _) => format!("(timestamptz '2024-01-01' + g.i * interval '1 second')::{ty}"),
        (_, _, "uuid") => "md5(g.i::text)::uuid".to_string(),
        (_, _, "json" | "jsonb") => format!("'{{}}'::{ty}"),
        (_, _, "bytea") => "int8send(g.i)".to_string(),
        (_, _, "interval") => "g.i * interval '1 second'".to_string(),
        (_, _, "inet" | "cidr") => format!("'10.0.0.1'::{ty}"),
        _ => return None,
    };
    Some(expr)
}

/// Inserts `n` rows into every user table but zdm's own, parents before children (a table
/// whose insert fails is tried again after the others, while that makes progress).
async fn fill(conn: &mut PgConnection, n: u64, prefix: &str, own: &[&String]) -> Result<Vec<Sampled>, Error> {
    let rows: Vec<ColumnRow> =
        sqlx::query_as(COLUMNS).persistent(false).fetch_all(&mut *conn).await.doing("reading the tables' columns")?;
    let cols: Vec<Col> = rows
        .into_iter()
        .map(|(table_oid, schema, table, name, ty, typname, typtype, category, required)| Col {
            table_oid,
            schema,
            table,
            name,
            ty,
            typname,
            typtype,
            category,
            required,
        })
        .filter(|c| !c.table.starts_with(prefix) && !own.contains(&&c.table))
        .collect();
    let mut tables: Vec<(String, Result<String, String>)> = Vec::new();
    let mut oids: Vec<i64> = cols.iter().map(|c| c.table_oid).collect();
    oids.dedup();
    for oid in oids {
        let of: Vec<&Col> = cols.iter().filter(|c| c.table_oid == oid).collect();
        let qualified = format!("{}.{}", quote_ident(&of[0].schema), quote_ident(&of[0].table));
        let mut names = Vec::new();
        let mut values = Vec::new();
        let mut missing = None;
        for c in of.iter().filter(|c| c.required) {
            match synthesize(c) {
                Some(v) => {
                    names.push(quote_ident(&c.name));
                    values.push(v);
                }
                None => missing = Some(format!("cannot synthesize a {} for NOT NULL column {}", c.ty, c.name)),
            }
        }
        let sql = if names.is_empty() {
            format!("INSERT INTO {qualified} SELECT FROM generate_series(1, {n})")
        } else {
            format!(
                "INSERT INTO {qualified} ({}) SELECT {} FROM generate_series(1, {n}) AS g(i)",
                names.join(", "),
                values.join(", ")
            )
        };
        tables.push((of[0].table.clone(), missing.map_or(Ok(sql), Err)));
    }
    let mut out: Vec<Sampled> = Vec::new();
    let mut todo: Vec<(String, String)> = Vec::new();
    for (table, sql) in tables {
        match sql {
            Ok(sql) => todo.push((table, sql)),
            Err(why) => out.push(Sampled { table, rows: 0, skipped: Some(why) }),
        }
    }
    loop {
        let mut failed = Vec::new();
        let before = todo.len();
        for (table, sql) in todo {
            match sqlx::raw_sql(AssertSqlSafe(sql.clone())).execute(&mut *conn).await {
                Ok(r) => out.push(Sampled { table, rows: r.rows_affected(), skipped: None }),
                Err(e) => failed.push((table, sql, e.to_string())),
            }
        }
        if failed.is_empty() || failed.len() == before {
            for (table, _, e) in failed {
                tracing::info!(%table, error = %e, "trace: sample rows skipped");
                out.push(Sampled { table, rows: 0, skipped: Some(e) });
            }
            break;
        }
        todo = failed.into_iter().map(|(t, s, _)| (t, s)).collect();
    }
    sqlx::raw_sql("ANALYZE").execute(&mut *conn).await.doing("analyzing the sample")?;
    out.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(out)
}

fn yes(items: &[String]) -> String {
    if items.is_empty() {
        "no".into()
    } else {
        format!("yes ({})", items.join(", "))
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "traced in scratch database {} after replaying {} applied migration(s){}",
            self.scratch_database,
            self.replayed.len(),
            if self.sampled.is_empty() {
                String::new()
            } else {
                format!(", {} table(s) sampled", self.sampled.iter().filter(|s| s.skipped.is_none()).count())
            }
        )?;
        for m in &self.migrations {
            let p = &m.plan;
            writeln!(f, "\n{} {} [{}, {}] {}", p.version, p.description, p.phase.as_str(), p.run_by, p.source)?;
            let mut rows = vec![["line", "statement", "lock", "table", "rewrite", "scan", "rows", "ms"]
                .map(String::from)
                .to_vec()];
            for s in &m.statements {
                let (mode, tables) = if s.observed.locks.is_empty() && !s.held.is_empty() {
                    // Nothing new: show what the transaction already holds while it runs.
                    let held = StatementPlan { locks: s.held.clone(), ..s.predicted.clone() };
                    let (mode, tables) = locks_cell(&held);
                    (format!("(held) {mode}"), tables)
                } else {
                    locks_cell(&StatementPlan { locks: s.observed.locks.clone(), ..s.predicted.clone() })
                };
                rows.push(vec![
                    s.line.to_string(),
                    s.predicted.summary(50),
                    if s.sampled { format!("{mode} (sampled)") } else { mode },
                    tables,
                    yes(&s.observed.rewrites),
                    yes(&s.observed.scans),
                    s.rows.to_string(),
                    format!("{:.1}", s.ms),
                ]);
            }
            table(f, &rows)?;
            for s in &m.statements {
                for d in &s.disagreements {
                    writeln!(f, "  DISAGREES {}:{}: {d}", p.source, s.line)?;
                }
                if let Some(e) = &s.error {
                    writeln!(f, "  FAILED {}:{}: {e}", p.source, s.line)?;
                }
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        let count = self.disagreements().count();
        writeln!(f, "\n{count} disagreement(s) between the lint and the server; {} ms in all", self.total_ms)
    }
}
