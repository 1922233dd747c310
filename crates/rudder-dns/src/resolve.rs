//! What the server answers: the Kubernetes DNS specification (kubernetes/dns
//! `docs/specification.md`, schema 1.1.0) as CoreDNS's kubernetes plugin answers it in k3s's
//! Corefile (`kubernetes cluster.local in-addr.arpa ip6.arpa { pods insecure; fallthrough
//! in-addr.arpa ip6.arpa }`, then `forward . /etc/resolv.conf`). The structure follows
//! CoreDNS's `handler.go`, `kubernetes.go` (`Records`, `findServices`, `findPods`), `parse.go`,
//! `reverse.go`, `ns.go` and `plugin/backend_lookup.go`, so the NXDOMAIN/NODATA choices are its.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::forward::Forwarder;
use crate::index::{endpoint_hostname, Index, State, SvcKind};

/// CoreDNS's `DNSSchemaVersion`.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// CoreDNS's kubernetes plugin default `ttl`.
pub const DEFAULT_TTL: u32 = 5;
/// CoreDNS's `maxCnameChainLength`.
const MAX_CNAME_CHAIN: usize = 10;

/// Which part of the server produced an answer (the `plugin` label of
/// `coredns_dns_responses_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Kubernetes,
    /// k3s's NodeHosts (CoreDNS's `hosts` plugin).
    Hosts,
    Forward,
}

/// A response, before it is put on the wire.
#[derive(Debug)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub recursion_available: bool,
    pub truncated: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    pub source: Source,
}

impl Answer {
    pub fn empty(rcode: ResponseCode, source: Source) -> Answer {
        Answer {
            rcode,
            authoritative: false,
            recursion_available: false,
            truncated: false,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
            source,
        }
    }
}

/// CoreDNS's errNoItems / errNsNotExposed / errInvalidRequest: the name does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NameError;

/// A parsed query name (CoreDNS's `recordRequest`).
#[derive(Default, Debug)]
struct Request {
    port: String,
    protocol: String,
    endpoint: String,
    service: String,
    namespace: String,
    /// `pod` or `svc`; empty for the zone apex, `svc.<zone>` and `pod.<zone>`.
    pod_or_svc: String,
}

/// CoreDNS's `parseRequest` without multicluster and zonal names: `labels` are those left of
/// the zone, lowercased.
fn parse_request(labels: &[String]) -> Result<Request, NameError> {
    let mut r = Request::default();
    if labels.is_empty() || (labels.len() == 1 && (labels[0] == "svc" || labels[0] == "pod")) {
        return Ok(r);
    }
    let mut last = labels.len() - 1;
    r.pod_or_svc = labels[last].clone();
    if r.pod_or_svc != "pod" && r.pod_or_svc != "svc" {
        return Err(NameError);
    }
    if last == 0 {
        return Ok(r);
    }
    last -= 1;
    r.namespace = labels[last].clone();
    if last == 0 {
        return Ok(r);
    }
    last -= 1;
    r.service = labels[last].clone();
    if last == 0 {
        return Ok(r);
    }
    last -= 1;
    match last {
        0 => r.endpoint = labels[0].clone(),
        1 => {
            r.protocol = strip_underscore(&labels[1]).to_string();
            r.port = strip_underscore(&labels[0]).to_string();
        }
        _ => return Err(NameError),
    }
    Ok(r)
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

/// CoreDNS's `matchPortAndProtocol`: an empty query part matches anything.
fn port_matches(q_port: &str, port: &str, q_proto: &str, proto: &str) -> bool {
    (q_port.is_empty() || q_port.eq_ignore_ascii_case(port))
        && (q_proto.is_empty() || q_proto.eq_ignore_ascii_case(proto))
}

/// What a name resolves to before it becomes records (CoreDNS's `msg.Service`).
#[derive(Debug, Clone)]
enum Host {
    Ip(IpAddr),
    /// An ExternalName target.
    Name(String),
}

#[derive(Debug, Clone)]
struct Item {
    host: Host,
    port: i32,
    /// The name an SRV record points at (`msg.Domain(Key)`), built only for SRV questions.
    target: Option<Name>,
}

/// The DNS server's answers, from the index and the forwarder.
pub struct Resolver {
    /// The cluster domain, lowercase and fully qualified (`cluster.local.`).
    zone: Name,
    in_addr: Name,
    ip6: Name,
    ttl: u32,
    index: Arc<Index>,
    forwarder: Forwarder,
    /// Where this server listens (CoreDNS's `localIPs`), for the zone's NS records.
    local_ips: Vec<IpAddr>,
    /// Who may have outside names resolved (BIND's allow-recursion): `None` is anyone. The
    /// cluster's own names are answered to every client.
    recursion: Option<Vec<(IpAddr, u8)>>,
    /// Rotates address records (k3s's Corefile: `loadbalance`).
    rotation: AtomicUsize,
}

fn name(s: &str) -> Name {
    let mut n = Name::from_ascii(s).unwrap_or_else(|_| Name::root());
    n.set_fqdn(true);
    n
}

impl Resolver {
    pub fn new(
        domain: &str,
        index: Arc<Index>,
        forwarder: Forwarder,
        local_ips: Vec<IpAddr>,
    ) -> Resolver {
        Resolver {
            zone: name(&format!("{}.", domain.trim_end_matches('.'))).to_lowercase(),
            in_addr: name("in-addr.arpa."),
            ip6: name("ip6.arpa."),
            ttl: DEFAULT_TTL,
            index,
            forwarder,
            local_ips,
            recursion: None,
            rotation: AtomicUsize::new(0),
        }
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The answer to one question.
    /// Forwards outside names only for clients in `nets` (`(address, prefix length)`), on
    /// loopback, at this server's addresses or at a node's InternalIP; other clients get REFUSED
    /// for them. The server is reachable on the node's address, where CoreDNS (a pod behind a
    /// cluster IP) never is, and must not be an open resolver there.
    pub fn restrict_recursion(mut self, nets: Vec<(IpAddr, u8)>) -> Resolver {
        self.recursion = Some(nets);
        self
    }

    fn may_recurse(&self, client: IpAddr) -> bool {
        let Some(nets) = &self.recursion else {
            return true;
        };
        client.is_loopback()
            || self.local_ips.contains(&client)
            || nets.iter().any(|(net, len)| in_net(client, *net, *len))
            || self
                .index
                .read(|st| st.node_hosts.values().any(|ips| ips.contains(&client)))
    }

    /// The answer to one question from `client`.
    pub async fn resolve_for(
        &self,
        client: IpAddr,
        qname: &Name,
        qtype: RecordType,
        qclass: DNSClass,
    ) -> Answer {
        self.answer(Some(client), qname, qtype, qclass).await
    }

    /// The answer to one question (from a client allowed everything).
    pub async fn resolve(&self, qname: &Name, qtype: RecordType, qclass: DNSClass) -> Answer {
        self.answer(None, qname, qtype, qclass).await
    }

    async fn answer(
        &self,
        client: Option<IpAddr>,
        qname: &Name,
        qtype: RecordType,
        qclass: DNSClass,
    ) -> Answer {
        if self.zone.zone_of(qname) {
            let mut a = self.kubernetes(qname, qtype).await;
            self.rotate(&mut a.answers);
            return a;
        }
        if qtype == RecordType::PTR && (self.in_addr.zone_of(qname) || self.ip6.zone_of(qname)) {
            // The reverse zones fall through (to the node hosts, then the upstreams) when the
            // cluster has no name for the address (`fallthrough in-addr.arpa ip6.arpa`).
            let ptrs = self.reverse(qname);
            if !ptrs.is_empty() {
                let mut a = Answer::empty(ResponseCode::NoError, Source::Kubernetes);
                a.authoritative = true;
                a.answers = ptrs;
                return a;
            }
        }
        if let Some(a) = self.node_hosts(qname, qtype) {
            return a;
        }
        if client.is_some_and(|c| !self.may_recurse(c)) {
            return Answer::empty(ResponseCode::Refused, Source::Forward);
        }
        self.forward(qname, qtype, qclass).await
    }

    async fn forward(&self, qname: &Name, qtype: RecordType, qclass: DNSClass) -> Answer {
        match self.forwarder.lookup(qname, qtype, qclass).await {
            Ok(m) => Answer {
                rcode: m.metadata.response_code,
                authoritative: m.metadata.authoritative,
                recursion_available: m.metadata.recursion_available,
                truncated: m.metadata.truncation,
                answers: m.answers,
                authorities: m.authorities,
                additionals: m.additionals,
                source: Source::Forward,
            },
            Err(e) => {
                tracing::debug!(name = %qname, error = %e, "forwarding failed");
                Answer::empty(ResponseCode::ServFail, Source::Forward)
            }
        }
    }

    /// k3s's `hosts /etc/coredns/NodeHosts { ttl 60; fallthrough }`: node names answer their
    /// InternalIPs (and PTR for those), authoritatively; a known name without an address of the
    /// asked type is NODATA without an SOA; unknown names fall through.
    fn node_hosts(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        const HOSTS_TTL: u32 = 60;
        let answers: Vec<Record> = if qtype == RecordType::PTR {
            let ip = qname.parse_arpa_name().ok()?.addr();
            let names: Vec<String> = self.index.read(|st| {
                let mut v: Vec<String> = st
                    .node_hosts
                    .iter()
                    .filter(|(_, ips)| ips.contains(&ip))
                    .map(|(n, _)| n.clone())
                    .collect();
                v.sort();
                v
            });
            if names.is_empty() {
                return None;
            }
            names
                .iter()
                .map(|n| {
                    Record::from_rdata(
                        qname.clone(),
                        HOSTS_TTL,
                        RData::PTR(PTR(name(&format!("{n}.")))),
                    )
                })
                .collect()
        } else {
            let host = qname.to_ascii().trim_end_matches('.').to_ascii_lowercase();
            let ips = self.index.read(|st| st.node_hosts.get(&host).cloned())?;
            ips.into_iter()
                .filter(|ip| match qtype {
                    RecordType::A => ip.is_ipv4(),
                    RecordType::AAAA => ip.is_ipv6(),
                    _ => false,
                })
                .map(|ip| {
                    let mut r = self.a(qname.clone(), ip);
                    r.ttl = HOSTS_TTL;
                    r
                })
                .collect()
        };
        let mut a = Answer::empty(ResponseCode::NoError, Source::Hosts);
        a.authoritative = true;
        a.answers = answers;
        Some(a)
    }

    fn rotate(&self, answers: &mut [Record]) {
        let first = answers
            .iter()
            .position(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA));
        let Some(first) = first else { return };
        let tail = &mut answers[first..];
        if tail.len() < 2
            || !tail
                .iter()
                .all(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
        {
            return;
        }
        let n = self.rotation.fetch_add(1, Ordering::Relaxed) % tail.len();
        tail.rotate_left(n);
    }

    /// The labels of `qname` left of the cluster zone, lowercased.
    fn labels(&self, qname: &Name) -> Vec<String> {
        // `num_labels` does not count a leading `*`; every label counts here.
        let n = qname
            .iter()
            .count()
            .saturating_sub(self.zone.iter().count());
        qname
            .iter()
            .take(n)
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect()
    }

    fn soa(&self, serial: u32) -> Record {
        let zone = self.zone.clone();
        let mname = name(&format!("ns.dns.{zone}"));
        let rname = name(&format!("hostmaster.{zone}"));
        Record::from_rdata(
            zone,
            self.ttl.min(300),
            RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, self.ttl)),
        )
    }

    /// CoreDNS's `ServeDNS` for names in the cluster zone.
    async fn kubernetes(&self, qname: &Name, qtype: RecordType) -> Answer {
        let labels = self.labels(qname);
        let apex = labels.is_empty();
        let result: Result<(Vec<Record>, Vec<Record>), NameError> = match qtype {
            RecordType::A | RecordType::AAAA => self
                .addresses(qname.clone(), qtype, Vec::new())
                .await
                .map(|r| (r, vec![])),
            RecordType::TXT => self.txt(qname, &labels).map(|r| (r, vec![])),
            RecordType::CNAME => self.cname(qname, &labels).map(|r| (r, vec![])),
            RecordType::PTR => self
                .index
                .read(|st| self.records(st, &labels, false))
                .map(|_| (vec![], vec![])),
            RecordType::SRV => self.srv(qname, &labels),
            RecordType::SOA => Ok((
                if apex {
                    vec![self.index.read(|st| self.soa(st.serial))]
                } else {
                    vec![]
                },
                vec![],
            )),
            RecordType::AXFR | RecordType::IXFR => {
                return Answer::empty(ResponseCode::Refused, Source::Kubernetes);
            }
            RecordType::NS if apex => Ok(self.ns(qname)),
            // Everything else (MX included: no service is a mail host) is NODATA when an A
            // lookup of the name would not be NXDOMAIN (CoreDNS's "fake A lookup").
            _ => self
                .index
                .read(|st| self.services(st, qname, &labels, RecordType::A))
                .map(|_| (vec![], vec![])),
        };
        let (serial, synced) = self.index.read(|st| (st.serial, st.synced()));
        let mut a = Answer::empty(ResponseCode::NoError, Source::Kubernetes);
        a.authoritative = true;
        match result {
            Err(NameError) => {
                a.rcode = if synced {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::ServFail
                };
                a.authorities.push(self.soa(serial));
            }
            Ok((answers, _)) if answers.is_empty() => a.authorities.push(self.soa(serial)),
            Ok((answers, extra)) => {
                a.answers = answers;
                a.additionals = extra;
            }
        }
        a
    }

    /// CoreDNS's `Services` (less TXT and NS, handled by their callers).
    fn services(
        &self,
        st: &State,
        qname: &Name,
        labels: &[String],
        qtype: RecordType,
    ) -> Result<Vec<Item>, NameError> {
        if labels.len() == 2 && labels[0] == "ns" && labels[1] == "dns" {
            return Ok(self
                .ns_addrs(st)
                .into_iter()
                .filter(|(_, ip)| match qtype {
                    RecordType::A => ip.is_ipv4(),
                    RecordType::AAAA => ip.is_ipv6(),
                    _ => false,
                })
                .map(|(_, ip)| Item {
                    host: Host::Ip(ip),
                    port: 0,
                    target: Some(qname.clone()),
                })
                .collect());
        }
        let items = self.records(st, labels, qtype == RecordType::SRV)?;
        if qtype == RecordType::SRV {
            // No SRV records for ExternalName services.
            return Ok(items
                .into_iter()
                .filter(|i| matches!(i.host, Host::Ip(_)))
                .collect());
        }
        Ok(items)
    }

    /// CoreDNS's `Records`.
    fn records(
        &self,
        st: &State,
        labels: &[String],
        targets: bool,
    ) -> Result<Vec<Item>, NameError> {
        let r = parse_request(labels)?;
        if r.pod_or_svc.is_empty() {
            return Ok(vec![]);
        }
        if !st.namespaces.contains(&r.namespace) {
            return Err(NameError);
        }
        if r.pod_or_svc == "pod" {
            return self.find_pods(&r, targets);
        }
        self.find_services(st, &r, targets)
    }

    /// CoreDNS's `findPods` in `pods insecure` mode: any address-shaped name answers its address.
    fn find_pods(&self, r: &Request, targets: bool) -> Result<Vec<Item>, NameError> {
        if r.service.is_empty() {
            return Ok(vec![]);
        }
        let pod = &r.service;
        let text = if pod.matches('-').count() == 3 && !pod.contains("--") {
            pod.replace('-', ".")
        } else {
            pod.replace('-', ":")
        };
        let ip: IpAddr = text.parse().map_err(|_| NameError)?;
        Ok(vec![Item {
            host: Host::Ip(ip),
            port: 0,
            target: targets.then(|| name(&format!("{pod}.{}.pod.{}", r.namespace, self.zone))),
        }])
    }

    /// CoreDNS's `findServices`.
    fn find_services(
        &self,
        st: &State,
        r: &Request,
        targets: bool,
    ) -> Result<Vec<Item>, NameError> {
        if r.service.is_empty() {
            return Ok(vec![]);
        }
        let Some(svc) = st.services.get(&(r.namespace.clone(), r.service.clone())) else {
            return Err(NameError);
        };
        let svc_name = if targets {
            format!("{}.{}.svc.{}", r.service, r.namespace, self.zone)
        } else {
            String::new()
        };
        let mut found = false;
        let mut items = Vec::new();
        match &svc.kind {
            SvcKind::ExternalName(ext) => {
                if !r.endpoint.is_empty() || !r.port.is_empty() || !r.protocol.is_empty() {
                    return Err(NameError);
                }
                // An ExternalName that is an address is not a CNAME, and nothing else.
                if ext.parse::<IpAddr>().is_ok() || ext.is_empty() {
                    return Err(NameError);
                }
                items.push(Item {
                    host: Host::Name(ext.clone()),
                    port: 0,
                    target: None,
                });
                found = true;
            }
            kind if *kind == SvcKind::Headless || !r.endpoint.is_empty() => {
                for slice in st.slices_of(&r.namespace, &r.service) {
                    for addr in &slice.addrs {
                        let host = if targets || !r.endpoint.is_empty() {
                            endpoint_hostname(addr)
                        } else {
                            String::new()
                        };
                        if !r.endpoint.is_empty() && r.endpoint != host {
                            continue;
                        }
                        for p in &slice.ports {
                            if !port_matches(&r.port, &p.name, &r.protocol, &p.protocol) {
                                continue;
                            }
                            found = true;
                            items.push(Item {
                                host: Host::Ip(addr.ip),
                                port: p.port,
                                target: targets.then(|| name(&format!("{host}.{svc_name}"))),
                            });
                        }
                    }
                }
            }
            SvcKind::ClusterIp(ips) => {
                for p in &svc.ports {
                    if !port_matches(&r.port, &p.name, &r.protocol, &p.protocol) {
                        continue;
                    }
                    found = true;
                    for ip in ips {
                        items.push(Item {
                            host: Host::Ip(*ip),
                            port: p.port,
                            target: targets.then(|| name(&svc_name)),
                        });
                    }
                }
            }
            SvcKind::Headless => {}
        }
        if found {
            Ok(items)
        } else {
            Err(NameError)
        }
    }

    /// CoreDNS's `plugin.A`/`plugin.AAAA`: address records, following ExternalName CNAMEs
    /// inside the zone and asking the upstreams for targets outside it.
    fn addresses(
        &self,
        qname: Name,
        qtype: RecordType,
        previous: Vec<Record>,
    ) -> BoxFuture<'_, Result<Vec<Record>, NameError>> {
        async move {
            let labels = self.labels(&qname);
            let items = if labels.is_empty() {
                vec![]
            } else {
                self.index
                    .read(|st| self.services(st, &qname, &labels, qtype))?
            };
            let mut records = Vec::new();
            let mut seen = HashSet::new();
            for item in items {
                match item.host {
                    Host::Name(target) => {
                        let target = name(&format!("{}.", target.trim_end_matches('.')));
                        if target.eq_ignore_root(&qname) || previous.len() > MAX_CNAME_CHAIN {
                            continue;
                        }
                        let cname = Record::from_rdata(
                            qname.clone(),
                            self.ttl,
                            RData::CNAME(CNAME(target.clone())),
                        );
                        if previous
                            .iter()
                            .any(|p| p.data == cname.data && p.name == cname.name)
                        {
                            continue;
                        }
                        if self.zone.zone_of(&target) {
                            let mut chain = previous.clone();
                            chain.push(cname.clone());
                            if let Ok(next) = self.addresses(target, qtype, chain).await {
                                if !next.is_empty() {
                                    records.push(cname);
                                    records.extend(next);
                                }
                            }
                            continue;
                        }
                        if let Ok(m) = self.forwarder.lookup(&target, qtype, DNSClass::IN).await {
                            records.push(cname);
                            records.extend(m.answers);
                        }
                    }
                    Host::Ip(IpAddr::V4(ip)) if qtype == RecordType::A => {
                        if seen.insert(IpAddr::V4(ip)) {
                            records.push(self.a(qname.clone(), IpAddr::V4(ip)));
                        }
                    }
                    Host::Ip(IpAddr::V6(ip)) if qtype == RecordType::AAAA => {
                        if seen.insert(IpAddr::V6(ip)) {
                            records.push(self.a(qname.clone(), IpAddr::V6(ip)));
                        }
                    }
                    Host::Ip(_) => {}
                }
            }
            Ok(records)
        }
        .boxed()
    }

    fn a(&self, owner: Name, ip: IpAddr) -> Record {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        Record::from_rdata(owner, self.ttl, data)
    }

    /// CoreDNS's TXT: `dns-version.<zone>` only; other names are NODATA when they exist.
    fn txt(&self, qname: &Name, labels: &[String]) -> Result<Vec<Record>, NameError> {
        if labels.len() == 1 && labels[0] == "dns-version" {
            return Ok(vec![Record::from_rdata(
                qname.clone(),
                28800,
                RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
            )]);
        }
        match self.index.read(|st| self.records(st, labels, false)) {
            Ok(items) if !items.is_empty() => Ok(vec![]),
            _ => Err(NameError),
        }
    }

    fn cname(&self, qname: &Name, labels: &[String]) -> Result<Vec<Record>, NameError> {
        let items = self
            .index
            .read(|st| self.services(st, qname, labels, RecordType::CNAME))?;
        Ok(match items.first() {
            Some(Item {
                host: Host::Name(target),
                ..
            }) => vec![Record::from_rdata(
                qname.clone(),
                self.ttl,
                RData::CNAME(CNAME(name(&format!("{}.", target.trim_end_matches('.'))))),
            )],
            _ => vec![],
        })
    }

    /// CoreDNS's `plugin.SRV`: one record per (target, port), weights shared out evenly per
    /// priority, and the targets' addresses in the additional section.
    fn srv(
        &self,
        qname: &Name,
        labels: &[String],
    ) -> Result<(Vec<Record>, Vec<Record>), NameError> {
        let items = self
            .index
            .read(|st| self.services(st, qname, labels, RecordType::SRV))?;
        let total = (items.len() * 100) as f64;
        let weight = ((100.0 / total) * 100.0).floor().max(1.0) as u16;
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen_srv = HashSet::new();
        let mut seen_addr = HashSet::new();
        for item in items {
            let (Host::Ip(ip), Some(target)) = (item.host, item.target) else {
                continue;
            };
            if item.port == -1 {
                continue;
            }
            let port = item.port as u16;
            if seen_srv.insert((target.clone(), port)) {
                records.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::SRV(SRV::new(0, weight, port, target.clone())),
                ));
            }
            if seen_addr.insert((target.clone(), ip)) {
                extra.push(self.a(target, ip));
            }
        }
        Ok((records, extra))
    }

    /// CoreDNS's `nsAddrs`: the names and addresses of the services whose endpoints are this
    /// server's addresses (kube-dns), else `ns.dns.<zone>` at the local addresses.
    fn ns_addrs(&self, st: &State) -> Vec<(Name, IpAddr)> {
        let mut out = Vec::new();
        let mut found = false;
        for local in &self.local_ips {
            for slice_key in st.slices_by_ip.get(local).into_iter().flatten() {
                let Some(slice) = st.slices.get(slice_key) else {
                    continue;
                };
                found = true;
                let ns = &slice_key.0;
                let Some(svc) = st.services.get(&(ns.clone(), slice.service.clone())) else {
                    continue;
                };
                let svc_name = format!("{}.{ns}.svc.{}", slice.service, self.zone);
                match &svc.kind {
                    SvcKind::Headless => {
                        for a in &slice.addrs {
                            out.push((name(&format!("{}.{svc_name}", endpoint_hostname(a))), a.ip));
                        }
                    }
                    SvcKind::ClusterIp(ips) => {
                        for ip in ips {
                            out.push((name(&svc_name), *ip));
                        }
                    }
                    SvcKind::ExternalName(_) => {}
                }
            }
        }
        if !found {
            let n = name(&format!("ns.dns.{}", self.zone));
            out.extend(self.local_ips.iter().map(|ip| (n.clone(), *ip)));
        }
        out
    }

    fn ns(&self, qname: &Name) -> (Vec<Record>, Vec<Record>) {
        let addrs = self.index.read(|st| self.ns_addrs(st));
        let mut records = Vec::new();
        let mut extra = Vec::new();
        let mut seen = HashSet::new();
        for (n, ip) in addrs {
            extra.push(self.a(n.clone(), ip));
            if seen.insert(n.clone()) {
                records.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::NS(NS(n)),
                ));
            }
        }
        (records, extra)
    }

    /// CoreDNS's `serviceRecordForIP`: the first service with the cluster IP, else every ready
    /// endpoint with the address.
    fn reverse(&self, qname: &Name) -> Vec<Record> {
        let Ok(net) = qname.parse_arpa_name() else {
            return vec![];
        };
        let ip = net.addr();
        let full = match ip {
            IpAddr::V4(_) => net.prefix_len() == 32,
            IpAddr::V6(_) => net.prefix_len() == 128,
        };
        if !full {
            return vec![];
        }
        let targets: Vec<String> = self.index.read(|st| {
            if let Some((ns, svc)) = st.services_by_ip.get(&ip).and_then(|s| s.iter().next()) {
                return vec![format!("{svc}.{ns}.svc.{}", self.zone)];
            }
            let mut out = Vec::new();
            for key in st.slices_by_ip.get(&ip).into_iter().flatten() {
                let Some(slice) = st.slices.get(key) else {
                    continue;
                };
                for a in slice.addrs.iter().filter(|a| a.ip == ip) {
                    let n = format!(
                        "{}.{}.{}.svc.{}",
                        endpoint_hostname(a),
                        slice.service,
                        key.0,
                        self.zone
                    );
                    if !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
            out
        });
        targets
            .into_iter()
            .map(|t| Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(name(&t)))))
            .collect()
    }
}

/// The reverse-lookup name of an address (`<d>.<c>.<b>.<a>.in-addr.arpa.`, nibbles for IPv6).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa."
        }
    }
}

/// Whether `ip` is inside `net/len` (same family only).
fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Parses `a.b.c.d/len` (or an address alone, a host route).
pub fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((ip, len)) => Some((ip.parse().ok()?, len.parse().ok()?)),
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}
