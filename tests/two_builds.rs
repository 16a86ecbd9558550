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

/// Builds A and B once per test process.
fn builds() -> &'static (PathBuf, PathBuf) {
    static BUILT: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| (build(&[], "two_builds_a"), build(&["b"], "two_builds_b")))
}

fn build(features: &[&str], copy_as: &str) -> PathBuf {
    common::build_probe(features, copy_as)
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

/// What a `serve` run counted.
#[derive(Debug)]
struct Counts {
    ops: u64,
    errors: u64,
    /// Requests and failures in its last second.
    tail_ops: u64,
    tail_errors: u64,
}

/// Runs `serve` until told to stop.
struct Server {
    child: std::process::Child,
    stop: PathBuf,
    pid: String,
}

impl Server {
    fn start(bin: &Path, url: &str, stop: PathBuf, mode: &str) -> Server {
        let _ = std::fs::remove_file(&stop);
        let mut child = Command::new(bin)
            .args(["serve", url, stop.to_str().unwrap(), mode])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let pid =
            line.strip_prefix("ready ").unwrap_or_else(|| panic!("server did not start: {line:?}")).trim().to_string();
        Server { child, stop, pid }
    }

    fn stop(self) -> (Counts, String) {
        std::fs::write(&self.stop, "").unwrap();
        let out = self.child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        let line = text.lines().find(|l| l.starts_with("ops=")).unwrap_or_else(|| panic!("{text}"));
        let n: Vec<u64> = line.split(' ').map(|p| p.split_once('=').unwrap().1.parse().unwrap()).collect();
        (Counts { ops: n[0], errors: n[1], tail_ops: n[2], tail_errors: n[3] }, text)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn old_build_keeps_working_and_drops_wait_for_it() {
    let (a, b) = builds();
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let stop = std::env::temp_dir().join(format!("zdm_two_builds_{}", db.name));

    let server_a = Server::start(a, &url, stop.clone(), "healing");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // B's deploy step: pre-deploy migrations while A serves.
    let (ok, out) = run(b, &["pre", &url]);
    assert!(ok && out.contains("applied 2 contract_legacy") && out.contains("applied 3 widen_summary"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "summary", "body"]);
    tokio::time::sleep(Duration::from_millis(700)).await;

    // B's contract step while A heartbeats: both drops wait, naming A.
    let (ok, out) = run(b, &["post", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("nothing to apply"), "{out}");
    let waits_for_a = format!("two_builds A on {} pid {}", gethostname(), server_a.pid);
    assert!(out.contains("deferred drop column public.posts.legacy") && out.contains(&waits_for_a), "{out}");
    assert!(out.contains("deferred drop table public.old_audit"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "summary", "body"]);
    assert!(audit_exists(&pool).await);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (a_counts, out) = server_a.stop();
    assert_eq!(a_counts.errors, 0, "build A failed while B migrated:\n{out}");
    assert!(a_counts.ops > 20, "build A served only {a_counts:?}");
    eprintln!("build A: {a_counts:?}");

    // A is gone (it deregistered): B's run_post drops both.
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM posts").fetch_one(&pool).await.unwrap();
    let (ok, out) = run(b, &["post", &url]);
    assert!(ok, "{out}");
    assert!(
        out.contains("dropped column public.posts.legacy") && out.contains("dropped table public.old_audit"),
        "{out}"
    );
    assert_eq!(columns(&pool).await, ["id", "title", "summary", "body"]);
    assert!(!audit_exists(&pool).await);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM posts").fetch_one(&pool).await.unwrap();
    assert_eq!(before, after, "no row was lost");

    // B serves without errors on the contracted schema.
    let server_b = Server::start(b, &url, stop.clone(), "plain");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (b_counts, out) = server_b.stop();
    assert!(b_counts.ops > 5 && b_counts.errors == 0, "{out}");

    // A redeployed after the drop (a rollback) refuses to boot, naming what it maps.
    let (ok, out) = run(a, &["pre", &url]);
    assert!(!ok, "{out}");
    assert!(out.contains("maps what run_post already removed") && out.contains("posts.legacy"), "{out}");
    assert!(out.contains("scheduled by migration 2"), "{out}");
    let _ = std::fs::remove_file(&stop);
}

fn gethostname() -> String {
    let out = Command::new("hostname").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Issue 8's proof: build A reads with `SELECT *` and writes (RETURNING) through its pool
/// while build B's run_pre adds a column and changes a column's type. Through a plain sqlx
/// pool A's errors start and never stop; through zdm's healing pool (and retry) there are
/// none.
#[tokio::test(flavor = "multi_thread")]
async fn select_star_old_build_survives_with_a_healing_pool() {
    let (a, b) = builds();
    let mut counts = Vec::new();
    for mode in ["plain", "recycle", "healing"] {
        let db = TestDb::new().await;
        let url = url(&db);
        let stop = std::env::temp_dir().join(format!("zdm_two_builds_{}", db.name));
        let server = Server::start(a, &url, stop.clone(), mode);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ok, out) = run(b, &["pre", &url]);
        assert!(ok, "{out}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (c, out) = server.stop();
        eprintln!("build A through a {mode} pool: {c:?}");
        let _ = std::fs::remove_file(&stop);
        counts.push((mode, c, out));
    }
    let (_, plain, out) = &counts[0];
    assert!(plain.errors > 0, "the plain pool was expected to fail:\n{out}");
    assert!(out.contains("cached plan must not change result type"), "{out}");
    // Connections that cached the statements never heal; only ones the pool opens later work.
    assert!(plain.tail_ops > 0 && plain.tail_errors > 0, "the errors were expected to go on to the end: {plain:?}");
    // `recycle` (healing pool, no retry) is reported, not asserted: its errors are the
    // window between a change's commit and the notice reaching the listener.
    let (_, healing, out) = &counts[2];
    assert_eq!(healing.errors, 0, "{out}");
    assert!(healing.ops > 50, "{healing:?}");
}

/// Issue 6: a backfill whose process is killed (SIGKILL) in the middle resumes where it
/// stopped: every row is touched exactly once by a non-idempotent `touched = touched + 1`.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backfill_process_resumes_exactly() {
    let (a, _) = builds();
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let mut child = Command::new(a).args(["fill", &url]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let progress = || async {
        sqlx::query_as::<_, (i64, bool)>(
            "SELECT rows_done, finished_at IS NOT NULL FROM zdm_backfills WHERE name = 'touch'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
    };
    let started = std::time::Instant::now();
    loop {
        if let Some((done, _)) = progress().await {
            if done >= 5_000 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the backfill never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();
    let (done, finished) = progress().await.unwrap();
    assert!(!finished && done < 200_000, "killed in the middle: {done}");
    let touched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM counters WHERE touched = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(touched, done, "progress and data moved together");

    let (ok, out) = run(a, &["fill", &url]);
    assert!(ok && out.contains("filled [200000]"), "{out}");
    let counts: Vec<(i32, i64)> =
        sqlx::query_as("SELECT touched, count(*) FROM counters GROUP BY touched").fetch_all(&pool).await.unwrap();
    assert_eq!(counts, [(1, 200_000)], "none re-applied, none skipped");
    eprintln!("killed after {done} of 200000 rows; resumed to 200000, each row once");
}

/// Issue 19, the rollback story: build B's run_pre schedules the drops and B goes away;
/// the older build A (it lacks that migration and still writes `legacy` and `old_audit`)
/// is redeployed as the only instance and runs run_post. A counts itself as a live build:
/// nothing is dropped, its writes never fail, and it says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_rolled_back_build_never_drops_what_it_uses() {
    let (a, b) = builds();
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let stop = std::env::temp_dir().join(format!("zdm_two_builds_{}", db.name));
    let (ok, out) = run(b, &["pre", &url]);
    assert!(ok && out.contains("applied 2 contract_legacy"), "{out}");

    // A comes back alone: run_pre, run_post, then it serves.
    let server_a = Server::start(a, &url, stop.clone(), "plain+post");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Another A process runs its contract step while the first serves.
    let (ok, out) = run(a, &["post", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("this build does not embed migration 2"), "{out}");
    let status_line = out.lines().find(|l| l.contains("drop column public.posts.legacy")).unwrap_or_default();
    assert!(!status_line.contains("dropped"), "{out}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (counts, out) = server_a.stop();
    assert_eq!(counts.errors, 0, "the rolled-back build failed:\n{out}");
    assert!(counts.ops > 10, "{counts:?}");
    assert!(out.contains("run_post of build A") && out.contains("this build does not embed migration 2"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "summary", "body"]);
    assert!(audit_exists(&pool).await);
    eprintln!("rolled-back build A: {counts:?}, column and table kept");
    let _ = std::fs::remove_file(&stop);
}

/// Issue 19: an old build whose pooled connections are all busy for three times the
/// instance TTL still heartbeats (on a connection of its own), so the new build's
/// run_post keeps the column it writes; its write after the busy spell succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_old_build_still_counts_as_live() {
    let (a, b) = builds();
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let mut child =
        Command::new(a).args(["busy", &url, "9"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready "), "{line}");
    let (ok, out) = run(b, &["pre", &url]);
    assert!(ok, "{out}");
    // Past the probe's instance TTL (3 s) while A's pool is saturated.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (ok, out) = run(b, &["post", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("deferred drop column public.posts.legacy") && out.contains("two_builds A"), "{out}");
    assert_eq!(columns(&pool).await, ["id", "title", "legacy", "summary", "body"]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("write ok"), "the busy old build's write failed: {rest}");
}

/// Issue 19: an old build that boots while the new build's run_post drops what it maps
/// either holds the drop back (it registered first) or refuses to boot naming the column
/// (the drop committed first); never both booted and dropped. Repeated with staggered
/// starts (`ZDM_RACE_ROUNDS`, default 8).
#[tokio::test(flavor = "multi_thread")]
async fn a_boot_racing_a_drop_blocks_it_or_refuses() {
    let (a, b) = builds();
    let rounds: u64 = std::env::var("ZDM_RACE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(8);
    let (mut held, mut refused) = (0, 0);
    for round in 0..rounds {
        let db = TestDb::new().await;
        let pool = db.pool(2).await;
        let url = url(&db);
        let (ok, out) = run(b, &["pre", &url]);
        assert!(ok, "{out}");
        // Either process may start first, by a varying head start.
        let head_start = Duration::from_millis(round / 2 * 60 % 300);
        let spawn = |bin: &Path, args: &[&str]| {
            Command::new(bin).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        };
        let (boot, post) = if round % 2 == 0 {
            let boot = spawn(a, &["boot", &url, "2000"]);
            std::thread::sleep(head_start);
            (boot, spawn(b, &["post", &url]))
        } else {
            let post = spawn(b, &["post", &url]);
            std::thread::sleep(head_start);
            (spawn(a, &["boot", &url, "2000"]), post)
        };
        let post = post.wait_with_output().unwrap();
        let ok = post.status.success();
        let post = format!("{}{}", String::from_utf8_lossy(&post.stdout), String::from_utf8_lossy(&post.stderr));
        assert!(ok, "{post}");
        let out = boot.wait_with_output().unwrap();
        let a_out = String::from_utf8_lossy(&out.stdout).to_string();
        let kept = columns(&pool).await.contains(&"legacy".to_string());
        if a_out.starts_with("booted") {
            if !kept {
                // Legitimate only when the drop came after A stopped being live.
                let stopped: f64 = a_out
                    .lines()
                    .find_map(|l| l.strip_prefix("stopping "))
                    .unwrap_or_else(|| panic!("{a_out}"))
                    .parse()
                    .unwrap();
                let dropped: f64 = sqlx::query_scalar(
                    "SELECT extract(epoch FROM dropped_at)::float8 FROM zdm_deferred_drops WHERE column_name = 'legacy'",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                assert!(
                    dropped > stopped,
                    "round {round}: A booted and the column it maps was dropped\n{a_out}\n{post}"
                );
            }
            held += 1;
        } else {
            assert!(a_out.contains("refused") && a_out.contains("posts.legacy"), "round {round}: {a_out}");
            assert!(!kept, "round {round}: A refused but the column is still there: {a_out}");
            refused += 1;
        }
    }
    eprintln!("boot racing a drop, {rounds} rounds: A registered first {held}, A refused {refused}, 0 broken");
}

/// The boot race made deterministic: build B's run_post pauses inside the transaction that
/// drops `posts.legacy` (a failpoint, `--features faults`), holding the registry lock; build
/// A boots meanwhile. A's registration waits for that transaction and then sees the drop:
/// A refuses to boot, naming the column, after waiting for B's commit.
#[tokio::test(flavor = "multi_thread")]
async fn a_boot_during_a_drop_waits_for_it_and_refuses() {
    let (a, _) = builds();
    let b_faults = {
        static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        BUILT.get_or_init(|| build(&["b", "faults"], "two_builds_b_faults"))
    };
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let url = url(&db);
    let (ok, out) = run(b_faults, &["pre", &url]);
    assert!(ok, "{out}");
    let post = Command::new(b_faults)
        .args(["post", &url])
        .env("ZDM_FAILPOINT", "deferred drop step done, before commit#1:pause=2500")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until B sits in its drop transaction (the column is locked, not yet gone).
    let started = std::time::Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "B never reached its drop transaction");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let booting = std::time::Instant::now();
    let (ok, a_out) = run(a, &["boot", &url, "100"]);
    let waited = booting.elapsed();
    let b = post.wait_with_output().unwrap();
    let b_out = format!("{}{}", String::from_utf8_lossy(&b.stdout), String::from_utf8_lossy(&b.stderr));
    assert!(b.status.success() && b_out.contains("dropped column public.posts.legacy"), "{b_out}");
    assert!(ok, "{a_out}");
    assert!(a_out.contains("refused") && a_out.contains("posts.legacy"), "A booted past the drop: {a_out}\n{b_out}");
    assert!(waited > Duration::from_millis(500), "A did not wait for B's drop transaction ({waited:?})");
    assert!(!columns(&pool).await.contains(&"legacy".to_string()));
    eprintln!("A booted during B's drop: waited {waited:?} for it, then refused");
}
