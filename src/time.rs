//! Instants and durations, as UTC unix milliseconds.
//!
//! Everything wagate stores or compares is a [`Timestamp`]: an `i64` count of
//! milliseconds since the Unix epoch. It is what the SQLite store keeps in
//! its `INTEGER` columns, so a value read back compares exactly like the one
//! written. Parsing accepts RFC 3339 (`Z` or an offset); sub-millisecond
//! digits are truncated.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
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

    /// Parses an RFC 3339 date-time such as `2026-03-01T10:00:00Z`.
    ///
    /// Exactly `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z` or an
    /// offset `+HH:MM` / `-HH:MM`. `T` and `Z` may be lower case and a space
    /// may stand for `T`; the fraction is truncated to milliseconds; a leap
    /// second `:60` counts as `:59` plus one second. Anything else (no
    /// seconds, no offset, `+0530`, a date alone, an impossible date,
    /// surrounding spaces) is an error.
    ///
    /// ```
    /// use wagate::Timestamp;
    /// let t = |s| Timestamp::parse(s).map(|t| t.to_string());
    /// assert_eq!(t("2026-03-01 10:00:00.1239z")?, "2026-03-01T10:00:00.123Z");
    /// assert_eq!(t("2026-12-31T23:59:60.5Z")?, "2027-01-01T00:00:00.500Z");
    /// assert!(t("2026-03-01T10:00Z").is_err() && t("2026-03-01T10:00:00+0530").is_err());
    /// # Ok::<(), wagate::TimeError>(())
    /// ```
    ///
    /// # Errors
    /// [`TimeError`] when the text is not such a time.
    pub fn parse(input: &str) -> Result<Self, TimeError> {
        parse_rfc3339(input.as_bytes()).ok_or_else(|| TimeError {
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

/// 10000-01-01T00:00:00Z in unix milliseconds.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// The strict grammar of [`Timestamp::parse`]; `None` for anything else.
fn parse_rfc3339(b: &[u8]) -> Option<Timestamp> {
    // Fixed positions: YYYY-MM-DD?HH:MM:SS
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let d = b.get(r)?;
        d.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let is = |i: usize, set: &[u8]| b.get(i).is_some_and(|c| set.contains(c));
    if !(is(4, b"-") && is(7, b"-") && is(10, b"Tt ") && is(13, b":") && is(16, b":")) {
        return None;
    }
    let year = i32::try_from(num(0..4)?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u32;
    if is(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + u32::from(b.get(i).copied().unwrap_or(b'0') - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, c: u8| -> Option<i64> {
                (a.is_ascii_digit() && c.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(c - b'0'))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' {
                -(h * 60 + m)
            } else {
                h * 60 + m
            }
        }
        _ => return None,
    };
    let days = date
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?)
        .num_days();
    let seconds =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_minutes * 60;
    let t = seconds * 1000 + i64::from(millis);
    // A leap second or an offset may carry the last second of year 9999
    // into year 10000, which RFC 3339 cannot write: refused, so that every
    // time stored can be exported and read back.
    (t < YEAR_10000_MS).then_some(Timestamp(t))
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
    fn format_v3_time_syntax() {
        let ok = |s: &str, want: &str| {
            assert_eq!(Timestamp::parse(s).unwrap().to_rfc3339(), want, "{s}");
        };
        ok("2026-03-01t10:00:00z", "2026-03-01T10:00:00.000Z");
        ok("2026-03-01 10:00:00Z", "2026-03-01T10:00:00.000Z");
        ok("2026-03-01T10:00:00.9999Z", "2026-03-01T10:00:00.999Z");
        ok("2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.500Z");
        ok("2026-03-01T10:00:00.000000001Z", "2026-03-01T10:00:00.000Z");
        ok("2026-03-01T10:00:00+05:30", "2026-03-01T04:30:00.000Z");
        ok("2026-03-01T10:00:00-08:00", "2026-03-01T18:00:00.000Z");
        ok("2026-12-31T23:59:60.5Z", "2027-01-01T00:00:00.500Z");
        ok("2026-06-30T23:59:60Z", "2026-07-01T00:00:00.000Z");
        ok("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z");
        for bad in [
            "2026-03-01T10:00Z",
            "2026-03-01T10:00:00",
            "2026-03-01T10:00:00+0530",
            "2026-03-01",
            "2026-02-30T10:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T10:60:00Z",
            "2026-03-01T10:00:61Z",
            "2026-03-01T10:00:00.Z",
            "2026-03-01T10:00:00+24:00",
            "2026-03-01T10:00:00Zjunk",
            " 2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00Z ",
            "2026-3-01T10:00:00Z",
            "+2026-03-01T10:00:00Z",
            "9999-12-31T23:59:60Z",
            "9999-12-31T23:59:59-00:01",
            "",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
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
