//! The `ip kube-proxy` table as upstream's nftables proxier lays it out
//! (`pkg/proxy/nftables/proxier.go`, `setupNFTables` and `syncProxyRules`), rendered as the
//! text of one `nft -f -` transaction. Pure: the sync loop keeps what the previous transaction
//! left (chains to retire, affinity sets and their timeouts) and passes it in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::model::{categorize, Endpoint, PortKey, ServicePort};

pub const TABLE: &str = "kube-proxy";

const SERVICES: &str = "services";
const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NODEPORT_IPS: &str = "nodeport-ips";
const CLUSTER_IPS: &str = "cluster-ips";
const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const REJECT_CHAIN: &str = "reject-chain";
const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
const FIREWALL_IPS: &str = "firewall-ips";
const FIREWALL_CHECK: &str = "firewall-check";
const MARK_MASQ: &str = "mark-for-masquerade";
const MASQUERADING: &str = "masquerading";

/// Upstream's base chains: filter chains run before DNAT so that they see service addresses.
/// Priorities as numbers (`dstnat` is -100, `srcnat` 100).
const BASE_CHAINS: &[(&str, &str, &str, i32)] = &[
    ("filter-prerouting", "filter", "prerouting", -110),
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
];

/// Upstream's jumps from base chains to the top-level regular chains.
const JUMP_CHAINS: &[(&str, &str, &str)] = &[
    (NODEPORT_ENDPOINTS_CHECK, "filter-input", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-input", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-forward", "ct state new "),
    (SERVICE_ENDPOINTS_CHECK, "filter-output", "ct state new "),
    (FIREWALL_CHECK, "filter-prerouting", "ct state new "),
    (FIREWALL_CHECK, "filter-output", "ct state new "),
    (SERVICES, "nat-output", ""),
    (SERVICES, "nat-prerouting", ""),
    (MASQUERADING, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK, "filter-forward", "ct state new "),
    (
        CLUSTER_IPS_CHECK,
        "filter-output-post-dnat",
        "ct state new ",
    ),
];

/// The proxier's fixed settings.
#[derive(Clone, Debug)]
pub struct RuleConfig {
    /// Pod traffic is recognised by this source range (upstream's `--cluster-cidr` local
    /// detector); traffic from elsewhere to a ClusterIP is masqueraded.
    pub cluster_cidr: Option<String>,
    /// Traffic to unallocated addresses of these ranges is dropped.
    pub service_cidrs: Vec<String>,
    /// `--masquerade-bit` as a mark (upstream's default bit 14).
    pub masquerade_mark: u32,
    /// `--nodeport-addresses` resolved to addresses; empty: every local address (including
    /// 127.0.0.1, which needs `route_localnet`).
    pub nodeport_ips: Vec<Ipv4Addr>,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            cluster_cidr: Some("10.42.0.0/16".into()),
            service_cidrs: vec!["10.43.0.0/16".into()],
            masquerade_mark: 1 << 14,
            nodeport_ips: Vec::new(),
        }
    }
}

/// What earlier transactions left in the table that this one must account for.
#[derive(Clone, Debug, Default)]
pub struct Previous {
    /// Service and endpoint chains that exist.
    pub chains: BTreeSet<String>,
    /// Affinity sets that exist, with their timeouts.
    pub affinity_sets: BTreeMap<String, u32>,
    /// What each service port's chains were rendered from (a hash): ports whose signature is
    /// unchanged keep their chains as they are. Empty for a full sync.
    pub signatures: BTreeMap<PortKey, u64>,
    /// False before the first transaction: base chains are then deleted and recreated so that
    /// a table left by another version cannot make the transaction fail.
    pub initialized: bool,
}

/// A rendered transaction and the state it leaves.
#[derive(Debug, Default)]
pub struct Ruleset {
    pub text: String,
    pub chains: BTreeSet<String>,
    /// Chains that were flushed because no service uses them now; delete them a second later
    /// (upstream: kernels before 6.2 notice only after a moment that a map no longer points
    /// at them).
    pub stale_chains: BTreeSet<String>,
    pub affinity_sets: BTreeMap<String, u32>,
    pub signatures: BTreeMap<PortKey, u64>,
    /// Service ports with no local endpoints for internal / external traffic.
    pub no_local_internal: usize,
    pub no_local_external: usize,
}

/// Upstream's `hashAndTruncate`: the first 8 base32 characters of the name's SHA-256, a dash,
/// the name (cut to fit nftables' 256-byte names).
fn hash_and_truncate(name: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    let bytes = digest.as_ref();
    // 8 base32 characters are exactly the first 40 bits.
    let bits = bytes[..5]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = String::with_capacity(name.len() + 9);
    for i in (0..8).rev() {
        out.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
    }
    out.push('-');
    out.push_str(name);
    const MAX: usize = 256 - 16;
    if out.len() > MAX {
        out.truncate(MAX - 3);
        out.push_str("...");
    }
    out
}

/// `HASH-ns/name/proto/port`, upstream's `servicePortChainNameBase`.
pub fn service_chain_base(key: &PortKey) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        key.namespace, key.name, key.protocol, key.port
    ))
}

/// `HASH-ns/name/proto/port__ip/port`, upstream's `servicePortEndpointChainNameBase`.
pub fn endpoint_chain_base(key: &PortKey, ep: &Endpoint) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        key.namespace, key.name, key.protocol, key.port, ep.ip, ep.port
    ))
}

struct Tx {
    out: String,
    /// Map and set elements, written after every chain they may point at.
    elements: String,
    created: BTreeSet<String>,
    /// False while skipping an unchanged service's chains (upstream's partial sync: they are
    /// in the kernel already; only their names are noted as active).
    emit: bool,
}

impl Tx {
    fn line(&mut self, s: std::fmt::Arguments<'_>) {
        if self.emit {
            let _ = self.out.write_fmt(s);
            self.out.push('\n');
        }
    }

    fn rule(&mut self, chain: &str, rule: &str) {
        self.line(format_args!("add rule ip {TABLE} {chain} {rule}"));
    }

    /// Upstream's `ensureChain`: add and flush a chain once per transaction.
    fn ensure_chain(&mut self, chain: &str) {
        if self.created.insert(chain.to_string()) {
            self.line(format_args!("add chain ip {TABLE} {chain}"));
            self.line(format_args!("flush chain ip {TABLE} {chain}"));
        }
    }

    fn element(&mut self, map: &str, key: &str, comment: Option<&str>, value: Option<&str>) {
        let comment = comment
            .map(|c| format!(" comment \"{c}\""))
            .unwrap_or_default();
        let value = value.map(|v| format!(" : {v}")).unwrap_or_default();
        let _ = writeln!(
            self.elements,
            "add element ip {TABLE} {map} {{ {key}{comment}{value} }}"
        );
    }
}

fn setup(tx: &mut Tx, cfg: &RuleConfig, prev: &Previous) {
    tx.line(format_args!(
        "add table ip {TABLE} {{ comment \"rules for kube-proxy\" ; }}"
    ));
    if !prev.initialized {
        for (name, ..) in BASE_CHAINS {
            tx.line(format_args!("add chain ip {TABLE} {name}"));
            tx.line(format_args!("delete chain ip {TABLE} {name}"));
        }
    }
    for (name, kind, hook, priority) in BASE_CHAINS {
        tx.line(format_args!(
            "add chain ip {TABLE} {name} {{ type {kind} hook {hook} priority {priority} ; }}"
        ));
        tx.line(format_args!("flush chain ip {TABLE} {name}"));
    }
    for (dst, src, extra) in JUMP_CHAINS {
        tx.ensure_chain(dst);
        tx.rule(src, &format!("{extra}jump {dst}"));
    }
    for chain in [SERVICES, CLUSTER_IPS_CHECK, MASQUERADING, MARK_MASQ] {
        tx.ensure_chain(chain);
    }
    let mark = format!("{:#010x}", cfg.masquerade_mark);
    tx.rule(MARK_MASQ, &format!("mark set mark or {mark}"));
    tx.rule(MASQUERADING, &format!("mark and {mark} == 0 return"));
    tx.rule(MASQUERADING, &format!("mark set mark xor {mark}"));
    tx.rule(MASQUERADING, "masquerade fully-random");

    tx.line(format_args!(
        "add set ip {TABLE} {CLUSTER_IPS} {{ type ipv4_addr ; comment \"Active ClusterIPs\" ; }}"
    ));
    tx.line(format_args!(
        "add rule ip {TABLE} {CLUSTER_IPS_CHECK} ip daddr @{CLUSTER_IPS} reject comment \"Reject traffic to invalid ports of ClusterIPs\""
    ));
    if !cfg.service_cidrs.is_empty() {
        tx.line(format_args!(
            "add rule ip {TABLE} {CLUSTER_IPS_CHECK} ip daddr {{ {} }} drop comment \"Drop traffic to unallocated ClusterIPs\"",
            cfg.service_cidrs.join(", ")
        ));
    }

    tx.line(format_args!(
        "add set ip {TABLE} {NODEPORT_IPS} {{ type ipv4_addr ; comment \"IPs that accept NodePort traffic\" ; }}"
    ));
    if cfg.nodeport_ips.is_empty() {
        tx.line(format_args!("delete set ip {TABLE} {NODEPORT_IPS}"));
    } else {
        tx.line(format_args!("flush set ip {TABLE} {NODEPORT_IPS}"));
        for ip in &cfg.nodeport_ips {
            tx.element(NODEPORT_IPS, &ip.to_string(), None, None);
        }
    }

    // Service traffic is matched by destination address, port and protocol; NodePort traffic by
    // port and protocol on the addresses that accept it (every local one when none are set:
    // iptables mode's default, 127.0.0.1 included; upstream's nftables mode leaves localhost out).
    let by_dest = "ip daddr . meta l4proto . th dport vmap";
    let (by_port, by_local_port) = if cfg.nodeport_ips.is_empty() {
        (
            "meta l4proto . th dport vmap".to_string(),
            "fib daddr type local meta l4proto . th dport vmap".to_string(),
        )
    } else {
        let nodeport = format!("ip daddr @{NODEPORT_IPS} meta l4proto . th dport vmap");
        (nodeport.clone(), nodeport)
    };
    let dest_key = "ipv4_addr . inet_proto . inet_service";
    let port_key = "inet_proto . inet_service";
    for (map, key, comment) in [
        (
            NO_ENDPOINT_SERVICES,
            dest_key,
            "vmap to drop or reject packets to services with no endpoints",
        ),
        (
            NO_ENDPOINT_NODEPORTS,
            port_key,
            "vmap to drop or reject packets to service nodeports with no endpoints",
        ),
    ] {
        tx.line(format_args!(
            "add map ip {TABLE} {map} {{ type {key} : verdict ; comment \"{comment}\" ; }}"
        ));
    }
    tx.line(format_args!(
        "add chain ip {TABLE} {REJECT_CHAIN} {{ comment \"helper for @no-endpoint-services / @no-endpoint-nodeports\" ; }}"
    ));
    tx.line(format_args!("flush chain ip {TABLE} {REJECT_CHAIN}"));
    tx.rule(REJECT_CHAIN, "reject");
    tx.rule(
        SERVICE_ENDPOINTS_CHECK,
        &format!("{by_dest} @{NO_ENDPOINT_SERVICES}"),
    );
    // Reached from filter-input only, so the destination is a local address already.
    tx.rule(
        NODEPORT_ENDPOINTS_CHECK,
        &format!("{by_port} @{NO_ENDPOINT_NODEPORTS}"),
    );

    tx.line(format_args!(
        "add map ip {TABLE} {FIREWALL_IPS} {{ type {dest_key} : verdict ; comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }}"
    ));
    tx.ensure_chain(FIREWALL_CHECK);
    tx.rule(FIREWALL_CHECK, &format!("{by_dest} @{FIREWALL_IPS}"));

    for (map, key, comment) in [
        (
            SERVICE_IPS,
            dest_key,
            "ClusterIP, ExternalIP and LoadBalancer IP traffic",
        ),
        (SERVICE_NODEPORTS, port_key, "NodePort traffic"),
    ] {
        tx.line(format_args!(
            "add map ip {TABLE} {map} {{ type {key} : verdict ; comment \"{comment}\" ; }}"
        ));
    }
    tx.rule(SERVICES, &format!("{by_dest} @{SERVICE_IPS}"));
    tx.rule(SERVICES, &format!("{by_local_port} @{SERVICE_NODEPORTS}"));
    tx.line(format_args!("flush set ip {TABLE} {CLUSTER_IPS}"));
    for map in [
        SERVICE_IPS,
        FIREWALL_IPS,
        NO_ENDPOINT_SERVICES,
        NO_ENDPOINT_NODEPORTS,
        SERVICE_NODEPORTS,
    ] {
        tx.line(format_args!("flush map ip {TABLE} {map}"));
    }
}

/// Renders the whole table for `ports` (sorted by key for a stable text) and their
/// endpoints.
pub fn render(
    cfg: &RuleConfig,
    ports: &[ServicePort],
    endpoints: &BTreeMap<PortKey, Vec<Endpoint>>,
    prev: &Previous,
) -> Ruleset {
    let mut tx = Tx {
        out: String::with_capacity(256 + ports.len() * 600),
        elements: String::with_capacity(ports.len() * 120),
        created: BTreeSet::new(),
        emit: true,
    };
    setup(&mut tx, cfg, prev);
    let fixed: BTreeSet<String> = std::mem::take(&mut tx.created);
    let mut rs = Ruleset::default();
    let mut cluster_ips = BTreeSet::new();
    let empty = Vec::new();
    for svc in ports {
        let key = &svc.key;
        let proto = key.protocol.as_str();
        let name = key.display();
        let base = service_chain_base(key);
        let cluster_chain = format!("service-{base}");
        let local_chain = format!("local-{base}");
        let external_chain = format!("external-{base}");
        let firewall_chain = format!("firewall-{base}");
        let eps = endpoints.get(key).unwrap_or(&empty);
        let signature = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (svc, eps).hash(&mut h);
            h.finish()
        };
        tx.emit = !prev.initialized || prev.signatures.get(key) != Some(&signature);
        rs.signatures.insert(key.clone(), signature);
        let cat = categorize(eps, svc);
        let ep_chain = |ep: &Endpoint| format!("endpoint-{}", endpoint_chain_base(key, ep));
        let affinity_set = |ep: &Endpoint| format!("affinity-{}", endpoint_chain_base(key, ep));

        for ep in &cat.all_reachable {
            tx.ensure_chain(&ep_chain(ep));
        }
        let uses_cluster = !cat.cluster.is_empty() && svc.uses_cluster_endpoints();
        if uses_cluster {
            tx.ensure_chain(&cluster_chain);
        }
        let uses_local = !cat.local.is_empty() && svc.uses_local_endpoints();
        if uses_local {
            tx.ensure_chain(&local_chain);
        }
        let (mut internal_chain, mut has_internal) = (&cluster_chain, cat.has_any);
        if svc.internal_policy_local {
            internal_chain = &local_chain;
            has_internal = !cat.local.is_empty();
        }
        let (mut external_policy_chain, mut has_external) = (&cluster_chain, cat.has_any);
        if svc.external_policy_local {
            external_policy_chain = &local_chain;
            has_external = !cat.local.is_empty();
        }
        let uses_external = cat.has_any && svc.externally_accessible();
        if uses_external {
            tx.ensure_chain(&external_chain);
        }
        let reject = format!("goto {REJECT_CHAIN}");
        let (internal_verdict, external_verdict) = if !cat.has_any {
            (reject.as_str(), reject.as_str())
        } else {
            if !has_internal {
                rs.no_local_internal += 1;
            }
            if !has_external {
                rs.no_local_external += 1;
            }
            ("drop", "drop")
        };
        let dest = |ip: &Ipv4Addr, port: u16| format!("{ip} . {proto} . {port}");

        cluster_ips.insert(svc.cluster_ip);
        if has_internal {
            tx.element(
                SERVICE_IPS,
                &dest(&svc.cluster_ip, svc.port),
                None,
                Some(&format!("goto {internal_chain}")),
            );
        } else {
            tx.element(
                NO_ENDPOINT_SERVICES,
                &dest(&svc.cluster_ip, svc.port),
                Some(&name),
                Some(internal_verdict),
            );
        }
        for ip in &svc.external_ips {
            if cat.has_any {
                tx.element(
                    SERVICE_IPS,
                    &dest(ip, svc.port),
                    None,
                    Some(&format!("goto {external_chain}")),
                );
            }
            if !has_external {
                tx.element(
                    NO_ENDPOINT_SERVICES,
                    &dest(ip, svc.port),
                    Some(&name),
                    Some(external_verdict),
                );
            }
        }
        let uses_firewall =
            !svc.load_balancer_ips.is_empty() && !svc.load_balancer_source_ranges.is_empty();
        if uses_firewall {
            tx.ensure_chain(&firewall_chain);
        }
        for ip in &svc.load_balancer_ips {
            if cat.has_any {
                tx.element(
                    SERVICE_IPS,
                    &dest(ip, svc.port),
                    None,
                    Some(&format!("goto {external_chain}")),
                );
            }
            if uses_firewall {
                tx.element(
                    FIREWALL_IPS,
                    &dest(ip, svc.port),
                    None,
                    Some(&format!("goto {firewall_chain}")),
                );
            }
        }
        if !has_external {
            for ip in &svc.load_balancer_ips {
                tx.element(
                    NO_ENDPOINT_SERVICES,
                    &dest(ip, svc.port),
                    Some(&name),
                    Some(external_verdict),
                );
            }
        }
        if svc.node_port != 0 {
            if cat.has_any {
                tx.element(
                    SERVICE_NODEPORTS,
                    &format!("{proto} . {}", svc.node_port),
                    None,
                    Some(&format!("goto {external_chain}")),
                );
            }
            if !has_external {
                tx.element(
                    NO_ENDPOINT_NODEPORTS,
                    &format!("{proto} . {}", svc.node_port),
                    Some(&name),
                    Some(external_verdict),
                );
            }
        }

        // Internal traffic: masquerade what does not come from the pod network (a node, or
        // a host routing the service range to this node).
        if has_internal {
            if let Some(cidr) = &cfg.cluster_cidr {
                tx.rule(
                    internal_chain,
                    &format!(
                        "ip daddr {} {proto} dport {} ip saddr != {cidr} jump {MARK_MASQ}",
                        svc.cluster_ip, svc.port
                    ),
                );
            }
        }
        if uses_external {
            if !svc.external_policy_local {
                // Endpoints may be on other nodes: masquerade so replies come back here.
                tx.rule(&external_chain, &format!("jump {MARK_MASQ}"));
            } else {
                if let Some(cidr) = &cfg.cluster_cidr {
                    tx.line(format_args!(
                        "add rule ip {TABLE} {external_chain} ip saddr {cidr} goto {cluster_chain} comment \"short-circuit pod traffic\""
                    ));
                }
                tx.line(format_args!(
                    "add rule ip {TABLE} {external_chain} fib saddr type local jump {MARK_MASQ} comment \"masquerade local traffic\""
                ));
                tx.line(format_args!(
                    "add rule ip {TABLE} {external_chain} fib saddr type local goto {cluster_chain} comment \"short-circuit local traffic\""
                ));
            }
            if has_external {
                tx.rule(&external_chain, &format!("goto {external_policy_chain}"));
            }
        }
        if uses_firewall {
            tx.rule(
                &firewall_chain,
                &format!(
                    "ip saddr != {{ {} }} drop",
                    svc.load_balancer_source_ranges.join(", ")
                ),
            );
        }
        if let Some(timeout) = svc.affinity_timeout {
            for ep in &cat.all_reachable {
                let set = affinity_set(ep);
                // A set's timeout cannot change in place: recreate it (its chains were
                // flushed above, so nothing refers to it any more).
                if prev.affinity_sets.get(&set).is_some_and(|t| *t != timeout) {
                    tx.line(format_args!("delete set ip {TABLE} {set}"));
                }
                tx.line(format_args!(
                    "add set ip {TABLE} {set} {{ type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s ; }}"
                ));
                rs.affinity_sets.insert(set, timeout);
            }
        }
        if uses_cluster {
            service_to_endpoints(
                &mut tx,
                svc,
                &cluster_chain,
                &cat.cluster,
                &ep_chain,
                &affinity_set,
            );
        }
        if uses_local {
            service_to_endpoints(
                &mut tx,
                svc,
                &local_chain,
                &cat.local,
                &ep_chain,
                &affinity_set,
            );
        }
        for ep in &cat.all_reachable {
            let chain = ep_chain(ep);
            // Hairpin: a pod reaching itself through the service must not see its own
            // address as the source.
            tx.rule(&chain, &format!("ip saddr {} jump {MARK_MASQ}", ep.ip));
            if svc.affinity_timeout.is_some() {
                tx.rule(
                    &chain,
                    &format!("update @{} {{ ip saddr }}", affinity_set(ep)),
                );
            }
            tx.rule(
                &chain,
                &format!("meta l4proto {proto} dnat to {}", ep.addr()),
            );
        }
    }
    tx.emit = true;
    for ip in &cluster_ips {
        tx.element(CLUSTER_IPS, &ip.to_string(), None, None);
    }
    let elements = std::mem::take(&mut tx.elements);
    tx.out.push_str(&elements);
    let active: BTreeSet<String> = tx.created.difference(&fixed).cloned().collect();
    for chain in prev.chains.difference(&active) {
        tx.line(format_args!("flush chain ip {TABLE} {chain}"));
        rs.stale_chains.insert(chain.clone());
    }
    for set in prev.affinity_sets.keys() {
        if !rs.affinity_sets.contains_key(set) {
            tx.line(format_args!("delete set ip {TABLE} {set}"));
        }
    }
    rs.chains = active;
    rs.text = tx.out;
    rs
}

/// Upstream's `writeServiceToEndpointRules`: sticky clients first, then a random pick.
fn service_to_endpoints(
    tx: &mut Tx,
    svc: &ServicePort,
    chain: &str,
    endpoints: &[&Endpoint],
    ep_chain: &dyn Fn(&Endpoint) -> String,
    affinity_set: &dyn Fn(&Endpoint) -> String,
) {
    if svc.affinity_timeout.is_some() {
        for ep in endpoints {
            tx.rule(
                chain,
                &format!("ip saddr @{} goto {}", affinity_set(ep), ep_chain(ep)),
            );
        }
    }
    let elements: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| format!("{i} : goto {}", ep_chain(ep)))
        .collect();
    tx.rule(
        chain,
        &format!(
            "numgen random mod {} vmap {{ {} }}",
            endpoints.len(),
            elements.join(" , ")
        ),
    );
}

/// The transaction that deletes chains retired by an earlier one.
pub fn delete_chains<'a>(chains: impl IntoIterator<Item = &'a String>) -> String {
    let mut out = String::new();
    for c in chains {
        let _ = writeln!(out, "delete chain ip {TABLE} {c}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str, port: &str) -> PortKey {
        PortKey {
            namespace: ns.into(),
            name: name.into(),
            port: port.into(),
            protocol: "tcp".into(),
        }
    }

    fn svc(k: PortKey, ip: &str, node_port: u16) -> ServicePort {
        ServicePort {
            key: k,
            cluster_ip: ip.parse().unwrap(),
            port: 80,
            node_port,
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout: None,
            internal_policy_local: false,
            external_policy_local: false,
        }
    }

    fn ep(ip: &str, ready: bool, local: bool) -> Endpoint {
        Endpoint {
            ip: ip.parse().unwrap(),
            port: 80,
            ready,
            serving: ready,
            terminating: false,
            local,
        }
    }

    // Chain names from upstream's proxier_test.go (TestOverallNFTablesRules).
    #[test]
    fn chain_names_hash_as_upstream() {
        let k = key("ns1", "svc1", "p80");
        assert_eq!(
            format!("service-{}", service_chain_base(&k)),
            "service-ULMVA6XW-ns1/svc1/tcp/p80"
        );
        assert_eq!(
            format!(
                "endpoint-{}",
                endpoint_chain_base(&k, &ep("10.180.0.1", true, false))
            ),
            "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
        );
    }

    #[test]
    fn golden_small_ruleset() {
        let k1 = key("ns1", "svc1", "p80");
        let k2 = key("ns2", "svc2", "");
        let ports = vec![
            svc(k1.clone(), "172.30.0.41", 3001),
            svc(k2, "172.30.0.42", 0),
        ];
        let endpoints = BTreeMap::from([(
            k1,
            vec![ep("10.180.0.1", true, true), ep("10.180.0.2", false, false)],
        )]);
        let cfg = RuleConfig {
            cluster_cidr: Some("10.0.0.0/8".into()),
            service_cidrs: vec!["172.30.0.0/16".into()],
            masquerade_mark: 1 << 14,
            nodeport_ips: vec![],
        };
        let prev = Previous {
            initialized: true,
            chains: BTreeSet::from(["service-XXXXXXXX-ns9/gone/tcp/".to_string()]),
            ..Default::default()
        };
        let rs = render(&cfg, &ports, &endpoints, &prev);
        let services: String = rs
            .text
            .lines()
            .skip_while(|l| !l.starts_with("flush map ip kube-proxy service-nodeports"))
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            services,
            "\
add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
flush chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
flush chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
add chain ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80
flush chain ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 goto service-ULMVA6XW-ns1/svc1/tcp/p80
add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto external-ULMVA6XW-ns1/svc1/tcp/p80 }
add element ip kube-proxy no-endpoint-services { 172.30.0.42 . tcp . 80 comment \"ns2/svc2\" : goto reject-chain }
add element ip kube-proxy cluster-ips { 172.30.0.41 }
add element ip kube-proxy cluster-ips { 172.30.0.42 }
flush chain ip kube-proxy service-XXXXXXXX-ns9/gone/tcp/
"
        );
        assert!(rs.stale_chains.contains("service-XXXXXXXX-ns9/gone/tcp/"));
        // A partial sync: nothing changed, so no service chain is rewritten, but the maps
        // (flushed by the setup) get every element again.
        let again = render(
            &cfg,
            &ports,
            &endpoints,
            &Previous {
                initialized: true,
                chains: rs.chains.clone(),
                signatures: rs.signatures.clone(),
                ..Default::default()
            },
        );
        assert!(!again
            .text
            .contains("add chain ip kube-proxy service-ULMVA6XW"));
        assert!(!again.text.contains("dnat to"));
        assert!(again.text.contains(
            "add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }"
        ));
        assert_eq!(again.chains, rs.chains);
        assert_eq!(rs.chains.len(), 3);
        // The fixed part: base chains, jumps, masquerading, the maps.
        for line in [
            "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
            "add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check",
            "add rule ip kube-proxy mark-for-masquerade mark set mark or 0x00004000",
            "add rule ip kube-proxy masquerading masquerade fully-random",
            "add rule ip kube-proxy services fib daddr type local meta l4proto . th dport vmap @service-nodeports",
            "add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment \"Drop traffic to unallocated ClusterIPs\"",
        ] {
            assert!(rs.text.contains(line), "missing {line:?} in\n{}", rs.text);
        }
    }

    /// `nft -c` (check only) in a network namespace of its own accepts what we render, on
    /// the first sync and later ones; skipped where it cannot run (not root, no nft).
    #[test]
    fn nft_accepts_the_transaction() {
        let k = key("ns1", "svc1", "p80");
        let mut s = svc(k.clone(), "172.30.0.41", 3001);
        s.affinity_timeout = Some(30);
        s.external_ips = vec!["192.0.2.1".parse().unwrap()];
        s.load_balancer_ips = vec!["192.0.2.2".parse().unwrap()];
        s.load_balancer_source_ranges = vec!["192.0.2.0/24".into()];
        let mut l = svc(key("ns1", "local", ""), "172.30.0.43", 3002);
        l.external_policy_local = true;
        l.internal_policy_local = true;
        let endpoints = BTreeMap::from([
            (
                k,
                vec![ep("10.180.0.1", true, true), ep("10.180.0.2", true, false)],
            ),
            (l.key.clone(), vec![ep("10.180.0.3", true, true)]),
        ]);
        let ports = vec![s, l, svc(key("ns2", "empty", "x"), "172.30.0.42", 3003)];
        let first = render(
            &RuleConfig::default(),
            &ports,
            &endpoints,
            &Previous::default(),
        );
        let cfg = RuleConfig {
            nodeport_ips: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        };
        let text = format!(
            "{}{}",
            first.text,
            render(
                &cfg,
                &ports,
                &endpoints,
                &Previous {
                    initialized: true,
                    ..Default::default()
                }
            )
            .text
        );
        let child = std::process::Command::new("unshare")
            .args(["-n", "nft", "-c", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { return };
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("Operation not permitted") || err.contains("No such file") {
            return;
        }
        assert!(out.status.success(), "{err}\n{text}");
    }

    #[test]
    fn affinity_local_policy_and_terminating_fallback() {
        let k = key("ns1", "svc1", "p80");
        let mut s = svc(k.clone(), "172.30.0.41", 3001);
        s.affinity_timeout = Some(10800);
        s.external_policy_local = true;
        // Only a terminating, still serving endpoint is left, on this node.
        let mut term = ep("10.180.0.1", false, true);
        term.serving = true;
        term.terminating = true;
        let endpoints = BTreeMap::from([(k, vec![term])]);
        let rs = render(
            &RuleConfig::default(),
            &[s],
            &endpoints,
            &Previous {
                initialized: true,
                affinity_sets: BTreeMap::from([(
                    "affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80".to_string(),
                    60,
                )]),
                ..Default::default()
            },
        );
        let t = &rs.text;
        for line in [
            "delete set ip kube-proxy affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
            "add set ip kube-proxy affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }",
            "add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr @affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80",
            "add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 update @affinity-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 { ip saddr }",
            "add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 ip saddr 10.42.0.0/16 goto service-ULMVA6XW-ns1/svc1/tcp/p80 comment \"short-circuit pod traffic\"",
            "add rule ip kube-proxy external-ULMVA6XW-ns1/svc1/tcp/p80 goto local-ULMVA6XW-ns1/svc1/tcp/p80",
            "add rule ip kube-proxy local-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        // No SNAT for external traffic to a Local service.
        assert!(!t.contains("external-ULMVA6XW-ns1/svc1/tcp/p80 jump mark-for-masquerade"));
    }
}
