//! The deployed build's queries, checked against the next build's pre-deploy migrations
//! before the deploy.
//!
//! Given the queries of the build that serves now (sqlx's offline data from
//! `cargo sqlx prepare`, i.e. the `.sqlx/` folder, or a plain list), [`check_old_queries`]
//! replays the migration history up to the deployed version into a scratch database,
//! prepares every old query there as the old build's connections have, then applies each
//! pending pre-deploy migration in turn and reports, with the migration that causes it:
//!
//! * a query that no longer prepares (a column or table it names is gone or renamed);
//! * a prepared query whose result shape changes (`SELECT *`, `RETURNING *`, or a type
//!   change under any column list): the deployed build's cached statements fail with
//!   `cached plan must not change result type`;
//! * an `INSERT` without a column list on a table whose columns change;
//! * an `INSERT` that omits a column that became `NOT NULL` without a default;
//! * an `INSERT` that omits a column a new `CHECK` (even `NOT VALID`) reads, so the
//!   constraint judges the default or NULL the old build leaves there.
//!
//! The check never touches the database the app uses: it creates and drops its own.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, PgConnection, PgPool, Statement, TypeInfo};
use zdm_core::old_query::{self, QueryFacts};
use zdm_core::Phase;

use crate::error::{Doing, Error};
use crate::migrator::Migrator;

/// One query of the deployed build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldQuery {
    /// Where it came from (a `.sqlx` file name, or `list:<n>`).
    pub source: String,
    pub sql: String,
}

impl OldQuery {
    pub fn new(source: impl Into<String>, sql: impl Into<String>) -> OldQuery {
        OldQuery { source: source.into(), sql: sql.into() }
    }
}

/// Reads sqlx's offline query data (`query-*.json` in the `.sqlx` folder that
/// `cargo sqlx prepare` writes).
pub fn sqlx_offline_queries(dir: impl AsRef<Path>) -> Result<Vec<OldQuery>, Error> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::OldQueries(format!("cannot read {}: {e} (run `cargo sqlx prepare` first)", dir.display()))
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !(name.starts_with("query-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::OldQueries(format!("cannot read {}: {e}", path.display())))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::OldQueries(format!("{}: not valid JSON ({e})", path.display())))?;
        let sql = json.get("query").and_then(|q| q.as_str()).ok_or_else(|| {
            Error::OldQueries(format!("{}: no \"query\" field; is this sqlx's offline data?", path.display()))
        })?;
        out.push(OldQuery::new(name, sql));
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(out)
}

/// Reads a plain list: SQL statements separated by `;` (comments allowed).
pub fn query_list(text: &str) -> Vec<OldQuery> {
    zdm_core::split::statements(text)
        .into_iter()
        .enumerate()
        .map(|(i, s)| OldQuery::new(format!("list:{}", i + 1), s.text.trim().trim_end_matches(';').trim()))
        .filter(|q| !q.sql.is_empty())
        .collect()
}

/// What breaks a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// It does not prepare any more: the server's message.
    DoesNotPrepare(String),
    /// Its result columns change; the deployed build's cached statement fails.
    ShapeChanges { before: String, after: String, star: bool },
    /// `INSERT` without a column list on a table whose columns change.
    InsertWithoutColumns { table: String },
    /// The `INSERT` omits a column that is now `NOT NULL` without a default.
    OmitsRequired { table: String, column: String },
    /// A new `CHECK` reads a column the `INSERT` omits.
    CheckMayReject { table: String, constraint: String, column: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::DoesNotPrepare(e) => write!(f, "no longer prepares: {e}"),
            Problem::ShapeChanges { before, after, star } => {
                write!(f, "its result columns change, so the deployed build's cached statement fails with `cached plan must not change result type` (before: {before}; after: {after})")?;
                if *star {
                    write!(f, "; name the columns instead of `*` (a zdm model's COLUMN_LIST)")?;
                }
                write!(f, "; or serve through a zdm healing pool")
            }
            Problem::InsertWithoutColumns { table } => {
                write!(f, "INSERT into {table} without a column list, and {table}'s columns change; list the columns")
            }
            Problem::OmitsRequired { table, column } => write!(
                f,
                "omits {table}.{column}, which becomes NOT NULL without a default: the deployed build's inserts fail; \
                 add a default first or make it NOT NULL after deploy"
            ),
            Problem::CheckMayReject { table, constraint, column } => write!(
                f,
                "omits {table}.{column}, which the new CHECK {constraint} reads: the deployed build's inserts leave \
                 it at its default or NULL, which the check may reject"
            ),
        }
    }
}

/// One problem of one old query, and the migration that causes it (`None`: it already
/// fails on the deployed schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldQueryFinding {
    pub query: OldQuery,
    pub migration: Option<i64>,
    pub migration_source: Option<&'static str>,
    pub problem: Problem,
}

/// The result of [`check_old_queries`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OldQueryReport {
    /// How many old queries were checked.
    pub checked: usize,
    /// The pending pre-deploy migrations they were checked against, in order.
    pub migrations: Vec<i64>,
    pub findings: Vec<OldQueryFinding>,
    /// The scratch database the check created (and dropped).
    pub scratch_database: String,
}

impl OldQueryReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

impl fmt::Display for OldQueryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "checked {} old queries against {} pending pre-deploy migration(s) {:?}: {} problem(s)",
            self.checked,
            self.migrations.len(),
            self.migrations,
            self.findings.len()
        )?;
        for x in &self.findings {
            let by = match (x.migration, x.migration_source) {
                (Some(v), Some(src)) => format!("migration {v} ({src})"),
                (Some(v), None) => format!("migration {v}"),
                _ => "the deployed schema".to_string(),
            };
            let sql: String = x.query.sql.split_whitespace().collect::<Vec<_>>().join(" ");
            writeln!(f, "- {} `{}`\n  broken by {by}: {}", x.query.source, sql, x.problem)?;
        }
        Ok(())
    }
}

/// Checks the deployed build's `queries` against the pending pre-deploy migrations of
/// `next` (the next build's migrator). `deployed` is the newest migration version the
/// deployed build embeds (what production has applied). `admin` is a pool on the same
/// server allowed to `CREATE DATABASE`; the scratch database is dropped afterwards.
pub async fn check_old_queries(
    admin: &PgPool,
    next: &Migrator,
    deployed: i64,
    queries: &[OldQuery],
) -> Result<OldQueryReport, Error> {
    let name = scratch_name();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {}", zdm_core::ident::quote_ident(&name))))
        .execute(admin)
        .await
        .doing("creating the old-query check's scratch database")?;
    let options: PgConnectOptions = admin.connect_options().as_ref().clone().database(&name);
    let result = check_in(options, next, deployed, queries).await.map(|mut r| {
        r.scratch_database = name.clone();
        r
    });
    let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", zdm_core::ident::quote_ident(&name));
    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(drop)).execute(admin).await {
        tracing::warn!(database = %name, error = %e, "could not drop the scratch database; drop it by hand");
    }
    result
}

fn scratch_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("zdm_old_query_check_{}_{nanos}", std::process::id())
}

/// One prepared old query and what it looked like before the current migration.
struct Tracked {
    query: OldQuery,
    facts: QueryFacts,
    params: usize,
    shape: Option<String>,
    prepared: bool,
    broken: bool,
    insert_reported: bool,
    shape_reported: bool,
}

async fn check_in(
    options: PgConnectOptions,
    next: &Migrator,
    deployed: i64,
    queries: &[OldQuery],
) -> Result<OldQueryReport, Error> {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .doing("connecting to the scratch database")?;
    let base = next.clone().without_registration();
    base.clone().up_to(deployed).run_all(&pool).await?;
    let pending: Vec<(i64, &'static str)> = next
        .migrations()
        .filter(|m| m.version > deployed && m.phase == Phase::PreDeploy)
        .map(|m| (m.version, m.source))
        .collect();

    // The deployed build's connection: every old query prepared as its statement cache has it.
    let mut old = PgConnection::connect_with(&options).await.doing("connecting to the scratch database")?;
    let mut fresh = PgConnection::connect_with(&options).await.doing("connecting to the scratch database")?;
    let mut report = OldQueryReport {
        checked: queries.len(),
        migrations: pending.iter().map(|p| p.0).collect(),
        ..OldQueryReport::default()
    };
    let mut tracked = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let mut t = Tracked {
            query: q.clone(),
            facts: old_query::facts(&q.sql),
            params: 0,
            shape: None,
            prepared: false,
            broken: false,
            insert_reported: false,
            shape_reported: false,
        };
        match describe(&mut fresh, &q.sql).await {
            Ok((shape, params)) => {
                t.shape = Some(shape);
                t.params = params;
                t.prepared = prepare(&mut old, i, &q.sql).await.is_ok();
            }
            Err(e) => {
                t.broken = true;
                report.findings.push(OldQueryFinding {
                    query: q.clone(),
                    migration: None,
                    migration_source: None,
                    problem: Problem::DoesNotPrepare(e),
                });
            }
        }
        tracked.push(t);
    }

    for (version, source) in pending {
        let tables = inserted_tables(&tracked);
        let before = table_facts(&mut fresh, &tables).await?;
        base.clone().up_to(version).run_pre(&pool).await?;
        // sqlx's describe goes through the statement cache, which the change just made stale.
        fresh.clear_cached_statements().await.doing("clearing the checker's statement cache")?;
        let after = table_facts(&mut fresh, &tables).await?;
        let mut found = |query: &OldQuery, problem| {
            report.findings.push(OldQueryFinding {
                query: query.clone(),
                migration: Some(version),
                migration_source: Some(source),
                problem,
            })
        };
        for (i, t) in tracked.iter_mut().enumerate().filter(|(_, t)| !t.broken) {
            let shape = match describe(&mut fresh, &t.query.sql).await {
                Ok((shape, _)) => shape,
                Err(e) => {
                    t.broken = true;
                    found(&t.query, Problem::DoesNotPrepare(e));
                    continue;
                }
            };
            if t.prepared && stale(&mut old, i, t.params).await {
                let before = t.shape.clone().unwrap_or_default();
                let after =
                    if before == shape { format!("{shape} (a column's type modifier changed)") } else { shape.clone() };
                // The first change breaks the deployed build's statement; later ones add nothing.
                if !t.shape_reported {
                    t.shape_reported = true;
                    found(&t.query, Problem::ShapeChanges { before, after, star: t.facts.star });
                }
                let _ = sqlx::raw_sql(AssertSqlSafe(format!("DEALLOCATE zdm_old_{i}"))).execute(&mut old).await;
                t.prepared = prepare(&mut old, i, &t.query.sql).await.is_ok();
            }
            t.shape = Some(shape);
            if let Some((table, columns)) = &t.facts.insert {
                let (Some(b), Some(a)) =
                    (before.iter().find(|x| &x.table == table), after.iter().find(|x| &x.table == table))
                else {
                    continue;
                };
                match columns {
                    // Reported once: the first migration that changes the columns breaks it.
                    None if a.columns != b.columns && !t.insert_reported => {
                        t.insert_reported = true;
                        found(&t.query, Problem::InsertWithoutColumns { table: table.clone() })
                    }
                    None => {}
                    Some(cols) => {
                        let omitted = |c: &String| !cols.iter().any(|x| x == c);
                        for c in a.required.difference(&b.required).filter(|c| omitted(c)) {
                            found(&t.query, Problem::OmitsRequired { table: table.clone(), column: c.clone() });
                        }
                        for (name, reads) in a.checks.iter().filter(|c| !b.checks.contains(c)) {
                            if let Some(c) = reads.iter().find(|c| omitted(c)) {
                                found(
                                    &t.query,
                                    Problem::CheckMayReject {
                                        table: table.clone(),
                                        constraint: name.clone(),
                                        column: c.clone(),
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    pool.close().await;
    let _ = old.close().await;
    let _ = fresh.close().await;
    Ok(report)
}

/// Result columns (`name type, ..`) and parameter count, or the server's error (a
/// prepared statement; sqlx's `describe` needs its `offline` feature).
async fn describe(conn: &mut PgConnection, sql: &str) -> Result<(String, usize), String> {
    let d = conn.prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(sql.to_string()))).await.map_err(|e| match e
        .as_database_error()
    {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    })?;
    let shape =
        d.columns().iter().map(|c| format!("{} {}", c.name(), c.type_info().name())).collect::<Vec<_>>().join(", ");
    let params = match d.parameters() {
        Some(sqlx::Either::Left(types)) => types.len(),
        Some(sqlx::Either::Right(n)) => n,
        None => 0,
    };
    Ok((if shape.is_empty() { "(no result)".to_string() } else { shape }, params))
}

async fn prepare(conn: &mut PgConnection, i: usize, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(AssertSqlSafe(format!("PREPARE zdm_old_{i} AS {sql}"))).execute(conn).await.map(drop)
}

/// Executes the prepared statement with NULL parameters in a rolled-back transaction: the
/// server revalidates the cached plan first and raises the stale-plan error before running.
async fn stale(conn: &mut PgConnection, i: usize, params: usize) -> bool {
    let args = if params == 0 { String::new() } else { format!("({})", vec!["NULL"; params].join(", ")) };
    let _ = sqlx::raw_sql("BEGIN; SET LOCAL statement_timeout = '5s'").execute(&mut *conn).await;
    let result = sqlx::raw_sql(AssertSqlSafe(format!("EXECUTE zdm_old_{i}{args}"))).execute(&mut *conn).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    result.is_err_and(|e| crate::statement_cache::is_stale_plan(&e))
}

fn inserted_tables(tracked: &[Tracked]) -> BTreeSet<String> {
    tracked.iter().filter_map(|t| t.facts.insert.as_ref().map(|(table, _)| table.clone())).collect()
}

/// What an INSERT's success depends on, per table.
struct TableFacts {
    table: String,
    columns: Vec<String>,
    /// NOT NULL, no default, not identity or generated.
    required: BTreeSet<String>,
    /// CHECK constraints and the columns each reads.
    checks: Vec<(String, Vec<String>)>,
}

async fn table_facts(conn: &mut PgConnection, tables: &BTreeSet<String>) -> Result<Vec<TableFacts>, Error> {
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<(String, bool)> = sqlx::query_as(
            "SELECT a.attname::text, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE c.relname = $1 AND pg_table_is_visible(c.oid) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .doing("reading a table's columns")?;
        let checks: Vec<(String, Vec<String>)> = sqlx::query_as(
            "SELECT con.conname::text, array(SELECT a.attname::text FROM pg_attribute a \
                 WHERE a.attrelid = con.conrelid AND a.attnum = ANY(con.conkey)) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
             WHERE con.contype = 'c' AND c.relname = $1 AND pg_table_is_visible(c.oid)",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await
        .doing("reading a table's checks")?;
        out.push(TableFacts {
            table: table.clone(),
            required: columns.iter().filter(|c| c.1).map(|c| c.0.clone()).collect(),
            columns: columns.into_iter().map(|c| c.0).collect(),
            checks,
        });
    }
    Ok(out)
}
