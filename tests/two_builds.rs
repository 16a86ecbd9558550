//! The end-to-end proof of deferred drops, with two real builds in separate processes:
//! build A serves reads and writes; build B's run_pre schedules drops of a column and a
//! table A uses and adds a column; A keeps working with 0 errors; the drops stay pending
//! while A heartbeats; A stops; B's run_post drops both; nothing B uses is lost. Then A,
//! redeployed after the drop, refuses to boot.
//!
//! The app is `tests/two_builds` (built without and with `--features b`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestDb;
use zdm::sqlx;

/// Builds the probe app with `features` and returns a copy of its binary.
fn build(features: &[&str], copy_as: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let app = repo.join("tests/two_builds");
    let target = repo.join("target/zdm-probes");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(repo.join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet"]).current_dir(&app).env("CARGO_TARGET_DIR", &target);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "probe build failed: {}", String::from_utf8_lossy(&out.stderr));
    let copy = target.join(copy_as);
    std::fs::copy(target.join("debug/zdm_two_builds"), &copy).unwrap();
    copy
}

fn run(bin: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn url(db: &TestDb) -> String {
    let base = common::server_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{}", db.name)
}

async fn columns(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'posts' ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn audit_exists(pool: &sqlx::PgPool) -> bool {
    sqlx::query_scalar("SELECT to_regclass('old_audit') IS NOT NULL").fetch_one(pool).await.unwrap()
}

/// Runs `serve` until told to stop; returns (ops, errors) and its output.
struct Server {
    child: std::process::Child,
    stop: PathBuf,
    pid: String,
}

impl Server {
    fn start(bin: &Path, url: &str, stop: PathBuf) -> Server {
        let _ = std::fs::remove_file(&stop);
        let mut child = Command::new(bin)
            .args(["serve", url, stop.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let pid = line.strip_prefix("ready ").unwrap_or_else(|| panic!("server did not start: {line:?}")).trim().to_string();
        Server { child, stop, pid }
    }

    fn stop(self) -> (u64, u64, String) {
        std::fs::write(&self.stop, "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        let line = text.lines().find(|l| l.starts_with("ops=")).unwrap_or_else(|| panic!("{text}"));
        let nums: Vec<u64> = line.split(' ').map(|p| p.split_once('=').unwrap().1.parse().unwrap()).collect();
        (nums[0], nums[1], text)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn old_build_keeps_working_and_drops_wait_for_it() {
    let a = build(&[], "two_builds_a");
    let b = build(&["b"], "two_builds_b");
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let stop = std::env::temp_dir().join(format!("zdm_two_builds_{}", db.name));

    let server_a = Server::start(&a, &url, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;

    // B's deploy step: pre-deploy migrations while A serves.
    let (ok, out) = run(&b, &["pre", &url]);
    assert!(ok && out.contains("applied 2 contract_legacy"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "body"]);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // B's contract step while A heartbeats: both drops wait, naming A.
    let (ok, out) = run(&b, &["post", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("nothing to apply"), "{out}");
    let waits_for_a = format!("two_builds A on {} pid {}", gethostname(), server_a.pid);
    assert!(out.contains("deferred drop column public.posts.legacy") && out.contains(&waits_for_a), "{out}");
    assert!(out.contains("deferred drop table public.old_audit"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "body"]);
    assert!(audit_exists(&pool).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (ops, errors, out) = server_a.stop();
    assert_eq!(errors, 0, "build A failed while B migrated:\n{out}");
    assert!(ops > 20, "build A served only {ops} requests");
    eprintln!("build A: {ops} requests, {errors} errors");

    // A is gone (it deregistered): B's run_post drops both.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM posts").fetch_one(&pool).await.unwrap();
    let (ok, out) = run(&b, &["post", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("dropped column public.posts.legacy") && out.contains("dropped table public.old_audit"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "body"]);
    assert!(!audit_exists(&pool).await);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM posts").fetch_one(&pool).await.unwrap();
    assert_eq!(before, after, "no row was lost");

    // B serves without errors on the contracted schema.
    let server_b = Server::start(&b, &url, stop.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ops, errors, out) = server_b.stop();
    assert!(ops > 5 && errors == 0, "{out}");

    // A redeployed after the drop (a rollback) refuses to boot, naming what it maps.
    let (ok, out) = run(&a, &["pre", &url]);
    assert!(!ok, "{out}");
    assert!(out.contains("maps what run_post already removed") && out.contains("posts.legacy"), "{out}");
    assert!(out.contains("scheduled by migration 2"), "{out}");
    let _ = std::fs::remove_file(&stop);
}

fn gethostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
