//! End to end: the garbage collector and the namespace controller in `rudder server`, driven by
//! the real kubectl on both store backends — cascading deletes of a ReplicaSet (background,
//! foreground, orphan), ConfigMaps owned by hand-written ownerReferences, dangling owners, and
//! `kubectl delete namespace` with contents.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Cluster};

/// Like `support::wait_for`, with room for a namespace's requeue estimate.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rs(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    )
}

/// Every pod labelled app=`app` (including ones being deleted).
fn pods(c: &Cluster, app: &str) -> Vec<String> {
    c.ok(&["get", "pods", "-l", &format!("app={app}"), "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn start_rs(c: &Cluster, name: &str) {
    c.ok_stdin(&["apply", "-f", "-"], &rs(name));
    wait_for("2 pods", || (pods(c, name).len() == 2).then_some(()));
}

fn replicaset_cascades(b: Backend) {
    let c = Cluster::start(b);
    // Background: the ReplicaSet goes at once, the collector deletes its pods.
    start_rs(&c, "bg");
    c.ok(&["delete", "rs", "bg", "--cascade=background"]);
    wait_for("bg pods collected", || {
        pods(&c, "bg").is_empty().then_some(())
    });

    // Foreground: the owner waits on its blocking dependents, so by the time kubectl has seen
    // it disappear its pods are gone already.
    start_rs(&c, "fg");
    c.ok(&[
        "delete",
        "rs",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]);
    assert!(pods(&c, "fg").is_empty(), "{:?}", pods(&c, "fg"));
    c.fails(&["get", "rs", "fg"]);

    // Orphan: the pods stay, without their ownerReferences.
    start_rs(&c, "or");
    c.ok(&["delete", "rs", "or", "--cascade=orphan", "--timeout=60s"]);
    c.fails(&["get", "rs", "or"]);
    wait_for("orphaned pods released", || {
        let refs = c.ok(&[
            "get",
            "pods",
            "-l",
            "app=or",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences}",
        ]);
        refs.trim().is_empty().then_some(())
    });
    // Still two pods, and no ReplicaSet recreates or deletes them.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(pods(&c, "or").len(), 2);
}

fn configmap_owned_by_hand(uid: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: owner\n    uid: {uid}\ndata: {{k: v}}\n"
    )
}

fn owned_configmaps_and_dangling_owners(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "configmap", "owner", "--from-literal=a=b"]);
    let uid = c.ok(&["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"]);
    c.ok_stdin(&["apply", "-f", "-"], &configmap_owned_by_hand(&uid, "dep"));
    // The live owner keeps its dependent.
    std::thread::sleep(Duration::from_secs(2));
    c.ok(&["get", "cm", "dep"]);
    c.ok(&["delete", "cm", "owner"]);
    wait_for("dependent collected", || {
        (c.kubectl(&["get", "cm", "dep"]).code != 0).then_some(())
    });

    // An owner that never existed: the reference dangles and the dependent is collected.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &configmap_owned_by_hand("6f1e8f5e-0000-4000-8000-000000000001", "ghostly"),
    );
    wait_for("dangling dependent collected", || {
        (c.kubectl(&["get", "cm", "ghostly"]).code != 0).then_some(())
    });

    // A same-name owner with another UID is not the owner: the dependent still goes.
    c.ok(&["create", "configmap", "owner", "--from-literal=a=b"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &configmap_owned_by_hand("6f1e8f5e-0000-4000-8000-000000000002", "stale"),
    );
    wait_for("stale dependent collected", || {
        (c.kubectl(&["get", "cm", "stale"]).code != 0).then_some(())
    });
    c.ok(&["get", "cm", "owner"]);
}

fn deleting_a_namespace_deletes_its_contents(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "namespace", "doomed"]);
    c.ok(&["-n", "doomed", "run", "p1", "--image=busybox"]);
    c.ok(&["-n", "doomed", "run", "p2", "--image=busybox"]);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "configmap",
        "cfg",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "-n",
        "doomed",
        "create",
        "secret",
        "generic",
        "s",
        "--from-literal=a=b",
    ]);
    c.ok(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let err = c.fails(&["get", "ns", "doomed"]);
    assert!(err.contains("namespaces \"doomed\" not found"), "{err}");
    // Its contents went with it.
    let left = c.ok(&[
        "get",
        "pods,configmaps,secrets",
        "-n",
        "doomed",
        "-o",
        "name",
    ]);
    assert!(left.trim().is_empty(), "{left}");

    // Content held by a finalizer: the namespace waits, saying why in upstream's words.
    c.ok(&["create", "namespace", "held"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: held, finalizers: [example.com/hold]}\n",
    );
    c.ok(&["delete", "namespace", "held", "--wait=false"]);
    let conditions = |c: &Cluster| {
        c.ok(&[
            "get",
            "ns",
            "held",
            "-o",
            "jsonpath={range .status.conditions[*]}{.type}={.status}:{.reason}:{.message}{\"\\n\"}{end}",
        ])
    };
    let conds = wait_for("content-remaining conditions", || {
        let s = conditions(&c);
        s.contains("NamespaceFinalizersRemaining=True").then_some(s)
    });
    for want in [
        "NamespaceDeletionDiscoveryFailure=False:ResourcesDiscovered:All resources successfully discovered",
        "NamespaceDeletionContentFailure=False:ContentDeleted:All content successfully deleted, may be waiting on finalization",
        "NamespaceContentRemaining=True:SomeResourcesRemain:Some resources are remaining: configmaps. has 1 resource instances",
        "NamespaceFinalizersRemaining=True:SomeFinalizersRemain:Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
    ] {
        assert!(conds.contains(want), "{want} not in {conds}");
    }
    assert!(c.ok(&["get", "ns", "held"]).contains("Terminating"));
    // The finalizer released: the namespace finishes (within upstream's 15 s requeue).
    c.ok(&[
        "-n",
        "held",
        "patch",
        "cm",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for("held namespace gone", || {
        (c.kubectl(&["get", "ns", "held"]).code != 0).then_some(())
    });
}

fn a_foreign_namespace_finalizer_holds_until_finalized(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kept}\nspec: {finalizers: [example.com/hold]}\n",
    );
    c.ok(&["-n", "kept", "create", "configmap", "cfg"]);
    c.ok(&["delete", "namespace", "kept", "--wait=false"]);
    // The controller empties it and drops only its own finalizer.
    wait_for("kubernetes finalizer removed", || {
        let f = c.ok(&["get", "ns", "kept", "-o", "jsonpath={.spec.finalizers}"]);
        (f == r#"["example.com/hold"]"#).then_some(())
    });
    assert_eq!(
        c.ok(&["get", "ns", "kept", "-o", "jsonpath={.status.phase}"]),
        "Terminating"
    );
    assert!(c
        .ok(&["-n", "kept", "get", "cm", "-o", "name"])
        .trim()
        .is_empty());
    // The finalize subresource, as a user clears a stuck namespace: the namespace is deleted.
    let body = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"kept"},"spec":{"finalizers":[]}}"#;
    let out = c.ok_stdin(
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/kept/finalize",
            "-f",
            "-",
        ],
        body,
    );
    assert!(out.contains("\"name\":\"kept\""), "{out}");
    let err = c.fails(&["get", "ns", "kept"]);
    assert!(err.contains("namespaces \"kept\" not found"), "{err}");
}

fn owner_scope_rules(b: Backend) {
    let c = Cluster::start(b);
    // A namespaced dependent of a cluster-scoped owner is collected with it.
    c.ok(&[
        "create",
        "clusterrole",
        "boss",
        "--verb=get",
        "--resource=pods",
    ]);
    let boss = c.ok(&[
        "get",
        "clusterrole",
        "boss",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: minion\n  ownerReferences:\n  - {{apiVersion: rbac.authorization.k8s.io/v1, kind: ClusterRole, name: boss, uid: {boss}}}\n"),
    );
    std::thread::sleep(Duration::from_secs(2));
    c.ok(&["get", "cm", "minion"]);
    c.ok(&["delete", "clusterrole", "boss"]);
    wait_for("namespaced dependent collected", || {
        (c.kubectl(&["get", "cm", "minion"]).code != 0).then_some(())
    });

    // A cluster-scoped dependent of a namespaced owner is invalid: upstream's warning, and the
    // dependent is never deleted for it.
    c.ok(&["create", "configmap", "owner"]);
    let owner = c.ok(&["get", "cm", "owner", "-o", "jsonpath={.metadata.uid}"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: odd\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {owner}}}\nrules: []\n"),
    );
    let want = format!(
        "ownerRef [v1/ConfigMap, namespace: , name: owner, uid: {owner}] does not exist in namespace \"\""
    );
    wait_for("OwnerRefInvalidNamespace event", || {
        let ev = c.ok(&[
            "get",
            "events",
            "-n",
            "default",
            "-o",
            "jsonpath={range .items[*]}{.type} {.reason} {.involvedObject.kind}/{.involvedObject.name}: {.message}{\"\\n\"}{end}",
        ]);
        ev.contains(&format!(
            "Warning OwnerRefInvalidNamespace ClusterRole/odd: {want}"
        ))
        .then_some(())
    });
    c.ok(&["delete", "cm", "owner"]);
    std::thread::sleep(Duration::from_secs(3));
    c.ok(&["get", "clusterrole", "odd"]);
}

on_both_backends!(
    a_foreign_namespace_finalizer_holds_until_finalized,
    owner_scope_rules,
    replicaset_cascades,
    owned_configmaps_and_dangling_owners,
    deleting_a_namespace_deletes_its_contents
);
