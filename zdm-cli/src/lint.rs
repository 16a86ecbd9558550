//! `zdm lint`: the compile-time rules, run over a folder, printed for a person, a tool
//! (JSON), a code-scanning dashboard (SARIF 2.1.0) or a pull request (GitHub annotations).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};
use zdm::lint::{Finding, LintInput, Severity, RULES, SQLITE_RULES};

use crate::project::Project;
use crate::{Dialect, Format, LintArgs, Outcome};

pub(crate) fn run(root: &Path, args: LintArgs) -> Outcome {
    let project = Project::load(root, args.dir)?;
    let dialect = args.dialect.map(|d| match d {
        Dialect::Postgres => zdm::Dialect::Postgres,
        Dialect::Sqlite => zdm::Dialect::Sqlite,
    });
    let set = project.read_set()?;
    let config = project.lint_config(args.postgres.as_deref(), dialect)?;
    let inputs: Vec<LintInput<'_>> = set.iter().map(LintInput::from_parsed).collect();
    let mut findings = zdm::lint::lint(&inputs, &config);
    project.config.apply(&mut findings);
    if let Some(reference) = &args.changed_since {
        let changed = changed_since(reference, &project.dir)?;
        findings.retain(|f| changed.contains(&absolute(Path::new(&f.file))));
    }
    let blocking = findings.iter().filter(|f| f.blocks()).count();
    let out = match args.format {
        Format::Text => text(&findings),
        Format::Json => serde_json::to_string_pretty(&json_report(&findings))? + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif(&findings))? + "\n",
        Format::Github => github(&findings),
    };
    crate::out(format_args!("{out}"))?;
    Ok(if blocking > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Counts by what they do to a build: blocking errors, and the rest.
fn counts(findings: &[Finding]) -> (usize, usize) {
    let errors = findings.iter().filter(|f| f.blocks()).count();
    (errors, findings.len() - errors)
}

fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("{f}\n\n"));
    }
    let (errors, others) = counts(findings);
    out.push_str(&format!("{errors} error(s) blocking, {others} other finding(s)\n"));
    out
}

/// `{"findings": [..], "errors": N, "warnings": N}`; each finding as
/// `zdm::lint::Finding` serializes (docs/cli.md lists the fields).
fn json_report(findings: &[Finding]) -> Value {
    let (errors, others) = counts(findings);
    json!({ "findings": findings, "errors": errors, "warnings": others })
}

/// SARIF 2.1.0: one run, the rules that fired, one result per finding; an accepted
/// finding (`safety_assured`, `zdm.toml` allow) is a result with a suppression.
fn sarif(findings: &[Finding]) -> Value {
    let fired: BTreeSet<&str> = findings.iter().map(|f| f.rule).collect();
    // A rule id fired once is described once, whichever dialect's rule it was.
    let described =
        RULES.iter().map(|r| (r.id, r.why, r.recipe)).chain(SQLITE_RULES.iter().map(|r| (r.id, r.why, r.recipe)));
    let mut seen = BTreeSet::new();
    let rules: Vec<Value> = described
        .filter(|(id, _, _)| fired.contains(id) && seen.insert(*id))
        .map(|(id, why, recipe)| {
            json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": why },
                "help": { "text": recipe },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "level": match (f.severity, f.assured.is_some()) {
                    (Severity::Error, false) => "error",
                    (Severity::Error, true) | (Severity::Warning, _) => "warning",
                    (Severity::Info, _) => "note",
                },
                "message": { "text": format!("{} ({}; fix: {})", f.message, f.why, f.recipe) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file) },
                        "region": { "startLine": f.line, "startColumn": f.column }
                    }
                }],
            });
            if let Some(reason) = &f.assured {
                result["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "zdm",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }]
    })
}

/// A relative path with forward slashes, as SARIF's `uri` wants it.
fn uri(file: &str) -> String {
    file.replace('\\', "/")
}

/// GitHub Actions workflow commands: one annotation per finding that matters.
fn github(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings.iter().filter(|f| f.assured.is_none()) {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        out.push_str(&format!(
            "::{level} file={},line={},col={},title={}::{}\n",
            property(&f.file),
            f.line,
            f.column,
            property(&format!("zdm {}", f.rule)),
            data(&format!("{}\nwhy: {}\nfix: {}", f.message, f.why, f.recipe)),
        ));
    }
    let (errors, others) = counts(findings);
    out.push_str(&format!("{errors} error(s) blocking, {others} other finding(s)\n"));
    out
}

/// Escaping of a workflow command's message.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// The files under `dir` added or changed since `reference` (committed or not), and new
/// untracked ones, as absolute paths.
fn changed_since(reference: &str, dir: &Path) -> Result<BTreeSet<PathBuf>, Box<dyn std::error::Error>> {
    let git = |args: &[&str]| -> Result<String, Box<dyn std::error::Error>> {
        let out = std::process::Command::new("git")
            .args(args)
            .output()
            .map_err(|e| format!("--changed-since needs git: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "--changed-since {reference}: git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?.trim());
    let dir_text = dir.to_string_lossy();
    let mut changed = BTreeSet::new();
    for line in git(&["diff", "--name-only", "--diff-filter=ACMR", reference, "--", &dir_text])?.lines() {
        changed.insert(absolute(&top.join(line)));
    }
    for line in git(&["ls-files", "--others", "--exclude-standard", "--full-name", "--", &dir_text])?.lines() {
        changed.insert(absolute(&top.join(line)));
    }
    Ok(changed)
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_escape_what_github_reads_as_syntax() {
        assert_eq!(data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(property("a,b:c"), "a%2Cb%3Ac");
    }
}
