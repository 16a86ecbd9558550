//! Availability under live traffic: a load generator plays the old app (concurrent reads
//! and writes at a fixed rate on a table of 1,000,000 rows) while one schema change is
//! applied (a) naively with plain `sqlx::migrate!` and (b) with zdm. It prints, per
//! scenario, failed requests, request latency while idle and during the change, and the
//! migration's wall time.
//!
//!     cargo run --release --example availability              # 1,000,000 rows
//!     cargo run --example availability -- --smoke             # CI: 20,000 rows, short
//!
//! Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); creates and
//! drops its own databases. A request that errors or takes longer than 5 s counts as failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::{self, AssertSqlSafe, ConnectOptions, Connection, PgPool};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Settings {
    rows: i64,
    workers: usize,
    rate_per_worker: f64,
    idle: Duration,
    after: Duration,
    blocker_hold: Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Naive,
    /// zdm with lock windows turned off: growing lock timeouts and pauses only (before
    /// issue 17), shown in the lock-queue scenario.
    Retries,
    Zdm,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::Retries => "zdm-retries",
            Mode::Zdm => "zdm",
        }
    }
}

struct Sample {
    at: Instant,
    latency: Duration,
    ok: bool,
}

async fn admin(url: &PgConnectOptions, sql: String) {
    let mut conn = url.connect().await.expect("PostgreSQL answers");
    sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

async fn build_template(options: &PgConnectOptions, name: &str, rows: i64) {
    admin(options, format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    admin(options, format!("CREATE DATABASE \"{name}\"")).await;
    let mut conn = options.clone().database(name).connect().await.unwrap();
    let fill = format!(
        "CREATE TABLE users (id BIGINT PRIMARY KEY);
         INSERT INTO users SELECT g FROM generate_series(1, 10000) g;
         CREATE TABLE items (id BIGINT PRIMARY KEY, user_id BIGINT, n INT, note TEXT);
         INSERT INTO items SELECT g, g % 10000 + 1, g % 1000, 'row ' || g FROM generate_series(1, {rows}) g;"
    );
    sqlx::raw_sql(AssertSqlSafe(fill)).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// The old app: each worker alternates a read and a write by primary key at a fixed rate.
fn start_load(
    pool: PgPool,
    s: &Settings,
    rows: i64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Sample>>> {
    (0..s.workers)
        .map(|w| {
            let (pool, stop) = (pool.clone(), stop.clone());
            let interval = Duration::from_secs_f64(1.0 / s.rate_per_worker);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut next = tokio::time::Instant::now();
                let mut k: i64 = w as i64;
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep_until(next).await;
                    next = (next + interval).max(tokio::time::Instant::now());
                    k += 7919;
                    let id = k % rows + 1;
                    let at = Instant::now();
                    let request = async {
                        if k % 2 == 0 {
                            sqlx::query_scalar::<_, i32>("SELECT n FROM items WHERE id = $1")
                                .bind(id)
                                .fetch_one(&pool)
                                .await
                                .map(drop)
                        } else {
                            sqlx::query("UPDATE items SET note = 'seen' WHERE id = $1")
                                .bind(id)
                                .execute(&pool)
                                .await
                                .map(drop)
                        }
                    };
                    let ok = matches!(tokio::time::timeout(CLIENT_TIMEOUT, request).await, Ok(Ok(())));
                    samples.push(Sample { at, latency: at.elapsed(), ok });
                }
                samples
            })
        })
        .collect()
}

async fn migrate(scenario: &str, mode: Mode, pool: &PgPool) -> Result<(), String> {
    macro_rules! naive {
        ($dir:literal) => {
            sqlx::migrate!($dir).run(pool).await.map_err(|e| e.to_string())
        };
    }
    macro_rules! zdm {
        ($dir:literal) => {
            zdm::migrator!($dir).run_all(pool).await.map(drop).map_err(|e| e.to_string())
        };
    }
    match (scenario, mode) {
        ("add index", Mode::Naive) => naive!("benches/availability/add_index/naive"),
        ("add index", Mode::Zdm) => zdm!("benches/availability/add_index/zdm"),
        ("add column with default", Mode::Naive) => naive!("benches/availability/add_column_default/naive"),
        ("add column with default", Mode::Zdm) => zdm!("benches/availability/add_column_default/zdm"),
        ("add foreign key", Mode::Naive) => naive!("benches/availability/add_foreign_key/naive"),
        ("add foreign key", Mode::Zdm) => zdm!("benches/availability/add_foreign_key/zdm"),
        ("set not null", Mode::Naive) => naive!("benches/availability/set_not_null/naive"),
        ("set not null", Mode::Zdm) => zdm!("benches/availability/set_not_null/zdm"),
        ("lock queue", Mode::Naive) => naive!("benches/availability/lock_queue/naive"),
        ("lock queue", Mode::Zdm) => zdm!("benches/availability/lock_queue/zdm"),
        ("lock queue", Mode::Retries) => zdm::migrator!("benches/availability/lock_queue/zdm")
            .exec_policy(zdm::ExecPolicy { lock_windows: false, ..Default::default() })
            .run_all(pool)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        _ => unreachable!(),
    }
}

fn percentiles(samples: &[&Sample]) -> (Duration, Duration, Duration) {
    let mut l: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    if l.is_empty() {
        return (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    }
    l.sort();
    let p = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99), *l.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let s = if smoke {
        Settings {
            rows: 20_000,
            workers: 4,
            rate_per_worker: 50.0,
            idle: Duration::from_millis(300),
            after: Duration::from_millis(200),
            blocker_hold: Duration::from_secs(1),
        }
    } else {
        Settings {
            rows: 1_000_000,
            workers: 8,
            rate_per_worker: 50.0,
            idle: Duration::from_secs(2),
            after: Duration::from_millis(500),
            blocker_hold: Duration::from_secs(3),
        }
    };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options: PgConnectOptions = url.parse().unwrap();
    let template = format!("zdm_avail_tpl_{}", std::process::id());
    println!("building the template: {} rows ...", s.rows);
    build_template(&options, &template, s.rows).await;

    println!(
        "load: {} workers x {} req/s (reads and writes by key); a request failing or over {:?} is failed\n",
        s.workers, s.rate_per_worker, CLIENT_TIMEOUT
    );
    println!(
        "{:<24} {:<11} {:>6} {:>8} {:>22} {:>24} {:>12}",
        "scenario", "mode", "reqs", "failed", "idle p50/p99/max ms", "during p50/p99/max ms", "migration s"
    );
    // `--only "lock queue"`: one scenario.
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let scenarios = ["add index", "add column with default", "add foreign key", "set not null", "lock queue"];
    let mut lock_queue_after = Vec::new();
    for scenario in scenarios.into_iter().filter(|s| only.as_deref().is_none_or(|o| o == *s)) {
        let modes: &[Mode] =
            if scenario == "lock queue" { &[Mode::Naive, Mode::Retries, Mode::Zdm] } else { &[Mode::Naive, Mode::Zdm] };
        for &mode in modes {
            let db = format!("zdm_avail_run_{}", std::process::id());
            admin(&options, format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")).await;
            admin(&options, format!("CREATE DATABASE \"{db}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY")).await;
            let run_options = options.clone().database(&db);
            let app =
                PgPoolOptions::new().max_connections(s.workers as u32).connect_with(run_options.clone()).await.unwrap();
            let migrator_pool =
                PgPoolOptions::new().max_connections(3).connect_with(run_options.clone()).await.unwrap();
            // Warm the app's connections and statement caches.
            let stop = Arc::new(AtomicBool::new(false));
            let load = start_load(app.clone(), &s, s.rows, stop.clone());
            tokio::time::sleep(s.idle).await;

            let blocker = if scenario == "lock queue" {
                // A long transaction that read the table: the ALTER must wait for it.
                let mut conn = run_options.connect().await.unwrap();
                sqlx::raw_sql("BEGIN; SELECT count(*) FROM items WHERE id < 10").execute(&mut conn).await.unwrap();
                let hold = s.blocker_hold;
                Some(tokio::spawn(async move {
                    tokio::time::sleep(hold).await;
                    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
                    Instant::now()
                }))
            } else {
                None
            };
            let started = Instant::now();
            let result = migrate(scenario, mode, &migrator_pool).await;
            let ended = Instant::now();
            tokio::time::sleep(s.after).await;
            stop.store(true, Ordering::Relaxed);
            let mut samples = Vec::new();
            for h in load {
                samples.extend(h.await.unwrap());
            }
            if let Some(b) = blocker {
                let released = b.await.unwrap();
                lock_queue_after.push((mode, ended.saturating_duration_since(released)));
            }
            let idle: Vec<&Sample> = samples.iter().filter(|x| x.at < started).collect();
            let during: Vec<&Sample> = samples.iter().filter(|x| x.at >= started && x.at <= ended).collect();
            let failed = samples.iter().filter(|x| !x.ok).count();
            let (i50, i99, imax) = percentiles(&idle);
            let (d50, d99, dmax) = percentiles(&during);
            println!(
                "{:<24} {:<11} {:>6} {:>8} {:>22} {:>24} {:>12.2}{}",
                scenario,
                mode.label(),
                samples.len(),
                failed,
                format!("{}/{}/{}", ms(i50), ms(i99), ms(imax)),
                format!("{}/{}/{}", ms(d50), ms(d99), ms(dmax)),
                (ended - started).as_secs_f64(),
                match result {
                    Ok(()) => String::new(),
                    Err(e) => format!("  migration failed: {e}"),
                }
            );
            app.close().await;
            migrator_pool.close().await;
            admin(&options, format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")).await;
        }
    }
    admin(&options, format!("DROP DATABASE IF EXISTS \"{template}\" WITH (FORCE)")).await;
    for (mode, after) in lock_queue_after {
        println!(
            "lock queue, {}: the migration finished {} ms after the {:?} blocker ended",
            mode.label(),
            ms(after),
            s.blocker_hold
        );
    }
}
