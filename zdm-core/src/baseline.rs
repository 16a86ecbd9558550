//! The baseline manifest: the migrations a project had applied when it adopted zdm, by
//! version and checksum, in `zdm-baseline.txt` beside them. They are embedded, checksummed
//! and run on a fresh database, and replayed by the analyzer to know the schema, but not
//! judged: they ran long ago. A file listed with another checksum (edited since), and a
//! version missing from the manifest (a branch merged late), are judged like any new one.

use crate::checksum::checksum;

/// The manifest's file name, inside the migrations folder.
pub const FILE_NAME: &str = "zdm-baseline.txt";

/// The parsed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<(i64, Vec<u8>)>,
}

impl Manifest {
    /// `version` with this file content is history.
    pub fn is_history(&self, version: i64, sql: &str) -> bool {
        self.entries.iter().any(|(v, sum)| *v == version && sum.as_slice() == checksum(sql.as_bytes()).as_slice())
    }

    /// The manifest's text for these migrations (version and file content).
    pub fn render<'a>(migrations: impl IntoIterator<Item = (i64, &'a [u8])>) -> String {
        let mut out = String::from(
            "# zdm baseline: migrations applied before zdm was adopted. They run on a fresh database\n\
             # but are not linted. Written by `zdm::baseline::write`; a new migration never belongs here.\n",
        );
        let mut rows: Vec<(i64, String)> =
            migrations.into_iter().map(|(v, bytes)| (v, hex(&checksum(bytes)))).collect();
        rows.sort();
        for (v, sum) in rows {
            out.push_str(&format!("{v} {sum}\n"));
        }
        out
    }

    /// Reads the manifest; an error names the line and what is wrong.
    pub fn parse(text: &str) -> Result<Manifest, (usize, String)> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| {
                (
                    i + 1,
                    format!("{what}: expected `<version> <sha384 hex>`; rewrite the file with `zdm::baseline::write`"),
                )
            };
            let (v, sum) = line.split_once(char::is_whitespace).ok_or_else(|| bad("missing checksum"))?;
            let version: i64 = v.parse().map_err(|_| bad("the version is not a number"))?;
            let sum =
                unhex(sum.trim()).filter(|s| s.len() == 48).ok_or_else(|| bad("the checksum is not 96 hex digits"))?;
            entries.push((version, sum));
        }
        Ok(Manifest { entries })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_matches_by_checksum() {
        let text =
            Manifest::render([(2, "CREATE INDEX i ON t (a);".as_bytes()), (1, b"CREATE TABLE t (a int);".as_slice())]);
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.entries.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        assert!(m.is_history(2, "CREATE INDEX i ON t (a);"));
        assert!(!m.is_history(2, "CREATE INDEX i ON t (b);"), "an edited file is judged");
        assert!(!m.is_history(3, "CREATE INDEX i ON t (a);"), "an unlisted version is judged");
    }

    #[test]
    fn bad_lines_name_the_line() {
        assert_eq!(Manifest::parse("# c\n\n12\n").unwrap_err().0, 3);
        assert!(Manifest::parse("x 00").unwrap_err().1.contains("not a number"));
        assert!(Manifest::parse("1 abc").unwrap_err().1.contains("96 hex digits"));
    }
}
