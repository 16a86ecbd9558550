#[zdm::migration(version = 1, safety_assured = "  ")]
async fn blank_reason(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::query("DROP TABLE scratch").execute(conn).await?;
    Ok(())
}

#[zdm::migration(version = 2, safety_assured)]
async fn no_reason(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::query("DROP TABLE scratch").execute(conn).await?;
    Ok(())
}

#[zdm::migration(version = 3, safety_assured = 42)]
async fn not_a_string(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::query("DROP TABLE scratch").execute(conn).await?;
    Ok(())
}

fn main() {}
