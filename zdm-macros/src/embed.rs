//! `migrations!` and `migrator!`: read the folder at compile time, let `zdm-core` judge
//! every file, and embed the result as a static. Each file is embedded with
//! `include_str!`, so editing a file rebuilds the crate; adding or removing one needs the
//! build script line `zdm::build::track("migrations")` (stable Rust cannot watch folders).

use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use zdm_core::baseline::Manifest;
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
    let warnings = lint(&parsed, args, baseline)?;
    let shown = dir.value();
    let items = parsed.iter().map(|m| migration_tokens(m, &abs, &shown));
    let postgres = args.postgres.major;
    let dialect = match args.dialect {
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
                #postgres
            },
            app_name: ::core::env!("CARGO_PKG_NAME"),
            app_version: ::core::env!("CARGO_PKG_VERSION"),
        }
    })
}

fn migration_tokens(m: &ParsedMigration, abs_dir: &Path, shown_dir: &str) -> TokenStream {
    let version = m.version;
    let description = &m.description;
    let source = &m.path;
    let checksum = &m.checksum;
    let phase = if m.directives.after_deploy { quote!(PostDeploy) } else { quote!(PreDeploy) };
    let no_transaction = m.directives.no_transaction;
    let reasons = m.directives.safety_assured.iter().map(|s| &s.reason);
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

/// Reads `zdm-baseline.txt` when the folder has one; the tokens embed it so that editing
/// it rebuilds the crate.
fn read_baseline(abs: &Path, shown: &str, span: Span) -> syn::Result<(Option<Manifest>, TokenStream)> {
    let path = abs.join(zdm_core::baseline::FILE_NAME);
    if !path.is_file() {
        return Ok((None, TokenStream::new()));
    }
    let shown = format!("{}/{}", shown.trim_end_matches('/'), zdm_core::baseline::FILE_NAME);
    let text =
        std::fs::read_to_string(&path).map_err(|e| syn::Error::new(span, format!("cannot read `{shown}`: {e}")))?;
    let manifest =
        Manifest::parse(&text).map_err(|(line, msg)| syn::Error::new(span, format!("{shown}:{line}: {msg}")))?;
    let lit = syn::LitStr::new(&path.to_string_lossy(), Span::call_site());
    Ok((
        Some(manifest),
        quote!(
            const _: &str = ::core::include_str!(#lit);
        ),
    ))
}

/// Runs the safety lint over the set: every blocking finding becomes a compile error (all
/// at once); warnings become compiler warnings.
fn lint(parsed: &[ParsedMigration], args: &EmbedArgs, baseline: Option<Manifest>) -> syn::Result<TokenStream> {
    let inputs: Vec<LintInput<'_>> = parsed.iter().map(LintInput::from_parsed).collect();
    let config = LintConfig { dialect: args.dialect, postgres: args.postgres, start_after: args.start_after, baseline };
    let findings = zdm_core::lint::lint(&inputs, &config);
    let mut errors = Errors::default();
    findings.iter().filter(|f| f.blocks()).for_each(|f| errors.at(args.dir.span(), f));
    errors.finish(())?;
    // Stable Rust has no warning API for proc macros: a use of a deprecated item is one.
    let warnings = findings.iter().filter(|f| f.severity == Severity::Warning && f.assured.is_none()).map(|f| {
        let note = f.to_string();
        quote_spanned! {args.dir.span()=>
            #[deprecated(note = #note)]
            #[allow(non_camel_case_types)]
            struct zdm_lint_warning;
            let _ = zdm_lint_warning;
        }
    });
    Ok(quote!(#(#warnings)*))
}
