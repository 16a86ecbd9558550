//! A finding: one rule's verdict on one statement, and how it reads in a compile error.

use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Severity {
    /// Compile error (unless `safety_assured`).
    Error,
    /// Reported, never blocks.
    Warning,
    /// For tools; the macros stay silent.
    Info,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding {
    /// The rule id, which is also its file name under `lint/rules/`.
    pub rule: &'static str,
    pub severity: Severity,
    pub version: i64,
    pub file: String,
    /// 1-based line and column of the statement (or the part of it at fault).
    pub line: usize,
    pub column: usize,
    /// Byte range of the statement in the file.
    pub span: Range<usize>,
    /// What this statement does wrong, specifically.
    pub message: String,
    /// Why that is unsafe: the lock taken or the old code broken.
    pub why: &'static str,
    /// The safe way.
    pub recipe: &'static str,
    /// The `safety_assured` reason that silences it, if any.
    pub assured: Option<String>,
}

impl Finding {
    /// Blocks compilation: an error nobody vouched for.
    pub fn blocks(&self) -> bool {
        self.severity == Severity::Error && self.assured.is_none()
    }

    /// The guide's page of the rule: what it catches, why, an example and what to write
    /// instead (generated from the rule's own documentation).
    pub fn url(&self) -> String {
        super::rules::page(self.rule)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "note",
        };
        writeln!(f, "{}:{}:{}: {level}[{}]: {}", self.file, self.line, self.column, self.rule, self.message)?;
        writeln!(f, "  why: {}", self.why)?;
        write!(f, "  fix: {}", self.recipe)?;
        if self.severity == Severity::Error {
            match &self.assured {
                Some(reason) => write!(f, "\n  accepted: safety_assured \"{reason}\"")?,
                None => write!(
                    f,
                    "\n  if you are sure, put `-- zdm:safety_assured <reason>` on the line before the statement"
                )?,
            }
        }
        write!(f, "\n  see: {}", self.url())
    }
}
