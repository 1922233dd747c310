//! RFC 3339 timestamps with Go's semantics, without a date-time dependency.
//!
//! Upstream's cells depend on three Go behaviours a general-purpose date library does not share:
//! the zero time (0001-01-01T00:00:00Z) means "unset" and prints as `<unknown>`; `Time.Sub`
//! saturates at ±292 years instead of overflowing; and `metav1.Time` formats in UTC with whole
//! seconds. Parsing and formatting are a few lines of civil-calendar arithmetic, so this module
//! does them itself.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::duration::human_duration;
use super::json::at;

const NANOS_PER_SEC: i128 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// An instant, as nanoseconds since the Unix epoch.
///
/// 128 bits so that every RFC 3339 year (0000-9999) and Go's zero time fit with nanosecond
/// precision, and differences never overflow before they are saturated like Go's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i128);

impl Timestamp {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z), which `metav1.Time.IsZero` reports as unset.
    pub const GO_ZERO: Timestamp = Timestamp(-62_135_596_800 * NANOS_PER_SEC);

    /// From nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i128) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i128 {
        self.0
    }

    /// From whole seconds since the Unix epoch.
    pub const fn from_unix_seconds(secs: i64) -> Self {
        Timestamp(secs as i128 * NANOS_PER_SEC)
    }

    /// The `now` a caller passes in; times before the epoch are handled too.
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_nanos() as i128),
            Err(e) => Timestamp(-(e.duration().as_nanos() as i128)),
        }
    }

    /// True for Go's zero time, which upstream prints as `<unknown>`.
    pub fn is_zero(self) -> bool {
        self == Self::GO_ZERO
    }

    /// Go's `time.Parse(time.RFC3339, s)`, as `metav1.Time` and `metav1.MicroTime` decode:
    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, with fractions beyond nanoseconds truncated
    /// and out-of-range fields rejected. `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let year = digits(b, 0, 4)?;
        let month = digits(b, 5, 2)?;
        let day = digits(b, 8, 2)?;
        let hour = digits(b, 11, 2)?;
        let minute = digits(b, 14, 2)?;
        let second = digits(b, 17, 2)?;
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if matches!(b[i], b'.' | b',') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 9 {
                    nanos = nanos * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            let n = i - start;
            if n == 0 {
                return None;
            }
            for _ in n..9 {
                nanos *= 10;
            }
        }
        let offset_secs = match b.get(i..)? {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let oh = digits(&[*h1, *h2], 0, 2)?;
                let om = digits(&[*m1, *m2], 0, 2)?;
                if oh > 23 || om > 59 {
                    return None;
                }
                let off = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -off
                } else {
                    off
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
        Some(Timestamp(
            i128::from(secs) * NANOS_PER_SEC + i128::from(nanos),
        ))
    }

    /// The instant a JSON time field holds: `None` when absent, `null` or unparsable (Go would
    /// have refused to decode the last; treating it as unset keeps printing total).
    pub fn from_json(v: Option<&Value>) -> Option<Self> {
        v.and_then(Value::as_str).and_then(Self::parse)
    }

    /// `t.UTC().Format(time.RFC3339)`: whole seconds, `Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let secs = i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX });
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }

    /// Go's `self.Sub(earlier)` in nanoseconds, saturating at the range of `time.Duration`.
    pub fn since(self, earlier: Timestamp) -> i64 {
        let d = self.0 - earlier.0;
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }
}

/// Upstream's `translateTimestampSince`: how long ago `t` was, `<unknown>` when unset or zero.
pub fn translate_timestamp_since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) if !t.is_zero() => human_duration(now.since(t)),
        _ => "<unknown>".to_owned(),
    }
}

/// AGE of an object: `translateTimestampSince(metadata.creationTimestamp)`.
pub(crate) fn age(obj: &Value, now: Timestamp) -> String {
    translate_timestamp_since(time_at(obj, &["metadata", "creationTimestamp"]), now)
}

/// A time field (`None` when absent, `null` or unparsable).
pub(crate) fn time_at(v: &Value, path: &[&str]) -> Option<Timestamp> {
    Timestamp::from_json(at(v, path))
}

/// A time field read as a non-pointer `metav1.Time`: unset reads as Go's zero time.
pub(crate) fn time_or_zero(v: &Value, path: &[&str]) -> Timestamp {
    time_at(v, path).unwrap_or(Timestamp::GO_ZERO)
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let s = b.get(start..start + len)?;
    s.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap_or_else(|| panic!("parse {s}"))
    }

    #[test]
    fn parses_rfc3339_like_go() {
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_nanos(), 0);
        assert_eq!(ts("1970-01-01T00:00:01.5Z").unix_nanos(), 1_500_000_000);
        assert_eq!(ts("1970-01-01T01:00:00+01:00").unix_nanos(), 0);
        assert_eq!(ts("1969-12-31T23:00:00-01:00").unix_nanos(), 0);
        assert_eq!(
            ts("2026-11-22T14:55:57.123456Z"),
            Timestamp::from_unix_nanos(1_795_359_357_123_456_000)
        );
        assert_eq!(
            ts("2000-01-01T00:00:00.1234567891Z").unix_nanos() % NANOS_PER_SEC,
            123_456_789
        );
        assert!(ts("0001-01-01T00:00:00Z").is_zero());
        assert_eq!(
            ts("2024-02-29T00:00:00Z").to_rfc3339(),
            "2024-02-29T00:00:00Z"
        );
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00Zjunk",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_in_utc_with_whole_seconds() {
        assert_eq!(
            ts("2026-11-22T15:55:57.9+01:00").to_rfc3339(),
            "2026-11-22T14:55:57Z"
        );
        assert_eq!(Timestamp::GO_ZERO.to_rfc3339(), "0001-01-01T00:00:00Z");
        assert_eq!(
            ts("9999-12-31T23:59:59Z").to_rfc3339(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            Timestamp::from_unix_seconds(-1).to_rfc3339(),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn sub_saturates_like_go_durations() {
        let now = ts("2026-01-01T00:00:00Z");
        assert_eq!(now.since(Timestamp::GO_ZERO), i64::MAX);
        assert_eq!(Timestamp::GO_ZERO.since(now), i64::MIN);
        assert_eq!(
            translate_timestamp_since(Some(Timestamp::GO_ZERO), now),
            "<unknown>"
        );
        assert_eq!(translate_timestamp_since(None, now), "<unknown>");
        // A pre-1970 but non-zero time is just old.
        assert_eq!(
            translate_timestamp_since(Some(ts("1700-01-01T00:00:00Z")), now),
            "292y"
        );
    }
}
