//! NetworkPolicy enforcement with real containers on a test host (a network namespace the test
//! enters): `rudder server`'s node agent programs `inet rudder-netpol`, and pods' connections
//! (busybox `nc -w 2` against busybox httpd; this busybox's wget crashes) pass or are dropped as upstream's semantics say.

mod support;

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

/// A pod serving `/www` on 8080 (named `http`), 9090 and 9500; or, with `serve` false, one
/// that only sleeps (a client).
fn pod_yaml(ns: &str, name: &str, labels: &str, serve: bool) -> String {
    let (cmd, ports) = if serve {
        (
            "httpd -p 9090 -h /www; httpd -p 9500 -h /www; exec httpd -f -p 8080 -h /www",
            "\n    ports: [{name: http, containerPort: 8080}]\n    readinessProbe: {httpGet: {port: 8080}, periodSeconds: 1}",
        )
    } else {
        ("exec sleep 3600", "")
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: {IMAGE}
    command: [sh, -c, '{cmd}']{ports}
---
"
    )
}

fn pod_ip(c: &Cluster, ns: &str, pod: &str) -> String {
    c.ok(&[
        "get",
        "pod",
        pod,
        "-n",
        ns,
        "-o",
        "jsonpath={.status.podIP}",
    ])
}

/// Whether `pod` gets the test page from `addr` (`ip:port`) within 2 s.
fn reaches(c: &Cluster, ns: &str, pod: &str, addr: &str) -> bool {
    let r = c.kubectl(&[
        "exec",
        "-n",
        ns,
        pod,
        "--",
        "sh",
        "-c",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {}",
            addr.replace(':', " ")
        ),
    ]);
    let ok = r.code == 0 && r.stdout.contains("hello-from-busybox");
    if !ok {
        eprintln!("{ns}/{pod} -> {addr}: {} {}{}", r.code, r.stdout, r.stderr);
    }
    ok
}

/// Waits until every `(ns, pod, addr, allowed)` holds at once (rules follow the API within a
/// sync), then checks it again so a late rule change would show.
fn expect(c: &Cluster, what: &str, cases: &[(&str, &str, &str, bool)]) {
    let check = || {
        cases
            .iter()
            .filter(|(ns, pod, addr, want)| reaches(c, ns, pod, addr) != *want)
            .map(|(ns, pod, addr, want)| format!("{ns}/{pod} -> {addr} allowed={want}"))
            .collect::<Vec<_>>()
    };
    let mut last = Vec::new();
    wait_for_within(what, Duration::from_secs(60), || {
        last = check();
        if !last.is_empty() {
            eprintln!("{what}: still wrong: {last:?}");
        }
        last.is_empty().then_some(())
    });
    let again = check();
    assert!(again.is_empty(), "{what}: {again:?}");
}

fn wait_ready(c: &Cluster, ns: &str) {
    c.ok(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        "pod",
        "--all",
        "--timeout=120s",
    ]);
}

#[test]
fn ingress_default_deny_selectors_named_ports_ranges_and_label_changes() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    for (ns, team) in [("friends", "friends"), ("strangers", "strangers")] {
        c.ok(&["create", "namespace", ns]);
        c.ok(&["label", "namespace", ns, &format!("team={team}")]);
    }
    let pods = [
        pod_yaml("default", "web", "app: web", true),
        pod_yaml("default", "client-a", "role: client", false),
        pod_yaml("default", "client-b", "role: other", false),
        pod_yaml("friends", "friend", "role: friend", false),
        pod_yaml("friends", "open", "app: open", true),
        pod_yaml("strangers", "stranger", "role: client", false),
    ]
    .concat();
    c.ok_stdin(&["apply", "-f", "-"], &pods);
    for ns in ["default", "friends", "strangers"] {
        wait_ready(&c, ns);
    }
    let web = pod_ip(&c, "default", "web");
    let open = pod_ip(&c, "friends", "open");
    let (web_http, web_9090, web_9500, open_http) = (
        format!("{web}:8080"),
        format!("{web}:9090"),
        format!("{web}:9500"),
        format!("{open}:8080"),
    );
    expect(
        &c,
        "no policy: everything is open",
        &[
            ("default", "client-b", &web_http, true),
            ("strangers", "stranger", &web_9090, true),
        ],
    );

    // Default deny for the namespace's ingress.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: default}
spec:
  podSelector: {}
  policyTypes: [Ingress]
",
    );
    expect(
        &c,
        "default deny",
        &[
            ("default", "client-b", &web_http, false),
            ("strangers", "stranger", &web_9090, false),
            // A pod no policy selects stays open.
            ("default", "client-b", &open_http, true),
        ],
    );
    // The node itself still reaches its pods (the kubelet's probes keep the pod Ready).
    let addr: std::net::SocketAddr = web_http.parse().unwrap();
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert_eq!(
        jp(
            &c,
            "pod/web",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "True"
    );

    // Allow: role=client pods of this namespace on the named port `http`; pods of namespaces
    // labelled team=friends on 9000-9100.
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
  - from: [{namespaceSelector: {matchLabels: {team: friends}}}]
    ports: [{protocol: TCP, port: 9000, endPort: 9100}]
",
    );
    expect(
        &c,
        "allow by podSelector on a named port, by namespaceSelector on a range",
        &[
            ("default", "client-a", &web_http, true),
            ("default", "client-a", &web_9090, false),
            ("default", "client-b", &web_http, false),
            ("friends", "friend", &web_9090, true),
            ("friends", "friend", &web_9500, false),
            ("friends", "friend", &web_http, false),
            // role=client, but in another namespace: the podSelector is the policy's own.
            ("strangers", "stranger", &web_http, false),
            ("strangers", "stranger", &web_9090, false),
        ],
    );

    // Labels move pods in and out of the allowed set.
    c.ok(&["label", "pod", "client-b", "role=client", "--overwrite"]);
    c.ok(&["label", "pod", "client-a", "role=gone", "--overwrite"]);
    c.ok(&[
        "label",
        "namespace",
        "strangers",
        "team=friends",
        "--overwrite",
    ]);
    expect(
        &c,
        "after label changes",
        &[
            ("default", "client-b", &web_http, true),
            ("default", "client-a", &web_http, false),
            ("strangers", "stranger", &web_9090, true),
        ],
    );

    // The rules are this component's table, in the host's namespace.
    let table = std::process::Command::new("nft")
        .args(["list", "table", "inet", "rudder-netpol"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("chain pod-in-default/web") && table.contains("policy-in-default/allow-web"),
        "{table}"
    );

    // Policies gone: open again.
    c.ok(&["delete", "networkpolicy", "--all"]);
    expect(
        &c,
        "no policies",
        &[
            ("default", "client-a", &web_9500, true),
            ("default", "client-b", &web_9090, true),
        ],
    );
}

#[test]
fn egress_to_ip_blocks_with_except() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    // Another machine on the link, serving the same page; a route back to the pods in case
    // the pod network does not masquerade.
    let www = host.dir.path().join("peer-www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-from-busybox\n").unwrap();
    let mut peer_httpd = host
        .in_peer("busybox")
        .args(["httpd", "-f", "-p", "8080", "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    let route = host
        .in_peer("ip")
        .args(["route", "replace", "10.42.0.0/16", "via", &host.addr])
        .status()
        .unwrap();
    assert!(route.success());
    let pods = [
        pod_yaml("default", "client", "app: client", false),
        pod_yaml("default", "s1", "app: server", true),
        pod_yaml("default", "s2", "app: server", true),
    ]
    .concat();
    c.ok_stdin(&["apply", "-f", "-"], &pods);
    wait_ready(&c, "default");
    let s1 = format!("{}:8080", pod_ip(&c, "default", "s1"));
    let s2 = format!("{}:8080", pod_ip(&c, "default", "s2"));
    let peer = format!("{}:8080", host.peer_addr);
    expect(
        &c,
        "no policy",
        &[
            ("default", "client", &s2, true),
            ("default", "client", &peer, true),
        ],
    );

    let policy = |extra: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: client-egress, namespace: default}}
spec:
  podSelector: {{matchLabels: {{app: client}}}}
  policyTypes: [Egress]
  egress:
  - to: [{{ipBlock: {{cidr: 10.42.0.0/16, except: [{}/32]}}}}]{extra}
",
            pod_ip(&c, "default", "s2")
        )
    };
    c.ok_stdin(&["apply", "-f", "-"], &policy(""));
    expect(
        &c,
        "egress to the pod network except s2",
        &[
            ("default", "client", &s1, true),
            ("default", "client", &s2, false),
            ("default", "client", &peer, false),
            // Egress isolation leaves ingress alone: s2 still reaches the client's peers.
            ("default", "s2", &s1, true),
        ],
    );
    c.ok_stdin(
        &["apply", "-f", "-"],
        &policy(&format!(
            "\n  - to: [{{ipBlock: {{cidr: {}/32}}}}]\n    ports: [{{port: 8080}}]",
            host.peer_addr
        )),
    );
    expect(
        &c,
        "a second ipBlock",
        &[
            ("default", "client", &peer, true),
            ("default", "client", &s2, false),
        ],
    );
    let _ = peer_httpd.kill();
    let _ = peer_httpd.wait();
}

#[test]
fn disable_network_policy_leaves_pods_open() {
    let mut host = host_with_registry();
    let c = host.cluster(&["--disable-network-policy"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &[
            pod_yaml("default", "web", "app: web", true),
            pod_yaml("default", "client", "role: client", false),
        ]
        .concat(),
    );
    wait_ready(&c, "default");
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: default}
spec: {podSelector: {}}
",
    );
    let web = format!("{}:8080", pod_ip(&c, "default", "web"));
    std::thread::sleep(Duration::from_secs(3));
    assert!(reaches(&c, "default", "client", &web));
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "inet", "rudder-netpol"])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "no table when disabled");
}
