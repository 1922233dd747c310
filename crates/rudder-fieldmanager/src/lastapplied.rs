//! Upstream's `lastAppliedManager` and `lastAppliedUpdater` (apimachinery's
//! `util/managedfields/internal`): the bridge between client-side `kubectl apply`, which keeps
//! its configuration in an annotation and writes as the `kubectl-client-side-apply` manager, and
//! server-side apply by `kubectl`.

use serde_json::{Map, Value};

use rudder_api::patch::TypeSchema;

use crate::path::go_json;
use crate::set::FieldSet;
use crate::typed::{compare, to_field_set};

/// Where client-side apply keeps the configuration it last applied.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Upstream upgrades from client-side apply only for this manager (`kubectl apply
/// --server-side`'s default); any other manager opts out.
pub(crate) const LAST_APPLIED_MANAGER: &str = "kubectl";

/// The paths of `live`'s last-applied configuration that still hold the values it applied
/// (upstream's `allowedConflictsFromLastApplied`): a conflict on one of them is a field
/// client-side apply set, which `kubectl` may take over. `None` when the annotation is absent,
/// does not decode, or is of another apiVersion than the request (upstream then reports the
/// conflicts unchanged).
pub(crate) fn allowed_conflicts(
    live: &Value,
    api_version: &str,
    schema: TypeSchema<'_>,
) -> Option<FieldSet> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()?;
    let last: Value = serde_json::from_str(text).ok()?;
    let text_of = |key: &str| last.get(key).and_then(Value::as_str).unwrap_or("");
    // An unstructured object needs a kind to decode.
    if text_of("kind").is_empty() || text_of("apiVersion") != api_version {
        return None;
    }
    let set = to_field_set(&last, schema).ok()?;
    let changed = compare(Some(&last), Some(live), schema).ok()?;
    Some(
        set.difference(&changed.modified)
            .difference(&changed.added)
            .difference(&changed.removed),
    )
}

/// Upstream's `lastAppliedUpdater`: when the applied object carries a non-empty last-applied
/// annotation, it becomes the applied configuration itself (without that annotation), encoded
/// as kubectl encodes it (Go's JSON with a trailing newline).
pub(crate) fn update_last_applied(object: &mut Value, applied: &Value) {
    let present = object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !present {
        return;
    }
    let mut config = applied.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        // Go reads annotations as a map of strings: anything else reads as none, and none is
        // written back by removing the key; a map left empty stays as `{}`.
        match meta.get_mut("annotations") {
            Some(Value::Object(a)) if a.values().all(Value::is_string) => {
                a.remove(LAST_APPLIED_ANNOTATION);
            }
            Some(_) => {
                meta.remove("annotations");
            }
            None => {}
        }
    }
    let text = format!("{}\n", go_json(&config));
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        if let Value::Object(annotations) = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()))
        {
            annotations.insert(LAST_APPLIED_ANNOTATION.to_owned(), Value::String(text));
        }
    }
}
