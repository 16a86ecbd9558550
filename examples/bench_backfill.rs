//! Backfill rate and lock time: zdm's batched backfill vs. one single `UPDATE` over the same
//! table (two identical tables, so neither run meets the other's dead rows).
//!
//!     cargo run --release --example bench_backfill            # 1,000,000 rows
//!     cargo run --example bench_backfill -- --smoke           # CI: 10,000 rows
//!     cargo run --release --example bench_backfill -- --target-ms 25   # another batch target
//!
//! Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); creates and
//! drops its own database. Goal (issue 6): at least half the single UPDATE's rate, every
//! batch holding its row locks at most 50 ms (the single UPDATE holds them throughout).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::{self, AssertSqlSafe, ConnectOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let rows: i64 = if smoke { 10_000 } else { 1_000_000 };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin: PgConnectOptions = url.parse()?;
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
    println!(
        "{rows} rows per table; PostgreSQL {}",
        sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&pool).await?
    );

    // The naive way: one statement, every row locked until it commits.
    let started = Instant::now();
    sqlx::query("UPDATE items_single SET b = a + 1").execute(&pool).await?;
    let single = started.elapsed();

    // zdm: scheduled by a migration, run in batches of ~40 ms.
    let held = Arc::new(Mutex::new(Vec::new()));
    let seen = held.clone();
    // `--target-ms N` overrides the batch target (default: zdm's).
    let args: Vec<String> = std::env::args().collect();
    let target =
        args.iter().position(|a| a == "--target-ms").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
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
    let started = Instant::now();
    let done = m.run_backfills(&pool).await?;
    let batched = started.elapsed();

    let wrong: i64 = sqlx::query_scalar("SELECT count(*) FROM items_batched WHERE b IS DISTINCT FROM a + 1")
        .fetch_one(&pool)
        .await?;
    assert_eq!(wrong, 0, "every row backfilled");
    let held = held.lock().unwrap().clone();
    let longest = held.iter().max().copied().unwrap_or_default();
    let mean = held.iter().sum::<Duration>() / held.len().max(1) as u32;
    let over_50 = held.iter().filter(|d| **d > Duration::from_millis(50)).count();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();

    println!();
    println!("{:<26} {:>12} {:>14} {:>18}", "", "time", "rows/s", "longest lock hold");
    println!(
        "{:<26} {:>10.0}ms {:>14.0} {:>16.0}ms",
        "single UPDATE",
        single.as_secs_f64() * 1e3,
        rate(single),
        single.as_secs_f64() * 1e3
    );
    println!(
        "{:<26} {:>10.0}ms {:>14.0} {:>16.1}ms",
        "zdm backfill (batched)",
        batched.as_secs_f64() * 1e3,
        rate(batched),
        longest.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "backfill rate = {:.0}% of the single UPDATE's; {} batches (mean {:.1} ms, {} over 50 ms); final batch size {}",
        100.0 * rate(batched) / rate(single),
        held.len(),
        mean.as_secs_f64() * 1e3,
        over_50,
        done.first().map_or(0, |d| d.batch_size)
    );

    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await?;
    Ok(())
}
