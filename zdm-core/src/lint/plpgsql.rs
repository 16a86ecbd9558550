//! A small scanner for PL/pgSQL blocks, the bodies of `DO` statements: it finds the static
//! SQL statements a block runs, in every branch, so the rules judge each one as if it ran.
//!
//! A `DO` block runs at migration time, so what it does is as much the migration as plain
//! SQL: a `DROP COLUMN` hidden in `IF .. THEN` breaks old code all the same. The scanner
//! knows where PL/pgSQL statements start and end, not the language's grammar: control
//! structure (`DECLARE`, `BEGIN .. EXCEPTION WHEN .. THEN .. END`, `IF/ELSIF/ELSE`,
//! `CASE`, `LOOP/WHILE/FOR`, labels) is stepped through, so every branch is read; conditions
//! and procedural statements that change no schema (`RAISE`, `PERFORM`, `RETURN`,
//! assignments, `NULL;`, cursor commands) are skipped; every other statement is SQL, handed
//! back as a byte range of the body for the SQL parser. Only an `EXECUTE` of a string built
//! at run time is unknowable; `EXECUTE` of a string constant is that constant's SQL.
//!
//! Bodies of `CREATE FUNCTION .. LANGUAGE plpgsql` are not scanned: they run when the
//! function is called, not when the migration runs.
//!
//! It reads squawk's lexer tokens, so words inside string literals, dollar quotes and
//! comments never count, and it never fails: on malformed input it stops where the input
//! stops making sense, and the SQL parser reports the statement it was given.

use std::ops::Range;

use squawk_lexer::{tokenize, LiteralKind, TokenKind as T};

/// One statement of a block, as byte ranges of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Static SQL the block runs. `blank` are PL/pgSQL `INTO target` clauses (a
    /// `SELECT .. INTO var` assigns a variable; it does not create a table): blank them
    /// out before the SQL parser reads the statement.
    Sql { range: Range<usize>, blank: Vec<Range<usize>> },
    /// `EXECUTE` of a string constant: the literal, quotes included.
    Execute { literal: Range<usize> },
    /// A statement whose SQL exists only at run time.
    Dynamic { range: Range<usize>, what: &'static str },
}

/// Words that start a procedural statement zdm has no opinion about: it changes no schema
/// and no table (`PERFORM f()` calls a function, which a migration may do as freely as
/// `SELECT f()`).
const SKIPPED: &[&str] = &[
    "raise", "perform", "return", "null", "assert", "get", "exit", "continue", "open", "fetch", "move", "close", "call",
];

/// The statements `body` (the text of a PL/pgSQL block) runs, in order.
pub fn scan(body: &str) -> Vec<Piece> {
    let toks = tokenize(body)
        .scan(0usize, |at, t| {
            let start = *at;
            *at += t.len as usize;
            Some(Tok { kind: t.kind, range: start..*at })
        })
        .filter(|t| !matches!(t.kind, T::Whitespace | T::LineComment | T::BlockComment { .. }))
        .collect();
    let mut scanner = Scanner { body, toks, i: 0, out: Vec::new() };
    scanner.run();
    scanner.out
}

struct Tok {
    kind: T,
    range: Range<usize>,
}

struct Scanner<'a> {
    body: &'a str,
    /// Significant tokens (no whitespace, no comments).
    toks: Vec<Tok>,
    i: usize,
    out: Vec<Piece>,
}

impl Scanner<'_> {
    fn run(&mut self) {
        while self.i < self.toks.len() {
            let i = self.i;
            if self.kind(i) == Some(T::Semi) {
                self.i += 1;
                continue;
            }
            if self.kind(i) == Some(T::Lt) && self.kind(i + 1) == Some(T::Lt) {
                self.skip_label();
                continue;
            }
            let word = self.word(i);
            match word.as_deref() {
                // The declarations run to the block's BEGIN.
                Some("declare") => {
                    self.i += 1;
                    self.skip_to(&["begin"]);
                }
                Some("begin" | "exception" | "else" | "loop") => self.i += 1,
                // A condition, then the branch's statements.
                Some("if" | "elsif" | "elseif" | "when") => {
                    self.i += 1;
                    self.skip_to(&["then"]);
                    self.i += 1;
                }
                // `CASE [expr]`, then its `WHEN .. THEN` branches.
                Some("case") => {
                    self.i += 1;
                    self.skip_to(&["when"]);
                }
                // `END;`, `END IF;`, `END LOOP label;`, `END CASE;`.
                Some("end") => {
                    self.skip_statement();
                }
                Some("while" | "for" | "foreach") => {
                    let start = self.toks[i].range.start;
                    self.i += 1;
                    let dynamic = self.skip_to(&["loop"]).any(|j| self.word(j).as_deref() == Some("execute"));
                    if dynamic {
                        let end = self.toks[self.i.min(self.toks.len()) - 1].range.end;
                        self.out.push(Piece::Dynamic {
                            range: start..end,
                            what: "a loop over a query built at run time (FOR .. IN EXECUTE)",
                        });
                    }
                    self.i += 1;
                }
                Some("execute") => self.execute(),
                Some(w) if SKIPPED.contains(&w) => {
                    self.skip_statement();
                }
                _ if self.is_assignment(i) => {
                    self.skip_statement();
                }
                _ => self.sql(),
            }
        }
    }

    fn kind(&self, i: usize) -> Option<T> {
        self.toks.get(i).map(|t| t.kind)
    }

    /// The lowercased word at `i`, when it is an unquoted identifier (keywords included).
    fn word(&self, i: usize) -> Option<String> {
        let t = self.toks.get(i)?;
        (t.kind == T::Ident).then(|| self.body[t.range.clone()].to_ascii_lowercase())
    }

    /// `<<label>>`.
    fn skip_label(&mut self) {
        let mut j = self.i + 2;
        while j < self.toks.len() && !(self.kind(j) == Some(T::Gt) && self.kind(j + 1) == Some(T::Gt)) {
            j += 1;
        }
        self.i = j + 2;
    }

    /// Moves to the first of `words` outside parentheses and `CASE .. END` expressions (or to
    /// the end) and returns the indices it stepped over.
    fn skip_to(&mut self, words: &[&str]) -> Range<usize> {
        let start = self.i;
        let (mut parens, mut cases) = (0usize, 0usize);
        while let Some(kind) = self.kind(self.i) {
            match kind {
                T::OpenParen | T::OpenBracket => parens += 1,
                T::CloseParen | T::CloseBracket => parens = parens.saturating_sub(1),
                T::Ident if parens == 0 => match self.word(self.i).as_deref() {
                    Some("case") => cases += 1,
                    Some("end") if cases > 0 => cases -= 1,
                    Some(w) if cases == 0 && words.contains(&w) => break,
                    _ => {}
                },
                _ => {}
            }
            self.i += 1;
        }
        start..self.i
    }

    /// Moves past the next `;` outside parentheses; returns the statement's token indices
    /// (without the `;`).
    fn skip_statement(&mut self) -> Range<usize> {
        let start = self.i;
        let mut parens = 0usize;
        while let Some(kind) = self.kind(self.i) {
            match kind {
                T::OpenParen | T::OpenBracket => parens += 1,
                T::CloseParen | T::CloseBracket => parens = parens.saturating_sub(1),
                T::Semi if parens == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        let end = self.i;
        self.i += 1;
        start..end
    }

    /// `target := expr;` or `target = expr;`, the target a name, a field or an array element.
    fn is_assignment(&self, i: usize) -> bool {
        if !matches!(self.kind(i), Some(T::Ident | T::QuotedIdent { .. })) {
            return false;
        }
        let mut j = i + 1;
        loop {
            match self.kind(j) {
                Some(T::Dot) if matches!(self.kind(j + 1), Some(T::Ident | T::QuotedIdent { .. })) => j += 2,
                Some(T::OpenBracket) => {
                    while !matches!(self.kind(j), Some(T::CloseBracket) | None) {
                        j += 1;
                    }
                    j += 1;
                }
                _ => break,
            }
        }
        match self.kind(j) {
            Some(T::Colon) => self.kind(j + 1) == Some(T::Eq),
            Some(T::Eq) => true,
            _ => false,
        }
    }

    fn span(&self, toks: Range<usize>) -> Range<usize> {
        match (self.toks.get(toks.start), toks.end.checked_sub(1).and_then(|e| self.toks.get(e))) {
            (Some(first), Some(last)) if toks.start < toks.end => first.range.start..last.range.end,
            _ => {
                let at = self.toks.get(toks.start).map_or(self.body.len(), |t| t.range.start);
                at..at
            }
        }
    }

    /// `EXECUTE 'constant' [INTO ..] [USING ..];` is that SQL; anything else is built at
    /// run time.
    fn execute(&mut self) {
        let stmt = self.skip_statement();
        let lit = stmt.start + 1;
        let constant = matches!(
            self.kind(lit),
            Some(T::Literal {
                kind: LiteralKind::Str { terminated: true } | LiteralKind::DollarQuotedString { terminated: true }
            })
        ) && (lit + 1 == stmt.end || matches!(self.word(lit + 1).as_deref(), Some("into" | "using")));
        if constant {
            self.out.push(Piece::Execute { literal: self.toks[lit].range.clone() });
        } else {
            self.out.push(Piece::Dynamic { range: self.span(stmt), what: "EXECUTE of SQL built at run time" });
        }
    }

    /// A SQL statement, up to its `;`.
    fn sql(&mut self) {
        let stmt = self.skip_statement();
        let dml = matches!(
            self.word(stmt.start).as_deref(),
            Some("select" | "with" | "insert" | "update" | "delete" | "merge")
        );
        let mut blank = Vec::new();
        if dml {
            let mut parens = 0usize;
            let mut j = stmt.start;
            while j < stmt.end {
                match self.kind(j) {
                    Some(T::OpenParen | T::OpenBracket) => parens += 1,
                    Some(T::CloseParen | T::CloseBracket) => parens = parens.saturating_sub(1),
                    _ => {}
                }
                let into_target = parens == 0
                    && self.word(j).as_deref() == Some("into")
                    && !matches!(j.checked_sub(1).and_then(|p| self.word(p)).as_deref(), Some("insert" | "merge"));
                if into_target {
                    let from = j;
                    j += 1;
                    if self.word(j).as_deref() == Some("strict") {
                        j += 1;
                    }
                    // target[, target]: names, possibly qualified.
                    while matches!(self.kind(j), Some(T::Ident | T::QuotedIdent { .. })) && j < stmt.end {
                        j += 1;
                        while self.kind(j) == Some(T::Dot) && j + 1 < stmt.end {
                            j += 2;
                        }
                        if self.kind(j) == Some(T::Comma) && j + 1 < stmt.end {
                            j += 1;
                        } else {
                            break;
                        }
                    }
                    blank.push(self.span(from..j.min(stmt.end)));
                    continue;
                }
                j += 1;
            }
        }
        let range = self.span(stmt);
        if !range.is_empty() {
            self.out.push(Piece::Sql { range, blank });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL texts a block runs (with INTO clauses blanked), and the dynamic parts.
    fn sql_of(body: &str) -> Vec<String> {
        scan(body)
            .into_iter()
            .map(|p| match p {
                Piece::Sql { range, blank } => {
                    let mut text = body[range.clone()].to_string();
                    for b in blank {
                        let (s, e) = (b.start - range.start, b.end - range.start);
                        text.replace_range(s..e, &" ".repeat(e - s));
                    }
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                }
                Piece::Execute { literal } => format!("EXECUTE {}", &body[literal]),
                Piece::Dynamic { what, .. } => format!("dynamic: {what}"),
            })
            .collect()
    }

    #[test]
    fn every_branch_is_read_and_control_flow_skipped() {
        let body = "
            DECLARE n int := 0; label text := 'begin; drop table x;';
            BEGIN
              <<outer>>
              IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN
                CREATE TYPE mood AS ENUM ('a');
              ELSIF n > (CASE WHEN n = 1 THEN 2 ELSE 3 END) THEN
                ALTER TABLE posts DROP COLUMN a;
              ELSE
                RAISE NOTICE 'nothing; to do';
              END IF;
              n := n + 1;
              posts_row.x = 2;
              PERFORM pg_sleep(0);
              CASE n WHEN 1 THEN UPDATE posts SET a = 1 WHERE id = 1; ELSE NULL; END CASE;
              FOR r IN SELECT id FROM posts LOOP DELETE FROM posts WHERE id = r.id; END LOOP outer;
              WHILE n < 3 LOOP n := n + 1; END LOOP;
              BEGIN
                CREATE TYPE colour AS ENUM ('red');
              EXCEPTION WHEN duplicate_object OR unique_violation THEN null;
              END;
            END";
        assert_eq!(
            sql_of(body),
            [
                "CREATE TYPE mood AS ENUM ('a')",
                "ALTER TABLE posts DROP COLUMN a",
                "UPDATE posts SET a = 1 WHERE id = 1",
                "DELETE FROM posts WHERE id = r.id",
                "CREATE TYPE colour AS ENUM ('red')",
            ]
        );
    }

    #[test]
    fn into_targets_are_blanked_but_insert_into_is_kept() {
        assert_eq!(
            sql_of("BEGIN SELECT count(*) INTO STRICT n FROM posts; INSERT INTO t (a) VALUES (1) RETURNING id INTO r.id, m; END"),
            ["SELECT count(*) FROM posts", "INSERT INTO t (a) VALUES (1) RETURNING id"]
        );
    }

    #[test]
    fn execute_of_a_constant_is_sql_and_a_built_string_is_dynamic() {
        assert_eq!(
            sql_of("BEGIN EXECUTE 'DROP TABLE a'; EXECUTE $q$DROP TABLE b$q$ USING 1; EXECUTE 'DROP TABLE ' || t; EXECUTE format('x %I', t); END"),
            [
                "EXECUTE 'DROP TABLE a'",
                "EXECUTE $q$DROP TABLE b$q$",
                "dynamic: EXECUTE of SQL built at run time",
                "dynamic: EXECUTE of SQL built at run time",
            ]
        );
        assert_eq!(
            sql_of("BEGIN FOR r IN EXECUTE 'SELECT 1' || x LOOP NULL; END LOOP; END"),
            ["dynamic: a loop over a query built at run time (FOR .. IN EXECUTE)"]
        );
    }

    #[test]
    fn malformed_blocks_end_quietly() {
        for body in ["", "BEGIN", "IF", "<<", "<<a", "x :", "EXECUTE", "DECLARE x int", "BEGIN (((; END", "a[", "CASE"]
        {
            let _ = scan(body);
        }
        assert_eq!(sql_of("BEGIN ALTER TABLE posts DROP COLUMN a"), ["ALTER TABLE posts DROP COLUMN a"]);
    }
}
