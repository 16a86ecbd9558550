//! `migrations!` and `migrator!`: read the folder at compile time, let `zdm-core` judge
//! every file, and embed the result as a static. Each file is embedded with
//! `include_str!`, so editing a file rebuilds the crate; adding or removing one needs the
//! build script line `zdm::build::track("migrations")` (stable Rust cannot watch folders).

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use zdm_core::baseline::Manifest;
use zdm_core::config::{Config, SqlxToml};
use zdm_core::lint::{LintConfig, LintInput, Severity};
use zdm_core::source::{parse_files, ParsedMigration};
use zdm_core::Dialect;

use crate::args::EmbedArgs;
use crate::errors::Errors;

pub(crate) fn migrations(input: TokenStream) -> syn::Result<TokenStream> {
    let args: EmbedArgs = syn::parse2(input)?;
    if let Some(p) = args.rust.first() {
        return Err(syn::Error::new_spanned(
            p,
            "`migrations!` collects `#[zdm::migration]` functions by itself; `rust = [...]` is for `migrator!`",
        ));
    }
    let set = embedded_set(&args)?;
    Ok(quote! {
        /// The migration set embedded by `zdm::migrations!`, registered as zdm's default set.
        pub static ZDM_MIGRATIONS: ::zdm::__private::EmbeddedSet = #set;
        ::zdm::__private::inventory::submit! { ::zdm::__private::DefaultSet(&ZDM_MIGRATIONS) }
    })
}

pub(crate) fn migrator(input: TokenStream) -> syn::Result<TokenStream> {
    let args: EmbedArgs = syn::parse2(input)?;
    let set = embedded_set(&args)?;
    let rust = args.rust.iter().map(|p| {
        let mut p = p.clone();
        if let Some(last) = p.segments.last_mut() {
            last.ident = format_ident!("__zdm_migration_{}", last.ident);
        }
        quote!(#p())
    });
    Ok(quote! {{
        static __ZDM_SET: ::zdm::__private::EmbeddedSet = #set;
        __ZDM_SET.migrator([#(#rust),*])
    }})
}

/// The `EmbeddedSet { .. }` expression for the folder, after the safety lint.
fn embedded_set(args: &EmbedArgs) -> syn::Result<TokenStream> {
    let dir = &args.dir;
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| syn::Error::new(dir.span(), "CARGO_MANIFEST_DIR is not set: build with cargo"))?;
    let abs = Path::new(&manifest).join(dir.value());
    let files = zdm_core::source::read_dir(&abs, &dir.value()).map_err(|m| syn::Error::new(dir.span(), m))?;
    let parsed = parse_files(files).map_err(|found| {
        let mut errors = Errors::default();
        found.iter().for_each(|e| errors.at(dir.span(), e));
        errors.finish(()).expect_err("parse_files reports at least one error")
    })?;
    let (baseline, baseline_tracking) = read_baseline(&abs, &dir.value(), dir.span())?;
    let (project, project_tracking) = read_project(Path::new(&manifest), dir.span())?;
    let (sqlx_toml, sqlx_tracking) = read_sqlx_toml(Path::new(&manifest), dir.span())?;
    let option = |v: Option<u64>| match v {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let millis = |d: Option<std::time::Duration>| d.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64);
    let lock_timeout = option(millis(project.lock_timeout));
    let statement_timeout = option(millis(project.statement_timeout));
    let sqlx_table = match &sqlx_toml.table_name {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    };
    let dialect = args.dialect.or_else(|| project.dialect.as_deref().and_then(Dialect::parse)).unwrap_or_default();
    let postgres = args.postgres.or(project.postgres).unwrap_or_default();
    let config = LintConfig {
        dialect,
        postgres,
        start_after: args.start_after,
        baseline,
        deployed: args.deployed.or(project.deployed),
    };
    let Linted { warnings, allowed } = lint(&parsed, &config, &project, dir.span())?;
    let shown = dir.value();
    let items = parsed.iter().map(|m| {
        let reasons: Vec<&str> =
            allowed.iter().filter(|(v, _)| *v == m.version).map(|(_, reason)| reason.as_str()).collect();
        migration_tokens(m, &abs, &shown, &reasons)
    });
    let postgres = postgres.major;
    let dialect = match dialect {
        Dialect::Postgres => quote!(Postgres),
        Dialect::Sqlite => quote!(Sqlite),
    };
    Ok(quote! {
        ::zdm::__private::EmbeddedSet {
            sql: &[#(#items),*],
            dialect: ::zdm::__private::Dialect::#dialect,
            lint_postgres: {
                #warnings
                #baseline_tracking
                #project_tracking
                #sqlx_tracking
                #postgres
            },
            sqlx_table: #sqlx_table,
            lock_timeout_ms: #lock_timeout,
            statement_timeout_ms: #statement_timeout,
            app_name: ::core::env!("CARGO_PKG_NAME"),
            app_version: ::core::env!("CARGO_PKG_VERSION"),
        }
    })
}

/// One migration's tokens; `allowed` are the reasons of `zdm.toml` rules that fired in
/// it, recorded in the ledger with its own `safety_assured` ones.
fn migration_tokens(m: &ParsedMigration, abs_dir: &Path, shown_dir: &str, allowed: &[&str]) -> TokenStream {
    let version = m.version;
    let description = &m.description;
    let source = &m.path;
    let checksum = &m.checksum;
    let phase = if m.directives.after_deploy { quote!(PostDeploy) } else { quote!(PreDeploy) };
    let no_transaction = m.directives.no_transaction;
    let mut reasons: Vec<&str> = m.directives.safety_assured.iter().map(|s| s.reason.as_str()).collect();
    for r in allowed {
        if !reasons.contains(r) {
            reasons.push(r);
        }
    }
    let option = |v: Option<u64>| match v {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let lock_timeout = option(m.directives.lock_timeout_ms);
    let statement_timeout = option(m.directives.statement_timeout_ms);
    // The shown path starts with the folder as written; the rest is relative to it.
    let relative = m.path.strip_prefix(shown_dir.trim_end_matches('/')).unwrap_or(&m.path).trim_start_matches('/');
    let abs: PathBuf = abs_dir.join(relative);
    let abs = syn::LitStr::new(&abs.to_string_lossy(), Span::call_site());
    quote! {
        (
            ::zdm::__private::Migration {
                version: #version,
                description: #description,
                source: #source,
                checksum: &[#(#checksum),*],
                phase: ::zdm::__private::Phase::#phase,
                no_transaction: #no_transaction,
                safety_assured: &[#(#reasons),*],
                lock_timeout_ms: #lock_timeout,
                statement_timeout_ms: #statement_timeout,
            },
            ::core::include_str!(#abs),
        )
    }
}

/// A file the set depends on, read when it exists, with the tokens that make editing it
/// rebuild the crate (an `include_str!` of it); `shown` names it in errors.
fn read_tracked(path: &Path, shown: &str, span: Span) -> syn::Result<Option<(String, TokenStream)>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| syn::Error::new(span, format!("cannot read `{shown}`: {e}")))?;
    let lit = syn::LitStr::new(&path.to_string_lossy(), Span::call_site());
    Ok(Some((
        text,
        quote!(
            const _: &str = ::core::include_str!(#lit);
        ),
    )))
}

/// The folder's `zdm-baseline.txt`, when it has one.
fn read_baseline(abs: &Path, shown: &str, span: Span) -> syn::Result<(Option<Manifest>, TokenStream)> {
    let shown = format!("{}/{}", shown.trim_end_matches('/'), zdm_core::baseline::FILE_NAME);
    let Some((text, tracking)) = read_tracked(&abs.join(zdm_core::baseline::FILE_NAME), &shown, span)? else {
        return Ok((None, TokenStream::new()));
    };
    let manifest =
        Manifest::parse(&text).map_err(|(line, msg)| syn::Error::new(span, format!("{shown}:{line}: {msg}")))?;
    Ok((Some(manifest), tracking))
}

/// `zdm.toml` beside `Cargo.toml` (the same file the `zdm` command line reads). A mistake
/// in it is a compile error naming the file, the line and the key.
fn read_project(manifest_dir: &Path, span: Span) -> syn::Result<(Config, TokenStream)> {
    let name = zdm_core::config::FILE_NAME;
    let Some((text, tracking)) = read_tracked(&manifest_dir.join(name), name, span)? else {
        return Ok((Config::default(), TokenStream::new()));
    };
    Ok((Config::parse(name, &text).map_err(|e| syn::Error::new(span, e))?, tracking))
}

/// sqlx's `sqlx.toml` beside `Cargo.toml`, for the ledger table it names
/// (`[migrate] table-name`).
fn read_sqlx_toml(manifest_dir: &Path, span: Span) -> syn::Result<(SqlxToml, TokenStream)> {
    let Some((text, tracking)) = read_tracked(&manifest_dir.join("sqlx.toml"), "sqlx.toml", span)? else {
        return Ok((SqlxToml::default(), TokenStream::new()));
    };
    Ok((Config::sqlx_toml("sqlx.toml", &text).map_err(|e| syn::Error::new(span, e))?, tracking))
}

/// What the lint left to embed: the warnings (as tokens) and, per migration version, the
/// reasons of the rules `zdm.toml` allows that fired in it.
struct Linted {
    warnings: TokenStream,
    allowed: Vec<(i64, String)>,
}

/// Runs the safety lint over the set, with `zdm.toml`'s rule levels and excluded paths:
/// every blocking finding becomes a compile error (all at once); warnings become compiler
/// warnings.
fn lint(parsed: &[ParsedMigration], config: &LintConfig, project: &Config, span: Span) -> syn::Result<Linted> {
    let inputs: Vec<LintInput<'_>> = parsed.iter().map(LintInput::from_parsed).collect();
    let mut findings = zdm_core::lint::lint(&inputs, config);
    // The findings' paths are relative to the crate, as the excluded paths are.
    project.apply(Path::new(""), &mut findings);
    let mut errors = Errors::default();
    findings.iter().filter(|f| f.blocks()).for_each(|f| errors.at(span, f));
    errors.finish(())?;
    // Stable Rust has no warning API for proc macros: a use of a deprecated item is one.
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning && f.assured.is_none()).map(|f| {
        let note = f.to_string();
        quote_spanned! {span=>
            #[deprecated(note = #note)]
            #[allow(non_camel_case_types)]
            struct zdm_lint_warning;
            let _ = zdm_lint_warning;
        }
    });
    let allowed = findings
        .iter()
        .filter_map(|f| Some((f.version, f.assured.clone().filter(|r| r.starts_with("zdm.toml: "))?)))
        .collect();
    Ok(Linted { warnings: quote!(#(#warnings)*), allowed })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(text: &str) -> syn::Result<(Config, TokenStream)> {
        let dir = std::env::temp_dir().join(format!("zdm-macros-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("zdm.toml"), text).unwrap();
        let read = read_project(&dir, Span::call_site());
        std::fs::remove_dir_all(&dir).unwrap();
        read
    }

    fn set(files: &[(&str, &str)]) -> Vec<ParsedMigration> {
        let files = files
            .iter()
            .map(|(name, sql)| zdm_core::source::SourceFile {
                path: format!("migrations/{name}"),
                bytes: sql.as_bytes().to_vec(),
            })
            .collect();
        parse_files(files).unwrap()
    }

    const RENAME: &[(&str, &str)] = &[
        ("0001_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, title text);"),
        ("0002_rename.sql", "ALTER TABLE posts RENAME COLUMN title TO headline;"),
    ];

    #[test]
    fn zdm_toml_levels_reach_the_compile_time_lint_and_the_ledger() {
        let parsed = set(RENAME);
        let config = LintConfig::default();
        let blocked = lint(&parsed, &config, &Config::default(), Span::call_site());
        assert!(blocked.is_err(), "without zdm.toml the rename is an error");

        let (allow, tracking) =
            project("[rules]\nrename-column = { level = \"allow\", reason = \"nobody reads posts yet\" }\n").unwrap();
        assert!(tracking.to_string().contains("include_str"), "editing zdm.toml rebuilds the crate");
        let linted = lint(&parsed, &config, &allow, Span::call_site()).expect("allowed");
        assert_eq!(linted.allowed, [(2, "zdm.toml: nobody reads posts yet".to_string())]);
        assert!(linted.warnings.is_empty());

        let (warn, _) = project("[rules]\nrename-column = \"warn\"\n").unwrap();
        let linted = lint(&parsed, &config, &warn, Span::call_site()).expect("a warning does not block");
        assert!(linted.warnings.to_string().contains("deprecated"), "a compiler warning");
        assert!(linted.allowed.is_empty());
    }

    #[test]
    fn sqlx_toml_names_the_ledger_the_set_reads() {
        let dir = std::env::temp_dir().join(format!("zdm-macros-sqlx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sqlx.toml"), "[migrate]\ntable-name = \"app._migrations\"\n").unwrap();
        let (sqlx, tracking) = read_sqlx_toml(&dir, Span::call_site()).unwrap();
        std::fs::write(dir.join("sqlx.toml"), "[migrate\n").unwrap();
        let broken = read_sqlx_toml(&dir, Span::call_site()).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(sqlx.table_name.as_deref(), Some("app._migrations"));
        assert!(tracking.to_string().contains("include_str"));
        assert!(broken.to_string().starts_with("sqlx.toml:"), "{broken}");
    }

    #[test]
    fn a_bad_zdm_toml_is_a_compile_error_naming_line_and_key() {
        let e = project("postgres = \"15\"\n[rules]\nrename-colum = \"warn\"\n").unwrap_err();
        assert!(e.to_string().starts_with("zdm.toml:3: [rules] names an unknown rule `rename-colum`"), "{e}");
    }
}
