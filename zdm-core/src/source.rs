//! Turning the files of a migrations folder into migrations.
//!
//! The folder is read by the caller (the macro crate at compile time); this module only
//! judges names and contents, so every rule about them is tested here without I/O. The
//! layout is sqlx's: `<version>_<description>.sql`, or `.up.sql` / `.down.sql` pairs of
//! which the `.down.sql` half is not run by zdm.

use std::fmt;

use crate::checksum::checksum;
use crate::directive::{self, Directives};

/// One file of the folder as the caller read it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path shown in messages (relative to the crate, e.g. `migrations/0001_init.sql`).
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A migration file that passed every check.
#[derive(Debug, Clone)]
pub struct ParsedMigration {
    pub version: i64,
    pub description: String,
    pub path: String,
    pub sql: String,
    pub checksum: Vec<u8>,
    pub directives: Directives,
}

/// A problem with one file, named by path and (where it has one) line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path, line, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// What a file name says, when it names a migration at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    /// Runs: `<version>_<description>.sql` or `.up.sql`.
    Up { version: i64, description: String },
    /// Kept for sqlx's `migrate revert`; zdm never runs it.
    Down { version: i64 },
    /// Not a migration (no `.sql` suffix, or a hidden file): left alone.
    Other,
}

/// Reads a file name (the last path component).
pub fn parse_file_name(name: &str) -> Result<FileName, String> {
    if name.starts_with('.') || !name.ends_with(".sql") {
        return Ok(FileName::Other);
    }
    let (stem, down) = if let Some(s) = name.strip_suffix(".down.sql") {
        (s, true)
    } else if let Some(s) = name.strip_suffix(".up.sql") {
        (s, false)
    } else {
        (name.strip_suffix(".sql").unwrap_or(name), false)
    };
    let malformed = || {
        format!("malformed migration file name `{name}`: expected `<version>_<description>.sql` (e.g. `20240101120000_add_posts.sql`)")
    };
    let (version, description) = stem.split_once('_').ok_or_else(malformed)?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || description.is_empty()
    {
        return Err(malformed());
    }
    let version: i64 = version.parse().map_err(|_| {
        format!("version `{version}` of `{name}` does not fit in a signed 64-bit integer")
    })?;
    Ok(if down {
        FileName::Down { version }
    } else {
        FileName::Up {
            version,
            description: description.to_string(),
        }
    })
}

/// Checks and parses every file, reporting all problems at once. The result is sorted by
/// version.
pub fn parse_files(files: Vec<SourceFile>) -> Result<Vec<ParsedMigration>, Vec<SourceError>> {
    let mut errors = Vec::new();
    let mut out: Vec<ParsedMigration> = Vec::new();
    for file in files {
        let name = file
            .path
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&file.path)
            .to_string();
        let err = |line, message| SourceError {
            path: file.path.clone(),
            line,
            message,
        };
        let (version, description) = match parse_file_name(&name) {
            Ok(FileName::Up {
                version,
                description,
            }) => (version, description),
            Ok(FileName::Down { .. } | FileName::Other) => continue,
            Err(message) => {
                errors.push(err(None, message));
                continue;
            }
        };
        let sql = match String::from_utf8(file.bytes) {
            Ok(sql) => sql,
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let line = e.as_bytes()[..offset]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1;
                errors.push(err(
                    Some(line),
                    format!("not valid UTF-8 (byte {offset}): save the file as UTF-8"),
                ));
                continue;
            }
        };
        let directives = match directive::parse(&sql) {
            Ok(d) => d,
            Err(errs) => {
                errors.extend(errs.into_iter().map(|e| err(Some(e.line), e.message)));
                continue;
            }
        };
        out.push(ParsedMigration {
            version,
            description,
            checksum: checksum(sql.as_bytes()),
            path: file.path,
            sql,
            directives,
        });
    }
    out.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.path.cmp(&b.path)));
    for pair in out.windows(2) {
        if pair[0].version == pair[1].version {
            errors.push(SourceError {
                path: pair[1].path.clone(),
                line: None,
                message: format!(
                    "duplicate migration version {}: also used by `{}`; give one of them a new version",
                    pair[1].version, pair[0].path
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sql: &str) -> SourceFile {
        SourceFile {
            path: path.to_string(),
            bytes: sql.as_bytes().to_vec(),
        }
    }

    #[test]
    fn sqlx_names_are_read() {
        assert_eq!(
            parse_file_name("20240101_add_posts.sql").unwrap(),
            FileName::Up {
                version: 20240101,
                description: "add_posts".into()
            }
        );
        assert_eq!(
            parse_file_name("2_x.up.sql").unwrap(),
            FileName::Up {
                version: 2,
                description: "x".into()
            }
        );
        assert_eq!(
            parse_file_name("2_x.down.sql").unwrap(),
            FileName::Down { version: 2 }
        );
        assert_eq!(parse_file_name("README.md").unwrap(), FileName::Other);
        assert_eq!(
            parse_file_name(".0001_hidden.sql").unwrap(),
            FileName::Other
        );
    }

    #[test]
    fn malformed_names_are_errors() {
        for bad in [
            "add_posts.sql",
            "0001.sql",
            "0001_.sql",
            "v1_x.sql",
            "99999999999999999999_x.sql",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_are_sorted_and_down_files_skipped() {
        let set = parse_files(vec![
            file("m/0002_b.sql", "SELECT 2;"),
            file("m/0001_a.up.sql", "SELECT 1;"),
            file("m/0001_a.down.sql", "SELECT 0;"),
        ])
        .unwrap();
        assert_eq!(set.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn duplicate_versions_name_both_files() {
        let errs =
            parse_files(vec![file("m/0001_a.sql", ""), file("m/0001_b.sql", "")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .to_string()
            .contains("duplicate migration version 1"));
        assert!(errs[0].to_string().contains("m/0001_a.sql"));
    }

    #[test]
    fn non_utf8_names_the_line() {
        let errs = parse_files(vec![SourceFile {
            path: "m/0001_a.sql".into(),
            bytes: b"SELECT 1;\nSELECT '\xff';".to_vec(),
        }])
        .unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("UTF-8"));
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let errs = parse_files(vec![
            file("m/bad.sql", ""),
            file("m/0002_x.sql", "-- zdm:nope\nSELECT 1;"),
        ])
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].to_string(), "m/0002_x.sql:1: unknown directive `zdm:nope`; known directives: after_deploy, no_transaction, safety_assured <reason>");
    }
}
