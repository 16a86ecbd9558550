//! The one place that knows the SQL parser: squawk-syntax (the parser of the squawk
//! linter: pure Rust, a lossless tree with byte ranges on every node and error, error
//! recovery). It turns a file into the analyzer's [`Stmt`] model, so swapping parsers
//! means rewriting this file only.
//!
//! Keywords are tokens of the tree, so words inside string literals, dollar-quoted bodies
//! and comments never look like SQL here.

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind as K, SyntaxNode};

use super::model::{Action, ColumnDef, ConstraintDef, ConstraintKind, DefaultKind, Stmt, StmtKind};
use super::types::TypeName;

/// Functions whose value changes per row: a column added with one as its default makes
/// PostgreSQL rewrite the table.
const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "pg_current_xact_id",
    "setseed",
];

/// Parses `sql` into statements; what the parser cannot read becomes
/// [`StmtKind::Unparsable`] with the parser's message.
pub fn parse(sql: &str) -> Vec<Stmt> {
    let parse = SourceFile::parse(sql);
    let root = parse.syntax_node();
    let errors = parse.errors();
    let mut out = Vec::new();
    for node in root.children() {
        let range = stmt_range(&node);
        let error = errors.iter().find(|e| {
            let r = e.range();
            let (s, t) = (usize::from(r.start()), usize::from(r.end()));
            s >= usize::from(node.text_range().start()) && t <= usize::from(node.text_range().end())
        });
        if let Some(e) = error {
            out.push(Stmt { range, kind: StmtKind::Unparsable { message: e.message().to_string() } });
            continue;
        }
        if node.kind() == K::ERROR {
            out.push(Stmt { range, kind: StmtKind::Unparsable { message: "not a statement".to_string() } });
            continue;
        }
        if node.kind() == K::DO {
            out.extend(do_block(&node, range));
            continue;
        }
        out.push(Stmt { kind: classify(&node), range });
    }
    // Errors outside every statement node (stray tokens between statements).
    for e in &errors {
        let start = usize::from(e.range().start());
        if !out.iter().any(|s| s.range.start <= start && start <= s.range.end) {
            let end = usize::from(e.range().end()).max(start);
            out.push(Stmt { range: start..end, kind: StmtKind::Unparsable { message: e.message().to_string() } });
        }
    }
    out.sort_by_key(|s| s.range.start);
    out
}

fn stmt_range(node: &SyntaxNode) -> std::ops::Range<usize> {
    let r = node.text_range();
    let start = usize::from(r.start());
    let mut end = usize::from(r.end());
    if let Some(last) = node.last_token() {
        if last.kind() == K::SEMICOLON {
            end = usize::from(last.text_range().start());
        }
    }
    start..end.max(start)
}

/// A `DO` block runs now. With `EXECUTE` its SQL is built at run time: unanalysable. A plain
/// `BEGIN .. END` of static statements is analysed statement by statement; procedural
/// code (variables, IF, loops) is unanalysable.
fn do_block(node: &SyntaxNode, range: std::ops::Range<usize>) -> Vec<Stmt> {
    let unanalysable = |message: &str| {
        vec![Stmt { range: range.clone(), kind: StmtKind::Unparsable { message: message.to_string() } }]
    };
    let Some(lit) = child(node, K::LITERAL) else {
        return unanalysable("DO block without a body");
    };
    let text = lit.text().to_string();
    let lit_start = usize::from(lit.text_range().start());
    let Some((body, body_offset)) = dollar_body(&text) else {
        return unanalysable("DO block with a quoted body zdm does not read");
    };
    if contains_word(body, "execute") {
        return unanalysable("DO block with dynamic EXECUTE: its SQL is built at run time");
    }
    let lower = body.to_ascii_lowercase();
    let trimmed = lower.trim();
    let Some(inner) = trimmed
        .strip_prefix("begin")
        .and_then(|s| s.trim_end().strip_suffix("end").or_else(|| s.trim_end().strip_suffix("end;")))
    else {
        return unanalysable("DO block with procedural code (DECLARE, IF, loops) zdm cannot judge");
    };
    let inner_start = body_offset + (body.len() - body.trim_start().len()) + "begin".len();
    let inner_text = &body[inner_start - body_offset..inner_start - body_offset + inner.len()];
    let parsed = SourceFile::parse(inner_text);
    if !parsed.errors().is_empty() {
        return unanalysable("DO block with procedural code (DECLARE, IF, loops) zdm cannot judge");
    }
    let base = lit_start + inner_start;
    parse(inner_text)
        .into_iter()
        .map(|s| Stmt { range: base + s.range.start..base + s.range.end, kind: s.kind })
        .collect()
}

/// The body of a `$tag$ .. $tag$` literal and its offset in `text`.
fn dollar_body(text: &str) -> Option<(&str, usize)> {
    let rest = text.strip_prefix('$')?;
    let tag_end = rest.find('$')? + 2;
    let tag = &text[..tag_end];
    let body = text[tag_end..].strip_suffix(tag)?;
    Some((body, tag_end))
}

fn contains_word(text: &str, word: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.match_indices(word).any(|(i, _)| {
        let before = lower[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let after = lower[i + word.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        before && after
    })
}

fn classify(node: &SyntaxNode) -> StmtKind {
    match node.kind() {
        K::CREATE_TABLE => create_table(node),
        K::CREATE_TABLE_AS | K::SELECT_INTO => StmtKind::CreateTableAs { table: first_name(node).unwrap_or_default() },
        K::ALTER_TABLE => StmtKind::AlterTable {
            table: child_name(node, K::TABLE_RELATION_NAME).unwrap_or_default(),
            actions: node.children().filter_map(|a| action(&a)).collect(),
        },
        K::CREATE_INDEX => {
            let rel = child(node, K::TABLE_RELATION_NAME);
            StmtKind::CreateIndex {
                name: child_name(node, K::INDEX),
                table: rel.as_ref().map(name_of).unwrap_or_default(),
                unique: has_token(node, K::UNIQUE_KW),
                concurrently: has_token(node, K::CONCURRENTLY_KW),
                only: rel.as_ref().is_some_and(|r| has_token(r, K::ONLY_KW)),
                if_not_exists: child(node, K::IF_NOT_EXISTS).is_some(),
            }
        }
        K::DROP_INDEX => StmtKind::DropIndex {
            names: children(node, K::INDEX_REF).map(|n| name_of(&n)).collect(),
            concurrently: has_token(node, K::CONCURRENTLY_KW),
        },
        K::DROP_TABLE => StmtKind::DropTable {
            tables: children(node, K::TABLE_NAME_REF).map(|n| name_of(&n)).collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
        },
        K::DROP_SCHEMA => StmtKind::DropSchema { cascade: has_desc_token(node, K::CASCADE_KW) },
        K::DROP_DATABASE => StmtKind::DropDatabase,
        K::DROP_VIEW | K::DROP_MATERIALIZED_VIEW => StmtKind::DropView {
            names: node
                .children()
                .filter(|c| !matches!(c.kind(), K::IF_EXISTS | K::CASCADE | K::RESTRICT))
                .map(|n| name_of(&n))
                .collect(),
        },
        K::DROP_FUNCTION | K::DROP_PROCEDURE | K::DROP_ROUTINE | K::DROP_AGGREGATE => StmtKind::DropRoutine,
        K::TRUNCATE => StmtKind::Truncate {
            tables: node.descendants().filter(|d| d.kind() == K::TABLE_RELATION_NAME).map(|n| name_of(&n)).collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
        },
        K::ALTER_SCHEMA if child(node, K::SCHEMA_RENAME_TO).is_some() => StmtKind::RenameSchema,
        K::ALTER_TYPE if child(node, K::RENAME_VALUE).is_some() => StmtKind::RenameEnumValue,
        K::ALTER_TYPE if child(node, K::ADD_VALUE).is_some() => StmtKind::AddEnumValue {
            value: child(node, K::ADD_VALUE)
                .and_then(|a| child(&a, K::LITERAL))
                .map(|l| l.text().to_string().trim_matches('\'').to_string())
                .unwrap_or_default(),
        },
        K::REINDEX => StmtKind::Reindex {
            concurrently: has_desc_token(node, K::CONCURRENTLY_KW),
            table: child(node, K::REINDEX_TARGET_TABLE).and_then(|t| first_name(&t)),
        },
        K::REFRESH => StmtKind::RefreshMatView { concurrently: has_token(node, K::CONCURRENTLY_KW) },
        K::VACUUM if has_desc_token(node, K::FULL_KW) => StmtKind::TableRewrite {
            what: "VACUUM FULL",
            table: node.descendants().find(|d| d.kind() == K::TABLE_RELATION_NAME).map(|n| name_of(&n)),
        },
        K::CLUSTER => StmtKind::TableRewrite { what: "CLUSTER", table: child_name(node, K::TABLE_NAME_REF) },
        K::LOCK => StmtKind::Lock {
            tables: node.descendants().filter(|d| d.kind() == K::RELATION_NAME).map(|n| name_of(&n)).collect(),
        },
        K::UPDATE => StmtKind::Update {
            table: child_name(node, K::RELATION_NAME).unwrap_or_default(),
            has_where: node.children().any(|c| matches!(c.kind(), K::WHERE_CLAUSE | K::WHERE_CURRENT_OF)),
        },
        K::DELETE => StmtKind::Delete {
            table: child_name(node, K::RELATION_NAME).unwrap_or_default(),
            has_where: node.children().any(|c| matches!(c.kind(), K::WHERE_CLAUSE | K::WHERE_CURRENT_OF)),
        },
        K::INSERT => StmtKind::Insert {
            table: first_name(node).unwrap_or_default(),
            from_select: node
                .children()
                .any(|c| matches!(c.kind(), K::SELECT | K::COMPOUND_SELECT | K::PAREN_SELECT | K::SELECT_INTO)),
        },
        K::ALTER_DOMAIN if child(node, K::ADD_CONSTRAINT).is_some() => {
            StmtKind::AlterDomainAddConstraint { not_valid: has_desc_kind(node, K::NOT_VALID) }
        }
        K::CREATE_TRIGGER => StmtKind::CreateTrigger {
            table: child(node, K::ON_RELATION).and_then(|r| first_name(&r)).unwrap_or_default(),
        },
        K::CREATE_FUNCTION | K::CREATE_PROCEDURE => StmtKind::CreateRoutine,
        _ => StmtKind::Other,
    }
}

fn create_table(node: &SyntaxNode) -> StmtKind {
    let table = child_name(node, K::TABLE_NAME).unwrap_or_default();
    let mut columns = Vec::new();
    let mut constraints = Vec::new();
    if let Some(args) = child(node, K::TABLE_ARG_LIST) {
        for item in args.children() {
            if item.kind() == K::COLUMN {
                columns.push(column_def(&item));
            } else if let Some(c) = constraint_def(&item) {
                constraints.push(c);
            }
        }
    }
    StmtKind::CreateTable { table, columns, constraints, partitioned: child(node, K::PARTITION_BY).is_some() }
}

fn column_def(node: &SyntaxNode) -> ColumnDef {
    let mut c = ColumnDef {
        name: child_name(node, K::COLUMN_NAME).unwrap_or_default(),
        ty: node.children().find(|n| ast::Type::can_cast(n.kind())).map(|t| TypeName::parse(&t.text().to_string())),
        ..ColumnDef::default()
    };
    c.serial = c.ty.as_ref().is_some_and(|t| t.serial);
    for con in node.children() {
        match con.kind() {
            K::NOT_NULL_CONSTRAINT => c.not_null = true,
            K::PRIMARY_KEY_CONSTRAINT => {
                c.primary_key = true;
                c.not_null = true;
            }
            K::UNIQUE_CONSTRAINT => c.unique = true,
            K::CHECK_CONSTRAINT => c.check = true,
            K::DEFAULT_CONSTRAINT => c.default = Some(default_kind(&con)),
            K::GENERATED_CONSTRAINT => {
                c.generated_stored |= has_desc_kind(&con, K::GENERATED_STORED);
                c.identity |= has_desc_kind(&con, K::GENERATED_IDENTITY);
            }
            K::REFERENCES_CONSTRAINT => c.references = Some(child_name(&con, K::TABLE_NAME_REF).unwrap_or_default()),
            _ => {}
        }
    }
    c
}

fn default_kind(expr_parent: &SyntaxNode) -> DefaultKind {
    for d in expr_parent.descendants() {
        if d.kind() == K::CALL_EXPR {
            let name = child(&d, K::NAME_REF).or_else(|| d.children().next()).map(|n| name_of(&n)).unwrap_or_default();
            if VOLATILE_FUNCTIONS.contains(&name.as_str()) {
                return DefaultKind::Volatile;
            }
        }
    }
    let has_call = expr_parent.descendants().any(|d| d.kind() == K::CALL_EXPR)
        || expr_parent.descendants_with_tokens().any(|t| {
            matches!(
                t.kind(),
                K::CURRENT_TIMESTAMP_KW
                    | K::CURRENT_DATE_KW
                    | K::CURRENT_TIME_KW
                    | K::LOCALTIMESTAMP_KW
                    | K::LOCALTIME_KW
            )
        });
    if has_call {
        DefaultKind::Stable
    } else {
        DefaultKind::Constant
    }
}

fn constraint_def(node: &SyntaxNode) -> Option<ConstraintDef> {
    let kind = match node.kind() {
        K::CHECK_CONSTRAINT => {
            let columns: Vec<String> =
                node.descendants().filter(|d| d.kind() == K::NAME_REF).map(|n| name_of(&n)).collect();
            let body = normalize_expr(&node.text().to_string());
            let not_null_of = body
                .split_once("check")
                .map(|(_, e)| {
                    e.trim()
                        .trim_start_matches('(')
                        .trim_end_matches("not valid")
                        .trim()
                        .trim_end_matches(')')
                        .trim()
                        .to_string()
                })
                .and_then(|e| {
                    e.strip_suffix(" is not null")
                        .map(|c| c.trim_matches(|ch| ch == '(' || ch == ')').trim().trim_matches('"').to_string())
                })
                .filter(|c| !c.contains(' '));
            ConstraintKind::Check { columns, not_null_of }
        }
        K::FOREIGN_KEY_CONSTRAINT | K::REFERENCES_CONSTRAINT => {
            ConstraintKind::ForeignKey { references: child_name(node, K::TABLE_NAME_REF) }
        }
        K::UNIQUE_CONSTRAINT => ConstraintKind::Unique,
        K::PRIMARY_KEY_CONSTRAINT => ConstraintKind::PrimaryKey,
        K::EXCLUDE_CONSTRAINT => ConstraintKind::Exclude,
        K::NOT_NULL_CONSTRAINT | K::DEFAULT_CONSTRAINT | K::NULL_CONSTRAINT => ConstraintKind::Other,
        _ => return None,
    };
    Some(ConstraintDef {
        name: child(node, K::CONSTRAINT_NAME_CLAUSE).and_then(|c| child_name(&c, K::CONSTRAINT_NAME)),
        kind,
        not_valid: has_desc_kind(node, K::NOT_VALID),
        using_index: has_desc_kind(node, K::USING_INDEX) || has_desc_kind(node, K::USING_INDEX_NAME),
    })
}

fn action(node: &SyntaxNode) -> Option<Action> {
    Some(match node.kind() {
        K::ADD_COLUMN => Action::AddColumn(column_def(node)),
        K::DROP_COLUMN => Action::DropColumn { column: child_name(node, K::COLUMN_NAME_REF).unwrap_or_default() },
        K::ALTER_COLUMN => {
            let column = child_name(node, K::COLUMN_NAME_REF).unwrap_or_default();
            let Some(opt) = node.children().find(|c| c.kind() != K::COLUMN_NAME_REF) else {
                return Some(Action::Other);
            };
            match opt.kind() {
                K::SET_TYPE => Action::AlterType {
                    using: child(&opt, K::USING_EXPR).is_some_and(|u| !using_is_identity(&u, &column)),
                    column,
                    ty: opt
                        .children()
                        .find(|n| ast::Type::can_cast(n.kind()))
                        .map(|t| TypeName::parse(&t.text().to_string())),
                },
                K::SET_NOT_NULL => Action::SetNotNull { column },
                K::DROP_NOT_NULL => Action::DropNotNull { column },
                K::SET_DEFAULT => Action::SetDefault { column, default: default_kind(&opt) },
                K::DROP_DEFAULT => Action::DropDefault { column },
                _ => Action::Other,
            }
        }
        K::ADD_CONSTRAINT => Action::AddConstraint(node.children().find_map(|c| constraint_def(&c))?),
        K::VALIDATE_CONSTRAINT => {
            Action::ValidateConstraint { name: child_name(node, K::CONSTRAINT_NAME_REF).unwrap_or_default() }
        }
        K::DROP_CONSTRAINT => Action::DropConstraint {
            name: child_name(node, K::CONSTRAINT_NAME_REF).or_else(|| first_name(node)).unwrap_or_default(),
        },
        K::RENAME_COLUMN => Action::RenameColumn {
            from: child_name(node, K::COLUMN_NAME_REF).unwrap_or_default(),
            to: child_name(node, K::COLUMN_NAME).unwrap_or_default(),
        },
        K::TABLE_RENAME_TO => Action::RenameTo { to: child_name(node, K::TABLE_NAME).unwrap_or_default() },
        K::SET_LOGGED => Action::Rewrite { what: "SET LOGGED" },
        K::SET_UNLOGGED => Action::Rewrite { what: "SET UNLOGGED" },
        K::SET_TABLESPACE => Action::Rewrite { what: "SET TABLESPACE" },
        K::SET_ACCESS_METHOD => Action::Rewrite { what: "SET ACCESS METHOD" },
        K::ATTACH_PARTITION => {
            Action::AttachPartition { partition: child_name(node, K::TABLE_NAME_REF).unwrap_or_default() }
        }
        K::DETACH_PARTITION => Action::DetachPartition {
            partition: child_name(node, K::TABLE_NAME_REF).unwrap_or_default(),
            concurrently: has_desc_token(node, K::CONCURRENTLY_KW),
        },
        K::ENABLE_TRIGGER | K::DISABLE_TRIGGER | K::ENABLE_ALWAYS_TRIGGER | K::ENABLE_REPLICA_TRIGGER => {
            Action::EnableDisableTrigger
        }
        K::TABLE_RELATION_NAME | K::IF_EXISTS => return None,
        _ => Action::Other,
    })
}

/// `USING col` (or `USING col::type`) changes nothing that a plain `TYPE` would not.
fn using_is_identity(using: &SyntaxNode, column: &str) -> bool {
    let expr = normalize_expr(&using.text().to_string());
    let expr = expr.trim_start_matches("using").trim();
    let base = expr.split("::").next().unwrap_or(expr).trim().trim_matches('"');
    normalize_ident(base) == column || base == column
}

// ---- tree helpers ----------------------------------------------------------------

fn child(n: &SyntaxNode, kind: K) -> Option<SyntaxNode> {
    n.children().find(|c| c.kind() == kind)
}

fn children(n: &SyntaxNode, kind: K) -> impl Iterator<Item = SyntaxNode> {
    n.children().filter(move |c| c.kind() == kind)
}

fn has_token(n: &SyntaxNode, kind: K) -> bool {
    n.children_with_tokens().any(|e| e.kind() == kind)
}

fn has_desc_token(n: &SyntaxNode, kind: K) -> bool {
    n.descendants_with_tokens().any(|e| e.kind() == kind)
}

fn has_desc_kind(n: &SyntaxNode, kind: K) -> bool {
    n.descendants().any(|d| d.kind() == kind)
}

fn child_name(n: &SyntaxNode, kind: K) -> Option<String> {
    child(n, kind).map(|c| name_of(&c))
}

/// The name of the first name-like descendant (table, relation or path).
fn first_name(n: &SyntaxNode) -> Option<String> {
    n.descendants()
        .find(|d| {
            matches!(
                d.kind(),
                K::TABLE_NAME
                    | K::TABLE_NAME_REF
                    | K::RELATION_NAME
                    | K::RELATION_NAME_REF
                    | K::PATH
                    | K::PATH_REF
                    | K::NAME_REF
            )
        })
        .map(|d| name_of(&d))
}

/// The unqualified, normalised name a name node spells: `public."Posts"` → `Posts`,
/// `Public.Posts` → `posts`.
pub(crate) fn name_of(n: &SyntaxNode) -> String {
    let last = n
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .take_while(|t| t.kind() != K::L_PAREN)
        .filter(|t| !t.kind().is_trivia() && !matches!(t.kind(), K::DOT | K::STAR | K::ONLY_KW))
        .last();
    last.map(|t| normalize_ident(t.text())).unwrap_or_default()
}

pub(crate) fn normalize_ident(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => text.to_ascii_lowercase(),
    }
}

fn normalize_expr(text: &str) -> String {
    text.to_ascii_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}
