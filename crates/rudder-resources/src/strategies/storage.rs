//! PersistentVolumeClaims (upstream `ValidatePersistentVolumeClaimSpec` and
//! `ValidatePersistentVolumeClaimUpdate`, `SetDefaults_PersistentVolumeClaimSpec`).

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::PersistentVolumeClaim;
use rudder_api::validation::{
    is_dns1123_subdomain, name_is_dns_subdomain, validate_label_selector,
};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::quantity;
use super::util::*;

pub struct PersistentVolumeClaimStrategy;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn storage_request(spec: &Value) -> Option<&str> {
    at(spec, &["resources", "requests", "storage"]).and_then(Value::as_str)
}

impl Strategy for PersistentVolumeClaimStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<PersistentVolumeClaim>(obj)
    }

    fn default(&self, obj: &mut Value) {
        default_str(child_obj(obj, "spec"), "volumeMode", "Filesystem");
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // Status is cleared; upstream's read-time defaulting makes it Pending.
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        validate_pvc_spec(spec_of(obj), &Path::new("spec"), &mut errs);
        errs
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        validate_pvc_spec(spec_of(new), &Path::new("spec"), &mut errs);
        let (n, o) = (spec_of(new), spec_of(old));
        let mut new_clone = n.clone();
        let mut old_clone = o.clone();
        if str_at(o, "volumeName").is_empty() {
            match n.get("volumeName") {
                Some(v) => old_clone["volumeName"] = v.clone(),
                None => {
                    if let Some(m) = old_clone.as_object_mut() {
                        m.remove("volumeName");
                    }
                }
            }
        }
        let ann = |obj: &Value| {
            obj.pointer("/metadata/annotations")
                .and_then(|a| a.get(BETA_STORAGE_CLASS))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (old_ann, new_ann) = (ann(old), ann(new));
        let old_sc = o.get("storageClassName").and_then(Value::as_str);
        let new_sc = n.get("storageClassName").and_then(Value::as_str);
        let from_annotation = old_ann.is_some()
            && old_sc.is_none()
            && new_sc.is_some()
            && new_sc == old_ann.as_deref()
            && (new_ann.is_none() || new_ann == old_ann);
        if from_annotation {
            if let Some(m) = new_clone.as_object_mut() {
                m.remove("storageClassName");
            }
        } else {
            if new_ann != old_ann {
                errs.push(FieldError::invalid(
                    &Path::new("metadata")
                        .child("annotations")
                        .child(BETA_STORAGE_CLASS),
                    new_ann.unwrap_or_default(),
                    rudder_api::validation::object_meta::FIELD_IMMUTABLE_ERROR_MSG,
                ));
            }
            if new_sc.is_some()
                && old_sc.is_none()
                && (old_ann.is_none() || new_sc == old_ann.as_deref())
            {
                if let Some(m) = new_clone.as_object_mut() {
                    m.remove("storageClassName");
                }
            }
        }
        let bound = new
            .get("status")
            .map(|s| str_at(s, "phase") == "Bound")
            .unwrap_or(false);
        if bound {
            if let Some(req) = new_clone
                .get_mut("resources")
                .and_then(|r| r.get_mut("requests"))
                .filter(|r| r.is_object())
            {
                match storage_request(o) {
                    Some(s) => req["storage"] = json!(s),
                    None => {
                        if let Some(m) = req.as_object_mut() {
                            m.remove("storage");
                        }
                    }
                }
            }
            if has(&new_clone, "volumeAttributesClassName") {
                match o.get("volumeAttributesClassName") {
                    Some(v) => new_clone["volumeAttributesClassName"] = v.clone(),
                    None => {
                        if let Some(m) = new_clone.as_object_mut() {
                            m.remove("volumeAttributesClassName");
                        }
                    }
                }
            }
        }
        if !semantic_eq(Some(&new_clone), Some(&old_clone)) {
            errs.push(FieldError::forbidden(
                &Path::new("spec"),
                format!(
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                    diff(&old_clone, &new_clone)
                ),
            ));
        }
        let size = |s: Option<&str>| {
            s.and_then(|s| quantity::parse(s).ok())
                .unwrap_or_else(quantity::Quantity::zero)
        };
        let (old_size, new_size) = (size(storage_request(o)), size(storage_request(n)));
        let status_size = size(
            old.get("status")
                .and_then(|s| at(s, &["capacity", "storage"]))
                .and_then(Value::as_str),
        );
        if new_size < old_size && new_size <= status_size {
            errs.push(FieldError::forbidden(
                &Path::from_names(["spec", "resources", "requests", "storage"]),
                "field can not be less than status.capacity",
            ));
        }
        immutable(
            n.get("volumeMode"),
            o.get("volumeMode"),
            &Path::new("volumeMode"),
            &mut errs,
        );
        errs
    }
}

/// Upstream `ValidatePersistentVolumeClaimSpec` (also used for ephemeral volumes' claim
/// templates).
pub(crate) fn validate_pvc_spec(spec: &Value, path: &Path, errs: &mut ErrorList) {
    let modes = list_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            &path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if has(spec, "selector") {
        let sel = label_selector(spec.get("selector"));
        errs.extend(validate_label_selector(
            sel.as_ref(),
            &path.child("selector"),
        ));
    }
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or_default();
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                &path.child("accessModes"),
                m,
                ACCESS_MODES,
            ));
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if ACCESS_MODES.contains(&m) {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            &path.child("accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage_path = path.child("resources").key("storage");
    match storage_request(spec) {
        None => errs.push(FieldError::required(&storage_path, "")),
        Some(s) => {
            if let Ok(q) = quantity::parse(s) {
                if q <= 0 {
                    errs.push(FieldError::invalid(
                        &storage_path,
                        s,
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        name_errors(
            sc,
            name_is_dns_subdomain(sc, false),
            &path.child("storageClassName"),
            errs,
        );
    }
    if let Some(vm) = spec.get("volumeMode").and_then(Value::as_str) {
        if vm != "Block" && vm != "Filesystem" {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                vm,
                &["Block", "Filesystem"],
            ));
        }
    }
    for key in ["dataSource", "dataSourceRef"] {
        let Some(ds) = spec.get(key).filter(|d| d.is_object()) else {
            continue;
        };
        let p = path.child(key);
        if str_at(ds, "name").is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        let kind = str_at(ds, "kind");
        if kind.is_empty() {
            errs.push(FieldError::required(&p.child("kind"), ""));
        }
        let group = str_at(ds, "apiGroup");
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            errs.push(FieldError::invalid(
                &p,
                kind,
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        }
        if !group.is_empty() {
            for m in is_dns1123_subdomain(group) {
                errs.push(FieldError::invalid(&p.child("apiGroup"), group, m));
            }
        }
    }
    if let Some(vac) = spec
        .get("volumeAttributesClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        name_errors(
            vac,
            name_is_dns_subdomain(vac, false),
            &path.child("volumeAttributesClassName"),
            errs,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn pvc_defaults_validation_and_growth() {
        let s = PersistentVolumeClaimStrategy;
        let mut pvc = s
            .decode(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": {"resources": {}}}))
            .unwrap();
        s.default(&mut pvc);
        s.prepare_for_create(&cx(), &mut pvc);
        assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
        assert_eq!(pvc["status"], json!({"phase": "Pending"}));
        assert_eq!(
            messages(&s.validate(&cx(), &pvc)),
            vec![
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
        let mut old = pvc.clone();
        old["spec"]["accessModes"] = json!(["ReadWriteOnce"]);
        old["spec"]["resources"] = json!({"requests": {"storage": "1Gi"}});
        old["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
        let mut grown = old.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(s.validate_update(&cx(), &grown, &old).is_empty());
        let mut changed = old.clone();
        changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        let errs = messages(&s.validate_update(&cx(), &changed, &old));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
    }
}
