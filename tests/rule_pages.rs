//! The guide's rule pages are generated from the rules' own docs, so the two never drift.
//!
//! Each rule is documented where it is declared, as clippy documents its lints: the module
//! doc of `zdm-core/src/lint/rules/<rule_id>.rs` (what it does, why it is bad, an example,
//! what to use instead), which `cargo doc` renders (the modules are public). This test
//! builds the book's pages from that text and the rule's registered data (its kind per
//! database, the `why` and `fix` a finding prints) and fails when `docs/src/rules/` or the
//! rule list at the end of `docs/src/SUMMARY.md` differ from what it builds. After editing
//! a rule's doc (or adding a rule), write them with
//!
//! ```text
//! ZDM_RULE_PAGES=overwrite cargo test --test rule_pages
//! ```
//!
//! and review the diff, as with `TRYBUILD=overwrite`. No mdbook is needed for this check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zdm::lint::{Kind, RULES, SQLITE_RULES};

const REPO_BLOB: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main");
/// The entry of SUMMARY.md that the generated rule list follows (the list is its end).
const SUMMARY_ANCHOR: &str = "- [Lint rules](rules/index.md)";

/// What one rule says in one database: its kind and the text a finding prints.
struct Dialect {
    name: &'static str,
    kind: Kind,
    why: &'static str,
    recipe: &'static str,
}

/// One rule id with the databases that have it, in `RULES` order then `SQLITE_RULES` order.
struct RuleDoc {
    id: &'static str,
    dialects: Vec<Dialect>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rules() -> Vec<RuleDoc> {
    let mut out: Vec<RuleDoc> = RULES
        .iter()
        .map(|r| RuleDoc {
            id: r.id,
            dialects: vec![Dialect { name: "PostgreSQL", kind: r.kind, why: r.why, recipe: r.recipe }],
        })
        .collect();
    for r in SQLITE_RULES {
        let d = Dialect { name: "SQLite", kind: r.kind, why: r.why, recipe: r.recipe };
        match out.iter_mut().find(|o| o.id == r.id) {
            Some(o) => o.dialects.push(d),
            None => out.push(RuleDoc { id: r.id, dialects: vec![d] }),
        }
    }
    out
}

/// The rule's source file, relative to the repository's root.
fn source(id: &str) -> String {
    format!("zdm-core/src/lint/rules/{}.rs", id.replace('-', "_"))
}

/// The module doc (`//!` lines at the top of the file), without the comment markers.
fn module_doc(id: &str) -> String {
    let path = root().join(source(id));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc = String::new();
    for line in text.lines().take_while(|l| l.starts_with("//!")) {
        let line = line.strip_prefix("//!").unwrap();
        doc.push_str(line.strip_prefix(' ').unwrap_or(line));
        doc.push('\n');
    }
    doc
}

/// How a rule's findings depend on the phase, in the README's words.
fn kind_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Breaks => "breaks old code: an error before the deploy (pre-deploy migrations)",
        Kind::BreaksEveryPhase => "breaks old or new code: an error in every phase",
        Kind::Locks => "takes a lock that stalls traffic: an error in every phase",
        Kind::BreaksAndLocks => "breaks old code and locks: an error in every phase",
        Kind::RunTimeError => "fails when it runs: an error in every phase",
        Kind::Warning => "a warning: reported, never blocks",
        Kind::Info => "a note for tools: zdm handles it at run time",
    }
}

/// The paragraph after `**What it does:**`, on one line.
fn what_it_does(doc: &str) -> String {
    let start = doc.find("**What it does:**").map(|i| i + "**What it does:**".len());
    let Some(start) = start else { return String::new() };
    let rest = &doc[start..];
    let end = rest.find("\n\n").or_else(|| rest.find("\n**")).unwrap_or(rest.len());
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn header(id: &str) -> String {
    format!(
        "<!-- Generated from the doc of {} by tests/rule_pages.rs; edit the rule's doc, then run\n     \
         ZDM_RULE_PAGES=overwrite cargo test --test rule_pages -->\n",
        source(id)
    )
}

fn page(rule: &RuleDoc) -> String {
    let doc = module_doc(rule.id);
    let title = format!("# `{}`", rule.id);
    let body = doc.strip_prefix(&title).unwrap_or_else(|| panic!("{}: the doc must open with `{title}`", rule.id));
    let mut out = header(rule.id);
    out.push('\n');
    out.push_str(&title);
    out.push_str("\n\n");
    for d in &rule.dialects {
        out.push_str(&format!("- **{}:** {}\n", d.name, kind_text(d.kind)));
    }
    out.push_str(&format!("- **Source:** [`{0}`]({REPO_BLOB}/{0}), with its tests\n", source(rule.id)));
    out.push('\n');
    out.push_str(&link_rule_ids(body.trim(), rule.id));
    out.push_str("\n\n## What a finding says\n");
    for d in &rule.dialects {
        if rule.dialects.len() > 1 {
            out.push_str(&format!("\n{}:\n", d.name));
        }
        out.push_str(&format!("\n- **why:** {}\n- **fix:** {}\n", d.why, d.recipe));
    }
    out.push_str(
        "\nTo accept a finding on purpose, put `-- zdm:safety_assured <reason>` on the line before the \
         statement (the reason is recorded in the ledger), or allow the rule in `zdm.toml`.\n",
    );
    out
}

/// Outside code blocks, a backticked id of another rule (`` `sqlite-table-rebuild` ``)
/// becomes a link to its page.
fn link_rule_ids(text: &str, own: &str) -> String {
    let ids: Vec<&str> = zdm::lint::rules::ids().filter(|id| *id != own).collect();
    let mut in_code = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let mut line = line.to_string();
        if !in_code {
            for id in &ids {
                line = line.replace(&format!("`{id}`"), &format!("[`{id}`]({id}.md)"));
            }
        }
        out.push(line);
    }
    out.join("\n")
}

fn index(rules: &[RuleDoc]) -> String {
    let mut out = String::from(
        "<!-- Generated by tests/rule_pages.rs from the rules' docs; run\n     \
         ZDM_RULE_PAGES=overwrite cargo test --test rule_pages -->\n\n\
         # Lint rules\n\n\
         `zdm::migrations!` judges every migration at compile time (and `zdm lint` in CI) with these\n\
         rules. Each finding names its rule and links its page here. A rule is an error or a\n\
         warning depending on what it does to a deploy: breaking the build still serving is an\n\
         error before the deploy only; a lock that stalls traffic is an error in every phase.\n\
         SQLite sets get their own rules (no PostgreSQL advice reaches them); a hazard both\n\
         databases share keeps one id.\n\n\
         | rule | PostgreSQL | SQLite | what it flags |\n|---|---|---|---|\n",
    );
    for r in rules {
        let of = |name: &str| r.dialects.iter().find(|d| d.name == name).map(|d| short_kind(d.kind)).unwrap_or("—");
        out.push_str(&format!(
            "| [`{0}`]({0}.md) | {1} | {2} | {3} |\n",
            r.id,
            of("PostgreSQL"),
            of("SQLite"),
            what_it_does(&module_doc(r.id)).replace('|', "\\|")
        ));
    }
    out
}

fn short_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Breaks => "error before deploy",
        Kind::BreaksEveryPhase | Kind::Locks | Kind::BreaksAndLocks | Kind::RunTimeError => "error",
        Kind::Warning => "warning",
        Kind::Info => "note",
    }
}

/// SUMMARY.md with its rule list (everything after [`SUMMARY_ANCHOR`]) regenerated.
fn summary(current: &str, rules: &[RuleDoc]) -> String {
    let at = current.find(SUMMARY_ANCHOR).unwrap_or_else(|| panic!("docs/src/SUMMARY.md lacks `{SUMMARY_ANCHOR}`"));
    let mut out = current[..at + SUMMARY_ANCHOR.len()].to_string();
    out.push('\n');
    for r in rules {
        out.push_str(&format!("  - [`{0}`](rules/{0}.md)\n", r.id));
    }
    out
}

/// Every generated file: path relative to the repository's root → content.
fn generated() -> BTreeMap<PathBuf, String> {
    let rules = rules();
    let mut files = BTreeMap::new();
    for r in &rules {
        files.insert(PathBuf::from(format!("docs/src/rules/{}.md", r.id)), page(r));
    }
    files.insert(PathBuf::from("docs/src/rules/index.md"), index(&rules));
    let summary_path = root().join("docs/src/SUMMARY.md");
    let current = std::fs::read_to_string(&summary_path).expect("docs/src/SUMMARY.md");
    files.insert(PathBuf::from("docs/src/SUMMARY.md"), summary(&current, &rules));
    files
}

/// The tests read SUMMARY.md while, with `ZDM_RULE_PAGES=overwrite`, one of them writes it.
static FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn committed_pages() -> Vec<PathBuf> {
    let dir = root().join("docs/src/rules");
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(&dir).map(|entries| entries.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == "md"));
    out.iter().map(|p| p.strip_prefix(root()).unwrap().to_path_buf()).collect()
}

#[test]
fn rule_pages_match_the_rules_docs() {
    let _guard = FILES.lock().unwrap_or_else(|e| e.into_inner());
    let files = generated();
    let overwrite = std::env::var("ZDM_RULE_PAGES").is_ok_and(|v| v == "overwrite");
    let mut problems = Vec::new();
    for stale in committed_pages().into_iter().filter(|p| !files.contains_key(p)) {
        if overwrite {
            std::fs::remove_file(root().join(&stale)).unwrap();
        } else {
            problems.push(format!("{}: no rule has this page", stale.display()));
        }
    }
    for (path, text) in &files {
        let full = root().join(path);
        let current = std::fs::read_to_string(&full).ok();
        if current.as_deref() == Some(text.as_str()) {
            continue;
        }
        if overwrite {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
        } else {
            problems.push(match current {
                None => format!("{}: missing", path.display()),
                Some(current) => {
                    format!("{}: differs from its rule's doc\n{}", path.display(), first_difference(&current, text))
                }
            });
        }
    }
    assert!(
        problems.is_empty(),
        "the guide's rule pages drifted from the rules' docs; run `ZDM_RULE_PAGES=overwrite cargo test --test \
         rule_pages` and review the diff:\n\n{}",
        problems.join("\n\n")
    );
}

/// The first line where `current` and `wanted` differ, for the failure message.
fn first_difference(current: &str, wanted: &str) -> String {
    let (mut a, mut b) = (current.lines(), wanted.lines());
    for n in 1.. {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => return format!("  line {n}: committed {x:?}\n  line {n}: generated {y:?}"),
        }
    }
    unreachable!()
}

/// The generator reads what it claims to: every page carries its rule's example and the
/// exact `why` and `fix` a finding of that rule prints, and every rule has a page.
#[test]
fn a_page_carries_its_rules_doc_and_finding_text() {
    let files = {
        let _guard = FILES.lock().unwrap_or_else(|e| e.into_inner());
        generated()
    };
    let page = &files[Path::new("docs/src/rules/set-not-null.md")];
    assert!(page.contains("ALTER TABLE posts ALTER COLUMN body SET NOT NULL;"), "{page}");
    assert!(page.contains(zdm::lint::rules::set_not_null::RULE.why), "{page}");
    assert!(page.contains("**PostgreSQL:** takes a lock that stalls traffic"), "{page}");
    let shared = &files[Path::new("docs/src/rules/drop-column.md")];
    assert!(shared.contains("**SQLite:**") && shared.contains(zdm::lint::rules::drop_column::SQLITE.recipe));
    for id in zdm::lint::rules::ids() {
        // What a finding's `see:` line links is the page this test writes, as mdbook names it.
        assert_eq!(zdm::lint::rules::page(id), format!("{}{id}.html", zdm::lint::rules::GUIDE));
        assert!(files.contains_key(&PathBuf::from(format!("docs/src/rules/{id}.md"))), "{id}");
        assert!(files[Path::new("docs/src/SUMMARY.md")].contains(&format!("(rules/{id}.md)")), "{id}");
    }
}
