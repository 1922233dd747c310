//! The Node authorizer (upstream's `plugin/pkg/auth/authorizer/node`): a node
//! (`system:node:<name>` in `system:nodes`) may read only the secrets, config maps, claims and
//! volumes that pods bound to it use, mint tokens only for their service accounts, and touch
//! only its own Lease and CSINode; everything else it may do is upstream's node rules.
//!
//! The graph is kept as counts of (node, kind, namespace, name) references, fed pod by pod and
//! claim by claim from the API server's watch cache, so a check is one hash lookup.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::Value;

use crate::authz::{Attributes, Authorizer, Decision};
use crate::rbac::{bootstrap::node_rules, rule_allows, PolicyRule};
use crate::user::UserInfo;

pub const NODES_GROUP: &str = "system:nodes";
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is, as upstream's `NodeIdentifier`: `Some("")` for a node user without a
/// name.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    user.in_group(NODES_GROUP).then_some(name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Secret,
    ConfigMap,
    Claim,
    ServiceAccount,
    Volume,
}

type Ref = (Kind, String, String);

#[derive(Default, Debug)]
struct Inner {
    /// What each bound pod (by namespace/name) references, and its node.
    pods: HashMap<(String, String), (String, Vec<Ref>)>,
    /// How many bound pods on a node reference an object.
    counts: HashMap<(String, Ref), usize>,
    /// The volume each claim is bound to.
    claim_volumes: HashMap<(String, String), String>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn items<'a>(v: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The objects a pod references, as upstream's graph populator (`AddPod`) walks them.
fn pod_refs(pod: &Value) -> Vec<Ref> {
    let ns = str_at(pod, "/metadata/namespace").to_string();
    let pod_name = str_at(pod, "/metadata/name");
    let mut refs: Vec<Ref> = Vec::new();
    let mut add = |kind: Kind, name: &str| {
        if !name.is_empty() {
            let r = (kind, ns.clone(), name.to_string());
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
    };
    add(
        Kind::ServiceAccount,
        str_at(pod, "/spec/serviceAccountName"),
    );
    for s in items(pod, "/spec/imagePullSecrets") {
        add(Kind::Secret, str_at(s, "/name"));
    }
    for list in [
        "/spec/containers",
        "/spec/initContainers",
        "/spec/ephemeralContainers",
    ] {
        for c in items(pod, list) {
            for e in items(c, "/envFrom") {
                add(Kind::Secret, str_at(e, "/secretRef/name"));
                add(Kind::ConfigMap, str_at(e, "/configMapRef/name"));
            }
            for e in items(c, "/env") {
                add(Kind::Secret, str_at(e, "/valueFrom/secretKeyRef/name"));
                add(
                    Kind::ConfigMap,
                    str_at(e, "/valueFrom/configMapKeyRef/name"),
                );
            }
        }
    }
    for v in items(pod, "/spec/volumes") {
        add(Kind::Secret, str_at(v, "/secret/secretName"));
        add(Kind::ConfigMap, str_at(v, "/configMap/name"));
        add(Kind::Claim, str_at(v, "/persistentVolumeClaim/claimName"));
        if v.pointer("/ephemeral").is_some_and(|e| !e.is_null()) {
            add(Kind::Claim, &format!("{pod_name}-{}", str_at(v, "/name")));
        }
        for s in items(v, "/projected/sources") {
            add(Kind::Secret, str_at(s, "/secret/name"));
            add(Kind::ConfigMap, str_at(s, "/configMap/name"));
        }
        // Volume plugins that read a secret on the node (CSI, and the in-tree ones left).
        for p in [
            "/csi/nodePublishSecretRef/name",
            "/cephfs/secretRef/name",
            "/rbd/secretRef/name",
            "/iscsi/secretRef/name",
            "/flexVolume/secretRef/name",
            "/azureFile/secretName",
        ] {
            add(Kind::Secret, str_at(v, p));
        }
    }
    refs
}

/// Which objects pods bound to each node use (upstream's node authorizer graph).
#[derive(Default, Debug)]
pub struct NodeGraph {
    inner: RwLock<Inner>,
}

impl NodeGraph {
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Add or replace a pod; only pods bound to a node count.
    pub fn apply_pod(&self, pod: &Value) {
        let key = (
            str_at(pod, "/metadata/namespace").to_string(),
            str_at(pod, "/metadata/name").to_string(),
        );
        let node = str_at(pod, "/spec/nodeName").to_string();
        let mut inner = self.write();
        inner.remove_pod(&key);
        if node.is_empty() {
            return;
        }
        let refs = pod_refs(pod);
        for r in &refs {
            *inner.counts.entry((node.clone(), r.clone())).or_default() += 1;
        }
        inner.pods.insert(key, (node, refs));
    }

    pub fn remove_pod(&self, namespace: &str, name: &str) {
        self.write()
            .remove_pod(&(namespace.to_string(), name.to_string()));
    }

    /// Add or replace a claim (its bound volume).
    pub fn apply_claim(&self, claim: &Value) {
        let key = (
            str_at(claim, "/metadata/namespace").to_string(),
            str_at(claim, "/metadata/name").to_string(),
        );
        let volume = str_at(claim, "/spec/volumeName").to_string();
        let mut inner = self.write();
        if volume.is_empty() {
            inner.claim_volumes.remove(&key);
        } else {
            inner.claim_volumes.insert(key, volume);
        }
    }

    pub fn remove_claim(&self, namespace: &str, name: &str) {
        self.write()
            .claim_volumes
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Forget every pod (or claim) before reloading them.
    pub fn clear_pods(&self) {
        let mut inner = self.write();
        inner.pods.clear();
        inner.counts.clear();
    }

    pub fn clear_claims(&self) {
        self.write().claim_volumes.clear();
    }

    fn has_path(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        let inner = self.read();
        if kind == Kind::Volume {
            // A volume is reachable through a claim bound to it that a pod on the node uses.
            return inner.claim_volumes.iter().any(|((ns, claim), volume)| {
                volume == name
                    && inner
                        .counts
                        .contains_key(&(node.to_string(), (Kind::Claim, ns.clone(), claim.clone())))
            });
        }
        inner.counts.contains_key(&(
            node.to_string(),
            (kind, namespace.to_string(), name.to_string()),
        ))
    }
}

impl Inner {
    fn remove_pod(&mut self, key: &(String, String)) {
        let Some((node, refs)) = self.pods.remove(key) else {
            return;
        };
        for r in refs {
            let k = (node.clone(), r);
            if let Some(n) = self.counts.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&k);
                }
            }
        }
    }
}

/// The Node authorizer over a [`NodeGraph`].
pub struct NodeAuthorizer {
    graph: std::sync::Arc<NodeGraph>,
    rules: Vec<PolicyRule>,
}

impl NodeAuthorizer {
    pub fn new(graph: std::sync::Arc<NodeGraph>) -> Self {
        NodeAuthorizer {
            graph,
            rules: node_rules(),
        }
    }

    fn no_relationship(node: &str) -> Decision {
        Decision::NoOpinionBecause(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }

    fn path(&self, node: &str, kind: Kind, attrs: &Attributes) -> Decision {
        if attrs.name.is_empty() {
            return Decision::NoOpinionBecause("No Object name found".into());
        }
        if self
            .graph
            .has_path(node, kind, &attrs.namespace, &attrs.name)
        {
            Decision::Allow
        } else {
            Self::no_relationship(node)
        }
    }

    fn read_namespaced(&self, node: &str, kind: Kind, attrs: &Attributes) -> Decision {
        if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
            return Decision::NoOpinionBecause("can only read resources of this type".into());
        }
        if !attrs.subresource.is_empty() {
            return Decision::NoOpinionBecause("cannot read subresource".into());
        }
        if attrs.namespace.is_empty() {
            return Decision::NoOpinionBecause(
                "can only read namespaced object of this type".into(),
            );
        }
        self.path(node, kind, attrs)
    }

    fn get_only(&self, node: &str, kind: Kind, attrs: &Attributes) -> Decision {
        if attrs.verb != "get" {
            return Decision::NoOpinionBecause(
                "can only get individual resources of this type".into(),
            );
        }
        if !attrs.subresource.is_empty() {
            return Decision::NoOpinionBecause("cannot get subresource".into());
        }
        self.path(node, kind, attrs)
    }

    fn own_object(&self, node: &str, attrs: &Attributes, what: &str) -> Decision {
        if !matches!(
            attrs.verb.as_str(),
            "get" | "create" | "update" | "patch" | "delete"
        ) {
            return Decision::NoOpinionBecause(format!(
                "can only get, create, update, patch, or delete a {what}"
            ));
        }
        if attrs.verb != "create" && attrs.name != node {
            return Decision::NoOpinionBecause(format!(
                "can only access {what} with the same name as the requesting node"
            ));
        }
        Decision::Allow
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let Some(node) = node_identity(user) else {
            return Decision::NoOpinion;
        };
        if node.is_empty() {
            return Decision::NoOpinionBecause("unknown node".into());
        }
        if attrs.resource_request {
            match (attrs.api_group.as_str(), attrs.resource.as_str()) {
                ("", "secrets") => return self.read_namespaced(node, Kind::Secret, attrs),
                ("", "configmaps") => return self.read_namespaced(node, Kind::ConfigMap, attrs),
                ("", "persistentvolumeclaims") => {
                    if attrs.subresource == "status" {
                        if !matches!(attrs.verb.as_str(), "update" | "patch") {
                            return Decision::NoOpinionBecause(
                                "can only get or update persistentvolumeclaim status".into(),
                            );
                        }
                        return self.path(node, Kind::Claim, attrs);
                    }
                    return self.get_only(node, Kind::Claim, attrs);
                }
                ("", "persistentvolumes") => return self.get_only(node, Kind::Volume, attrs),
                ("", "serviceaccounts") if attrs.subresource == "token" => {
                    if attrs.verb != "create" {
                        return Decision::NoOpinionBecause(
                            "can only create tokens for individual service accounts".into(),
                        );
                    }
                    return self.path(node, Kind::ServiceAccount, attrs);
                }
                ("coordination.k8s.io", "leases") => {
                    if attrs.namespace != "kube-node-lease" {
                        return Decision::NoOpinionBecause(
                            "can only access leases in the kube-node-lease namespace".into(),
                        );
                    }
                    return self.own_object(node, attrs, "node lease");
                }
                ("storage.k8s.io", "csinodes") => return self.own_object(node, attrs, "CSINode"),
                _ => {}
            }
        }
        if self.rules.iter().any(|r| rule_allows(attrs, r)) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str) -> UserInfo {
        UserInfo::new(format!("system:node:{name}"))
            .with_groups(["system:nodes", "system:authenticated"])
    }

    fn get(resource: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: "get".into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: name.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    fn web(node: &str) -> Value {
        json!({"metadata": {"name": "web", "namespace": "app"}, "spec": {
        "nodeName": node, "serviceAccountName": "runner",
        "imagePullSecrets": [{"name": "pull"}],
        "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}]}],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "token", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}}
        ]}})
    }

    #[test]
    fn nodes_read_only_what_their_pods_use() {
        let graph = std::sync::Arc::new(NodeGraph::new());
        let authz = NodeAuthorizer::new(graph.clone());
        graph.apply_pod(&web("n1"));
        graph.apply_claim(&json!({"metadata": {"name": "data", "namespace": "app"}, "spec": {"volumeName": "pv-1"}}));
        let n1 = node("n1");
        let n2 = node("n2");
        for (res, name) in [
            ("secrets", "pull"),
            ("secrets", "env-secret"),
            ("configmaps", "settings"),
            ("configmaps", "kube-root-ca.crt"),
            ("persistentvolumeclaims", "data"),
        ] {
            assert_eq!(
                authz.authorize(&n1, &get(res, "app", name)),
                Decision::Allow,
                "{res}/{name}"
            );
            assert_eq!(
                authz.authorize(&n2, &get(res, "app", name)),
                Decision::NoOpinionBecause(
                    "no relationship found between node 'n2' and this object".into()
                )
            );
        }
        assert!(authz
            .authorize(&n1, &get("persistentvolumes", "", "pv-1"))
            .allowed());
        assert!(!authz
            .authorize(&n2, &get("persistentvolumes", "", "pv-1"))
            .allowed());
        assert!(!authz
            .authorize(&n1, &get("secrets", "app", "other"))
            .allowed());
        let token = Attributes {
            verb: "create".into(),
            subresource: "token".into(),
            ..get("serviceaccounts", "app", "runner")
        };
        assert!(authz.authorize(&n1, &token).allowed());
        assert!(!authz.authorize(&n2, &token).allowed());
        // Moving the pod moves the access; deleting it removes it.
        graph.apply_pod(&web("n2"));
        assert!(!authz
            .authorize(&n1, &get("secrets", "app", "pull"))
            .allowed());
        assert!(authz
            .authorize(&n2, &get("secrets", "app", "pull"))
            .allowed());
        graph.remove_pod("app", "web");
        assert!(!authz
            .authorize(&n2, &get("secrets", "app", "pull"))
            .allowed());
        // Writes and lists of secrets are never a node's.
        let list = Attributes {
            verb: "list".into(),
            ..get("secrets", "app", "")
        };
        assert!(!authz.authorize(&n1, &list).allowed());
    }

    #[test]
    fn leases_static_rules_and_other_users() {
        let authz = NodeAuthorizer::new(std::sync::Arc::new(NodeGraph::new()));
        let lease = |verb: &str, name: &str| Attributes {
            verb: verb.into(),
            api_group: "coordination.k8s.io".into(),
            resource: "leases".into(),
            namespace: "kube-node-lease".into(),
            name: name.into(),
            resource_request: true,
            ..Default::default()
        };
        assert!(authz
            .authorize(&node("n1"), &lease("update", "n1"))
            .allowed());
        assert!(!authz
            .authorize(&node("n1"), &lease("update", "n2"))
            .allowed());
        assert!(authz.authorize(&node("n1"), &lease("create", "")).allowed());
        assert!(authz
            .authorize(&node("n1"), &get("pods", "app", "web"))
            .allowed());
        assert!(authz
            .authorize(&node("n1"), &get("nodes", "", "n2"))
            .allowed());
        assert_eq!(
            authz.authorize(&UserInfo::new("system:node:n1"), &get("pods", "a", "b")),
            Decision::NoOpinion
        );
        assert_eq!(
            authz.authorize(&UserInfo::new("alice"), &get("pods", "a", "b")),
            Decision::NoOpinion
        );
    }
}
