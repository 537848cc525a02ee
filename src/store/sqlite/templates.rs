//! The SQLite queries of `store::templates` (`impl Db`).

use crate::error::Result;
use crate::event::{TemplateRecord, TemplateStatusUpdate};
use crate::policy::{Category, TemplateBody, TemplateFacts, TemplateStatus};
use crate::store::{Db, corrupt};
use crate::time::{Timestamp, effective};
use rusqlite::{OptionalExtension, params};

// The types (and SQL text) of the topic these queries serve.
use crate::store::templates::*;

impl Db<'_> {
    /// The current view of a template; with `as_of`, rebuilt from the
    /// records and status changes received at or before it.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] for a row the code cannot read, or a
    /// store error.
    pub fn template(
        self,
        business: i64,
        name: &str,
        language: &str,
        as_of: Option<Timestamp>,
    ) -> Result<Option<StoredTemplate>> {
        type Row = (
            String,
            String,
            i64,
            String,
            i64,
            Option<String>,
            Option<String>,
        );
        let sql = match as_of {
            None => {
                "SELECT category, body, definition_at, status, status_at, twilio_content_sid, meta_template_id
                 FROM templates WHERE business_id = ?1 AND name = ?2 AND language = ?3 AND ?4 = ?4"
            }
            Some(_) => {
                "SELECT d.category, d.body, d.effective, s.status, s.effective,
                        (SELECT twilio_content_sid FROM template_events i
                          WHERE i.business_id = ?1 AND i.name = ?2 AND i.language = ?3 AND i.received_at <= ?4
                            AND i.twilio_content_sid IS NOT NULL ORDER BY i.effective DESC, i.id DESC LIMIT 1),
                        (SELECT meta_template_id FROM template_events i
                          WHERE i.business_id = ?1 AND i.name = ?2 AND i.language = ?3 AND i.received_at <= ?4
                            AND i.meta_template_id IS NOT NULL ORDER BY i.effective DESC, i.id DESC LIMIT 1)
                 FROM (SELECT category, body, effective FROM template_events
                        WHERE business_id = ?1 AND name = ?2 AND language = ?3 AND received_at <= ?4
                          AND body IS NOT NULL
                        ORDER BY effective DESC, id DESC LIMIT 1) d,
                      (SELECT status, effective FROM template_events
                        WHERE business_id = ?1 AND name = ?2 AND language = ?3 AND received_at <= ?4
                        ORDER BY effective DESC, id DESC LIMIT 1) s"
            }
        };
        let row: Option<Row> = self
            .0
            .prepare_cached(sql)?
            .query_row(
                params![
                    business,
                    name,
                    language,
                    as_of.map_or(0, Timestamp::as_millis)
                ],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()?;
        let Some((category, body, def_at, status, status_at, sid, meta)) = row else {
            return Ok(None);
        };
        let bad = |e: crate::policy::TemplateError| {
            corrupt("templates", format!("{name}/{language}: {e}"))
        };
        Ok(Some(StoredTemplate {
            facts: TemplateFacts {
                category: Category::parse(&category).map_err(bad)?,
                status: TemplateStatus::parse(&status).map_err(bad)?,
                body: TemplateBody::parse(&body).map_err(bad)?,
            },
            definition_at: Timestamp::from_millis(def_at),
            status_at: Timestamp::from_millis(status_at),
            twilio_content_sid: sid,
            meta_template_id: meta,
        }))
    }

    /// Stores a template record: appends it to the history, and updates the
    /// current view where it is the newest (ties: this one, ingested last).
    /// Status changes that arrived before the registration take part.
    ///
    /// # Errors
    /// A store error.
    pub fn put_template(
        self,
        business: i64,
        t: &TemplateRecord,
        received_at: Timestamp,
    ) -> Result<()> {
        let eff = effective(t.at, received_at).as_millis();
        self.template_event(
            business,
            &t.name,
            &t.language,
            Some((t.category, t.body.as_str())),
            &t.status,
            (t.at, received_at),
            "record",
            (
                t.twilio_content_sid.as_deref(),
                t.meta_template_id.as_deref(),
            ),
        )?;
        self.0
            .prepare_cached(
                "INSERT INTO templates (business_id, name, language, category, body, definition_at,
                     status, status_at, twilio_content_sid, meta_template_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?8, ?9)
                 ON CONFLICT (business_id, name, language) DO UPDATE SET
                     category = iif(excluded.definition_at >= definition_at, excluded.category, category),
                     body = iif(excluded.definition_at >= definition_at, excluded.body, body),
                     twilio_content_sid = iif(excluded.definition_at >= definition_at,
                         coalesce(excluded.twilio_content_sid, twilio_content_sid), twilio_content_sid),
                     meta_template_id = iif(excluded.definition_at >= definition_at,
                         coalesce(excluded.meta_template_id, meta_template_id), meta_template_id),
                     definition_at = max(definition_at, excluded.definition_at)",
            )?
            .execute(params![
                business,
                t.name,
                t.language,
                t.category.as_str(),
                t.body.as_str(),
                eff,
                t.status.as_str(),
                t.twilio_content_sid,
                t.meta_template_id,
            ])?;
        // The status is the newest of every record and status change, those
        // that came before the registration included.
        self.0
            .prepare_cached(
                "UPDATE templates SET (status, status_at) =
                     (SELECT status, effective FROM template_events e
                       WHERE e.business_id = ?1 AND e.name = ?2 AND e.language = ?3
                       ORDER BY effective DESC, id DESC LIMIT 1)
                 WHERE business_id = ?1 AND name = ?2 AND language = ?3",
            )?
            .execute(params![business, t.name, t.language])?;
        Ok(())
    }

    /// Records a status change (R5): it becomes the current status where it
    /// is the newest. For a template not registered yet it is kept and
    /// takes part once the definition arrives. Returns whether the
    /// template is registered.
    ///
    /// # Errors
    /// A store error.
    pub fn set_template_status(
        self,
        business: i64,
        u: &TemplateStatusUpdate,
        received_at: Timestamp,
        source: &str,
    ) -> Result<bool> {
        self.template_event(
            business,
            &u.name,
            &u.language,
            None,
            &u.status,
            (u.at, received_at),
            source,
            (
                u.twilio_content_sid.as_deref(),
                u.meta_template_id.as_deref(),
            ),
        )?;
        let eff = effective(u.at, received_at).as_millis();
        let n = self
            .0
            .prepare_cached(
                "UPDATE templates SET
                     status = iif(?4 >= status_at, ?5, status),
                     status_at = max(status_at, ?4),
                     twilio_content_sid = coalesce(?6, twilio_content_sid),
                     meta_template_id = coalesce(?7, meta_template_id)
                 WHERE business_id = ?1 AND name = ?2 AND language = ?3",
            )?
            .execute(params![
                business,
                u.name,
                u.language,
                eff,
                u.status.as_str(),
                u.twilio_content_sid,
                u.meta_template_id
            ])?;
        Ok(n == 1)
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::store) fn template_event(
        self,
        business: i64,
        name: &str,
        language: &str,
        definition: Option<(Category, &str)>,
        status: &TemplateStatus,
        (at, received_at): (Timestamp, Timestamp),
        source: &str,
        ids: (Option<&str>, Option<&str>),
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO template_events (business_id, name, language, category, body, status, at,
                     received_at, effective, source, twilio_content_sid, meta_template_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                business,
                name,
                language,
                definition.map(|(c, _)| c.as_str()),
                definition.map(|(_, b)| b),
                status.as_str(),
                at.as_millis(),
                received_at.as_millis(),
                effective(at, received_at).as_millis(),
                source,
                ids.0,
                ids.1,
            ])?;
        Ok(())
    }

    /// (name, language) of every registered template, in order.
    ///
    /// # Errors
    /// A store error.
    pub fn template_keys(self, business: i64) -> Result<Vec<(String, String)>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT name, language FROM templates WHERE business_id = ?1 ORDER BY name, language",
        )?;
        let keys = stmt
            .query_map([business], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }
}
