// Every problem of the signature is reported at once, each at its own tokens, and
// nothing else: the function is left out, so rustc adds no error about its `.await`.
#[zdm::migration(description = "seed")]
fn seed(conn: &mut zdm::sqlx::PgConnection, extra: i32) -> Result<(), zdm::sqlx::Error> {
    zdm::sqlx::query("SELECT 1").execute(&mut *conn).await?;
    let _ = extra;
    Ok(())
}

fn main() {}
