//! Names outside the cluster: forwarded to the node's resolvers (CoreDNS's `forward .
//! /etc/resolv.conf`), with a small cache in front (its `cache 30`: answers and denials kept at
//! most 30 s, TTLs counted down while cached).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a forwarded answer or denial is cached (k3s's Corefile: `cache 30`).
pub const CACHE_MAX_TTL: u32 = 30;
/// Entries kept before the cache is emptied of expired ones (and then of everything).
const CACHE_CAPACITY: usize = 10_000;
/// How long one upstream gets before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolvers configured")]
    NoUpstreams,
    #[error("every upstream failed, last: {0}")]
    Upstream(String),
}

type CacheKey = (LowerName, RecordType, DNSClass);

struct CacheEntry {
    stored: Instant,
    ttl: u32,
    message: Message,
}

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder {
            upstreams,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The upstream's answer to `name`/`qtype` (records, rcode, flags; the ID is the caller's to
    /// set), from the cache while it is fresh.
    pub async fn lookup(
        &self,
        name: &Name,
        qtype: RecordType,
        qclass: DNSClass,
    ) -> Result<Message, ForwardError> {
        let key = (LowerName::from(name), qtype, qclass);
        if let Some(m) = self.cached(&key) {
            return Ok(m);
        }
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let mut query = Query::query(name.clone(), qtype);
        query.set_query_class(qclass);
        let mut last = String::new();
        for upstream in &self.upstreams {
            match exchange(*upstream, &query).await {
                Ok(m) => {
                    self.store(key, &m);
                    return Ok(m);
                }
                Err(e) => {
                    tracing::debug!(%upstream, error = %e, "upstream resolver failed");
                    last = format!("{upstream}: {e}");
                }
            }
        }
        Err(ForwardError::Upstream(last))
    }

    fn cached(&self, key: &CacheKey) -> Option<Message> {
        let mut cache = self.cache.lock().ok()?;
        let entry = cache.get(key)?;
        let age = entry.stored.elapsed().as_secs() as u32;
        if age >= entry.ttl {
            cache.remove(key);
            return None;
        }
        let mut m = entry.message.clone();
        for r in m
            .answers
            .iter_mut()
            .chain(m.authorities.iter_mut())
            .chain(m.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(m)
    }

    fn store(&self, key: CacheKey, m: &Message) {
        let Some(ttl) = cache_ttl(m) else {
            return;
        };
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, e| e.stored.elapsed().as_secs() < u64::from(e.ttl));
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CacheEntry {
                stored: Instant::now(),
                ttl,
                message: m.clone(),
            },
        );
    }
}

/// How long an upstream response may be cached: the smallest answer TTL, or for a denial
/// (NXDOMAIN, NODATA) the SOA's minimum (RFC 2308), capped at 30 s; errors are not cached.
fn cache_ttl(m: &Message) -> Option<u32> {
    let rcode = m.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return None;
    }
    if m.metadata.truncation {
        return None;
    }
    let ttl = if m.answers.is_empty() {
        m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?
    } else {
        m.answers.iter().map(|r| r.ttl).min()?
    };
    let ttl = ttl.min(CACHE_MAX_TTL);
    (ttl > 0).then_some(ttl)
}

/// One query to one upstream over UDP from a fresh random port (so answers cannot be spoofed
/// onto another exchange), retried over TCP when the answer is truncated.
async fn exchange(upstream: SocketAddr, query: &Query) -> Result<Message, String> {
    let id: u16 = fastrand::u16(..);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (IpAddr::from([0u8, 0, 0, 0]), 0).into(),
        SocketAddr::V6(_) => (IpAddr::from([0u16; 8]), 0).into(),
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(upstream).await.map_err(|e| e.to_string())?;
    sock.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    let response = loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        match Message::from_bytes(&buf[..n]) {
            Ok(r) if r.metadata.id == id && r.queries.first() == Some(query) => break r,
            _ => continue,
        }
    };
    if !response.metadata.truncation {
        return Ok(response);
    }
    tokio::time::timeout(UPSTREAM_TIMEOUT, exchange_tcp(upstream, &bytes, id))
        .await
        .map_err(|_| "timed out over TCP".to_string())?
}

async fn exchange_tcp(upstream: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    let mut s = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(query.len()).map_err(|e| e.to_string())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(query);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    let n = s.read_u16().await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(n)];
    s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    let m = Message::from_bytes(&buf).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("mismatched answer ID over TCP".into());
    }
    Ok(m)
}

/// The node's resolvers from a resolv.conf (port 53). Loopback resolvers are left out: pods
/// reach this server through the node, and a stub on 127.0.0.53 (systemd-resolved) or a
/// resolver on the node itself may forward cluster names back here, a loop CoreDNS's `loop`
/// plugin would stop on; as k3s does, systemd-resolved's own upstream list is read instead
/// when that is all there is.
pub fn node_resolvers(resolv_conf: &Path) -> Vec<SocketAddr> {
    let parse = |p: &Path| -> Vec<IpAddr> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some("nameserver"))
                    .then(|| f.next())
                    .flatten()
                    .and_then(|a| a.split('%').next())
                    .and_then(|a| a.parse().ok())
            })
            .collect()
    };
    let mut ips: Vec<IpAddr> = parse(resolv_conf)
        .into_iter()
        .filter(|ip| !ip.is_loopback())
        .collect();
    if ips.is_empty() {
        ips = parse(Path::new("/run/systemd/resolve/resolv.conf"))
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect();
    }
    ips.into_iter().map(|ip| SocketAddr::new(ip, 53)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_skips_loopback_and_keeps_order() {
        let dir = std::env::temp_dir().join(format!("rudder-dns-resolv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("resolv.conf");
        std::fs::write(
            &p,
            "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver ::1\noptions ndots:2\n",
        )
        .unwrap();
        let got = node_resolvers(&p);
        assert_eq!(
            got,
            vec![
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
