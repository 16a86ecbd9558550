//! The arguments of `migrations!` / `migrator!`: a folder, then `key = value` options.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Ident, Lit, LitStr, Path, Token};
use zdm_core::lint::PgVersion;
use zdm_core::Dialect;

/// `"dir"`, then any of `rust = [a, b::c]`, `dialect = "sqlite"`, `postgres = "14"`,
/// `start_after = 20240101`, `deployed = 20240101`.
pub(crate) struct EmbedArgs {
    pub dir: LitStr,
    pub rust: Vec<Path>,
    /// The database the set is written for (default: `zdm.toml`'s, else PostgreSQL).
    pub dialect: Option<Dialect>,
    /// The PostgreSQL version the lint assumes (default: `zdm.toml`'s, else 15).
    pub postgres: Option<PgVersion>,
    /// Migrations at or below this version are history: embedded and run, not linted.
    pub start_after: Option<i64>,
    /// The newest migration every deployed build has run (default: `zdm.toml`'s): tables
    /// created after it are new for the rest of the release.
    pub deployed: Option<i64>,
}

const OPTIONS: &str =
    "known options: `rust = [fn, ...]`, `dialect = \"sqlite\"`, `postgres = \"15\"`, `start_after = <version>`, \
     `deployed = <version>`";

impl Parse for EmbedArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error("expected the migrations folder, e.g. `\"migrations\"` (relative to Cargo.toml)"));
        }
        let dir: LitStr = input.parse()?;
        let mut args =
            EmbedArgs { dir, rust: Vec::new(), dialect: None, postgres: None, start_after: None, deployed: None };
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "rust" => {
                    let content;
                    bracketed!(content in input);
                    args.rust.extend(Punctuated::<Path, Token![,]>::parse_terminated(&content)?);
                }
                "dialect" => {
                    let lit: LitStr = input.parse()?;
                    args.dialect = Some(Dialect::parse(&lit.value()).ok_or_else(|| {
                        syn::Error::new_spanned(&lit, "`dialect` is `\"postgres\"` (the default) or `\"sqlite\"`")
                    })?);
                }
                "postgres" => {
                    let lit: Lit = input.parse()?;
                    let text = match &lit {
                        Lit::Str(s) => s.value(),
                        Lit::Int(i) => i.to_string(),
                        Lit::Float(f) => f.to_string(),
                        _ => String::new(),
                    };
                    args.postgres = Some(PgVersion::parse(&text).ok_or_else(|| {
                        syn::Error::new_spanned(
                            &lit,
                            "`postgres` takes a PostgreSQL version such as `\"15\"` or `\"14.2\"`",
                        )
                    })?);
                }
                "start_after" => {
                    let lit: syn::LitInt = input.parse()?;
                    args.start_after = Some(lit.base10_parse()?);
                }
                "deployed" => {
                    let lit: syn::LitInt = input.parse()?;
                    args.deployed = Some(lit.base10_parse()?);
                }
                other => return Err(syn::Error::new(key.span(), format!("unknown option `{other}`; {OPTIONS}"))),
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::EmbedArgs;

    #[test]
    fn deployed_takes_a_version() {
        let args: EmbedArgs = syn::parse_str("\"migrations\", deployed = 20240101000000").unwrap();
        assert_eq!(args.deployed, Some(20240101000000));
        let args: EmbedArgs = syn::parse_str("\"migrations\"").unwrap();
        assert_eq!(args.deployed, None);
        assert!(syn::parse_str::<EmbedArgs>("\"migrations\", deployed = \"yesterday\"").is_err());
    }
}
