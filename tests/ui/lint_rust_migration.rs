use zdm::sqlx::PgConnection;

#[zdm::migration(version = 7)]
async fn rename_title(conn: &mut PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::query("ALTER TABLE posts RENAME COLUMN title TO headline").execute(&mut *conn).await?;
    zdm::sqlx::raw_sql("UPDATE posts SET headline = 'x' WHERE id = 1").execute(conn).await?;
    Ok(())
}

fn main() {}
