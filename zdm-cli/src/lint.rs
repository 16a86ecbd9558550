//! `zdm lint`: the compile-time rules, run over a folder, printed for a person, a tool
//! (JSON), a code-scanning dashboard (SARIF 2.1.0) or a pull request (GitHub annotations).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};
use zdm::lint::{Finding, LintInput, Severity, RULES, SQLITE_RULES};

use crate::project::Project;
use crate::{Dialect, Format, LintArgs, Outcome};

/// `zdm lint --list-rules`: every rule, per dialect, with what it guards against.
pub(crate) fn list_rules() -> Outcome {
    let mut out = String::new();
    for r in RULES {
        out.push_str(&format!("{:<40} postgres  {:?}  {}\n", r.id, r.kind, r.why));
    }
    for r in SQLITE_RULES {
        out.push_str(&format!("{:<40} sqlite    {:?}  {}\n", r.id, r.kind, r.why));
    }
    crate::out(out)?;
    Ok(ExitCode::SUCCESS)
}

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
    project.config.apply(&project.root, &mut findings);
    if let Some(reference) = &args.changed_since {
        let changed = changed_since(reference, &project.dir)?;
        findings.retain(|f| changed.contains(&absolute(Path::new(&f.file))));
    }
    let blocking = findings.iter().filter(|f| f.blocks()).count();
    let out = match args.format {
        Format::Text => text(&findings),
        Format::Json => serde_json::to_string_pretty(&json_report(&findings))? + "\n",
        Format::Sarif => {
            let shown = repo_relative(&findings, &project.dir);
            serde_json::to_string_pretty(&sarif(&shown, config.dialect))? + "\n"
        }
        Format::Github => github(&repo_relative(&findings, &project.dir)),
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
/// `zdm::lint::Finding` serializes (docs/src/cli.md lists the fields).
fn json_report(findings: &[Finding]) -> Value {
    let (errors, others) = counts(findings);
    json!({ "findings": findings, "errors": errors, "warnings": others })
}

/// SARIF 2.1.0: one run, the rules that fired, one result per finding; an accepted
/// finding (`safety_assured`, `zdm.toml` allow) is a result with a suppression.
fn sarif(findings: &[Finding], dialect: zdm::Dialect) -> Value {
    let fired: BTreeSet<&str> = findings.iter().map(|f| f.rule).collect();
    // The dialect's own rule text: SQLite never gets PostgreSQL's advice.
    let described: Vec<(&str, &str, &str)> = match dialect {
        zdm::Dialect::Sqlite => SQLITE_RULES.iter().map(|r| (r.id, r.why, r.recipe)).collect(),
        zdm::Dialect::Postgres => RULES.iter().map(|r| (r.id, r.why, r.recipe)).collect(),
    };
    let rules: Vec<Value> = described
        .into_iter()
        .filter(|(id, _, _)| fired.contains(id))
        .map(|(id, why, recipe)| {
            json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": why },
                "help": { "text": recipe },
                "helpUri": zdm::lint::rules::page(id),
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
                // A `safety_assured` comment sits in the file; a `zdm.toml` allow does not.
                let kind = if reason.starts_with("zdm.toml: ") { "external" } else { "inSource" };
                result["suppressions"] = json!([{ "kind": kind, "justification": reason }]);
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

/// The findings with their files relative to the repository's root, as GitHub's
/// annotations and code-scanning alerts attach them (whatever directory zdm ran in and
/// however `--project` was written); unchanged outside a git repository.
fn repo_relative(findings: &[Finding], dir: &Path) -> Vec<Finding> {
    let top = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--show-toplevel"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| absolute(Path::new(String::from_utf8_lossy(&o.stdout).trim())));
    findings
        .iter()
        .cloned()
        .map(|mut f| {
            if let Some(rel) =
                top.as_ref().and_then(|t| absolute(Path::new(&f.file)).strip_prefix(t).ok().map(Path::to_path_buf))
            {
                f.file = rel.to_string_lossy().into_owned();
            }
            f
        })
        .collect()
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
            data(&format!("{}\nwhy: {}\nfix: {}\nsee: {}", f.message, f.why, f.recipe, f.url())),
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
    // Run where the folder is (not where zdm was started), NUL-separated so that no path
    // is quoted or escaped (a name with `ñ` in it is still the file's name).
    let git = |args: &[&str]| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .map_err(|e| format!("--changed-since needs git: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "--changed-since {reference}: git {} failed in {}: {}",
                args.join(" "),
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into());
        }
        Ok(out.stdout)
    };
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let top = PathBuf::from(text(git(&["rev-parse", "--show-toplevel"])?).trim());
    // What this branch changed: since the merge base, so files changed on the base branch
    // after the fork are not blamed on it.
    let base = text(git(&["merge-base", reference, "HEAD"])?).trim().to_string();
    let mut changed = BTreeSet::new();
    for args in [
        &["diff", "-z", "--name-only", "--diff-filter=ACMR", base.as_str(), "--", "."][..],
        &["ls-files", "-z", "--others", "--exclude-standard", "--full-name", "--", "."][..],
    ] {
        for name in git(args)?.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            changed.insert(absolute(&top.join(String::from_utf8_lossy(name).as_ref())));
        }
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
