//! robfig/cron v3's standard parser (`cron.ParseStandard`), which upstream uses both to validate
//! `CronJob.spec.schedule` and to run it: five fields (minute, hour, day of month, month, day of
//! week) with ranges, steps, lists, `*`/`?` and JAN/MON names, the `@yearly`…`@hourly`
//! descriptors, `@every <duration>`, and a leading `TZ=`/`CRON_TZ=` location. Error texts are
//! robfig's. Only parsing lives here (the API server validates with it); computing the next
//! activation needs a time-zone database and lives with the CronJob controller.

use std::fmt::Write as _;

/// Set in a field's bits when it was written as `*` or `?` (robfig's `starBit`): a day-of-month
/// or day-of-week field with it makes the two day fields combine with AND instead of OR.
pub const STAR_BIT: u64 = 1 << 63;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A five-field spec (or a descriptor, which robfig expands to one); bit `n` of a field is
    /// set when value `n` matches.
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// The `TZ=`/`CRON_TZ=` location written in the spec, if any.
        location: Option<String>,
    },
    /// `@every <duration>`: whole seconds, at least one (robfig's `ConstantDelaySchedule`).
    Every { seconds: u64 },
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// `cron.ParseStandard(spec)`.
pub fn parse_standard(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut location = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        // robfig slices between the `=` and the first space; a spec without a space is a
        // location with nothing after it.
        let eq = spec.find('=').unwrap_or(0);
        let end = spec.find(' ').unwrap_or(spec.len());
        location = Some(spec[eq + 1..end].to_string());
        spec = spec[end..].trim();
    }
    if spec.starts_with('@') {
        return descriptor(spec, location);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(Schedule::Spec {
        minute: field(fields[0], &MINUTES)?,
        hour: field(fields[1], &HOURS)?,
        dom: field(fields[2], &DOM)?,
        month: field(fields[3], &MONTHS)?,
        dow: field(fields[4], &DOW)?,
        location,
    })
}

fn descriptor(spec: &str, location: Option<String>) -> Result<Schedule, String> {
    let all = |b: &Bounds| bits(b.min, b.max, 1) | STAR_BIT;
    let (minute, hour, dom, month, dow) = match spec {
        "@yearly" | "@annually" => (1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => (1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => (1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => (1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => (1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            if let Some(d) = spec.strip_prefix("@every ") {
                let nanos =
                    go_duration(d).map_err(|e| format!("failed to parse duration {spec}: {e}"))?;
                // Every() rounds up to a second and drops sub-second parts.
                let seconds = (nanos.max(1_000_000_000) / 1_000_000_000) as u64;
                return Ok(Schedule::Every { seconds });
            }
            return Err(format!("unrecognized descriptor: {spec}"));
        }
    };
    Ok(Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
        location,
    })
}

/// `getField`: a comma-separated list of ranges, OR-ed.
fn field(text: &str, b: &Bounds) -> Result<u64, String> {
    let mut out = 0;
    for expr in text.split(',').filter(|s| !s.is_empty()) {
        out |= range(expr, b)?;
    }
    Ok(out)
}

/// `getRange`: `*`, `?`, `n`, `a-b`, each optionally `/step` (`n/step` means `n-max/step`).
fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        extra = STAR_BIT;
        (b.min, b.max)
    } else {
        let start = int_or_name(low_high[0], b.names)?;
        let end = match low_high.len() {
            1 => start,
            2 => int_or_name(low_high[1], b.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = positive_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn bits(min: u32, max: u32, step: u32) -> u64 {
    if step == 1 {
        return !(u64::MAX << (max + 1)) & (u64::MAX << min);
    }
    (min..=max)
        .step_by(step as usize)
        .fold(0, |acc, i| acc | 1 << i)
}

fn int_or_name(expr: &str, names: &[&str]) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Month names count from 1, day names from 0.
        return Ok(i as u32 + u32::from(names.len() == 12));
    }
    positive_int(expr)
}

/// `mustParseInt`: Go's `strconv.Atoi`, then no negatives.
fn positive_int(expr: &str) -> Result<u32, String> {
    let n = go_atoi(expr).map_err(|e| format!("failed to parse int from {expr}: {e}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    // Values past a field's bounds are rejected by the range checks; clamp so they still are.
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn go_atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            crate::go_quote(s)
        ));
    }
    s.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            crate::go_quote(s)
        )
    })
}

/// Go's `time.ParseDuration`, in nanoseconds (e.g. `1h30m`, `1.5s`, `90s`).
fn go_duration(s: &str) -> Result<i128, String> {
    let quoted = crate::go_quote(s);
    let invalid = || format!("time: invalid duration {quoted}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." {
            return Err(invalid());
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("time: missing unit in duration {quoted}")),
            _ => {
                let mut m = String::new();
                let _ = write!(
                    m,
                    "time: unknown unit {} in duration {quoted}",
                    crate::go_quote(unit)
                );
                return Err(m);
            }
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') {
            return Err(invalid());
        }
        let int: i128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| invalid())?
        };
        let mut frac_ns: i128 = 0;
        let mut div: i128 = 1;
        for c in frac.bytes().take(18) {
            frac_ns = frac_ns * 10 + i128::from(c - b'0');
            div *= 10;
        }
        total += int * scale + frac_ns * scale / div;
        if total > i128::from(i64::MAX) {
            return Err(invalid());
        }
    }
    Ok(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> (u64, u64, u64, u64, u64) {
        match parse_standard(s).unwrap() {
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
                ..
            } => (minute, hour, dom, month, dow),
            other => panic!("{other:?}"),
        }
    }

    // robfig/cron v3 parser_test.go TestRange / TestField cases.
    #[test]
    fn ranges_as_robfig() {
        let r = |e: &str, min, max| {
            range(
                e,
                &Bounds {
                    min,
                    max,
                    names: &[],
                },
            )
        };
        assert_eq!(r("5", 0, 7), Ok(1 << 5));
        assert_eq!(r("0", 0, 7), Ok(1));
        assert_eq!(r("7", 0, 7), Ok(1 << 7));
        assert_eq!(r("5-5", 0, 7), Ok(1 << 5));
        assert_eq!(r("5-6", 0, 7), Ok(1 << 5 | 1 << 6));
        assert_eq!(r("5-7", 0, 7), Ok(1 << 5 | 1 << 6 | 1 << 7));
        assert_eq!(r("5-6/2", 0, 7), Ok(1 << 5));
        assert_eq!(r("5-7/2", 0, 7), Ok(1 << 5 | 1 << 7));
        assert_eq!(r("5-7/1", 0, 7), Ok(1 << 5 | 1 << 6 | 1 << 7));
        assert_eq!(r("*", 1, 3), Ok(1 << 1 | 1 << 2 | 1 << 3 | STAR_BIT));
        assert_eq!(r("*/2", 1, 3), Ok(1 << 1 | 1 << 3));
        assert_eq!(r("5--5", 0, 0).unwrap_err(), "too many hyphens: 5--5");
        assert_eq!(
            r("jan-x", 0, 0).unwrap_err(),
            "failed to parse int from jan: strconv.Atoi: parsing \"jan\": invalid syntax"
        );
        assert_eq!(
            r("2-x", 1, 5).unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            r("*/-12", 0, 0).unwrap_err(),
            "negative number (-12) not allowed: -12"
        );
        assert_eq!(r("*//2", 0, 0).unwrap_err(), "too many slashes: *//2");
        assert_eq!(
            r("1", 3, 5).unwrap_err(),
            "beginning of range (1) below minimum (3): 1"
        );
        assert_eq!(
            r("6", 3, 5).unwrap_err(),
            "end of range (6) above maximum (5): 6"
        );
        assert_eq!(
            r("5-3", 3, 5).unwrap_err(),
            "beginning of range (5) beyond end of range (3): 5-3"
        );
        assert_eq!(
            r("*/0", 0, 0).unwrap_err(),
            "step of range should be a positive number: */0"
        );
    }

    #[test]
    fn fields_names_and_descriptors() {
        assert_eq!(field("5,6", &DOW).ok(), Some(1 << 5 | 1 << 6));
        assert!(field("5,6,7", &DOW).is_err());
        let (_, _, _, month, dow) = spec("0 0 * JAN-MAR mon,Fri");
        assert_eq!(month, 1 << 1 | 1 << 2 | 1 << 3);
        assert_eq!(dow, 1 << 1 | 1 << 5);
        let (_, _, dom, _, dow) = spec("0 0 ? * 1");
        assert_eq!(dom & STAR_BIT, STAR_BIT);
        assert_eq!(dow, 1 << 1);
        assert_eq!(
            spec("@hourly"),
            (
                1,
                bits(0, 23, 1) | STAR_BIT,
                bits(1, 31, 1) | STAR_BIT,
                bits(1, 12, 1) | STAR_BIT,
                bits(0, 6, 1) | STAR_BIT
            )
        );
        assert_eq!(spec("@weekly").4, 1);
        assert_eq!(spec("@annually"), spec("@yearly"));
        assert_eq!(spec("@midnight"), spec("@daily"));
        assert_eq!(
            parse_standard("@every 1h30m"),
            Ok(Schedule::Every { seconds: 5400 })
        );
        assert_eq!(
            parse_standard("@every 500ms"),
            Ok(Schedule::Every { seconds: 1 })
        );
        assert_eq!(
            parse_standard("@fortnightly").unwrap_err(),
            "unrecognized descriptor: @fortnightly"
        );
        assert_eq!(
            parse_standard("* * * *").unwrap_err(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            parse_standard("0 24 * * *").unwrap_err(),
            "end of range (24) above maximum (23): 24"
        );
        assert_eq!(parse_standard("").unwrap_err(), "empty spec string");
        match parse_standard("CRON_TZ=Asia/Tokyo 0 9 * * *") {
            Ok(Schedule::Spec { location, .. }) => {
                assert_eq!(location.as_deref(), Some("Asia/Tokyo"))
            }
            other => panic!("{other:?}"),
        }
    }
}
