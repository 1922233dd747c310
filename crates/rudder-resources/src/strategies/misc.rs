//! Kinds with little behaviour of their own: ServiceAccounts (a typed decode; the name rule is
//! the generic DNS subdomain), and the kinds whose only difference is their name rule.

use rudder_api::k8s_openapi::api::core::v1::ServiceAccount;
use rudder_api::validation::{
    minimal_name_requirements, validate_path_segment_name, NameValidator,
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
