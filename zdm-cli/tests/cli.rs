//! The `zdm` binary as a user runs it: every command's output and exit code, on folders
//! each test writes for itself, against a real PostgreSQL (and SQLite) where a command
//! needs a database.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

const ADD_TABLE: &str = "CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL);\n";
const ADD_COLUMN: &str = "ALTER TABLE posts ADD COLUMN summary text;\n";
/// Breaks the build still serving: a rename in a pre-deploy migration.
const RENAME: &str = "ALTER TABLE posts RENAME COLUMN title TO headline;\n";
const DROP_SUMMARY: &str = "-- zdm:after_deploy\nALTER TABLE posts DROP COLUMN summary;\n";

fn zdm(project: &Path) -> Command {
    let mut cmd = Command::cargo_bin("zdm").expect("the zdm binary is built");
    cmd.arg("--project").arg(project).env_remove("DATABASE_URL").env("NO_COLOR", "1");
    cmd
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join("migrations").join(name), sql).unwrap();
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_names_every_command_and_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = zdm(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    for command in ["lint", "status", "plan", "pre", "post", "backfills", "baseline", "new"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
    assert!(text.contains("Exit codes: 0 success; 1 lint errors or a failed command; 2 a usage error"), "{text}");
    for command in ["lint", "status", "plan", "pre", "post", "backfills", "baseline", "new"] {
        let out = zdm(dir.path()).args([command, "--help"]).output().unwrap();
        assert!(out.status.success(), "{command} --help: {}", stderr(&out));
    }
}

#[test]
fn a_usage_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = zdm(dir.path()).args(["lint", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("xml"), "{}", stderr(&out));
}

#[test]
fn lint_reports_findings_in_every_format_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE), ("0002_rename.sql", RENAME)]);

    let out = zdm(dir.path()).arg("lint").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("0002_rename.sql:1:1: error[rename-column]"), "{text}");
    assert!(text.contains("1 error(s) blocking"), "{text}");

    let out = zdm(dir.path()).args(["lint", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["errors"], 1);
    let finding = &json["findings"][0];
    assert_eq!(finding["rule"], "rename-column");
    assert_eq!(finding["severity"], "Error");
    assert_eq!(finding["version"], 2);
    assert_eq!(finding["line"], 1);
    assert!(finding["file"].as_str().unwrap().ends_with("migrations/0002_rename.sql"), "{finding}");

    let out = zdm(dir.path()).args(["lint", "--format", "sarif"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let sarif: Value = serde_json::from_slice(&out.stdout).expect("SARIF on stdout");
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "zdm");
    assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "rename-column");
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "rename-column");
    assert_eq!(result["level"], "error");
    let location = &result["locations"][0]["physicalLocation"];
    assert!(location["artifactLocation"]["uri"].as_str().unwrap().ends_with("migrations/0002_rename.sql"));
    assert_eq!(location["region"]["startLine"], 1);

    let out = zdm(dir.path()).args(["lint", "--format", "github"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let line = text.lines().next().unwrap();
    assert!(line.starts_with("::error file="), "{line}");
    assert!(line.contains("0002_rename.sql,line=1,col=1,title=zdm rename-column::"), "{line}");
    assert!(!line.contains('\n'), "one line per annotation");
}

#[test]
fn a_clean_folder_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE), ("0002_summary.sql", ADD_COLUMN)]);
    let out = zdm(dir.path()).arg("lint").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("0 error(s) blocking"), "{}", stdout(&out));
}

#[test]
fn zdm_toml_sets_rule_levels_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE), ("0002_rename.sql", RENAME)]);
    std::fs::write(
        dir.path().join("zdm.toml"),
        "[rules]\nrename-column = { level = \"allow\", reason = \"no old build reads posts yet\" }\n",
    )
    .unwrap();
    let out = zdm(dir.path()).args(["lint", "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["errors"], 0);
    assert_eq!(json["findings"][0]["assured"], "zdm.toml: no old build reads posts yet");

    std::fs::write(dir.path().join("zdm.toml"), "[rules]\nrename-column = \"warn\"\n").unwrap();
    let out = zdm(dir.path()).arg("lint").output().unwrap();
    assert!(out.status.success(), "a warned rule does not block");
    assert!(stdout(&out).contains("warning[rename-column]"), "{}", stdout(&out));
}

#[test]
fn a_malformed_zdm_toml_names_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE)]);
    std::fs::write(dir.path().join("zdm.toml"), "postgres = \"15\"\n\n[rules]\nrename-colum = \"warn\"\n").unwrap();
    let out = zdm(dir.path()).arg("lint").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("zdm.toml:4: [rules] names an unknown rule `rename-colum`"), "{err}");
}

#[test]
fn sqlx_toml_names_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("db/sql")).unwrap();
    std::fs::write(dir.path().join("db/sql/0001_rename.sql"), RENAME).unwrap();
    std::fs::write(dir.path().join("sqlx.toml"), "[migrate]\nmigrations-dir = \"db/sql\"\n").unwrap();
    let out = zdm(dir.path()).arg("lint").output().unwrap();
    assert!(stdout(&out).contains("db/sql/0001_rename.sql"), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn changed_since_judges_only_new_and_changed_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
    };
    git(&["init", "-q"]);
    // Already merged: its finding is history for this pull request.
    write(root, &[("0001_posts.sql", ADD_TABLE), ("0002_rename.sql", RENAME)]);
    git(&["add", "."]);
    git(&["commit", "-qm", "base"]);
    write(root, &[("0003_rename_again.sql", "ALTER TABLE posts RENAME COLUMN headline TO title2;\n")]);
    let out =
        zdm(root).current_dir(root).args(["lint", "--format", "json", "--changed-since", "HEAD"]).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let files: Vec<&str> = json["findings"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with("0003_rename_again.sql"), "{files:?}");
    // The replay still knew `headline` from the unjudged file (no "unknown column").
    assert_eq!(json["findings"][0]["rule"], "rename-column");
}

#[test]
fn new_writes_a_file_named_as_sqlx_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = zdm(dir.path()).args(["new", "Drop posts summary", "--after-deploy"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let path = stdout(&out).trim().to_string();
    let name = Path::new(&path).file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("_drop_posts_summary.sql"), "{name}");
    assert_eq!(name.split('_').next().unwrap().len(), 14, "a UTC timestamp version: {name}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-- zdm:after_deploy\n"), "{text}");
    // Twice in one second: two versions, never one.
    let again = zdm(dir.path()).args(["new", "drop posts summary", "--no-transaction"]).output().unwrap();
    let second = stdout(&again).trim().to_string();
    assert_ne!(path, second);
    assert!(std::fs::read_to_string(&second).unwrap().contains("-- zdm:no_transaction\n"));
    let bad = zdm(dir.path()).args(["new", "../escape"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(stderr(&bad).contains("not a usable migration name"), "{}", stderr(&bad));
}

/// A database of its own on the test server, dropped at the end.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> TestDb {
        let admin =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
        let name = format!(
            "zdm_cli_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() % 1_000_000_000
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let url = format!("{base}/{name}");
        TestDb { admin, name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        psql(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// One statement through the library's own sqlx, so the test needs no psql binary.
fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = zdm::sqlx::PgPool::connect(url).await.expect("the test server answers (scripts/test starts one)");
        zdm::sqlx::raw_sql(zdm::sqlx::AssertSqlSafe(sql.to_string())).execute(&pool).await.unwrap();
        pool.close().await;
    });
}

#[test]
fn a_deploy_day_from_the_command_line() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[("0001_posts.sql", ADD_TABLE), ("0002_summary.sql", ADD_COLUMN), ("0003_drop.sql", DROP_SUMMARY)],
    );
    let run = |args: &[&str]| zdm(dir.path()).args(args).arg("--database-url").arg(&db.url).output().unwrap();

    let out = run(&["pre"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("applied 1 posts") && text.contains("applied 2 summary"), "{text}");
    assert!(!text.contains("applied 3"), "pre leaves after_deploy work: {text}");

    let out = run(&["status", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = status["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["state"], "Applied");
    assert_eq!(rows[2]["version"], 3);
    assert!(rows[2]["state"]["PendingPost"].is_object(), "{}", rows[2]);
    assert_eq!(rows[0]["ledger"]["app_name"], "zdm-cli");
    assert!(status["instances"].as_array().unwrap().is_empty(), "the command line registers nowhere");

    let out = run(&["status"]);
    assert!(stdout(&out).contains("pending: run_post"), "{}", stdout(&out));

    // An old build (without migration 3) is live: the contract waits for it, and a
    // pipeline that must finish it can fail on that.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let old = rt.block_on(async {
        let set = zdm::lint::read_set(&dir.path().join("migrations")).unwrap();
        let pool = zdm::sqlx::PgPool::connect(&db.url).await.unwrap();
        zdm::Migrator::from_parsed(set, "blog", "1.0.0").up_to(2).register(&pool).await.unwrap()
    });
    let out = run(&["post", "--fail-if-held"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("waits for") && stdout(&out).contains("blog 1.0.0"), "{}", stdout(&out));
    assert!(!stderr(&out).contains("no live build is registered"), "{}", stderr(&out));
    rt.block_on(old.stop()).unwrap();

    let out = run(&["post"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("applied 3 drop"), "{}", stdout(&out));
    assert!(stderr(&out).contains("no live build is registered"), "the empty gate is said: {}", stderr(&out));

    // A file edited after it ran: refused, the file named.
    std::fs::write(dir.path().join("migrations/0002_summary.sql"), "ALTER TABLE posts ADD COLUMN summary varchar;\n")
        .unwrap();
    let out = run(&["pre"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("0002_summary.sql"), "{}", stderr(&out));

    // Adoption: the baseline lists what the database has applied (the folder argument
    // as the issue writes it), and never overwrites a manifest unasked.
    std::fs::write(dir.path().join("migrations/0002_summary.sql"), ADD_COLUMN).unwrap();
    let out = run(&["baseline", &dir.path().join("migrations").to_string_lossy()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("baselined 3 applied migration(s), up to 3"), "{}", stdout(&out));
    assert!(dir.path().join("migrations/zdm-baseline.txt").is_file());
    let out = run(&["baseline"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
}

#[test]
fn pre_refuses_what_the_lint_blocks_and_baseline_lists_only_what_ran() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE), ("0002_rename.sql", RENAME)]);
    let run = |args: &[&str]| zdm(dir.path()).args(args).arg("--database-url").arg(&db.url).output().unwrap();
    // As the macros refuse to compile it, the command line refuses to run it: nothing ran.
    let out = run(&["pre"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error[rename-column]") && stderr(&out).contains("nothing ran"), "{}", stderr(&out));
    let out = run(&["status", "--format", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["rows"][0]["state"], "PendingPre", "not even the harmless first file ran");
    // Accepted in the file: it runs.
    std::fs::write(
        dir.path().join("migrations/0002_rename.sql"),
        format!("-- zdm:safety_assured no build reads posts.title yet\n{RENAME}"),
    )
    .unwrap();
    assert!(run(&["pre"]).status.success());
    // A file merged late below the newest applied version is not history: not listed.
    write(dir.path(), &[("0000_before.sql", "CREATE TABLE notes (id bigint PRIMARY KEY);\n")]);
    let out = run(&["baseline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("not applied, so not listed (still linted): 0"), "{}", stdout(&out));
    let manifest = std::fs::read_to_string(dir.path().join("migrations/zdm-baseline.txt")).unwrap();
    assert!(
        manifest.lines().any(|l| l.starts_with("1 ")) && manifest.lines().any(|l| l.starts_with("2 ")),
        "{manifest}"
    );
    assert!(!manifest.lines().any(|l| l.starts_with("0 ")), "the late file is not history: {manifest}");
}

#[test]
fn list_rules_and_bad_values_of_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = zdm(dir.path()).args(["lint", "--list-rules"]).output().unwrap();
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("rename-column") && text.contains("sqlite-table-rebuild"), "{text}");
    let out = zdm(dir.path()).args(["lint", "--postgres", "fifteen"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad value is a usage error: {}", stderr(&out));
    let out = zdm(dir.path()).args(["new", "../.."]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = zdm(dir.path()).args(["status", "--database-url", "mysql://root@127.0.0.1/x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mysql:// is not a database zdm runs on"), "{}", stderr(&out));
}

#[test]
fn sqlite_urls_work_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n")]);
    let url = format!("sqlite:{}", dir.path().join("app.db").display());
    let out = zdm(dir.path()).args(["pre", "--database-url", &url]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("applied 1 posts"), "{}", stdout(&out));
    let out = zdm(dir.path()).env("DATABASE_URL", &url).arg("status").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("applied"), "{}", stdout(&out));
}

#[test]
fn backfills_runs_what_migrations_scheduled() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("0001_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, title text, slug text);\n"),
            ("0002_rows.sql", "INSERT INTO posts SELECT g, 'Post ' || g, NULL FROM generate_series(1, 500) g;\n"),
            ("0003_fill.sql", "SELECT zdm_backfill('slugs', 'posts', 'slug = lower(title)', 'slug IS NULL');\n"),
        ],
    );
    let run = |args: &[&str]| zdm(dir.path()).args(args).arg("--database-url").arg(&db.url).output().unwrap();
    let out = run(&["pre"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["backfills"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("backfill slugs on") && text.contains("500 rows") && text.contains("finished"), "{text}");
    let out = run(&["backfills"]);
    assert!(stdout(&out).contains("no backfill left to run"), "{}", stdout(&out));
}

#[test]
fn sqlite_sets_are_linted_as_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "0001_posts.sql",
                "CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL) STRICT;\n\
                 INSERT OR IGNORE INTO posts (id, title) VALUES (1, 'hello');\n",
            ),
            ("0002_keys.sql", "PRAGMA foreign_keys = OFF;\n"),
        ],
    );
    // Read as PostgreSQL, SQLite's syntax is unreadable.
    let out = zdm(dir.path()).args(["lint", "--format", "json"]).output().unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "unanalysable"), "{json}");
    // As SQLite (the flag, or zdm.toml): only SQLite's own hazard, no PostgreSQL advice.
    std::fs::write(dir.path().join("zdm.toml"), "dialect = \"sqlite\"\n").unwrap();
    for args in [&["lint", "--format", "json"][..], &["lint", "--format", "json", "--dialect", "sqlite"][..]] {
        let out = zdm(dir.path()).args(args).output().unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        let rules: Vec<&str> =
            json["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
        assert_eq!(rules, ["sqlite-foreign-keys-in-transaction"], "{json}");
        assert!(!out.stdout.windows(12).any(|w| w == b"CONCURRENTLY"), "no PostgreSQL advice for SQLite");
    }
}

/// The SARIF 2.1.0 schema (OASIS), as Microsoft's `@microsoft/jest-sarif` npm package ships
/// it: fetched from the npm registry once per machine into the temporary directory, or
/// `ZDM_SARIF_SCHEMA=<file>`. `None` (the test says why) only outside CI.
fn sarif_schema() -> Option<Value> {
    let path = match std::env::var("ZDM_SARIF_SCHEMA") {
        Ok(p) => std::path::PathBuf::from(p),
        Err(_) => {
            let cache = std::env::temp_dir().join("zdm-sarif-schema");
            let file = cache.join("package/lib/schemas/sarif-2.1.0-rtm.5.json");
            if !file.is_file() {
                std::fs::create_dir_all(&cache).unwrap();
                let packed = std::process::Command::new("npm")
                    .args(["pack", "--silent", "@microsoft/jest-sarif@1.0.0-beta.0", "--pack-destination"])
                    .arg(&cache)
                    .output();
                let tgz = cache.join("microsoft-jest-sarif-1.0.0-beta.0.tgz");
                let ok = packed.as_ref().is_ok_and(|o| o.status.success())
                    && std::process::Command::new("tar")
                        .arg("-xzf")
                        .arg(&tgz)
                        .arg("-C")
                        .arg(&cache)
                        .status()
                        .is_ok_and(|s| s.success());
                if !ok {
                    let why = format!("could not fetch the SARIF schema with npm: {packed:?}");
                    assert!(
                        std::env::var("CI").is_err(),
                        "{why}; install npm (apt-get install npm) or set ZDM_SARIF_SCHEMA"
                    );
                    eprintln!("skipping the SARIF schema check: {why}");
                    return None;
                }
            }
            file
        }
    };
    Some(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap())
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let Some(schema) = sarif_schema() else { return };
    // The published schema's `language` patterns (a language tag, on `run` and
    // `toolComponent`) are not regular expressions this validator accepts (a stray `]`);
    // they are dropped, every other keyword and format is enforced. zdm writes no
    // `language`.
    let mut schema = schema;
    let dropped = drop_patterns(&mut schema, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
    assert_eq!(dropped, 2, "the schema changed");
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", ADD_TABLE), ("0002_rename.sql", RENAME), ("0003_summary.sql", ADD_COLUMN)]);
    // An accepted finding too: a result with a suppression.
    std::fs::write(
        dir.path().join("zdm.toml"),
        "[rules]\nrename-column = { level = \"allow\", reason = \"nobody reads posts yet\" }\n",
    )
    .unwrap();
    let out = zdm(dir.path()).args(["lint", "--format", "sarif"]).output().unwrap();
    let sarif: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> =
        validator.iter_errors(&sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}\n{sarif:#}");
    assert_eq!(sarif["runs"][0]["results"][0]["suppressions"][0]["justification"], "zdm.toml: nobody reads posts yet");
    // And the schema is strict enough to catch a broken log.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert!(!validator.is_valid(&broken), "a level SARIF does not know is refused");
}

/// Removes every `pattern` keyword equal to `pattern` in `schema`; returns how many.
fn drop_patterns(schema: &mut Value, pattern: &str) -> usize {
    match schema {
        Value::Object(map) => {
            let mut n = usize::from(map.get("pattern").and_then(Value::as_str) == Some(pattern));
            if n == 1 {
                map.remove("pattern");
            }
            n += map.values_mut().map(|v| drop_patterns(v, pattern)).sum::<usize>();
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| drop_patterns(v, pattern)).sum(),
        _ => 0,
    }
}

#[test]
fn a_reader_that_goes_away_is_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![("0001_posts.sql".to_string(), ADD_TABLE.to_string())];
    // Enough findings that the JSON outgrows a pipe's buffer.
    for i in 0..300 {
        let (from, to) = if i % 2 == 0 { ("title", "headline") } else { ("headline", "title") };
        files.push((format!("{:04}_rename.sql", i + 2), format!("ALTER TABLE posts RENAME COLUMN {from} TO {to};\n")));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, s)| (n.as_str(), s.as_str())).collect();
    write(dir.path(), &refs);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("zdm"))
        .args(["--project"])
        .arg(dir.path())
        .args(["lint", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // `| head -c 0`
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "the findings still fail the run (pipefail sees it)");
}

#[test]
fn sqlx_toml_names_sqlx_s_ledger_table_too() {
    // An sqlx app that moved its ledger adopts zdm: what sqlx applied is not re-run.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("0001_posts.sql", "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\n")]);
    std::fs::write(dir.path().join("sqlx.toml"), "[migrate]\ntable-name = \"app_migrations\"\n").unwrap();
    let db = dir.path().join("app.db");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let options = zdm::sqlx::sqlite::SqliteConnectOptions::new().filename(&db).create_if_missing(true);
        let pool = zdm::sqlx::SqlitePool::connect_with(options).await.unwrap();
        for sql in [
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL)",
            "CREATE TABLE app_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
            "INSERT INTO app_migrations (version, description, success, checksum, execution_time) \
             VALUES (1, 'posts', TRUE, x'00', 1)",
        ] {
            zdm::sqlx::raw_sql(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
    let url = format!("sqlite:{}", db.display());
    let out = zdm(dir.path()).args(["pre", "--database-url", &url]).output().unwrap();
    assert!(out.status.success(), "sqlx's row counts: {}", stderr(&out));
    assert!(stdout(&out).contains("nothing to apply"), "{}", stdout(&out));
    let out = zdm(dir.path()).args(["status", "--database-url", &url]).output().unwrap();
    assert!(stdout(&out).contains("applied (sqlx)"), "{}", stdout(&out));
}

#[test]
fn plan_shows_predicted_locks_and_trace_what_the_server_took() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("0001_posts.sql", ADD_TABLE),
            (
                "0002_index.sql",
                "-- zdm:safety_assured posts is empty when this runs\nCREATE INDEX posts_title ON posts (title);\n",
            ),
            ("0003_drop.sql", "-- zdm:after_deploy\nALTER TABLE posts DROP COLUMN title;\n"),
        ],
    );
    let run = |args: &[&str]| zdm(dir.path()).args(args).arg("--database-url").arg(&db.url).output().unwrap();
    let out = zdm(dir.path()).args(["pre", "--database-url", &db.url]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Applied 0001 and 0002; only the after_deploy drop is pending: add another pre-deploy one.
    std::fs::write(dir.path().join("migrations/0004_summary.sql"), ADD_COLUMN).unwrap();

    let out = run(&["plan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("4 summary [pre, run_pre]"), "{text}");
    assert!(text.contains("3 drop [post, run_post]"), "{text}");
    assert!(text.contains("AccessExclusiveLock"), "{text}");
    assert!(text.contains("gate: "), "{text}");

    let out = run(&["plan", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let migrations = plan["migrations"].as_array().unwrap();
    assert_eq!(migrations[0]["version"], 4);
    assert_eq!(migrations[0]["run_by"], "RunPre");
    assert_eq!(migrations[0]["statements"][0]["locks"][0]["mode"], "AccessExclusiveLock");
    assert_eq!(migrations[0]["statements"][0]["locks"][0]["table"], "posts");

    let out = run(&["plan", "--trace", "--sample-rows", "50"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("after replaying 2 applied migration(s), 1 table(s) sampled"), "{text}");
    assert!(text.contains("0 disagreement(s)"), "{text}");

    let out = run(&["plan", "--trace", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let trace: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trace["replayed"], serde_json::json!([1, 2]));
    let add = &trace["migrations"][0]["statements"][0];
    assert_eq!(add["observed"]["locks"][0]["mode"], "AccessExclusiveLock", "{add}");
    assert!(add["disagreements"].as_array().unwrap().is_empty());

    // The real database is untouched: 0004 is still pending.
    let out = run(&["status", "--format", "json"]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["rows"][3]["state"], "PendingPre");

    // --sample-rows needs --trace.
    let out = run(&["plan", "--sample-rows", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
