//! Golden tables for small cases, each also checked by `nft -c` where it can run.

use super::*;
use serde_json::json;

fn pod(ns: &str, name: &str, node: &str, ip: &str, labels: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
            "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .unwrap()
}

fn ns(name: &str, labels: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .unwrap()
}

/// The pods every case uses: `web` (app=web) and `db` (app=db) on this node, `client`
/// (role=client) on another node, `other` (app=web) in namespace `prod` here, and a
/// host-network pod.
fn pods() -> Vec<Pod> {
    let mut host: Pod = pod(
        "default",
        "host",
        "n1",
        "192.168.1.1",
        json!({"app": "web"}),
    );
    host.spec.as_mut().unwrap().host_network = Some(true);
    vec![
        pod("default", "web", "n1", "10.42.0.5", json!({"app": "web"})),
        pod("default", "db", "n1", "10.42.0.6", json!({"app": "db"})),
        pod(
            "default",
            "client",
            "n2",
            "10.42.1.7",
            json!({"role": "client"}),
        ),
        pod("prod", "other", "n1", "10.42.0.8", json!({"app": "web"})),
        host,
    ]
}

fn namespaces() -> Vec<Namespace> {
    vec![
        ns("default", json!({"kubernetes.io/metadata.name": "default"})),
        ns(
            "prod",
            json!({"kubernetes.io/metadata.name": "prod", "env": "prod"}),
        ),
    ]
}

fn render_one(spec: serde_json::Value) -> String {
    let p = policy("default", "p", spec);
    let text = render("n1", [&p], pods().iter(), namespaces().iter());
    nft_check(&text);
    text
}

/// `nft -c` in a throwaway network namespace, when `unshare` and nft can run here (root).
fn nft_check(table: &str) {
    use std::io::Write;
    let Ok(mut child) = std::process::Command::new("unshare")
        .args(["--net", "nft", "-c", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        return;
    };
    let script = crate::nft::replace_script(table);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("unshare failed") || err.contains("Operation not permitted") {
        return;
    }
    assert!(out.status.success(), "nft -c rejected:\n{script}\n{err}");
}

/// The two base chains, with their verdict maps' elements when there are any.
fn base(ingress: &str, egress: &str) -> String {
    let chain = |dir: &str, key: &str, map: &str| {
        let vmap = if map.is_empty() {
            String::new()
        } else {
            format!("\t\tip {key} vmap {{ {map} }}\n")
        };
        format!(
            "\tchain forward-{dir} {{\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tct state established,related accept\n{vmap}\t}}\n"
        )
    };
    chain("ingress", "daddr", ingress) + &chain("egress", "saddr", egress) + "}\n"
}

/// A pod's chain: itself, its node (ingress), the policies, drop.
fn pod_chain(dir: &str, pod: &str, ip: &str, policies: &[&str]) -> String {
    let (own, node) = if dir == "in" {
        ("saddr", "\t\tfib saddr type local accept\n")
    } else {
        ("daddr", "")
    };
    let jumps: String = policies.iter().map(|p| format!("\t\tjump {p}\n")).collect();
    format!("\tchain pod-{dir}-default/{pod} {{\n\t\tip {own} {ip} accept\n{node}{jumps}\t\tdrop\n\t}}\n")
}

fn set(name: &str, v6: bool, elements: &str) -> String {
    let ty = if v6 { "ipv6_addr" } else { "ipv4_addr" };
    format!("\tset {name} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\telements = {{ {elements} }}\n\t}}\n")
}

const HEAD: &str = "table inet rudder-netpol {\n";

#[test]
fn no_policies_leaves_every_pod_open() {
    let text = render("n1", [], pods().iter(), namespaces().iter());
    assert_eq!(text, HEAD.to_string() + &base("", ""));
    nft_check(&text);
}

#[test]
fn default_deny_ingress_isolates_the_selected_pods_of_this_node_only() {
    let text = render_one(json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    let p = "policy-in-default/p";
    assert_eq!(
        text,
        [
            HEAD,
            "\tchain policy-in-default/p {\n\t}\n",
            &pod_chain("in", "db", "10.42.0.6", &[p]),
            &pod_chain("in", "web", "10.42.0.5", &[p]),
            &base(
                "10.42.0.6 : jump pod-in-default/db, 10.42.0.5 : jump pod-in-default/web",
                ""
            ),
        ]
        .concat()
    );
}

#[test]
fn pod_selector_namespace_selector_and_both() {
    let text = render_one(json!({
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 5432}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"env": "prod"}}}]},
            {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}],
             "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "SCTP"}]},
        ],
    }));
    assert_eq!(
        text,
        [
            HEAD,
            // role=client of the policy's namespace (on another node: a peer all the same).
            &set("policy-in-default/p/0", false, "10.42.1.7"),
            // Every pod of namespaces labelled env=prod.
            &set("policy-in-default/p/1", false, "10.42.0.8"),
            // app=web in every namespace; the host-network pod is not a peer.
            &set("policy-in-default/p/2", false, "10.42.0.5, 10.42.0.8"),
            "\tchain policy-in-default/p {
\t\tip saddr @policy-in-default/p/0 tcp dport 5432 accept
\t\tip saddr @policy-in-default/p/1 accept
\t\tip saddr @policy-in-default/p/2 udp dport 53 accept
\t\tip saddr @policy-in-default/p/2 meta l4proto sctp accept
\t}
",
            &pod_chain("in", "db", "10.42.0.6", &["policy-in-default/p"]),
            &base("10.42.0.6 : jump pod-in-default/db", ""),
        ]
        .concat()
    );
}

#[test]
fn egress_ip_block_with_except_and_implied_policy_types() {
    let text = render_one(json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.1.0/24"]}},
                    {"ipBlock": {"cidr": "fd00::/64"}}]},
        ],
    }));
    // No policyTypes: Ingress (no rules: deny) and Egress, as upstream defaults them.
    assert_eq!(
        text,
        [
            HEAD,
            &set(
                "policy-out-default/p/0",
                false,
                "10.0.0.0/24, 10.0.2.0-10.0.255.255"
            ),
            &set("policy-out-default/p/0/v6", true, "fd00::/64"),
            "\tchain policy-in-default/p {
\t}
\tchain policy-out-default/p {
\t\tip daddr @policy-out-default/p/0 accept
\t\tip6 daddr @policy-out-default/p/0/v6 accept
\t}
",
            &pod_chain("in", "web", "10.42.0.5", &["policy-in-default/p"]),
            &pod_chain("out", "web", "10.42.0.5", &["policy-out-default/p"]),
            &base(
                "10.42.0.5 : jump pod-in-default/web",
                "10.42.0.5 : jump pod-out-default/web"
            ),
        ]
        .concat()
    );
}

#[test]
fn named_ports_resolve_on_the_destination_and_end_port_is_a_range() {
    let text = render_one(json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9100}, {"port": 9050}, {"port": "nope"}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                    "ports": [{"port": "dns", "protocol": "UDP"}, {"port": "http", "protocol": "UDP"}]}],
    }));
    // Ingress: `http` is 8080/TCP on the selected pod; `nope` names nothing (matches
    // nothing); 9050 lies inside 9000-9100. Egress: `dns` is 53/UDP on the peer db (the
    // pods with it are the rule's peers: one set serves both); `http` over UDP names no port.
    assert_eq!(
        text,
        [
            HEAD,
            &set("policy-out-default/p/0", false, "10.42.0.6"),
            "\tchain policy-in-default/p {
\t\ttcp dport 9000-9100 accept
\t\tip daddr 10.42.0.5 tcp dport 8080 accept
\t}
\tchain policy-out-default/p {
\t\tip daddr @policy-out-default/p/0 udp dport 53 accept
\t}
",
            &pod_chain("in", "web", "10.42.0.5", &["policy-in-default/p"]),
            &pod_chain("out", "web", "10.42.0.5", &["policy-out-default/p"]),
            &base(
                "10.42.0.5 : jump pod-in-default/web",
                "10.42.0.5 : jump pod-out-default/web"
            ),
        ]
        .concat()
    );
}

#[test]
fn long_names_are_bounded_and_stable() {
    let long = "x".repeat(253);
    let a = bounded(format!("policy-in-{}/{long}", "n".repeat(63)));
    assert!(a.len() <= 240, "{}", a.len());
    assert_eq!(a, bounded(format!("policy-in-{}/{long}", "n".repeat(63))));
    assert_ne!(a, bounded(format!("policy-in-{}/{long}y", "n".repeat(63))));
}

#[test]
fn dual_stack_pods_get_both_families() {
    let mut p = pod("default", "web", "n1", "10.42.0.5", json!({"app": "web"}));
    p.status.as_mut().unwrap().pod_ips = Some(vec![
        serde_json::from_value(json!({"ip": "10.42.0.5"})).unwrap(),
        serde_json::from_value(json!({"ip": "fd42::5"})).unwrap(),
    ]);
    let np = policy(
        "default",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    );
    let text = render("n1", [&np], [&p], namespaces().iter());
    nft_check(&text);
    for want in [
        "\t\tip saddr 10.42.0.5 accept\n",
        "\t\tip6 saddr fd42::5 accept\n",
        "\t\tip6 saddr @policy-in-default/p/0/v6 accept\n",
        "\t\tip6 daddr vmap { fd42::5 : jump pod-in-default/web }\n",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}
