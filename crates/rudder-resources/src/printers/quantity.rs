//! `resource.Quantity.String()`: the canonical form upstream prints for capacities, quota usage
//! and metric values.
//!
//! Upstream never prints the string a client sent: it parses it and prints the canonical form
//! (`4096Mi` → `4Gi`, `1.5` → `1500m`, `0.5Ki` → `512`), except that an input already in
//! canonical form is echoed byte for byte (so `+5` stays `+5`). A server that stored quantities
//! as submitted would print them differently, so the printers canonicalise here.
//!
//! This is a port of `ParseQuantity` and `CanonicalizeBytes` over exact integer arithmetic
//! (`u128` mantissa, power-of-ten exponent) in place of `inf.Dec`. Values beyond that range
//! (more than 38 significant digits) are printed as given.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

/// The parts `parseQuantityString` splits a quantity into.
struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// `Quantity.String()` of a quantity field: `"0"` when absent (Go's zero value).
pub(crate) fn quantity_string(v: Option<&Value>) -> String {
    match v {
        None => "0".to_owned(),
        Some(v) => format_json_quantity(v),
    }
}

/// `(*Quantity).String()` of a pointer field: `"<nil>"` when absent.
pub(crate) fn quantity_ptr_string(v: Option<&Value>) -> String {
    match v {
        None => "<nil>".to_owned(),
        Some(v) => format_json_quantity(v),
    }
}

/// A quantity as JSON holds it (a string, or a bare number, both of which upstream decodes).
pub fn format_json_quantity(v: &Value) -> String {
    match v {
        Value::String(s) => canonical_quantity(s),
        Value::Number(n) => canonical_quantity(&n.to_string()),
        // Upstream would have rejected the object; print nothing rather than guess.
        _ => String::new(),
    }
}

/// Upstream `ParseQuantity(s).String()`; the input unchanged when it does not parse.
pub fn canonical_quantity(s: &str) -> String {
    let s = s.trim();
    canonicalize(s).unwrap_or_else(|| s.to_owned())
}

fn canonicalize(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some("0".to_owned());
    }
    let p = parse_parts(s)?;
    let (base, exponent, mut format) = interpret_suffix(p.suffix)?;
    if echoes_input(&p, exponent, format) {
        return Some(s.to_owned());
    }

    // value = digits × 10^exp10 × 2^exponent(binary), exactly.
    let mut mant = parse_digits(p.num, p.denom)?;
    // i64, so that shifting trailing zeros into an exponent near i32::MAX cannot overflow.
    let mut exp10 = i64::from(if base == 10 { exponent } else { 0 }) - p.denom.len() as i64;
    if base == 2 {
        mant = mant.checked_mul(1u128.checked_shl(u32::try_from(exponent).ok()?)?)?;
    }
    // Rounded away from zero to nanoseconds' worth of precision (10^-9), as `inf.RoundUp`.
    if exp10 < -9 {
        mant = div_ceil_pow10(mant, (-9 - exp10).unsigned_abs());
        exp10 = -9;
    }
    if format == Format::BinarySI {
        // The int64 cap upstream applies to binary quantities only.
        if exceeds_i64(mant, exp10) {
            mant = i64::MAX as u128;
            exp10 = 0;
        }
        if mant != 0 && below_one(mant, exp10) {
            format = Format::DecimalSI;
        }
    }
    if mant == 0 {
        return Some("0".to_owned());
    }
    let sign = if p.positive { "" } else { "-" };

    if format == Format::BinarySI {
        if let Some(v) = integer_value(mant, exp10).filter(|v| *v >= 1024) {
            let (mut v, mut times) = (v, 0usize);
            while v >= 1024 && v % 1024 == 0 {
                v /= 1024;
                times += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                .get(times)
                .copied()?;
            return Some(format!("{sign}{v}{suffix}"));
        }
        // Under 1024, or not a whole number: decimal, so nothing is rounded away.
        format = Format::DecimalSI;
    }

    while mant >= 10 && mant % 10 == 0 {
        mant /= 10;
        exp10 += 1;
    }
    match exp10.rem_euclid(3) {
        1 => {
            mant = mant.checked_mul(10)?;
            exp10 -= 1;
        }
        2 => {
            mant = mant.checked_mul(100)?;
            exp10 -= 2;
        }
        _ => {}
    }
    let suffix = match format {
        Format::DecimalExponent if exp10 == 0 => String::new(),
        Format::DecimalExponent => format!("e{exp10}"),
        // Upstream has no suffix beyond E (10^18) and, quirkily, prints the number bare.
        _ => decimal_suffix(exp10).unwrap_or("").to_owned(),
    };
    Some(format!("{sign}{mant}{suffix}"))
}

/// Upstream `parseQuantityString`.
fn parse_parts(s: &str) -> Option<Parts<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos += 1;
        }
        Some(b'+') => pos += 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == start { "0" } else { &s[start..pos] };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[start..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    Some(Parts {
        positive,
        num,
        denom,
        suffix: s.get(suffix_start..)?,
    })
}

/// Upstream's suffixer: `(base, exponent, format)`.
fn interpret_suffix(s: &str) -> Option<(u32, i32, Format)> {
    use Format::*;
    Some(match s {
        "" => (10, 0, DecimalSI),
        "n" => (10, -9, DecimalSI),
        "u" => (10, -6, DecimalSI),
        "m" => (10, -3, DecimalSI),
        "k" => (10, 3, DecimalSI),
        "M" => (10, 6, DecimalSI),
        "G" => (10, 9, DecimalSI),
        "T" => (10, 12, DecimalSI),
        "P" => (10, 15, DecimalSI),
        "E" => (10, 18, DecimalSI),
        "Ki" => (2, 10, BinarySI),
        "Mi" => (2, 20, BinarySI),
        "Gi" => (2, 30, BinarySI),
        "Ti" => (2, 40, BinarySI),
        "Pi" => (2, 50, BinarySI),
        "Ei" => (2, 60, BinarySI),
        _ if s.len() > 1 && s.starts_with(['e', 'E']) => (
            10,
            i32::try_from(s[1..].parse::<i64>().ok()?).ok()?,
            DecimalExponent,
        ),
        _ => return None,
    })
}

fn decimal_suffix(exp10: i64) -> Option<&'static str> {
    Some(match exp10 {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => return None,
    })
}

/// Upstream's fast path keeps the caller's string when it is already canonical; this is that
/// test, so the output matches byte for byte (`+5`, `1025Ki`).
fn echoes_input(p: &Parts<'_>, exponent: i32, format: Format) -> bool {
    match format {
        Format::BinarySI => {
            if exponent < 0 || !p.denom.is_empty() {
                return false;
            }
            // int32(float32(exponent)*3/10): upstream's estimate of the decimal digits used.
            let precision = 15 - p.num.len() as i64 - i64::from(exponent) * 3 / 10 - 1;
            if precision < 0 {
                return false;
            }
            let Ok(value) = p.num.parse::<i64>() else {
                return false;
            };
            let fits = 1i64
                .checked_shl(exponent.unsigned_abs())
                .and_then(|m| value.checked_mul(m))
                .is_some();
            fits && exponent % 10 == 0 && value & 0x07 != 0
        }
        Format::DecimalSI | Format::DecimalExponent => {
            let scale = i64::from(exponent) - p.denom.len() as i64;
            if p.num.len() + p.denom.len() > 18 || scale < -9 {
                return false;
            }
            let shifted = [p.num, p.denom].concat();
            scale % 3 == 0 && !shifted.ends_with("000") && !shifted.starts_with('0')
        }
    }
}

fn parse_digits(num: &str, denom: &str) -> Option<u128> {
    let mut v: u128 = 0;
    for c in num.bytes().chain(denom.bytes()) {
        v = v.checked_mul(10)?.checked_add(u128::from(c - b'0'))?;
    }
    Some(v)
}

fn pow10(k: u64) -> Option<u128> {
    10u128.checked_pow(u32::try_from(k).ok()?)
}

fn div_ceil_pow10(m: u128, k: u64) -> u128 {
    match pow10(k) {
        Some(p) => m.div_ceil(p),
        // 10^k exceeds any u128 mantissa: a non-zero value rounds up to one unit.
        None => u128::from(m > 0),
    }
}

/// mant × 10^exp10 > i64::MAX
fn exceeds_i64(mant: u128, exp10: i64) -> bool {
    let max = i64::MAX as u128;
    if exp10 >= 0 {
        match pow10(exp10.unsigned_abs()).and_then(|p| mant.checked_mul(p)) {
            Some(v) => v > max,
            None => true,
        }
    } else {
        match pow10(exp10.unsigned_abs()).and_then(|p| max.checked_mul(p)) {
            Some(limit) => mant > limit,
            None => false,
        }
    }
}

/// mant × 10^exp10 < 1
fn below_one(mant: u128, exp10: i64) -> bool {
    exp10 < 0 && pow10(exp10.unsigned_abs()).is_none_or(|p| mant < p)
}

/// The value as an integer when it is one.
fn integer_value(mant: u128, exp10: i64) -> Option<u128> {
    if exp10 >= 0 {
        mant.checked_mul(pow10(exp10.unsigned_abs())?)
    } else {
        let p = pow10(exp10.unsigned_abs())?;
        mant.is_multiple_of(p).then(|| mant / p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_upstream() {
        for (input, want) in [
            ("0", "0"),
            ("4Gi", "4Gi"),
            ("4096Mi", "4Gi"),
            ("10Gi", "10Gi"),
            ("1Ki", "1Ki"),
            ("1024Ki", "1Mi"),
            ("1025Ki", "1025Ki"),
            ("0.5Ki", "512"),
            ("1.5Ki", "1536"),
            ("1.5Gi", "1536Mi"),
            ("1", "1"),
            ("100", "100"),
            ("1000", "1k"),
            ("1500", "1500"),
            ("1.5", "1500m"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("50m", "50m"),
            ("0.1", "100m"),
            ("2000000", "2M"),
            ("1e3", "1e3"),
            ("1E3", "1E3"),
            ("1000e3", "1e6"),
            ("1.5e3", "1500"),
            ("12e-1", "1200e-3"),
            ("1n", "1n"),
            ("0.0000000001", "1n"),
            ("0.0000000015", "2n"),
            ("-1.5", "-1500m"),
            ("-5", "-5"),
            ("+5", "+5"),
            ("+1Ki", "+1Ki"),
            ("05", "05"),
            ("0.0", "0"),
            ("00", "0"),
            ("-0", "0"),
            ("0Ki", "0"),
            ("1.", "1."),
            ("8Ei", "9223372036854775807"),
            ("1000E", "1"),
            // Exponents at the edges of i32 neither overflow nor panic (upstream's int32
            // arithmetic wraps here; the value printed is the exact one).
            ("10e2147483647", "100e2147483646"),
            ("100e2147483646", "100e2147483646"),
            ("1e-2147483648", "1e-9"),
            ("1e2147483648", "1e2147483648"),
            ("  2Gi ", "2Gi"),
            ("500Mi", "500Mi"),
            ("1k", "1k"),
            ("1000k", "1M"),
        ] {
            assert_eq!(canonical_quantity(input), want, "{input:?}");
        }
    }

    #[test]
    fn invalid_quantities_print_as_given() {
        for bad in ["", "abc", "1Gix", "1.2.3", "1 Gi", "--1", "1e", "1ee3"] {
            assert_eq!(canonical_quantity(bad), bad.trim(), "{bad:?}");
        }
        assert_eq!(format_json_quantity(&serde_json::json!(5)), "5");
        assert_eq!(format_json_quantity(&serde_json::json!(0.5)), "500m");
        assert_eq!(quantity_string(None), "0");
        assert_eq!(quantity_ptr_string(None), "<nil>");
    }
}
