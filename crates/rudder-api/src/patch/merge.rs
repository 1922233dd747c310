//! JSON merge patch (RFC 7386): `application/merge-patch+json` (`kubectl label`, `annotate`,
//! `scale`, `patch --type=merge`) and every patch of a custom resource.

use serde_json::{Map, Value};

/// Applies an RFC 7386 merge patch: objects merge recursively, `null` deletes, anything else
/// (lists included) replaces. A non-object patch replaces the whole document.
pub fn merge_patch(original: &Value, patch: &Value) -> Value {
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// Computes the RFC 7386 merge patch that turns `original` into `modified`, so that
/// `merge_patch(original, create_merge_patch(original, modified)) == modified`.
///
/// RFC 7386 cannot express a `null` value inside `modified` (it means "delete"), so for such
/// documents the round trip drops those keys, as upstream's `CreateMergePatch` does.
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(o), Value::Object(m)) => Value::Object(diff_objects(o, m)),
        _ => modified.clone(),
    }
}

fn diff_objects(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (k, o) in original {
        if !modified.contains_key(k) {
            patch.insert(k.clone(), Value::Null);
        } else if let (Value::Object(o), Some(Value::Object(m))) = (o, modified.get(k)) {
            let nested = diff_objects(o, m);
            if !nested.is_empty() {
                patch.insert(k.clone(), Value::Object(nested));
            }
        }
    }
    for (k, m) in modified {
        match original.get(k) {
            // Objects on both sides were handled above.
            Some(Value::Object(_)) if m.is_object() => {}
            Some(o) if o == m => {}
            _ => {
                patch.insert(k.clone(), m.clone());
            }
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // RFC 7386 appendix A, a selection.
        assert_eq!(
            merge_patch(&json!({"a": "b"}), &json!({"a": "c"})),
            json!({"a": "c"})
        );
        assert_eq!(
            merge_patch(&json!({"a": "b"}), &json!({"a": null})),
            json!({})
        );
        assert_eq!(
            merge_patch(&json!({"a": [{"b": "c"}]}), &json!({"a": [1]})),
            json!({"a": [1]})
        );
        assert_eq!(
            merge_patch(&json!({"e": null}), &json!({"a": 1})),
            json!({"e": null, "a": 1})
        );
        assert_eq!(
            merge_patch(&json!([1, 2]), &json!({"a": {"bb": {"ccc": null}}})),
            json!({"a": {"bb": {}}})
        );
    }

    #[test]
    fn diff_sends_only_changes() {
        let original = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1]}});
        let modified = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"x": [1]}});
        let patch = create_merge_patch(&original, &modified);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"b": null, "c": "3"}}})
        );
        assert_eq!(merge_patch(&original, &patch), modified);
    }
}
