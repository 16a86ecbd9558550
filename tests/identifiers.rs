//! Issue 12: identifiers with quotes, spaces, dots, upper case and non-ASCII letters go
//! through every recipe, the deferred drops, a backfill and the registry, and come out
//! intact. Property test: names are generated from a seeded generator (`ZDM_IDENT_CASES`
//! cases, default 6; `ZDM_IDENT_SEED` to replay one), each case in a fresh database, and
//! every step is a Rust-coded migration that reads the case's names.

mod common;

use std::sync::Mutex;

use common::TestDb;
use zdm::__private::BoxError;
use zdm::sqlx::{self, PgConnection, PgPool};

/// The names of the running case.
#[derive(Debug, Clone)]
struct Names {
    schema: String,
    table: String,
    parent: String,
    renamed_table: String,
    /// Renamed to `c1_new`.
    c1: String,
    c1_new: String,
    /// Retyped from integer to bigint.
    c2: String,
    /// Filled by a backfill.
    c3: String,
    /// Dropped later.
    c4: String,
    /// Made NOT NULL, then unique.
    c5: String,
    /// References the parent.
    r: String,
    unique: String,
    fk: String,
}

static CASE: Mutex<Option<Names>> = Mutex::new(None);

fn names() -> Names {
    CASE.lock().unwrap().clone().expect("a case is set")
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Names {
    /// The table as SQL names it (what `regclass`, the drop and backfill functions read).
    fn table_sql(&self) -> String {
        format!("{}.{}", q(&self.schema), q(&self.table))
    }
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A name of 1..=20 characters from letters, digits and the awkward ones; at most 40
    /// bytes so that derived names (`<name>_zdm_new`, ..) stay within PostgreSQL's 63.
    fn name(&mut self, tag: usize) -> String {
        const AWKWARD: &[&str] = &["\"", ".", " ", "'", "É", "ü", "ß", "Ω", "-", "$", "\\", ";", "%", "_"];
        const PLAIN: &str = "abcxyzABCXYZ019";
        let len = 1 + (self.next() % 14) as usize;
        let mut out = String::new();
        for _ in 0..len {
            if self.next().is_multiple_of(3) {
                out.push_str(AWKWARD[(self.next() % AWKWARD.len() as u64) as usize]);
            } else {
                let p = PLAIN.as_bytes();
                out.push(p[(self.next() % p.len() as u64) as usize] as char);
            }
        }
        // Distinct within a case, whatever was drawn.
        out.push_str(&format!("{tag}"));
        out
    }
}

fn case(seed: u64) -> Names {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut n = (0..).map(move |i| rng.name(i));
    let mut next = || n.next().unwrap();
    Names {
        schema: next(),
        table: next(),
        parent: next(),
        renamed_table: next(),
        c1: next(),
        c1_new: next(),
        c2: next(),
        c3: next(),
        c4: next(),
        c5: next(),
        r: next(),
        unique: next(),
        fk: next(),
    }
}

#[zdm::migration(version = 2, description = "setup")]
async fn setup(conn: &mut PgConnection) -> Result<(), BoxError> {
    let n = names();
    let t = n.table_sql();
    let p = format!("{}.{}", q(&n.schema), q(&n.parent));
    let sql = format!(
        "CREATE SCHEMA {s};
         CREATE TABLE {p} (id BIGINT PRIMARY KEY);
         INSERT INTO {p} (id) SELECT g FROM generate_series(1, 10) g;
         CREATE TABLE {t} (id BIGSERIAL PRIMARY KEY, {c1} TEXT, {c2} INTEGER, {c3} TEXT, {c4} TEXT, {c5} TEXT, {r} BIGINT);
         INSERT INTO {t} ({c1}, {c2}, {c4}, {c5}, {r})
             SELECT 'v' || g, g, 'gone' || g, 'u' || g, 1 + g % 10 FROM generate_series(1, 500) g;",
        s = q(&n.schema),
        c1 = q(&n.c1),
        c2 = q(&n.c2),
        c3 = q(&n.c3),
        c4 = q(&n.c4),
        c5 = q(&n.c5),
        r = q(&n.r),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

#[zdm::migration(version = 3, description = "expand")]
async fn expand(conn: &mut PgConnection) -> Result<(), BoxError> {
    let n = names();
    let t = n.table_sql();
    zdm::recipes::rename_column(conn, &t, &n.c1, &n.c1_new).await?;
    zdm::recipes::change_column_type_begin(conn, &t, &n.c2, "bigint").await?;
    let set = format!("{} = 'filled ' || id", q(&n.c3));
    zdm::recipes::backfill(conn, &format!("fill {}", n.c3), &t, &set, None).await?;
    zdm::drop_column_later(conn, &t, &n.c4).await?;
    Ok(())
}

#[zdm::migration(version = 4, description = "constraints", no_transaction)]
async fn constraints(conn: &mut PgConnection) -> Result<(), BoxError> {
    let n = names();
    let t = n.table_sql();
    let parent = format!("{}.{}", q(&n.schema), q(&n.parent));
    zdm::recipes::add_not_null(conn, &t, &n.c5).await?;
    zdm::recipes::add_unique(conn, &t, &[n.c5.as_str()], &n.unique).await?;
    let fk = zdm::recipes::ForeignKey {
        name: &n.fk,
        table: &t,
        columns: &[n.r.as_str()],
        references: &parent,
        referenced_columns: &["id"],
        actions: "",
    };
    zdm::recipes::add_foreign_key(conn, &fk).await?;
    Ok(())
}

#[zdm::migration(version = 5, description = "rename table")]
async fn rename(conn: &mut PgConnection) -> Result<(), BoxError> {
    let n = names();
    zdm::recipes::rename_table(conn, &n.table_sql(), &n.renamed_table).await?;
    Ok(())
}

#[zdm::migration(version = 6, description = "finish", after_deploy)]
async fn finish(conn: &mut PgConnection) -> Result<(), BoxError> {
    let n = names();
    let t = format!("{}.{}", q(&n.schema), q(&n.renamed_table));
    zdm::recipes::change_column_type_finish(conn, &t, &n.c2).await?;
    Ok(())
}

async fn strings(pool: &PgPool, sql: String) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.unwrap()
}

async fn run_case(seed: u64) {
    let n = case(seed);
    *CASE.lock().unwrap() = Some(n.clone());
    let db = TestDb::new().await;
    let pool = db.pool(4).await;
    let m = zdm::migrator!("tests/migrations/ident", rust = [setup, expand, constraints, finish, rename])
        .backfill_in_background(false)
        .without_registration();
    // The deploy: pre-deploy steps, the backfills to their end, then the contract step.
    let deploy = async {
        m.run_pre(&pool).await?;
        m.run_backfills(&pool).await?;
        m.run_post(&pool).await
    };
    if let Err(e) = deploy.await {
        panic!("seed {seed}: names {n:?}: {e}");
    }
    let ctx = format!("seed {seed}: names {n:?}");
    let t = format!("{}.{}", q(&n.schema), q(&n.renamed_table));
    // Columns: renamed, retyped, filled, dropped; in the catalog exactly as generated.
    let columns = strings(
        &pool,
        format!(
            "SELECT attname::text || ':' || format_type(atttypid, atttypmod) || ':' || attnotnull FROM pg_attribute \
             WHERE attrelid = '{}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attname",
            t.replace('\'', "''")
        ),
    )
    .await;
    let mut expected = vec![
        "id:bigint:true".to_string(),
        format!("{}:text:false", n.c1_new),
        format!("{}:bigint:false", n.c2),
        format!("{}:text:false", n.c3),
        format!("{}:text:true", n.c5),
        format!("{}:bigint:false", n.r),
    ];
    expected.sort_by(|a, b| a.split(':').next().cmp(&b.split(':').next()));
    let mut got = columns.clone();
    got.sort_by(|a, b| a.split(':').next().cmp(&b.split(':').next()));
    assert_eq!(got, expected, "{ctx}");
    // Data came along.
    let row: (String, i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {}, {}, {} FROM {t} WHERE id = 7",
        q(&n.c1_new),
        q(&n.c2),
        q(&n.c3)
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, ("v7".to_string(), 7, "filled 7".to_string()), "{ctx}");
    // Constraints under the generated names, validated.
    let constraints = strings(
        &pool,
        format!(
            "SELECT conname::text || ':' || contype::text || ':' || convalidated FROM pg_constraint \
             WHERE conrelid = '{}'::regclass AND contype IN ('u', 'f', 'c') ORDER BY 1",
            t.replace('\'', "''")
        ),
    )
    .await;
    let mut want = vec![format!("{}:f:true", n.fk), format!("{}:u:true", n.unique)];
    want.sort();
    assert_eq!(constraints, want, "{ctx}");
    // The old table name's view was a deferred drop too; nothing pending is left.
    let status = m.status(&pool).await.unwrap();
    assert!(status.deferred.iter().all(|d| d.dropped), "{ctx}: {status}");
    let shown: Vec<String> = status.deferred.iter().map(|d| d.drop.to_string()).collect();
    assert!(shown.iter().any(|d| d.contains(&n.c4)), "{ctx}: {shown:?}");
    let view: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT to_regclass('{}')::text",
        n.table_sql().replace('\'', "''")
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(view, None, "{ctx}: the old name's view is still there");

    // The registry: what a process maps, with the same names, reads back intact.
    let mapped = vec![
        format!("{}.{}\t{}\tapp::Odd", n.schema, n.renamed_table, n.c1_new),
        format!("{}\t{}\tapp::Other", n.table, n.c5),
    ];
    sqlx::query(
        "INSERT INTO zdm_instances (id, app_name, app_version, hostname, pid, zdm_version, started_at, heartbeat_at, \
         embedded, mapped, ignored) VALUES ($1, $2, '1', 'h', 1, '0', now(), clock_timestamp(), '{}', $3, $4)",
    )
    .bind(format!("id {}", n.schema))
    .bind(&n.table)
    .bind(&mapped)
    .bind(vec![format!("{}.{}", n.table, n.c4)])
    .execute(&pool)
    .await
    .unwrap();
    let status = m.status(&pool).await.unwrap();
    let other = status.instances.iter().find(|i| i.app_name == n.table).unwrap_or_else(|| panic!("{ctx}"));
    assert_eq!(other.mapped.iter().map(|m| m.encode()).collect::<Vec<_>>(), mapped, "{ctx}");
    assert_eq!(other.ignored, [format!("{}.{}", n.table, n.c4)], "{ctx}");
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_identifiers_round_trip_through_recipes_drops_backfills_and_the_registry() {
    let seeds: Vec<u64> = match std::env::var("ZDM_IDENT_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => {
            let cases: u64 = std::env::var("ZDM_IDENT_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(6);
            (1..=cases).collect()
        }
    };
    for seed in &seeds {
        run_case(*seed).await;
    }
    eprintln!("{} generated identifier cases: all intact", seeds.len());
}
