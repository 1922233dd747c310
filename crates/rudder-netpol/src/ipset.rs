//! Address sets as sorted, disjoint intervals. nftables rejects overlapping elements in an
//! interval set ("conflicting intervals"), and a rule's peers overlap freely (a pod IP inside
//! an ipBlock, two blocks, a block minus its `except`), so the union is computed here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A union of IPv4 and IPv6 intervals (inclusive bounds).
/// Intervals are kept as added and merged when the elements are read.
#[derive(Clone, Debug, Default)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// A parsed CIDR as an inclusive interval of one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    V4(u32, u32),
    V6(u128, u128),
}

/// Parses `a.b.c.d/n` or `x::/n` (host bits ignored, as the kernel's prefix match does); a
/// bare address is a single host.
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u32>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    match addr {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return None;
            }
            let host = u32::MAX.checked_shr(len).unwrap_or(0);
            let base = u32::from(a) & !host;
            Some(Cidr::V4(base, base | host))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return None;
            }
            let host = u128::MAX.checked_shr(len).unwrap_or(0);
            let base = u128::from(a) & !host;
            Some(Cidr::V6(base, base | host))
        }
    }
}

fn normalize<T: Copy + Ord + num::One>(v: &mut Vec<(T, T)>) {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
    for &(a, b) in v.iter() {
        match out.last_mut() {
            // Overlapping or adjacent: one interval.
            Some(last) if T::succ(last.1).is_none_or(|n| a <= n) => {
                if b > last.1 {
                    last.1 = b;
                }
            }
            _ => out.push((a, b)),
        }
    }
    *v = out;
}

fn subtract<T: Copy + Ord + num::One>(v: &[(T, T)], hole: (T, T)) -> Vec<(T, T)> {
    let mut out = Vec::with_capacity(v.len() + 1);
    for &(a, b) in v {
        if hole.1 < a || hole.0 > b {
            out.push((a, b));
            continue;
        }
        if hole.0 > a {
            if let Some(end) = T::pred(hole.0) {
                out.push((a, end));
            }
        }
        if hole.1 < b {
            if let Some(start) = T::succ(hole.1) {
                out.push((start, b));
            }
        }
    }
    out
}

/// Successor and predecessor without overflow, for both address widths.
mod num {
    pub trait One: Sized {
        fn succ(self) -> Option<Self>;
        fn pred(self) -> Option<Self>;
    }
    impl One for u32 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
        fn pred(self) -> Option<Self> {
            self.checked_sub(1)
        }
    }
    impl One for u128 {
        fn succ(self) -> Option<Self> {
            self.checked_add(1)
        }
        fn pred(self) -> Option<Self> {
            self.checked_sub(1)
        }
    }
}

impl IpSet {
    pub fn add_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.v4.push((a.into(), a.into())),
            IpAddr::V6(a) => self.v6.push((a.into(), a.into())),
        }
        // Normalized when read: sorting on every insert made large peer sets quadratic.
    }

    /// Adds `cidr` minus every block in `except` (an ipBlock).
    pub fn add_block(&mut self, cidr: Cidr, except: &[Cidr]) {
        match cidr {
            Cidr::V4(a, b) => {
                let mut r = vec![(a, b)];
                for e in except {
                    if let Cidr::V4(x, y) = *e {
                        r = subtract(&r, (x, y));
                    }
                }
                self.v4.extend(r);
            }
            Cidr::V6(a, b) => {
                let mut r = vec![(a, b)];
                for e in except {
                    if let Cidr::V6(x, y) = *e {
                        r = subtract(&r, (x, y));
                    }
                }
                self.v6.extend(r);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn has_v4(&self) -> bool {
        !self.v4.is_empty()
    }

    pub fn has_v6(&self) -> bool {
        !self.v6.is_empty()
    }

    /// The IPv4 elements in nft syntax: an address, a prefix when the interval is one, else a
    /// range.
    pub fn v4_elements(&self) -> Vec<String> {
        let mut v4 = self.v4.clone();
        normalize(&mut v4);
        v4.iter()
            .map(|&(a, b)| {
                element(a.into(), b.into(), 32, |x| {
                    Ipv4Addr::from(x as u32).to_string()
                })
            })
            .collect()
    }

    pub fn v6_elements(&self) -> Vec<String> {
        let mut v6 = self.v6.clone();
        normalize(&mut v6);
        v6.iter()
            .map(|&(a, b)| element(a, b, 128, |x| Ipv6Addr::from(x).to_string()))
            .collect()
    }
}

fn element(a: u128, b: u128, bits: u32, fmt: impl Fn(u128) -> String) -> String {
    let diff = a ^ b;
    if diff == 0 {
        return fmt(a);
    }
    // A prefix when the bounds differ in exactly the low bits, all clear in `a`, all set in `b`.
    if diff & diff.wrapping_add(1) == 0 && a & diff == 0 && b & diff == diff {
        return format!("{}/{}", fmt(a), bits - diff.count_ones());
    }
    format!("{}-{}", fmt(a), fmt(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(s: &str) -> Cidr {
        parse_cidr(s).unwrap()
    }

    #[test]
    fn blocks_minus_excepts_merge_with_addresses() {
        let mut s = IpSet::default();
        s.add_block(
            block("10.0.0.0/16"),
            &[block("10.0.1.0/24"), block("10.0.3.7")],
        );
        s.add_ip("10.0.1.5".parse().unwrap());
        s.add_ip("10.0.3.7".parse().unwrap());
        s.add_ip("10.42.0.9".parse().unwrap());
        assert_eq!(
            s.v4_elements(),
            [
                "10.0.0.0/24",
                "10.0.1.5",
                "10.0.2.0-10.0.255.255",
                "10.42.0.9"
            ]
        );
    }

    #[test]
    fn whole_spaces_and_v6() {
        let mut s = IpSet::default();
        s.add_block(block("0.0.0.0/0"), &[]);
        s.add_block(block("::/0"), &[block("fd00::/8")]);
        assert_eq!(s.v4_elements(), ["0.0.0.0/0"]);
        assert_eq!(
            s.v6_elements(),
            ["::-fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::/7"]
        );
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some(Cidr::V4(0x0a00_0000, 0x0aff_ffff))
        );
        assert_eq!(parse_cidr("10.1.2.3/33"), None);
    }
}
