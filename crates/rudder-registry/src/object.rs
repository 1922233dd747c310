//! Accessors for objects held as JSON. The generic store works on `serde_json::Value` (as
//! upstream's generic registry works on `runtime.Object` through meta accessors), so one code
//! path serves every kind; typed decoding happens only inside per-type strategies.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// `metadata`, if the object has one.
pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

/// `metadata`, created if missing (non-objects are left alone and yield `None`).
pub fn meta_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let m = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
}

/// A string field of `metadata` ("" when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(m) = meta_mut(obj) {
        m.insert(field.to_string(), value);
    }
}

pub fn remove_meta(obj: &mut Value, field: &str) -> Option<Value> {
    meta_mut(obj).and_then(|m| m.remove(field))
}

/// `metadata.labels` as a map (non-string values are ignored; validation rejects them).
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    string_map(meta(obj).and_then(|m| m.get("labels")))
}

pub fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, finalizers: &[String]) {
    if finalizers.is_empty() {
        remove_meta(obj, "finalizers");
    } else {
        set_meta(
            obj,
            "finalizers",
            Value::Array(
                finalizers
                    .iter()
                    .map(|f| Value::String(f.clone()))
                    .collect(),
            ),
        );
    }
}

pub fn set_resource_version(obj: &mut Value, revision: i64) {
    set_meta(
        obj,
        "resourceVersion",
        Value::String(rudder_api::meta::format_resource_version(revision)),
    );
}

/// The current time as Kubernetes writes `metav1.Time`: RFC 3339, whole seconds, UTC.
pub fn now_rfc3339() -> String {
    format_time(jiff::Timestamp::now())
}

pub fn format_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A value's `apiVersion`.
pub fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
}

pub fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors() {
        let mut o = json!({"metadata": {"name": "a", "labels": {"x": "1", "n": 2}}});
        assert_eq!(name(&o), "a");
        assert_eq!(namespace(&o), "");
        assert_eq!(labels(&o).len(), 1);
        set_resource_version(&mut o, 42);
        assert_eq!(meta_str(&o, "resourceVersion"), "42");
        set_finalizers(&mut o, &["f".into()]);
        assert_eq!(finalizers(&o), vec!["f".to_string()]);
        set_finalizers(&mut o, &[]);
        assert!(meta(&o).unwrap().get("finalizers").is_none());
        let mut bare = json!({});
        set_meta(&mut bare, "name", json!("b"));
        assert_eq!(name(&bare), "b");
    }

    #[test]
    fn time_format_is_whole_seconds_utc() {
        let ts: jiff::Timestamp = "2026-11-22T16:27:16.123456Z".parse().unwrap();
        assert_eq!(format_time(ts), "2026-11-22T16:27:16Z");
    }
}
