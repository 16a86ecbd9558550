//! The table rebuild: how SQLite makes the changes `ALTER TABLE` cannot (a type change, a
//! new constraint, dropping a column an index or a key uses). SQLite's documentation gives
//! it as twelve steps; a migration file shows one of two shapes:
//!
//! ```sql
//! CREATE TABLE new_posts (..);                       -- (a) build beside, swap in
//! INSERT INTO new_posts (..) SELECT .. FROM posts;
//! DROP TABLE posts;
//! ALTER TABLE new_posts RENAME TO posts;
//!
//! ALTER TABLE posts RENAME TO old_posts;             -- (b) move aside, build in place
//! CREATE TABLE posts (..);
//! INSERT INTO posts (..) SELECT .. FROM old_posts;
//! DROP TABLE old_posts;
//! ```
//!
//! Either way the table keeps its name, so the `DROP TABLE` and the rename are not what an
//! old build sees: it sees the table change from its shape before to its shape after. A
//! [`Rebuild`] holds both, and the rules judge the difference (a column gone, a type
//! changed, a required column added) at the first statement that touches the old table.

use super::model::{Alter, Kind, Snapshot, Stmt, Table};

/// One rebuild of an existing table in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebuild {
    /// The table's name before and after.
    pub table: String,
    /// Its shape before the rebuild and after it.
    pub old: Table,
    pub new: Table,
    /// The statement findings point at: the `DROP TABLE` of (a), the first rename of (b).
    pub at: usize,
    /// Every statement of the rebuild (create, copy, drop, rename).
    pub parts: Vec<usize>,
    /// The other tables whose foreign keys reference it.
    pub referenced_by: Vec<String>,
}

/// The rebuilds of existing tables among `stmts`; `states[i]` is the schema before
/// statement `i`, `states[len]` after the file.
pub fn find(stmts: &[Stmt], states: &[Snapshot]) -> Vec<Rebuild> {
    let mut out = Vec::new();
    let created_before = |i: usize, table: &str| {
        stmts[..i].iter().any(|s| matches!(&s.kind, Kind::CreateTable { table: t } if t.eq_ignore_ascii_case(table)))
    };
    for (i, stmt) in stmts.iter().enumerate() {
        match &stmt.kind {
            // (a) DROP TABLE posts .. ALTER TABLE new_posts RENAME TO posts
            Kind::DropTable { table } if states[i].table(table).is_some() && !created_before(i, table) => {
                let rename = stmts.iter().enumerate().skip(i + 1).find(|(_, s)| {
                    matches!(&s.kind, Kind::AlterTable { change: Alter::RenameTo { to }, .. } if to.eq_ignore_ascii_case(table))
                });
                let Some((j, Stmt { kind: Kind::AlterTable { table: built, .. }, .. })) = rename else {
                    continue;
                };
                let mut parts = vec![i, j];
                parts.extend(copy_steps(stmts, built, table, j));
                if let Some(r) = rebuild(table, i, j, parts, states) {
                    out.push(r);
                }
            }
            // (b) ALTER TABLE posts RENAME TO old_posts .. CREATE TABLE posts .. DROP TABLE old_posts
            Kind::AlterTable { table, change: Alter::RenameTo { to } } if !created_before(i, table) => {
                let create =
                    stmts.iter().enumerate().skip(i + 1).find(
                        |(_, s)| matches!(&s.kind, Kind::CreateTable { table: t } if t.eq_ignore_ascii_case(table)),
                    );
                let drop = stmts
                    .iter()
                    .enumerate()
                    .skip(i + 1)
                    .find(|(_, s)| matches!(&s.kind, Kind::DropTable { table: t } if t.eq_ignore_ascii_case(to)));
                let (Some((k, _)), Some((j, _))) = (create, drop) else {
                    continue;
                };
                let mut parts = vec![i, k, j];
                parts.extend(copy_steps(stmts, table, to, j));
                if let Some(r) = rebuild(table, i, j.max(k), parts, states) {
                    out.push(r);
                }
            }
            _ => {}
        }
    }
    out
}

/// The `INSERT INTO built .. SELECT .. FROM source` copies before statement `until`.
fn copy_steps(stmts: &[Stmt], built: &str, source: &str, until: usize) -> Vec<usize> {
    (0..until)
        .filter(|&k| {
            matches!(&stmts[k].kind, Kind::Insert { table, reads }
                if table.eq_ignore_ascii_case(built) && reads.iter().any(|r| r.eq_ignore_ascii_case(source)))
        })
        .collect()
}

fn rebuild(table: &str, at: usize, last: usize, mut parts: Vec<usize>, states: &[Snapshot]) -> Option<Rebuild> {
    let before = &states[at];
    let old = before.table(table)?.clone();
    let new = states[last + 1].table(table)?.clone();
    parts.sort_unstable();
    parts.dedup();
    let referenced_by = before.referenced_by(table).into_iter().map(str::to_string).collect();
    Some(Rebuild { table: old.name.clone(), old, new, at, parts, referenced_by })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::super::replay::Engine;
    use super::super::statements;
    use super::*;

    fn rebuilds(setup: &str, sql: &str) -> (Vec<Stmt>, Vec<Rebuild>) {
        let mut e = Engine::open().unwrap();
        e.replay(setup, true);
        let f = e.replay(sql, true);
        let stmts = statements(&f);
        let found = find(&stmts, &f.states);
        (stmts, found)
    }

    const SETUP: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, slug TEXT);\n\
                         CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER REFERENCES posts (id));";

    #[test]
    fn build_beside_and_swap_in() {
        let (_, found) = rebuilds(
            SETUP,
            "CREATE TABLE new_posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n\
             INSERT INTO new_posts (id, title) SELECT id, title FROM posts;\n\
             DROP TABLE posts;\n\
             ALTER TABLE new_posts RENAME TO posts;",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let r = &found[0];
        assert_eq!((r.at, r.parts.clone()), (2, vec![1, 2, 3]));
        assert_eq!(r.old.columns.len(), 3);
        assert_eq!(r.new.columns.len(), 2);
        assert_eq!(r.referenced_by, ["comments"]);
    }

    #[test]
    fn move_aside_and_build_in_place() {
        let (_, found) = rebuilds(
            SETUP,
            "ALTER TABLE posts RENAME TO old_posts;\n\
             CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, slug TEXT, n INTEGER NOT NULL);\n\
             INSERT INTO posts (id, title, slug, n) SELECT id, title, slug, 0 FROM old_posts;\n\
             DROP TABLE old_posts;",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].at, found[0].parts.clone()), (0, vec![0, 1, 2, 3]));
        assert_eq!(found[0].new.columns.len(), 4);
    }

    #[test]
    fn a_plain_drop_or_rename_is_no_rebuild() {
        assert!(rebuilds(SETUP, "DROP TABLE comments;").1.is_empty());
        assert!(rebuilds(SETUP, "ALTER TABLE comments RENAME TO remarks;").1.is_empty());
        // A table made in the same file and swapped is not an existing table's rebuild.
        assert!(rebuilds(
            SETUP,
            "CREATE TABLE a (x INTEGER); CREATE TABLE b (x INTEGER); DROP TABLE a; ALTER TABLE b RENAME TO a;"
        )
        .1
        .is_empty());
    }
}
