//! The PostgreSQL migrations and their runner.
//!
//! The schema's version is the one row of its `wagate_schema` table:
//!
//! ```sql
//! CREATE TABLE wagate_schema (
//!     singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
//!     version   BIGINT NOT NULL CHECK (version >= 0)
//! );
//! ```
//!
//! Its name marks the schema as wagate's (a schema with objects but no such
//! table is another application's, [`Error::Foreign`]); its primary key
//! allows one row only. Each migration runs in a transaction that first
//! locks that row (`SELECT ... FOR UPDATE`) and re-reads the version, so of
//! several processes opening the same schema at once one applies each
//! migration and the others, queued on the lock, find it applied. A
//! brand-new schema has no row to lock yet: two processes may both try to
//! create the schema or the table, and PostgreSQL then fails the later one
//! with a unique violation once the first commits (`IF NOT EXISTS` does not
//! see an uncommitted table). That loser starts over and finds the table.

use std::time::Duration;

use ::postgres::Client;
use ::postgres::error::SqlState;

use super::{PgError, ident};
use crate::error::{Error, Result};

/// The table holding the schema's version (see the module docs).
pub const SCHEMA_TABLE: &str = "wagate_schema";

/// One migration: its SQL and, for some, a step in code after it.
struct Migration {
    sql: &'static str,
    after: Option<fn(&mut ::postgres::Transaction<'_>) -> Result<()>>,
}

/// The migrations, in order; migration `i` brings the schema to version
/// `i + 1`. PostgreSQL versions are numbered on their own: version 1 is
/// SQLite's versions 1 to 5.
const MIGRATIONS: &[Migration] = &[Migration {
    sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    // The tombstone secret (OS random).
    after: Some(init_secret),
}];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How many times the runner starts over after losing the race to create
/// a brand-new schema (each loss means another process made progress).
const ATTEMPTS: u32 = 50;

/// Writes the per-schema secret that tombstones are keyed with.
fn init_secret(tx: &mut ::postgres::Transaction<'_>) -> Result<()> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| Error::Random(e.to_string()))?;
    tx.execute(
        "INSERT INTO secrets (name, value) VALUES ('tombstone', $1)",
        &[&&secret[..]],
    )?;
    Ok(())
}

/// Brings `schema` up to [`SCHEMA_VERSION`], creating it if needed.
pub(super) fn migrate(conn: &mut Client, schema: &str) -> Result<()> {
    migrate_to(conn, schema, SCHEMA_VERSION)
}

/// Brings `schema` up to version `target`.
pub(super) fn migrate_to(conn: &mut Client, schema: &str, target: i64) -> Result<()> {
    // The common case, a schema of this version, is settled by reads: no
    // lock, no DDL, no privilege to create anything.
    if let Some(found) = version(conn, schema)? {
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found >= target {
            return Ok(());
        }
    }
    let mut lost = 0;
    loop {
        match step(conn, schema, target) {
            Ok(true) => return Ok(()),
            Ok(false) => lost = 0,
            Err(Step::Lost(e)) => {
                lost += 1;
                if lost >= ATTEMPTS {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(5 * u64::from(lost.min(20))));
            }
            Err(Step::Failed(e)) => return Err(e),
        }
    }
}

/// The version of `schema`, or `None` when it has no `wagate_schema` table.
fn version(conn: &mut Client, schema: &str) -> Result<Option<i64>> {
    let has_table: bool = conn
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &SCHEMA_TABLE],
        )?
        .get(0);
    if !has_table {
        return Ok(None);
    }
    let row = conn.query_opt(
        &format!("SELECT version FROM {}.{SCHEMA_TABLE}", ident(schema)),
        &[],
    )?;
    match row {
        Some(r) => Ok(Some(r.get(0))),
        None => Err(no_row()),
    }
}

fn no_row() -> Error {
    Error::Corrupt {
        table: SCHEMA_TABLE,
        detail: "it holds no version row".into(),
    }
}

/// How one step ended badly.
enum Step {
    /// Lost a race to another process that is making progress: start over.
    Lost(Error),
    /// Anything else.
    Failed(Error),
}

impl From<Error> for Step {
    fn from(e: Error) -> Self {
        let lost = e.as_postgres().and_then(PgError::code).is_some_and(|c| {
            // Creating the schema or the version table beside another
            // process, or losing a lock race.
            *c == SqlState::UNIQUE_VIOLATION
                || *c == SqlState::DUPLICATE_SCHEMA
                || *c == SqlState::DUPLICATE_TABLE
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        });
        if lost { Step::Lost(e) } else { Step::Failed(e) }
    }
}

impl From<::postgres::Error> for Step {
    fn from(e: ::postgres::Error) -> Self {
        Step::from(Error::from(e))
    }
}

/// One transaction: creates the schema and its version table if need be,
/// locks the version row, and applies the next migration. `Ok(true)` when
/// the schema is at `target` (nothing was left to do).
fn step(conn: &mut Client, schema: &str, target: i64) -> std::result::Result<bool, Step> {
    let q = ident(schema);
    let mut tx = conn
        .build_transaction()
        .isolation_level(::postgres::IsolationLevel::ReadCommitted)
        .start()?;
    // Every name in a migration lands in the schema; trigger functions
    // keep this search_path (SET search_path FROM CURRENT).
    tx.batch_execute(&format!("SET LOCAL search_path TO {q}, pg_temp"))?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&schema],
        )?
        .get(0);
    if !exists {
        // A DBA may have made it: then the store needs no CREATE privilege
        // on the database.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}"))?;
    }
    let has_table: bool = tx
        .query_one(
            "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
            &[&schema, &SCHEMA_TABLE],
        )?
        .get(0);
    if !has_table {
        let objects: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM pg_catalog.pg_class c
                           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = $1)
                      + (SELECT count(*) FROM pg_catalog.pg_proc p
                           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                          WHERE n.nspname = $1)",
                &[&schema],
            )?
            .get(0);
        if objects != 0 {
            return Err(Step::Failed(Error::Foreign(format!(
                "schema {schema:?} holds {objects} tables, indexes, sequences or functions of another application, and no {SCHEMA_TABLE} table"
            ))));
        }
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {q}.{SCHEMA_TABLE} (
                 singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
                 version   BIGINT NOT NULL CHECK (version >= 0)
             );
             INSERT INTO {q}.{SCHEMA_TABLE} (version) VALUES (0) ON CONFLICT DO NOTHING;"
        ))?;
    }
    // Queues every other migrator of this schema until this one commits.
    let found: i64 = tx
        .query_opt(
            &format!("SELECT version FROM {q}.{SCHEMA_TABLE} FOR UPDATE"),
            &[],
        )?
        .ok_or_else(|| Step::Failed(no_row()))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Step::Failed(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }));
    }
    let Some(m) = usize::try_from(found)
        .ok()
        .filter(|_| found < target)
        .and_then(|i| MIGRATIONS.get(i))
    else {
        tx.commit()?;
        return Ok(true);
    };
    // A failing migration names the versions, not its SQL.
    tx.batch_execute(m.sql).map_err(|e| mismatch(e, found))?;
    if let Some(after) = m.after {
        after(&mut tx).map_err(Step::Failed)?;
    }
    tx.execute(
        &format!("UPDATE {q}.{SCHEMA_TABLE} SET version = $1"),
        &[&(found + 1)],
    )?;
    tx.commit()?;
    Ok(false)
}

/// A migration that fails because the schema's objects are not those of
/// the version it claims (an object missing or already there, SQLSTATE
/// class 42 but for a missing privilege) is [`Error::SchemaMismatch`].
fn mismatch(e: ::postgres::Error, found: i64) -> Step {
    match e.as_db_error() {
        Some(db)
            if db.code().code().starts_with("42")
                && *db.code() != SqlState::INSUFFICIENT_PRIVILEGE =>
        {
            Step::Failed(Error::SchemaMismatch {
                found,
                supported: SCHEMA_VERSION,
                why: db.message().to_owned(),
            })
        }
        _ => Step::from(e),
    }
}
