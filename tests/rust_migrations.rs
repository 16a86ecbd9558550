//! Rust-coded migrations: their `safety_assured` reasons reach the ledger like a SQL
//! file's, and their checksum is over the tokens' own texts, so it does not move with the
//! toolchain or the formatting.

mod common;

use common::TestDb;
use zdm::sqlx::{self, PgConnection};

/// Both ways to accept a finding in a Rust migration: the attribute (covers every SQL
/// literal of the function, like the directive at the top of a file) and the directive
/// inside a literal (covers that statement). Without them this does not compile
/// (`drop-table`, `index-not-concurrent`).
#[zdm::migration(version = 2, description = "assured in rust", safety_assured = "scratch was never read by any build")]
async fn assured(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("DROP TABLE scratch").execute(&mut *conn).await?;
    sqlx::raw_sql(
        "-- zdm:safety_assured posts is empty until the release after this one\n\
         CREATE INDEX posts_title_idx ON posts (title)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[tokio::test]
async fn safety_assured_reasons_of_a_rust_migration_reach_the_ledger() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = zdm::migrator!("tests/migrations/rust_assured", rust = [assured]);
    let expected = ["scratch was never read by any build", "posts is empty until the release after this one"];
    let meta = m.migrations().find(|m| m.version == 2).unwrap();
    assert_eq!(meta.safety_assured, expected);

    m.run_all(&pool).await.unwrap();
    let reasons: Vec<String> = sqlx::query_scalar("SELECT safety_assured FROM zdm_migrations WHERE version = 2")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(reasons, expected);
    let status = m.status(&pool).await.unwrap();
    let row = status.applied().find(|r| r.version == 2).unwrap();
    assert_eq!(row.ledger.as_ref().unwrap().safety_assured, expected, "status reads them back");
}

/// Formatted on purpose the way rustfmt would never leave it: the checksum below is the
/// one of the tidy form too.
#[rustfmt::skip]
#[zdm::migration(version = 3)]
async fn   pinned ( conn : &mut PgConnection )
    -> Result<(), sqlx::Error>
{
    // A comment is not a token.
    sqlx::query("UPDATE posts SET title = 'x' WHERE id = 0")
        .execute(  &mut *conn  ).await?;   Ok(())
}

#[test]
fn the_checksum_of_a_rust_migration_is_pinned_to_its_tokens() {
    // Computed from the tokens' texts (zdm_core::checksum::canonical_tokens), not from
    // `TokenStream::to_string`, whose spacing differs between toolchains. This value holds
    // on every toolchain and for any formatting of `pinned`; it changes when a token does.
    let m = zdm::migrator!("tests/migrations/rust_assured", rust = [pinned]);
    let meta = m.migrations().find(|m| m.version == 3).unwrap();
    let hex: String = meta.checksum.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "38c6d744b8a3dc91110ca1bcf8ece26a5b71005765dfdcb6658b594220ce3022868f746486e25f04d2df4246bc0bedc9");
}
