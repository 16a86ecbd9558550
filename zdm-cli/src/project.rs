//! The project a command works on: its `zdm.toml`, the migrations folder (the command's
//! argument, else `zdm.toml`'s, else `sqlx.toml`'s, else `migrations`) and the set read
//! from it.

use std::path::{Path, PathBuf};

use zdm::lint::{LintConfig, LintInput, ParsedMigration, PgVersion};
use zdm::Dialect;
use zdm_core::config::{Config, FILE_NAME};

/// A project's settings and its migrations.
pub(crate) struct Project {
    pub config: Config,
    /// The folder, as given or found (relative to the current directory).
    pub dir: PathBuf,
    /// sqlx's ledger table, when `sqlx.toml` names one.
    pub sqlx_table: Option<String>,
    /// The project's folder as the findings' paths start with it.
    pub root: PathBuf,
}

impl Project {
    /// Reads `zdm.toml` (and `sqlx.toml`) in `root`; `dir` overrides the folder.
    pub(crate) fn load(root: &Path, dir: Option<PathBuf>) -> Result<Project, Box<dyn std::error::Error>> {
        let path = root.join(FILE_NAME);
        let config = match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&path.display().to_string(), &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Config::default(),
            Err(e) => return Err(format!("{}: {e}", path.display()).into()),
        };
        let sqlx_path = root.join("sqlx.toml");
        let sqlx = match std::fs::read_to_string(&sqlx_path) {
            Ok(text) => Config::sqlx_toml(&sqlx_path.display().to_string(), &text)?,
            Err(_) => Default::default(),
        };
        let dir = match (dir, &config.migrations, &sqlx.migrations_dir) {
            // Relative to the project, like every other path the command line reads.
            (Some(d), _, _) => root.join(d),
            (None, Some(d), _) | (None, None, Some(d)) => root.join(d),
            (None, None, None) => root.join("migrations"),
        };
        Ok(Project { config, dir: tidy(dir), sqlx_table: sqlx.table_name, root: tidy(root.to_path_buf()) })
    }

    /// The migrations, every problem with the files reported at once.
    pub(crate) fn read_set(&self) -> Result<Vec<ParsedMigration>, Box<dyn std::error::Error>> {
        zdm::lint::read_set(&self.dir)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n").into())
    }

    /// The dialect: the command line's, else `zdm.toml`'s, else PostgreSQL.
    pub(crate) fn dialect(&self, given: Option<Dialect>) -> Dialect {
        given.or_else(|| self.configured_dialect()).unwrap_or_default()
    }

    /// The dialect `zdm.toml` names, if any.
    pub(crate) fn configured_dialect(&self) -> Option<Dialect> {
        self.config.dialect.as_deref().and_then(Dialect::parse)
    }

    /// The lint's settings: what the command line gives wins over `zdm.toml`.
    pub(crate) fn lint_config(
        &self,
        postgres: Option<&str>,
        dialect: Option<Dialect>,
    ) -> Result<LintConfig, Box<dyn std::error::Error>> {
        let postgres = match postgres {
            Some(text) => PgVersion::parse(text)
                .ok_or_else(|| format!("--postgres {text}: not a PostgreSQL version (use e.g. 15 or 14.2)"))?,
            None => self.config.postgres.unwrap_or_default(),
        };
        let baseline = zdm::baseline::read(&self.dir)
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
        Ok(LintConfig {
            dialect: self.dialect(dialect),
            postgres,
            start_after: None,
            baseline,
            deployed: self.config.deployed,
        })
    }

    /// The set as `zdm pre` / `zdm post` run it: judged first, exactly as the macros judge
    /// an embedded set (a blocking finding refuses the run, as it refuses the build), with
    /// every rule `zdm.toml` allows recorded, like a `safety_assured` directive, in the
    /// migrations where it fires (the ledger keeps the reason).
    pub(crate) fn assured_set(&self, dialect: Dialect) -> Result<Vec<ParsedMigration>, Box<dyn std::error::Error>> {
        let mut set = self.read_set()?;
        let config = self.lint_config(None, Some(dialect))?;
        let inputs: Vec<LintInput<'_>> = set.iter().map(LintInput::from_parsed).collect();
        let mut findings = zdm::lint::lint(&inputs, &config);
        self.config.apply(&self.root, &mut findings);
        let blocking: Vec<String> = findings.iter().filter(|f| f.blocks()).map(ToString::to_string).collect();
        if !blocking.is_empty() {
            return Err(format!(
                "{} finding(s) block this folder, as they would block `zdm::migrations!` at compile time; nothing \
                 ran. Fix them, or accept one with `-- zdm:safety_assured <reason>` (or a `zdm.toml` allow):\n\n{}",
                blocking.len(),
                blocking.join("\n\n")
            )
            .into());
        }
        for f in findings.iter().filter(|f| f.assured.as_deref().is_some_and(|r| r.starts_with("zdm.toml: "))) {
            let reason = f.assured.clone().unwrap_or_default();
            if let Some(m) = set.iter_mut().find(|m| m.version == f.version) {
                if !m.directives.safety_assured.iter().any(|a| a.reason == reason) {
                    m.directives.safety_assured.push(zdm_core::directive::SafetyAssured {
                        reason,
                        line: 0,
                        scope: zdm_core::directive::AssuredScope::File,
                    });
                }
            }
        }
        Ok(set)
    }
}

/// `./migrations` shown as `migrations`, as a user writes it.
fn tidy(path: PathBuf) -> PathBuf {
    path.strip_prefix(".").map(Path::to_path_buf).unwrap_or(path)
}
