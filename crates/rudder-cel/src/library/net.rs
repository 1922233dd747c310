//! Upstream's `kubernetes.net.ip` and `net.cidr` libraries: `ip()`, `isIP()`,
//! `ip.isCanonical()`, the address predicates, `cidr()`, `isCIDR()`, `containsIP`,
//! `containsCIDR`, `masked`, `prefixLength`, and `string()` of both, with Go's `net/netip`
//! rules (no zones, no IPv4-mapped IPv6, no leading zeros).

use super::{args, owned, string};
use cel::common::types::{CelBool, CelInt, CelString, Type, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::any::Any;
use std::net::IpAddr;

pub(crate) static IP_TYPE: Type = Type::new_unspecified_type("net.IP");
pub(crate) static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

type Function = cel::common::functions::Function;

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(IP_TYPE.to_owned())?;
    env.add_type(CIDR_TYPE.to_owned())?;
    let ip = || IP_TYPE.to_owned();
    let cidr = || CIDR_TYPE.to_owned();
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], to_ip)?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    env.add_overload("string", "ip_to_string", vec![ip()], to_string)?;
    let predicates: [(&str, Function); 6] = [
        ("family", family),
        ("isUnspecified", is_unspecified),
        ("isLoopback", is_loopback),
        ("isLinkLocalMulticast", is_link_local_multicast),
        ("isLinkLocalUnicast", is_link_local_unicast),
        ("isGlobalUnicast", is_global_unicast),
    ];
    for (name, f) in predicates {
        env.add_member_overload(name, &format!("ip_{name}"), ip(), vec![], f)?;
    }
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], to_cidr)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("string", "cidr_to_string", vec![cidr()], to_string)?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        cidr(),
        vec![STRING_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        cidr(),
        vec![ip()],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        cidr(),
        vec![STRING_TYPE],
        contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        cidr(),
        vec![cidr()],
        contains_cidr,
    )?;
    env.add_member_overload("ip", "cidr_ip", cidr(), vec![], cidr_ip)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        cidr(),
        vec![],
        prefix_length,
    )?;
    env.add_member_overload("masked", "cidr_masked", cidr(), vec![], masked)?;
    Ok(())
}

/// A CEL `net.IP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

/// A CEL `net.CIDR`: an address and a prefix length (not necessarily masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub bits: u8,
}

macro_rules! static_val {
    ($t:ty, $cel:expr) => {
        impl Val for $t {
            fn get_type(&self) -> &Type {
                &$cel
            }

            fn cel_type() -> &'static Type {
                &$cel
            }

            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
                Box::new(*self)
            }

            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }

        impl StaticVal for $t {}
    };
}

static_val!(Ip, IP_TYPE);
static_val!(Cidr, CIDR_TYPE);

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

/// Go's `netip.ParseAddr` plus upstream's refusals.
fn parse_ip(raw: &str) -> Result<IpAddr, String> {
    if raw.contains('%') {
        return Err(format!("IP address {raw:?} with zone value is not allowed"));
    }
    let addr: IpAddr = raw.parse().map_err(|e| {
        format!("IP Address {raw:?} parse error during conversion from string: {e}")
    })?;
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
        }
    }
    Ok(addr)
}

/// Go's `netip.ParsePrefix` plus upstream's refusal of IPv4-mapped addresses.
fn parse_cidr(raw: &str) -> Result<Cidr, String> {
    let fail = |e: &str| {
        format!("network address parse error during conversion from string: netip.ParsePrefix({raw:?}): {e}")
    };
    let Some((addr, bits)) = raw.rsplit_once('/') else {
        return Err(fail("no '/'"));
    };
    if addr.contains('%') {
        return Err(fail("IPv6 zones cannot be present in a prefix"));
    }
    let addr: IpAddr = addr
        .parse()
        .map_err(|e| fail(&format!("ParseAddr({addr:?}): {e}")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let valid_digits = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    let bits: u8 = match bits.parse() {
        Ok(b) if valid_digits && b <= max => b,
        _ => return Err(fail(&format!("bad bits after slash: {bits:?}"))),
    };
    if let IpAddr::V6(v6) = addr {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
        }
    }
    Ok(Cidr { addr, bits })
}

fn to_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Cidr {
    fn width(&self) -> u32 {
        if self.addr.is_ipv4() {
            32
        } else {
            128
        }
    }

    fn mask(&self) -> u128 {
        let width = self.width();
        let host = width - u32::from(self.bits);
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        if host >= 128 {
            0
        } else {
            all & !((1u128 << host).wrapping_sub(1))
        }
    }

    fn masked(&self) -> Cidr {
        let bits = to_bits(self.addr) & self.mask();
        let addr = match self.addr {
            IpAddr::V4(_) => IpAddr::V4((bits as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(bits.into()),
        };
        Cidr {
            addr,
            bits: self.bits,
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4()
            && to_bits(ip) & self.mask() == to_bits(self.addr) & self.mask()
    }
}

fn ip_arg(function: &str, v: &dyn Val) -> Result<IpAddr, ExecutionError> {
    if let Some(ip) = v.downcast_ref::<Ip>() {
        return Ok(ip.0);
    }
    parse_ip(string(function, v)?).map_err(|e| ExecutionError::function_error(function, e))
}

fn cidr_arg(function: &str, v: &dyn Val) -> Result<Cidr, ExecutionError> {
    if let Some(c) = v.downcast_ref::<Cidr>() {
        return Ok(*c);
    }
    parse_cidr(string(function, v)?).map_err(|e| ExecutionError::function_error(function, e))
}

fn to_ip<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(Ip(ip_arg("ip", s)?)))
}

fn is_ip<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(CelBool::from(parse_ip(string("isIP", s)?).is_ok())))
}

fn is_canonical<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    let raw = string("ip.isCanonical", s)?;
    let addr = parse_ip(raw).map_err(|e| ExecutionError::function_error("ip.isCanonical", e))?;
    Ok(owned(CelBool::from(addr.to_string() == raw)))
}

fn to_string<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [v] = args::<1>(&a)?;
    let s = match (v.downcast_ref::<Ip>(), v.downcast_ref::<Cidr>()) {
        (Some(ip), _) => ip.0.to_string(),
        (_, Some(c)) => c.to_string(),
        _ => return Err(super::no_overload("string", &[v])),
    };
    Ok(owned(CelString::from(s)))
}

fn predicate<'b, 'v>(
    function: &str,
    a: Vec<CowVal<'b, 'v>>,
    test: impl Fn(IpAddr) -> bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [v] = args::<1>(&a)?;
    let Some(ip) = v.downcast_ref::<Ip>() else {
        return Err(super::no_overload(function, &[v]));
    };
    Ok(owned(CelBool::from(test(ip.0))))
}

fn family<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [v] = args::<1>(&a)?;
    match v.downcast_ref::<Ip>() {
        Some(Ip(IpAddr::V4(_))) => Ok(owned(CelInt::from(4))),
        Some(Ip(IpAddr::V6(_))) => Ok(owned(CelInt::from(6))),
        None => Err(super::no_overload("family", &[v])),
    }
}

fn is_unspecified<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate("isUnspecified", a, |ip| ip.is_unspecified())
}

fn is_loopback<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate("isLoopback", a, |ip| ip.is_loopback())
}

/// Go's `Addr.IsLinkLocalMulticast`: 224.0.0.0/24, or ff02::/16 (any flags).
fn link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
    }
}

/// Go's `Addr.IsLinkLocalUnicast`: 169.254.0.0/16, or fe80::/10.
fn link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[..2] == [169, 254],
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn is_link_local_multicast<'b, 'v>(
    a: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate("isLinkLocalMulticast", a, link_local_multicast)
}

fn is_link_local_unicast<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate("isLinkLocalUnicast", a, link_local_unicast)
}

/// Go's `Addr.IsGlobalUnicast`: not unspecified, broadcast, loopback, multicast or link-local
/// unicast (private and ULA addresses are global unicast).
fn is_global_unicast<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate("isGlobalUnicast", a, |ip| {
        let broadcast = matches!(ip, IpAddr::V4(a) if a.is_broadcast());
        !(ip.is_unspecified()
            || broadcast
            || ip.is_loopback()
            || ip.is_multicast()
            || link_local_unicast(ip))
    })
}

fn to_cidr<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(cidr_arg("cidr", s)?))
}

fn is_cidr<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(CelBool::from(
        parse_cidr(string("isCIDR", s)?).is_ok(),
    )))
}

fn contains_ip<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c, ip] = args::<2>(&a)?;
    let c = cidr_arg("containsIP", c)?;
    Ok(owned(CelBool::from(c.contains(ip_arg("containsIP", ip)?))))
}

/// Upstream: the other network's address lies in this one, and its prefix is at least as long.
fn contains_cidr<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c, other] = args::<2>(&a)?;
    let c = cidr_arg("containsCIDR", c)?;
    let other = cidr_arg("containsCIDR", other)?;
    Ok(owned(CelBool::from(
        c.contains(other.addr) && c.bits <= other.bits,
    )))
}

fn cidr_ip<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c] = args::<1>(&a)?;
    Ok(owned(Ip(cidr_arg("ip", c)?.addr)))
}

fn prefix_length<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c] = args::<1>(&a)?;
    Ok(owned(CelInt::from(i64::from(
        cidr_arg("prefixLength", c)?.bits,
    ))))
}

fn masked<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c] = args::<1>(&a)?;
    Ok(owned(cidr_arg("masked", c)?.masked()))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval_err, ok};
    use serde_json::json;

    #[test]
    fn ip_upstream_examples() {
        assert_eq!(ok("ip('127.0.0.1')"), json!("127.0.0.1"));
        assert_eq!(ok("ip('::1')"), json!("::1"));
        assert!(eval_err("ip('127.0.0.256')").starts_with("IP Address \"127.0.0.256\" parse error"));
        assert!(!eval_err("ip(':::1')").is_empty());
        assert_eq!(ok("isIP('127.0.0.1')"), json!(true));
        assert_eq!(ok("isIP('::1')"), json!(true));
        assert_eq!(ok("isIP('127.0.0.256')"), json!(false));
        assert_eq!(ok("isIP(':::1')"), json!(false));
        assert_eq!(ok("isIP('127.0.0.01')"), json!(false));
        assert_eq!(ok("isIP('fe80::1%eth0')"), json!(false));
        assert_eq!(
            eval_err("ip('::ffff:1.2.3.4')"),
            "IPv4-mapped IPv6 address \"::ffff:1.2.3.4\" is not allowed"
        );
        assert_eq!(ok("ip.isCanonical('127.0.0.1')"), json!(true));
        assert_eq!(ok("ip.isCanonical('2001:db8::abcd')"), json!(true));
        assert_eq!(ok("ip.isCanonical('2001:DB8::ABCD')"), json!(false));
        assert_eq!(ok("ip.isCanonical('2001:db8::0:0:0:abcd')"), json!(false));
        assert_eq!(ok("ip('127.0.0.1').family()"), json!(4));
        assert_eq!(ok("ip('::1').family()"), json!(6));
        assert_eq!(ok("ip('127.0.0.1').family() == 4"), json!(true));
        assert_eq!(ok("ip('::1').family() == 6"), json!(true));
        assert_eq!(ok("ip('0.0.0.0').isUnspecified()"), json!(true));
        assert_eq!(ok("ip('127.0.0.1').isUnspecified()"), json!(false));
        assert_eq!(ok("ip('::').isUnspecified()"), json!(true));
        assert_eq!(ok("ip('::1').isUnspecified()"), json!(false));
        assert_eq!(ok("ip('127.0.0.1').isLoopback()"), json!(true));
        assert_eq!(ok("ip('192.168.0.1').isLoopback()"), json!(false));
        assert_eq!(ok("ip('::1').isLoopback()"), json!(true));
        assert_eq!(ok("ip('2001:db8::abcd').isLoopback()"), json!(false));
        assert_eq!(ok("ip('224.0.0.1').isLinkLocalMulticast()"), json!(true));
        assert_eq!(ok("ip('224.0.1.1').isLinkLocalMulticast()"), json!(false));
        assert_eq!(ok("ip('ff02::1').isLinkLocalMulticast()"), json!(true));
        assert_eq!(ok("ip('fd00::1').isLinkLocalMulticast()"), json!(false));
        assert_eq!(
            ok("ip('169.254.169.254').isLinkLocalUnicast()"),
            json!(true)
        );
        assert_eq!(ok("ip('192.168.0.1').isLinkLocalUnicast()"), json!(false));
        assert_eq!(ok("ip('fe80::1').isLinkLocalUnicast()"), json!(true));
        assert_eq!(ok("ip('fd80::1').isLinkLocalUnicast()"), json!(false));
        assert_eq!(ok("ip('192.168.0.1').isGlobalUnicast()"), json!(true));
        assert_eq!(ok("ip('255.255.255.255').isGlobalUnicast()"), json!(false));
        assert_eq!(ok("ip('2001:db8::abcd').isGlobalUnicast()"), json!(true));
        assert_eq!(ok("ip('ff00::1').isGlobalUnicast()"), json!(false));
        assert_eq!(ok("string(ip('2001:DB8::1'))"), json!("2001:db8::1"));
        assert_eq!(
            ok("ip('10.0.0.1') == ip('10.0.0.1') && ip('10.0.0.1') != ip('10.0.0.2')"),
            json!(true)
        );
    }

    #[test]
    fn cidr_upstream_examples() {
        assert_eq!(ok("cidr('192.168.0.0/16')"), json!("192.168.0.0/16"));
        assert_eq!(ok("cidr('::1/128')"), json!("::1/128"));
        assert!(eval_err("cidr('192.168.0.0/33')").starts_with("network address parse error"));
        assert!(!eval_err("cidr('::1/129')").is_empty());
        assert_eq!(ok("isCIDR('192.168.0.0/16')"), json!(true));
        assert_eq!(ok("isCIDR('::1/128')"), json!(true));
        assert_eq!(ok("isCIDR('192.168.0.0/33')"), json!(false));
        assert_eq!(ok("isCIDR('::1/129')"), json!(false));
        assert_eq!(ok("isCIDR('10.0.0.0/08')"), json!(false));
        assert_eq!(ok("isCIDR('10.0.0.0')"), json!(false));
        assert_eq!(
            ok("cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))"),
            json!(false)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/24').containsIP('192.168.0.1')"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/24').containsIP('192.168.1.1')"),
            json!(false)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.1.0/24').containsCIDR(cidr('192.168.2.0/24'))"),
            json!(false)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.1.0/24').containsCIDR('192.168.2.0/24')"),
            json!(false)
        );
        assert_eq!(
            ok("cidr('10.0.0.0/24').containsCIDR('10.0.0.0/16')"),
            json!(false)
        );
        assert_eq!(
            ok("cidr('0.0.0.0/0').containsIP('1.2.3.4') && !cidr('0.0.0.0/0').containsIP('::1')"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.1/24').ip() == ip('192.168.0.1')"),
            json!(true)
        );
        assert_eq!(ok("cidr('192.168.0.1/24').ip().family()"), json!(4));
        assert_eq!(ok("cidr('::1/128').ip() == ip('::1')"), json!(true));
        assert_eq!(ok("cidr('::1/128').ip().family()"), json!(6));
        assert_eq!(
            ok("cidr('192.168.0.0/24').masked() == cidr('192.168.0.0/24')"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.0/24') == cidr('192.168.0.0/24').masked()"),
            json!(true)
        );
        assert_eq!(
            ok("cidr('192.168.0.1/24') == cidr('192.168.0.1/24').masked()"),
            json!(false)
        );
        assert_eq!(ok("cidr('192.168.0.0/16').prefixLength()"), json!(16));
        assert_eq!(ok("cidr('::1/128').prefixLength()"), json!(128));
        assert_eq!(
            ok("string(cidr('2001:db8::1/32').masked())"),
            json!("2001:db8::/32")
        );
    }
}
