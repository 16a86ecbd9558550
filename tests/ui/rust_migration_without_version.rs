#[zdm::migration]
async fn seed(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    let _ = conn;
    Ok(())
}

fn main() {}
