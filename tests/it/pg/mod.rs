//! The PostgreSQL test harness, and the PostgreSQL store's own tests.
//!
//! [`url`] is a server for the whole test process:
//! - `WAGATE_TEST_POSTGRES_URL`, when set, names an existing server (the
//!   tests make and drop their own schemas there);
//! - otherwise, when `initdb` and `pg_ctl` are on PATH (or in
//!   `/usr/lib/postgresql/<version>/bin`), one throwaway cluster is made
//!   in a temporary directory at the first call ([`cluster`]), stopped
//!   and removed when this process ends, however it ends;
//! - with neither, every PostgreSQL test fails, saying what to install.
//!
//! [`fresh_schema`] names a schema no other test uses, so suites can run
//! in parallel on one server.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use wagate::store::postgres::PgStore;

mod cli;
pub mod cluster;
mod races;
mod store;

pub use cluster::URL_VAR;

/// The URL of the test server (see the module docs). Panics, failing the
/// test, when there is none.
pub fn url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    match URL.get_or_init(server) {
        Ok(u) => u.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// A schema name unique to this call in this test process and, by the
/// process id and the time, on a shared server.
pub fn fresh_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t{}_{n}_{nanos}", std::process::id())
}

/// A store on a schema of its own, dropped with the value (also when the
/// test panics), so that a shared server keeps nothing.
pub struct FreshStore(Option<PgStore>);

/// Opens a [`FreshStore`] on the test server.
pub fn fresh_store() -> FreshStore {
    FreshStore(Some(PgStore::open(&url(), &fresh_schema()).unwrap()))
}

impl From<PgStore> for FreshStore {
    /// Takes charge of dropping `store`'s schema.
    fn from(store: PgStore) -> Self {
        FreshStore(Some(store))
    }
}

impl std::ops::Deref for FreshStore {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        self.0.as_ref().unwrap()
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let Some(store) = self.0.take() {
            let _ = store.drop_schema();
        }
    }
}

fn server() -> Result<String, String> {
    if let Ok(u) = std::env::var(URL_VAR)
        && !u.trim().is_empty()
    {
        return Ok(u);
    }
    let bin = cluster::find_bin().ok_or_else(cluster::missing)?;
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("wagate-pg-{pid}"));
    // Its own port number (it names the socket file; no TCP is opened).
    cluster::start(&bin, &dir, 20000 + pid % 20000, &[], true)
}
