//! Kinds with little behaviour of their own: ServiceAccounts (a typed decode; the name rule is
//! the generic DNS subdomain), and the kinds whose only difference is their name rule.

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::ServiceAccount;
use rudder_api::validation::{
    is_valid_path_segment_name, minimal_name_requirements, name_is_dns_subdomain, NameValidator,
};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::util::{bad_value, default_field, immutable, int_at};

use super::decode::round_trip;

pub struct ServiceAccountStrategy;

impl Strategy for ServiceAccountStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<ServiceAccount>(obj)
    }
}

/// Roles, ClusterRoles and their bindings: upstream `pkg/apis/rbac/validation` checks names
/// only with `minimalNameRequirements` (a valid path segment), so `system:aggregate-to-edit` or
/// `testing-CR` are legal.
pub struct RbacStrategy;

impl Strategy for RbacStrategy {
    fn name_validator(&self) -> NameValidator {
        minimal_name_requirements
    }

    fn default(&self, obj: &mut Value) {
        super::defaults::rbac_binding(obj);
    }
}

/// CustomResourceDefinitions: upstream `ValidateCustomResourceDefinition`'s name function, a
/// DNS subdomain that must also be `<spec.names.plural>.<spec.group>`.
pub struct CustomResourceDefinitionStrategy;

impl Strategy for CustomResourceDefinitionStrategy {
    fn name_errors(&self, obj: &Value, name: &str, prefix: bool) -> Vec<String> {
        let mut errs = name_is_dns_subdomain(name, prefix);
        let at = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
        if name != format!("{}.{}", at("/spec/names/plural"), at("/spec/group")) {
            errs.push(r#"must be spec.names.plural+"."+spec.group"#.into());
        }
        errs
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        crate::custom::default_crd(obj);
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        crate::custom::validate_crd(obj, None)
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        // A CRD stored before these checks existed must still let its finalizer and metadata
        // change, so an unchanged spec is not checked again.
        if new.get("spec") == old.get("spec") {
            return ErrorList::new();
        }
        crate::custom::validate_crd(new, Some(old))
    }

    /// Status writes (the CRD controllers') are not held to the spec's rules again.
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        _cx: &OpCx,
        _new: &Value,
        _old: &Value,
    ) -> ErrorList {
        ErrorList::new()
    }

    /// Upstream's CRD REST `Delete`: the first delete adds the cleanup finalizer and marks the
    /// CRD `Terminating`; the CRD goes once its objects are deleted and the finalizer removed.
    fn begin_delete(&self, cx: &OpCx, obj: &mut Value) -> bool {
        let deleting = obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        if deleting {
            return false;
        }
        let mut finalizers = rudder_registry::object::finalizers(obj);
        if !finalizers
            .iter()
            .any(|f| f == crate::custom::CLEANUP_FINALIZER)
        {
            finalizers.push(crate::custom::CLEANUP_FINALIZER.into());
        }
        rudder_registry::object::set_finalizers(obj, &finalizers);
        crate::custom::set_condition(
            obj,
            &cx.now,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
        true
    }
}

/// APIServices: upstream `ValidateAPIService`'s name function, a path segment that must be
/// `<spec.version>.<spec.group>` (prefix or not).
pub struct ApiServiceStrategy;

impl Strategy for ApiServiceStrategy {
    fn name_errors(&self, obj: &Value, name: &str, _prefix: bool) -> Vec<String> {
        let errs = is_valid_path_segment_name(name);
        if !errs.is_empty() {
            return errs;
        }
        let at = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("");
        let required = format!("{}.{}", at("/spec/version"), at("/spec/group"));
        if name != required {
            return vec![format!(
                "must be `spec.version+\".\"+spec.group`: {}",
                super::events::go_quote(&required)
            )];
        }
        Vec::new()
    }
}

/// PriorityClasses (upstream `pkg/apis/scheduling/validation`): `system-` names are reserved for
/// the two built-in classes, user classes are capped at one billion, and neither `value` nor
/// `preemptionPolicy` changes.
pub struct PriorityClassStrategy;

const SYSTEM_PRIORITY_CLASS_PREFIX: &str = "system-";
const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// Upstream `SystemPriorityClasses`: name and value (neither is a global default).
const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// Upstream `IsKnownSystemPriorityClass`'s error, if the class is not one of the built-ins.
fn unknown_system_class(name: &str, value: i64, global_default: bool) -> Option<String> {
    match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
        Some((n, v)) if *v != value => Some(format!("value of {n} PriorityClass must be {v}")),
        Some((n, _)) if global_default => {
            Some(format!("globalDefault of {n} PriorityClass must be false"))
        }
        Some(_) => None,
        None => Some(format!("{name} is not a known system priority class")),
    }
}

impl Strategy for PriorityClassStrategy {
    /// Upstream scheduling/v1 `SetDefaults_PriorityClass`.
    fn default(&self, obj: &mut Value) {
        default_field(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    /// Upstream `ValidatePriorityClass` (its ObjectMeta part is the generic store's).
    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let value = int_at(obj, "value").unwrap_or(0);
        let global_default = obj
            .get("globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if name.starts_with(SYSTEM_PRIORITY_CLASS_PREFIX) {
            if let Some(e) = unknown_system_class(name, value, global_default) {
                errs.push(FieldError::forbidden(
                    &Path::new("metadata").child("name"),
                    format!(
                        "priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved for system use only. error: {e}"
                    ),
                ));
            }
        } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
            errs.push(FieldError::forbidden(
                &Path::new("value"),
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            ));
        }
        // Upstream `ValidatePreemptionPolicy`.
        if let Some(p) = obj.get("preemptionPolicy").filter(|p| !p.is_null()) {
            let path = Path::new("preemptionPolicy");
            match p.as_str().unwrap_or("") {
                "PreemptLowerPriority" | "Never" => {}
                "" => errs.push(FieldError::required(&path, "")),
                _ => errs.push(FieldError::not_supported(
                    &path,
                    bad_value(Some(p)),
                    &["PreemptLowerPriority", "Never"],
                )),
            }
        }
        errs
    }

    /// Upstream `ValidatePriorityClassUpdate`.
    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        if int_at(new, "value") != int_at(old, "value") {
            errs.push(FieldError::forbidden(
                &Path::new("value"),
                "may not be changed in an update.",
            ));
        }
        immutable(
            new.get("preemptionPolicy"),
            old.get("preemptionPolicy"),
            &Path::new("preemptionPolicy"),
            &mut errs,
        );
        errs
    }
}
