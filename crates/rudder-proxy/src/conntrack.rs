//! Stale UDP conntrack entries, cleared as upstream's `conntrack.CleanStaleEntries` decides
//! (`pkg/proxy/conntrack/cleanup.go`): an entry whose original destination is a UDP service's
//! address (or node port) and whose reply source is not a serving endpoint of it keeps
//! sending the client's datagrams to a gone pod (or nowhere), since UDP has no connection to
//! end. Uses the `conntrack` tool (conntrack-tools), listing then deleting by filter.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// One UDP entry: original destination address and port, and the reply's source.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub orig_dst: Ipv4Addr,
    pub orig_dport: u16,
    pub reply_src: Ipv4Addr,
}

/// Parses `conntrack -L -p udp` lines (`udp 17 29 src=… dst=… sport=… dport=… [UNREPLIED]
/// src=… dst=… sport=… dport=… …`): the first `dst`/`dport` are the original direction's,
/// the second `src` the reply's.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let (mut dst, mut dport, mut srcs) = (None, None, Vec::new());
            for field in line.split_whitespace() {
                if let Some(v) = field.strip_prefix("src=") {
                    srcs.push(v);
                } else if let Some(v) = field.strip_prefix("dst=") {
                    dst = dst.or(Some(v));
                } else if let Some(v) = field.strip_prefix("dport=") {
                    dport = dport.or(Some(v));
                }
            }
            Some(Entry {
                orig_dst: dst?.parse().ok()?,
                orig_dport: dport?.parse().ok()?,
                reply_src: srcs.get(1)?.parse().ok()?,
            })
        })
        .collect()
}

/// A deletion: `conntrack -D -p udp` with these filters.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Filter {
    /// `--orig-dst <service ip> --reply-src <not an endpoint>`.
    Nat {
        orig_dst: Ipv4Addr,
        reply_src: Ipv4Addr,
    },
    /// `--orig-port-dst <node port> --reply-src <not an endpoint>`.
    PortNat { port: u16, reply_src: Ipv4Addr },
}

/// What to delete, given every UDP service address's and node port's serving endpoint IPs.
pub fn stale(
    entries: &[Entry],
    by_ip: &BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>>,
    by_node_port: &BTreeMap<u16, BTreeSet<Ipv4Addr>>,
) -> BTreeSet<Filter> {
    let mut out = BTreeSet::new();
    for e in entries {
        if by_ip
            .get(&e.orig_dst)
            .is_some_and(|eps| !eps.contains(&e.reply_src))
        {
            out.insert(Filter::Nat {
                orig_dst: e.orig_dst,
                reply_src: e.reply_src,
            });
        }
        if by_node_port
            .get(&e.orig_dport)
            .is_some_and(|eps| !eps.contains(&e.reply_src))
        {
            out.insert(Filter::PortNat {
                port: e.orig_dport,
                reply_src: e.reply_src,
            });
        }
    }
    out
}

/// Lists the node's UDP entries and deletes the stale ones.
pub async fn clean(
    by_ip: &BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>>,
    by_node_port: &BTreeMap<u16, BTreeSet<Ipv4Addr>>,
) {
    if by_ip.is_empty() && by_node_port.is_empty() {
        return;
    }
    let out = match tokio::process::Command::new("conntrack")
        .args(["-L", "-p", "udp"])
        .output()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "could not list conntrack entries (is conntrack installed?)");
            return;
        }
    };
    let entries = parse(&String::from_utf8_lossy(&out.stdout));
    for f in stale(&entries, by_ip, by_node_port) {
        let args: Vec<String> = match &f {
            Filter::Nat {
                orig_dst,
                reply_src,
            } => vec![
                "--orig-dst".into(),
                orig_dst.to_string(),
                "--reply-src".into(),
                reply_src.to_string(),
            ],
            Filter::PortNat { port, reply_src } => vec![
                "--orig-port-dst".into(),
                port.to_string(),
                "--reply-src".into(),
                reply_src.to_string(),
            ],
        };
        // Exit status 1 only says nothing matched (the entry went meanwhile).
        let _ = tokio::process::Command::new("conntrack")
            .args(["-D", "-p", "udp"])
            .args(&args)
            .output()
            .await;
        tracing::debug!(filter = ?f, "cleared stale UDP conntrack entries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_picks_entries_not_answered_by_an_endpoint() {
        let text = "\
udp      17 28 src=10.42.0.5 dst=10.43.0.10 sport=40000 dport=53 src=10.42.0.9 dst=10.42.0.5 sport=53 dport=40000 mark=0 use=1
udp      17 25 src=10.42.0.5 dst=10.43.0.10 sport=40001 dport=53 [UNREPLIED] src=10.43.0.10 dst=10.42.0.5 sport=53 dport=40001 mark=0 use=1
udp      17 20 src=10.252.1.2 dst=10.252.1.1 sport=5000 dport=30053 src=10.42.0.7 dst=10.42.0.1 sport=53 dport=5000 mark=0 use=1
";
        let entries = parse(text);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[0],
            Entry {
                orig_dst: "10.43.0.10".parse().unwrap(),
                orig_dport: 53,
                reply_src: "10.42.0.9".parse().unwrap()
            }
        );
        let svc: Ipv4Addr = "10.43.0.10".parse().unwrap();
        let by_ip = BTreeMap::from([(svc, BTreeSet::from(["10.42.0.9".parse().unwrap()]))]);
        let by_port = BTreeMap::from([(30053, BTreeSet::from(["10.42.0.9".parse().unwrap()]))]);
        let got: Vec<Filter> = stale(&entries, &by_ip, &by_port).into_iter().collect();
        // The unanswered one (no endpoint when it started) and the node port one to a gone pod.
        assert_eq!(
            got,
            vec![
                Filter::Nat {
                    orig_dst: svc,
                    reply_src: svc
                },
                Filter::PortNat {
                    port: 30053,
                    reply_src: "10.42.0.7".parse().unwrap()
                },
            ]
        );
    }
}
