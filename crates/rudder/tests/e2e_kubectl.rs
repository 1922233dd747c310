//! End to end: the real kubectl (v1.37) against a freshly started `rudder server`, on both the
//! embedded store and etcd, checking what kubectl prints.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use support::{Backend, Cluster};

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn basics(b: Backend) {
    let c = Cluster::start(b);
    let ns = c.ok(&["get", "ns"]);
    for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            ns.lines().any(|l| l.starts_with(n) && l.contains("Active")),
            "{n} missing or not Active:\n{ns}"
        );
    }
    assert!(lines(&ns)[0].starts_with("NAME") && lines(&ns)[0].contains("STATUS"));
    let v = c.ok(&["version"]);
    assert!(v.contains("Server Version: v1.37."), "{v}");
    let ar = c.ok(&["api-resources"]);
    assert!(
        ar.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "{ar}"
    );
    let cluster_scoped = c.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(cluster_scoped.lines().any(|l| l == "namespaces"));
    assert!(!cluster_scoped.lines().any(|l| l == "pods"));
    let versions = c.ok(&["api-versions"]);
    for gv in [
        "apps/v1",
        "batch/v1",
        "v1",
        "autoscaling/v2",
        "rbac.authorization.k8s.io/v1",
        "flowcontrol.apiserver.k8s.io/v1",
        "resource.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == gv),
            "{gv} missing:\n{versions}"
        );
    }
    // Upstream 1.37 no longer serves the betas the 1.26 capture had.
    for gv in [
        "flowcontrol.apiserver.k8s.io/v1beta3",
        "storage.k8s.io/v1beta1",
    ] {
        assert!(
            !versions.lines().any(|l| l == gv),
            "{gv} served:\n{versions}"
        );
    }
    assert!(
        ar.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == [
                "ipaddresses",
                "ip",
                "networking.k8s.io/v1",
                "false",
                "IPAddress"
            ]),
        "{ar}"
    );
    // `kubectl auth whoami` (SelfSubjectReview) as the admin the kubeconfig holds.
    let who = c.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert!(!who.is_empty(), "{who}");
    let table = c.ok(&["auth", "whoami"]);
    assert!(
        table.contains("Username") && table.contains(&who),
        "{table}"
    );
    // A TokenReview of a bogus token: not authenticated, nothing stored.
    let review = c.ok_stdin(
        &["create", "-o", "json", "-f", "-"],
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"nope"}}"#,
    );
    assert!(!review.contains("\"authenticated\": true"), "{review}");
    assert_eq!(c.ok(&["get", "--raw", "/livez"]), "ok");
    assert_eq!(c.ok(&["get", "--raw", "/healthz"]), "ok");
    let verbose = c.ok(&["get", "--raw", "/readyz?verbose"]);
    assert!(
        verbose.contains("[+]etcd ok") && verbose.ends_with("readyz check passed\n"),
        "{verbose}"
    );
}

fn create_get_and_output_formats(b: Backend) {
    // This test counts and deletes every ConfigMap of whole namespaces; the root-CA publisher
    // would keep (re)creating kube-root-ca.crt among them, as it does upstream.
    let c = Cluster::start_with(b, &["--controllers", "*,-root-ca-cert-publisher"]);
    assert_eq!(
        c.ok(&[
            "create",
            "configmap",
            "app-config",
            "--from-literal=mode=prod"
        ]),
        "configmap/app-config created\n"
    );
    let table = c.ok(&["get", "configmaps"]);
    let header: Vec<_> = lines(&table)[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "DATA", "AGE"]);
    assert!(table
        .lines()
        .any(|l| l.starts_with("app-config") && l.split_whitespace().nth(1) == Some("1")));
    let yaml = c.ok(&["get", "cm", "app-config", "-o", "yaml"]);
    assert!(
        yaml.contains("mode: prod") && yaml.contains("resourceVersion:") && yaml.contains("uid:")
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "cm", "app-config", "-o", "json"])).unwrap();
    assert_eq!(json["data"]["mode"], "prod");
    assert_eq!(json["metadata"]["namespace"], "default");
    assert_eq!(
        c.ok(&["get", "cm", "app-config", "-o", "name"]),
        "configmap/app-config\n"
    );
    assert_eq!(
        c.ok(&["get", "cm", "app-config", "-o", "jsonpath={.data.mode}"]),
        "prod"
    );
    let cc = c.ok(&[
        "get",
        "cm",
        "-o",
        "custom-columns=N:.metadata.name,M:.data.mode",
    ]);
    assert!(
        cc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["app-config", "prod"]),
        "{cc}"
    );
    // Labels: --show-labels, -L, -l.
    c.ok(&["label", "cm", "app-config", "tier=backend"]);
    c.ok(&["create", "configmap", "other"]);
    let shown = c.ok(&["get", "cm", "--show-labels"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("app-config") && l.ends_with("tier=backend")),
        "{shown}"
    );
    let col = c.ok(&["get", "cm", "-L", "tier"]);
    assert!(lines(&col)[0].ends_with("TIER"));
    assert_eq!(
        c.ok(&["get", "cm", "-l", "tier=backend", "-o", "name"]),
        "configmap/app-config\n"
    );
    assert_eq!(
        c.ok(&["get", "cm", "-l", "tier!=backend", "-o", "name"]),
        "configmap/other\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "--field-selector",
            "metadata.name=other",
            "-o",
            "name"
        ]),
        "configmap/other\n"
    );
    // Across namespaces, and in pages of one.
    c.ok(&["create", "namespace", "team-a"]);
    c.ok(&["create", "configmap", "a1", "-n", "team-a"]);
    let all = c.ok(&["get", "cm", "-A"]);
    assert!(lines(&all)[0].starts_with("NAMESPACE"));
    assert!(
        all.lines()
            .any(|l| l.starts_with("team-a") && l.contains("a1")),
        "{all}"
    );
    // Pages of one give what one list gives (the server's own ConfigMaps included).
    let paged = c.ok(&["get", "cm", "-A", "--chunk-size=1", "-o", "name"]);
    let whole = c.ok(&["get", "cm", "-A", "-o", "name"]);
    assert_eq!(paged, whole);
    assert!(paged.lines().count() >= 3, "{paged}");
    // Annotate, then delete by name, by selector and --all.
    c.ok(&["annotate", "cm", "other", "note=hello"]);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "other",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ]),
        "hello"
    );
    c.ok(&["delete", "cm", "-l", "tier=backend"]);
    assert!(c.fails(&["get", "cm", "app-config"]).contains("NotFound"));
    c.ok(&["delete", "cm", "--all", "-n", "team-a"]);
    assert_eq!(c.ok(&["get", "cm", "-n", "team-a", "-o", "name"]), "");
    let gone = c.ok(&["delete", "cm", "other"]);
    assert!(gone.contains("configmap \"other\" deleted"), "{gone}");
}

fn typed_creates_send_protobuf(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
    ]);
    let d = c.ok(&["get", "deploy", "web", "-o", "wide"]);
    let header: Vec<_> = lines(&d)[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        lines(&d)[1].contains("nginx:1.27") && lines(&d)[1].contains("app=web"),
        "{d}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "1"
    );
    c.ok(&[
        "create",
        "secret",
        "generic",
        "s1",
        "--from-literal=password=hunter2",
    ]);
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"]),
        "aHVudGVyMg=="
    );
    c.ok(&["create", "serviceaccount", "robot"]);
    c.ok(&["create", "job", "once", "--image=busybox"]);
    c.ok(&["create", "role", "reader", "--verb=get", "--resource=pods"]);
    c.ok(&["create", "namespace", "made-by-protobuf"]);
    assert!(c.ok(&["get", "ns", "made-by-protobuf"]).contains("Active"));
    // scale goes through the scale subresource.
    assert_eq!(
        c.ok(&["scale", "deploy", "web", "--replicas=5"]),
        "deployment.apps/web scaled\n"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
}

fn errors_print_as_upstream(b: Backend) {
    let c = Cluster::start(b);
    assert_eq!(
        c.fails(&["get", "cm", "nope"]),
        "Error from server (NotFound): configmaps \"nope\" not found\n"
    );
    c.ok(&["create", "configmap", "dup"]);
    assert_eq!(
        c.fails(&["create", "configmap", "dup"]),
        "error: failed to create configmap: configmaps \"dup\" already exists\n"
    );
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n";
    let r = c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], manifest);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("The ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{}",
        r.stderr
    );
    // A stale resourceVersion is a conflict.
    let rv = c.ok(&[
        "get",
        "cm",
        "dup",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    c.ok(&["label", "cm", "dup", "a=b"]);
    let stale = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n  resourceVersion: \"{rv}\"\ndata:\n  x: z\n");
    let r = c.kubectl_stdin(&["replace", "--validate=false", "-f", "-"], &stale);
    assert!(
        r.stderr.contains("Operation cannot be fulfilled on configmaps \"dup\": the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        r.stderr
    );
    // A field selector on a field the kind cannot be selected by.
    assert_eq!(
        c.fails(&["get", "cm", "--field-selector", "spec.foo=x"]),
        "Error from server (BadRequest): Unable to find \"/v1, Resource=configmaps\" that match label selector \"\", field selector \"spec.foo=x\": \"spec.foo\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"\n"
    );
    // No credentials, or a bad token: 401.
    let bad = c.dir.path().join("bad.kubeconfig");
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let token_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap();
    std::fs::write(
        &bad,
        text.replace(token_line, "    token: not-a-real-token"),
    )
    .unwrap();
    let r = c
        .command(&["get", "ns"])
        .env("KUBECONFIG", &bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("error: You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );
    // Health and version need no credentials.
    let r = c
        .command(&["get", "--raw", "/version"])
        .env("KUBECONFIG", &bad)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

fn watch_and_wait(b: Backend) {
    let c = Cluster::start(b);
    c.wait_root_ca_published();
    c.ok(&["create", "configmap", "w0"]);
    let mut watcher = c
        .command(&["get", "cm", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The initial list, in name order: the root-CA publisher's ConfigMap, then ours.
    for want in ["configmap/kube-root-ca.crt", "configmap/w0"] {
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), want);
    }
    c.ok(&["create", "configmap", "w1"]);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "configmap/w1"
    );
    c.ok(&["delete", "configmap", "w1"]);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        "configmap/w1"
    );
    let _ = watcher.kill();
    let _ = watcher.wait();
    // wait uses the WatchList protocol.
    c.ok(&["label", "cm", "w0", "ready=yes"]);
    let out = c.ok(&[
        "wait",
        "--for=jsonpath={.metadata.labels.ready}=yes",
        "cm/w0",
        "--timeout=10s",
    ]);
    assert_eq!(out, "configmap/w0 condition met\n");
    let waiter = c
        .command(&["wait", "--for=delete", "cm/w0", "--timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.ok(&["delete", "cm", "w0", "--wait=false"]);
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // delete waits (WatchList) until the object is gone.
    c.ok(&["create", "configmap", "w2"]);
    let out = c.ok(&["delete", "cm", "w2", "--wait=true", "--timeout=10s"]);
    assert!(out.contains("deleted"), "{out}");
}

fn state_survives_restart(b: Backend) {
    let mut c = Cluster::start(b);
    c.ok(&["create", "namespace", "keep"]);
    c.ok(&[
        "create",
        "configmap",
        "kept",
        "-n",
        "keep",
        "--from-literal=a=b",
    ]);
    let rv = c.ok(&[
        "get",
        "cm",
        "kept",
        "-n",
        "keep",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    let kubeconfig = std::fs::read_to_string(&c.kubeconfig).unwrap();
    c.restart();
    // Same credentials and CA, same objects, same resourceVersions.
    assert_eq!(std::fs::read_to_string(&c.kubeconfig).unwrap(), kubeconfig);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "kept",
            "-n",
            "keep",
            "-o",
            "jsonpath={.data.a}"
        ]),
        "b"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "kept",
            "-n",
            "keep",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );
    assert_eq!(c.ok(&["get", "ns", "-o", "name"]).lines().count(), 5);
}

fn defaulting_validation_and_graceful_pods(b: Backend) {
    // API-server behaviour only: no controller may add pods or status behind the test's back.
    let c = Cluster::start_with(b, &["--disable-controllers"]);
    c.ok(&["run", "web", "--image=nginx:1.27"]);
    let pod: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "pod", "web", "-o", "json"])).unwrap();
    let spec = &pod["spec"];
    assert_eq!(spec["securityContext"], serde_json::json!({}));
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["serviceAccountName"], "default");
    let ctr = &spec["containers"][0];
    assert_eq!(ctr["imagePullPolicy"], "IfNotPresent");
    assert_eq!(ctr["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(ctr["terminationMessagePolicy"], "File");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    let table = c.ok(&["get", "pods"]);
    let header: Vec<_> = lines(&table)[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(
        lines(&table)[1].contains("0/1") && lines(&table)[1].contains("Pending"),
        "{table}"
    );
    // Deployment defaults.
    c.ok(&["create", "deployment", "d", "--image=busybox"]);
    let d: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "d", "-o", "json"])).unwrap();
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
        "Always"
    );
    // Validation: one cause per bad field, as kubectl prints them.
    let bad = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bad"},"spec":{"containers":[{"name":"c"}],"restartPolicy":"Sometimes"}}"#;
    let r = c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], bad);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("The Pod \"bad\" is invalid: "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("spec.containers[0].image: Required value"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("spec.restartPolicy: Unsupported value: \"Sometimes\""),
        "{}",
        r.stderr
    );
    // A field selector pods support.
    assert_eq!(
        c.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Pending",
            "-o",
            "name"
        ]),
        "pod/web\n"
    );
    // Binding a pod to a node, then a graceful delete: it stays Terminating until grace 0.
    let binding = r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web"},"target":{"apiVersion":"v1","kind":"Node","name":"node-1"}}"#;
    c.ok_stdin(&["create", "--validate=false", "-f", "-"], binding);
    assert_eq!(
        c.ok(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]),
        "node-1"
    );
    let wide = c.ok(&["get", "pod", "web", "-o", "wide"]);
    assert!(lines(&wide)[1].contains("node-1"), "{wide}");
    c.ok(&["delete", "pod", "web", "--wait=false"]);
    let status = c.ok(&["get", "pod", "web"]);
    assert!(status.contains("Terminating"), "{status}");
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.metadata.deletionGracePeriodSeconds}"
        ]),
        "30"
    );
    c.ok(&["delete", "pod", "web", "--grace-period=0", "--force"]);
    assert!(c.fails(&["get", "pod", "web"]).contains("NotFound"));
    // An unscheduled pod goes at once.
    c.ok(&["run", "quick", "--image=busybox"]);
    c.ok(&["delete", "pod", "quick", "--wait=false"]);
    assert!(c.fails(&["get", "pod", "quick"]).contains("NotFound"));
}

fn credentials_conditions_and_namespaces(b: Backend) {
    let tokens = tempfile::tempdir().unwrap();
    let token_file = tokens.path().join("tokens.csv");
    std::fs::write(&token_file, "s3cret-token,bob,1001,\"devs,ops\"\n").unwrap();
    // API-server behaviour only: the test writes Deployment status itself.
    let c = Cluster::start_with(
        b,
        &[
            "--disable-controllers",
            "--token-auth-file",
            token_file.to_str().unwrap(),
        ],
    );
    let ca = std::fs::read_to_string(c.dir.path().join("data/server/tls/ca.crt")).unwrap();
    // Both users below are in group devs, which RBAC lets read namespaces.
    c.ok(&[
        "create",
        "clusterrole",
        "ns-reader",
        "--verb=get",
        "--resource=namespaces",
    ]);
    c.ok(&[
        "create",
        "clusterrolebinding",
        "devs-read-ns",
        "--clusterrole=ns-reader",
        "--group=devs",
    ]);
    support::wait_for("devs may read namespaces", || {
        (c.ok(&[
            "auth",
            "can-i",
            "get",
            "namespaces",
            "--as=x",
            "--as-group=devs",
        ]) == "yes\n")
            .then_some(())
    });
    // A static token from --token-auth-file.
    let bob = c.dir.path().join("bob.kubeconfig");
    rudder_pki::write_kubeconfig(
        &bob,
        &rudder_pki::KubeconfigSpec::new(c.url(), ca.clone()).with_token("s3cret-token"),
    )
    .unwrap();
    let r = c
        .command(&["get", "ns", "default", "-o", "name"])
        .env("KUBECONFIG", &bob)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "namespace/default\n",
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // A client certificate signed by the cluster CA.
    let pki = rudder_pki::ClusterPki::load_or_create(
        &c.dir.path().join("data/server/tls"),
        rudder_pki::PkiOptions::default(),
    )
    .unwrap();
    let (cert, key) = pki
        .issue_client_cert("alice", &["devs"], std::time::Duration::from_secs(3600))
        .unwrap();
    let alice = c.dir.path().join("alice.kubeconfig");
    rudder_pki::write_kubeconfig(
        &alice,
        &rudder_pki::KubeconfigSpec::new(c.url(), ca).with_client_cert(cert, key),
    )
    .unwrap();
    let r = c
        .command(&["get", "ns", "kube-system", "-o", "name"])
        .env("KUBECONFIG", &alice)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "namespace/kube-system\n",
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // wait --for=condition on a status condition set through the status subresource.
    c.ok(&["create", "deployment", "ready", "--image=busybox"]);
    c.ok(&["patch", "deploy", "ready", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"conditions":[{"type":"Available","status":"True","reason":"MinimumReplicasAvailable"}]}}"#]);
    assert_eq!(
        c.ok(&[
            "wait",
            "--for=condition=Available",
            "deploy/ready",
            "--timeout=10s"
        ]),
        "deployment.apps/ready condition met\n"
    );
    // A resourceVersion inside a patch body is a precondition.
    let err = c.fails(&[
        "patch",
        "deploy",
        "ready",
        "--type=merge",
        "-p",
        r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}"#,
    ]);
    assert!(
        err.contains("Operation cannot be fulfilled on deployments.apps \"ready\""),
        "{err}"
    );
    // A deleted namespace is Terminating (held here by a finalizer of its own, which the
    // namespace controller leaves alone) and takes no new content.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\nspec: {finalizers: [example.com/hold]}\n",
    );
    c.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let ns = c.ok(&["get", "ns", "doomed"]);
    assert!(ns.contains("Terminating"), "{ns}");
    let err = c.fails(&["create", "configmap", "late", "-n", "doomed"]);
    assert!(err.contains("because it is being terminated"), "{err}");
    let err = c.fails(&["create", "configmap", "nowhere", "-n", "missing"]);
    assert!(err.contains("namespaces \"missing\" not found"), "{err}");
}

/// What kubectl does not show: gzip of large responses, /metrics, deletecollection.
fn raw_http(b: Backend) {
    let c = Cluster::start(b);
    c.wait_root_ca_published();
    let token = c.admin_token();
    let curl = |args: &[&str]| -> String {
        let out = c.curl(args);
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let auth = format!("Authorization: Bearer {token}");
    let big = "x".repeat(60 * 1024);
    for i in 0..3 {
        c.ok(&[
            "create",
            "configmap",
            &format!("big{i}"),
            &format!("--from-literal=k={big}"),
        ]);
        c.ok(&["label", "configmap", &format!("big{i}"), "big=yes"]);
    }
    // Over 128 KiB: gzip when asked for.
    let headers = curl(&[
        "--compressed",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &auth,
        &format!("{}/api/v1/namespaces/default/configmaps", c.url()),
    ]);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-encoding: gzip"),
        "{headers}"
    );
    let body = curl(&[
        "--compressed",
        "-H",
        &auth,
        &format!("{}/api/v1/namespaces/default/configmaps", c.url()),
    ]);
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "ConfigMapList");
    // The three, and the root-CA publisher's kube-root-ca.crt.
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    // Small responses are not compressed.
    let headers = curl(&[
        "--compressed",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &auth,
        &format!("{}/api/v1/namespaces/default", c.url()),
    ]);
    assert!(headers.contains(" 200"), "{headers}");
    assert!(
        !headers.to_ascii_lowercase().contains("content-encoding"),
        "{headers}"
    );
    // Metrics count requests (credentials needed: see e2e_compat_http).
    let metrics = curl(&["-H", &auth, &format!("{}/metrics", c.url())]);
    assert!(metrics.contains("apiserver_request_total{"), "{metrics}");
    assert!(
        metrics.contains("process_resident_memory_bytes"),
        "{metrics}"
    );
    // deletecollection with a label selector.
    let status = curl(&[
        "-X",
        "DELETE",
        "-H",
        &auth,
        &format!(
            "{}/api/v1/namespaces/default/configmaps?labelSelector=big%3Dyes",
            c.url()
        ),
    ]);
    let deleted: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(deleted["items"].as_array().unwrap().len(), 3, "{status}");
    assert_eq!(c.ok(&["get", "cm", "-l", "big=yes", "-o", "name"]), "");
    // No credentials: 401 Status.
    let unauth = curl(&[&format!("{}/api/v1/namespaces", c.url())]);
    let st: serde_json::Value = serde_json::from_str(&unauth).unwrap();
    assert_eq!(
        (st["code"].as_i64(), st["reason"].as_str()),
        (Some(401), Some("Unauthorized"))
    );
}

fn field_validation(b: Backend) {
    let c = Cluster::start(b);
    let auth = format!("Authorization: Bearer {}", c.admin_token());
    let post = |query: &str, body: &str| -> (String, String) {
        let url = format!("{}/api/v1/namespaces/default/configmaps?{query}", c.url());
        let out = c.curl(&[
            "-D",
            "/dev/stderr",
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "-X",
            "POST",
            "--data",
            body,
            &url,
        ]);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let manifest = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","bogus":1}},"data":{{"a":"b"}},"spec":{{"foo":"bar"}}}}"#
        )
    };
    // Strict: 400 with upstream's message, nothing stored.
    let (body, _) = post("fieldValidation=Strict", &manifest("strict"));
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["code"], 400);
    assert_eq!(
        st["message"],
        r#"strict decoding error: unknown field "metadata.bogus", unknown field "spec""#
    );
    assert!(c.fails(&["get", "cm", "strict"]).contains("NotFound"));
    // Warn (also the default): created, with Warning headers.
    let (_, headers) = post("fieldValidation=Warn", &manifest("warned"));
    assert!(
        headers.contains(r#"warning: 299 - "unknown field \"metadata.bogus\"""#),
        "{headers}"
    );
    let (_, headers) = post("", &manifest("defaulted"));
    assert!(
        headers.contains(r#"warning: 299 - "unknown field \"spec\"""#),
        "{headers}"
    );
    // Ignore: silently dropped, never stored.
    let (_, headers) = post("fieldValidation=Ignore", &manifest("ignored"));
    assert!(!headers.contains("warning"), "{headers}");
    let json = c.ok(&["get", "cm", "ignored", "-o", "json"]);
    assert!(
        !json.contains("bogus") && !json.contains("\"spec\""),
        "{json}"
    );
    // kubectl prints the warnings of a patch.
    let r = c.kubectl(&[
        "patch",
        "cm",
        "ignored",
        "--type=merge",
        "-p",
        r#"{"spec":{"x":1}}"#,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(r#"Warning: unknown field "spec""#),
        "{}",
        r.stderr
    );
    // A key given twice: rejected under Strict, a warning otherwise (the last value wins).
    let dup = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup1"},"data":{"a":"1","a":"2"}}"#;
    let (body, _) = post("fieldValidation=Strict", dup);
    assert!(
        body.contains(r#"strict decoding error: duplicate field \"data.a\""#),
        "{body}"
    );
    let (_, headers) = post("fieldValidation=Warn", dup);
    assert!(
        headers.contains(r#"warning: 299 - "duplicate field \"data.a\"""#),
        "{headers}"
    );
    assert_eq!(
        c.ok(&["get", "cm", "dup1", "-o", "jsonpath={.data.a}"]),
        "2"
    );
    // An invalid value of the parameter.
    let (body, _) = post("fieldValidation=Loose", &manifest("loose"));
    assert!(body.contains("\"code\": 400"), "{body}");
}

fn server_dry_run(b: Backend) {
    let c = Cluster::start(b);
    let out = c.ok(&[
        "create",
        "configmap",
        "ghost",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert_eq!(out, "configmap/ghost created (server dry run)\n");
    assert!(c.fails(&["get", "cm", "ghost"]).contains("NotFound"));
    // Validation still runs.
    let err = c.fails(&["create", "configmap", "Bad_Name", "--dry-run=server"]);
    assert!(err.contains("Invalid value: \"Bad_Name\""), "{err}");
    c.ok(&["create", "configmap", "real"]);
    let rv = c.ok(&[
        "get",
        "cm",
        "real",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    c.ok(&["label", "cm", "real", "x=y", "--dry-run=server"]);
    c.ok(&["delete", "cm", "real", "--dry-run=server"]);
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "real",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );
    assert_eq!(
        c.ok(&["get", "cm", "real", "-o", "jsonpath={.metadata.labels}"]),
        ""
    );
    // Services allocate nothing on a dry run: the same IP is free afterwards.
    let svc = c.ok(&[
        "create",
        "service",
        "clusterip",
        "dry",
        "--tcp=80:80",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert!(svc.starts_with("10.43."), "{svc}");
    assert!(c.fails(&["get", "svc", "dry"]).contains("NotFound"));
}

fn auth_can_i(b: Backend) {
    let c = Cluster::start(b);
    // The admin (system:masters, bound to cluster-admin) may do anything; the reviews ask the
    // authorizer.
    assert_eq!(c.ok(&["auth", "can-i", "create", "pods"]), "yes\n");
    assert_eq!(
        c.ok(&["auth", "can-i", "delete", "nodes", "--all-namespaces"]),
        "yes\n"
    );
    let list = c.ok(&["auth", "can-i", "--list"]);
    assert!(list.lines().any(|l| l.starts_with("*.*")), "{list}");
    // Nothing is stored.
    let raw = c.kubectl_stdin(
        &["create", "--validate=false", "-f", "-", "-o", "json"],
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}}"#,
    );
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    let v: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    // bob has no binding.
    assert_eq!(v["status"]["allowed"], false);
    let raw = c.kubectl_stdin(
        &["create", "--validate=false", "-f", "-", "-o", "json"],
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"root","groups":["system:masters"],"resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}}"#,
    );
    let v: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    assert_eq!(v["status"]["allowed"], true);
}

fn strategic_merge_patches(b: Backend) {
    let c = Cluster::start(b);
    let deploy = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"two"},"spec":{"selector":{"matchLabels":{"app":"two"}},"template":{"metadata":{"labels":{"app":"two"}},"spec":{"containers":[{"name":"web","image":"nginx:1","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]},{"name":"side","image":"busybox:1"}]}}}}"#;
    c.ok_stdin(&["create", "--validate=false", "-f", "-"], deploy);
    // kubectl patch defaults to strategic merge: containers merge by name, env by name.
    c.ok(&["patch", "deploy", "two", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2","env":[{"name":"B","value":"3"}]}]}}}}"#]);
    let images = c.ok(&[
        "get",
        "deploy",
        "two",
        "-o",
        "jsonpath={.spec.template.spec.containers[*].image}",
    ]);
    assert_eq!(images, "nginx:2 busybox:1");
    let env = c.ok(&[
        "get",
        "deploy",
        "two",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].value}",
    ]);
    assert_eq!(env, "1 3");
    // $patch: delete removes one container.
    c.ok(&[
        "patch",
        "deploy",
        "two",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","$patch":"delete"}]}}}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "two",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}"
        ]),
        "web"
    );
    // set image (SMP with $setElementOrder) and rollout pause/resume (null deletes).
    c.ok(&["set", "image", "deploy/two", "web=nginx:3"]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "two",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "nginx:3"
    );
    c.ok(&["rollout", "pause", "deploy/two"]);
    assert_eq!(
        c.ok(&["get", "deploy", "two", "-o", "jsonpath={.spec.paused}"]),
        "true"
    );
    c.ok(&["rollout", "resume", "deploy/two"]);
    assert_eq!(
        c.ok(&["get", "deploy", "two", "-o", "jsonpath={.spec.paused}"]),
        ""
    );
    // --type=json and --type=merge still work; merge replaces the container list whole.
    c.ok(&[
        "patch",
        "deploy",
        "two",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    assert_eq!(
        c.ok(&["get", "deploy", "two", "-o", "jsonpath={.spec.replicas}"]),
        "4"
    );
    c.ok(&[
        "patch",
        "deploy",
        "two",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"only","image":"x:1"}]}}}}"#,
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "two",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}"
        ]),
        "only"
    );
}

on_both_backends!(
    strategic_merge_patches,
    auth_can_i,
    server_dry_run,
    field_validation,
    raw_http,
    credentials_conditions_and_namespaces,
    defaulting_validation_and_graceful_pods,
    state_survives_restart,
    basics,
    create_get_and_output_formats,
    typed_creates_send_protobuf,
    errors_print_as_upstream,
    watch_and_wait,
);
