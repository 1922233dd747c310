//! NetworkPolicies, pods and namespaces → the node's `inet rudder-netpol` table, as text for
//! `nft -f -`. Pure: the same inputs give the same text, which the golden tests pin.
//!
//! Layout (kube-router's, in nftables): two base chains on the forward hook, `forward-ingress`
//! dispatching on the destination and `forward-egress` on the source address through verdict
//! maps to a chain per isolated pod on this node (`pod-in-<ns>/<pod>`, `pod-out-<ns>/<pod>`),
//! which jumps to a chain per policy selecting it (`policy-in-<ns>/<name>`, `policy-out-…`)
//! and drops what none accepted. A policy chain holds one `accept` per rule, port and address
//! family; a rule's peers are one named interval set (`<policy chain>/<rule>`). Replies
//! (`ct state established,related`) pass first. Both base chains see a connection between two
//! pods of this node (bridged, through br_netfilter) and one to or from another node
//! (routed), so the source's egress and the destination's ingress are each checked once, on
//! the node that owns the pod. Traffic the node itself sends (kubelet probes) leaves through
//! the output hook and traffic to the node's own addresses ends in the input hook: neither is
//! filtered, which is upstream's "traffic to and from the node is always allowed".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rudder_api::selector::Selector;

use crate::ipset::{parse_cidr, Cidr, IpSet};

/// The table this component owns (family `inet`).
pub const TABLE: &str = "rudder-netpol";

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    fn parse(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    In,
    Out,
}

impl Dir {
    fn word(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
        }
    }

    /// The address a rule's peers are matched on.
    fn peer(self) -> &'static str {
        match self {
            Dir::In => "saddr",
            Dir::Out => "daddr",
        }
    }
}

/// A pod as policies see it: running somewhere with an address on the pod network.
struct PodView<'a> {
    namespace: &'a str,
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    ips: Vec<IpAddr>,
    local: bool,
    /// Container ports by name, for named ports.
    ports: Vec<(&'a str, Proto, u16)>,
}

impl PodView<'_> {
    fn named_port(&self, name: &str, proto: Proto) -> Option<u16> {
        self.ports
            .iter()
            .find(|(n, p, _)| *n == name && *p == proto)
            .map(|(_, _, port)| *port)
    }
}

/// Pods that take part: an IP, not host-network (those use the node's address and are never
/// isolated, nor selected as peers), not finished (their address may be reused).
fn pod_view<'a>(pod: &'a Pod, node: &str) -> Option<PodView<'a>> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network == Some(true) {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    if ips.is_empty() {
        return None;
    }
    let ports = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some((
                p.name.as_deref()?,
                Proto::parse(p.protocol.as_deref())?,
                u16::try_from(p.container_port).ok()?,
            ))
        })
        .collect();
    Some(PodView {
        namespace: pod.metadata.namespace.as_deref()?,
        name: pod.metadata.name.as_deref()?,
        labels: pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
        ips,
        local: spec.node_name.as_deref() == Some(node),
        ports,
    })
}

/// nftables names are at most 255 bytes; Kubernetes names can make longer ones, which keep a
/// readable prefix and a hash of the whole.
fn bounded(name: String) -> String {
    const MAX: usize = 240;
    if name.len() <= MAX {
        return name;
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut cut = 200;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{h:016x}", &name[..cut])
}

fn selector(s: Option<&LabelSelector>) -> Option<Selector> {
    // A policy's own podSelector may be omitted (all pods); peers' selectors are checked by
    // the caller, so `None` here is "everything".
    let empty = LabelSelector::default();
    Selector::from_label_selector(Some(s.unwrap_or(&empty))).ok()
}

/// One rule's destination ports.
struct PortSpec {
    /// Numeric ports and ranges per protocol; `None` is every port of the protocol.
    numeric: BTreeMap<Proto, Option<Vec<(u16, u16)>>>,
    named: Vec<(Proto, String)>,
}

/// `None`: the rule has no ports (every port and protocol).
fn port_spec(ports: Option<&Vec<NetworkPolicyPort>>) -> Option<PortSpec> {
    let ports = ports.filter(|p| !p.is_empty())?;
    let mut spec = PortSpec {
        numeric: BTreeMap::new(),
        named: Vec::new(),
    };
    for p in ports {
        let Some(proto) = Proto::parse(p.protocol.as_deref()) else {
            continue;
        };
        match &p.port {
            None => {
                spec.numeric.insert(proto, None);
            }
            Some(IntOrString::Int(n)) => {
                let Ok(start) = u16::try_from(*n) else {
                    continue;
                };
                let end = p
                    .end_port
                    .and_then(|e| u16::try_from(e).ok())
                    .filter(|e| *e >= start)
                    .unwrap_or(start);
                // A protocol already allowed whole (`None`) stays whole.
                if let Some(ranges) = spec
                    .numeric
                    .entry(proto)
                    .or_insert_with(|| Some(Vec::new()))
                {
                    ranges.push((start, end));
                }
            }
            Some(IntOrString::String(name)) => spec.named.push((proto, name.clone())),
        }
    }
    Some(spec)
}

fn port_list(ranges: &[(u16, u16)]) -> String {
    let mut r = ranges.to_vec();
    r.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::new();
    for (a, b) in r {
        match merged.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    let items: Vec<String> = merged
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    braces(&items)
}

/// An anonymous set, or its one element bare.
fn braces(items: &[String]) -> String {
    if items.len() == 1 {
        items[0].clone()
    } else {
        format!("{{ {} }}", items.join(", "))
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

#[derive(Default)]
struct Table {
    /// Named interval sets: name, IPv6?, elements.
    sets: Vec<(String, bool, Vec<String>)>,
    /// Set names by content: rules whose peers are the same addresses (the same selector in
    /// many policies) share one set, named after its first rule.
    by_content: HashMap<(bool, Vec<String>), String>,
    /// A rule's address matches by its peers (as written) and namespace.
    rule_sets: HashMap<String, Vec<(&'static str, String)>>,
    chains: Vec<(String, Vec<String>)>,
}

impl Table {
    /// Adds `set` as up to two named sets (`name`, `name/v6`) and returns the address matches
    /// (`ip saddr @name`) for `dir`'s peer address; empty when the set is.
    fn add_set(&mut self, name: &str, set: &IpSet, addr: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if set.has_v4() {
            let n = self.named(bounded(name.to_string()), false, set.v4_elements());
            out.push(("ip", format!("ip {addr} @{n} ")));
        }
        if set.has_v6() {
            let n = self.named(bounded(format!("{name}/v6")), true, set.v6_elements());
            out.push(("ip6", format!("ip6 {addr} @{n} ")));
        }
        out
    }

    /// The name of the set holding `elements`: an existing one with the same content, else
    /// `name`, added.
    fn named(&mut self, name: String, v6: bool, elements: Vec<String>) -> String {
        let key = (v6, elements);
        if let Some(n) = self.by_content.get(&key) {
            return n.clone();
        }
        self.sets.push((name.clone(), v6, key.1.clone()));
        self.by_content.insert(key, name.clone());
        name
    }
}

struct Inputs<'a> {
    pods: Vec<PodView<'a>>,
    /// Indexes into `pods` per namespace.
    by_ns: BTreeMap<&'a str, Vec<usize>>,
    ns_labels: HashMap<&'a str, &'a BTreeMap<String, String>>,
    /// Peer selectors already resolved: the same selector recurs across many policies.
    peers: std::cell::RefCell<HashMap<String, std::rc::Rc<Vec<usize>>>>,
}

impl<'a> Inputs<'a> {
    fn ns_labels(&self, ns: &str) -> &BTreeMap<String, String> {
        self.ns_labels.get(ns).copied().unwrap_or(&NO_LABELS)
    }

    /// The pods a peer selects (`podSelector` in the policy's namespace, `namespaceSelector`
    /// across namespaces, both: the intersection), or the ipBlock's addresses.
    fn peer(
        &self,
        ns: &str,
        peer: &NetworkPolicyPeer,
        pods: &mut BTreeSet<usize>,
        ips: &mut IpSet,
    ) {
        if let Some(block) = &peer.ip_block {
            if let Some(cidr) = parse_cidr(&block.cidr) {
                let except: Vec<Cidr> = block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| parse_cidr(e))
                    .collect();
                ips.add_block(cidr, &except);
            }
            return;
        }
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return;
        }
        let key = format!(
            "{ns}\0{:?}\0{:?}",
            peer.pod_selector, peer.namespace_selector
        );
        let cached = self.peers.borrow().get(&key).cloned();
        let selected = match cached {
            Some(v) => v,
            None => {
                let v = std::rc::Rc::new(self.select_peers(ns, peer));
                self.peers.borrow_mut().insert(key, v.clone());
                v
            }
        };
        pods.extend(selected.iter().copied());
    }

    fn select_peers(&self, ns: &str, peer: &NetworkPolicyPeer) -> Vec<usize> {
        let pod_sel = match &peer.pod_selector {
            Some(s) => selector(Some(s)),
            None => Some(Selector::everything()),
        };
        let Some(pod_sel) = pod_sel else {
            return Vec::new();
        };
        // Without a namespaceSelector, the policy's own namespace.
        let namespaces: Vec<&Vec<usize>> = match &peer.namespace_selector {
            Some(s) => {
                let Some(ns_sel) = selector(Some(s)) else {
                    return Vec::new();
                };
                self.by_ns
                    .iter()
                    .filter(|(n, _)| ns_sel.matches(self.ns_labels(n)))
                    .map(|(_, pods)| pods)
                    .collect()
            }
            None => self.by_ns.get(ns).into_iter().collect(),
        };
        namespaces
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| pod_sel.matches(self.pods[i].labels))
            .collect()
    }
}

/// The `inet rudder-netpol` table for node `node` (without the `add`/`delete` preamble that
/// makes its application a replacement, see [`crate::nft::replace_script`]).
pub fn render<'a>(
    node: &str,
    policies: impl IntoIterator<Item = &'a NetworkPolicy>,
    pods: impl IntoIterator<Item = &'a Pod>,
    namespaces: impl IntoIterator<Item = &'a Namespace>,
) -> String {
    let mut pods: Vec<PodView<'a>> = pods.into_iter().filter_map(|p| pod_view(p, node)).collect();
    pods.sort_by(|a, b| (a.namespace, a.name).cmp(&(b.namespace, b.name)));
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in pods.iter().enumerate() {
        by_ns.entry(p.namespace).or_default().push(i);
    }
    let inputs = Inputs {
        pods,
        by_ns,
        peers: Default::default(),
        ns_labels: namespaces
            .into_iter()
            .filter_map(|n| {
                Some((
                    n.metadata.name.as_deref()?,
                    n.metadata.labels.as_ref().unwrap_or(&NO_LABELS),
                ))
            })
            .collect(),
    };
    let mut policies: Vec<&NetworkPolicy> = policies.into_iter().collect();
    policies.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });

    let mut table = Table::default();
    // Per local pod index: the policy chains that apply, per direction.
    let mut pod_in: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut pod_out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for policy in policies {
        let (Some(ns), Some(name), Some(spec)) = (
            policy.metadata.namespace.as_deref(),
            policy.metadata.name.as_deref(),
            policy.spec.as_ref(),
        ) else {
            continue;
        };
        let Some(sel) = selector(spec.pod_selector.as_ref()) else {
            tracing::warn!(
                namespace = ns,
                policy = name,
                "invalid podSelector; ignored"
            );
            continue;
        };
        let targets: Vec<usize> = inputs
            .by_ns
            .get(ns)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| inputs.pods[i].local && sel.matches(inputs.pods[i].labels))
            .collect();
        if targets.is_empty() {
            continue;
        }
        // Upstream's defaulting: Ingress always, Egress when there are egress rules.
        let types: Vec<&str> = match spec.policy_types.as_deref() {
            Some(t) if !t.is_empty() => t.iter().map(String::as_str).collect(),
            _ if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) => vec!["Ingress", "Egress"],
            _ => vec!["Ingress"],
        };
        let ingress = spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (r.from.as_ref(), r.ports.as_ref()))
            .collect();
        let egress = spec
            .egress
            .iter()
            .flatten()
            .map(|r| (r.to.as_ref(), r.ports.as_ref()))
            .collect();
        for (dir, kind, rules, pod_chains) in [
            (Dir::In, "Ingress", ingress, &mut pod_in),
            (Dir::Out, "Egress", egress, &mut pod_out),
        ] {
            if !types.contains(&kind) {
                continue;
            }
            let chain = bounded(format!("policy-{}-{ns}/{name}", dir.word()));
            let body = policy_chain(&inputs, &mut table, dir, ns, &chain, rules, &targets);
            table.chains.push((chain.clone(), body));
            for t in &targets {
                pod_chains.entry(*t).or_default().push(chain.clone());
            }
        }
    }

    // Per direction: (pod address, its chain) for the base chain's verdict maps.
    let mut vmaps: Vec<(Dir, Vec<(IpAddr, String)>)> = Vec::new();
    for (dir, pod_chains) in [(Dir::In, &pod_in), (Dir::Out, &pod_out)] {
        let mut map = Vec::new();
        for (&i, policy_chains) in pod_chains {
            let p = &inputs.pods[i];
            let chain = bounded(format!("pod-{}-{}/{}", dir.word(), p.namespace, p.name));
            let mut body = Vec::new();
            // A pod cannot block access to itself (upstream's NetworkPolicy concept page).
            for ip in &p.ips {
                body.push(format!("{} {} {ip} accept", family(ip), dir.peer()));
            }
            if dir == Dir::In {
                // Nor its node: node-originated packets leave through the output hook, but
                // anything that reaches forward with a local source is the node's too.
                body.push("fib saddr type local accept".to_string());
            }
            for c in policy_chains {
                body.push(format!("jump {c}"));
            }
            body.push("drop".to_string());
            table.chains.push((chain.clone(), body));
            map.extend(p.ips.iter().map(|ip| (*ip, chain.clone())));
        }
        vmaps.push((dir, map));
    }

    let mut out = String::new();
    let _ = writeln!(out, "table inet {TABLE} {{");
    for (name, v6, elements) in &table.sets {
        let _ = writeln!(out, "\tset {name} {{");
        let _ = writeln!(
            out,
            "\t\ttype {}",
            if *v6 { "ipv6_addr" } else { "ipv4_addr" }
        );
        let _ = writeln!(out, "\t\tflags interval");
        let _ = writeln!(out, "\t\telements = {{ {} }}", elements.join(", "));
        let _ = writeln!(out, "\t}}");
    }
    for (name, body) in &table.chains {
        let _ = writeln!(out, "\tchain {name} {{");
        for r in body {
            let _ = writeln!(out, "\t\t{r}");
        }
        let _ = writeln!(out, "\t}}");
    }
    for (dir, map) in &vmaps {
        let _ = writeln!(
            out,
            "\tchain forward-{} {{",
            if *dir == Dir::In { "ingress" } else { "egress" }
        );
        let _ = writeln!(
            out,
            "\t\ttype filter hook forward priority filter; policy accept;"
        );
        let _ = writeln!(out, "\t\tct state established,related accept");
        // The pod's own address: the destination for ingress, the source for egress.
        let key = match dir {
            Dir::In => "daddr",
            Dir::Out => "saddr",
        };
        for fam in ["ip", "ip6"] {
            let elems: Vec<String> = map
                .iter()
                .filter(|(ip, _)| family(ip) == fam)
                .map(|(ip, chain)| format!("{ip} : jump {chain}"))
                .collect();
            if !elems.is_empty() {
                let _ = writeln!(out, "\t\t{fam} {key} vmap {{ {} }}", elems.join(", "));
            }
        }
        let _ = writeln!(out, "\t}}");
    }
    out.push_str("}\n");
    out
}

/// A rule's peers (`from` or `to`) and ports.
type Rule<'a> = (
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
);

/// A policy chain's rules: per rule, per port group and per address family, one `accept`.
fn policy_chain(
    inputs: &Inputs<'_>,
    table: &mut Table,
    dir: Dir,
    ns: &str,
    chain: &str,
    rules: Vec<Rule<'_>>,
    targets: &[usize],
) -> Vec<String> {
    let mut body = Vec::new();
    for (idx, (peers, ports)) in rules.into_iter().enumerate() {
        // Empty or missing peers: every address; missing ports: every port.
        let peers = peers.filter(|p| !p.is_empty());
        let mut peer_pods = BTreeSet::new();
        let mut peer_set = IpSet::default();
        let addr_matches: Vec<(Option<&str>, String)> = match peers {
            None => vec![(None, String::new())],
            Some(peers) => {
                for p in peers {
                    inputs.peer(ns, p, &mut peer_pods, &mut peer_set);
                }
                // The same peers (a selector many policies repeat) give the same set: its
                // addresses are formatted once.
                let key = format!("{}\0{ns}\0{peers:?}", dir.peer());
                let matches = match table.rule_sets.get(&key) {
                    Some(m) => m.clone(),
                    None => {
                        for &i in &peer_pods {
                            for ip in &inputs.pods[i].ips {
                                peer_set.add_ip(*ip);
                            }
                        }
                        let m = table.add_set(&format!("{chain}/{idx}"), &peer_set, dir.peer());
                        table.rule_sets.insert(key, m.clone());
                        m
                    }
                };
                matches.into_iter().map(|(f, m)| (Some(f), m)).collect()
            }
        };
        let Some(spec) = port_spec(ports) else {
            for (_, m) in &addr_matches {
                body.push(format!("{m}accept"));
            }
            continue;
        };
        for (proto, ranges) in &spec.numeric {
            let port = match ranges {
                None => format!("meta l4proto {} ", proto.nft()),
                Some(r) => format!("{} dport {} ", proto.nft(), port_list(r)),
            };
            for (_, m) in &addr_matches {
                body.push(format!("{m}{port}accept"));
            }
        }
        for (proto, port_name) in &spec.named {
            match dir {
                // Resolved against the destination: the selected pods of this node.
                Dir::In => {
                    let mut by_port: BTreeMap<u16, Vec<&IpAddr>> = BTreeMap::new();
                    for &t in targets {
                        let pod = &inputs.pods[t];
                        if let Some(n) = pod.named_port(port_name, *proto) {
                            by_port.entry(n).or_default().extend(pod.ips.iter());
                        }
                    }
                    for (port, ips) in by_port {
                        for fam in ["ip", "ip6"] {
                            let dst: Vec<String> = ips
                                .iter()
                                .filter(|ip| family(ip) == fam)
                                .map(|ip| ip.to_string())
                                .collect();
                            if dst.is_empty() {
                                continue;
                            }
                            for (f, m) in &addr_matches {
                                if f.is_some_and(|f| f != fam) {
                                    continue;
                                }
                                body.push(format!(
                                    "{m}{fam} daddr {} {} dport {port} accept",
                                    braces(&dst),
                                    proto.nft()
                                ));
                            }
                        }
                    }
                }
                // Resolved against the destination too: here the peer pods (all pods when
                // the rule has no peers); an ipBlock has no named ports.
                Dir::Out => {
                    let candidates: Vec<usize> = if peers.is_none() {
                        (0..inputs.pods.len()).collect()
                    } else {
                        peer_pods.iter().copied().collect()
                    };
                    let mut by_port: BTreeMap<u16, IpSet> = BTreeMap::new();
                    for i in candidates {
                        let pod = &inputs.pods[i];
                        if let Some(n) = pod.named_port(port_name, *proto) {
                            let set = by_port.entry(n).or_default();
                            for ip in &pod.ips {
                                set.add_ip(*ip);
                            }
                        }
                    }
                    for (port, set) in by_port {
                        let name = format!("{chain}/{idx}/{}-{port}", proto.nft());
                        for (_, m) in table.add_set(&name, &set, "daddr") {
                            body.push(format!("{m}{} dport {port} accept", proto.nft()));
                        }
                    }
                }
            }
        }
    }
    body
}

#[cfg(test)]
mod tests;
