//! [`Business::purge`]: retention that never changes a decision.

use std::time::Duration;

use super::Business;
use crate::error::{Error, Result};
use crate::store::Purged;
use crate::time::Timestamp;

/// The least a purge keeps: older rows no longer change any decision
/// (a window lasts 24 hours, the free entry point 72 hours from a reply
/// sent within 24 hours of the referral, an opt-out confirmation 5
/// minutes), with days to spare.
pub const MIN_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Business {
    /// Deletes inbound-message rows and send attempts older than `keep`
    /// (at least [`MIN_RETENTION`]). Decisions now, and as of any time
    /// within the kept period, stay the same (verdict and reason): windows,
    /// consent (the whole trail), links, templates and confirmations live
    /// elsewhere or are recent. Facts about periods long over may go
    /// blank: a free entry point or a provider's closing of a window
    /// older than the horizon is no longer reported. What goes: the evidence that an old message id was seen (a
    /// redelivery of a purged message counts as a new one, which changes
    /// nothing older than the window), and old idempotency keys (a key
    /// older than `keep` may be used again).
    ///
    /// ```
    /// use std::time::Duration;
    /// let acme = wagate::Gate::open_in_memory()?.business("acme")?;
    /// let purged = acme.purge(Duration::from_secs(90 * 24 * 3600), false)?;
    /// assert_eq!(purged.send_attempts, 0);
    /// assert!(acme.purge(Duration::from_secs(3600), false).is_err()); // keeps at least 7 days
    /// # Ok::<(), wagate::Error>(())
    /// ```
    ///
    /// With `dry_run`, counts what would go and deletes nothing.
    ///
    /// # Errors
    /// [`Error::Retention`] for a `keep` below [`MIN_RETENTION`], or a
    /// store error (then nothing was deleted).
    pub fn purge(&self, keep: Duration, dry_run: bool) -> Result<Purged> {
        if keep < MIN_RETENTION {
            return Err(Error::Retention(format!(
                "a purge keeps at least {} days (asked to keep {:.1} days): younger rows can still change a decision",
                MIN_RETENTION.as_secs() / 86_400,
                keep.as_secs_f64() / 86_400.0
            )));
        }
        let cutoff = self.purge_horizon(keep).as_millis();
        // The dry run counts on the writer's connection too (it fills a
        // temporary table of its own); it writes nothing to the file.
        self.gate.write(|w| {
            if dry_run {
                w.queries().purgeable(self.id, cutoff)
            } else {
                w.queries().purge(self.id, cutoff)
            }
        })
    }

    /// The time before which [`Business::purge`] with `keep` deletes.
    pub fn purge_horizon(&self, keep: Duration) -> Timestamp {
        let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        Timestamp::from_millis(self.gate.clock.now().as_millis().saturating_sub(keep_ms))
    }
}
