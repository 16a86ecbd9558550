//! A web service on zdm, shaped for a rolling deploy behind a load balancer.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/blog cargo run --example axum_service
//! ```
//!
//! 1. **Migrate, then bind.** `run_pre` (the additive half, safe for the build still
//!    serving) runs before the listener exists, so a readiness probe cannot pass early.
//!    Long migrations belong in a deploy step instead: `--migrate-only` runs `run_pre`
//!    and the backfills to their end and exits (without registering: it serves nothing);
//!    the instances then start with `--no-migrate`, which registers them without migrating.
//! 2. **Ready.** `GET /ready` answers 200 only once the service serves, and 503 again as
//!    soon as SIGTERM arrives, so the load balancer stops routing here before it stops.
//! 3. **Contract when safe.** `run_post_when_safe` runs in a task of its own: the
//!    after_deploy migration (dropping `legacy_slug`) waits until no live build predates it
//!    and the backfill before it has finished.
//! 4. **Serve.** A healing pool (`zdm::healing`) survives the next build's migrations with
//!    sqlx's statement cache on; reads use the model's explicit column list (`Post::SELECT`),
//!    never `SELECT *`, and go through `zdm::healing::retry`.
//! 5. **Progress.** `on_backfill_progress` feeds `GET /backfills` (Prometheus' text format).
//! 6. **Stop.** On SIGTERM (or Ctrl-C): not ready, keep serving for `DRAIN_MS` while the
//!    load balancer notices, stop accepting and finish every request in flight (axum's
//!    graceful shutdown), then deregister (`Instance::stop`) so post-deploy work does not
//!    wait for this registration to expire.
//!
//! Settings: `DATABASE_URL` (required), `LISTEN_ADDR` (default `127.0.0.1:3000`; port 0
//! picks a free one, logged), `DRAIN_MS` (default 5000), `RUST_LOG` (default `info`).
//! Routes: `GET /ready`, `GET /posts`, `POST /posts` (the body is the title),
//! `GET /posts/slow` (a 300 ms query: something to drain), `GET /backfills`.

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use zdm::sqlx::postgres::PgPoolOptions;
use zdm::sqlx::PgPool;
use zdm::BackfillProgress;

/// The model of release 2: it no longer maps `legacy_slug`, so the after_deploy drop of that
/// column may go ahead once release 1 is gone. `Post::SELECT` is
/// `SELECT "id", "title", "title_lower" FROM "posts"`.
#[derive(zdm::sqlx::FromRow, Debug)]
#[zdm::model(table = "posts")]
struct Post {
    id: i64,
    title: String,
    title_lower: Option<String>,
}

/// How this process takes part in the deploy.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// `run_pre` at boot, then serve (the default).
    MigrateAndServe,
    /// A deploy step: `run_pre` and the backfills to their end, then exit.
    MigrateOnly,
    /// Serve a database a deploy step migrated: register without migrating.
    ServeOnly,
}

/// The latest progress of each backfill, by name, as `on_backfill_progress` reports it.
type Backfills = Arc<Mutex<BTreeMap<String, BackfillProgress>>>;

#[derive(Clone)]
struct App {
    pool: PgPool,
    ready: Arc<AtomicBool>,
    backfills: Backfills,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mode = match std::env::args().nth(1).as_deref() {
        None => Mode::MigrateAndServe,
        Some("--migrate-only") => Mode::MigrateOnly,
        Some("--no-migrate") => Mode::ServeOnly,
        Some(other) => return Err(format!("unknown argument {other:?}: --migrate-only or --no-migrate").into()),
    };
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL to a postgres:// URL")?;
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let drain = Duration::from_millis(std::env::var("DRAIN_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000));
    tracing::info!(?mode, pid = std::process::id(), "booting");

    // The healing pool: its listener learns of each schema change zdm commits and retires
    // the connections whose cached statements predate it.
    let pool = zdm::healing::connect(PgPoolOptions::new().max_connections(8), &url).await?;
    let backfills: Backfills = Arc::default();
    let migrator = Arc::new(this_build(backfills.clone()));

    let instance = match mode {
        Mode::MigrateOnly => {
            let deploy_step = this_build(backfills).without_registration();
            let report = deploy_step.run_pre(&pool).await?;
            tracing::info!(applied = report.applied.len(), "run_pre done (deploy step)");
            for row in deploy_step.run_backfills(&pool).await? {
                tracing::info!(backfill = %row.name, rows = row.rows_done, "backfill finished");
            }
            pool.close().await;
            return Ok(());
        }
        Mode::MigrateAndServe => {
            let report = migrator.run_pre(&pool).await?;
            for step in &report.applied {
                tracing::info!(version = step.version, description = %step.description, ms = step.duration.as_millis() as u64, "applied");
            }
            tracing::info!(applied = report.applied.len(), "run_pre done");
            report.instance.ok_or("run_pre registers this process")?
        }
        Mode::ServeOnly => migrator.register(&pool).await?,
    };
    tracing::info!(instance = %instance.id(), "registered in zdm_instances");

    // The contract half, once it is safe: it waits for older builds to go and for the
    // backfill, then drops what this build no longer maps.
    let post = tokio::spawn({
        let (migrator, pool) = (migrator.clone(), pool.clone());
        async move {
            match migrator.run_post_when_safe(&pool).await {
                Ok(report) => {
                    for step in &report.applied {
                        tracing::info!(version = step.version, description = %step.description, "applied after deploy");
                    }
                    tracing::info!(applied = report.applied.len(), "run_post_when_safe done");
                }
                Err(e) => tracing::error!(error = %e, "run_post_when_safe failed"),
            }
        }
    });

    let app = App { pool: pool.clone(), ready: Arc::new(AtomicBool::new(false)), backfills };
    let router = Router::new()
        .route("/ready", get(ready))
        .route("/posts", get(list_posts).post(create_post))
        .route("/posts/slow", get(slow_count))
        .route("/backfills", get(backfill_metrics))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    app.ready.store(true, Ordering::SeqCst);
    tracing::info!("ready");

    axum::serve(listener, router).with_graceful_shutdown(stopping(app.ready.clone(), drain)).await?;
    tracing::info!("drained: every request in flight was answered");

    post.abort();
    instance.stop().await?;
    tracing::info!(instance = %instance.id(), "deregistered; exiting");
    pool.close().await;
    Ok(())
}

/// This build's migrations, with backfill progress recorded for `GET /backfills`.
fn this_build(backfills: Backfills) -> zdm::Migrator {
    zdm::migrator!("examples/axum_service/migrations").app("axum_service", env!("CARGO_PKG_VERSION")).on_backfill_progress(
        move |p| {
            tracing::info!(backfill = %p.name, rows = p.rows_done, batches = p.batches, finished = p.finished, "backfill progress");
            backfills.lock().unwrap_or_else(|e| e.into_inner()).insert(p.name.clone(), p.clone());
        },
    )
}

/// Resolves when the process is asked to stop, after the drain delay: readiness is off
/// from the signal on, and requests keep being served until the delay ends.
async fn stopping(ready: Arc<AtomicBool>, drain: Duration) {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
    }
    ready.store(false, Ordering::SeqCst);
    tracing::info!(drain_ms = drain.as_millis() as u64, "not ready; serving while the load balancer notices");
    tokio::time::sleep(drain).await;
    tracing::info!("draining: no new connections; finishing the requests in flight");
}

async fn ready(State(app): State<App>) -> (StatusCode, &'static str) {
    if app.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// A failed query: logged, and a 500 naming it.
fn failed(e: zdm::sqlx::Error) -> (StatusCode, String) {
    tracing::error!(error = %e, "query failed");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("query failed: {e}\n"))
}

/// The 20 newest posts, one per line.
async fn list_posts(State(app): State<App>) -> Result<String, (StatusCode, String)> {
    let sql = format!("{} ORDER BY id DESC LIMIT 20", Post::SELECT);
    let posts: Vec<Post> = zdm::healing::retry(&app.pool, |conn| {
        let sql = zdm::sqlx::AssertSqlSafe(sql.clone());
        Box::pin(async move { zdm::sqlx::query_as(sql).fetch_all(conn).await })
    })
    .await
    .map_err(failed)?;
    Ok(posts.iter().map(|p| format!("{}\t{}\t{}\n", p.id, p.title, p.title_lower.as_deref().unwrap_or("-"))).collect())
}

/// Creates a post titled with the request's body; answers its id.
async fn create_post(State(app): State<App>, title: String) -> Result<(StatusCode, String), (StatusCode, String)> {
    let id: i64 = zdm::healing::retry(&app.pool, |conn| {
        let title = title.clone();
        Box::pin(async move {
            // Release 2 writes title_lower itself; the backfill fills the rows written before.
            zdm::sqlx::query_scalar("INSERT INTO posts (title, title_lower) VALUES ($1, lower($1)) RETURNING id")
                .bind(title)
                .fetch_one(conn)
                .await
        })
    })
    .await
    .map_err(failed)?;
    Ok((StatusCode::CREATED, format!("{id}\n")))
}

/// A slow read (300 ms): a request still in flight when SIGTERM arrives.
async fn slow_count(State(app): State<App>) -> Result<String, (StatusCode, String)> {
    let n: i64 = zdm::healing::retry(&app.pool, |conn| {
        Box::pin(
            async move { zdm::sqlx::query_scalar("SELECT count(*) FROM posts, pg_sleep(0.3)").fetch_one(conn).await },
        )
    })
    .await
    .map_err(failed)?;
    Ok(format!("{n}\n"))
}

/// Each backfill's progress in Prometheus' text format.
async fn backfill_metrics(State(app): State<App>) -> String {
    let backfills = app.backfills.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::from(
        "# HELP zdm_backfill_rows_done Rows a backfill has updated so far.\n# TYPE zdm_backfill_rows_done gauge\n",
    );
    for p in backfills.values() {
        out.push_str(&format!("zdm_backfill_rows_done{{name=\"{}\",table=\"{}\"}} {}\n", p.name, p.table, p.rows_done));
    }
    out.push_str("# HELP zdm_backfill_finished 1 once a backfill has reached the end of its table.\n");
    out.push_str("# TYPE zdm_backfill_finished gauge\n");
    for p in backfills.values() {
        out.push_str(&format!("zdm_backfill_finished{{name=\"{}\"}} {}\n", p.name, u8::from(p.finished)));
    }
    out
}
