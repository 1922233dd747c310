//! Lenient readers over an object's JSON.
//!
//! Upstream prints typed Go structs, where an absent field is its zero value. These readers give
//! the same zero values for absent fields, JSON `null`, and values of the wrong type, so that an
//! odd object prints like its nearest valid shape instead of failing or panicking.

use serde_json::{Map, Value};

/// The value at `path`, or `None` when any step is absent, not an object, or `null` (a nil
/// pointer in Go).
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// A string field (`""` when absent, as Go's zero value).
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    opt_str_at(v, path).unwrap_or("")
}

/// A `*string` field: `None` when absent (nil), `Some("")` when set to the empty string.
pub(crate) fn opt_str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// An integer, truncating floats and saturating out-of-range values; 0 for anything else.
pub(crate) fn int(v: &Value) -> i64 {
    let Value::Number(n) = v else { return 0 };
    if let Some(i) = n.as_i64() {
        return i;
    }
    if let Some(u) = n.as_u64() {
        return i64::try_from(u).unwrap_or(i64::MAX);
    }
    // `as` saturates, which is the closest a bounded integer gets to an out-of-range float.
    n.as_f64().filter(|f| f.is_finite()).map_or(0, |f| f as i64)
}

/// An integer field (0 when absent).
pub(crate) fn int_at(v: &Value, path: &[&str]) -> i64 {
    at(v, path).map_or(0, int)
}

/// A `*int32`/`*int64` field: `None` when absent (nil).
pub(crate) fn opt_int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).map(int)
}

/// A boolean field (false when absent).
pub(crate) fn bool_at(v: &Value, path: &[&str]) -> bool {
    opt_bool_at(v, path).unwrap_or(false)
}

/// A `*bool` field: `None` when absent (nil) or not a boolean.
pub(crate) fn opt_bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    at(v, path).and_then(Value::as_bool)
}

/// A list field (empty when absent).
pub(crate) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A map field (`None` when absent or not an object).
pub(crate) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    at(v, path).and_then(Value::as_object)
}

/// The number of entries of a map field (0 when absent).
pub(crate) fn map_len(v: &Value, path: &[&str]) -> usize {
    obj_at(v, path).map_or(0, Map::len)
}

/// `metadata.name`.
pub(crate) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

/// The value of an annotation, if present.
pub(crate) fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    obj_at(v, &["metadata", "annotations"])?
        .get(key)
        .and_then(Value::as_str)
}

/// True when `metadata.deletionTimestamp` is set (Go: the pointer is non-nil).
pub(crate) fn is_deleting(v: &Value) -> bool {
    at(v, &["metadata", "deletionTimestamp"]).is_some()
}

/// `int64(len(...))` of a list field as a JSON cell.
pub(crate) fn len_cell(v: &Value, path: &[&str]) -> Value {
    Value::from(arr_at(v, path).len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_null_and_wrong_types_read_as_zero_values() {
        let v = json!({"a": {"b": null, "s": 5, "n": "x", "f": 2.9, "big": 18446744073709551615u64,
                       "l": {"x": 1}}});
        assert_eq!(at(&v, &["a", "b"]), None);
        assert_eq!(str_at(&v, &["a", "s"]), "");
        assert_eq!(int_at(&v, &["a", "n"]), 0);
        assert_eq!(int_at(&v, &["a", "f"]), 2);
        assert_eq!(int_at(&v, &["a", "big"]), i64::MAX);
        assert!(arr_at(&v, &["a", "l"]).is_empty());
        assert_eq!(opt_int_at(&v, &["a", "missing"]), None);
        assert!(!bool_at(&v, &["a", "s"]));
        assert_eq!(name(&json!("not an object")), "");
        assert_eq!(
            annotation(&json!({"metadata": {"annotations": {"k": 1}}}), "k"),
            None
        );
    }
}
