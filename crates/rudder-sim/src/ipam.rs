//! Pod IPs: each node hands out addresses from its own range, as host-local IPAM does from the
//! node's podCIDR (the network address and the bridge gateway, `.1`, are never given out).

use std::net::Ipv4Addr;

/// An IPv4 CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`-th address of the block (wrapping inside it).
    pub fn nth(&self, n: u64) -> Ipv4Addr {
        let offset = (n % self.size()) as u32;
        Ipv4Addr::from(u32::from(self.base).wrapping_add(offset))
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        };
        u32::from(ip) & mask == u32::from(self.base)
    }

    /// The `i`-th /24 of this block (wrapping).
    pub fn subnet24(&self, i: usize) -> Cidr {
        let count = (self.size() / 256).max(1);
        Cidr {
            base: self.nth((i as u64 % count) * 256),
            prefix: 24.max(self.prefix),
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s} (IPv4 only)"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        Ok(Cidr {
            base: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

/// The addresses of one node's range in use, as a bitmap (a /24 is four words).
pub struct Pool {
    pub cidr: Cidr,
    used: Vec<u64>,
    next: u64,
}

/// Ranges larger than this are used only up to it: a node never runs more pods.
const MAX_ADDRESSES: u64 = 1 << 16;

impl Pool {
    pub fn new(cidr: Cidr) -> Pool {
        let n = cidr.size().min(MAX_ADDRESSES);
        Pool {
            cidr,
            used: vec![0; n.div_ceil(64) as usize],
            next: 2,
        }
    }

    fn len(&self) -> u64 {
        self.cidr.size().min(MAX_ADDRESSES)
    }

    fn usable(&self, offset: u64) -> bool {
        // Not the network address, the gateway or (in blocks of 4 or more) the broadcast one.
        offset >= 2 && (self.cidr.size() < 4 || offset + 1 != self.cidr.size())
    }

    /// The next free address after the last one handed out (so a freed address is reused late,
    /// as host-local does), or `None` when the range is full.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let len = self.len();
        for step in 0..len {
            let off = (self.next + step) % len;
            if !self.usable(off) {
                continue;
            }
            let (w, b) = ((off / 64) as usize, off % 64);
            if self.used[w] & (1 << b) == 0 {
                self.used[w] |= 1 << b;
                self.next = off + 1;
                return Some(self.cidr.nth(off));
            }
        }
        None
    }

    /// Marks an address already in use (a pod found running after a restart).
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        match self.offset(ip) {
            Some(off) => {
                self.used[(off / 64) as usize] |= 1 << (off % 64);
                true
            }
            None => false,
        }
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(off) = self.offset(ip) {
            self.used[(off / 64) as usize] &= !(1 << (off % 64));
        }
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u64> {
        if !self.cidr.contains(ip) {
            return None;
        }
        let off = u64::from(u32::from(ip) - u32::from(self.cidr.base));
        (off < self.len()).then_some(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_split() {
        let c: Cidr = "10.128.0.0/9".parse().unwrap();
        assert_eq!(c.subnet24(0).to_string(), "10.128.0.0/24");
        assert_eq!(c.subnet24(257).to_string(), "10.129.1.0/24");
        assert_eq!(
            "10.1.2.3/16".parse::<Cidr>().unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert!("10.1.2.3".parse::<Cidr>().is_err());
        assert!("10.1.2.3/33".parse::<Cidr>().is_err());
        assert!("fd00::/64".parse::<Cidr>().is_err());
        assert!(c.contains("10.200.3.4".parse().unwrap()));
        assert!(!c.contains("10.127.3.4".parse().unwrap()));
    }

    #[test]
    fn pool_skips_network_gateway_and_broadcast_and_reuses_late() {
        let mut p = Pool::new("10.0.0.0/29".parse().unwrap());
        let got: Vec<String> = std::iter::from_fn(|| p.allocate())
            .map(|ip| ip.to_string())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        p.release("10.0.0.3".parse().unwrap());
        assert_eq!(p.allocate(), Some("10.0.0.3".parse().unwrap()));
        assert_eq!(p.allocate(), None);

        let mut p = Pool::new("10.0.1.0/24".parse().unwrap());
        assert!(p.reserve("10.0.1.2".parse().unwrap()));
        assert!(!p.reserve("10.0.2.2".parse().unwrap()));
        assert_eq!(p.allocate(), Some("10.0.1.3".parse().unwrap()));
    }
}
