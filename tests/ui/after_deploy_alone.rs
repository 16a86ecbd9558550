#[zdm::after_deploy]
async fn cleanup(conn: &mut zdm::sqlx::PgConnection) -> Result<(), zdm::sqlx::Error> {
    let _ = conn;
    Ok(())
}

fn main() {}
