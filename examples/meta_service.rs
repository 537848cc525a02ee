//! An axum service on Meta's WhatsApp Cloud API (features `tokio`, `meta`,
//! `reqwest`): signed webhooks in, sends out through the Graph API, statuses
//! and preferences back, all through the async facade.
//!
//! - `GET /meta/webhook`: the subscription handshake. Answered 200 with
//!   the `hub.challenge` (`text/plain`) when `hub.verify_token` is the
//!   configured verify token; else 403.
//! - `POST /meta/webhook`: Meta's webhook payloads. The
//!   `X-Hub-Signature-256` is checked over the body bytes exactly as
//!   received (Meta signs its own serialisation: the body is verified
//!   before anything parses it). A bad signature is answered 403 and
//!   nothing is applied; a malformed payload 400 with the reason, and
//!   nothing is applied; else all its events (messages, statuses,
//!   `user_preferences`, template status updates) are ingested in one
//!   transaction, what Meta reported beside them (`errors`, what was
//!   ignored) is logged, and the answer is 200. A status error code such
//!   as 131047 feeds back into the gate (RULES R7); a marketing `stop`
//!   preference opts the user out of marketing.
//! - `POST /send`: `{"key": "reply-1", "to": "whatsapp:+15550001111",
//!   "text": "It ships today."}`, or `"template": {"name": ..., "language":
//!   ..., "variables": [...]}` instead of `text`, and optionally `"purpose"`
//!   (`opt_out_confirmation`, or any text to record); decides, sends
//!   through the Graph API if allowed, and answers the outcome as JSON. The
//!   sender is always `META_FROM`: the Graph API sends from the configured
//!   phone number id, whatever the request says.
//!
//! Run for real (serves on 127.0.0.1:3000; put it behind the HTTPS proxy
//! that the app's callback URL reaches, set the callback URL to
//! `https://<host>/meta/webhook` with the same verify token, and subscribe
//! the `messages` and `user_preferences` fields):
//!
//! ```text
//! META_APP_SECRET=... META_VERIFY_TOKEN=... META_ACCESS_TOKEN=... \
//! META_PHONE_NUMBER_ID=106540352242922 META_FROM=+14155238886 \
//!     cargo run --example meta_service --features tokio,meta,reqwest
//! ```
//!
//! The app secret, the verify token and the access token are read from the
//! environment only, never from a flag; the service refuses to start when
//! one of them is empty. `META_FROM` is the business's display number (the
//! number of `META_PHONE_NUMBER_ID`, as webhooks name it in
//! `metadata.display_phone_number`): without it `/send` refuses. `WAGATE_DB`
//! names the database (default `wagate.db`); `META_GRAPH_BASE` replaces
//! `https://graph.facebook.com` (a fake Graph API in tests) and
//! `META_GRAPH_VERSION` the Graph API version (default `v23.0`).
//!
//! Self-check: `cargo run --example meta_service --features
//! tokio,meta,reqwest -- --once` starts a fake Graph API and the service on
//! 127.0.0.1, drives itself through one story (handshake, opt-in, signed
//! message, forged and malformed payloads, template send, 131047 status,
//! marketing stop), prints each step and stops; it exits non-zero if any
//! step does not go as expected. It uses a fresh database in a temporary
//! directory and no environment.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use wagate::gate::tokio::AsyncBusiness;
use wagate::providers::meta::signature::{handshake, sign, verify};
use wagate::providers::meta::{MetaConfig, MetaTransport, MetaWebhook, api};
use wagate::{
    Action, Address, Category, ConsentEvent, Content, Event, Gate, IngestOutcome, Purpose, Reason,
    Scope, SendRequest, TemplateBody, TemplateRecord, TemplateStatus, Timestamp, Variables,
    Verdict,
};

#[derive(Clone)]
struct App {
    business: AsyncBusiness,
    meta: MetaTransport<reqwest::Client>,
    /// Keys `X-Hub-Signature-256` (App settings > Basic > App secret).
    app_secret: Arc<str>,
    /// The dashboard's Verify token, for the handshake only.
    verify_token: Arc<str>,
    /// The sender for `/send`: the display number of the phone number id.
    from: Option<Arc<str>>,
}

impl App {
    fn router(self) -> Router {
        Router::new()
            .route("/meta/webhook", get(subscribe).post(receive))
            .route("/send", post(send))
            .with_state(self)
    }
}

/// The subscription check: the challenge back for the right verify token.
async fn subscribe(State(app): State<App>, uri: Uri) -> Response {
    match handshake(uri.query().unwrap_or_default(), &app.verify_token) {
        Ok(challenge) => {
            println!("  [service] subscription verified");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                challenge,
            )
                .into_response()
        }
        // The reason is for our log; the caller learns nothing.
        Err(e) => {
            println!("  [service] refused a subscription check: {e}");
            (StatusCode::FORBIDDEN, "verification failed").into_response()
        }
    }
}

/// Verifies, parses and ingests one payload; the error is the answer.
async fn webhook(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<IngestOutcome>, (StatusCode, String)> {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    // Over the bytes as received, before anything parses them.
    if let Err(e) = verify(&app.app_secret, body, signature) {
        // Not from Meta, or changed: apply nothing, say little.
        println!("  [service] refused a payload: {e}");
        return Err((StatusCode::FORBIDDEN, "invalid signature".into()));
    }
    let hook = match MetaWebhook::parse(body, Timestamp::now()) {
        Ok(hook) => hook,
        Err(e) => {
            println!("  [service] malformed payload: {e}");
            return Err((StatusCode::BAD_REQUEST, e.to_string()));
        }
    };
    for e in &hook.errors {
        println!("  [service] Meta reported {e}");
    }
    for what in &hook.ignored {
        println!("  [service] ignored {what}");
    }
    if hook.events.is_empty() {
        return Ok(Vec::new());
    }
    // All of the payload in one transaction, or none of it.
    match app.business.ingest_all(hook.events).await {
        Ok(outcomes) => {
            println!(
                "  [service] ingested {} event(s): {}",
                outcomes.len(),
                serde_json::to_string(&outcomes).unwrap_or_default()
            );
            Ok(outcomes)
        }
        // A store failure: let Meta retry later.
        Err(e) if e.is_store_failure() => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        Err(e) => Err((StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}

async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    match webhook(&app, &headers, &body).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(answer) => answer.into_response(),
    }
}

/// What `/send` takes: `text` or `template`.
#[derive(Deserialize)]
struct SendBody {
    key: String,
    to: String,
    text: Option<String>,
    template: Option<TemplateForm>,
    purpose: Option<String>,
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
    let Some(from) = app.from.as_deref() else {
        return (StatusCode::BAD_REQUEST, "META_FROM is not set").into_response();
    };
    let mut request = SendRequest::new(from, &form.to, content);
    if let Some(purpose) = form.purpose {
        request = request.with_purpose(Purpose::parse(&purpose));
    }
    match app.business.send(request, form.key, &app.meta).await {
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

/// A display number as the gate's sender: `+14155238886`,
/// `whatsapp:+14155238886`, or Meta's bare digits `14155238886`.
fn sender(number: &str) -> Result<String, Box<dyn Error>> {
    let number = number.trim();
    let number = if number.starts_with(|c: char| c.is_ascii_digit()) {
        format!("+{number}")
    } else {
        number.to_owned()
    };
    let address = Address::parse_phone(&number).map_err(|e| format!("META_FROM: {e}"))?;
    Ok(address.as_str().to_owned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    if std::env::args().any(|a| a == "--once") {
        return once().await;
    }
    // Unset and empty alike: an empty secret would let anyone sign.
    let var = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("{name} is not set (or empty)")),
    };
    let app_secret = var("META_APP_SECRET")?;
    let verify_token = var("META_VERIFY_TOKEN")?;
    let access_token = var("META_ACCESS_TOKEN")?;
    let phone_number_id = var("META_PHONE_NUMBER_ID")?;
    let graph_base = var("META_GRAPH_BASE").unwrap_or_else(|_| api::GRAPH_BASE.into());
    let version = var("META_GRAPH_VERSION").unwrap_or_else(|_| api::DEFAULT_VERSION.into());
    let from = var("META_FROM").ok().map(|n| sender(&n)).transpose()?;
    let db = std::env::var("WAGATE_DB").unwrap_or_else(|_| "wagate.db".into());
    let config = MetaConfig::new(phone_number_id, access_token)
        .with_base_url(graph_base)
        .with_version(version);
    let app = App {
        business: AsyncBusiness::new(Gate::open(&db)?.business("acme")?),
        meta: MetaTransport::new(config, reqwest::Client::new()),
        app_secret: app_secret.into(),
        verify_token: verify_token.into(),
        from: from.map(Into::into),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!(
        "serving on http://{} (phone number id {}, from {}, database {db})",
        listener.local_addr()?,
        app.meta.config().phone_number_id,
        app.from.as_deref().unwrap_or("unset: /send refuses")
    );
    axum::serve(listener, app.router()).await?;
    Ok(())
}

// ---- --once: a fake Graph API, the service, and a story against both ----

const APP_SECRET: &str = "once-app-secret";
const VERIFY_TOKEN: &str = "once-verify-token";
const ACCESS_TOKEN: &str = "once-access-token";
const PHONE_NUMBER_ID: &str = "106540352242922";
const WABA_ID: &str = "102290129340398";
/// The business's number: `metadata.display_phone_number` in webhooks.
const DISPLAY: &str = "14155238886";
const SENDER: &str = "whatsapp:+14155238886";
/// The user's number: `wa_id` in webhooks.
const WA_ID: &str = "15550001111";
const USER: &str = "whatsapp:+15550001111";

static NEXT_WAMID: AtomicU32 = AtomicU32::new(1);
/// How many messages the fake Graph API took.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// A Graph API error answer.
fn graph_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "FAKE"}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The fake messages endpoint: wants the bearer token and a template
/// (the story sends nothing else), answers 200 with a new wamid.
async fn fake_messages(
    Path((version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        println!("  [fake Graph API] refused: no or wrong bearer token");
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token");
    }
    if version != api::DEFAULT_VERSION || phone_number_id != PHONE_NUMBER_ID {
        println!("  [fake Graph API] refused: /{version}/{phone_number_id}");
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unknown path components");
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or_default();
    if message.get("type").and_then(Value::as_str) != Some("template") {
        println!("  [fake Graph API] refused: not a template: {message}");
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "The story sends only templates",
        );
    }
    let to = message
        .get("to")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let wamid = format!(
        "wamid.FAKE{:08}",
        NEXT_WAMID.fetch_add(1, Ordering::Relaxed)
    );
    TAKEN.fetch_add(1, Ordering::Relaxed);
    println!("  [fake Graph API] {phone_number_id} took {wamid}: {message}");
    let answer = json!({"messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}]});
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
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
    let fake_router =
        Router::new().route("/{version}/{phone_number_id}/messages", post(fake_messages));
    let fake_server = tokio::spawn(async move { axum::serve(fake, fake_router).await });
    println!("fake Graph API on http://{fake_addr}");

    let dir = std::env::temp_dir().join(format!("wagate-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = MetaConfig::new(PHONE_NUMBER_ID, ACCESS_TOKEN)
        .with_base_url(format!("http://{fake_addr}"))
        .with_version(api::DEFAULT_VERSION);
    let app = App {
        business: AsyncBusiness::new(Gate::open(dir.join("shop.db"))?.business("acme")?),
        meta: MetaTransport::new(config, reqwest::Client::new()),
        app_secret: APP_SECRET.into(),
        verify_token: VERIFY_TOKEN.into(),
        from: Some(sender(DISPLAY)?.into()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = app.clone().router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    println!("serving on http://{addr}");

    let result = story(&app, addr).await;
    server.abort();
    fake_server.abort();
    std::fs::remove_dir_all(&dir)?;
    if result.is_ok() {
        println!("the story went as expected");
    }
    result
}

/// Posts a payload as Meta would, signed with `secret` over its bytes
/// (`None`: no signature header). Answers status and body.
async fn post_payload(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    payload: &Value,
    secret: Option<&str>,
) -> Result<(u16, String), Box<dyn Error>> {
    let body = serde_json::to_vec(payload)?;
    let mut request = client
        .post(format!("http://{addr}/meta/webhook"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(secret) = secret {
        request = request.header("X-Hub-Signature-256", sign(secret, &body));
    }
    let answer = request.body(body).send().await?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await?))
}

/// Posts a `/send` body; answers status and the outcome.
async fn post_send(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    form: &Value,
) -> Result<(u16, Value), Box<dyn Error>> {
    let answer = client
        .post(format!("http://{addr}/send"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(form.to_string())
        .send()
        .await?;
    let status = answer.status().as_u16();
    let body = answer.text().await?;
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

/// One change of a `whatsapp_business_account` payload.
fn payload(field: &str, value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID,
        "changes": [{"field": field, "value": value}]}]})
}

fn metadata() -> Value {
    json!({"display_phone_number": DISPLAY, "phone_number_id": PHONE_NUMBER_ID})
}

/// Now in unix seconds, as Meta writes times.
fn unix_now() -> String {
    (Timestamp::now().as_millis() / 1000).to_string()
}

/// A template record as the business registers it.
fn template(name: &str, category: Category, body: &str) -> Result<Event, Box<dyn Error>> {
    Ok(Event::Template(TemplateRecord {
        name: name.into(),
        language: "en".into(),
        category,
        status: TemplateStatus::approved(),
        body: TemplateBody::parse(body)?,
        at: Timestamp::now(),
        received_at: None,
        twilio_content_sid: None,
        meta_template_id: None,
    }))
}

async fn story(app: &App, addr: std::net::SocketAddr) -> Result<(), Box<dyn Error>> {
    let client = reqwest::Client::new();
    let subscribe_with = |token: &str| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "1158201444"),
            ])
            .finish();
        client
            .get(format!("http://{addr}/meta/webhook?{query}"))
            .send()
    };

    // 1. Meta subscribes the webhook with the dashboard's verify token.
    let answer = subscribe_with(VERIFY_TOKEN).await?;
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = answer.text().await?;
    println!("1. GET /meta/webhook (right verify token) -> {status} {content_type}: {body}");
    ensure(status == 200, format!("the handshake answered {status}"))?;
    ensure(
        content_type.starts_with("text/plain") && body == "1158201444",
        "the handshake did not answer the challenge as text/plain",
    )?;

    // 2. Someone else tries with a guessed token.
    let answer = subscribe_with("guessed-token").await?;
    let status = answer.status().as_u16();
    let body = answer.text().await?;
    println!("2. GET /meta/webhook (wrong verify token) -> {status}: {body}");
    ensure(
        status == 403,
        format!("a wrong verify token answered {status}"),
    )?;

    // 3. The user opted in on a web form an hour ago: ingested through the
    // handle. (Meta's times are whole seconds: a consent from another
    // source in the same second as a later preference would order after it.)
    let optin = Event::Consent(ConsentEvent::new(
        Address::parse(USER)?,
        Action::OptIn,
        Scope::All,
        Timestamp::now().plus_hours(-1),
        "web_form",
    ));
    let outcome = app.business.ingest(optin).await?;
    println!(
        "3. opt-in from the web form, an hour ago -> {}",
        serde_json::to_string(&outcome)?
    );

    // 4. The user writes; Meta posts it, signed.
    let message = payload(
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": WA_ID}],
            "messages": [{"from": WA_ID, "id": "wamid.IN0001", "timestamp": unix_now(),
                "type": "text", "text": {"body": "Where is my order?"}}]}),
    );
    let (status, body) = post_payload(&client, addr, &message, Some(APP_SECRET)).await?;
    println!("4. POST /meta/webhook (message, signed) -> {status}{body}");
    ensure(status == 200, format!("a signed message answered {status}"))?;
    let freeform = SendRequest::new(SENDER, USER, Content::text("It ships today."));
    let decision = app.business.check(freeform.clone()).await?;
    println!(
        "   check freeform -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.reason == Reason::WindowOpen,
        format!("freeform after the message is {}", decision.reason),
    )?;

    // 5. A forged STOP, signed with a guessed secret: refused, not applied.
    let forged = payload(
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
            "messages": [{"from": WA_ID, "id": "wamid.FORGED1", "timestamp": unix_now(),
                "type": "text", "text": {"body": "STOP"}}]}),
    );
    let (status, body) = post_payload(&client, addr, &forged, Some("guessed-secret")).await?;
    println!("5. POST /meta/webhook (forged STOP) -> {status}: {body}");
    ensure(status == 403, format!("a forged payload answered {status}"))?;
    let decision = app.business.check(freeform.clone()).await?;
    println!(
        "   check freeform -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.reason == Reason::WindowOpen,
        format!("freeform after the forged STOP is {}", decision.reason),
    )?;

    // 6. A signed message without its timestamp: read, refused as malformed.
    let malformed = payload(
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
            "messages": [{"from": WA_ID, "id": "wamid.BAD1", "type": "text",
                "text": {"body": "STOP"}}]}),
    );
    let (status, body) = post_payload(&client, addr, &malformed, Some(APP_SECRET)).await?;
    println!("6. POST /meta/webhook (signed, no timestamp) -> {status}: {body}");
    ensure(
        status == 400 && body.contains("timestamp"),
        format!("a malformed payload answered {status}: {body}"),
    )?;

    // 7. Two approved templates, registered through the handle.
    let outcomes = app
        .business
        .ingest_all(vec![
            template("order_update", Category::Utility, "Order {{1}} is {{2}}.")?,
            template(
                "spring_sale",
                Category::Marketing,
                "Spring sale: {{1}} off until Sunday.",
            )?,
        ])
        .await?;
    println!(
        "7. registered order_update (utility) and spring_sale (marketing) -> {}",
        serde_json::to_string(&outcomes)?
    );

    // 8. The update goes out through the Graph API.
    let (status, outcome) = post_send(
        &client,
        addr,
        &json!({"key": "order-1042", "to": USER, "purpose": "order_update",
            "template": {"name": "order_update", "language": "en",
                "variables": ["1042", "on its way"]}}),
    )
    .await?;
    println!("8. POST /send (order_update) -> {status}: {outcome}");
    ensure(status == 200, format!("/send answered {status}"))?;
    ensure(
        outcome.get("delivery").and_then(Value::as_str) == Some("accepted"),
        "the template was not accepted",
    )?;
    let Some(wamid) = outcome.get("provider_id").and_then(Value::as_str) else {
        return Err("the outcome names no provider id".into());
    };
    ensure(
        wamid.starts_with("wamid.FAKE"),
        format!("the provider id {wamid} is not the fake's"),
    )?;

    // 9. Meta reports the message failed: 131047, outside the window.
    let failed = payload(
        "messages",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
            "statuses": [{"id": wamid, "status": "failed", "timestamp": unix_now(),
                "recipient_id": WA_ID,
                "errors": [{"code": 131047, "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]}]}),
    );
    let (status, body) = post_payload(&client, addr, &failed, Some(APP_SECRET)).await?;
    println!("9. POST /meta/webhook (status failed, 131047, signed) -> {status}{body}");
    ensure(status == 200, format!("a signed status answered {status}"))?;

    // 10. The window counts as closed: freeform now needs a template.
    let decision = app.business.check(freeform).await?;
    println!(
        "10. check freeform -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.verdict == Verdict::TemplateRequired && decision.reason == Reason::WindowClosed,
        format!(
            "freeform after 131047 is {} {}",
            decision.verdict, decision.reason
        ),
    )?;

    // 11. Marketing is still allowed by the opt-in.
    let sale = SendRequest::new(
        SENDER,
        USER,
        Content::template("spring_sale", "en", Variables::positional(["20%"])),
    );
    let decision = app.business.check(sale).await?;
    println!(
        "11. check spring_sale -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.verdict == Verdict::Allow,
        format!(
            "marketing before the stop is {} {}",
            decision.verdict, decision.reason
        ),
    )?;

    // 12. The user stops marketing messages in WhatsApp; Meta posts it.
    let stop = payload(
        "user_preferences",
        json!({"messaging_product": "whatsapp", "metadata": metadata(),
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": WA_ID}],
            "user_preferences": [{"wa_id": WA_ID, "category": "marketing_messages",
                "value": "stop", "detail": "User requested to stop marketing messages",
                "timestamp": unix_now()}]}),
    );
    let (status, body) = post_payload(&client, addr, &stop, Some(APP_SECRET)).await?;
    println!("12. POST /meta/webhook (user_preferences marketing stop, signed) -> {status}{body}");
    ensure(
        status == 200,
        format!("a signed preference answered {status}"),
    )?;

    // 13. The sale is denied and never reaches Meta; updates still go.
    let taken = TAKEN.load(Ordering::Relaxed);
    let (status, outcome) = post_send(
        &client,
        addr,
        &json!({"key": "spring-sale-1", "to": USER, "purpose": "marketing",
            "template": {"name": "spring_sale", "language": "en", "variables": ["20%"]}}),
    )
    .await?;
    println!("13. POST /send (spring_sale) -> {status}: {outcome}");
    ensure(status == 200, format!("/send answered {status}"))?;
    let verdict = outcome.get("decision").and_then(Value::as_str);
    let reason = outcome.get("reason").and_then(Value::as_str);
    ensure(
        verdict == Some("deny") && reason == Some("marketing_opted_out"),
        format!("marketing after the stop is {verdict:?} {reason:?}"),
    )?;
    ensure(
        outcome.get("delivery").and_then(Value::as_str) == Some("not_sent")
            && TAKEN.load(Ordering::Relaxed) == taken,
        "the denied sale reached the Graph API",
    )?;
    let update = SendRequest::new(
        SENDER,
        USER,
        Content::template(
            "order_update",
            "en",
            Variables::positional(["1042", "delivered"]),
        ),
    );
    let decision = app.business.check(update).await?;
    println!(
        "    check order_update -> {} {}",
        decision.verdict, decision.reason
    );
    ensure(
        decision.verdict == Verdict::Allow,
        format!(
            "a utility template after the marketing stop is {} {}",
            decision.verdict, decision.reason
        ),
    )?;
    Ok(())
}
