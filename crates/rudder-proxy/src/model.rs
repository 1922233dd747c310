//! What the proxier programs, read from the API objects as upstream's `ServiceChangeTracker`
//! and `EndpointSliceCache` read them (`pkg/proxy/serviceport.go`, `endpointslicecache.go`):
//! one [`ServicePort`] per port of each IPv4 ClusterIP service, and its endpoints merged from
//! every EndpointSlice of the service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

/// `namespace/name:port` and protocol: upstream's `ServicePortName`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub namespace: String,
    pub name: String,
    pub port: String,
    /// Lower case: `tcp`, `udp`, `sctp`.
    pub protocol: String,
}

impl PortKey {
    /// Upstream's `ServicePortName.String()`: `ns/name` plus `:port` when the port is named.
    pub fn display(&self) -> String {
        if self.port.is_empty() {
            format!("{}/{}", self.namespace, self.name)
        } else {
            format!("{}/{}:{}", self.namespace, self.name, self.port)
        }
    }
}

/// One port of a service, as upstream's `BaseServicePortInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServicePort {
    pub key: PortKey,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// 0 when the service has no node port.
    pub node_port: u16,
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (VIP mode only, as upstream).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub load_balancer_source_ranges: Vec<String>,
    /// `sessionAffinity: ClientIP` with its timeout.
    pub affinity_timeout: Option<u32>,
    pub internal_policy_local: bool,
    pub external_policy_local: bool,
}

impl ServicePort {
    /// Upstream's `ExternallyAccessible`.
    pub fn externally_accessible(&self) -> bool {
        self.node_port != 0 || !self.load_balancer_ips.is_empty() || !self.external_ips.is_empty()
    }

    /// Upstream's `UsesClusterEndpoints`.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || (self.externally_accessible() && !self.external_policy_local)
    }

    /// Upstream's `UsesLocalEndpoints`.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.externally_accessible() && self.external_policy_local)
    }
}

/// An endpoint of a service port, as upstream's `BaseEndpointInfo`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this proxy's node.
    pub local: bool,
}

impl Endpoint {
    /// `ip:port`, upstream's `String()`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

fn is_ipv4_cluster_ip(ip: Option<&String>) -> Option<Ipv4Addr> {
    ip.and_then(|s| s.parse().ok())
}

/// The ports of a service the proxy programs; none for headless, ExternalName or
/// non-IPv4 services (upstream's `ShouldSkipService`).
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    let (Some(spec), Some(ns), Some(name)) = (
        svc.spec.as_ref(),
        svc.metadata.namespace.as_ref(),
        svc.metadata.name.as_ref(),
    ) else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let Some(cluster_ip) = is_ipv4_cluster_ip(spec.cluster_ip.as_ref()) else {
        return Vec::new();
    };
    let v4 = |list: Option<&Vec<String>>| -> Vec<Ipv4Addr> {
        list.into_iter()
            .flatten()
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let external_ips = v4(spec.external_ips.as_ref());
    // Proxy-mode ingress addresses are reached through the load balancer, not captured here.
    let load_balancer_ips: Vec<Ipv4Addr> = if spec.type_.as_deref() == Some("LoadBalancer") {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter(|i| i.ip_mode.as_deref() != Some("Proxy"))
            .filter_map(|i| i.ip.as_ref()?.parse().ok())
            .collect()
    } else {
        Vec::new()
    };
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let externally = matches!(
        spec.type_.as_deref(),
        Some("NodePort") | Some("LoadBalancer")
    ) || !external_ips.is_empty();
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some(ServicePort {
                key: PortKey {
                    namespace: ns.clone(),
                    name: name.clone(),
                    port: p.name.clone().unwrap_or_default(),
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                },
                cluster_ip,
                port,
                node_port: p.node_port.and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
                external_ips: external_ips.clone(),
                load_balancer_ips: load_balancer_ips.clone(),
                load_balancer_source_ranges: spec
                    .load_balancer_source_ranges
                    .clone()
                    .unwrap_or_default(),
                affinity_timeout,
                internal_policy_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_policy_local: externally
                    && spec.external_traffic_policy.as_deref() == Some("Local"),
            })
        })
        .collect()
}

/// Every service port's endpoints from the EndpointSlices (IPv4 ones), merged across slices
/// and sorted, as upstream's `EndpointSliceCache` does; `node` is this proxy's node.
pub fn endpoints_by_port<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
) -> BTreeMap<PortKey, Vec<Endpoint>> {
    let mut out: BTreeMap<PortKey, BTreeSet<Endpoint>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let (Some(ns), Some(svc)) = (
            slice.metadata.namespace.as_ref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name")),
        ) else {
            continue;
        };
        for port in slice.ports.iter().flatten() {
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let key = PortKey {
                namespace: ns.clone(),
                name: svc.clone(),
                port: port.name.clone().unwrap_or_default(),
                protocol: port.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
            };
            let set = out.entry(key).or_default();
            for ep in slice.endpoints.iter().flatten() {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                let c = ep.conditions.as_ref();
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let serving = c.and_then(|c| c.serving).unwrap_or(ready);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                set.insert(Endpoint {
                    ip,
                    port: number,
                    ready,
                    serving,
                    terminating,
                    local: ep.node_name.as_deref() == Some(node),
                });
            }
        }
    }
    out.into_iter()
        .map(|(k, set)| {
            // One entry per address: a pod listed by two slices (during a move) counts once.
            let mut seen = BTreeSet::new();
            let list = set
                .into_iter()
                .filter(|e| seen.insert((e.ip, e.port)))
                .collect();
            (k, list)
        })
        .collect()
}

/// What [`categorize`] returns: upstream's `CategorizeEndpoints` result.
#[derive(Debug, Default)]
pub struct Categorized<'a> {
    pub cluster: Vec<&'a Endpoint>,
    pub local: Vec<&'a Endpoint>,
    pub all_reachable: Vec<&'a Endpoint>,
    pub has_any: bool,
}

/// Upstream's `CategorizeEndpoints` (without topology hints): ready endpoints, else serving
/// terminating ones, independently for the Cluster and the Local policy.
pub fn categorize<'a>(endpoints: &'a [Endpoint], svc: &ServicePort) -> Categorized<'a> {
    let mut out = Categorized::default();
    if endpoints.is_empty() {
        return out;
    }
    if svc.uses_cluster_endpoints() {
        out.cluster = endpoints.iter().filter(|e| e.ready).collect();
        if out.cluster.is_empty() {
            out.cluster = endpoints
                .iter()
                .filter(|e| e.serving && e.terminating)
                .collect();
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !svc.uses_local_endpoints() {
        out.all_reachable = out.cluster.clone();
        return out;
    }
    let (mut local_ready, mut local_terminating) = (false, false);
    for e in endpoints {
        if e.ready {
            out.has_any = true;
            local_ready |= e.local;
        } else if e.serving && e.terminating {
            out.has_any = true;
            local_terminating |= e.local;
        }
    }
    let mut using_terminating = false;
    if local_ready {
        out.local = endpoints.iter().filter(|e| e.local && e.ready).collect();
    } else if local_terminating {
        using_terminating = true;
        out.local = endpoints
            .iter()
            .filter(|e| e.local && e.serving && e.terminating)
            .collect();
    }
    if !svc.uses_cluster_endpoints() {
        out.all_reachable = out.local.clone();
        return out;
    }
    if !using_terminating {
        out.all_reachable = out.cluster.clone();
        return out;
    }
    let mut all: Vec<&Endpoint> = out
        .cluster
        .iter()
        .chain(out.local.iter())
        .copied()
        .collect();
    all.sort();
    all.dedup();
    out.all_reachable = all;
    out
}
