//! The in-memory view of the cluster DNS answers from: Services, EndpointSlices and Namespaces,
//! reduced to what CoreDNS's kubernetes plugin keeps of them (its `object` package) and indexed
//! by name and by IP, updated from watch events.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// `(namespace, name)`.
pub type Key = (String, String);

/// The EndpointSlice label naming its service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port's name, empty when unnamed.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// -1 when the object declares no ports (CoreDNS's sentinel: A records, no SRV).
    pub port: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcKind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svc {
    pub kind: SvcKind,
    pub ports: Vec<Port>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointAddr {
    pub ip: IpAddr,
    /// The endpoint's `hostname`, empty when unset.
    pub hostname: String,
}

/// The ready endpoints of one slice (CoreDNS keeps only those).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub service: String,
    pub ports: Vec<Port>,
    pub addrs: Vec<EndpointAddr>,
}

/// Which kinds have been listed once (CoreDNS answers SERVFAIL instead of NXDOMAIN until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Services = 0,
    Slices = 1,
    Namespaces = 2,
}

#[derive(Default)]
pub struct State {
    pub namespaces: HashSet<String>,
    pub services: HashMap<Key, Svc>,
    pub slices: HashMap<Key, Slice>,
    /// Service → the names of its slices.
    pub slices_by_service: HashMap<Key, BTreeSet<String>>,
    pub services_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
    /// Endpoint address → the slices holding it (as `(namespace, slice)`).
    pub slices_by_ip: HashMap<IpAddr, BTreeSet<Key>>,
    synced: [bool; 3],
    /// Node name (lowercase) → its InternalIPs: k3s's `NodeHosts` (the Corefile's `hosts`
    /// block), so pods resolve the cluster's node names.
    pub node_hosts: HashMap<String, Vec<IpAddr>>,
    /// The SOA serial: Unix time of the last change, as CoreDNS's `Modified`.
    pub serial: u32,
}

impl State {
    pub fn synced(&self) -> bool {
        self.synced.iter().all(|s| *s)
    }

    /// The ready endpoints of a service, slice by slice.
    pub fn slices_of<'a>(&'a self, ns: &str, svc: &str) -> impl Iterator<Item = &'a Slice> + 'a {
        let key = (ns.to_string(), svc.to_string());
        let names = self.slices_by_service.get(&key);
        names.into_iter().flatten().filter_map(move |n| {
            self.slices
                .get(&(key.0.clone(), n.clone()))
                .filter(|s| s.service == key.1)
        })
    }

    fn touch(&mut self) {
        self.serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
    }

    fn insert_service(&mut self, key: Key, svc: Svc) {
        self.remove_service(&key);
        if let SvcKind::ClusterIp(ips) = &svc.kind {
            for ip in ips {
                self.services_by_ip
                    .entry(*ip)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.services.insert(key, svc);
    }

    fn remove_service(&mut self, key: &Key) {
        if let Some(Svc {
            kind: SvcKind::ClusterIp(ips),
            ..
        }) = self.services.remove(key)
        {
            for ip in ips {
                remove_from(&mut self.services_by_ip, &ip, key);
            }
        }
    }

    fn insert_slice(&mut self, key: Key, slice: Slice) {
        self.remove_slice(&key);
        self.slices_by_service
            .entry((key.0.clone(), slice.service.clone()))
            .or_default()
            .insert(key.1.clone());
        for a in &slice.addrs {
            self.slices_by_ip
                .entry(a.ip)
                .or_default()
                .insert(key.clone());
        }
        self.slices.insert(key, slice);
    }

    fn remove_slice(&mut self, key: &Key) {
        if let Some(old) = self.slices.remove(key) {
            let svc = (key.0.clone(), old.service.clone());
            remove_from(&mut self.slices_by_service, &svc, &key.1);
            for a in old.addrs {
                remove_from(&mut self.slices_by_ip, &a.ip, key);
            }
        }
    }
}

fn remove_from<K: std::hash::Hash + Eq, V: Ord>(map: &mut HashMap<K, BTreeSet<V>>, k: &K, v: &V) {
    if let Some(set) = map.get_mut(k) {
        set.remove(v);
        if set.is_empty() {
            map.remove(k);
        }
    }
}

/// The index the DNS server answers from, shared by the watch tasks and the server.
#[derive(Default)]
pub struct Index {
    state: RwLock<State>,
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Runs `f` on the current state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write(&self, f: impl FnOnce(&mut State)) {
        let mut s = match self.state.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut s);
        s.touch();
    }

    pub fn apply_service(&self, svc: &Service) {
        let Some(key) = key_of(&svc.metadata) else {
            return;
        };
        let value = service_info(svc);
        self.write(|s| s.insert_service(key, value));
    }

    pub fn delete_service(&self, svc: &Service) {
        if let Some(key) = key_of(&svc.metadata) {
            self.write(|s| s.remove_service(&key));
        }
    }

    pub fn apply_slice(&self, slice: &EndpointSlice) {
        let Some(key) = key_of(&slice.metadata) else {
            return;
        };
        match slice_info(slice) {
            Some(value) => self.write(|s| s.insert_slice(key, value)),
            None => self.write(|s| s.remove_slice(&key)),
        }
    }

    pub fn delete_slice(&self, slice: &EndpointSlice) {
        if let Some(key) = key_of(&slice.metadata) {
            self.write(|s| s.remove_slice(&key));
        }
    }

    pub fn apply_namespace(&self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            let name = name.clone();
            self.write(|s| {
                s.namespaces.insert(name);
            });
        }
    }

    pub fn delete_namespace(&self, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            self.write(|s| {
                s.namespaces.remove(name);
            });
        }
    }

    /// Replaces every object of a kind after a (re)list, and marks the kind synced.
    pub fn replace_services(&self, all: &[Service]) {
        let items: Vec<(Key, Svc)> = all
            .iter()
            .filter_map(|s| Some((key_of(&s.metadata)?, service_info(s))))
            .collect();
        self.write(|s| {
            s.services.clear();
            s.services_by_ip.clear();
            for (k, v) in items {
                s.insert_service(k, v);
            }
            s.synced[Kind::Services as usize] = true;
        });
    }

    pub fn replace_slices(&self, all: &[EndpointSlice]) {
        let items: Vec<(Key, Slice)> = all
            .iter()
            .filter_map(|s| Some((key_of(&s.metadata)?, slice_info(s)?)))
            .collect();
        self.write(|s| {
            s.slices.clear();
            s.slices_by_service.clear();
            s.slices_by_ip.clear();
            for (k, v) in items {
                s.insert_slice(k, v);
            }
            s.synced[Kind::Slices as usize] = true;
        });
    }

    pub fn apply_node(&self, node: &Node) {
        if let Some(name) = &node.metadata.name {
            let (name, ips) = (name.to_ascii_lowercase(), internal_ips(node));
            self.write(|s| {
                s.node_hosts.insert(name, ips);
            });
        }
    }

    pub fn delete_node(&self, node: &Node) {
        if let Some(name) = &node.metadata.name {
            let name = name.to_ascii_lowercase();
            self.write(|s| {
                s.node_hosts.remove(&name);
            });
        }
    }

    pub fn replace_nodes(&self, all: &[Node]) {
        let hosts: HashMap<String, Vec<IpAddr>> = all
            .iter()
            .filter_map(|n| {
                Some((
                    n.metadata.name.as_ref()?.to_ascii_lowercase(),
                    internal_ips(n),
                ))
            })
            .collect();
        self.write(|s| s.node_hosts = hosts);
    }

    pub fn replace_namespaces(&self, all: &[Namespace]) {
        let names: HashSet<String> = all.iter().filter_map(|n| n.metadata.name.clone()).collect();
        self.write(|s| {
            s.namespaces = names;
            s.synced[Kind::Namespaces as usize] = true;
        });
    }
}

/// A node's InternalIP addresses, what k3s writes into NodeHosts.
fn internal_ips(node: &Node) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

/// CoreDNS's `object.ToService`: cluster IPs (or `None`), type, external name, ports (a -1
/// sentinel when there are none).
pub fn service_info(svc: &Service) -> Svc {
    let spec = svc.spec.clone().unwrap_or_default();
    let ports: Vec<Port> = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| Port {
            name: p.name.unwrap_or_default().to_ascii_lowercase(),
            protocol: p.protocol.unwrap_or_else(|| "TCP".into()),
            port: p.port,
        })
        .collect();
    let ports = if ports.is_empty() {
        vec![Port {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        }]
    } else {
        ports
    };
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        SvcKind::ExternalName(spec.external_name.unwrap_or_default())
    } else {
        let ips: Vec<String> = match spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips,
            _ => spec.cluster_ip.into_iter().collect(),
        };
        if ips.first().map(String::as_str) == Some("None") {
            SvcKind::Headless
        } else {
            SvcKind::ClusterIp(ips.iter().filter_map(|ip| ip.parse().ok()).collect())
        }
    };
    Svc { kind, ports }
}

/// CoreDNS's `object.EndpointSliceToEndpoints`: the ready endpoints (a missing condition counts
/// as ready, per the API docs), their hostnames, the slice's ports. Slices without the
/// service-name label serve no name.
pub fn slice_info(slice: &EndpointSlice) -> Option<Slice> {
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(SERVICE_NAME_LABEL)?
        .clone();
    let ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
            protocol: p.protocol.clone().unwrap_or_default(),
            port: p.port.unwrap_or(-1),
        })
        .collect();
    let ports = if ports.is_empty() {
        vec![Port {
            name: String::new(),
            protocol: String::new(),
            port: -1,
        }]
    } else {
        ports
    };
    let mut addrs = Vec::new();
    for ep in slice.endpoints.iter().flatten() {
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if !ready {
            continue;
        }
        for a in &ep.addresses {
            if let Ok(ip) = a.parse() {
                addrs.push(EndpointAddr {
                    ip,
                    hostname: ep.hostname.clone().unwrap_or_default().to_ascii_lowercase(),
                });
            }
        }
    }
    Some(Slice {
        service,
        ports,
        addrs,
    })
}

/// CoreDNS's `endpointHostname`: the endpoint's hostname, else its address with dashes.
pub fn endpoint_hostname(a: &EndpointAddr) -> String {
    if !a.hostname.is_empty() {
        return a.hostname.clone();
    }
    match a.ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                format!("{s}0")
            } else {
                s
            }
        }
    }
}
