//! Cluster DNS on a real node (a test host: `rudder server` and its agent in a network
//! namespace): the `kube-dns` Service and EndpointSlice as k3s ships them, and the answers of
//! the DNS server on `<node-ip>:53` for real services and pods, asked from the test process
//! (UDP and TCP) and from a pod with busybox's nslookup. Names outside the cluster go to a
//! resolver the test runs on loopback (`--dns-upstream`), never to the machine's own.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use support::node::{apply, TestHost};
use support::{jp, wait_for_within, Cluster};

const IMAGE: &str = "127.0.0.1:5000/test/busybox:1";

fn request(name: &str, t: RecordType) -> (u16, Vec<u8>) {
    let id = (std::process::id() as u16).wrapping_mul(31) ^ name.len() as u16;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    (id, m.to_vec().unwrap())
}

/// One question over UDP to `server:53`.
fn ask(server: &str, name: &str, t: RecordType) -> Option<Message> {
    ask_at(&format!("{server}:53"), name, t)
}

/// One question over UDP to `addr` (`ip:port`).
fn ask_at(addr: &str, name: &str, t: RecordType) -> Option<Message> {
    let sock = UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let (id, q) = request(name, t);
    sock.send_to(&q, addr).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    let m = Message::from_bytes(&buf[..n]).ok()?;
    (m.metadata.id == id).then_some(m)
}

/// One question over TCP (two-byte length prefix).
fn ask_tcp(server: &str, name: &str, t: RecordType) -> Message {
    let mut s = std::net::TcpStream::connect((server, 53)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (id, q) = request(name, t);
    let mut out = (q.len() as u16).to_be_bytes().to_vec();
    out.extend(q);
    s.write_all(&out).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    let m = Message::from_bytes(&buf).unwrap();
    assert_eq!(m.metadata.id, id);
    m
}

fn addrs(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Asks until the answer has exactly `want` (sorted) addresses.
fn wait_addrs(server: &str, name: &str, want: &[String]) -> Message {
    let mut want = want.to_vec();
    want.sort();
    wait_for_within(
        &format!("{name} -> {want:?}"),
        Duration::from_secs(60),
        || ask(server, name, RecordType::A).filter(|m| addrs(m) == want),
    )
}

/// A resolver on loopback (inside the test host): `192.0.2.7` for every A question.
fn fake_upstream() -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_available = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            if let Some(query) = q.queries.first() {
                if query.query_type() == RecordType::A {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A("192.0.2.7".parse().unwrap())),
                    ));
                }
                r.add_query(query.clone());
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
        }
    });
    addr
}

fn workloads() -> String {
    format!(
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
      containers: [{{name: web, image: "{IMAGE}", command: [httpd, -f, -p, "80", -h, /www]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, protocol: TCP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{name: pg, port: 5432, targetPort: 80, protocol: TCP}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 2
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: "{IMAGE}", command: [httpd, -f, -p, "80", -h, /www]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: alias}}
spec: {{type: ExternalName, externalName: web.default.svc.cluster.local}}
---
apiVersion: v1
kind: Service
metadata: {{name: outside}}
spec: {{type: ExternalName, externalName: www.example.org}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  containers: [{{name: c, image: "{IMAGE}", command: [sleep, "3600"]}}]
"#
    )
}

fn pod_ip(c: &Cluster, pod: &str) -> String {
    wait_for_within(&format!("{pod}'s IP"), Duration::from_secs(120), || {
        let ip = jp(c, &format!("pod/{pod}"), "{.status.podIP}");
        (!ip.is_empty()).then_some(ip)
    })
}

#[test]
fn cluster_dns_answers_for_services_pods_and_outside_names() {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let upstream = fake_upstream();
    let c = host.cluster(&["--dns-upstream", &upstream]);
    let dns = host.addr.clone();

    // kube-dns as k3s ships it, its slice pointing at the node.
    c.wait_until("the kube-dns service", "endpointslices", || {
        c.kubectl(&[
            "get",
            "endpointslice",
            "-n",
            "kube-system",
            "kube-dns-rudder",
        ])
        .code
            == 0
    });
    let svc = c.ok(&["get", "svc", "-n", "kube-system", "kube-dns"]);
    assert!(
        svc.contains("10.43.0.10") && svc.contains("53/UDP,53/TCP,9153/TCP"),
        "{svc}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "svc/kube-dns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.labels}"
        ]),
        r#"{"k8s-app":"kube-dns","kubernetes.io/cluster-service":"true","kubernetes.io/name":"CoreDNS"}"#
    );
    let slices = c.ok(&["get", "endpointslices", "-n", "kube-system"]);
    assert!(
        slices.lines().any(|l| l.starts_with("kube-dns-rudder")
            && l.contains("IPv4")
            && l.contains("53,53,9153")
            && l.contains(&dns)),
        "{slices}"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "endpointslice/kube-dns-rudder",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.metadata.labels.endpointslice\\.kubernetes\\.io/managed-by}"
        ]),
        "rudder-dns"
    );

    apply(&c, &workloads());
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    c.ok(&["rollout", "status", "statefulset/db", "--timeout=120s"]);
    let web_ip = jp(&c, "svc/web", "{.spec.clusterIP}");
    let db0 = pod_ip(&c, "db-0");
    let db1 = pod_ip(&c, "db-1");

    // A ClusterIP service, over UDP and TCP; no AAAA (NODATA with the SOA).
    let m = wait_addrs(
        &dns,
        "web.default.svc.cluster.local.",
        std::slice::from_ref(&web_ip),
    );
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 5);
    assert_eq!(
        addrs(&ask_tcp(
            &dns,
            "web.default.svc.cluster.local.",
            RecordType::A
        )),
        vec![web_ip.clone()]
    );
    let m = ask(&dns, "web.default.svc.cluster.local.", RecordType::AAAA).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    // The headless service: its ready pods, and each StatefulSet pod by hostname.
    wait_addrs(
        &dns,
        "db.default.svc.cluster.local.",
        &[db0.clone(), db1.clone()],
    );
    wait_addrs(
        &dns,
        "db-0.db.default.svc.cluster.local.",
        std::slice::from_ref(&db0),
    );
    // SRV for the named port: one per pod, at its hostname, with the endpoints' port (the
    // target port; CoreDNS reads headless SRV ports from the EndpointSlices).
    let m = ask(
        &dns,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    let mut targets: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(format!("{} {}", s.port, s.target)),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        vec![
            "80 db-0.db.default.svc.cluster.local.",
            "80 db-1.db.default.svc.cluster.local."
        ]
    );
    let m = ask(
        &dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .unwrap();
    assert!(
        matches!(&m.answers[0].data, RData::SRV(s) if s.port == 80 && s.target.to_string() == "web.default.svc.cluster.local."),
        "{m:?}"
    );
    // PTR for the service's and a pod's address.
    let ptr = |ip: &str| {
        let o: Vec<&str> = ip.split('.').collect();
        let m = ask(
            &dns,
            &format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]),
            RecordType::PTR,
        )
        .unwrap();
        match &m.answers.first().map(|r| &r.data) {
            Some(RData::PTR(p)) => p.0.to_string(),
            other => panic!("no PTR for {ip}: {other:?}"),
        }
    };
    assert_eq!(ptr(&web_ip), "web.default.svc.cluster.local.");
    assert_eq!(ptr(&db1), "db-1.db.default.svc.cluster.local.");
    // ExternalName: a CNAME, followed inside the cluster and forwarded outside it.
    let m = ask(&dns, "alias.default.svc.cluster.local.", RecordType::A).unwrap();
    assert!(matches!(m.answers[0].data, RData::CNAME(_)), "{m:?}");
    assert_eq!(addrs(&m), vec![web_ip.clone()]);
    let m = ask(&dns, "outside.default.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(addrs(&m), vec!["192.0.2.7".to_string()], "{m:?}");
    // Pod names, the schema version, NXDOMAIN with the SOA.
    let dashed = db0.replace('.', "-");
    wait_addrs(
        &dns,
        &format!("{dashed}.default.pod.cluster.local."),
        std::slice::from_ref(&db0),
    );
    let m = ask(&dns, "dns-version.cluster.local.", RecordType::TXT).unwrap();
    assert!(matches!(&m.answers[0].data, RData::TXT(t) if t.to_string() == "1.1.0"));
    let m = ask(&dns, "nope.default.svc.cluster.local.", RecordType::A).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));
    // Node names, as k3s's NodeHosts.
    let m = wait_for_within("the node's name", Duration::from_secs(30), || {
        ask(&dns, "test-node.", RecordType::A).filter(|m| !m.answers.is_empty())
    });
    assert_eq!(addrs(&m), vec![dns.clone()]);
    // Other names go to the upstream.
    let m = ask(&dns, "www.example.org.", RecordType::A).unwrap();
    assert_eq!(addrs(&m), vec!["192.0.2.7".to_string()]);
    assert!(m.metadata.recursion_available);

    // From a pod, with busybox's nslookup against the node's address.
    pod_ip(&c, "client");
    c.wait_until("the client pod runs", "get pods", || {
        jp(&c, "pod/client", "{.status.phase}") == "Running"
    });
    let nslookup = |name: &str| {
        let r = c.kubectl(&["exec", "client", "--", "nslookup", name, &dns]);
        format!("{}{}", r.stdout, r.stderr)
    };
    let out = nslookup("web.default.svc.cluster.local");
    assert!(out.contains(&format!("Address: {web_ip}")), "{out}");
    let out = nslookup("db-1.db.default.svc.cluster.local");
    assert!(out.contains(&format!("Address: {db1}")), "{out}");
    let out = nslookup("nope.default.svc.cluster.local");
    assert!(out.contains("NXDOMAIN"), "{out}");

    // `rudder dns` on its own, with the admin kubeconfig, answers the same.
    let mut standalone = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["dns", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args([
                "--listen",
                "127.0.0.1:5354",
                "--metrics-address",
                "127.0.0.1:9154",
                "--dns-upstream",
                &upstream,
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_within("rudder dns answers", Duration::from_secs(30), || {
        ask_at(
            "127.0.0.1:5354",
            "web.default.svc.cluster.local.",
            RecordType::A,
        )
        .filter(|m| addrs(m) == vec![web_ip.clone()])
    });
    let m = ask_at("127.0.0.1:5354", "www.example.org.", RecordType::A).unwrap();
    assert_eq!(addrs(&m), vec!["192.0.2.7".to_string()]);
    let _ = standalone.0.kill();

    // Deleting the service takes its name away.
    c.ok(&["delete", "svc", "web"]);
    wait_for_within("web is gone from DNS", Duration::from_secs(30), || {
        ask(&dns, "web.default.svc.cluster.local.", RecordType::A)
            .filter(|m| m.metadata.response_code == ResponseCode::NXDomain)
    });

    // CoreDNS's metrics on 9153.
    let mut s = std::net::TcpStream::connect((dns.as_str(), 9153)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    assert!(
        body.contains("coredns_dns_requests_total{")
            && body.contains(r#"rcode="NXDOMAIN",plugin="kubernetes""#)
            && body.contains("coredns_dns_request_duration_seconds_bucket"),
        "{body}"
    );
    let _: IpAddr = dns.parse().unwrap();
}

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn disable_coredns_runs_no_dns() {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let c = host.cluster(&["--disable=coredns"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(ask(
        &host.addr,
        "kubernetes.default.svc.cluster.local.",
        RecordType::A
    )
    .is_none());
    let r = c.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("NotFound"), "{}", r.stderr);
}

/// What pods do by default: their resolv.conf names kube-dns's cluster IP (10.43.0.10), which
/// the service proxy sends to this server.
#[test]
fn pods_resolve_through_the_kube_dns_cluster_ip() {
    let mut host = TestHost::new();
    host.enter();
    host.start_registry();
    let upstream = fake_upstream();
    let c = host.cluster(&["--dns-upstream", &upstream]);
    apply(&c, &workloads());
    c.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let web_ip = jp(&c, "svc/web", "{.spec.clusterIP}");
    c.wait_until("the client pod runs", "pods", || {
        jp(&c, "pod/client", "{.status.phase}") == "Running"
    });
    let resolv = c.ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 10.43.0.10"), "{resolv}");
    let lookup = |name: &str| {
        let r = c.kubectl(&["exec", "client", "--", "nslookup", name]);
        format!("{}{}", r.stdout, r.stderr)
    };
    let out = wait_for_within(
        "nslookup through 10.43.0.10",
        Duration::from_secs(60),
        || {
            let out = lookup("web.default.svc.cluster.local");
            out.contains(&format!("Address: {web_ip}")).then_some(out)
        },
    );
    assert!(out.contains("10.43.0.10"), "{out}");
    let out = lookup("www.example.org");
    assert!(out.contains("192.0.2.7"), "{out}");
}
