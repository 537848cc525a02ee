//! The SQLite store (the default): one file, WAL, one writer at a time
//! (with the gate's group commit), readers beside it. Its queries are
//! `impl Db` by topic, over the types of the `store` module.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

mod consent;
mod erasure;
mod inbound;
mod people;
mod retention;
mod sends;
mod stats;
mod templates;

/// One migration: its SQL and, for some, a step in code after it.
struct Migration {
    sql: &'static str,
    after: Option<fn(Db<'_>) -> Result<()>>,
}

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("../../../migrations/sqlite/0002_people_chain.sql"),
        // Version 1 rows get their chain hashes (SHA-256 is not SQL).
        after: Some(crate::store::consent::backfill_chains),
    },
    Migration {
        sql: include_str!("../../../migrations/sqlite/0003_pricing.sql"),
        after: None,
    },
    Migration {
        sql: include_str!("../../../migrations/sqlite/0004_erasure.sql"),
        // The secret (OS random), then every chain re-hashed as version 2.
        after: Some(crate::store::erasure::init_secret),
    },
    Migration {
        sql: include_str!("../../../migrations/sqlite/0005_erasure_guards.sql"),
        after: None,
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of wagate databases ("wAGT").
const APPLICATION_ID: i64 = 0x7741_4754;

/// `PRAGMA cache_size` per connection: negative means KiB (16 MiB). The
/// hot interior pages of a million-user database fit; memory stays bounded
/// whatever the number of users.
pub const CACHE_SIZE: i64 = -16 * 1024;

/// Prepared statements kept per connection: every statement of the store
/// fits, so hot paths never re-prepare.
const STATEMENT_CACHE: usize = 64;

/// How long a connection waits for another writer before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open SQLite database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// The queue of writers across processes; none for a private
    /// in-memory database.
    lock: Option<WriteLock>,
}

/// Writers of one file, in any process, queue on an exclusive `flock` of
/// `<file>-wagate.lock` around each write transaction (and around creating
/// or upgrading the schema). SQLite's own busy handler polls with sleeps,
/// so under steady load a waiting writer can lose every race and fail after
/// its timeout while the file is busy but progressing; a blocked `flock` is
/// woken the moment the holder lets go, and the kernel drops it if the
/// holder dies. Readers never take it: in WAL they read beside a writer.
#[derive(Debug)]
struct WriteLock {
    path: std::path::PathBuf,
    /// Opened on first use, so read-only use never creates the file.
    file: Option<std::fs::File>,
}

/// Holds the writers' lock until dropped.
struct LockGuard<'a>(Option<&'a std::fs::File>);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.0 {
            // Closing the file would release it too; an unlock that fails
            // leaves the lock to the next write of this process.
            let _ = f.unlock();
        }
    }
}

impl WriteLock {
    fn for_db(path: &Path) -> Self {
        let mut name = path.as_os_str().to_owned();
        name.push("-wagate.lock");
        WriteLock {
            path: name.into(),
            file: None,
        }
    }

    fn acquire(&mut self) -> Result<LockGuard<'_>> {
        let fail = |e: std::io::Error| Error::WriteLock {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        };
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map_err(fail)?;
            self.file = Some(f);
        }
        let Some(f) = self.file.as_ref() else {
            return Ok(LockGuard(None));
        };
        f.lock().map_err(fail)?;
        Ok(LockGuard(Some(f)))
    }
}

fn guard(lock: &mut Option<WriteLock>) -> Result<LockGuard<'_>> {
    match lock {
        Some(l) => l.acquire(),
        None => Ok(LockGuard(None)),
    }
}

impl Store {
    /// Opens (creating if needed) a database file and brings its schema up
    /// to date.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a database written by a newer wagate,
    /// [`Error::Foreign`] for a SQLite file of another application, or a
    /// store error.
    pub fn open(path: &Path) -> Result<Self> {
        Self::init(Connection::open(path)?, Some(WriteLock::for_db(path)))
    }

    /// Opens a database file that must exist already (read commands never
    /// create one), bringing an older schema up to date.
    ///
    /// # Errors
    /// [`Error::NoDatabase`] when there is no file at `path`, otherwise as
    /// [`Store::open`].
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::NoDatabase(path.display().to_string()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        // An empty file (or one SQLite made but nobody filled) is not a
        // database to read: schema creation is for write commands.
        let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let objects: i64 =
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if app == 0 && objects == 0 {
            return Err(Error::NoDatabase(format!(
                "{} (an empty file)",
                path.display()
            )));
        }
        Self::init(conn, Some(WriteLock::for_db(path)))
    }

    /// A second connection to a file another [`Store`] opened: for reads
    /// that must not wait behind a writer's fsync (WAL lets them run side
    /// by side). It applies no migration; every transaction checks the
    /// schema version.
    ///
    /// # Errors
    /// A store error.
    pub fn open_reader(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        let store = Store {
            conn,
            lock: Some(WriteLock::for_db(path)),
        };
        check_schema(&store.conn)?;
        Ok(store)
    }

    /// A private in-memory database.
    ///
    /// # Errors
    /// A store error.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(conn: Connection, lock: Option<WriteLock>) -> Result<Self> {
        configure(&conn)?;
        let mut store = Store { conn, lock };
        // The common case, a file of this version already in WAL, is
        // settled by a read: opening takes no write lock, so a `check`
        // never waits behind a writer.
        if store.up_to_date()? {
            return Ok(store);
        }
        // Creating or upgrading: one process at a time (three processes
        // opening a new file at once used to get SQLITE_BUSY at once).
        let Store { conn, lock } = &mut store;
        let _queued = guard(lock)?;
        migrate(conn)?;
        // Only a database known to be ours is switched to WAL.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        drop(_queued);
        Ok(store)
    }

    /// Whether the file is a wagate database of this version in WAL mode
    /// (or a private in-memory one that needs nothing): read only.
    fn up_to_date(&self) -> Result<bool> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let app: i64 = self
            .conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            // Refused below, with the foreign-file checks.
            return Ok(false);
        }
        if version != SCHEMA_VERSION || app != APPLICATION_ID {
            return Ok(false);
        }
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        Ok(mode.eq_ignore_ascii_case("wal") || self.lock.is_none())
    }

    /// The schema version of the open database.
    ///
    /// # Errors
    /// A store error.
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits if it returns
    /// `Ok`, rolls back otherwise.
    ///
    /// # Errors
    /// What `f` returns, [`Error::SchemaTooNew`] if another process
    /// upgraded the database since it was opened, or a store error.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let Store { conn, lock } = self;
        // Held until the commit is durable (dropped last).
        let _queued = guard(lock)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_schema(&tx)?;
        let mut w = Writer { tx };
        let out = f(&mut w)?;
        w.tx.commit()?;
        Ok(out)
    }

    /// Runs `f` as [`Store::write`] does, then checkpoints the write-ahead
    /// log into the file and truncates it, so that pages the write freed
    /// (zeroed: every connection runs with `secure_delete`) replace their
    /// old images on disk. Returns `f`'s value and whether the checkpoint
    /// was complete (a reader of an older snapshot can hold frames back).
    ///
    /// # Errors
    /// As [`Store::write`]; a failing checkpoint is an error too (the
    /// commit stands).
    pub fn write_scrubbed<T>(
        &mut self,
        f: impl FnOnce(&mut Writer<'_>) -> Result<T>,
    ) -> Result<(T, bool)> {
        let out = self.write(f)?;
        let (busy, log, done): (i64, i64, i64) =
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        Ok((out, busy == 0 && log == done))
    }

    /// Rewrites the whole file (SQLite's `VACUUM`), then truncates the
    /// write-ahead log: no unused page or free space keeps old content.
    /// Takes the writers' lock for as long as it runs (seconds for a
    /// large file) and needs free disk space of the file's size.
    ///
    /// # Errors
    /// A store error (a full disk, another process's open read).
    pub fn vacuum(&mut self) -> Result<()> {
        let Store { conn, lock } = self;
        let _queued = guard(lock)?;
        conn.execute_batch("VACUUM")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    ///
    /// # Errors
    /// What `f` returns, [`Error::SchemaTooNew`] if another process
    /// upgraded the database since it was opened, or a store error.
    pub fn read<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        check_schema(&tx)?;
        let out = f(Db(&tx))?;
        tx.finish()?;
        Ok(out)
    }
}

/// Applies pending migrations, each in its own `BEGIN IMMEDIATE`
/// transaction that re-reads the version, so two processes opening a
/// new file at once do not both apply the same migration.
fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies pending migrations up to version `target`.
fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let app: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
        let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if app != 0 && app != APPLICATION_ID {
            return Err(Error::Foreign(format!(
                "its application_id is {app:#x} (wagate's is {APPLICATION_ID:#x})"
            )));
        }
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if app == 0 {
            let objects: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            if found != 0 || objects != 0 {
                return Err(Error::Foreign(
                    "the file holds another application's tables".into(),
                ));
            }
        }
        let Some(m) = usize::try_from(found)
            .ok()
            .filter(|_| found < target)
            .and_then(|i| MIGRATIONS.get(i))
        else {
            return Ok(());
        };
        // A failing migration names the versions, not its SQL.
        tx.execute_batch(m.sql).map_err(|e| match e {
            rusqlite::Error::SqlInputError { msg, .. } => Error::SchemaMismatch {
                found,
                supported: SCHEMA_VERSION,
                why: msg,
            },
            rusqlite::Error::SqliteFailure(f, Some(msg))
                if f.code == rusqlite::ErrorCode::Unknown =>
            {
                Error::SchemaMismatch {
                    found,
                    supported: SCHEMA_VERSION,
                    why: msg,
                }
            }
            e => Error::from(e),
        })?;
        if let Some(after) = m.after {
            after(Db(&tx))?;
        }
        tx.pragma_update(None, "user_version", found + 1)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
}

/// The per-connection settings every store connection gets.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Freed cells and pages are overwritten with zeros, so text that a
    // write replaces (an erasure, a purge, a row that moved) leaves no
    // copy in the file's unused space. Pages are written whole anyway:
    // the cost is a memset.
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner stability guarantee: a plan never depends on the
    // values bound. Without it, SQLite (built with STAT4) marks statements
    // whose plan might, and rusqlite's statement cache, which clears the
    // bindings of every statement it takes back, makes SQLite re-prepare
    // them on every use: a person lookup cost 12 µs instead of 3.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Fails closed when the schema changed under an open store (a newer
/// wagate migrated the file while this one runs).
fn check_schema(conn: &Connection) -> Result<()> {
    let found: i64 = conn
        .prepare_cached("PRAGMA user_version")?
        .query_row([], |r| r.get(0))?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }),
        std::cmp::Ordering::Less => Err(Error::Corrupt {
            table: "database",
            detail: format!("schema version went back to {found}"),
        }),
    }
}

/// An open write transaction.
pub struct Writer<'c> {
    tx: Transaction<'c>,
}

impl Writer<'_> {
    /// The transaction's queries.
    pub fn db(&self) -> Db<'_> {
        Db(&self.tx)
    }

    /// The transaction's connection, which answers [`Queries`] as a
    /// [`Db`] on it does.
    pub(in crate::store) fn connection(&self) -> &Connection {
        &self.tx
    }

    /// Runs `f` in a savepoint: its writes stay if it returns `Ok` and are
    /// undone alone if it returns `Err`; the transaction goes on either way.
    ///
    /// # Errors
    /// A store failure (SQLite, schema, corrupt row), which fails the whole
    /// transaction; the item's own input error is returned inside the `Ok`.
    pub fn item<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<Result<T>> {
        // Cached statements: a batch opens one savepoint per item.
        let run = |sql: &str| -> Result<()> {
            self.tx.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        run("SAVEPOINT item")?;
        match f(Db(&self.tx)) {
            Ok(v) => {
                run("RELEASE item")?;
                Ok(Ok(v))
            }
            Err(e) => {
                // If SQLite already rolled the whole transaction back, the
                // savepoint is gone: report the original failure.
                if let Err(undo) = run("ROLLBACK TO item").and_then(|()| run("RELEASE item")) {
                    return Err(if e.is_store_failure() { e } else { undo });
                }
                if e.is_store_failure() {
                    // Not the item's fault: the whole batch fails.
                    Err(e)
                } else {
                    Ok(Err(e))
                }
            }
        }
    }
}
/// The queries, on a transaction or savepoint.
#[derive(Clone, Copy)]
pub struct Db<'a>(pub(crate) &'a Connection);

impl From<rusqlite::types::FromSqlError> for Error {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        Error::from(rusqlite::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BusinessRef;

    /// Migration 4 re-hashes every intact version 1 chain as version 2,
    /// and leaves a chain altered before the upgrade broken: the upgrade
    /// blesses nothing.
    #[test]
    fn the_upgrade_rehashes_intact_chains_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        migrate_to(&mut conn, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO businesses (id, name) VALUES (1, 'acme');
             INSERT INTO users (id, business_id, key) VALUES
               (1, 1, 'whatsapp:+15550000001'), (2, 1, 'whatsapp:+15550000002');
             INSERT INTO consent_events VALUES
               (1, 1, 1, 'opt_in', 'all', 0, 0, 0, 0, 'web_form', 'form v3'),
               (1, 1, 2, 'opt_out', 'all', 5, 5, 5, 0, 'keyword', NULL),
               (1, 2, 1, 'opt_in', 'all', 0, 0, 0, 0, 'import', NULL);",
        )
        .unwrap();
        migrate_to(&mut conn, 3).unwrap();
        let v1_head = |id: i64| -> Vec<u8> {
            conn.query_row("SELECT consent_head FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let (head1, head2) = (v1_head(1), v1_head(2));
        // Someone turns user 1's STOP into an opt-in behind the chain's back.
        conn.execute_batch(
            "DROP TRIGGER consent_events_no_update;
             UPDATE consent_events SET action = 'opt_in' WHERE user_id = 1 AND seq = 2;
             CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
             WHEN OLD.hash IS NOT NULL
             BEGIN SELECT RAISE(ABORT, 'consent_events is append-only'); END;",
        )
        .unwrap();
        let mut store = Store::init(conn, None).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let acme = BusinessRef {
            id: 1,
            name: "acme",
        };
        let report = store.read(|db| db.verify_chains(acme)).unwrap();
        let broken = report.broken.unwrap_or_default();
        assert!(broken.contains("whatsapp:+15550000001"), "{broken}");
        // User 2's chain is version 2 now: a new head, salted, verified.
        let one = |id| crate::store::Addresses::One(id);
        let facts = store
            .read(|db| db.person_consent(acme, &one(2), None))
            .unwrap();
        assert_eq!(facts.len(), 1);
        assert!(
            store
                .read(|db| db.person_consent(acme, &one(1), None))
                .is_err()
        );
        let heads: Vec<(i64, Vec<u8>)> = store
            .read(|db| {
                let mut stmt =
                    db.0.prepare("SELECT id, consent_head FROM users ORDER BY id")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .unwrap();
        assert_eq!(heads[0].1, head1, "the altered chain is left as it was");
        assert_ne!(heads[1].1, head2, "the intact chain is re-hashed");
    }
}
