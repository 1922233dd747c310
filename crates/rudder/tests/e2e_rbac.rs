//! End to end: RBAC with the real kubectl. Users from a token file get what their bindings
//! grant and upstream's 403 messages otherwise; the bootstrap policy, aggregation, escalation
//! checks, impersonation (`--as`), `auth can-i` and `auth reconcile`.

mod support;

use std::path::PathBuf;

use support::{wait_for, Backend, Cluster, Run};

struct Users {
    c: Cluster,
    _dir: tempfile::TempDir,
}

impl Users {
    fn start(extra: &[&str]) -> Users {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, "alice-token,alice,1001,devs\nbob-token,bob,1002\n").unwrap();
        let mut args = vec!["--token-auth-file", tokens.to_str().unwrap()];
        args.extend_from_slice(extra);
        let c = Cluster::start_with(Backend::Redb, &args);
        let ca = std::fs::read_to_string(c.dir.path().join("data/server/tls/ca.crt")).unwrap();
        for user in ["alice", "bob"] {
            rudder_pki::write_kubeconfig(
                &kubeconfig(&c, user),
                &rudder_pki::KubeconfigSpec::new(c.url(), ca.clone())
                    .with_token(format!("{user}-token")),
            )
            .unwrap();
        }
        Users { c, _dir: dir }
    }

    fn run(&self, user: &str, args: &[&str]) -> Run {
        self.c
            .command(args)
            .env("KUBECONFIG", kubeconfig(&self.c, user))
            .output()
            .unwrap()
            .into()
    }

    fn ok(&self, user: &str, args: &[&str]) -> String {
        let r = self.run(user, args);
        assert_eq!(r.code, 0, "{user}: kubectl {args:?}: {}", r.stderr);
        r.stdout
    }

    fn forbidden(&self, user: &str, args: &[&str]) -> String {
        let r = self.run(user, args);
        assert_ne!(
            r.code, 0,
            "{user}: kubectl {args:?} should fail: {}",
            r.stdout
        );
        assert!(
            r.stderr.contains("Forbidden") || r.stderr.contains("forbidden"),
            "{user}: kubectl {args:?}: {}",
            r.stderr
        );
        r.stderr
    }

    /// Waits until `kubectl auth can-i` (as the admin, for `user`) answers `want`: bindings
    /// reach the authorizer through the watch cache, aggregated rules through a controller.
    fn wait_can(&self, user: &str, args: &[&str], want: bool) {
        let mut full = vec!["auth", "can-i"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--as", user]);
        wait_for(&format!("{user} can-i {args:?} = {want}"), || {
            let r = self.c.kubectl(&full);
            (r.stdout.trim() == if want { "yes" } else { "no" }).then_some(())
        });
    }
}

fn kubeconfig(c: &Cluster, user: &str) -> PathBuf {
    c.dir.path().join(format!("{user}.kubeconfig"))
}

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
    )
}

#[test]
fn users_get_what_their_bindings_grant() {
    let u = Users::start(&[]);
    let c = &u.c;
    // The bootstrap policy is there, labelled and annotated as upstream's.
    let admin = c.ok(&["get", "clusterrole", "cluster-admin", "-o", "yaml"]);
    assert!(
        admin.contains("kubernetes.io/bootstrapping: rbac-defaults"),
        "{admin}"
    );
    assert!(
        admin.contains("rbac.authorization.kubernetes.io/autoupdate: \"true\""),
        "{admin}"
    );
    for name in [
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "cluster-admin",
    ] {
        c.ok(&["get", "clusterrolebinding", name]);
    }
    // Users without bindings may discover and ask about themselves, nothing more.
    assert_eq!(
        u.ok(
            "alice",
            &[
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}"
            ]
        ),
        "alice"
    );
    let err = u.forbidden("alice", &["get", "pods"]);
    assert!(
        err.contains(r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    let err = u.forbidden("alice", &["get", "nodes"]);
    assert!(
        err.contains(r#"nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope"#),
        "{err}"
    );

    // `view` in default: get, not delete.
    wait_for("the default service account", || {
        (c.kubectl(&["get", "sa", "default"]).code == 0).then_some(())
    });
    c.ok_stdin(&["apply", "-f", "-"], &pod("web"));
    c.ok(&[
        "create",
        "rolebinding",
        "alice-view",
        "--clusterrole=view",
        "--user=alice",
    ]);
    u.wait_can("alice", &["get", "pods"], true);
    assert_eq!(
        u.ok("alice", &["get", "pod", "web", "-o", "name"]),
        "pod/web\n"
    );
    let err = u.forbidden("alice", &["delete", "pod", "web"]);
    assert!(
        err.contains(r#"Error from server (Forbidden): pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "default""#),
        "{err}"
    );
    let err = u.forbidden("alice", &["get", "pods", "-n", "kube-system"]);
    assert!(err.contains(r#"in the namespace "kube-system""#), "{err}");
    // view does not read secrets.
    u.forbidden("alice", &["get", "secrets"]);

    // A custom ClusterRole limited to one ConfigMap by name.
    c.ok(&["create", "configmap", "allowed", "--from-literal=k=v"]);
    c.ok(&["create", "configmap", "other", "--from-literal=k=v"]);
    c.ok(&[
        "create",
        "clusterrole",
        "cm-reader",
        "--verb=get",
        "--resource=configmaps",
        "--resource-name=allowed",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "bob-cm",
        "--clusterrole=cm-reader",
        "--user=bob",
    ]);
    u.wait_can("bob", &["get", "configmap/allowed"], true);
    assert_eq!(
        u.ok("bob", &["get", "cm", "allowed", "-o", "jsonpath={.data.k}"]),
        "v"
    );
    let err = u.forbidden("bob", &["get", "cm", "other"]);
    assert!(
        err.contains(r#"configmaps "other" is forbidden: User "bob" cannot get resource "configmaps" in API group "" in the namespace "default""#),
        "{err}"
    );
    u.forbidden("bob", &["get", "cm"]);

    // auth can-i as upstream answers it, for oneself and (as the admin) for others.
    let r = u.run("alice", &["auth", "can-i", "delete", "pods"]);
    assert_eq!((r.code, r.stdout.trim()), (1, "no"));
    assert_eq!(
        u.ok("alice", &["auth", "can-i", "list", "pods"]).trim(),
        "yes"
    );
    let list = u.ok("alice", &["auth", "can-i", "--list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list watch]")),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    let list = u.ok("bob", &["auth", "can-i", "--list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("configmaps ") && l.contains("[allowed]")),
        "{list}"
    );
    assert_eq!(
        c.ok(&["auth", "can-i", "get", "pods", "--as", "alice"])
            .trim(),
        "yes"
    );
    assert_eq!(
        c.kubectl(&["auth", "can-i", "get", "secrets", "--as", "alice"])
            .stdout
            .trim(),
        "no"
    );
}

#[test]
fn escalation_impersonation_reconcile_and_aggregation() {
    let u = Users::start(&[]);
    let c = &u.c;
    // alice administers namespace default.
    c.ok(&[
        "create",
        "rolebinding",
        "alice-admin",
        "--clusterrole=admin",
        "--user=alice",
    ]);
    u.wait_can("alice", &["create", "roles"], true);
    // Granting what one holds is fine; more is refused with upstream's message.
    u.ok(
        "alice",
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
        ],
    );
    let err = u.forbidden(
        "alice",
        &[
            "create",
            "role",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
        ],
    );
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "alice" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#)
            && err.contains(r#"{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}"#),
        "{err}"
    );
    u.ok(
        "alice",
        &[
            "create",
            "rolebinding",
            "bob-reads",
            "--role=pod-reader",
            "--user=bob",
        ],
    );
    let err = u.forbidden(
        "alice",
        &[
            "create",
            "rolebinding",
            "bob-root",
            "--clusterrole=cluster-admin",
            "--user=bob",
        ],
    );
    assert!(
        err.contains(
            r#"rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "alice""#
        ),
        "{err}"
    );
    // `bind` on a role lets one bind it without holding it.
    c.ok(&[
        "create",
        "clusterrole",
        "secret-admin",
        "--verb=*",
        "--resource=secrets",
    ]);
    c.ok(&[
        "create",
        "clusterrole",
        "binder",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=secret-admin",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "alice-binder",
        "--clusterrole=binder",
        "--user=alice",
    ]);
    u.wait_can("alice", &["bind", "clusterroles/secret-admin"], true);
    u.ok(
        "alice",
        &[
            "create",
            "rolebinding",
            "bob-secrets",
            "--clusterrole=secret-admin",
            "--user=bob",
        ],
    );

    // Impersonation: the admin may act as anyone, alice may not.
    u.wait_can("bob", &["get", "pods"], true);
    assert_eq!(c.ok(&["get", "pods", "--as", "bob", "-o", "name"]), "");
    let err = c.fails(&["get", "nodes", "--as", "bob"]);
    assert!(
        err.contains(r#"User "bob" cannot list resource "nodes""#),
        "{err}"
    );
    assert_eq!(
        c.ok(&[
            "auth",
            "whoami",
            "--as",
            "carol",
            "--as-group",
            "ops",
            "-o",
            "jsonpath={.status.userInfo.groups}"
        ]),
        r#"["ops","system:authenticated"]"#
    );
    let err = u.forbidden("alice", &["get", "pods", "--as", "bob"]);
    assert!(
        err.contains(r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{err}"
    );
    // ... unless granted the impersonate verb.
    c.ok(&[
        "create",
        "clusterrole",
        "impersonate-bob",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=bob",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "alice-impersonates",
        "--clusterrole=impersonate-bob",
        "--user=alice",
    ]);
    u.wait_can("alice", &["impersonate", "users/bob"], true);
    assert_eq!(
        u.ok(
            "alice",
            &[
                "auth",
                "whoami",
                "--as",
                "bob",
                "-o",
                "jsonpath={.status.userInfo.username}"
            ]
        ),
        "bob"
    );

    // auth reconcile creates and extends roles and bindings with the normal verbs.
    let policy = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: cm-writer\n  namespace: default\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [create, get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: cm-writer\n  namespace: default\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: cm-writer\nsubjects:\n- kind: User\n  name: bob\n  apiGroup: rbac.authorization.k8s.io\n";
    let out = c.ok_stdin(&["auth", "reconcile", "-f", "-"], policy);
    assert!(
        out.contains("role.rbac.authorization.k8s.io/cm-writer reconciled"),
        "{out}"
    );
    u.wait_can("bob", &["create", "configmaps"], true);
    u.ok("bob", &["create", "configmap", "by-bob"]);

    // Aggregation: a ClusterRole labelled aggregate-to-view adds its rules to view (and so to
    // edit and admin).
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widget-viewer\n  labels:\n    rbac.authorization.k8s.io/aggregate-to-view: \"true\"\nrules:\n- apiGroups: [example.com]\n  resources: [widgets]\n  verbs: [get, list]\n",
    );
    for role in ["view", "edit", "admin"] {
        wait_for(&format!("{role} aggregates widgets"), || {
            c.ok(&[
                "get",
                "clusterrole",
                role,
                "-o",
                "jsonpath={.rules[*].resources}",
            ])
            .contains("widgets")
            .then_some(())
        });
    }
    // The components worked under RBAC without being refused.
    let log = c.server_log();
    assert!(
        !log.contains("is forbidden: User \"system:"),
        "a component was refused:\n{log}"
    );
}

/// A kubeconfig with a client certificate for `system:node:<name>`, as an agent's.
fn node_kubeconfig(c: &Cluster, name: &str) -> PathBuf {
    let pki = rudder_pki::ClusterPki::load_or_create(
        &c.dir.path().join("data/server/tls"),
        rudder_pki::PkiOptions::default(),
    )
    .unwrap();
    let (cert, key) = pki
        .issue_client_cert(
            &format!("system:node:{name}"),
            &["system:nodes"],
            std::time::Duration::from_secs(3600),
        )
        .unwrap();
    let ca = std::fs::read_to_string(c.dir.path().join("data/server/tls/ca.crt")).unwrap();
    let path = c.dir.path().join(format!("{name}.kubeconfig"));
    rudder_pki::write_kubeconfig(
        &path,
        &rudder_pki::KubeconfigSpec::new(c.url(), ca).with_client_cert(cert, key),
    )
    .unwrap();
    path
}

#[test]
fn nodes_touch_only_their_own_objects() {
    let c = Cluster::start(Backend::Redb);
    for n in ["n1", "n2"] {
        c.ok_stdin(
            &["create", "-f", "-"],
            &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {n}\n"),
        );
    }
    c.ok(&["create", "secret", "generic", "s1", "--from-literal=k=v"]);
    c.ok(&["create", "configmap", "c1", "--from-literal=k=v"]);
    wait_for("the default service account", || {
        (c.kubectl(&["get", "sa", "default"]).code == 0).then_some(())
    });
    c.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: on-n1\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: busybox\n    envFrom:\n    - configMapRef:\n        name: c1\n  volumes:\n  - name: s\n    secret:\n      secretName: s1\n",
    );
    let (n1, n2) = (node_kubeconfig(&c, "n1"), node_kubeconfig(&c, "n2"));
    let as_node = |kc: &PathBuf, args: &[&str]| -> Run {
        c.command(args)
            .env("KUBECONFIG", kc)
            .output()
            .unwrap()
            .into()
    };
    // The pod's node reads what the pod uses; another node does not.
    wait_for("n1 reads its pod's secret", || {
        (as_node(&n1, &["get", "secret", "s1", "-o", "name"]).stdout == "secret/s1\n").then_some(())
    });
    assert_eq!(
        as_node(&n1, &["get", "cm", "c1", "-o", "name"]).stdout,
        "configmap/c1\n"
    );
    let r = as_node(&n2, &["get", "secret", "s1"]);
    assert!(
        r.stderr.contains(r#"secrets "s1" is forbidden: User "system:node:n2" cannot get resource "secrets" in API group "" in the namespace "default": no relationship found between node 'n2' and this object"#),
        "{}",
        r.stderr
    );
    assert_ne!(as_node(&n2, &["get", "cm", "c1"]).code, 0);
    // No node lists secrets.
    assert!(as_node(&n1, &["get", "secrets"])
        .stderr
        .contains("forbidden"));
    // Nodes read pods and nodes, write only their own Node.
    assert_eq!(
        as_node(&n2, &["get", "pod", "on-n1", "-o", "name"]).stdout,
        "pod/on-n1\n"
    );
    as_node(&n1, &["label", "node", "n1", "example.com/ok=yes"]);
    assert_eq!(
        c.ok(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.metadata.labels.example\\.com/ok}"
        ]),
        "yes"
    );
    let r = as_node(&n1, &["label", "node", "n2", "example.com/ok=yes"]);
    assert!(
        r.stderr
            .contains(r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#),
        "{}",
        r.stderr
    );
    let r = as_node(
        &n1,
        &[
            "label",
            "node",
            "n1",
            "node-restriction.kubernetes.io/trusted=yes",
        ],
    );
    assert!(
        r.stderr.contains(r#"nodes "n1" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/trusted"#),
        "{}",
        r.stderr
    );
    // Pods: a node deletes only pods bound to it and creates only mirror pods.
    let r = as_node(&n2, &["delete", "pod", "on-n1"]);
    assert!(
        r.stderr.contains(r#"pods "on-n1" is forbidden: node "n2" can only delete pods with spec.nodeName set to itself"#),
        "{}",
        r.stderr
    );
    let r = c
        .command(&["create", "-f", "-"])
        .env("KUBECONFIG", &n1)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(pod("sneaky").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains(r#"pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods"#),
        "{err}"
    );
    // A mirror pod bound to itself and owned by its Node is fine.
    let uid = c.ok(&["get", "node", "n1", "-o", "jsonpath={.metadata.uid}"]);
    let mirror = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-n1\n  annotations:\n    kubernetes.io/config.mirror: abc\n  ownerReferences:\n  - apiVersion: v1\n    kind: Node\n    name: n1\n    uid: {uid}\n    controller: true\nspec:\n  nodeName: n1\n  automountServiceAccountToken: false\n  containers:\n  - name: c\n    image: busybox\n"
    );
    let r = c
        .command(&["create", "-f", "-"])
        .env("KUBECONFIG", &n1)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(mirror.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Evictions: a node evicts only pods bound to it.
    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"on-n1","namespace":"default"}}"#;
    let evict = |kc: &PathBuf| -> Run {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("eviction.json");
        std::fs::write(&body, eviction).unwrap();
        as_node(
            kc,
            &[
                "create",
                "--raw",
                "/api/v1/namespaces/default/pods/on-n1/eviction",
                "-f",
                body.to_str().unwrap(),
            ],
        )
    };
    let r = evict(&n2);
    assert!(
        r.stderr
            .contains("node n2 can only evict pods with spec.nodeName set to itself"),
        "{}",
        r.stderr
    );
    // Tokens: a node's token requests are bound to a pod of its own (a pod on n2 gives n2 a
    // relationship with the service account, so NodeRestriction is what refuses).
    c.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: on-n2\nspec:\n  nodeName: n2\n  containers:\n  - name: c\n    image: busybox\n",
    );
    let pod_uid = c.ok(&["get", "pod", "on-n1", "-o", "jsonpath={.metadata.uid}"]);
    let token = |kc: &PathBuf, bound: &[&str]| -> Run {
        let mut args = vec!["create", "token", "default"];
        args.extend_from_slice(bound);
        as_node(kc, &args)
    };
    let bound = [
        "--bound-object-kind=Pod",
        "--bound-object-name=on-n1",
        &format!("--bound-object-uid={pod_uid}"),
    ];
    let r = wait_for("n1 gets a token bound to its pod", || {
        let r = token(&n1, &bound);
        (r.code == 0).then_some(r)
    });
    assert!(r.stdout.starts_with("ey"), "{}", r.stdout);
    let r = wait_for("n2's relationship with the service account", || {
        let r = token(&n2, &bound);
        (!r.stderr.contains("no relationship found")).then_some(r)
    });
    assert!(
        r.stderr
            .contains("node requested token bound to a pod scheduled on a different node"),
        "{}",
        r.stderr
    );
    let r = token(&n1, &[]);
    assert!(
        r.stderr.contains("node requested token not bound to a pod"),
        "{}",
        r.stderr
    );
    let r = token(
        &n1,
        &[
            "--bound-object-kind=Pod",
            "--bound-object-name=on-n1",
            "--bound-object-uid=not-its-uid",
        ],
    );
    assert!(
        r.stderr.contains(
            "the UID in the bound object reference (not-its-uid) does not match the UID in record"
        ),
        "{}",
        r.stderr
    );
    let r = evict(&n1);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Moving on: once the pod is gone, its node loses the secret.
    c.ok(&["delete", "pod", "on-n1", "--grace-period=0", "--force"]);
    wait_for("n1 loses the secret", || {
        (as_node(&n1, &["get", "secret", "s1"]).code != 0).then_some(())
    });
}
