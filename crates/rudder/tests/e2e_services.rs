//! End to end: Service ClusterIP and NodePort allocation as the real kubectl (v1.37) sees it,
//! on both the embedded store and etcd.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use support::{Backend, Cluster};

/// The columns of the one `kubectl get svc NAME` row, after the header.
fn row(c: &Cluster, name: &str) -> Vec<String> {
    let out = c.ok(&["get", "svc", name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    lines[1].split_whitespace().map(str::to_string).collect()
}

fn cluster_ip(c: &Cluster, name: &str) -> Ipv4Addr {
    let ip = c.ok(&["get", "svc", name, "-o", "jsonpath={.spec.clusterIP}"]);
    ip.parse()
        .unwrap_or_else(|_| panic!("{name} has no ClusterIP: {ip:?}"))
}

fn in_service_cidr(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    (a, b) == (10, 43) && ip != Ipv4Addr::new(10, 43, 0, 0) && ip != Ipv4Addr::new(10, 43, 255, 255)
}

fn manifest(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// Create from a manifest and require failure; kubectl's stderr.
fn refused(c: &Cluster, manifest: &str) -> String {
    let r = c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], manifest);
    assert_ne!(r.code, 0, "created anyway: {}", r.stdout);
    r.stderr
}

fn cluster_ip_allocation(b: Backend) {
    let c = Cluster::start(b);
    // The API server's own service, as upstream's bootstrap controller creates it.
    assert_eq!(
        row(&c, "kubernetes")[..5],
        ["kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    );
    assert_eq!(
        c.ok(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.metadata.labels.component} {.metadata.labels.provider} {.spec.ports[0].name} {.spec.ports[0].targetPort}"
        ]),
        format!("apiserver kubernetes https {}", c.port)
    );

    assert_eq!(
        c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]),
        "service/web created\n"
    );
    let web = row(&c, "web");
    assert_eq!(
        (web[1].as_str(), web[3].as_str(), web[4].as_str()),
        ("ClusterIP", "<none>", "80/TCP")
    );
    let ip: Ipv4Addr = web[2].parse().unwrap();
    assert!(
        in_service_cidr(ip) && ip != Ipv4Addr::new(10, 43, 0, 1),
        "{ip}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.clusterIPs} {.spec.ipFamilies} {.spec.ipFamilyPolicy}"
        ]),
        format!(r#"["{ip}"] ["IPv4"] SingleStack"#)
    );

    // A server-side dry run shows an IP but keeps nothing: that IP can then be requested.
    let dry = c.ok(&[
        "create",
        "service",
        "clusterip",
        "dry",
        "--tcp=80",
        "--dry-run=server",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let dry: Ipv4Addr = dry.parse().unwrap();
    assert!(in_service_cidr(dry), "{dry}");
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "took-dry",
            &format!("  clusterIP: {dry}\n  ports:\n  - port: 80\n"),
        ),
    );
    assert_eq!(cluster_ip(&c, "took-dry"), dry);

    // Deleting releases: the IP can be requested again, and a recreated service gets one.
    c.ok(&["delete", "svc", "web"]);
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "reuse",
            &format!("  clusterIP: {ip}\n  ports:\n  - port: 80\n"),
        ),
    );
    assert_eq!(cluster_ip(&c, "reuse"), ip);
    c.ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    assert!(in_service_cidr(cluster_ip(&c, "web")));

    // Headless services get none; ExternalName services neither.
    c.ok(&[
        "create",
        "service",
        "clusterip",
        "headless",
        "--clusterip=None",
    ]);
    assert_eq!(row(&c, "headless")[2], "None");
    c.ok(&[
        "create",
        "service",
        "externalname",
        "ext",
        "--external-name=example.com",
    ]);
    assert_eq!(row(&c, "ext")[2..4], ["<none>", "example.com"]);

    // Many services, all distinct.
    let many: String = (0..20)
        .map(|i| manifest(&format!("many-{i}"), "  ports:\n  - port: 80\n") + "---\n")
        .collect();
    c.ok_stdin(&["create", "--validate=false", "-f", "-"], &many);
    let all = c.ok(&["get", "svc", "-o", "jsonpath={.items[*].spec.clusterIP}"]);
    let ips: Vec<&str> = all.split_whitespace().filter(|ip| *ip != "None").collect();
    let distinct: BTreeSet<&str> = ips.iter().copied().collect();
    // kubernetes, web, took-dry, reuse and the 20 (ext is ExternalName, headless has None).
    assert_eq!(ips.len(), 24, "{all}");
    assert_eq!(distinct.len(), ips.len(), "two services share an IP: {all}");
    assert!(ips.iter().all(|ip| in_service_cidr(ip.parse().unwrap())));
}

fn node_port_allocation(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "service", "nodeport", "np", "--tcp=80:8080"]);
    let np = row(&c, "np");
    assert_eq!(np[1], "NodePort");
    assert!(in_service_cidr(np[2].parse().unwrap()), "{np:?}");
    let port: u16 = np[4]
        .strip_prefix("80:")
        .and_then(|p| p.strip_suffix("/TCP"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("PORT(S) is not 80:<nodePort>/TCP: {np:?}"));
    assert!((30000..=32767).contains(&port), "{port}");

    // ClusterIP -> NodePort allocates a node port, and keeps the IP.
    c.ok(&["create", "service", "clusterip", "grow", "--tcp=80"]);
    let ip = cluster_ip(&c, "grow");
    c.ok(&[
        "patch",
        "svc",
        "grow",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let grown = row(&c, "grow");
    assert_eq!(
        (grown[1].as_str(), grown[2].parse::<Ipv4Addr>().unwrap()),
        ("NodePort", ip)
    );
    let grown_port = c.ok(&[
        "get",
        "svc",
        "grow",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert!(
        grown[4].starts_with(&format!("80:{grown_port}/")),
        "{grown:?}"
    );

    // NodePort -> ClusterIP without the node port releases it.
    c.ok(&[
        "patch",
        "svc",
        "grow",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/type","value":"ClusterIP"},{"op":"remove","path":"/spec/ports/0/nodePort"}]"#,
    ]);
    assert_eq!(row(&c, "grow")[4], "80/TCP");
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "reuse-port",
            &format!("  type: NodePort\n  ports:\n  - port: 80\n    protocol: TCP\n    nodePort: {grown_port}\n"),
        ),
    );
    assert!(row(&c, "reuse-port")[4].starts_with(&format!("80:{grown_port}/")));
}

fn taken_and_out_of_range_values_are_refused(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "fixed",
            "  type: NodePort\n  clusterIP: 10.43.0.5\n  ports:\n  - port: 80\n    protocol: TCP\n    nodePort: 30080\n",
        ),
    );
    assert_eq!(
        row(&c, "fixed")[2..5],
        ["10.43.0.5", "<none>", "80:30080/TCP"]
    );

    let err = refused(
        &c,
        &manifest("dup-ip", "  clusterIP: 10.43.0.5\n  ports:\n  - port: 80\n"),
    );
    assert!(
        err.contains(r#"The Service "dup-ip" is invalid: spec.clusterIPs: Invalid value: ["10.43.0.5"]: failed to allocate IP 10.43.0.5: provided IP is already allocated"#),
        "{err}"
    );
    let err = refused(
        &c,
        &manifest(
            "apiserver-ip",
            "  clusterIP: 10.43.0.1\n  ports:\n  - port: 80\n",
        ),
    );
    assert!(
        err.contains("failed to allocate IP 10.43.0.1: provided IP is already allocated"),
        "{err}"
    );
    let err = refused(
        &c,
        &manifest(
            "dup-port",
            "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30080\n",
        ),
    );
    assert!(
        err.contains(r#"The Service "dup-port" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"#),
        "{err}"
    );
    let err = refused(
        &c,
        &manifest(
            "elsewhere",
            "  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n",
        ),
    );
    assert!(
        err.contains(r#"spec.clusterIPs: Invalid value: ["10.96.0.10"]: failed to allocate IP 10.96.0.10: the provided network does not match the current range"#),
        "{err}"
    );
    let err = refused(
        &c,
        &manifest(
            "broadcast",
            "  clusterIP: 10.43.255.255\n  ports:\n  - port: 80\n",
        ),
    );
    assert!(
        err.contains("failed to allocate IP 10.43.255.255: the provided IP (10.43.255.255) is not in the valid range. The range of valid IPs is 10.43.0.0/16"),
        "{err}"
    );
    let err = refused(
        &c,
        &manifest(
            "low-port",
            "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 8080\n",
        ),
    );
    assert!(
        err.contains("spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"),
        "{err}"
    );
    // None of the refused creates kept anything.
    assert_eq!(
        c.ok(&["get", "svc", "-o", "name"]),
        "service/fixed\nservice/kubernetes\n"
    );
    c.ok(&["delete", "svc", "fixed"]);
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "again",
            "  type: NodePort\n  clusterIP: 10.43.0.5\n  ports:\n  - port: 80\n    nodePort: 30080\n",
        ),
    );
}

fn allocations_survive_restart(b: Backend) {
    let mut c = Cluster::start(b);
    c.ok_stdin(
        &["create", "--validate=false", "-f", "-"],
        &manifest(
            "kept",
            "  type: NodePort\n  clusterIP: 10.43.0.7\n  ports:\n  - port: 80\n    nodePort: 30007\n",
        ),
    );
    c.ok(&["create", "service", "clusterip", "dynamic", "--tcp=80"]);
    let dynamic = cluster_ip(&c, "dynamic");
    c.restart();
    // The rebuilt allocator knows every stored value.
    let err = refused(
        &c,
        &manifest(
            "steal-ip",
            &format!("  clusterIP: {dynamic}\n  ports:\n  - port: 80\n"),
        ),
    );
    assert!(err.contains("provided IP is already allocated"), "{err}");
    let err = refused(
        &c,
        &manifest(
            "steal-port",
            "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 30007\n",
        ),
    );
    assert!(err.contains("provided port is already allocated"), "{err}");
    let err = refused(
        &c,
        &manifest(
            "steal-apiserver",
            "  clusterIP: 10.43.0.1\n  ports:\n  - port: 80\n",
        ),
    );
    assert!(err.contains("provided IP is already allocated"), "{err}");
    // The bootstrap found its service in place.
    assert_eq!(row(&c, "kubernetes")[2], "10.43.0.1");
    c.ok(&["create", "service", "clusterip", "after", "--tcp=80"]);
    let after = cluster_ip(&c, "after");
    assert!(![
        dynamic,
        Ipv4Addr::new(10, 43, 0, 7),
        Ipv4Addr::new(10, 43, 0, 1)
    ]
    .contains(&after));
}

on_both_backends!(
    cluster_ip_allocation,
    node_port_allocation,
    taken_and_out_of_range_values_are_refused,
    allocations_survive_restart,
);
