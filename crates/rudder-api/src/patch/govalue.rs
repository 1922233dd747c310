//! How upstream's Go code sees a decoded JSON value.
//!
//! `strategicpatch` works on `map[string]interface{}` trees decoded by apimachinery's JSON
//! package, which turns integral numbers into `int64` and the rest into `float64`. Two of its
//! behaviours depend on that representation and show up in results: values of different Go types
//! never compare equal or merge (an `int64` replaces a `float64`), and lists are sorted and
//! compared through their `fmt.Sprintf("%v")` strings. Error messages embed `%v` and `%s`
//! renderings. This module reproduces those three views of a [`Value`].

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::error::PatchError;

/// The Go dynamic type of a decoded JSON value (`reflect.TypeOf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Array,
    Object,
}

pub(crate) fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        // apimachinery keeps a number as int64 when `strconv.ParseInt` accepts it, so u64 values
        // above i64::MAX are float64 in Go.
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// Go's `reflect.TypeOf(v).String()` for a decoded value, as `ErrBadArgType` prints it.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match kind(v) {
        // `%s` of a nil reflect.Type.
        Kind::Null => "%!s(<nil>)",
        Kind::Bool => "bool",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::String => "string",
        Kind::Array => SLICE_TYPE,
        Kind::Object => MAP_TYPE,
    }
}

pub(crate) const MAP_TYPE: &str = "map[string]interface {}";
pub(crate) const SLICE_TYPE: &str = "[]interface {}";

/// `mergepatch.ErrBadArgType(expected, actual)`.
pub(crate) fn bad_arg_type(expected: &str, actual: &Value) -> PatchError {
    PatchError::BadArgType {
        expected: expected.to_owned(),
        actual: type_name(actual).to_owned(),
    }
}

/// `mergepatch.ErrNoMergeKey(m, k)`.
pub(crate) fn no_merge_key(map: &Map<String, Value>, key: &str) -> PatchError {
    PatchError::NoMergeKey {
        map: go_v_map(map),
        key: key.to_owned(),
    }
}

/// `fmt.Sprintf("%v", v)`.
pub(crate) fn go_v(v: &Value) -> String {
    let mut out = String::new();
    write_v(&mut out, v);
    out
}

/// `fmt.Sprintf("%v", m)` for a map.
pub(crate) fn go_v_map(m: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_map(&mut out, m, write_v);
    out
}

/// `fmt.Sprintf("%v", l)` for a list.
pub(crate) fn go_v_list(l: &[Value]) -> String {
    let mut out = String::new();
    write_list(&mut out, l, write_v);
    out
}

/// `fmt.Sprintf("%s", v)`: strings print as they are, other scalars as `%!s(type=value)`.
pub(crate) fn go_s(v: &Value) -> String {
    let mut out = String::new();
    write_s(&mut out, v);
    out
}

fn write_v(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.push_str(&format_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(l) => write_list(out, l, write_v),
        Value::Object(m) => write_map(out, m, write_v),
    }
}

fn write_s(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(l) => write_list(out, l, write_s),
        Value::Object(m) => write_map(out, m, write_s),
        Value::Null => out.push_str("%!s(<nil>)"),
        other => {
            let _ = write!(out, "%!s({}={})", type_name(other), go_v(other));
        }
    }
}

fn write_list(out: &mut String, l: &[Value], item: fn(&mut String, &Value)) {
    out.push('[');
    for (i, v) in l.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        item(out, v);
    }
    out.push(']');
}

fn write_map(out: &mut String, m: &Map<String, Value>, item: fn(&mut String, &Value)) {
    // fmt prints map keys sorted.
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    out.push_str("map[");
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(k);
        out.push(':');
        if let Some(v) = m.get(k) {
            item(out, v);
        }
    }
    out.push(']');
}

/// Go's `%v` of a float64: the shortest round-tripping digits, in `%e` form when the decimal
/// exponent is below -4 or at least 6 (strconv's `'g'` with precision -1).
pub(crate) fn format_float(f: f64) -> String {
    // Rust's `{:e}` gives the same shortest digits: `-1.2345e-7`, `1e21`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
        return out;
    }
    let point = exp + 1; // digits before the decimal point
    let nd = digits.len() as i32;
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if point >= nd {
        out.push_str(&digits);
        for _ in 0..(point - nd) {
            out.push('0');
        }
    } else {
        let (int, frac) = digits.split_at(point as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Go's `sort.Sort` over strings compared with `sort.StringsAreSorted([]string{a, b})`, i.e.
/// "less" means `a <= b`.
///
/// Upstream sorts scalars and merge-list items through that (non-strict) comparison. pdqsort
/// runs a plain insertion sort up to 12 elements, which with `<=` reverses runs of equal keys;
/// the outcome is visible with duplicates, so small inputs replay it exactly. Longer inputs only
/// differ from Go among equal keys.
pub(crate) fn go_sort_by_key<T>(items: Vec<T>, key: impl Fn(&T) -> String) -> Vec<T> {
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
    if keyed.len() <= 12 {
        for i in 1..keyed.len() {
            let mut j = i;
            while j > 0 && keyed[j].0 <= keyed[j - 1].0 {
                keyed.swap(j, j - 1);
                j -= 1;
            }
        }
    } else {
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
    }
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// `sortScalars`.
pub(crate) fn sort_scalars(items: Vec<Value>) -> Vec<Value> {
    go_sort_by_key(items, go_v)
}

/// `deduplicateScalars`: upstream's in-place de-duplication, which moves the last element into
/// each removed slot. Its order is observable in `$deleteFromPrimitiveList` lists.
pub(crate) fn dedup_scalars(mut s: Vec<Value>) -> Vec<Value> {
    let n = go_dedup_in_place(&mut s);
    s.truncate(n);
    s
}

/// The writes `deduplicateScalars` makes to its backing array; returns the new length.
///
/// Upstream runs it on `append(original, patch...)`, which shares `original`'s array when the
/// capacity allows, so the writes can show through `original` (see `go_capacity`).
pub(crate) fn go_dedup_in_place(s: &mut [Value]) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut length = s.len() - 1;
    let mut i = 0;
    while i < length {
        let mut j = i + 1;
        while j <= length {
            if s[i] == s[j] {
                s[j] = s[length].clone();
                length -= 1;
                // Re-examine the element moved into slot j.
                continue;
            }
            j += 1;
        }
        i += 1;
    }
    length + 1
}

/// The capacity Go's JSON decoder leaves on a decoded list of `len` items: it appends one item
/// at a time, and `append` doubles (`[]interface{}` items are 16 bytes, which size classes keep
/// at powers of two). Upstream's merge code appends to and shifts within such lists in place,
/// and its results depend on what the shared array holds afterwards.
pub(crate) fn go_capacity(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len.next_power_of_two()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_like_go_percent_v() {
        assert_eq!(
            go_v(&json!({"b": [1, "x"], "a": null})),
            "map[a:<nil> b:[1 x]]"
        );
        assert_eq!(go_v(&json!(1.5)), "1.5");
        assert_eq!(go_v(&json!(1e21)), "1e+21");
        assert_eq!(go_v(&json!(123456.0)), "123456");
        assert_eq!(go_v(&json!(1234567.0)), "1.234567e+06");
        assert_eq!(go_v(&json!(0.0001)), "0.0001");
        assert_eq!(go_v(&json!(0.00001)), "1e-05");
        assert_eq!(go_v(&json!(-2.5e-7)), "-2.5e-07");
        assert_eq!(go_s(&json!(true)), "%!s(bool=true)");
        assert_eq!(go_s(&json!("keep")), "keep");
    }

    #[test]
    fn dedup_moves_the_last_element_into_removed_slots() {
        assert_eq!(
            dedup_scalars(vec![json!(1), json!(1), json!(2), json!(3)]),
            vec![json!(1), json!(3), json!(2)]
        );
        assert_eq!(dedup_scalars(vec![json!(3), json!(3)]), vec![json!(3)]);
        assert_eq!(dedup_scalars(vec![]), Vec::<Value>::new());
    }

    #[test]
    fn small_sorts_reverse_equal_keys_like_go_insertion_sort() {
        let sorted = go_sort_by_key(vec![("b", 1), ("a", 2), ("b", 3)], |t| t.0.to_owned());
        assert_eq!(sorted, vec![("a", 2), ("b", 3), ("b", 1)]);
    }
}
