//! The SQLite store. All SQL of the crate lives in this module, so another
//! store (PostgreSQL, for services on several machines) can sit beside it.
//!
//! - Numbered migrations in `migrations/`, embedded at build time, tracked
//!   with `PRAGMA user_version`; a newer database is refused.
//! - WAL, `synchronous=FULL`, `foreign_keys=ON`, an explicit busy timeout.
//! - Write transactions are `BEGIN IMMEDIATE`; batches put each item in a
//!   savepoint, so a bad item rolls back alone.
//! - A value the code does not know in a row is [`Error::Corrupt`], never a
//!   guess.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::event::{DeliveryStatus, InboundMessage};
use crate::policy::{
    Action, Category, ConsentFact, Keyword, Reason, Scope, TemplateBody, TemplateFacts,
    TemplateStatus, Verdict, WindowFacts,
};
use crate::time::Timestamp;

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

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
}

impl Store {
    /// Opens (creating if needed) a database file and brings its schema up
    /// to date.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a database written by a newer wagate,
    /// [`Error::Corrupt`] for a SQLite file of another application, or a
    /// store error.
    pub fn open(path: &Path) -> Result<Self> {
        Self::init(Connection::open(path)?)
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
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let store = Store { conn };
        check_schema(&store.conn)?;
        Ok(store)
    }

    /// A private in-memory database.
    ///
    /// # Errors
    /// A store error.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "cache_size", CACHE_SIZE)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let mut store = Store { conn };
        store.migrate()?;
        // Only a database known to be ours is switched to WAL.
        let _mode: String = store
            .conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        Ok(store)
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

    /// Applies pending migrations, each in its own `BEGIN IMMEDIATE`
    /// transaction that re-reads the version, so two processes opening a
    /// new file at once do not both apply the same migration.
    fn migrate(&mut self) -> Result<()> {
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let app: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let foreign = |detail: String| Error::Corrupt {
                table: "database",
                detail,
            };
            if app != 0 && app != APPLICATION_ID {
                return Err(foreign(format!(
                    "application_id {app:#x}: not a wagate database"
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
                    return Err(foreign(
                        "the file holds another application's tables: not a wagate database".into(),
                    ));
                }
            }
            let Some(sql) = usize::try_from(found).ok().and_then(|i| MIGRATIONS.get(i)) else {
                return Ok(());
            };
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", found + 1)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.commit()?;
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits if it returns
    /// `Ok`, rolls back otherwise.
    ///
    /// # Errors
    /// What `f` returns, [`Error::SchemaTooNew`] if another process
    /// upgraded the database since it was opened, or a store error.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_schema(&tx)?;
        let mut w = Writer { tx };
        let out = f(&mut w)?;
        w.tx.commit()?;
        Ok(out)
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
pub struct Db<'a>(&'a Connection);

/// A consent event as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRow {
    /// Ingest order among the user's events, from 1.
    pub seq: i64,
    /// Opt in or out.
    pub action: Action,
    /// Scope.
    pub scope: Scope,
    /// Source time.
    pub at: Timestamp,
    /// Arrival time.
    pub received_at: Timestamp,
    /// min(at, received_at).
    pub effective: Timestamp,
    /// An opt-in keyword.
    pub conditional: bool,
    /// Where it came from.
    pub source: String,
    /// Proof.
    pub evidence: Option<String>,
}

/// A template as stored in the current view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTemplate {
    /// The policy's view.
    pub facts: TemplateFacts,
    /// Effective time of the definition.
    pub definition_at: Timestamp,
    /// Effective time of the status.
    pub status_at: Timestamp,
    /// Twilio ContentSid.
    pub twilio_content_sid: Option<String>,
    /// Meta template id.
    pub meta_template_id: Option<String>,
}

/// The state of a send in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendState {
    /// Decided against; never reached the transport.
    Denied,
    /// Handed to the transport; its answer is not recorded yet.
    Reserved,
    /// Accepted by the provider.
    Sent,
    /// Refused for good.
    Failed,
    /// Refused; a retry with the same key may try again.
    Retryable,
    /// A retry of a key that had reached the transport: nothing sent.
    Duplicate,
}

impl SendState {
    fn as_str(self) -> &'static str {
        match self {
            SendState::Denied => "denied",
            SendState::Reserved => "reserved",
            SendState::Sent => "sent",
            SendState::Failed => "failed",
            SendState::Retryable => "retryable",
            SendState::Duplicate => "duplicate",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "denied" => SendState::Denied,
            "reserved" => SendState::Reserved,
            "sent" => SendState::Sent,
            "failed" => SendState::Failed,
            "retryable" => SendState::Retryable,
            "duplicate" => SendState::Duplicate,
            _ => return Err(corrupt("sends", format!("unknown state {s:?}"))),
        })
    }
}

/// A send attempt to record.
#[derive(Clone, Debug)]
pub struct NewSend<'a> {
    /// Idempotency key.
    pub key: &'a str,
    /// Sender as given (may be invalid).
    pub sender: &'a str,
    /// Recipient as given (may be invalid).
    pub recipient: &'a str,
    /// The user row, when the recipient is valid.
    pub user_id: Option<i64>,
    /// Send time.
    pub at: Timestamp,
    /// Template name and language, for templates.
    pub template: Option<(&'a str, &'a str)>,
    /// Purpose.
    pub purpose: Option<&'a str>,
    /// The decision (for a duplicate: the first send's).
    pub reason: Reason,
    /// A retry of a key that already reached the transport: recorded for
    /// the audit, sends nothing.
    pub duplicate: bool,
}

/// A send as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRow {
    /// Row id.
    pub id: i64,
    /// The idempotency key.
    pub key: String,
    /// Sender.
    pub sender: String,
    /// The user row.
    pub user_id: Option<i64>,
    /// Send time.
    pub at: Timestamp,
    /// Template name and language.
    pub template: Option<(String, String)>,
    /// The decision's reason.
    pub reason: Reason,
    /// State.
    pub state: SendState,
    /// Provider message id.
    pub provider_id: Option<String>,
    /// Delivery status.
    pub status: Option<String>,
}

fn corrupt(table: &'static str, detail: String) -> Error {
    Error::Corrupt { table, detail }
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

impl Db<'_> {
    /// The id of a business, created when `create` is set.
    ///
    /// # Errors
    /// A store error.
    pub fn business_id(self, name: &str, create: bool) -> Result<Option<i64>> {
        let found = self
            .0
            .prepare_cached("SELECT id FROM businesses WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        if found.is_some() || !create {
            return Ok(found);
        }
        self.0
            .prepare_cached("INSERT INTO businesses (name) VALUES (?1)")?
            .execute([name])?;
        Ok(Some(self.0.last_insert_rowid()))
    }

    /// Adds a user to a business; returns its id.
    ///
    /// # Errors
    /// A store error (a constraint error if the user exists).
    pub fn insert_user(self, business: i64, key: &str) -> Result<i64> {
        self.0
            .prepare_cached("INSERT INTO users (business_id, key) VALUES (?1, ?2)")?
            .execute(params![business, key])?;
        Ok(self.0.last_insert_rowid())
    }

    /// The id of a user of a business, created when `create` is set.
    ///
    /// # Errors
    /// A store error.
    pub fn user_id(self, business: i64, key: &str, create: bool) -> Result<Option<i64>> {
        let found = self
            .0
            .prepare_cached("SELECT id FROM users WHERE business_id = ?1 AND key = ?2")?
            .query_row(params![business, key], |r| r.get(0))
            .optional()?;
        if found.is_some() || !create {
            return Ok(found);
        }
        self.insert_user(business, key).map(Some)
    }

    /// Records an inbound message by its provider id. Returns `false`,
    /// writing nothing, when a message with the same id is already stored.
    /// A message without an id cannot be deduplicated: it is not stored and
    /// counts as new.
    ///
    /// # Errors
    /// A store error.
    pub fn insert_inbound(
        self,
        business: i64,
        user: i64,
        msg: &InboundMessage,
        received_at: Timestamp,
        keyword: Option<Keyword>,
    ) -> Result<bool> {
        let Some(id) = &msg.id else {
            return Ok(true);
        };
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at,
                     received_at, keyword, referral)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (business_id, provider_id) DO NOTHING",
            )?
            .execute(params![
                business,
                id,
                user,
                msg.to.as_str(),
                msg.kind.as_str(),
                msg.at.as_millis(),
                received_at.as_millis(),
                keyword.map(keyword_str),
                msg.referral.map(|r| r.as_str()),
            ])?;
        Ok(n == 1)
    }

    /// Whether an inbound message with this provider id is stored.
    ///
    /// # Errors
    /// A store error.
    pub fn inbound_exists(self, business: i64, provider_id: &str) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT 1 FROM inbound_messages WHERE business_id = ?1 AND provider_id = ?2",
            )?
            .query_row(params![business, provider_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Raises the window columns of (business, user, sender) to at least the
    /// given values; `None` leaves a column as it is. Never lowers one.
    ///
    /// # Errors
    /// A store error.
    pub fn raise_window(
        self,
        business: i64,
        user: i64,
        sender: &str,
        last_inbound: Option<Timestamp>,
        closed_through: Option<Timestamp>,
        referral_at: Option<Timestamp>,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO windows (business_id, user_id, sender, last_inbound, closed_through, referral_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (business_id, user_id, sender) DO UPDATE SET
                     last_inbound = max(coalesce(last_inbound, excluded.last_inbound), coalesce(excluded.last_inbound, last_inbound)),
                     closed_through = max(coalesce(closed_through, excluded.closed_through), coalesce(excluded.closed_through, closed_through)),
                     referral_at = max(coalesce(referral_at, excluded.referral_at), coalesce(excluded.referral_at, referral_at))",
            )?
            .execute(params![
                business,
                user,
                sender,
                last_inbound.map(Timestamp::as_millis),
                closed_through.map(Timestamp::as_millis),
                referral_at.map(Timestamp::as_millis),
            ])?;
        Ok(())
    }

    /// Appends a consent event.
    ///
    /// # Errors
    /// A store error.
    #[allow(clippy::too_many_arguments)]
    pub fn add_consent(
        self,
        business: i64,
        user: i64,
        action: Action,
        scope: Scope,
        at: Timestamp,
        received_at: Timestamp,
        conditional: bool,
        source: &str,
        evidence: Option<&str>,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
                     effective, conditional, source, evidence)
                 VALUES (?1, ?2,
                     (SELECT coalesce(max(seq), 0) + 1 FROM consent_events WHERE business_id = ?1 AND user_id = ?2),
                     ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                business,
                user,
                action.as_str(),
                scope.as_str(),
                at.as_millis(),
                received_at.as_millis(),
                crate::time::effective(at, received_at).as_millis(),
                conditional,
                source,
                evidence,
            ])?;
        Ok(())
    }

    /// The consent events of a user, as the fold reads them.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unknown action or scope, or a store error.
    pub fn consent_facts(self, business: i64, user: i64) -> Result<Vec<ConsentFact>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT action, scope, effective, conditional FROM consent_events
             WHERE business_id = ?1 AND user_id = ?2",
        )?;
        let mut rows = stmt.query([business, user])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(ConsentFact {
                action: parse_action(r.get_ref(0)?.as_str()?)?,
                scope: parse_scope(r.get_ref(1)?.as_str()?)?,
                effective: Timestamp::from_millis(r.get(2)?),
                conditional: r.get(3)?,
            });
        }
        Ok(out)
    }

    /// The full consent history of a user, oldest first (by effective time,
    /// then ingest order).
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an unknown action or scope, or a store error.
    pub fn consent_history(self, business: i64, user: i64) -> Result<Vec<ConsentRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT seq, action, scope, at, received_at, effective, conditional, source, evidence
             FROM consent_events WHERE business_id = ?1 AND user_id = ?2 ORDER BY effective, seq",
        )?;
        let mut rows = stmt.query([business, user])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(consent_row(r)?);
        }
        Ok(out)
    }

    /// The window facts of (business, user, sender), with the first
    /// business reply after the latest referral.
    ///
    /// # Errors
    /// A store error.
    pub fn window(self, business: i64, user: i64, sender: &str) -> Result<WindowFacts> {
        let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = self
            .0
            .prepare_cached(
                "SELECT last_inbound, closed_through, referral_at FROM windows
                 WHERE business_id = ?1 AND user_id = ?2 AND sender = ?3",
            )?
            .query_row(params![business, user, sender], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        let Some((last, closed, referral)) = row else {
            return Ok(WindowFacts::default());
        };
        let first_reply = match referral {
            None => None,
            Some(r) => self
                .0
                .prepare_cached(
                    "SELECT min(at) FROM sends
                     WHERE user_id = ?1 AND at >= ?2 AND at < ?3 AND sender = ?4
                       AND state IN ('reserved', 'sent')",
                )?
                .query_row(
                    params![user, r, r.saturating_add(crate::policy::WINDOW_MS), sender],
                    |r| r.get(0),
                )?,
        };
        Ok(WindowFacts {
            last_inbound: ts(last),
            closed_through: ts(closed),
            referral_at: ts(referral),
            first_reply_after_referral: ts(first_reply),
        })
    }

    /// The latest send time of an opt-out confirmation that went to the
    /// transport for this user.
    ///
    /// # Errors
    /// A store error.
    pub fn last_confirmation(self, user: i64) -> Result<Option<Timestamp>> {
        let v: Option<i64> = self
            .0
            .prepare_cached(
                "SELECT max(at) FROM sends
                 WHERE user_id = ?1 AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
            )?
            .query_row([user], |r| r.get(0))?;
        Ok(ts(v))
    }

    /// Every window of a user, per sender: (sender, facts).
    ///
    /// # Errors
    /// A store error.
    pub fn windows_of(self, business: i64, user: i64) -> Result<Vec<(String, WindowFacts)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT sender FROM windows WHERE business_id = ?1 AND user_id = ?2 ORDER BY sender",
        )?;
        let senders = stmt
            .query_map(params![business, user], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        senders
            .into_iter()
            .map(|s| {
                let w = self.window(business, user, &s)?;
                Ok((s, w))
            })
            .collect()
    }

    /// The current view of a template.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a row the code cannot read, or a store error.
    pub fn template(
        self,
        business: i64,
        name: &str,
        language: &str,
    ) -> Result<Option<StoredTemplate>> {
        type Row = (
            String,
            String,
            i64,
            String,
            i64,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self
            .0
            .prepare_cached(
                "SELECT category, body, definition_at, status, status_at, twilio_content_sid, meta_template_id
                 FROM templates WHERE business_id = ?1 AND name = ?2 AND language = ?3",
            )?
            .query_row(params![business, name, language], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })
            .optional()?;
        let Some((category, body, def_at, status, status_at, sid, meta)) = row else {
            return Ok(None);
        };
        let bad = |e: crate::policy::TemplateError| {
            corrupt("templates", format!("{name}/{language}: {e}"))
        };
        Ok(Some(StoredTemplate {
            facts: TemplateFacts {
                category: Category::parse(&category).map_err(bad)?,
                status: TemplateStatus::parse(&status).map_err(bad)?,
                body: TemplateBody::parse(&body).map_err(bad)?,
            },
            definition_at: Timestamp::from_millis(def_at),
            status_at: Timestamp::from_millis(status_at),
            twilio_content_sid: sid,
            meta_template_id: meta,
        }))
    }

    /// Stores a template record: appends it to the history, and updates the
    /// current view where it is the newest (ties: this one, ingested last).
    ///
    /// # Errors
    /// A store error.
    #[allow(clippy::too_many_arguments)]
    pub fn put_template(
        self,
        business: i64,
        name: &str,
        language: &str,
        category: Category,
        body: &str,
        status: &TemplateStatus,
        at: Timestamp,
        received_at: Timestamp,
        twilio_content_sid: Option<&str>,
        meta_template_id: Option<&str>,
    ) -> Result<()> {
        let eff = crate::time::effective(at, received_at).as_millis();
        self.template_event(
            business,
            name,
            language,
            Some((category, body)),
            status,
            at,
            received_at,
            "record",
            (twilio_content_sid, meta_template_id),
        )?;
        self.0
            .prepare_cached(
                "INSERT INTO templates (business_id, name, language, category, body, definition_at,
                     status, status_at, twilio_content_sid, meta_template_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9)
                 ON CONFLICT (business_id, name, language) DO UPDATE SET
                     category = iif(excluded.definition_at >= definition_at, excluded.category, category),
                     body = iif(excluded.definition_at >= definition_at, excluded.body, body),
                     twilio_content_sid = iif(excluded.definition_at >= definition_at,
                         coalesce(excluded.twilio_content_sid, twilio_content_sid), twilio_content_sid),
                     meta_template_id = iif(excluded.definition_at >= definition_at,
                         coalesce(excluded.meta_template_id, meta_template_id), meta_template_id),
                     definition_at = max(definition_at, excluded.definition_at),
                     status = iif(excluded.status_at >= status_at, excluded.status, status),
                     status_at = max(status_at, excluded.status_at)",
            )?
            .execute(params![
                business,
                name,
                language,
                category.as_str(),
                body,
                eff,
                status.as_str(),
                twilio_content_sid,
                meta_template_id,
            ])?;
        Ok(())
    }

    /// Changes the status of a registered template where the change is the
    /// newest (R5); `source` says where it came from.
    ///
    /// # Errors
    /// [`Error::UnknownTemplate`] when it was never registered, or a store
    /// error.
    #[allow(clippy::too_many_arguments)]
    pub fn set_template_status(
        self,
        business: i64,
        name: &str,
        language: &str,
        status: &TemplateStatus,
        at: Timestamp,
        received_at: Timestamp,
        source: &str,
    ) -> Result<()> {
        let eff = crate::time::effective(at, received_at).as_millis();
        let n = self
            .0
            .prepare_cached(
                "UPDATE templates SET
                     status = iif(?4 >= status_at, ?5, status),
                     status_at = max(status_at, ?4)
                 WHERE business_id = ?1 AND name = ?2 AND language = ?3",
            )?
            .execute(params![business, name, language, eff, status.as_str()])?;
        if n == 0 {
            return Err(Error::UnknownTemplate {
                name: name.to_owned(),
                language: language.to_owned(),
            });
        }
        self.template_event(
            business,
            name,
            language,
            None,
            status,
            at,
            received_at,
            source,
            (None, None),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn template_event(
        self,
        business: i64,
        name: &str,
        language: &str,
        definition: Option<(Category, &str)>,
        status: &TemplateStatus,
        at: Timestamp,
        received_at: Timestamp,
        source: &str,
        ids: (Option<&str>, Option<&str>),
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO template_events (business_id, name, language, category, body, status, at,
                     received_at, effective, source, twilio_content_sid, meta_template_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                business,
                name,
                language,
                definition.map(|(c, _)| c.as_str()),
                definition.map(|(_, b)| b),
                status.as_str(),
                at.as_millis(),
                received_at.as_millis(),
                crate::time::effective(at, received_at).as_millis(),
                source,
                ids.0,
                ids.1,
            ])?;
        Ok(())
    }

    /// The send that holds an idempotency key (one that reached or is
    /// reaching the transport), if any.
    ///
    /// # Errors
    /// A store error, or [`Error::Corrupt`].
    pub fn send_by_key(self, business: i64, key: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = ?1 AND idempotency_key = ?2 AND state IN ('reserved', 'sent', 'failed')",
            params![business, key],
        )
    }

    /// The send a provider message id belongs to, if any.
    ///
    /// # Errors
    /// A store error, or [`Error::Corrupt`].
    pub fn send_by_provider_id(self, business: i64, provider_id: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = ?1 AND provider_id = ?2",
            params![business, provider_id],
        )
    }

    /// A send by its row id.
    ///
    /// # Errors
    /// A store error, or [`Error::Corrupt`].
    pub fn send_by_id(self, id: i64) -> Result<Option<SendRow>> {
        self.send_where("id = ?1", params![id])
    }

    fn send_where(self, filter: &str, args: impl rusqlite::Params) -> Result<Option<SendRow>> {
        type Row = (
            i64,
            String,
            Option<i64>,
            i64,
            Option<String>,
            Option<String>,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
        );
        let sql = format!(
            "SELECT id, sender, user_id, at, template_name, template_language, reason, state, provider_id, status,
                    idempotency_key
             FROM sends WHERE {filter}"
        );
        let row: Option<Row> = self
            .0
            .prepare_cached(&sql)?
            .query_row(args, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .optional()?;
        let Some((id, sender, user_id, at, tname, tlang, reason, state, provider_id, status, key)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(SendRow {
            id,
            key,
            sender,
            user_id,
            at: Timestamp::from_millis(at),
            template: tname.zip(tlang),
            reason: Reason::parse(&reason)
                .ok_or_else(|| corrupt("sends", format!("unknown reason {reason:?}")))?,
            state: SendState::parse(&state)?,
            provider_id,
            status,
        }))
    }

    /// Records a send attempt and its decision; an allowed one is stored as
    /// reserved, holding its idempotency key.
    ///
    /// # Errors
    /// A store error (a second reservation of the same key is a constraint
    /// error).
    pub fn insert_send(self, business: i64, s: &NewSend<'_>) -> Result<i64> {
        let verdict = s.reason.verdict();
        let state = if s.duplicate {
            SendState::Duplicate
        } else if verdict == Verdict::Allow {
            SendState::Reserved
        } else {
            SendState::Denied
        };
        self.0
            .prepare_cached(
                "INSERT INTO sends (business_id, idempotency_key, sender, recipient, user_id, at, content,
                     template_name, template_language, purpose, verdict, reason, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                business,
                s.key,
                s.sender,
                s.recipient,
                s.user_id,
                s.at.as_millis(),
                if s.template.is_some() { "template" } else { "freeform" },
                s.template.map(|t| t.0),
                s.template.map(|t| t.1),
                s.purpose,
                verdict.as_str(),
                s.reason.as_str(),
                state.as_str(),
            ])?;
        Ok(self.0.last_insert_rowid())
    }

    /// Records the transport's answer for a reserved send.
    ///
    /// # Errors
    /// A store error.
    pub fn finish_send(
        self,
        id: i64,
        state: SendState,
        provider_id: Option<&str>,
        error_code: Option<u32>,
        error: Option<&str>,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE sends SET state = ?2, provider_id = ?3, error_code = ?4, error = ?5 WHERE id = ?1",
            )?
            .execute(params![id, state.as_str(), provider_id, error_code, error])?;
        Ok(())
    }

    /// Moves a send's delivery status forward; returns whether it moved.
    ///
    /// # Errors
    /// A store error.
    pub fn advance_status(self, id: i64, status: DeliveryStatus) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE sends SET status = ?2, status_rank = ?3
                 WHERE id = ?1 AND (status_rank IS NULL OR status_rank < ?3)",
            )?
            .execute(params![id, status.as_str(), status.rank()])?;
        Ok(n == 1)
    }

    /// Marks a provider error code of a send as applied; returns `false`
    /// when it already was (each (message, code) takes effect once).
    ///
    /// # Errors
    /// A store error.
    pub fn mark_feedback(self, business: i64, send: i64, code: u32, at: Timestamp) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO feedback (business_id, send_id, code, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![business, send, code, at.as_millis()])?;
        Ok(n == 1)
    }
}

/// Counts over one business, for `wagate stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Users with any consent event or inbound message.
    pub users: u64,
    /// Users whose general state is opted in.
    pub opted_in: u64,
    /// Users whose general state is opted out.
    pub opted_out: u64,
    /// (sender, user) windows open at the time asked.
    pub open_windows: u64,
    /// Consent events in the audit trail.
    pub consent_events: u64,
    /// Inbound messages stored.
    pub inbound_messages: u64,
    /// Send attempts recorded.
    pub send_attempts: u64,
    /// Registered templates.
    pub templates: u64,
}

/// A template row with its names, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRow {
    /// Name.
    pub name: String,
    /// Language.
    pub language: String,
    /// The current view.
    pub template: StoredTemplate,
}

impl Db<'_> {
    /// Calls `f` with every consent event of a business received at or
    /// after `since` (all when `None`), with the user's key, user by user in
    /// ingest order. Streams: memory does not grow with the number of events.
    ///
    /// # Errors
    /// What `f` returns, [`Error::Corrupt`], or a store error.
    pub fn for_each_consent(
        self,
        business: i64,
        since: Option<Timestamp>,
        mut f: impl FnMut(&str, &ConsentRow) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.0.prepare_cached(
            "SELECT c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional,
                    c.source, c.evidence, u.key
             FROM consent_events c JOIN users u ON u.id = c.user_id
             WHERE c.business_id = ?1 AND c.received_at >= ?2 ORDER BY c.user_id, c.seq",
        )?;
        let mut rows = stmt.query(params![
            business,
            since.map_or(i64::MIN, Timestamp::as_millis)
        ])?;
        while let Some(r) = rows.next()? {
            f(r.get_ref(9)?.as_str()?, &consent_row(r)?)?;
        }
        Ok(())
    }

    /// Counts for one business; windows are counted open at `now` with the
    /// given margin.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or a store error.
    pub fn stats(self, business: i64, now: Timestamp, margin_ms: i64) -> Result<Stats> {
        let count = |sql: &str| -> Result<u64> {
            let n: i64 = self
                .0
                .prepare_cached(sql)?
                .query_row([business], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let mut stats = Stats {
            users: count("SELECT count(*) FROM users WHERE business_id = ?1")?,
            consent_events: count("SELECT count(*) FROM consent_events WHERE business_id = ?1")?,
            inbound_messages: count(
                "SELECT count(*) FROM inbound_messages WHERE business_id = ?1",
            )?,
            send_attempts: count("SELECT count(*) FROM sends WHERE business_id = ?1")?,
            templates: count("SELECT count(*) FROM templates WHERE business_id = ?1")?,
            ..Stats::default()
        };
        let open: i64 = self
            .0
            .prepare_cached(
                "SELECT count(*) FROM windows WHERE business_id = ?1 AND last_inbound > ?2
                   AND (closed_through IS NULL OR closed_through < last_inbound)",
            )?
            .query_row(
                params![
                    business,
                    now.as_millis()
                        .saturating_sub(crate::policy::WINDOW_MS)
                        .saturating_add(margin_ms.clamp(0, crate::policy::WINDOW_MS))
                ],
                |r| r.get(0),
            )?;
        stats.open_windows = u64::try_from(open).unwrap_or(0);
        // Fold each user's events, one user at a time.
        let mut stmt = self.0.prepare_cached(
            "SELECT user_id, action, scope, effective, conditional FROM consent_events
             WHERE business_id = ?1 ORDER BY user_id",
        )?;
        let mut rows = stmt.query([business])?;
        let mut current: Option<i64> = None;
        let mut facts: Vec<ConsentFact> = Vec::new();
        let tally =
            |facts: &[ConsentFact], stats: &mut Stats| match crate::policy::fold(facts).general {
                crate::policy::ConsentState::OptedIn => stats.opted_in += 1,
                crate::policy::ConsentState::OptedOut => stats.opted_out += 1,
                crate::policy::ConsentState::Unknown => {}
            };
        while let Some(r) = rows.next()? {
            let user: i64 = r.get(0)?;
            if current.is_some_and(|c| c != user) {
                tally(&facts, &mut stats);
                facts.clear();
            }
            current = Some(user);
            facts.push(ConsentFact {
                action: parse_action(r.get_ref(1)?.as_str()?)?,
                scope: parse_scope(r.get_ref(2)?.as_str()?)?,
                effective: Timestamp::from_millis(r.get(3)?),
                conditional: r.get(4)?,
            });
        }
        if current.is_some() {
            tally(&facts, &mut stats);
        }
        Ok(stats)
    }

    /// Every template of a business, by name and language.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or a store error.
    pub fn templates(self, business: i64) -> Result<Vec<TemplateRow>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT name, language FROM templates WHERE business_id = ?1 ORDER BY name, language",
        )?;
        let keys = stmt
            .query_map([business], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(keys.len());
        for (name, language) in keys {
            if let Some(template) = self.template(business, &name, &language)? {
                out.push(TemplateRow {
                    name,
                    language,
                    template,
                });
            }
        }
        Ok(out)
    }
}

fn keyword_str(k: Keyword) -> &'static str {
    match k {
        Keyword::OptOut => "opt_out",
        Keyword::OptIn => "opt_in",
        Keyword::Help => "help",
    }
}

/// A consent row from the columns `seq, action, scope, at, received_at,
/// effective, conditional, source, evidence`, in that order.
fn consent_row(r: &rusqlite::Row<'_>) -> Result<ConsentRow> {
    Ok(ConsentRow {
        seq: r.get(0)?,
        action: parse_action(r.get_ref(1)?.as_str()?)?,
        scope: parse_scope(r.get_ref(2)?.as_str()?)?,
        at: Timestamp::from_millis(r.get(3)?),
        received_at: Timestamp::from_millis(r.get(4)?),
        effective: Timestamp::from_millis(r.get(5)?),
        conditional: r.get(6)?,
        source: r.get(7)?,
        evidence: r.get(8)?,
    })
}

fn parse_action(s: &str) -> Result<Action> {
    s.parse()
        .map_err(|e| corrupt("consent_events", format!("{e}")))
}

fn parse_scope(s: &str) -> Result<Scope> {
    s.parse()
        .map_err(|e| corrupt("consent_events", format!("{e}")))
}

impl From<rusqlite::types::FromSqlError> for Error {
    fn from(e: rusqlite::types::FromSqlError) -> Self {
        Error::from(rusqlite::Error::from(e))
    }
}
