//! `#[zdm::migration]` and `#[zdm::after_deploy]` on Rust-coded migrations.
//!
//! The function stays as written; beside it the macro emits `__zdm_migration_<name>()`,
//! which builds its `zdm::RustMigration`, and registers that with `inventory` so the
//! default set picks it up (`migrator!(.., rust = [name])` lists it explicitly).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::{Expr, FnArg, ItemFn, Lit, Meta, Token, Type};
use zdm_core::checksum::checksum;
use zdm_core::lint::{LintConfig, LintInput};
use zdm_core::Phase;

#[derive(Default)]
struct Options {
    version: Option<i64>,
    description: Option<String>,
    after_deploy: bool,
    no_transaction: bool,
}

fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let mut o = Options::default();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        match (name.as_str(), &meta) {
            ("after_deploy", Meta::Path(_)) => o.after_deploy = true,
            ("no_transaction", Meta::Path(_)) => o.no_transaction = true,
            ("version", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => o.version = Some(i.base10_parse()?),
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`version` takes an integer, e.g. `version = 20240101120000`",
                    ))
                }
            },
            ("description", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => o.description = Some(s.value()),
                other => return Err(syn::Error::new_spanned(other, "`description` takes a string")),
            },
            _ => return Err(syn::Error::new_spanned(
                meta,
                "unknown option; expected `version = N`, `description = \"..\"`, `after_deploy` or `no_transaction`",
            )),
        }
    }
    Ok(o)
}

fn is_migration_attr(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "migration")
}

pub(crate) fn migration(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut opts = parse_options(args.clone())?;
    let mut func: ItemFn = syn::parse2(item)?;
    // `#[zdm::after_deploy]` written below `#[zdm::migration]` is still on the function.
    func.attrs.retain(|a| {
        let after = a.path().segments.last().is_some_and(|s| s.ident == "after_deploy");
        opts.after_deploy |= after;
        !after
    });
    let version = opts.version.ok_or_else(|| {
        syn::Error::new_spanned(
            &func.sig.ident,
            "a Rust migration needs a version: `#[zdm::migration(version = 20240101120000)]`",
        )
    })?;
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(func.sig.fn_token, "a zdm migration must be an `async fn`"));
    }
    let conn_ty = connection_type(&func)?;
    if let Err(e) = lint_literal_sql(&func, version, opts.after_deploy, opts.no_transaction) {
        // Keep the function, so the only errors are the findings.
        let errors = e.into_compile_error();
        return Ok(quote!(#func #errors));
    }
    let name = &func.sig.ident;
    let builder = format_ident!("__zdm_migration_{}", name);
    let description = opts.description.clone().unwrap_or_else(|| name.to_string());
    let digest = checksum(func.to_token_stream().to_string().as_bytes());
    let phase = if opts.after_deploy { quote!(PostDeploy) } else { quote!(PreDeploy) };
    let no_transaction = opts.no_transaction;
    let vis = &func.vis;
    Ok(quote! {
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
                    safety_assured: &[],
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
    })
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

/// String literals passed as SQL inside the function.
#[derive(Default)]
struct SqlLiterals(Vec<syn::LitStr>);

impl SqlLiterals {
    fn take_first(&mut self, args: &Punctuated<Expr, Token![,]>) {
        if let Some(Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. })) = args.first() {
            self.0.push(s.clone());
        }
    }
}

impl<'ast> Visit<'ast> for SqlLiterals {
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let Expr::Path(p) = &*call.func {
            if p.path.segments.last().is_some_and(|s| SQL_TAKING.contains(&s.ident.to_string().as_str())) {
                self.take_first(&call.args);
            }
        }
        syn::visit::visit_expr_call(self, call);
    }
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if SQL_TAKING.contains(&call.method.to_string().as_str()) {
            self.take_first(&call.args);
        }
        syn::visit::visit_expr_method_call(self, call);
    }
}

/// Lints the literal SQL of a Rust-coded migration on its own (the tables it touches are
/// taken to exist already): blocking findings are compile errors at the literal.
fn lint_literal_sql(func: &ItemFn, version: i64, after_deploy: bool, no_transaction: bool) -> syn::Result<()> {
    let mut found = SqlLiterals::default();
    found.visit_block(&func.block);
    let name = format!("{} (Rust migration {version})", func.sig.ident);
    let mut errors: Option<syn::Error> = None;
    for lit in &found.0 {
        let sql = lit.value();
        let directives = match zdm_core::directive::parse(&sql) {
            Ok(d) => d,
            Err(errs) => {
                let e = syn::Error::new(lit.span(), format!("{name}: {}", errs[0].message));
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
                continue;
            }
        };
        let input = LintInput {
            version,
            path: &name,
            sql: &sql,
            phase: if after_deploy { Phase::PostDeploy } else { Phase::PreDeploy },
            no_transaction,
            safety_assured: &directives.safety_assured,
        };
        for f in zdm_core::lint::lint(&[input], &LintConfig::default()).into_iter().filter(|f| f.blocks()) {
            let e = syn::Error::new(lit.span(), f.to_string());
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
    }
    errors.map_or(Ok(()), Err)
}
