//! The node agent with real containers (containerd, runc, CNI), each test on its own test
//! host (a network namespace the test enters): `rudder server` runs its node's agent, kubectl
//! drives it, pods get IPs reachable from the host.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::node::{
    apply, evicted_victim, host_with_registry, phase, wait_phase, TestHost, IMAGE,
};
use support::{jp, wait_for_within, Cluster};

fn http_get(addr: &str) -> String {
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// What a container wrote, from the CRI log files (`<agent>/logs/pods/<ns>_<pod>_<uid>/<c>/`).
fn container_log(host: &TestHost, pod: &str, container: &str) -> String {
    let logs = host.agent_dir().join("logs").join("pods");
    let mut out = String::new();
    let Ok(rd) = std::fs::read_dir(&logs) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("default_{pod}_")) {
            continue;
        }
        let dir = e.path().join(container);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|r| r.flatten().map(|f| f.path()).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            for line in std::fs::read_to_string(&f).unwrap_or_default().lines() {
                let mut parts = line.splitn(4, ' ');
                let (_, _, tag, text) = (parts.next(), parts.next(), parts.next(), parts.next());
                out.push_str(text.unwrap_or(""));
                if tag != Some("P") {
                    out.push('\n');
                }
            }
        }
    }
    out
}

fn restarts(c: &Cluster, pod: &str) -> i64 {
    jp(
        c,
        &format!("pod/{pod}"),
        "{.status.containerStatuses[0].restartCount}",
    )
    .parse()
    .unwrap_or(0)
}

#[test]
fn deployment_of_three_pods_runs_and_serves_on_pod_ips() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    c.ok(&[
        "create",
        "deployment",
        "web",
        &format!("--image={IMAGE}"),
        "--replicas=3",
        "--",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let ips = jp(&c, "pods", "{.items[*].status.podIP}");
    let ips: Vec<&str> = ips.split_whitespace().collect();
    assert_eq!(ips.len(), 3, "{ips:?}");
    for ip in &ips {
        assert!(
            ip.starts_with("10.42."),
            "pod IP from the node's podCIDR: {ip}"
        );
        let body = http_get(&format!("{ip}:80"));
        assert!(body.contains("hello-from-busybox"), "{ip}: {body}");
    }
    // The API server's pods/proxy and services/proxy reach the pods (as `kubectl proxy` users
    // and dashboards do), with upstream's id forms and errors.
    let pod = jp(&c, "pods", "{.items[0].metadata.name}");
    c.ok(&["expose", "deployment", "web", "--port=80"]);
    c.ok(&["create", "service", "clusterip", "none", "--tcp=80"]);
    let ns = "/api/v1/namespaces/default";
    for path in [
        format!("{ns}/pods/{pod}/proxy/"),
        format!("{ns}/pods/http:{pod}:80/proxy/index.html"),
    ] {
        let body = c.ok(&["get", "--raw", &path]);
        assert!(body.contains("hello-from-busybox"), "{path}: {body}");
    }
    wait_for_within(
        "the web service's endpoints",
        Duration::from_secs(30),
        || {
            let out = c.kubectl(&["get", "--raw", &format!("{ns}/services/web:80/proxy/")]);
            out.stdout.contains("hello-from-busybox").then_some(())
        },
    );
    let out = c.kubectl(&["get", "--raw", &format!("{ns}/services/none/proxy/")]);
    assert!(
        out.stderr
            .contains("no endpoints available for service \"none\""),
        "{}",
        out.stderr
    );
    let out = c.kubectl(&["get", "--raw", &format!("{ns}/services/web:81/proxy/")]);
    assert!(
        out.stderr
            .contains("no service port 81 found for service \"web\""),
        "{}",
        out.stderr
    );
    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.contains("test-node"), "{wide}");
    // The image came from the registry through CRI, with upstream's pull events.
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Pulled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains(&format!("Successfully pulled image \"{IMAGE}\"")),
        "{events}"
    );
    // The node as upstream's kubelet reports it.
    let node = c.ok(&["get", "node", "test-node", "-o", "wide"]);
    assert!(
        node.contains("Ready") && node.contains("containerd://"),
        "{node}"
    );
    assert_eq!(
        jp(&c, "node/test-node", "{.status.addresses[0].address}"),
        host.addr
    );
    assert_eq!(
        jp(
            &c,
            "node/test-node",
            "{.status.daemonEndpoints.kubeletEndpoint.Port}"
        ),
        "10250"
    );
}

#[test]
fn init_containers_env_and_config_volumes() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{greeting: hello, file.txt: "v1"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: full, labels: {{app: full}}}}
spec:
  initContainers:
  - name: init
    image: {IMAGE}
    command: [sh, -c, 'sleep 1; echo init-ran > /work/init.txt']
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: main
    image: {IMAGE}
    command: [sh, -c, 'echo "env: $GREETING $PASSWORD $POD_IP $MY_NODE $(cat /work/init.txt) $(EXPANDED)"; while true; do echo "file: $(cat /cfg/file.txt)"; sleep 1; done']
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: sec, key: password}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: MY_NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: EXPANDED, value: "from-$(GREETING)"}}
    volumeMounts:
    - {{name: work, mountPath: /work}}
    - {{name: cfg, mountPath: /cfg}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
"#
        ),
    );
    wait_phase(&c, "full", "Running");
    let ip = jp(&c, "pod/full", "{.status.podIP}");
    let log = wait_for_within("the env line", Duration::from_secs(30), || {
        let l = container_log(&host, "full", "main");
        l.contains("env:").then_some(l)
    });
    assert!(
        log.contains(&format!(
            "env: hello s3cret {ip} test-node init-ran from-hello"
        )),
        "{log}"
    );
    // The init container ran first and completed.
    assert_eq!(
        jp(
            &c,
            "pod/full",
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    assert_eq!(
        jp(
            &c,
            "pod/full",
            "{.status.conditions[?(@.type==\"Initialized\")].status}"
        ),
        "True"
    );
    // A configMap update reaches the running container through the ..data swap.
    c.ok(&[
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"file.txt":"v2"}}"#,
    ]);
    wait_for_within(
        "the updated configMap in the container",
        Duration::from_secs(60),
        || {
            container_log(&host, "full", "main")
                .contains("file: v2")
                .then_some(())
        },
    );
}

#[test]
fn crash_loop_back_off_and_the_restart_policy_table() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    // (pod, restartPolicy, exit code) → the phase it settles in and whether it restarts.
    let rows = [
        ("always-fail", "Always", 3),
        ("always-ok", "Always", 0),
        ("onfailure-fail", "OnFailure", 1),
        ("onfailure-ok", "OnFailure", 0),
        ("never-fail", "Never", 4),
        ("never-ok", "Never", 0),
    ];
    for (name, policy, code) in rows {
        apply(
            &c,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, 'echo bye-{code} > /dev/termination-log; exit {code}']\n"
            ),
        );
    }
    wait_phase(&c, "never-fail", "Failed");
    wait_phase(&c, "never-ok", "Succeeded");
    wait_phase(&c, "onfailure-ok", "Succeeded");
    let t = "{.status.containerStatuses[0].state.terminated}";
    let failed = jp(&c, "pod/never-fail", t);
    assert!(
        failed.contains("\"exitCode\":4") && failed.contains("\"reason\":\"Error\""),
        "{failed}"
    );
    assert!(
        failed.contains("\"message\":\"bye-4\\n\""),
        "termination message: {failed}"
    );
    assert!(jp(&c, "pod/never-ok", t).contains("\"reason\":\"Completed\""));
    assert_eq!(restarts(&c, "never-fail"), 0);
    assert_eq!(restarts(&c, "onfailure-ok"), 0);
    // Restarting rows: restarts grow, the pod stays Running, and back-off shows.
    for name in ["always-fail", "always-ok", "onfailure-fail"] {
        wait_for_within(
            &format!("{name} restarting"),
            Duration::from_secs(90),
            || (restarts(&c, name) >= 2).then_some(()),
        );
        assert_eq!(phase(&c, name), "Running", "{name}");
    }
    wait_for_within("CrashLoopBackOff", Duration::from_secs(60), || {
        let reason = jp(
            &c,
            "pod/always-fail",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        (reason == "CrashLoopBackOff").then_some(())
    });
    let msg = jp(
        &c,
        "pod/always-fail",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        msg.starts_with("back-off ")
            && msg.contains("restarting failed container=c pod=always-fail_default("),
        "{msg}"
    );
    assert_eq!(
        jp(
            &c,
            "pod/always-fail",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "3"
    );
    let get = c.ok(&["get", "pod", "always-fail"]);
    assert!(
        get.contains("CrashLoopBackOff") || get.contains("Error"),
        "{get}"
    );
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=always-fail,reason=BackOff",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a BackOff event");
}

#[test]
fn liveness_restarts_and_readiness_gates_ready() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: live}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'touch /tmp/alive; sleep 4; rm /tmp/alive; sleep 3600']
    livenessProbe: {{exec: {{command: [test, -f, /tmp/alive]}}, periodSeconds: 1, failureThreshold: 2}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ready}}
spec:
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'sleep 3; touch /tmp/ready; sleep 8; rm /tmp/ready; sleep 3600']
    readinessProbe: {{exec: {{command: [test, -f, /tmp/ready]}}, periodSeconds: 1}}
"#
        ),
    );
    wait_for_within("a liveness restart", Duration::from_secs(60), || {
        (restarts(&c, "live") >= 1).then_some(())
    });
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=live",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Liveness probe failed"), "{events}");
    assert!(
        events.contains("Container c failed liveness probe, will be restarted"),
        "{events}"
    );
    let ready = |c: &Cluster| {
        jp(
            c,
            "pod/ready",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        )
    };
    wait_phase(&c, "ready", "Running");
    wait_for_within(
        "Ready once the probe passes",
        Duration::from_secs(30),
        || (ready(&c) == "True").then_some(()),
    );
    wait_for_within("not Ready once it fails", Duration::from_secs(30), || {
        (ready(&c) == "False").then_some(())
    });
    assert_eq!(
        jp(
            &c,
            "pod/ready",
            "{.status.conditions[?(@.type==\"ContainersReady\")].message}"
        ),
        "containers with unready status: [c]"
    );
    assert_eq!(restarts(&c, "ready"), 0, "readiness never restarts");
}

#[test]
fn pre_stop_runs_before_sigterm_and_delete_stops_within_the_grace_period() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let out = host.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'trap "echo TERM >> /out/log; exit 0" TERM; echo started >> /out/log; while true; do sleep 1; done']
    lifecycle:
      preStop: {{exec: {{command: [sh, -c, 'echo prestop >> /out/log']}}}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {out}, type: Directory}}}}
"#,
            out = out.display()
        ),
    );
    wait_phase(&c, "graceful", "Running");
    wait_for_within("the container started", Duration::from_secs(30), || {
        std::fs::read_to_string(out.join("log"))
            .ok()
            .filter(|l| l.contains("started"))
    });
    let t0 = std::time::Instant::now();
    c.ok(&["delete", "pod", "graceful", "--timeout=60s"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "the pod went in {took:?}, not after the 30 s grace period"
    );
    let log = std::fs::read_to_string(out.join("log")).unwrap();
    assert_eq!(log, "started\nprestop\nTERM\n");
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=graceful,reason=Killing",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("Stopping container c"), "{events}");
}

#[test]
fn memory_limit_oom_kill_is_reported() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: oom}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, 'dd if=/dev/zero of=/dev/null bs=100M count=1']\n    resources: {{limits: {{memory: 20Mi}}}}\n"
        ),
    );
    wait_phase(&c, "oom", "Failed");
    // containerd reports the OOM kill from an event that may follow the exit: the kubelet
    // looks again for a few seconds.
    wait_for_within("OOMKilled", Duration::from_secs(20), || {
        let r = jp(
            &c,
            "pod/oom",
            "{.status.containerStatuses[0].state.terminated.reason}",
        );
        (r == "OOMKilled").then_some(())
    });
    assert_eq!(
        jp(
            &c,
            "pod/oom",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );
    assert_eq!(jp(&c, "pod/oom", "{.status.qosClass}"), "Burstable");
}

#[test]
fn static_pods_get_mirror_pods() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let manifests = host.agent_dir().join("pod-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("web.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: kube-system}}\nspec:\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [httpd, -f, -p, '8080', -h, /www]\n"),
    )
    .unwrap();
    let mirror = "pod/web-test-node";
    wait_for_within("the mirror pod Running", Duration::from_secs(60), || {
        (c.kubectl(&[
            "get",
            "-n",
            "kube-system",
            mirror,
            "-o",
            "jsonpath={.status.phase}",
        ])
        .stdout
            == "Running")
            .then_some(())
    });
    let ann = c.ok(&[
        "get",
        "-n",
        "kube-system",
        mirror,
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        ann.contains("kubernetes.io/config.mirror")
            && ann.contains("\"kubernetes.io/config.source\":\"file\""),
        "{ann}"
    );
    let owner = c.ok(&[
        "get",
        "-n",
        "kube-system",
        mirror,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "Node/test-node");
    let ip = c.ok(&[
        "get",
        "-n",
        "kube-system",
        mirror,
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    assert!(http_get(&format!("{ip}:8080")).contains("hello-from-busybox"));
    // Deleting the mirror does not stop the static pod: the mirror comes back.
    let uid = c.ok(&[
        "get",
        "-n",
        "kube-system",
        mirror,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    c.ok(&["delete", "-n", "kube-system", mirror, "--wait=false"]);
    wait_for_within("a new mirror pod", Duration::from_secs(60), || {
        let now = c
            .kubectl(&[
                "get",
                "-n",
                "kube-system",
                mirror,
                "-o",
                "jsonpath={.metadata.uid}",
            ])
            .stdout;
        (!now.is_empty() && now != uid).then_some(())
    });
    assert!(
        http_get(&format!("{ip}:8080")).contains("hello-from-busybox"),
        "the container kept running"
    );
    // Removing the manifest removes the pod and its mirror.
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    wait_for_within("the mirror pod gone", Duration::from_secs(60), || {
        (c.kubectl(&["get", "-n", "kube-system", mirror]).code != 0).then_some(())
    });
}

#[test]
fn service_account_token_in_the_pod_authenticates() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    c.wait_root_ca_published();
    apply(
        &c,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: sa}}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: {IMAGE}\n    command: [sh, -c, 'cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo; cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo; head -1 /var/run/secrets/kubernetes.io/serviceaccount/ca.crt']\n"
        ),
    );
    wait_phase(&c, "sa", "Succeeded");
    let log = container_log(&host, "sa", "c");
    let mut lines = log.lines();
    let token = lines.next().unwrap_or_default().to_string();
    assert_eq!(lines.next(), Some("default"), "{log}");
    assert_eq!(lines.next(), Some("-----BEGIN CERTIFICATE-----"), "{log}");
    // The projected token is a bound service-account token the API server accepts (discovery,
    // which RBAC grants every authenticated user).
    let ok = c.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{}/api/v1", c.url()),
    ]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200");
    let bad = c.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Authorization: Bearer not-a-token",
        &format!("{}/api", c.url()),
    ]);
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "401");
}

#[test]
fn node_pressure_evicts_pods() {
    let mut host = host_with_registry();
    let (c, msg) = evicted_victim(&mut host, "memory.available", "memory-pressure");
    assert!(
        msg.starts_with("The node was low on resource: memory."),
        "{msg}"
    );
    assert_eq!(
        jp(
            &c,
            "pod/victim",
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
    assert_eq!(
        jp(
            &c,
            "node/test-node",
            "{.status.conditions[?(@.type==\"MemoryPressure\")].status}"
        ),
        "True"
    );
}

#[test]
fn image_archives_in_the_images_dir_are_imported() {
    let mut host = TestHost::new();
    host.enter();
    let images = support::node::test_images();
    let c = host.cluster_with(&[], |data: &Path| {
        let dir = data.join("agent").join("images");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(images.join("busybox.tar"), dir.join("busybox.tar")).unwrap();
    });
    apply(
        &c,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: offline}\nspec:\n  containers:\n  - name: c\n    image: rudder.test/busybox:1\n    imagePullPolicy: Never\n    command: [sleep, '3600']\n",
    );
    wait_phase(&c, "offline", "Running");
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=offline,reason=Pulled",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("Container image \"rudder.test/busybox:1\" already present on machine"),
        "{events}"
    );
    // By hand: `rudder image import` and `rudder image ls` against the agent's containerd.
    let data = c.dir.path().join("data");
    let rudder = |args: &[&str]| support::node::rudder_cli(&data, args);
    let imported = rudder(&[
        "image",
        "import",
        &images.join("busybox.tar").display().to_string(),
    ]);
    assert_eq!(imported, "imported rudder.test/busybox:1\n");
    let ls = rudder(&["image", "ls"]);
    assert!(ls.starts_with("IMAGE"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with("rudder.test/busybox ") && l.contains(" 1 ")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("rudder.dev/pause ") && l.contains(" 3.10 ")),
        "the built-in pause image: {ls}"
    );
}

/// `kubectl port-forward <target> <local>:<remote>`, then one HTTP GET through it.
fn port_forward_get(c: &Cluster, target: &str, local: u16, remote: u16) -> String {
    let mut pf = c
        .command(&["port-forward", target, &format!("{local}:{remote}")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{local}");
    let body = wait_for_within(
        &format!("port-forward {target}"),
        Duration::from_secs(20),
        || {
            let b = std::net::TcpStream::connect(&addr)
                .ok()
                .map(|_| http_get(&addr));
            b.filter(|b| b.contains("hello-from-busybox"))
        },
    );
    let _ = pf.kill();
    let _ = pf.wait();
    body
}

#[test]
fn logs_exec_cp_attach_and_port_forward_through_the_api_server() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: talk, labels: {{app: talk}}}}
spec:
  containers:
  - name: web
    image: {IMAGE}
    command: [httpd, -f, -p, '8080', -h, /www]
  - name: ticker
    image: {IMAGE}
    command: [sh, -c, 'i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done']
---
apiVersion: v1
kind: Pod
metadata: {{name: restarts}}
spec:
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'echo run-$(date +%s%N); sleep 2; exit 1']
"#
        ),
    );
    wait_phase(&c, "talk", "Running");
    // logs: the container must be named in a two-container pod, as upstream says.
    // (kubectl picks the first container itself; the API answers as upstream.)
    let raw = c.curl(&[
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        &format!("{}/api/v1/namespaces/default/pods/talk/log", c.url()),
    ]);
    let raw = String::from_utf8_lossy(&raw.stdout);
    assert!(
        raw.contains(
            "a container name must be specified for pod talk, choose one of: [web ticker]"
        ) && raw.contains("\"reason\": \"BadRequest\""),
        "{raw}"
    );
    wait_for_within("three log lines", Duration::from_secs(30), || {
        c.ok(&["logs", "talk", "-c", "ticker"])
            .contains("line 2")
            .then_some(())
    });
    let tail = c.ok(&["logs", "talk", "-c", "ticker", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.starts_with("line "), "{tail}");
    let ts = c.ok(&["logs", "talk", "-c", "ticker", "--tail=1", "--timestamps"]);
    assert!(
        ts.split_whitespace()
            .next()
            .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
        "{ts}"
    );
    let limited = c.ok(&["logs", "talk", "-c", "ticker", "--limit-bytes=4"]);
    assert_eq!(limited, "line");
    let all = c.ok(&["logs", "talk", "--all-containers", "--tail=1"]);
    assert!(all.contains("line "), "{all}");
    let follow = c
        .command(&["logs", "-f", "talk", "-c", "ticker", "--tail=1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut follow = follow;
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    let followed = String::from_utf8_lossy(&out.stdout);
    assert!(
        followed.lines().count() >= 2,
        "follow streams new lines: {followed}"
    );
    // --previous: the container that ran before the current one.
    wait_for_within("a restart", Duration::from_secs(60), || {
        (restarts(&c, "restarts") >= 1).then_some(())
    });
    let prev = c.ok(&["logs", "restarts", "--previous"]);
    assert!(prev.starts_with("run-"), "{prev}");
    // exec: output, stderr and the exit code.
    let r = c.kubectl(&[
        "exec",
        "talk",
        "-c",
        "web",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(r.code, 3, "{r:?}", r = (&r.stdout, &r.stderr));
    assert_eq!(r.stdout, "out\n");
    assert!(
        r.stderr.contains("err") && r.stderr.contains("command terminated with exit code 3"),
        "{}",
        r.stderr
    );
    // exec -i: stdin, and its end.
    assert_eq!(
        c.ok_stdin(
            &["exec", "-i", "talk", "-c", "web", "--", "cat"],
            "from-stdin\n"
        ),
        "from-stdin\n"
    );
    // cp both ways (exec + tar).
    let up = host.dir.path().join("up.txt");
    std::fs::write(&up, "uploaded\n").unwrap();
    c.ok(&[
        "cp",
        &up.display().to_string(),
        "talk:/tmp/up.txt",
        "-c",
        "web",
    ]);
    assert_eq!(
        c.ok(&["exec", "talk", "-c", "web", "--", "cat", "/tmp/up.txt"]),
        "uploaded\n"
    );
    let down = host.dir.path().join("index.html");
    c.ok(&[
        "cp",
        "talk:/www/index.html",
        &down.display().to_string(),
        "-c",
        "web",
    ]);
    assert_eq!(
        std::fs::read_to_string(&down).unwrap(),
        "hello-from-busybox\n"
    );
    // attach: the running process's output.
    let attach = c
        .command(&["attach", "talk", "-c", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let mut attach = attach;
    let _ = attach.kill();
    let out = attach.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("line "),
        "attach shows the output"
    );
    // The kubelet's stats through the API server's node proxy (what metrics-server reads).
    let summary: serde_json::Value = serde_json::from_str(&c.ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/test-node/proxy/stats/summary",
    ]))
    .unwrap();
    assert_eq!(summary["node"]["nodeName"], "test-node");
    let talk = summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podRef"]["name"] == "talk")
        .cloned()
        .unwrap();
    let names: Vec<&str> = talk["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"web") && names.contains(&"ticker"),
        "{names:?}"
    );
    assert!(
        talk["memory"]["workingSetBytes"].as_u64().unwrap_or(0) > 0,
        "{talk}"
    );
    let metrics = c.ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/test-node/proxy/metrics/resource",
    ]);
    assert!(metrics.contains("container_memory_working_set_bytes{container=\"web\",namespace=\"default\",pod=\"talk\"}"), "{metrics}");
    // port-forward, then an HTTP request through it.
    let body = port_forward_get(&c, "pod/talk", 18080, 8080);
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    // To a service: kubectl picks a pod behind it and maps the service port to its target.
    c.ok(&["expose", "pod", "talk", "--port=80", "--target-port=8080"]);
    let body = port_forward_get(&c, "svc/talk", 18081, 80);
    assert!(body.contains(" 200 "), "{body}");
}

#[test]
fn kubectl_debug_runs_an_ephemeral_container_in_the_targets_pid_namespace() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: app}}\nspec:\n  containers:\n  - name: web\n    image: {IMAGE}\n    command: [httpd, -f, -p, '8080', -h, /www]\n"),
    );
    wait_phase(&c, "app", "Running");
    c.ok(&[
        "debug",
        "app",
        &format!("--image={IMAGE}"),
        "--target=web",
        "-c",
        "dbg",
        "--",
        "sh",
        "-c",
        "echo debugging; ps",
    ]);
    let state = wait_for_within(
        "the ephemeral container finished",
        Duration::from_secs(60),
        || {
            let s = jp(
                &c,
                "pod/app",
                "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
            );
            (!s.is_empty()).then_some(s)
        },
    );
    assert_eq!(state, "0");
    let log = c.ok(&["logs", "app", "-c", "dbg"]);
    assert!(log.starts_with("debugging\n"), "{log}");
    assert!(
        log.contains("httpd"),
        "ps sees the target's processes: {log}"
    );
    // The ephemeral container is not restarted and the pod keeps running.
    assert_eq!(phase(&c, "app"), "Running");
    // Existing ephemeral containers cannot be removed.
    let err = c.fails(&[
        "patch",
        "pod",
        "app",
        "--subresource=ephemeralcontainers",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#,
    ]);
    assert!(
        err.contains("existing ephemeral containers \"dbg\" may not be removed"),
        "{err}"
    );
}

#[test]
fn fs_group_pod_cgroup_limits_sidecars_and_log_rotation() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: owned}}
spec:
  securityContext: {{fsGroup: 2000}}
  initContainers:
  - name: side
    image: {IMAGE}
    restartPolicy: Always
    command: [sh, -c, 'echo side-up; sleep 3600']
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'stat -c "group=%g" /data; touch /data/f; stat -c "file=%g" /data/f; sleep 3600']
    resources: {{requests: {{memory: 32Mi, cpu: 100m}}, limits: {{memory: 64Mi, cpu: 500m}}}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - {{name: data, emptyDir: {{}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: chatty}}
spec:
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'yes "$(printf %0800d 0)" | head -n 16000; while true; do echo tick; sleep 1; done']
"#
        ),
    );
    wait_phase(&c, "owned", "Running");
    // The sidecar (a restartable init container) runs beside the app container.
    assert_eq!(
        jp(
            &c,
            "pod/owned",
            "{.status.initContainerStatuses[0].started}"
        ),
        "true"
    );
    assert!(!jp(
        &c,
        "pod/owned",
        "{.status.initContainerStatuses[0].state.running.startedAt}"
    )
    .is_empty());
    let log = wait_for_within("the fsGroup lines", Duration::from_secs(30), || {
        let l = container_log(&host, "owned", "c");
        l.contains("file=").then_some(l)
    });
    assert!(
        log.contains("group=2000\n") && log.contains("file=2000\n"),
        "{log}"
    );
    assert!(c.ok(&["logs", "owned", "-c", "side"]).contains("side-up"));
    // The pod's cgroup carries the pod's limits (64Mi, 500m).
    let uid = jp(&c, "pod/owned", "{.metadata.uid}");
    let cg = format!(
        "{}/burstable/pod{uid}",
        host.cgroup_root.trim_start_matches('/')
    );
    let mem = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes"))
        .unwrap();
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let quota =
        std::fs::read_to_string(format!("/sys/fs/cgroup/cpu/{cg}/cpu.cfs_quota_us")).unwrap();
    assert_eq!(quota.trim(), "50000");
    // Logs past 10 MiB are rotated (the kubelet renames, the runtime reopens), and logs go on.
    wait_for_within("the log rotated", Duration::from_secs(90), || {
        let logs = host.agent_dir().join("logs").join("pods");
        let dir = std::fs::read_dir(&logs).ok()?.flatten().find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("default_chatty_")
        })?;
        let rotated = std::fs::read_dir(dir.path().join("c"))
            .ok()?
            .flatten()
            .any(|f| f.file_name().to_string_lossy().starts_with("0.log."));
        rotated.then_some(())
    });
    // The current file is the new one, which the container goes on writing.
    wait_for_within(
        "logging after the rotation",
        Duration::from_secs(60),
        || {
            let l = c.ok(&["logs", "chatty"]);
            (l.starts_with("tick\n") && !l.contains("00000")).then_some(())
        },
    );
}

#[test]
fn security_context_sub_paths_and_persistent_volumes() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let pv_dir = host.dir.path().join("pv");
    std::fs::create_dir_all(&pv_dir).unwrap();
    std::fs::write(pv_dir.join("seed.txt"), "from-the-volume\n").unwrap();
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: PersistentVolume
metadata: {{name: host-pv}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {{path: {pv}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: host-pv
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: files}}
data: {{app.conf: "setting=1\n"}}
---
apiVersion: v1
kind: Pod
metadata: {{name: secure}}
spec:
  restartPolicy: Never
  securityContext: {{runAsUser: 65534, runAsGroup: 65534}}
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, 'id -u; id -g; touch /rootfs-file 2>/dev/null && echo rootfs-writable || echo rootfs-read-only; cat /etc/app.conf; cat /data/seed.txt; echo written > /scratch/out 2>/dev/null || echo scratch-not-writable']
    securityContext: {{readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
    volumeMounts:
    - {{name: files, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: data, mountPath: /data, readOnly: true}}
    - {{name: scratch, mountPath: /scratch}}
  volumes:
  - {{name: files, configMap: {{name: files}}}}
  - {{name: data, persistentVolumeClaim: {{claimName: claim}}}}
  - {{name: scratch, emptyDir: {{}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: last-words}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {IMAGE}
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo first; echo last words; exit 1']
    lifecycle:
      postStart: {{sleep: {{seconds: 1}}}}
"#,
            pv = pv_dir.display()
        ),
    );
    wait_for_within("the claim bound", Duration::from_secs(60), || {
        (jp(&c, "pvc/claim", "{.status.phase}") == "Bound").then_some(())
    });
    wait_phase(&c, "secure", "Succeeded");
    let log = container_log(&host, "secure", "c");
    assert_eq!(
        log,
        "65534\n65534\nrootfs-read-only\nsetting=1\nfrom-the-volume\n",
        "runAsUser/Group, readOnlyRootFilesystem, a configMap key by subPath, a hostPath PV through its claim, an emptyDir the user can write"
    );
    // FallbackToLogsOnError: a failed container without a message file reports its log tail.
    wait_phase(&c, "last-words", "Failed");
    assert_eq!(
        jp(
            &c,
            "pod/last-words",
            "{.status.containerStatuses[0].state.terminated.message}"
        ),
        "first\nlast words\n"
    );
}
