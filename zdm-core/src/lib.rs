//! zdm-core: the pure logic of zdm, with no I/O and no sqlx.
//!
//! Everything that decides *what* happens lives here so it can be unit-tested without a
//! database or a compiler round trip: the migration model ([`migration`]), reading
//! migration file names and directives ([`source`], [`directive`]), checksums
//! ([`checksum`]), splitting SQL into statements ([`split`]) and deciding which migrations
//! a phase runs ([`plan`]), what model structs map ([`model`]) and when post-deploy work may
//! run ([`gate`]), and how times and durations are shown ([`time`]). The macro crate and
//! the sqlx executor both call into it.

pub mod backfill;
pub mod baseline;
pub mod checksum;
#[cfg(feature = "config")]
pub mod config;
pub mod dialect;
pub mod directive;
pub mod exec;
pub mod gate;
pub mod ident;
pub mod lint;
pub mod migration;
pub mod model;
pub mod old_query;
pub mod plan;
pub mod removed;
pub mod retry;
pub mod source;
pub mod split;
pub mod time;

pub use dialect::Dialect;
pub use migration::{Migration, Phase};
