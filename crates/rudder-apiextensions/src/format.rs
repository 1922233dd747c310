//! The string formats upstream validates in custom resources (kube-openapi's `strfmt`
//! registry as apiextensions keeps it: formats it does not know are not checked).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

fn re(cell: &'static OnceLock<Option<Regex>>, src: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(src).ok()).as_ref()
}

macro_rules! pattern {
    ($name:ident, $src:expr) => {
        fn $name(s: &str) -> bool {
            static CELL: OnceLock<Option<Regex>> = OnceLock::new();
            re(&CELL, $src).is_some_and(|r| r.is_match(s))
        }
    };
}

// Upstream strfmt's patterns.
pattern!(
    hostname_re,
    r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$"
);
pattern!(
    uuid,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
);
pattern!(
    uuid3,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
);
pattern!(
    uuid4,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
);
pattern!(
    uuid5,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
);
pattern!(hexcolor, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$");
pattern!(
    rgbcolor,
    r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"
);
pattern!(
    mac,
    r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}([0-9A-Fa-f]{4})$|^([0-9A-Fa-f]{2}[:-]){7}([0-9A-Fa-f]{2})$"
);
pattern!(bsonobjectid, r"^[0-9a-fA-F]{24}$");
pattern!(ssn, r"^\d{3}[- ]?\d{2}[- ]?\d{4}$");
pattern!(date, r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$");
pattern!(
    date_time,
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d(:([0-5]\d|60)(\.\d+)?)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)?$"
);
pattern!(
    duration,
    r"^([+-]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w))+$|^[+-]?0$|^(\d+\s*(ns|us|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)\s*)+$"
);
pattern!(email, r"^[^@\s<>()\[\]\\,;:]+@[^@\s<>()\[\]\\,;:]+$");
pattern!(isbn10, r"^(?:[0-9]{9}X|[0-9]{10})$");
pattern!(isbn13, r"^(?:[0-9]{13})$");
pattern!(
    creditcard,
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}|6[27][0-9]{14})$"
);

fn hostname(s: &str) -> bool {
    if !hostname_re(s) || s.len() > 255 {
        return false;
    }
    s.split('.').all(|l| l.len() <= 63)
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if bits.to_string() != s.split_once('/').map_or("", |p| p.1) {
        return false;
    }
    (ip.parse::<Ipv4Addr>().is_ok() && bits <= 32)
        || (ip.parse::<Ipv6Addr>().is_ok() && bits <= 128)
}

fn uri(s: &str) -> bool {
    // Go's url.ParseRequestURI: an absolute URI or an absolute path, no spaces or controls.
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut cs = scheme.chars();
            cs.next().is_some_and(|c| c.is_ascii_alphabetic())
                && cs.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

fn byte(s: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).is_ok()
}

/// Whether `s` is valid in `format`; `None` for formats that are not checked.
pub(crate) fn valid(format: &str, s: &str) -> Option<bool> {
    Some(match format {
        "hostname" => hostname(s),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "uuid" => uuid(s),
        "uuid3" => uuid3(s),
        "uuid4" => uuid4(s),
        "uuid5" => uuid5(s),
        "uri" => uri(s),
        "email" => email(s),
        "mac" => mac(s),
        "byte" => byte(s),
        "date" => date(s),
        "date-time" | "datetime" => date_time(s),
        "duration" => duration(s),
        "hexcolor" => hexcolor(s),
        "rgbcolor" => rgbcolor(s),
        "bsonobjectid" => bsonobjectid(s),
        "ssn" => ssn(s),
        "isbn10" => isbn10(s),
        "isbn13" => isbn13(s),
        "isbn" => isbn10(s) || isbn13(s),
        "creditcard" => creditcard(s),
        "password" => true,
        _ => return None,
    })
}
