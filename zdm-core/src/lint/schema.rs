//! The schema as the migration set builds it: replaying every statement in order, the
//! analyzer knows each table's columns, types, constraints and indexes as of each file.
//! Tables the set never created (made before the set, or by tools) are unknown, and rules
//! treat unknown as "existing, shape unknown" — the cautious reading.

use std::collections::HashMap;

use super::model::{Action, ColumnDef, ConstraintDef, ConstraintKind, Stmt, StmtKind};
use super::types::TypeName;

#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub tables: HashMap<String, Table>,
    /// Index name → table.
    pub indexes: HashMap<String, String>,
    /// Objects (`table` or `table.column`) that an after_deploy migration changes, with
    /// its version: a later pre-deploy migration touching them depends on pending work.
    pub post_touched: HashMap<String, i64>,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub constraints: Vec<Constraint>,
    pub partitioned: bool,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: Option<TypeName>,
    pub not_null: bool,
    pub has_default: bool,
}

#[derive(Debug, Clone)]
pub struct Constraint {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    pub valid: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// A VALID `CHECK (column IS NOT NULL)` exists (PostgreSQL 12+ then skips the
    /// `SET NOT NULL` scan).
    pub fn has_valid_not_null_check(&self, column: &str) -> bool {
        self.constraints.iter().any(|c| {
            c.valid && matches!(&c.kind, ConstraintKind::Check { not_null_of: Some(col), .. } if col == column)
        })
    }

    /// A CHECK constraint mentions `column`.
    pub fn check_uses(&self, column: &str) -> bool {
        self.constraints
            .iter()
            .any(|c| matches!(&c.kind, ConstraintKind::Check { columns, .. } if columns.iter().any(|x| x == column)))
    }

    pub fn has_valid_check(&self) -> bool {
        self.constraints.iter().any(|c| c.valid && matches!(c.kind, ConstraintKind::Check { .. }))
    }
}

fn column(def: &ColumnDef) -> Column {
    Column {
        name: def.name.clone(),
        ty: def.ty.clone(),
        // serial and identity columns are NOT NULL without saying so.
        not_null: def.not_null || def.primary_key || def.serial || def.identity,
        has_default: def.default.is_some() || def.serial || def.identity || def.generated_stored,
    }
}

/// An inline `REFERENCES` as the foreign key PostgreSQL makes of it, under the name it
/// gives it (`<table>_<column>_fkey`).
fn inline_fk(table: &str, def: &ColumnDef) -> Constraint {
    Constraint {
        name: Some(format!("{table}_{}_fkey", def.name)),
        kind: ConstraintKind::ForeignKey { references: def.references.clone() },
        valid: true,
    }
}

fn constraint(def: &ConstraintDef) -> Constraint {
    Constraint { name: def.name.clone(), kind: def.kind.clone(), valid: !def.not_valid }
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Applies one statement. `post_version` is set for statements of after_deploy
    /// migrations.
    pub fn apply(&mut self, stmt: &Stmt, post_version: Option<i64>) {
        if let Some(v) = post_version {
            for key in touched_keys(stmt) {
                self.post_touched.insert(key, v);
            }
        }
        match &stmt.kind {
            // The server skips it: the table keeps the shape it has.
            StmtKind::CreateTable { table, if_not_exists: true, .. } if self.tables.contains_key(table) => {}
            StmtKind::CreateTable { table, columns, constraints, partitioned, .. } => {
                let mut t = Table { partitioned: *partitioned, ..Table::default() };
                t.columns = columns.iter().map(column).collect();
                t.constraints = constraints.iter().map(constraint).collect();
                for c in columns.iter().filter(|c| c.references.is_some()) {
                    t.constraints.push(inline_fk(table, c));
                }
                for c in columns.iter().filter(|c| c.check) {
                    t.constraints.push(Constraint {
                        name: None,
                        kind: ConstraintKind::Check { columns: vec![c.name.clone()], not_null_of: None },
                        valid: true,
                    });
                }
                self.tables.insert(table.clone(), t);
            }
            StmtKind::CreateTableAs { table } => {
                self.tables.insert(table.clone(), Table::default());
            }
            StmtKind::DropTable { tables, .. } => {
                for t in tables {
                    self.tables.remove(t);
                    self.indexes.retain(|_, table| table != t);
                }
            }
            StmtKind::CreateIndex { name: Some(name), table, .. } => {
                self.indexes.insert(name.clone(), table.clone());
            }
            StmtKind::DropIndex { names, .. } => {
                for n in names {
                    self.indexes.remove(n);
                }
            }
            StmtKind::AlterTable { table, actions } => self.alter(table, actions),
            _ => {}
        }
    }

    fn alter(&mut self, table: &str, actions: &[Action]) {
        for action in actions {
            if let Action::RenameTo { to } = action {
                if let Some(t) = self.tables.remove(table) {
                    self.tables.insert(to.clone(), t);
                }
                for idx_table in self.indexes.values_mut().filter(|t| *t == table) {
                    *idx_table = to.clone();
                }
                return;
            }
            // A table made before the set: learn what this migration tells about it.
            let t = self.tables.entry(table.to_string()).or_default();
            match action {
                Action::AddColumn(def) => {
                    t.columns.retain(|c| c.name != def.name);
                    t.columns.push(column(def));
                    if def.references.is_some() {
                        t.constraints.push(inline_fk(table, def));
                    }
                }
                Action::DropColumn { column } => t.columns.retain(|c| &c.name != column),
                Action::AlterType { column, ty, .. } => {
                    if let Some(c) = t.columns.iter_mut().find(|c| &c.name == column) {
                        c.ty = ty.clone();
                    }
                }
                Action::SetNotNull { column } => set(t, column, |c| c.not_null = true),
                Action::DropNotNull { column } => set(t, column, |c| c.not_null = false),
                Action::SetDefault { column, .. } => set(t, column, |c| c.has_default = true),
                Action::DropDefault { column } => set(t, column, |c| c.has_default = false),
                Action::AddConstraint(def) => t.constraints.push(constraint(def)),
                Action::ValidateConstraint { name } => {
                    for c in t.constraints.iter_mut().filter(|c| c.name.as_deref() == Some(name)) {
                        c.valid = true;
                    }
                }
                Action::DropConstraint { name } => t.constraints.retain(|c| c.name.as_deref() != Some(name)),
                Action::RenameColumn { from, to } => set(t, from, |c| c.name = to.clone()),
                _ => {}
            }
        }
    }
}

fn set(t: &mut Table, column: &str, f: impl FnOnce(&mut Column)) {
    if let Some(c) = t.columns.iter_mut().find(|c| c.name == column) {
        f(c);
    }
}

/// The objects a statement changes, as `table` or `table.column` keys: a column action
/// names its column, a table-level change (create, drop, rename) its table.
pub fn touched_keys(stmt: &Stmt) -> Vec<String> {
    match &stmt.kind {
        StmtKind::CreateTable { table, .. } | StmtKind::CreateTableAs { table } => {
            vec![table.clone()]
        }
        StmtKind::DropTable { tables, .. } => tables.clone(),
        StmtKind::AlterTable { table, actions } => actions
            .iter()
            .filter_map(|a| match a {
                Action::AddColumn(def) => Some(format!("{table}.{}", def.name)),
                Action::DropColumn { column }
                | Action::AlterType { column, .. }
                | Action::SetNotNull { column }
                | Action::DropNotNull { column }
                | Action::SetDefault { column, .. }
                | Action::DropDefault { column }
                | Action::RenameColumn { from: column, .. } => Some(format!("{table}.{column}")),
                Action::RenameTo { .. } => Some(table.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
