//! Upstream's `DefaultIngressClass` admission plugin
//! (`plugin/pkg/admission/network/defaultingressclass`): a new Ingress that names no class,
//! neither `spec.ingressClassName` nor the legacy `kubernetes.io/ingress.class` annotation,
//! gets the IngressClass annotated `ingressclass.kubernetes.io/is-default-class: "true"` (the
//! newest of several).

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{Admission, Entry, WatchCache};
use serde_json::{json, Value};

use crate::storage_admission::default_class_in;

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

/// Whether an Ingress names its class itself (the field, even "", or the legacy annotation).
fn names_a_class(ingress: &Value) -> bool {
    ingress.pointer("/spec/ingressClassName").is_some()
        || ingress
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
            .is_some()
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
        if names_a_class(obj) {
            return Ok(());
        }
        if let Some(name) = default_class_in(&self.cache, &self.prefix, &[IS_DEFAULT_CLASS]) {
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
    use crate::storage_admission::newest_annotated;

    /// What `admit_create` decides, over `classes` instead of the watch cache.
    fn default_for(ingress: &Value, classes: &[Value]) -> Option<String> {
        if names_a_class(ingress) {
            return None;
        }
        newest_annotated(classes, &[IS_DEFAULT_CLASS])
            .map(|c| rudder_registry::object::name(c).to_string())
    }

    fn class(name: &str, created: &str, default: bool) -> Value {
        crate::storage_admission::annotated_class(
            name,
            created,
            default.then_some(IS_DEFAULT_CLASS),
        )
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
