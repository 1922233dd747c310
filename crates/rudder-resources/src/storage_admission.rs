//! Upstream's storage admission plugins: `DefaultStorageClass` (a new claim that names no class
//! gets the default one), `StorageObjectInUseProtection` (new claims and volumes get the
//! finalizers the protection controllers remove once nothing uses them) and
//! `PersistentVolumeClaimResize` (a claim grows only if bound and its class allows expansion).

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

/// The annotations marking a default StorageClass (GA and beta).
const DEFAULT_CLASS_ANNOTATIONS: &[&str] = &[IS_DEFAULT_CLASS, BETA_IS_DEFAULT_CLASS];

/// The name of the default class among the objects under `prefix` in the watch cache (see
/// [`newest_annotated`]), as the DefaultStorageClass and DefaultIngressClass plugins read it.
pub fn default_class_in(cache: &WatchCache, prefix: &str, keys: &[&str]) -> Option<String> {
    let (items, _) = cache.list(prefix, &format!("{prefix}/"));
    let classes: Vec<Value> = items.iter().map(|o| o.value()).collect();
    newest_annotated(&classes, keys).map(|c| object::name(c).to_string())
}

/// Upstream's `GetDefaultClass`: of `classes` with one of the annotations `keys` set to
/// `"true"`, the newest (then by name), as upstream picks a default StorageClass or IngressClass.
pub fn newest_annotated<'a>(classes: &'a [Value], keys: &[&str]) -> Option<&'a Value> {
    let is_default = |c: &Value| {
        keys.iter().any(|k| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(*k))
                .and_then(Value::as_str)
                == Some("true")
        })
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
        let Some(name) = default_class_in(&self.cache, &self.prefix, DEFAULT_CLASS_ANNOTATIONS)
        else {
            return Ok(());
        };
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("storageClassName".into(), json!(name));
        }
        Ok(())
    }
}

/// `PersistentVolumeClaimResize`, reading StorageClasses from the watch cache as upstream's
/// lister.
pub struct PersistentVolumeClaimResize {
    cache: Arc<WatchCache>,
    /// The store prefix of StorageClasses.
    prefix: String,
}

impl PersistentVolumeClaimResize {
    pub fn new(
        cache: Arc<WatchCache>,
        storage_class_prefix: String,
    ) -> PersistentVolumeClaimResize {
        PersistentVolumeClaimResize {
            cache,
            prefix: storage_class_prefix,
        }
    }

    fn allows_expansion(&self, class: &str) -> bool {
        let key = format!("{}/{class}", self.prefix);
        self.cache
            .get(&self.prefix, &key)
            .is_some_and(|c| c.value().pointer("/allowVolumeExpansion") == Some(&json!(true)))
    }
}

/// Upstream's `GetPersistentVolumeClaimClass`: the beta annotation first, then the field.
fn claim_class(pvc: &Value) -> &str {
    pvc.pointer("/metadata/annotations")
        .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
        .or_else(|| pvc.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn requested_storage(pvc: &Value) -> Option<rudder_api::quantity::Quantity> {
    pvc.pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(|q| rudder_api::quantity::parse(q).ok())
}

/// The plugin's decision for an update of `old` to `new`: `Err` with upstream's reason.
fn check_resize(
    new: &Value,
    old: &Value,
    allows_expansion: impl Fn(&str) -> bool,
) -> Result<(), &'static str> {
    let (Some(new_size), Some(old_size)) = (requested_storage(new), requested_storage(old)) else {
        return Ok(());
    };
    if new_size <= old_size {
        return Ok(());
    }
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err("Only bound persistent volume claims can be expanded");
    }
    let (class, old_class) = (claim_class(new), claim_class(old));
    if class.is_empty() || class != old_class || !allows_expansion(class) {
        return Err("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize");
    }
    Ok(())
}

#[async_trait::async_trait]
impl Admission for PersistentVolumeClaimResize {
    fn handles(&self, entry: &Entry) -> bool {
        is_pvcs(entry)
    }

    async fn validate(
        &self,
        attrs: &rudder_registry::admission::Attributes<'_>,
        obj: &Value,
    ) -> Result<(), ApiError> {
        if attrs.operation != rudder_registry::admission::Operation::Update
            || !attrs.is_main_resource()
        {
            return Ok(());
        }
        let Some(old) = attrs.old else {
            return Ok(());
        };
        check_resize(obj, old, |class| self.allows_expansion(class)).map_err(|e| {
            ApiError::forbidden(
                &attrs.entry.info.group_resource(),
                object::name(obj),
                e.to_string(),
            )
        })
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

/// A class object created at `created`, annotated `annotation: "true"` if given.
#[cfg(test)]
pub(crate) fn annotated_class(name: &str, created: &str, annotation: Option<&str>) -> Value {
    let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
    if let Some(key) = annotation {
        c["metadata"]["annotations"] = json!({key: "true"});
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: bool) -> Value {
        annotated_class(name, created, default.then_some(IS_DEFAULT_CLASS))
    }

    // Cases after upstream's resize admission_test.go.
    #[test]
    fn claims_grow_only_when_bound_and_their_class_allows_it() {
        let pvc = |size: &str, class: &str, phase: &str| {
            json!({"metadata": {"name": "data"}, "spec": {"storageClassName": class,
                "resources": {"requests": {"storage": size}}}, "status": {"phase": phase}})
        };
        let allows = |c: &str| c == "expandable";
        let old = pvc("1Gi", "expandable", "Bound");
        assert_eq!(
            check_resize(&pvc("2Gi", "expandable", "Bound"), &old, allows),
            Ok(())
        );
        // Shrinking or keeping the size is not this plugin's concern.
        assert_eq!(
            check_resize(&pvc("512Mi", "fixed", "Bound"), &old, allows),
            Ok(())
        );
        assert_eq!(
            check_resize(&pvc("1024Mi", "fixed", "Bound"), &old, allows),
            Ok(())
        );
        assert_eq!(
            check_resize(
                &pvc("2Gi", "expandable", "Pending"),
                &pvc("1Gi", "expandable", "Pending"),
                allows
            ),
            Err("Only bound persistent volume claims can be expanded")
        );
        let refused = Err("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize");
        let fixed = pvc("1Gi", "fixed", "Bound");
        assert_eq!(
            check_resize(&pvc("2Gi", "fixed", "Bound"), &fixed, allows),
            refused
        );
        assert_eq!(
            check_resize(&pvc("2Gi", "", "Bound"), &pvc("1Gi", "", "Bound"), allows),
            refused
        );
        // The beta annotation names the class before the field.
        let mut annotated = pvc("2Gi", "expandable", "Bound");
        annotated["metadata"]["annotations"] = json!({BETA_CLASS_ANNOTATION: "fixed"});
        assert_eq!(check_resize(&annotated, &old, allows), refused);
    }

    #[test]
    fn the_newest_default_class_wins() {
        let classes = vec![
            class("old", "2026-01-01T00:00:00Z", true),
            class("plain", "2026-06-01T00:00:00Z", false),
            class("new-b", "2026-03-01T00:00:00Z", true),
            class("new-a", "2026-03-01T00:00:00Z", true),
        ];
        assert_eq!(
            newest_annotated(&classes, DEFAULT_CLASS_ANNOTATIONS).map(object::name),
            Some("new-a")
        );
        assert!(newest_annotated(&classes[1..2], DEFAULT_CLASS_ANNOTATIONS).is_none());
    }
}
