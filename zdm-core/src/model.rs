//! Model structs as zdm sees them: which table a struct reads, which columns its fields
//! map to (after sqlx's `rename` / `rename_all`), and which columns it declares unused
//! with `#[zdm::ignored_columns]`. The macro asks this module; the executor publishes the
//! result in the instance registry and checks drops against it.

use heck::{ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};

/// sqlx's `#[sqlx(rename_all = "...")]` conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameAll {
    Lower,
    Snake,
    Upper,
    ScreamingSnake,
    Kebab,
    Camel,
    Pascal,
}

impl RenameAll {
    /// The convention named as sqlx spells it, or `None`.
    pub fn parse(name: &str) -> Option<RenameAll> {
        Some(match name {
            "lowercase" => RenameAll::Lower,
            "snake_case" => RenameAll::Snake,
            "UPPERCASE" => RenameAll::Upper,
            "SCREAMING_SNAKE_CASE" => RenameAll::ScreamingSnake,
            "kebab-case" => RenameAll::Kebab,
            "camelCase" => RenameAll::Camel,
            "PascalCase" => RenameAll::Pascal,
            _ => return None,
        })
    }

    pub const NAMES: &'static str =
        "lowercase, snake_case, UPPERCASE, SCREAMING_SNAKE_CASE, kebab-case, camelCase, PascalCase";

    pub fn apply(self, field: &str) -> String {
        match self {
            RenameAll::Lower => field.to_lowercase(),
            RenameAll::Snake => field.to_snake_case(),
            RenameAll::Upper => field.to_uppercase(),
            RenameAll::ScreamingSnake => field.to_shouty_snake_case(),
            RenameAll::Kebab => field.to_kebab_case(),
            RenameAll::Camel => field.to_lower_camel_case(),
            RenameAll::Pascal => field.to_upper_camel_case(),
        }
    }
}

/// The column a field maps to, as sqlx's `FromRow` derive decides it.
pub fn column_of(field: &str, rename: Option<&str>, rename_all: Option<RenameAll>) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    match (rename, rename_all) {
        (Some(r), _) => r.to_string(),
        (None, Some(all)) => all.apply(field),
        (None, None) => field.to_string(),
    }
}

/// What a model struct declares, embedded in the binary and published by each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInfo {
    /// The struct's path (`module_path!()::Name`), for messages.
    pub name: &'static str,
    /// The table as written in the attribute (`posts` or `schema.posts`).
    pub table: &'static str,
    /// The columns its fields map to.
    pub columns: &'static [&'static str],
    /// The columns it declares unused.
    pub ignored: &'static [&'static str],
}

/// `table` names the same table as `schema.name` (a table written without a schema
/// matches any schema; unquoted names compare case-insensitively, as PostgreSQL folds them).
pub fn same_table(table: &str, schema: Option<&str>, name: &str) -> bool {
    match table.rsplit_once('.') {
        Some((s, t)) => schema.is_none_or(|schema| s.eq_ignore_ascii_case(schema)) && t.eq_ignore_ascii_case(name),
        None => table.eq_ignore_ascii_case(name),
    }
}

/// The first struct among `models` that maps `column` of the table, if any.
pub fn mapping<'a>(models: &'a [ModelInfo], schema: Option<&str>, table: &str, column: &str) -> Option<&'a ModelInfo> {
    models
        .iter()
        .find(|m| same_table(m.table, schema, table) && m.columns.iter().any(|c| c.eq_ignore_ascii_case(column)))
}

/// The first struct among `models` that reads the table at all.
pub fn reader<'a>(models: &'a [ModelInfo], schema: Option<&str>, table: &str) -> Option<&'a ModelInfo> {
    models.iter().find(|m| same_table(m.table, schema, table))
}

/// Why a struct's attribute is wrong, for the macro to report on the right tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// Field `field` maps to `column`, which the struct also declares ignored.
    MapsIgnored { field: String, column: String },
    /// `column` is listed twice in `columns(...)`.
    IgnoredTwice { column: String },
}

/// How a struct declares its ignored columns, so a message quotes what the user wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// `#[zdm::ignored_columns(table = "..", columns(a, b))]`
    Attribute,
    /// `#[derive(zdm::Model)]` with `#[zdm(table = "..", ignored_columns(a, b))]`
    Derive,
}

impl Declared {
    /// The attribute that declares the columns unused.
    pub fn attribute(self) -> &'static str {
        match self {
            Declared::Attribute => "#[zdm::ignored_columns]",
            Declared::Derive => "#[zdm(ignored_columns(...))]",
        }
    }

    /// The list inside it.
    pub fn list(self) -> &'static str {
        match self {
            Declared::Attribute => "columns(...)",
            Declared::Derive => "ignored_columns(...)",
        }
    }
}

impl ModelError {
    /// The message, naming the attribute as the struct wrote it.
    pub fn message(&self, declared: Declared) -> String {
        let (attribute, list) = (declared.attribute(), declared.list());
        match self {
            ModelError::MapsIgnored { field, column } => format!(
                "field `{field}` maps to column `{column}`, which `{attribute}` declares unused \
                 (it may be dropped once no live build reads it): remove the field, or take `{column}` \
                 out of `{list}` if this build still needs it"
            ),
            ModelError::IgnoredTwice { column } => format!("column `{column}` is listed twice in `{list}`"),
        }
    }
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(Declared::Attribute))
    }
}

/// Where a [`ModelError`] points: the `i`-th field, or the `i`-th ignored column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Field(usize),
    Ignored(usize),
}

/// Checks fields (name and the column it maps to) against the ignored columns. Every
/// problem: ignored columns listed twice first, then fields in order.
pub fn check(fields: &[(String, String)], ignored: &[String]) -> Vec<(At, ModelError)> {
    let mut out = Vec::new();
    for (i, column) in ignored.iter().enumerate() {
        if ignored[..i].iter().any(|c| c.eq_ignore_ascii_case(column)) {
            out.push((At::Ignored(i), ModelError::IgnoredTwice { column: column.clone() }));
        }
    }
    for (i, (field, column)) in fields.iter().enumerate() {
        if ignored.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            out.push((At::Field(i), ModelError::MapsIgnored { field: field.clone(), column: column.clone() }));
        }
    }
    out
}

/// `"a", "b"`: the quoted column list for SELECT and RETURNING.
pub fn column_list(columns: &[String]) -> String {
    columns.iter().map(|c| crate::ident::quote_ident(c)).collect::<Vec<_>>().join(", ")
}

/// A table name as written in the attribute (`posts`, `app.posts`), each part quoted.
pub fn quote_table(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => crate::ident::qualified(Some(schema), name),
        None => crate::ident::quote_ident(table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_sqlx_renames() {
        assert_eq!(column_of("title", None, None), "title");
        assert_eq!(column_of("r#type", None, None), "type");
        assert_eq!(column_of("title", Some("headline"), Some(RenameAll::Upper)), "headline");
        assert_eq!(column_of("legacySlug", None, RenameAll::parse("snake_case")), "legacy_slug");
        assert_eq!(column_of("legacy_slug", None, RenameAll::parse("camelCase")), "legacySlug");
        assert_eq!(column_of("legacy_slug", None, RenameAll::parse("SCREAMING_SNAKE_CASE")), "LEGACY_SLUG");
        assert_eq!(RenameAll::parse("Title Case"), None);
    }

    #[test]
    fn an_ignored_column_mapped_by_a_field_is_reported() {
        let fields = vec![("id".to_string(), "id".to_string()), ("slug".to_string(), "legacy_slug".to_string())];
        let errs = check(&fields, &["legacy_slug".to_string(), "description".to_string()]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, At::Field(1));
        assert!(errs[0].1.to_string().contains("field `slug` maps to column `legacy_slug`"));
        let derived = errs[0].1.message(Declared::Derive);
        assert!(
            derived.contains("`#[zdm(ignored_columns(...))]` declares")
                && derived.contains("out of `ignored_columns(...)`")
        );
        assert!(check(&fields, &["description".into()]).is_empty());
        let twice = check(&fields, &["description".into(), "Description".into()]);
        assert!(matches!(&twice[0].1, ModelError::IgnoredTwice { column } if column == "Description"));
        assert_eq!(twice[0].0, At::Ignored(1));
    }

    #[test]
    fn tables_match_with_or_without_schema() {
        assert!(same_table("posts", Some("public"), "posts"));
        assert!(same_table("public.posts", Some("public"), "posts"));
        assert!(!same_table("other.posts", Some("public"), "posts"));
        assert!(same_table("Posts", None, "posts"));
        assert!(!same_table("post", None, "posts"));
        let models = [ModelInfo { name: "app::Post", table: "posts", columns: &["id", "title"], ignored: &["body"] }];
        assert_eq!(mapping(&models, Some("public"), "posts", "title").map(|m| m.name), Some("app::Post"));
        assert!(mapping(&models, Some("public"), "posts", "body").is_none());
        assert!(reader(&models, None, "comments").is_none());
    }

    #[test]
    fn column_lists_are_quoted() {
        assert_eq!(column_list(&["id".into(), "order".into()]), "\"id\", \"order\"");
        assert_eq!(quote_table("app.posts"), "\"app\".\"posts\"");
    }
}
