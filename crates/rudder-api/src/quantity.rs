//! Resource quantities (`500m`, `1Gi`, `2`): parsing with upstream's error messages, comparison,
//! and the canonical form of a bare JSON number (upstream's `Quantity.String()`).

use std::cmp::Ordering;

/// Upstream `resource.ErrFormIsNotValid`.
pub const ERR_FORM: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// Upstream `resource.ErrNumeric`.
pub const ERR_NUMERIC: &str = "unable to parse quantity's numeric part";
/// Upstream `resource.ErrSuffix`.
pub const ERR_SUFFIX: &str = "unable to parse quantity's suffix";

/// A parsed quantity, exact to the nano-unit (what comparisons need).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    /// True when the quantity is a whole number of units.
    pub fn is_integer(self) -> bool {
        self.nanos % 1_000_000_000 == 0
    }

    /// Saturating, unlike `std::ops::Add` would be expected to be.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }

    pub fn zero() -> Quantity {
        Quantity { nanos: 0 }
    }

    /// Upstream's `MilliValue`: thousandths of a unit, rounded up (what CPU requests are
    /// compared in).
    pub fn milli_value(self) -> i64 {
        let m =
            self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0);
        m.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Upstream's `Value`: whole units, rounded up (bytes of memory, counts of pods).
    pub fn value(self) -> i64 {
        let v = self.nanos.div_euclid(1_000_000_000)
            + i128::from(self.nanos.rem_euclid(1_000_000_000) != 0);
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

impl PartialOrd<i64> for Quantity {
    fn partial_cmp(&self, other: &i64) -> Option<Ordering> {
        Some(self.nanos.cmp(&(i128::from(*other) * 1_000_000_000)))
    }
}

impl PartialEq<i64> for Quantity {
    fn eq(&self, other: &i64) -> bool {
        self.nanos == i128::from(*other) * 1_000_000_000
    }
}

/// Splits `s` into sign, the decimal mantissa digits, the number of fraction digits and the
/// suffix, as upstream's `parseQuantityString` does.
fn split(s: &str) -> Result<(bool, String, i32, &str), &'static str> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut digits = String::new();
    let mut frac: i32 = 0;
    let mut seen_dot = false;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        if b[i] == b'.' {
            if seen_dot {
                return Err(ERR_NUMERIC);
            }
            seen_dot = true;
        } else {
            digits.push(b[i] as char);
            if seen_dot {
                frac += 1;
            }
        }
        i += 1;
    }
    if i == start {
        return Err(ERR_FORM);
    }
    if digits.is_empty() {
        return Err(ERR_NUMERIC);
    }
    Ok((negative, digits, frac, &s[i..]))
}

/// The multiplier a suffix stands for: `(power of 1024, power of 10)`.
fn suffix(sfx: &str) -> Result<(u32, i32), &'static str> {
    Ok(match sfx {
        "" => (0, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        "Ki" => (1, 0),
        "Mi" => (2, 0),
        "Gi" => (3, 0),
        "Ti" => (4, 0),
        "Pi" => (5, 0),
        "Ei" => (6, 0),
        s if s.starts_with('e') || s.starts_with('E') => {
            let exp: i32 = s[1..].parse().map_err(|_| ERR_SUFFIX)?;
            (0, exp)
        }
        s if s.bytes().all(|c| b"eEinumkKMGTP+-0123456789".contains(&c)) => return Err(ERR_SUFFIX),
        _ => return Err(ERR_FORM),
    })
}

/// Upstream `resource.ParseQuantity`.
pub fn parse(s: &str) -> Result<Quantity, &'static str> {
    if s.is_empty() {
        return Err(ERR_FORM);
    }
    let (negative, digits, frac, sfx) = split(s)?;
    let (bin, dec) = suffix(sfx)?;
    let mut m: i128 = 0;
    for c in digits.bytes() {
        m = m.saturating_mul(10).saturating_add(i128::from(c - b'0'));
    }
    for _ in 0..bin {
        m = m.saturating_mul(1024);
    }
    // Exponents come from the client (`1e2147483647`, thousands of fraction digits): widen
    // before adding and stop scaling once the value saturates or rounds to nothing.
    let exp = 9 + i64::from(dec) - i64::from(frac);
    let nanos = if exp >= 0 {
        let mut v = m;
        for _ in 0..exp.min(40) {
            v = v.saturating_mul(10);
        }
        v
    } else if m == 0 {
        0
    } else {
        let mut div: i128 = 1;
        for _ in 0..(-exp).min(39) {
            div = div.saturating_mul(10);
        }
        // Upstream rounds sub-nano values up.
        m / div + i128::from(m % div != 0)
    };
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// The canonical quantity string of a JSON number (upstream `Quantity.String()` for a
/// decimal-SI quantity): `0.5` → `500m`, `1000` → `1k`, `1500` → `1500`.
pub fn canonical_number(n: &serde_json::Number) -> Option<String> {
    let text = n.to_string();
    let (mantissa_text, exp_text) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text.as_str(), None),
    };
    let (negative, digits, frac, rest) = split(mantissa_text).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut exp: i32 = -frac;
    if let Some(e) = exp_text {
        exp = exp.checked_add(e.parse::<i32>().ok()?)?;
    }
    let mut m: i128 = digits.parse().ok()?;
    if m == 0 {
        return Some("0".into());
    }
    while m % 10 == 0 {
        m /= 10;
        exp += 1;
    }
    // Round the exponent down to a multiple of three (the SI suffixes).
    let mut e3 = exp.div_euclid(3) * 3;
    if e3 < -9 {
        // Upstream keeps nano precision at most, rounding up.
        let shift = -9 - exp;
        let mut div: i128 = 1;
        for _ in 0..shift.min(39) {
            div = div.saturating_mul(10);
        }
        m = m / div + i128::from(m % div != 0);
        e3 = -9;
        exp = -9;
    }
    for _ in 0..(exp - e3) {
        m = m.checked_mul(10)?;
    }
    let sfx = match e3 {
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
        _ => return Some(format!("{}{m}e{e3}", if negative { "-" } else { "" })),
    };
    Some(format!("{}{m}{sfx}", if negative { "-" } else { "" }))
}

/// Upstream's `resource.Format`: how a quantity prints. Arithmetic keeps the left operand's
/// format (the right one's when the left is zero), as `Quantity.Add` does, so sums of memory
/// requests stay `Gi` and sums of CPU stay `m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

impl Format {
    /// The format `ParseQuantity` gives a string: from its suffix.
    pub fn of(s: &str) -> Format {
        let sfx = s.trim().trim_start_matches(['+', '-']);
        let sfx = sfx.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
        if sfx.ends_with('i') {
            Format::BinarySI
        } else if sfx.starts_with(['e', 'E']) {
            Format::DecimalExponent
        } else {
            Format::DecimalSI
        }
    }
}

/// A quantity with the format it prints in (what upstream's `resource.Quantity` carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount {
    pub value: Quantity,
    pub format: Format,
}

impl Amount {
    /// `resource.NewQuantity(n, DecimalSI)`.
    pub fn count(n: i64) -> Amount {
        Amount {
            value: Quantity {
                nanos: i128::from(n) * 1_000_000_000,
            },
            format: Format::DecimalSI,
        }
    }

    /// `resource.Quantity{Format: DecimalSI}`.
    pub fn zero() -> Amount {
        Amount::count(0)
    }

    pub fn parse(s: &str) -> Result<Amount, &'static str> {
        Ok(Amount {
            value: parse(s.trim())?,
            format: Format::of(s),
        })
    }

    /// A quantity as JSON holds it: a string, or a bare number (decimal).
    pub fn from_json(v: &serde_json::Value) -> Option<Amount> {
        match v {
            serde_json::Value::String(s) => Amount::parse(s).ok(),
            serde_json::Value::Number(n) => Amount::parse(&canonical_number(n)?).ok(),
            _ => None,
        }
    }

    pub fn is_zero(self) -> bool {
        self.value.nanos == 0
    }

    /// `Quantity.Add`.
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, other: Amount) -> Amount {
        Amount {
            value: self.value.add(other.value),
            format: if self.is_zero() {
                other.format
            } else {
                self.format
            },
        }
    }

    /// `Quantity.Sub`.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, other: Amount) -> Amount {
        let neg = Quantity {
            nanos: other.value.nanos.saturating_neg(),
        };
        self.add(Amount {
            value: neg,
            format: other.format,
        })
    }

    /// `Quantity.RoundUp(0)`: whole units, rounded away from zero.
    pub fn round_up(self) -> Amount {
        Amount {
            value: Quantity {
                nanos: i128::from(self.value.value()) * 1_000_000_000,
            },
            format: self.format,
        }
    }
}

impl std::fmt::Display for Amount {
    /// `Quantity.String()`: the canonical form in the quantity's format.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&canonical(self.value.nanos, self.format))
    }
}

const SI: [(i32, &str); 10] = [
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// Upstream's `CanonicalizeBytes` over a nano-exact value.
fn canonical(nanos: i128, mut format: Format) -> String {
    if nanos == 0 {
        return "0".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let abs = nanos.unsigned_abs();
    if format == Format::BinarySI {
        // Below 1024, or fractional, a binary quantity prints as decimal.
        if abs < 1024 * 1_000_000_000 || !abs.is_multiple_of(1_000_000_000) {
            format = Format::DecimalSI;
        } else {
            let mut v = abs / 1_000_000_000;
            let mut times = 0;
            while times < 6 && v.is_multiple_of(1024) {
                v /= 1024;
                times += 1;
            }
            let sfx = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][times];
            return format!("{sign}{v}{sfx}");
        }
    }
    let (mut m, mut exp) = (abs, -9i32);
    while m.is_multiple_of(10) {
        m /= 10;
        exp += 1;
    }
    let e3 = exp.div_euclid(3) * 3;
    for _ in 0..(exp - e3) {
        m *= 10;
    }
    let sfx = match format {
        Format::DecimalSI => SI
            .iter()
            .find(|(e, _)| *e == e3)
            .map(|(_, s)| s.to_string()),
        _ => None,
    };
    let sfx = sfx.unwrap_or_else(|| {
        if e3 == 0 {
            String::new()
        } else {
            format!("e{e3}")
        }
    });
    format!("{sign}{m}{sfx}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_and_whole_values_round_up() {
        assert_eq!(parse("100m").unwrap().milli_value(), 100);
        assert_eq!(parse("1.5").unwrap().milli_value(), 1500);
        assert_eq!(parse("1Gi").unwrap().value(), 1 << 30);
        assert_eq!(parse("1500m").unwrap().value(), 2);
        assert_eq!(parse("1n").unwrap().milli_value(), 1);
    }

    #[test]
    fn parses_and_compares() {
        let q = |s| parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(q("500m") < q("1"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("1e3"), q("1k"));
        assert!(q("128Mi") < q("1Gi"));
        assert!(q("-1").is_negative());
        assert!(q("0") == 0);
        assert_eq!(parse("abc"), Err(ERR_FORM));
        assert_eq!(parse("1Qi"), Err(ERR_FORM));
        assert_eq!(parse("1.2.3"), Err(ERR_NUMERIC));
        assert_eq!(parse("1kk"), Err(ERR_SUFFIX));
    }

    #[test]
    fn extreme_exponents_saturate_or_round_instead_of_overflowing() {
        let huge = "9".repeat(60);
        assert_eq!(
            parse(&format!("{huge}e-1")).map(|q| q.is_negative()),
            Ok(false)
        );
        assert!(parse(&format!("{huge}e-1")).is_ok_and(|q| q > i64::MAX));
        assert!(parse("1e2147483647").is_ok_and(|q| q > i64::MAX));
        assert_eq!(parse("1e-2147483648").map(|q| q.nanos), Ok(1));
        assert_eq!(
            parse(&format!("0.{}1", "0".repeat(100))).map(|q| q.nanos),
            Ok(1)
        );
        assert_eq!(parse("0e-2147483648").map(|q| q.nanos), Ok(0));
        let tiny: serde_json::Number = serde_json::from_str("1e-300").unwrap();
        assert_eq!(canonical_number(&tiny).as_deref(), Some("1n"));
    }

    #[test]
    fn canonical_numbers() {
        let c = |v: serde_json::Value| match v {
            serde_json::Value::Number(n) => canonical_number(&n),
            _ => None,
        };
        assert_eq!(c(serde_json::json!(2)).as_deref(), Some("2"));
        assert_eq!(c(serde_json::json!(0.5)).as_deref(), Some("500m"));
        assert_eq!(c(serde_json::json!(1000)).as_deref(), Some("1k"));
        assert_eq!(c(serde_json::json!(1500)).as_deref(), Some("1500"));
        assert_eq!(c(serde_json::json!(0.25)).as_deref(), Some("250m"));
    }

    #[test]
    fn amounts_keep_their_format() {
        let a = |s| Amount::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(a("500m").add(a("500m")).to_string(), "1");
        assert_eq!(a("512Mi").add(a("512Mi")).to_string(), "1Gi");
        assert_eq!(Amount::zero().add(a("1Gi")).to_string(), "1Gi");
        assert_eq!(a("100m").add(a("1")).to_string(), "1100m");
        assert_eq!(a("1Gi").sub(a("1Gi")).to_string(), "0");
        assert_eq!(a("1500").to_string(), "1500");
        assert_eq!(a("2000").to_string(), "2k");
        assert_eq!(a("1536").to_string(), "1536");
        assert_eq!(a("1.5Ki").to_string(), "1536");
        assert_eq!(a("0.5Gi").to_string(), "512Mi");
        assert_eq!(a("100Mi").add(a("1")).to_string(), "104857601");
        assert_eq!(a("1e3").to_string(), "1e3");
        assert_eq!(Amount::count(3).to_string(), "3");
        assert_eq!(a("1.5").round_up().to_string(), "2");
    }
}
