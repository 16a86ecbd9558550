//! zdm's own schema on PostgreSQL: its tables, created at first boot (or replaced, for an
//! older zdm's database), and the look-up that tells whether they are all there and which
//! other tools' ledgers exist.

use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::{drops, ledger, post_pending, recipes, registry, simple};
use crate::error::{Doing, Error};
use crate::names::Names;
use crate::records::{Booted, Foreign, Found};

/// One round trip at every boot: zdm's objects, the other tools' ledgers, the server.
const TABLES_EXIST: &str = concat!(
    "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL ",
    "AND to_regclass($3) IS NOT NULL AND to_regclass($4) IS NOT NULL AND to_regclass($5) IS NOT NULL ",
    "AND to_regclass($6) IS NOT NULL AND to_regprocedure($7) IS NOT NULL AND to_regprocedure($8) IS NOT NULL ",
    "AND to_regprocedure($9) IS NOT NULL AND to_regclass($10) IS NOT NULL AND to_regprocedure($11) IS NOT NULL ",
    "AND to_regclass($12) IS NOT NULL AND to_regprocedure($13) IS NOT NULL, ",
    ledger::foreign_ledgers!(),
    ", current_setting('server_version_num')::int, ",
    "concat_ws(':', inet_server_addr(), inet_server_port(), current_database())"
);

/// Serialises concurrent first boots: `CREATE TABLE IF NOT EXISTS` races on the catalog.
const BOOTSTRAP_LOCK: &str = "SELECT pg_try_advisory_xact_lock(hashtext('zdm bootstrap'))";

/// What the bootstrap's look-up sees.
struct Look {
    /// zdm's objects are all there, this zdm version's.
    complete: bool,
    sqlx: bool,
    diesel: bool,
    server_version: i32,
    db_key: String,
}

/// The look-up's statement, values bound.
fn look_up(names: &Names) -> simple::Sql {
    let [fn1, fn2, fn3] = drops::function_signatures(names);
    let recipes = recipes::marker(names);
    simple::sql(names.sql(TABLES_EXIST))
        .bind(&names.ledger)
        .bind(&names.history)
        .bind(&names.lease)
        .bind(&names.instances)
        .bind(&names.drops)
        .bind(&names.post_pending)
        .bind(fn1)
        .bind(fn2)
        .bind(fn3)
        .bind(recipes.0)
        .bind(recipes.1)
        .bind(names.func("app_models"))
        .bind(format!("{}(text)", names.func("applied")))
}

/// Whether zdm's objects are all there (this zdm version's), and what else the database has.
async fn tables_exist(pool: &PgPool, names: &Names) -> Result<Look, Error> {
    let (complete, sqlx, diesel, server_version, db_key) =
        look_up(names).row_as(pool).await.doing("looking for zdm's tables")?;
    Ok(Look { complete, sqlx, diesel, server_version, db_key })
}

/// The common boot in one round trip: the look-up, what counts as applied and (given) this
/// process's registration statement, sent as one simple query (one implicit transaction).
/// `None` when a statement was refused (zdm's objects missing, an older zdm's): nothing of
/// it stands, and the caller takes the step-by-step way, which creates what is missing and
/// says what went wrong. Once the query went through, its registration stands, and the
/// result says so even where the rest must be read again (objects of an older zdm).
pub(super) async fn boot(pool: &PgPool, names: &Names, register: Option<simple::Sql>) -> Result<Option<Booted>, Error> {
    use futures_core::Stream;
    use sqlx::{Either, Row};

    let mut text = look_up(names).text();
    text.push_str(";\n");
    text.push_str(&names.sql(ledger::LOAD_APPLIED_FN));
    if let Some(register) = &register {
        text.push_str(";\n");
        text.push_str(&register.text());
    }
    let mut stream = std::pin::pin!(sqlx::raw_sql(AssertSqlSafe(text)).fetch_many(pool));
    // Rows per statement, in order: a statement's end is its `QueryResult`.
    let mut results: Vec<Vec<sqlx::postgres::PgRow>> = vec![Vec::new()];
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match item {
            Ok(Either::Left(_)) => results.push(Vec::new()),
            Ok(Either::Right(row)) => results.last_mut().expect("one list at least").push(row),
            // A missing object, an older zdm's schema: the step-by-step way sorts it out.
            Err(sqlx::Error::Database(e)) => {
                tracing::debug!(error = %e, "the one-round-trip boot was refused; booting step by step");
                return Ok(None);
            }
            Err(e) => return Err(e).doing("looking for zdm's tables"),
        }
    }
    let statements = if register.is_some() { 3 } else { 2 };
    if results.len() < statements {
        return Ok(None);
    }
    let Some(look) = results[0].first() else { return Ok(None) };
    let (complete, sqlx, diesel, server_version, db_key): (bool, bool, bool, i32, String) =
        sqlx::FromRow::from_row(look).doing("looking for zdm's tables")?;
    let applied = if complete {
        let rows = results[1]
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .doing("reading the ledger")?;
        let mut applied = ledger::merge(rows);
        if diesel {
            ledger::add_diesel(pool, &mut applied).await?;
        }
        Some(applied)
    } else {
        None
    };
    let predated = match register {
        Some(_) => Some(
            results[2]
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<Vec<i64>, _>>()
                .doing("registering this instance")?,
        ),
        None => None,
    };
    Ok(Some(Booted {
        found: Found { foreign: Foreign { sqlx, diesel }, server_version: Some(server_version), db_key },
        applied,
        predated,
    }))
}

/// Creates (or, for an older zdm's database, replaces) zdm's schema, tables and functions.
async fn create_objects(tx: &mut PgConnection, names: &Names) -> Result<(), Error> {
    if let Some(schema) = &names.schema {
        let create = format!("CREATE SCHEMA IF NOT EXISTS {}", zdm_core::ident::quote_ident(schema));
        sqlx::raw_sql(AssertSqlSafe(create)).execute(&mut *tx).await.doing("creating zdm's schema")?;
    }
    sqlx::raw_sql(AssertSqlSafe(names.sql(CREATE_TABLES))).execute(&mut *tx).await.doing("creating zdm's tables")?;
    sqlx::raw_sql(AssertSqlSafe(names.sql(ledger::CREATE_APPLIED_FN)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's ledger function")?;
    sqlx::raw_sql(AssertSqlSafe(names.sql(registry::CREATE)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's registry tables")?;
    sqlx::raw_sql(AssertSqlSafe(names.sql(post_pending::CREATE)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's table of waiting after_deploy migrations")?;
    sqlx::raw_sql(AssertSqlSafe(drops::create_sql(names)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's deferred drops and their functions")?;
    sqlx::raw_sql(AssertSqlSafe(recipes::create_sql(names)))
        .execute(&mut *tx)
        .await
        .doing("creating zdm's recipe functions")?;
    Ok(())
}

const CREATE_TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS {ledger} (
    version        BIGINT PRIMARY KEY,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BYTEA NOT NULL,
    no_transaction BOOLEAN NOT NULL DEFAULT FALSE,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    BIGINT NOT NULL,
    success        BOOLEAN NOT NULL,
    error          TEXT,
    app_name       TEXT,
    app_version    TEXT,
    zdm_version    TEXT NOT NULL,
    hostname       TEXT,
    pid            INTEGER,
    db_user        TEXT,
    safety_assured TEXT[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS {history} (
    id             BIGSERIAL PRIMARY KEY,
    version        BIGINT NOT NULL,
    description    TEXT NOT NULL,
    phase          TEXT NOT NULL,
    checksum       BYTEA NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL,
    finished_at    TIMESTAMPTZ NOT NULL,
    duration_ms    BIGINT NOT NULL,
    success        BOOLEAN NOT NULL,
    error          TEXT,
    app_name       TEXT,
    app_version    TEXT,
    zdm_version    TEXT NOT NULL,
    hostname       TEXT,
    pid            INTEGER,
    db_user        TEXT
);
CREATE TABLE IF NOT EXISTS {lease} (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    owner       TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
"#;

/// Creates zdm's objects when missing: one creator under an advisory transaction lock,
/// the others wait outside any transaction and look again.
pub(super) async fn bootstrap(pool: &PgPool, names: &Names) -> Result<Found, Error> {
    let look = tables_exist(pool, names).await?;
    let mut complete = look.complete;
    let started = Instant::now();
    while !complete {
        let mut tx = pool.begin().await.doing("creating zdm's tables")?;
        let creator: bool = simple::sql(BOOTSTRAP_LOCK).scalar(&mut *tx).await.doing("creating zdm's tables")?;
        if creator {
            create_objects(&mut tx, names).await?;
            tx.commit().await.doing("creating zdm's tables")?;
            break;
        }
        // Another process is creating them: wait outside any transaction (a waiter
        // parked in one would make a concurrent index build wait for it), look again.
        let _ = tx.rollback().await;
        if started.elapsed() > Duration::from_secs(120) {
            return Err(Error::Config(
                "zdm's tables are being created by another process for over 2 minutes; \
                 look for a session holding the advisory lock 'zdm bootstrap'"
                    .into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        complete = tables_exist(pool, names).await?.complete;
    }
    Ok(Found {
        foreign: Foreign { sqlx: look.sqlx, diesel: look.diesel },
        server_version: Some(look.server_version),
        db_key: look.db_key,
    })
}
