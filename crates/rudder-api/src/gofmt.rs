//! Go formatting helpers.
//!
//! Upstream builds its user-visible messages with Go's `fmt` verbs (`%q`, `%v`) and
//! `encoding/json`. kubectl prints those messages verbatim, so reproducing them byte for byte is
//! part of wire compatibility. These helpers are the only place that knows Go's quoting rules.

use std::fmt::Write as _;

/// Quotes `s` the way Go's `strconv.Quote` (the `%q` verb) does.
///
/// Printable runes are kept as they are; `"` and `\` get a backslash; the C escapes (`\a`, `\b`,
/// `\f`, `\n`, `\r`, `\t`, `\v`) are used where they exist; other ASCII control bytes become
/// `\xHH`; other non-printable runes become `\uHHHH` or `\UHHHHHHHH`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the
/// ASCII space.
///
/// Rust's standard library has no general-category table, so this treats every assigned-looking
/// rune as printable except controls, non-ASCII whitespace, the common format characters (Cf)
/// and private-use code points. Unassigned code points are printed as-is where Go would escape
/// them; no Kubernetes name or label can contain them, so the difference never reaches a client
/// for a valid object.
pub(crate) fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(
        u,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xE000..=0xF8FF
            | 0xF0000..=0x10FFFF
    );
    !format_or_private
}

/// Encodes `s` as a JSON string the way Go's `encoding/json` does, including its HTML-safe
/// escaping of `<`, `>` and `&` and of U+2028/U+2029.
///
/// Used where upstream emits JSON that clients may compare byte for byte (continue tokens, and
/// JSON-rendered bad values in field errors).
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a JSON value the way Go's `json.Marshal` renders the same data held in Go maps and
/// slices: compact, Go's string escaping, object keys sorted. (Go structs keep their declaration
/// order instead; callers rendering a struct format it themselves.)
pub(crate) fn json_value(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_json_value(&mut out, v);
    out
}

fn write_json_value(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => out.push_str(&n.to_string()),
        serde_json::Value::String(s) => out.push_str(&json_string(s)),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, item);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            out.push('{');
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(k));
                out.push(':');
                write_json_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go_strconv_quote() {
        // Expected values are what Go's strconv.Quote returns for the same input.
        assert_eq!(quote("Foo"), r#""Foo""#);
        assert_eq!(quote(""), r#""""#);
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("a\nb\tc\r"), r#""a\nb\tc\r""#);
        assert_eq!(quote("\u{07}\u{08}\u{0c}\u{0b}"), r#""\a\b\f\v""#);
        assert_eq!(quote("\u{01}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(quote("héllo ☃"), "\"héllo ☃\"");
        assert_eq!(quote("\u{200b}"), r#""\u200b""#);
        assert_eq!(quote("\u{a0}"), r#""\u00a0""#);
        assert_eq!(quote("\u{F0000}"), r#""\U000f0000""#);
    }

    #[test]
    fn json_string_matches_go_encoding_json() {
        assert_eq!(json_string("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(json_string("x\u{0}y"), r#""x\u0000y""#);
        assert_eq!(json_string("é\u{2028}"), "\"é\\u2028\"");
        assert_eq!(
            json_value(&serde_json::json!(["a", "b", null, 1, true])),
            r#"["a","b",null,1,true]"#
        );
        assert_eq!(
            json_value(&serde_json::json!({"b": 1, "a": "x"})),
            r#"{"a":"x","b":1}"#
        );
    }
}
