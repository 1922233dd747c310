//! Kinds whose only behaviour beyond the generic store is upstream's defaulting
//! (`pkg/apis/<group>/v1/defaults.go`): PersistentVolumes, Endpoints, LimitRanges,
//! NetworkPolicies, IngressClasses, StorageClasses, CSIDrivers and EndpointSlices.
//! `docs/DEFAULTING.md` lists what is and is not covered per type.

use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::util::*;

/// A kind with upstream's `SetDefaults_*` and otherwise generic behaviour.
pub struct DefaultsStrategy {
    pub default: fn(&mut Value),
    pub tracks_generation: bool,
}

impl Strategy for DefaultsStrategy {
    fn default(&self, obj: &mut Value) {
        (self.default)(obj);
    }

    fn tracks_generation(&self) -> bool {
        self.tracks_generation
    }
}

/// The defaulting function of a kind served by [`DefaultsStrategy`], if it has one.
pub fn defaults_for(group: &str, kind: &str) -> Option<fn(&mut Value)> {
    Some(match (group, kind) {
        ("", "Endpoints") => endpoints,
        ("", "LimitRange") => limit_range,
        ("networking.k8s.io", "NetworkPolicy") => network_policy,
        ("networking.k8s.io", "IngressClass") => ingress_class,
        ("storage.k8s.io", "StorageClass") => storage_class,
        ("storage.k8s.io", "CSIDriver") => csi_driver,
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice,
        _ => return None,
    })
}

/// Upstream `SetDefaults_Endpoints`: ports are TCP unless they say otherwise.
fn endpoints(obj: &mut Value) {
    each_mut(obj, "subsets", |s| {
        each_mut(s, "ports", |p| default_str(p, "protocol", "TCP"));
    });
}

/// Upstream `SetDefaults_LimitRangeItem`: for `Container` limits, the default limit falls back
/// to the max, the default request to the default limit, then to the min.
fn limit_range(obj: &mut Value) {
    each_mut(child_obj(obj, "spec"), "limits", |item| {
        if str_at(item, "type") != "Container" {
            return;
        }
        let copy_missing = |item: &mut Value, from: &str, to: &str| {
            let Some(src) = obj_at(item, from).cloned() else {
                return;
            };
            if src.is_empty() {
                return;
            }
            let dst = child_obj(item, to);
            for (k, v) in src {
                if dst.get(&k).is_none() {
                    dst[&k] = v;
                }
            }
        };
        copy_missing(item, "max", "default");
        copy_missing(item, "default", "defaultRequest");
        copy_missing(item, "min", "defaultRequest");
    });
}

/// Upstream networking/v1 `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`.
fn network_policy(obj: &mut Value) {
    let spec = child_obj(obj, "spec");
    if list_at(spec, "policyTypes").is_empty() {
        let mut types = vec![json!("Ingress")];
        if !list_at(spec, "egress").is_empty() {
            types.push(json!("Egress"));
        }
        spec["policyTypes"] = Value::Array(types);
    }
    for rules in ["ingress", "egress"] {
        each_mut(spec, rules, |r| {
            each_mut(r, "ports", |p| default_field(p, "protocol", json!("TCP")));
        });
    }
}

/// Upstream `SetDefaults_IngressClass`: parameters are cluster-scoped unless they say so.
fn ingress_class(obj: &mut Value) {
    if let Some(p) = obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("parameters"))
        .filter(|p| p.is_object())
    {
        default_field(p, "scope", json!("Cluster"));
    }
}

/// Upstream storage/v1 `SetDefaults_StorageClass`.
fn storage_class(obj: &mut Value) {
    default_field(obj, "reclaimPolicy", json!("Delete"));
    default_field(obj, "volumeBindingMode", json!("Immediate"));
}

/// Upstream storage/v1 `SetDefaults_CSIDriver` (its feature gates are GA or on by default).
fn csi_driver(obj: &mut Value) {
    let spec = child_obj(obj, "spec");
    default_field(spec, "attachRequired", json!(true));
    default_field(spec, "podInfoOnMount", json!(false));
    default_field(spec, "storageCapacity", json!(false));
    default_field(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    if list_at(spec, "volumeLifecycleModes").is_empty() {
        spec["volumeLifecycleModes"] = json!(["Persistent"]);
    }
    default_field(spec, "requiresRepublish", json!(false));
    default_field(spec, "seLinuxMount", json!(false));
}

/// Upstream discovery/v1 `SetDefaults_EndpointPort`.
fn endpoint_slice(obj: &mut Value) {
    each_mut(obj, "ports", |p| {
        default_field(p, "name", json!(""));
        default_field(p, "protocol", json!("TCP"));
    });
}

/// PersistentVolumes: upstream `SetDefaults_PersistentVolume` (and the host path's type), and
/// the strategy's `PrepareForCreate`, which starts the status `Pending` with the transition
/// time (`PersistentVolumeLastPhaseTransitionTime`, GA).
pub struct PersistentVolumeStrategy;

impl Strategy for PersistentVolumeStrategy {
    fn default(&self, obj: &mut Value) {
        let spec = child_obj(obj, "spec");
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default_field(spec, "volumeMode", json!("Filesystem"));
        if let Some(h) = spec.get_mut("hostPath").filter(|h| h.is_object()) {
            default_field(h, "type", json!(""));
        }
        super::podspec::default_in_tree_sources(spec);
        if let Some(status) = obj.get_mut("status").filter(|s| s.is_object()) {
            default_str(status, "phase", "Pending");
        }
    }

    fn prepare_for_create(&self, cx: &OpCx, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": cx.now});
    }
}

/// RBAC bindings: upstream rbac/v1 `SetDefaults_RoleBinding`/`SetDefaults_ClusterRoleBinding`
/// (the role's API group) and `SetDefaults_Subject` (users and groups are RBAC subjects,
/// service accounts core ones).
pub(crate) fn rbac_binding(obj: &mut Value) {
    if obj
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("Binding"))
    {
        default_str(
            child_obj(obj, "roleRef"),
            "apiGroup",
            "rbac.authorization.k8s.io",
        );
        each_mut(obj, "subjects", |s| {
            if str_at(s, "apiGroup").is_empty() {
                // A ServiceAccount's group is "", which `omitempty` leaves out.
                if matches!(str_at(s, "kind"), "User" | "Group") {
                    s["apiGroup"] = json!("rbac.authorization.k8s.io");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(group: &str, kind: &str, mut obj: Value) -> Value {
        defaults_for(group, kind).unwrap()(&mut obj);
        obj
    }

    #[test]
    fn network_policy_types_and_port_protocols() {
        let np = defaulted(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
        );
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
        let np = defaulted(
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"spec": {"podSelector": {}}}),
        );
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn limit_range_container_defaults() {
        let lr = defaulted(
            "",
            "LimitRange",
            json!({"spec": {"limits": [
                {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                {"type": "Pod", "max": {"cpu": "4"}}]}}),
        );
        assert_eq!(
            lr["spec"]["limits"][0],
            json!({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
                "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "64Mi"}})
        );
        assert_eq!(
            lr["spec"]["limits"][1],
            json!({"type": "Pod", "max": {"cpu": "4"}})
        );
    }

    #[test]
    fn storage_and_discovery_defaults() {
        let sc = defaulted(
            "storage.k8s.io",
            "StorageClass",
            json!({"provisioner": "x"}),
        );
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        let es = defaulted(
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"ports": [{"port": 80}]}),
        );
        assert_eq!(
            es["ports"],
            json!([{"port": 80, "name": "", "protocol": "TCP"}])
        );
    }

    #[test]
    fn bindings_get_their_api_groups() {
        let mut rb = json!({"kind": "RoleBinding", "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]});
        rbac_binding(&mut rb);
        assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
        assert!(rb["subjects"][1].get("apiGroup").is_none());
    }
}
