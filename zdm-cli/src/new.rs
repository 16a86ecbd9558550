//! `zdm new <name>`: a migration file named in sqlx's way, `<UTC timestamp>_<name>.sql`,
//! its directive lines written for you.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::project::Project;
use crate::Outcome;

pub(crate) fn run(root: &Path, dir: Option<PathBuf>, name: &str, after_deploy: bool, no_transaction: bool) -> Outcome {
    let project = Project::load(root, dir)?;
    let slug = slug(name).ok_or_else(|| {
        format!("{name:?} is not a usable migration name: use letters, digits and underscores, e.g. add_posts_summary")
    })?;
    std::fs::create_dir_all(&project.dir).map_err(|e| format!("{}: {e}", project.dir.display()))?;
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();
    let mut version = timestamp(secs);
    // Two files in one second: the next free version, as sqlx-cli does.
    while std::fs::read_dir(&project.dir)?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{version}_")))
    {
        version += 1;
    }
    let path = project.dir.join(format!("{version}_{slug}.sql"));
    std::fs::write(&path, body(name, after_deploy, no_transaction)).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::out(format_args!("{}\n", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// clap's check of `<name>`: a bad one is a usage error (exit 2).
pub(crate) fn parse_name(name: &str) -> Result<String, String> {
    slug(name).map(|_| name.to_string()).ok_or_else(|| {
        format!("{name:?} is not a usable migration name: use letters, digits and underscores, e.g. add_posts_summary")
    })
}

/// `Add posts summary` → `add_posts_summary`; `None` when nothing usable is left.
fn slug(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if (c == '_' || c == '-' || c.is_whitespace()) && !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        } else if !(c == '_' || c == '-' || c.is_whitespace()) {
            return None;
        }
    }
    let out = out.trim_end_matches('_').to_string();
    (!out.is_empty()).then_some(out)
}

/// The file's first lines: the directives, then where the SQL goes and what to mind.
fn body(name: &str, after_deploy: bool, no_transaction: bool) -> String {
    let mut out = String::new();
    if after_deploy {
        out.push_str("-- zdm:after_deploy\n");
    }
    if no_transaction {
        out.push_str("-- zdm:no_transaction\n");
    }
    out.push_str(&format!("-- {name}\n"));
    out.push_str(if after_deploy {
        "-- Runs with `zdm post` once no live build needs what it removes.\n"
    } else {
        "-- Runs with `zdm pre` (or run_pre at boot): the build still serving must keep working.\n"
    });
    if no_transaction {
        out.push_str("-- One statement at a time, outside a transaction: make each idempotent (IF NOT EXISTS).\n");
    }
    out
}

/// `YYYYMMDDHHMMSS` of a Unix time, UTC.
fn timestamp(secs: u64) -> i64 {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = ((rem / 3600) as i64, (rem % 3600 / 60) as i64, (rem % 60) as i64);
    ((y * 100 + m) * 100 + d) * 1_000_000 + h * 10_000 + min * 100 + s
}

/// Howard Hinnant's days-to-civil: the proleptic Gregorian date of a day count.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_time() {
        assert_eq!(timestamp(0), 19700101000000);
        assert_eq!(timestamp(951_782_400), 20000229000000, "a leap day");
        assert_eq!(timestamp(1_796_000_000), 20261130005320);
    }

    #[test]
    fn names_become_file_names() {
        assert_eq!(slug("Add posts summary").as_deref(), Some("add_posts_summary"));
        assert_eq!(slug("add-index--title").as_deref(), Some("add_index_title"));
        assert_eq!(slug("drop ../etc"), None);
        assert_eq!(slug("Añadir columna").as_deref(), Some("añadir_columna"));
        assert_eq!(slug("  "), None);
    }
}
