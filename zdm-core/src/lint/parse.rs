//! The one place that knows the SQL parser: squawk-syntax (the parser of the squawk
//! linter: pure Rust, a lossless tree with byte ranges on every node and error, error
//! recovery). It turns a file into the analyzer's [`Stmt`] model, so swapping parsers
//! means rewriting this file only.
//!
//! Keywords are tokens of the tree, so words inside string literals, dollar-quoted bodies
//! and comments never look like SQL here.

use squawk_syntax::ast::{self, AstNode};
use std::ops::Range;

use squawk_syntax::{SourceFile, SyntaxKind as K, SyntaxNode};

use super::model::{qualify, Action, ColumnDef, ConstraintDef, ConstraintKind, DefaultKind, RowScope, Stmt, StmtKind};
use super::plpgsql::{self, Piece};
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

/// How deeply quoted SQL may nest (a `DO` block inside a `DO` block, an `EXECUTE` string
/// inside a block) before zdm stops reading it: each level is a string inside the one above.
const MAX_NESTING: usize = 4;

/// Parses `sql` into statements; what the parser cannot read becomes
/// [`StmtKind::Unparsable`] with the parser's message, one per statement, pointing at its
/// first bad token. A `DO` block becomes the statements it runs (see `lint::plpgsql`).
pub fn parse(sql: &str) -> Vec<Stmt> {
    parse_nested(sql, 0)
}

fn parse_nested(sql: &str, depth: usize) -> Vec<Stmt> {
    let parsed = SourceFile::parse(sql);
    let root = parsed.syntax_node();
    // The statements as the server reads them: the parser's nodes up to each `;`. After an
    // error the parser restarts at every token it cannot place, so one unreadable
    // statement is many nodes; it is still one statement, reported once.
    let mut units: Vec<Vec<SyntaxNode>> = Vec::new();
    let mut current = Vec::new();
    for element in root.children_with_tokens() {
        if let Some(node) = element.as_node() {
            current.push(node.clone());
            if node.last_token().is_some_and(|t| t.kind() == K::SEMICOLON) {
                units.push(std::mem::take(&mut current));
            }
        } else if element.kind() == K::SEMICOLON && !current.is_empty() {
            units.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        units.push(current);
    }
    let spans: Vec<Range<usize>> = units
        .iter()
        .map(|u| usize::from(u[0].text_range().start())..usize::from(u[u.len() - 1].text_range().end()))
        .collect();
    // The first error of each statement; one between statements counts for the next.
    let mut first_error: Vec<Option<(usize, String)>> = vec![None; units.len()];
    let mut out = Vec::new();
    for e in parsed.errors() {
        let at = usize::from(e.range().start());
        match spans.iter().position(|s| at <= s.end).or(units.len().checked_sub(1)) {
            Some(u) => {
                if first_error[u].as_ref().is_none_or(|(first, _)| at < *first) {
                    first_error[u] = Some((at, e.message().to_string()));
                }
            }
            None => out.push(unreadable(&root, at..at, at, e.message())),
        }
    }
    for ((nodes, span), error) in units.iter().zip(&spans).zip(first_error) {
        let error = error.or_else(|| {
            let bad = nodes.iter().find(|n| n.kind() == K::ERROR)?;
            Some((usize::from(bad.text_range().start()), "not a statement".to_string()))
        });
        if let Some((at, message)) = error {
            let range = stmt_range(&nodes[0], &nodes[nodes.len() - 1]);
            let at = at.clamp(span.start, span.end);
            out.push(unreadable(&root, range, at, &message));
            continue;
        }
        for node in nodes {
            let range = stmt_range(node, node);
            match node.kind() {
                K::EMPTY_STMT => {}
                K::DO => out.extend(do_block(node, range, depth)),
                _ => {
                    out.push(Stmt::new(range.clone(), classify(node)));
                    out.extend(data_modifying_ctes(node, &range));
                }
            }
        }
    }
    out.sort_by_key(|s| s.range.start);
    out
}

/// The statement that starts at `first` and ends with `last`, without its `;`.
fn stmt_range(first: &SyntaxNode, last: &SyntaxNode) -> Range<usize> {
    let start = usize::from(first.text_range().start());
    let mut end = usize::from(last.text_range().end());
    if let Some(t) = last.last_token() {
        if t.kind() == K::SEMICOLON {
            end = usize::from(t.text_range().start());
        }
    }
    start..end.max(start)
}

/// A statement the parser cannot read, pointing at the first token at or after the error.
fn unreadable(root: &SyntaxNode, range: Range<usize>, at: usize, message: &str) -> Stmt {
    let token = root
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .find(|t| usize::from(t.text_range().start()) >= at && !t.kind().is_trivia());
    let (focus, message) = match token {
        Some(t) if usize::from(t.text_range().start()) < range.end.max(at + 1) => {
            let text: String = t.text().chars().take(24).collect();
            (usize::from(t.text_range().start()), format!("{message}, at `{text}`"))
        }
        _ => (at, message.to_string()),
    };
    Stmt { focus: focus.clamp(range.start, range.end.max(range.start)), ..Stmt::new(range, unparsable(message)) }
}

fn unparsable(message: impl Into<String>) -> StmtKind {
    StmtKind::Unparsable { message: message.into() }
}

/// `WITH u AS (UPDATE ..) SELECT ..`: each data-modifying query of a `WITH` runs as surely
/// as the statement it feeds, so it is judged as a statement of its own.
fn data_modifying_ctes(node: &SyntaxNode, unit: &Range<usize>) -> Vec<Stmt> {
    let Some(with) = child(node, K::WITH_CLAUSE) else {
        return Vec::new();
    };
    with.descendants()
        .filter(|d| matches!(d.kind(), K::UPDATE | K::DELETE | K::INSERT))
        .map(|d| {
            let r = d.text_range();
            Stmt { unit: unit.clone(), ..Stmt::new(usize::from(r.start())..usize::from(r.end()), classify(&d)) }
        })
        .collect()
}

/// A `DO` block runs now: it is judged as the statements it runs. Only SQL built at run
/// time (`EXECUTE` of a built string) stays unanalysable.
fn do_block(node: &SyntaxNode, range: Range<usize>, depth: usize) -> Vec<Stmt> {
    let unanalysable = |message: &str| vec![Stmt::new(range.clone(), unparsable(message))];
    if let Some(lang) = child(node, K::DO_LANGUAGE) {
        let name = lang.children().next().map(|l| name_of(&l)).unwrap_or_default();
        if !name.eq_ignore_ascii_case("plpgsql") {
            return unanalysable("DO block in a language other than PL/pgSQL");
        }
    }
    let Some(lit) = child(node, K::LITERAL) else {
        return unanalysable("DO block without a body");
    };
    let Some(body) = Quoted::literal(&lit.text().to_string(), usize::from(lit.text_range().start())) else {
        return unanalysable("DO block with a quoted body zdm does not read");
    };
    if depth >= MAX_NESTING {
        return unanalysable("DO block nested too deeply to read");
    }
    block(&body, &range, depth)
}

/// The statements a PL/pgSQL block runs, with ranges in the file; `unit` is the `DO`
/// statement, which a `safety_assured` comment covers.
fn block(body: &Quoted, unit: &Range<usize>, depth: usize) -> Vec<Stmt> {
    let mut out = Vec::new();
    let inside = |s: Stmt, base: usize| Stmt {
        range: body.file(base + s.range.start)..body.file(base + s.range.end),
        focus: body.file(base + s.focus),
        unit: unit.clone(),
        kind: s.kind,
    };
    for piece in plpgsql::scan(&body.text) {
        match piece {
            Piece::Sql { range, blank } => {
                let mut text = body.text[range.clone()].to_string();
                for b in blank {
                    let (s, e) = (b.start - range.start, b.end - range.start);
                    text.replace_range(s..e, &" ".repeat(e - s));
                }
                out.extend(parse_nested(&text, depth + 1).into_iter().map(|s| inside(s, range.start)));
            }
            Piece::Execute { literal } => match body.inner(literal.clone()) {
                Some(sql) if depth + 1 < MAX_NESTING => {
                    out.extend(block_sql(&sql, depth + 1).into_iter().map(|s| Stmt { unit: unit.clone(), ..s }));
                }
                _ => {
                    out.push(inside(Stmt::new(literal.clone(), unparsable("EXECUTE of a string zdm does not read")), 0))
                }
            },
            Piece::Dynamic { range, what } => out.push(inside(Stmt::new(range, unparsable(what)), 0)),
        }
    }
    out
}

/// The SQL of an `EXECUTE` constant, with ranges in the file.
fn block_sql(sql: &Quoted, depth: usize) -> Vec<Stmt> {
    parse_nested(&sql.text, depth)
        .into_iter()
        .map(|s| Stmt {
            range: sql.file(s.range.start)..sql.file(s.range.end),
            focus: sql.file(s.focus),
            unit: sql.file(s.unit.start)..sql.file(s.unit.end),
            kind: s.kind,
        })
        .collect()
}

/// The text inside a quoted literal (`$tag$..$tag$` or `'..'` with `''` for a quote), and
/// where each of its bytes sits in the enclosing text.
struct Quoted {
    text: String,
    /// `origin[i]`: the offset of `text[i]` in the enclosing text (one more entry for the
    /// end).
    origin: Vec<usize>,
}

impl Quoted {
    /// Reads the literal `lit`, which starts at `at` in the enclosing text.
    fn literal(lit: &str, at: usize) -> Option<Quoted> {
        if let Some(rest) = lit.strip_prefix('$') {
            let tag_len = rest.find('$')? + 2;
            let tag = &lit[..tag_len];
            if lit.len() < 2 * tag_len || !lit.ends_with(tag) {
                return None;
            }
            let text = lit[tag_len..lit.len() - tag_len].to_string();
            let origin = (0..=text.len()).map(|i| at + tag_len + i).collect();
            return Some(Quoted { text, origin });
        }
        let inner = lit.strip_prefix('\'')?.strip_suffix('\'')?;
        let (mut text, mut origin) = (String::with_capacity(inner.len()), Vec::with_capacity(inner.len() + 1));
        let mut chars = inner.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                // A lone quote inside would have ended the literal: only `''` gets here.
                chars.next_if(|&(_, c)| c == '\'');
            }
            origin.extend((0..c.len_utf8()).map(|k| at + 1 + i + k));
            text.push(c);
        }
        origin.push(at + 1 + inner.len());
        Some(Quoted { text, origin })
    }

    /// The literal at `range` of this text, with offsets in the enclosing text of this one.
    fn inner(&self, range: Range<usize>) -> Option<Quoted> {
        let q = Quoted::literal(self.text.get(range.clone())?, range.start)?;
        Some(Quoted { origin: q.origin.iter().map(|&o| self.file(o)).collect(), text: q.text })
    }

    /// The offset in the enclosing text of offset `i` of this text.
    fn file(&self, i: usize) -> usize {
        self.origin.get(i).or(self.origin.last()).copied().unwrap_or(0)
    }
}

fn classify(node: &SyntaxNode) -> StmtKind {
    match node.kind() {
        K::CREATE_TABLE => create_table(node),
        K::CREATE_TABLE_AS | K::SELECT_INTO => {
            StmtKind::CreateTableAs { table: first_table(node).unwrap_or_default(), reads: Vec::new() }
        }
        K::CREATE_VIEW => match child(node, K::VIEW).map(|v| name_of(&v)).filter(|n| !n.is_empty()) {
            Some(name) => StmtKind::CreateView { name, reads: reads(node) },
            None => StmtKind::Other,
        },
        K::ALTER_TABLE => StmtKind::AlterTable {
            table: child_table(node, K::TABLE_RELATION_NAME).unwrap_or_default(),
            actions: node.children().filter_map(|a| action(&a)).collect(),
        },
        K::CREATE_INDEX => {
            let rel = child(node, K::TABLE_RELATION_NAME);
            StmtKind::CreateIndex {
                name: child_name(node, K::INDEX),
                table: rel.as_ref().map(table_of).unwrap_or_default(),
                unique: has_token(node, K::UNIQUE_KW),
                concurrently: has_token(node, K::CONCURRENTLY_KW),
                only: rel.as_ref().is_some_and(|r| has_token(r, K::ONLY_KW)),
                if_not_exists: child(node, K::IF_NOT_EXISTS).is_some(),
                columns: index_items(node).filter_map(|i| plain_column(&i)).collect(),
                expression_columns: index_items(node)
                    .filter(|i| plain_column(i).is_none())
                    .chain(child(node, K::WHERE_CLAUSE))
                    .flat_map(|e| {
                        e.descendants().filter(|d| d.kind() == K::NAME_REF).map(|n| name_of(&n)).collect::<Vec<_>>()
                    })
                    .collect(),
                implicit_name: implicit_index_name(rel.as_ref().map(table_of).unwrap_or_default(), node),
            }
        }
        K::DROP_INDEX => StmtKind::DropIndex {
            names: children(node, K::INDEX_REF).map(|n| table_of(&n)).collect(),
            concurrently: has_token(node, K::CONCURRENTLY_KW),
            if_exists: child(node, K::IF_EXISTS).is_some(),
        },
        K::DROP_TABLE => StmtKind::DropTable {
            tables: children(node, K::TABLE_NAME_REF).map(|n| table_of(&n)).collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
            if_exists: child(node, K::IF_EXISTS).is_some(),
        },
        K::DROP_SCHEMA => StmtKind::DropSchema { cascade: has_desc_token(node, K::CASCADE_KW) },
        K::DROP_DATABASE => StmtKind::DropDatabase,
        K::DROP_VIEW | K::DROP_MATERIALIZED_VIEW => StmtKind::DropView {
            names: node
                .children()
                .filter(|c| !matches!(c.kind(), K::IF_EXISTS | K::CASCADE | K::RESTRICT))
                .map(|n| name_of(&n))
                .collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
        },
        K::DROP_FUNCTION | K::DROP_PROCEDURE | K::DROP_ROUTINE | K::DROP_AGGREGATE => StmtKind::DropRoutine {
            names: node.descendants().filter(|d| d.kind() == K::FUNCTION_NAME_REF).map(|n| name_of(&n)).collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
        },
        K::TRUNCATE => StmtKind::Truncate {
            tables: node.descendants().filter(|d| d.kind() == K::TABLE_RELATION_NAME).map(|n| table_of(&n)).collect(),
            cascade: has_desc_token(node, K::CASCADE_KW),
        },
        K::ALTER_SCHEMA if child(node, K::SCHEMA_RENAME_TO).is_some() => StmtKind::RenameSchema,
        K::ALTER_TYPE if child(node, K::RENAME_VALUE).is_some() => StmtKind::RenameEnumValue,
        K::ALTER_TYPE if child(node, K::ADD_VALUE).is_some() => StmtKind::AddEnumValue {
            value: child(node, K::ADD_VALUE)
                .and_then(|a| child(&a, K::LITERAL))
                .and_then(|l| unquote_string(&l.text().to_string()))
                .unwrap_or_default(),
        },
        K::REINDEX => StmtKind::Reindex {
            concurrently: has_desc_token(node, K::CONCURRENTLY_KW),
            table: child(node, K::REINDEX_TARGET_TABLE).and_then(|t| first_table(&t)),
            index: child(node, K::REINDEX_TARGET_INDEX).and_then(|t| first_table(&t)),
        },
        K::COMMENT_ON => match (child(node, K::OBJECT_TABLE), child(node, K::OBJECT_COLUMN)) {
            (Some(t), _) => first_table(&t).map_or(StmtKind::Other, |table| StmtKind::Comment { table }),
            // `[schema.]table.column`: the table is the segment before the last.
            (None, Some(c)) => {
                let idents: Vec<String> = c
                    .descendants_with_tokens()
                    .filter_map(|e| e.into_token())
                    .filter(|t| t.kind() == K::IDENT)
                    .map(|t| normalize_ident(t.text()))
                    .collect();
                match idents.len() {
                    n if n >= 2 => StmtKind::Comment { table: idents[n - 2].clone() },
                    _ => StmtKind::Other,
                }
            }
            _ => StmtKind::Other,
        },
        K::DROP_TRIGGER => match child(node, K::ON_RELATION).and_then(|r| first_table(&r)) {
            Some(table) => StmtKind::DropTrigger { table },
            None => StmtKind::Other,
        },
        // A new relation, filled by its query.
        K::CREATE_MATERIALIZED_VIEW => match child(node, K::VIEW).map(|v| name_of(&v)).filter(|n| !n.is_empty()) {
            Some(table) => StmtKind::CreateTableAs { table, reads: reads(node) },
            None => StmtKind::Other,
        },
        K::REFRESH => StmtKind::RefreshMatView {
            concurrently: has_token(node, K::CONCURRENTLY_KW),
            view: child_name(node, K::VIEW_REF),
        },
        K::VACUUM if has_desc_token(node, K::FULL_KW) => StmtKind::TableRewrite {
            what: "VACUUM FULL",
            table: node.descendants().find(|d| d.kind() == K::TABLE_RELATION_NAME).map(|n| table_of(&n)),
        },
        K::CLUSTER => StmtKind::TableRewrite { what: "CLUSTER", table: child_table(node, K::TABLE_NAME_REF) },
        K::LOCK => StmtKind::Lock {
            tables: node.descendants().filter(|d| d.kind() == K::RELATION_NAME).map(|n| table_of(&n)).collect(),
        },
        K::UPDATE => {
            StmtKind::Update { table: child_table(node, K::RELATION_NAME).unwrap_or_default(), rows: row_scope(node) }
        }
        K::DELETE => {
            StmtKind::Delete { table: child_table(node, K::RELATION_NAME).unwrap_or_default(), rows: row_scope(node) }
        }
        K::INSERT => StmtKind::Insert {
            table: first_table(node).unwrap_or_default(),
            from_select: node
                .children()
                .any(|c| matches!(c.kind(), K::SELECT | K::COMPOUND_SELECT | K::PAREN_SELECT | K::SELECT_INTO)),
        },
        K::ALTER_DOMAIN if child(node, K::ADD_CONSTRAINT).is_some() => {
            StmtKind::AlterDomainAddConstraint { not_valid: has_desc_kind(node, K::NOT_VALID) }
        }
        K::CREATE_TRIGGER => StmtKind::CreateTrigger {
            table: child(node, K::ON_RELATION).and_then(|r| first_table(&r)).unwrap_or_default(),
            function: child(node, K::CALL_EXPR)
                .and_then(|c| child(&c, K::NAME_REF).or_else(|| c.children().next()))
                .map(|n| name_of(&n))
                .unwrap_or_default(),
        },
        K::CREATE_FUNCTION | K::CREATE_PROCEDURE => StmtKind::CreateRoutine {
            name: child(node, K::FUNCTION_NAME).map(|n| name_of(&n)).unwrap_or_default(),
            // PostgreSQL's default for a function is VOLATILE.
            volatile: child(node, K::FUNC_OPTION_LIST)
                .is_none_or(|o| !o.children().any(|c| matches!(c.kind(), K::IMMUTABLE | K::STABLE))),
            refreshes: refreshes(node),
        },
        K::ANALYZE => StmtKind::Analyze { tables: relations(node) },
        K::VACUUM => StmtKind::Analyze { tables: relations(node) },
        K::SET | K::RESET => search_path(node).unwrap_or(StmtKind::Other),
        _ => StmtKind::Other,
    }
}

/// The rows an `UPDATE` or `DELETE` touches: its `WHERE` bounds the batch when one of its
/// conjuncts (or every branch of an `OR`) does.
fn row_scope(node: &SyntaxNode) -> RowScope {
    if child(node, K::WHERE_CURRENT_OF).is_some() {
        return RowScope::Batch;
    }
    let Some(filter) = child(node, K::WHERE_CLAUSE) else {
        return RowScope::All;
    };
    if filter.children().next().is_some_and(|e| bounds_batch(&e)) {
        RowScope::Batch
    } else {
        RowScope::Unbounded
    }
}

fn bounds_batch(expr: &SyntaxNode) -> bool {
    let op = |kinds: &[K]| expr.children_with_tokens().find(|t| kinds.contains(&t.kind())).map(|t| t.kind());
    let operands: Vec<SyntaxNode> = expr.children().collect();
    match expr.kind() {
        K::PAREN_EXPR => operands.first().is_some_and(bounds_batch),
        K::BETWEEN_EXPR => {
            op(&[K::NOT_KW]).is_none()
                && operands.first().is_some_and(is_column)
                && operands[1..].iter().all(is_constant)
                && operands.len() == 3
        }
        K::BIN_EXPR if operands.len() == 2 => {
            let (lhs, rhs) = (&operands[0], &operands[1]);
            let limited = |e: &SyntaxNode| {
                e.descendants().any(|d| {
                    d.kind() == K::SELECT && d.children().any(|c| matches!(c.kind(), K::LIMIT_CLAUSE | K::FETCH_CLAUSE))
                })
            };
            match op(&[K::AND_KW, K::OR_KW, K::L_ANGLE, K::R_ANGLE, K::LTEQ, K::GTEQ, K::EQ, K::IN_KW]) {
                Some(K::AND_KW) => bounds_batch(lhs) || bounds_batch(rhs),
                Some(K::OR_KW) => bounds_batch(lhs) && bounds_batch(rhs),
                // A range on one column: the author chose the batch.
                Some(K::L_ANGLE | K::R_ANGLE | K::LTEQ | K::GTEQ) => {
                    (is_column(lhs) && is_constant(rhs)) || (is_constant(lhs) && is_column(rhs))
                }
                // Keys listed (or picked by a LIMITed subquery); `status = 'draft'` bounds nothing.
                Some(K::EQ | K::IN_KW) => is_column(lhs) && (limited(rhs) || (is_key(lhs) && is_constant(rhs))),
                _ => false,
            }
        }
        _ => false,
    }
}

fn is_column(e: &SyntaxNode) -> bool {
    matches!(e.kind(), K::NAME_REF | K::FIELD_EXPR)
}

/// The conventional key column, `id` (or `t.id`).
fn is_key(e: &SyntaxNode) -> bool {
    is_column(e) && name_of(e) == "id"
}

/// No column, no subquery: a literal, a parameter, a list or array of them, a function of
/// them.
fn is_constant(e: &SyntaxNode) -> bool {
    !e.descendants_with_tokens().any(|d| {
        (d.kind() == K::NAME_REF && d.parent().is_none_or(|p| p.kind() != K::CALL_EXPR)) || d.kind() == K::SELECT
    })
}

/// The values of the plain string literals of `sql` (`'calm'` → `calm`); words in comments,
/// identifiers and dollar-quoted bodies are not literals here.
pub fn string_literals(sql: &str) -> Vec<String> {
    let mut at = 0;
    let mut out = Vec::new();
    for t in squawk_lexer::tokenize(sql) {
        let text = sql.get(at..at + t.len as usize).unwrap_or_default();
        at += t.len as usize;
        if let squawk_lexer::TokenKind::Literal { kind: squawk_lexer::LiteralKind::Str { terminated: true } } = t.kind {
            out.extend(unquote_string(text));
        }
    }
    out
}

/// `'it''s'` → `it's`.
fn unquote_string(text: &str) -> Option<String> {
    Some(text.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'"))
}

/// `SET [LOCAL] search_path TO a, b` / `= DEFAULT` / `RESET search_path`; `None` for
/// any other setting.
fn search_path(node: &SyntaxNode) -> Option<StmtKind> {
    let (param, value) = match node.kind() {
        K::RESET => (child(node, K::CONFIG_PARAMETER_REF)?, None),
        _ => {
            let config = child(node, K::SET_CONFIG)?;
            (child(&config, K::CONFIG_PARAMETER_REF)?, child(&config, K::TO_CONFIG_VALUE))
        }
    };
    if name_of(&param) != "search_path" {
        return None;
    }
    let schemas = value.filter(|v| !has_token(v, K::DEFAULT_KW)).map(|v| {
        v.children()
            .filter_map(|c| match c.kind() {
                K::LITERAL => unquote_string(&c.text().to_string()),
                _ => Some(name_of(&c)),
            })
            .filter(|s| !s.is_empty())
            .collect()
    });
    Some(StmtKind::SetSearchPath { schemas, local: child(node, K::LOCAL_SCOPE).is_some() })
}

fn create_table(node: &SyntaxNode) -> StmtKind {
    let table = child_table(node, K::TABLE_NAME).unwrap_or_default();
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
    StmtKind::CreateTable {
        table,
        columns,
        constraints,
        partitioned: child(node, K::PARTITION_BY).is_some(),
        if_not_exists: child(node, K::IF_NOT_EXISTS).is_some(),
    }
}

fn column_def(node: &SyntaxNode) -> ColumnDef {
    let mut c = ColumnDef {
        name: child_name(node, K::COLUMN_NAME).unwrap_or_default(),
        if_not_exists: child(node, K::IF_NOT_EXISTS).is_some(),
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
            K::DEFAULT_CONSTRAINT => {
                c.default = Some(default_kind(&con));
                c.default_calls = default_calls(&con);
            }
            K::GENERATED_CONSTRAINT => {
                c.generated_stored |= has_desc_kind(&con, K::GENERATED_STORED);
                c.identity |= has_desc_kind(&con, K::GENERATED_IDENTITY);
            }
            K::REFERENCES_CONSTRAINT => {
                c.references = Some(child_table(&con, K::TABLE_NAME_REF).unwrap_or_default());
                c.references_columns = referenced_columns(&con);
            }
            _ => {}
        }
    }
    c
}

/// The name PostgreSQL chooses for an unnamed index: the table, each item (a column's
/// name, a function call's function, else `expr`) and `idx`, joined by `_` (a name taken
/// already gets a number on the server; not followed here).
fn implicit_index_name(table: String, node: &SyntaxNode) -> String {
    let mut parts = vec![super::model::split_qualified(&table).1];
    for item in index_items(node) {
        parts.push(match item.children().next() {
            Some(n) if n.kind() == K::NAME_REF => name_of(&n),
            Some(n) if n.kind() == K::CALL_EXPR => {
                child(&n, K::NAME_REF).or_else(|| n.children().next()).map(|f| name_of(&f)).unwrap_or_default()
            }
            _ => "expr".to_string(),
        });
    }
    parts.push("idx".to_string());
    let mut name = parts.join("_");
    // NAMEDATALEN - 1 bytes.
    while name.len() > 63 {
        name.pop();
    }
    name
}

/// The materialized views a PL/pgSQL function's body refreshes (with `CONCURRENTLY`?):
/// a trigger running it refreshes them inside the statement that fires it.
fn refreshes(node: &SyntaxNode) -> Vec<(String, bool)> {
    let Some(options) = child(node, K::FUNC_OPTION_LIST) else {
        return Vec::new();
    };
    let plpgsql = child(&options, K::LANGUAGE_FUNC_OPTION)
        .and_then(|l| l.children().next())
        .is_some_and(|l| l.text().to_string().eq_ignore_ascii_case("plpgsql"));
    let lit = child(&options, K::AS_FUNC_OPTION)
        .and_then(|a| child(&a, K::AS_DEFINITION))
        .and_then(|d| child(&d, K::LITERAL));
    let (true, Some(lit)) = (plpgsql, lit) else {
        return Vec::new();
    };
    let Some(body) = Quoted::literal(&lit.text().to_string(), 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for piece in plpgsql::scan(&body.text) {
        if let Piece::Sql { range, .. } = piece {
            // Only a piece that says REFRESH can refresh a view: the others need no parse
            // (trigger functions are long, and most never refresh anything).
            let text = &body.text[range];
            if !crate::split::mentions(text, "refresh") {
                continue;
            }
            for stmt in parse_nested(text, MAX_NESTING - 1) {
                if let StmtKind::RefreshMatView { concurrently, view: Some(v) } = stmt.kind {
                    out.push((v, concurrently));
                }
            }
        }
    }
    out
}

/// The relations a view's query reads, unqualified.
fn reads(node: &SyntaxNode) -> Vec<String> {
    let mut out: Vec<String> =
        node.descendants().filter(|d| d.kind() == K::RELATION_NAME_REF).map(|n| name_of(&n)).collect();
    out.sort();
    out.dedup();
    out
}

/// The items of an index's column list.
fn index_items(node: &SyntaxNode) -> impl Iterator<Item = SyntaxNode> {
    child(node, K::PARTITION_ITEM_LIST).into_iter().flat_map(|l| children(&l, K::PARTITION_ITEM).collect::<Vec<_>>())
}

/// The column an index item names as it is (`x`, `x DESC`), not an expression.
fn plain_column(item: &SyntaxNode) -> Option<String> {
    item.children().next().filter(|n| n.kind() == K::NAME_REF).map(|n| name_of(&n))
}

/// The functions a default calls, unqualified (`public.f(1)` → `f`).
fn default_calls(expr_parent: &SyntaxNode) -> Vec<String> {
    expr_parent
        .descendants()
        .filter(|d| d.kind() == K::CALL_EXPR)
        .filter_map(|d| child(&d, K::NAME_REF).or_else(|| d.children().next()).map(|n| name_of(&n)))
        .filter(|n| !n.is_empty())
        .collect()
}

/// The tables of `ANALYZE` / `VACUUM` (empty: every table of the database).
fn relations(node: &SyntaxNode) -> Vec<String> {
    node.descendants().filter(|d| d.kind() == K::TABLE_RELATION_NAME).map(|n| table_of(&n)).collect()
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
        K::FOREIGN_KEY_CONSTRAINT | K::REFERENCES_CONSTRAINT => ConstraintKind::ForeignKey {
            local: node
                .children()
                .take_while(|c| c.kind() != K::TABLE_NAME_REF)
                .filter(|c| matches!(c.kind(), K::COLUMN_LIST | K::FOREIGN_KEY_COLUMN_LIST))
                .flat_map(|c| {
                    c.descendants()
                        .filter(|d| d.kind() == K::COLUMN_NAME_REF || d.kind() == K::COLUMN_NAME)
                        .map(|n| name_of(&n))
                        .collect::<Vec<_>>()
                })
                .collect(),
            references: child_table(node, K::TABLE_NAME_REF),
            columns: referenced_columns(node),
        },
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
            name: child_name(node, K::CONSTRAINT_NAME_REF)
                .or_else(|| first_name_node(node).map(|d| name_of(&d)))
                .unwrap_or_default(),
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
            Action::AttachPartition { partition: child_table(node, K::TABLE_NAME_REF).unwrap_or_default() }
        }
        K::DETACH_PARTITION => Action::DetachPartition {
            partition: child_table(node, K::TABLE_NAME_REF).unwrap_or_default(),
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

/// The columns listed after the referenced table of a `REFERENCES` clause: inline they are
/// children of the clause, in a table constraint a list node of their own.
fn referenced_columns(n: &SyntaxNode) -> Vec<String> {
    let mut out = Vec::new();
    for c in n.children().skip_while(|c| c.kind() != K::TABLE_NAME_REF).skip(1) {
        match c.kind() {
            K::COLUMN_NAME_REF => out.push(name_of(&c)),
            K::FOREIGN_KEY_COLUMN_LIST => {
                out.extend(children(&c, K::COLUMN_NAME_REF).map(|r| name_of(&r)));
                break;
            }
            _ => break,
        }
    }
    out
}

fn child_table(n: &SyntaxNode, kind: K) -> Option<String> {
    child(n, kind).map(|c| table_of(&c))
}

/// The table the first name-like descendant names, as written (see [`table_of`]).
fn first_table(n: &SyntaxNode) -> Option<String> {
    first_name_node(n).map(|d| table_of(&d))
}

/// The first name-like descendant (table, relation or path).
fn first_name_node(n: &SyntaxNode) -> Option<SyntaxNode> {
    n.descendants().find(|d| {
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

/// A table (or index) name as written, normalised: `Public.Posts` → `public.posts`,
/// `app."Posts"` → `app.Posts`, `posts` → `posts`; a database name before the schema is
/// dropped. See [`super::model::split_qualified`].
pub(crate) fn table_of(n: &SyntaxNode) -> String {
    let parts: Vec<String> = n
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .take_while(|t| t.kind() != K::L_PAREN)
        .filter(|t| !t.kind().is_trivia() && !matches!(t.kind(), K::DOT | K::STAR | K::ONLY_KW))
        .map(|t| normalize_ident(t.text()))
        .collect();
    match parts.as_slice() {
        [] => String::new(),
        [name] => qualify(None, name),
        [.., schema, name] => qualify(Some(schema), name),
    }
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
