//! The commands that talk to a database: `status`, `plan`, `pre`, `post`, `backfills`,
//! `baseline`. Each reads the migrations folder at run time and runs it through
//! `zdm::Migrator` exactly as an app's embedded set runs, except that the command line
//! registers nowhere: it is a tool, not a live build, and must not hold the gate open.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use zdm::sqlx::sqlite::SqliteConnectOptions;
use zdm::sqlx::{PgPool, SqlitePool};
use zdm::{MigratePool, Migrator};

use crate::project::Project;
use crate::{Command, DbArgs, Outcome, StatusFormat};

pub(crate) async fn run(root: &Path, command: Command) -> Outcome {
    let db = match &command {
        Command::Status { db, .. }
        | Command::Plan { db, .. }
        | Command::Pre { db }
        | Command::Post { db, .. }
        | Command::Backfills { db }
        | Command::Baseline { db, .. } => db,
        Command::Lint(_) | Command::New { .. } => unreachable!("run without a database"),
    };
    let DbArgs { database_url, dir } = db;
    let dir = match &command {
        Command::Baseline { folder: Some(f), .. } => Some(f.clone()),
        _ => dir.clone(),
    };
    let project = Project::load(root, dir)?;
    if let Some((scheme, _)) = database_url.split_once("://").filter(|(s, _)| !s.starts_with("postgres")) {
        return Err(format!("{scheme}:// is not a database zdm runs on: use postgres://… or sqlite:…").into());
    }
    // The folder's dialect: zdm.toml's, else the database's.
    let url_dialect = if database_url.starts_with("sqlite:") { zdm::Dialect::Sqlite } else { zdm::Dialect::Postgres };
    let dialect = project.configured_dialect().unwrap_or(url_dialect);
    if let Command::Plan { trace: true, format, sample_rows, .. } = command {
        if database_url.starts_with("sqlite:") {
            return Err("zdm plan --trace needs PostgreSQL: it replays the history into a scratch database".into());
        }
        let pool = PgPool::connect(database_url).await?;
        let code = trace(&pool, &project, dialect, format, sample_rows).await;
        pool.close().await;
        return code;
    }
    if database_url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(database_url)?.create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await?;
        let code = on(&pool, &project, dialect, command).await;
        pool.close().await;
        code
    } else {
        let pool = PgPool::connect(database_url).await?;
        let code = on(&pool, &project, dialect, command).await;
        pool.close().await;
        code
    }
}

async fn on<P: MigratePool>(pool: &P, project: &Project, dialect: zdm::Dialect, command: Command) -> Outcome {
    if let Command::Baseline { force, .. } = command {
        return baseline(pool, project, dialect, force).await;
    }
    // Only what runs migrations is judged first; status and backfills report and finish.
    let runs = matches!(command, Command::Pre { .. } | Command::Post { .. });
    let migrator = migrator(project, dialect, runs)?;
    match command {
        Command::Status { format, .. } => {
            let status = migrator.status(pool).await?;
            match format {
                StatusFormat::Text => crate::out(&status)?,
                StatusFormat::Json => crate::out(format_args!("{}\n", serde_json::to_string_pretty(&status)?))?,
            }
            Ok(if status.failed().next().is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Plan { format, .. } => {
            let plan = migrator.plan(pool).await?;
            match format {
                StatusFormat::Text => crate::out(&plan)?,
                StatusFormat::Json => crate::out(format_args!("{}\n", serde_json::to_string_pretty(&plan)?))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Pre { .. } => {
            crate::out(migrator.run_pre(pool).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Post { when_safe, timeout, fail_if_held, .. } => {
            // The gate only knows the builds that register: with none live it holds
            // nothing back. Say so, as the app may not register (the command line does not).
            if migrator.status(pool).await?.instances.is_empty() {
                eprintln!(
                    "note: no live build is registered with this database, so nothing holds post-deploy work back; \
                     an app registers when it calls zdm::run_pre (or zdm::register) at boot"
                );
            }
            let report = match (when_safe, timeout) {
                (false, _) => migrator.run_post(pool).await?,
                (true, None) => migrator.run_post_when_safe(pool).await?,
                (true, Some(secs)) => {
                    match tokio::time::timeout(Duration::from_secs(secs), migrator.run_post_when_safe(pool)).await {
                        Ok(report) => report?,
                        Err(_) => {
                            return Err(format!(
                                "post-deploy work still waits after {secs} s (what for is logged above; `zdm status` \
                                 lists it); what was due meanwhile is applied"
                            )
                            .into())
                        }
                    }
                }
            };
            crate::out(format_args!("{report}"))?;
            let held = report.notices.iter().any(|n| n.contains("waits for"));
            if held && fail_if_held {
                eprintln!("error: post-deploy work is held back (what waits is listed above)");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backfills { .. } => {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] key {pos}/{len} ({elapsed})")
                    .map_err(|e| e.to_string())?
                    .progress_chars("=> "),
            );
            let shown = Arc::new(bar);
            let progress = shown.clone();
            let migrator = migrator.on_backfill_progress(move |p| {
                progress.set_message(format!("{} on {}: {} rows", p.name, p.table, p.rows_done));
                progress.set_length(p.max_key.unwrap_or(0).max(0) as u64);
                progress.set_position(p.last_key.unwrap_or(0).max(0) as u64);
            });
            let done = migrator.run_backfills(pool).await?;
            shown.finish_and_clear();
            if done.is_empty() {
                crate::out(format_args!("no backfill left to run\n"))?;
            }
            for b in &done {
                crate::out(format_args!(
                    "backfill {} on {}: {} rows in {} batches, longest {} ms{}\n",
                    b.name,
                    b.table,
                    b.rows_done,
                    b.batches,
                    b.max_batch.as_millis(),
                    if b.finished { ", finished" } else { "" }
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint(_) | Command::New { .. } | Command::Baseline { .. } => unreachable!("handled above"),
    }
}

/// `zdm baseline`: lists in the manifest exactly what the database applied (a file merged
/// late below the newest applied version is not history: it stays linted).
async fn baseline<P: MigratePool>(pool: &P, project: &Project, dialect: zdm::Dialect, force: bool) -> Outcome {
    let manifest = project.dir.join("zdm-baseline.txt");
    if manifest.exists() && !force {
        return Err(format!("{} exists; `zdm baseline --force` replaces it", manifest.display()).into());
    }
    let m =
        configured(Migrator::from_parsed(project.read_set()?, "zdm-cli", env!("CARGO_PKG_VERSION")), project, dialect);
    if m.newest_applied(pool).await?.is_none() {
        return Err("nothing is applied in this database (no zdm, sqlx or diesel ledger): nothing to baseline".into());
    }
    let status = m.status(pool).await?;
    let applied: Vec<i64> = status.applied().map(|r| r.version).collect();
    let path = zdm::baseline::write_applied(&project.dir, &applied)?;
    let skipped: Vec<String> =
        status.pending_pre().chain(status.pending_post()).map(|r| r.version.to_string()).collect();
    crate::out(format_args!(
        "baselined {} applied migration(s), up to {}, in {}\n",
        applied.len(),
        applied.iter().max().map_or("-".to_string(), ToString::to_string),
        path.display()
    ))?;
    if !skipped.is_empty() {
        crate::out(format_args!("not applied, so not listed (still linted): {}\n", skipped.join(", ")))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `zdm plan --trace`: the pending migrations run in a scratch database on `admin`'s server.
async fn trace(
    admin: &PgPool,
    project: &Project,
    dialect: zdm::Dialect,
    format: StatusFormat,
    sample_rows: u64,
) -> Outcome {
    let trace = migrator(project, dialect, false)?.trace(admin, zdm::TraceOptions { sample_rows }).await?;
    match format {
        StatusFormat::Text => crate::out(&trace)?,
        StatusFormat::Json => crate::out(format_args!("{}\n", serde_json::to_string_pretty(&trace)?))?,
    }
    let clean = trace.disagreements().next().is_none() && trace.failed().is_none();
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The folder as a migrator: judged first (a blocking finding refuses the run), registered
/// nowhere (a tool is not a live build), with `zdm.toml`'s and `sqlx.toml`'s settings.
fn migrator(project: &Project, dialect: zdm::Dialect, judged: bool) -> Result<Migrator, Box<dyn std::error::Error>> {
    let set = if judged { project.assured_set(dialect)? } else { project.read_set()? };
    if set.is_empty() {
        return Err(format!("{}: no migration files here", project.dir.display()).into());
    }
    Ok(configured(Migrator::from_parsed(set, "zdm-cli", env!("CARGO_PKG_VERSION")), project, dialect))
}

/// `zdm.toml`'s and `sqlx.toml`'s settings on a migrator of the folder.
fn configured(m: Migrator, project: &Project, dialect: zdm::Dialect) -> Migrator {
    // The dialect the folder was judged in: a pool of another database is refused.
    let mut m = m.without_registration().dialect(dialect);
    if let Some(v) = project.config.postgres {
        m = m.lint_postgres(v.major);
    }
    if let Some(s) = &project.config.schema {
        m = m.schema(s);
    }
    if let Some(p) = &project.config.table_prefix {
        m = m.table_prefix(p);
    }
    if let Some(t) = &project.sqlx_table {
        m = m.sqlx_table(t);
    }
    if let Some(t) = project.config.lock_timeout {
        m = m.lock_timeout(t);
    }
    if let Some(t) = project.config.statement_timeout {
        m = m.statement_timeout(t);
    }
    // A deploy step may wait for another deploy's run as long as a boot would.
    m.lock_wait(Duration::from_secs(600))
}
