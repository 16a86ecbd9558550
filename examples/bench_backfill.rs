//! Backfill rate and lock time: zdm's batched backfill vs. one single `UPDATE` over the same
//! table (two identical tables, so neither run meets the other's dead rows).
//!
//!     cargo run --release --example bench_backfill            # 1,000,000 rows, 3 runs
//!     cargo run --example bench_backfill -- --smoke           # CI: 10,000 rows
//!     cargo run --release --example bench_backfill -- --target-ms 25   # another batch target
//!
//! Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); creates and
//! drops its own databases. Goal (issue 17): at least 80% of the single UPDATE's rate
//! (median of 3 runs), every batch holding its row locks at most 50 ms (the single UPDATE
//! holds them throughout).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::{self, AssertSqlSafe, ConnectOptions};

/// One run in a database of its own: the single UPDATE and zdm's backfill over two
/// identical fresh tables, in the given order.
struct Run {
    single: Duration,
    batched: Duration,
    held: Vec<Duration>,
    final_size: i64,
}

async fn one_run(
    admin: &PgConnectOptions,
    rows: i64,
    target: Option<u64>,
    batched_first: bool,
) -> Result<Run, Box<dyn std::error::Error>> {
    let name = format!("zdm_bench_backfill_{}", std::process::id());
    let mut conn = admin.connect().await?;
    for sql in [format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
    }
    let pool = PgPoolOptions::new().max_connections(4).connect_with(admin.clone().database(&name)).await?;
    for table in ["items_single", "items_batched"] {
        let sql = format!(
            "CREATE TABLE {table} (id BIGSERIAL PRIMARY KEY, a INTEGER NOT NULL, b INTEGER, pad TEXT NOT NULL);
             INSERT INTO {table} (a, pad) SELECT g, repeat('x', 40) FROM generate_series(1, {rows}) g"
        );
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&pool).await?;
        // Its own query: VACUUM refuses to run in the implicit transaction of a multi-statement string.
        sqlx::raw_sql(AssertSqlSafe(format!("VACUUM ANALYZE {table}"))).execute(&pool).await?;
    }
    sqlx::raw_sql("CHECKPOINT").execute(&pool).await?;

    let held = Arc::new(Mutex::new(Vec::new()));
    let seen = held.clone();
    let mut m = zdm::migrator!("benches/backfill");
    if let Some(ms) = target {
        m = m.backfill_target(Duration::from_millis(ms));
    }
    let m = m.without_registration().backfill_in_background(false).on_backfill_progress(move |p| {
        if !p.finished {
            seen.lock().unwrap().push(p.last_batch);
        }
    });
    m.run_pre(&pool).await?;

    let mut single = Duration::ZERO;
    let mut batched = Duration::ZERO;
    let mut final_size = 0;
    for batched_turn in if batched_first { [true, false] } else { [false, true] } {
        let started = Instant::now();
        if batched_turn {
            // zdm: scheduled by a migration, run in batches of ~25 ms.
            let done = m.run_backfills(&pool).await?;
            batched = started.elapsed();
            final_size = done.first().map_or(0, |d| d.batch_size);
        } else {
            // The naive way: one statement, every row locked until it commits.
            sqlx::query("UPDATE items_single SET b = a + 1").execute(&pool).await?;
            single = started.elapsed();
        }
    }
    let wrong: i64 = sqlx::query_scalar("SELECT count(*) FROM items_batched WHERE b IS DISTINCT FROM a + 1")
        .fetch_one(&pool)
        .await?;
    assert_eq!(wrong, 0, "every row backfilled");
    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await?;
    let held = held.lock().unwrap().clone();
    Ok(Run { single, batched, held, final_size })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let rows: i64 = if smoke { 10_000 } else { 1_000_000 };
    // `--target-ms N` overrides the batch target (default: zdm's); `--runs N` (default 3).
    let args: Vec<String> = std::env::args().collect();
    let arg =
        |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
    let target: Option<u64> = arg("--target-ms");
    let runs = arg("--runs").unwrap_or(if smoke { 1 } else { 3 }) as usize;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin: PgConnectOptions = url.parse()?;
    let mut conn = admin.connect().await?;
    println!(
        "{rows} rows per table, {runs} run(s), each in a fresh database (the order alternates); PostgreSQL {}",
        sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&mut conn).await?
    );
    println!();
    println!(
        "{:<5} {:>12} {:>14} {:>10} {:>9} {:>11} {:>11} {:>8}",
        "run", "UPDATE ms", "backfill ms", "rate", "batches", "mean ms", "longest ms", ">50 ms"
    );
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    let mut ratios = Vec::new();
    let mut longest_all = Duration::ZERO;
    let mut over_all = 0;
    for i in 0..runs {
        let r = one_run(&admin, rows, target, i % 2 == 1).await?;
        let longest = r.held.iter().max().copied().unwrap_or_default();
        let mean = r.held.iter().sum::<Duration>() / r.held.len().max(1) as u32;
        let over_50 = r.held.iter().filter(|d| **d > Duration::from_millis(50)).count();
        let ratio = rate(r.batched) / rate(r.single);
        ratios.push(ratio);
        longest_all = longest_all.max(longest);
        over_all += over_50;
        println!(
            "{:<5} {:>12.0} {:>14.0} {:>9.0}% {:>9} {:>11.1} {:>11.1} {:>8}   (final batch size {})",
            i + 1,
            r.single.as_secs_f64() * 1e3,
            r.batched.as_secs_f64() * 1e3,
            100.0 * ratio,
            r.held.len(),
            mean.as_secs_f64() * 1e3,
            longest.as_secs_f64() * 1e3,
            over_50,
            r.final_size
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!();
    println!(
        "median backfill rate = {:.0}% of the single UPDATE's (which locks every row until it commits); \
         longest batch {:.1} ms, {} batch(es) over 50 ms in all runs",
        100.0 * ratios[ratios.len() / 2],
        longest_all.as_secs_f64() * 1e3,
        over_all
    );
    Ok(())
}
