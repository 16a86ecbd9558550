//! `#[zdm::ignored_columns(table = "posts", columns(a, b))]` and `#[zdm::model(table =
//! "posts")]` on model structs.
//!
//! The struct stays as written. Beside it the macro emits associated consts (`TABLE`,
//! `COLUMNS`, `COLUMN_LIST`, `SELECT`, `IGNORED_COLUMNS`) and registers a `zdm::ModelInfo` with
//! `inventory`, so the instance registry publishes what this build maps and ignores.
//! Column names follow sqlx's `FromRow` rules (`rename`, `rename_all`, `skip`); the
//! judgement lives in `zdm_core::model`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Fields, Ident, ItemStruct, Lit, LitStr, Meta, Token};
use zdm_core::model::{self, ModelError, RenameAll};

struct Options {
    table: LitStr,
    ignored: Vec<(String, Span)>,
}

fn parse_options(args: TokenStream, with_columns: bool) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args.clone())?;
    let (mut table, mut ignored) = (None, Vec::new());
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        match (name.as_str(), &meta) {
            ("table", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) if !s.value().trim().is_empty() => {
                    table = Some(s.clone())
                }
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "`table` takes the table's name, e.g. `table = \"posts\"`",
                    ))
                }
            },
            ("columns", Meta::List(list)) if with_columns => {
                let names =
                    Punctuated::<Ident, Token![,]>::parse_terminated.parse2(list.tokens.clone()).map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`columns(...)` lists column names, e.g. `columns(description, legacy_slug)`",
                        )
                    })?;
                ignored.extend(names.iter().map(|i| (i.to_string().trim_start_matches("r#").to_string(), i.span())));
            }
            _ => {
                let expected = if with_columns { "`table = \"..\"` and `columns(a, b)`" } else { "`table = \"..\"`" };
                return Err(syn::Error::new_spanned(meta, format!("unknown option; expected {expected}")));
            }
        }
    }
    let table = table
        .ok_or_else(|| syn::Error::new(Span::call_site(), "name the table the struct reads: `table = \"posts\"`"))?;
    Ok(Options { table, ignored })
}

/// sqlx's `rename_all` on the struct, `rename` and `skip` on a field.
#[derive(Default)]
struct SqlxAttrs {
    rename: Option<String>,
    rename_all: Option<RenameAll>,
    skip: bool,
    flatten: bool,
}

fn sqlx_attrs(attrs: &[syn::Attribute]) -> syn::Result<SqlxAttrs> {
    let mut out = SqlxAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("sqlx")) {
        let Ok(list) = attr.meta.require_list() else { continue };
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
        for meta in metas {
            match &meta {
                Meta::NameValue(nv) if nv.path.is_ident("rename") || nv.path.is_ident("rename_all") => {
                    let Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) = &nv.value else { continue };
                    if nv.path.is_ident("rename") {
                        out.rename = Some(s.value());
                    } else {
                        out.rename_all = Some(RenameAll::parse(&s.value()).ok_or_else(|| {
                            syn::Error::new_spanned(s, format!("unknown `rename_all`; sqlx knows {}", RenameAll::NAMES))
                        })?);
                    }
                }
                Meta::Path(p) if p.is_ident("skip") => out.skip = true,
                Meta::Path(p) if p.is_ident("flatten") => out.flatten = true,
                _ => {}
            }
        }
    }
    Ok(out)
}

pub(crate) fn expand(args: TokenStream, item: TokenStream, with_columns: bool) -> syn::Result<TokenStream> {
    let opts = parse_options(args, with_columns)?;
    let item: ItemStruct = syn::parse2(item).map_err(|e| {
        syn::Error::new(e.span(), "`#[zdm::ignored_columns]` and `#[zdm::model]` go on a struct with named fields")
    })?;
    let Fields::Named(named) = &item.fields else {
        return Err(syn::Error::new_spanned(&item.ident, "zdm model structs need named fields (one per column)"));
    };
    let rename_all = sqlx_attrs(&item.attrs)?.rename_all;
    let mut fields = Vec::new();
    let mut spans = Vec::new();
    for f in &named.named {
        let attrs = sqlx_attrs(&f.attrs)?;
        // A skipped field reads no column; a flattened one reads its own struct's columns.
        if attrs.skip || attrs.flatten {
            continue;
        }
        let ident = f.ident.as_ref().expect("named field").to_string();
        fields.push((ident.clone(), model::column_of(&ident, attrs.rename.as_deref(), rename_all)));
        spans.push(f.ident.as_ref().expect("named field").span());
    }
    let ignored: Vec<String> = opts.ignored.iter().map(|(c, _)| c.clone()).collect();
    let mut errors: Option<syn::Error> = None;
    for (i, err) in model::check(&fields, &ignored) {
        let span = match &err {
            ModelError::MapsIgnored { .. } => spans[i],
            ModelError::IgnoredTwice { .. } => opts.ignored[usize::MAX - i].1,
        };
        let e = syn::Error::new(span, err.to_string());
        match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }

    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let table = &opts.table;
    let columns: Vec<&str> = fields.iter().map(|(_, c)| c.as_str()).collect();
    let column_list = model::column_list(&fields.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>());
    let select = format!("SELECT {column_list} FROM {}", model::quote_table(&opts.table.value()));
    let struct_name = name.to_string();
    let info = quote! {
        ::zdm::ModelInfo {
            name: ::core::concat!(::core::module_path!(), "::", #struct_name),
            table: #table,
            columns: &[#(#columns),*],
            ignored: &[#(#ignored),*],
        }
    };
    Ok(quote! {
        #item

        impl #impl_generics #name #ty_generics #where_clause {
            /// The table this struct reads (from its zdm attribute).
            pub const TABLE: &'static str = #table;
            /// The columns its fields map to, in field order (sqlx's renames applied).
            pub const COLUMNS: &'static [&'static str] = &[#(#columns),*];
            /// `COLUMNS` quoted and comma-separated, for `SELECT` and `RETURNING` lists:
            /// an explicit list keeps old builds working when a column is added.
            pub const COLUMN_LIST: &'static str = #column_list;
            /// `SELECT <COLUMN_LIST> FROM <TABLE>`, a `&'static str` sqlx takes as it is.
            pub const SELECT: &'static str = #select;
            /// The columns it declares unused (`#[zdm::ignored_columns]`).
            pub const IGNORED_COLUMNS: &'static [&'static str] = &[#(#ignored),*];
            /// What zdm's instance registry publishes for this struct.
            pub const ZDM_MODEL: ::zdm::ModelInfo = #info;
        }

        ::zdm::__private::inventory::submit! {
            ::zdm::__private::RegisteredModel(#info)
        }
    })
}
