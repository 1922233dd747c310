//! The shape of a real operator chart, installed with Helm v4 on a cluster with a node: a CRD
//! (printer columns, status subresource, defaults, a CEL rule) under `crds/`, RBAC (a service
//! account with a cluster role, and a role aggregated into `view`), the operator's Deployment
//! serving its admission webhooks over HTTPS (the host's python3 run in the test busybox image,
//! its certificate from a Secret the chart makes), a Service in front of it, and the webhook
//! configurations naming that Service.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use support::node::{
    host_python_mounts, host_python_volumes, host_with_registry, python_json_server, IMAGE,
};
use support::tlsserver::Certificates;
use support::Cluster;

fn helm_bin() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return PathBuf::from(h);
    }
    match support::kubectl_bin().parent() {
        Some(dir) if dir.join("helm").exists() => dir.join("helm"),
        _ => PathBuf::from("helm"),
    }
}

fn helm(c: &Cluster, args: &[&str]) -> String {
    let out = Command::new(helm_bin())
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HELM_CACHE_HOME", c.dir.path().join("helm/cache"))
        .env("HELM_CONFIG_HOME", c.dir.path().join("helm/config"))
        .env("HELM_DATA_HOME", c.dir.path().join("helm/data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.rudder.dev
spec:
  group: demo.rudder.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Mode, type: string, jsonPath: .spec.mode}
    - {name: Ready, type: boolean, jsonPath: .status.ready}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - {rule: "self.size <= 10", message: "size must be at most 10"}
            properties:
              size: {type: integer, minimum: 1}
              mode: {type: string, enum: [fast, safe], default: safe}
          status:
            type: object
            properties:
              ready: {type: boolean}
"#;

const TEMPLATES: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-operator
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-operator
rules:
- apiGroups: [demo.rudder.dev]
  resources: [widgets]
  verbs: [get, list, watch]
- apiGroups: [demo.rudder.dev]
  resources: [widgets/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ .Release.Name }}-operator
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {{ .Release.Name }}-operator}
subjects:
- {kind: ServiceAccount, name: {{ .Release.Name }}-operator, namespace: {{ .Release.Namespace }}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-widget-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [demo.rudder.dev]
  resources: [widgets]
  verbs: [get, list, watch]
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-webhook-tls
type: kubernetes.io/tls
data:
  tls.crt: {{ .Values.tls.crt }}
  tls.key: {{ .Values.tls.key }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-webhook
data:
  webhook.py: |
{{ .Files.Get "files/webhook.py" | indent 4 }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-operator
spec:
  replicas: 1
  selector: {matchLabels: {app: {{ .Release.Name }}-operator}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}-operator}}
    spec:
      serviceAccountName: {{ .Release.Name }}-operator
      containers:
      - name: operator
        image: {{ .Values.image }}
        command: [/usr/bin/python3, /webhook/webhook.py]
        ports: [{name: https, containerPort: 8443}]
        readinessProbe:
          tcpSocket: {port: 8443}
          periodSeconds: 1
        volumeMounts:
__HOST_PYTHON_MOUNTS__        - {name: code, mountPath: /webhook}
        - {name: tls, mountPath: /tls}
      volumes:
__HOST_PYTHON_VOLUMES__      - {name: code, configMap: {name: {{ .Release.Name }}-webhook}}
      - {name: tls, secret: {secretName: {{ .Release.Name }}-webhook-tls}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-webhook
spec:
  selector: {app: {{ .Release.Name }}-operator}
  ports: [{name: https, port: 443, targetPort: https}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-widgets
webhooks:
- name: label.widgets.demo.rudder.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {namespace: {{ .Release.Namespace }}, name: {{ .Release.Name }}-webhook, path: /mutate}
    caBundle: {{ .Values.caBundle }}
  rules:
  - {apiGroups: [demo.rudder.dev], apiVersions: [v1], operations: [CREATE], resources: [widgets]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ .Release.Name }}-widgets
webhooks:
- name: deny.widgets.demo.rudder.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {namespace: {{ .Release.Namespace }}, name: {{ .Release.Name }}-webhook, path: /validate}
    caBundle: {{ .Values.caBundle }}
  rules:
  - {apiGroups: [demo.rudder.dev], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [widgets]}
"#;

/// `kubectl apply -f -` that must fail; its stderr.
fn refused(c: &Cluster, manifest: &str) -> String {
    let r = c.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert_ne!(r.code, 0, "apply should fail, printed: {}", r.stdout);
    r.stderr
}

/// The operator's webhooks: `/mutate` labels new widgets `managed-by=widget-operator`,
/// `/validate` refuses widgets named `forbidden-*`.
const WEBHOOK: &str = r#"
import base64

def handle(path, review):
    req = review["request"]
    resp = {"uid": req["uid"], "allowed": True}
    if path == "/mutate":
        labels = (req.get("object") or {}).get("metadata", {}).get("labels")
        if isinstance(labels, dict):
            patch = [{"op": "add", "path": "/metadata/labels/managed-by", "value": "widget-operator"}]
        else:
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"managed-by": "widget-operator"}}]
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    elif req.get("name", "").startswith("forbidden-"):
        resp = {"uid": req["uid"], "allowed": False,
                "status": {"code": 403, "message": "widget names may not start with forbidden-"}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}
"#;

fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::create_dir_all(dir.join("crds")).unwrap();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: widgets\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        "image: \"\"\ncaBundle: \"\"\ntls: {crt: \"\", key: \"\"}\n",
    )
    .unwrap();
    std::fs::write(dir.join("crds/widgets.yaml"), CRD).unwrap();
    std::fs::write(dir.join("files/webhook.py"), python_json_server(WEBHOOK)).unwrap();
    let templates = TEMPLATES
        .replace("__HOST_PYTHON_MOUNTS__", &host_python_mounts("        "))
        .replace("__HOST_PYTHON_VOLUMES__", &host_python_volumes("      "));
    std::fs::write(dir.join("templates/all.yaml"), templates).unwrap();
}

#[test]
fn operator_chart_installs_and_works() {
    let mut host = host_with_registry();
    let c = host.cluster(&["--authorization-mode", "Node,RBAC"]);
    let chart = c.dir.path().join("chart");
    write_chart(&chart);
    let certs = Certificates::for_names(&["widgets-webhook.default.svc"]);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // The webhooks fail closed, so the release is ready only once the webhook serves.
    helm(
        &c,
        &[
            "install",
            "widgets",
            chart.to_str().unwrap(),
            "--wait",
            "--timeout",
            "3m",
            "--set",
            &format!(
                "image={IMAGE},caBundle={},tls.crt={},tls.key={}",
                b64(&certs.ca_pem),
                b64(&certs.cert_pem),
                b64(&certs.key_pem)
            ),
        ],
    );
    let status = helm(&c, &["status", "widgets"]);
    assert!(status.contains("STATUS: deployed"), "{status}");

    // A widget: defaulted by its schema, labelled by the mutating webhook, listed with the
    // CRD's columns.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: demo.rudder.dev/v1\nkind: Widget\nmetadata: {name: small}\nspec: {size: 3}\n",
    );
    let w = c.ok(&["get", "widget", "small", "-o", "json"]);
    let w: Value = serde_json::from_str(&w).unwrap();
    assert_eq!(w["spec"]["mode"], "safe", "{w}");
    assert_eq!(
        w["metadata"]["labels"]["managed-by"], "widget-operator",
        "{w}"
    );
    let table = c.ok(&["get", "wd"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    // No AGE: a CRD with columns of its own shows only those, as upstream.
    assert_eq!(header, ["NAME", "SIZE", "MODE", "READY"], "{table}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["small", "3", "safe"], "{table}");

    // The CEL rule and the validating webhook refuse with upstream's messages.
    let err = refused(
        &c,
        "apiVersion: demo.rudder.dev/v1\nkind: Widget\nmetadata: {name: big}\nspec: {size: 11}\n",
    );
    assert!(
        err.contains(
            r#"The Widget "big" is invalid: spec: Invalid value: "object": size must be at most 10"#
        ),
        "{err}"
    );
    let err = refused(
        &c,
        "apiVersion: demo.rudder.dev/v1\nkind: Widget\nmetadata: {name: forbidden-1}\nspec: {size: 1}\n",
    );
    assert!(
        err.contains(r#"admission webhook "deny.widgets.demo.rudder.dev" denied the request: widget names may not start with forbidden-"#),
        "{err}"
    );

    // RBAC: the operator's account reads widgets and writes their status, nothing more; a
    // `view` binding covers widgets through the aggregated role.
    let sa = "system:serviceaccount:default:widgets-operator";
    let can = |args: &[&str]| c.kubectl(&[&["auth", "can-i"], args, &["--as", sa]].concat());
    assert_eq!(
        can(&["list", "widgets.demo.rudder.dev"]).stdout.trim(),
        "yes"
    );
    assert_eq!(
        can(&["update", "widgets.demo.rudder.dev", "--subresource=status"])
            .stdout
            .trim(),
        "yes"
    );
    assert_eq!(
        can(&["delete", "widgets.demo.rudder.dev"]).stdout.trim(),
        "no"
    );
    c.ok(&[
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--user=viewer",
    ]);
    support::wait_for("view to include widgets", || {
        let r = c.kubectl(&["get", "widgets", "--as", "viewer"]);
        (r.code == 0).then_some(())
    });
    let err = c.fails(&["delete", "widget", "small", "--as", "viewer"]);
    assert!(
        err.contains(r#"widgets.demo.rudder.dev "small" is forbidden: User "viewer" cannot delete resource "widgets" in API group "demo.rudder.dev" in the namespace "default""#),
        "{err}"
    );

    // The operator's Deployment serves the webhooks from its pod.
    assert_eq!(
        support::jp(&c, "deployment/widgets-operator", "{.status.readyReplicas}"),
        "1"
    );
    helm(&c, &["uninstall", "widgets"]);
    let gone = c.kubectl(&["get", "mutatingwebhookconfiguration", "widgets-widgets"]);
    assert!(gone.stderr.contains("NotFound"), "{}", gone.stderr);
    // Helm leaves CRDs and their objects, as upstream Helm does.
    c.ok(&["get", "widget", "small"]);
}
