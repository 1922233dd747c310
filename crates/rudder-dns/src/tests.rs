//! Answers through the request handler, for an index built from API objects; the expected
//! answers are CoreDNS's (kubernetes plugin with `pods insecure`, as k3s configures it).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncoder};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use crate::{DnsHandler, DnsMetrics, Forwarder, Index, Resolver};

#[derive(Clone)]
struct Capture {
    max: u16,
    out: Arc<Mutex<Vec<u8>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // As hickory's UDP response handle: the client's EDNS size, else 512 bytes.
        let max = response
            .edns()
            .map_or(512, |e| e.max_payload())
            .min(self.max);
        let mut buf = Vec::new();
        let mut enc = BinEncoder::new(&mut buf);
        enc.set_max_size(max);
        let info = response.destructive_emit(&mut enc)?;
        *self.out.lock().unwrap() = buf;
        Ok(info)
    }
}

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).unwrap()
}

fn svc(ns: &str, name: &str, spec: serde_json::Value) -> Service {
    service(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
}

fn eps(
    ns: &str,
    name: &str,
    service: &str,
    endpoints: serde_json::Value,
    ports: serde_json::Value,
) -> EndpointSlice {
    slice(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }))
}

/// The cluster every test asks about.
fn cluster() -> Arc<Index> {
    let index = Arc::new(Index::new());
    let nss: Vec<Namespace> = ["default", "kube-system", "other"]
        .iter()
        .map(|n| serde_json::from_value(json!({"metadata": {"name": n}})).unwrap())
        .collect();
    index.replace_namespaces(&nss);
    index.replace_services(&[
        svc(
            "default",
            "web",
            json!({"type": "ClusterIP", "clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"],
                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                             {"name": "metrics", "port": 9090, "protocol": "TCP"}]}),
        ),
        svc(
            "default",
            "single",
            json!({"clusterIP": "10.43.0.21", "ports": [{"port": 8080, "protocol": "TCP"}]}),
        ),
        svc(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}),
        ),
        svc(
            "default",
            "anon",
            json!({"clusterIP": "None", "ports": [{"port": 80, "protocol": "TCP"}]}),
        ),
        svc("default", "empty", json!({"clusterIP": "None"})),
        svc(
            "default",
            "ext",
            json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}),
        ),
        svc(
            "default",
            "ext-out",
            json!({"type": "ExternalName", "externalName": "example.org"}),
        ),
        svc(
            "kube-system",
            "kube-dns",
            json!({"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}),
        ),
    ]);
    index.replace_slices(&[
        eps(
            "default",
            "db-abc",
            "db",
            json!([
                {"addresses": ["10.42.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.6"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.7"], "hostname": "db-2", "conditions": {"ready": false}},
            ]),
            json!([{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        ),
        eps(
            "default",
            "anon-abc",
            "anon",
            json!([{"addresses": ["10.42.0.8"]}]),
            json!([{"name": "", "port": 80, "protocol": "TCP"}]),
        ),
        eps(
            "default",
            "web-abc",
            "web",
            json!([{"addresses": ["10.42.0.10"], "conditions": {"ready": true}}]),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        ),
        eps(
            "kube-system",
            "kube-dns-rudder",
            "kube-dns",
            json!([{"addresses": ["10.0.0.2"], "conditions": {"ready": true}}]),
            json!([{"name": "dns", "port": 53, "protocol": "UDP"}]),
        ),
    ]);
    index
}

fn handler_with(index: Arc<Index>, upstreams: Vec<SocketAddr>) -> DnsHandler {
    DnsHandler {
        resolver: Arc::new(Resolver::new(
            "cluster.local",
            index,
            Forwarder::new(upstreams),
            vec!["10.0.0.2".parse().unwrap()],
        )),
        metrics: Arc::new(DnsMetrics::default()),
    }
}

fn handler() -> DnsHandler {
    handler_with(cluster(), vec![])
}

async fn ask_with(h: &DnsHandler, name: &str, t: RecordType, edns: Option<u16>) -> Message {
    ask_from(h, "10.42.0.50:5353", name, t, edns).await
}

async fn ask_from(
    h: &DnsHandler,
    src: &str,
    name: &str,
    t: RecordType,
    edns: Option<u16>,
) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    let req =
        Request::from_bytes(m.to_vec().unwrap(), src.parse().unwrap(), Protocol::Udp).unwrap();
    let cap = Capture {
        max: u16::MAX,
        out: Arc::default(),
    };
    h.handle_request::<_, TokioTime>(&req, cap.clone()).await;
    let bytes = cap.out.lock().unwrap().clone();
    let r = Message::from_bytes(&bytes).unwrap();
    assert_eq!(r.metadata.id, 4242);
    assert_eq!(r.metadata.message_type, MessageType::Response);
    r
}

async fn ask(h: &DnsHandler, name: &str, t: RecordType) -> Message {
    ask_with(h, name, t, None).await
}

fn ips(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// NXDOMAIN (or NODATA) with the zone's SOA for negative caching, as CoreDNS's BackendError.
fn assert_negative(m: &Message, rcode: ResponseCode) {
    assert_eq!(m.metadata.response_code, rcode, "{m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
    assert!(m.metadata.authoritative);
    assert_eq!(m.authorities.len(), 1, "{m:?}");
    let soa = &m.authorities[0];
    assert_eq!(soa.name.to_string(), "cluster.local.");
    assert_eq!(soa.ttl, 5);
    let RData::SOA(s) = &soa.data else {
        panic!("not an SOA: {soa:?}")
    };
    assert_eq!(s.mname.to_string(), "ns.dns.cluster.local.");
    assert_eq!(s.rname.to_string(), "hostmaster.cluster.local.");
    assert_eq!(
        (s.refresh, s.retry, s.expire, s.minimum),
        (7200, 1800, 86400, 5)
    );
}

#[tokio::test]
async fn cluster_ip_service_a_and_aaaa_nodata() {
    let h = handler();
    let m = ask(&h, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert!(m.metadata.recursion_desired);
    assert_eq!(ips(&m), vec![ip("10.43.0.20")]);
    assert_eq!(m.answers[0].ttl, 5);
    assert_eq!(
        m.answers[0].name.to_string(),
        "web.default.svc.cluster.local."
    );
    // An IPv4-only service has no AAAA: NODATA, not NXDOMAIN.
    let m = ask(&h, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_negative(&m, ResponseCode::NoError);
    // Case-insensitive, the owner name as asked.
    let m = ask(&h, "WEB.Default.SVC.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.43.0.20")]);
    assert_eq!(
        m.answers[0].name.to_string(),
        "WEB.Default.SVC.cluster.local."
    );
}

#[tokio::test]
async fn nxdomain_and_nodata_follow_coredns() {
    let h = handler();
    for name in [
        "missing.default.svc.cluster.local.",
        "web.nosuchns.svc.cluster.local.",
        "foo.cluster.local.",
        // What the search path tries first for an absolute name with fewer than 5 dots.
        "web.default.svc.cluster.local.default.svc.cluster.local.",
        "a.b.c.web.default.svc.cluster.local.",
        "nosuchns.svc.cluster.local.",
    ] {
        let m = ask(&h, name, RecordType::A).await;
        assert_negative(&m, ResponseCode::NXDomain);
    }
    for name in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "pod.cluster.local.",
        "cluster.local.",
        "default.pod.cluster.local.",
    ] {
        let m = ask(&h, name, RecordType::A).await;
        assert_negative(&m, ResponseCode::NoError);
    }
    // Other types: NODATA when the name exists, NXDOMAIN when it does not.
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::MX).await,
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&h, "nope.default.svc.cluster.local.", RecordType::MX).await,
        ResponseCode::NXDomain,
    );
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::HTTPS).await,
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::CNAME).await,
        ResponseCode::NoError,
    );
    // SOA is answered at the apex only, NODATA below it (whether or not the name exists).
    let m = ask(&h, "cluster.local.", RecordType::SOA).await;
    assert_eq!(m.answers.len(), 1);
    assert!(matches!(m.answers[0].data, RData::SOA(_)));
    assert_negative(
        &ask(&h, "nope.default.svc.cluster.local.", RecordType::SOA).await,
        ResponseCode::NoError,
    );
    // Zone transfers are refused.
    let m = ask(&h, "cluster.local.", RecordType::AXFR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn headless_service_ready_endpoints_and_hostnames() {
    let h = handler();
    let m = ask(&h, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.42.0.5"), ip("10.42.0.6")]);
    let m = ask(&h, "db-1.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.42.0.6")]);
    // Not ready: not published.
    assert_negative(
        &ask(&h, "db-2.db.default.svc.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    // No ready endpoints at all: NXDOMAIN (the specification's wording).
    assert_negative(
        &ask(&h, "empty.default.svc.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    // An endpoint without a hostname is named by its dashed address, on ClusterIP services too.
    let m = ask(
        &h,
        "10-42-0-8.anon.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(ips(&m), vec![ip("10.42.0.8")]);
    let m = ask(
        &h,
        "10-42-0-10.web.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    assert_eq!(ips(&m), vec![ip("10.42.0.10")]);
}

fn srvs(m: &Message) -> Vec<(u16, u16, u16, String)> {
    let mut v: Vec<_> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.priority, s.weight, s.port, s.target.to_string())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn additional_ips(m: &Message) -> Vec<(String, IpAddr)> {
    let mut v: Vec<_> = m
        .additionals
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_string(), IpAddr::V4(a.0))),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn srv_for_named_ports() {
    let h = handler();
    let m = ask(
        &h,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        srvs(&m),
        vec![(0, 100, 80, "web.default.svc.cluster.local.".into())]
    );
    assert_eq!(
        additional_ips(&m),
        vec![("web.default.svc.cluster.local.".into(), ip("10.43.0.20"))]
    );
    // Protocol mismatch or unknown port name: NXDOMAIN.
    assert_negative(
        &ask(
            &h,
            "_http._udp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await,
        ResponseCode::NXDomain,
    );
    assert_negative(
        &ask(
            &h,
            "_nope._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await,
        ResponseCode::NXDomain,
    );
    // The service name itself lists every port, the weight shared out.
    let m = ask(&h, "web.default.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(
        srvs(&m),
        vec![
            (0, 50, 80, "web.default.svc.cluster.local.".into()),
            (0, 50, 9090, "web.default.svc.cluster.local.".into())
        ]
    );
    // Headless: one record per ready endpoint, pointing at its hostname.
    let m = ask(
        &h,
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        srvs(&m),
        vec![
            (0, 50, 5432, "db-0.db.default.svc.cluster.local.".into()),
            (0, 50, 5432, "db-1.db.default.svc.cluster.local.".into())
        ]
    );
    assert_eq!(
        additional_ips(&m),
        vec![
            ("db-0.db.default.svc.cluster.local.".into(), ip("10.42.0.5")),
            ("db-1.db.default.svc.cluster.local.".into(), ip("10.42.0.6"))
        ]
    );
    let m = ask(&h, "anon.default.svc.cluster.local.", RecordType::SRV).await;
    assert_eq!(
        srvs(&m),
        vec![(
            0,
            100,
            80,
            "10-42-0-8.anon.default.svc.cluster.local.".into()
        )]
    );
    // No SRV for an ExternalName service: NODATA for its name, NXDOMAIN with a port.
    assert_negative(
        &ask(&h, "ext.default.svc.cluster.local.", RecordType::SRV).await,
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(
            &h,
            "_http._tcp.ext.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await,
        ResponseCode::NXDomain,
    );
}

fn ptrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_string()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn ptr_for_service_and_endpoint_ips() {
    let h = handler();
    let m = ask(&h, "20.0.43.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptrs(&m), vec!["web.default.svc.cluster.local."]);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 5);
    let m = ask(&h, "5.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptrs(&m), vec!["db-0.db.default.svc.cluster.local."]);
    let m = ask(&h, "10.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptrs(&m), vec!["10-42-0-10.web.default.svc.cluster.local."]);
    // Unknown addresses fall through to the upstreams (none here: SERVFAIL).
    let m = ask(&h, "99.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn external_name_is_a_cname() {
    let h = handler();
    // Inside the zone the target is resolved too.
    let m = ask(&h, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.answers.len(), 2, "{m:?}");
    let RData::CNAME(c) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(c.0.to_string(), "web.default.svc.cluster.local.");
    assert_eq!(ips(&m), vec![ip("10.43.0.20")]);
    assert_eq!(
        m.answers[1].name.to_string(),
        "web.default.svc.cluster.local."
    );
    let m = ask(&h, "ext-out.default.svc.cluster.local.", RecordType::CNAME).await;
    let RData::CNAME(c) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(c.0.to_string(), "example.org.");
}

#[tokio::test]
async fn pods_insecure() {
    let h = handler();
    let m = ask(&h, "10-42-0-99.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.42.0.99")]);
    assert_negative(
        &ask(
            &h,
            "10-42-0-99.default.pod.cluster.local.",
            RecordType::AAAA,
        )
        .await,
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&h, "10-42-0-99.nosuchns.pod.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    assert_negative(
        &ask(&h, "not-an-ip.default.pod.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    let m = ask(&h, "fd00--1.default.pod.cluster.local.", RecordType::AAAA).await;
    assert_eq!(ips(&m), vec![ip("fd00::1")]);
}

#[tokio::test]
async fn dns_version_txt_and_ns() {
    let h = handler();
    let m = ask(&h, "dns-version.cluster.local.", RecordType::TXT).await;
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].ttl, 28800);
    let RData::TXT(t) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(t.to_string(), "1.1.0");
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::TXT).await,
        ResponseCode::NoError,
    );
    assert_negative(
        &ask(&h, "nope.default.svc.cluster.local.", RecordType::TXT).await,
        ResponseCode::NXDomain,
    );
    assert_negative(
        &ask(&h, "dns-version.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    // The zone's name servers: the service whose endpoint is this server.
    let m = ask(&h, "cluster.local.", RecordType::NS).await;
    let ns: Vec<String> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(n) => Some(n.0.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(ns, vec!["kube-dns.kube-system.svc.cluster.local."]);
    assert_eq!(
        additional_ips(&m),
        vec![(
            "kube-dns.kube-system.svc.cluster.local.".into(),
            ip("10.43.0.10")
        )]
    );
}

#[tokio::test]
async fn servfail_until_synced_and_updates_apply() {
    let index = Arc::new(Index::new());
    let h = handler_with(index.clone(), vec![]);
    let m = ask(&h, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let full = cluster();
    drop(full);
    index.replace_namespaces(&[
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap(),
    ]);
    index.replace_slices(&[]);
    index.replace_services(&[]);
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
    let web = svc(
        "default",
        "web",
        json!({"clusterIP": "10.43.0.20", "ports": [{"port": 80}]}),
    );
    index.apply_service(&web);
    let m = ask(&h, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.43.0.20")]);
    index.delete_service(&web);
    assert_negative(
        &ask(&h, "web.default.svc.cluster.local.", RecordType::A).await,
        ResponseCode::NXDomain,
    );
}

#[tokio::test]
async fn big_udp_answers_are_truncated() {
    let index = cluster();
    let endpoints: Vec<serde_json::Value> = (1..=100)
        .map(|i| json!({"addresses": [format!("10.42.1.{i}")]}))
        .collect();
    index.apply_service(&svc("default", "big", json!({"clusterIP": "None"})));
    index.apply_slice(&eps("default", "big-1", "big", json!(endpoints), json!([])));
    let h = handler_with(index, vec![]);
    let m = ask(&h, "big.default.svc.cluster.local.", RecordType::A).await;
    assert!(m.metadata.truncation, "no EDNS: 512 bytes at most");
    assert!(m.answers.len() < 100);
    let m = ask_with(
        &h,
        "big.default.svc.cluster.local.",
        RecordType::A,
        Some(4096),
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(ips(&m).len(), 100);
    assert!(m.edns.is_some());
}

/// A resolver on loopback answering `192.0.2.7` for names it does not know, NXDOMAIN for
/// `missing.example.`, counting the questions it gets.
async fn fake_upstream() -> (SocketAddr, Arc<Mutex<usize>>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            *c.lock().unwrap() += 1;
            let q = Message::from_bytes(&buf[..n]).unwrap();
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_available = true;
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            let query = q.queries[0].clone();
            if query.name().to_string() == "missing.example." {
                r.metadata.response_code = ResponseCode::NXDomain;
            } else if query.query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    300,
                    RData::A(hickory_proto::rr::rdata::A("192.0.2.7".parse().unwrap())),
                ));
            }
            r.add_query(query);
            sock.send_to(&r.to_vec().unwrap(), from).await.unwrap();
        }
    });
    (addr, count)
}

#[tokio::test]
async fn other_names_are_forwarded_and_cached() {
    let (upstream, count) = fake_upstream().await;
    let h = handler_with(cluster(), vec![upstream]);
    let m = ask(&h, "www.example.org.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);
    assert_eq!(ips(&m), vec![ip("192.0.2.7")]);
    // Capped at the cache's 30 s.
    assert!(m.answers[0].ttl <= 300);
    let m = ask(&h, "www.example.org.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("192.0.2.7")]);
    assert_eq!(*count.lock().unwrap(), 1, "second answer from the cache");
    let m = ask(&h, "missing.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // An ExternalName outside the zone: the CNAME and the upstream's answer for its target.
    let m = ask(&h, "ext-out.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert!(matches!(m.answers[0].data, RData::CNAME(_)));
    assert_eq!(m.answers[1].name.to_string(), "example.org.");
    assert_eq!(ips(&m), vec![ip("192.0.2.7")]);
    // Reverse names the cluster does not know go upstream too.
    let m = ask(&h, "99.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.recursion_available);
}

#[tokio::test]
async fn metrics_count_requests_and_rcodes() {
    let h = handler();
    ask(&h, "web.default.svc.cluster.local.", RecordType::A).await;
    ask(&h, "nope.default.svc.cluster.local.", RecordType::A).await;
    let mut out = String::new();
    h.metrics.render(&mut out);
    assert!(
        out.contains(r#"coredns_dns_requests_total{server="dns://:53",zone=".",view="",proto="udp",family="1",type="A"} 2"#),
        "{out}"
    );
    assert!(
        out.contains(r#"coredns_dns_responses_total{server="dns://:53",zone=".",view="",rcode="NXDOMAIN",plugin="kubernetes"} 1"#),
        "{out}"
    );
    assert!(
        out.contains(
            r#"coredns_dns_request_duration_seconds_count{server="dns://:53",zone=".",view=""} 2"#
        ),
        "{out}"
    );
}

#[tokio::test]
async fn node_names_as_k3s_node_hosts() {
    let index = cluster();
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "metadata": {"name": "Node-A"},
        "status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.7"},
            {"type": "Hostname", "address": "node-a"},
        ]},
    }))
    .unwrap();
    index.replace_nodes(std::slice::from_ref(&node));
    let h = handler_with(index.clone(), vec![]);
    let m = ask(&h, "node-a.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(ips(&m), vec![ip("10.0.0.7")]);
    assert_eq!(m.answers[0].ttl, 60);
    // Known name, no address of that family: NOERROR, empty, no SOA (the hosts plugin).
    let m = ask(&h, "node-a.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    let m = ask(&h, "7.0.0.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptrs(&m), vec!["node-a."]);
    // Not a node: on to the upstreams (none here).
    let m = ask(&h, "node-b.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    index.delete_node(&node);
    let m = ask(&h, "node-a.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn dual_stack_service() {
    let index = cluster();
    index.apply_service(&svc(
        "default",
        "dual",
        json!({"clusterIP": "10.43.0.30", "clusterIPs": ["10.43.0.30", "fd00:43::30"],
               "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    ));
    let h = handler_with(index, vec![]);
    let m = ask(&h, "dual.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), vec![ip("10.43.0.30")]);
    let m = ask(&h, "dual.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(ips(&m), vec![ip("fd00:43::30")]);
    // One SRV per (target, port); the weight counts both addresses, as CoreDNS's does.
    let m = ask(
        &h,
        "_http._tcp.dual.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        srvs(&m),
        vec![(0, 50, 80, "dual.default.svc.cluster.local.".into())]
    );
    assert_eq!(m.additionals.len(), 2, "{m:?}");
    let m = ask(
        &h,
        "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa.",
        RecordType::PTR,
    )
    .await;
    assert_eq!(ptrs(&m), vec!["dual.default.svc.cluster.local."]);
}

#[tokio::test]
async fn wildcard_labels_are_plain_names() {
    // CoreDNS dropped wildcard queries (1.9): `*` is a name that matches nothing.
    let h = handler();
    for name in [
        "*.default.svc.cluster.local.",
        "*.web.default.svc.cluster.local.",
    ] {
        assert_negative(&ask(&h, name, RecordType::A).await, ResponseCode::NXDomain);
    }
}

#[tokio::test]
async fn outside_names_only_for_the_cluster() {
    let (upstream, _) = fake_upstream().await;
    let index = cluster();
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "metadata": {"name": "node-b"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.20"}]},
    }))
    .unwrap();
    index.replace_nodes(&[node]);
    let h = DnsHandler {
        resolver: Arc::new(
            Resolver::new(
                "cluster.local",
                index,
                Forwarder::new(vec![upstream]),
                vec!["10.0.0.2".parse().unwrap()],
            )
            .restrict_recursion(vec![crate::resolve::parse_net("10.42.0.0/16").unwrap()]),
        ),
        metrics: Arc::new(DnsMetrics::default()),
    };
    for src in [
        "10.42.3.4:999",
        "127.0.0.1:999",
        "10.0.0.2:999",
        "192.0.2.20:999",
    ] {
        let m = ask_from(&h, src, "www.example.org.", RecordType::A, None).await;
        assert_eq!(ips(&m), vec![ip("192.0.2.7")], "{src}");
    }
    let m = ask_from(
        &h,
        "192.0.2.99:999",
        "www.example.org.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // The cluster's own names are answered to anyone.
    let m = ask_from(
        &h,
        "192.0.2.99:999",
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    )
    .await;
    assert_eq!(ips(&m), vec![ip("10.43.0.20")]);
}
