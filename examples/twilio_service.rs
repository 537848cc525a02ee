//! An axum service on Twilio (features `tokio`, `twilio`, `reqwest`):
//! signed webhooks in, sends out through the Messages API, status
//! callbacks back, all through the async facade.
//!
//! - `POST /twilio/inbound`: Twilio's incoming-message webhook. The
//!   `X-Twilio-Signature` is checked over the public URL Twilio requested
//!   (`PUBLIC_URL` + the path and query this server saw: behind a proxy
//!   the URL the server sees is not the one Twilio signed). A bad
//!   signature is answered 403 and nothing is applied; a malformed
//!   request 400 with the reason; else the event is ingested and the
//!   answer is an empty TwiML `<Response/>`.
//! - `POST /twilio/status`: Twilio's status callback, checked the same
//!   way; answered 204. An error code such as 63016 feeds back into the
//!   gate (RULES R7).
//! - `POST /send`: `{"key": "reply-1", "to": "whatsapp:+15550001111",
//!   "text": "It ships today."}`, or `"template": {"name": ..., "language":
//!   ..., "variables": [...]}` instead of `text` (the template registered
//!   with its `twilio_content_sid`), and optionally `"from"` (else
//!   `TWILIO_FROM`); decides, sends through Twilio if allowed, and answers
//!   the outcome as JSON.
//!
//! Run for real (serves on 127.0.0.1:3000; put it behind the proxy that
//! `PUBLIC_URL` reaches, and point the number's webhooks at
//! `PUBLIC_URL/twilio/inbound`; status callbacks are requested at
//! `PUBLIC_URL/twilio/status` with each send):
//!
//! ```text
//! TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... PUBLIC_URL=https://hooks.example.com \
//! TWILIO_FROM=whatsapp:+14155238886 \
//!     cargo run --example twilio_service --features tokio,twilio,reqwest
//! ```
//!
//! The auth token is read from the environment only, never from a flag.
//! `WAGATE_DB` names the database (default `wagate.db`); `TWILIO_API_BASE`
//! replaces `https://api.twilio.com` (a fake Twilio in tests).
//!
//! Self-check: `cargo run --example twilio_service --features
//! tokio,twilio,reqwest -- --once` starts a fake Twilio API and the
//! service on 127.0.0.1, drives itself through one story (opt-in, signed
//! inbound, forged webhook, send, 63016 callback), prints each step and
//! stops; it exits non-zero if any step does not go as expected. It uses
//! a fresh database in a temporary directory and no environment.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use wagate::gate::tokio::AsyncBusiness;
use wagate::providers::twilio::signature::{public_url, sign};
use wagate::providers::twilio::{
    Credentials, TwilioConfig, TwilioTransport, TwilioWebhook, WebhookError, api,
};
use wagate::{
    Action, Address, ConsentEvent, Content, Event, Gate, IngestOutcome, Reason, Scope, SendRequest,
    Timestamp, Variables, Verdict,
};

/// An empty TwiML answer: Twilio sends no reply of its own.
const EMPTY_TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>";

#[derive(Clone)]
struct App {
    business: AsyncBusiness,
    twilio: TwilioTransport<reqwest::Client>,
    auth_token: Arc<str>,
    /// The base URL Twilio requests (`https://hooks.example.com`).
    public_url: Arc<str>,
    /// The default sender for `/send`.
    from: Option<Arc<str>>,
}

impl App {
    fn router(self) -> Router {
        Router::new()
            .route("/twilio/inbound", post(inbound))
            .route("/twilio/status", post(status))
            .route("/send", post(send))
            .with_state(self)
    }
}

/// Verifies, parses and ingests one webhook; the error is the answer.
async fn webhook(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<IngestOutcome, (StatusCode, String)> {
    let path_and_query = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
    let url = public_url(&app.public_url, path_and_query);
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    let hook = match TwilioWebhook::verified(&app.auth_token, &url, body, signature) {
        Ok(hook) => hook,
        // Not from Twilio, or changed: apply nothing, say little.
        Err(WebhookError::Signature(e)) => {
            println!("  [service] refused {url}: {e}");
            return Err((StatusCode::FORBIDDEN, "invalid signature".into()));
        }
        Err(e) => {
            println!("  [service] malformed {url}: {e}");
            return Err((StatusCode::BAD_REQUEST, e.to_string()));
        }
    };
    match app.business.ingest(hook.event(Timestamp::now())).await {
        Ok(outcome) => {
            println!(
                "  [service] ingested {}: {}",
                uri.path(),
                serde_json::to_string(&outcome).unwrap_or_default()
            );
            Ok(outcome)
        }
        // A store failure: let Twilio retry later.
        Err(e) if e.is_store_failure() => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err((StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}

async fn inbound(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match webhook(&app, &uri, &headers, &body).await {
        Ok(_) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/xml")],
            EMPTY_TWIML,
        )
            .into_response(),
        Err(answer) => answer.into_response(),
    }
}

async fn status(State(app): State<App>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match webhook(&app, &uri, &headers, &body).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(answer) => answer.into_response(),
    }
}

/// What `/send` takes: `text` or `template`.
#[derive(Deserialize)]
struct SendBody {
    key: String,
    to: String,
    from: Option<String>,
    text: Option<String>,
    template: Option<TemplateForm>,
}

#[derive(Deserialize)]
struct TemplateForm {
    name: String,
    language: String,
    #[serde(default)]
    variables: Vec<String>,
}

async fn send(State(app): State<App>, body: Bytes) -> Response {
    let form: SendBody = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let content = match (form.text, form.template) {
        (Some(text), None) => Content::text(text),
        (None, Some(t)) => {
            Content::template(t.name, t.language, Variables::positional(t.variables))
        }
        _ => {
            return (StatusCode::BAD_REQUEST, "give either text or template").into_response();
        }
    };
    let Some(from) = form.from.or_else(|| app.from.as_deref().map(str::to_owned)) else {
        return (
            StatusCode::BAD_REQUEST,
            "no from (and TWILIO_FROM is not set)",
        )
            .into_response();
    };
    let request = SendRequest::new(&from, &form.to, content);
    match app.business.send(request, form.key, &app.twilio).await {
        Ok(outcome) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&outcome).unwrap_or_default(),
        )
            .into_response(),
        Err(e) if e.is_store_failure() => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|a| a == "--once") {
        return once().await;
    }
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let account_sid = var("TWILIO_ACCOUNT_SID")?;
    let auth_token = var("TWILIO_AUTH_TOKEN")?;
    let public = var("PUBLIC_URL")?;
    let api_base = std::env::var("TWILIO_API_BASE").unwrap_or_else(|_| api::API_BASE.into());
    let db = std::env::var("WAGATE_DB").unwrap_or_else(|_| "wagate.db".into());
    let config = TwilioConfig::new(account_sid, Credentials::auth_token(auth_token.as_str()))
        .with_base_url(api_base)
        .with_status_callback(public_url(&public, "/twilio/status"));
    let app = App {
        business: AsyncBusiness::new(Gate::open(&db)?.business("acme")?),
        twilio: TwilioTransport::new(config, reqwest::Client::new()),
        auth_token: auth_token.into(),
        public_url: public.into(),
        from: std::env::var("TWILIO_FROM").ok().map(Into::into),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "serving on http://{} (public {}, database {db})",
        listener.local_addr()?,
        app.public_url
    );
    axum::serve(listener, app.router()).await?;
    Ok(())
}

// ---- --once: a fake Twilio, the service, and a story against both ----

const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const AUTH_TOKEN: &str = "once-auth-token";
const PUBLIC: &str = "https://hooks.example.com";
const SENDER: &str = "whatsapp:+14155238886";
const USER: &str = "whatsapp:+15550001111";

static NEXT_SID: AtomicU32 = AtomicU32::new(1);

/// The fake Messages API: takes every message, answers 201 with a new sid.
async fn fake_messages(Path(account): Path<String>, body: Bytes) -> Response {
    let sid = format!("SM{:032x}", NEXT_SID.fetch_add(1, Ordering::Relaxed));
    let fields: Vec<String> = form_urlencoded::parse(&body)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "  [fake Twilio] account {account} took {sid}: {}",
        fields.join(" ")
    );
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"sid":"{sid}","status":"queued","account_sid":"{account}"}}"#),
    )
        .into_response()
}

/// Fails the run when `ok` is false.
fn ensure(ok: bool, what: impl std::fmt::Display) -> Result<(), Box<dyn Error>> {
    if ok {
        Ok(())
    } else {
        Err(format!("unexpected: {what}").into())
    }
}

async fn once() -> Result<(), Box<dyn Error>> {
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_addr = fake.local_addr()?;
    let fake_router = Router::new().route(
        "/2010-04-01/Accounts/{account}/Messages.json",
        post(fake_messages),
    );
    let fake_server = tokio::spawn(async move { axum::serve(fake, fake_router).await });
    println!("fake Twilio API on http://{fake_addr}");

    let dir = std::env::temp_dir().join(format!("wagate-twilio-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = TwilioConfig::new(ACCOUNT_SID, Credentials::auth_token(AUTH_TOKEN))
        .with_base_url(format!("http://{fake_addr}"))
        .with_status_callback(public_url(PUBLIC, "/twilio/status"));
    let app = App {
        business: AsyncBusiness::new(Gate::open(dir.join("shop.db"))?.business("acme")?),
        twilio: TwilioTransport::new(config, reqwest::Client::new()),
        auth_token: AUTH_TOKEN.into(),
        public_url: PUBLIC.into(),
        from: Some(SENDER.into()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = app.clone().router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    println!("serving on http://{addr} (public {PUBLIC})");

    let result = story(&app, addr).await;
    server.abort();
    fake_server.abort();
    std::fs::remove_dir_all(&dir)?;
    if result.is_ok() {
        println!("the story went as expected");
    }
    result
}

/// Posts a form webhook as Twilio would, signed with `token` over the
/// public URL (`None`: no signature header). Answers status, content
/// type and body.
async fn post_webhook(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
) -> Result<(u16, String, String), Box<dyn Error>> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = client
        .post(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        request = request.header(
            "X-Twilio-Signature",
            sign(token, &public_url(PUBLIC, path), params),
        );
    }
    let answer = request.send().await?;
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, answer.text().await?))
}

async fn story(app: &App, addr: std::net::SocketAddr) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::new();

    // 1. The user opted in on a web form: ingested through the handle.
    let optin = Event::Consent(ConsentEvent::new(
        Address::parse(USER)?,
        Action::OptIn,
        Scope::All,
        Timestamp::now(),
        "web_form",
    ));
    let outcome = app.business.ingest(optin).await?;
    println!(
        "1. opt-in from the web form -> {}",
        serde_json::to_string(&outcome)?
    );

    // 2. The user writes; Twilio posts it, signed.
    let (status, content_type, body) = post_webhook(
        &client,
        addr,
        "/twilio/inbound",
        &[
            ("MessageSid", "SMin0000000000000000000000000001"),
            ("AccountSid", ACCOUNT_SID),
            ("From", USER),
            ("To", SENDER),
            ("Body", "Where is my order?"),
            ("NumMedia", "0"),
            ("ProfileName", "Ana"),
        ],
        Some(AUTH_TOKEN),
    )
    .await?;
    println!("2. POST /twilio/inbound (signed) -> {status} {content_type}: {body}");
    ensure(status == 200, format!("signed inbound answered {status}"))?;
    ensure(
        content_type.starts_with("text/xml") && body.contains("<Response/>"),
        "the inbound answer is not an empty TwiML response",
    )?;

    // 3. A forged STOP, signed with a guessed token: refused, not applied.
    let (status, _, body) = post_webhook(
        &client,
        addr,
        "/twilio/inbound",
        &[
            ("MessageSid", "SMforged000000000000000000000001"),
            ("From", USER),
            ("To", SENDER),
            ("Body", "STOP"),
        ],
        Some("guessed-token"),
    )
    .await?;
    println!("3. POST /twilio/inbound (forged STOP) -> {status}: {body}");
    ensure(status == 403, format!("a forged webhook answered {status}"))?;

    // 4. A signed request without From: read, refused as malformed.
    let (status, _, body) = post_webhook(
        &client,
        addr,
        "/twilio/inbound",
        &[
            ("MessageSid", "SMbad0000000000000000000000000001"),
            ("To", SENDER),
            ("Body", "hi"),
        ],
        Some(AUTH_TOKEN),
    )
    .await?;
    println!("4. POST /twilio/inbound (signed, no From) -> {status}: {body}");
    ensure(
        status == 400,
        format!("a malformed webhook answered {status}"),
    )?;

    // 5. The reply goes out through Twilio (the forged STOP changed nothing).
    let answer = client
        .post(format!("http://{addr}/send"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!(
            r#"{{"key":"reply-1","to":"{USER}","text":"It ships today."}}"#
        ))
        .send()
        .await?;
    let status = answer.status().as_u16();
    let body = answer.text().await?;
    println!("5. POST /send -> {status}: {body}");
    ensure(status == 200, format!("/send answered {status}"))?;
    let outcome: serde_json::Value = serde_json::from_str(&body)?;
    ensure(
        outcome.get("delivery").and_then(|v| v.as_str()) == Some("accepted"),
        "the reply was not accepted",
    )?;
    let Some(provider_id) = outcome.get("provider_id").and_then(|v| v.as_str()) else {
        return Err("the outcome names no provider id".into());
    };

    // 6. Twilio reports the message undelivered: 63016, outside the window.
    let (status, _, body) = post_webhook(
        &client,
        addr,
        "/twilio/status",
        &[
            ("MessageSid", provider_id),
            ("AccountSid", ACCOUNT_SID),
            ("MessageStatus", "undelivered"),
            ("ErrorCode", "63016"),
            ("From", SENDER),
            ("To", USER),
        ],
        Some(AUTH_TOKEN),
    )
    .await?;
    println!("6. POST /twilio/status (undelivered, 63016, signed) -> {status}{body}");
    ensure(
        status == 204,
        format!("the status callback answered {status}"),
    )?;

    // 7. The window counts as closed: freeform now needs a template.
    let next = SendRequest::new(SENDER, USER, Content::text("One more thing"));
    let decision = app.business.check(next).await?;
    println!(
        "7. check freeform -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.verdict == Verdict::TemplateRequired && decision.reason == Reason::WindowClosed,
        format!(
            "freeform after 63016 is {} {}",
            decision.verdict, decision.reason
        ),
    )?;
    Ok(())
}
