//! Upstream's NodeRestriction admission plugin (`plugin/pkg/admission/noderestriction`): a node
//! (`system:node:<name>` in `system:nodes`) may only write its own Node object (not its taints,
//! nor labels under `node-restriction.kubernetes.io/` or other unknown `kubernetes.io`/`k8s.io`
//! labels), create mirror pods bound to itself that reference no other objects, delete pods
//! bound to it and update their status.

use rudder_api::status::ApiError;
use rudder_registry::admission::{Admission, Attributes, Operation};
use rudder_registry::{object, Entry};
use serde_json::Value;

const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Labels a kubelet may set although they are in a Kubernetes namespace (upstream's
/// `kubeletapis.IsKubeletLabel`).
const KUBELET_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
const KUBELET_LABEL_NAMESPACES: &[&str] = &["kubelet.kubernetes.io", "node.kubernetes.io"];

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

fn in_namespace(ns: &str, parent: &str) -> bool {
    ns == parent || ns.ends_with(&format!(".{parent}"))
}

fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|p| in_namespace(label_namespace(key), p))
}

/// The labels of `new` a node may not set or change (upstream's `getForbiddenLabels` over
/// `getModifiedLabels`), sorted.
pub fn forbidden_labels(new: &Value, old: Option<&Value>) -> Vec<String> {
    let labels = |v: Option<&Value>| object::labels(v.unwrap_or(&Value::Null));
    let (new, old) = (labels(Some(new)), labels(old));
    let mut modified: Vec<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(old.keys().filter(|k| !new.contains_key(*k)))
        .collect();
    modified.sort();
    modified.dedup();
    modified
        .into_iter()
        .filter(|k| {
            let ns = label_namespace(k);
            in_namespace(ns, "node-restriction.kubernetes.io")
                || ((in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io"))
                    && !is_kubelet_label(k))
        })
        .cloned()
        .collect()
}

fn node_name<'a>(attrs: &'a Attributes<'_>) -> Option<&'a str> {
    let user = attrs.user?;
    let name = user.name.strip_prefix("system:node:")?;
    user.groups
        .iter()
        .any(|g| g == "system:nodes")
        .then_some(name)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn forbidden(attrs: &Attributes<'_>, msg: String) -> ApiError {
    ApiError::forbidden(&attrs.entry.info.group_resource(), attrs.name, msg)
}

/// What a node may not reference from a mirror pod, and upstream's word for it.
fn referenced_kind(pod: &Value) -> Option<&'static str> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let mut secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let mut configmaps = false;
    let mut claims = false;
    let containers = ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|k| spec.get(k).and_then(Value::as_array).into_iter().flatten());
    for c in containers {
        for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
            secrets |= e.pointer("/valueFrom/secretKeyRef").is_some();
            configmaps |= e.pointer("/valueFrom/configMapKeyRef").is_some();
        }
        for e in c
            .get("envFrom")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            secrets |= e.get("secretRef").is_some();
            configmaps |= e.get("configMapRef").is_some();
        }
    }
    for v in spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        secrets |= v.get("secret").is_some();
        configmaps |= v.get("configMap").is_some();
        claims |= v.get("persistentVolumeClaim").is_some() || v.get("ephemeral").is_some();
        for s in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            secrets |= s.get("secret").is_some();
            configmaps |= s.get("configMap").is_some();
        }
    }
    if !str_at(pod, "/spec/serviceAccountName").is_empty() {
        return Some("a service account");
    }
    [
        (secrets, "secrets"),
        (configmaps, "configmaps"),
        (claims, "persistentvolumeclaims"),
    ]
    .into_iter()
    .find(|(hit, _)| *hit)
    .map(|(_, what)| what)
}

fn admit_mirror_pod(attrs: &Attributes<'_>, node: &str, pod: &Value) -> Result<(), ApiError> {
    let refuse = |m: String| Err(forbidden(attrs, m));
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_ANNOTATION))
        .is_none()
    {
        return refuse(format!(
            "pod does not have \"{MIRROR_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"
        ));
    }
    if str_at(pod, "/spec/nodeName") != node {
        return refuse(format!(
            "node \"{node}\" can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners: Vec<&Value> = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    match owners.as_slice() {
        [] => {
            return refuse(format!(
                "node \"{node}\" can only create pods with an owner reference set to itself"
            ))
        }
        [owner] => {
            if str_at(owner, "/apiVersion") != "v1"
                || str_at(owner, "/kind") != "Node"
                || str_at(owner, "/name") != node
            {
                return refuse(format!(
                    "node \"{node}\" can only create pods with an owner reference set to itself"
                ));
            }
            if owner.get("controller").and_then(Value::as_bool) != Some(true) {
                return refuse(format!(
                    "node \"{node}\" can only create pods with a controller owner reference set to itself"
                ));
            }
            if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                return refuse(format!(
                    "node \"{node}\" must not set blockOwnerDeletion on an owner reference"
                ));
            }
        }
        _ => {
            return refuse(format!(
                "node \"{node}\" can only create pods with a single owner reference set to itself"
            ))
        }
    }
    if let Some(what) = referenced_kind(pod) {
        return refuse(format!(
            "node \"{node}\" can not create pods that reference {what}"
        ));
    }
    Ok(())
}

/// The plugin; stateless.
pub struct NodeRestriction;

#[async_trait::async_trait]
impl Admission for NodeRestriction {
    fn handles(&self, entry: &Entry) -> bool {
        entry.info.group.is_empty() && matches!(entry.info.plural.as_str(), "pods" | "nodes")
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let Some(node) = node_name(attrs) else {
            return Ok(());
        };
        let refuse = |m: String| Err(forbidden(attrs, m));
        if attrs.entry.info.plural == "pods" {
            return match (attrs.subresource, attrs.operation) {
                ("", Operation::Create) => admit_mirror_pod(attrs, node, obj),
                ("", Operation::Delete) | ("status", _) => {
                    let bound = str_at(attrs.old.unwrap_or(obj), "/spec/nodeName");
                    if bound == node {
                        Ok(())
                    } else if attrs.subresource == "status" {
                        refuse(format!(
                            "node \"{node}\" can only update pod status for pods with spec.nodeName set to itself"
                        ))
                    } else {
                        refuse(format!(
                            "node \"{node}\" can only delete pods with spec.nodeName set to itself"
                        ))
                    }
                }
                ("", op) => refuse(format!(
                    "unexpected operation \"{}\", node \"{node}\" can only create and delete mirror pods",
                    op.as_str()
                )),
                _ => Ok(()),
            };
        }
        // Nodes: only its own object.
        if attrs.name != node {
            return refuse(format!(
                "node \"{node}\" is not allowed to modify node \"{}\"",
                attrs.name
            ));
        }
        match attrs.operation {
            Operation::Create => {
                let labels = forbidden_labels(obj, None);
                if !labels.is_empty() {
                    return refuse(format!(
                        "node \"{node}\" is not allowed to set the following labels: {}",
                        labels.join(", ")
                    ));
                }
            }
            Operation::Update => {
                let old = attrs.old.unwrap_or(&Value::Null);
                if obj.pointer("/spec/taints") != old.pointer("/spec/taints") {
                    return refuse(format!("node \"{node}\" is not allowed to modify taints"));
                }
                let labels = forbidden_labels(obj, Some(old));
                if !labels.is_empty() {
                    return refuse(format!(
                        "is not allowed to modify labels: {}",
                        labels.join(", ")
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_a_node_may_not_set() {
        let new = json!({"metadata": {"labels": {
            "kubernetes.io/hostname": "n1", "node.kubernetes.io/exclude-from-external-load-balancers": "",
            "node-restriction.kubernetes.io/secure": "true", "node-role.kubernetes.io/master": "",
            "example.com/mine": "x", "topology.kubernetes.io/zone": "a"}}});
        assert_eq!(
            forbidden_labels(&new, None),
            vec![
                "node-restriction.kubernetes.io/secure",
                "node-role.kubernetes.io/master"
            ]
        );
        // Unchanged labels are no modification.
        assert!(forbidden_labels(&new, Some(&new)).is_empty());
        let removed = json!({"metadata": {"labels": {}}});
        assert_eq!(forbidden_labels(&removed, Some(&new)).len(), 2);
    }

    #[test]
    fn mirror_pods_reference_nothing() {
        let base = json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "h"}}, "spec": {
            "volumes": [{"name": "s", "secret": {"secretName": "x"}}]}});
        assert_eq!(referenced_kind(&base), Some("secrets"));
        let sa = json!({"spec": {"serviceAccountName": "default"}});
        assert_eq!(referenced_kind(&sa), Some("a service account"));
        assert_eq!(
            referenced_kind(&json!({"spec": {"containers": [{"name": "c"}]}})),
            None
        );
    }
}
