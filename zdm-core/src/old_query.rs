//! What zdm needs to know about a query of the build that is still deployed, read from its
//! text: whether it returns `*`, and which table and columns an `INSERT` writes. The
//! executor's old-query check (`zdm::testing`) combines this with what the database says
//! before and after each pending migration.

use squawk_syntax::{SourceFile, SyntaxKind as K, SyntaxNode};

use crate::lint::parse::name_of;

/// Facts of one query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryFacts {
    /// `SELECT *`, `t.*` or `RETURNING *`: its result follows the table's shape.
    pub star: bool,
    /// The table an `INSERT` writes (unqualified, normalised) and its column list, `None`
    /// when it has none (`INSERT INTO t VALUES (..)`).
    pub insert: Option<(String, Option<Vec<String>>)>,
}

/// Reads the facts of `sql` (one statement; a parse problem yields what could be read).
pub fn facts(sql: &str) -> QueryFacts {
    let file = SourceFile::parse(sql);
    let root = file.syntax_node();
    let star = root.descendants().filter(|n| n.kind() == K::TARGET).any(|t| is_star(&t));
    let insert = root.descendants().find(|n| n.kind() == K::INSERT).map(|ins| {
        let table = ins.children().find(|c| c.kind() == K::RELATION_NAME_REF).map(|r| name_of(&r)).unwrap_or_default();
        let columns = ins.children().find(|c| c.kind() == K::COLUMN_TARGET_LIST).map(|list| {
            list.children().filter(|c| c.kind() == K::COLUMN_TARGET).map(|c| name_of(&c)).collect::<Vec<_>>()
        });
        (table, columns)
    });
    QueryFacts { star, insert }
}

/// A target that is `*` or `alias.*`.
fn is_star(target: &SyntaxNode) -> bool {
    let tokens: Vec<K> = target
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .map(|t| t.kind())
        .filter(|k| !k.is_trivia())
        .collect();
    tokens.last() == Some(&K::STAR) && tokens.iter().all(|k| matches!(k, K::STAR | K::DOT | K::IDENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_are_found_in_select_and_returning() {
        assert!(facts("SELECT * FROM posts WHERE id = $1").star);
        assert!(facts("SELECT p.* FROM posts p").star);
        assert!(facts("UPDATE posts SET title = $1 RETURNING *").star);
        assert!(!facts("SELECT id, title FROM posts").star);
        assert!(!facts("SELECT count(*) FROM posts").star);
        assert!(!facts("SELECT 2 * 3").star);
    }

    #[test]
    fn inserts_name_their_table_and_columns() {
        assert_eq!(
            facts("INSERT INTO app.posts (title, \"Body\") VALUES ($1, $2) RETURNING id").insert,
            Some(("posts".into(), Some(vec!["title".into(), "Body".into()])))
        );
        assert_eq!(facts("INSERT INTO posts VALUES (1, 'x')").insert, Some(("posts".into(), None)));
        assert_eq!(facts("SELECT 1").insert, None);
    }
}
