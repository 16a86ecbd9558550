//! `zdm`: zero-downtime migrations from the command line.
//!
//! Lint a migrations folder in CI (text, JSON, SARIF or GitHub annotations), run the
//! pre- and post-deploy phases from a deploy pipeline, watch backfills, adopt zdm on an
//! existing database, and start a new migration file. Every command goes through the
//! `zdm` library's own functions; the folder is read at run time, so the binary works for
//! any project.
//!
//! Exit codes: 0 success; 1 lint errors or a failed command; 2 a usage error.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod db;
mod lint;
mod new;
mod project;

/// Zero-downtime schema migrations for sqlx: lint, run the two phases, adopt.
#[derive(Parser, Debug)]
#[command(name = "zdm", version, about, long_about = None, after_help = EXIT_CODES)]
struct Cli {
    /// The project's folder: where `zdm.toml`, `sqlx.toml` and the migrations are.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    project: PathBuf,

    #[command(subcommand)]
    command: Command,
}

const EXIT_CODES: &str = "Exit codes: 0 success; 1 lint errors or a failed command; 2 a usage error.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Judge every migration without a database (the rules `zdm::migrations!` applies at
    /// compile time). Exits 1 when a finding blocks.
    Lint(LintArgs),
    /// Applied and pending migrations, deferred drops, backfills and live instances.
    Status {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
    },
    /// What `pre` and then `post` would run, without running it: each pending migration with
    /// its phase, directives and the gate's verdict, and per statement the lock, table,
    /// rewrite and scan the lint predicts. With `--trace`, runs them in a scratch database
    /// (created on the same server and dropped) after replaying the applied history, and
    /// shows what the server really locked, rewrote and scanned; exits 1 when the server
    /// did more than the lint predicted or refused a statement.
    Plan {
        #[command(flatten)]
        db: DbArgs,
        #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
        format: StatusFormat,
        /// Run the pending migrations in a scratch database and record their locks
        /// (`--database-url` must be allowed to CREATE DATABASE; PostgreSQL only).
        #[arg(long)]
        trace: bool,
        /// With `--trace`: synthetic rows inserted into every table first, so scans and
        /// rewrites take visible time.
        #[arg(long, value_name = "N", default_value_t = 0, requires = "trace")]
        sample_rows: u64,
    },
    /// Applies the pending pre-deploy migrations (safe for the build still serving).
    Pre {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Applies the pending after_deploy migrations and due deferred drops, as far as the
    /// gate allows (no live build may still need what they remove).
    Post {
        #[command(flatten)]
        db: DbArgs,
        /// Wait, checking the gate at every heartbeat, until no post-deploy work is left
        /// (what it waits for is logged to stderr).
        #[arg(long)]
        when_safe: bool,
        /// With --when-safe: give up after this many seconds, exit 1.
        #[arg(long, value_name = "SECONDS", requires = "when_safe")]
        timeout: Option<u64>,
        /// Exit 1 when post-deploy work is left waiting (a pipeline step that must finish
        /// the contract phase); by default a held run is a success that says what waits.
        #[arg(long)]
        fail_if_held: bool,
    },
    /// Runs every unfinished backfill to its end, with a progress bar.
    Backfills {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Writes `zdm-baseline.txt` into the migrations folder from the database's applied
    /// history (zdm's, sqlx's or diesel's): adopting zdm on an existing project.
    Baseline {
        /// The migrations folder (default: from zdm.toml, sqlx.toml, else `migrations`).
        #[arg(value_name = "DIR")]
        folder: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
        /// Replace an existing `zdm-baseline.txt`.
        #[arg(long)]
        force: bool,
    },
    /// Creates a migration file named in sqlx's way (`<timestamp>_<name>.sql`), with the
    /// directive lines written for you.
    New {
        /// What the migration does, e.g. `add_posts_summary`.
        #[arg(value_parser = new::parse_name)]
        name: String,
        /// A post-deploy migration (`-- zdm:after_deploy`): run by `zdm post`.
        #[arg(long)]
        after_deploy: bool,
        /// Runs outside a transaction (`-- zdm:no_transaction`), e.g. for
        /// `CREATE INDEX CONCURRENTLY`.
        #[arg(long)]
        no_transaction: bool,
        /// The migrations folder (default: from zdm.toml, sqlx.toml, else `migrations`).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct LintArgs {
    /// The migrations folder (default: from zdm.toml, sqlx.toml, else `migrations`).
    dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The PostgreSQL version the rules assume (e.g. `14`, `14.2`; default from zdm.toml,
    /// else 15).
    #[arg(long, value_name = "VERSION", value_parser = parse_postgres)]
    postgres: Option<String>,
    /// The SQL dialect of the migrations (default from zdm.toml, else postgres).
    #[arg(long, value_enum)]
    dialect: Option<Dialect>,
    /// Judge only files added or changed since this git ref (since its merge base with
    /// HEAD); the rest is replayed for the schema only.
    #[arg(long, value_name = "GIT_REF")]
    changed_since: Option<String>,
    /// List every rule (id, dialect, kind) and exit.
    #[arg(long)]
    list_rules: bool,
}

/// `--postgres`: a version the lint knows, or a usage error (exit 2).
fn parse_postgres(text: &str) -> Result<String, String> {
    zdm::lint::PgVersion::parse(text)
        .map(|_| text.to_string())
        .ok_or_else(|| format!("{text:?} is not a PostgreSQL version (use e.g. 15 or 14.2)"))
}

/// Where the database is.
#[derive(clap::Args, Debug)]
struct DbArgs {
    /// `postgres://…` or `sqlite:…`.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    database_url: String,
    /// The migrations folder (default: from zdm.toml, sqlx.toml, else `migrations`).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Human-readable, one finding per paragraph.
    Text,
    /// `{"findings": [...], "errors": N, "warnings": N}` (see docs/src/cli.md).
    Json,
    /// SARIF 2.1.0, for code-scanning dashboards.
    Sarif,
    /// GitHub Actions workflow commands (`::error file=..,line=..::..`): annotations on
    /// the pull request.
    Github,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StatusFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Postgres,
    Sqlite,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What an operator should know is in each command's output (a report's notes);
    // `ZDM_LOG=info` (or `debug`) shows zdm's log besides. A `post --when-safe` that waits
    // says what it waits for as it goes.
    let default_log =
        if matches!(cli.command, Command::Post { when_safe: true, .. }) { "error,zdm_sqlx=info" } else { "error" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ZDM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Lint(args) if args.list_rules => lint::list_rules(),
        Command::Lint(args) => lint::run(&cli.project, args),
        Command::New { name, after_deploy, no_transaction, dir } => {
            new::run(&cli.project, dir, &name, after_deploy, no_transaction)
        }
        command => runtime().and_then(|rt| rt.block_on(db::run(&cli.project, command))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Writes `text` to stdout. A reader that went away (`zdm status | head`) is no error and
/// never a panic (as `print!` would make it): the command's exit code stands.
fn out(text: impl std::fmt::Display) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match write!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Box<dyn std::error::Error>> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// What every command returns: its exit code, or an error printed as `error: ..`.
type Outcome = Result<ExitCode, Box<dyn std::error::Error>>;
