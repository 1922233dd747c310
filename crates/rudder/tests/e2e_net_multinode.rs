//! The multi-node pod network with real nodes: three network namespaces on a switch, `rudder
//! server` in the first, `rudder agent --server … --token …` in the others, each with its own
//! containerd. Pods pinned to each node reach each other by pod IP with Flannel's host-gw and
//! vxlan backends, servers see the client pod's own address, the Flannel annotations are on the
//! Nodes, a NetworkPolicy on one node judges pods on the others by their own addresses, and a
//! node that leaves takes its routes with it.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::multinode::{MultiNode, IMAGE};
use support::wait_for_within;

/// An httpd pod (busybox, `-vv` logs each client's address) on node `i`: pinned by nodeName,
/// except on node 3 where the scheduler places it through its hostname label.
fn web_pod(i: usize) -> String {
    let placement = if i == 3 {
        "nodeSelector: {kubernetes.io/hostname: node-3}".to_string()
    } else {
        format!("nodeName: node-{i}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}}}\nspec:\n  {placement}\n  \
         terminationGracePeriodSeconds: 0\n  containers:\n  - name: web\n    image: {IMAGE}\n    \
         imagePullPolicy: IfNotPresent\n    command: [httpd, -f, -vv, -p, '80', -h, /www]\n"
    )
}

/// Starts web-1..web-n and returns their IPs once they are Ready.
fn start_pods(mn: &MultiNode) -> Vec<String> {
    let c = &mn.cluster;
    let n = mn.nodes.len();
    let yaml: Vec<String> = (1..=n).map(web_pod).collect();
    c.ok_stdin(&["apply", "-f", "-"], &yaml.join("---\n"));
    for i in 1..=n {
        let r = c.kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/web-{i}"),
            "--timeout=180s",
        ]);
        assert_eq!(
            r.code,
            0,
            "web-{i}: {}\n{}\n{}",
            r.stderr,
            c.kubectl(&["describe", "pod", &format!("web-{i}")]).stdout,
            mn.log(i)
        );
        assert_eq!(
            c.ok(&[
                "get",
                "pod",
                &format!("web-{i}"),
                "-o",
                "jsonpath={.spec.nodeName}"
            ]),
            format!("node-{i}")
        );
    }
    (1..=n)
        .map(|i| {
            c.ok(&[
                "get",
                "pod",
                &format!("web-{i}"),
                "-o",
                "jsonpath={.status.podIP}",
            ])
        })
        .collect()
}

fn pod_cidr(mn: &MultiNode, i: usize) -> String {
    mn.cluster.ok(&[
        "get",
        "node",
        &format!("node-{i}"),
        "-o",
        "jsonpath={.spec.podCIDR}",
    ])
}

/// An HTTP GET from pod `from` to pod `to`'s IP with busybox nc (the static busybox's wget
/// crashes in glibc's resolver), retried briefly while routes settle.
fn fetch(mn: &MultiNode, from: usize, to_ip: &str) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {to_ip} 80");
    let mut last = String::new();
    for _ in 0..20 {
        let r = mn
            .cluster
            .kubectl(&["exec", &format!("web-{from}"), "--", "sh", "-c", &script]);
        if r.code == 0 && r.stdout.contains("200 OK") {
            return r.stdout;
        }
        last = format!("{}{}", r.stdout, r.stderr);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("web-{from} → {to_ip}:80: {last}");
}

/// Every pod reaches every other by IP (HTTP and ping), and the server sees the client pod's
/// own address (no SNAT inside the cluster).
fn pods_reach_each_other(mn: &MultiNode, ips: &[String]) {
    let n = ips.len();
    for from in 1..=n {
        for to in 1..=n {
            if from == to {
                continue;
            }
            let body = fetch(mn, from, &ips[to - 1]);
            assert!(body.ends_with("\r\n\r\nhello-from-busybox\n"), "{body:?}");
        }
    }
    let ping = mn
        .cluster
        .kubectl(&["exec", "web-1", "--", "ping", "-c", "1", "-W", "3", &ips[2]]);
    assert_eq!(
        ping.code, 0,
        "ping web-1 → web-3: {}{}",
        ping.stdout, ping.stderr
    );
    assert!(
        ping.stdout.contains("1 packets received"),
        "{}",
        ping.stdout
    );
    // busybox httpd -vv logs "[<client address>]:<port>: …" per request.
    for to in 1..=n {
        let log = mn.cluster.ok(&["logs", &format!("web-{to}")]);
        for from in (1..=n).filter(|f| *f != to) {
            let client = &ips[from - 1];
            assert!(
                log.lines().any(|l| l.contains(&format!("{client}]:"))),
                "web-{to} saw no request from web-{from} ({client}):\n{log}"
            );
        }
        for node in &mn.nodes {
            assert!(
                !log.contains(&format!("{}]:", node.addr)),
                "web-{to} saw a node address (SNAT):\n{log}"
            );
        }
    }
}

/// An HTTP GET from the test thread (in node 1's namespace) to `addr`; the response, if any.
fn host_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("200 OK").then_some(out)
}

/// A service whose only endpoint is on node 3 answers a pod on node 1 through its ClusterIP
/// (the pod's own address reaches the server), and its NodePort with
/// `externalTrafficPolicy: Local` answers on node 3 with the client's address kept, while
/// node 2, with no local endpoint, does not answer.
fn services_across_nodes(mn: &MultiNode, ips: &[String]) {
    let c = &mn.cluster;
    c.ok(&["label", "pod", "web-3", "app=web3"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: web3}\nspec:\n  type: NodePort\n  \
         externalTrafficPolicy: Local\n  selector: {app: web3}\n  ports: [{port: 80}]\n",
    );
    let cluster_ip = c.ok(&["get", "svc", "web3", "-o", "jsonpath={.spec.clusterIP}"]);
    let node_port = c.ok(&[
        "get",
        "svc",
        "web3",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let body = fetch(mn, 1, &cluster_ip);
    assert!(body.contains("hello-from-busybox"), "{body}");
    let log = c.ok(&["logs", "web-3"]);
    assert!(
        log.lines()
            .filter(|l| l.contains(&format!("{}]:", ips[0])))
            .count()
            >= 2,
        "web-3 saw web-1's own address through the service:\n{log}"
    );
    let on3 = format!("{}:{node_port}", mn.nodes[2].addr);
    wait_for_within("the NodePort on node 3", Duration::from_secs(30), || {
        host_get(&on3)
    });
    let log = c.ok(&["logs", "web-3"]);
    assert!(
        log.contains(&format!("{}]:", mn.nodes[0].addr)),
        "Local keeps the client's (node 1's) address:\n{log}"
    );
    let on2 = format!("{}:{node_port}", mn.nodes[1].addr);
    assert!(host_get(&on2).is_none(), "node 2 has no local endpoint");
}

/// Flannel's annotations on every Node, with the backend's data.
fn annotations(mn: &MultiNode, backend: &str) -> Vec<Value> {
    mn.nodes
        .iter()
        .map(|node| {
            let a: Value = serde_json::from_str(&mn.cluster.ok(&[
                "get",
                "node",
                &node.name,
                "-o",
                "jsonpath={.metadata.annotations}",
            ]))
            .unwrap();
            assert_eq!(a["flannel.alpha.coreos.com/backend-type"], backend, "{a}");
            assert_eq!(a["flannel.alpha.coreos.com/kube-subnet-manager"], "true");
            assert_eq!(a["flannel.alpha.coreos.com/public-ip"], node.addr.as_str());
            serde_json::from_str(
                a["flannel.alpha.coreos.com/backend-data"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .unwrap()
        })
        .collect()
}

/// Node 3 leaves (its agent stopped, its Node deleted): the others drop its route; the masquerade
/// table stays as it was.
fn node_leaves(mn: &mut MultiNode, cidr3: &str) {
    for i in 1..=2 {
        assert!(
            mn.ip(i, &["route", "show", cidr3]).contains(cidr3),
            "node-{i} has no route to node-3's {cidr3}"
        );
    }
    mn.stop_agent(3);
    mn.cluster.ok(&["delete", "node", "node-3", "--wait=false"]);
    for i in 1..=2 {
        wait_for_within(
            &format!("node-{i} to drop the route to {cidr3}"),
            Duration::from_secs(30),
            || {
                mn.ip(i, &["route", "show", cidr3])
                    .trim()
                    .is_empty()
                    .then_some(())
            },
        );
    }
}

fn masquerade_table(mn: &MultiNode, i: usize) -> String {
    mn.run_in(i, "nft", &["list", "table", "ip", "rudder-flannel"])
}

fn fdb(mn: &MultiNode, i: usize) -> String {
    mn.run_in(i, "bridge", &["fdb", "show", "dev", "flannel.1"])
}

#[test]
fn host_gw_three_nodes() {
    let mut mn = MultiNode::start(3, &["--flannel-backend", "host-gw"]);
    for data in annotations(&mn, "host-gw") {
        assert_eq!(data, Value::Null);
    }
    let ips = start_pods(&mn);
    pods_reach_each_other(&mn, &ips);
    // A route per other node: its podCIDR via its address, on the switch interface.
    for i in 1..=3 {
        for j in (1..=3).filter(|j| *j != i) {
            let cidr = pod_cidr(&mn, j);
            let route = mn.ip(i, &["route", "show", &cidr]);
            assert!(
                route.contains(&format!("{cidr} via {} dev mn", mn.nodes[j - 1].addr)),
                "node-{i} → node-{j}: {route}"
            );
        }
        assert!(mn.ip(i, &["link", "show", "flannel.1"]).is_empty());
        let table = masquerade_table(&mn, i);
        let (own, cc) = (pod_cidr(&mn, i), "10.42.0.0/16");
        assert!(
            table.contains(&format!("ip saddr {own} ip daddr {cc} return")),
            "{table}"
        );
        assert!(table.contains("masquerade"), "{table}");
    }
    // A route of ours that no Node backs (as a previous run would leave) goes; someone
    // else's stays.
    let via = mn.nodes[0].addr.clone();
    for (dst, extra) in [
        ("10.42.99.0/24", &["proto", "0x71"][..]),
        ("10.42.98.0/24", &[]),
    ] {
        let added = mn
            .in_node(2, "ip")
            .args(["route", "add", dst, "via", &via])
            .args(extra)
            .status()
            .unwrap();
        assert!(added.success(), "ip route add {dst}");
    }
    wait_for_within(
        "node-2 to drop the stale route",
        Duration::from_secs(30),
        || {
            mn.ip(2, &["route", "show", "10.42.99.0/24"])
                .trim()
                .is_empty()
                .then_some(())
        },
    );
    assert!(mn
        .ip(2, &["route", "show", "10.42.98.0/24"])
        .contains("10.42.98.0/24"));
    services_across_nodes(&mn, &ips);
    let cidr3 = pod_cidr(&mn, 3);
    node_leaves(&mut mn, &cidr3);
}

#[test]
fn vxlan_three_nodes() {
    let mut mn = MultiNode::start(3, &["--flannel-backend", "vxlan"]);
    let macs: Vec<String> = annotations(&mn, "vxlan")
        .into_iter()
        .map(|d| {
            assert_eq!(d["VNI"], 1, "{d}");
            d["VtepMAC"].as_str().unwrap().to_string()
        })
        .collect();
    for (i, mac) in macs.iter().enumerate() {
        let link = mn.ip(i + 1, &["-d", "link", "show", "flannel.1"]);
        assert!(link.contains(&format!("link/ether {mac}")), "{link}");
        assert!(link.contains("vxlan id 1 "), "{link}");
        assert!(link.contains("dstport 8472"), "{link}");
        assert!(link.contains("mtu 1450"), "{link}");
    }
    let ips = start_pods(&mn);
    // Pods' interfaces get the vxlan MTU from the CNI config.
    let mtu = mn
        .cluster
        .ok(&["exec", "web-2", "--", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1450");
    let tx = |i: usize| -> u64 {
        let j: Value =
            serde_json::from_str(&mn.ip(i, &["-j", "-s", "link", "show", "flannel.1"])).unwrap();
        j[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
    };
    let before = tx(1);
    pods_reach_each_other(&mn, &ips);
    assert!(
        tx(1) > before,
        "traffic from node-1's pods went through flannel.1"
    );
    for i in 1..=3 {
        for j in (1..=3).filter(|j| *j != i) {
            let cidr = pod_cidr(&mn, j);
            let gw = cidr.trim_end_matches("/24");
            let route = mn.ip(i, &["route", "show", &cidr]);
            assert!(
                route.contains(&format!("{cidr} via {gw} dev flannel.1 "))
                    && route.contains("onlink"),
                "node-{i} → node-{j}: {route}"
            );
            let neigh = mn.ip(i, &["neigh", "show", "dev", "flannel.1"]);
            assert!(
                neigh.contains(&format!("{gw} lladdr {} PERMANENT", macs[j - 1])),
                "{neigh}"
            );
            let fdb = fdb(&mn, i);
            assert!(
                fdb.contains(&format!(
                    "{} dst {} self permanent",
                    macs[j - 1],
                    mn.nodes[j - 1].addr
                )),
                "{fdb}"
            );
        }
    }
    policy_across_nodes(&mn, &ips);
    let cidr3 = pod_cidr(&mn, 3);
    let gw3 = cidr3.trim_end_matches("/24").to_string();
    node_leaves(&mut mn, &cidr3);
    for i in 1..=2 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let neigh = mn.ip(i, &["neigh", "show", "dev", "flannel.1"]);
            let fdb = fdb(&mn, i);
            if !neigh.contains(&gw3) && !fdb.contains(&macs[2]) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node-{i} kept node-3's entries:\n{neigh}\n{fdb}\n{}",
                flannel_log(&mn, i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A NetworkPolicy on node 3's pod admits a labelled pod from node 1 and shuts out an
/// unlabelled one from node 2: node 3 enforces it on traffic that arrives through the tunnel,
/// judging peers by the source addresses the pod network keeps.
fn policy_across_nodes(mn: &MultiNode, ips: &[String]) {
    let c = &mn.cluster;
    c.ok(&["label", "pod", "web-3", "app=web-3"]);
    c.ok(&["label", "pod", "web-1", "role=client"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-3-clients}\n\
         spec:\n  podSelector: {matchLabels: {app: web-3}}\n  policyTypes: [Ingress]\n  \
         ingress:\n  - from:\n    - podSelector: {matchLabels: {role: client}}\n    \
         ports:\n    - {protocol: TCP, port: 80}\n",
    );
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 80",
        ips[2]
    );
    wait_for_within(
        "node-3 to shut web-2 out of web-3",
        Duration::from_secs(60),
        || {
            let r = c.kubectl(&["exec", "web-2", "--", "sh", "-c", &script]);
            (!r.stdout.contains("200 OK")).then_some(())
        },
    );
    let body = fetch(mn, 1, &ips[2]);
    assert!(body.ends_with("hello-from-busybox\n"), "{body:?}");
    // Labelling web-2 as a client lets it in too: the policy follows pod labels across nodes.
    c.ok(&["label", "pod", "web-2", "role=client"]);
    let body = fetch(mn, 2, &ips[2]);
    assert!(body.ends_with("hello-from-busybox\n"), "{body:?}");
    c.ok(&["delete", "networkpolicy", "web-3-clients"]);
}

fn flannel_log(mn: &MultiNode, i: usize) -> String {
    mn.log(i)
        .lines()
        .filter(|l| l.contains("flannel"))
        .collect::<Vec<_>>()
        .join("\n")
}
