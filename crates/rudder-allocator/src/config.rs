//! The ranges the allocators hand values out of: the service CIDR (upstream's
//! `--service-cluster-ip-range`, k3s's `--service-cidr`) and the NodePort range (upstream's
//! `--service-node-port-range`).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// k3s's default service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
/// Upstream's default NodePort range.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// The largest service CIDR upstream accepts: a 32-bit range needs a mask of at least /12
/// ("specified --service-cluster-ip-range is too large").
const MIN_PREFIX: u8 = 12;

/// A bad service CIDR or NodePort range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid service CIDR {0:?}: want an IPv4 CIDR such as 10.43.0.0/16")]
    BadCidr(String),
    #[error("invalid service CIDR {0}: IPv6 service CIDRs are not supported yet")]
    Ipv6Cidr(String),
    #[error(
        "specified service CIDR {0} is too large; for 32-bit addresses, the mask must be >= {MIN_PREFIX}"
    )]
    CidrTooLarge(String),
    #[error("invalid NodePort range {0:?}: want BASE-MAX such as 30000-32767")]
    BadPortRange(String),
}

/// An IPv4 service CIDR, e.g. `10.43.0.0/16` (host bits are masked off, as Go's
/// `net.ParseCIDR` does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceCidr {
    network: u32,
    prefix: u8,
}

impl ServiceCidr {
    /// The CIDR of `network/prefix`, host bits masked.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<ServiceCidr, ConfigError> {
        if prefix > 32 {
            return Err(ConfigError::BadCidr(format!("{network}/{prefix}")));
        }
        let cidr = ServiceCidr {
            network: u32::from(network) & mask(prefix),
            prefix,
        };
        if prefix < MIN_PREFIX {
            return Err(ConfigError::CidrTooLarge(cidr.to_string()));
        }
        Ok(cidr)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network)
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Addresses in the CIDR, network and broadcast included (upstream's `RangeSize`).
    pub fn range_size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// Addresses that may be handed out: all but the network and broadcast addresses.
    pub fn usable(&self) -> u32 {
        u32::try_from(self.range_size().saturating_sub(2)).unwrap_or(u32::MAX)
    }

    /// Whether `ip` is inside the CIDR (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }

    /// The first usable address: the `kubernetes` service's ClusterIP (10.43.0.1 by default).
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(1))
    }

    /// The index of a usable address (0 for the first), `None` for the network or broadcast
    /// address and for addresses outside the CIDR.
    pub(crate) fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        if !self.contains(ip) {
            return None;
        }
        let index = u32::from(ip).wrapping_sub(self.network).checked_sub(1)?;
        (index < self.usable()).then_some(index)
    }

    pub(crate) fn ip_at(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(1).wrapping_add(index))
    }

    /// The lower part of the range kept for static assignment (KEP-3070): dynamic allocation
    /// takes from above it first. Upstream's `min(max(16, size/16), 256)`, 0 for ranges of 16
    /// addresses or fewer.
    pub(crate) fn static_offset(&self) -> u32 {
        let size = self.range_size();
        if size <= 16 {
            return 0;
        }
        // At most 256, so the cast cannot truncate.
        (size / 16).clamp(16, 256) as u32
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl FromStr for ServiceCidr {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<ServiceCidr, ConfigError> {
        let bad = || ConfigError::BadCidr(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        if addr.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(ConfigError::Ipv6Cidr(s.to_string()));
        }
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        ServiceCidr::new(addr, prefix)
    }
}

/// A NodePort range, e.g. `30000-32767` (both ends included).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodePortRange {
    base: u16,
    max: u16,
}

impl NodePortRange {
    pub fn new(base: u16, max: u16) -> Result<NodePortRange, ConfigError> {
        if base == 0 || max < base {
            return Err(ConfigError::BadPortRange(format!("{base}-{max}")));
        }
        Ok(NodePortRange { base, max })
    }

    pub fn base(&self) -> u16 {
        self.base
    }

    pub fn max(&self) -> u16 {
        self.max
    }

    /// How many ports the range holds.
    pub fn size(&self) -> u32 {
        u32::from(self.max) - u32::from(self.base) + 1
    }

    pub fn contains(&self, port: i64) -> bool {
        port >= i64::from(self.base) && port <= i64::from(self.max)
    }

    pub(crate) fn index_of(&self, port: i64) -> Option<u32> {
        self.contains(port)
            .then(|| u32::try_from(port - i64::from(self.base)).ok())
            .flatten()
    }

    pub(crate) fn port_at(&self, index: u32) -> i64 {
        i64::from(self.base) + i64::from(index)
    }

    /// Upstream's `min(max(16, size/32), 128)`, 0 for ranges of 16 ports or fewer.
    pub(crate) fn static_offset(&self) -> u32 {
        let size = self.size();
        if size <= 16 {
            return 0;
        }
        (size / 32).clamp(16, 128)
    }
}

impl fmt::Display for NodePortRange {
    /// Upstream's `PortRange.String()`: `BASE-MAX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.base, self.max)
    }
}

impl FromStr for NodePortRange {
    type Err = ConfigError;

    /// `BASE-MAX`, `BASE+OFFSET` or a single port, as upstream's `ParsePortRange`.
    fn from_str(s: &str) -> Result<NodePortRange, ConfigError> {
        let bad = || ConfigError::BadPortRange(s.to_string());
        let t = s.trim();
        let port = |p: &str| p.trim().parse::<u16>().map_err(|_| bad());
        let (base, max) = if let Some((a, b)) = t.split_once('-') {
            (port(a)?, port(b)?)
        } else if let Some((a, off)) = t.split_once('+') {
            let a = port(a)?;
            (a, a.checked_add(port(off)?).ok_or_else(bad)?)
        } else {
            let a = port(t)?;
            (a, a)
        };
        NodePortRange::new(base, max).map_err(|_| bad())
    }
}

/// Where the allocators take values from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceAllocatorConfig {
    pub service_cidr: ServiceCidr,
    pub node_port_range: NodePortRange,
}

impl ServiceAllocatorConfig {
    /// The ClusterIP of the `kubernetes` service: the CIDR's first usable address.
    pub fn kubernetes_service_ip(&self) -> Ipv4Addr {
        self.service_cidr.first_ip()
    }
}

impl Default for ServiceAllocatorConfig {
    /// k3s's defaults: 10.43.0.0/16 and ports 30000-32767.
    fn default() -> Self {
        ServiceAllocatorConfig {
            service_cidr: ServiceCidr {
                network: u32::from(Ipv4Addr::new(10, 43, 0, 0)),
                prefix: 16,
            },
            node_port_range: NodePortRange {
                base: 30000,
                max: 32767,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_strings() {
        let c = ServiceAllocatorConfig::default();
        assert_eq!(c.service_cidr, DEFAULT_SERVICE_CIDR.parse().unwrap());
        assert_eq!(c.node_port_range, DEFAULT_NODE_PORT_RANGE.parse().unwrap());
        assert_eq!(c.service_cidr.to_string(), "10.43.0.0/16");
        assert_eq!(c.node_port_range.to_string(), "30000-32767");
        assert_eq!(c.kubernetes_service_ip(), Ipv4Addr::new(10, 43, 0, 1));
    }

    #[test]
    fn cidr_indices_skip_network_and_broadcast() {
        let c: ServiceCidr = "10.43.0.0/16".parse().unwrap();
        assert_eq!(c.usable(), 65534);
        assert_eq!(c.index_of(Ipv4Addr::new(10, 43, 0, 0)), None);
        assert_eq!(c.index_of(Ipv4Addr::new(10, 43, 0, 1)), Some(0));
        assert_eq!(c.index_of(Ipv4Addr::new(10, 43, 255, 254)), Some(65533));
        assert_eq!(c.index_of(Ipv4Addr::new(10, 43, 255, 255)), None);
        assert_eq!(c.index_of(Ipv4Addr::new(10, 44, 0, 1)), None);
        assert_eq!(c.ip_at(0), Ipv4Addr::new(10, 43, 0, 1));
        assert_eq!(c.static_offset(), 256);
        // Host bits are masked, as net.ParseCIDR does.
        let c: ServiceCidr = "10.43.7.9/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.43.7.0/24");
        assert_eq!(c.static_offset(), 16);
        let tiny: ServiceCidr = "192.168.0.0/29".parse().unwrap();
        assert_eq!((tiny.usable(), tiny.static_offset()), (6, 0));
        let none: ServiceCidr = "192.168.0.0/31".parse().unwrap();
        assert_eq!(none.usable(), 0);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(matches!(
            "10.0.0.0/8".parse::<ServiceCidr>(),
            Err(ConfigError::CidrTooLarge(_))
        ));
        assert!(matches!(
            "fd00::/108".parse::<ServiceCidr>(),
            Err(ConfigError::Ipv6Cidr(_))
        ));
        assert!("10.43.0.0".parse::<ServiceCidr>().is_err());
        assert!("10.43.0.0/33".parse::<ServiceCidr>().is_err());
        assert!("32767-30000".parse::<NodePortRange>().is_err());
        assert!("0-10".parse::<NodePortRange>().is_err());
        let r: NodePortRange = "30000+2767".parse().unwrap();
        assert_eq!((r.base(), r.max(), r.size()), (30000, 32767, 2768));
        assert_eq!(r.static_offset(), 86);
        assert_eq!(r.index_of(29999), None);
        assert_eq!(r.index_of(32767), Some(2767));
    }
}
