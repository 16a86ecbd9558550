//! Turning the files of a migrations folder into migrations.
//!
//! The folder is read by the caller (`read_dir` with the `fs` feature); this module
//! otherwise only judges names and contents, so every rule about them is tested here
//! without I/O. Two layouts are understood:
//! * sqlx's: `<version>_<description>.sql`, or `.up.sql` / `.down.sql` pairs of which the
//!   `.down.sql` half is not run by zdm;
//! * diesel's: a folder `<version>_<name>/` with `up.sql`, `down.sql` and an optional
//!   `metadata.toml`, where `run_in_transaction = false` means `no_transaction`. Diesel's
//!   versions may contain dashes (`2019-02-26-002946`); they are read without them.

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
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) || description.is_empty() {
        return Err(malformed());
    }
    let version: i64 = version
        .parse()
        .map_err(|_| format!("version `{version}` of `{name}` does not fit in a signed 64-bit integer"))?;
    Ok(if down { FileName::Down { version } } else { FileName::Up { version, description: description.to_string() } })
}

/// The files of diesel's layout inside a migration folder.
const DIESEL_FILES: [&str; 3] = ["up.sql", "down.sql", "metadata.toml"];

/// Reads a diesel folder name, `<version>_<name>` with dashes allowed in the version.
pub fn parse_dir_name(dir: &str) -> Result<(i64, String), String> {
    let malformed = || {
        format!(
            "malformed migration folder name `{dir}`: expected `<version>_<name>` (e.g. `2024-01-01-120000_add_posts`)"
        )
    };
    let (version, name) = dir.split_once('_').ok_or_else(malformed)?;
    let digits: String = version.chars().filter(|c| *c != '-').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return Err(malformed());
    }
    let version = digits
        .parse()
        .map_err(|_| format!("version `{version}` of `{dir}` does not fit in a signed 64-bit integer"))?;
    Ok((version, name.to_string()))
}

/// `(folder, file)` when `path` is a file of a diesel migration folder.
fn diesel_parts(path: &str) -> Option<(&str, &str)> {
    let mut parts = path.rsplit(['/', '\\']);
    let file = parts.next()?;
    let dir = parts.next()?;
    (DIESEL_FILES.contains(&file) && parts.next().is_some()).then_some((dir, file))
}

/// Checks and parses every file, reporting all problems at once. The result is sorted by
/// version. Paths are as shown to the user, starting with the folder as written
/// (`migrations/0001_init.sql`, `migrations/2019-01-01-000000_init/up.sql`).
pub fn parse_files(files: Vec<SourceFile>) -> Result<Vec<ParsedMigration>, Vec<SourceError>> {
    let mut errors = Vec::new();
    let mut out: Vec<ParsedMigration> = Vec::new();
    // diesel's metadata.toml: `run_in_transaction = false`.
    let no_tx_dirs: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let (dir, name) = diesel_parts(&f.path).filter(|(_, name)| *name == "metadata.toml")?;
            let text = std::str::from_utf8(&f.bytes).ok()?;
            let off =
                text.lines().any(|l| l.split('#').next().unwrap_or("").replace(' ', "") == "run_in_transaction=false");
            (name == "metadata.toml" && off).then(|| dir.to_string())
        })
        .collect();
    // Diesel only reads folders: beside them, loose files (seed data, helpers) are not migrations.
    let diesel_layout = files.iter().any(|f| diesel_parts(&f.path).is_some());
    for file in files {
        if diesel_layout && diesel_parts(&file.path).is_none() {
            continue;
        }
        let name = file.path.rsplit(['/', '\\']).next().unwrap_or(&file.path).to_string();
        let err = |line, message| SourceError { path: file.path.clone(), line, message };
        let diesel = diesel_parts(&file.path).map(|(dir, f)| (dir.to_string(), f.to_string()));
        let parsed_name = match &diesel {
            Some((dir, f)) if f == "up.sql" => {
                parse_dir_name(dir).map(|(version, description)| FileName::Up { version, description })
            }
            Some(_) => Ok(FileName::Other),
            None => parse_file_name(&name),
        };
        let (version, description) = match parsed_name {
            Ok(FileName::Up { version, description }) => (version, description),
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
                let line = e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
                errors.push(err(Some(line), format!("not valid UTF-8 (byte {offset}): save the file as UTF-8")));
                continue;
            }
        };
        let directives = match directive::parse(&sql) {
            Ok(mut d) => {
                d.no_transaction |= diesel.as_ref().is_some_and(|(dir, _)| no_tx_dirs.contains(dir));
                // A file of CONCURRENTLY statements only cannot run in a transaction at all.
                d.no_transaction |= crate::exec::only_no_transaction_statements(&sql);
                d
            }
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

/// Reads the migrations folder `abs` (shown to users as `shown`): its `.sql` files, and the
/// `up.sql`, `down.sql` and `metadata.toml` of each sub-folder (diesel's layout).
#[cfg(feature = "fs")]
pub fn read_dir(abs: &std::path::Path, shown: &str) -> Result<Vec<SourceFile>, String> {
    let shown = shown.trim_end_matches('/');
    let list = |dir: &std::path::Path, shown_dir: &str| -> Result<Vec<(std::path::PathBuf, String)>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "cannot read the migrations folder `{shown_dir}` ({}): {e}; the path is relative to the crate's Cargo.toml",
                dir.display()
            )
        })?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list `{shown_dir}`: {e}"))?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| format!("`{shown_dir}/{}`: file name is not UTF-8", name.to_string_lossy()))?;
            out.push((entry.path(), format!("{shown_dir}/{name}")));
        }
        Ok(out)
    };
    let mut files = Vec::new();
    for (path, shown_path) in list(abs, shown)? {
        if path.is_dir() {
            for (inner, shown_inner) in list(&path, &shown_path)? {
                let file = inner.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if inner.is_file() && DIESEL_FILES.contains(&file) {
                    let bytes = std::fs::read(&inner).map_err(|e| format!("cannot read `{shown_inner}`: {e}"))?;
                    files.push(SourceFile { path: shown_inner, bytes });
                }
            }
        } else if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{shown_path}`: {e}"))?;
            files.push(SourceFile { path: shown_path, bytes });
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, sql: &str) -> SourceFile {
        SourceFile { path: path.to_string(), bytes: sql.as_bytes().to_vec() }
    }

    #[test]
    fn sqlx_names_are_read() {
        assert_eq!(
            parse_file_name("20240101_add_posts.sql").unwrap(),
            FileName::Up { version: 20240101, description: "add_posts".into() }
        );
        assert_eq!(parse_file_name("2_x.up.sql").unwrap(), FileName::Up { version: 2, description: "x".into() });
        assert_eq!(parse_file_name("2_x.down.sql").unwrap(), FileName::Down { version: 2 });
        assert_eq!(parse_file_name("README.md").unwrap(), FileName::Other);
        assert_eq!(parse_file_name(".0001_hidden.sql").unwrap(), FileName::Other);
    }

    #[test]
    fn malformed_names_are_errors() {
        for bad in ["add_posts.sql", "0001.sql", "0001_.sql", "v1_x.sql", "99999999999999999999_x.sql"] {
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
        let errs = parse_files(vec![file("m/0001_a.sql", ""), file("m/0001_b.sql", "")]).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("duplicate migration version 1"));
        assert!(errs[0].to_string().contains("m/0001_a.sql"));
    }

    #[test]
    fn non_utf8_names_the_line() {
        let errs =
            parse_files(vec![SourceFile { path: "m/0001_a.sql".into(), bytes: b"SELECT 1;\nSELECT '\xff';".to_vec() }])
                .unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("UTF-8"));
    }

    #[test]
    fn diesel_folders_are_read() {
        let set = parse_files(vec![
            file("m/2019-02-26-002946_create_user/up.sql", "CREATE TABLE u (id int);"),
            file("m/2019-02-26-002946_create_user/down.sql", "DROP TABLE u;"),
            file("m/2019-03-01-000000_index/up.sql", "CREATE INDEX CONCURRENTLY i ON u (id);"),
            file("m/2019-03-01-000000_index/metadata.toml", "run_in_transaction = false\n"),
            file("m/00000000000000_diesel_initial_setup/up.sql", "SELECT 1;"),
        ])
        .unwrap();
        assert_eq!(set.iter().map(|m| m.version).collect::<Vec<_>>(), [0, 20190226002946, 20190301000000]);
        assert_eq!(set[1].description, "create_user");
        assert!(!set[1].directives.no_transaction && set[2].directives.no_transaction);
        assert_eq!(set[2].path, "m/2019-03-01-000000_index/up.sql");
    }

    #[test]
    fn bad_diesel_folder_names_are_errors() {
        let errs = parse_files(vec![file("m/create_user/up.sql", "")]).unwrap_err();
        assert!(errs[0].message.contains("malformed migration folder name `create_user`"), "{}", errs[0]);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let errs =
            parse_files(vec![file("m/bad.sql", ""), file("m/0002_x.sql", "-- zdm:nope\nSELECT 1;")]).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[1].to_string(), "m/0002_x.sql:1: unknown directive `zdm:nope`; known directives: after_deploy, no_transaction, lock_timeout <duration>, statement_timeout <duration>, safety_assured <reason>");
    }
}
