//! Splitting a migration file into statements and finding its comments.
//!
//! This is lexical only (quotes, dollar quotes, comments, `;`), not a grammar: it is what
//! `no_transaction` migrations need to send one statement per query (a multi-statement
//! query string runs as an implicit transaction, which `CREATE INDEX CONCURRENTLY`
//! refuses), and what the directive reader needs to tell a real `-- zdm:` comment from
//! the same characters inside a string.

/// One statement of a file, without its trailing `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement's text with surrounding whitespace and leading comments trimmed.
    pub text: &'a str,
    /// Byte offset of `text` in the file.
    pub offset: usize,
    /// 1-based line of the first character of `text`.
    pub line: usize,
}

/// A `--` comment, for directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineComment<'a> {
    /// The text after `--`, untrimmed.
    pub body: &'a str,
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
}

/// What the lexer found in a file.
#[derive(Debug, Default)]
pub struct Lexed<'a> {
    pub statements: Vec<Statement<'a>>,
    pub line_comments: Vec<LineComment<'a>>,
}

/// Splits `sql` into statements and line comments. Never fails: an unterminated string or
/// comment simply runs to the end of the input, as the server would report it.
pub fn lex(sql: &str) -> Lexed<'_> {
    let bytes = sql.as_bytes();
    let mut out = Lexed::default();
    let mut i = 0;
    // Start of the current statement's first significant (non-comment, non-space) byte,
    // and its line.
    let mut stmt_start: Option<(usize, usize)> = None;
    let mut lines = LineCounter::default();

    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = memchr_newline(bytes, i);
                out.line_comments.push(LineComment { body: &sql[i + 2..end], offset: i, line: lines.at(bytes, i) });
                i = end;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i);
                continue;
            }
            b';' => {
                push_statement(sql, &mut out, stmt_start.take(), i);
                i += 1;
                continue;
            }
            _ if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if stmt_start.is_none() {
            stmt_start = Some((i, lines.at(bytes, i)));
        }
        i = match b {
            b'\'' => {
                let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E') && !ident_byte_before(bytes, i - 1);
                skip_quoted(bytes, i, b'\'', escapes)
            }
            b'"' => skip_quoted(bytes, i, b'"', false),
            b'`' => skip_quoted(bytes, i, b'`', false),
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_len) => skip_dollar_quoted(bytes, i, tag_len),
                None => i + 1,
            },
            _ => i + 1,
        };
    }
    push_statement(sql, &mut out, stmt_start, bytes.len());
    out
}

fn push_statement<'a>(sql: &'a str, out: &mut Lexed<'a>, start: Option<(usize, usize)>, end: usize) {
    if let Some((start, line)) = start {
        let text = sql[start..end].trim_end();
        if !text.is_empty() {
            out.statements.push(Statement { text, offset: start, line });
        }
    }
}

/// Line numbers of increasing offsets, counting each newline once (a file of many
/// statements would otherwise be scanned from its start for each).
#[derive(Default)]
struct LineCounter {
    offset: usize,
    newlines: usize,
}

impl LineCounter {
    /// 1-based line of byte `offset` (not before the last one asked for).
    fn at(&mut self, bytes: &[u8], offset: usize) -> usize {
        if offset < self.offset {
            *self = LineCounter::default();
        }
        self.newlines += bytes[self.offset..offset].iter().filter(|&&b| b == b'\n').count();
        self.offset = offset;
        self.newlines + 1
    }
}

/// The statements of `sql` (see [`lex`]).
pub fn statements(sql: &str) -> Vec<Statement<'_>> {
    lex(sql).statements
}

/// Whether `sql` contains `word` in any case: a cheap test before a parse that only a
/// statement saying that word needs.
pub fn mentions(sql: &str, word: &str) -> bool {
    sql.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
}

/// 1-based line number of byte `offset`.
pub fn line_of(sql: &str, offset: usize) -> usize {
    sql.as_bytes()[..offset.min(sql.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| from + p)
}

fn ident_byte_before(bytes: &[u8], i: usize) -> bool {
    i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
}

/// PostgreSQL block comments nest.
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a quoted literal or identifier starting at `start`; a doubled quote escapes it.
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash_escapes && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Length of a dollar-quote opening tag (`$$` or `$name$`) at `start`, if there is one.
/// `$1` is a parameter, not a tag: a tag cannot start with a digit.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    if ident_byte_before(bytes, start) {
        return None;
    }
    let mut i = start + 1;
    if bytes.get(i).is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'$' {
            return Some(i + 1 - start);
        }
        if !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80) {
            return None;
        }
        i += 1;
    }
    None
}

fn skip_dollar_quoted(bytes: &[u8], start: usize, tag_len: usize) -> usize {
    let tag = &bytes[start..start + tag_len];
    let body = start + tag_len;
    bytes[body..].windows(tag_len).position(|w| w == tag).map_or(bytes.len(), |p| body + p + tag_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<&str> {
        statements(sql).into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_on_semicolons_and_trims() {
        assert_eq!(texts("CREATE TABLE a (id int);\n\n  SELECT 1 ;"), ["CREATE TABLE a (id int)", "SELECT 1"]);
    }

    #[test]
    fn semicolons_in_strings_identifiers_and_comments_do_not_split() {
        let sql = "INSERT INTO t VALUES ('a;b', 'it''s; fine');\n-- a; comment\nSELECT \"we;ird\" /* x; /* nested; */ y */ FROM t;";
        assert_eq!(texts(sql).len(), 2);
        assert!(texts(sql)[1].starts_with("SELECT \"we;ird\""));
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let sql = "CREATE FUNCTION f() RETURNS trigger AS $body$ BEGIN NEW.x := 1; RETURN NEW; END $body$ LANGUAGE plpgsql;\nDO $$ BEGIN PERFORM 1; END $$;";
        let t = texts(sql);
        assert_eq!(t.len(), 2);
        assert!(t[0].ends_with("LANGUAGE plpgsql"));
        assert!(t[1].starts_with("DO $$"));
    }

    #[test]
    fn positional_parameters_are_not_dollar_quotes() {
        assert_eq!(texts("PREPARE p AS SELECT $1; SELECT 2;").len(), 2);
    }

    #[test]
    fn escape_strings_honour_backslashes() {
        assert_eq!(texts(r"SELECT E'a\';b'; SELECT 2;").len(), 2);
    }

    #[test]
    fn statement_lines_skip_leading_comments() {
        let s = statements("-- header\n\n/* block */\nCREATE TABLE a (id int);\nSELECT 1;");
        assert_eq!((s[0].line, s[1].line), (4, 5));
    }

    #[test]
    fn line_comments_inside_strings_are_not_comments() {
        let lexed = lex("SELECT '-- zdm:after_deploy';\n-- real\n");
        assert_eq!(lexed.line_comments.len(), 1);
        assert_eq!(lexed.line_comments[0].body, " real");
        assert_eq!(lexed.line_comments[0].line, 2);
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for sql in ["SELECT 'abc", "/* open", "$$ body", "SELECT \"x", "E'\\"] {
            let _ = lex(sql);
        }
    }
}
