//! An axum service around the gate (feature `tokio`): webhooks in, sends
//! out through the async facade, status callbacks back.
//!
//! - `POST /webhook`: an event line (inbound, consent, template, status),
//!   as `wagate ingest` takes them; answers the ingest outcome.
//! - `POST /send`: a send line (`from`, `to`, `text` or `template`, `id`);
//!   decides, and if allowed hands the message to the provider (here a
//!   recording transport that takes 20 ms), then answers the outcome.
//!
//! Run: `cargo run --example axum_service --features tokio -- --once`
//! (serves on 127.0.0.1, drives itself through one story, and stops;
//! without `--once` it keeps serving on 127.0.0.1:3000).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use wagate::Gate;
use wagate::gate::tokio::AsyncBusiness;
use wagate::scenario::{Line, parse_line, parse_live_line};
use wagate::transport::{
    AsyncTransport, OutboundMessage, Receipt, RecordingTransport, TransportError,
};

/// The provider: records what it is given, after a network-like pause.
#[derive(Clone, Default)]
struct Provider(Arc<RecordingTransport>);

impl AsyncTransport for Provider {
    type Ok = Receipt;
    type Error = TransportError;
    fn send(
        &self,
        message: &OutboundMessage,
    ) -> impl std::future::Future<Output = Result<Receipt, TransportError>> + Send {
        let (inner, message) = (self.0.clone(), message.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            wagate::transport::Transport::send(&*inner, &message)
        }
    }
}

#[derive(Clone)]
struct App {
    business: AsyncBusiness,
    provider: Provider,
}

async fn webhook(State(app): State<App>, body: String) -> (StatusCode, String) {
    match parse_live_line(&body) {
        Ok(Line::Event { event, .. }) => match app.business.ingest(event).await {
            Ok(outcome) => (
                StatusCode::OK,
                serde_json::to_string(&outcome).unwrap_or_default(),
            ),
            // A store failure: let the provider retry later.
            Err(e) if e.is_store_failure() => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        },
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not an event line".into()),
        Err(e) => (StatusCode::BAD_REQUEST, e.0),
    }
}

async fn send(State(app): State<App>, body: String) -> (StatusCode, String) {
    let Ok(Line::Ask {
        request,
        send: Some(Some(key)),
        ..
    }) = parse_line(&body)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "expected a send line with an id".into(),
        );
    };
    match app.business.send(request, key, &app.provider).await {
        Ok(outcome) => (
            StatusCode::OK,
            serde_json::to_string(&outcome).unwrap_or_default(),
        ),
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// One request to the running service, over a fresh connection.
async fn call(addr: std::net::SocketAddr, path: &str, body: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let dir = std::env::temp_dir().join(format!("wagate-axum-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let gate = Gate::open(dir.join("shop.db"))?;
    let app = App {
        business: AsyncBusiness::new(gate.business("acme")?),
        provider: Provider::default(),
    };
    let router = Router::new()
        .route("/webhook", post(webhook))
        .route("/send", post(send))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(if once {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    })
    .await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    println!("serving on http://{addr}");
    if !once {
        server.await??;
        return Ok(());
    }
    let now = wagate::Timestamp::now().to_rfc3339();
    let story = [
        (
            "/webhook",
            format!(
                r#"{{"op":"inbound","at":"{now}","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"Where is my order?","id":"SM1"}}"#
            ),
        ),
        (
            "/send",
            format!(
                r#"{{"op":"send","at":"{now}","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"It ships today.","id":"reply-1"}}"#
            ),
        ),
        (
            "/send",
            format!(
                r#"{{"op":"send","at":"{now}","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"It ships today.","id":"reply-1"}}"#
            ),
        ),
        (
            "/webhook",
            format!(r#"{{"op":"status","at":"{now}","id":"reply-1","status":"delivered"}}"#),
        ),
        (
            "/webhook",
            format!(
                r#"{{"op":"inbound","at":"{now}","from":"whatsapp:+15550001111","to":"whatsapp:+14155238886","body":"STOP","id":"SM2"}}"#
            ),
        ),
        (
            "/send",
            format!(
                r#"{{"op":"send","at":"{now}","from":"whatsapp:+14155238886","to":"whatsapp:+15550001111","text":"One more thing","id":"reply-2"}}"#
            ),
        ),
    ];
    for (path, body) in &story {
        println!("POST {path} -> {}", call(addr, path, body).await?);
    }
    println!(
        "the provider was handed {} message(s)",
        app.provider.0.sent().len()
    );
    server.abort();
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
