//! `Migrator::plan`: the pending work as run_pre and run_post would run it, with the lint's
//! prediction per statement, on a real PostgreSQL. Nothing is applied by planning.

mod common;

use common::TestDb;
use zdm::plan::{LockMode, RunBy};
use zdm::{Blocker, Migrator, Phase};

/// A migrator over files given as text (names in sqlx's layout), as the command line reads a
/// folder at run time: the lint would refuse some of these at compile time.
pub fn set(files: &[(&str, &str)]) -> Migrator {
    let files = files
        .iter()
        .map(|(name, sql)| zdm_core::source::SourceFile {
            path: format!("migrations/{name}"),
            bytes: sql.as_bytes().to_vec(),
        })
        .collect();
    let parsed = zdm_core::source::parse_files(files).expect("valid migration files");
    Migrator::from_parsed(parsed, "plan-test", "1.0.0").without_registration()
}

const FILES: &[(&str, &str)] = &[
    ("0001_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, title varchar(100) NOT NULL, body text);\n"),
    (
        "0002_tighten.sql",
        "ALTER TABLE posts ALTER COLUMN body SET NOT NULL;\nALTER TABLE posts ALTER COLUMN title TYPE varchar(200);\n",
    ),
    ("0003_index.sql", "-- zdm:no_transaction\nCREATE INDEX CONCURRENTLY posts_title ON posts (title);\n"),
    ("0004_drop_body.sql", "-- zdm:after_deploy\nALTER TABLE posts DROP COLUMN body;\n"),
    ("0005_summary.sql", "ALTER TABLE posts ADD COLUMN summary text;\n"),
];

#[tokio::test]
async fn the_plan_lists_pending_work_in_run_order_with_predicted_locks() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = set(FILES);
    m.clone().up_to(1).run_all(&pool).await.unwrap();

    let plan = m.plan(&pool).await.unwrap();
    println!("{plan}");
    let order: Vec<(i64, RunBy)> = plan.migrations.iter().map(|p| (p.version, p.run_by)).collect();
    assert_eq!(
        order,
        [(2, RunBy::RunPre), (3, RunBy::RunPre), (5, RunBy::RunPre), (4, RunBy::RunPost)],
        "run_pre's work first, then run_post's"
    );

    let tighten = &plan.migrations[0];
    assert_eq!(tighten.phase, Phase::PreDeploy);
    assert_eq!(tighten.statements.len(), 2);
    let not_null = &tighten.statements[0];
    assert_eq!(not_null.lock_on("posts"), Some(LockMode::AccessExclusiveLock));
    assert_eq!(not_null.scans, ["posts"], "SET NOT NULL proves every row");
    assert!(not_null.rewrites.is_empty());
    assert!(tighten.statements[1].rewrites.is_empty(), "varchar widening is catalog-only");

    let index = &plan.migrations[1];
    assert!(index.no_transaction);
    assert_eq!(index.statements[0].lock_on("posts"), Some(LockMode::ShareUpdateExclusiveLock));

    // The after_deploy drop waits for run_pre's pending work, as run_post would.
    let drop = &plan.migrations[3];
    assert_eq!(drop.phase, Phase::PostDeploy);
    assert!(
        drop.blockers.iter().any(|b| matches!(b, Blocker::Waits(w) if w.contains("pre-deploy migration 2"))),
        "{:?}",
        drop.blockers
    );

    let text = plan.to_string();
    for expected in ["2 tighten [pre, run_pre]", "AccessExclusiveLock", "ShareUpdateExclusiveLock", "gate: waits for"] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }

    // Planning applied nothing.
    let status = m.status(&pool).await.unwrap();
    assert_eq!(status.pending_pre().count(), 3);

    // Once run_pre ran, only the drop is left and the gate is open (no live build is older).
    m.run_pre(&pool).await.unwrap();
    let plan = m.plan(&pool).await.unwrap();
    assert_eq!(plan.migrations.len(), 1);
    assert!(plan.migrations[0].blockers.is_empty(), "{:?}", plan.migrations[0].blockers);
    assert!(plan.to_string().contains("gate: open"), "{plan}");
}

#[tokio::test]
async fn nothing_pending_is_an_empty_plan() {
    let db = TestDb::new().await;
    let pool = db.pool(2).await;
    let m = set(&FILES[..1]);
    m.run_all(&pool).await.unwrap();
    let plan = m.plan(&pool).await.unwrap();
    assert!(plan.migrations.is_empty());
    assert_eq!(plan.to_string(), "nothing pending\n");
}
