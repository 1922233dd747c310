//! Upstream's NodeRestriction admission plugin (`plugin/pkg/admission/noderestriction`): a node
//! (`system:node:<name>` in `system:nodes`) may only write its own Node object (not its taints,
//! nor labels under `node-restriction.kubernetes.io/` or other unknown `kubernetes.io`/`k8s.io`
//! labels), create mirror pods bound to itself that reference no other objects, delete,
//! evict and update the status of pods bound to it, request service account tokens only bound
//! to such a pod, and change nothing of a PersistentVolumeClaim but its status' capacity and
//! conditions.

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::admission::{Admission, Attributes, Operation};
use rudder_registry::{object, Entry, WatchCache};
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

/// The plugin, reading pods from the watch cache (for evictions and token requests).
pub struct NodeRestriction {
    cache: Arc<WatchCache>,
    pods_prefix: String,
}

impl NodeRestriction {
    pub fn new(cache: Arc<WatchCache>, pods_prefix: String) -> NodeRestriction {
        NodeRestriction { cache, pods_prefix }
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = format!("{}/{namespace}/{name}", self.pods_prefix);
        self.cache.get(&self.pods_prefix, &key).map(|o| o.value())
    }

    /// Upstream's `admitPodEviction`: only pods bound to the node.
    fn admit_eviction(
        &self,
        attrs: &Attributes<'_>,
        node: &str,
        eviction: &Value,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create {
            return Err(forbidden(
                attrs,
                format!("unexpected operation {}", attrs.operation.as_str()),
            ));
        }
        let name = match attrs.name {
            "" => object::name(eviction),
            n => n,
        };
        if name.is_empty() {
            return Err(forbidden(
                attrs,
                "could not determine pod from request data".into(),
            ));
        }
        let Some(pod) = self.pod(attrs.namespace, name) else {
            return Err(ApiError::not_found(
                &attrs.entry.info.group_resource(),
                name,
            ));
        };
        if str_at(&pod, "/spec/nodeName") != node {
            return Err(forbidden(
                attrs,
                format!("node {node} can only evict pods with spec.nodeName set to itself"),
            ));
        }
        Ok(())
    }

    /// Upstream's `admitServiceAccount`: a node's token requests are bound to a pod (by name
    /// and uid) that runs on it.
    fn admit_token(
        &self,
        attrs: &Attributes<'_>,
        node: &str,
        request: &Value,
    ) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create || attrs.subresource != "token" {
            return Ok(());
        }
        let bound = request
            .pointer("/spec/boundObjectRef")
            .filter(|r| r.is_object());
        let field = |k: &str| bound.map(|r| str_at(r, &format!("/{k}"))).unwrap_or("");
        if bound.is_none()
            || field("apiVersion") != "v1"
            || field("kind") != "Pod"
            || field("name").is_empty()
        {
            return Err(forbidden(
                attrs,
                "node requested token not bound to a pod".into(),
            ));
        }
        let uid = field("uid");
        if uid.is_empty() {
            return Err(forbidden(
                attrs,
                "node requested token with a pod binding without a uid".into(),
            ));
        }
        let Some(pod) = self.pod(attrs.namespace, field("name")) else {
            return Err(ApiError::not_found(
                &rudder_api::status::GroupResource::new("", "pods"),
                field("name"),
            ));
        };
        if object::meta_str(&pod, "uid") != uid {
            return Err(forbidden(
                attrs,
                format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        if str_at(&pod, "/spec/nodeName") != node {
            return Err(forbidden(
                attrs,
                "node requested token bound to a pod scheduled on a different node".into(),
            ));
        }
        Ok(())
    }
}

/// Upstream's `admitPVCStatus`: a node may change a claim's status capacity and conditions
/// (and the resize bookkeeping), nothing else.
fn admit_pvc_status(attrs: &Attributes<'_>, node: &str, pvc: &Value) -> Result<(), ApiError> {
    if attrs.subresource != "status" {
        return Err(forbidden(attrs, "may only update PVC status".into()));
    }
    if attrs.operation != Operation::Update {
        return Err(forbidden(
            attrs,
            format!("unexpected operation {:?}", attrs.operation.as_str()),
        ));
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("managedFields");
        }
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            for k in [
                "capacity",
                "conditions",
                "allocatedResources",
                "allocatedResourceStatuses",
            ] {
                status.remove(k);
            }
        }
        v
    };
    let old = attrs.old.unwrap_or(&Value::Null);
    if strip(old) != strip(pvc) {
        return Err(forbidden(
            attrs,
            format!("node {node:?} is not allowed to update fields other than status.capacity and status.conditions"),
        ));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Admission for NodeRestriction {
    fn handles(&self, entry: &Entry) -> bool {
        entry.info.group.is_empty()
            && matches!(
                entry.info.plural.as_str(),
                "pods" | "nodes" | "persistentvolumeclaims" | "serviceaccounts"
            )
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let Some(node) = node_name(attrs) else {
            return Ok(());
        };
        let refuse = |m: String| Err(forbidden(attrs, m));
        match attrs.entry.info.plural.as_str() {
            "persistentvolumeclaims" => return admit_pvc_status(attrs, node, obj),
            "serviceaccounts" => return self.admit_token(attrs, node, obj),
            _ => {}
        }
        if attrs.entry.info.plural == "pods" {
            return match (attrs.subresource, attrs.operation) {
                ("", Operation::Create) => admit_mirror_pod(attrs, node, obj),
                ("eviction", _) => self.admit_eviction(attrs, node, obj),
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
                (sub, _) => refuse(format!(
                    "unexpected pod subresource {sub:?}, only 'status' and 'eviction' are allowed"
                )),
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

    // Cases from upstream's admission_test.go (PVC status updates by a node).
    #[test]
    fn a_node_changes_only_a_claims_capacity_and_conditions() {
        let registry = rudder_registry::Registry::builtin(crate::strategies::strategy_for).unwrap();
        let entry = registry
            .get("", "v1", "persistentvolumeclaims")
            .unwrap()
            .clone();
        let user = rudder_registry::Requester {
            name: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        };
        let warnings = rudder_registry::Warnings::default();
        let audit = rudder_registry::AuditContext::default();
        let old = json!({"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "1"},
            "spec": {"resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}});
        let check = |new: &Value, subresource: &str, operation: Operation| {
            let attrs = Attributes {
                entry: &entry,
                operation,
                namespace: "ns",
                name: "c",
                subresource,
                user: Some(&user),
                dry_run: false,
                options: None,
                old: Some(&old),
                warnings: &warnings,
                audit: &audit,
            };
            admit_pvc_status(&attrs, "n1", new).map_err(|e| e.message)
        };
        let mut grown = old.clone();
        grown["status"]["capacity"]["storage"] = json!("2Gi");
        grown["status"]["conditions"] =
            json!([{"type": "FileSystemResizePending", "status": "True"}]);
        grown["metadata"]["resourceVersion"] = json!("");
        assert_eq!(check(&grown, "status", Operation::Update), Ok(()));
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert_eq!(
            check(&relabelled, "status", Operation::Update),
            Err(r#"persistentvolumeclaims "c" is forbidden: node "n1" is not allowed to update fields other than status.capacity and status.conditions"#.into())
        );
        let mut rephased = old.clone();
        rephased["status"]["phase"] = json!("Lost");
        assert!(check(&rephased, "status", Operation::Update).is_err());
        assert_eq!(
            check(&old, "", Operation::Update),
            Err(r#"persistentvolumeclaims "c" is forbidden: may only update PVC status"#.into())
        );
    }

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
