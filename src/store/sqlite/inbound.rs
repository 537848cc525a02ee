//! The SQLite queries of `store::inbound` (`impl Db`).

use crate::error::Result;
use crate::event::Referral;
use crate::policy::{WINDOW_CLOSED_CODES, WINDOW_MS, WindowFacts};
use crate::store::consent::Addresses;
use crate::store::{Db, ts};
use crate::time::Timestamp;
use rusqlite::{OptionalExtension, params};

// The types (and SQL text) of the topic these queries serve.
use crate::store::inbound::*;

impl Db<'_> {
    /// Records an inbound message by its provider id, or tells a
    /// redelivery of it (same fingerprint) from another message that
    /// reuses the id.
    ///
    /// # Errors
    /// A store error.
    pub fn insert_inbound(self, business: i64, m: &NewInbound<'_>) -> Result<InboundInsert> {
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO inbound_messages (business_id, provider_id, user_id, sender, kind, at,
                     received_at, keyword, referral, also_user_id, fingerprint)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT (business_id, provider_id) DO NOTHING",
            )?
            .execute(params![
                business,
                m.id,
                m.user,
                m.sender,
                m.kind.as_str(),
                m.at.as_millis(),
                m.received_at.as_millis(),
                m.keyword.map(keyword_str),
                m.referral.map(Referral::as_str),
                m.also,
                &m.fingerprint.0[..],
            ])?;
        if n == 1 {
            return Ok(InboundInsert::New);
        }
        type Stored = (
            i64,
            Option<i64>,
            String,
            String,
            Option<String>,
            Option<Vec<u8>>,
        );
        let stored: Option<Stored> = self
            .0
            .prepare_cached(
                "SELECT user_id, also_user_id, sender, kind, referral, fingerprint
                 FROM inbound_messages WHERE business_id = ?1 AND provider_id = ?2",
            )?
            .query_row(params![business, m.id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .optional()?;
        let Some((user, also, sender, kind, referral, fingerprint)) = stored else {
            return Ok(InboundInsert::Conflict);
        };
        let same = match fingerprint {
            Some(f) => f.as_slice() == m.fingerprint.0.as_slice(),
            // Recorded by version 1, which kept no digest: compare what it kept.
            None => {
                user == m.user
                    && also == m.also
                    && sender == m.sender
                    && kind == m.kind.as_str()
                    && referral.as_deref() == m.referral.map(Referral::as_str)
            }
        };
        Ok(if same {
            InboundInsert::Duplicate
        } else {
            InboundInsert::Conflict
        })
    }

    /// Raises the window columns of (business, user, sender) to at least the
    /// given values; `None` leaves a column as it is. Never lowers one.
    ///
    /// # Errors
    /// A store error.
    pub fn raise_window(self, business: i64, w: &WindowRaise<'_>) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO windows (business_id, user_id, sender, last_inbound, closed_through, referral_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (business_id, user_id, sender) DO UPDATE SET
                     last_inbound = max(coalesce(last_inbound, excluded.last_inbound), coalesce(excluded.last_inbound, last_inbound)),
                     closed_through = max(coalesce(closed_through, excluded.closed_through), coalesce(excluded.closed_through, closed_through)),
                     referral_at = max(coalesce(referral_at, excluded.referral_at), coalesce(excluded.referral_at, referral_at))",
            )?
            .execute(params![
                business,
                w.user,
                w.sender,
                w.last_inbound.map(Timestamp::as_millis),
                w.closed_through.map(Timestamp::as_millis),
                w.referral_at.map(Timestamp::as_millis),
            ])?;
        Ok(())
    }

    /// The window between a sender and a person: the maxima over the
    /// person's addresses (R8), with the first business reply after the
    /// latest referral. With `as_of`, rebuilt from what was received at or
    /// before it (inbound messages kept by id, provider feedback, sends).
    ///
    /// # Errors
    /// A store error.
    pub fn person_window(
        self,
        business: i64,
        who: &Addresses,
        sender: &str,
        as_of: Option<Timestamp>,
    ) -> Result<WindowFacts> {
        let (last, closed, referral) = match (who, as_of) {
            (Addresses::Person(p), None) => self
                .0
                .prepare_cached(
                    "SELECT max(w.last_inbound), max(w.closed_through), max(w.referral_at)
                     FROM users u JOIN windows w
                       ON w.business_id = u.business_id AND w.user_id = u.id AND w.sender = ?3
                     WHERE u.business_id = ?1 AND u.person_id = ?2",
                )?
                .query_row(params![business, p, sender], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?,
            (Addresses::One(id), None) => self
                .0
                .prepare_cached(
                    "SELECT last_inbound, closed_through, referral_at FROM windows
                     WHERE business_id = ?1 AND user_id = ?2 AND sender = ?3",
                )?
                .query_row(params![business, id, sender], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?
                .unwrap_or((None, None, None)),
            (Addresses::One(id), Some(t)) => self.window_as_of(business, &[*id], sender, t)?,
            (Addresses::Person(p), Some(t)) => {
                let ids: Vec<i64> = self
                    .person_addresses(business, *p)?
                    .into_iter()
                    .map(|a| a.id)
                    .collect();
                self.window_as_of(business, &ids, sender, t)?
            }
            (Addresses::Some(ids), t) => self.window_as_of(
                business,
                ids,
                sender,
                t.unwrap_or(Timestamp::from_millis(i64::MAX)),
            )?,
        };
        let first_reply = match referral {
            None => None,
            Some(r) => self.first_send(business, who, sender, r, as_of)?,
        };
        Ok(WindowFacts {
            last_inbound: ts(last),
            closed_through: ts(closed),
            referral_at: ts(referral),
            first_reply_after_referral: first_reply,
        })
    }

    /// (last_inbound, closed_through, referral_at) over some addresses, from
    /// what was received at or before `t`.
    pub(in crate::store) fn window_as_of(
        self,
        business: i64,
        ids: &[i64],
        sender: &str,
        t: Timestamp,
    ) -> Result<(Option<i64>, Option<i64>, Option<i64>)> {
        let mut out: (Option<i64>, Option<i64>, Option<i64>) = (None, None, None);
        let t = t.as_millis();
        let codes = WINDOW_CLOSED_CODES.map(i64::from);
        for &id in ids {
            let (last, referral): (Option<i64>, Option<i64>) = self
                .0
                .prepare_cached(
                    "SELECT max(min(at, received_at)),
                            max(CASE WHEN referral IS NOT NULL THEN min(at, received_at) END)
                     FROM inbound_messages
                     WHERE business_id = ?1 AND user_id = ?2 AND sender = ?3 AND received_at <= ?4
                       AND kind NOT IN ('reaction', 'unsupported', 'system')",
                )?
                .query_row(params![business, id, sender, t], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let ours: Option<i64> = self
                .0
                .prepare_cached(
                    "SELECT max(s.at) FROM sends s JOIN feedback f ON f.send_id = s.id
                     WHERE s.user_id = ?1 AND s.sender = ?2 AND f.at <= ?3 AND f.code IN (?4, ?5, ?6)",
                )?
                .query_row(params![id, sender, t, codes[0], codes[1], codes[2]], |r| r.get(0))?;
            let elsewhere: Option<i64> = self
                .0
                .prepare_cached(
                    "SELECT max(min(at, received_at)) FROM external_feedback
                     WHERE business_id = ?1 AND user_id = ?2 AND sender = ?3 AND received_at <= ?4
                       AND code IN (?5, ?6, ?7)",
                )?
                .query_row(
                    params![business, id, sender, t, codes[0], codes[1], codes[2]],
                    |r| r.get(0),
                )?;
            out.0 = out.0.max(last);
            out.1 = out.1.max(ours).max(elsewhere);
            out.2 = out.2.max(referral);
        }
        Ok(out)
    }

    /// The first send to the person from `sender` that reached the
    /// transport within 24h after `referral`.
    pub(in crate::store) fn first_send(
        self,
        business: i64,
        who: &Addresses,
        sender: &str,
        referral: i64,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Timestamp>> {
        let end = referral.saturating_add(WINDOW_MS);
        let end = as_of.map_or(end, |t| end.min(t.as_millis().saturating_add(1)));
        let v: Option<i64> = match who {
            Addresses::Person(p) => self
                .0
                .prepare_cached(
                    "SELECT min(s.at) FROM users u JOIN sends s ON s.user_id = u.id
                     WHERE u.business_id = ?1 AND u.person_id = ?2 AND s.sender = ?3
                       AND s.at >= ?4 AND s.at < ?5 AND s.state IN ('reserved', 'sent')",
                )?
                .query_row(params![business, p, sender, referral, end], |r| r.get(0))?,
            Addresses::One(_) | Addresses::Some(_) => {
                let ids = match who {
                    Addresses::One(id) => std::slice::from_ref(id),
                    Addresses::Some(ids) => ids.as_slice(),
                    Addresses::Person(_) => &[],
                };
                let mut best: Option<i64> = None;
                for id in ids {
                    let v: Option<i64> = self
                        .0
                        .prepare_cached(
                            "SELECT min(at) FROM sends
                             WHERE user_id = ?1 AND sender = ?2 AND at >= ?3 AND at < ?4
                               AND state IN ('reserved', 'sent')",
                        )?
                        .query_row(params![id, sender, referral, end], |r| r.get(0))?;
                    best = match (best, v) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                best
            }
        };
        Ok(ts(v))
    }

    /// The senders with a window with any address of a person, in order.
    ///
    /// # Errors
    /// A store error.
    pub fn window_senders(self, business: i64, person: i64) -> Result<Vec<String>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT DISTINCT w.sender FROM users u JOIN windows w
               ON w.business_id = u.business_id AND w.user_id = u.id
             WHERE u.business_id = ?1 AND u.person_id = ?2 ORDER BY w.sender",
        )?;
        let senders = stmt
            .query_map(params![business, person], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(senders)
    }

    /// Records a provider error code from a callback about a message sent
    /// elsewhere (R7); returns `false` when this (id, code) was recorded
    /// before: each takes effect once.
    ///
    /// # Errors
    /// [`crate::Error::MessageIdReused`] when the id was first reported
    /// for another sender or user; a store error.
    #[allow(clippy::too_many_arguments)]
    pub fn mark_external_feedback(self, business: i64, f: &ExternalFeedback<'_>) -> Result<bool> {
        let ExternalFeedback {
            provider_id,
            code,
            sender,
            user,
            at,
            received_at,
        } = *f;
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO external_feedback (business_id, provider_id, code, sender, user_id, at, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                business,
                provider_id,
                code,
                sender,
                user,
                at.as_millis(),
                received_at.as_millis()
            ])?;
        if n == 1 {
            return Ok(true);
        }
        // Seen before: the same callback again, or another message under
        // the same id (R2's rule for ids, applied to callbacks too).
        let (first_sender, first_user): (String, i64) = self
            .0
            .prepare_cached(
                "SELECT sender, user_id FROM external_feedback
                 WHERE business_id = ?1 AND provider_id = ?2 AND code = ?3",
            )?
            .query_row(params![business, provider_id, code], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if (first_sender.as_str(), first_user) != (sender, user) {
            return Err(crate::Error::MessageIdReused(provider_id.to_owned()));
        }
        Ok(false)
    }
}
