//! zdm's own PostgreSQL queries go through the simple query protocol, with their values
//! written in as quoted literals.
//!
//! sqlx's extended protocol sends a statement's Parse/Describe and its Bind/Execute as two
//! round trips, each ending in a Sync. Behind PgBouncer in transaction mode the server
//! connection may change between the two, and a named statement (`sqlx_s_2`) meets a
//! server that already has one of that name. One `Query` message per statement carries
//! no session state and works through any pooler. Values are never spliced as text: each
//! is rendered by [`Lit`] with `quote_literal` and an explicit cast.

use sqlx::postgres::{PgQueryResult, PgRow};
use sqlx::{AssertSqlSafe, PgExecutor};

use zdm_core::ident::quote_literal;

/// One value of a statement.
#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Text(String),
    Int(i64),
    Int4(i32),
    Float(f64),
    Bool(bool),
    Bytes(Vec<u8>),
    Ints(Vec<i64>),
    Texts(Vec<String>),
    Null,
}

impl Lit {
    fn render(&self) -> String {
        match self {
            // `E''` when there is a backslash: read the same whatever standard_conforming_strings says.
            Lit::Text(t) => format!("{}::text", literal(t)),
            Lit::Int(i) => format!("'{i}'::int8"),
            Lit::Int4(i) => format!("'{i}'::int4"),
            Lit::Float(f) if f.is_finite() => format!("'{f:?}'::float8"),
            Lit::Float(_) => "'NaN'::float8".to_string(),
            Lit::Bool(b) => (if *b { "true" } else { "false" }).to_string(),
            Lit::Bytes(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!("decode('{hex}', 'hex')")
            }
            Lit::Ints(v) => {
                format!("ARRAY[{}]::int8[]", v.iter().map(|i| format!("'{i}'::int8")).collect::<Vec<_>>().join(","))
            }
            Lit::Texts(v) => {
                format!("ARRAY[{}]::text[]", v.iter().map(|t| literal(t)).collect::<Vec<_>>().join(","))
            }
            Lit::Null => "NULL".to_string(),
        }
    }
}

pub(crate) fn literal(t: &str) -> String {
    if t.contains('\\') {
        format!("E'{}'", t.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        quote_literal(t)
    }
}

impl From<&str> for Lit {
    fn from(v: &str) -> Lit {
        Lit::Text(v.to_string())
    }
}
impl From<&String> for Lit {
    fn from(v: &String) -> Lit {
        Lit::Text(v.clone())
    }
}
impl From<String> for Lit {
    fn from(v: String) -> Lit {
        Lit::Text(v)
    }
}
impl From<i64> for Lit {
    fn from(v: i64) -> Lit {
        Lit::Int(v)
    }
}
impl From<i32> for Lit {
    fn from(v: i32) -> Lit {
        Lit::Int4(v)
    }
}
impl From<f64> for Lit {
    fn from(v: f64) -> Lit {
        Lit::Float(v)
    }
}
impl From<bool> for Lit {
    fn from(v: bool) -> Lit {
        Lit::Bool(v)
    }
}
impl From<&[u8]> for Lit {
    fn from(v: &[u8]) -> Lit {
        Lit::Bytes(v.to_vec())
    }
}
impl From<&Vec<i64>> for Lit {
    fn from(v: &Vec<i64>) -> Lit {
        Lit::Ints(v.clone())
    }
}
impl From<&[i64]> for Lit {
    fn from(v: &[i64]) -> Lit {
        Lit::Ints(v.to_vec())
    }
}
impl From<&Vec<String>> for Lit {
    fn from(v: &Vec<String>) -> Lit {
        Lit::Texts(v.clone())
    }
}
impl From<Vec<&str>> for Lit {
    fn from(v: Vec<&str>) -> Lit {
        Lit::Texts(v.into_iter().map(str::to_string).collect())
    }
}
impl From<&Option<String>> for Lit {
    fn from(v: &Option<String>) -> Lit {
        v.as_ref().map_or(Lit::Null, Into::into)
    }
}
impl<T: Into<Lit>> From<Option<T>> for Lit {
    fn from(v: Option<T>) -> Lit {
        v.map_or(Lit::Null, Into::into)
    }
}

/// A statement with `$1`, `$2`, .. placeholders and their values, sent as one simple query.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    template: String,
    args: Vec<Lit>,
}

/// A statement to send (see [`Sql`]).
pub(crate) fn sql(template: impl Into<String>) -> Sql {
    Sql { template: template.into(), args: Vec::new() }
}

impl Sql {
    pub(crate) fn bind(mut self, v: impl Into<Lit>) -> Sql {
        self.args.push(v.into());
        self
    }

    /// The statement with every placeholder replaced by its literal. Placeholders inside
    /// quoted strings, quoted identifiers and dollar-quoted bodies are left alone.
    pub(crate) fn text(&self) -> String {
        let src = self.template.as_bytes();
        let mut out = String::with_capacity(self.template.len() + 16 * self.args.len());
        let mut i = 0;
        let mut copied = 0;
        while i < src.len() {
            match src[i] {
                // `E'..'`: a backslash escapes the next character.
                b'\'' if i > 0 && matches!(src[i - 1], b'E' | b'e') && !ident_char(src.get(i.wrapping_sub(2))) => {
                    i += 1;
                    while i < src.len() {
                        match src[i] {
                            b'\\' => i += 2,
                            b'\'' if src.get(i + 1) == Some(&b'\'') => i += 2,
                            b'\'' => break,
                            _ => i += 1,
                        }
                    }
                    i += 1;
                }
                q @ (b'\'' | b'"') => {
                    // Skip to the closing quote (a doubled quote escapes itself).
                    i += 1;
                    while i < src.len() {
                        if src[i] == q {
                            if src.get(i + 1) == Some(&q) {
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                b'-' if src.get(i + 1) == Some(&b'-') => {
                    while i < src.len() && src[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if src.get(i + 1) == Some(&b'*') => {
                    // Block comments nest in PostgreSQL.
                    let mut depth = 0;
                    while i < src.len() {
                        if src[i] == b'/' && src.get(i + 1) == Some(&b'*') {
                            depth += 1;
                            i += 2;
                        } else if src[i] == b'*' && src.get(i + 1) == Some(&b'/') {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                }
                b'$' if src.get(i + 1).is_some_and(u8::is_ascii_digit)
                    && !ident_char(i.checked_sub(1).and_then(|p| src.get(p))) =>
                {
                    let start = i;
                    i += 1;
                    while i < src.len() && src[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n: usize = self.template[start + 1..i].parse().unwrap_or(0);
                    out.push_str(&self.template[copied..start]);
                    match n.checked_sub(1).and_then(|k| self.args.get(k)) {
                        Some(lit) => out.push_str(&format!("({})", lit.render())),
                        // A programming error of zdm's: leave it for the server to reject.
                        None => out.push_str(&self.template[start..i]),
                    }
                    copied = i;
                }
                b'$' if !ident_char(i.checked_sub(1).and_then(|p| src.get(p))) => {
                    // A dollar-quoted body: `$tag$ .. $tag$`.
                    let rest = &self.template[i + 1..];
                    match rest.find('$') {
                        Some(end) if rest[..end].chars().all(|c| c.is_alphanumeric() || c == '_') => {
                            let tag = &self.template[i..i + end + 2];
                            match self.template[i + tag.len()..].find(tag) {
                                Some(close) => i += tag.len() + close + tag.len(),
                                None => i = src.len(),
                            }
                        }
                        _ => i += 1,
                    }
                }
                _ => i += 1,
            }
        }
        out.push_str(&self.template[copied..]);
        out
    }

    pub(crate) async fn execute<'c, E: PgExecutor<'c>>(self, e: E) -> Result<PgQueryResult, sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(self.text())).execute(e).await
    }

    pub(crate) async fn fetch_all<'c, E: PgExecutor<'c>>(self, e: E) -> Result<Vec<PgRow>, sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(self.text())).fetch_all(e).await
    }

    pub(crate) async fn fetch_optional<'c, E: PgExecutor<'c>>(self, e: E) -> Result<Option<PgRow>, sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(self.text())).fetch_optional(e).await
    }

    pub(crate) async fn fetch_one<'c, E: PgExecutor<'c>>(self, e: E) -> Result<PgRow, sqlx::Error> {
        sqlx::raw_sql(AssertSqlSafe(self.text())).fetch_one(e).await
    }

    /// The first column of the only row.
    pub(crate) async fn scalar<'c, T, E>(self, e: E) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        E: PgExecutor<'c>,
    {
        use sqlx::Row;
        self.fetch_one(e).await?.try_get(0)
    }

    /// The first column of the row, if there is one.
    pub(crate) async fn scalar_optional<'c, T, E>(self, e: E) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        E: PgExecutor<'c>,
    {
        use sqlx::Row;
        self.fetch_optional(e).await?.map(|r| r.try_get(0)).transpose()
    }

    /// The only row, decoded as a tuple (or any `FromRow`).
    pub(crate) async fn row_as<'c, T, E>(self, e: E) -> Result<T, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
        E: PgExecutor<'c>,
    {
        T::from_row(&self.fetch_one(e).await?)
    }

    /// The row, if there is one, decoded as a tuple (or any `FromRow`).
    pub(crate) async fn row_as_optional<'c, T, E>(self, e: E) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
        E: PgExecutor<'c>,
    {
        self.fetch_optional(e).await?.as_ref().map(T::from_row).transpose()
    }

    /// Every row, decoded as a tuple (or any `FromRow`).
    pub(crate) async fn rows_as<'c, T, E>(self, e: E) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::FromRow<'r, PgRow>,
        E: PgExecutor<'c>,
    {
        self.fetch_all(e).await?.iter().map(T::from_row).collect()
    }

    /// The first column of every row.
    pub(crate) async fn scalars<'c, T, E>(self, e: E) -> Result<Vec<T>, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
        E: PgExecutor<'c>,
    {
        use sqlx::Row;
        self.fetch_all(e).await?.iter().map(|r| r.try_get(0)).collect()
    }
}

/// A byte that continues an identifier (so `x$1` is a name, not a placeholder).
fn ident_char(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_escape_strings_and_names_are_left_alone() {
        let s = sql("SELECT $1 -- it's $1\n, /* '$1' /* $2 */ */ $2, E'\\' $1', x$1, e'$1'").bind(1i64).bind(2i64);
        assert_eq!(s.text(), "SELECT ('1'::int8) -- it's $1\n, /* '$1' /* $2 */ */ ('2'::int8), E'\\' $1', x$1, e'$1'");
    }

    #[test]
    fn placeholders_become_quoted_literals() {
        let s = sql("SELECT $1, $2, $10, '$1', \"$2\", $3::bigint[], $zdm$ $1 $zdm$, $4")
            .bind("it's")
            .bind(5i64)
            .bind(&vec![1i64, -2])
            .bind(Option::<String>::None);
        assert_eq!(
            s.text(),
            "SELECT ('it''s'::text), ('5'::int8), $10, '$1', \"$2\", (ARRAY['1'::int8,'-2'::int8]::int8[])::bigint[], \
             $zdm$ $1 $zdm$, (NULL)"
        );
        let b = sql("SELECT $1, $2, $3, $4").bind(&[0u8, 255][..]).bind(true).bind(1.5f64).bind(vec!["a\\b", "c'd"]);
        assert_eq!(
            b.text(),
            "SELECT (decode('00ff', 'hex')), (true), ('1.5'::float8), (ARRAY[E'a\\\\b','c''d']::text[])"
        );
    }
}
