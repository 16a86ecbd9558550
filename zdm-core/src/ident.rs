//! Quoting identifiers that zdm writes into SQL, so no name is ever spliced in raw.

/// `name` as a double-quoted SQL identifier (`"my ""odd"" table"`), valid in PostgreSQL,
/// SQLite and (with ANSI_QUOTES) MySQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.name`, each part quoted; no schema means the connection's search path.
pub fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(name),
    }
}

/// `text` as a single-quoted SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified(Some("s"), "t"), "\"s\".\"t\"");
        assert_eq!(qualified(None, "t"), "\"t\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
