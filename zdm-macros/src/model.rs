//! `#[zdm::ignored_columns(table = "posts", columns(a, b))]` and `#[zdm::model(table =
//! "posts")]` on model structs.
//!
//! The struct stays as written. Beside it the macro emits associated consts (`TABLE`,
//! `COLUMNS`, `COLUMN_LIST`, `SELECT`, `IGNORED_COLUMNS`) and registers a `zdm::ModelInfo` with
//! `inventory`, so the instance registry publishes what this build maps and ignores.
//! Column names follow sqlx's `FromRow` rules (`rename`, `rename_all`, `skip`); the
//! judgement lives in `zdm_core::model`.
//!
//! Pipeline: [`parse`] the attribute and the struct into a [`Model`] that keeps each
//! field's original tokens, [`validate`] it (every problem at its own span), [`expand`].

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Fields, Ident, ItemStruct, Lit, LitStr, Meta, Token};
use zdm_core::model::{self, At, RenameAll};

use crate::errors::Errors;

/// `#[zdm::ignored_columns]` (`with_columns`) or `#[zdm::model]` on `item`.
pub(crate) fn attribute(args: TokenStream, item: TokenStream, with_columns: bool) -> syn::Result<TokenStream> {
    let attr = parse_attr(args, with_columns)?;
    let item: ItemStruct = syn::parse2(item).map_err(|e| {
        syn::Error::new(e.span(), "`#[zdm::ignored_columns]` and `#[zdm::model]` go on a struct with named fields")
    })?;
    let model = parse(&item, attr)?;
    validate(&model)?;
    Ok(expand(&model))
}

/// The attribute's arguments, each with its span.
struct Attr {
    table: LitStr,
    /// `columns(a, b)`: the ignored columns as written.
    ignored: Vec<Ident>,
}

/// A field that reads a column: the field as written and the column sqlx maps it to.
struct Column<'a> {
    original: &'a syn::Field,
    name: String,
}

/// The struct as the macro reads it.
struct Model<'a> {
    item: &'a ItemStruct,
    attr: Attr,
    columns: Vec<Column<'a>>,
}

impl Model<'_> {
    fn ignored(&self) -> Vec<String> {
        self.attr.ignored.iter().map(|i| i.unraw().to_string()).collect()
    }
}

fn parse_attr(args: TokenStream, with_columns: bool) -> syn::Result<Attr> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let (mut table, mut ignored) = (None, Vec::new());
    let mut errors = Errors::default();
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        match (name.as_str(), &meta) {
            ("table", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) if !s.value().trim().is_empty() => {
                    table = Some(s.clone())
                }
                other => errors.spanned(other, "`table` takes the table's name, e.g. `table = \"posts\"`"),
            },
            ("columns", Meta::List(list)) if with_columns => {
                match Punctuated::<Ident, Token![,]>::parse_terminated.parse2(list.tokens.clone()) {
                    Ok(names) => ignored.extend(names),
                    Err(e) => errors
                        .at(e.span(), "`columns(...)` lists column names, e.g. `columns(description, legacy_slug)`"),
                }
            }
            _ => {
                let expected = if with_columns { "`table = \"..\"` and `columns(a, b)`" } else { "`table = \"..\"`" };
                errors.spanned(&meta, format!("unknown option; expected {expected}"));
            }
        }
    }
    if table.is_none() && errors.is_empty() {
        errors.at(Span::call_site(), "name the table the struct reads: `table = \"posts\"`");
    }
    errors.finish(())?;
    Ok(Attr { table: table.expect("checked above"), ignored })
}

/// sqlx's `rename_all` on the struct, `rename`, `skip` and `flatten` on a field.
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

/// The struct's columns, after sqlx's attributes.
fn parse(item: &ItemStruct, attr: Attr) -> syn::Result<Model<'_>> {
    let Fields::Named(named) = &item.fields else {
        return Err(syn::Error::new_spanned(&item.ident, "zdm model structs need named fields (one per column)"));
    };
    let mut errors = Errors::default();
    let rename_all = sqlx_attrs(&item.attrs).map_err(|e| errors.push(e)).ok().and_then(|a| a.rename_all);
    let mut columns = Vec::new();
    for f in &named.named {
        let Ok(attrs) = sqlx_attrs(&f.attrs).map_err(|e| errors.push(e)) else { continue };
        // A skipped field reads no column; a flattened one reads its own struct's columns.
        if attrs.skip || attrs.flatten {
            continue;
        }
        let ident = f.ident.as_ref().expect("named field").to_string();
        columns.push(Column { original: f, name: model::column_of(&ident, attrs.rename.as_deref(), rename_all) });
    }
    errors.finish(Model { item, attr, columns })
}

/// Every field that maps an ignored column, and every column ignored twice.
fn validate(m: &Model<'_>) -> syn::Result<()> {
    let fields: Vec<(String, String)> = m
        .columns
        .iter()
        .map(|c| (c.original.ident.as_ref().expect("named field").to_string(), c.name.clone()))
        .collect();
    let mut errors = Errors::default();
    for (at, err) in model::check(&fields, &m.ignored()) {
        match at {
            At::Field(i) => errors.spanned(m.columns[i].original.ident.as_ref(), err),
            At::Ignored(i) => errors.spanned(&m.attr.ignored[i], err),
        }
    }
    errors.finish(())
}

fn expand(m: &Model<'_>) -> TokenStream {
    let item = m.item;
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let table = &m.attr.table;
    let ignored = m.ignored();
    let columns: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    let column_list = model::column_list(&m.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>());
    let select = format!("SELECT {column_list} FROM {}", model::quote_table(&table.value()));
    let struct_name = name.to_string();
    let info = quote! {
        ::zdm::ModelInfo {
            name: ::core::concat!(::core::module_path!(), "::", #struct_name),
            table: #table,
            columns: &[#(#columns),*],
            ignored: &[#(#ignored),*],
        }
    };
    quote! {
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
    }
}
