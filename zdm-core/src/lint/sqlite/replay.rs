//! The one place that talks to SQLite: an in-memory database the migration set is replayed
//! into, statement by statement, as zdm will run it.
//!
//! Nothing here knows SQL grammar. SQLite itself does all of it:
//! - `sqlite3_prepare_v2` is the exact parser; on a syntax error `sqlite3_error_offset`
//!   gives the byte offset of the first bad token, and `sqlite3_complete` (SQLite's own
//!   tokenizer) finds where the unreadable statement ends, so the next one is read again.
//! - the authorizer callback, which SQLite calls while it prepares a statement, says what
//!   the statement does (`CREATE_INDEX idx ON posts`, `PRAGMA foreign_keys = OFF`,
//!   `INSERT INTO new_posts` reading `posts`, `ALTER_TABLE posts`);
//! - after each statement runs, the replayed `sqlite_schema` (through `pragma_table_list`,
//!   `pragma_table_xinfo` and `pragma_foreign_key_list`) is the exact schema.
//!
//! Only this file is unsafe code; the rules never see a pointer.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;

use libsqlite3_sys as ffi;

use super::model::{Auth, Column, Outcome, Replayed, ReplayedFile, Snapshot, Table};

/// What the authorizer callback writes into.
#[derive(Default)]
struct AuthLog {
    recording: bool,
    actions: Vec<Auth>,
}

/// An in-memory SQLite with the settings sqlx connects with (foreign keys on).
pub struct Engine {
    db: *mut ffi::sqlite3,
    // Boxed: SQLite keeps its address as the authorizer's user data.
    log: Box<AuthLog>,
}

impl Engine {
    /// Opens a fresh in-memory database.
    pub fn open() -> Result<Engine, String> {
        let mut db = ptr::null_mut();
        // SAFETY: a valid NUL-terminated name and an out pointer; the handle is closed in
        // `Drop` even when opening fails (SQLite allocates one anyway).
        let rc = unsafe {
            ffi::sqlite3_open_v2(
                c":memory:".as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                ptr::null(),
            )
        };
        let mut engine = Engine { db, log: Box::default() };
        if rc != ffi::SQLITE_OK {
            return Err(format!("cannot open an in-memory SQLite: {}", engine.errmsg()));
        }
        let user = &mut *engine.log as *mut AuthLog as *mut c_void;
        // SAFETY: `user` points into the box owned by the engine, which outlives `db`.
        unsafe { ffi::sqlite3_set_authorizer(engine.db, Some(authorizer), user) };
        // sqlx turns foreign keys on for every SQLite connection; the replay does the same.
        engine.exec("PRAGMA foreign_keys = ON");
        Ok(engine)
    }

    /// Runs one migration file: inside `BEGIN` .. `COMMIT` when zdm runs it in a
    /// transaction, as zdm does.
    pub fn replay(&mut self, sql: &str, transactional: bool) -> ReplayedFile {
        let mut stmts = Vec::new();
        let mut states = vec![self.snapshot()];
        if transactional {
            self.exec("BEGIN");
        }
        let mut pos = 0;
        loop {
            let start = skip_trivia(sql, pos);
            if start >= sql.len() {
                break;
            }
            let version = self.schema_version();
            let (stmt, end) = self.one(sql, start);
            pos = end.max(start + 1);
            let changed = self.schema_version() != version;
            stmts.push(stmt);
            states.push(if changed { self.snapshot() } else { states[states.len() - 1].clone() });
        }
        if transactional && !self.autocommit() {
            self.exec("COMMIT");
            if !self.autocommit() {
                self.exec("ROLLBACK");
            }
        }
        ReplayedFile { stmts, states }
    }

    /// Prepares and runs the statement at `start`; returns it and where the next begins.
    fn one(&mut self, sql: &str, start: usize) -> (Replayed, usize) {
        let rest = &sql[start..];
        let mut stmt = ptr::null_mut();
        let mut tail: *const c_char = ptr::null();
        self.log.actions.clear();
        self.log.recording = true;
        // SAFETY: `rest` outlives the call and its length is passed, so no NUL is needed;
        // `tail` points into `rest`.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(self.db, rest.as_ptr().cast(), rest.len() as c_int, &mut stmt, &mut tail)
        };
        self.log.recording = false;
        let actions = std::mem::take(&mut self.log.actions);
        if rc != ffi::SQLITE_OK {
            let message = self.errmsg();
            // SAFETY: plain getter on a valid handle.
            let offset = unsafe { ffi::sqlite3_error_offset(self.db) };
            let end = statement_end(sql, start);
            let outcome = if is_syntax_error(&message) {
                let at = if offset >= 0 { start + offset as usize } else { start };
                Outcome::Syntax { at: at.min(end), message }
            } else {
                Outcome::Refused { message }
            };
            return (Replayed { range: start..trim_end(sql, start, end), outcome, actions }, end);
        }
        // SAFETY: SQLite sets `tail` inside `rest` (or at its end).
        let end = start + unsafe { tail.offset_from(rest.as_ptr().cast::<c_char>()) } as usize;
        if stmt.is_null() {
            // Only comments or whitespace were left.
            return (Replayed { range: start..start, outcome: Outcome::Ran, actions }, sql.len());
        }
        let outcome = loop {
            // SAFETY: a statement prepared on `db`, finalized below.
            match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_ROW => continue,
                ffi::SQLITE_DONE => break Outcome::Ran,
                _ => break Outcome::Refused { message: self.errmsg() },
            }
        };
        // SAFETY: finalized once.
        unsafe { ffi::sqlite3_finalize(stmt) };
        (Replayed { range: start..trim_end(sql, start, end), outcome, actions }, end)
    }

    /// The schema as SQLite holds it now.
    pub fn snapshot(&mut self) -> Snapshot {
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        let cols = "SELECT t.name, t.wr, t.strict, c.name, c.type, c.\"notnull\", c.dflt_value, c.pk, c.hidden \
                    FROM pragma_table_list AS t, pragma_table_xinfo(t.name) AS c \
                    WHERE t.schema = 'main' AND t.type = 'table' AND t.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
                    ORDER BY t.name, c.cid";
        for row in self.rows(cols, 9) {
            let table =
                tables.entry(row[0].clone().unwrap_or_default().to_ascii_lowercase()).or_insert_with(|| Table {
                    name: row[0].clone().unwrap_or_default(),
                    without_rowid: row[1].as_deref() == Some("1"),
                    strict: row[2].as_deref() == Some("1"),
                    ..Table::default()
                });
            table.columns.push(Column {
                name: row[3].clone().unwrap_or_default(),
                ty: row[4].clone().unwrap_or_default(),
                not_null: row[5].as_deref() == Some("1"),
                default: row[6].clone(),
                pk: row[7].as_deref().is_some_and(|p| p != "0"),
                // 2 and 3: generated columns (virtual, stored); 1: hidden columns of virtual tables.
                generated: matches!(row[8].as_deref(), Some("2" | "3")),
            });
        }
        let fks = "SELECT t.name, f.\"table\" FROM pragma_table_list AS t, pragma_foreign_key_list(t.name) AS f \
                   WHERE t.schema = 'main' AND t.type = 'table'";
        for row in self.rows(fks, 2) {
            if let (Some(t), Some(r)) = (&row[0], &row[1]) {
                if let Some(table) = tables.get_mut(&t.to_ascii_lowercase()) {
                    table.references.push(r.to_ascii_lowercase());
                }
            }
        }
        let mut indexes = BTreeMap::new();
        for row in self.rows("SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'", 2) {
            if let (Some(i), Some(t)) = (&row[0], &row[1]) {
                indexes.insert(i.to_ascii_lowercase(), t.to_ascii_lowercase());
            }
        }
        Snapshot { tables, indexes }
    }

    /// The rows of one of zdm's own queries, as text.
    fn rows(&mut self, sql: &str, width: usize) -> Vec<Vec<Option<String>>> {
        let mut out = Vec::new();
        let mut stmt = ptr::null_mut();
        // SAFETY: as in `one`; zdm's queries are not recorded by the authorizer.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(self.db, sql.as_ptr().cast(), sql.len() as c_int, &mut stmt, ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK || stmt.is_null() {
            return out;
        }
        // SAFETY: a valid statement; column texts are copied before the next step.
        while unsafe { ffi::sqlite3_step(stmt) } == ffi::SQLITE_ROW {
            out.push((0..width).map(|i| unsafe { text(ffi::sqlite3_column_text(stmt, i as c_int).cast()) }).collect());
        }
        unsafe { ffi::sqlite3_finalize(stmt) };
        out
    }

    fn schema_version(&mut self) -> Option<String> {
        self.rows("PRAGMA schema_version", 1).pop().and_then(|mut r| r.pop().flatten())
    }

    fn autocommit(&self) -> bool {
        // SAFETY: plain getter on a valid handle.
        unsafe { ffi::sqlite3_get_autocommit(self.db) != 0 }
    }

    /// Runs one statement of zdm's own, ignoring its outcome (the replay reports the
    /// file's statements, not these).
    fn exec(&mut self, sql: &str) {
        let _ = self.rows(sql, 0);
    }

    fn errmsg(&self) -> String {
        // SAFETY: SQLite returns a NUL-terminated message owned by the handle.
        unsafe { text(ffi::sqlite3_errmsg(self.db)) }.unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: closed once; every statement was finalized where it was prepared.
        unsafe { ffi::sqlite3_close(self.db) };
    }
}

/// SQLite's authorizer: records what the statement being prepared does, allows all.
unsafe extern "C" fn authorizer(
    user: *mut c_void,
    code: c_int,
    a: *const c_char,
    b: *const c_char,
    _db: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: `user` is the engine's boxed log (see `Engine::open`); the strings are NUL
    // terminated or null.
    let log = unsafe { &mut *user.cast::<AuthLog>() };
    if log.recording {
        log.actions.push(Auth { code, a: unsafe { text(a) }, b: unsafe { text(b) } });
    }
    ffi::SQLITE_OK
}

/// A C string SQLite handed out, copied.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: the caller passes null or a NUL-terminated string.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// SQLite's parser messages (`near "x": syntax error`, `incomplete input`, `unrecognized
/// token: ".."`); every other refusal is about the schema, not the text.
fn is_syntax_error(message: &str) -> bool {
    message.ends_with("syntax error")
        || message.starts_with("incomplete input")
        || message.starts_with("unrecognized token")
}

/// Where the statement starting at `start` ends (after its `;`), by SQLite's own
/// tokenizer: the first `;` after which the text is a complete statement. Strings,
/// comments and a trigger's `BEGIN .. END` keep their semicolons.
fn statement_end(sql: &str, start: usize) -> usize {
    for (i, _) in sql[start..].match_indices(';') {
        let end = start + i + 1;
        let Ok(text) = CString::new(&sql[start..end]) else {
            break;
        };
        // SAFETY: a NUL-terminated string.
        if unsafe { ffi::sqlite3_complete(text.as_ptr()) } != 0 {
            return end;
        }
    }
    sql.len()
}

/// `start..end` without a trailing `;` and white space.
fn trim_end(sql: &str, start: usize, end: usize) -> usize {
    let text = sql[start..end].trim_end();
    let text = text.strip_suffix(';').unwrap_or(text).trim_end();
    start + text.len()
}

/// The first byte at or after `pos` that is not white space or a comment.
fn skip_trivia(sql: &str, mut pos: usize) -> usize {
    let b = sql.as_bytes();
    while pos < b.len() {
        if b[pos].is_ascii_whitespace() || b[pos] == b';' {
            pos += 1;
        } else if b[pos..].starts_with(b"--") {
            pos = sql[pos..].find('\n').map_or(b.len(), |i| pos + i + 1);
        } else if b[pos..].starts_with(b"/*") {
            pos = sql[pos + 2..].find("*/").map_or(b.len(), |i| pos + 2 + i + 2);
        } else {
            break;
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_statements_and_reads_the_schema() {
        let mut e = Engine::open().unwrap();
        let sql = "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT 'x') STRICT;\n\
                   -- a comment; with a semicolon\n\
                   CREATE TABLE b (k TEXT PRIMARY KEY, a_id INTEGER REFERENCES a (id)) WITHOUT ROWID;\n\
                   INSERT OR IGNORE INTO a (name) VALUES ('one;two');\n\
                   PRAGMA foreign_keys = OFF;";
        let f = e.replay(sql, true);
        assert_eq!(f.stmts.len(), 4, "{:?}", f.stmts);
        assert!(f.stmts.iter().all(|s| s.outcome == Outcome::Ran), "{:?}", f.stmts);
        assert_eq!(
            &sql[f.stmts[1].range.clone()],
            "CREATE TABLE b (k TEXT PRIMARY KEY, a_id INTEGER REFERENCES a (id)) WITHOUT ROWID"
        );
        let after = &f.states[4];
        let a = &after.tables["a"];
        assert!(a.strict && !a.without_rowid);
        assert_eq!(a.columns[1].default.as_deref(), Some("'x'"));
        assert!(after.tables["b"].without_rowid);
        assert_eq!(after.tables["b"].references, ["a"]);
        assert!(f.states[0].tables.is_empty());
        let pragma = &f.stmts[3].actions[0];
        assert_eq!(
            (pragma.code, pragma.a.as_deref(), pragma.b.as_deref()),
            (ffi::SQLITE_PRAGMA, Some("foreign_keys"), Some("OFF"))
        );
    }

    #[test]
    fn a_syntax_error_points_at_its_first_bad_token_and_the_next_statement_is_read() {
        let mut e = Engine::open().unwrap();
        let sql = "CREATE TABLE a (id INTEGER);\nALTER TABLE a FROBNICATE x; SELECT ';';\nCREATE TABLE b (id INTEGER);";
        let f = e.replay(sql, false);
        assert_eq!(f.stmts.len(), 4, "{:?}", f.stmts);
        match &f.stmts[1].outcome {
            Outcome::Syntax { at, message } => {
                assert_eq!(&sql[*at..*at + 10], "FROBNICATE", "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&sql[f.stmts[1].range.clone()], "ALTER TABLE a FROBNICATE x");
        assert_eq!(f.stmts[3].outcome, Outcome::Ran);
        assert!(f.states[4].tables.contains_key("b"));
    }

    #[test]
    fn a_refusal_is_not_a_syntax_error() {
        let mut e = Engine::open().unwrap();
        let f = e.replay(
            "CREATE TABLE a (id INTEGER);\nALTER TABLE a ADD COLUMN n TEXT UNIQUE;\nINSERT INTO nope VALUES (1);",
            true,
        );
        assert!(
            matches!(&f.stmts[1].outcome, Outcome::Refused { message } if message.contains("UNIQUE")),
            "{:?}",
            f.stmts[1]
        );
        assert!(matches!(&f.stmts[2].outcome, Outcome::Refused { message } if message.contains("no such table")));
    }
}
