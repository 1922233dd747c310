//! Decoding a request body the way upstream's JSON decoder does: a typed round trip through the
//! kind's k8s-openapi struct.
//!
//! The round trip drops fields the type does not know (upstream drops them too), rejects wrongly
//! typed fields with a 400 naming the field, and accepts what Go accepts:
//!
//! - a missing or `null` required field decodes to its zero value (Go structs have no
//!   "required"), so `spec.ports[0].port` left out is a 422 "must be between 1 and 65535" from
//!   validation, not a 400;
//! - resource quantities may be JSON numbers (`cpu: 1`, `cpu: 0.5`); they are stored in
//!   canonical string form (`"1"`, `"500m"`), and malformed ones are rejected with upstream's
//!   message.

use std::collections::BTreeSet;

use rudder_api::k8s_openapi::serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};
use serde_path_to_error::Segment;

use super::quantity;

/// Keys whose value is a map of resource name to quantity.
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "overhead",
    "allocatedResources",
    "hard",
    "used",
];

/// Keys whose value is a single quantity.
const QUANTITY_SCALARS: &[&str] = &["sizeLimit", "divisor"];

/// Round-trips `obj` through `T`. The error is the message of upstream's 400.
pub(crate) fn round_trip<T>(obj: Value) -> Result<Value, String>
where
    T: DeserializeOwned + Serialize,
{
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let version = api_version
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let prefix = format!("{kind} in version \"{version}\" cannot be handled as a {kind}");
    let mut work = obj;
    normalize_quantities(&mut work).map_err(|e| format!("{prefix}: {e}"))?;
    let mut zeroed: BTreeSet<String> = BTreeSet::new();
    // Fields filled in only to get past the typed decoder; Go would have left them nil.
    let mut filled: Vec<Vec<Segment>> = Vec::new();
    for _ in 0..512 {
        let err = match serde_path_to_error::deserialize::<_, T>(work.clone()) {
            Ok(typed) => {
                let mut out = serde_json::to_value(&typed).map_err(|e| format!("{prefix}: {e}"))?;
                for path in filled.iter().rev() {
                    remove_at(&mut out, path);
                }
                strip_added_zeros(&work, &mut out);
                return Ok(out);
            }
            Err(e) => e,
        };
        let segments: Vec<Segment> = err.path().iter().cloned().collect();
        let msg = err.inner().to_string();
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.strip_suffix('`'))
        {
            // Go leaves a missing field at its zero value: find its type through a null.
            let mut path = segments.clone();
            path.push(Segment::Map {
                key: field.to_string(),
            });
            let key = render_path(&path);
            if zeroed.insert(format!("missing:{key}")) {
                if let Some(target) = navigate(&mut work, &segments).and_then(Value::as_object_mut)
                {
                    target.insert(field.to_string(), Value::Null);
                    filled.push(path);
                    continue;
                }
            }
        } else if let Some(expected) = msg.strip_prefix("invalid type: null, expected ") {
            let key = render_path(&segments);
            if let Some(zero) = zero_value(expected) {
                if zeroed.insert(format!("null:{key}")) {
                    if let Some(target) = navigate(&mut work, &segments) {
                        *target = zero;
                        // `zeroed` already makes each path unique.
                        filled.push(segments.clone());
                        continue;
                    }
                }
            }
        }
        return Err(format!(
            "{prefix}: {}",
            describe(&render_path(&segments), &msg)
        ));
    }
    Err(format!("{prefix}: too many fields to default"))
}

/// Go's zero value for the type serde expected.
fn zero_value(expected: &str) -> Option<Value> {
    Some(match expected {
        "a string" | "Quantity" | "ByteString" => json!(""),
        "a boolean" => json!(false),
        "a sequence" => json!([]),
        "Time" | "MicroTime" => return None,
        e if e.starts_with('i') || e.starts_with('u') || e.starts_with('f') => json!(0),
        "IntOrString" => json!(0),
        e if e.starts_with("a map") || e.starts_with("struct") => json!({}),
        // k8s-openapi's struct visitors expect their type name.
        e if e.chars().next().is_some_and(|c| c.is_ascii_uppercase()) => json!({}),
        _ => return None,
    })
}

/// The value at `segments`, if the path exists.
fn navigate<'a>(v: &'a mut Value, segments: &[Segment]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in segments {
        cur = match s {
            Segment::Seq { index } => cur.get_mut(*index)?,
            Segment::Map { key } => cur.get_mut(key.as_str())?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The typed decoder fills fields the body left out (or set to null) with zero values; Go's
/// decoder leaves them nil (pointers) or zero, and a missing `selector` or `pathType` must stay
/// missing for validation to say "Required value". Such added zero values are removed again.
fn strip_added_zeros(input: &Value, out: &mut Value) {
    match (input, out) {
        (Value::Object(i), Value::Object(o)) => {
            o.retain(|k, v| match i.get(k) {
                None | Some(Value::Null) => !is_zero(v),
                Some(_) => true,
            });
            for (k, v) in o.iter_mut() {
                if let Some(iv) = i.get(k) {
                    strip_added_zeros(iv, v);
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (iv, ov) in i.iter().zip(o.iter_mut()) {
                strip_added_zeros(iv, ov);
            }
        }
        _ => {}
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
    }
}

/// Removes the field at `path` (its last segment a map key), if it is there.
fn remove_at(v: &mut Value, path: &[Segment]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if let (Segment::Map { key }, Some(Value::Object(m))) = (last, navigate(v, parent)) {
        m.remove(key.as_str());
    }
}

/// `spec.containers[0].ports[0].containerPort`.
fn render_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde's "invalid type: string \"x\", expected i32" in Go's words:
/// `json: cannot unmarshal string into Go struct field <path> of type int32`.
fn describe(path: &str, msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = rest.rsplit_once(", expected ") {
            let got = go_json_kind(got);
            let want = go_type(expected);
            return if path.is_empty() {
                format!("json: cannot unmarshal {got} into Go value of type {want}")
            } else {
                format!("json: cannot unmarshal {got} into Go struct field {path} of type {want}")
            };
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        if let Some((got, _)) = rest.rsplit_once(", expected ") {
            if got.starts_with("integer") {
                return format!(
                    "json: cannot unmarshal number {} into Go struct field {path} of type int32",
                    got.trim_start_matches("integer ").trim_matches('`')
                );
            }
        }
    }
    if path.is_empty() {
        msg.to_string()
    } else {
        format!("{path}: {msg}")
    }
}

fn go_json_kind(got: &str) -> &'static str {
    if got.starts_with("string") {
        "string"
    } else if got.starts_with("integer") || got.starts_with("floating point") {
        "number"
    } else if got.starts_with("boolean") {
        "bool"
    } else if got.starts_with("map") {
        "object"
    } else if got.starts_with("sequence") {
        "array"
    } else {
        "value"
    }
}

fn go_type(expected: &str) -> String {
    match expected {
        "a string" | "Quantity" | "ByteString" => "string".into(),
        "a boolean" => "bool".into(),
        "i32" => "int32".into(),
        "i64" => "int64".into(),
        "u32" => "uint32".into(),
        "u64" => "uint64".into(),
        "f64" => "float64".into(),
        "a sequence" => "array".into(),
        "a map" => "map[string]string".into(),
        "IntOrString" => "intstr.IntOrString".into(),
        "Time" | "MicroTime" => format!("v1.{expected}"),
        other => {
            let name = other.trim_start_matches("struct ");
            format!("v1.{name}")
        }
    }
}

/// Turns JSON numbers in quantity positions into canonical quantity strings and rejects
/// malformed quantity strings, as upstream's `Quantity.UnmarshalJSON` does.
fn normalize_quantities(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if QUANTITY_MAPS.contains(&k.as_str()) {
                    if let Some(q) = child.as_object_mut() {
                        for qv in q.values_mut() {
                            fix_quantity(qv)?;
                        }
                        continue;
                    }
                }
                if QUANTITY_SCALARS.contains(&k.as_str()) {
                    fix_quantity(child)?;
                    continue;
                }
                normalize_quantities(child)?;
            }
        }
        Value::Array(a) => {
            for child in a {
                normalize_quantities(child)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn fix_quantity(v: &mut Value) -> Result<(), String> {
    match v {
        Value::Number(n) => {
            if let Some(s) = quantity::canonical_number(n) {
                *v = Value::String(s);
            }
            Ok(())
        }
        Value::String(s) => quantity::parse(s.trim())
            .map(|_| ())
            .map_err(str::to_string),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_api::k8s_openapi::api::core::v1::{Pod, Service};

    #[test]
    fn wrong_type_names_the_field() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]}});
        assert_eq!(
            round_trip::<Pod>(pod).unwrap_err(),
            "Pod in version \"v1\" cannot be handled as a Pod: json: cannot unmarshal string into Go struct field spec.containers[0].ports[0].containerPort of type int32"
        );
    }

    #[test]
    fn missing_required_fields_decode_to_zero_values() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"name": "x"}]}});
        let out = round_trip::<Service>(svc).unwrap();
        // Go leaves it at its zero value, which validation reports.
        assert!(out["spec"]["ports"][0].get("port").is_none());
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"image": "i"}]}});
        let out = round_trip::<Pod>(pod).unwrap();
        assert!(out["spec"]["containers"][0].get("name").is_none());
    }

    #[test]
    fn quantities_accept_numbers_and_reject_garbage() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"cpu": 0.5, "memory": "1Gi"}, "requests": {"cpu": 1}}}]}});
        let out = round_trip::<Pod>(pod).unwrap();
        assert_eq!(
            out["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "500m"
        );
        assert_eq!(
            out["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "1"
        );
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}});
        assert_eq!(
            round_trip::<Pod>(bad).unwrap_err(),
            format!(
                "Pod in version \"v1\" cannot be handled as a Pod: {}",
                quantity::ERR_FORM
            )
        );
    }

    #[test]
    fn unknown_fields_are_dropped() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"bogus": 1, "containers": [{"name": "c", "image": "i"}]}});
        let out = round_trip::<Pod>(pod).unwrap();
        assert!(out["spec"].get("bogus").is_none());
    }
}
