//! The gate inside a real HTTP service under load (feature `tokio`).
//!
//! An axum server on 127.0.0.1 (an ephemeral port) wraps one
//! `AsyncBusiness` on a file database: `POST /webhook` ingests an event
//! line, `POST /check` decides a request, `POST /send` sends through a
//! transport that takes 50 ms. Keep-alive clients (plain HTTP/1.1 over
//! TCP, written here to keep the dependency list short) drive it for a
//! bounded number of requests and record each latency.
//!
//! Run: `cargo bench --bench http --features tokio`. It prints webhook and
//! check throughput with p50/p99, and the webhook p99 with and without
//! slow sends running at the same time.

// A benchmark program: a failed request is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use wagate::Gate;
use wagate::gate::tokio::AsyncBusiness;
use wagate::scenario::{Line, parse_line, parse_live_line};
use wagate::transport::{AsyncTransport, OutboundMessage, Receipt, TransportError};

const CLIENTS: usize = 8;
const REQUESTS_PER_CLIENT: usize = 1_500;
const SENDERS: usize = 4;

/// A provider that answers after `0` milliseconds.
struct Provider(u64);

impl AsyncTransport for Provider {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl std::future::Future<Output = Result<Receipt, TransportError>> + Send {
        let id = message.key.clone();
        let wait = Duration::from_millis(self.0);
        async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            Ok(Receipt { provider_id: id })
        }
    }
}

async fn webhook(State(b): State<AsyncBusiness>, body: String) -> (StatusCode, String) {
    match parse_live_line(&body) {
        Ok(Line::Event { event, .. }) => match b.ingest(event).await {
            Ok(o) => (
                StatusCode::OK,
                serde_json::to_string(&o).unwrap_or_default(),
            ),
            Err(e) if e.is_store_failure() => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        },
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not an event".into()),
        Err(e) => (StatusCode::BAD_REQUEST, e.0),
    }
}

async fn check(State(b): State<AsyncBusiness>, body: String) -> (StatusCode, String) {
    match parse_line(&body) {
        Ok(Line::Ask { request, .. }) => match b.check(request).await {
            Ok(d) => (
                StatusCode::OK,
                serde_json::to_string(&d).unwrap_or_default(),
            ),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        _ => (StatusCode::BAD_REQUEST, "not a check line".into()),
    }
}

async fn send_slow(State(b): State<AsyncBusiness>, body: String) -> (StatusCode, String) {
    send(b, body, &Provider(50)).await
}

async fn send_fast(State(b): State<AsyncBusiness>, body: String) -> (StatusCode, String) {
    send(b, body, &Provider(0)).await
}

async fn send(b: AsyncBusiness, body: String, transport: &Provider) -> (StatusCode, String) {
    match parse_line(&body) {
        Ok(Line::Ask {
            request,
            send: Some(Some(key)),
            ..
        }) => match b.send(request, key, transport).await {
            Ok(o) => (
                StatusCode::OK,
                serde_json::to_string(&o).unwrap_or_default(),
            ),
            Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        },
        _ => (StatusCode::BAD_REQUEST, "not a send line with an id".into()),
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// POSTs `body`; returns the status code.
    async fn post(&mut self, path: &str, body: &str) -> u16 {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body.as_bytes()).await.expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        let mut len = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let h = line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut buf = vec![0u8; len];
        self.stream.read_exact(&mut buf).await.expect("body");
        status
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

struct Run {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// `CLIENTS` connections, each posting `REQUESTS_PER_CLIENT` bodies made
/// by `body(client, i)` to `path`.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    body: impl Fn(usize, usize) -> String + Send + Sync + 'static,
) -> Run {
    let body = Arc::new(body);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut lat = Vec::with_capacity(REQUESTS_PER_CLIENT);
            for i in 0..REQUESTS_PER_CLIENT {
                let b = body(c, i);
                let t = Instant::now();
                let status = client.post(path, &b).await;
                lat.push(t.elapsed());
                assert_eq!(status, 200, "{path}: {b}");
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let elapsed = start.elapsed();
    all.sort();
    Run {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
    }
}

fn inbound(c: usize, i: usize, tag: &str) -> String {
    format!(
        r#"{{"op":"inbound","at":"2026-11-01T10:00:00Z","from":"whatsapp:+1555{c:02}{i:05}","to":"whatsapp:+1415523{:04}","body":"hi","id":"{tag}-{c}-{i}"}}"#,
        8000 + i % SENDERS
    )
}

/// Keep-alive clients sending while a webhook load runs: each sends
/// `REQUESTS_PER_CLIENT / 10` messages (paced by the provider's delay, at
/// least 2 ms apart). Returns how many went out.
async fn senders(addr: SocketAddr, path: &'static str, tag: &'static str, delay_ms: u64) -> usize {
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut n = 0;
            for i in 0..REQUESTS_PER_CLIENT / 10 {
                let body = format!(
                    r#"{{"op":"send","at":"2026-11-01T10:06:00Z","from":"whatsapp:+1415523{:04}","to":"whatsapp:+1555{c:02}{i:05}","text":"hello","id":"{tag}-{c}-{i}"}}"#,
                    8000 + i % SENDERS
                );
                assert_eq!(client.post(path, &body).await, 200);
                if delay_ms == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                n += 1;
            }
            n
        }));
    }
    let mut n = 0;
    for t in tasks {
        n += t.await.expect("sender");
    }
    n
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("wagate-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let gate = Gate::open(dir.join("http.db")).expect("gate");
        let business = AsyncBusiness::new(gate.business("http").expect("business"));
        let app = Router::new()
            .route("/webhook", post(webhook))
            .route("/check", post(check))
            .route("/send/slow", post(send_slow))
            .route("/send/fast", post(send_fast))
            .with_state(business);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let w = load(addr, "/webhook", |c, i| inbound(c, i, "w1")).await;
        let k = load(addr, "/check", |c, i| {
            format!(
                r#"{{"op":"check","at":"2026-11-01T10:05:00Z","from":"whatsapp:+1415523{:04}","to":"whatsapp:+1555{c:02}{i:05}","text":"hello"}}"#,
                8000 + i % SENDERS
            )
        })
        .await;
        // Webhooks alone; beside sends through an instant provider (the
        // same extra writes); beside sends through a 50 ms provider.
        let quiet = load(addr, "/webhook", |c, i| inbound(c, i, "w2")).await;
        let fast_senders = tokio::spawn(senders(addr, "/send/fast", "f", 0));
        let beside_fast = load(addr, "/webhook", |c, i| inbound(c, i, "w3")).await;
        let fast = fast_senders.await.expect("senders");
        let slow_senders = tokio::spawn(senders(addr, "/send/slow", "s", 50));
        let beside_slow = load(addr, "/webhook", |c, i| inbound(c, i, "w4")).await;
        let slow = slow_senders.await.expect("senders");
        server.abort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{CLIENTS} keep-alive clients x {REQUESTS_PER_CLIENT} requests each, 2 runtime workers, file database"
        );
        println!(
            "webhook ingest: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            w.rate,
            ms(w.p50),
            ms(w.p99)
        );
        println!(
            "check:          {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
            k.rate,
            ms(k.p50),
            ms(k.p99)
        );
        let ratio = |a: &Run, b: &Run| a.p99.as_secs_f64() / b.p99.as_secs_f64().max(1e-9);
        println!("webhooks alone:                          p99 {:.2} ms", ms(quiet.p99));
        println!(
            "beside {fast} sends, instant provider: p99 {:.2} ms ({:.2}x alone)",
            ms(beside_fast.p99),
            ratio(&beside_fast, &quiet)
        );
        println!(
            "beside {slow} sends, 50 ms provider:  p99 {:.2} ms ({:.2}x alone, {:.2}x instant)",
            ms(beside_slow.p99),
            ratio(&beside_slow, &quiet),
            ratio(&beside_slow, &beside_fast)
        );
        std::fs::remove_dir_all(&dir).ok();
    });
}
