//! Applying events: inbound messages, consent, templates, status callbacks
//! and links (RULES R2-R5, R7, R8).

use super::commit::{Done, Work};
use super::{Business, received};
use crate::address::{Address, AddressError};
use crate::chain::{Digest, Hash};
use crate::error::{Error, Result};
use crate::event::{
    ConsentEvent, Event, InboundMessage, IngestOutcome, LinkEvent, MessageKind, StatusCallback,
    TemplateStatusUpdate,
};
use crate::policy::{Action, Feedback, Keyword, Scope, TemplateStatus, feedback_effect};
use crate::store::{
    ExternalFeedback, InboundInsert, NewConsent, NewInbound, NewLink, Queries, SendRow, WindowRaise,
};
use crate::time::{Timestamp, effective};

/// A digest of what an inbound message says: its addresses, sender,
/// kind, body and referral, not its times (a redelivery may be dated
/// anew). Two messages under one id are the same iff these are equal.
pub(super) fn inbound_fingerprint(m: &InboundMessage) -> Hash {
    let mut d = Digest::new();
    d.field(b"wagate.inbound.v1");
    d.field(m.from.as_str().as_bytes());
    d.field(m.user_id.as_ref().map_or("", Address::as_str).as_bytes());
    d.field(m.to.as_str().as_bytes());
    d.field(m.kind.as_str().as_bytes());
    match &m.body {
        None => d.field(b"0"),
        Some(b) => {
            d.field(b"1");
            d.field(b.as_bytes());
        }
    }
    d.field(m.referral.map_or("", |r| r.as_str()).as_bytes());
    d.finish()
}

fn non_empty(what: &'static str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        Err(Error::Template(crate::policy::TemplateError::Empty(what)))
    } else {
        Ok(())
    }
}

/// Text that SQLite would cut at a NUL character is refused, so that what
/// is stored (and hashed into the chain) is what was given.
fn no_nul(what: &str, v: &str) -> Result<()> {
    if v.contains('\0') {
        Err(Error::InvalidEvent(format!(
            "{what} must not contain a NUL character"
        )))
    } else {
        Ok(())
    }
}

/// A sender must be a phone (RULES R1).
fn sender_phone(a: &Address) -> Result<()> {
    if a.is_phone() {
        Ok(())
    } else {
        Err(AddressError::NotPhone(a.as_str().to_owned()).into())
    }
}

impl Business {
    /// Ingests one event in its own transaction.
    ///
    /// ```
    /// use wagate::{Address, Event, Gate, InboundMessage, Timestamp};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let user = Address::parse("whatsapp:+15550001111")?;
    /// let sender = Address::parse("whatsapp:+14155238886")?;
    /// let at = Timestamp::parse("2026-03-01T10:00:00Z")?;
    /// let msg = InboundMessage::text(user, sender, "STOP", at).with_id("SM1");
    /// let first = acme.ingest(&Event::Inbound(msg.clone()))?;
    /// assert!(first.opened_window && !first.duplicate);
    /// assert!(acme.ingest(&Event::Inbound(msg))?.duplicate);
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// A typed error naming the problem with the event (nothing is
    /// written), or a store error.
    pub fn ingest(&self, event: &Event) -> Result<IngestOutcome> {
        match self.gate.commit(self, Work::Ingest(event.clone()))? {
            Done::Ingest(outcome) => Ok(outcome),
            _ => Err(Error::Background(
                "group commit answered another job".into(),
            )),
        }
    }

    /// Ingests events in one transaction. Each event is applied in a
    /// savepoint: a bad one is reported in its slot and leaves no trace,
    /// the others land together.
    ///
    /// # Errors
    /// A store error that fails the whole batch (then nothing landed).
    pub fn ingest_batch(&self, events: &[Event]) -> Result<Vec<Result<IngestOutcome>>> {
        self.gate
            .write_items(events, |db, e, now| self.apply(db, e, now))
    }

    /// Ingests events all together or not at all: one transaction, and
    /// the first event that fails rolls every one back. For a provider
    /// payload that carries several events (a Meta webhook), so a retry
    /// of the whole payload finds nothing half applied.
    ///
    /// ```
    /// use wagate::{Address, Event, Gate, InboundMessage, Timestamp};
    /// let acme = Gate::open_in_memory()?.business("acme")?;
    /// let (user, shop) = (Address::parse("+15550001111")?, Address::parse("+14155238886")?);
    /// let at = Timestamp::parse("2026-03-01T10:00:00Z")?;
    /// let ok = Event::Inbound(InboundMessage::text(user.clone(), shop.clone(), "hi", at).with_id("m1"));
    /// let bad = Event::Inbound(InboundMessage::text(user, shop, "other text", at).with_id("m1"));
    /// let err = acme.ingest_all(&[ok.clone(), bad]).unwrap_err();
    /// assert!(matches!(err, wagate::Error::InBatch { index: 1, .. }));
    /// // Nothing landed: the first event is new again.
    /// assert!(!acme.ingest_all(&[ok])?[0].duplicate);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InBatch`] naming the first event that failed, or a store
    /// error; in both cases nothing was written.
    pub fn ingest_all(&self, events: &[Event]) -> Result<Vec<IngestOutcome>> {
        // No savepoints: the first event that fails rolls the whole
        // transaction back.
        self.gate.write(|w| {
            let now = self.gate.clock.now();
            let db = w.queries();
            events
                .iter()
                .enumerate()
                .map(|(index, e)| {
                    // A store failure stays what it is (and is retried on
                    // PostgreSQL when it lost a race); an event's own
                    // error is named by its position.
                    self.apply(db, e, now).map_err(|source| {
                        if source.is_store_failure() {
                            source
                        } else {
                            Error::InBatch {
                                index,
                                source: Box::new(source),
                            }
                        }
                    })
                })
                .collect()
        })
    }

    pub(super) fn apply(
        &self,
        db: &dyn Queries,
        event: &Event,
        now: Timestamp,
    ) -> Result<IngestOutcome> {
        match event {
            Event::Inbound(m) => self.inbound(db, m, now),
            Event::Consent(c) => self.consent(db, c, now),
            Event::Template(t) => {
                non_empty("name", &t.name)?;
                non_empty("language", &t.language)?;
                db.put_template(self.id, t, received(t.received_at, now))?;
                Ok(IngestOutcome::default())
            }
            Event::TemplateStatus(s) => {
                non_empty("name", &s.name)?;
                non_empty("language", &s.language)?;
                // Kept even before the template is registered (R5).
                db.set_template_status(self.id, s, received(s.received_at, now), "status_update")?;
                Ok(IngestOutcome::default())
            }
            Event::Status(s) => self.status(db, s, now),
            Event::Link(l) => self.link(db, l, now),
        }
    }

    fn consent(&self, db: &dyn Queries, c: &ConsentEvent, now: Timestamp) -> Result<IngestOutcome> {
        if c.source.trim().is_empty() {
            return Err(Error::InvalidEvent(
                "consent source must not be empty".into(),
            ));
        }
        no_nul("source", &c.source)?;
        no_nul("evidence", c.evidence.as_deref().unwrap_or_default())?;
        if c.conditional && (c.action, c.scope) != (Action::OptIn, Scope::All) {
            return Err(Error::InvalidEvent(
                "conditional is only for an opt_in of scope all (a keyword opt-in, RULES R4)"
                    .into(),
            ));
        }
        let user = db.ensure_address(self.id, &c.user)?;
        db.add_consent(
            self.r(),
            &user,
            &NewConsent {
                action: c.action,
                scope: c.scope,
                at: c.at,
                received_at: received(c.received_at, now),
                conditional: c.conditional,
                source: &c.source,
                evidence: c.evidence.as_deref(),
            },
        )?;
        Ok(IngestOutcome::default())
    }

    fn link(&self, db: &dyn Queries, l: &LinkEvent, now: Timestamp) -> Result<IngestOutcome> {
        if !l.phone.is_phone() || !l.bsuid.is_bsuid() {
            return Err(Error::InvalidEvent(format!(
                "a link joins a phone and a business-scoped user id, not {} and {}",
                l.phone, l.bsuid
            )));
        }
        non_empty("source", &l.source)?;
        let phone = db.ensure_address(self.id, &l.phone)?;
        let bsuid = db.ensure_address(self.id, &l.bsuid)?;
        let linked = db.link(
            self.id,
            &NewLink {
                phone: &phone,
                bsuid: &bsuid,
                at: l.at,
                received_at: received(l.received_at, now),
                source: &l.source,
            },
        )?;
        Ok(IngestOutcome {
            linked,
            ..IngestOutcome::default()
        })
    }

    fn inbound(
        &self,
        db: &dyn Queries,
        m: &InboundMessage,
        now: Timestamp,
    ) -> Result<IngestOutcome> {
        let keyword = match (m.kind, &m.body) {
            (MessageKind::Text, Some(body)) => self.gate.config.keywords.classify(body),
            (MessageKind::Text, None) => {
                return Err(Error::InvalidEvent("a text message needs a body".into()));
            }
            _ => None,
        };
        if m.id.as_deref().is_some_and(str::is_empty) {
            return Err(Error::InvalidEvent("message id must not be empty".into()));
        }
        no_nul("message id", m.id.as_deref().unwrap_or_default())?;
        sender_phone(&m.to)?;
        let also = match &m.user_id {
            None => None,
            Some(b) if b == &m.from => None,
            Some(b) if !b.is_bsuid() => {
                return Err(Error::InvalidEvent(format!(
                    "user_id must be a business-scoped user id, not {b}"
                )));
            }
            Some(b) if m.from.is_bsuid() => {
                return Err(Error::InvalidEvent(format!(
                    "the message comes from {} and names another business-scoped id {b}: a link joins a phone and a business-scoped id",
                    m.from
                )));
            }
            Some(b) => Some(b),
        };
        let received = received(m.received_at, now);
        let eff = effective(m.at, received);
        let user = db.ensure_address(self.id, &m.from)?;
        let also = also.map(|b| db.ensure_address(self.id, b)).transpose()?;
        if let Some(id) = &m.id {
            let found = db.insert_inbound(
                self.id,
                &NewInbound {
                    id,
                    user: user.id,
                    also: also.as_ref().map(|a| a.id),
                    sender: m.to.as_str(),
                    kind: m.kind,
                    at: m.at,
                    received_at: received,
                    keyword,
                    referral: m.referral,
                    fingerprint: inbound_fingerprint(m),
                },
            )?;
            match found {
                InboundInsert::New => {}
                // The same message again changes nothing (R2).
                InboundInsert::Duplicate => {
                    return Ok(IngestOutcome {
                        duplicate: true,
                        ..IngestOutcome::default()
                    });
                }
                InboundInsert::Conflict => return Err(Error::MessageIdReused(id.clone())),
            }
        }
        let linked = match &also {
            Some(b) => {
                let source = format!("inbound {}", m.id.as_deref().unwrap_or("(no id)"));
                db.link(
                    self.id,
                    &NewLink {
                        phone: &user,
                        bsuid: b,
                        at: m.at,
                        received_at: received,
                        source: &source,
                    },
                )?
            }
            None => false,
        };
        let opened = m.kind.opens_window();
        if opened {
            let raise = WindowRaise::inbound(user.id, m.to.as_str(), eff, m.referral.is_some());
            db.raise_window(self.id, &raise)?;
        }
        let action = match keyword {
            Some(Keyword::OptOut) => Some((Action::OptOut, false)),
            Some(Keyword::OptIn) => Some((Action::OptIn, true)),
            _ => None,
        };
        if let Some((action, conditional)) = action {
            let evidence = format!(
                "keyword {:?} in message {} from {} to {}",
                crate::policy::normalize_keyword(m.body.as_deref().unwrap_or_default()),
                m.id.as_deref().unwrap_or("(no id)"),
                m.from,
                m.to
            );
            db.add_consent(
                self.r(),
                &user,
                &NewConsent {
                    action,
                    scope: Scope::All,
                    at: m.at,
                    received_at: received,
                    conditional,
                    source: "keyword",
                    evidence: Some(&evidence),
                },
            )?;
        }
        Ok(IngestOutcome {
            duplicate: false,
            keyword,
            opened_window: opened,
            feedback: None,
            linked,
        })
    }

    fn status(
        &self,
        db: &dyn Queries,
        s: &StatusCallback,
        now: Timestamp,
    ) -> Result<IngestOutcome> {
        let received = received(s.received_at, now);
        let Some(send) = db.send_by_provider_id(self.id, &s.id)? else {
            return self.status_elsewhere(db, s, received);
        };
        // Pricing comes with the status that moved the message forward; a
        // late, older callback does not overwrite it.
        if db.advance_status(send.id, s.status)?
            && let Some(p) = &s.pricing
        {
            db.set_pricing(send.id, p)?;
        }
        let mut out = IngestOutcome::default();
        if let Some(code) = s.error_code
            && self.feedback(db, &send, code, received)?
        {
            out.feedback = Some(code);
        }
        Ok(out)
    }

    /// A callback for a message the gate never sent (R7): its user-level
    /// effects apply at the callback's own time, each (id, code) once.
    fn status_elsewhere(
        &self,
        db: &dyn Queries,
        s: &StatusCallback,
        received: Timestamp,
    ) -> Result<IngestOutcome> {
        let (Some(sender), Some(user)) = (&s.from, &s.to) else {
            return Err(Error::UnknownMessage(s.id.clone()));
        };
        sender_phone(sender)?;
        let mut out = IngestOutcome::default();
        let Some(code) = s.error_code else {
            return Ok(out);
        };
        let effect = match feedback_effect(code) {
            Some(e @ (Feedback::WindowClosed | Feedback::OptOut(_))) => e,
            // Template codes need the template: nothing to apply.
            _ => return Ok(out),
        };
        let row = db.ensure_address(self.id, user)?;
        let feedback = ExternalFeedback {
            provider_id: &s.id,
            code,
            sender: sender.as_str(),
            user: row.id,
            at: s.at,
            received_at: received,
        };
        if !db.mark_external_feedback(self.id, &feedback)? {
            return Ok(out);
        }
        match effect {
            Feedback::WindowClosed => {
                let through = effective(s.at, received);
                db.raise_window(
                    self.id,
                    &WindowRaise::closed(row.id, sender.as_str(), through),
                )?;
            }
            Feedback::OptOut(scope) => {
                let evidence = format!(
                    "provider error {code} on message {} sent elsewhere from {sender}",
                    s.id
                );
                db.add_consent(
                    self.r(),
                    &row,
                    &NewConsent {
                        action: Action::OptOut,
                        scope,
                        at: s.at,
                        received_at: received,
                        conditional: false,
                        source: "provider_error",
                        evidence: Some(&evidence),
                    },
                )?;
            }
            Feedback::Template(_) => {}
        }
        out.feedback = Some(code);
        Ok(out)
    }

    /// Applies a provider error code about `send` once (RULES R7); returns
    /// whether it took effect now.
    pub(super) fn feedback(
        &self,
        db: &dyn Queries,
        send: &SendRow,
        code: u32,
        received: Timestamp,
    ) -> Result<bool> {
        let Some(effect) = feedback_effect(code) else {
            return Ok(false);
        };
        if !db.mark_feedback(self.id, send.id, code, received)? {
            return Ok(false);
        }
        let s = send.at;
        // The effect is dated at the send, whenever the callback arrived;
        // a callback stamped before `s` (clock skew) must not move it earlier.
        let received = received.max(s);
        let evidence = match &send.provider_id {
            Some(pid) => format!("provider error {code} on message {pid} (send {})", send.key),
            None => format!("provider error {code} refusing send {}", send.key),
        };
        let user = send.user_id.map(|id| db.address_by_id(id)).transpose()?;
        match (effect, user) {
            (Feedback::WindowClosed, Some(u)) => {
                db.raise_window(self.id, &WindowRaise::closed(u.id, &send.sender, s))?;
            }
            (Feedback::OptOut(scope), Some(u)) => {
                db.add_consent(
                    self.r(),
                    &u,
                    &NewConsent {
                        action: Action::OptOut,
                        scope,
                        at: s,
                        received_at: received,
                        conditional: false,
                        source: "provider_error",
                        evidence: Some(&evidence),
                    },
                )?;
            }
            (Feedback::Template(status), _) => {
                if let Some((name, language)) = &send.template {
                    let update = TemplateStatusUpdate {
                        name: name.clone(),
                        language: language.clone(),
                        status: TemplateStatus::parse(status)?,
                        at: s,
                        received_at: Some(received),
                        twilio_content_sid: None,
                        meta_template_id: None,
                    };
                    db.set_template_status(self.id, &update, received, "provider_error")?;
                }
            }
            (_, None) => {}
        }
        Ok(true)
    }
}
