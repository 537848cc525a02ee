//! What the SQLite and the PostgreSQL benchmarks share: the deterministic
//! generator, the fixture's people (their hash-chained consent events and
//! windows), the request lists and inbound events.

#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wagate::chain::{Evidence, Hash, Link, SALT_LEN, subject};
use wagate::{
    Action, Address, Category, Content, Event, InboundMessage, MessageKind, Scope, SendRequest,
    TemplateBody, TemplateRecord, TemplateStatus, Timestamp, Variables,
};

pub const BUSINESS: &str = "bench";
/// 2026-03-01T00:00:00Z
pub const T0: i64 = 1_772_323_200_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 24 * HOUR;
/// "now" for the checks: 30 days into the fixture's history.
pub const NOW: i64 = T0 + 30 * DAY;
pub const SENDERS: usize = 5;
pub const TEMPLATES: usize = 10;
pub const EVENTS_PER_USER: u64 = 10;

/// splitmix64: a small deterministic generator, so fixtures and request
/// lists are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn user_key(i: u64) -> String {
    format!("whatsapp:+1{:010}", 2_000_000_000 + i)
}

pub fn sender_key(i: usize) -> String {
    format!("whatsapp:+1415523{:04}", 8_000 + i)
}

pub fn template_name(i: usize) -> String {
    format!("template_{i}")
}

pub fn bench_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/wagate-bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The fixture's templates (a third of them marketing), ingested through
/// the gate.
pub fn templates() -> Vec<Event> {
    (0..TEMPLATES)
        .map(|t| {
            let category = if t % 3 == 0 {
                Category::Marketing
            } else {
                Category::Utility
            };
            Event::Template(TemplateRecord {
                name: template_name(t),
                language: "en".into(),
                category,
                status: TemplateStatus::approved(),
                body: TemplateBody::parse("Hello {{1}}, your order {{2}} is ready.").unwrap(),
                at: Timestamp::from_millis(T0),
                received_at: None,
                twilio_content_sid: Some(format!("HX{t:032}")),
                meta_template_id: None,
            })
        })
        .collect()
}

/// One consent event of a fixture user, with its chain hash.
pub struct FixtureEvent {
    pub seq: i64,
    pub action: Action,
    pub scope: Scope,
    pub at: i64,
    pub conditional: bool,
    pub source: &'static str,
    pub evidence: String,
    pub hash: Hash,
    pub salt: [u8; SALT_LEN],
}

/// One window of a fixture user, with the inbound message that opened it.
pub struct FixtureWindow {
    pub sender: String,
    pub last_inbound: i64,
    pub closed_through: Option<i64>,
    pub provider_id: String,
}

/// A fixture user: a person of one address with about 10 hash-chained
/// consent events and 1-3 windows.
pub struct FixtureUser {
    pub id: i64,
    pub key: String,
    pub events: Vec<FixtureEvent>,
    pub head: Hash,
    pub windows: Vec<FixtureWindow>,
}

/// The users of a fixture of `users` users, one by one (the same on every
/// run and on both stores), chained under the store's `secret` and
/// business id.
pub fn fixture_users(
    users: u64,
    business: i64,
    secret: &[u8],
) -> impl Iterator<Item = FixtureUser> + '_ {
    let mut rng = Rng(users);
    (1..=users).map(move |u| {
        let key = user_key(u);
        let mut t = T0 + rng.below(DAY as u64) as i64;
        let mut events = Vec::with_capacity(EVENTS_PER_USER as usize);
        let mut prev = Hash::ZERO;
        let subject = subject(secret, business, &key);
        for seq in 1..=EVENTS_PER_USER as i64 {
            let roll = rng.below(100);
            let (action, scope, conditional, source) = match roll {
                0..=49 => (Action::OptIn, Scope::All, false, "web_form"),
                50..=64 => (Action::OptOut, Scope::All, false, "keyword"),
                65..=79 => (Action::OptIn, Scope::All, true, "keyword"),
                80..=89 => (
                    Action::OptOut,
                    Scope::Marketing,
                    false,
                    "provider_preference",
                ),
                _ => (Action::OptIn, Scope::Marketing, false, "app"),
            };
            let evidence = format!("fixture event {seq}");
            // Deterministic salts: the fixture is the same on every run.
            let mut salt = [0u8; SALT_LEN];
            salt[..8].copy_from_slice(&rng.below(u64::MAX).to_le_bytes());
            salt[8..].copy_from_slice(&rng.below(u64::MAX).to_le_bytes());
            let hash = Link {
                business: BUSINESS,
                seq,
                action,
                scope,
                at: Timestamp::from_millis(t),
                received_at: Timestamp::from_millis(t),
                conditional,
                source,
                subject,
                evidence: Evidence::Open {
                    salt: &salt,
                    text: Some(&evidence),
                },
            }
            .hash(&prev);
            prev = hash;
            events.push(FixtureEvent {
                seq,
                action,
                scope,
                at: t,
                conditional,
                source,
                evidence,
                hash,
                salt,
            });
            t += rng.below(3 * DAY as u64) as i64;
        }
        let count = 1 + rng.below(3) as usize;
        let first = rng.below(SENDERS as u64) as usize;
        let windows = (0..count)
            .map(|w| {
                let sender = sender_key((first + w) % SENDERS);
                let last_inbound = NOW - rng.below(2 * DAY as u64) as i64;
                let closed_through = (rng.below(10) == 0).then_some(last_inbound + HOUR);
                FixtureWindow {
                    sender,
                    last_inbound,
                    closed_through,
                    provider_id: format!("SM{u:010}{w}"),
                }
            })
            .collect();
        FixtureUser {
            id: u as i64,
            key,
            events,
            head: prev,
            windows,
        }
    })
}

/// Random check requests over `users` users: freeform and templates,
/// random senders.
pub fn requests(users: u64, n: usize) -> Vec<SendRequest> {
    let mut rng = Rng(7);
    (0..n)
        .map(|_| {
            let user = user_key(1 + rng.below(users));
            let sender = sender_key(rng.below(SENDERS as u64) as usize);
            let content = if rng.below(2) == 0 {
                Content::text("hello")
            } else {
                Content::template(
                    template_name(rng.below(TEMPLATES as u64) as usize),
                    "en",
                    Variables::positional(["Ana", "A-17"]),
                )
            };
            SendRequest::new(&sender, &user, content)
        })
        .collect()
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The id the next batch of inbound events starts from (a seed).
pub fn next_id() -> u64 {
    NEXT_ID.load(Ordering::Relaxed)
}

/// Fresh inbound messages (new provider ids, `prefix` then a counter) from
/// a pool of 100,000 users.
pub fn inbound_events_with(prefix: &str, n: usize, seed: u64) -> Vec<InboundMessage> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let user = Address::parse(&user_key(1 + rng.below(100_000))).unwrap();
            let sender = Address::parse(&sender_key(rng.below(SENDERS as u64) as usize)).unwrap();
            let at = Timestamp::from_millis(NOW - rng.below(HOUR as u64) as i64);
            InboundMessage {
                id: Some(format!("{prefix}{id:012}")),
                from: user,
                user_id: None,
                to: sender,
                kind: MessageKind::Text,
                body: Some("Where is my order?".into()),
                at,
                received_at: Some(at),
                referral: None,
            }
        })
        .collect()
}

/// [`inbound_events_with`] the SQLite benchmarks' prefix (their databases
/// are fresh on every run).
pub fn inbound_events(n: usize, seed: u64) -> Vec<InboundMessage> {
    inbound_events_with("SMb", n, seed)
}

/// The events of eight ingesting threads, `iters` in all: each thread's
/// message ids are consecutive, so a group of one event per thread touches
/// eight places of the message index, as concurrent webhooks do.
pub fn per_thread_work(prefix: &str, iters: u64) -> Vec<Vec<Event>> {
    let per_thread = iters.div_ceil(8) as usize;
    (0..8)
        .map(|t| {
            inbound_events_with(prefix, per_thread, next_id() + t)
                .into_iter()
                .map(Event::Inbound)
                .collect()
        })
        .collect()
}

/// The inbound messages of [`per_thread_work`]'s events, thread by thread.
pub fn messages(work: Vec<Vec<Event>>) -> Vec<Vec<InboundMessage>> {
    work.into_iter()
        .map(|w| {
            w.into_iter()
                .filter_map(|e| match e {
                    Event::Inbound(m) => Some(m),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Each thread's events through `business.ingest` one at a time, all
/// threads at once: the time per event, as if `iters` were ingested.
pub fn ingest_in_threads(business: &wagate::Business, work: &[Vec<Event>], iters: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for events in work {
            let business = business.clone();
            s.spawn(move || {
                for e in events {
                    black_box(business.ingest(e).unwrap());
                }
            });
        }
    });
    let done = work.iter().map(Vec::len).sum::<usize>();
    started.elapsed().mul_f64(iters as f64 / done as f64)
}
