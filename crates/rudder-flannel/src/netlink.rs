//! The kernel side: links, addresses, routes, neighbours and FDB entries over rtnetlink.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::{Desired, Error, Route, VXLAN_DEVICE, VXLAN_PORT, VXLAN_VNI};

/// The routing protocol number our routes carry, so that a restart finds the ones an earlier
/// run left (for nodes gone meanwhile) without touching anyone else's.
pub const RTPROT_FLANNEL: u8 = 0x71;

pub struct Netlink {
    handle: rtnetlink::Handle,
}

pub struct ExtIface {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
}

pub struct Vtep {
    pub index: u32,
    pub mac: [u8; 6],
}

fn link_name(l: &LinkMessage) -> Option<&str> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

fn link_mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

fn link_mac(l: &LinkMessage) -> Option<[u8; 6]> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => m.as_slice().try_into().ok(),
        _ => None,
    })
}

fn vxlan_info(l: &LinkMessage) -> Option<&[InfoVxlan]> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(v)) => Some(v.as_slice()),
            _ => None,
        }),
        _ => None,
    })
}

fn is_vxlan(l: &LinkMessage) -> bool {
    l.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos
            .iter()
            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan))),
        _ => false,
    })
}

fn route_of(r: &RouteMessage) -> Option<Route> {
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(*d),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    Some(Route {
        dst: Ipv4Net::new(dst?, r.header.destination_prefix_length).ok()?,
        gateway: gateway?,
        oif: oif?,
        onlink: r.header.flags.contains(RouteFlags::Onlink),
    })
}

/// The entry's IPv4 destination: FDB entries (family AF_BRIDGE) carry it as raw bytes.
fn neighbour_ip(n: &NeighbourMessage) -> Option<Ipv4Addr> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
        NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
            <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
        }
        _ => None,
    })
}

fn neighbour_mac(n: &NeighbourMessage) -> Option<[u8; 6]> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(m) => m.as_slice().try_into().ok(),
        _ => None,
    })
}

impl Netlink {
    pub fn connect() -> Result<Netlink, Error> {
        let (conn, handle, _) = rtnetlink::new_connection()
            .map_err(|e| Error::Io("opening a netlink socket".into(), e))?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    async fn links(&self) -> Result<Vec<LinkMessage>, Error> {
        Ok(self.handle.link().get().execute().try_collect().await?)
    }

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        Ok(self
            .links()
            .await?
            .into_iter()
            .find(|l| link_name(l) == Some(name)))
    }

    /// The interface node-to-node traffic leaves by: `--flannel-iface`, else the one holding the
    /// public IP (as k3s picks it from the node IP).
    pub async fn external_iface(
        &self,
        name: Option<&str>,
        public_ip: Ipv4Addr,
    ) -> Result<ExtIface, Error> {
        let links = self.links().await?;
        let link = match name {
            Some(n) => links
                .iter()
                .find(|l| link_name(l) == Some(n))
                .ok_or_else(|| {
                    Error::Interface(format!("--flannel-iface {n}: no such interface"))
                })?,
            None => {
                let addrs: Vec<_> = self
                    .handle
                    .address()
                    .get()
                    .set_address_filter(IpAddr::V4(public_ip))
                    .execute()
                    .try_collect()
                    .await?;
                let index = addrs
                    .iter()
                    .find(|a| {
                        a.attributes.iter().any(|x| {
                            matches!(x, AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) if *ip == public_ip)
                        })
                    })
                    .map(|a| a.header.index)
                    .ok_or_else(|| {
                        Error::Interface(format!(
                            "no interface has the node IP {public_ip} (pass --flannel-iface)"
                        ))
                    })?;
                links
                    .iter()
                    .find(|l| l.header.index == index)
                    .ok_or_else(|| Error::Interface(format!("interface {index} vanished")))?
            }
        };
        Ok(ExtIface {
            index: link.header.index,
            name: link_name(link).unwrap_or_default().to_string(),
            mtu: link_mtu(link).unwrap_or(1500),
        })
    }

    /// `flannel.1` on the external interface, reused when its VNI, local address, lower device
    /// and port are still ours (so its MAC, which other nodes know, stays), else recreated.
    pub async fn ensure_vxlan(
        &self,
        ext_index: u32,
        local: Ipv4Addr,
        mtu: u32,
    ) -> Result<Vtep, Error> {
        if let Some(l) = self.link_by_name(VXLAN_DEVICE).await? {
            let info = vxlan_info(&l).unwrap_or_default();
            let same = is_vxlan(&l)
                && info.contains(&InfoVxlan::Id(VXLAN_VNI))
                && info.contains(&InfoVxlan::Local(local))
                && info.contains(&InfoVxlan::Link(ext_index))
                && info.contains(&InfoVxlan::Port(VXLAN_PORT));
            if !same {
                tracing::info!("flannel: recreating {VXLAN_DEVICE} (its settings changed)");
                self.handle.link().del(l.header.index).execute().await?;
            }
        }
        if self.link_by_name(VXLAN_DEVICE).await?.is_none() {
            self.handle
                .link()
                .add(
                    LinkVxlan::new(VXLAN_DEVICE, VXLAN_VNI)
                        .dev(ext_index)
                        .local(local)
                        .port(VXLAN_PORT)
                        .learning(false)
                        .mtu(mtu)
                        .build(),
                )
                .execute()
                .await?;
        }
        let l = self
            .link_by_name(VXLAN_DEVICE)
            .await?
            .ok_or_else(|| Error::Interface(format!("{VXLAN_DEVICE} was not created")))?;
        let index = l.header.index;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
            .execute()
            .await?;
        let mac = link_mac(&l)
            .ok_or_else(|| Error::Interface(format!("{VXLAN_DEVICE} has no MAC address")))?;
        Ok(Vtep { index, mac })
    }

    pub async fn delete_link(&self, name: &str) -> Result<(), Error> {
        if let Some(l) = self.link_by_name(name).await? {
            self.handle.link().del(l.header.index).execute().await?;
        }
        Ok(())
    }

    /// The VTEP's address: this node's podCIDR network address as a /32 (Flannel's), the
    /// source of what the node itself sends through the tunnel.
    pub async fn ensure_vtep_address(&self, index: u32, addr: Ipv4Addr) -> Result<(), Error> {
        let have: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await?;
        let mut present = false;
        for a in have {
            let ip = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            if ip == Some(addr) && a.header.prefix_len == 32 {
                present = true;
            } else if ip.is_some() {
                self.handle.address().del(a).execute().await?;
            }
        }
        if !present {
            self.handle
                .address()
                .add(index, IpAddr::V4(addr), 32)
                .execute()
                .await?;
        }
        Ok(())
    }

    /// Makes the kernel match `d`: missing entries added, changed ones replaced, and ours that
    /// are no longer wanted (a node deleted, its podCIDR gone, a previous run's) removed.
    pub async fn reconcile(&self, d: &Desired, vtep: Option<u32>) -> Result<(), Error> {
        self.reconcile_routes(&d.routes).await?;
        if let Some(vtep) = vtep {
            self.reconcile_neighbours(vtep, &d.neighbours).await?;
            self.reconcile_fdb(vtep, &d.fdb).await?;
        }
        Ok(())
    }

    async fn reconcile_routes(&self, want: &[Route]) -> Result<(), Error> {
        let ours: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_filter(|r| {
                futures::future::ready(
                    r.header.table == RouteHeader::RT_TABLE_MAIN
                        && r.header.protocol == RouteProtocol::Other(RTPROT_FLANNEL),
                )
            })
            .try_collect()
            .await?;
        let want_set: BTreeSet<&Route> = want.iter().collect();
        let mut have = BTreeSet::new();
        for r in ours {
            match route_of(&r) {
                Some(route) if want_set.contains(&route) => {
                    have.insert(route);
                }
                _ => {
                    tracing::info!(route = ?route_of(&r), "flannel: removing a route");
                    self.handle.route().del(r).execute().await?;
                }
            }
        }
        for r in want.iter().filter(|r| !have.contains(*r)) {
            let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(r.dst.addr(), r.dst.prefix_len())
                .gateway(r.gateway)
                .output_interface(r.oif)
                .protocol(RouteProtocol::Other(RTPROT_FLANNEL));
            if r.onlink {
                b = b.onlink();
            }
            tracing::info!(route = ?r, "flannel: adding a route");
            self.handle
                .route()
                .add(b.build())
                .replace()
                .execute()
                .await?;
        }
        Ok(())
    }

    /// The neighbour (`Inet`) or FDB (`Bridge`) entries on one device.
    async fn neighbours_on(
        &self,
        family: AddressFamily,
        index: u32,
    ) -> Result<Vec<NeighbourMessage>, Error> {
        Ok(self
            .handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_filter(|n| futures::future::ready(n.header.ifindex == index))
            .try_collect()
            .await?)
    }

    async fn reconcile_neighbours(
        &self,
        vtep: u32,
        want: &[(Ipv4Addr, [u8; 6])],
    ) -> Result<(), Error> {
        let want: BTreeMap<Ipv4Addr, [u8; 6]> = want.iter().copied().collect();
        let have = self.neighbours_on(AddressFamily::Inet, vtep).await?;
        let mut ok = BTreeSet::new();
        for n in have {
            match (neighbour_ip(&n), neighbour_mac(&n)) {
                (Some(ip), Some(mac))
                    if want.get(&ip) == Some(&mac)
                        && n.header.state == NeighbourState::Permanent =>
                {
                    ok.insert(ip);
                }
                _ => {
                    self.handle.neighbours().del(n).execute().await?;
                }
            }
        }
        for (ip, mac) in want.iter().filter(|(ip, _)| !ok.contains(*ip)) {
            self.handle
                .neighbours()
                .add(vtep, IpAddr::V4(*ip))
                .link_layer_address(mac)
                .state(NeighbourState::Permanent)
                .replace()
                .execute()
                .await?;
        }
        Ok(())
    }

    async fn reconcile_fdb(&self, vtep: u32, want: &[([u8; 6], Ipv4Addr)]) -> Result<(), Error> {
        let want: BTreeMap<[u8; 6], Ipv4Addr> = want.iter().copied().collect();
        let have = self.neighbours_on(AddressFamily::Bridge, vtep).await?;
        let mut ok = BTreeSet::new();
        for n in have {
            let Some(mac) = neighbour_mac(&n) else {
                continue;
            };
            if want
                .get(&mac)
                .is_some_and(|dst| Some(*dst) == neighbour_ip(&n))
            {
                ok.insert(mac);
            } else if n.header.state == NeighbourState::Permanent {
                self.handle.neighbours().del(n).execute().await?;
            }
        }
        for (mac, dst) in want.iter().filter(|(m, _)| !ok.contains(*m)) {
            self.handle
                .neighbours()
                .add_bridge(vtep, mac)
                .destination(IpAddr::V4(*dst))
                .flags(NeighbourFlags::Own)
                .replace()
                .execute()
                .await?;
        }
        Ok(())
    }
}
