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
        | Command::Baseline { db } => db,
        Command::Lint(_) | Command::New { .. } => unreachable!("run without a database"),
    };
    let DbArgs { database_url, dir } = db;
    let project = Project::load(root, dir.clone())?;
    if let Command::Plan { trace: true, format, sample_rows, .. } = command {
        if database_url.starts_with("sqlite:") {
            return Err("zdm plan --trace needs PostgreSQL: it replays the history into a scratch database".into());
        }
        let pool = PgPool::connect(database_url).await?;
        let code = trace(&pool, &project, format, sample_rows).await;
        pool.close().await;
        return code;
    }
    if database_url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(database_url)?.create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await?;
        let code = on(&pool, &project, command).await;
        pool.close().await;
        code
    } else {
        let pool = PgPool::connect(database_url).await?;
        let code = on(&pool, &project, command).await;
        pool.close().await;
        code
    }
}

async fn on<P: MigratePool>(pool: &P, project: &Project, command: Command) -> Outcome {
    if let Command::Baseline { .. } = command {
        let Some(newest) = zdm::baseline::newest_applied(pool).await? else {
            return Err(
                "nothing is applied in this database (no zdm, sqlx or diesel ledger): nothing to baseline".into()
            );
        };
        let path = zdm::baseline::write(&project.dir, newest)?;
        crate::out(format_args!("baselined up to {newest} in {}\n", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let migrator = migrator(project)?;
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
        Command::Post { when_safe, .. } => {
            let report =
                if when_safe { migrator.run_post_when_safe(pool).await? } else { migrator.run_post(pool).await? };
            crate::out(format_args!("{report}"))?;
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
                    b.max_batch_ms,
                    if b.finished { ", finished" } else { "" }
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Lint(_) | Command::New { .. } | Command::Baseline { .. } => unreachable!("handled above"),
    }
}

/// `zdm plan --trace`: the pending migrations run in a scratch database on `admin`'s server.
async fn trace(admin: &PgPool, project: &Project, format: StatusFormat, sample_rows: u64) -> Outcome {
    let trace = migrator(project)?.trace(admin, zdm::TraceOptions { sample_rows }).await?;
    match format {
        StatusFormat::Text => crate::out(&trace)?,
        StatusFormat::Json => crate::out(format_args!("{}\n", serde_json::to_string_pretty(&trace)?))?,
    }
    let clean = trace.disagreements().next().is_none() && trace.failed().is_none();
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The folder as a migrator: registered nowhere (a tool is not a live build), with the
/// timeouts of `zdm.toml`.
fn migrator(project: &Project) -> Result<Migrator, Box<dyn std::error::Error>> {
    let set = project.assured_set()?;
    if set.is_empty() {
        return Err(format!("{}: no migration files here", project.dir.display()).into());
    }
    let mut m = Migrator::from_parsed(set, "zdm-cli", env!("CARGO_PKG_VERSION")).without_registration();
    if let Some(t) = &project.sqlx_table {
        m = m.sqlx_table(t);
    }
    // The lint's view of the server, for `zdm plan`'s predictions.
    if let Some(pg) = project.config.postgres {
        m = m.lint_postgres(pg.major);
    }
    if let Some(t) = project.config.lock_timeout {
        m = m.lock_timeout(t);
    }
    if let Some(t) = project.config.statement_timeout {
        m = m.statement_timeout(t);
    }
    // A deploy step should not sit behind another deploy's run for 5 minutes unseen.
    Ok(m.lock_wait(Duration::from_secs(600)))
}
