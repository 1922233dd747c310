//! Embedded resources' TypeMeta and ObjectMeta (upstream `apiserver/schema/objectmeta`).

use rudder_api::field::{FieldError, Path};
use rudder_api::validation::{is_dns1035_label, validate_object_meta, validate_path_segment_name};
use serde_json::Value;

use crate::schema::{bad_value, child, Node};

/// Walk `v` and validate every `x-kubernetes-embedded-resource` object (the resource root's
/// own metadata is the generic store's business, so `root` skips it).
pub(crate) fn validate_embedded(
    s: &Node,
    v: &Value,
    at: &Path,
    root: bool,
    errs: &mut Vec<FieldError>,
) {
    match v {
        Value::Object(m) => {
            if s.embedded && !root {
                embedded_resource(m, at, errs);
            }
            for (k, c) in m {
                if (root || s.embedded) && (k == "metadata" || k == "apiVersion" || k == "kind") {
                    continue;
                }
                if let Some(p) = s.property(k) {
                    validate_embedded(p, c, &child(at, k), false, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = &s.items {
                for (i, item) in items.iter().enumerate() {
                    let p = at.index(i);
                    validate_embedded(is, item, &p, false, errs);
                }
            }
        }
        _ => {}
    }
}

fn embedded_resource(m: &serde_json::Map<String, Value>, at: &Path, errs: &mut Vec<FieldError>) {
    if !m.contains_key("apiVersion") {
        errs.push(FieldError::required(
            &child(at, "apiVersion"),
            "must not be empty",
        ));
    }
    if !m.contains_key("kind") {
        errs.push(FieldError::required(
            &child(at, "kind"),
            "must not be empty",
        ));
    }
    if let Some(v) = m.get("apiVersion") {
        match v {
            Value::String(s) if s.is_empty() => errs.push(FieldError::invalid(
                &child(at, "apiVersion"),
                "",
                "must not be empty",
            )),
            Value::String(s) if s.matches('/').count() > 1 => errs.push(FieldError::invalid(
                &child(at, "apiVersion"),
                s.as_str(),
                format!("unexpected GroupVersion string: {s}"),
            )),
            Value::String(_) => {}
            other => errs.push(FieldError::invalid(
                &child(at, "apiVersion"),
                bad_value(other),
                "must be a string",
            )),
        }
    }
    if let Some(v) = m.get("kind") {
        match v {
            Value::String(s) if s.is_empty() => errs.push(FieldError::invalid(
                &child(at, "kind"),
                "",
                "must not be empty",
            )),
            Value::String(s) => {
                let problems = is_dns1035_label(&s.to_lowercase());
                if !problems.is_empty() {
                    errs.push(FieldError::invalid(
                        &child(at, "kind"),
                        s.as_str(),
                        format!(
                            "may have mixed case, but should otherwise match: {}",
                            problems.join(",")
                        ),
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &child(at, "kind"),
                bad_value(other),
                "must be a string",
            )),
        }
    }
    if let Some(meta) = m.get("metadata") {
        match serde_json::from_value::<
            rudder_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        >(meta.clone())
        {
            Err(e) => errs.push(FieldError::invalid(
                &child(at, "metadata"),
                bad_value(meta),
                e.to_string(),
            )),
            Ok(mut meta) => {
                if meta.name.as_deref().unwrap_or_default().is_empty() {
                    // Upstream sets a placeholder: an embedded resource needs no name.
                    meta.name = Some("fakename".into());
                }
                let namespaced = !meta.namespace.as_deref().unwrap_or_default().is_empty();
                errs.extend(
                    validate_object_meta(
                        &meta,
                        namespaced,
                        validate_path_segment_name,
                        &child(at, "metadata"),
                    )
                    .0,
                );
            }
        }
    }
}
