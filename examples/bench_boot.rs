//! Boot cost with nothing to do: `zdm::run_pre` with 200 applied migrations vs.
//! `sqlx::migrate!().run()` on the same server, median of repeated runs.
//!
//!     cargo run --release --example bench_boot            # full run (200 iterations)
//!     cargo run --example bench_boot -- --smoke           # CI: 3 iterations
//!
//! Uses DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); creates and
//! drops its own databases.

use std::time::{Duration, Instant};

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::{self, AssertSqlSafe, ConnectOptions, PgPool};

async fn fresh_db(admin: &PgConnectOptions, name: &str) -> Result<PgPool, Box<dyn std::error::Error>> {
    let mut conn = admin.connect().await?;
    // Two queries: one query string with both would be an implicit transaction.
    for sql in [format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"), format!("CREATE DATABASE \"{name}\"")] {
        sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await?;
    }
    Ok(PgPoolOptions::new().max_connections(1).connect_with(admin.clone().database(name)).await?)
}

async fn drop_db(admin: &PgConnectOptions, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = admin.connect().await?;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).execute(&mut conn).await?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    // `--queries`: one boot of each kind, printing every statement sent and its time.
    let queries = std::env::args().any(|a| a == "--queries");
    let iterations = if smoke {
        3
    } else if queries {
        5
    } else {
        200
    };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin: PgConnectOptions = url.parse()?;
    let (sqlx_db, zdm_db) =
        (format!("zdm_bench_sqlx_{}", std::process::id()), format!("zdm_bench_zdm_{}", std::process::id()));

    let sqlx_pool = fresh_db(&admin, &sqlx_db).await?;
    let zdm_pool = fresh_db(&admin, &zdm_db).await?;
    let sqlx_m = sqlx::migrate!("benches/boot200");
    let zdm_m = zdm::migrator!("benches/boot200");
    sqlx_m.run(&sqlx_pool).await?;
    zdm_m.run_pre(&zdm_pool).await?;
    // The adopted case: zdm on the database sqlx migrated (it also reads _sqlx_migrations).
    let adopted = zdm_m.run_pre(&sqlx_pool).await?;
    assert!(adopted.applied.is_empty(), "sqlx's rows count as applied");

    // What registering this process costs (a worker or tool would skip it).
    let unregistered = zdm_m.clone().without_registration();
    if queries {
        tracing_subscriber::fmt().with_env_filter("sqlx::query=debug").init();
    }
    let (mut t_sqlx, mut t_zdm, mut t_adopted, mut t_unreg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut t_adopted_unreg = Vec::new();
    for _ in 0..iterations {
        // Interleaved, so drift on a shared machine hits all three alike.
        let t = Instant::now();
        sqlx_m.run(&sqlx_pool).await?;
        t_sqlx.push(t.elapsed());
        if queries {
            eprintln!("---- zdm ledger");
        }
        let t = Instant::now();
        let r = zdm_m.run_pre(&zdm_pool).await?;
        t_zdm.push(t.elapsed());
        assert!(r.applied.is_empty());
        if queries {
            eprintln!("---- adopted");
        }
        let t = Instant::now();
        zdm_m.run_pre(&sqlx_pool).await?;
        t_adopted.push(t.elapsed());
        let t = Instant::now();
        unregistered.run_pre(&zdm_pool).await?;
        t_unreg.push(t.elapsed());
        let t = Instant::now();
        unregistered.run_pre(&sqlx_pool).await?;
        t_adopted_unreg.push(t.elapsed());
    }
    let (s, z, a, u) = (median(t_sqlx), median(t_zdm), median(t_adopted), median(t_unreg));
    println!("boot with 200 applied migrations, nothing pending; median of {iterations} runs on PostgreSQL");
    println!("{:<44} {:>10}  {:>6}", "", "median", "ratio");
    println!("{:<44} {:>10.3?}  {:>6}", "sqlx::migrate!().run()", s, "1.00x");
    println!("{:<44} {:>10.3?}  {:>5.2}x", "zdm run_pre (zdm ledger)", z, z.as_secs_f64() / s.as_secs_f64());
    println!(
        "{:<44} {:>10.3?}  {:>5.2}x",
        "zdm run_pre (adopted: + _sqlx_migrations)",
        a,
        a.as_secs_f64() / s.as_secs_f64()
    );
    println!(
        "{:<44} {:>10.3?}  {:>5.2}x",
        "zdm run_pre (zdm ledger, without registration)",
        u,
        u.as_secs_f64() / s.as_secs_f64()
    );

    let au = median(t_adopted_unreg);
    println!(
        "{:<44} {:>10.3?}  {:>5.2}x",
        "zdm run_pre (adopted, without registration)",
        au,
        au.as_secs_f64() / s.as_secs_f64()
    );
    println!(
        "(registration writes this process's row to the instance registry, which plain sqlx has no \
         counterpart for; a worker or tool that does not migrate skips it)"
    );
    sqlx_pool.close().await;
    zdm_pool.close().await;
    drop_db(&admin, &sqlx_db).await?;
    drop_db(&admin, &zdm_db).await?;
    Ok(())
}
