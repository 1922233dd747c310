//! The pieces of the cluster network together on one node: a pod resolves a service by its
//! short name through its resolv.conf (search path, the cluster DNS reached on kube-dns's
//! ClusterIP through the service proxy), reaches it by the resolved ClusterIP, resolves a
//! headless service to its pods, and an in-cluster client reaches the API server through the
//! `kubernetes` service with the environment the kubelet gives every pod.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::node::{apply, host_with_registry, wait_phase, IMAGE};
use support::{jp, wait_for_within, Cluster};

const WEB: &str = r#"mkdir -p /tmp/www; echo "$HOSTNAME" > /tmp/www/index.html; exec httpd -f -p 8080 -h /tmp/www"#;

/// busybox nslookup with the pod's own resolv.conf: the addresses of the answer section.
fn lookup(c: &Cluster, name: &str) -> Option<BTreeSet<String>> {
    let r = c.kubectl(&["exec", "client", "--", "nslookup", name]);
    let out = r.stdout;
    let answer = out.split_once("Name:")?.1;
    let ips: BTreeSet<String> = answer
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .map(|a| a.trim().to_string())
        .collect();
    (!ips.is_empty()).then_some(ips)
}

fn get(c: &Cluster, addr: &str) -> Option<String> {
    let (ip, port) = addr.rsplit_once(':')?;
    let r = c.kubectl(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}"),
    ]);
    r.stdout
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_string())
        .filter(|b| !b.is_empty())
}

#[test]
fn pods_find_services_by_name_and_the_api_server_by_its_service() {
    let mut host = host_with_registry();
    // Listening on every address, as `rudder server` does by default: the `kubernetes`
    // service then points at the node's address, which every pod can reach.
    let c = host.cluster(&["--bind-address", "0.0.0.0"]);
    let api = c.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=kubernetes",
        "-o",
        "jsonpath={.items[0].endpoints[0].addresses[0]}",
    ]);
    assert_eq!(api, host.addr);
    apply(
        &c,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        command: [sh, -c, '{web}']
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-headless}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {IMAGE}, command: [sleep, "3600"]}}
"#,
            web = WEB.replace('\'', "''")
        ),
    );
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=120s",
    ]);
    let cluster_ip = jp(&c, "svc/web", "{.spec.clusterIP}");
    let pods: BTreeSet<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.podIP}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let names: BTreeSet<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();

    // The short name through the search path, and the full name, give the ClusterIP.
    // (Not `web.default`: busybox's nslookup also asks the bare name, which goes to the node's
    // resolvers, and the test host has none.)
    for name in ["web", "web.default.svc.cluster.local"] {
        let ips = wait_for_within(&format!("{name} resolves"), Duration::from_secs(30), || {
            lookup(&c, name)
        });
        assert_eq!(ips, BTreeSet::from([cluster_ip.clone()]), "{name}");
    }
    // The headless service resolves to the ready pods themselves.
    let ips = wait_for_within("web-headless resolves", Duration::from_secs(30), || {
        lookup(&c, "web-headless").filter(|ips| *ips == pods)
    });
    assert_eq!(ips, pods);
    // Through the ClusterIP, both pods answer in time.
    let mut seen = BTreeSet::new();
    wait_for_within(
        "both pods answer on the ClusterIP",
        Duration::from_secs(60),
        || {
            if let Some(body) = get(&c, &format!("{cluster_ip}:80")) {
                seen.insert(body);
            }
            (seen == names).then_some(())
        },
    );
    // A name outside the cluster's zones with no upstream answer is NXDOMAIN, not a hang.
    let r = c.kubectl(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "nope.web.default.svc.cluster.local",
    ]);
    assert!(
        r.stdout.contains("NXDOMAIN")
            || r.stderr.contains("NXDOMAIN")
            || r.stdout.contains("can't find"),
        "{} {}",
        r.stdout,
        r.stderr
    );

    // In-cluster kubectl with nothing but what the kubelet and admission give every pod:
    // KUBERNETES_SERVICE_HOST/PORT (10.43.0.1:443, through the proxy) and the projected token.
    // RBAC: the pod's service account may read the namespace (`view`).
    c.ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    support::wait_for("the default service account may get services", || {
        let r = c.kubectl(&[
            "auth",
            "can-i",
            "get",
            "services",
            "--as=system:serviceaccount:default:default",
        ]);
        (r.stdout == "yes\n").then_some(())
    });
    let kubectl = std::fs::canonicalize(support::kubectl_bin()).unwrap_or(support::kubectl_bin());
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
    command: [sh, -c, 'echo "host=$KUBERNETES_SERVICE_HOST"; kubectl get svc web -o name']
    env: [{{name: HOME, value: /tmp}}]
    volumeMounts: [{{name: kubectl, mountPath: /bin/kubectl, readOnly: true}}]
  volumes: [{{name: kubectl, hostPath: {{path: {}, type: File}}}}]
"#,
            kubectl.display()
        ),
    );
    wait_phase(&c, "incluster", "Succeeded");
    let log = c.ok(&["logs", "incluster"]);
    assert!(log.contains("host=10.43.0.1\n"), "{log}");
    assert!(log.contains("service/web\n"), "{log}");
}
