//! A runnable migration: zdm-core's metadata plus its body, SQL text or a Rust function.

use std::future::Future;
use std::pin::Pin;

use sqlx::{PgConnection, SqliteConnection};
pub use zdm_core::Migration;

/// The error a Rust-coded migration returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// The future a Rust-coded migration returns.
pub type BoxFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// A Rust-coded migration function, for the database it was written for.
#[derive(Clone, Copy)]
pub enum RustRun {
    Postgres(for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), BoxError>>),
    Sqlite(for<'c> fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(), BoxError>>),
}

impl From<for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), BoxError>>> for RustRun {
    fn from(f: for<'c> fn(&'c mut PgConnection) -> BoxFuture<'c, Result<(), BoxError>>) -> Self {
        RustRun::Postgres(f)
    }
}

impl From<for<'c> fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(), BoxError>>> for RustRun {
    fn from(f: for<'c> fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(), BoxError>>) -> Self {
        RustRun::Sqlite(f)
    }
}

impl RustRun {
    pub(crate) fn backend_name(self) -> &'static str {
        match self {
            RustRun::Postgres(_) => "PostgreSQL",
            RustRun::Sqlite(_) => "SQLite",
        }
    }
}

/// A migration written in Rust with `#[zdm::migration(version = N)]`.
#[derive(Clone, Copy)]
pub struct RustMigration {
    pub meta: Migration,
    pub run: RustRun,
}

/// What a migration executes.
#[derive(Clone, Copy)]
pub enum Body {
    Sql(&'static str),
    Rust(RustRun),
}

/// One migration of a [`Migrator`](crate::Migrator).
#[derive(Clone, Copy)]
pub struct Step {
    pub meta: Migration,
    pub body: Body,
}
