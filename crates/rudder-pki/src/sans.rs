//! Which names and addresses the API server's serving certificate must cover.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{PkiError, Result};

/// The first address of the default service CIDR (10.43.0.0/16, as k3s): the ClusterIP of the
/// `kubernetes` Service, which in-cluster clients dial.
pub const DEFAULT_KUBERNETES_SERVICE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 43, 0, 1));

/// The names under which pods reach the API server through the `kubernetes` Service and
/// cluster DNS.
const SERVICE_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// One subject alternative name. Kept normalised (DNS names lowercase, IPs parsed) so that the
/// set wanted now and the set found in an existing certificate compare equal exactly when the
/// certificate needs no re-issue.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(d) => f.write_str(d),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl San {
    /// Parses an operator-given SAN (a `--tls-san` value): an IP address, optionally in
    /// brackets, or a DNS name, optionally a wildcard.
    pub fn parse(s: &str) -> Result<San> {
        let t = s.trim();
        let unbracketed = t
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let name = t.strip_suffix('.').unwrap_or(t).to_ascii_lowercase();
        if !valid_dns_name(&name) {
            return Err(PkiError::InvalidSan(s.to_owned()));
        }
        Ok(San::Dns(name))
    }

    pub(crate) fn to_rcgen(&self) -> Result<rcgen::SanType> {
        Ok(match self {
            San::Ip(ip) => rcgen::SanType::IpAddress(*ip),
            San::Dns(d) => rcgen::SanType::DnsName(
                d.clone()
                    .try_into()
                    .map_err(|_| PkiError::InvalidSan(d.clone()))?,
            ),
        })
    }
}

/// RFC 1123 host names (what Kubernetes and certificate verifiers accept), plus a leading
/// `*.` wildcard label.
fn valid_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let body = name.strip_prefix("*.").unwrap_or(name);
    !body.is_empty()
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The full SAN set for this host: loopback names, the host name, every non-loopback,
/// non-link-local address of the host's interfaces (so nodes and browsers on the LAN can
/// connect by IP), the in-cluster service names and ClusterIP, and the operator's extras.
/// Link-local addresses are left out: they are only meaningful with a zone and change with
/// the interface set.
pub fn wanted_sans(extra: &[String]) -> Result<BTreeSet<San>> {
    let mut sans = BTreeSet::new();
    sans.insert(San::Dns("localhost".into()));
    sans.insert(San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    sans.insert(San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    if let Some(host) = host_name() {
        match San::parse(&host) {
            Ok(san) => {
                sans.insert(san);
            }
            Err(_) => tracing::warn!(
                host,
                "host name is not a valid DNS name; left out of the serving certificate"
            ),
        }
    }
    for ip in host_addresses() {
        sans.insert(San::Ip(ip));
    }
    for name in SERVICE_NAMES {
        sans.insert(San::Dns(name.into()));
    }
    sans.insert(San::Ip(DEFAULT_KUBERNETES_SERVICE_IP));
    for s in extra {
        sans.insert(San::parse(s)?);
    }
    Ok(sans)
}

/// The kernel's host name (what `hostname` prints and what the node will be named after).
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
}

fn host_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifaces) => ifaces
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| !ip.is_loopback() && !is_link_local(ip) && !ip.is_unspecified())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list interface addresses; the serving certificate will only cover loopback and configured names");
            Vec::new()
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The SANs in a parsed certificate, normalised like [`San::parse`]; other kinds of names
/// (URIs, e-mail) are ignored because Rudder never puts them there.
pub(crate) fn sans_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> BTreeSet<San> {
    use x509_parser::extensions::GeneralName;
    let mut out = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    out.insert(San::Dns(d.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(bytes) => {
                    if let Ok(b) = <[u8; 4]>::try_from(*bytes) {
                        out.insert(San::Ip(IpAddr::from(b)));
                    } else if let Ok(b) = <[u8; 16]>::try_from(*bytes) {
                        out.insert(San::Ip(IpAddr::from(b)));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises() {
        assert_eq!(
            San::parse("Example.COM.").unwrap(),
            San::Dns("example.com".into())
        );
        assert_eq!(
            San::parse("[::1]").unwrap(),
            San::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            San::parse(" 192.168.1.5 ").unwrap(),
            San::Ip("192.168.1.5".parse().unwrap())
        );
        assert_eq!(
            San::parse("*.apps.example.com").unwrap(),
            San::Dns("*.apps.example.com".into())
        );
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in ["", "a b", "-x.com", "x..com", "x_y.com", "*.", "é.com"] {
            assert!(San::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn wanted_includes_fixed_names_and_extras() {
        let s = wanted_sans(&["my.lb.example".into(), "203.0.113.7".into()]).unwrap();
        for want in [
            San::Dns("localhost".into()),
            San::Dns("kubernetes.default.svc.cluster.local".into()),
            San::Ip("127.0.0.1".parse().unwrap()),
            San::Ip("::1".parse().unwrap()),
            San::Ip("10.43.0.1".parse().unwrap()),
            San::Dns("my.lb.example".into()),
            San::Ip("203.0.113.7".parse().unwrap()),
        ] {
            assert!(s.contains(&want), "missing {want}");
        }
        assert!(!s
            .iter()
            .any(|x| matches!(x, San::Ip(ip) if is_link_local(ip))));
    }
}
