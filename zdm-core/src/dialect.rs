//! Which database a migration set is written for. The macros fix it at compile time
//! (`dialect = "sqlite"`; PostgreSQL by default): the lint judges the set with that
//! database's parser and rules, and the executor refuses to run the set on a pool of the
//! other database, whose advice and grammar it was never checked against.

use std::fmt;

/// The database a migration set is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// PostgreSQL: parsed by squawk-syntax, judged by the lock and rewrite rules.
    #[default]
    Postgres,
    /// SQLite: replayed into an in-memory SQLite, judged by SQLite's own rules.
    Sqlite,
}

impl Dialect {
    /// The spelling the macros take: `"postgres"` or `"sqlite"`.
    pub fn parse(text: &str) -> Option<Dialect> {
        match text.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Some(Dialect::Postgres),
            "sqlite" | "sqlite3" => Some(Dialect::Sqlite),
            _ => None,
        }
    }

    /// The argument that selects it in `zdm::migrations!(.., dialect = "..")`.
    pub fn arg(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// The database's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn spellings() {
        assert_eq!(Dialect::parse("sqlite"), Some(Dialect::Sqlite));
        assert_eq!(Dialect::parse("PostgreSQL"), Some(Dialect::Postgres));
        assert_eq!(Dialect::parse("mysql"), None);
        assert_eq!(Dialect::default(), Dialect::Postgres);
        assert_eq!(Dialect::parse(Dialect::Sqlite.arg()), Some(Dialect::Sqlite));
    }
}
