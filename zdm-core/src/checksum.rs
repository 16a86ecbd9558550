//! Checksums of migrations: SHA-384, the digest sqlx stores in `_sqlx_migrations`, so a
//! checksum of an unchanged sqlx file means the same thing in both ledgers.
//!
//! A Rust-coded migration has no file: its checksum is over its tokens, written out by
//! [`canonical_tokens`] in a form of zdm's own, so that it stays the same across
//! toolchains. (`TokenStream::to_string` is not that form: its spacing is an
//! implementation detail that changes between proc-macro2 and rustc versions.)

use sha2::{Digest, Sha384};

/// SHA-384 of `bytes`.
pub fn checksum(bytes: &[u8]) -> Vec<u8> {
    Sha384::digest(bytes).to_vec()
}

/// Lower-case hex, for messages that show two checksums side by side.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// One token of a Rust item, as the checksum of a Rust-coded migration sees it: the
/// macro crate converts the compiler's tokens into these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustToken {
    /// An identifier or keyword as written (`r#type` keeps its `r#`).
    Ident(String),
    /// One punctuation character; `joint` when the source had the next character glued
    /// to it (`&&`, `::`, `->`).
    Punct { ch: char, joint: bool },
    /// A literal exactly as written in the source (`"a b"`, `1_000u32`, `r#"x"#`).
    Literal(String),
    /// A delimited group and its tokens.
    Group { delimiter: Delimiter, tokens: Vec<RustToken> },
}

/// The delimiters of a [`RustToken::Group`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    Parenthesis,
    Brace,
    Bracket,
    /// An invisible group (a `macro_rules!` fragment): transparent, only its tokens count.
    None,
}

/// The checksum of a Rust-coded migration: SHA-384 of [`canonical_tokens`].
pub fn rust_checksum(tokens: &[RustToken]) -> Vec<u8> {
    checksum(canonical_tokens(tokens).as_bytes())
}

/// The tokens written one per line with a tag of their kind, each group's delimiters as
/// lines of their own: whitespace, line breaks and comments of the source are not tokens,
/// so they cannot change it; every identifier, punctuation and literal can. Doc comments
/// (`#[doc = ".."]` attributes, which the compiler has spelled differently over time) are
/// left out: they describe the migration, they do not run. A punctuation is marked joint
/// only before another punctuation (`&&` is not `& &`); what the compiler reports before
/// anything else has changed between versions and carries no meaning.
pub fn canonical_tokens(tokens: &[RustToken]) -> String {
    let mut out = String::new();
    write_tokens(&mut out, tokens);
    out
}

fn write_tokens(out: &mut String, tokens: &[RustToken]) {
    let flat = flatten(tokens);
    let mut i = 0;
    while i < flat.len() {
        if let Some(skip) = doc_attribute_len(&flat[i..]) {
            i += skip;
            continue;
        }
        match flat[i] {
            RustToken::Ident(text) => {
                out.push('i');
                out.push_str(text);
            }
            RustToken::Punct { ch, joint } => {
                let glued = *joint && matches!(flat.get(i + 1), Some(RustToken::Punct { .. }));
                out.push(if glued { 'P' } else { 'p' });
                out.push(*ch);
            }
            RustToken::Literal(text) => {
                // Length first: a literal may hold line breaks.
                out.push_str(&format!("l{}:", text.len()));
                out.push_str(text);
            }
            RustToken::Group { delimiter, tokens } => {
                let (open, close) = match delimiter {
                    Delimiter::Parenthesis => ('(', ')'),
                    Delimiter::Brace => ('{', '}'),
                    Delimiter::Bracket => ('[', ']'),
                    Delimiter::None => unreachable!("invisible groups are flattened"),
                };
                out.push(open);
                out.push('\n');
                write_tokens(out, tokens);
                out.push(close);
            }
        }
        out.push('\n');
        i += 1;
    }
}

/// The tokens with invisible groups replaced by their content.
fn flatten(tokens: &[RustToken]) -> Vec<&RustToken> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        match t {
            RustToken::Group { delimiter: Delimiter::None, tokens } => out.extend(flatten(tokens)),
            other => out.push(other),
        }
    }
    out
}

/// `# [doc ..]` or `# ! [doc ..]` at the start of `tokens`: how many tokens it spans.
fn doc_attribute_len(tokens: &[&RustToken]) -> Option<usize> {
    let is = |t: Option<&&RustToken>, c: char| matches!(t, Some(RustToken::Punct { ch, .. }) if *ch == c);
    if !is(tokens.first(), '#') {
        return None;
    }
    let bang = usize::from(is(tokens.get(1), '!'));
    match tokens.get(1 + bang) {
        Some(RustToken::Group { delimiter: Delimiter::Bracket, tokens: inner }) if matches!(inner.first(), Some(RustToken::Ident(name)) if name == "doc") => {
            Some(2 + bang)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(s: &str) -> RustToken {
        RustToken::Ident(s.into())
    }
    fn punct(ch: char, joint: bool) -> RustToken {
        RustToken::Punct { ch, joint }
    }
    fn lit(s: &str) -> RustToken {
        RustToken::Literal(s.into())
    }
    fn group(delimiter: Delimiter, tokens: Vec<RustToken>) -> RustToken {
        RustToken::Group { delimiter, tokens }
    }

    /// `fn up() { exec("<sql>") }`, optionally with a doc attribute and an invisible group.
    fn migration(sql: &str, doc: Option<&str>, invisible: bool) -> Vec<RustToken> {
        let call = vec![ident("exec"), group(Delimiter::Parenthesis, vec![lit(sql)])];
        let body = if invisible { vec![group(Delimiter::None, call)] } else { call };
        let mut out = Vec::new();
        if let Some(d) = doc {
            out.push(punct('#', false));
            out.push(group(Delimiter::Bracket, vec![ident("doc"), punct('=', false), lit(d)]));
        }
        out.extend([ident("fn"), ident("up"), group(Delimiter::Parenthesis, vec![]), group(Delimiter::Brace, body)]);
        out
    }

    #[test]
    fn canonical_form_is_one_tagged_token_per_line() {
        assert_eq!(
            canonical_tokens(&migration("\"SELECT 1\"", None, false)),
            "ifn\niup\n(\n)\n{\niexec\n(\nl10:\"SELECT 1\"\n)\n}\n"
        );
    }

    #[test]
    fn a_changed_literal_or_name_changes_the_checksum() {
        let a = rust_checksum(&migration("\"UPDATE t SET a = 1\"", None, false));
        assert_ne!(a, rust_checksum(&migration("\"UPDATE t SET a = 2\"", None, false)));
        let mut renamed = migration("\"UPDATE t SET a = 1\"", None, false);
        renamed[1] = ident("up2");
        assert_ne!(a, rust_checksum(&renamed));
    }

    #[test]
    fn docs_and_invisible_groups_do_not_count() {
        let plain = rust_checksum(&migration("\"SELECT 1\"", None, false));
        assert_eq!(plain, rust_checksum(&migration("\"SELECT 1\"", Some("\" adds posts\""), false)));
        assert_eq!(plain, rust_checksum(&migration("\"SELECT 1\"", Some("r\" adds posts\""), true)));
        // `#[allow(..)]` is not a doc comment: it counts.
        let mut allowed = migration("\"SELECT 1\"", None, false);
        allowed.splice(0..0, [punct('#', false), group(Delimiter::Bracket, vec![ident("allow")])]);
        assert_ne!(plain, rust_checksum(&allowed));
    }

    #[test]
    fn group_boundaries_and_glued_punctuation_count() {
        // `(a) b` vs `(a b)`.
        let one = [group(Delimiter::Parenthesis, vec![ident("a")]), ident("b")];
        let two = [group(Delimiter::Parenthesis, vec![ident("a"), ident("b")])];
        assert_ne!(canonical_tokens(&one), canonical_tokens(&two));
        // `a && b` vs `a & &b`.
        let and = [ident("a"), punct('&', true), punct('&', false), ident("b")];
        let refs = [ident("a"), punct('&', false), punct('&', false), ident("b")];
        assert_ne!(canonical_tokens(&and), canonical_tokens(&refs));
        // A lifetime's `'` (joint to an identifier in some compilers, alone in others).
        let joint = [punct('\'', true), ident("c")];
        let alone = [punct('\'', false), ident("c")];
        assert_eq!(canonical_tokens(&joint), canonical_tokens(&alone));
    }

    #[test]
    fn a_literal_with_line_breaks_cannot_pose_as_other_tokens() {
        let sneaky = [lit("\"x\nix\""), ident("y")];
        let honest = [lit("\"x"), ident("x\""), ident("y")];
        assert_ne!(canonical_tokens(&sneaky), canonical_tokens(&honest));
    }

    #[test]
    fn sha384_of_empty_input_is_the_known_digest() {
        assert_eq!(
            to_hex(&checksum(b"")),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        );
    }

    #[test]
    fn different_content_gives_different_checksums() {
        assert_ne!(checksum(b"SELECT 1;"), checksum(b"SELECT 2;"));
    }
}
