//! Opening an older database brings its schema up to date, also when the
//! file is already in WAL mode (as every file an older wagate wrote is):
//! the fast path that skips migrations is only for files of this version.

use std::sync::Arc;

use wagate::{Content, Gate, ManualClock, Reason, SendRequest};

use crate::common::*;
use crate::store_file::TempDb;

fn user_version(db: &TempDb) -> i64 {
    let conn = rusqlite::Connection::open(&db.0).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_version_1_database_in_wal_mode_is_migrated_when_opened() {
    let db = TempDb::new("v1-wal");
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", 0x7741_4754)
            .unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch(&format!(
            "INSERT INTO businesses (id, name) VALUES (1, 'acme');
             INSERT INTO users (id, business_id, key) VALUES (1, 1, 'whatsapp:+15550000001');
             INSERT INTO consent_events VALUES
               (1, 1, 1, 'opt_in', 'all', {t0}, {t0}, {t0}, 0, 'web_form', 'form v3');",
            t0 = T0,
        ))
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(t(HOUR)));
    {
        let gate = Gate::open(&db.0).unwrap().with_clock(clock.clone());
        let b = gate.business("acme").unwrap();
        let report = b.verify().unwrap();
        assert_eq!(
            (report.addresses, report.events, report.broken),
            (1, 1, None)
        );
        let req = SendRequest::between(sender(0), user(1), Content::text("hi"));
        assert_eq!(b.check(&req).unwrap().reason, Reason::NoWindow);
    }
    assert_eq!(user_version(&db), wagate::store::SCHEMA_VERSION);
}

/// A file that claims an older version but whose tables do not match it
/// (here: a table of the next migration already there) is refused as a
/// schema mismatch naming both versions, and left as it was.
#[test]
fn a_file_whose_tables_do_not_match_its_version_is_a_schema_mismatch() {
    let db = TempDb::new("v1-mismatch");
    {
        let conn = rusqlite::Connection::open(&db.0).unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.execute_batch("CREATE TABLE links (x INTEGER)")
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", 0x7741_4754)
            .unwrap();
    }
    let err = Gate::open(&db.0).unwrap_err();
    assert!(
        matches!(
            &err,
            wagate::Error::SchemaMismatch { found: 1, supported, why }
                if *supported == wagate::store::SCHEMA_VERSION && why.contains("links")
        ),
        "{err:?}"
    );
    assert_eq!(user_version(&db), 1);
}
