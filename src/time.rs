//! Instants and durations, as UTC unix milliseconds.
//!
//! Everything wagate stores or compares is a [`Timestamp`]: an `i64` count of
//! milliseconds since the Unix epoch. It is what the SQLite store keeps in
//! its `INTEGER` columns, so a value read back compares exactly like the one
//! written. Parsing accepts RFC 3339 (`Z` or an offset); sub-millisecond
//! digits are truncated.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;
/// Milliseconds in one minute.
pub const MINUTE_MS: i64 = 60_000;

/// A UTC instant with millisecond precision.
///
/// ```
/// use wagate::Timestamp;
/// let t = Timestamp::parse("2026-03-01T10:00:00+01:00")?;
/// assert_eq!(t.to_string(), "2026-03-01T09:00:00.000Z");
/// assert_eq!(t.plus_hours(24), Timestamp::parse("2026-03-02T09:00:00Z")?);
/// # Ok::<(), wagate::TimeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A time that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad time {input:?}: expected RFC 3339, like 2026-03-01T10:00:00Z")]
pub struct TimeError {
    /// The text that was given.
    pub input: String,
}

impl Timestamp {
    /// The instant `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 time such as `2026-03-01T10:00:00Z`.
    ///
    /// # Errors
    /// [`TimeError`] when the text is not RFC 3339.
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        DateTime::parse_from_rfc3339(input.trim())
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|_| TimeError {
                input: input.to_owned(),
            })
    }

    /// The current system time. Only the gate's [`SystemClock`] calls this;
    /// the policy core never reads a clock.
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    /// This instant plus `ms` milliseconds, saturating at the ends of `i64`.
    pub const fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// This instant plus `h` hours, saturating.
    pub const fn plus_hours(self, h: i64) -> Self {
        self.plus_millis(h.saturating_mul(HOUR_MS))
    }

    /// This instant plus `m` minutes, saturating.
    pub const fn plus_minutes(self, m: i64) -> Self {
        self.plus_millis(m.saturating_mul(MINUTE_MS))
    }

    /// RFC 3339 in UTC with milliseconds, or the raw millisecond count when
    /// the instant is outside the calendar range chrono can print.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => format!("@{}ms", self.0),
        }
    }
}

/// The effective time of an event: `min(at, received_at)`. Nothing takes
/// effect later than it reached us (RULES, Terms).
pub fn effective(at: Timestamp, received_at: Timestamp) -> Timestamp {
    at.min(received_at)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Where the gate gets `now` from. The policy core takes `now` as an
/// argument; only the gate asks a clock.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that reads whatever it was last set to: for tests and replays.
///
/// ```
/// use wagate::{ManualClock, Clock, Timestamp};
/// let clock = ManualClock::new(Timestamp::from_millis(5));
/// clock.set(Timestamp::from_millis(9));
/// assert_eq!(clock.now(), Timestamp::from_millis(9));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicI64::new(t.0))
    }

    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        let a = Timestamp::parse("2026-03-01T10:00:00+02:00").unwrap();
        let b = Timestamp::parse("2026-03-01T08:00:00Z").unwrap();
        assert_eq!(a, b);
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("2026-03-01").is_err());
        assert!(Timestamp::parse("2026-02-30T00:00:00Z").is_err());
    }

    #[test]
    fn effective_time_is_the_earlier() {
        let a = Timestamp::from_millis(10);
        let b = Timestamp::from_millis(20);
        assert_eq!(effective(a, b), a);
        assert_eq!(effective(b, a), a);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(
            Timestamp::from_millis(i64::MAX).plus_hours(24).as_millis(),
            i64::MAX
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_rfc3339(),
            format!("@{}ms", i64::MAX)
        );
    }
}
