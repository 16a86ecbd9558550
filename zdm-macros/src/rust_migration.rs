//! `#[zdm::migration]` and `#[zdm::after_deploy]` on Rust-coded migrations.
//!
//! The function stays as written; beside it the macro emits `__zdm_migration_<name>()`,
//! which builds its `zdm::RustMigration`, and registers that with `inventory` so the
//! default set picks it up (`migrator!(.., rust = [name])` lists it explicitly).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, ItemFn, Lit, Meta, Token, Type};
use zdm_core::checksum::checksum;

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
        let name = meta
            .path()
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match (name.as_str(), &meta) {
            ("after_deploy", Meta::Path(_)) => o.after_deploy = true,
            ("no_transaction", Meta::Path(_)) => o.no_transaction = true,
            ("version", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => o.version = Some(i.base10_parse()?),
                other => return Err(syn::Error::new_spanned(other, "`version` takes an integer, e.g. `version = 20240101120000`")),
            },
            ("description", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) => o.description = Some(s.value()),
                other => return Err(syn::Error::new_spanned(other, "`description` takes a string")),
            },
            _ => {
                return Err(syn::Error::new_spanned(
                    meta,
                    "unknown option; expected `version = N`, `description = \"..\"`, `after_deploy` or `no_transaction`",
                ))
            }
        }
    }
    Ok(o)
}

fn is_migration_attr(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|s| s.ident == "migration")
}

pub(crate) fn migration(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut opts = parse_options(args.clone())?;
    let mut func: ItemFn = syn::parse2(item)?;
    // `#[zdm::after_deploy]` written below `#[zdm::migration]` is still on the function.
    func.attrs.retain(|a| {
        let after = a
            .path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "after_deploy");
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
        return Err(syn::Error::new_spanned(
            func.sig.fn_token,
            "a zdm migration must be an `async fn`",
        ));
    }
    let conn_ty = connection_type(&func)?;
    let name = &func.sig.ident;
    let builder = format_ident!("__zdm_migration_{}", name);
    let description = opts.description.clone().unwrap_or_else(|| name.to_string());
    let digest = checksum(func.to_token_stream().to_string().as_bytes());
    let phase = if opts.after_deploy {
        quote!(PostDeploy)
    } else {
        quote!(PreDeploy)
    };
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
        return Err(syn::Error::new_spanned(
            args,
            "`#[zdm::after_deploy]` takes no arguments",
        ));
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
