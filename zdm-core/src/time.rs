//! Times and durations as zdm hands them out: every time is a `chrono::DateTime<Utc>` (the
//! ledger, the registry and the drops store `timestamptz`, or UTC on SQLite), every
//! duration a `std::time::Duration`. Reports print times the way operators read them in a
//! table (`2026-01-01 12:00:00`, whole seconds, the header or the text says UTC); JSON
//! carries times as RFC 3339 strings and durations as whole numbers under a name that
//! says the unit (`duration_ms`, `age_s`), so a script never guesses.

use std::fmt;
use std::time::Duration;

pub use chrono;
pub use chrono::{DateTime, Utc};

/// `t` as status tables and messages show it: `2026-01-01 12:00:00` (UTC, whole seconds).
pub fn shown(t: &DateTime<Utc>) -> impl fmt::Display + '_ {
    t.format("%Y-%m-%d %H:%M:%S")
}

/// A duration from seconds as a database computed them (an age: never negative; a clock
/// step backwards or a NaN reads as zero).
pub fn from_secs_f64(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or_default()
}

/// A duration from whole milliseconds as the ledger stores them (negative reads as zero).
pub fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// Whole milliseconds, as the ledger stores a duration.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `serialize_with` helpers: durations as whole numbers in the unit their JSON name says.
#[cfg(feature = "serde")]
pub mod serde {
    use std::time::Duration;

    /// Whole seconds (`age_s`, `heartbeat_age_s`).
    pub fn secs<S: ::serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    /// Whole milliseconds (`duration_ms`, `max_batch_ms`).
    pub fn millis<S: ::serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_show_as_before_and_ages_never_go_negative() {
        let t = DateTime::from_timestamp(1_767_225_600, 123_456_789).unwrap();
        assert_eq!(shown(&t).to_string(), "2026-01-01 00:00:00");
        assert_eq!(from_secs_f64(-3.0), Duration::ZERO);
        assert_eq!(from_secs_f64(f64::NAN), Duration::ZERO);
        assert_eq!(from_secs_f64(1.5), Duration::from_millis(1500));
        assert_eq!(from_millis(-1), Duration::ZERO);
        assert_eq!(millis(Duration::from_micros(2_999)), 2);
    }
}
