//! Small helpers shared by the strategies: reading and defaulting fields of an object's JSON,
//! and the validation snippets every kind repeats (non-negative numbers, immutable fields, label
//! selectors).

use std::collections::BTreeMap;

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::validation::object_meta::{FIELD_IMMUTABLE_ERROR_MSG, IS_NEGATIVE_ERROR_MSG};
use serde_json::{json, Map, Value};

/// `v[key]` as a string, `""` when absent or not a string (Go's zero value).
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `v[key]` as an integer, if present.
pub(crate) fn int_at(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// `v[key]` as a bool, `false` when absent.
pub(crate) fn bool_at(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// `v[key]` as a list, empty when absent.
pub(crate) fn list_at<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `v[key]` as an object, if present.
pub(crate) fn obj_at<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// True when `v[key]` is present and not null.
pub(crate) fn has(v: &Value, key: &str) -> bool {
    v.get(key).is_some_and(|x| !x.is_null())
}

/// `v[key]`, turned into an object if it is absent or not an object. `v` itself is made an
/// object first if it is not one.
pub(crate) fn child_obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = json!({});
    }
    let c = &mut v[key];
    if !c.is_object() {
        *c = json!({});
    }
    c
}

/// Sets `v[key] = value` when the key is absent or null (Go's "if nil, default").
pub(crate) fn default_field(v: &mut Value, key: &str, value: Value) {
    if let Some(m) = v.as_object_mut() {
        let e = m.entry(key.to_string()).or_insert(Value::Null);
        if e.is_null() {
            *e = value;
        }
    }
}

/// Sets `v[key] = value` when the key is absent, null or `""` (Go's `if x == ""`).
pub(crate) fn default_str(v: &mut Value, key: &str, value: &str) {
    if let Some(m) = v.as_object_mut() {
        let e = m.entry(key.to_string()).or_insert(Value::Null);
        if e.is_null() || e.as_str() == Some("") {
            *e = json!(value);
        }
    }
}

/// Sets `v[key] = value` when the key is absent, null or `0` (Go's `if x == 0`).
pub(crate) fn default_int(v: &mut Value, key: &str, value: i64) {
    if let Some(m) = v.as_object_mut() {
        let e = m.entry(key.to_string()).or_insert(Value::Null);
        if e.is_null() || e.as_i64() == Some(0) {
            *e = json!(value);
        }
    }
}

/// Mutable access to every element of the list `v[key]`.
pub(crate) fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
        items.iter_mut().for_each(&mut f);
    }
}

/// A string map (`labels`, `nodeSelector`, ...) as a `BTreeMap`; non-string values are skipped.
pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A label selector field (`spec.selector`) in its typed form; `None` when absent or null.
pub(crate) fn label_selector(v: Option<&Value>) -> Option<LabelSelector> {
    let v = v.filter(|v| !v.is_null())?;
    serde_json::from_value(v.clone()).ok()
}

/// The selector a `LabelSelector` stands for (upstream `LabelSelectorAsSelector`); `Err` when it
/// does not convert.
pub(crate) fn as_selector(sel: Option<&LabelSelector>) -> Result<Selector, String> {
    Selector::from_label_selector(sel).map_err(|e| e.0)
}

/// Go's JSON of a `LabelSelector` (struct field order: `matchLabels`, then `matchExpressions`),
/// for error messages that echo a selector.
pub(crate) fn selector_json(v: Option<&Value>) -> BadValue {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return BadValue::Raw("null".into());
    };
    let mut parts = Vec::new();
    if let Some(ml) = v
        .get("matchLabels")
        .filter(|m| m.as_object().is_some_and(|m| !m.is_empty()))
    {
        parts.push(format!("\"matchLabels\":{}", go_json(ml)));
    }
    let exprs = list_at(v, "matchExpressions");
    if !exprs.is_empty() {
        let rendered: Vec<String> = exprs
            .iter()
            .map(|e| {
                let mut f = vec![
                    format!("\"key\":{}", go_json(&json!(str_at(e, "key")))),
                    format!("\"operator\":{}", go_json(&json!(str_at(e, "operator")))),
                ];
                let vals = list_at(e, "values");
                if !vals.is_empty() {
                    f.push(format!("\"values\":{}", go_json(&json!(vals))));
                }
                format!("{{{}}}", f.join(","))
            })
            .collect();
        parts.push(format!("\"matchExpressions\":[{}]", rendered.join(",")));
    }
    BadValue::Raw(format!("{{{}}}", parts.join(",")))
}

/// Go's compact JSON of a value held in maps and slices (object keys sorted, `<`, `>` and `&`
/// escaped as Go does).
pub(crate) fn go_json(v: &Value) -> String {
    let sorted = sort_keys(v);
    let s = serde_json::to_string(&sorted).unwrap_or_default();
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// The offending value of a field error, shaped as upstream renders it: strings quoted, numbers
/// and booleans plain, `null` for nothing, JSON for the rest.
pub(crate) fn bad_value(v: Option<&Value>) -> BadValue {
    match v {
        None | Some(Value::Null) => BadValue::Raw("null".into()),
        Some(Value::String(s)) => BadValue::Str(s.clone()),
        Some(Value::Bool(b)) => BadValue::Bool(*b),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => BadValue::Int(i),
            None => BadValue::Raw(n.to_string()),
        },
        Some(other) => BadValue::Raw(go_json(other)),
    }
}

/// Upstream `ValidateNonnegativeField`.
pub(crate) fn nonnegative(value: i64, path: &Path, errs: &mut ErrorList) {
    if value < 0 {
        errs.push(FieldError::invalid(path, value, IS_NEGATIVE_ERROR_MSG));
    }
}

/// `v[key]` checked with [`nonnegative`] when present.
pub(crate) fn nonnegative_at(v: &Value, key: &str, path: &Path, errs: &mut ErrorList) {
    if let Some(n) = int_at(v, key) {
        nonnegative(n, &path.child(key), errs);
    }
}

/// Upstream `ValidateImmutableField`: `Invalid value: <new>: field is immutable` when the two
/// differ (null, absent and empty lists/maps count as equal, as Go's semantic equality does).
pub(crate) fn immutable(
    new: Option<&Value>,
    old: Option<&Value>,
    path: &Path,
    errs: &mut ErrorList,
) {
    if !semantic_eq(new, old) {
        errs.push(FieldError::invalid(
            path,
            bad_value(new),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
}

/// Go's `apiequality.Semantic.DeepEqual` on JSON: absent, null and empty lists/maps of a field
/// are the same thing.
pub(crate) fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Array(a)) => Value::Array(a.iter().map(|x| normalize(Some(x))).collect()),
        Some(Value::Object(m)) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), normalize(Some(v))))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        Some(other) => other.clone(),
    }
}

/// The value at a path of keys, if every step exists.
pub(crate) fn at<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, k| cur.get(*k))
}

/// A compact, line-per-difference description of how `new` differs from `old`, standing in for
/// the `cmp.Diff` output upstream appends to "spec is immutable" style messages.
pub(crate) fn diff(old: &Value, new: &Value) -> String {
    let mut lines = Vec::new();
    diff_into("", Some(old), Some(new), &mut lines);
    lines.join("\n")
}

fn diff_into(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<String>) {
    if semantic_eq(old, new) {
        return;
    }
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_into(&p, a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        _ => {
            if let Some(o) = old.filter(|v| !v.is_null()) {
                out.push(format!("  - {path}: {}", go_json(o)));
            }
            if let Some(n) = new.filter(|v| !v.is_null()) {
                out.push(format!("  + {path}: {}", go_json(n)));
            }
        }
    }
}

/// The object's `metadata.name`.
pub(crate) fn name_of(obj: &Value) -> &str {
    obj.get("metadata").map_or("", |m| str_at(m, "name"))
}

/// The object's `metadata.uid`.
pub(crate) fn uid_of(obj: &Value) -> &str {
    obj.get("metadata").map_or("", |m| str_at(m, "uid"))
}

/// `metadata.annotations` (an object, created when absent).
pub(crate) fn annotations_mut(obj: &mut Value) -> &mut Value {
    child_obj(child_obj(obj, "metadata"), "annotations")
}

/// Errors of a name check (`name_is_dns_subdomain` and friends) as `Invalid` errors at `path`.
pub(crate) fn name_errors(value: &str, msgs: Vec<String>, path: &Path, errs: &mut ErrorList) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value, m));
    }
}

/// Upstream `validation.IsValidIP` (strict): a valid address in canonical form.
pub(crate) fn validate_ip(path: &Path, value: &str, errs: &mut ErrorList) {
    let Ok(ip) = value.parse::<std::net::IpAddr>() else {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
        return;
    };
    if let std::net::IpAddr::V6(v6) = ip {
        if v6.to_ipv4_mapped().is_some() {
            errs.push(FieldError::invalid(
                path,
                value,
                "must not be an IPv4-mapped IPv6 address",
            ));
            return;
        }
    }
    let canonical = ip.to_string();
    if canonical != value {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("must be in canonical form ({})", go_json(&json!(canonical))),
        ));
    }
}

/// Upstream `validation.IsValidCIDR` (strict): a subnet in canonical form.
pub(crate) fn validate_cidr(path: &Path, value: &str, errs: &mut ErrorList) {
    let invalid = || {
        FieldError::invalid(
            path,
            value,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )
    };
    let Some((ip, len)) = value.split_once('/') else {
        errs.push(invalid());
        return;
    };
    let (Ok(ip), Ok(len)) = (ip.parse::<std::net::IpAddr>(), len.parse::<u32>()) else {
        errs.push(invalid());
        return;
    };
    let (bits, masked) = match ip {
        std::net::IpAddr::V4(v4) => {
            if len > 32 {
                errs.push(invalid());
                return;
            }
            let raw = u32::from(v4);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            (
                raw,
                std::net::IpAddr::V4(std::net::Ipv4Addr::from(raw & mask)),
            )
        }
        std::net::IpAddr::V6(v6) => {
            if len > 128 {
                errs.push(invalid());
                return;
            }
            let raw = u128::from(v6);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            if (raw & !mask) != 0 {
                errs.push(FieldError::invalid(
                    path,
                    value,
                    "must not have bits set beyond the prefix length",
                ));
                return;
            }
            (
                0,
                std::net::IpAddr::V6(std::net::Ipv6Addr::from(raw & mask)),
            )
        }
    };
    if masked != ip {
        let _ = bits;
        errs.push(FieldError::invalid(
            path,
            value,
            "must not have bits set beyond the prefix length",
        ));
        return;
    }
    let canonical = format!("{masked}/{len}");
    if canonical != value {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("must be in canonical form ({})", go_json(&json!(canonical))),
        ));
    }
}

/// Upstream `validation.InclusiveRangeError`.
pub(crate) fn inclusive_range(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// Upstream `validation.IsValidPortNum`.
pub(crate) fn port_num_errors(port: i64) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range(1, 65535)]
    }
}

/// Upstream `validation.IsValidPortName`.
pub(crate) fn port_name_errors(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(rudder_api::validation::max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// Upstream `validation.IsConfigMapKey`.
pub(crate) fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push(rudder_api::validation::max_len_error(253));
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(rudder_api::validation::regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            "[-._a-zA-Z0-9]+",
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if key == "." {
        errs.push("must not be '.'".into());
    } else if key == ".." {
        errs.push("must not be '..'".into());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".into());
    }
    errs
}

/// `value`/`path` from a port that is an int or a string (upstream `ValidatePortNumOrName`).
pub(crate) fn validate_port_num_or_name(v: Option<&Value>, path: &Path, errs: &mut ErrorList) {
    match v {
        Some(Value::String(s)) => {
            for m in port_name_errors(s) {
                errs.push(FieldError::invalid(path, s.as_str(), m));
            }
        }
        Some(Value::Number(n)) => {
            let p = n.as_i64().unwrap_or(0);
            for m in port_num_errors(p) {
                errs.push(FieldError::invalid(path, p, m));
            }
        }
        _ => {
            for m in port_num_errors(0) {
                errs.push(FieldError::invalid(path, 0i64, m));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_equality_ignores_empty_and_null() {
        assert!(semantic_eq(
            Some(&json!({"a": [], "b": null})),
            Some(&json!({}))
        ));
        assert!(!semantic_eq(Some(&json!({"a": [1]})), Some(&json!({}))));
        assert!(semantic_eq(None, Some(&json!([]))));
    }

    #[test]
    fn selector_json_keeps_go_field_order() {
        let v = json!({"matchExpressions": [{"key": "a", "operator": "Exists"}], "matchLabels": {"z": "1", "b": "2"}});
        assert_eq!(
            selector_json(Some(&v)),
            BadValue::Raw(
                r#"{"matchLabels":{"b":"2","z":"1"},"matchExpressions":[{"key":"a","operator":"Exists"}]}"#
                    .into()
            )
        );
    }
}
