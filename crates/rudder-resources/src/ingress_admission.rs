//! Upstream's `DefaultIngressClass` admission plugin
//! (`plugin/pkg/admission/network/defaultingressclass`): a new Ingress that names no class,
//! neither `spec.ingressClassName` nor the legacy `kubernetes.io/ingress.class` annotation,
//! gets the IngressClass annotated `ingressclass.kubernetes.io/is-default-class: "true"` (the
//! newest of several).

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Entry, WatchCache};
use serde_json::{json, Value};

use crate::storage_admission::newest_annotated;

const IS_DEFAULT_CLASS: &str = "ingressclass.kubernetes.io/is-default-class";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

pub struct DefaultIngressClass {
    cache: Arc<WatchCache>,
    /// The store prefix of IngressClasses.
    prefix: String,
}

impl DefaultIngressClass {
    pub fn new(cache: Arc<WatchCache>, ingress_class_prefix: String) -> DefaultIngressClass {
        DefaultIngressClass {
            cache,
            prefix: ingress_class_prefix,
        }
    }
}

/// The class name a new Ingress gets from `classes`, if it names none itself.
fn default_for(ingress: &Value, classes: &[Value]) -> Option<String> {
    let names_one = ingress.pointer("/spec/ingressClassName").is_some()
        || ingress
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
            .is_some();
    if names_one {
        return None;
    }
    newest_annotated(classes, &[IS_DEFAULT_CLASS]).map(|c| object::name(c).to_string())
}

impl Admission for DefaultIngressClass {
    fn handles(&self, entry: &Entry) -> bool {
        entry.info.group == "networking.k8s.io" && entry.info.plural == "ingresses"
    }

    fn admit_create(
        &self,
        _entry: &Entry,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        let (items, _) = self.cache.list(&self.prefix, &format!("{}/", self.prefix));
        let classes: Vec<Value> = items.iter().map(|o| o.value()).collect();
        if let Some(name) = default_for(obj, &classes) {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("ingressClassName".into(), json!(name));
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

    // Cases after upstream's defaultingressclass admission_test.go.
    #[test]
    fn an_ingress_without_a_class_gets_the_newest_default() {
        let classes = vec![
            class("nginx", "2026-01-01T00:00:00Z", true),
            class("haproxy", "2026-02-01T00:00:00Z", false),
            class("traefik", "2026-03-01T00:00:00Z", true),
        ];
        let plain = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(default_for(&plain, &classes).as_deref(), Some("traefik"));
        // No default class: nothing set.
        assert_eq!(default_for(&plain, &classes[1..2]), None);
        // A class named, by field (even "") or by the legacy annotation: left alone.
        let named = json!({"metadata": {"name": "web"}, "spec": {"ingressClassName": ""}});
        assert_eq!(default_for(&named, &classes), None);
        let legacy = json!({"metadata": {"name": "web", "annotations":
            {LEGACY_CLASS_ANNOTATION: "nginx"}}, "spec": {}});
        assert_eq!(default_for(&legacy, &classes), None);
        // Same creation time: by name.
        let tied = vec![
            class("b", "2026-01-01T00:00:00Z", true),
            class("a", "2026-01-01T00:00:00Z", true),
        ];
        assert_eq!(default_for(&plain, &tied).as_deref(), Some("a"));
    }
}
