//! The SQLite queries of `store::sends` (`impl Db`).

use crate::chain::Hash;
use crate::error::Result;
use crate::event::DeliveryStatus;
use crate::policy::{Reason, Verdict};
use crate::store::consent::Addresses;
use crate::store::{Db, corrupt, ts};
use crate::time::Timestamp;
use rusqlite::{OptionalExtension, params};

// The types (and SQL text) of the topic these queries serve.
use crate::store::sends::*;

impl Db<'_> {
    /// The send that holds an idempotency key (one that reached or is
    /// reaching the transport), if any.
    ///
    /// # Errors
    /// A store error, or [`crate::Error::Corrupt`].
    pub fn send_by_key(self, business: i64, key: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = ?1 AND idempotency_key = ?2 AND state IN ('reserved', 'sent', 'failed')",
            params![business, key],
        )
    }

    /// The request digest of the latest attempt under a key that reached
    /// the transport, a transient refusal included (a timed-out request may
    /// well have been delivered).
    ///
    /// # Errors
    /// A store error, or [`crate::Error::Corrupt`].
    pub fn key_request(self, business: i64, key: &str) -> Result<Option<Hash>> {
        let found: Option<Option<Vec<u8>>> = self
            .0
            .prepare_cached(
                "SELECT request_hash FROM sends
                 WHERE business_id = ?1 AND idempotency_key = ?2
                   AND state IN ('reserved', 'sent', 'failed', 'retryable')
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![business, key], |r| r.get(0))
            .optional()?;
        match found.flatten() {
            None => Ok(None),
            Some(b) => Hash::from_slice(&b)
                .map(Some)
                .ok_or_else(|| corrupt("sends", format!("request digest under key {key:?}"))),
        }
    }

    /// The send a provider message id belongs to, if any.
    ///
    /// # Errors
    /// A store error, or [`crate::Error::Corrupt`].
    pub fn send_by_provider_id(self, business: i64, provider_id: &str) -> Result<Option<SendRow>> {
        self.send_where(
            "business_id = ?1 AND provider_id = ?2",
            params![business, provider_id],
        )
    }

    /// A send by its row id.
    ///
    /// # Errors
    /// A store error, or [`crate::Error::Corrupt`].
    pub fn send_by_id(self, id: i64) -> Result<Option<SendRow>> {
        self.send_where("id = ?1", params![id])
    }

    pub(in crate::store) fn send_where(
        self,
        filter: &str,
        args: impl rusqlite::Params,
    ) -> Result<Option<SendRow>> {
        type Row = (
            i64,
            String,
            Option<i64>,
            i64,
            Option<String>,
            Option<String>,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
        );
        let sql = format!(
            "SELECT id, sender, user_id, at, template_name, template_language, reason, state, provider_id, status,
                    idempotency_key
             FROM sends WHERE {filter}"
        );
        let row: Option<Row> = self
            .0
            .prepare_cached(&sql)?
            .query_row(args, |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })
            .optional()?;
        let Some((id, sender, user_id, at, tname, tlang, reason, state, provider_id, status, key)) =
            row
        else {
            return Ok(None);
        };
        Ok(Some(SendRow {
            id,
            key,
            sender,
            user_id,
            at: Timestamp::from_millis(at),
            template: tname.zip(tlang),
            reason: Reason::parse(&reason)
                .ok_or_else(|| corrupt("sends", format!("unknown reason {reason:?}")))?,
            state: SendState::parse(&state)?,
            provider_id,
            status,
        }))
    }

    /// Records a send attempt and its decision; an allowed one is stored as
    /// reserved, holding its idempotency key.
    ///
    /// # Errors
    /// A store error (a second reservation of the same key is a constraint
    /// error).
    pub fn insert_send(self, business: i64, s: &NewSend<'_>) -> Result<i64> {
        let verdict = s.reason.verdict();
        let state = if s.duplicate {
            SendState::Duplicate
        } else if verdict == Verdict::Allow {
            SendState::Reserved
        } else {
            SendState::Denied
        };
        self.0
            .prepare_cached(
                "INSERT INTO sends (business_id, idempotency_key, sender, recipient, user_id, at, content,
                     template_name, template_language, purpose, verdict, reason, state, request_hash, facts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                business,
                s.key,
                s.sender,
                s.recipient,
                s.user_id,
                s.at.as_millis(),
                if s.template.is_some() { "template" } else { "freeform" },
                s.template.map(|t| t.0),
                s.template.map(|t| t.1),
                s.purpose,
                verdict.as_str(),
                s.reason.as_str(),
                state.as_str(),
                &s.request.0[..],
                s.facts,
            ])?;
        Ok(self.0.last_insert_rowid())
    }

    /// Records the transport's answer for a reserved send.
    ///
    /// # Errors
    /// A store error.
    pub fn finish_send(self, id: i64, a: &SendAnswer<'_>) -> Result<()> {
        // A send whose person was forgotten while it was in flight keeps
        // no message id or provider words (Business::forget).
        self.0
            .prepare_cached(
                "UPDATE sends SET state = ?2, error_code = ?4,
                     provider_id = CASE WHEN recipient LIKE 'erased:%' THEN NULL ELSE ?3 END,
                     error = CASE WHEN recipient LIKE 'erased:%' THEN NULL ELSE ?5 END
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                a.state.as_str(),
                a.provider_id,
                a.error_code,
                a.error
            ])?;
        Ok(())
    }

    /// Moves a send's delivery status forward; returns whether it moved.
    ///
    /// # Errors
    /// A store error.
    pub fn advance_status(self, id: i64, status: DeliveryStatus) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "UPDATE sends SET status = ?2, status_rank = ?3
                 WHERE id = ?1 AND (status_rank IS NULL OR status_rank < ?3)",
            )?
            .execute(params![id, status.as_str(), status.rank()])?;
        Ok(n == 1)
    }

    /// Keeps the pricing a provider reported for a send (the latest wins).
    ///
    /// # Errors
    /// A store error.
    pub fn set_pricing(self, id: i64, pricing: &crate::event::Pricing) -> Result<()> {
        let json = serde_json::to_string(pricing)
            .map_err(|e| crate::Error::InvalidEvent(format!("pricing: {e}")))?;
        self.0
            .prepare_cached("UPDATE sends SET pricing = ?2 WHERE id = ?1")?
            .execute(params![id, json])?;
        Ok(())
    }

    /// Marks a provider error code of a send as applied; returns `false`
    /// when it already was (each (message, code) takes effect once).
    ///
    /// # Errors
    /// A store error.
    pub fn mark_feedback(self, business: i64, send: i64, code: u32, at: Timestamp) -> Result<bool> {
        let n = self
            .0
            .prepare_cached(
                "INSERT INTO feedback (business_id, send_id, code, at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![business, send, code, at.as_millis()])?;
        Ok(n == 1)
    }

    /// The latest send time of a message allowed as an opt-out
    /// confirmation to any of the person's addresses (counted per person,
    /// RULES R8); with `as_of`, among those sent at or before it.
    ///
    /// # Errors
    /// A store error.
    pub fn last_confirmation(
        self,
        business: i64,
        who: &Addresses,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Timestamp>> {
        let until = as_of.map_or(i64::MAX, Timestamp::as_millis);
        let one = |sql: &str, a: i64, b: i64| -> Result<Option<i64>> {
            Ok(self
                .0
                .prepare_cached(sql)?
                .query_row(params![a, b, until], |r| r.get(0))?)
        };
        let v = match who {
            Addresses::Person(p) => one(
                "SELECT max(s.at) FROM users u JOIN sends s ON s.user_id = u.id
                 WHERE u.business_id = ?1 AND u.person_id = ?2 AND s.at <= ?3
                   AND s.reason = 'opt_out_confirmation' AND s.state IN ('reserved', 'sent')",
                business,
                *p,
            )?,
            Addresses::One(id) => one(
                "SELECT max(at) FROM sends WHERE ?1 = ?1 AND user_id = ?2 AND at <= ?3
                   AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
                business,
                *id,
            )?,
            Addresses::Some(ids) => {
                let mut best = None;
                for id in ids {
                    best = best.max(one(
                        "SELECT max(at) FROM sends WHERE ?1 = ?1 AND user_id = ?2 AND at <= ?3
                           AND reason = 'opt_out_confirmation' AND state IN ('reserved', 'sent')",
                        business,
                        *id,
                    )?);
                }
                best
            }
        };
        Ok(ts(v))
    }

    /// The recorded attempts that match `filter`, oldest first (at most
    /// `limit`).
    ///
    /// # Errors
    /// A store error.
    pub fn sends(
        self,
        business: i64,
        filter: &SendFilter,
        limit: usize,
    ) -> Result<Vec<SendRecord>> {
        // Only the filters given, so each search uses its index (key,
        // provider id, or recipient) instead of scanning the business.
        let mut sql = String::from(
            "SELECT s.id, s.idempotency_key, s.at, s.sender, s.recipient, s.content, s.template_name,
                    s.template_language, s.purpose, s.verdict, s.reason, s.facts, s.state,
                    s.provider_id, s.status, s.error_code, s.error, s.pricing
             FROM sends s WHERE s.business_id = ?1 AND s.at >= ?2 AND s.at < ?3",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![
            business.into(),
            filter.since.map_or(i64::MIN, Timestamp::as_millis).into(),
            filter.until.map_or(i64::MAX, Timestamp::as_millis).into(),
        ];
        if let Some(key) = &filter.key {
            args.push(key.clone().into());
            sql.push_str(&format!(" AND s.idempotency_key = ?{}", args.len()));
        }
        if let Some(pid) = &filter.provider_id {
            args.push(pid.clone().into());
            sql.push_str(&format!(" AND s.provider_id = ?{}", args.len()));
        }
        if let Some(recipients) = &filter.recipients {
            let mut marks = Vec::new();
            for r in recipients {
                args.push(r.clone().into());
                marks.push(format!("?{}", args.len()));
            }
            sql.push_str(&format!(" AND s.recipient IN ({})", marks.join(", ")));
        }
        args.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
        sql.push_str(&format!(" ORDER BY s.at, s.id LIMIT ?{}", args.len()));
        let mut stmt = self.0.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut out = Vec::new();
        let mut ids = Vec::new();
        while let Some(r) = rows.next()? {
            ids.push(r.get::<_, i64>(0)?);
            let facts: Option<String> = r.get(11)?;
            out.push(SendRecord {
                key: r.get(1)?,
                at: Timestamp::from_millis(r.get(2)?),
                from: r.get(3)?,
                to: r.get(4)?,
                content: r.get(5)?,
                template: r.get(6)?,
                language: r.get(7)?,
                purpose: r.get(8)?,
                decision: r.get(9)?,
                reason: r.get(10)?,
                facts: facts.and_then(|f| serde_json::from_str(&f).ok()),
                state: SendState::parse(r.get_ref(12)?.as_str()?)?,
                provider_id: r.get(13)?,
                status: r.get(14)?,
                error_code: r.get(15)?,
                error: r.get(16)?,
                pricing: r
                    .get::<_, Option<String>>(17)?
                    .and_then(|p| serde_json::from_str(&p).ok()),
                feedback: Vec::new(),
            });
        }
        let mut codes = self
            .0
            .prepare_cached("SELECT code FROM feedback WHERE send_id = ?1 ORDER BY at, code")?;
        for (rec, id) in out.iter_mut().zip(ids) {
            rec.feedback = codes
                .query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
        }
        Ok(out)
    }
}
