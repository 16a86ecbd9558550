//! The migration value: what zdm knows about one migration, independent of how it runs.
//!
//! Every field is `'static` and `Copy` so the macros can build these as constants in the
//! user's binary; the executor pairs each with its body (SQL text or a Rust function).

use std::fmt;

/// When a migration may run during a rolling deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Phase {
    /// Safe for the build that is still serving: run by `run_pre`, before the new code.
    PreDeploy,
    /// Destructive or cleanup work (`-- zdm:after_deploy`): run by `run_post`, once the old
    /// code is gone.
    PostDeploy,
}

impl Phase {
    /// The short name stored in the ledger.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::PreDeploy => "pre",
            Phase::PostDeploy => "post",
        }
    }

    /// Reads the ledger's short name back.
    pub fn from_ledger(s: &str) -> Option<Phase> {
        match s {
            "pre" => Some(Phase::PreDeploy),
            "post" => Some(Phase::PostDeploy),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PreDeploy => "pre-deploy",
            Phase::PostDeploy => "after_deploy",
        })
    }
}

/// One embedded migration's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// The numeric prefix of the file name, or `version = N` of a Rust-coded migration.
    pub version: i64,
    /// The file name's description part (`add_posts` of `0002_add_posts.sql`).
    pub description: &'static str,
    /// Where it came from, for messages: the file path relative to the crate, or the Rust
    /// function's path.
    pub source: &'static str,
    /// SHA-384 of the file's bytes (the same digest sqlx uses), or of a Rust migration's
    /// tokens.
    pub checksum: &'static [u8],
    pub phase: Phase,
    /// Run statement by statement outside a transaction (`-- zdm:no_transaction`).
    pub no_transaction: bool,
    /// The reasons given with `-- zdm:safety_assured`, stored in the ledger when it runs.
    pub safety_assured: &'static [&'static str],
    /// `-- zdm:lock_timeout`, in milliseconds.
    pub lock_timeout_ms: Option<u64>,
    /// `-- zdm:statement_timeout`, in milliseconds (0: none).
    pub statement_timeout_ms: Option<u64>,
}

impl Migration {
    /// A stand-in for work zdm generates itself (a deferred drop scheduled by migration
    /// `version`): no directives, so the default timeouts apply.
    pub const fn synthetic(version: i64) -> Migration {
        Migration {
            version,
            description: "",
            source: "zdm",
            checksum: &[],
            phase: Phase::PostDeploy,
            no_transaction: false,
            safety_assured: &[],
            lock_timeout_ms: None,
            statement_timeout_ms: None,
        }
    }
}
