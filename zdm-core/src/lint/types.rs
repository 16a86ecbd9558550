//! Column types as the analyzer compares them: a canonical name, its modifiers and
//! whether it is an array. Judges which type changes PostgreSQL makes without a rewrite.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// Canonical name: `int4`, `int8`, `varchar`, `numeric`, `timestamptz`, ...
    pub name: String,
    /// Type modifiers: `varchar(255)` → `[255]`, `numeric(10,2)` → `[10, 2]`.
    pub mods: Vec<i64>,
    pub array: bool,
    /// `serial`, `bigserial`, `smallserial` (an integer with a sequence default).
    pub serial: bool,
}

impl TypeName {
    /// Reads a type as written (`character varying(100)`, `INT`, `timestamp(3) with time zone`).
    pub fn parse(text: &str) -> TypeName {
        let lower = text.to_ascii_lowercase();
        let mut array = false;
        let mut rest = lower.trim().to_string();
        while let Some(stripped) = rest.strip_suffix("[]") {
            array = true;
            rest = stripped.trim_end().to_string();
        }
        if let Some(stripped) = rest.strip_suffix(" array") {
            array = true;
            rest = stripped.to_string();
        }
        let mut mods = Vec::new();
        if let (Some(open), Some(close)) = (rest.find('('), rest.rfind(')')) {
            if open < close {
                mods = rest[open + 1..close].split(',').filter_map(|m| m.trim().parse().ok()).collect();
                rest = format!("{} {}", &rest[..open], &rest[close + 1..]);
            }
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let mut name = words.join(" ");
        // A schema-qualified built-in (`pg_catalog.int4`) is the built-in.
        if let Some(last) = name.strip_prefix("pg_catalog.") {
            name = last.to_string();
        }
        let name = name.trim_matches('"');
        let (canonical, serial) = match name {
            "int" | "integer" | "int4" => ("int4", false),
            "bigint" | "int8" => ("int8", false),
            "smallint" | "int2" => ("int2", false),
            "serial" | "serial4" => ("int4", true),
            "bigserial" | "serial8" => ("int8", true),
            "smallserial" | "serial2" => ("int2", true),
            "character varying" | "varchar" => ("varchar", false),
            "character" | "char" | "bpchar" => ("bpchar", false),
            "decimal" | "numeric" => ("numeric", false),
            "timestamp" | "timestamp without time zone" => ("timestamp", false),
            "timestamptz" | "timestamp with time zone" => ("timestamptz", false),
            "time" | "time without time zone" => ("time", false),
            "timetz" | "time with time zone" => ("timetz", false),
            "bool" | "boolean" => ("bool", false),
            "float8" | "double precision" => ("float8", false),
            "float4" | "real" => ("float4", false),
            "bit varying" | "varbit" => ("varbit", false),
            other => (other, false),
        };
        TypeName { name: canonical.to_string(), mods, array, serial }
    }
}

impl fmt::Display for TypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.mods.is_empty() {
            let mods: Vec<String> = self.mods.iter().map(ToString::to_string).collect();
            write!(f, "({})", mods.join(","))?;
        }
        if self.array {
            f.write_str("[]")?;
        }
        Ok(())
    }
}

/// What changing a column from `old` to `new` costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The same type: nothing happens.
    Same,
    /// Catalog-only: no rewrite, no scan (but cached plans of old builds still break).
    NoRewrite,
    /// The table is rewritten (and its indexes rebuilt) under ACCESS EXCLUSIVE.
    Rewrite,
}

/// Judges `old → new` for PostgreSQL `major`. `None` old type (unknown column) is a rewrite:
/// without knowing, zdm must assume the worst.
pub fn judge(old: Option<&TypeName>, new: &TypeName, major: u32) -> Change {
    let Some(old) = old else {
        return Change::Rewrite;
    };
    if old.array != new.array || old.serial {
        return if old == new { Change::Same } else { Change::Rewrite };
    }
    if old.name == new.name && old.mods == new.mods {
        return Change::Same;
    }
    let widening = |old: &[i64], new: &[i64]| match (old.first(), new.first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(o), Some(n)) => n >= o,
    };
    let ok = match (old.name.as_str(), new.name.as_str()) {
        ("varchar", "varchar") => widening(&old.mods, &new.mods),
        ("varchar", "text") => true,
        ("text", "varchar") => new.mods.is_empty(),
        ("numeric", "numeric") => match (old.mods.as_slice(), new.mods.as_slice()) {
            (_, []) => true,
            ([p, s], [np, ns]) => ns == s && np >= p,
            ([p], [np]) => np >= p,
            ([p], [np, 0]) => np >= p,
            _ => false,
        },
        ("varbit", "varbit") => widening(&old.mods, &new.mods),
        ("timestamp", "timestamp")
        | ("timestamptz", "timestamptz")
        | ("time", "time")
        | ("timetz", "timetz")
        | ("interval", "interval") => widening(&old.mods, &new.mods),
        ("cidr", "inet") => true,
        // Binary-compatible when the session time zone is UTC (PostgreSQL 12+).
        ("timestamp", "timestamptz") | ("timestamptz", "timestamp") => major >= 12 && old.mods == new.mods,
        _ => false,
    };
    if ok {
        Change::NoRewrite
    } else {
        Change::Rewrite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(old: &str, new: &str) -> Change {
        judge(Some(&TypeName::parse(old)), &TypeName::parse(new), 15)
    }

    #[test]
    fn canonical_names() {
        assert_eq!(TypeName::parse("character varying(100)"), TypeName::parse("VARCHAR(100)"));
        assert_eq!(TypeName::parse("timestamp(3) with time zone").name, "timestamptz");
        assert_eq!(TypeName::parse("timestamp(3) with time zone").mods, [3]);
        assert!(TypeName::parse("text[]").array);
        assert!(TypeName::parse("bigserial").serial);
    }

    #[test]
    fn widenings_do_not_rewrite() {
        assert_eq!(j("varchar(100)", "text"), Change::NoRewrite);
        assert_eq!(j("varchar(100)", "varchar(255)"), Change::NoRewrite);
        assert_eq!(j("varchar(100)", "varchar"), Change::NoRewrite);
        assert_eq!(j("numeric(10,2)", "numeric(14,2)"), Change::NoRewrite);
        assert_eq!(j("numeric(10,2)", "numeric"), Change::NoRewrite);
        assert_eq!(j("cidr", "inet"), Change::NoRewrite);
        assert_eq!(j("timestamp(3)", "timestamp(6)"), Change::NoRewrite);
        assert_eq!(j("text", "text"), Change::Same);
    }

    #[test]
    fn narrowing_and_other_types_rewrite() {
        assert_eq!(j("int", "bigint"), Change::Rewrite);
        assert_eq!(j("varchar(255)", "varchar(100)"), Change::Rewrite);
        assert_eq!(j("numeric(10,2)", "numeric(10,3)"), Change::Rewrite);
        assert_eq!(j("text", "jsonb"), Change::Rewrite);
        assert_eq!(j("text", "varchar(10)"), Change::Rewrite);
        assert_eq!(judge(None, &TypeName::parse("text"), 15), Change::Rewrite);
    }

    #[test]
    fn timestamptz_switch_depends_on_version() {
        assert_eq!(j("timestamp", "timestamptz"), Change::NoRewrite);
        assert_eq!(judge(Some(&TypeName::parse("timestamp")), &TypeName::parse("timestamptz"), 11), Change::Rewrite);
    }
}
