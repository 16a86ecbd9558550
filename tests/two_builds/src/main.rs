//! Build A or build B of one app (see Cargo.toml). Commands:
//! `serve <database_url> <stop_file>`: run_pre, then read and write in a loop until the
//! stop file exists; prints `ops=N errors=M` and deregisters.
//! `pre <database_url>` / `post <database_url>`: one migration phase, then the status.

use std::time::Duration;

use sqlx::PgPool;

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
    }

    pub fn check(post: &Post, id: i64) {
        assert!(post.id == id && post.legacy.starts_with("legacy") && post.title.starts_with('a'));
    }

    /// A writes everything it knows: the legacy column and the audit table.
    pub async fn write(pool: &zdm::sqlx::PgPool, n: u64) -> Result<i64, zdm::sqlx::Error> {
        let sql = format!("INSERT INTO posts (title, legacy) VALUES ($1, $2) RETURNING {}", Post::COLUMN_LIST);
        let post: Post = zdm::sqlx::query_as(zdm::sqlx::AssertSqlSafe(sql)).bind(format!("a{n}")).bind(format!("legacy{n}")).fetch_one(pool).await?;
        zdm::sqlx::query("INSERT INTO old_audit (note) VALUES ($1)").bind(&post.title).execute(pool).await?;
        zdm::sqlx::query("UPDATE posts SET legacy = legacy || '!' WHERE id = $1").bind(post.id).execute(pool).await?;
        Ok(post.id)
    }
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
        pub body: Option<String>,
    }

    pub fn check(post: &Post, id: i64) {
        assert!(post.id == id && post.body.is_some() && post.title.starts_with('b'));
    }

    pub async fn write(pool: &zdm::sqlx::PgPool, n: u64) -> Result<i64, zdm::sqlx::Error> {
        let sql = format!("INSERT INTO posts (title, body) VALUES ($1, $2) RETURNING {}", Post::COLUMN_LIST);
        let post: Post = zdm::sqlx::query_as(zdm::sqlx::AssertSqlSafe(sql)).bind(format!("b{n}")).bind(format!("body{n}")).fetch_one(pool).await?;
        Ok(post.id)
    }
}

use build::Post;

fn migrator() -> zdm::Migrator {
    build::migrator()
        .app("two_builds", build::NAME)
        .heartbeat(Duration::from_millis(200))
        .instance_ttl(Duration::from_secs(3))
        .lock_wait(Duration::from_secs(30))
}

async fn serve(pool: &PgPool, stop_file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let report = migrator().run_pre(pool).await?;
    let instance = report.instance.expect("run_pre registers");
    println!("ready {}", std::process::id());
    let (mut ops, mut errors) = (0u64, 0u64);
    let select = format!("SELECT {} FROM posts WHERE id = $1", Post::COLUMN_LIST);
    while !std::path::Path::new(stop_file).exists() {
        let result = async {
            let id = build::write(pool, ops).await?;
            let post: Post = sqlx::query_as(sqlx::AssertSqlSafe(select.as_str())).bind(id).fetch_one(pool).await?;
            build::check(&post, id);
            Ok::<_, sqlx::Error>(())
        }
        .await;
        ops += 1;
        if let Err(e) = result {
            errors += 1;
            eprintln!("build {} error: {e}", build::NAME);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    instance.stop().await?;
    println!("ops={ops} errors={errors}");
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
    let pool = PgPool::connect(&args[2]).await?;
    match args[1].as_str() {
        "serve" => serve(&pool, &args[3]).await?,
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
