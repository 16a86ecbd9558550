//! `examples/axum_service` as the process a deploy starts: it boots on a fresh database,
//! migrates before it binds, reports ready, serves, backfills, runs its after_deploy
//! migration when safe, and on SIGTERM turns not-ready, drains and deregisters. Clients
//! that stop sending when `/ready` says 503 (as a load balancer does) see no failed
//! request, and requests in flight when the signal arrives are answered.
//!
//! The example is built by this test (`cargo build --example axum_service`, once, with
//! the features this test was built with, into the same target directory): cargo gives
//! tests the path of the package's binaries, not of its examples.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{direct_url, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Builds the example once per test process; returns its path.
fn example_binary() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This test runs from <target>/<profile>/deps/; examples go to <target>/<profile>/examples/.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("<target>/<profile>/deps/<test>");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--example", "axum_service", "--target-dir"]);
        cargo.arg(target_dir);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cargo.arg("--release");
        }
        // The same features as this build of the package, so nothing is rebuilt for them.
        let features: Vec<&str> =
            [("serde", cfg!(feature = "serde")), ("fault-injection", cfg!(feature = "fault-injection"))]
                .into_iter()
                .filter_map(|(f, on)| on.then_some(f))
                .collect();
        if !features.is_empty() {
            cargo.arg("--features").arg(features.join(","));
        }
        let out = cargo.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build --example axum_service failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = profile_dir.join("examples").join(format!("axum_service{}", std::env::consts::EXE_SUFFIX));
        assert!(path.exists(), "{} was not built", path.display());
        path
    })
}

/// The running example and every line it logged so far.
struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Service {
    fn start(database_url: &str) -> Service {
        let mut child = Command::new(example_binary())
            .env("DATABASE_URL", database_url)
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("DRAIN_MS", "1500")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the example starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Service { child, lines }
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits (up to `limit`) for a logged line containing `text`; returns it.
    async fn wait_for(&mut self, text: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log().into_iter().find(|l| l.contains(text)) {
                return line;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the example exited ({status}) before logging {text:?}:\n{}", self.log().join("\n"));
            }
            assert!(start.elapsed() < limit, "no {text:?} within {limit:?}:\n{}", self.log().join("\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// One HTTP/1.1 request on a fresh connection; the status code and the body.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

async fn instance_rows(pool: &zdm::sqlx::PgPool, pid: u32) -> i64 {
    zdm::sqlx::query_scalar("SELECT count(*) FROM zdm_instances WHERE pid = $1")
        .bind(pid as i32)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_migrates_before_ready_drains_on_sigterm_and_deregisters() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let mut service = Service::start(&direct_url(&db));
    let pid = service.child.id();

    let listening = service.wait_for("listening", Duration::from_secs(120)).await;
    let addr: SocketAddr = listening.split("addr=").nth(1).expect("addr=").trim().parse().unwrap();
    service.wait_for("axum_service: ready", Duration::from_secs(10)).await;
    let log = service.log();
    let at = |text: &str| log.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("{text}: {log:#?}"));
    assert!(at("run_pre done") < at("listening"), "migrates before it binds: {log:#?}");
    assert_eq!(request(addr, "GET", "/ready", "").await.unwrap(), (200, "ready\n".into()));

    // Served with the model's column list, on the migrated schema.
    let (status, body) = request(addr, "GET", "/posts", "").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.lines().count(), 20, "{body}");
    let (status, id) = request(addr, "POST", "/posts", "Hello zdm").await.unwrap();
    assert_eq!(status, 201, "{id}");
    let (_, body) = request(addr, "GET", "/posts", "").await.unwrap();
    assert!(body.starts_with(&format!("{}\tHello zdm\thello zdm\n", id.trim())), "{body}");
    assert_eq!(instance_rows(&pool, pid).await, 1, "registered while it serves");

    // The backfill's progress is exported, and the after_deploy drop follows it.
    let start = Instant::now();
    loop {
        let (status, metrics) = request(addr, "GET", "/backfills", "").await.unwrap();
        assert_eq!(status, 200);
        if metrics.contains("zdm_backfill_finished{name=\"fill_title_lower\"} 1") {
            assert!(metrics.contains("zdm_backfill_rows_done{name=\"fill_title_lower\",table=\"public.posts\"} 5000"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the backfill did not finish: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.wait_for("run_post_when_safe done", Duration::from_secs(60)).await;
    assert!(!common::columns(&pool, "posts").await.contains(&"legacy_slug".to_string()));

    // A load balancer: it polls /ready and stops routing here once it says 503.
    let routable = Arc::new(AtomicBool::new(true));
    let balancer = tokio::spawn({
        let routable = routable.clone();
        async move {
            while routable.load(Ordering::SeqCst) {
                if !matches!(request(addr, "GET", "/ready", "").await, Ok((200, _))) {
                    routable.store(false, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Clients sending while it is routable; each records its failures.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let routable = routable.clone();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while routable.load(Ordering::SeqCst) {
                    let path = if i == 0 { "/posts/slow" } else { "/posts" };
                    match request(addr, "GET", path, "").await {
                        Ok((200, _)) => ok += 1,
                        other => failed.push(format!("{path}: {other:?}")),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // Slow requests in flight when the signal arrives.
    let in_flight: Vec<_> = (0..3).map(|_| tokio::spawn(request(addr, "GET", "/posts/slow", ""))).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = service.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no exit after SIGTERM:\n{}", service.log().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}:\n{}", service.log().join("\n"));

    for r in in_flight {
        let (status, body) = r.await.unwrap().expect("an in-flight request is answered");
        assert_eq!(status, 200, "{body}");
    }
    balancer.await.unwrap();
    let mut served = 0;
    for c in clients {
        let (ok, failed) = c.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:#?}");
        served += ok;
    }
    assert!(served > 0, "the clients were served during the drain");
    assert!(!routable.load(Ordering::SeqCst), "readiness went down before the process stopped");

    assert_eq!(instance_rows(&pool, pid).await, 0, "deregistered on SIGTERM");
    // Give the reader thread the last lines, then check the order of the shutdown.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = service.log();
    let at = |text: &str| log.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("{text}: {log:#?}"));
    assert!(at("SIGTERM received") < at("not ready"));
    assert!(at("not ready") < at("drained"));
    assert!(at("drained") < at("deregistered this instance"));
    assert!(!log.iter().any(|l| l.contains("ERROR")), "{log:#?}");
}
