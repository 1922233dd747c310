//! Upstream's storage admission plugins: `DefaultStorageClass` (a new claim that names no class
//! gets the default one) and `StorageObjectInUseProtection` (new claims and volumes get the
//! finalizers the protection controllers remove once nothing uses them).

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Entry, WatchCache};
use serde_json::{json, Value};

pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";
const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const BETA_IS_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

fn is_pvcs(entry: &Entry) -> bool {
    entry.info.group.is_empty() && entry.info.plural == "persistentvolumeclaims"
}

fn is_pvs(entry: &Entry) -> bool {
    entry.info.group.is_empty() && entry.info.plural == "persistentvolumes"
}

/// `DefaultStorageClass`, reading StorageClasses from the watch cache as upstream's lister.
pub struct DefaultStorageClass {
    cache: Arc<WatchCache>,
    /// The store prefix of StorageClasses.
    prefix: String,
}

impl DefaultStorageClass {
    pub fn new(cache: Arc<WatchCache>, storage_class_prefix: String) -> DefaultStorageClass {
        DefaultStorageClass {
            cache,
            prefix: storage_class_prefix,
        }
    }
}

/// Upstream's `GetDefaultClass`: of the classes annotated default, the newest (then by name).
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    let is_default = |c: &Value| {
        let ann = |k: &str| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                == Some("true")
        };
        ann(IS_DEFAULT_CLASS) || ann(BETA_IS_DEFAULT_CLASS)
    };
    classes.iter().filter(|c| is_default(c)).min_by(|a, b| {
        let created = |c: &Value| object::meta_str(c, "creationTimestamp").to_string();
        // RFC 3339 timestamps in UTC sort as strings; newest first.
        created(b)
            .cmp(&created(a))
            .then_with(|| object::name(a).cmp(object::name(b)))
    })
}

impl Admission for DefaultStorageClass {
    fn handles(&self, entry: &Entry) -> bool {
        is_pvcs(entry)
    }

    fn admit_create(
        &self,
        _entry: &Entry,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        // An explicit class, even "" (no class), or the beta annotation is left alone.
        if obj.pointer("/spec/storageClassName").is_some()
            || obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
                .is_some()
        {
            return Ok(());
        }
        let (items, _) = self.cache.list(&self.prefix, &format!("{}/", self.prefix));
        let classes: Vec<Value> = items.iter().map(|o| o.value()).collect();
        let Some(class) = default_class(&classes) else {
            return Ok(());
        };
        let name = object::name(class).to_string();
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("storageClassName".into(), json!(name));
        }
        Ok(())
    }
}

/// `StorageObjectInUseProtection`.
pub struct StorageProtection;

impl Admission for StorageProtection {
    fn handles(&self, entry: &Entry) -> bool {
        is_pvcs(entry) || is_pvs(entry)
    }

    fn admit_create(&self, entry: &Entry, obj: &mut Value, _dry_run: bool) -> Result<(), ApiError> {
        let finalizer = if is_pvcs(entry) {
            PVC_PROTECTION_FINALIZER
        } else {
            PV_PROTECTION_FINALIZER
        };
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let list = meta
            .entry("finalizers")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = list.as_array_mut() {
            if !list.iter().any(|f| f.as_str() == Some(finalizer)) {
                list.push(json!(finalizer));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: bool) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if default {
            c["metadata"]["annotations"] = json!({IS_DEFAULT_CLASS: "true"});
        }
        c
    }

    #[test]
    fn the_newest_default_class_wins() {
        let classes = vec![
            class("old", "2026-01-01T00:00:00Z", true),
            class("plain", "2026-06-01T00:00:00Z", false),
            class("new-b", "2026-03-01T00:00:00Z", true),
            class("new-a", "2026-03-01T00:00:00Z", true),
        ];
        assert_eq!(default_class(&classes).map(object::name), Some("new-a"));
        assert!(default_class(&classes[1..2]).is_none());
    }
}
