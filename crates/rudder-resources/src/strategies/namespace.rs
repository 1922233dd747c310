//! Namespaces (upstream `pkg/registry/core/namespace`): created `Active` with the `kubernetes`
//! finalizer; deleting one marks it `Terminating` until the namespace controller has removed
//! its contents and cleared `spec.finalizers`.

use rudder_api::k8s_openapi::api::core::v1::Namespace;
use rudder_api::validation::{validate_namespace_name, NameValidator};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;

pub struct NamespaceStrategy;

/// The finalizer the namespace controller owns.
const FINALIZER_KUBERNETES: &str = "kubernetes";

impl Strategy for NamespaceStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Namespace>(obj)
    }

    /// Upstream `ValidateNamespaceName`: a namespace is one DNS label.
    fn name_validator(&self) -> NameValidator {
        validate_namespace_name
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        let Some(m) = obj.as_object_mut() else { return };
        m.insert("status".into(), json!({"phase": "Active"}));
        let spec = m.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        let finalizers = spec
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
            let mut f = finalizers;
            f.push(json!(FINALIZER_KUBERNETES));
            spec["finalizers"] = Value::Array(f);
        }
        // Every namespace carries its name as a label (upstream since 1.21).
        if let Some(name) = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            let meta = &mut obj["metadata"];
            if !meta["labels"].is_object() {
                meta["labels"] = json!({});
            }
            meta["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
    }

    fn prepare_for_update(&self, _cx: &OpCx, new: &mut Value, old: &Value) {
        // spec.finalizers changes only through the finalize subresource.
        if let Some(f) = old.pointer("/spec/finalizers") {
            new["spec"]["finalizers"] = f.clone();
        }
        if let Some(name) = old
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        {
            if !new["metadata"]["labels"].is_object() {
                new["metadata"]["labels"] = json!({});
            }
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.push(("status.phase".into(), phase.to_string()));
        // Upstream keeps a bare `name` field for backward compatibility.
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.push(("name".into(), name.to_string()));
    }

    fn begin_delete(&self, _cx: &OpCx, obj: &mut Value) -> bool {
        let held = obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if held {
            obj["status"]["phase"] = json!("Terminating");
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_active_and_deleted_terminating() {
        let s = NamespaceStrategy;
        let cx = OpCx::now();
        let mut ns = json!({"metadata": {"name": "team"}, "status": {"phase": "Terminating"}});
        s.prepare_for_create(&cx, &mut ns);
        assert_eq!(ns["status"]["phase"], "Active");
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team"
        );
        assert!(s.begin_delete(&cx, &mut ns));
        assert_eq!(ns["status"]["phase"], "Terminating");
        let mut done = json!({"metadata": {"name": "x"}, "spec": {"finalizers": []}});
        assert!(!s.begin_delete(&cx, &mut done));
        let mut fields = Vec::new();
        s.selectable_fields(&ns, &mut fields);
        assert_eq!(
            fields,
            vec![
                ("status.phase".to_string(), "Terminating".to_string()),
                ("name".to_string(), "team".to_string()),
            ]
        );
    }
}
