//! The multi-node pod network, as Flannel's kube subnet manager runs inside k3s: every node
//! publishes its public IP and backend data as annotations on its own Node, watches the other
//! Nodes and programs the kernel so that each other node's podCIDR is reachable:
//!
//! - **host-gw**: a route to the podCIDR via the node's public IP on the interface that reaches
//!   it (nodes share a layer-2 network);
//! - **vxlan**: a `flannel.1` device (VNI 1, UDP 8472 as Linux Flannel), and per node a route to
//!   the podCIDR via its network address on `flannel.1` (onlink), a permanent neighbour entry
//!   for that address with the node's VTEP MAC, and an FDB entry sending that MAC to the node's
//!   public IP;
//! - **none**: nothing (the user brings a CNI plugin).
//!
//! Pod traffic leaving the cluster CIDR is masqueraded in our own nftables table (see [`masq`]),
//! so that traffic between pods keeps its source address.

pub mod masq;
mod netlink;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};

pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
pub const KUBE_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";

/// Flannel's Linux defaults for its vxlan backend (`flannel.<VNI>`, the kernel's UDP port).
pub const VXLAN_DEVICE: &str = "flannel.1";
pub const VXLAN_VNI: u32 = 1;
pub const VXLAN_PORT: u16 = 8472;
/// Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u32 = 50;

/// How often the kernel state is checked against the Nodes even without a change (Flannel's
/// route check interval), so a route someone deleted comes back.
const RESYNC: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    HostGw,
    Vxlan,
    None,
}

impl Backend {
    /// The name in `--flannel-backend` and the `backend-type` annotation.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::HostGw => "host-gw",
            Backend::Vxlan => "vxlan",
            Backend::None => "none",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "host-gw" => Ok(Backend::HostGw),
            "vxlan" => Ok(Backend::Vxlan),
            "none" => Ok(Backend::None),
            other => Err(format!(
                "unsupported flannel backend {other:?} (host-gw, vxlan or none)"
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub node_name: String,
    pub backend: Backend,
    /// The interface node-to-node traffic uses (default: the one holding `public_ip`).
    pub iface: Option<String>,
    /// The node's address other nodes reach it at (k3s: the node IP).
    pub public_ip: Ipv4Addr,
    pub cluster_cidr: Ipv4Net,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("{0}")]
    Interface(String),
    #[error("nft: {0}")]
    Nft(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl From<rtnetlink::Error> for Error {
    fn from(e: rtnetlink::Error) -> Error {
        Error::Netlink(e.to_string())
    }
}

/// The started pod network.
pub struct Network {
    /// The MTU pods' interfaces get (the CNI bridge's `mtu`); `None` for the `none` backend.
    pub mtu: Option<u32>,
    /// Whether the agent writes its own CNI conflist (not with `none`: the user brings one).
    pub writes_cni: bool,
}

/// One other node as the subnet manager sees it (Flannel's lease).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    pub backend: String,
    pub vtep_mac: Option<[u8; 6]>,
}

/// A Node's lease: its podCIDR and Flannel's annotations, which Flannel's kube subnet manager
/// only trusts when `kube-subnet-manager` is `"true"`.
pub fn lease(node: &Node) -> Option<Lease> {
    let name = node.metadata.name.clone()?;
    let a = node.metadata.annotations.as_ref()?;
    if a.get(KUBE_SUBNET_MANAGER).map(String::as_str) != Some("true") {
        return None;
    }
    let subnet: Ipv4Net = node
        .spec
        .as_ref()?
        .pod_cidr
        .as_deref()?
        .parse::<Ipv4Net>()
        .ok()?
        .trunc();
    let public_ip = a.get(PUBLIC_IP)?.parse().ok()?;
    let backend = a.get(BACKEND_TYPE)?.clone();
    let vtep_mac = a
        .get(BACKEND_DATA)
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| {
            v.get("VtepMAC")
                .and_then(|m| m.as_str())
                .and_then(parse_mac)
        });
    Some(Lease {
        node: name,
        subnet,
        public_ip,
        backend,
        vtep_mac,
    })
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The annotations this node publishes (Flannel's: `backend-data` is `null` for host-gw).
pub fn annotations(
    backend: Backend,
    public_ip: Ipv4Addr,
    vtep_mac: Option<[u8; 6]>,
) -> BTreeMap<String, String> {
    let data = match vtep_mac {
        Some(mac) if backend == Backend::Vxlan => {
            serde_json::json!({"VNI": VXLAN_VNI, "VtepMAC": format_mac(&mac)}).to_string()
        }
        _ => "null".to_string(),
    };
    BTreeMap::from([
        (BACKEND_DATA.to_string(), data),
        (BACKEND_TYPE.to_string(), backend.as_str().to_string()),
        (KUBE_SUBNET_MANAGER.to_string(), "true".to_string()),
        (PUBLIC_IP.to_string(), public_ip.to_string()),
    ])
}

/// A route the backend wants in the main table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub oif: u32,
    pub onlink: bool,
}

/// Everything the backend wants in the kernel for the other nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: Vec<Route>,
    /// vxlan: permanent neighbours on the VTEP (a node's podCIDR network address → its MAC).
    pub neighbours: Vec<(Ipv4Addr, [u8; 6])>,
    /// vxlan: FDB entries on the VTEP (a node's MAC → its public IP).
    pub fdb: Vec<([u8; 6], Ipv4Addr)>,
}

/// What the backend programs for these leases: nodes of another backend, without a podCIDR, or
/// at our own address are left out, as Flannel ignores them.
pub fn desired(
    backend: Backend,
    own: &Config,
    leases: &[Lease],
    ext_index: u32,
    vtep_index: Option<u32>,
) -> Desired {
    let mut d = Desired::default();
    for l in leases {
        if l.node == own.node_name || l.public_ip == own.public_ip || l.backend != backend.as_str()
        {
            continue;
        }
        match (backend, vtep_index, l.vtep_mac) {
            (Backend::HostGw, _, _) => d.routes.push(Route {
                dst: l.subnet,
                gateway: l.public_ip,
                oif: ext_index,
                onlink: false,
            }),
            (Backend::Vxlan, Some(vtep), Some(mac)) => {
                let gw = l.subnet.network();
                d.routes.push(Route {
                    dst: l.subnet,
                    gateway: gw,
                    oif: vtep,
                    onlink: true,
                });
                d.neighbours.push((gw, mac));
                d.fdb.push((mac, l.public_ip));
            }
            _ => {}
        }
    }
    d.routes.sort();
    d
}

/// Starts the pod network for this node: the backend's devices now (so the MTU is known before
/// the CNI config is written), the Node watch and the kernel programming in the background.
pub async fn start(client: kube::Client, cfg: Config) -> Result<Network, Error> {
    if cfg.backend == Backend::None {
        return Ok(Network {
            mtu: None,
            writes_cni: false,
        });
    }
    let dev = Devices::setup(&cfg).await?;
    let mtu = dev.mtu;
    tokio::spawn(run(client, cfg, dev));
    Ok(Network {
        mtu: Some(mtu),
        writes_cni: true,
    })
}

/// A node's backend devices in the current network namespace, programmed from leases: what
/// [`start`] drives from the Node watch, usable without an API server (the network benchmark's
/// nodes).
pub struct Devices {
    net: netlink::Netlink,
    ext_index: u32,
    vtep: Option<netlink::Vtep>,
    /// The pods' MTU: the interface's, less the encapsulation for vxlan.
    pub mtu: u32,
}

impl Devices {
    /// Sets `ip_forward` and creates (or checks) the backend's device on the external
    /// interface.
    pub async fn setup(cfg: &Config) -> Result<Devices, Error> {
        // Pod traffic is routed through this node to the others.
        set_sysctl("net/ipv4/ip_forward", "1")?;
        let net = netlink::Netlink::connect()?;
        let ext = net
            .external_iface(cfg.iface.as_deref(), cfg.public_ip)
            .await?;
        let (vtep, mtu) = match cfg.backend {
            Backend::Vxlan => {
                let mtu = ext.mtu.saturating_sub(VXLAN_OVERHEAD);
                let vtep = net.ensure_vxlan(ext.index, cfg.public_ip, mtu).await?;
                (Some(vtep), mtu)
            }
            // A vxlan device left from a run with the other backend would keep stale entries.
            _ => {
                net.delete_link(VXLAN_DEVICE).await?;
                (None, ext.mtu)
            }
        };
        tracing::info!(
            backend = cfg.backend.as_str(),
            iface = %ext.name,
            public_ip = %cfg.public_ip,
            mtu,
            "flannel: pod network backend ready"
        );
        Ok(Devices {
            net,
            ext_index: ext.index,
            vtep,
            mtu,
        })
    }

    /// The VTEP's MAC (vxlan), which this node publishes.
    pub fn vtep_mac(&self) -> Option<[u8; 6]> {
        self.vtep.as_ref().map(|v| v.mac)
    }

    /// Programs the kernel for these leases (this node's podCIDR, when known, gives the VTEP
    /// its address).
    pub async fn sync(
        &self,
        cfg: &Config,
        own_cidr: Option<Ipv4Net>,
        leases: &[Lease],
    ) -> Result<(), Error> {
        let vtep = self.vtep.as_ref().map(|v| v.index);
        if let (Some(v), Some(cidr)) = (vtep, own_cidr) {
            self.net.ensure_vtep_address(v, cidr.network()).await?;
        }
        let d = desired(cfg.backend, cfg, leases, self.ext_index, vtep);
        self.net.reconcile(&d, vtep).await
    }
}

fn set_sysctl(key: &str, value: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|e| Error::Io(path, e))
}

async fn run(client: kube::Client, cfg: Config, dev: Devices) {
    let api: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let changed = Arc::new(tokio::sync::Notify::new());
    let notify = changed.clone();
    tokio::spawn(
        reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .default_backoff()
            .for_each(move |_| {
                notify.notify_one();
                futures::future::ready(())
            }),
    );
    // Only a complete list may decide which entries of a previous run are stale.
    if store.wait_until_ready().await.is_err() {
        return;
    }
    let want = annotations(cfg.backend, cfg.public_ip, dev.vtep_mac());
    let mut masq_for: Option<Ipv4Net> = None;
    loop {
        let nodes = store.state();
        let own = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(cfg.node_name.as_str()));
        let pod_cidr = own
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
            .map(|c| c.trunc());
        if let Some(own) = own {
            if let Err(e) = publish(&api, own, &want).await {
                tracing::warn!(error = %e, "flannel: annotating this node");
            }
        }
        if let Some(cidr) = pod_cidr.filter(|c| masq_for != Some(*c)) {
            match masq::apply(&masq::ruleset(cfg.cluster_cidr, cidr)).await {
                Ok(()) => masq_for = Some(cidr),
                Err(e) => tracing::warn!(error = %e, "flannel: masquerade rules"),
            }
        }
        let leases: Vec<Lease> = nodes.iter().filter_map(|n| lease(n)).collect();
        if let Err(e) = dev.sync(&cfg, pod_cidr, &leases).await {
            tracing::warn!(error = %e, "flannel: programming routes");
        }
        let _ = tokio::time::timeout(RESYNC, changed.notified()).await;
    }
}

/// Patches this node's Flannel annotations when they differ from what it publishes.
async fn publish(
    api: &Api<Node>,
    own: &Node,
    want: &BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let have = own.metadata.annotations.clone().unwrap_or_default();
    if want.iter().all(|(k, v)| have.get(k) == Some(v)) {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"annotations": want}});
    let name = own.metadata.name.clone().unwrap_or_default();
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ann: &BTreeMap<String, String>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": ann},
            "spec": {"podCIDR": cidr},
        }))
        .unwrap()
    }

    fn cfg(backend: Backend) -> Config {
        Config {
            node_name: "a".into(),
            backend,
            iface: None,
            public_ip: "10.0.0.1".parse().unwrap(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
        }
    }

    #[test]
    fn annotations_as_flannel_writes_them() {
        let mac = [0x0a, 0x1b, 0, 0xff, 1, 2];
        let a = annotations(Backend::Vxlan, "10.0.0.2".parse().unwrap(), Some(mac));
        assert_eq!(
            a[BACKEND_DATA],
            r#"{"VNI":1,"VtepMAC":"0a:1b:00:ff:01:02"}"#
        );
        assert_eq!(a[BACKEND_TYPE], "vxlan");
        assert_eq!(a[KUBE_SUBNET_MANAGER], "true");
        assert_eq!(a[PUBLIC_IP], "10.0.0.2");
        let h = annotations(Backend::HostGw, "10.0.0.2".parse().unwrap(), None);
        assert_eq!(h[BACKEND_DATA], "null");
        assert_eq!(h[BACKEND_TYPE], "host-gw");
    }

    #[test]
    fn leases_and_what_each_backend_programs() {
        let mac = [2, 0, 0, 0, 0, 9];
        let b = node(
            "b",
            Some("10.42.1.0/24"),
            &annotations(Backend::Vxlan, "10.0.0.2".parse().unwrap(), Some(mac)),
        );
        let l = lease(&b).unwrap();
        assert_eq!(l.subnet, "10.42.1.0/24".parse::<Ipv4Net>().unwrap());
        assert_eq!(l.vtep_mac, Some(mac));
        let own = node(
            "a",
            Some("10.42.0.0/24"),
            &annotations(Backend::Vxlan, "10.0.0.1".parse().unwrap(), Some(mac)),
        );
        let no_cidr = node(
            "c",
            None,
            &annotations(Backend::Vxlan, "10.0.0.3".parse().unwrap(), Some(mac)),
        );
        assert!(lease(&no_cidr).is_none());
        let mut unmanaged = annotations(Backend::Vxlan, "10.0.0.4".parse().unwrap(), Some(mac));
        unmanaged.remove(KUBE_SUBNET_MANAGER);
        assert!(lease(&node("d", Some("10.42.4.0/24"), &unmanaged)).is_none());
        let leases: Vec<Lease> = [own, b].iter().filter_map(lease).collect();

        let v = desired(Backend::Vxlan, &cfg(Backend::Vxlan), &leases, 2, Some(7));
        assert_eq!(
            v.routes,
            vec![Route {
                dst: "10.42.1.0/24".parse().unwrap(),
                gateway: "10.42.1.0".parse().unwrap(),
                oif: 7,
                onlink: true,
            }]
        );
        assert_eq!(v.neighbours, vec![("10.42.1.0".parse().unwrap(), mac)]);
        assert_eq!(v.fdb, vec![(mac, "10.0.0.2".parse().unwrap())]);

        // A host-gw node ignores vxlan leases, as Flannel does across backends.
        let h = desired(Backend::HostGw, &cfg(Backend::HostGw), &leases, 2, None);
        assert!(h.routes.is_empty());
        let hg = node(
            "b",
            Some("10.42.1.0/24"),
            &annotations(Backend::HostGw, "10.0.0.2".parse().unwrap(), None),
        );
        let h = desired(
            Backend::HostGw,
            &cfg(Backend::HostGw),
            &[lease(&hg).unwrap()],
            2,
            None,
        );
        assert_eq!(
            h.routes,
            vec![Route {
                dst: "10.42.1.0/24".parse().unwrap(),
                gateway: "10.0.0.2".parse().unwrap(),
                oif: 2,
                onlink: false,
            }]
        );
        assert!(h.neighbours.is_empty() && h.fdb.is_empty());
    }

    #[test]
    fn backend_names() {
        assert_eq!("host-gw".parse::<Backend>(), Ok(Backend::HostGw));
        assert_eq!("vxlan".parse::<Backend>(), Ok(Backend::Vxlan));
        assert_eq!("none".parse::<Backend>(), Ok(Backend::None));
        assert!("wireguard-native".parse::<Backend>().is_err());
        assert_eq!(
            parse_mac("0a:1b:00:ff:01:02"),
            Some([0x0a, 0x1b, 0, 0xff, 1, 2])
        );
        assert_eq!(parse_mac("0a:1b:00:ff:01"), None);
    }
}
