//! Sending: decide and reserve in one transaction, hand the message to the
//! transport with no transaction open, record the answer (RULES R6, R7).

use super::commit::{Done, Work};
use super::{Business, Delivery, SendOutcome};
use crate::address::{Address, AddressError};
use crate::chain::{Digest, Hash};
use crate::error::{Error, Result};
use crate::policy::{Content, Decision, SendRequest, Verdict};
use crate::store::{NewSend, Queries, SendAnswer, SendState};
use crate::time::Timestamp;
use crate::transport::{Accepted, Failure, OutboundMessage, Transport};

/// A digest of a send request as given: sender, recipient, content (text,
/// or template, language and variables in the form given) and purpose.
/// A key that comes back with another digest is another request (R7).
pub(super) fn request_fingerprint(req: &SendRequest) -> Hash {
    let raw = |a: Result<&Address, &AddressError>| match a {
        Ok(a) => a.as_str().to_owned(),
        Err(e) => format!("invalid:{}", e.input()),
    };
    let mut d = Digest::new();
    d.field(b"wagate.request.v1");
    d.field(raw(req.sender()).as_bytes());
    d.field(raw(req.user()).as_bytes());
    match req.content() {
        Content::Freeform { text, media } => {
            d.field(b"freeform");
            d.field(text.as_bytes());
            // Only when present, so text-only requests keep the digests
            // recorded before media existed.
            if !media.is_empty() {
                d.field(b"media");
                d.field(media.len().to_string().as_bytes());
                for url in media {
                    d.field(url.as_bytes());
                }
            }
        }
        Content::Template {
            name,
            language,
            variables,
        } => {
            d.field(b"template");
            d.field(name.as_bytes());
            d.field(language.as_bytes());
            let (shape, values) = variables.as_given();
            d.field(shape.as_bytes());
            for (k, v) in values {
                d.field(k.as_bytes());
                d.field(v.as_bytes());
            }
        }
    }
    match req.purpose() {
        None => d.field(b"0"),
        Some(p) => {
            d.field(b"1");
            d.field(p.as_str().as_bytes());
        }
    }
    d.finish()
}

pub(super) enum Reserved {
    Done(Box<SendOutcome>),
    Go(Box<(Decision, i64, OutboundMessage)>),
}

/// A transport's answer, as the store records it.
pub(super) enum Answer {
    /// Accepted, with the provider's message id.
    Accepted(String),
    /// Refused.
    Refused {
        transient: bool,
        code: Option<u32>,
        text: String,
        retry_after: Option<std::time::Duration>,
    },
}

/// The first half of a two-phase send ([`Business::reserve`]): either the
/// answer already (not allowed, or a duplicate), or an allowed message
/// whose key is now reserved, for the caller to hand to its own HTTP client
/// and then [`complete`](Business::complete).
// One per send, moved once: its size does not matter, its shape does.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[must_use = "an allowed message is reserved: send it, then call complete (a dropped reservation keeps its key, so a retry reports a duplicate)"]
pub enum Reservation {
    /// Nothing to send: the decision was not `allow`, or the key already
    /// reached the transport (`delivery` says which).
    Done(SendOutcome),
    /// Allowed and reserved: send `message`, then complete.
    Ready(Pending),
}

/// An allowed, reserved message waiting for the provider's answer.
#[derive(Debug)]
pub struct Pending {
    decision: Decision,
    id: i64,
    message: OutboundMessage,
}

impl Pending {
    /// What to hand to the provider.
    pub fn message(&self) -> &OutboundMessage {
        &self.message
    }

    /// The decision that allowed it.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }
}

impl Business {
    /// Decides a send request, records the attempt and its decision, and
    /// hands an allowed message to `transport`. A key that already reached
    /// the transport sends nothing and reports the first decision as a
    /// duplicate. No write transaction is held while the transport runs.
    ///
    /// ```
    /// use wagate::{Content, Gate, SendRequest, transport::RecordingTransport};
    /// let gate = Gate::open_in_memory()?;
    /// let acme = gate.business("acme")?;
    /// let t = RecordingTransport::new();
    /// let req = SendRequest::new("whatsapp:+14155238886", "whatsapp:+15550001111", Content::text("hi"));
    /// let out = acme.send(&req, "msg-1", &t)?;
    /// assert!(!out.decision.is_allowed()); // no window, no opt-in
    /// assert!(t.sent().is_empty());
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::KeyReused`] when the key reached the transport before for
    /// a different request (nothing is sent or recorded); a store error.
    /// If recording the transport's answer fails after the provider
    /// accepted, the error is returned and the key stays reserved, so a
    /// retry does not send again.
    pub fn send<T: Transport + ?Sized>(
        &self,
        req: &SendRequest,
        key: &str,
        transport: &T,
    ) -> Result<SendOutcome> {
        match self.reserve(req, key)? {
            Reservation::Done(outcome) => Ok(outcome),
            Reservation::Ready(pending) => {
                let answer = transport.send(pending.message());
                self.complete(pending, &answer)
            }
        }
    }

    /// The first half of a two-phase send, for callers with their own HTTP
    /// client: decides and, if allowed, reserves the key in one
    /// transaction. Send [`Pending::message`] yourself, then
    /// [`complete`](Business::complete) with the answer. A reservation that
    /// is never completed keeps its key: a retry reports a duplicate
    /// instead of sending twice.
    ///
    /// ```
    /// use wagate::gate::Reservation;
    /// use wagate::transport::{Receipt, TransportError};
    /// use wagate::{Address, Content, Event, Gate, InboundMessage, SendRequest, Timestamp};
    /// let acme = Gate::open_in_memory()?.business("acme")?;
    /// let (user, shop) = (Address::parse("+15550001111")?, Address::parse("+14155238886")?);
    /// acme.ingest(&Event::Inbound(InboundMessage::text(user.clone(), shop.clone(), "hi", Timestamp::now())))?;
    /// let req = SendRequest::between(shop, user, Content::text("hello"));
    /// let Reservation::Ready(pending) = acme.reserve(&req, "k1")? else { panic!("allowed") };
    /// // ... your own HTTP call with pending.message() ...
    /// let answer: Result<Receipt, TransportError> = Ok(Receipt { provider_id: "SM123".into() });
    /// assert!(acme.complete(pending, &answer)?.sent());
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Business::send`].
    pub fn reserve(&self, req: &SendRequest, key: &str) -> Result<Reservation> {
        if key.is_empty() {
            return Err(Error::InvalidEvent(
                "idempotency key must not be empty".into(),
            ));
        }
        // `now` is read once the write lock is held (by the group commit's
        // leader): the decision and the recorded send time `s` (what
        // feedback is dated at) are those of the moment of reservation.
        let work = Work::Reserve {
            request: req.clone(),
            key: key.to_owned(),
        };
        let reserved = match self.gate.commit(self, work)? {
            Done::Reserve(r) => r,
            _ => {
                return Err(Error::Background(
                    "group commit answered another job".into(),
                ));
            }
        };
        Ok(match reserved {
            Reserved::Done(outcome) => Reservation::Done(*outcome),
            Reserved::Go(go) => {
                let (decision, id, message) = *go;
                Reservation::Ready(Pending {
                    decision,
                    id,
                    message,
                })
            }
        })
    }

    /// The second half of a two-phase send: records the provider's answer
    /// for a reserved message (an error code is fed back as RULES R7 says).
    ///
    /// # Errors
    /// A store error; the key then stays reserved.
    pub fn complete<A: Accepted, E: Failure>(
        &self,
        pending: Pending,
        answer: &std::result::Result<A, E>,
    ) -> Result<SendOutcome> {
        let Pending { decision, id, .. } = pending;
        let answer = match answer {
            Ok(receipt) => Answer::Accepted(receipt.provider_id().to_owned()),
            Err(e) => Answer::Refused {
                transient: e.is_transient(),
                code: e.provider_code(),
                text: e.to_string(),
                retry_after: e.retry_after(),
            },
        };
        let delivery = match self
            .gate
            .commit(self, Work::Complete { send: id, answer })?
        {
            Done::Complete(d) => d,
            _ => {
                return Err(Error::Background(
                    "group commit answered another job".into(),
                ));
            }
        };
        Ok(SendOutcome { decision, delivery })
    }

    /// Records a transport's answer for a reserved send (inside a write).
    pub(super) fn complete_in(
        &self,
        db: &dyn Queries,
        id: i64,
        answer: &Answer,
        now: Timestamp,
    ) -> Result<Delivery> {
        match answer {
            Answer::Accepted(pid) => {
                let answer = SendAnswer {
                    state: SendState::Sent,
                    provider_id: Some(pid),
                    error_code: None,
                    error: None,
                };
                db.finish_send(id, &answer)?;
                Ok(Delivery::Accepted {
                    provider_id: pid.clone(),
                })
            }
            Answer::Refused {
                transient,
                code,
                text,
                retry_after,
            } => {
                let state = if *transient {
                    SendState::Retryable
                } else {
                    SendState::Failed
                };
                let answer = SendAnswer {
                    state,
                    provider_id: None,
                    error_code: *code,
                    error: Some(text),
                };
                db.finish_send(id, &answer)?;
                if let Some(code) = code
                    && let Some(sent) = db.send_by_id(id)?
                {
                    self.feedback(db, &sent, *code, now)?;
                }
                Ok(Delivery::Refused {
                    transient: *transient,
                    code: *code,
                    message: text.clone(),
                    retry_after_secs: retry_after.map(|d| d.as_secs()),
                })
            }
        }
    }

    pub(super) fn reserve_in(
        &self,
        db: &dyn Queries,
        req: &SendRequest,
        key: &str,
        now: Timestamp,
    ) -> Result<Reserved> {
        let fingerprint = request_fingerprint(req);
        // A key names one request: another request under a key that
        // reached the transport (even if refused for now) is an error,
        // never a duplicate or a fresh send (R7).
        if db
            .key_request(self.id, key)?
            .is_some_and(|h| h != fingerprint)
        {
            return Err(Error::KeyReused(key.to_owned()));
        }
        let prev = db.send_by_key(self.id, key)?;
        let mut decision = self.decide(db, req, now, None)?;
        if let Some(prev) = &prev {
            decision.reason = prev.reason;
            decision.verdict = prev.reason.verdict();
        }
        let raw = |a: Result<&Address, &AddressError>| match a {
            Ok(a) => a.as_str().to_owned(),
            Err(e) => e.input().to_owned(),
        };
        // Recorded under the address it was sent to; no address is created.
        let user_id = match req.user() {
            Ok(u) => db.address(self.id, u.as_str())?.map(|a| a.id),
            Err(_) => None,
        };
        let template = req.content().template_key();
        let facts = serde_json::to_string(&decision.facts).unwrap_or_default();
        let id = db.insert_send(
            self.id,
            &NewSend {
                key,
                sender: &raw(req.sender()),
                recipient: &raw(req.user()),
                user_id,
                at: now,
                template,
                purpose: req.purpose().map(|p| p.as_str()),
                reason: decision.reason,
                duplicate: prev.is_some(),
                request: fingerprint,
                facts: &facts,
            },
        )?;
        if let Some(prev) = prev {
            let provider_id = prev.provider_id.filter(|_| prev.state == SendState::Sent);
            return Ok(Reserved::Done(Box::new(SendOutcome {
                decision,
                delivery: Delivery::Duplicate { provider_id },
            })));
        }
        let (Verdict::Allow, Ok(from), Ok(to)) = (decision.verdict, req.sender(), req.user())
        else {
            return Ok(Reserved::Done(Box::new(SendOutcome {
                decision,
                delivery: Delivery::NotSent,
            })));
        };
        let (sid, meta) = match template {
            Some((name, language)) => db
                .template(self.id, name, language, None)?
                .map(|t| (t.twilio_content_sid, t.meta_template_id))
                .unwrap_or_default(),
            None => (None, None),
        };
        let phone = if to.is_bsuid() {
            self.linked_phone(db, to)?
        } else {
            None
        };
        let message = OutboundMessage {
            key: key.to_owned(),
            from: from.clone(),
            to: to.clone(),
            phone,
            content: req.content().clone(),
            rendered: decision.facts.rendered.clone(),
            twilio_content_sid: sid,
            meta_template_id: meta,
            purpose: req.purpose().cloned(),
        };
        Ok(Reserved::Go(Box::new((decision, id, message))))
    }

    /// The phone to send to for a business-scoped id: the one most
    /// recently linked to it, else any phone of its person (linked through
    /// another id), else none.
    fn linked_phone(&self, db: &dyn Queries, bsuid: &Address) -> Result<Option<Address>> {
        let Some(row) = db.address(self.id, bsuid.as_str())? else {
            return Ok(None);
        };
        if !row.linked {
            return Ok(None);
        }
        let key = match db.phone_linked_to(self.id, row.id)? {
            Some(k) => Some(k),
            None => db
                .person_addresses(self.id, row.person)?
                .into_iter()
                .map(|a| a.key)
                .find(|k| k.starts_with("whatsapp:")),
        };
        // A stored phone that no longer parses is a corrupt row: fail
        // closed rather than send elsewhere.
        key.map(|k| {
            Address::parse_phone(&k).map_err(|e| Error::Corrupt {
                table: "users",
                detail: format!("address {k:?}: {e}"),
            })
        })
        .transpose()
    }
}
