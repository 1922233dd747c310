//! Kinds with little behaviour of their own: ServiceAccounts (a typed decode; the name rule is
//! the generic DNS subdomain), and the kinds whose only difference is their name rule.

use rudder_api::k8s_openapi::api::core::v1::ServiceAccount;
use rudder_api::validation::{
    is_valid_path_segment_name, minimal_name_requirements, name_is_dns_subdomain,
    validate_path_segment_name, NameValidator,
};
use rudder_registry::Strategy;
use serde_json::Value;

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

/// CertificateSigningRequests: upstream's `ValidateCertificateRequestName` accepts any name
/// ("We don't care what you call your certificate requests"), leaving the generic store's
/// path-segment rule.
pub struct CertificateSigningRequestStrategy;

impl Strategy for CertificateSigningRequestStrategy {
    fn name_validator(&self) -> NameValidator {
        validate_path_segment_name
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
