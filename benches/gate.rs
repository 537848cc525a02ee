//! wagate against a raw rusqlite baseline doing the same IO.
//!
//! Run with `cargo bench`. The first run builds the fixtures (10,000 and
//! 1,000,000 users with history) under `target/wagate-bench/` and reuses
//! them afterwards. `python3 benches/ratios.py` prints the ratios.
//!
//! Fairness: the raw side uses `prepare_cached` statements, the same
//! pragmas (WAL, synchronous=FULL, foreign_keys=ON, busy timeout), the same
//! schema and indexes, and one transaction per operation like the gate.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    BUSINESS, HOUR, NOW, T0, bench_dir, inbound_events, next_id, per_thread_work, requests,
    sender_key, user_key,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rusqlite::{Connection, TransactionBehavior, params};
use wagate::policy::{ConsentFact, Facts, PolicyConfig, TemplateFacts, WindowFacts, decide};
use wagate::{
    Action, Category, Content, Event, Gate, InboundMessage, ManualClock, Scope, SendRequest,
    TemplateBody, TemplateStatus, Timestamp, Variables,
};

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The same pragmas the gate sets.
fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(wagate::store::BUSY_TIMEOUT).unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    // As the store does: freed space is zeroed (the same pages written).
    conn.pragma_update(None, "secure_delete", "ON").unwrap();
    conn.pragma_update(None, "cache_size", wagate::store::CACHE_SIZE)
        .unwrap();
    // As the store does: plans fixed at prepare time, so cached statements
    // are not re-prepared when their bindings change (see DESIGN.md).
    conn.set_prepared_statement_cache_capacity(64);
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    conn
}

/// Reads a file once so that it sits in the OS page cache: the check
/// benchmarks then measure a warm database on both sides, whichever runs
/// first.
fn warm(path: &Path) {
    let mut f = std::fs::File::open(path).unwrap();
    std::io::copy(&mut f, &mut std::io::sink()).unwrap();
}

/// A database of `users` users, each with about 10 consent events and 1-3
/// windows (with their inbound messages), built once and reused.
fn fixture(users: u64) -> PathBuf {
    let path = bench_dir().join(format!(
        "fixture-{users}-v{}.db",
        wagate::store::SCHEMA_VERSION
    ));
    let done = path.with_extension("done");
    if done.exists() && path.exists() {
        return path;
    }
    remove_db(&path);
    let started = Instant::now();
    eprintln!("building fixture {} ...", path.display());
    {
        let gate = Gate::open(&path).unwrap();
        let business = gate.business(BUSINESS).unwrap();
        business.ingest_batch(&common::templates()).unwrap();
    }
    let mut conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let business: i64 = tx
        .query_row(
            "SELECT id FROM businesses WHERE name = ?1",
            [BUSINESS],
            |r| r.get(0),
        )
        .unwrap();
    let secret: Vec<u8> = tx
        .query_row(
            "SELECT value FROM secrets WHERE name = 'tombstone'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    {
        // Each user is a person of one address; the chain head is written
        // with the user row, the chained events after it.
        let mut user = tx
            .prepare(
                "INSERT INTO users (id, business_id, key, person_id, consent_count, consent_head)
                 VALUES (?1, ?2, ?3, ?1, ?4, ?5)",
            )
            .unwrap();
        let mut consent = tx
            .prepare(
                "INSERT INTO consent_events (business_id, user_id, seq, action, scope, at, received_at,
                     effective, conditional, source, evidence, hash, salt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .unwrap();
        let mut window = tx
            .prepare(
                "INSERT INTO windows (business_id, user_id, sender, last_inbound, closed_through, referral_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            )
            .unwrap();
        let mut inbound = tx
            .prepare(
                "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at)
                 VALUES (?1, ?2, ?3, ?4, 'text', ?5, ?5)",
            )
            .unwrap();
        for fu in common::fixture_users(users, business, &secret) {
            user.execute(params![
                fu.id,
                business,
                fu.key,
                fu.events.len() as i64,
                &fu.head.0[..]
            ])
            .unwrap();
            for e in fu.events {
                consent
                    .execute(params![
                        business,
                        fu.id,
                        e.seq,
                        e.action.as_str(),
                        e.scope.as_str(),
                        e.at,
                        e.conditional,
                        e.source,
                        e.evidence,
                        &e.hash.0[..],
                        &e.salt[..]
                    ])
                    .unwrap();
            }
            for w in fu.windows {
                window
                    .execute(params![
                        business,
                        fu.id,
                        w.sender,
                        w.last_inbound,
                        w.closed_through
                    ])
                    .unwrap();
                inbound
                    .execute(params![
                        business,
                        w.provider_id,
                        fu.id,
                        w.sender,
                        w.last_inbound
                    ])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    let _: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    std::fs::write(&done, b"ok").unwrap();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "fixture {users} users: {:.1} MiB, {:.0} bytes/user, built in {:.0?}",
        size as f64 / 1048576.0,
        size as f64 / users as f64,
        started.elapsed()
    );
    path
}

fn gate_on(path: &Path) -> Gate {
    Gate::open(path)
        .unwrap()
        .with_clock(Arc::new(ManualClock::new(Timestamp::from_millis(NOW))))
}

/// The rows a check reads, fetched by hand: the same statements the store
/// runs, in one read transaction, without the policy.
struct RawCheck {
    conn: Connection,
    business: i64,
}

impl RawCheck {
    fn new(path: &Path) -> Self {
        let conn = raw_connection(path);
        let business = conn
            .query_row(
                "SELECT id FROM businesses WHERE name = ?1",
                [BUSINESS],
                |r| r.get(0),
            )
            .unwrap();
        RawCheck { conn, business }
    }

    #[allow(clippy::type_complexity)]
    fn check(&mut self, req: &SendRequest) -> usize {
        let b = self.business;
        let tx = self.conn.transaction().unwrap();
        let mut fetched = 0;
        let (Ok(sender), Ok(user)) = (req.sender(), req.user()) else {
            return 0;
        };
        if let Content::Template { name, language, .. } = req.content() {
            let row: Option<(String, String, String)> = tx
                .prepare_cached(
                    "SELECT category, body, status FROM templates
                     WHERE business_id = ?1 AND name = ?2 AND language = ?3",
                )
                .unwrap()
                .query_row(params![b, name, language], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ok();
            fetched += usize::from(row.is_some());
        }
        let found: Option<(i64, i64, bool)> = tx
            .prepare_cached(
                "SELECT id, person_id, linked FROM users WHERE business_id = ?1 AND key = ?2",
            )
            .unwrap()
            .query_row(params![b, user.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .ok();
        // Every fixture user is a person of one address: the gate reads its
        // own rows by primary key, and so does this baseline.
        if let Some((uid, _person, linked)) = found {
            assert!(!linked, "the fixture has no linked people");
            // The gate checks that an unlinked address has no link.
            let has_links: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM links WHERE business_id = ?1 AND phone_id = ?2)
                         OR EXISTS (SELECT 1 FROM links WHERE business_id = ?1 AND bsuid_id = ?2)",
                )
                .unwrap()
                .query_row(params![b, uid], |r| r.get(0))
                .unwrap();
            assert!(!has_links);
            // The address's trail, every column the chain covers.
            let mut stmt = tx
                .prepare_cached(
                    "SELECT u.id, u.key, u.consent_count, u.consent_head,
                            c.seq, c.action, c.scope, c.at, c.received_at, c.effective, c.conditional,
                            c.source, c.evidence, c.hash, c.salt, c.evidence_digest
                     FROM users u LEFT JOIN consent_events c
                       ON c.business_id = u.business_id AND c.user_id = u.id
                     WHERE u.business_id = ?1 AND u.id = ?2 ORDER BY u.id, c.seq",
                )
                .unwrap();
            let mut rows = stmt.query(params![b, uid]).unwrap();
            let mut any_opt_out = false;
            while let Some(r) = rows.next().unwrap() {
                let _key = r.get_ref(1).unwrap().as_str().unwrap();
                let _head = r.get_ref(3).unwrap().as_blob_or_null().unwrap();
                let action = r.get_ref(5).unwrap().as_str().unwrap();
                let scope = r.get_ref(6).unwrap().as_str().unwrap();
                let _times: (i64, i64, i64) =
                    (r.get(7).unwrap(), r.get(8).unwrap(), r.get(9).unwrap());
                let _conditional: bool = r.get(10).unwrap();
                let _source = r.get_ref(11).unwrap().as_str().unwrap();
                let _evidence = r.get_ref(12).unwrap().as_str_or_null().unwrap();
                let _hash = r.get_ref(13).unwrap().as_blob().unwrap();
                let _salt = r.get_ref(14).unwrap().as_blob_or_null().unwrap();
                let _sealed = r.get_ref(15).unwrap().as_blob_or_null().unwrap();
                any_opt_out |= action == "opt_out" && scope == "all";
                fetched += 1;
            }
            drop(rows);
            drop(stmt);
            let window: Option<(Option<i64>, Option<i64>, Option<i64>)> = tx
                .prepare_cached(
                    "SELECT last_inbound, closed_through, referral_at FROM windows
                     WHERE business_id = ?1 AND user_id = ?2 AND sender = ?3",
                )
                .unwrap()
                .query_row(params![b, uid, sender.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ok();
            fetched += usize::from(window.is_some());
            if any_opt_out {
                let last: Option<i64> = tx
                    .prepare_cached(
                        "SELECT max(at) FROM sends WHERE ?1 = ?1 AND user_id = ?2 AND at <= ?3
                           AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
                    )
                    .unwrap()
                    .query_row(params![b, uid, i64::MAX], |r| r.get(0))
                    .unwrap();
                fetched += usize::from(last.is_some());
            }
        }
        tx.finish().unwrap();
        fetched
    }
}

fn bench_check(c: &mut Criterion) {
    let big = fixture(1_000_000);
    let small = fixture(10_000);
    let reqs_big = requests(1_000_000, 20_000);
    let reqs_small = requests(10_000, 20_000);

    warm(&big);
    warm(&small);
    let mut g = c.benchmark_group("check");
    let gate = gate_on(&big);
    let business = gate.business(BUSINESS).unwrap();
    let mut i = 0;
    g.bench_function("gate", |b| {
        b.iter(|| {
            i = (i + 1) % reqs_big.len();
            black_box(business.check(&reqs_big[i]).unwrap())
        })
    });
    // The campaign pre-flight: 1,000 requests per read transaction; the
    // time per request.
    // The same 20,000 requests as `gate`, 1,000 at a time.
    let batches: Vec<Vec<(SendRequest, Option<Timestamp>)>> = reqs_big
        .chunks(1000)
        .map(|c| c.iter().map(|r| (r.clone(), None)).collect())
        .collect();
    let mut k = 0;
    g.bench_function("many_per_request", |b| {
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(1000);
            let start = Instant::now();
            for _ in 0..rounds {
                k = (k + 1) % batches.len();
                black_box(business.check_many(&batches[k]).unwrap());
            }
            start
                .elapsed()
                .mul_f64(iters as f64 / (rounds * 1000) as f64)
        })
    });
    let mut raw = RawCheck::new(&big);
    g.bench_function("raw_sqlite", |b| {
        b.iter(|| {
            i = (i + 1) % reqs_big.len();
            black_box(raw.check(&reqs_big[i]))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("check_scale");
    let gate_small = gate_on(&small);
    let business_small = gate_small.business(BUSINESS).unwrap();
    g.bench_function("10k", |b| {
        b.iter(|| {
            i = (i + 1) % reqs_small.len();
            black_box(business_small.check(&reqs_small[i]).unwrap())
        })
    });
    g.bench_function("1m", |b| {
        b.iter(|| {
            i = (i + 1) % reqs_big.len();
            black_box(business.check(&reqs_big[i]).unwrap())
        })
    });
    g.finish();
}

fn bench_decide(c: &mut Criterion) {
    let at = |h: i64| Timestamp::from_millis(T0 + h * HOUR);
    let facts = Facts {
        consent: (0..10)
            .map(|i| ConsentFact {
                action: if i % 4 == 1 {
                    Action::OptOut
                } else {
                    Action::OptIn
                },
                scope: if i % 5 == 4 {
                    Scope::Marketing
                } else {
                    Scope::All
                },
                effective: at(i * 7),
                conditional: i % 4 == 2,
            })
            .collect(),
        window: WindowFacts {
            last_inbound: Some(at(70)),
            closed_through: None,
            referral_at: None,
            first_reply_after_referral: None,
        },
        template: Some(TemplateFacts {
            category: Category::Utility,
            status: TemplateStatus::approved(),
            body: TemplateBody::parse("Hello {{1}}, your order {{2}} is ready.").unwrap(),
        }),
        last_confirmation_at: None,
    };
    let freeform = SendRequest::new(&sender_key(0), &user_key(1), Content::text("hello"));
    let template = SendRequest::new(
        &sender_key(0),
        &user_key(1),
        Content::template("t", "en", Variables::positional(["Ana", "A-17"])),
    );
    let config = PolicyConfig::default();
    let now = at(80);
    let mut g = c.benchmark_group("decide");
    g.bench_function("pure", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            let req = if flip { &freeform } else { &template };
            black_box(decide(black_box(req), black_box(&facts), now, &config))
        })
    });
    g.finish();
}

/// The writes an inbound message makes, by hand: find or create the user,
/// insert the message (idempotent), raise the window.
struct RawIngest {
    conn: Connection,
    business: i64,
}

impl RawIngest {
    fn new(path: &Path) -> Self {
        let conn = raw_connection(path);
        conn.execute(
            "INSERT OR IGNORE INTO businesses (name) VALUES (?1)",
            [BUSINESS],
        )
        .unwrap();
        let business = conn
            .query_row(
                "SELECT id FROM businesses WHERE name = ?1",
                [BUSINESS],
                |r| r.get(0),
            )
            .unwrap();
        RawIngest { conn, business }
    }

    fn one(tx: &Connection, b: i64, m: &InboundMessage) {
        let key = m.from.as_str();
        let uid: i64 = match tx
            .prepare_cached("SELECT id, person_id FROM users WHERE business_id = ?1 AND key = ?2")
            .unwrap()
            .query_row(params![b, key], |r| r.get::<_, i64>(0))
        {
            Ok(id) => id,
            Err(_) => {
                tx.prepare_cached("INSERT INTO users (business_id, key) VALUES (?1, ?2)")
                    .unwrap()
                    .execute(params![b, key])
                    .unwrap();
                let id = tx.last_insert_rowid();
                tx.prepare_cached("UPDATE users SET person_id = ?1 WHERE id = ?1")
                    .unwrap()
                    .execute([id])
                    .unwrap();
                id
            }
        };
        let at = m.at.as_millis();
        // The same row as the gate's, with a digest-sized fingerprint.
        let n = tx
            .prepare_cached(
                "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at, received_at,
                     keyword, referral, also_user_id, fingerprint)
                 VALUES (?1, ?2, ?3, ?4, 'text', ?5, ?5, NULL, NULL, NULL, ?6)
                 ON CONFLICT (business_id, provider_id) DO NOTHING",
            )
            .unwrap()
            .execute(params![b, m.id, uid, m.to.as_str(), at, &[7u8; 32][..]])
            .unwrap();
        if n == 1 {
            tx.prepare_cached(
                "INSERT INTO windows (business_id, user_id, sender, last_inbound) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (business_id, user_id, sender) DO UPDATE SET
                     last_inbound = max(coalesce(last_inbound, excluded.last_inbound), excluded.last_inbound)",
            )
            .unwrap()
            .execute(params![b, uid, m.to.as_str(), at])
            .unwrap();
        }
    }

    fn batch(&mut self, msgs: &[InboundMessage]) {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        for m in msgs {
            Self::one(&tx, self.business, m);
        }
        tx.commit().unwrap();
    }
}

fn fresh_db(name: &str) -> PathBuf {
    let path = bench_dir().join(format!("{name}.db"));
    remove_db(&path);
    drop(Gate::open(&path).unwrap());
    path
}

fn bench_ingest(c: &mut Criterion) {
    // One batch of 1,000 inbound messages, one transaction.
    let mut g = c.benchmark_group("ingest_batch");
    g.throughput(Throughput::Elements(1000));
    let path = fresh_db("ingest-batch-gate");
    let gate = gate_on(&path);
    let business = gate.business(BUSINESS).unwrap();
    g.bench_function("gate", |b| {
        b.iter_batched(
            || {
                inbound_events(1000, next_id())
                    .into_iter()
                    .map(Event::Inbound)
                    .collect::<Vec<_>>()
            },
            |events| black_box(business.ingest_batch(&events).unwrap()),
            criterion::BatchSize::LargeInput,
        )
    });
    let raw_path = fresh_db("ingest-batch-raw");
    let mut raw = RawIngest::new(&raw_path);
    g.bench_function("raw_sqlite", |b| {
        b.iter_batched(
            || inbound_events(1000, next_id()),
            |msgs| raw.batch(&msgs),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();

    // One inbound message, one durable commit. Gate and raw share one
    // database file, so both see the same WAL and file state.
    let mut g = c.benchmark_group("ingest_durable");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    let path = fresh_db("ingest-durable");
    let gate = Arc::new(gate_on(&path));
    let business = gate.business(BUSINESS).unwrap();
    let mut raw = RawIngest::new(&path);
    g.bench_function("raw_sqlite", |b| {
        b.iter_batched(
            || inbound_events(1, next_id()),
            |msgs| raw.batch(&msgs),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("gate", |b| {
        b.iter_batched(
            || Event::Inbound(inbound_events(1, next_id()).remove(0)),
            |e| black_box(business.ingest(&e).unwrap()),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();

    // Eight threads, each ingesting single events and waiting for each to
    // be durable: the group commit coalesces them. `raw_sqlite_8_per_commit`
    // is the ceiling on this disk: one thread committing exactly 8 events
    // per durable transaction, with no coordination at all.
    let mut g = c.benchmark_group("ingest_concurrent");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("8_threads", |b| {
        b.iter_custom(|iters| {
            let work = per_thread_work("SMb", iters);
            common::ingest_in_threads(&business, &work, iters)
        })
    });
    // The same events, committed by one thread in the groups the group
    // commit forms at best (the k-th event of every thread together): what
    // the gate's own writes cost without any coordination.
    g.bench_function("gate_8_per_commit", |b| {
        b.iter_custom(|iters| {
            let groups = in_groups(per_thread_work("SMb", iters));
            let started = Instant::now();
            for group in &groups {
                black_box(business.ingest_batch(group).unwrap());
            }
            let done = groups.iter().map(Vec::len).sum::<usize>();
            started.elapsed().mul_f64(iters as f64 / done as f64)
        })
    });
    g.bench_function("raw_sqlite_8_per_commit", |b| {
        b.iter_custom(|iters| {
            let groups = common::messages(in_groups(per_thread_work("SMb", iters)));
            let started = Instant::now();
            for msgs in &groups {
                raw.batch(msgs);
            }
            let done = groups.iter().map(Vec::len).sum::<usize>();
            started.elapsed().mul_f64(iters as f64 / done as f64)
        })
    });
    g.finish();
}

/// Regroups per-thread work into commits of the k-th event of every thread.
fn in_groups(work: Vec<Vec<Event>>) -> Vec<Vec<Event>> {
    let mut threads: Vec<_> = work.into_iter().map(Vec::into_iter).collect();
    let mut groups = Vec::new();
    loop {
        let group: Vec<Event> = threads.iter_mut().filter_map(Iterator::next).collect();
        if group.is_empty() {
            return groups;
        }
        groups.push(group);
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

/// Checks from several threads on one shared business handle: the time per
/// check when `threads` threads share the work (throughput = 1 / time).
fn bench_check_threads(c: &mut Criterion) {
    let big = fixture(1_000_000);
    let reqs = Arc::new(requests(1_000_000, 20_000));
    warm(&big);
    let gate = gate_on(&big);
    let business = gate.business(BUSINESS).unwrap();
    let mut g = c.benchmark_group("check_threads");
    g.throughput(Throughput::Elements(1));
    for threads in [1usize, 2, 8] {
        g.bench_function(threads.to_string(), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for t in 0..threads {
                        let business = business.clone();
                        let reqs = reqs.clone();
                        s.spawn(move || {
                            for i in 0..per as usize {
                                let r = &reqs[(t * 7919 + i) % reqs.len()];
                                black_box(business.check(r).unwrap());
                            }
                        });
                    }
                });
                // Time per check: the wall time over all checks done.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * threads as u64) as f64)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_decide, bench_check, bench_check_threads, bench_ingest
}
criterion_main!(benches);
