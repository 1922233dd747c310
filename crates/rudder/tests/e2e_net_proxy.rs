//! The service proxy with real containers on a test host (a network namespace the test
//! enters): ClusterIP, NodePort, externalIPs and LoadBalancer addresses reached from pods, the
//! host and a peer machine, session affinity, scaling, readiness, hairpin, the Local external
//! traffic policy's client address, and services without endpoints rejected.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use support::node::{apply, host_with_registry, TestHost, IMAGE};
use support::{jp, wait_for_within, Cluster};

/// A web server on 8080 whose page is the pod's name and whose `/cgi-bin/ip` prints the
/// client's address (busybox httpd's CGI `$REMOTE_ADDR`).
const WEB: &str = r#"mkdir -p /tmp/www/cgi-bin; echo "$HOSTNAME" > /tmp/www/index.html; printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$REMOTE_ADDR"\n' > /tmp/www/cgi-bin/ip; chmod +x /tmp/www/cgi-bin/ip; exec httpd -f -p 8080 -h /tmp/www"#;

/// A pod spec (flow YAML) running [`WEB`] with this readiness probe.
fn web_spec(probe: &str) -> String {
    format!(
        "{{terminationGracePeriodSeconds: 1, containers: [{{name: web, image: '{IMAGE}', command: [sh, -c, '{}'], readinessProbe: {probe}}}]}}",
        WEB.replace('\'', "''")
    )
}

fn web_deployment(name: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {}
"#,
        web_spec("{httpGet: {path: /, port: 8080}, periodSeconds: 1}")
    )
}

fn client_pod(c: &Cluster) {
    apply(
        c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {IMAGE}, command: [sleep, "3600"]}}
"#
        ),
    );
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=120s",
    ]);
}

/// An HTTP GET of `/` on `addr` (`ip:port`) from inside a pod, with busybox's `nc` (the
/// static busybox's `wget` crashes resolving even a literal address); the body, or the
/// error.
fn pod_request(c: &Cluster, pod: &str, addr: &str) -> Result<String, String> {
    let (ip, port) = addr.rsplit_once(':').unwrap_or((addr, "80"));
    let r = c.kubectl(&[
        "exec",
        pod,
        "--",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}"),
    ]);
    if r.code != 0 {
        return Err(r.stderr.trim().to_string());
    }
    r.stdout
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .ok_or_else(|| format!("no HTTP answer: {:?}", r.stdout))
}

fn pod_get(c: &Cluster, pod: &str, addr: &str) -> Option<String> {
    pod_request(c, pod, addr)
        .map_err(|e| eprintln!("GET {addr} in {pod}: {e}"))
        .ok()
}

/// `wget` from the peer namespace ("another machine").
fn peer_get(host: &TestHost, url: &str) -> Option<String> {
    let out = host
        .in_peer("wget")
        .args(["-qO-", "-T", "3", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A plain HTTP GET from the test host's namespace (where the test thread is).
fn host_get(addr: &str, path: &str) -> Option<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let body = out.split_once("\r\n\r\n")?.1.trim().to_string();
    out.starts_with("HTTP/1.").then_some(body)
}

fn ready_pods(c: &Cluster, app: &str) -> BTreeSet<String> {
    jp(
        c,
        "pods",
        &format!("{{range .items[?(@.metadata.labels.app==\"{app}\")]}}{{.metadata.name}}={{.status.conditions[?(@.type==\"Ready\")].status}} {{end}}"),
    )
    .split_whitespace()
    .filter_map(|s| s.strip_suffix("=True"))
    .map(str::to_string)
    .collect()
}

/// The proxy's table and log lines, for a failure's message.
fn diagnostics() -> String {
    let nft = std::process::Command::new("nft")
        .args(["list", "table", "ip", "kube-proxy"])
        .output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let sh = |cmd: &str| {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    };
    format!(
        "nft:\n{nft}\nsysctl: {}\nroutes: {}\nconntrack: {}",
        sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables /proc/sys/net/ipv4/conf/all/route_localnet"),
        sh("ip route; ip -br addr"),
        sh("conntrack -L 2>&1 | head -30")
    )
}

/// Asks `get` until the set of answers is exactly `want` (every one seen, nothing else).
fn answers_become(what: &str, want: &BTreeSet<String>, mut get: impl FnMut() -> Option<String>) {
    let mut seen = BTreeSet::new();
    let mut last = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        last.clear();
        for _ in 0..8 {
            let a = get();
            last.push(a.clone());
            if let Some(a) = a {
                if !want.contains(&a) {
                    // A stale answer restarts the count (rules may still be on their way).
                    seen.clear();
                    break;
                }
                seen.insert(a);
            }
        }
        if seen == *want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: want {want:?}, last answers {last:?}\n{}",
            diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn cluster_ip_node_port_external_ip_affinity_scaling_readiness_hairpin() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(&c, &web_deployment("web", 2));
    // A pod the service selects that never becomes ready: it must get no traffic.
    apply(
        &c,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: unready, labels: {{app: web}}}}\nspec: {}\n",
            web_spec("{exec: {command: [\"false\"]}, periodSeconds: 1}")
        ),
    );
    let external = format!(
        "{}.50",
        host.addr
            .rsplit_once('.')
            .map(|(n, _)| n)
            .unwrap_or("10.252.0")
    );
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  externalIPs: [{external}]
  ports: [{{port: 80, targetPort: 8080, nodePort: 30080}}]
"#
        ),
    );
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    client_pod(&c);
    let ip = jp(&c, "svc/web", "{.spec.clusterIP}");
    let pods = ready_pods(&c, "web");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(!pods.contains("unready"));

    // ClusterIP from another pod: both ready pods answer, the unready one never does.
    answers_become("both web pods through the ClusterIP", &pods, || {
        pod_get(&c, "client", &format!("{ip}:80"))
    });
    // NodePort from the host: its address and 127.0.0.1 (route_localnet).
    answers_become("the NodePort on the node address", &pods, || {
        host_get(&format!("{}:30080", host.addr), "/")
    });
    answers_become("the NodePort on 127.0.0.1", &pods, || {
        host_get("127.0.0.1:30080", "/")
    });
    // From another machine: the NodePort, and the external IP routed to the node.
    answers_become("the NodePort from the peer", &pods, || {
        peer_get(&host, &format!("http://{}:30080/", host.addr))
    });
    let route = host
        .in_peer("ip")
        .args(["route", "add", &format!("{external}/32"), "via", &host.addr])
        .status()
        .unwrap();
    assert!(route.success());
    answers_become("the external IP from the peer", &pods, || {
        peer_get(&host, &format!("http://{external}/"))
    });
    answers_become("the external IP from the host", &pods, || {
        host_get(&format!("{external}:80"), "/")
    });
    // The API server through the kubernetes service, from a pod.
    wait_for_within(
        "the kubernetes service from a pod",
        Duration::from_secs(30),
        || {
            let r = c.kubectl(&[
                "exec",
                "client",
                "--",
                "sh",
                "-c",
                "echo | nc -w 3 10.43.0.1 443 >/dev/null 2>&1 && echo open",
            ]);
            (r.stdout.trim() == "open").then_some(())
        },
    );

    // Session affinity: one client sticks to one pod.
    c.ok(&[
        "patch",
        "svc/web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}}}}"#,
    ]);
    wait_for_within("sticky answers", Duration::from_secs(30), || {
        let answers: BTreeSet<String> = (0..8)
            .filter_map(|_| pod_get(&c, "client", &format!("{ip}:80")))
            .collect();
        (answers.len() == 1).then_some(())
    });
    c.ok(&[
        "patch",
        "svc/web",
        "-p",
        r#"{"spec":{"sessionAffinity":"None"}}"#,
    ]);

    // Scaling changes who answers.
    c.ok(&["scale", "deployment/web", "--replicas=3"]);
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let three = ready_pods(&c, "web");
    assert_eq!(three.len(), 3, "{three:?}");
    answers_become("three web pods", &three, || {
        pod_get(&c, "client", &format!("{ip}:80"))
    });
    c.ok(&["scale", "deployment/web", "--replicas=1"]);
    let one = wait_for_within("one ready web pod", Duration::from_secs(60), || {
        let p = ready_pods(&c, "web");
        (p.len() == 1
            && jp(&c, "pods", "{.items[*].metadata.name}")
                .split_whitespace()
                .count()
                == 3)
            .then_some(p)
    });
    answers_become("the one web pod", &one, || {
        pod_get(&c, "client", &format!("{ip}:80"))
    });
    // Hairpin: the pod reaches itself through its service.
    let me = one.iter().next().cloned().unwrap_or_default();
    answers_become("the pod itself through its service", &one, || {
        pod_get(&c, &me, &format!("{ip}:80"))
    });
    let log = c.server_log();
    assert!(!log.contains("nftables sync failed"), "{log}");
}

#[test]
fn no_endpoints_rejected_local_policy_keeps_client_and_load_balancer() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    apply(&c, &web_deployment("echo", 1));
    apply(
        &c,
        r#"
apiVersion: v1
kind: Service
metadata: {name: local}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: cluster}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080, nodePort: 30082}]
---
apiVersion: v1
kind: Service
metadata: {name: lb}
spec:
  type: LoadBalancer
  selector: {app: echo}
  ports: [{port: 8081, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nothing}
spec:
  selector: {app: nothing}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    c.ok(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    client_pod(&c);

    // No endpoints: rejected at once (connection refused), not left to time out.
    let none = jp(&c, "svc/nothing", "{.spec.clusterIP}");
    wait_for_within(
        "a refused connection to a service without endpoints",
        Duration::from_secs(30),
        || {
            let t = std::time::Instant::now();
            let r = std::net::TcpStream::connect_timeout(
                &format!("{none}:80").parse().ok()?,
                Duration::from_secs(3),
            );
            matches!(r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
                && t.elapsed() < Duration::from_secs(2))
            .then_some(())
        },
    );
    let err = pod_request(&c, "client", &format!("{none}:80")).unwrap_err();
    assert!(err.contains("Connection refused"), "{err}");

    // externalTrafficPolicy Local: the peer's own address reaches the pod.
    let peer = BTreeSet::from([host.peer_addr.clone()]);
    // busybox httpd listens on IPv6 and reports `[::ffff:a.b.c.d]`.
    let client_ip = |s: String| {
        s.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_start_matches("::ffff:")
            .to_string()
    };
    answers_become("the client address through a Local service", &peer, || {
        peer_get(&host, &format!("http://{}:30081/cgi-bin/ip", host.addr)).map(client_ip)
    });
    // Cluster: masqueraded to the node's address on the pod bridge.
    let seen = wait_for_within(
        "an answer through a Cluster service",
        Duration::from_secs(30),
        || peer_get(&host, &format!("http://{}:30082/cgi-bin/ip", host.addr)).map(client_ip),
    );
    assert_ne!(seen, host.peer_addr);
    assert!(seen.starts_with("10.42."), "{seen}");

    // LoadBalancer: the node's address in the status (ServiceLB), and it answers there.
    let ingress = wait_for_within("the load balancer address", Duration::from_secs(30), || {
        let ip = jp(&c, "svc/lb", "{.status.loadBalancer.ingress[*].ip}");
        (!ip.is_empty()).then_some(ip)
    });
    assert_eq!(ingress, host.addr);
    let pod = ready_pods(&c, "echo");
    answers_become("the load balancer address from the peer", &pod, || {
        peer_get(&host, &format!("http://{}:8081/", host.addr))
    });
    let wide = c.ok(&["get", "svc", "lb"]);
    assert!(wide.contains(&host.addr), "{wide}");
    // Not a LoadBalancer any more: the address goes.
    c.ok(&["patch", "svc/lb", "-p", r#"{"spec":{"type":"ClusterIP"}}"#]);
    wait_for_within(
        "the load balancer address removed",
        Duration::from_secs(30),
        || {
            jp(&c, "svc/lb", "{.status.loadBalancer.ingress}")
                .is_empty()
                .then_some(())
        },
    );

    // The proxy's metrics, as upstream names them, on the server's /metrics.
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    for m in [
        "kubeproxy_sync_proxy_rules_duration_seconds_bucket",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_network_programming_duration_seconds_count",
    ] {
        assert!(metrics.contains(m), "{m} missing");
    }
}
