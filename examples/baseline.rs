//! Baselines an existing migration history for zdm: prints the newest version applied in
//! a database and writes `zdm-baseline.txt` into the migrations folder, listing every
//! migration up to it by checksum. `zdm::migrations!` then embeds and runs them but does
//! not lint them; new migrations are linted.
//!
//!     cargo run --example baseline -- <migrations dir> [<database url>]
//!
//! Without a database URL, every migration in the folder is baselined.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: baseline <migrations dir> [<database url>]")?;
    let newest = match args.next() {
        Some(url) => {
            let pool = zdm::sqlx::PgPool::connect(&url).await?;
            let newest = zdm::baseline::newest_applied(&pool).await?;
            println!("newest applied version: {}", newest.map_or("none".to_string(), |v| v.to_string()));
            newest.ok_or("nothing is applied in that database: nothing to baseline")?
        }
        None => {
            let set = zdm::lint::read_set(std::path::Path::new(&dir))
                .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
            set.iter().map(|m| m.version).max().ok_or("the folder has no migrations")?
        }
    };
    let path = zdm::baseline::write(&dir, newest)?;
    println!("wrote {} (migrations up to {newest})", path.display());
    Ok(())
}
