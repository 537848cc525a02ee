//! The SQLite queries of `store::stats` (`impl Db`).

use crate::error::Result;
use crate::policy::{Action, ConsentFact, ConsentState, WINDOW_MS, fold};
use crate::store::Db;
use crate::store::trail::{parse_action, parse_scope};
use crate::time::Timestamp;
use rusqlite::params;

// The types (and SQL text) of the topic these queries serve.
use crate::store::stats::*;

impl Db<'_> {
    /// Counts for one business; windows are counted open at `now` with the
    /// given margin.
    ///
    /// # Errors
    /// [`crate::Error::Corrupt`] or a store error.
    pub fn stats(self, business: i64, now: Timestamp, margin_ms: i64) -> Result<Stats> {
        let count = |sql: &str| -> Result<u64> {
            let n: i64 = self
                .0
                .prepare_cached(sql)?
                .query_row([business], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let mut stats = Stats {
            users: count("SELECT count(*) FROM users WHERE business_id = ?1")?,
            people: count("SELECT count(DISTINCT person_id) FROM users WHERE business_id = ?1")?,
            consent_events: count("SELECT count(*) FROM consent_events WHERE business_id = ?1")?,
            inbound_messages: count(
                "SELECT count(*) FROM inbound_messages WHERE business_id = ?1",
            )?,
            send_attempts: count("SELECT count(*) FROM sends WHERE business_id = ?1")?,
            templates: count("SELECT count(*) FROM templates WHERE business_id = ?1")?,
            links: count("SELECT count(*) FROM links WHERE business_id = ?1")?,
            ..Stats::default()
        };
        let open: i64 = self
            .0
            .prepare_cached(
                "SELECT count(*) FROM windows WHERE business_id = ?1 AND last_inbound > ?2
                   AND (closed_through IS NULL OR closed_through < last_inbound)",
            )?
            .query_row(
                params![
                    business,
                    now.as_millis()
                        .saturating_sub(WINDOW_MS)
                        .saturating_add(margin_ms.clamp(0, WINDOW_MS))
                ],
                |r| r.get(0),
            )?;
        stats.open_windows = u64::try_from(open).unwrap_or(0);
        // Fold each person's events, one person at a time.
        let mut stmt = self.0.prepare_cached(
            "SELECT u.person_id, c.action, c.scope, c.effective, c.conditional, c.evidence_digest IS NOT NULL
             FROM consent_events c JOIN users u ON u.id = c.user_id
             WHERE c.business_id = ?1 ORDER BY u.person_id",
        )?;
        let mut rows = stmt.query([business])?;
        let mut current: Option<i64> = None;
        let mut facts: Vec<ConsentFact> = Vec::new();
        let tally = |facts: &[ConsentFact], stats: &mut Stats| match fold(facts).general {
            ConsentState::OptedIn => stats.opted_in += 1,
            ConsentState::OptedOut => stats.opted_out += 1,
            ConsentState::Unknown => {}
        };
        while let Some(r) = rows.next()? {
            let person: i64 = r.get(0)?;
            if current.is_some_and(|c| c != person) {
                tally(&facts, &mut stats);
                facts.clear();
            }
            current = Some(person);
            let action = parse_action(r.get_ref(1)?.as_str()?)?;
            let sealed: bool = r.get(5)?;
            // A forgotten person's opt-ins no longer count (Business::forget).
            if sealed && action == Action::OptIn {
                continue;
            }
            facts.push(ConsentFact {
                action,
                scope: parse_scope(r.get_ref(2)?.as_str()?)?,
                effective: Timestamp::from_millis(r.get(3)?),
                conditional: r.get(4)?,
            });
        }
        if current.is_some() {
            tally(&facts, &mut stats);
        }
        Ok(stats)
    }
}
