//! `#[zdm::migration]` and `#[zdm::after_deploy]` on Rust-coded migrations.
//!
//! The function stays as written; beside it the macro emits `__zdm_migration_<name>()`,
//! which builds its `zdm::RustMigration`, and registers that with `inventory` so the
//! default set picks it up (`migrator!(.., rust = [name])` lists it explicitly).
//!
//! Pipeline: [`parse_options`] and the function into a [`RustMigration`] (the function
//! kept as written, for spans), [`validate`] it (the signature, then the lint over its SQL
//! literals, every problem at its own span), [`expand`].

use proc_macro2::{Spacing, TokenStream, TokenTree};
use quote::{format_ident, quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, FnArg, ItemFn, Lit, Meta, Token, Type};
use zdm_core::checksum::{rust_checksum, Delimiter, RustToken};
use zdm_core::directive::{AssuredScope, SafetyAssured};
use zdm_core::lint::{LintConfig, LintInput};
use zdm_core::Dialect;
use zdm_core::Phase;

use crate::errors::Errors;

#[derive(Default)]
struct Options {
    version: Option<i64>,
    description: Option<String>,
    after_deploy: bool,
    no_transaction: bool,
    /// `safety_assured = "<reason>"`, any number of times: like the directive at the top of a
    /// SQL file, it covers every SQL literal of the function, and goes to the ledger.
    safety_assured: Vec<String>,
}

const OPTIONS: &str = "expected `version = N`, `description = \"..\"`, `after_deploy`, `no_transaction` \
     or `safety_assured = \"<reason>\"`";

fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let mut o = Options::default();
    let mut errors = Errors::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        match (name.as_str(), &meta) {
            ("after_deploy", Meta::Path(_)) => o.after_deploy = true,
            ("no_transaction", Meta::Path(_)) => o.no_transaction = true,
            ("version", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => match i.base10_parse() {
                    Ok(v) => o.version = Some(v),
                    Err(e) => errors.push(e),
                },
                other => errors.spanned(other, "`version` takes an integer, e.g. `version = 20240101120000`"),
            },
            ("description", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => o.description = Some(s.value()),
                other => errors.spanned(other, "`description` takes a string"),
            },
            ("safety_assured", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) if !s.value().trim().is_empty() => {
                    o.safety_assured.push(s.value().trim().to_string())
                }
                other => errors.spanned(other, NEEDS_REASON),
            },
            ("safety_assured", _) => errors.spanned(&meta, NEEDS_REASON),
            _ => errors.spanned(&meta, format!("unknown option; {OPTIONS}")),
        }
    }
    errors.finish(o)
}

const NEEDS_REASON: &str = "`safety_assured` needs a reason, kept in the ledger: \
     `safety_assured = \"<why this is safe here>\"`";

fn is_migration_attr(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "migration")
}

/// A Rust-coded migration as the macro reads it.
struct RustMigration {
    func: ItemFn,
    opts: Options,
}

/// What validation found: the connection type and the version, and the
/// `-- zdm:safety_assured` reasons inside the function's SQL literals.
struct Valid {
    version: i64,
    conn_ty: Type,
    reasons: Vec<String>,
}

pub(crate) fn migration(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let m = parse(args, item)?;
    // A wrong signature leaves the function out: rustc would add its own errors about it
    // (an `.await` in a body that is not `async`), and ours say what to change.
    let (version, conn_ty) = validate_signature(&m)?;
    match validate_sql(&m, version) {
        Ok(reasons) => Ok(expand(&m, &Valid { version, conn_ty, reasons })),
        // The function is right; only its SQL is not: keep it, so the findings are the
        // only errors.
        Err(e) => {
            let (func, errors) = (&m.func, e.into_compile_error());
            Ok(quote!(#func #errors))
        }
    }
}

fn parse(args: TokenStream, item: TokenStream) -> syn::Result<RustMigration> {
    let mut opts = parse_options(args)?;
    let mut func: ItemFn = syn::parse2(item)?;
    // `#[zdm::after_deploy]` written below `#[zdm::migration]` is still on the function.
    func.attrs.retain(|a| {
        let after = a.path().segments.last().is_some_and(|s| s.ident == "after_deploy");
        opts.after_deploy |= after;
        !after
    });
    Ok(RustMigration { func, opts })
}

/// The signature: a version, `async`, one `&mut` connection; every problem at once.
fn validate_signature(m: &RustMigration) -> syn::Result<(i64, Type)> {
    let func = &m.func;
    let mut errors = Errors::default();
    if m.opts.version.is_none() {
        errors.spanned(
            &func.sig.ident,
            "a Rust migration needs a version: `#[zdm::migration(version = 20240101120000)]`",
        );
    }
    if func.sig.asyncness.is_none() {
        errors.spanned(func.sig.fn_token, "a zdm migration must be an `async fn`");
    }
    let conn_ty = connection_type(func).map_err(|e| errors.push(e)).ok();
    errors.finish(())?;
    match (m.opts.version, conn_ty) {
        (Some(version), Some(conn_ty)) => Ok((version, conn_ty)),
        _ => unreachable!("a missing version or connection type is reported above"),
    }
}

/// Every finding of the lint over the function's SQL literals; the `safety_assured`
/// reasons of the attribute and of the literals otherwise, for the ledger.
fn validate_sql(m: &RustMigration, version: i64) -> syn::Result<Vec<String>> {
    let in_sql = lint_literal_sql(&m.func, version, &m.opts)?;
    let mut reasons = m.opts.safety_assured.clone();
    for r in in_sql {
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    Ok(reasons)
}

fn expand(m: &RustMigration, valid: &Valid) -> TokenStream {
    let (func, opts) = (&m.func, &m.opts);
    let Valid { version, conn_ty, reasons } = valid;
    let name = &func.sig.ident;
    let builder = format_ident!("__zdm_migration_{}", name);
    let description = opts.description.clone().unwrap_or_else(|| name.to_string());
    let digest = rust_checksum(&tokens_of(func.to_token_stream()));
    let phase = if opts.after_deploy { quote!(PostDeploy) } else { quote!(PreDeploy) };
    let no_transaction = opts.no_transaction;
    let vis = &func.vis;
    quote! {
        #func

        #[doc(hidden)]
        #[allow(non_snake_case)]
        #vis fn #builder() -> ::zdm::RustMigration {
            fn run<'c>(c: &'c mut #conn_ty)
                -> ::zdm::__private::BoxFuture<'c, ::core::result::Result<(), ::zdm::__private::BoxError>> {
                ::std::boxed::Box::pin(async move { #name(c).await.map_err(::core::convert::Into::into) })
            }
            ::zdm::RustMigration {
                meta: ::zdm::__private::Migration {
                    version: #version,
                    description: #description,
                    source: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
                    checksum: &[#(#digest),*],
                    phase: ::zdm::__private::Phase::#phase,
                    no_transaction: #no_transaction,
                    safety_assured: &[#(#reasons),*],
                    lock_timeout_ms: ::core::option::Option::None,
                    statement_timeout_ms: ::core::option::Option::None,
                },
                run: ::zdm::__private::RustRun::from(
                    run as for<'c> fn(&'c mut #conn_ty)
                        -> ::zdm::__private::BoxFuture<'c, ::core::result::Result<(), ::zdm::__private::BoxError>>,
                ),
            }
        }

        ::zdm::__private::inventory::submit! { ::zdm::__private::RegisteredRustMigration(#builder) }
    }
}

/// The tokens of `stream` as zdm-core's checksum reads them: each token's own text, never
/// the stream's `to_string()` (whose spacing differs between toolchains).
fn tokens_of(stream: TokenStream) -> Vec<RustToken> {
    stream
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Ident(i) => RustToken::Ident(i.to_string()),
            TokenTree::Punct(p) => RustToken::Punct { ch: p.as_char(), joint: p.spacing() == Spacing::Joint },
            TokenTree::Literal(l) => RustToken::Literal(l.to_string()),
            TokenTree::Group(g) => RustToken::Group {
                delimiter: match g.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => Delimiter::Parenthesis,
                    proc_macro2::Delimiter::Brace => Delimiter::Brace,
                    proc_macro2::Delimiter::Bracket => Delimiter::Bracket,
                    proc_macro2::Delimiter::None => Delimiter::None,
                },
                tokens: tokens_of(g.stream()),
            },
        })
        .collect()
}

/// `T` of the first parameter `&mut T`.
fn connection_type(func: &ItemFn) -> syn::Result<Type> {
    let wrong = || {
        syn::Error::new_spanned(
            &func.sig.inputs,
            "a zdm migration takes one parameter `&mut zdm::sqlx::PgConnection` (or `&mut zdm::sqlx::SqliteConnection`)",
        )
    };
    if func.sig.inputs.len() != 1 {
        return Err(wrong());
    }
    match func.sig.inputs.first() {
        Some(FnArg::Typed(pat)) => match &*pat.ty {
            Type::Reference(r) if r.mutability.is_some() => Ok((*r.elem).clone()),
            _ => Err(wrong()),
        },
        _ => Err(wrong()),
    }
}

pub(crate) fn after_deploy(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if !args.is_empty() {
        return Err(syn::Error::new_spanned(args, "`#[zdm::after_deploy]` takes no arguments"));
    }
    let mut func: ItemFn = syn::parse2(item)?;
    let Some(attr) = func.attrs.iter_mut().find(|a| is_migration_attr(a)) else {
        return Err(syn::Error::new_spanned(
            &func.sig.ident,
            "`#[zdm::after_deploy]` marks a Rust-coded migration: add `#[zdm::migration(version = N)]` too",
        ));
    };
    // Written above `#[zdm::migration]`: fold into its options.
    let mut opts: Punctuated<Meta, Token![,]> = match &attr.meta {
        Meta::List(list) => Punctuated::parse_terminated.parse2(list.tokens.clone())?,
        _ => Punctuated::new(),
    };
    opts.push(syn::parse_quote!(after_deploy));
    let path = attr.path().clone();
    *attr = syn::parse_quote!(#[#path(#opts)]);
    Ok(func.into_token_stream())
}

/// The functions whose first argument is SQL: sqlx's query constructors and `execute`.
const SQL_TAKING: &[&str] =
    &["query", "query_as", "query_scalar", "query_with", "query_as_with", "query_scalar_with", "raw_sql", "execute"];
/// Functions whose second argument is SQL, after the connection: `zdm::recipes::run_statement`.
const SQL_SECOND: &[&str] = &["run_statement"];

/// String literals passed as SQL inside the function, and whether each goes through
/// `run_statement` (zdm's per-statement timeouts) rather than straight to sqlx.
#[derive(Default)]
struct SqlLiterals(Vec<(syn::LitStr, bool)>);

impl SqlLiterals {
    fn take(&mut self, arg: Option<&Expr>, through_zdm: bool) {
        if let Some(Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. })) = arg {
            self.0.push((s.clone(), through_zdm));
        }
    }
}

impl<'ast> Visit<'ast> for SqlLiterals {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(p) = &*call.func {
            let name = p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            if SQL_TAKING.contains(&name.as_str()) {
                self.take(call.args.first(), false);
            } else if SQL_SECOND.contains(&name.as_str()) {
                self.take(call.args.iter().nth(1), true);
            }
        }
        syn::visit::visit_expr_call(self, call);
    }
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if SQL_TAKING.contains(&call.method.to_string().as_str()) {
            self.take(call.args.first(), false);
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// Lints the literal SQL of a Rust-coded migration on its own (the tables it touches are
/// taken to exist already): blocking findings are compile errors at the literal, and so is
/// a `CONCURRENTLY` or `VALIDATE CONSTRAINT` statement handed straight to sqlx (it would run
/// under the migration's short lock timeout, without retries). The
/// attribute's `safety_assured` reasons cover every literal, as the directive at the top of
/// a file covers the file. Returns the reasons of the `-- zdm:safety_assured` directives
/// written inside the literals, for the ledger.
fn lint_literal_sql(func: &ItemFn, version: i64, opts: &Options) -> syn::Result<Vec<String>> {
    let mut found = SqlLiterals::default();
    found.visit_block(&func.block);
    // A migration that takes a `SqliteConnection` is SQLite's: SQLite reads and judges its SQL.
    let sqlite = connection_type(func).ok().is_some_and(|t| match t {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "SqliteConnection"),
        _ => false,
    });
    let config =
        LintConfig { dialect: if sqlite { Dialect::Sqlite } else { Dialect::Postgres }, ..LintConfig::default() };
    let name = format!("{} (Rust migration {version})", func.sig.ident);
    let mut errors = Errors::default();
    let mut reasons = Vec::new();
    let whole: Vec<SafetyAssured> = opts
        .safety_assured
        .iter()
        .map(|reason| SafetyAssured { reason: reason.clone(), line: 0, scope: AssuredScope::File })
        .collect();
    for (lit, through_zdm) in &found.0 {
        let sql = lit.value();
        if !through_zdm && !sqlite {
            errors.extend(needs_run_statement(&name, lit, &sql));
        }
        let mut directives = match zdm_core::directive::parse(&sql) {
            Ok(d) => d,
            Err(errs) => {
                errors.at(lit.span(), format!("{name}: {}", errs[0].message));
                continue;
            }
        };
        reasons.extend(directives.safety_assured.iter().map(|a| a.reason.clone()));
        directives.safety_assured.extend(whole.iter().cloned());
        let input = LintInput {
            version,
            path: &name,
            sql: &sql,
            phase: if opts.after_deploy { Phase::PostDeploy } else { Phase::PreDeploy },
            no_transaction: opts.no_transaction,
            safety_assured: &directives.safety_assured,
        };
        for f in zdm_core::lint::lint(&[input], &config).into_iter().filter(|f| f.blocks()) {
            errors.at(lit.span(), f);
        }
    }
    errors.finish(reasons)
}

/// A statement that needs zdm's long lock timeout (a concurrent build, a `VALIDATE`) sent
/// to sqlx directly: it would run under the migration's short lock timeout, fail behind
/// any older transaction and (for an index) leave an INVALID one behind.
fn needs_run_statement(name: &str, lit: &syn::LitStr, sql: &str) -> Option<syn::Error> {
    let stmt = zdm_core::exec::statements(sql).into_iter().find(|s| s.class != zdm_core::exec::ExecClass::Normal)?;
    let what = match stmt.class {
        zdm_core::exec::ExecClass::Validate => "VALIDATE CONSTRAINT",
        _ => "a CONCURRENTLY statement",
    };
    Some(syn::Error::new(
        lit.span(),
        format!(
            "{name}: {what} sent straight to sqlx runs under the migration's short lock and statement timeouts: \
             it fails behind any older transaction{}\n  \
             fix: `zdm::recipes::run_statement(conn, \"..\").await?` runs it as zdm runs a statement of a file: \
             30 min lock timeout, no statement timeout, retried on its own{}",
            if stmt.creates_index.is_some() { ", leaving an INVALID index" } else { "" },
            if stmt.creates_index.is_some() { ", an INVALID leftover dropped first" } else { "" },
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(source: &str) -> Vec<u8> {
        let func: ItemFn = syn::parse_str(source).expect("test source parses");
        rust_checksum(&tokens_of(func.to_token_stream()))
    }

    const TIDY: &str = r#"
        /// Seeds the first post.
        async fn seed(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO posts (id, title) VALUES (1, 'hello')").execute(&mut *conn).await?;
            Ok(())
        }"#;

    #[test]
    fn spacing_comments_and_docs_do_not_change_the_checksum() {
        let messy = r#"
            // a comment
            /** Another doc. */
            async fn seed ( conn : & mut PgConnection ) -> Result < ( ) , sqlx :: Error >
            {
                sqlx::query(
                    "INSERT INTO posts (id, title) VALUES (1, 'hello')" // why
                )
                .execute(&mut*conn)
                /* block */ .await ?;
                Ok (())
            }"#;
        assert_eq!(digest(TIDY), digest(messy));
    }

    #[test]
    fn a_changed_literal_changes_the_checksum() {
        assert_ne!(digest(TIDY), digest(&TIDY.replace("'hello'", "'hullo'")));
        assert_ne!(digest(TIDY), digest(&TIDY.replace("(1,", "(2,")));
    }

    #[test]
    fn the_checksum_is_pinned() {
        // Whatever proc-macro2 or rustc print, these tokens give this digest: a change here
        // changes the checksum of every applied Rust migration.
        assert_eq!(
            zdm_core::checksum::to_hex(&digest("fn up() { run(\"SELECT 1\") }")),
            zdm_core::checksum::to_hex(&zdm_core::checksum::checksum(
                b"ifn\niup\n(\n)\n{\nirun\n(\nl10:\"SELECT 1\"\n)\n}\n"
            ))
        );
    }
}
