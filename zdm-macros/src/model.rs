//! `#[zdm::ignored_columns(table = "posts", columns(a, b))]` and `#[zdm::model(table =
//! "posts")]` on model structs, and `#[derive(zdm::Model)]` with `#[zdm(table = "posts",
//! ignored_columns(a, b))]`.
//!
//! The struct stays as written (a derive cannot change it; the attributes do not). Beside
//! it the macro emits associated consts (`TABLE`, `COLUMNS`, `COLUMN_LIST`, `SELECT`,
//! `IGNORED_COLUMNS`) and registers a `zdm::ModelInfo` with `inventory`, so the instance
//! registry publishes what this build maps and ignores. Column names follow sqlx's
//! `FromRow` rules (`rename`, `rename_all`, `skip`, `flatten`); the judgement lives in
//! `zdm_core::model`.
//!
//! Pipeline, the same for the three forms: read the options ([`parse_attr`] for the
//! attributes, [`parse_derive_attrs`] for the derive's `#[zdm(..)]`), [`parse`] the struct
//! into a [`Model`] that keeps each field's original tokens, [`validate`] it (every problem
//! at its own span), [`expand`].

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Data, DeriveInput, Expr, Fields, FieldsNamed, Generics, Ident, ItemStruct, Lit, LitStr, Meta, Token,
};
use zdm_core::model::{self, At, Declared, RenameAll};

use crate::errors::Errors;

/// Which of the three forms the user wrote: the options and the messages differ, the rest
/// is shared.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `#[zdm::ignored_columns(table = "..", columns(a, b))]`
    IgnoredColumns,
    /// `#[zdm::model(table = "..")]`
    Model,
    /// `#[derive(zdm::Model)]` + `#[zdm(table = "..", ignored_columns(a, b))]`
    Derive,
}

impl Form {
    /// The name of the list of ignored columns, if this form takes one.
    fn list(self) -> Option<&'static str> {
        match self {
            Form::IgnoredColumns => Some("columns"),
            Form::Model => None,
            Form::Derive => Some("ignored_columns"),
        }
    }

    fn declared(self) -> Declared {
        match self {
            Form::IgnoredColumns | Form::Model => Declared::Attribute,
            Form::Derive => Declared::Derive,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Form::IgnoredColumns => "`table = \"..\"` and `columns(a, b)`",
            Form::Model => "`table = \"..\"`",
            Form::Derive => "`table = \"..\"` and `ignored_columns(a, b)`",
        }
    }

    fn name_the_table(self) -> &'static str {
        match self {
            Form::IgnoredColumns | Form::Model => "name the table the struct reads: `table = \"posts\"`",
            Form::Derive => "`#[derive(zdm::Model)]` needs the table the struct reads: `#[zdm(table = \"posts\")]`",
        }
    }
}

/// `#[zdm::ignored_columns]` (`Form::IgnoredColumns`) or `#[zdm::model]` on `item`.
pub(crate) fn attribute(args: TokenStream, item: TokenStream, form: Form) -> syn::Result<TokenStream> {
    let attr = parse_attr(args, form)?;
    let item: ItemStruct = syn::parse2(item).map_err(|e| {
        syn::Error::new(e.span(), "`#[zdm::ignored_columns]` and `#[zdm::model]` go on a struct with named fields")
    })?;
    let model = parse(Shape::of_struct(&item), attr, form)?;
    validate(&model)?;
    let mut out = item.to_token_stream();
    out.extend(expand(&model));
    Ok(out)
}

/// `#[derive(zdm::Model)]`: the same consts and registration, beside the struct.
pub(crate) fn derive(input: TokenStream) -> syn::Result<TokenStream> {
    let input: DeriveInput = syn::parse2(input)?;
    let shape = match &input.data {
        Data::Struct(s) => {
            Shape { ident: &input.ident, generics: &input.generics, attrs: &input.attrs, fields: &s.fields }
        }
        Data::Enum(syn::DataEnum { enum_token: syn::token::Enum { span }, .. })
        | Data::Union(syn::DataUnion { union_token: syn::token::Union { span }, .. }) => {
            return Err(syn::Error::new(
                *span,
                "`#[derive(zdm::Model)]` goes on a struct with named fields (one per column)",
            ))
        }
    };
    let attr = parse_derive_attrs(&shape)?;
    let model = parse(shape, attr, Form::Derive)?;
    validate(&model)?;
    Ok(expand(&model))
}

/// The parts of a struct the macros read, from an `ItemStruct` or a `DeriveInput`.
struct Shape<'a> {
    ident: &'a Ident,
    generics: &'a Generics,
    attrs: &'a [Attribute],
    fields: &'a Fields,
}

impl<'a> Shape<'a> {
    fn of_struct(item: &'a ItemStruct) -> Shape<'a> {
        Shape { ident: &item.ident, generics: &item.generics, attrs: &item.attrs, fields: &item.fields }
    }

    /// The named fields, or the error every form reports for a tuple or unit struct.
    fn named(&self) -> syn::Result<&'a FieldsNamed> {
        match self.fields {
            Fields::Named(named) => Ok(named),
            _ => Err(syn::Error::new_spanned(self.ident, "zdm model structs need named fields (one per column)")),
        }
    }
}

/// The options, each with its span.
struct Attr {
    table: LitStr,
    /// The ignored columns as written.
    ignored: Vec<Ident>,
}

/// A field that reads a column: the field as written and the column sqlx maps it to.
struct Column<'a> {
    original: &'a syn::Field,
    name: String,
}

/// The struct as the macro reads it.
struct Model<'a> {
    ident: &'a Ident,
    generics: &'a Generics,
    form: Form,
    attr: Attr,
    columns: Vec<Column<'a>>,
}

impl Model<'_> {
    fn ignored(&self) -> Vec<String> {
        self.attr.ignored.iter().map(|i| i.unraw().to_string()).collect()
    }
}

/// The arguments of `#[zdm::ignored_columns(..)]` / `#[zdm::model(..)]`.
fn parse_attr(args: TokenStream, form: Form) -> syn::Result<Attr> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut errors = Errors::default();
    let attr = options(metas, form, &mut errors);
    errors.finish(())?;
    attr.ok_or_else(|| syn::Error::new(Span::call_site(), form.name_the_table()))
}

/// Every `#[zdm(..)]` of a derived struct (several are read as one), and none on a field:
/// a field's column is sqlx's business (`#[sqlx(rename)]`).
fn parse_derive_attrs(shape: &Shape<'_>) -> syn::Result<Attr> {
    let mut errors = Errors::default();
    let mut metas = Punctuated::<Meta, Token![,]>::new();
    for attr in shape.attrs.iter().filter(|a| a.path().is_ident("zdm")) {
        match attr.meta.require_list().and_then(|l| l.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated))
        {
            Ok(list) => metas.extend(list),
            Err(_) => errors.spanned(attr, "expected `#[zdm(table = \"..\", ignored_columns(a, b))]`"),
        }
    }
    if let Ok(named) = shape.named() {
        for attr in named.named.iter().flat_map(|f| &f.attrs).filter(|a| a.path().is_ident("zdm")) {
            errors.spanned(
                attr,
                "`#[zdm(..)]` goes on the struct, not on a field (a field's column follows `#[sqlx(rename = \"..\")]`)",
            );
        }
    }
    let attr = options(metas, Form::Derive, &mut errors);
    errors.finish(())?;
    attr.ok_or_else(|| syn::Error::new(Span::call_site(), Form::Derive.name_the_table()))
}

/// `table = ".."` and the list of ignored columns; `None` without a table (reported by
/// the caller unless something else is wrong already).
fn options(metas: Punctuated<Meta, Token![,]>, form: Form, errors: &mut Errors) -> Option<Attr> {
    let (mut table, mut ignored) = (None::<LitStr>, Vec::new());
    for meta in metas {
        let name = meta.path().get_ident().map(ToString::to_string).unwrap_or_default();
        match (name.as_str(), &meta) {
            ("table", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) if !s.value().trim().is_empty() => {
                    if table.is_some() {
                        errors.spanned(&meta, "`table` is given twice");
                    }
                    table = Some(s.clone())
                }
                other => errors.spanned(other, "`table` takes the table's name, e.g. `table = \"posts\"`"),
            },
            (list, Meta::List(l)) if Some(list) == form.list() => {
                match Punctuated::<Ident, Token![,]>::parse_terminated.parse2(l.tokens.clone()) {
                    Ok(names) => ignored.extend(names),
                    Err(e) => errors.at(
                        e.span(),
                        format!("`{list}(...)` lists column names, e.g. `{list}(description, legacy_slug)`"),
                    ),
                }
            }
            _ => errors.spanned(&meta, format!("unknown option; expected {}", form.expected())),
        }
    }
    if table.is_none() && !errors.is_empty() {
        // The other errors first; a missing table may be their consequence.
        return None;
    }
    Some(Attr { table: table?, ignored })
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
fn parse<'a>(shape: Shape<'a>, attr: Attr, form: Form) -> syn::Result<Model<'a>> {
    let named = shape.named()?;
    let mut errors = Errors::default();
    let rename_all = sqlx_attrs(shape.attrs).map_err(|e| errors.push(e)).ok().and_then(|a| a.rename_all);
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
    errors.finish(Model { ident: shape.ident, generics: shape.generics, form, attr, columns })
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
            At::Field(i) => errors.spanned(m.columns[i].original.ident.as_ref(), err.message(m.form.declared())),
            At::Ignored(i) => errors.spanned(&m.attr.ignored[i], err.message(m.form.declared())),
        }
    }
    errors.finish(())
}

/// The consts and the registration (not the struct: the attributes emit it themselves,
/// a derive must not).
fn expand(m: &Model<'_>) -> TokenStream {
    let name = m.ident;
    let (impl_generics, ty_generics, where_clause) = m.generics.split_for_impl();
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
            /// The columns it declares unused (`#[zdm::ignored_columns]`, `#[zdm(ignored_columns(..))]`).
            pub const IGNORED_COLUMNS: &'static [&'static str] = &[#(#ignored),*];
            /// What zdm's instance registry publishes for this struct.
            pub const ZDM_MODEL: ::zdm::ModelInfo = #info;
        }

        ::zdm::__private::inventory::submit! {
            ::zdm::__private::RegisteredModel(#info)
        }
    }
}
