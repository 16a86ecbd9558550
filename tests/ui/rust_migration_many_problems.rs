// Every problem of the signature is reported at once, each at its own tokens.
#[zdm::migration(description = "seed")]
fn seed(conn: &mut zdm::sqlx::PgConnection, extra: i32) -> Result<(), zdm::sqlx::Error> {
    let _ = (conn, extra);
    Ok(())
}

fn main() {}
