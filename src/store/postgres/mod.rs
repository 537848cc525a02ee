//! The PostgreSQL store (feature `postgres`): the same gate for services on
//! many machines, sharing one database.
//!
//! This is its foundation: connecting through a pool, the schema and its
//! migrations, the append-only guards in the database, and transactions.
//! The queries the gate runs sit on top of [`PgDb`].
//!
//! - **One schema (namespace) per store**, chosen by the caller (default
//!   [`DEFAULT_SCHEMA`]): every table, index and trigger function of the
//!   store lives in it, so it shares a database with the application's own
//!   tables, and a scenario replay can use a fresh schema each time and
//!   drop it after ([`PgStore::drop_schema`]). Every pooled connection has
//!   its `search_path` set to that schema (then `pg_temp`), so queries name
//!   tables unqualified, as the SQLite store does.
//! - **Migrations** in `migrations/postgres/`, embedded at build time and
//!   numbered on their own (version 1 is the whole schema of SQLite's
//!   versions 1 to 5). Several processes may open a new schema at once:
//!   each migration runs in a transaction holding the one row of the
//!   `wagate_schema` table `FOR UPDATE`, so it is applied once. A schema
//!   of a newer version is refused ([`Error::SchemaTooNew`]), and so is a
//!   schema holding another application's objects ([`Error::Foreign`]).
//!   No advisory lock: the same works on CockroachDB.
//! - **The consent trail is append-only in the database**: triggers refuse
//!   deleting or changing an event (except erasure's seal), deleting or
//!   changing a link (except blanking its source between two erased
//!   addresses), changing a secret, and `TRUNCATE` of any of the three.
//! - **Transactions**: reads run in `REPEATABLE READ, READ ONLY` (one
//!   snapshot, as a SQLite read transaction); writes in `SERIALIZABLE`,
//!   retried when they lose a race ([`PgStore::write`]). Every transaction
//!   first checks the schema version, the `search_path` and
//!   `synchronous_commit` in one round trip: a store whose schema a newer
//!   wagate upgraded meanwhile fails closed.
//!
//! # Durability
//!
//! Every connection runs with `synchronous_commit` at least `on` (a server
//! or role default of `off`, `local` or `remote_write` is raised to `on`
//! for the store's sessions; `remote_apply` is kept), and every transaction
//! checks it. So a commit that returned is in the primary's write-ahead
//! log on disk: a crash of the server loses nothing the gate was told was
//! written.
//!
//! A failover to a replica is another matter, and is the operator's:
//! - with asynchronous replication (no `synchronous_standby_names`, the
//!   default), the replica may lack the last commits of the old primary
//!   (up to its replication lag): after a failover those sends, consent
//!   changes and inbound messages are gone. A send recorded as reserved or
//!   sent can then be sent again by a retry with the same key, and an
//!   opt-out received just before the failover must be received again
//!   (providers redeliver webhooks that were not acknowledged, but the
//!   gate had acknowledged it);
//! - with a synchronous standby listed in `synchronous_standby_names`,
//!   `on` waits for the standby to flush each commit: a failover to that
//!   standby loses nothing committed (reads on it may lag unless
//!   `remote_apply`).
//!
//! # Not yet here
//!
//! TLS: connections use no TLS ([`::postgres::NoTls`]), so the server must
//! be reached over a Unix socket or a trusted network.

use std::time::{Duration, Instant};

use ::postgres::{Client, IsolationLevel, NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;

use crate::error::{Error, Result};

mod error;
mod migrate;
mod queries;

pub use error::PgError;
pub use migrate::{SCHEMA_TABLE, SCHEMA_VERSION};
pub use queries::PgQueries;

/// The schema (namespace) the store uses when the caller names none.
pub const DEFAULT_SCHEMA: &str = "wagate";

/// How many times [`PgStore::write`] runs a transaction that keeps losing
/// races (serialization failures, deadlocks) before giving up.
pub const WRITE_ATTEMPTS: u32 = 32;

type Pool = r2d2::Pool<Manager>;
type Pooled = r2d2::PooledConnection<Manager>;

/// A pooled connection with the statements prepared on it: each query of
/// the store is prepared once per connection and then runs in one round
/// trip, instead of a prepare and an execute every time.
pub(crate) struct Conn {
    client: Client,
    statements: Statements,
    /// When a transaction last finished on it (or it was opened).
    used: Instant,
    /// Found dead: the pool discards it when it comes back.
    broken: bool,
}

/// A pooled connection idle for this long is tested before it is used
/// ([`PgStore::conn`]).
pub const IDLE_TEST_AFTER: Duration = Duration::from_millis(500);

/// How long that test may take.
const IDLE_TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements of one connection, by their SQL.
pub(crate) type Statements = std::collections::HashMap<String, ::postgres::Statement>;

/// `sql` prepared on `tx`'s connection: from `statements`, or prepared now
/// and kept there (a statement outlives the transaction that prepared it).
pub(crate) fn prepared(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    sql: &str,
) -> Result<::postgres::Statement> {
    if let Some(s) = statements.get(sql) {
        return Ok(s.clone());
    }
    let s = tx.prepare(sql)?;
    statements.insert(sql.to_owned(), s.clone());
    Ok(s)
}

/// r2d2_postgres's manager, with a statement cache per connection.
#[derive(Debug)]
struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ::postgres::Error;

    fn connect(&self) -> std::result::Result<Conn, ::postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: Statements::new(),
            used: Instant::now(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), ::postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || self.0.has_broken(&mut conn.client)
    }
}

/// How a [`PgStore`] connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PgOptions {
    /// The most connections the pool holds (default 4). Each PostgreSQL
    /// connection is a server process (several MiB), and every process of
    /// every machine has its own pool: the server's `max_connections`
    /// (100 by default) must cover the sum. A gate holds one connection per
    /// transaction in flight, so a pool as large as the number of threads
    /// that use the store at once is enough.
    pub pool_size: u32,
    /// How long to wait for a connection, from the pool or the server
    /// (default 10 s), before failing.
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 4,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A PostgreSQL store: a pool of connections to one schema. Cheap to share
/// between threads (`&self` everywhere; clones share the pool).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    schema: String,
    /// The statement [`PgStore::check`] runs (prepared once per connection).
    check_sql: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's Debug would print the connection configuration.
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// Sets up each new pooled connection: the schema, and durability.
#[derive(Debug)]
struct Setup {
    /// `SET search_path ...` for the store's schema.
    search_path: String,
}

impl r2d2::CustomizeConnection<Conn, ::postgres::Error> for Setup {
    fn on_acquire(&self, conn: &mut Conn) -> std::result::Result<(), ::postgres::Error> {
        let conn = &mut conn.client;
        conn.batch_execute(&self.search_path)?;
        let level: String = conn
            .query_one("SELECT current_setting('synchronous_commit')", &[])?
            .get(0);
        if !durable(&level) {
            conn.batch_execute("SET synchronous_commit TO on")?;
        }
        Ok(())
    }
}

/// Whether a `synchronous_commit` level flushes each commit to disk before
/// it returns and waits for a synchronous standby where there is one.
fn durable(level: &str) -> bool {
    matches!(level, "on" | "remote_apply")
}

/// Checks a schema name: lower-case ASCII letters, digits and `_`, not
/// starting with a digit nor with `pg_` (reserved), 1 to 63 bytes. Such a
/// name means the same quoted or not, so no case folding surprises anyone.
fn check_schema_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with("pg_")
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PgError::config(format!(
            "invalid schema name {name:?}: use 1 to 63 lower-case ASCII letters, digits and _, not starting with a digit or pg_"
        ))
        .into())
    }
}

/// `name` as a quoted SQL identifier (already checked: no quote inside).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:
    /// port/dbname?...`, or the key=value form; a Unix socket directory
    /// goes in `host`) and opens the store in `schema`, creating the schema
    /// and bringing it up to date if needed, with [`PgOptions::default`].
    ///
    /// # Errors
    /// As [`PgStore::open_with`].
    pub fn open(url: &str, schema: &str) -> Result<Self> {
        Self::open_with(url, schema, &PgOptions::default())
    }

    /// [`PgStore::open`] with options.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a schema written by a newer wagate,
    /// [`Error::Foreign`] for a schema holding another application's
    /// objects, [`Error::SchemaMismatch`] when the schema's tables are not
    /// those of the version it claims, or [`Error::Postgres`] (a bad URL or
    /// schema name, no server, no permission).
    pub fn open_with(url: &str, schema: &str, options: &PgOptions) -> Result<Self> {
        check_schema_name(schema)?;
        if options.pool_size == 0 {
            return Err(PgError::config("the pool size must be at least 1").into());
        }
        let mut config: ::postgres::Config = url.parse()?;
        if config.get_application_name().is_none() {
            config.application_name("wagate");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let manager = Manager(PostgresConnectionManager::new(config, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            // Tested by PgStore::conn when idle for a while, not on every
            // checkout (a round trip per transaction).
            .test_on_check_out(false)
            // One connection at once, so a wrong URL fails here.
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            .connection_customizer(Box::new(Setup {
                search_path: format!("SET search_path TO {}, pg_temp", ident(schema)),
            }))
            .build(manager)?;
        let store = PgStore {
            pool,
            schema: schema.to_owned(),
            check_sql: format!(
                "SELECT version, current_schema(), current_setting('synchronous_commit'),
                        (SELECT value FROM {0}.secrets WHERE name = 'tombstone')
                 FROM {0}.{SCHEMA_TABLE}",
                ident(schema)
            ),
        };
        let mut conn = store.conn()?;
        migrate::migrate(&mut conn.client, schema)?;
        drop(conn);
        // The first transaction checks everything a transaction checks.
        store.read(|_| Ok(()))?;
        Ok(store)
    }

    /// The most connections the pool holds.
    pub fn pool_size(&self) -> usize {
        usize::try_from(self.pool.max_size()).unwrap_or(usize::MAX)
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema version the store's schema is at.
    ///
    /// # Errors
    /// A store error.
    pub fn schema_version(&self) -> Result<i64> {
        let mut conn = self.conn()?;
        let row = conn.client.query_one(
            &format!("SELECT version FROM {}.{SCHEMA_TABLE}", ident(&self.schema)),
            &[],
        )?;
        Ok(row.get(0))
    }

    /// A connection from the pool, alive as far as can be known cheaply.
    ///
    /// The pool does not test each connection it hands out: that is one
    /// more round trip per transaction. A connection used within the last
    /// [`IDLE_TEST_AFTER`] is taken as it is (a busy service's connections
    /// always are); one idle for longer is tested first (the server may
    /// have restarted, or ended the session, meanwhile), as HikariCP does,
    /// and a dead one is discarded and the next one taken. A connection
    /// that dies between the test and its use fails its transaction with
    /// [`Error::Postgres`] and is discarded: an error, never a decision.
    fn conn(&self) -> Result<Pooled> {
        for _ in 0..=self.pool.max_size() {
            let mut conn = self.pool.get()?;
            if conn.client.is_closed() {
                conn.broken = true;
                continue;
            }
            if conn.used.elapsed() >= IDLE_TEST_AFTER
                && conn.client.is_valid(IDLE_TEST_TIMEOUT).is_err()
            {
                conn.broken = true;
                continue;
            }
            return Ok(conn);
        }
        Err(PgError::config("no live connection to the server in the pool").into())
    }

    /// Runs `f` in one `REPEATABLE READ, READ ONLY` transaction: every
    /// query sees the same snapshot, as in a SQLite read transaction, and a
    /// read-only transaction never fails for a concurrent writer.
    ///
    /// # Errors
    /// What `f` returns, [`Error::SchemaTooNew`] if a newer wagate upgraded
    /// the schema since the store was opened, or a store error.
    pub fn read<T>(&self, f: impl FnOnce(&mut PgDb<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let Conn {
            client,
            statements,
            used,
            ..
        } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut db = PgDb {
            tx,
            statements,
            secret: None,
        };
        self.check(&mut db)?;
        let out = f(&mut db)?;
        db.tx.commit()?;
        *used = Instant::now();
        Ok(out)
    }

    /// Runs `f` in one `SERIALIZABLE` transaction and commits it if `f`
    /// returns `Ok` (rolls it back otherwise).
    ///
    /// Why `SERIALIZABLE`: the store's logic was written for SQLite, where
    /// one writer runs at a time (`BEGIN IMMEDIATE`): it reads (a chain
    /// head, a window, a key's earlier send) and writes what follows from
    /// it. Under `SERIALIZABLE`, writers from many machines run side by
    /// side but commit only as if they had run one at a time; one whose
    /// reads another changed fails with a serialization failure instead of
    /// writing from a stale read. `READ COMMITTED` would need a lock on
    /// every row read, in every query; a table lock would queue every
    /// writer of every machine behind one.
    ///
    /// The price is retries: a transaction that loses such a race (or a
    /// deadlock) is rolled back and `f` runs again, up to
    /// [`WRITE_ATTEMPTS`] times, after a short random pause. So `f` may
    /// run more than once: it must do nothing outside the transaction
    /// (no send, no message to another system) that a rerun would repeat.
    ///
    /// # Errors
    /// What `f` returns, [`Error::SchemaTooNew`] if a newer wagate upgraded
    /// the schema since the store was opened, or a store error (the last
    /// serialization failure after [`WRITE_ATTEMPTS`]).
    pub fn write<T>(&self, mut f: impl FnMut(&mut PgWriter<'_>) -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write_once(&mut f) {
                Err(e)
                    if attempt < WRITE_ATTEMPTS
                        && e.as_postgres().is_some_and(PgError::is_retryable) =>
                {
                    std::thread::sleep(backoff(attempt));
                }
                other => return other,
            }
        }
    }

    fn write_once<T>(&self, f: &mut impl FnMut(&mut PgWriter<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        let Conn {
            client,
            statements,
            used,
            ..
        } = &mut *conn;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()?;
        let mut w = PgWriter {
            db: PgDb {
                tx,
                statements,
                secret: None,
            },
        };
        self.check(&mut w.db)?;
        let out = f(&mut w)?;
        w.db.tx.commit()?;
        *used = Instant::now();
        Ok(out)
    }

    /// Fails closed when the connection is not as the store set it up: the
    /// schema version changed (a newer wagate upgraded it), the
    /// `search_path` is not the store's schema, or commits are not durable.
    /// One round trip (the statement is prepared once per connection).
    fn check(&self, db: &mut PgDb<'_>) -> Result<()> {
        let statement = prepared(&mut db.tx, db.statements, &self.check_sql)?;
        let row = db.tx.query_one(&statement, &[])?;
        let found: i64 = row.get(0);
        let current: Option<String> = row.get(1);
        let level: String = row.get(2);
        // Checked where it is used (PgQueries::secret): a missing or bad
        // secret fails the queries that need it, not every transaction.
        db.secret = row.try_get(3).ok().flatten();
        match found.cmp(&SCHEMA_VERSION) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Greater => {
                return Err(Error::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            std::cmp::Ordering::Less => {
                return Err(Error::Corrupt {
                    table: SCHEMA_TABLE,
                    detail: format!("schema version went back to {found}"),
                });
            }
        }
        if current.as_deref() != Some(self.schema.as_str()) {
            return Err(PgError::config(format!(
                "the connection's search_path points at {current:?}, not the store's schema {:?} (a pooler in transaction mode drops session settings)",
                self.schema
            ))
            .into());
        }
        if !durable(&level) {
            return Err(PgError::config(format!(
                "synchronous_commit is {level:?} on the store's connection: commits would not be durable"
            ))
            .into());
        }
        Ok(())
    }

    /// Drops the store's schema and everything in it (for tests, and for a
    /// scenario replay done with its schema). Only a wagate schema is
    /// dropped: the store checks that it still holds the `wagate_schema`
    /// table, in the same transaction.
    ///
    /// # Errors
    /// [`Error::Foreign`] if the schema is no longer wagate's, or a store
    /// error.
    pub fn drop_schema(self) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.client.transaction()?;
        let ours: bool = tx
            .query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                &[&self.schema, &SCHEMA_TABLE],
            )?
            .get(0);
        if !ours {
            return Err(Error::Foreign(format!(
                "schema {:?} has no {SCHEMA_TABLE} table: not dropped",
                self.schema
            )));
        }
        tx.batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&self.schema)))?;
        tx.commit()?;
        Ok(())
    }
}

/// A pause before retry `attempt` (from 1): 2, 4, 8 ... ms up to 128 ms,
/// with random jitter up to as much again, so two losers do not meet again.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64 << attempt.min(6);
    let mut b = [0u8; 2];
    let jitter = match getrandom::fill(&mut b) {
        Ok(()) => u64::from(u16::from_le_bytes(b)) % base.max(1),
        Err(_) => base / 2,
    };
    Duration::from_millis(base + jitter)
}

/// An open transaction of the store, for its queries: read-only in
/// [`PgStore::read`], read-write in [`PgStore::write`] (through
/// [`PgWriter::db`]), a savepoint in [`PgWriter::item`].
pub struct PgDb<'t> {
    tx: Transaction<'t>,
    statements: &'t mut Statements,
    /// The tombstone secret, read by [`PgStore::check`] with the schema
    /// version (no round trip of its own).
    secret: Option<Vec<u8>>,
}

impl<'t> PgDb<'t> {
    /// The transaction, to run queries on. Tables are named unqualified:
    /// the connection's `search_path` is the store's schema.
    pub fn tx(&mut self) -> &mut Transaction<'t> {
        &mut self.tx
    }

    /// The transaction and its connection's prepared statements.
    pub(crate) fn parts(&mut self) -> (&mut Transaction<'t>, &mut Statements, Option<Vec<u8>>) {
        (&mut self.tx, &mut *self.statements, self.secret.clone())
    }
}

/// An open write transaction.
pub struct PgWriter<'t> {
    db: PgDb<'t>,
}

impl<'t> PgWriter<'t> {
    /// The transaction's queries.
    pub fn db(&mut self) -> &mut PgDb<'t> {
        &mut self.db
    }

    /// Runs `f` in a savepoint: its writes stay if it returns `Ok` and are
    /// undone alone if it returns `Err`; the transaction goes on either way
    /// (in PostgreSQL a failed statement spoils the whole transaction
    /// unless a savepoint catches it).
    ///
    /// # Errors
    /// A store failure, which fails the whole transaction; the item's own
    /// error (bad input, a constraint it broke) is returned inside the `Ok`.
    pub fn item<T>(&mut self, f: impl FnOnce(&mut PgDb<'_>) -> Result<T>) -> Result<Result<T>> {
        let sp = self.db.tx.savepoint("item")?;
        let mut inner = PgDb {
            tx: sp,
            statements: &mut *self.db.statements,
            secret: self.db.secret.clone(),
        };
        match f(&mut inner) {
            Ok(v) => {
                inner.tx.commit()?;
                Ok(Ok(v))
            }
            Err(e) => {
                let undo = inner.tx.rollback();
                if e.is_store_failure() {
                    // Not the item's fault: the whole transaction fails.
                    return Err(e);
                }
                undo?;
                Ok(Err(e))
            }
        }
    }
}
