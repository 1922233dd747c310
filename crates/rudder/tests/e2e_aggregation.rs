//! API aggregation with kubectl: the server's own group versions as Local APIServices, and a
//! service-backed APIService whose server (a small Python HTTPS server in a network namespace
//! the test created, reached through a selectorless Service and a hand-written EndpointSlice)
//! is checked for availability, merged into discovery and proxied to with the caller's
//! identity in the front proxy's headers.

mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use base64::Engine as _;
use support::node::TestHost;
use support::{wait_for_within, Backend, Cluster};

const SERVER: &str = r#"
import http.server, json, ssl, sys
addr, port, cert, key, ca = sys.argv[1:6]

class H(http.server.BaseHTTPRequestHandler):
    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path == "/apis/wardle.example.com/v1alpha1":
            self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": "wardle.example.com/v1alpha1",
                "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": True,
                               "kind": "Flunder", "verbs": ["get", "list"], "shortNames": ["fl"]}]})
        elif len(parts) == 6 and parts[5] == "flunders":
            peer = dict(x[0] for x in self.connection.getpeercert()["subject"])
            self.send_json(200, {"kind": "FlunderList", "apiVersion": "wardle.example.com/v1alpha1",
                "metadata": {}, "items": [{"apiVersion": "wardle.example.com/v1alpha1",
                "kind": "Flunder", "metadata": {"name": "echo", "namespace": parts[4],
                "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"user": self.headers.get("X-Remote-User"),
                         "groups": self.headers.get_all("X-Remote-Group") or [],
                         "authorization": self.headers.get("Authorization"),
                         "proxy": peer.get("commonName")}}]})
        else:
            self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                 "reason": "NotFound", "code": 404, "message": "not here"})

    def log_message(self, *args):
        pass

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
srv = http.server.ThreadingHTTPServer((addr, int(port)), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("serving", flush=True)
srv.serve_forever()
"#;

/// A CA and a serving certificate for `wardle.default.svc` it signed: `(CA PEM, cert PEM,
/// key PEM)`.
fn serving_pki() -> (String, String, String) {
    let c = support::tlsserver::Certificates::for_names(&["wardle.default.svc"]);
    (c.ca_pem, c.cert_pem, c.key_pem)
}

struct Wardle {
    child: Child,
}

impl Drop for Wardle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_wardle(host: &TestHost, dir: &std::path::Path, request_header_ca: &str) -> Wardle {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let ca = dir.join("requestheader-ca.pem");
    std::fs::write(&ca, request_header_ca).unwrap();
    let script = dir.join("wardle.py");
    std::fs::write(&script, SERVER).unwrap();
    let mut child = host
        .in_peer("python3")
        .arg(&script)
        .arg(&host.peer_addr)
        .arg("8443")
        .arg(&cert)
        .arg(&key)
        .arg(&ca)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for its first line, so the listener is up.
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "serving");
    Wardle { child }
}

/// A field of a JSON document as text (strings without quotes).
fn at(doc: &str, pointer: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap();
    match v.pointer(pointer) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".into(),
    }
}

/// An autoregistered APIService: its label and priorities.
fn assert_registered(doc: &str, managed: &str, group_priority: &str, version_priority: &str) {
    let label = "/metadata/labels/kube-aggregator.kubernetes.io~1automanaged";
    assert_eq!(at(doc, label), managed);
    assert_eq!(at(doc, "/spec/groupPriorityMinimum"), group_priority);
    assert_eq!(at(doc, "/spec/versionPriority"), version_priority);
}

fn condition(c: &Cluster, name: &str) -> (String, String, String) {
    let out = c.ok(&[
        "get",
        "apiservice",
        name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Available\")].status}|{.status.conditions[?(@.type==\"Available\")].reason}|{.status.conditions[?(@.type==\"Available\")].message}",
    ]);
    let mut parts = out.splitn(3, '|').map(str::to_string);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

fn wait_reason(c: &Cluster, name: &str, reason: &str) -> (String, String, String) {
    wait_for_within(
        &format!("APIService {name} {reason}"),
        Duration::from_secs(60),
        || {
            let cond = condition(c, name);
            (cond.1 == reason).then_some(cond)
        },
    )
}

#[test]
fn local_apiservices_for_every_served_group_version() {
    let c = Cluster::start(Backend::Redb);
    let out = wait_for_within("Local APIServices", Duration::from_secs(30), || {
        let out = c.ok(&["get", "apiservices"]);
        out.contains("v1.apps").then_some(out)
    });
    let line = out.lines().find(|l| l.starts_with("v1.apps ")).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[1..3], ["Local", "True"], "{out}");
    assert!(out.lines().any(|l| l.starts_with("v1. ")), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("v2.autoscaling ")),
        "{out}"
    );
    let apps = c.ok(&["get", "apiservice", "v1.apps", "-o", "json"]);
    assert_registered(&apps, "onstart", "17800", "15");
    let (status, reason, message) = condition(&c, "v1.apps");
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        ("True", "Local", "Local APIServices are always available")
    );

    // A CRD's group version gets one too, labelled as the CRD registration controller's,
    // and loses it with the CRD.
    c.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    );
    let crd = wait_for_within("the CRD's APIService", Duration::from_secs(30), || {
        let r = c.kubectl(&["get", "apiservice", "v1.example.com", "-o", "json"]);
        (r.code == 0).then_some(r.stdout)
    });
    assert_registered(&crd, "true", "1000", "100");
    c.ok(&["delete", "crd", "widgets.example.com"]);
    wait_for_within(
        "the CRD's APIService to go",
        Duration::from_secs(30),
        || {
            c.kubectl(&["get", "apiservice", "v1.example.com"])
                .stderr
                .contains("NotFound")
                .then_some(())
        },
    );

    // The identity-header trust aggregated servers read.
    let cm = c.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]);
    assert_eq!(
        at(&cm, "/data/requestheader-allowed-names"),
        "[\"system:auth-proxy\"]"
    );
    assert_eq!(
        at(&cm, "/data/requestheader-username-headers"),
        "[\"X-Remote-User\"]"
    );
    assert!(at(&cm, "/data/requestheader-client-ca-file").contains("BEGIN CERTIFICATE"));
    assert!(at(&cm, "/data/client-ca-file").contains("BEGIN CERTIFICATE"));
}

#[test]
fn service_backed_apiservice_is_checked_discovered_and_proxied() {
    let host = TestHost::new();
    host.enter();
    let c = Cluster::start(Backend::Redb);
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = serving_pki();
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key).unwrap();
    let request_header_ca = wait_for_within(
        "extension-apiserver-authentication",
        Duration::from_secs(30),
        || {
            let r = c.kubectl(&[
                "get",
                "configmap",
                "-n",
                "kube-system",
                "extension-apiserver-authentication",
                "-o",
                "jsonpath={.data.requestheader-client-ca-file}",
            ]);
            (r.code == 0 && r.stdout.contains("BEGIN")).then_some(r.stdout)
        },
    );

    // Before the service exists: upstream's ServiceNotFound.
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
    let apiservice = format!(
        r#"apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {{namespace: default, name: wardle, port: 443}}
  caBundle: {ca_bundle}
"#
    );
    c.ok_stdin(&["apply", "-f", "-"], &apiservice);
    let (_, _, msg) = wait_reason(&c, "v1alpha1.wardle.example.com", "ServiceNotFound");
    assert_eq!(msg, "service/wardle in \"default\" is not present");

    // A selectorless service and a hand-written slice pointing into the peer namespace.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: wardle, namespace: default}}
spec:
  ports: [{{name: https, port: 443, targetPort: 8443}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: wardle-1
  namespace: default
  labels: {{kubernetes.io/service-name: wardle}}
addressType: IPv4
endpoints: [{{addresses: ["{}"], conditions: {{ready: true}}}}]
ports: [{{name: https, port: 8443, protocol: TCP}}]
"#,
            host.peer_addr
        ),
    );
    // The endpoint is there but nothing listens: the discovery check fails.
    let (status, _, msg) = wait_reason(&c, "v1alpha1.wardle.example.com", "FailedDiscoveryCheck");
    assert_eq!(status, "False");
    assert!(
        msg.starts_with(&format!(
            "failing or missing response from https://{}:8443/apis/wardle.example.com/v1alpha1: ",
            host.peer_addr
        )),
        "{msg}"
    );
    let down = c.kubectl(&[
        "get",
        "--raw",
        "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
    ]);
    assert_ne!(down.code, 0);
    assert!(
        down.stderr
            .contains("(ServiceUnavailable): the server is currently unable to handle the request"),
        "{}",
        down.stderr
    );

    let wardle = start_wardle(&host, dir.path(), &request_header_ca);
    let (status, _, msg) = wait_reason(&c, "v1alpha1.wardle.example.com", "Passed");
    assert_eq!(
        (status.as_str(), msg.as_str()),
        ("True", "all checks passed")
    );
    let listed = c.ok(&["get", "apiservices"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("v1alpha1.wardle.example.com"))
        .unwrap();
    assert!(line.contains("default/wardle"), "{listed}");

    // Discovery: kubectl finds the resource by its name and short name.
    let resources = wait_for_within("flunders in discovery", Duration::from_secs(30), || {
        let out = c.ok(&["api-resources", "--api-group=wardle.example.com"]);
        out.contains("flunders").then_some(out)
    });
    assert!(resources.contains("fl "), "{resources}");
    assert!(c
        .ok(&["api-versions"])
        .lines()
        .any(|l| l == "wardle.example.com/v1alpha1"));
    let group = c.ok(&["get", "--raw", "/apis/wardle.example.com"]);
    assert_eq!(at(&group, "/kind"), "APIGroup");
    assert_eq!(
        at(&group, "/preferredVersion/groupVersion"),
        "wardle.example.com/v1alpha1"
    );

    // The proxied request carries the caller's identity, not its credentials, over the
    // front proxy's client certificate.
    let list = c.ok(&["get", "flunders", "-n", "team", "-o", "json"]);
    assert_eq!(at(&list, "/items/0/metadata/namespace"), "team");
    assert_eq!(at(&list, "/items/0/spec/user"), "system:admin");
    assert!(
        at(&list, "/items/0/spec/groups").contains("system:masters"),
        "{list}"
    );
    assert_eq!(at(&list, "/items/0/spec/authorization"), "null");
    assert_eq!(at(&list, "/items/0/spec/proxy"), "system:auth-proxy");
    // The server goes away: the check fails again and requests get 503.
    drop(wardle);
    wait_reason(&c, "v1alpha1.wardle.example.com", "FailedDiscoveryCheck");
    let down = c.kubectl(&[
        "get",
        "--raw",
        "/apis/wardle.example.com/v1alpha1/namespaces/default/flunders",
    ]);
    assert!(
        down.stderr
            .contains("(ServiceUnavailable): the server is currently unable to handle the request"),
        "{}",
        down.stderr
    );
}
