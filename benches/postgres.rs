//! wagate's PostgreSQL store against hand-written queries doing the same IO.
//!
//! Run with `cargo bench --features postgres --bench postgres`. It needs a
//! server: `WAGATE_BENCH_POSTGRES_URL` names one (the benchmark makes and
//! keeps a schema `bench` there), otherwise a cluster of its own is made
//! under `target/wagate-bench/pg/` with `initdb` and `pg_ctl` (as the
//! tests do, as the `postgres` user when root), started for the run and
//! stopped after it; its data, the 1,000,000-user fixture, stays for the
//! next run. `python3 benches/ratios.py` prints the ratios.
//!
//! Fairness: the raw side uses the same schema (made by the store's own
//! migrations), the same indexes, statements prepared once per connection,
//! the same transactions per operation (a `REPEATABLE READ, READ ONLY`
//! snapshot for a check; one transaction per ingested event or batch) and
//! as many connections as the gate's pool. It skips what the gate adds:
//! the pool, the schema and durability check of every transaction, reading
//! the tombstone secret and verifying the consent chains, the policy,
//! savepoints, `SERIALIZABLE` (the raw writes run at PostgreSQL's default
//! `READ COMMITTED` with upserts, as a hand-written ingest would).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../tests/it/pg/cluster.rs"]
mod cluster;
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BUSINESS, NOW, bench_dir, next_id, requests};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, IsolationLevel, NoTls, Statement};
use wagate::store::postgres::{PgOptions, PgStore};
use wagate::transport::{Receipt, TransportError};
use wagate::{Content, Event, Gate, InboundMessage, ManualClock, SendRequest, Timestamp};

/// Writes one row of a COPY.
type Put<'a> = dyn FnMut(&[&(dyn ToSql + Sync)]) + 'a;

/// The fixture's schema.
const SCHEMA: &str = "bench";
const USERS: u64 = 1_000_000;
/// Connections: the gate's pool and the raw side's clients alike.
const POOL: u32 = 8;
/// The server settings of the benchmark's own cluster (reported with the
/// figures): shared buffers that hold the whole fixture (3 GB, prewarmed),
/// and WAL room for loading it; everything else is PostgreSQL's default, durability included
/// (`fsync`, `synchronous_commit` on, `full_page_writes`).
const SETTINGS: &[(&str, &str)] = &[("shared_buffers", "4GB"), ("max_wal_size", "4GB")];

/// The server: `WAGATE_BENCH_POSTGRES_URL`, or a cluster of our own whose
/// data is kept under `target/wagate-bench/pg/`.
fn server() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(start_server).clone()
}

fn start_server() -> String {
    if let Ok(u) = std::env::var("WAGATE_BENCH_POSTGRES_URL")
        && !u.trim().is_empty()
    {
        return u;
    }
    let bin = cluster::find_bin().unwrap_or_else(|| panic!("{}", cluster::missing()));
    let dir = bench_dir().join("pg");
    cluster::start(&bin, &dir, 25432, SETTINGS, false).unwrap()
}

fn connect(url: &str) -> Client {
    let mut c = Client::connect(url, NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO {SCHEMA}, pg_temp"))
        .unwrap();
    c
}

fn options() -> PgOptions {
    let mut o = PgOptions::default();
    o.pool_size = POOL;
    o
}

fn gate_on(url: &str) -> Gate {
    Gate::from_postgres(PgStore::open_with(url, SCHEMA, &options()).unwrap())
        .with_clock(Arc::new(ManualClock::new(Timestamp::from_millis(NOW))))
}

fn done_marker() -> PathBuf {
    bench_dir().join(format!(
        "pg-fixture-{USERS}-v{}.done",
        wagate::store::postgres::SCHEMA_VERSION
    ))
}

/// The 1,000,000-user fixture in schema `bench`, the same people as the
/// SQLite fixture's (benches/common), built once and reused: the store's
/// own migrations, the templates through the gate, then every row by
/// binary COPY.
fn fixture(url: &str) {
    let mut c = connect(url);
    if done_marker().exists() {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_namespace n JOIN pg_class t ON t.relnamespace = n.oid
                 WHERE n.nspname = $1 AND t.relname = 'users'",
                &[&SCHEMA],
            )
            .unwrap()
            .get(0);
        if n == 1 {
            let users: i64 = c
                .query_one("SELECT count(*) FROM users", &[])
                .unwrap()
                .get(0);
            if users == USERS as i64 {
                return;
            }
        }
    }
    let _ = std::fs::remove_file(done_marker());
    let started = Instant::now();
    eprintln!("building the PostgreSQL fixture ({USERS} users) ...");
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .unwrap();
    {
        let gate = gate_on(url);
        let business = gate.business(BUSINESS).unwrap();
        business.ingest_batch(&common::templates()).unwrap();
    }
    let business: i64 = c
        .query_one("SELECT id FROM businesses WHERE name = $1", &[&BUSINESS])
        .unwrap()
        .get(0);
    let secret: Vec<u8> = c
        .query_one("SELECT value FROM secrets WHERE name = 'tombstone'", &[])
        .unwrap()
        .get(0);
    // Each table in its own COPY, in foreign-key order; the rows come from
    // the generator every time (it is deterministic).
    let copy = |c: &mut Client, sql: &str, types: &[Type], rows: &mut dyn FnMut(&mut Put<'_>)| {
        let mut tx = c.transaction().unwrap();
        let writer = tx.copy_in(sql).unwrap();
        let mut w = BinaryCopyInWriter::new(writer, types);
        rows(&mut |row| w.write(row).unwrap());
        w.finish().unwrap();
        tx.commit().unwrap();
    };
    use Type as T;
    copy(
        &mut c,
        "COPY users (id, business_id, key, person_id, consent_count, consent_head) FROM STDIN (FORMAT binary)",
        &[T::INT8, T::INT8, T::TEXT, T::INT8, T::INT8, T::BYTEA],
        &mut |put| {
            for u in common::fixture_users(USERS, business, &secret) {
                let n = u.events.len() as i64;
                put(&[&u.id, &business, &u.key, &u.id, &n, &&u.head.0[..]]);
            }
        },
    );
    copy(
        &mut c,
        "COPY consent_events (business_id, user_id, seq, action, scope, at, received_at,
             effective, conditional, source, evidence, hash, salt) FROM STDIN (FORMAT binary)",
        &[
            T::INT8,
            T::INT8,
            T::INT8,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::TEXT,
            T::TEXT,
            T::BYTEA,
            T::BYTEA,
        ],
        &mut |put| {
            for u in common::fixture_users(USERS, business, &secret) {
                for e in &u.events {
                    let conditional = i64::from(e.conditional);
                    put(&[
                        &business,
                        &u.id,
                        &e.seq,
                        &e.action.as_str(),
                        &e.scope.as_str(),
                        &e.at,
                        &e.at,
                        &e.at,
                        &conditional,
                        &e.source,
                        &e.evidence,
                        &&e.hash.0[..],
                        &&e.salt[..],
                    ]);
                }
            }
        },
    );
    copy(
        &mut c,
        "COPY windows (business_id, user_id, sender, last_inbound, closed_through) FROM STDIN (FORMAT binary)",
        &[T::INT8, T::INT8, T::TEXT, T::INT8, T::INT8],
        &mut |put| {
            for u in common::fixture_users(USERS, business, &secret) {
                for w in &u.windows {
                    put(&[
                        &business,
                        &u.id,
                        &w.sender,
                        &w.last_inbound,
                        &w.closed_through,
                    ]);
                }
            }
        },
    );
    copy(
        &mut c,
        "COPY inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at)
         FROM STDIN (FORMAT binary)",
        &[
            T::INT8,
            T::TEXT,
            T::INT8,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::INT8,
        ],
        &mut |put| {
            for u in common::fixture_users(USERS, business, &secret) {
                for w in &u.windows {
                    put(&[
                        &business,
                        &w.provider_id,
                        &u.id,
                        &w.sender,
                        &"text",
                        &w.last_inbound,
                        &w.last_inbound,
                    ]);
                }
            }
        },
    );
    // Rows were written with explicit ids: new users take the next ones.
    // One statement at a time: VACUUM refuses a multi-statement batch.
    for sql in [
        "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))",
        "VACUUM ANALYZE",
        "CHECKPOINT",
    ] {
        c.batch_execute(sql).unwrap();
    }
    std::fs::write(done_marker(), b"ok").unwrap();
    let size: i64 = c
        .query_one("SELECT pg_database_size(current_database())", &[])
        .unwrap()
        .get(0);
    eprintln!(
        "PostgreSQL fixture: {:.0} MiB, built in {:.0?}",
        size as f64 / 1048576.0,
        started.elapsed()
    );
}

/// Loads every table and index of the fixture into shared buffers
/// (pg_prewarm, from PostgreSQL's contrib, in schema `public`), so that
/// both sides see the same warm cache whichever runs first; without
/// pg_prewarm, reads each table once (the OS cache then holds them, the
/// indexes warm up as the benchmark runs).
fn warm(c: &mut Client) {
    let relations =
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')";
    if c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA public")
        .is_ok()
    {
        let mut pages = 0i64;
        for r in c.query(relations, &[&SCHEMA]).unwrap() {
            let rel: String = r.get(0);
            pages += c
                .query_one("SELECT public.pg_prewarm($1::text::regclass)", &[&rel])
                .unwrap()
                .get::<_, i64>(0);
        }
        eprintln!("prewarmed {} MiB", pages * 8 / 1024);
    } else {
        eprintln!("no pg_prewarm: reading the tables once instead");
        c.batch_execute(
            "SELECT count(*) FROM (SELECT * FROM users) u;
             SELECT count(*) FROM (SELECT * FROM consent_events) c;
             SELECT count(*) FROM (SELECT * FROM windows) w;",
        )
        .unwrap();
    }
}

/// A statement prepared once on a raw connection.
struct Prepared(Statement);

impl Prepared {
    fn new(c: &mut Client, sql: &str) -> Self {
        Prepared(c.prepare(sql).unwrap())
    }
}

/// The rows a check reads, fetched by hand: the same statements the store
/// runs, in one `REPEATABLE READ, READ ONLY` transaction, without the
/// policy, the chain or the schema check.
struct RawCheck {
    client: Client,
    business: i64,
    template: Prepared,
    user: Prepared,
    links: Prepared,
    trail: Prepared,
    window: Prepared,
    confirmation: Prepared,
}

impl RawCheck {
    fn new(url: &str) -> Self {
        let mut c = connect(url);
        let business = c
            .query_one("SELECT id FROM businesses WHERE name = $1", &[&BUSINESS])
            .unwrap()
            .get(0);
        RawCheck {
            business,
            template: Prepared::new(
                &mut c,
                "SELECT category, body, definition_at, status, status_at, twilio_content_sid, meta_template_id
                 FROM templates WHERE business_id = $1 AND name = $2 AND language = $3",
            ),
            user: Prepared::new(
                &mut c,
                "SELECT id, person_id, linked FROM users WHERE business_id = $1 AND key = $2",
            ),
            links: Prepared::new(
                &mut c,
                "SELECT EXISTS (SELECT 1 FROM links WHERE business_id = $1 AND phone_id = $2)
                     OR EXISTS (SELECT 1 FROM links WHERE business_id = $1 AND bsuid_id = $2)",
            ),
            trail: Prepared::new(
                &mut c,
                "SELECT u.id, u.key, u.consent_count, u.consent_head,
                        c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional,
                        c.source, c.evidence, c.hash, c.salt, c.evidence_digest
                 FROM users u LEFT JOIN consent_events c
                   ON c.business_id = u.business_id AND c.user_id = u.id
                 WHERE u.business_id = $1 AND u.id = $2 ORDER BY u.id, c.seq",
            ),
            window: Prepared::new(
                &mut c,
                "SELECT last_inbound, closed_through, referral_at FROM windows
                 WHERE business_id = $1 AND user_id = $2 AND sender = $3",
            ),
            confirmation: Prepared::new(
                &mut c,
                "SELECT max(at) FROM sends WHERE user_id = $1 AND at <= $2
                   AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
            ),
            client: c,
        }
    }

    fn check(&mut self, req: &SendRequest) -> usize {
        let b = self.business;
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .unwrap();
        let mut fetched = 0;
        let (Ok(sender), Ok(user)) = (req.sender(), req.user()) else {
            return 0;
        };
        if let Content::Template { name, language, .. } = req.content() {
            let row = tx
                .query_opt(&self.template.0, &[&b, name, language])
                .unwrap();
            if let Some(r) = row {
                let _: (&str, &str, &str) = (r.get(0), r.get(1), r.get(3));
                fetched += 1;
            }
        }
        let found = tx.query_opt(&self.user.0, &[&b, &user.as_str()]).unwrap();
        if let Some(r) = found {
            let uid: i64 = r.get(0);
            let linked: i64 = r.get(2);
            assert_eq!(linked, 0, "the fixture has no linked people");
            let has_links: bool = tx.query_one(&self.links.0, &[&b, &uid]).unwrap().get(0);
            assert!(!has_links);
            let mut any_opt_out = false;
            for r in tx.query(&self.trail.0, &[&b, &uid]).unwrap() {
                let _key: &str = r.get(1);
                let _head: Option<&[u8]> = r.get(3);
                let action: &str = r.get(5);
                let scope: &str = r.get(6);
                let _times: (i64, i64, i64) = (r.get(7), r.get(8), r.get(9));
                let _conditional: i64 = r.get(10);
                let _source: &str = r.get(11);
                let _evidence: Option<&str> = r.get(12);
                let _hash: &[u8] = r.get(13);
                let _salt: Option<&[u8]> = r.get(14);
                let _sealed: Option<&[u8]> = r.get(15);
                any_opt_out |= action == "opt_out" && scope == "all";
                fetched += 1;
            }
            let window = tx
                .query_opt(&self.window.0, &[&b, &uid, &sender.as_str()])
                .unwrap();
            if let Some(r) = window {
                let _: (Option<i64>, Option<i64>, Option<i64>) = (r.get(0), r.get(1), r.get(2));
                fetched += 1;
            }
            if any_opt_out {
                let last: Option<i64> = tx
                    .query_one(&self.confirmation.0, &[&uid, &i64::MAX])
                    .unwrap()
                    .get(0);
                fetched += usize::from(last.is_some());
            }
        }
        tx.commit().unwrap();
        fetched
    }
}

fn bench_check(c: &mut Criterion) {
    let url = server();
    fixture(&url);
    warm(&mut connect(&url));
    let reqs = requests(USERS, 20_000);
    let gate = gate_on(&url);
    let business = gate.business(BUSINESS).unwrap();
    let mut g = c.benchmark_group("pg_check");
    let mut i = 0;
    g.bench_function("gate", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(business.check(&reqs[i]).unwrap())
        })
    });
    let mut raw = RawCheck::new(&url);
    g.bench_function("raw", |b| {
        b.iter(|| {
            i = (i + 1) % reqs.len();
            black_box(raw.check(&reqs[i]))
        })
    });
    g.finish();
    paired(
        "pg_check",
        4000,
        |i| {
            black_box(business.check(&reqs[i % reqs.len()]).unwrap());
        },
        |i| {
            black_box(raw.check(&reqs[i % reqs.len()]));
        },
    );
}

/// The provider ids of this run's inbound messages start with this, so no
/// run meets an earlier one's (the fixture is kept), and the rows are
/// removed at the end.
fn run_prefix() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX
        .get_or_init(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("SMp{secs}_")
        })
        .clone()
}

/// The writes an inbound message makes, by hand: find or create the user,
/// insert the message (idempotent), raise the window (never back).
struct RawIngest {
    client: Client,
    business: i64,
    user: Prepared,
    insert_user: Prepared,
    inbound: Prepared,
    window: Prepared,
}

impl RawIngest {
    fn new(url: &str) -> Self {
        let mut c = connect(url);
        let business = c
            .query_one("SELECT id FROM businesses WHERE name = $1", &[&BUSINESS])
            .unwrap()
            .get(0);
        RawIngest {
            business,
            user: Prepared::new(
                &mut c,
                "SELECT id, person_id FROM users WHERE business_id = $1 AND key = $2",
            ),
            insert_user: Prepared::new(
                &mut c,
                "WITH n AS (INSERT INTO users (business_id, key) VALUES ($1, $2) RETURNING id)
                 UPDATE users SET person_id = n.id FROM n WHERE users.id = n.id RETURNING n.id",
            ),
            // The same row as the gate's, with a digest-sized fingerprint.
            inbound: Prepared::new(
                &mut c,
                "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at,
                     keyword, referral, also_user_id, fingerprint)
                 VALUES ($1, $2, $3, $4, 'text', $5, $5, NULL, NULL, NULL, $6)
                 ON CONFLICT (business_id, provider_id) DO NOTHING",
            ),
            window: Prepared::new(
                &mut c,
                "INSERT INTO windows (business_id, user_id, sender, last_inbound) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (business_id, user_id, sender) DO UPDATE SET
                     last_inbound = GREATEST(windows.last_inbound, excluded.last_inbound)",
            ),
            client: c,
        }
    }

    fn batch(&mut self, msgs: &[InboundMessage]) {
        let b = self.business;
        let mut tx = self.client.transaction().unwrap();
        for m in msgs {
            let key = m.from.as_str();
            let uid: i64 = match tx.query_opt(&self.user.0, &[&b, &key]).unwrap() {
                Some(r) => r.get(0),
                None => tx
                    .query_one(&self.insert_user.0, &[&b, &key])
                    .unwrap()
                    .get(0),
            };
            let at = m.at.as_millis();
            let n = tx
                .execute(
                    &self.inbound.0,
                    &[&b, &m.id, &uid, &m.to.as_str(), &at, &&[7u8; 32][..]],
                )
                .unwrap();
            if n == 1 {
                tx.execute(&self.window.0, &[&b, &uid, &m.to.as_str(), &at])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

fn inbound(n: usize) -> Vec<InboundMessage> {
    common::inbound_events_with(&run_prefix(), n, next_id())
}

fn bench_ingest(c: &mut Criterion) {
    let url = server();
    fixture(&url);
    let gate = gate_on(&url);
    let business = gate.business(BUSINESS).unwrap();
    let mut raw = RawIngest::new(&url);

    let mut g = c.benchmark_group("pg_ingest_batch");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("gate", |b| {
        b.iter_batched(
            || {
                inbound(1000)
                    .into_iter()
                    .map(Event::Inbound)
                    .collect::<Vec<_>>()
            },
            |events| black_box(business.ingest_batch(&events).unwrap()),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("raw", |b| {
        b.iter_batched(
            || inbound(1000),
            |msgs| raw.batch(&msgs),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();

    // One inbound message, one durable commit, one thread.
    let mut g = c.benchmark_group("pg_ingest_durable");
    g.throughput(Throughput::Elements(1));
    g.bench_function("gate", |b| {
        b.iter_batched(
            || Event::Inbound(inbound(1).remove(0)),
            |e| black_box(business.ingest(&e).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("raw", |b| {
        b.iter_batched(
            || inbound(1),
            |msgs| raw.batch(&msgs),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    // Eight threads, each event its own durable transaction: the gate on
    // its pool of 8, the raw side on 8 connections of its own. PostgreSQL
    // groups the commits that arrive together (one WAL flush for several).
    let mut g = c.benchmark_group("pg_ingest_concurrent");
    g.throughput(Throughput::Elements(1));
    g.bench_function("8_threads", |b| {
        b.iter_custom(|iters| {
            let work = common::per_thread_work(&run_prefix(), iters);
            common::ingest_in_threads(&business, &work, iters)
        })
    });
    let mut raws: Vec<RawIngest> = (0..POOL).map(|_| RawIngest::new(&url)).collect();
    g.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            let work = common::messages(common::per_thread_work(&run_prefix(), iters));
            raw_in_threads(&mut raws, &work, iters)
        })
    });
    g.finish();

    // The same three, gate and raw side by side (see `paired`).
    paired(
        "pg_ingest_batch",
        8,
        |_| {
            let events: Vec<Event> = inbound(1000).into_iter().map(Event::Inbound).collect();
            black_box(business.ingest_batch(&events).unwrap());
        },
        |_| raw.batch(&inbound(1000)),
    );
    paired(
        "pg_ingest_durable",
        2000,
        |_| {
            black_box(
                business
                    .ingest(&Event::Inbound(inbound(1).remove(0)))
                    .unwrap(),
            );
        },
        |_| raw.batch(&inbound(1)),
    );
    // 320 events a side a round, 40 per thread.
    paired(
        "pg_ingest_concurrent",
        24,
        |_| {
            let work = common::per_thread_work(&run_prefix(), 320);
            common::ingest_in_threads(&business, &work, 320);
        },
        |_| {
            let work = common::messages(common::per_thread_work(&run_prefix(), 320));
            raw_in_threads(&mut raws, &work, 320);
        },
    );

    // This run's inbound messages go; the windows they raised stay (they
    // only move forward, as in service).
    connect(&url)
        .execute(
            "DELETE FROM inbound_messages WHERE provider_id LIKE $1",
            &[&format!("{}%", run_prefix())],
        )
        .unwrap();
}

/// Each thread's messages through its own raw connection, one durable
/// transaction each, all threads at once: the time per event, as if
/// `iters` were ingested.
fn raw_in_threads(raws: &mut [RawIngest], work: &[Vec<InboundMessage>], iters: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for (raw, msgs) in raws.iter_mut().zip(work) {
            s.spawn(move || {
                for m in msgs {
                    raw.batch(std::slice::from_ref(m));
                }
            });
        }
    });
    let done = work.iter().map(Vec::len).sum::<usize>();
    started.elapsed().mul_f64(iters as f64 / done as f64)
}

/// Whether the command line's filter (criterion's, a regex; here its
/// `|`-separated parts as plain text) selects `group`.
fn selected(group: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .flat_map(|f| f.split('|'))
            .any(|f| group.starts_with(f.split('/').next().unwrap_or(f)))
}

/// Gate and raw side by side: `rounds` rounds, each one gate run and one
/// raw run of round `i`'s work, in alternating order, so that both sides
/// meet the same moments of a noisy shared host (criterion measures one
/// side for seconds, then the other). Prints and writes
/// `target/criterion/<group>/paired.json`: the time per round of each side
/// and their ratio.
fn paired(group: &str, rounds: usize, mut gate: impl FnMut(usize), mut raw: impl FnMut(usize)) {
    if !selected(group) {
        return;
    }
    let (mut g, mut r) = (Duration::ZERO, Duration::ZERO);
    for i in 0..rounds {
        let t = Instant::now();
        if i % 2 == 0 {
            gate(i);
            let mid = Instant::now();
            raw(i);
            g += mid - t;
            r += mid.elapsed();
        } else {
            raw(i);
            let mid = Instant::now();
            gate(i);
            r += mid - t;
            g += mid.elapsed();
        }
    }
    let ratio = g.as_secs_f64() / r.as_secs_f64();
    let (g, r) = (g / rounds as u32, r / rounds as u32);
    eprintln!(
        "{group} paired over {rounds} rounds: gate {g:.2?}, raw {r:.2?}, gate / raw {ratio:.2}"
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/criterion")
        .join(group);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("paired.json"),
        format!(
            "{{\"rounds\": {rounds}, \"gate_ns\": {}, \"raw_ns\": {}, \"ratio\": {ratio}}}\n",
            g.as_nanos(),
            r.as_nanos()
        ),
    )
    .unwrap();
}

/// A transport that accepts everything at once, as a provider that
/// answered instantly would: the send's cost is the gate's own.
struct Instant200;

impl wagate::transport::Transport for Instant200 {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(&self, m: &wagate::transport::OutboundMessage) -> Result<Receipt, TransportError> {
        Ok(Receipt {
            provider_id: format!("SMx{}", m.key),
        })
    }
}

/// `pg_send/gate`: decide, reserve and record a send (two write
/// transactions around the transport), on requests the fixture allows;
/// criterion's figures, and the latency distribution of every send it
/// timed (p50, p99) written beside them.
fn bench_send(c: &mut Criterion) {
    let url = server();
    fixture(&url);
    let gate = gate_on(&url);
    let business = gate.business(BUSINESS).unwrap();
    let allowed: Vec<SendRequest> = requests(USERS, 20_000)
        .into_iter()
        .filter(|r| business.check(r).unwrap().is_allowed())
        .collect();
    assert!(allowed.len() > 1000, "{} allowed requests", allowed.len());
    let prefix = run_prefix();
    let mut n = 0u64;
    let mut send = || {
        n += 1;
        let req = &allowed[n as usize % allowed.len()];
        let out = business
            .send(req, &format!("{prefix}{n}"), &Instant200)
            .unwrap();
        assert!(out.sent());
    };
    // Every send criterion times is also kept alone, for the percentiles.
    let mut latencies: Vec<Duration> = Vec::new();
    let mut g = c.benchmark_group("pg_send");
    g.bench_function("gate", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                send();
                let took = t.elapsed();
                total += took;
                latencies.push(took);
            }
            total
        })
    });
    g.finish();
    if latencies.is_empty() {
        return; // filtered out
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let (p50, p99, max) = (at(0.50), at(0.99), latencies[latencies.len() - 1]);
    eprintln!(
        "pg_send/gate latency over {} sends: p50 {p50:.0?}, p99 {p99:.0?}, max {max:.0?}",
        latencies.len(),
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/criterion/pg_send/gate");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("latency.json"),
        format!(
            "{{\"sends\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \"max_ns\": {}}}\n",
            latencies.len(),
            p50.as_nanos(),
            p99.as_nanos(),
            max.as_nanos()
        ),
    )
    .unwrap();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_check, bench_ingest, bench_send
}
criterion_main!(benches);
