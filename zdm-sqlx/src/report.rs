//! [`Report`]: what one run did (the migrations it applied, the drop steps it carried out,
//! this process's registration) and what an operator should know about it.

use std::fmt;
use std::time::Duration;

use zdm_core::Phase;

use crate::registry::Instance;

/// One migration a run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AppliedStep {
    pub version: i64,
    pub description: &'static str,
    pub phase: Phase,
    /// How long it took, from its first statement to the commit with its ledger row.
    #[cfg_attr(feature = "serde", serde(rename = "duration_ms", serialize_with = "zdm_core::time::serde::millis"))]
    pub duration: Duration,
}

/// What a run did: the migrations it applied and what it noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<AppliedStep>,
    /// Deferred drops carried out (or made read-only while their delay runs).
    pub dropped: Vec<String>,
    /// This process's registration (run_pre and run_all register; run_post does not).
    /// Dropping it leaves the heartbeat running; `stop()` it on shutdown.
    pub instance: Option<Instance>,
    /// Things an operator should know (newer ledger rows, late-merged migrations,
    /// after_deploy work that waits); also logged through `tracing`.
    pub notices: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() && self.dropped.is_empty() {
            writeln!(f, "nothing to apply")?;
        }
        for a in &self.applied {
            writeln!(f, "applied {} {} ({}, {} ms)", a.version, a.description, a.phase, a.duration.as_millis())?;
        }
        for d in &self.dropped {
            writeln!(f, "{d}")?;
        }
        for n in &self.notices {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
