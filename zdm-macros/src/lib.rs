//! zdm-macros: the procedural macros of zdm. Thin by design (as thiserror-impl is): each
//! macro parses its input into types that keep their spans, validates it (asking
//! `zdm-core` to judge what needs judging) and expands; every problem is collected by one
//! helper (`errors::Errors`) and reported at its own span, all at once. One file per
//! macro: `embed` (`migrations!`, `migrator!`, with `args`), `rust_migration`,
//! `model` (also `#[derive(zdm::Model)]`). No SQL knowledge lives here.

use proc_macro::TokenStream;

mod args;
mod embed;
mod errors;
mod model;
mod rust_migration;

/// Embeds a migrations folder and registers it as the default set used by
/// `zdm::run_pre(&pool)`, `zdm::run_post(&pool)` and `zdm::status(&pool)`.
///
/// Item position; the path is relative to the crate's `Cargo.toml`. Also emits
/// `pub static ZDM_MIGRATIONS`, which a binary can name to keep the registration of a
/// library crate alive.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    embed::migrations(input.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Embeds a migrations folder and evaluates to a `zdm::Migrator`. Expression position;
/// usable any number of times. `rust = [f, g]` adds Rust-coded migrations.
#[proc_macro]
pub fn migrator(input: TokenStream) -> TokenStream {
    embed::migrator(input.into())
        .unwrap_or_else(|e| {
            // Several `compile_error!`s in a row are not an expression: wrap them.
            let errors = e.into_compile_error();
            // A real (empty) value after them keeps the caller free of follow-up errors.
            quote::quote!({
                #errors
                static __ZDM_SET: ::zdm::__private::EmbeddedSet = ::zdm::__private::EmbeddedSet::EMPTY;
                __ZDM_SET.migrator([])
            })
        })
        .into()
}

/// Marks an `async fn(&mut PgConnection)` (or `SqliteConnection`) as a Rust-coded
/// migration: `#[zdm::migration(version = 20240101120000)]`, optionally with
/// `description = ".."`, `after_deploy`, `no_transaction` and `safety_assured = "<reason>"`
/// (accepts the lint's findings in the function's SQL literals; stored in the ledger).
#[proc_macro_attribute]
pub fn migration(args: TokenStream, item: TokenStream) -> TokenStream {
    rust_migration::migration(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Makes a `#[zdm::migration]` a post-deploy one (run by `run_post`).
#[proc_macro_attribute]
pub fn after_deploy(args: TokenStream, item: TokenStream) -> TokenStream {
    rust_migration::after_deploy(args.into(), item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// Declares columns a model struct no longer uses, so they can be dropped once no live
/// build reads them: `#[zdm::ignored_columns(table = "posts", columns(description))]`.
///
/// A field that maps to an ignored column (after `#[sqlx(rename)]` / `rename_all`) is a
/// compile error. Also emits `TABLE`, `COLUMNS`, `COLUMN_LIST` (quoted, for SELECT and
/// RETURNING) and `IGNORED_COLUMNS`, and registers the struct for the instance registry.
#[proc_macro_attribute]
pub fn ignored_columns(args: TokenStream, item: TokenStream) -> TokenStream {
    model_or_errors(args, item, model::Form::IgnoredColumns)
}

/// Registers a model struct that ignores nothing: `#[zdm::model(table = "posts")]`. Same
/// consts and registration as `#[zdm::ignored_columns]`.
#[proc_macro_attribute]
pub fn model(args: TokenStream, item: TokenStream) -> TokenStream {
    model_or_errors(args, item, model::Form::Model)
}

/// The derive form of `#[zdm::ignored_columns]` / `#[zdm::model]`, beside
/// `#[derive(sqlx::FromRow)]`:
///
/// ```ignore
/// #[derive(sqlx::FromRow, zdm::Model)]
/// #[zdm(table = "posts", ignored_columns(description))]
/// struct Post { id: i64, title: String }
/// ```
///
/// `ignored_columns(..)` is optional. The same consts (`TABLE`, `COLUMNS`, `COLUMN_LIST`,
/// `SELECT`, `IGNORED_COLUMNS`, `ZDM_MODEL`), the same registration and the same compile
/// errors; columns follow `#[sqlx(rename, rename_all, skip, flatten)]`.
#[proc_macro_derive(Model, attributes(zdm))]
pub fn derive_model(item: TokenStream) -> TokenStream {
    model::derive(item.into()).unwrap_or_else(syn::Error::into_compile_error).into()
}

/// On an error, the struct is still emitted, so the error is the only one the user sees.
fn model_or_errors(args: TokenStream, item: TokenStream, form: model::Form) -> TokenStream {
    let original: proc_macro2::TokenStream = item.clone().into();
    model::attribute(args.into(), item.into(), form)
        .unwrap_or_else(|e| {
            let mut out = e.into_compile_error();
            out.extend(original);
            out
        })
        .into()
}
