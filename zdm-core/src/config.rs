//! `zdm.toml`: a project's settings, beside its `Cargo.toml`, read by `zdm::migrations!` /
//! `zdm::migrator!` at compile time (dialect, PostgreSQL version, rule levels, excluded
//! paths) and by the `zdm` command line (all of it).
//!
//! ```toml
//! migrations = "migrations"   # the folder (default: sqlx.toml's, else "migrations")
//! dialect = "postgres"        # or "sqlite"
//! postgres = "15"             # the server version the lint assumes
//! exclude = ["migrations/archive"]  # paths (prefixes) the lint does not judge
//! deployed = 20240101000000   # the newest migration every deployed build has run
//! lock_timeout = "500ms"      # the longest lock wait of a statement
//! statement_timeout = "60s"
//!
//! [rules]
//! rename-column = "warn"                       # deny | warn | allow
//! unbatched-backfill = { level = "allow", reason = "tables under 10k rows" }
//! ```
//!
//! A malformed file is an error naming the file, the line and the key. sqlx's
//! `sqlx.toml` (`[migrate] migrations-dir`) is honoured when `zdm.toml` names no folder.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::lint::{Finding, PgVersion, Severity};

/// The file's name.
pub const FILE_NAME: &str = "zdm.toml";

/// What a project can set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The migrations folder, relative to the project's root.
    pub migrations: Option<String>,
    /// `postgres` (default) or `sqlite`.
    pub dialect: Option<String>,
    pub postgres: Option<PgVersion>,
    /// Path prefixes the lint replays but does not judge.
    pub exclude: Vec<String>,
    /// The newest migration every deployed build has run: later ones are the release being
    /// made, and a table one of them creates is new for the rest of the release
    /// (`LintConfig::deployed`).
    pub deployed: Option<i64>,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// Where zdm's own tables live (`Migrator::schema` / `table_prefix`), for the command
    /// line to find the ledger an app with those settings writes.
    pub schema: Option<String>,
    pub table_prefix: Option<String>,
    /// Per-rule levels, by rule id.
    pub rules: BTreeMap<String, Level>,
}

/// What a project decided for one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Level {
    /// Always an error.
    Deny,
    /// Reported, never blocks.
    Warn,
    /// Accepted everywhere, for this reason (kept in the ledger like `safety_assured`).
    Allow { reason: String },
}

/// A problem with `zdm.toml` (or `sqlx.toml`): the file, the line when known, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    migrations: Option<String>,
    dialect: Option<String>,
    postgres: Option<toml::Value>,
    #[serde(default)]
    exclude: Vec<String>,
    deployed: Option<toml::Value>,
    lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    schema: Option<String>,
    table_prefix: Option<String>,
    #[serde(default)]
    rules: BTreeMap<String, RawLevel>,
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a rule's level: \"deny\", \"warn\" or { level = \"allow\", reason = \"..\" }")]
enum RawLevel {
    Plain(String),
    Full(FullLevel),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullLevel {
    level: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct RawSqlx {
    #[serde(default)]
    migrate: RawSqlxMigrate,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawSqlxMigrate {
    migrations_dir: Option<String>,
    table_name: Option<String>,
}

/// What zdm reads from sqlx's `sqlx.toml` (`[migrate]`): the folder and sqlx's ledger
/// table, so an app that moved either keeps them when it adopts zdm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlxToml {
    /// `migrations-dir`.
    pub migrations_dir: Option<String>,
    /// `table-name` (default `_sqlx_migrations`; may be schema-qualified).
    pub table_name: Option<String>,
}

impl Config {
    /// Reads `text` as the contents of `file` (named in errors); rule ids are checked
    /// against the lint's rules.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError { file: file.to_string(), line, message };
        let line_of_key = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key) || l.contains(&format!("\"{key}\"")))
                .map(|i| i + 1)
        };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            // Name the key the value belongs to: the text before `=` on that line.
            let key = line
                .and_then(|l| text.lines().nth(l - 1))
                .and_then(|l| l.split_once('='))
                .map(|(k, _)| k.trim().trim_matches('"'))
                .filter(|k| !k.is_empty() && !e.message().contains(&format!("`{k}`")));
            match key {
                Some(k) => err(line, format!("`{k}`: {}", e.message())),
                None => err(line, e.message().to_string()),
            }
        })?;
        let mut config = Config {
            migrations: raw.migrations,
            exclude: raw.exclude,
            schema: raw.schema,
            table_prefix: raw.table_prefix,
            ..Config::default()
        };
        if let Some(d) = raw.dialect {
            if d != "postgres" && d != "sqlite" {
                return Err(err(
                    line_of_key("dialect"),
                    format!("dialect {d:?} is not known: use \"postgres\" or \"sqlite\""),
                ));
            }
            config.dialect = Some(d);
        }
        if let Some(v) = raw.deployed {
            let shown = match &v {
                toml::Value::String(s) => format!("{s:?}"),
                toml::Value::Integer(i) => i.to_string(),
                other => other.type_str().to_string(),
            };
            config.deployed = Some(v.as_integer().filter(|v| *v >= 0).ok_or_else(|| {
                err(
                    line_of_key("deployed"),
                    format!(
                        "deployed = {shown} is not a migration version: write the version number of the newest migration \
                         every deployed build has run, e.g. `deployed = 20240101000000`"
                    ),
                )
            })?);
        }
        if let Some(v) = raw.postgres {
            // A float would read `14.10` as 14.1: minors are strings.
            let text = match &v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => {
                    return Err(err(
                        line_of_key("postgres"),
                        format!(
                            "postgres = {f}: write a minor version as a string (\"14.10\"; as a number it reads 14.1)"
                        ),
                    ))
                }
                other => format!("{other:?}"),
            };
            config.postgres = Some(PgVersion::parse(&text).ok_or_else(|| {
                err(
                    line_of_key("postgres"),
                    format!("postgres = {text} is not a PostgreSQL version: use e.g. 15 or \"14.2\" (a minor version as a string)"),
                )
            })?);
        }
        for (key, value) in [("lock_timeout", raw.lock_timeout), ("statement_timeout", raw.statement_timeout)] {
            let Some(value) = value else { continue };
            let parsed = crate::directive::parse_duration_ms(&value).ok_or_else(|| {
                err(
                    line_of_key(key),
                    format!("{key} = {value:?} is not a duration: use e.g. \"500ms\", \"2s\" or \"5min\""),
                )
            })?;
            let d = Some(Duration::from_millis(parsed));
            if key == "lock_timeout" {
                config.lock_timeout = d;
            } else {
                config.statement_timeout = d;
            }
        }
        for (rule, level) in raw.rules {
            if !crate::lint::rules::ids().any(|id| id == rule) {
                return Err(err(
                    line_of_key(&rule),
                    format!("[rules] names an unknown rule `{rule}`; `zdm lint --list-rules` lists them"),
                ));
            }
            let (name, reason) = match level {
                RawLevel::Plain(l) => (l, None),
                RawLevel::Full(FullLevel { level, reason }) => (level, reason),
            };
            let level = match (name.as_str(), reason) {
                ("deny", _) => Level::Deny,
                ("warn", _) => Level::Warn,
                ("allow", Some(r)) if !r.trim().is_empty() => Level::Allow { reason: r.trim().to_string() },
                ("allow", _) => {
                    return Err(err(
                        line_of_key(&rule),
                        format!(
                            "`{rule}` is allowed without a reason: write `{rule} = {{ level = \"allow\", reason = \"<why it is \
                             safe here>\" }}` (the reason is kept in the ledger)"
                        ),
                    ))
                }
                (other, _) => {
                    return Err(err(
                        line_of_key(&rule),
                        format!("`{rule} = {other:?}`: a rule's level is \"deny\", \"warn\" or \"allow\""),
                    ))
                }
            };
            config.rules.insert(rule, level);
        }
        Ok(config)
    }

    /// `sqlx.toml`'s migrations folder and ledger table (`[migrate] migrations-dir`,
    /// `table-name`); the rest of the file is sqlx's business.
    pub fn sqlx_toml(file: &str, text: &str) -> Result<SqlxToml, ConfigError> {
        #[derive(Deserialize)]
        struct Loose {
            #[serde(default)]
            migrate: Option<toml::Value>,
        }
        // Only the one key is read; the rest of sqlx.toml is sqlx's business.
        let loose: Loose = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
            message: e.message().to_string(),
        })?;
        let Some(migrate) = loose.migrate else { return Ok(SqlxToml::default()) };
        let raw: RawSqlx = toml::Value::Table([("migrate".to_string(), migrate)].into_iter().collect())
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError {
                file: file.to_string(),
                line: None,
                message: e.message().to_string(),
            })?;
        Ok(SqlxToml { migrations_dir: raw.migrate.migrations_dir, table_name: raw.migrate.table_name })
    }

    /// Applies the per-rule levels and the excluded paths to `findings`: a denied rule is
    /// an error, a warned one a warning, an allowed one accepted with its reason (as a
    /// `safety_assured` would); findings in excluded files are dropped. `root` is the
    /// project's folder as the findings' paths start with it (`""` when they are relative
    /// to it): excluded paths are relative to the project and match whole path components
    /// (`migrations/old` excludes `migrations/old/..`, not `migrations/older`).
    pub fn apply(&self, root: &std::path::Path, findings: &mut Vec<Finding>) {
        use std::path::{Component, Path, PathBuf};
        // `./a/../b` and `a/b` alike: no file system access (a finding may be gone).
        let tidy = |p: &Path| -> PathBuf {
            let mut out = PathBuf::new();
            for c in p.components() {
                match c {
                    Component::CurDir => {}
                    Component::ParentDir if out.file_name().is_some() => {
                        out.pop();
                    }
                    other => out.push(other),
                }
            }
            out
        };
        let excluded: Vec<PathBuf> = self.exclude.iter().map(|p| tidy(&root.join(p))).collect();
        findings.retain(|f| {
            let file = tidy(Path::new(&f.file));
            !excluded.iter().any(|p| file.starts_with(p))
        });
        for f in findings.iter_mut() {
            match self.rules.get(f.rule) {
                Some(Level::Deny) => f.severity = Severity::Error,
                Some(Level::Warn) => f.severity = Severity::Warning,
                Some(Level::Allow { reason }) if f.assured.is_none() => {
                    f.assured = Some(format!("zdm.toml: {reason}"));
                }
                Some(Level::Allow { .. }) | None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_reads() {
        let c = Config::parse(
            "zdm.toml",
            "migrations = \"db/migrations\"\ndialect = \"postgres\"\npostgres = 14\nexclude = [\"db/migrations/old\"]\n\
             lock_timeout = \"2s\"\ndeployed = 20240101000000\n[rules]\nrename-column = \"warn\"\n\
             unbatched-backfill = { level = \"allow\", reason = \"small tables\" }\n",
        )
        .unwrap();
        assert_eq!(c.migrations.as_deref(), Some("db/migrations"));
        assert_eq!(c.postgres, Some(PgVersion { major: 14, minor: None }));
        assert_eq!(c.lock_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.deployed, Some(20240101000000));
        assert_eq!(c.rules["rename-column"], Level::Warn);
        assert_eq!(c.rules["unbatched-backfill"], Level::Allow { reason: "small tables".into() });
    }

    #[test]
    fn mistakes_name_the_line_and_the_key() {
        let e = Config::parse("zdm.toml", "dialect = \"postgres\"\n[rules]\nrename-colum = \"warn\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.to_string().contains("unknown rule `rename-colum`"), "{e}");
        let e = Config::parse("zdm.toml", "[rules]\nrename-column = \"allow\"\n").unwrap_err();
        assert!(e.to_string().contains("without a reason"), "{e}");
        let e = Config::parse("zdm.toml", "migration = \"x\"\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("migration"), "{e}");
        let e = Config::parse("zdm.toml", "postgres = \"fifteen\"\n").unwrap_err();
        assert!(e.to_string().starts_with("zdm.toml:1: postgres"), "{e}");
        let e = Config::parse("zdm.toml", "lock_timeout = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("not a duration"), "{e}");
        let e = Config::parse("zdm.toml", "postgres = 15\ndeployed = \"last week\"\n").unwrap_err();
        assert!(e.to_string().starts_with("zdm.toml:2: deployed"), "{e}");
        assert!(Config::parse("zdm.toml", "deployed = 20240101\n").unwrap().deployed == Some(20240101));
        let e = Config::parse("zdm.toml", "dialect = \"mysql\"\n").unwrap_err();
        assert!(e.to_string().contains("\"mysql\""), "{e}");
        let e = Config::parse("zdm.toml", "postgres = 14.10\n").unwrap_err();
        assert!(e.to_string().contains("as a string"), "a float would be 14.1: {e}");
        let e = Config::parse("zdm.toml", "lock_timeout = 5\n").unwrap_err();
        assert!(e.to_string().starts_with("zdm.toml:1: `lock_timeout`:"), "{e}");
        let e =
            Config::parse("zdm.toml", "[rules]\nrename-column = { level = \"allow\", reson = \"x\" }\n").unwrap_err();
        assert!(e.to_string().contains("rename-column"), "{e}");
        let e = Config::parse("zdm.toml", "[rules]\nrename-column = 3\n").unwrap_err();
        assert!(e.to_string().contains("a rule's level"), "{e}");
    }

    #[test]
    fn excluded_paths_match_whole_components_from_the_project() {
        let config =
            Config::parse("zdm.toml", "exclude = [\"migrations/old\", \"./migrations/0002_x.sql\"]\n").unwrap();
        let finding = |file: &str| Finding {
            rule: "rename-column",
            severity: Severity::Error,
            version: 1,
            file: file.to_string(),
            line: 1,
            column: 1,
            span: 0..1,
            message: String::new(),
            why: "",
            recipe: "",
            assured: None,
        };
        let files = [
            "migrations/old/0001_a.sql",
            "migrations/older/0001_b.sql",
            "migrations/0002_x.sql",
            "migrations/0003_y.sql",
        ];
        let mut from_the_project: Vec<Finding> = files.iter().map(|f| finding(f)).collect();
        config.apply(std::path::Path::new(""), &mut from_the_project);
        let kept: Vec<&str> = from_the_project.iter().map(|f| f.file.as_str()).collect();
        assert_eq!(kept, ["migrations/older/0001_b.sql", "migrations/0003_y.sql"]);
        // The command line run with `--project app`: the same files, the same verdict.
        let mut from_outside: Vec<Finding> = files.iter().map(|f| finding(&format!("app/{f}"))).collect();
        config.apply(std::path::Path::new("app"), &mut from_outside);
        assert_eq!(from_outside.len(), 2);
    }

    #[test]
    fn sqlx_toml_names_the_folder() {
        let sqlx = Config::sqlx_toml(
            "sqlx.toml",
            "[common]\ndatabase-url-var = \"X\"\n[migrate]\nmigrations-dir = \"src/migrations\"\ntable-name = \"app._migrations\"\n",
        )
        .unwrap();
        assert_eq!(sqlx.migrations_dir.as_deref(), Some("src/migrations"));
        assert_eq!(sqlx.table_name.as_deref(), Some("app._migrations"));
        assert_eq!(Config::sqlx_toml("sqlx.toml", "[common]\n").unwrap(), SqlxToml::default());
    }
}
