//! Masquerading of pod traffic leaving the cluster, in our own nftables table `ip rudder-flannel`
//! (replaced as a whole in one `nft -f -` transaction): Flannel's `FLANNEL-POSTRTG` rules. The
//! CNI bridge's own `ipMasq` is off, because it would also rewrite the source of traffic between
//! pods on different nodes (breaking the source IP servers see and NetworkPolicy).

use ipnet::Ipv4Net;
use tokio::io::AsyncWriteExt;

use crate::Error;

pub const TABLE: &str = "rudder-flannel";

/// The packet mark kube-proxy sets on traffic it masquerades itself (Flannel leaves it alone
/// to avoid a double NAT).
pub const KUBE_PROXY_MARK: u32 = 0x4000;

/// The whole table for this node's podCIDR, as one transaction that creates, empties and refills
/// it (the empty `table` line makes the `delete` valid on the first run).
pub fn ruleset(cluster_cidr: Ipv4Net, pod_cidr: Ipv4Net) -> String {
    let (cc, pc) = (cluster_cidr, pod_cidr);
    let m = KUBE_PROXY_MARK;
    format!(
        "table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tmeta mark & {m:#x} == {m:#x} return\n\
         \t\tip saddr {pc} ip daddr {cc} return\n\
         \t\tip saddr {cc} ip daddr {pc} return\n\
         \t\tip saddr != {cc} ip daddr {pc} return\n\
         \t\tip saddr {cc} ip daddr != {cc} ip daddr != 224.0.0.0/4 masquerade fully-random\n\
         \t\tip saddr != {cc} ip daddr {cc} masquerade fully-random\n\
         \t}}\n\
         }}\n"
    )
}

/// Applies a ruleset with `nft -f -` (atomic: all of it or none).
pub async fn apply(rules: &str) -> Result<(), Error> {
    let mut child = tokio::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Io("running nft (Debian's nftables package)".into(), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .await
            .map_err(|e| Error::Io("writing to nft".into(), e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Io("waiting for nft".into(), e))?;
    if !out.status.success() {
        return Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flannel_postrouting_rules() {
        let r = ruleset(
            "10.42.0.0/16".parse().unwrap(),
            "10.42.3.0/24".parse().unwrap(),
        );
        assert!(r.starts_with("table ip rudder-flannel\ndelete table ip rudder-flannel\n"));
        assert!(r.contains("meta mark & 0x4000 == 0x4000 return\n"));
        assert!(r.contains("ip saddr 10.42.3.0/24 ip daddr 10.42.0.0/16 return\n"));
        assert!(r.contains(
            "ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random\n"
        ));
    }
}
