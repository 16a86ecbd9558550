#[zdm::migration(version = 1, no_transaction)]
async fn index_posts(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::raw_sql("CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_user_idx ON posts (user_id)")
        .execute(&mut *conn)
        .await?;
    zdm::sqlx::query("ALTER TABLE posts VALIDATE CONSTRAINT posts_user_fk").execute(&mut *conn).await?;
    // The way that compiles.
    zdm::recipes::run_statement(conn, "CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_at_idx ON posts (at)").await?;
    Ok(())
}

fn main() {}
