//! Per-type strategies: upstream's `pkg/registry/<group>/<resource>/strategy.go`, one module
//! per kind that behaves differently from the generic default, with upstream's defaulting
//! (`pkg/apis/<group>/v1/defaults.go`) and validation (`pkg/apis/<group>/validation`).

mod admissionregistration;
mod apps;
mod autoscaling;
mod batch;
pub mod certificates;
mod config;
mod decode;
mod defaults;
mod events;
mod misc;
mod namespace;
mod networking;
mod node;
mod pod;
mod podspec;
mod quantity;
mod service;
mod storage;
pub(crate) mod util;

use std::sync::Arc;

use rudder_api::resources::ResourceInfo;
use rudder_registry::{DefaultStrategy, Strategy};

/// Kinds whose `metadata.generation` upstream maintains (they have a spec users change).
const GENERATION_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Ingress",
    "CustomResourceDefinition",
    "Pod",
];

/// The admission policy kinds with a strategy of their own.
fn admission_policy(kind: &str) -> Option<admissionregistration::Kind> {
    use admissionregistration::Kind;
    Some(match kind {
        "ValidatingAdmissionPolicy" => Kind::ValidatingPolicy,
        "ValidatingAdmissionPolicyBinding" => Kind::ValidatingBinding,
        "MutatingAdmissionPolicy" => Kind::MutatingPolicy,
        "MutatingAdmissionPolicyBinding" => Kind::MutatingBinding,
        _ => return None,
    })
}

/// The strategy of a built-in resource.
pub fn strategy_for(info: &ResourceInfo) -> Arc<dyn Strategy> {
    let v1 = info.version == "v1";
    if info.group == "admissionregistration.k8s.io" {
        if let Some(kind) = admission_policy(&info.kind) {
            return Arc::new(admissionregistration::AdmissionPolicyStrategy(kind));
        }
    }
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Namespace") => Arc::new(namespace::NamespaceStrategy),
        ("", "Pod") if v1 => Arc::new(pod::PodStrategy),
        ("", "PodTemplate") if v1 => Arc::new(apps::PodTemplateStrategy),
        ("", "ReplicationController") if v1 => Arc::new(apps::ReplicationControllerStrategy),
        ("", "Service") if v1 => Arc::new(service::ServiceStrategy),
        ("", "ConfigMap") if v1 => Arc::new(config::ConfigMapStrategy),
        ("", "Secret") if v1 => Arc::new(config::SecretStrategy),
        ("", "Node") if v1 => Arc::new(node::NodeStrategy),
        ("", "ServiceAccount") if v1 => Arc::new(misc::ServiceAccountStrategy),
        ("", "PersistentVolume") if v1 => Arc::new(defaults::PersistentVolumeStrategy),
        ("", "PersistentVolumeClaim") if v1 => Arc::new(storage::PersistentVolumeClaimStrategy),
        ("", "Event") => Arc::new(events::EventStrategy::CORE),
        ("events.k8s.io", "Event") => Arc::new(events::EventStrategy::V1),
        ("apps", "Deployment") if v1 => Arc::new(apps::DeploymentStrategy),
        ("apps", "ReplicaSet") if v1 => Arc::new(apps::ReplicaSetStrategy),
        ("apps", "StatefulSet") if v1 => Arc::new(apps::StatefulSetStrategy),
        ("apps", "DaemonSet") if v1 => Arc::new(apps::DaemonSetStrategy),
        ("batch", "Job") if v1 => Arc::new(batch::JobStrategy),
        ("batch", "CronJob") if v1 => Arc::new(batch::CronJobStrategy),
        ("networking.k8s.io", "Ingress") if v1 => Arc::new(networking::IngressStrategy),
        ("autoscaling", "HorizontalPodAutoscaler") if v1 => Arc::new(autoscaling::HpaStrategy::V1),
        ("autoscaling", "HorizontalPodAutoscaler") if info.version == "v2" => {
            Arc::new(autoscaling::HpaStrategy::V2)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            Arc::new(misc::CustomResourceDefinitionStrategy)
        }
        ("apiregistration.k8s.io", "APIService") => Arc::new(misc::ApiServiceStrategy),
        ("scheduling.k8s.io", "PriorityClass") => Arc::new(misc::PriorityClassStrategy),
        ("rbac.authorization.k8s.io", _) => Arc::new(misc::RbacStrategy),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            Arc::new(certificates::CertificateSigningRequestStrategy)
        }
        (group, kind) => match defaults::defaults_for(group, kind) {
            Some(default) => Arc::new(defaults::DefaultsStrategy {
                default,
                tracks_generation: GENERATION_KINDS.contains(&kind),
            }),
            None => Arc::new(DefaultStrategy {
                tracks_generation: GENERATION_KINDS.contains(&kind),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_resource_gets_a_strategy_with_the_right_generation_rule() {
        let table = rudder_api::resources::ResourceTable::builtin().unwrap();
        for info in table.resources() {
            let s = strategy_for(info);
            assert_eq!(
                s.tracks_generation(),
                GENERATION_KINDS.contains(&info.kind.as_str()),
                "{}/{}",
                info.group,
                info.kind
            );
        }
    }

    /// Upstream's `ValidateNameFunc` per kind: (group, version, kind, name, accepted).
    #[test]
    fn name_rules_follow_upstream_per_kind() {
        let table = rudder_api::resources::ResourceTable::builtin().unwrap();
        let cases = [
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRole",
                "testing-CR",
                true,
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "Role",
                "system:controller:x",
                true,
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "RoleBinding",
                "a%b",
                false,
            ),
            (
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "..",
                false,
            ),
            ("", "v1", "Namespace", "a.b", false),
            ("", "v1", "Namespace", "kube-system", true),
            ("", "v1", "Service", "1abc", false),
            ("", "v1", "Service", "abc", true),
            ("", "v1", "Node", "node-1.example.com", true),
            ("", "v1", "Node", "Node1", false),
            ("", "v1", "Event", "Mixed_Case.17", true),
            ("events.k8s.io", "v1", "Event", "Mixed_Case.17", false),
            ("apps", "v1", "StatefulSet", "a.b", false),
            ("apps", "v1", "Deployment", "a.b", true),
            (
                "certificates.k8s.io",
                "v1",
                "CertificateSigningRequest",
                "CSR_1",
                true,
            ),
            ("", "v1", "ConfigMap", "Upper", false),
        ];
        for (group, version, kind, name, ok) in cases {
            let info = table.by_gvk(group, version, kind).unwrap();
            let errs = strategy_for(info).name_validator()(name, false);
            assert_eq!(errs.is_empty(), ok, "{group}/{kind} {name:?}: {errs:?}");
        }
    }

    #[test]
    fn crd_and_api_service_names_come_from_their_spec() {
        let table = rudder_api::resources::ResourceTable::builtin().unwrap();
        let crd = strategy_for(
            table
                .by_gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
                .unwrap(),
        );
        let spec =
            serde_json::json!({"spec": {"group": "example.com", "names": {"plural": "widgets"}}});
        assert!(crd
            .name_errors(&spec, "widgets.example.com", false)
            .is_empty());
        assert_eq!(
            crd.name_errors(&spec, "Widgets", false).last().unwrap(),
            r#"must be spec.names.plural+"."+spec.group"#
        );
        let svc = strategy_for(
            table
                .by_gvk("apiregistration.k8s.io", "v1", "APIService")
                .unwrap(),
        );
        let spec =
            serde_json::json!({"spec": {"group": "wardle.example.com", "version": "v1alpha1"}});
        assert!(svc
            .name_errors(&spec, "v1alpha1.wardle.example.com", false)
            .is_empty());
        assert_eq!(
            svc.name_errors(&spec, "wardle", false),
            ["must be `spec.version+\".\"+spec.group`: \"v1alpha1.wardle.example.com\""]
        );
        assert_eq!(
            svc.name_errors(&spec, "a/b", false),
            ["may not contain '/'"]
        );
    }
}
