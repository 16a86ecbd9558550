//! zdm in two releases of a tiny blog, on an embedded SQLite file (or on PostgreSQL when
//! `DATABASE_URL` is set; it then works in a schema of its own, `zdm_quickstart`).
//!
//! Release 1 creates `posts (id, title, body, legacy_slug)`. Release 2 adds
//! `published_at` before its deploy (release 1 keeps serving meanwhile) and drops
//! `legacy_slug` after it, once release 1 is gone.
//!
//!     cargo run --example quickstart

use std::error::Error;

use zdm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use zdm::sqlx::sqlite::SqliteConnectOptions;
use zdm::sqlx::{PgPool, SqlitePool};

// Release 2 (this build) embeds all three migrations as the default set, judged as SQLite:
// the embedded default database. A set runs only on the database it was linted for.
zdm::migrations!("examples/quickstart/migrations", dialect = "sqlite");

/// Release 2's model: it no longer uses `legacy_slug` (a field for it would not compile),
/// and its column list keeps old and new builds safe from `SELECT *` (see README).
#[derive(sqlx::FromRow, Debug)]
#[zdm::ignored_columns(table = "posts", columns(legacy_slug))]
#[allow(dead_code)]
struct Post {
    id: i64,
    title: String,
    published_at: Option<String>,
}

enum Db {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$p` bound to the concrete pool.
macro_rules! on {
    ($db:expr, $p:ident => $body:expr) => {
        match $db {
            Db::Pg($p) => $body,
            Db::Sqlite($p) => $body,
        }
    };
}

/// Runs `$call` (`run_pre`, `run_post`, `status`) of release 2 on the pool's database: the
/// default set on SQLite; on PostgreSQL the same folder, judged by PostgreSQL's rules.
macro_rules! release2 {
    ($db:expr, $call:ident) => {
        match $db {
            Db::Pg(p) => zdm::migrator!("examples/quickstart/migrations").$call(p).await,
            Db::Sqlite(p) => zdm::$call(p).await,
        }
    };
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let db = connect().await?;

    // Release 1 embeds only the first migration: an older build of the same folder.
    let release1_pg = zdm::migrator!("examples/quickstart/migrations").up_to(1).app("blog", "1.0.0");
    let release1_sqlite =
        zdm::migrator!("examples/quickstart/migrations", dialect = "sqlite").up_to(1).app("blog", "1.0.0");

    println!("== release 1 boots: run_pre");
    let report = match &db {
        Db::Pg(p) => release1_pg.run_pre(p).await,
        Db::Sqlite(p) => release1_sqlite.run_pre(p).await,
    }?;
    print!("{report}");
    release1_serves(&db, 1).await?;
    println!("{}", release2!(&db, status)?);

    println!("== release 2 deploys: run_pre adds published_at; legacy_slug stays for release 1");
    let report = release2!(&db, run_pre)?;
    print!("{report}");
    if let Some(instance) = &report.instance {
        println!("registered in zdm_instances as {}", instance.id());
    }
    release1_serves(&db, 2).await?;
    println!("{}", release2!(&db, status)?);

    println!("== every instance runs release 2: run_post drops legacy_slug");
    let report = release2!(&db, run_post)?;
    print!("{report}");
    // Post::SELECT is `SELECT "id", "title", "published_at" FROM "posts"`: explicit columns.
    let rows: Vec<Post> = on!(&db, p => zdm::sqlx::query_as(Post::SELECT).fetch_all(p).await)?;
    println!("release 2 reads {} posts with `{}`: {rows:?}", rows.len(), Post::SELECT);
    println!("{}", release2!(&db, status)?);
    Ok(())
}

/// What release 1's code does: write a post and read them back, naming its columns.
async fn release1_serves(db: &Db, id: i64) -> Result<(), Box<dyn Error>> {
    let insert = "INSERT INTO posts (id, title, body, legacy_slug) VALUES ($1, $2, $3, $4)";
    on!(db, p => zdm::sqlx::query(insert).bind(id).bind(format!("post {id}")).bind("hello").bind(format!("post-{id}")).execute(p).await.map(drop))?;
    let select = "SELECT id, title, legacy_slug FROM posts ORDER BY id";
    let rows: Vec<(i64, String, Option<String>)> = on!(db, p => zdm::sqlx::query_as(select).fetch_all(p).await)?;
    println!("release 1 wrote and read {} posts: ok", rows.len());
    Ok(())
}

async fn connect() -> Result<Db, Box<dyn Error>> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        println!("zdm quickstart on PostgreSQL (schema zdm_quickstart, recreated)");
        let admin = PgPool::connect(&url).await?;
        zdm::sqlx::raw_sql("DROP SCHEMA IF EXISTS zdm_quickstart CASCADE; CREATE SCHEMA zdm_quickstart")
            .execute(&admin)
            .await?;
        let options: PgConnectOptions = url.parse::<PgConnectOptions>()?.options([("search_path", "zdm_quickstart")]);
        return Ok(Db::Pg(PgPoolOptions::new().connect_with(options).await?));
    }
    let path = std::env::temp_dir().join("zdm-quickstart.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    println!("zdm quickstart on SQLite ({}, recreated); set DATABASE_URL for PostgreSQL", path.display());
    let options = SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    Ok(Db::Sqlite(SqlitePool::connect_with(options).await?))
}
