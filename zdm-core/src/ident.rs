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

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENT_BYTES: usize = 63;

/// `name` cut to what PostgreSQL keeps of it: at most 63 bytes, never in the middle of a
/// UTF-8 character (the server cuts a longer identifier the same way, with a notice), so a
/// name zdm derives is looked up as it was created.
pub fn clip_ident(name: &str) -> &str {
    if name.len() <= MAX_IDENT_BYTES {
        return name;
    }
    let mut end = MAX_IDENT_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
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

    #[test]
    fn clipped_names_keep_whole_characters_within_63_bytes() {
        assert_eq!(clip_ident("posts_title_not_null"), "posts_title_not_null");
        let ascii = "a".repeat(70);
        assert_eq!(clip_ident(&ascii).len(), 63);
        // 31 two-byte characters (62 bytes), then one more: 64 bytes, cut before it.
        let umlauts = "ü".repeat(32);
        assert_eq!(clip_ident(&umlauts), "ü".repeat(31));
        // A three-byte character straddling byte 63 goes whole.
        let mixed = format!("{}€tail", "a".repeat(61));
        assert_eq!(clip_ident(&mixed), "a".repeat(61));
        assert_eq!(clip_ident(&format!("{}€", "a".repeat(60))), format!("{}€", "a".repeat(60)));
    }
}
