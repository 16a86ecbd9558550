//! The `-- zdm:` directives of a SQL migration file.
//!
//! `after_deploy`, `no_transaction`, `lock_timeout <duration>` and
//! `statement_timeout <duration>` describe the whole file and must stand at its top,
//! before the first statement. `safety_assured <reason>` at the top covers the file; just
//! before a statement it covers that statement. sqlx's own `-- no-transaction` first line
//! is honoured too, so sqlx files keep their meaning.

use crate::split::{self, Lexed};

/// The directives of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub after_deploy: bool,
    pub no_transaction: bool,
    /// `-- zdm:lock_timeout 2s`: every lock wait of this migration, instead of zdm's schedule;
    /// `0`, as in PostgreSQL, for none (wait as long as it takes).
    pub lock_timeout_ms: Option<u64>,
    /// `-- zdm:statement_timeout 10min`: `0` for none.
    pub statement_timeout_ms: Option<u64>,
    pub safety_assured: Vec<SafetyAssured>,
}

/// One `-- zdm:safety_assured <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyAssured {
    pub reason: String,
    /// 1-based line of the directive.
    pub line: usize,
    pub scope: AssuredScope,
}

/// What a `safety_assured` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssuredScope {
    /// Every statement of the file (the directive stands before the first statement).
    File,
    /// The statement starting at this 1-based line.
    Statement { line: usize },
}

/// A directive that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveError {
    /// 1-based line of the offending comment.
    pub line: usize,
    pub message: String,
}

const KNOWN: &str =
    "after_deploy, no_transaction, lock_timeout <duration>, statement_timeout <duration>, safety_assured <reason>";

/// Reads a duration as PostgreSQL writes them: `500ms`, `5s`, `2min`, `1h`, or a bare
/// number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Reads the directives of `sql`, reporting every bad one.
pub fn parse(sql: &str) -> Result<Directives, Vec<DirectiveError>> {
    parse_lexed(sql, &split::lex(sql))
}

/// [`parse`] over an already lexed file.
pub fn parse_lexed(sql: &str, lexed: &Lexed<'_>) -> Result<Directives, Vec<DirectiveError>> {
    let mut out = Directives { no_transaction: sql.starts_with("-- no-transaction"), ..Directives::default() };
    let mut errors = Vec::new();
    let first_statement = lexed.statements.first().map_or(usize::MAX, |s| s.offset);

    for comment in &lexed.line_comments {
        let Some(rest) = comment.body.trim().strip_prefix("zdm:") else {
            continue;
        };
        let rest = rest.trim();
        let (name, arg) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(n, a)| (n, a.trim()));
        let in_header = comment.offset < first_statement;
        let mut fail = |message: String| errors.push(DirectiveError { line: comment.line, message });
        match name {
            "after_deploy" | "no_transaction" => {
                if !arg.is_empty() {
                    fail(format!("`-- zdm:{name}` takes no argument, found `{arg}`"));
                } else if !in_header {
                    fail(format!(
                        "`-- zdm:{name}` describes the whole file: move it to the top, before the first statement"
                    ));
                } else if name == "after_deploy" {
                    out.after_deploy = true;
                } else {
                    out.no_transaction = true;
                }
            }
            "lock_timeout" | "statement_timeout" => {
                let Some(ms) = parse_duration_ms(arg) else {
                    fail(format!("`-- zdm:{name}` takes a duration such as `500ms`, `5s` or `2min`, found `{arg}`"));
                    continue;
                };
                if !in_header {
                    fail(format!(
                        "`-- zdm:{name}` describes the whole file: move it to the top, before the first statement"
                    ));
                } else if name == "lock_timeout" {
                    out.lock_timeout_ms = Some(ms);
                } else {
                    out.statement_timeout_ms = Some(ms);
                }
            }
            "safety_assured" => {
                if arg.is_empty() {
                    fail(
                        "`-- zdm:safety_assured` needs a reason, kept in the ledger: \
                         `-- zdm:safety_assured <why this is safe here>`"
                            .to_string(),
                    );
                    continue;
                }
                let scope = if in_header {
                    AssuredScope::File
                } else {
                    match lexed.statements.iter().find(|s| s.offset > comment.offset) {
                        Some(s) => AssuredScope::Statement { line: s.line },
                        None => {
                            fail("`-- zdm:safety_assured` is followed by no statement: put it just before the statement it covers".to_string());
                            continue;
                        }
                    }
                };
                out.safety_assured.push(SafetyAssured { reason: arg.to_string(), line: comment.line, scope });
            }
            "" => fail(format!("empty `-- zdm:` directive; known directives: {KNOWN}")),
            other => fail(format!("unknown directive `zdm:{other}`; known directives: {KNOWN}")),
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

    #[test]
    fn header_directives_are_read() {
        let d = parse("-- zdm:after_deploy\n-- zdm:no_transaction\nDROP INDEX CONCURRENTLY i;").unwrap();
        assert!(d.after_deploy && d.no_transaction);
    }

    #[test]
    fn timeouts_are_read() {
        let d = parse("-- zdm:lock_timeout 2s\n-- zdm:statement_timeout 10min\nSELECT 1;").unwrap();
        assert_eq!((d.lock_timeout_ms, d.statement_timeout_ms), (Some(2_000), Some(600_000)));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        let d = parse("-- zdm:lock_timeout 0\n-- zdm:statement_timeout 0\nSELECT 1;").unwrap();
        assert_eq!((d.lock_timeout_ms, d.statement_timeout_ms), (Some(0), Some(0)), "0 is kept: it means none");
        let e = parse("-- zdm:lock_timeout soon\nSELECT 1;").unwrap_err();
        assert!(e[0].message.contains("takes a duration"));
    }

    #[test]
    fn plain_file_has_no_directives() {
        assert_eq!(parse("-- adds posts\nCREATE TABLE posts (id int);").unwrap(), Directives::default());
    }

    #[test]
    fn sqlx_no_transaction_line_is_honoured() {
        assert!(parse("-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);").unwrap().no_transaction);
    }

    #[test]
    fn safety_assured_scopes() {
        let d = parse(
            "-- zdm:safety_assured table is tiny\nSELECT 1;\n-- zdm:safety_assured reviewed by ops\nDROP TABLE t;",
        )
        .unwrap();
        assert_eq!(d.safety_assured[0].scope, AssuredScope::File);
        assert_eq!(d.safety_assured[1].scope, AssuredScope::Statement { line: 4 });
        assert_eq!(d.safety_assured[1].reason, "reviewed by ops");
    }

    #[test]
    fn empty_reason_is_an_error() {
        let e = parse("-- zdm:safety_assured   \nSELECT 1;").unwrap_err();
        assert_eq!(e[0].line, 1);
        assert!(e[0].message.contains("needs a reason"));
    }

    #[test]
    fn unknown_and_misplaced_directives_are_all_reported() {
        let e = parse("-- zdm:after_deplo\nSELECT 1;\n-- zdm:no_transaction\nSELECT 2;").unwrap_err();
        assert_eq!(e.len(), 2);
        assert!(e[0].message.contains("unknown directive `zdm:after_deplo`"));
        assert_eq!(e[1].line, 3);
        assert!(e[1].message.contains("move it to the top"));
    }

    #[test]
    fn directive_text_inside_a_string_is_not_a_directive() {
        assert_eq!(parse("SELECT '\n-- zdm:bogus\n';").unwrap(), Directives::default());
    }

    #[test]
    fn trailing_safety_assured_is_an_error() {
        assert!(parse("SELECT 1;\n-- zdm:safety_assured why").is_err());
    }
}
