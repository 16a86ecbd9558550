//! The names of zdm's own objects: its tables (ledger, attempts, lease, registry, drops),
//! the SQL functions it installs and the notification channel it announces schema changes
//! on. Every statement zdm sends is a template over these names, so the schema and table
//! prefix settings reach every one of them, always quoted.

use zdm_core::ident::qualified;

/// The channel zdm notifies (`pg_notify`) when a migration or a deferred drop changes the
/// schema; healing pools (`zdm::healing`) listen on it.
pub const SCHEMA_CHANGED: &str = "zdm_schema_changed";

/// sqlx's ledger table unless `sqlx.toml` names another.
pub const SQLX_LEDGER: &str = "_sqlx_migrations";

/// The quoted, schema-qualified names of zdm's tables, and the prefix they share.
#[derive(Debug, Clone)]
pub struct Names {
    pub schema: Option<String>,
    pub ledger: String,
    pub history: String,
    pub lease: String,
    /// The instance registry, the deferred drops and when after_deploy work began to wait.
    pub instances: String,
    pub drops: String,
    pub post_pending: String,
    /// The SQL functions zdm installs (PostgreSQL): `drop_column_later`, `drop_table_later`
    /// and the read-only trigger function.
    pub fn_drop_column: String,
    pub fn_drop_table: String,
    pub fn_read_only: String,
    /// The table prefix, unquoted (the functions' names start with it too).
    pub prefix: String,
    /// Unquoted names, for catalog look-ups (`to_regclass`, `sqlite_master`).
    pub raw_ledger: String,
    pub raw_history: String,
    pub raw_lease: String,
    /// sqlx's ledger, whose successful rows count as applied: `_sqlx_migrations`, or the
    /// `[migrate] table-name` of the app's `sqlx.toml` (quoted, maybe schema-qualified).
    pub sqlx_ledger: String,
    /// Its bare table name (SQLite's catalog look-up).
    pub raw_sqlx_ledger: String,
}

impl Names {
    pub fn new(schema: Option<&str>, prefix: &str) -> Names {
        let raw = |suffix: &str| format!("{prefix}{suffix}");
        let (l, h, k) = (raw("migrations"), raw("migration_attempts"), raw("lease"));
        Names {
            schema: schema.map(str::to_string),
            ledger: qualified(schema, &l),
            history: qualified(schema, &h),
            lease: qualified(schema, &k),
            instances: qualified(schema, &raw("instances")),
            drops: qualified(schema, &raw("deferred_drops")),
            post_pending: qualified(schema, &raw("post_pending")),
            fn_drop_column: qualified(schema, &raw("drop_column_later")),
            fn_drop_table: qualified(schema, &raw("drop_table_later")),
            fn_read_only: qualified(schema, &raw("read_only")),
            prefix: prefix.to_string(),
            raw_ledger: l,
            raw_history: h,
            raw_lease: k,
            sqlx_ledger: qualified(None, SQLX_LEDGER),
            raw_sqlx_ledger: SQLX_LEDGER.to_string(),
        }
    }

    /// sqlx's ledger is `table` (`name` or `schema.name`, as `sqlx.toml`'s `table-name`).
    pub fn with_sqlx_ledger(mut self, table: &str) -> Names {
        let (schema, name) = match table.split_once('.') {
            Some((s, n)) => (Some(s), n),
            None => (None, table),
        };
        self.sqlx_ledger = qualified(schema, name);
        self.raw_sqlx_ledger = name.to_string();
        self
    }

    /// A zdm object's quoted, schema-qualified name: `func("backfill")` is
    /// `"zdm_backfill"` with the default prefix.
    pub fn func(&self, suffix: &str) -> String {
        qualified(self.schema.as_deref(), &format!("{}{suffix}", self.prefix))
    }

    /// `template` with `{ledger}`, `{history}`, `{lease}`, `{instances}`, `{drops}`,
    /// `{post_pending}`, `{sqlx_ledger}`, the `{fn_..}` names and any `{obj:suffix}`
    /// replaced by the quoted names, `{sqlx_ledger_text}` / `{raw_sqlx_ledger_text}` by
    /// sqlx's ledger as a string literal (for catalog look-ups), and `{prefix}` by the bare
    /// prefix.
    pub fn sql(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(at) = rest.find("{obj:") {
            let Some(end) = rest[at..].find('}') else { break };
            out.push_str(&rest[..at]);
            out.push_str(&self.func(&rest[at + 5..at + end]));
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
        out.replace("{sqlx_ledger_text}", &zdm_core::ident::quote_literal(&self.sqlx_ledger))
            .replace("{raw_sqlx_ledger_text}", &zdm_core::ident::quote_literal(&self.raw_sqlx_ledger))
            .replace("{sqlx_ledger}", &self.sqlx_ledger)
            .replace("{prefix}", &self.prefix)
            .replace("{ledger}", &self.ledger)
            .replace("{history}", &self.history)
            .replace("{lease}", &self.lease)
            .replace("{instances}", &self.instances)
            .replace("{drops}", &self.drops)
            .replace("{post_pending}", &self.post_pending)
            .replace("{fn_drop_column}", &self.fn_drop_column)
            .replace("{fn_drop_table}", &self.fn_drop_table)
            .replace("{fn_read_only}", &self.fn_read_only)
    }
}
