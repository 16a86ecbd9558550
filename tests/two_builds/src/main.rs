//! Build A or build B of one app (see Cargo.toml). Commands:
//! `serve <database_url> <stop_file> <plain|recycle|healing>`: run_pre, then write a post and read
//! it back with `SELECT *` in a loop until the stop file exists, through a plain sqlx pool
//! or a zdm healing pool (with `zdm::healing::retry`); prints the counts and deregisters.
//! `pre <database_url>` / `post <database_url>`: one migration phase, then the status.
//! `fill <database_url>`: schedules and runs a 200,000-row backfill in small batches (the
//! test kills this process in the middle, then runs it again).
//! A serve mode with `+post` (`plain+post`) also calls run_post after run_pre: a build
//! redeployed as the only instance (a rollback) running its contract step.
//! `busy <database_url> <seconds>`: run_pre on a pool of 2, then both connections busy for
//! that long (the heartbeat must go on), then one write of every column this build knows.
//! `boot <database_url> <hold_ms>`: run_pre and stay registered that long (or say why not).
//! `faults <database_url>`: run_all of `migrations_faults` (transactional files, two
//! concurrent index builds, a backfill, a deferred drop, an after_deploy file); built with
//! `--features faults`, `ZDM_FAILPOINT=k` kills it at zdm's k-th boundary (tests/faults.rs).
//! `many <database_url> <hold_ms>`: run_pre of 50 migrations, print how long the boot took,
//! stay registered that long.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

#[cfg(not(feature = "b"))]
mod build {
    pub const NAME: &str = "A";

    pub fn migrator() -> zdm::Migrator {
        zdm::migrator!("migrations_a")
    }

    #[derive(sqlx::FromRow)]
    #[zdm::model(table = "posts")]
    pub struct Post {
        pub id: i64,
        pub title: String,
        pub legacy: String,
        pub summary: Option<String>,
    }

    pub fn check(post: &Post, id: i64) {
        assert!(post.id == id && post.legacy.starts_with("legacy") && post.title.starts_with('a'));
        assert!(post.summary.as_deref().is_some_and(|s| s.starts_with("sum")));
    }

    /// A writes everything it knows: the legacy column and the audit table.
    pub const WRITES: &[&str] = &[
        "INSERT INTO posts (title, legacy, summary) VALUES ('a' || $1, 'legacy' || $1, 'sum' || $1) RETURNING id",
        "INSERT INTO old_audit (note) SELECT title FROM posts WHERE id = $1",
        "UPDATE posts SET legacy = legacy || '!' WHERE id = $1",
    ];
}

#[cfg(feature = "b")]
mod build {
    pub const NAME: &str = "B";

    pub fn migrator() -> zdm::Migrator {
        zdm::migrator!("migrations_b")
    }

    #[derive(sqlx::FromRow)]
    #[zdm::ignored_columns(table = "posts", columns(legacy))]
    pub struct Post {
        pub id: i64,
        pub title: String,
        pub summary: Option<String>,
        pub body: Option<String>,
    }

    pub fn check(post: &Post, id: i64) {
        assert!(post.id == id && post.body.is_some() && post.title.starts_with('b') && post.summary.is_some());
    }

    pub const WRITES: &[&str] = &[
        "INSERT INTO posts (title, summary, body) VALUES ('b' || $1, 'sum' || $1, 'body' || $1) RETURNING id",
        "UPDATE posts SET body = body || '!' WHERE id = $1",
    ];
}

use build::Post;

fn migrator() -> zdm::Migrator {
    build::migrator()
        .app("two_builds", build::NAME)
        .heartbeat(Duration::from_millis(200))
        .instance_ttl(Duration::from_secs(3))
        .lock_wait(Duration::from_secs(30))
}

/// One statement, through `zdm::healing::retry` when healing.
async fn exec<T, F>(pool: &PgPool, healing: bool, mut f: F) -> Result<T, sqlx::Error>
where
    F: for<'c> FnMut(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
{
    if healing {
        zdm::healing::retry(pool, f).await
    } else {
        f(&mut *pool.acquire().await?).await
    }
}

/// Writes a post (as this build does) and reads it back with `SELECT *`.
async fn one_op(pool: &PgPool, healing: bool, n: i64) -> Result<(), sqlx::Error> {
    let text = n.to_string();
    let id: i64 = exec(pool, healing, |c| {
        let text = text.clone();
        Box::pin(async move { sqlx::query_scalar(build::WRITES[0]).bind(text).fetch_one(c).await })
    })
    .await?;
    for sql in &build::WRITES[1..] {
        exec(pool, healing, |c| Box::pin(async move { sqlx::query(*sql).bind(id).execute(c).await })).await?;
    }
    let post: Post = exec(pool, healing, |c| {
        Box::pin(async move { sqlx::query_as("SELECT * FROM posts WHERE id = $1").bind(id).fetch_one(c).await })
    })
    .await?;
    build::check(&post, id);
    Ok(())
}

/// `plain`: a plain sqlx pool; `recycle`: a healing pool without retries; `healing`: a
/// healing pool and `zdm::healing::retry`.
async fn serve(url: &str, stop_file: &str, mode: &str) -> Result<(), Box<dyn std::error::Error>> {
    let (mode, post) = match mode.strip_suffix("+post") {
        Some(m) => (m, true),
        None => (mode, false),
    };
    let options = PgPoolOptions::new().max_connections(4);
    let pool = if mode == "plain" { options.connect(url).await? } else { zdm::healing::connect(options, url).await? };
    let healing = mode == "healing";
    let report = migrator().run_pre(&pool).await?;
    let instance = report.instance.expect("run_pre registers");
    if post {
        let report = migrator().run_post(&pool).await?;
        eprint!("run_post of build {}:\n{report}", build::NAME);
    }
    println!("ready {}", std::process::id());
    let (mut ops, mut errors, mut last_second) = (0u64, 0u64, Vec::new());
    while !std::path::Path::new(stop_file).exists() {
        let result = one_op(&pool, healing, ops as i64).await;
        ops += 1;
        last_second.push((Instant::now(), result.is_err()));
        if let Err(e) = result {
            errors += 1;
            if errors <= 3 {
                eprintln!("build {} error: {e}", build::NAME);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    instance.stop().await?;
    // Whether the errors stopped: the requests of the last second before the stop.
    last_second.retain(|(at, _)| at.elapsed() < Duration::from_secs(1));
    let tail_errors = last_second.iter().filter(|(_, failed)| *failed).count();
    println!("ops={ops} errors={errors} tail_ops={} tail_errors={tail_errors}", last_second.len());
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = &args[2];
    if args[1] == "serve" {
        return serve(url, &args[3], args.get(4).map_or("plain", String::as_str)).await;
    }
    let pool = PgPool::connect(url).await?;
    if args[1] == "fill" {
        let m = zdm::migrator!("migrations_fill")
            .without_registration()
            .backfill_in_background(false)
            .backfill_target(Duration::from_millis(5));
        m.run_pre(&pool).await?;
        let done = m.run_backfills(&pool).await?;
        println!("filled {:?}", done.iter().map(|b| b.rows_done).collect::<Vec<_>>());
        return Ok(());
    }
    match args[1].as_str() {
        "busy" => {
            let seconds: f64 = args[3].parse()?;
            let pool = PgPoolOptions::new().max_connections(2).connect(url).await?;
            let report = migrator().run_pre(&pool).await?;
            println!("ready {}", std::process::id());
            let sleep = |pool: PgPool| async move {
                sqlx::query("SELECT pg_sleep($1)").bind(seconds).execute(&pool).await.map(drop)
            };
            let (x, y) = tokio::join!(sleep(pool.clone()), sleep(pool.clone()));
            x?;
            y?;
            match sqlx::query(build::WRITES[0]).bind("busy").fetch_one(&pool).await {
                Ok(_) => println!("write ok"),
                Err(e) => println!("write error: {e}"),
            }
            if let Some(i) = report.instance {
                i.stop().await?;
            }
            return Ok(());
        }
        "faults" => {
            let m = zdm::migrator!("migrations_faults")
                .app("faults", "1")
                .lease_ttl(Duration::from_secs(1))
                .lock_wait(Duration::from_secs(60))
                .heartbeat(Duration::from_millis(200))
                .instance_ttl(Duration::from_secs(2))
                .backfill_target(Duration::from_millis(25));
            let report = m.run_all(&pool).await?;
            print!("{report}");
            if let Some(i) = report.instance {
                i.stop().await?;
            }
            return Ok(());
        }
        "many" => {
            let hold: u64 = args[3].parse()?;
            let started = Instant::now();
            let m = zdm::migrator!("migrations_many").app("many", "1").lock_wait(Duration::from_secs(60));
            let report = m.run_pre(&pool).await?;
            println!("booted {} ms applied {}", started.elapsed().as_millis(), report.applied.len());
            tokio::time::sleep(Duration::from_millis(hold)).await;
            if let Some(i) = report.instance {
                i.stop().await?;
            }
            return Ok(());
        }
        "boot" => {
            let hold: u64 = args[3].parse()?;
            match migrator().run_pre(&pool).await {
                Ok(report) => {
                    println!("booted");
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    // The server's clock just before this build stops being live.
                    let now: f64 = sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
                        .fetch_one(&pool)
                        .await?;
                    println!("stopping {now}");
                    if let Some(i) = report.instance {
                        i.stop().await?;
                    }
                }
                Err(e) => println!("refused: {e}"),
            }
            return Ok(());
        }
        "pre" => {
            let report = migrator().run_pre(&pool).await?;
            print!("{report}");
            if let Some(i) = report.instance {
                i.stop().await?;
            }
        }
        "post" => print!("{}", migrator().run_post(&pool).await?),
        other => return Err(format!("unknown command {other}").into()),
    }
    print!("{}", migrator().status(&pool).await?);
    Ok(())
}
