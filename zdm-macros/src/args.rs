//! The arguments of `migrations!` / `migrator!`: a folder, then `key = value` options.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Ident, LitStr, Path, Token};

/// `"dir"` or `"dir", rust = [a, b::c]`.
pub(crate) struct EmbedArgs {
    pub dir: LitStr,
    pub rust: Vec<Path>,
}

impl Parse for EmbedArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(input.error(
                "expected the migrations folder, e.g. `\"migrations\"` (relative to Cargo.toml)",
            ));
        }
        let dir: LitStr = input.parse()?;
        let mut rust = Vec::new();
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
                    rust.extend(Punctuated::<Path, Token![,]>::parse_terminated(&content)?);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`; known options: `rust = [fn, ...]`"),
                    ))
                }
            }
        }
        Ok(EmbedArgs { dir, rust })
    }
}
