//! `wagate demo`: the rules told as a story, through the real gate on a
//! temporary database and a recording transport.

use std::io::Write;
use std::sync::Arc;

use wagate::transport::{RecordingTransport, TransportError};
use wagate::{
    Action, Address, Business, Category, ConsentEvent, Content, DeliveryStatus, Event, Gate,
    InboundMessage, ManualClock, Purpose, Scope, SendRequest, StatusCallback, TemplateBody,
    TemplateRecord, TemplateStatus, TemplateStatusUpdate, Timestamp, Variables,
};

type IoResult<T> = std::io::Result<T>;

/// A private directory in the temp dir (created new, so nobody else's
/// file is reused), removed with the demo database on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> IoResult<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("wagate-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Story<'a, W: Write> {
    b: Business,
    clock: Arc<ManualClock>,
    transport: RecordingTransport,
    out: &'a mut W,
    shop: Address,
    ana: Address,
}

fn ts(s: &str) -> Timestamp {
    // The story's own constants: all valid RFC 3339.
    Timestamp::parse(s).unwrap_or(Timestamp::from_millis(0))
}

fn short(t: Timestamp) -> String {
    let s = t.to_rfc3339().replacen('T', " ", 1);
    s.get(..16).unwrap_or(&s).to_owned()
}

fn other<E: std::fmt::Display>(e: E) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl<W: Write> Story<'_, W> {
    fn section(&mut self, title: &str) -> IoResult<()> {
        writeln!(self.out, "\n== {title}")
    }

    fn note(&mut self, text: &str) -> IoResult<()> {
        writeln!(self.out, "{:18}{text}", "")
    }

    fn event(&mut self, at: &str, what: &str, event: Event) -> IoResult<()> {
        self.clock.set(ts(at));
        let o = self.b.ingest(&event).map_err(other)?;
        let mut result = String::from("recorded");
        if o.duplicate {
            result = "duplicate: changes nothing".into();
        } else if let Some(k) = o.keyword {
            result = format!(
                "keyword: {}",
                serde_json::to_string(&k)
                    .unwrap_or_default()
                    .trim_matches('"')
            );
        } else if o.linked {
            result = "links the two addresses: one person".into();
        } else if o.opened_window {
            result = "opens the window".into();
        }
        if let Some(code) = o.feedback {
            result = format!("provider error {code} takes effect");
        }
        writeln!(self.out, "{:18}{:<56}{}", short(ts(at)), what, result)
    }

    fn row(&mut self, at: &str, what: &str, d: &wagate::Decision, extra: &str) -> IoResult<()> {
        let window = match (d.facts.window_closes_at, d.facts.window_open) {
            (Some(end), true) => format!("window open until {}", short(end)),
            (Some(_), false) if d.facts.window_closed_by_provider_at.is_some() => {
                "window closed by a provider error".into()
            }
            (Some(end), false) => format!("window closed {}", short(end)),
            (None, _) => "no window".into(),
        };
        writeln!(
            self.out,
            "{:18}{:<56}{:<18}{:<22}{}{}",
            short(ts(at)),
            what,
            d.verdict.as_str(),
            d.reason.as_str(),
            window,
            extra
        )?;
        self.note(&format!("  why: {}", d.reason.describe()))
    }

    fn check(&mut self, at: &str, what: &str, req: &SendRequest) -> IoResult<()> {
        self.clock.set(ts(at));
        let d = self.b.check(req).map_err(other)?;
        self.row(at, &format!("check: {what}"), &d, "")
    }

    fn send(&mut self, at: &str, what: &str, req: &SendRequest, key: &str) -> IoResult<()> {
        self.clock.set(ts(at));
        let o = self.b.send(req, key, &self.transport).map_err(other)?;
        let extra = if o.duplicate() {
            "  [duplicate key: not sent again]"
        } else if o.sent() {
            "  [sent]"
        } else if o.decision.is_allowed() {
            "  [refused by the provider]"
        } else {
            "  [not sent]"
        };
        self.row(at, &format!("send {key}: {what}"), &o.decision, extra)
    }

    fn freeform(&self, text: &str) -> SendRequest {
        SendRequest::between(self.shop.clone(), self.ana.clone(), Content::text(text))
    }

    fn template(&self, name: &str, vars: Variables) -> SendRequest {
        SendRequest::between(
            self.shop.clone(),
            self.ana.clone(),
            Content::template(name, "en", vars),
        )
    }

    fn inbound(&self, body: &str, at: &str, id: &str) -> Event {
        Event::Inbound(
            InboundMessage::text(self.ana.clone(), self.shop.clone(), body, ts(at)).with_id(id),
        )
    }
}

fn template(name: &str, category: Category, status: &str, body: &str, at: &str) -> IoResult<Event> {
    Ok(Event::Template(TemplateRecord {
        name: name.into(),
        language: "en".into(),
        category,
        status: TemplateStatus::parse(status).map_err(other)?,
        body: TemplateBody::parse(body).map_err(other)?,
        at: ts(at),
        received_at: None,
        twilio_content_sid: None,
        meta_template_id: None,
    }))
}

/// Runs the demo, printing the timeline to `out`, on a temporary database,
/// or on a new one at `keep` (kept afterwards, to explore with the other
/// commands; business `acme-shop`).
pub fn run<W: Write>(out: &mut W, keep: Option<&std::path::Path>) -> IoResult<u8> {
    let file = TempDir::new()?;
    let db = match keep {
        Some(path) if path.exists() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists: the demo writes a new database (give a new path, or none for a temporary one)",
                    path.display()
                ),
            ));
        }
        Some(path) => path.to_owned(),
        None => file.0.join("demo.db"),
    };
    let clock = Arc::new(ManualClock::new(ts("2026-03-01T08:00:00Z")));
    let gate = Gate::open(&db).map_err(other)?.with_clock(clock.clone());
    let b = gate.business("acme-shop").map_err(other)?;
    let shop = Address::parse("whatsapp:+14155238886").map_err(other)?;
    let ana = Address::parse("whatsapp:+15550001111").map_err(other)?;
    writeln!(
        out,
        "wagate demo: one shop (sender {shop}) and one customer, Ana ({ana})."
    )?;
    writeln!(
        out,
        "Every decision below comes from the real gate on a temporary SQLite file ({}).",
        db.display()
    )?;
    writeln!(
        out,
        "Allowed messages go to a recording transport; nothing leaves this machine."
    )?;
    writeln!(
        out,
        "\n{:18}{:<56}{:<18}{:<22}WINDOW",
        "TIME (UTC)", "EVENT", "DECISION", "REASON"
    )?;
    let mut s = Story {
        b,
        clock,
        transport: RecordingTransport::new(),
        out,
        shop,
        ana,
    };

    s.section("Consent comes first (R3). A user message is never an opt-in by itself.")?;
    s.event(
        "2026-03-01T08:00:00Z",
        "Ana ticks the WhatsApp box on the signup form",
        Event::Consent(
            ConsentEvent::new(
                s.ana.clone(),
                Action::OptIn,
                Scope::All,
                ts("2026-03-01T08:00:00Z"),
                "web_form",
            )
            .with_evidence("signup form v3, checkbox ticked, IP 203.0.113.7"),
        ),
    )?;
    s.event(
        "2026-03-01T08:00:00Z",
        "template order_update (utility) approved",
        template(
            "order_update",
            Category::Utility,
            "approved",
            "Your order {{1}} is {{2}}.",
            "2026-03-01T08:00:00Z",
        )?,
    )?;
    s.event(
        "2026-03-01T08:00:00Z",
        "template spring_sale (marketing) approved",
        template(
            "spring_sale",
            Category::Marketing,
            "approved",
            "Hi {{name}}, {{discount}} off everything today!",
            "2026-03-01T08:00:00Z",
        )?,
    )?;
    let hi = s.freeform("Hi Ana, welcome!");
    s.check("2026-03-01T09:00:00Z", "freeform \"Hi Ana, welcome!\"", &hi)?;
    let update = s.template("order_update", Variables::positional(["A-17", "confirmed"]));
    s.send(
        "2026-03-01T09:00:00Z",
        "template order_update",
        &update,
        "out-1",
    )?;

    s.section("The 24-hour customer service window (R2): opened only by the user's own message.")?;
    let where_is = s.inbound("Where is my order?", "2026-03-01T10:00:00Z", "SMin-1");
    s.event(
        "2026-03-01T10:00:00Z",
        "Ana writes \"Where is my order?\"",
        where_is.clone(),
    )?;
    s.event(
        "2026-03-01T10:00:30Z",
        "the same webhook arrives again",
        where_is,
    )?;
    let reply = s.freeform("It ships today.");
    s.send(
        "2026-03-01T10:05:00Z",
        "freeform \"It ships today.\"",
        &reply,
        "out-2",
    )?;
    s.send(
        "2026-03-01T10:05:02Z",
        "the same send, retried",
        &reply,
        "out-2",
    )?;
    s.check(
        "2026-03-02T09:59:59Z",
        "freeform, one second before the end",
        &reply,
    )?;
    s.check(
        "2026-03-02T10:00:00Z",
        "freeform, exactly 24h later",
        &reply,
    )?;
    let shipped = s.template("order_update", Variables::positional(["A-17", "shipped"]));
    s.send(
        "2026-03-02T10:01:00Z",
        "template order_update instead",
        &shipped,
        "out-3",
    )?;

    s.section("Templates (R5): only approved ones, with variables that fit.")?;
    s.event(
        "2026-03-02T11:00:00Z",
        "Meta pauses spring_sale (status webhook)",
        Event::TemplateStatus(TemplateStatusUpdate {
            name: "spring_sale".into(),
            language: "en".into(),
            status: TemplateStatus::parse("PAUSED").map_err(other)?,
            at: ts("2026-03-02T11:00:00Z"),
            received_at: None,
            twilio_content_sid: None,
            meta_template_id: None,
        }),
    )?;
    let sale = s.template(
        "spring_sale",
        Variables::named([("name", "Ana"), ("discount", "20%")]),
    );
    s.check("2026-03-02T11:05:00Z", "template spring_sale", &sale)?;
    s.event(
        "2026-03-02T12:00:00Z",
        "spring_sale approved again",
        template(
            "spring_sale",
            Category::Marketing,
            "APPROVED",
            "Hi {{name}}, {{discount}} off everything today!",
            "2026-03-02T12:00:00Z",
        )?,
    )?;
    let bad_vars = s.template(
        "spring_sale",
        Variables::named([("name", "Ana\nSilva"), ("discount", "20%")]),
    );
    s.check(
        "2026-03-02T12:05:00Z",
        "spring_sale with a line break in {{name}}",
        &bad_vars,
    )?;
    s.check("2026-03-02T12:05:00Z", "template spring_sale", &sale)?;

    s.section("Opt-out (R4, R6): STOP is honoured at once; one confirmation, then silence.")?;
    s.event(
        "2026-03-03T09:00:00Z",
        "Ana writes \" Stop! \"",
        s.inbound(" Stop! ", "2026-03-03T09:00:00Z", "SMin-2"),
    )?;
    let confirm = s
        .freeform("You are unsubscribed. Reply START to resume.")
        .with_purpose(Purpose::OptOutConfirmation);
    s.send(
        "2026-03-03T09:01:00Z",
        "confirmation of the opt-out",
        &confirm,
        "out-4",
    )?;
    s.send(
        "2026-03-03T09:02:00Z",
        "a second confirmation",
        &confirm,
        "out-5",
    )?;
    s.check("2026-03-03T09:30:00Z", "template order_update", &shipped)?;
    s.event(
        "2026-03-03T10:00:00Z",
        "Ana writes \"yes\" (counts: she is opted out)",
        s.inbound("yes", "2026-03-03T10:00:00Z", "SMin-3"),
    )?;
    s.check("2026-03-03T10:01:00Z", "template order_update", &shipped)?;

    s.section("Marketing opt-out (R3): Meta's \"stop promotions\" blocks marketing only.")?;
    s.event(
        "2026-03-03T11:00:00Z",
        "Meta user_preferences: marketing stop",
        Event::Consent(ConsentEvent::new(
            s.ana.clone(),
            Action::OptOut,
            Scope::Marketing,
            ts("2026-03-03T11:00:00Z"),
            "provider_preference",
        )),
    )?;
    s.check(
        "2026-03-03T11:05:00Z",
        "template spring_sale (marketing)",
        &sale,
    )?;
    s.check(
        "2026-03-03T11:05:00Z",
        "template order_update (utility)",
        &shipped,
    )?;

    s.section("Provider feedback (R7): errors teach the gate what the provider saw.")?;
    s.event(
        "2026-03-04T09:00:00Z",
        "Ana writes \"thanks!\"",
        s.inbound("thanks!", "2026-03-04T09:00:00Z", "SMin-4"),
    )?;
    let welcome = s.freeform("You're welcome!");
    s.send(
        "2026-03-04T09:10:00Z",
        "freeform \"You're welcome!\"",
        &welcome,
        "out-6",
    )?;
    s.event(
        "2026-03-04T09:10:05Z",
        "status callback: failed, Meta 131047 (window)",
        Event::Status(
            StatusCallback::new("out-6", DeliveryStatus::Failed, ts("2026-03-04T09:10:05Z"))
                .with_error(131047),
        ),
    )?;
    s.check("2026-03-04T09:11:00Z", "freeform retry", &welcome)?;
    s.event(
        "2026-03-04T09:20:00Z",
        "Ana writes again",
        s.inbound("hello?", "2026-03-04T09:20:00Z", "SMin-5"),
    )?;
    s.check("2026-03-04T09:21:00Z", "freeform", &welcome)?;
    s.transport.fail_next(TransportError {
        transient: false,
        code: Some(21610),
        message: "Attempt to send to unsubscribed recipient".into(),
    });
    s.send(
        "2026-03-04T09:22:00Z",
        "freeform; Twilio answers 21610",
        &welcome,
        "out-7",
    )?;
    s.check("2026-03-04T09:23:00Z", "freeform", &welcome)?;

    s.section(
        "People (R8): a username (business-scoped id) and a phone are one person once linked.",
    )?;
    let carla = Address::parse("whatsapp:+447700900777").map_err(other)?;
    let username = Address::from_bsuid("US.13491208655302741918").map_err(other)?;
    s.event(
        "2026-03-04T11:00:00Z",
        "Carla (+447700900777) opts in on the web form",
        Event::Consent(ConsentEvent::new(
            carla.clone(),
            Action::OptIn,
            Scope::All,
            ts("2026-03-04T11:00:00Z"),
            "web_form",
        )),
    )?;
    s.event(
        "2026-03-04T11:05:00Z",
        "a message from a username: no phone, BSUID US.1349...",
        Event::Inbound(
            InboundMessage::text(
                username.clone(),
                s.shop.clone(),
                "hi, it's Carla",
                ts("2026-03-04T11:05:00Z"),
            )
            .with_id("wamid.c1"),
        ),
    )?;
    let to_carla = SendRequest::between(s.shop.clone(), carla.clone(), Content::text("Hi Carla"));
    s.check(
        "2026-03-04T11:06:00Z",
        "freeform to Carla's phone (not linked yet)",
        &to_carla,
    )?;
    s.event(
        "2026-03-04T11:10:00Z",
        "a message carrying both the phone and the BSUID",
        Event::Inbound(
            InboundMessage::text(
                carla.clone(),
                s.shop.clone(),
                "sorry, new app",
                ts("2026-03-04T11:10:00Z"),
            )
            .with_user_id(username.clone())
            .with_id("wamid.c2"),
        ),
    )?;
    s.check(
        "2026-03-04T11:11:00Z",
        "freeform to Carla's phone",
        &to_carla,
    )?;
    s.event(
        "2026-03-04T11:20:00Z",
        "STOP from the username side",
        Event::Inbound(
            InboundMessage::text(username, s.shop.clone(), "STOP", ts("2026-03-04T11:20:00Z"))
                .with_id("wamid.c3"),
        ),
    )?;
    let update = SendRequest::between(
        s.shop.clone(),
        carla,
        Content::template(
            "order_update",
            "en",
            Variables::positional(["C-3", "ready"]),
        ),
    );
    s.check(
        "2026-03-04T11:30:00Z",
        "order_update to Carla's phone",
        &update,
    )?;

    s.section("Everyone else: no consent, no window, no message.")?;
    let ben = SendRequest::new(
        s.shop.as_str(),
        "whatsapp:+447700900123",
        Content::template(
            "order_update",
            "en",
            Variables::positional(["B-1", "ready"]),
        ),
    );
    s.check(
        "2026-03-04T12:00:00Z",
        "order_update to Ben, who never opted in",
        &ben,
    )?;
    let bad = SendRequest::new(s.shop.as_str(), "whatsapp:+0123", Content::text("hi"));
    s.check("2026-03-04T12:00:00Z", "freeform to whatsapp:+0123", &bad)?;

    let history = s.b.consent_history(&s.ana).map_err(other)?;
    let sent = s.transport.sent().len();
    writeln!(
        s.out,
        "\n== The audit trail of Ana's consent (wagate history), oldest first:"
    )?;
    for r in &history {
        let counted = if r.conditional && !r.counted {
            "  (not counted)"
        } else {
            ""
        };
        writeln!(
            s.out,
            "{:18}{:<8} {:<10} source={:<20} {}{}",
            short(r.effective),
            r.action.as_str(),
            r.scope.as_str(),
            r.source,
            r.evidence.as_deref().unwrap_or(""),
            counted
        )?;
    }
    writeln!(
        s.out,
        "\n{sent} messages reached the recording transport. Try: wagate replay FILE, wagate --help."
    )?;
    Ok(0)
}
