//! Instants, calendar dates, billing periods and the clock.
//!
//! Bespin reads every clock in UTC. Instants are stored as microseconds since the Unix epoch
//! ([`Timestamp`]) and written out as RFC 3339 with a `Z` suffix and six fractional digits
//! (spec README decision 13). Calendar dates ([`Date`]) are real `YYYY-MM-DD` dates (decision 3).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A UTC instant with microsecond precision (microseconds since 1970-01-01T00:00:00Z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Microseconds in one day.
    pub const DAY_MICROS: i64 = 86_400_000_000;

    /// The instant as a chrono date-time (clamped to chrono's range, which holds every instant
    /// Bespin can create).
    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// The instant of a chrono date-time.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Timestamp(dt.timestamp_micros())
    }

    /// RFC 3339 in UTC with microseconds and `Z`: `2026-11-21T23:37:20.752608Z`.
    pub fn to_rfc3339(self) -> String {
        self.format(Fraction::Always)
    }

    /// RFC 3339 in UTC with `Z`, with the six fractional digits written as `fraction` says:
    /// `2026-11-21T23:37:20Z` or `2026-11-21T23:37:20.752608Z`.
    pub fn format(self, fraction: Fraction) -> String {
        let micros = self.0.rem_euclid(1_000_000);
        let secs = self.0.div_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            // Outside four-digit years (no instant Bespin creates), chrono's general formatter.
            let f = match (fraction, micros) {
                (Fraction::WhenNonZero, 0) => "%Y-%m-%dT%H:%M:%SZ",
                _ => "%Y-%m-%dT%H:%M:%S%.6fZ",
            };
            return self.to_datetime().format(f).to_string();
        }
        let sod = secs.rem_euclid(86_400);
        let mut b = [0u8; 27];
        put_digits(&mut b[0..4], y as u64);
        b[4] = b'-';
        put_digits(&mut b[5..7], u64::from(m));
        b[7] = b'-';
        put_digits(&mut b[8..10], u64::from(d));
        b[10] = b'T';
        put_digits(&mut b[11..13], (sod / 3600) as u64);
        b[13] = b':';
        put_digits(&mut b[14..16], (sod / 60 % 60) as u64);
        b[16] = b':';
        put_digits(&mut b[17..19], (sod % 60) as u64);
        let end = if fraction == Fraction::WhenNonZero && micros == 0 {
            19
        } else {
            b[19] = b'.';
            put_digits(&mut b[20..26], micros as u64);
            26
        };
        b[end] = b'Z';
        String::from_utf8_lossy(&b[..=end]).into_owned()
    }

    /// The UTC calendar date of this instant.
    pub fn date(self) -> Date {
        Date(self.to_datetime().date_naive())
    }

    /// The billing period (UTC calendar month) containing this instant.
    pub fn period(self) -> Period {
        self.date().period()
    }
}

/// Whether [`Timestamp::format`] writes the fractional seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// Always six digits (`.000000` included): Bespin's own timestamps.
    Always,
    /// Only when the sub-second part is non-zero: KPI point instants.
    WhenNonZero,
}

/// Writes `v` as zero-padded decimal digits filling `out`.
fn put_digits(out: &mut [u8], mut v: u64) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`): formatting without building a calendar date-time.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A UTC calendar date (`YYYY-MM-DD`). Serialised as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    /// The text [`Date::parse`] accepts — what chrono's own format gives too, so stored
    /// records read back unchanged — without chrono's general-purpose parser, which showed in
    /// profiles of every request that reads a subscription.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Date;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YYYY-MM-DD date")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Date, E> {
                Date::parse(v).ok_or_else(|| E::custom(format!("not a date: {v}")))
            }
        }
        d.deserialize_str(V)
    }
}

impl Date {
    /// Parses a strict `YYYY-MM-DD` string naming a real calendar date (no other forms).
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return None;
        }
        let n = |r: std::ops::Range<usize>| {
            b[r].iter()
                .fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0'))
        };
        let year = i32::try_from(n(0..4)).ok()?;
        NaiveDate::from_ymd_opt(year, n(5..7), n(8..10)).map(Date)
    }

    /// The billing period containing this date.
    pub fn period(self) -> Period {
        Period(Date(self.0.with_day(1).unwrap_or(self.0)))
    }

    /// Midnight UTC at the start of this date.
    pub fn start(self) -> Timestamp {
        Timestamp::from_datetime(self.0.and_time(chrono::NaiveTime::MIN).and_utc())
    }

    /// `YYYY-MM-DD` for a four-digit year, written digit by digit: every metered write's rollup
    /// key holds a date, and formatting machinery cost more than the rest of the key. `None`
    /// for other years.
    pub(crate) fn iso(self) -> Option<[u8; 10]> {
        let d = self.0;
        let year = u64::try_from(d.year()).ok().filter(|y| *y <= 9999)?;
        let mut b = *b"0000-00-00";
        put_digits(&mut b[0..4], year);
        put_digits(&mut b[5..7], u64::from(d.month()));
        put_digits(&mut b[8..10], u64::from(d.day()));
        Some(b)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.iso() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => write!(f, "{}", self.0.format("%Y-%m-%d")),
        }
    }
}

/// A billing period: the UTC calendar month starting on [`Period::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period(Date);

impl Period {
    /// The period that starts on the first of `date`'s month.
    pub fn of(date: Date) -> Period {
        date.period()
    }

    /// The first day of the period.
    pub fn start(self) -> Date {
        self.0
    }

    /// The first day of the following month (exclusive end).
    pub fn end(self) -> Date {
        next_month_start(self.0)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The first day of the month after `d`'s month (`2025-03-15` → `2025-04-01`).
pub fn next_month_start(d: Date) -> Date {
    let (y, m) = if d.0.month() == 12 {
        (d.0.year() + 1, 1)
    } else {
        (d.0.year(), d.0.month() + 1)
    };
    Date(NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(d.0))
}

/// A source of the current time. The server uses [`SystemClock`]; tests use [`ManualClock`] to
/// cross day and month boundaries deterministically.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(Utc::now())
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(t.0)))
    }

    /// A clock stopped at an RFC 3339 instant; `None` if the text does not parse.
    pub fn at(rfc3339: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(rfc3339)
            .ok()
            .map(|dt| Self::new(Timestamp::from_datetime(dt.with_timezone(&Utc))))
    }

    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the time forward by `micros`.
    pub fn advance(&self, micros: i64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_micros_and_z() {
        let t = Timestamp(1_700_000_000_000_000);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(
            Timestamp(1_700_000_000_123_456).to_rfc3339(),
            "2023-11-14T22:13:20.123456Z"
        );
    }

    #[test]
    fn fast_formatting_agrees_with_chrono() {
        // Every day of four centuries around the epoch, at assorted times of day.
        let mut t = Timestamp(-62_135_596_800_000_000); // 0001-01-01T00:00:00Z
        let step = Timestamp::DAY_MICROS + 3_723_000_017; // a day, 1 h 2 min 3 s, 17 µs
        while t.0 < 253_402_300_799_000_000 {
            let dt = t.to_datetime();
            assert_eq!(
                t.to_rfc3339(),
                dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
            let whole = Timestamp(t.0 - t.0.rem_euclid(1_000_000));
            assert_eq!(
                whole.format(Fraction::WhenNonZero),
                whole.to_datetime().format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
            let f = if t.0.rem_euclid(1_000_000) == 0 {
                "%Y-%m-%dT%H:%M:%SZ"
            } else {
                "%Y-%m-%dT%H:%M:%S%.6fZ"
            };
            assert_eq!(t.format(Fraction::WhenNonZero), dt.format(f).to_string());
            assert_eq!(t.date().to_string(), dt.format("%Y-%m-%d").to_string());
            t = Timestamp(t.0 + step * 37);
        }
        let far = Date(NaiveDate::from_ymd_opt(12_000, 1, 2).expect("date"));
        assert_eq!(far.to_string(), "+12000-01-02");
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(
            Timestamp(0).format(Fraction::WhenNonZero),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_only_real_dates() {
        assert!(Date::parse("2026-02-28").is_some());
        assert!(Date::parse("2026-02-29").is_none());
        assert!(Date::parse("2026-13-01").is_none());
        assert!(Date::parse("2026-1-05").is_none());
        assert!(Date::parse(" 2026-01-05").is_none());
        assert!(Date::parse("").is_none());
    }

    #[test]
    fn dates_serialise_as_text_and_read_back() {
        let d = Date::parse("2026-02-28").expect("date");
        assert_eq!(
            serde_json::to_string(&d).unwrap_or_default(),
            "\"2026-02-28\""
        );
        let back: Date = serde_json::from_str("\"2026-02-28\"").expect("parse");
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Date>("\"2026-02-30\"").is_err());
        // The bytes chrono's own serde wrote for a stored record read back the same.
        let old = postcard::to_allocvec(&d.0).expect("encode");
        assert_eq!(postcard::to_allocvec(&d).expect("encode"), old);
        assert_eq!(postcard::from_bytes::<Date>(&old).expect("decode"), d);
    }

    #[test]
    fn periods_roll_over_december() {
        let d = Date::parse("2025-12-15").expect("date");
        assert_eq!(d.period().to_string(), "2025-12-01");
        assert_eq!(d.period().end().to_string(), "2026-01-01");
        let d = Date::parse("2025-03-15").expect("date");
        assert_eq!(next_month_start(d).to_string(), "2025-04-01");
    }
}
