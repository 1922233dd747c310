//! Client-side `kubectl apply`, `diff`, `edit`, `replace` and friends against `rudder server`
//! on both backends: the paths most users take (they need OpenAPI v3 and strategic merge).

mod support;

use support::{Backend, Cluster};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const DEPLOY_V1: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: prod
        - name: DEBUG
          value: "false"
"#;

fn apply_cycles(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    let f = write(&dir, "deploy.yaml", DEPLOY_V1);
    assert_eq!(c.ok(&["apply", "-f", &f]), "deployment.apps/web created\n");
    let annotation = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        r"jsonpath={.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}",
    ]);
    assert!(annotation.contains("\"replicas\":2"), "{annotation}");
    // Re-applying unchanged writes nothing.
    let rv = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(
        c.ok(&["apply", "-f", &f]),
        "deployment.apps/web unchanged\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}"
        ]),
        rv
    );
    // Change a field and remove another (the DEBUG env var): a three-way merge.
    let v2 = DEPLOY_V1
        .replace("replicas: 2", "replicas: 3")
        .replace("nginx:1.27", "nginx:1.28")
        .replace("        - name: DEBUG\n          value: \"false\"\n", "");
    write(&dir, "deploy.yaml", &v2);
    // diff shows exactly the pending change, exit code 1.
    let d = c.kubectl(&["diff", "-f", &f]);
    assert_eq!(d.code, 1, "{}", d.stderr);
    assert!(
        d.stdout.contains("-  replicas: 2") && d.stdout.contains("+  replicas: 3"),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("-        - name: DEBUG"), "{}", d.stdout);
    assert_eq!(
        c.ok(&["apply", "-f", &f]),
        "deployment.apps/web configured\n"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env[*].name}"
        ]),
        "MODE"
    );
    // A change made by someone else to a field apply never set survives the next apply.
    c.ok(&["label", "deploy", "web", "owner=ops"]);
    assert_eq!(
        c.ok(&["apply", "-f", &f]),
        "deployment.apps/web unchanged\n"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.labels.owner}"
        ]),
        "ops"
    );
    // No pending change: diff exits 0 and prints nothing.
    let d = c.kubectl(&["diff", "-f", &f]);
    assert_eq!((d.code, d.stdout.as_str()), (0, ""), "{}", d.stderr);
    // Server-side dry run leaves nothing behind.
    write(
        &dir,
        "deploy.yaml",
        &v2.replace("replicas: 3", "replicas: 9"),
    );
    assert_eq!(
        c.ok(&["apply", "-f", &f, "--dry-run=server"]),
        "deployment.apps/web configured (server dry run)\n"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
}

fn apply_cycles_services_and_configmaps(b: Backend) {
    let c = Cluster::start(b);
    let svc = |ports: &str, labels: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n  labels:\n{labels}spec:\n  selector:\n    app: api\n  ports:\n{ports}")
    };
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n{data}")
    };
    let s = write(
        c.dir.path(),
        "svc.yaml",
        &svc(
            "  - name: http\n    port: 80\n    targetPort: 8080\n",
            "    tier: web\n    team: a\n",
        ),
    );
    let m = write(c.dir.path(), "cm.yaml", &cm("  a: \"1\"\n  b: \"2\"\n"));
    assert_eq!(c.ok(&["apply", "-f", &s]), "service/api created\n");
    assert_eq!(c.ok(&["apply", "-f", &m]), "configmap/settings created\n");
    let ip = c.ok(&["get", "svc", "api", "-o", "jsonpath={.spec.clusterIP}"]);
    // Change a port, add one, drop a label; change one key and drop another.
    write(c.dir.path(), "svc.yaml", &svc("  - name: http\n    port: 8000\n    targetPort: 8080\n  - name: metrics\n    port: 9090\n", "    tier: web\n"));
    write(c.dir.path(), "cm.yaml", &cm("  a: \"10\"\n"));
    assert_eq!(c.ok(&["apply", "-f", &s]), "service/api configured\n");
    assert_eq!(
        c.ok(&["apply", "-f", &m]),
        "configmap/settings configured\n"
    );
    assert_eq!(
        c.ok(&["get", "svc", "api", "-o", "jsonpath={.spec.ports[*].port}"]),
        "8000 9090"
    );
    assert_eq!(
        c.ok(&["get", "svc", "api", "-o", "jsonpath={.metadata.labels}"]),
        r#"{"tier":"web"}"#
    );
    assert_eq!(
        c.ok(&["get", "svc", "api", "-o", "jsonpath={.spec.clusterIP}"]),
        ip
    );
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data}"]),
        r#"{"a":"10"}"#
    );
    assert_eq!(c.ok(&["apply", "-f", &s]), "service/api unchanged\n");
    assert_eq!(c.ok(&["apply", "-f", &m]), "configmap/settings unchanged\n");
}

fn multi_documents_directories_and_prune(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().join("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    write(
        &dir,
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    set: demo\ndata:\n  k: \"1\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels:\n    set: demo\ndata:\n  k: \"2\"\n",
    );
    write(
        &dir,
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: front\n  labels:\n    set: demo\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 8080\n",
    );
    let out = c.ok(&["apply", "-f", dir.to_str().unwrap()]);
    for line in [
        "configmap/a created",
        "configmap/b created",
        "service/front created",
    ] {
        assert!(out.contains(line), "{out}");
    }
    let ip = c.ok(&["get", "svc", "front", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "{ip}");
    // Re-applying the service keeps its allocated IP.
    assert!(c
        .ok(&["apply", "-f", dir.to_str().unwrap()])
        .contains("service/front unchanged"));
    assert_eq!(
        c.ok(&["get", "svc", "front", "-o", "jsonpath={.spec.clusterIP}"]),
        ip
    );
    // Remove b from the manifests: --prune with the label selector deletes it.
    write(
        &dir,
        "a.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels:\n    set: demo\ndata:\n  k: \"1\"\n",
    );
    let out = c.ok(&[
        "apply",
        "-f",
        dir.to_str().unwrap(),
        "--prune",
        "-l",
        "set=demo",
    ]);
    assert!(out.contains("configmap/b pruned"), "{out}");
    assert!(c.fails(&["get", "cm", "b"]).contains("NotFound"));
    assert_eq!(c.ok(&["get", "cm", "a", "-o", "jsonpath={.data.k}"]), "1");
    // create -f of a multi-document file (validated against OpenAPI, no --validate=false).
    let multi = write(
        c.dir.path(),
        "multi.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m2\n",
    );
    let out = c.ok(&["create", "-f", &multi]);
    assert_eq!(out, "configmap/m1 created\nconfigmap/m2 created\n");
}

fn replace_edit_and_strict_validation(b: Backend) {
    let c = Cluster::start(b);
    let f = write(
        c.dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  level: low\n",
    );
    c.ok(&["create", "-f", &f]);
    write(
        c.dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\ndata:\n  level: high\n",
    );
    assert_eq!(c.ok(&["replace", "-f", &f]), "configmap/conf replaced\n");
    assert_eq!(
        c.ok(&["get", "cm", "conf", "-o", "jsonpath={.data.level}"]),
        "high"
    );
    // edit with a scripted editor.
    let out = c
        .command(&["edit", "cm", "conf"])
        .env("KUBE_EDITOR", "sed -i s/level:\\ high/level:\\ max/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "configmap/conf edited\n"
    );
    assert_eq!(
        c.ok(&["get", "cm", "conf", "-o", "jsonpath={.data.level}"]),
        "max"
    );
    // An unknown field: rejected under Strict (kubectl's default), warned under Warn.
    let bad = write(
        c.dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndata:\n  a: b\nspec:\n  foo: bar\n",
    );
    let err = c.fails(&["create", "-f", &bad]);
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec""#),
        "{err}"
    );
    let r = c.kubectl(&["create", "-f", &bad, "--validate=warn"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(r#"Warning: unknown field "spec""#),
        "{}",
        r.stderr
    );
    // explain reads the served OpenAPI.
    let ex = c.ok(&["explain", "deployment.spec.replicas"]);
    assert!(ex.contains("FIELD: replicas <integer>"), "{ex}");
}

on_both_backends!(
    apply_cycles_services_and_configmaps,
    server_side_apply,
    apply_cycles,
    multi_documents_directories_and_prune,
    replace_edit_and_strict_validation,
);

/// The README's quick start: the shipped example applies cleanly.
#[test]
fn readme_example_applies() {
    let c = Cluster::start(Backend::Redb);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/web.yaml");
    let out = c.ok(&["apply", "-f", example]);
    assert_eq!(
        out,
        "deployment.apps/web created\nservice/web created\nconfigmap/web-settings created\n"
    );
    let listed = c.ok(&["get", "deploy,svc,cm", "-o", "name"]);
    for name in [
        "deployment.apps/web",
        "service/web",
        "configmap/web-settings",
    ] {
        assert!(listed.lines().any(|l| l == name), "{listed}");
    }
    assert!(c
        .ok(&["apply", "-f", example])
        .contains("deployment.apps/web unchanged"));
}

fn server_side_apply(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    let cm = |data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels:\n    team: a\ndata:\n{data}")
    };
    let f = write(&dir, "ssa.yaml", &cm("  x: \"1\"\n  y: \"2\"\n"));
    // Create on apply, with managedFields for the manager.
    assert_eq!(
        c.ok(&["apply", "--server-side", "-f", &f]),
        "configmap/ssa serverside-applied\n"
    );
    let mf = c.ok(&[
        "get",
        "cm",
        "ssa",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
    ]);
    assert_eq!(mf, "kubectl Apply");
    // A second manager applying a different value for x conflicts...
    let other = write(
        &dir,
        "other.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: \"9\"\n",
    );
    let err = c.fails(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &other,
    ]);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.x"),
        "{err}"
    );
    assert_eq!(c.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.x}"]), "1");
    // ...until it forces, taking ownership.
    c.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ]);
    assert_eq!(c.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.x}"]), "9");
    // The first manager stops applying y: it is removed (nobody else owns it). It stops
    // applying x too, but x now belongs to "other" and stays.
    write(&dir, "ssa.yaml", &cm("  z: \"3\"\n"));
    c.ok(&["apply", "--server-side", "-f", &f]);
    let data = c.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data}"]);
    let data: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data, serde_json::json!({"x": "9", "z": "3"}));
    // Non-apply writes are tracked too: kubectl create records an Update by kubectl-create,
    // and an apply that changes its field conflicts with it.
    c.ok(&["create", "configmap", "mixed", "--from-literal=k=v"]);
    let mf = c.ok(&["get", "cm", "mixed", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation} {.metadata.managedFields[0].fieldsV1}"]);
    assert!(
        mf.starts_with("kubectl-create Update {\"f:data\":{\".\":{},\"f:k\":{}}}"),
        "{mf}"
    );
    let mixed = write(
        &dir,
        "mixed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mixed\ndata:\n  k: other\n",
    );
    let err = c.fails(&["apply", "--server-side", "-f", &mixed]);
    assert!(err.contains("conflict with \"kubectl-create\""), "{err}");
    // An apply patch without a field manager is refused, as upstream.
    let url = format!("{}/api/v1/namespaces/default/configmaps/ssa", c.url());
    let out = c.curl(&[
        "-X",
        "PATCH",
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        "-H",
        "Content-Type: application/apply-patch+yaml",
        "--data",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"}}"#,
        &url,
    ]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["code"], 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value: is required for apply patch"),
        "{st}"
    );
    // Server-side diff and dry run.
    write(&dir, "ssa.yaml", &cm("  z: \"4\"\n"));
    let d = c.kubectl(&["diff", "--server-side", "-f", &f]);
    assert_eq!(d.code, 1, "{}", d.stderr);
    assert!(d.stdout.contains("+  z: \"4\""), "{}", d.stdout);
    c.ok(&["apply", "--server-side", "--dry-run=server", "-f", &f]);
    assert_eq!(c.ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.z}"]), "3");
}
