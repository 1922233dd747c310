//! The default roles and bindings an API server creates and reconciles at every start.
//!
//! Transcribed from upstream's bootstrap policy (`plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy`: `policy.go`, `controller_policy.go`, `namespace_policy.go`, whose
//! generated form is `testdata/*.yaml`), Kubernetes 1.3x, plus k3s's `system:coredns` and a
//! `system:rudder-controller` role after k3s's `system:k3s-controller` for the node-level
//! network components (flannel, network policy) and the service load balancer.

use serde_json::{json, Value};

use super::PolicyRule;

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const READ_WRITE: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const EVENTS: &[&str] = &["create", "update", "patch"];

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub const BOOTSTRAP_LABEL: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn r(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        ..Default::default()
    }
}

fn named(mut rule: PolicyRule, names: &[&str]) -> PolicyRule {
    rule.resource_names = strings(names);
    rule
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        non_resource_urls: strings(urls),
        ..Default::default()
    }
}

/// Both event groups, as upstream's `eventsRule()`.
fn events() -> PolicyRule {
    r(EVENTS, &["", "events.k8s.io"], &["events"])
}

fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> Value {
    let mut l = serde_json::Map::new();
    l.insert(BOOTSTRAP_LABEL.0.into(), json!(BOOTSTRAP_LABEL.1));
    for (k, v) in labels {
        l.insert((*k).into(), json!(v));
    }
    let mut m = json!({"name": name, "labels": l, "annotations": {AUTOUPDATE: "true"}});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> Value {
    cluster_role_labelled(name, &[], rules)
}

fn cluster_role_labelled(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, None, labels),
        "rules": rules,
    })
}

fn aggregated(name: &str, labels: &[(&str, &str)], selector: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": meta(name, None, labels),
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {selector: "true"}}]},
        "rules": [],
    })
}

fn subject(kind: &str, name: &str) -> Value {
    match kind {
        "ServiceAccount" => json!({"kind": kind, "name": name, "namespace": "kube-system"}),
        _ => json!({"apiGroup": super::GROUP, "kind": kind, "name": name}),
    }
}

fn cluster_binding(role: &str, subjects: &[(&str, &str)]) -> Value {
    let name = role;
    let mut b = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta(name, None, &[]),
        "roleRef": {"apiGroup": super::GROUP, "kind": "ClusterRole", "name": role},
    });
    if !subjects.is_empty() {
        b["subjects"] = subjects.iter().map(|(k, n)| subject(k, n)).collect();
    }
    b
}

/// The rules upstream's Node authorizer applies to nodes (`NodeRules()`), which the
/// `system:node` ClusterRole also holds.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
        r(
            &["create"],
            &["authorization.k8s.io"],
            &["subjectaccessreviews", "localsubjectaccessreviews"],
        ),
        r(READ, &[""], &["services"]),
        r(&["create", "get", "list", "watch"], &[""], &["nodes"]),
        r(&["update", "patch"], &[""], &["nodes/status"]),
        r(&["update", "patch"], &[""], &["nodes"]),
        r(EVENTS, &[""], &["events"]),
        r(READ, &[""], &["pods"]),
        r(&["create", "delete"], &[""], &["pods"]),
        r(&["update", "patch"], &[""], &["pods/status"]),
        r(&["create"], &[""], &["pods/eviction"]),
        r(READ, &[""], &["secrets", "configmaps"]),
        r(
            &["get"],
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        r(&["get"], &[""], &["endpoints"]),
        r(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        r(
            &["get", "create", "update", "patch", "delete"],
            &["coordination.k8s.io"],
            &["leases"],
        ),
        r(&["get"], &["storage.k8s.io"], &["volumeattachments"]),
        r(&["create"], &[""], &["serviceaccounts/token"]),
        r(
            &["get", "update", "patch"],
            &[""],
            &["persistentvolumeclaims/status"],
        ),
        r(
            &["get", "watch", "list"],
            &["storage.k8s.io"],
            &["csidrivers"],
        ),
        r(
            &["get", "create", "update", "patch", "delete"],
            &["storage.k8s.io"],
            &["csinodes"],
        ),
        r(READ, &["node.k8s.io"], &["runtimeclasses"]),
    ]
}

/// Upstream's `ClusterRoles()` plus k3s's and Rudder's own.
pub fn cluster_roles() -> Vec<Value> {
    let mut roles = vec![
        cluster_role(
            "cluster-admin",
            vec![r(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        cluster_role(
            "system:discovery",
            vec![urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/openapi",
                    "/openapi/*",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                ],
            )],
        ),
        cluster_role(
            "system:monitoring",
            vec![urls(
                &["get"],
                &[
                    "/metrics",
                    "/metrics/slis",
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/livez/*",
                    "/readyz/*",
                    "/healthz/*",
                ],
            )],
        ),
        cluster_role(
            "system:basic-user",
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                r(
                    &["create"],
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![urls(
                &["get"],
                &["/livez", "/readyz", "/healthz", "/version", "/version/"],
            )],
        ),
        aggregated("admin", &[], "rbac.authorization.k8s.io/aggregate-to-admin"),
        aggregated(
            "edit",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            "rbac.authorization.k8s.io/aggregate-to-edit",
        ),
        aggregated(
            "view",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            "rbac.authorization.k8s.io/aggregate-to-view",
        ),
        cluster_role_labelled(
            "system:aggregate-to-admin",
            &[("rbac.authorization.k8s.io/aggregate-to-admin", "true")],
            vec![
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                ),
                r(
                    READ_WRITE,
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                ),
            ],
        ),
        cluster_role_labelled(
            "system:aggregate-to-edit",
            &[("rbac.authorization.k8s.io/aggregate-to-edit", "true")],
            vec![
                r(
                    READ,
                    &[""],
                    &[
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                r(&["impersonate"], &[""], &["serviceaccounts"]),
                r(
                    WRITE,
                    &[""],
                    &[
                        "pods",
                        "pods/attach",
                        "pods/proxy",
                        "pods/exec",
                        "pods/portforward",
                    ],
                ),
                r(&["create"], &[""], &["pods/eviction"]),
                r(
                    WRITE,
                    &[""],
                    &[
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                        "persistentvolumeclaims",
                        "configmaps",
                        "secrets",
                        "events",
                    ],
                ),
                r(&["create"], &[""], &["serviceaccounts/token"]),
                r(
                    WRITE,
                    &["apps"],
                    &[
                        "statefulsets",
                        "statefulsets/scale",
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "replicasets",
                        "replicasets/scale",
                    ],
                ),
                r(WRITE, &["autoscaling"], &["horizontalpodautoscalers"]),
                r(WRITE, &["batch"], &["jobs", "cronjobs"]),
                r(
                    WRITE,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/scale",
                        "deployments/rollback",
                        "ingresses",
                        "replicasets",
                        "replicasets/scale",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                r(WRITE, &["policy"], &["poddisruptionbudgets"]),
                r(
                    WRITE,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses"],
                ),
                r(READ_WRITE, &["coordination.k8s.io"], &["leases"]),
            ],
        ),
        cluster_role_labelled(
            "system:aggregate-to-view",
            &[("rbac.authorization.k8s.io/aggregate-to-view", "true")],
            vec![
                r(
                    READ,
                    &[""],
                    &[
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "configmaps",
                    ],
                ),
                r(
                    READ,
                    &[""],
                    &[
                        "limitranges",
                        "resourcequotas",
                        "bindings",
                        "events",
                        "pods/status",
                        "resourcequotas/status",
                        "namespaces/status",
                        "replicationcontrollers/status",
                        "pods/log",
                    ],
                ),
                r(READ, &[""], &["namespaces"]),
                r(READ, &["discovery.k8s.io"], &["endpointslices"]),
                r(
                    READ,
                    &["apps"],
                    &[
                        "controllerrevisions",
                        "statefulsets",
                        "statefulsets/status",
                        "statefulsets/scale",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/status",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/status",
                        "replicasets/scale",
                    ],
                ),
                r(
                    READ,
                    &["autoscaling"],
                    &[
                        "horizontalpodautoscalers",
                        "horizontalpodautoscalers/status",
                    ],
                ),
                r(
                    READ,
                    &["batch"],
                    &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
                ),
                r(
                    READ,
                    &["extensions"],
                    &[
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "ingresses",
                        "ingresses/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "replicationcontrollers/scale",
                        "networkpolicies",
                    ],
                ),
                r(
                    READ,
                    &["policy"],
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
                r(
                    READ,
                    &["networking.k8s.io"],
                    &["networkpolicies", "ingresses", "ingresses/status"],
                ),
            ],
        ),
        cluster_role(
            "system:heapster",
            vec![
                r(READ, &[""], &["events", "pods", "nodes", "namespaces"]),
                r(READ, &["extensions", "apps"], &["deployments"]),
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-problem-detector",
            vec![
                r(&["get"], &[""], &["nodes"]),
                r(&["patch"], &[""], &["nodes/status"]),
                events(),
            ],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                r(&["get", "list", "watch", "proxy"], &[""], &["nodes"]),
                r(
                    &["*"],
                    &[""],
                    &[
                        "nodes/proxy",
                        "nodes/metrics",
                        "nodes/stats",
                        "nodes/log",
                        "nodes/spec",
                        "nodes/checkpoint",
                        "nodes/configz",
                        "nodes/healthz",
                        "nodes/pods",
                    ],
                ),
            ],
        ),
        cluster_role(
            "system:node-bootstrapper",
            vec![r(
                &["create", "get", "list", "watch"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            "system:auth-delegator",
            vec![
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-aggregator",
            vec![r(READ, &[""], &["services", "endpoints"])],
        ),
        cluster_role(
            "system:kube-controller-manager",
            vec![
                events(),
                r(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    r(&["get", "update"], &["coordination.k8s.io"], &["leases"]),
                    &["kube-controller-manager"],
                ),
                r(&["create"], &[""], &["secrets", "serviceaccounts"]),
                r(&["delete"], &[""], &["secrets"]),
                r(
                    &["get"],
                    &[""],
                    &["namespaces", "secrets", "serviceaccounts", "configmaps"],
                ),
                r(&["update"], &[""], &["secrets", "serviceaccounts"]),
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                r(&["list", "watch"], &["*"], &["*"]),
                named(
                    r(&["create"], &[""], &["serviceaccounts/token"]),
                    &[
                        "attachdetach-controller",
                        "certificate-controller",
                        "clusterrole-aggregation-controller",
                        "cronjob-controller",
                        "daemon-set-controller",
                        "deployment-controller",
                        "disruption-controller",
                        "endpoint-controller",
                        "endpointslice-controller",
                        "endpointslicemirroring-controller",
                        "ephemeral-volume-controller",
                        "expand-controller",
                        "generic-garbage-collector",
                        "horizontal-pod-autoscaler",
                        "job-controller",
                        "namespace-controller",
                        "node-controller",
                        "persistent-volume-binder",
                        "pod-garbage-collector",
                        "pv-protection-controller",
                        "pvc-protection-controller",
                        "replicaset-controller",
                        "replication-controller",
                        "resourcequota-controller",
                        "root-ca-cert-publisher",
                        "service-account-controller",
                        "service-controller",
                        "statefulset-controller",
                        "ttl-after-finished-controller",
                        "ttl-controller",
                    ],
                ),
            ],
        ),
        cluster_role(
            "system:kube-dns",
            vec![r(&["list", "watch"], &[""], &["endpoints", "services"])],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            vec![
                r(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(&["watch"], &[""], &["events"]),
                events(),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![r(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![r(
                &["create"],
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
            )],
        ),
        cluster_role(
            "system:volume-scheduler",
            vec![
                r(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(
                    &["get", "list", "patch", "update", "watch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:legacy-unknown-approver",
            vec![named(
                r(&["approve"], &["certificates.k8s.io"], &["signers"]),
                &["kubernetes.io/legacy-unknown"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kubelet-serving-approver",
            vec![named(
                r(&["approve"], &["certificates.k8s.io"], &["signers"]),
                &["kubernetes.io/kubelet-serving"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-approver",
            vec![named(
                r(&["approve"], &["certificates.k8s.io"], &["signers"]),
                &["kubernetes.io/kube-apiserver-client"],
            )],
        ),
        cluster_role(
            "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
            vec![named(
                r(&["approve"], &["certificates.k8s.io"], &["signers"]),
                &["kubernetes.io/kube-apiserver-client-kubelet"],
            )],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
        ),
        cluster_role(
            "system:node-proxier",
            vec![
                r(&["list", "watch"], &[""], &["services", "endpoints"]),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                events(),
                r(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        cluster_role(
            "system:kube-scheduler",
            vec![
                events(),
                r(&["create"], &["coordination.k8s.io"], &["leases"]),
                named(
                    r(&["get", "update"], &["coordination.k8s.io"], &["leases"]),
                    &["kube-scheduler"],
                ),
                r(READ, &[""], &["nodes"]),
                r(&["get", "list", "watch", "delete"], &[""], &["pods"]),
                r(&["create"], &[""], &["bindings", "pods/binding"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(READ, &[""], &["replicationcontrollers", "services"]),
                r(READ, &["apps", "extensions"], &["replicasets"]),
                r(READ, &["apps"], &["statefulsets"]),
                r(READ, &["policy"], &["poddisruptionbudgets"]),
                r(
                    READ,
                    &[""],
                    &["persistentvolumeclaims", "persistentvolumes"],
                ),
                r(&["create"], &["authentication.k8s.io"], &["tokenreviews"]),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                r(READ, &["storage.k8s.io"], &["csinodes"]),
                r(READ, &[""], &["namespaces"]),
                r(READ, &["storage.k8s.io"], &["csidrivers"]),
                r(READ, &["storage.k8s.io"], &["csistoragecapacities"]),
            ],
        ),
        // k3s's packaged CoreDNS role.
        cluster_role(
            "system:coredns",
            vec![
                r(
                    &["list", "watch"],
                    &[""],
                    &["endpoints", "services", "pods", "namespaces"],
                ),
                r(
                    &["list", "watch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                // Node names answer as k3s's NodeHosts, which rudder-dns follows itself
                // (k3s's server writes them into CoreDNS's ConfigMap instead).
                r(&["list", "watch"], &[""], &["nodes"]),
            ],
        ),
        // After k3s's `system:k3s-controller`: what the node-level network components read
        // and write beyond the node's own rules (flannel's node annotations, network policy's
        // namespaces and policies, the service load balancer's daemon sets).
        cluster_role(
            "system:rudder-controller",
            vec![
                r(
                    READ,
                    &[""],
                    &["nodes", "namespaces", "pods", "services", "endpoints"],
                ),
                r(&["patch"], &[""], &["nodes", "nodes/status"]),
                r(READ, &["networking.k8s.io"], &["networkpolicies"]),
                r(READ, &["discovery.k8s.io"], &["endpointslices"]),
            ],
        ),
    ];
    roles.extend(controller_roles());
    roles
}

/// Upstream's `ClusterRoleBindings()` plus the controller and k3s bindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    let mut b = vec![
        cluster_binding("cluster-admin", &[("Group", "system:masters")]),
        cluster_binding("system:monitoring", &[("Group", "system:monitoring")]),
        cluster_binding("system:discovery", &[("Group", "system:authenticated")]),
        cluster_binding("system:basic-user", &[("Group", "system:authenticated")]),
        cluster_binding(
            "system:public-info-viewer",
            &[
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        cluster_binding("system:node-proxier", &[("User", "system:kube-proxy")]),
        cluster_binding(
            "system:kube-controller-manager",
            &[("User", "system:kube-controller-manager")],
        ),
        cluster_binding("system:kube-dns", &[("ServiceAccount", "kube-dns")]),
        cluster_binding(
            "system:kube-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        cluster_binding(
            "system:volume-scheduler",
            &[("User", "system:kube-scheduler")],
        ),
        // Upstream keeps this binding without subjects: the Node authorizer grants nodes.
        cluster_binding("system:node", &[]),
        cluster_binding(
            "system:service-account-issuer-discovery",
            &[("Group", "system:serviceaccounts")],
        ),
        cluster_binding("system:coredns", &[("ServiceAccount", "coredns")]),
        cluster_binding(
            "system:rudder-controller",
            &[
                ("User", "system:rudder-controller"),
                ("Group", "system:nodes"),
            ],
        ),
        // The join token's bindings (bootstrappers request and renew node certificates) are
        // created with the token (`rudder::join`), for the token's own group.
    ];
    b.extend(controller_role_bindings());
    b
}

fn role(name: &str, ns: &str, rules: Vec<PolicyRule>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta(name, Some(ns), &[]),
        "rules": rules,
    })
}

fn role_binding(name: &str, ns: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta(name, Some(ns), &[]),
        "roleRef": {"apiGroup": super::GROUP, "kind": "Role", "name": role},
        "subjects": subjects.iter().map(|(k, n)| subject(k, n)).collect::<Vec<_>>(),
    })
}

/// Upstream's `NamespaceRoles()` (kube-system and kube-public).
pub fn roles() -> Vec<Value> {
    let leader = || {
        vec![
            r(
                &["create", "get", "list", "update", "watch"],
                &["coordination.k8s.io"],
                &["leases"],
            ),
            r(
                &["create", "get", "list", "update", "watch"],
                &["coordination.k8s.io"],
                &["leasecandidates"],
            ),
        ]
    };
    vec![
        role(
            "extension-apiserver-authentication-reader",
            "kube-system",
            vec![named(
                r(READ, &[""], &["configmaps"]),
                &["extension-apiserver-authentication"],
            )],
        ),
        role(
            "system::leader-locking-kube-controller-manager",
            "kube-system",
            leader(),
        ),
        // Rudder's cluster DNS keeps the kube-dns Service and its EndpointSlice itself (k3s
        // ships them as a manifest instead).
        role(
            "system:rudder:coredns-service",
            "kube-system",
            vec![
                r(
                    &["get", "list", "watch", "create", "update", "patch"],
                    &[""],
                    &["services"],
                ),
                r(
                    &["get", "list", "watch", "create", "update", "patch"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
            ],
        ),
        role(
            "system::leader-locking-kube-scheduler",
            "kube-system",
            leader(),
        ),
        role(
            "system:controller:bootstrap-signer",
            "kube-system",
            vec![r(READ, &[""], &["secrets"])],
        ),
        role(
            "system:controller:cloud-provider",
            "kube-system",
            vec![r(
                &["create", "get", "list", "watch"],
                &[""],
                &["configmaps"],
            )],
        ),
        role(
            "system:controller:token-cleaner",
            "kube-system",
            vec![
                r(&["delete", "get", "list", "watch"], &[""], &["secrets"]),
                events(),
            ],
        ),
        role(
            "system:controller:bootstrap-signer",
            "kube-public",
            vec![
                r(READ, &[""], &["configmaps"]),
                named(r(&["update"], &[""], &["configmaps"]), &["cluster-info"]),
                events(),
            ],
        ),
    ]
}

/// Upstream's `NamespaceRoleBindings()`.
pub fn role_bindings() -> Vec<Value> {
    vec![
        role_binding(
            "system::extension-apiserver-authentication-reader",
            "kube-system",
            "extension-apiserver-authentication-reader",
            &[
                ("User", "system:kube-controller-manager"),
                ("User", "system:kube-scheduler"),
            ],
        ),
        role_binding(
            "system::leader-locking-kube-controller-manager",
            "kube-system",
            "system::leader-locking-kube-controller-manager",
            &[
                ("User", "system:kube-controller-manager"),
                ("ServiceAccount", "kube-controller-manager"),
                ("ServiceAccount", "leader-election-controller"),
            ],
        ),
        role_binding(
            "system::leader-locking-kube-scheduler",
            "kube-system",
            "system::leader-locking-kube-scheduler",
            &[
                ("User", "system:kube-scheduler"),
                ("ServiceAccount", "kube-scheduler"),
            ],
        ),
        role_binding(
            "system:controller:bootstrap-signer",
            "kube-system",
            "system:controller:bootstrap-signer",
            &[("ServiceAccount", "bootstrap-signer")],
        ),
        role_binding(
            "system:rudder:coredns-service",
            "kube-system",
            "system:rudder:coredns-service",
            &[("ServiceAccount", "coredns")],
        ),
        role_binding(
            "system:controller:cloud-provider",
            "kube-system",
            "system:controller:cloud-provider",
            &[("ServiceAccount", "cloud-provider")],
        ),
        role_binding(
            "system:controller:token-cleaner",
            "kube-system",
            "system:controller:token-cleaner",
            &[("ServiceAccount", "token-cleaner")],
        ),
        role_binding(
            "system:controller:bootstrap-signer",
            "kube-public",
            "system:controller:bootstrap-signer",
            &[("ServiceAccount", "bootstrap-signer")],
        ),
    ]
}

/// The controllers upstream gives a role each (`controller_policy.go`): the service account
/// name in kube-system and the role's rules.
fn controller_policies() -> Vec<(&'static str, Vec<PolicyRule>)> {
    vec![
        (
            "attachdetach-controller",
            vec![
                r(
                    &["list", "watch"],
                    &[""],
                    &["persistentvolumes", "persistentvolumeclaims"],
                ),
                r(&["get", "list", "watch"], &[""], &["nodes"]),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["list", "watch"], &[""], &["pods"]),
                events(),
                r(
                    &["get", "create", "delete", "list", "watch"],
                    &["storage.k8s.io"],
                    &["volumeattachments"],
                ),
                r(READ, &["storage.k8s.io"], &["csidrivers", "csinodes"]),
            ],
        ),
        (
            "clusterrole-aggregation-controller",
            vec![r(
                &["escalate", "get", "list", "watch", "update", "patch"],
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
            )],
        ),
        (
            "cronjob-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &["batch"],
                    &["cronjobs"],
                ),
                r(
                    &[
                        "get", "list", "watch", "create", "update", "delete", "patch",
                    ],
                    &["batch"],
                    &["jobs"],
                ),
                r(&["update"], &["batch"], &["cronjobs/status"]),
                r(&["update"], &["batch"], &["cronjobs/finalizers"]),
                r(&["list", "delete"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "daemon-set-controller",
            vec![
                r(READ, &["extensions", "apps"], &["daemonsets"]),
                r(&["update"], &["extensions", "apps"], &["daemonsets/status"]),
                r(
                    &["update"],
                    &["extensions", "apps"],
                    &["daemonsets/finalizers"],
                ),
                r(&["list", "watch"], &[""], &["nodes"]),
                r(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                r(&["create"], &[""], &["pods/binding"]),
                r(
                    &[
                        "get", "list", "watch", "create", "delete", "update", "patch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                events(),
            ],
        ),
        (
            "deployment-controller",
            vec![
                // Upstream updates; Rudder's controller patches (revision annotations).
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &["extensions", "apps"],
                    &["deployments"],
                ),
                r(
                    &["update"],
                    &["extensions", "apps"],
                    &["deployments/status"],
                ),
                r(
                    &["update"],
                    &["extensions", "apps"],
                    &["deployments/finalizers"],
                ),
                r(
                    &[
                        "get", "list", "watch", "create", "update", "patch", "delete",
                    ],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                r(&["get", "list", "watch", "update"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "disruption-controller",
            vec![
                r(READ, &["extensions", "apps"], &["deployments"]),
                r(READ, &["apps", "extensions"], &["replicasets"]),
                r(READ, &[""], &["replicationcontrollers"]),
                r(READ, &["policy"], &["poddisruptionbudgets"]),
                r(READ, &["apps"], &["statefulsets"]),
                r(&["update"], &["policy"], &["poddisruptionbudgets/status"]),
                r(&["get"], &["*"], &["*/scale"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                events(),
            ],
        ),
        (
            "endpoint-controller",
            vec![
                r(READ, &[""], &["services", "pods"]),
                r(
                    &["get", "list", "create", "update", "delete"],
                    &[""],
                    &["endpoints"],
                ),
                r(&["create"], &[""], &["endpoints/restricted"]),
                events(),
            ],
        ),
        (
            "endpointslice-controller",
            vec![
                r(READ, &[""], &["services", "pods", "nodes"]),
                r(&["update"], &[""], &["services/finalizers"]),
                r(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        (
            "endpointslicemirroring-controller",
            vec![
                r(READ, &[""], &["services", "endpoints"]),
                r(&["update"], &[""], &["services/finalizers"]),
                r(&["update"], &[""], &["endpoints/finalizers"]),
                r(
                    &["get", "list", "create", "update", "delete"],
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                ),
                events(),
            ],
        ),
        (
            "expand-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(
                    &["update", "patch"],
                    &[""],
                    &["persistentvolumeclaims/status"],
                ),
                r(READ, &[""], &["persistentvolumeclaims"]),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(&["get"], &[""], &["endpoints", "services", "secrets"]),
                events(),
            ],
        ),
        (
            "ephemeral-volume-controller",
            vec![
                r(&["get", "list", "watch"], &[""], &["pods"]),
                r(&["update"], &[""], &["pods/finalizers"]),
                r(
                    &["get", "list", "watch", "create"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                events(),
            ],
        ),
        (
            "generic-garbage-collector",
            vec![
                r(
                    &["get", "list", "watch", "patch", "update", "delete"],
                    &["*"],
                    &["*"],
                ),
                events(),
            ],
        ),
        (
            "horizontal-pod-autoscaler",
            vec![
                r(
                    &["get", "list", "watch"],
                    &["autoscaling"],
                    &["horizontalpodautoscalers"],
                ),
                r(
                    &["update"],
                    &["autoscaling"],
                    &["horizontalpodautoscalers/status"],
                ),
                r(&["get", "update"], &["*"], &["*/scale"]),
                r(&["list"], &[""], &["pods"]),
                r(&["list"], &["metrics.k8s.io"], &["pods"]),
                r(&["get", "list"], &["custom.metrics.k8s.io"], &["*"]),
                r(&["get", "list"], &["external.metrics.k8s.io"], &["*"]),
                events(),
            ],
        ),
        (
            "job-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &["batch"],
                    &["jobs"],
                ),
                r(&["update"], &["batch"], &["jobs/status"]),
                r(&["update"], &["batch"], &["jobs/finalizers"]),
                r(
                    &["list", "watch", "create", "delete", "patch"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "namespace-controller",
            vec![
                r(&["get", "list", "watch", "delete"], &[""], &["namespaces"]),
                r(
                    &["update"],
                    &[""],
                    &["namespaces/finalize", "namespaces/status"],
                ),
                r(
                    &["get", "list", "delete", "deletecollection"],
                    &["*"],
                    &["*"],
                ),
            ],
        ),
        (
            "node-controller",
            vec![
                r(
                    &["get", "list", "update", "delete", "patch"],
                    &[""],
                    &["nodes"],
                ),
                r(&["patch", "update"], &[""], &["nodes/status"]),
                r(&["patch", "update"], &[""], &["pods/status"]),
                r(&["list", "delete"], &[""], &["pods"]),
                r(&["get"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "persistent-volume-binder",
            vec![
                r(
                    &["get", "list", "watch", "update", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(&["update"], &[""], &["persistentvolumes/status"]),
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                r(&["update"], &[""], &["persistentvolumeclaims/status"]),
                r(
                    &["list", "watch", "get", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                r(READ, &["storage.k8s.io"], &["storageclasses"]),
                r(
                    &["get", "create", "delete"],
                    &[""],
                    &["services", "endpoints"],
                ),
                r(&["get"], &[""], &["secrets"]),
                r(&["get", "list"], &[""], &["nodes"]),
                r(&["watch"], &[""], &["events"]),
                events(),
            ],
        ),
        (
            "pod-garbage-collector",
            vec![
                r(&["list", "watch", "delete"], &[""], &["pods"]),
                r(&["get", "list"], &[""], &["nodes"]),
                r(&["patch"], &[""], &["pods/status"]),
            ],
        ),
        (
            "replicaset-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &["apps", "extensions"],
                    &["replicasets"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/status"],
                ),
                r(
                    &["update"],
                    &["apps", "extensions"],
                    &["replicasets/finalizers"],
                ),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "replication-controller",
            vec![
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["replicationcontrollers"],
                ),
                r(&["update"], &[""], &["replicationcontrollers/status"]),
                r(&["update"], &[""], &["replicationcontrollers/finalizers"]),
                r(
                    &["list", "watch", "patch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "resourcequota-controller",
            vec![
                r(&["list", "watch"], &["*"], &["*"]),
                r(&["update"], &[""], &["resourcequotas/status"]),
                events(),
            ],
        ),
        (
            "route-controller",
            vec![
                r(&["list", "watch"], &[""], &["nodes"]),
                r(&["patch"], &[""], &["nodes/status"]),
                events(),
            ],
        ),
        (
            "service-account-controller",
            vec![r(&["create"], &[""], &["serviceaccounts"]), events()],
        ),
        (
            "service-controller",
            vec![
                r(READ, &[""], &["services"]),
                r(&["patch", "update"], &[""], &["services/status"]),
                r(&["list", "watch"], &[""], &["nodes"]),
                events(),
            ],
        ),
        (
            "statefulset-controller",
            vec![
                r(&["list", "watch"], &[""], &["pods"]),
                r(READ, &["apps"], &["statefulsets"]),
                r(&["update"], &["apps"], &["statefulsets/status"]),
                r(&["update"], &["apps"], &["statefulsets/finalizers"]),
                r(
                    &["get", "create", "delete", "update", "patch"],
                    &[""],
                    &["pods"],
                ),
                r(
                    &[
                        "get", "create", "delete", "update", "patch", "list", "watch",
                    ],
                    &["apps"],
                    &["controllerrevisions"],
                ),
                r(&["get", "create"], &[""], &["persistentvolumeclaims"]),
                r(&["update", "delete"], &[""], &["persistentvolumeclaims"]),
                events(),
            ],
        ),
        (
            "ttl-controller",
            vec![
                r(&["update", "patch", "list", "watch"], &[""], &["nodes"]),
                events(),
            ],
        ),
        (
            "certificate-controller",
            vec![
                r(
                    &["get", "list", "watch", "delete"],
                    &["certificates.k8s.io"],
                    &["certificatesigningrequests"],
                ),
                r(
                    &["update"],
                    &["certificates.k8s.io"],
                    &[
                        "certificatesigningrequests/status",
                        "certificatesigningrequests/approval",
                    ],
                ),
                named(
                    r(&["approve"], &["certificates.k8s.io"], &["signers"]),
                    &[
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/legacy-unknown",
                    ],
                ),
                named(
                    r(&["sign"], &["certificates.k8s.io"], &["signers"]),
                    &[
                        "kubernetes.io/kube-apiserver-client",
                        "kubernetes.io/kube-apiserver-client-kubelet",
                        "kubernetes.io/kubelet-serving",
                        "kubernetes.io/legacy-unknown",
                    ],
                ),
                r(
                    &["create"],
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                ),
                events(),
            ],
        ),
        // Rudder's volume protection drops its finalizer with a patch where upstream's
        // controller updates, so both roles also grant `patch`.
        (
            "pvc-protection-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                r(&["list", "watch", "get"], &[""], &["pods"]),
                events(),
            ],
        ),
        (
            "pv-protection-controller",
            vec![
                r(
                    &["get", "list", "watch", "update", "patch"],
                    &[""],
                    &["persistentvolumes"],
                ),
                events(),
            ],
        ),
        (
            "ttl-after-finished-controller",
            vec![
                r(&["get", "list", "watch", "delete"], &["batch"], &["jobs"]),
                events(),
            ],
        ),
        (
            "root-ca-cert-publisher",
            vec![r(&["create", "update"], &[""], &["configmaps"]), events()],
        ),
        (
            "legacy-service-account-token-cleaner",
            vec![
                named(
                    r(&["get"], &[""], &["configmaps"]),
                    &["kube-apiserver-legacy-service-account-token-tracking"],
                ),
                r(&["patch"], &[""], &["secrets"]),
                r(&["delete"], &[""], &["secrets"]),
            ],
        ),
        // Rudder's packaged controllers, after k3s's roles for its local-path provisioner and
        // service load balancer.
        (
            "local-path-provisioner",
            vec![
                r(
                    &["get", "list", "watch", "create"],
                    &["storage.k8s.io"],
                    &["storageclasses"],
                ),
                r(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["persistentvolumes"],
                ),
                r(
                    &["get", "list", "watch", "update"],
                    &[""],
                    &["persistentvolumeclaims"],
                ),
                r(READ, &[""], &["nodes"]),
                r(
                    &["get", "list", "watch", "create", "delete"],
                    &[""],
                    &["pods"],
                ),
                events(),
            ],
        ),
        (
            "service-lb-controller",
            vec![
                r(READ, &[""], &["services", "nodes", "pods"]),
                r(&["patch", "update"], &[""], &["services/status"]),
                events(),
            ],
        ),
        (
            "validatingadmissionpolicy-status-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies"],
                ),
                r(
                    &["get", "patch", "update"],
                    &["admissionregistration.k8s.io"],
                    &["validatingadmissionpolicies/status"],
                ),
            ],
        ),
        (
            "service-cidrs-controller",
            vec![
                r(
                    &["get", "list", "watch"],
                    &["networking.k8s.io"],
                    &["servicecidrs"],
                ),
                r(
                    &["patch", "update"],
                    &["networking.k8s.io"],
                    &["servicecidrs/finalizers"],
                ),
                r(
                    &["patch", "update"],
                    &["networking.k8s.io"],
                    &["servicecidrs/status"],
                ),
                r(
                    &["get", "list", "watch"],
                    &["networking.k8s.io"],
                    &["ipaddresses"],
                ),
                events(),
            ],
        ),
    ]
}

/// The ClusterRole name of a controller's service account, as upstream names them.
pub fn controller_role_name(sa: &str) -> String {
    format!("system:controller:{sa}")
}

fn controller_roles() -> Vec<Value> {
    controller_policies()
        .into_iter()
        .map(|(sa, rules)| cluster_role(&controller_role_name(sa), rules))
        .collect()
}

fn controller_role_bindings() -> Vec<Value> {
    controller_policies()
        .into_iter()
        .map(|(sa, _)| cluster_binding(&controller_role_name(sa), &[("ServiceAccount", sa)]))
        .collect()
}

/// The controller names with a bootstrap role (their kube-system service account names).
pub fn controller_service_accounts() -> Vec<&'static str> {
    controller_policies()
        .into_iter()
        .map(|(sa, _)| sa)
        .collect()
}

/// What start-up does with a bootstrap object that already exists.
#[derive(Debug, PartialEq)]
pub enum Reconcile {
    Unchanged,
    /// Write this (the existing object with what was missing added).
    Update(Value),
    /// The binding's roleRef differs and cannot be updated: delete and create it.
    Recreate,
}

fn merge_map(existing: &mut Value, expected: &Value, pointer: &str) {
    let Some(want) = expected.pointer(pointer).and_then(Value::as_object) else {
        return;
    };
    let (parent, key) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let Some(parent) = existing.pointer_mut(parent).and_then(Value::as_object_mut) else {
        return;
    };
    let target = parent.entry(key.to_string()).or_insert_with(|| json!({}));
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(t) = target.as_object_mut() {
        for (k, v) in want {
            t.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

fn union_list(existing: &mut Value, expected: &Value, key: &str) {
    let want = expected
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut have = existing
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for w in want {
        if !have.contains(&w) {
            have.push(w);
        }
    }
    if !have.is_empty() {
        existing[key] = Value::Array(have);
    }
}

/// Upstream's start-up reconciliation (`pkg/registry/rbac/reconciliation`): an object annotated
/// `rbac.authorization.kubernetes.io/autoupdate: "false"` is left alone; otherwise missing
/// labels, annotations, rules (or the aggregation rule) and subjects are added, and nothing a
/// cluster admin added is taken away.
pub fn reconcile(expected: &Value, existing: &Value) -> Reconcile {
    let autoupdate = existing
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str);
    if autoupdate == Some("false") {
        return Reconcile::Unchanged;
    }
    if expected.get("roleRef").is_some() && expected.get("roleRef") != existing.get("roleRef") {
        return Reconcile::Recreate;
    }
    let mut merged = existing.clone();
    merge_map(&mut merged, expected, "/metadata/labels");
    merge_map(&mut merged, expected, "/metadata/annotations");
    if expected.get("aggregationRule").is_some() {
        // The aggregation controller owns the rules of an aggregated role.
        if merged.get("aggregationRule") != expected.get("aggregationRule") {
            merged["aggregationRule"] = expected["aggregationRule"].clone();
        }
    } else if expected.get("rules").is_some() {
        let have: Vec<PolicyRule> = merged
            .get("rules")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let want: Vec<PolicyRule> = expected
            .get("rules")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let (covered, _) = super::covers(&have, &want);
        if !covered {
            let mut rules = have;
            for w in want {
                if !rules.contains(&w) {
                    rules.push(w);
                }
            }
            merged["rules"] = json!(rules);
        }
    }
    if expected.get("subjects").is_some() {
        union_list(&mut merged, expected, "subjects");
    }
    if &merged == existing {
        Reconcile::Unchanged
    } else {
        Reconcile::Update(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Attributes;
    use crate::rbac::{RbacIndex, RbacKind};
    use crate::user::UserInfo;

    fn loaded() -> RbacIndex {
        let idx = RbacIndex::new();
        for o in cluster_roles() {
            idx.apply(RbacKind::ClusterRole, &o);
        }
        for o in cluster_role_bindings() {
            idx.apply(RbacKind::ClusterRoleBinding, &o);
        }
        for o in roles() {
            idx.apply(RbacKind::Role, &o);
        }
        for o in role_bindings() {
            idx.apply(RbacKind::RoleBinding, &o);
        }
        idx
    }

    #[test]
    fn reconciliation_adds_and_keeps() {
        let expected = cluster_binding("system:discovery", &[("Group", "system:authenticated")]);
        let mut existing = expected.clone();
        assert_eq!(reconcile(&expected, &existing), Reconcile::Unchanged);
        existing["subjects"] = json!([{"kind": "User", "name": "extra"}]);
        match reconcile(&expected, &existing) {
            Reconcile::Update(v) => assert_eq!(v["subjects"].as_array().map(Vec::len), Some(2)),
            other => panic!("unexpected {other:?}"),
        }
        existing["metadata"]["annotations"][AUTOUPDATE] = json!("false");
        assert_eq!(reconcile(&expected, &existing), Reconcile::Unchanged);
        let mut moved = expected.clone();
        moved["roleRef"]["name"] = json!("other");
        assert_eq!(reconcile(&expected, &moved), Reconcile::Recreate);
        let role = cluster_role("r", vec![r(&["get"], &[""], &["pods"])]);
        let mut stale = role.clone();
        stale["rules"] = json!([]);
        stale["metadata"]["labels"] = json!({"mine": "yes"});
        match reconcile(&role, &stale) {
            Reconcile::Update(v) => {
                assert_eq!(v["rules"], role["rules"]);
                assert_eq!(v["metadata"]["labels"]["mine"], "yes");
                assert_eq!(
                    v["metadata"]["labels"][BOOTSTRAP_LABEL.0],
                    BOOTSTRAP_LABEL.1
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn policy_grants_as_upstream() {
        let idx = loaded();
        let user = UserInfo::new("alice").with_groups(["system:authenticated"]);
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(idx.allows(&user, &path("/apis/apps/v1")).0);
        assert!(idx.allows(&user, &path("/version")).0);
        assert!(!idx.allows(&user, &path("/metrics")).0);
        let ssar = Attributes {
            verb: "create".into(),
            api_group: "authorization.k8s.io".into(),
            resource: "selfsubjectaccessreviews".into(),
            resource_request: true,
            ..Default::default()
        };
        assert!(idx.allows(&user, &ssar).0);
        let sched = UserInfo::new("system:kube-scheduler");
        let bind = Attributes {
            verb: "create".into(),
            resource: "pods".into(),
            subresource: "binding".into(),
            namespace: "default".into(),
            name: "web".into(),
            resource_request: true,
            ..Default::default()
        };
        assert!(idx.allows(&sched, &bind).0);
        assert!(!idx.allows(&user, &bind).0);
        let names: Vec<String> = cluster_roles()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap_or("").to_string())
            .collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len(), "duplicate ClusterRole names");
    }
}
