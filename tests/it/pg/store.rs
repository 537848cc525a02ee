//! The PostgreSQL store's foundation on a real server: migrations under
//! concurrency, refusals of a newer or foreign schema, the append-only
//! guards and the CHECK constraints (each compared with SQLite's), the
//! transactions.

use std::sync::{Arc, Barrier};

use postgres::{Client, NoTls};
use wagate::Error;
use wagate::store::Store;
use wagate::store::postgres::{DEFAULT_SCHEMA, PgOptions, PgStore, SCHEMA_TABLE, SCHEMA_VERSION};

use super::{FreshStore, fresh_schema, fresh_store, url};

/// A plain client on the test server (search_path as the server's).
fn raw() -> Client {
    Client::connect(&url(), NoTls).unwrap()
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

fn schema_exists(c: &mut Client, schema: &str) -> bool {
    c.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        &[&schema],
    )
    .unwrap()
    .get(0)
}

/// Four stores opening the same brand-new schema at the same instant (own
/// pools: as four processes would) end at the same version, with one
/// version row and one secret: each migration and its step in code ran
/// once. Several rounds, each on a new schema, to meet the race often:
/// on creating the schema, and (a schema made empty beforehand) on
/// creating the version table.
#[test]
fn concurrent_opens_of_a_new_schema_migrate_once() {
    let url = url();
    for round in 0..6 {
        let schema = fresh_schema();
        if round % 2 == 1 {
            raw()
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .unwrap();
        }
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (url, schema, barrier) = (url.clone(), schema.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let store = PgStore::open(&url, &schema)?;
                    store.schema_version()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().unwrap(), SCHEMA_VERSION);
        }
        let mut c = raw();
        assert_eq!(
            count(
                &mut c,
                &format!("SELECT count(*) FROM {schema}.{SCHEMA_TABLE}")
            ),
            1
        );
        assert_eq!(
            count(&mut c, &format!("SELECT count(*) FROM {schema}.secrets")),
            1
        );
        assert_eq!(
            count(
                &mut c,
                &format!("SELECT octet_length(value)::bigint FROM {schema}.secrets")
            ),
            32
        );
        PgStore::open(&url, &schema).unwrap().drop_schema().unwrap();
        assert!(!schema_exists(&mut c, &schema));
    }
}

/// Opening an up-to-date schema again changes nothing (the secret stays).
#[test]
fn reopening_keeps_the_schema() {
    let schema = fresh_schema();
    let first = PgStore::open(&url(), &schema).unwrap();
    let secret = |s: &PgStore| -> Vec<u8> {
        s.read(|db| Ok(db.tx().query_one("SELECT value FROM secrets", &[])?.get(0)))
            .unwrap()
    };
    let before = secret(&first);
    let again = PgStore::open(&url(), &schema).unwrap();
    assert_eq!(secret(&again), before);
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
    again.drop_schema().unwrap();
}

/// A schema a newer wagate wrote is refused, on opening and by a store
/// already open (every transaction checks).
#[test]
fn a_newer_schema_is_refused() {
    let schema = fresh_schema();
    let store = PgStore::open(&url(), &schema).unwrap();
    raw()
        .batch_execute(&format!(
            "UPDATE {schema}.{SCHEMA_TABLE} SET version = {}",
            SCHEMA_VERSION + 1
        ))
        .unwrap();
    let too_new = |r: Result<(), Error>| match r {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    };
    too_new(store.read(|_| Ok(())));
    too_new(store.write(|_| Ok(())));
    too_new(PgStore::open(&url(), &schema).map(drop));
    let e = PgStore::open(&url(), &schema).unwrap_err();
    assert!(e.is_store_failure());
    assert!(e.to_string().contains("upgrade wagate"), "{e}");
    // Nothing was changed by the refusals.
    let mut c = raw();
    assert_eq!(
        count(
            &mut c,
            &format!("SELECT version FROM {schema}.{SCHEMA_TABLE}")
        ),
        SCHEMA_VERSION + 1
    );
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// A schema holding another application's tables (and no wagate_schema
/// table) is refused and left as it was; an empty schema made beforehand
/// (by a DBA) is taken.
#[test]
fn a_foreign_schema_is_refused() {
    let mut c = raw();
    let foreign = fresh_schema();
    c.batch_execute(&format!(
        "CREATE SCHEMA {foreign};
         CREATE TABLE {foreign}.orders (id BIGINT PRIMARY KEY);
         INSERT INTO {foreign}.orders VALUES (7);"
    ))
    .unwrap();
    match PgStore::open(&url(), &foreign) {
        Err(Error::Foreign(why)) => assert!(why.contains(SCHEMA_TABLE), "{why}"),
        other => panic!("expected Foreign, got {other:?}"),
    }
    assert_eq!(
        count(
            &mut c,
            &format!(
                "SELECT count(*) FROM pg_tables WHERE schemaname = '{foreign}' AND tablename <> 'orders'"
            )
        ),
        0,
        "nothing was created beside the foreign table"
    );
    assert_eq!(
        count(&mut c, &format!("SELECT id FROM {foreign}.orders")),
        7
    );

    // A schema with only a function is someone's too.
    let with_function = fresh_schema();
    c.batch_execute(&format!(
        "CREATE SCHEMA {with_function};
         CREATE FUNCTION {with_function}.f() RETURNS int LANGUAGE sql AS 'SELECT 1';"
    ))
    .unwrap();
    assert!(matches!(
        PgStore::open(&url(), &with_function),
        Err(Error::Foreign(_))
    ));

    let empty = fresh_schema();
    c.batch_execute(&format!("CREATE SCHEMA {empty}")).unwrap();
    let store = PgStore::open(&url(), &empty).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.drop_schema().unwrap();
    c.batch_execute(&format!(
        "DROP SCHEMA {foreign} CASCADE; DROP SCHEMA {with_function} CASCADE"
    ))
    .unwrap();
}

/// A schema that claims version 0 but already holds the tables of version
/// 1 is a mismatch, named with its versions.
#[test]
fn a_schema_whose_tables_are_not_its_version_is_a_mismatch() {
    let schema = fresh_schema();
    PgStore::open(&url(), &schema).unwrap();
    raw()
        .batch_execute(&format!("UPDATE {schema}.{SCHEMA_TABLE} SET version = 0"))
        .unwrap();
    match PgStore::open(&url(), &schema) {
        Err(Error::SchemaMismatch {
            found, supported, ..
        }) => assert_eq!((found, supported), (0, SCHEMA_VERSION)),
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    raw()
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// Bad settings are refused before anything is done; no server is a store
/// failure.
#[test]
fn bad_settings_are_refused() {
    for bad in [
        "",
        "Upper",
        "9lives",
        "pg_toast",
        "a-b",
        "a\"b",
        &"x".repeat(64),
    ] {
        let e = PgStore::open(&url(), bad).unwrap_err();
        assert!(e.to_string().contains("invalid schema name"), "{bad}: {e}");
    }
    assert!(matches!(
        PgStore::open("not a url ://", "x"),
        Err(Error::Postgres(_))
    ));
    let mut options = PgOptions::default();
    options.connect_timeout = std::time::Duration::from_secs(2);
    let dir = std::env::temp_dir().join(format!("wagate-no-server-{}", std::process::id()));
    let e = PgStore::open_with(
        &format!("host={} port=1 user=postgres", dir.display()),
        DEFAULT_SCHEMA,
        &options,
    )
    .unwrap_err();
    assert!(e.is_store_failure(), "{e}");
}

/// Every store connection commits durably, even when the server or the
/// URL says otherwise.
#[test]
fn commits_are_durable_whatever_the_session_default() {
    let schema = fresh_schema();
    let base = url();
    let lax = if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20synchronous_commit%3Doff")
    } else {
        format!("{base} options='-c synchronous_commit=off'")
    };
    let mut c = Client::connect(&lax, NoTls).unwrap();
    let level: String = c.query_one("SHOW synchronous_commit", &[]).unwrap().get(0);
    assert_eq!(level, "off", "the URL's option reaches the server");
    let store = PgStore::open(&lax, &schema).unwrap();
    for _ in 0..3 {
        let level: String = store
            .write(|w| {
                Ok(w.db()
                    .tx()
                    .query_one("SHOW synchronous_commit", &[])?
                    .get(0))
            })
            .unwrap();
        assert_eq!(level, "on");
    }
    store.drop_schema().unwrap();
}

/// A connection whose session a closure changed behind the store's back
/// (commits made lax, another search_path) is refused by the next
/// transaction on it, never used silently.
#[test]
fn a_changed_session_is_refused() {
    let mut one = PgOptions::default();
    one.pool_size = 1;
    for (change, named) in [
        ("SET synchronous_commit TO off", "synchronous_commit"),
        ("SET search_path TO public", "search_path"),
    ] {
        let store = PgStore::open_with(&url(), &fresh_schema(), &one).unwrap();
        store
            .read(|db| {
                db.tx().batch_execute(change)?;
                Ok(())
            })
            .unwrap();
        // One connection in the pool: the next transaction gets it back.
        let e = store.write(|_| Ok(())).unwrap_err();
        assert!(e.to_string().contains(named), "{change}: {e}");
        assert!(e.is_store_failure());
        let e = store.read(|_| Ok(())).unwrap_err();
        assert!(e.to_string().contains(named), "{change}: {e}");
        store.drop_schema().unwrap();
    }
}

/// The store's tables live in its schema only: two schemas on one
/// database see nothing of each other, and nothing lands in `public`.
#[test]
fn each_store_keeps_to_its_schema() {
    let (a, b) = (fresh_schema(), fresh_schema());
    let sa = PgStore::open(&url(), &a).unwrap();
    let sb = PgStore::open(&url(), &b).unwrap();
    sa.write(|w| {
        w.db()
            .tx()
            .execute("INSERT INTO businesses (name) VALUES ('acme')", &[])?;
        Ok(())
    })
    .unwrap();
    let n = |s: &PgStore| -> i64 {
        s.read(|db| {
            Ok(db
                .tx()
                .query_one("SELECT count(*) FROM businesses", &[])?
                .get(0))
        })
        .unwrap()
    };
    assert_eq!((n(&sa), n(&sb)), (1, 0));
    let mut c = raw();
    for table in ["businesses", "consent_events", SCHEMA_TABLE] {
        assert_eq!(
            count(
                &mut c,
                &format!(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '{table}'"
                )
            ),
            0
        );
    }
    sa.drop_schema().unwrap();
    sb.drop_schema().unwrap();
}

/// `drop_schema` drops only a wagate schema.
#[test]
fn drop_schema_drops_only_wagate_schemas() {
    let schema = fresh_schema();
    let store = PgStore::open(&url(), &schema).unwrap();
    let mut c = raw();
    c.batch_execute(&format!("DROP TABLE {schema}.{SCHEMA_TABLE}"))
        .unwrap();
    assert!(matches!(store.drop_schema(), Err(Error::Foreign(_))));
    assert!(schema_exists(&mut c, &schema));
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// A statement broken inside an item is undone alone (a savepoint) and is
/// the item's fault; the rest of the transaction commits.
#[test]
fn a_refused_item_fails_alone() {
    let store = fresh_store();
    let results = store
        .write(|w| {
            let a = w.item(|db| {
                db.tx()
                    .execute("INSERT INTO businesses (name) VALUES ('one')", &[])?;
                Ok(())
            })?;
            let b = w.item(|db| {
                db.tx()
                    .execute("INSERT INTO businesses (name) VALUES ('')", &[])?;
                Ok(())
            })?;
            let c = w.item(|db| {
                db.tx()
                    .execute("INSERT INTO businesses (name) VALUES ('two')", &[])?;
                Ok(())
            })?;
            Ok((a, b, c))
        })
        .unwrap();
    assert!(results.0.is_ok() && results.2.is_ok());
    let e = results.1.unwrap_err();
    assert!(!e.is_store_failure(), "a CHECK is the item's fault: {e}");
    let names: Vec<String> = store
        .read(|db| {
            Ok(db
                .tx()
                .query("SELECT name FROM businesses ORDER BY id", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
        .unwrap();
    assert_eq!(names, ["one", "two"]);
}

/// Writers racing on one row under SERIALIZABLE lose no update: each
/// transaction that reported success is counted once, the losers of a
/// race are rerun by `write`.
#[test]
fn racing_writers_lose_no_update() {
    let store = fresh_store();
    store
        .write(|w| {
            w.db().tx().batch_execute(
                "INSERT INTO businesses (name) VALUES ('acme');
                 INSERT INTO users (business_id, key) VALUES (1, 'whatsapp:+1');",
            )?;
            Ok(())
        })
        .unwrap();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let store = PgStore::clone(&store);
            std::thread::spawn(move || {
                let mut ok = 0i64;
                for _ in 0..20 {
                    // Read, then write what follows from the read: a lost
                    // update under READ COMMITTED.
                    let r = store.write(|w| {
                        let n: i64 = w
                            .db()
                            .tx()
                            .query_one("SELECT consent_count FROM users WHERE id = 1", &[])?
                            .get(0);
                        w.db().tx().execute(
                            "UPDATE users SET consent_count = $1 WHERE id = 1",
                            &[&(n + 1)],
                        )?;
                        Ok(())
                    });
                    match r {
                        Ok(()) => ok += 1,
                        // Lost every retry: a store failure, never a
                        // silent loss.
                        Err(e) => assert!(e.is_store_failure(), "{e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: i64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let n: i64 = store
        .read(|db| {
            Ok(db
                .tx()
                .query_one("SELECT consent_count FROM users WHERE id = 1", &[])?
                .get(0))
        })
        .unwrap();
    assert_eq!(n, ok);
    assert!(ok > 0);
}

// --- The same statements on both stores ---------------------------------

/// A 32-byte value, another, a 31-byte and a 16-byte one, as each
/// dialect writes a blob literal.
fn dialect(sql: &str, pg: bool) -> String {
    let blob = |hex: String| {
        if pg {
            format!("'\\x{hex}'::bytea")
        } else {
            format!("X'{hex}'")
        }
    };
    sql.replace("{h32}", &blob("ab".repeat(32)))
        .replace("{g32}", &blob("cd".repeat(32)))
        .replace("{h31}", &blob("ab".repeat(31)))
        .replace("{s16}", &blob("5a".repeat(16)))
}

const FIXTURE: &[&str] = &[
    "INSERT INTO businesses (name) VALUES ('acme')",
    "INSERT INTO users (business_id, key) VALUES (1, 'whatsapp:+1'), (1, 'bsuid:x')",
    "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
         effective, conditional, source, evidence, hash, salt)
     VALUES (1, 1, 1, 'opt_in', 'all', 0, 0, 0, 0, 'web_form', 'form v3', {h32}, {s16}),
            (1, 2, 1, 'opt_out', 'marketing', 5, 5, 5, 0, 'keyword', NULL, {g32}, {s16})",
    "INSERT INTO sends (business_id, idempotency_key, sender, recipient, user_id, at, content,
         verdict, reason, state, provider_id)
     VALUES (1, 'k1', 'whatsapp:+9', 'whatsapp:+1', 1, 0, 'freeform', 'allow', 'window_open',
             'sent', 'wamid.1')",
    "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at)
     VALUES (1, 'in.1', 1, 'whatsapp:+9', 'text', 0, 0)",
    "INSERT INTO windows (business_id, user_id, sender, last_inbound) VALUES (1, 1, 'whatsapp:+9', 0)",
    "INSERT INTO links (business_id, phone_id, bsuid_id, at, received_at, source)
     VALUES (1, 1, 2, 0, 0, 'wamid.x')",
];

/// Inserts into every table, each alone on the fixture: whether each is
/// taken.
const INSERTS: &[(&str, bool)] = &[
    ("INSERT INTO businesses (name) VALUES ('beta')", true),
    ("INSERT INTO businesses (name) VALUES ('')", false),
    ("INSERT INTO businesses (name) VALUES ('acme')", false),
    (
        "INSERT INTO users (business_id, key) VALUES (1, 'whatsapp:+2')",
        true,
    ),
    (
        "INSERT INTO users (business_id, key) VALUES (1, 'whatsapp:+1')",
        false,
    ),
    (
        "INSERT INTO users (business_id, key, linked) VALUES (1, 'whatsapp:+3', 1)",
        true,
    ),
    (
        "INSERT INTO users (business_id, key, linked) VALUES (1, 'whatsapp:+3', 2)",
        false,
    ),
    (
        "INSERT INTO users (business_id, key) VALUES (99, 'whatsapp:+4')",
        false,
    ),
    (CE_OK, true),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'maybe', 'all', 0, 0, 0, 0, 'web_form', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'some', 0, 0, 0, 0, 'web_form', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 2, 'web_form', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, '', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h31}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', NULL, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h32}, NULL)",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h32}, {h32})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt, evidence_digest) VALUES (1, 1, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h32}, {s16}, {g32})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 1, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 99, 2, 'opt_in', 'all', 0, 0, 0, 1, 'keyword', {h32}, {s16})",
        false,
    ),
    (
        "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at, keyword, referral, also_user_id, fingerprint) VALUES (1, 'in.2', 1, 'whatsapp:+9', 'text', 0, 0, 'opt_out', 'ctwa_ad', 2, {h32})",
        true,
    ),
    (
        "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at, keyword) VALUES (1, 'in.3', 1, 'whatsapp:+9', 'text', 0, 0, 'stop')",
        false,
    ),
    (
        "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at, referral) VALUES (1, 'in.3', 1, 'whatsapp:+9', 'text', 0, 0, 'banner')",
        false,
    ),
    (
        "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at) VALUES (1, 'in.1', 1, 'whatsapp:+9', 'text', 0, 0)",
        false,
    ),
    (
        "INSERT INTO windows (business_id, user_id, sender, closed_through, referral_at) VALUES (1, 2, 'whatsapp:+9', 3, 4)",
        true,
    ),
    (
        "INSERT INTO windows (business_id, user_id, sender) VALUES (1, 1, 'whatsapp:+9')",
        false,
    ),
    (
        "INSERT INTO template_events (business_id, name, language, status, at, received_at, effective, source) VALUES (1, 'promo', 'en', 'APPROVED', 0, 0, 0, 'webhook')",
        true,
    ),
    (
        "INSERT INTO template_events (business_id, name, language, category, body, status, at, received_at, effective, source) VALUES (1, 'promo', 'en', 'promotion', 'Hi', 'APPROVED', 0, 0, 0, 'api')",
        false,
    ),
    (
        "INSERT INTO templates (business_id, name, language, category, body, definition_at, status, status_at) VALUES (1, 'promo', 'en', 'marketing', 'Hi', 0, 'APPROVED', 0)",
        true,
    ),
    (
        "INSERT INTO templates (business_id, name, language, category, body, definition_at, status, status_at) VALUES (1, 'promo', 'en', 'spam', 'Hi', 0, 'APPROVED', 0)",
        false,
    ),
    (
        "INSERT INTO templates (business_id, name, language, body, definition_at, status, status_at) VALUES (1, 'promo', 'en', 'Hi', 0, 'APPROVED', 0)",
        false,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state, request_hash, facts, pricing) VALUES (1, 'k1', 'whatsapp:+9', 'whatsapp:+1', 0, 'template', 'deny', 'opted_out', 'denied', {h32}, '{}', '{}')",
        true,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state) VALUES (1, 'k1', 'whatsapp:+9', 'whatsapp:+1', 0, 'freeform', 'allow', 'window_open', 'reserved')",
        false,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state) VALUES (1, 'k2', 'whatsapp:+9', 'whatsapp:+1', 0, 'audio', 'allow', 'window_open', 'sent')",
        false,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state) VALUES (1, 'k2', 'whatsapp:+9', 'whatsapp:+1', 0, 'freeform', 'maybe', 'window_open', 'sent')",
        false,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state) VALUES (1, 'k2', 'whatsapp:+9', 'whatsapp:+1', 0, 'freeform', 'allow', 'window_open', 'queued')",
        false,
    ),
    (
        "INSERT INTO sends (business_id, idempotency_key, sender, recipient, at, content, verdict, reason, state, provider_id) VALUES (1, 'k2', 'whatsapp:+9', 'whatsapp:+1', 0, 'freeform', 'allow', 'window_open', 'sent', 'wamid.1')",
        false,
    ),
    (
        "INSERT INTO feedback (business_id, send_id, code, at) VALUES (1, 1, 131047, 0)",
        true,
    ),
    (
        "INSERT INTO feedback (business_id, send_id, code, at) VALUES (1, 99, 131047, 0)",
        false,
    ),
    (
        "INSERT INTO links (business_id, phone_id, bsuid_id, at, received_at, source) VALUES (1, 2, 1, 0, 0, 'wamid.y')",
        true,
    ),
    (
        "INSERT INTO links (business_id, phone_id, bsuid_id, at, received_at, source) VALUES (1, 1, 2, 9, 9, 'wamid.y')",
        false,
    ),
    (
        "INSERT INTO external_feedback (business_id, provider_id, code, sender, user_id, at, received_at) VALUES (1, 'wamid.z', 131050, 'whatsapp:+9', 1, 0, 0)",
        true,
    ),
    (
        "INSERT INTO external_feedback (business_id, provider_id, code, sender, user_id, at, received_at) VALUES (1, 'wamid.z', 131050, 'whatsapp:+9', 99, 0, 0)",
        false,
    ),
    (
        "INSERT INTO secrets (name, value) VALUES ('other', {h32})",
        true,
    ),
    (
        "INSERT INTO secrets (name, value) VALUES ('other', {h31})",
        false,
    ),
    (
        "INSERT INTO secrets (name, value) VALUES ('tombstone', {h32})",
        false,
    ),
];

const CE_OK: &str = "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at, effective, conditional, source, hash, salt) VALUES (1, 1, 2, 'opt_out', 'marketing', 0, 0, 0, 1, 'keyword', {h32}, {s16})";

/// The append-only guards, step by step (each taken step stays): what
/// erasure may do and nothing else.
const GUARDS: &[(&str, bool)] = &[
    ("DELETE FROM consent_events WHERE user_id = 1", false),
    (
        "UPDATE consent_events SET action = 'opt_out' WHERE user_id = 1",
        false,
    ),
    ("UPDATE consent_events SET at = 1 WHERE user_id = 1", false),
    // Sealing an address that is not erased.
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE users SET key = 'erased:00ff', erased_at = 5 WHERE id = 1",
        true,
    ),
    // Erased now: the seal, and only the seal.
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL, source = 'x' WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL, hash = {g32} WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {h31}, salt = NULL, evidence = NULL WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, evidence = NULL WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL, seq = 7 WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL WHERE user_id = 1",
        true,
    ),
    // Sealed once: never again, never anything else.
    (
        "UPDATE consent_events SET evidence_digest = {h32} WHERE user_id = 1",
        false,
    ),
    (
        "UPDATE consent_events SET evidence = NULL WHERE user_id = 1",
        false,
    ),
    ("DELETE FROM consent_events WHERE user_id = 1", false),
    // User 2's events are not erased.
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL",
        false,
    ),
    // Links: never deleted; the source blanked only between two erased.
    ("DELETE FROM links", false),
    ("UPDATE links SET source = 'erased'", false),
    (
        "UPDATE users SET key = 'erased:11aa', erased_at = 6 WHERE id = 2",
        true,
    ),
    ("UPDATE links SET source = 'erased', at = 1", false),
    ("UPDATE links SET source = 'gone'", false),
    ("UPDATE links SET source = 'erased', bsuid_id = 1", false),
    ("UPDATE links SET source = 'erased'", true),
    ("DELETE FROM links", false),
    (
        "UPDATE consent_events SET evidence_digest = {g32}, salt = NULL, evidence = NULL WHERE user_id = 2",
        true,
    ),
    // Secrets never change.
    ("UPDATE secrets SET value = {h32}", false),
    ("DELETE FROM secrets", false),
    ("UPDATE secrets SET name = 'x'", false),
];

/// PostgreSQL only (SQLite has no TRUNCATE): refused on every guarded
/// table, directly or by cascade.
const TRUNCATES: &[&str] = &[
    "TRUNCATE consent_events",
    "TRUNCATE links",
    "TRUNCATE secrets",
    "TRUNCATE users CASCADE",
    "TRUNCATE businesses CASCADE",
];

/// A fresh SQLite database at the current schema, as a raw connection.
fn sqlite() -> (rusqlite::Connection, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!("{}.db", fresh_schema()));
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    (conn, path)
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-wagate.lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Runs one statement on the PostgreSQL store in a savepoint: `Ok` if
/// taken, the crate's error if refused (then asserted to be the item's
/// fault, a constraint).
fn pg_item(store: &PgStore, sql: &str, keep: bool) -> Result<(), Error> {
    let sql = dialect(sql, true);
    let out = store
        .write(|w| {
            let r = w.item(|db| {
                db.tx().batch_execute(&sql)?;
                Ok(())
            })?;
            if !keep && r.is_ok() {
                // Undo it all: each insert is tried on the fixture alone.
                return Err(Error::InvalidEvent("rollback".into()));
            }
            Ok(r)
        })
        .or_else(|e| match e {
            Error::InvalidEvent(m) if m == "rollback" => Ok(Ok(())),
            e => Err(e),
        })
        .unwrap();
    if let Err(e) = &out {
        assert!(
            !e.is_store_failure(),
            "{sql}: a refusal must be a constraint (the item's fault): {e}"
        );
    }
    out
}

fn sqlite_exec(conn: &mut rusqlite::Connection, sql: &str, keep: bool) -> Result<(), String> {
    let sql = dialect(sql, false);
    let tx = conn.transaction().unwrap();
    let r = tx.execute_batch(&sql).map_err(|e| {
        let wagate_error = Error::from(e);
        assert!(!wagate_error.is_store_failure(), "{sql}: {wagate_error}");
        wagate_error.to_string()
    });
    if keep && r.is_ok() {
        tx.commit().unwrap();
    }
    r
}

fn fixture_both() -> (FreshStore, rusqlite::Connection, std::path::PathBuf) {
    let store = fresh_store();
    let (mut lite, path) = sqlite();
    for sql in FIXTURE {
        pg_item(&store, sql, true).unwrap_or_else(|e| panic!("{sql}: {e}"));
        sqlite_exec(&mut lite, sql, true).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    (store, lite, path)
}

/// Every table takes a good row and refuses a bad one (a CHECK, a
/// uniqueness rule, a foreign key, the insert guard) exactly as SQLite
/// does.
#[test]
fn inserts_and_checks_match_sqlite() {
    let (store, mut lite, path) = fixture_both();
    for (sql, taken) in INSERTS {
        let pg = pg_item(&store, sql, false);
        let sl = sqlite_exec(&mut lite, sql, false);
        assert_eq!(pg.is_ok(), *taken, "PostgreSQL: {sql}: {pg:?}");
        assert_eq!(sl.is_ok(), *taken, "SQLite: {sql}: {sl:?}");
    }
    remove_sqlite(&path);
}

/// The append-only guards refuse and allow the same steps on both stores;
/// PostgreSQL also refuses TRUNCATE. At the end, the sealed events keep
/// every column but salt, evidence and evidence_digest.
#[test]
fn append_only_guards_match_sqlite() {
    let (store, mut lite, path) = fixture_both();
    for (sql, taken) in GUARDS {
        let pg = pg_item(&store, sql, true);
        let sl = sqlite_exec(&mut lite, sql, true);
        assert_eq!(pg.is_ok(), *taken, "PostgreSQL: {sql}: {pg:?}");
        assert_eq!(sl.is_ok(), *taken, "SQLite: {sql}: {sl:?}");
        if let Err(e) = pg {
            assert!(!e.is_store_failure());
        }
    }
    for sql in TRUNCATES {
        let e = pg_item(&store, sql, true).unwrap_err();
        let said = e.to_string();
        assert!(
            said.contains("append-only") || said.contains("never"),
            "{sql}: {said}"
        );
    }
    /// user_id, action, evidence, salt, evidence_digest, hash.
    type Event = (
        i64,
        String,
        Option<String>,
        Option<Vec<u8>>,
        Vec<u8>,
        Vec<u8>,
    );
    let rows: Vec<Event> = store
        .read(|db| {
            Ok(db
                .tx()
                .query(
                    "SELECT user_id, action, evidence, salt, evidence_digest, hash FROM consent_events ORDER BY user_id, seq",
                    &[],
                )?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
                .collect())
        })
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].1, "opt_in");
    assert_eq!((rows[0].2.as_deref(), rows[0].3.as_deref()), (None, None));
    assert_eq!(rows[0].4, vec![0xcd; 32]);
    assert_eq!(rows[0].5, vec![0xab; 32], "the hash is unchanged");
    let (links, secrets): (i64, i64) = store
        .read(|db| {
            let l = db
                .tx()
                .query_one("SELECT count(*) FROM links WHERE source = 'erased'", &[])?
                .get(0);
            let s = db
                .tx()
                .query_one("SELECT count(*) FROM secrets", &[])?
                .get(0);
            Ok((l, s))
        })
        .unwrap();
    assert_eq!((links, secrets), (1, 1));
    remove_sqlite(&path);
}

/// The guards read the store's own `users`, whatever the caller's
/// search_path: a session pointing at a decoy schema whose `users` are
/// all "erased" cannot seal a live address's events.
#[test]
fn guards_read_their_own_schema() {
    let (store, _lite, path) = fixture_both();
    let schema = store.schema().to_owned();
    let decoy = fresh_schema();
    let mut c = raw();
    c.batch_execute(&format!(
        "CREATE SCHEMA {decoy};
         CREATE TABLE {decoy}.users (id BIGINT, key TEXT);
         INSERT INTO {decoy}.users VALUES (1, 'erased:decoy'), (2, 'erased:decoy');
         SET search_path TO {decoy};"
    ))
    .unwrap();
    let e = c
        .batch_execute(&dialect(
            &format!(
                "UPDATE {schema}.consent_events SET evidence_digest = {{g32}}, salt = NULL, evidence = NULL WHERE user_id = 1"
            ),
            true,
        ))
        .unwrap_err();
    assert!(!Error::from(e).is_store_failure());
    c.batch_execute(&format!("DROP SCHEMA {decoy} CASCADE"))
        .unwrap();
    remove_sqlite(&path);
}

/// Ends, from another session, every backend of the application `name`;
/// returns how many.
fn terminate(name: &str) -> i64 {
    raw()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0)
}

/// A pooled connection that the server ended (a restart, an idle-session
/// timeout, an operator) is not tested on every use: one idle for longer
/// than `IDLE_TEST_AFTER` is tested first and replaced, so the call that
/// meets it works; one that died since its last use moments ago fails
/// its one call with an error (never a decision) and is then replaced.
#[test]
fn a_connection_the_server_ended_is_replaced() {
    use wagate::store::postgres::IDLE_TEST_AFTER;
    use wagate::{Content, Event, Gate, InboundMessage, Reason, SendRequest, Timestamp};
    let schema = fresh_schema();
    let name = format!("wagate_{schema}");
    let mut options = PgOptions::default();
    options.pool_size = 1;
    let store = PgStore::open_with(
        &format!("{}?application_name={name}", url()),
        &schema,
        &options,
    )
    .unwrap();
    let kept = FreshStore::from(store.clone());
    let gate = Gate::from_postgres(store);
    let b = gate.business("acme").unwrap();
    let (user, shop) = ("whatsapp:+15550001111", "whatsapp:+14155238886");
    let at = Timestamp::now();
    b.ingest(&Event::Inbound(
        InboundMessage::text(
            wagate::Address::parse(user).unwrap(),
            wagate::Address::parse(shop).unwrap(),
            "hi",
            at,
        )
        .with_id("m1"),
    ))
    .unwrap();
    let req = SendRequest::new(shop, user, Content::text("hello"));
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowOpen);

    // Idle for longer than the test threshold: tested, replaced, works.
    assert_eq!(terminate(&name), 1);
    std::thread::sleep(IDLE_TEST_AFTER + std::time::Duration::from_millis(200));
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowOpen);

    // Used a moment ago, then ended: at worst that one call fails.
    assert_eq!(terminate(&name), 1);
    match b.check(&req) {
        Ok(d) => assert_eq!(d.reason, Reason::WindowOpen),
        Err(e) => assert!(e.is_store_failure(), "{e}"),
    }
    assert_eq!(b.check(&req).unwrap().reason, Reason::WindowOpen);
    drop(gate);
    drop(kept);
}
