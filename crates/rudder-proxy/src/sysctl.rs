//! The kernel settings the data plane needs, set at start as kube-proxy (and k3s) set them.
//! They are per network namespace: a test's agent changes only its own namespace's.

use std::path::Path;

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

fn set(path: &str, value: &str) -> std::io::Result<()> {
    match std::fs::read_to_string(path) {
        Ok(cur) if cur.trim() == value => Ok(()),
        _ => std::fs::write(path, value),
    }
}

/// `net.ipv4.ip_forward=1` (pods' traffic is routed through the node),
/// `net.bridge.bridge-nf-call-iptables=1` (replies between pods on the same bridge must pass
/// conntrack to be un-DNATed; `modprobe br_netfilter` first when the setting is missing) and
/// `net.ipv4.conf.all.route_localnet=1` (NodePorts on 127.0.0.1, and the API server's
/// endpoint when it is a loopback address). Failures are logged: a node can still serve what
/// does not depend on them.
pub fn setup() {
    if let Err(e) = set(IP_FORWARD, "1") {
        tracing::warn!(error = %e, "could not set net.ipv4.ip_forward=1");
    }
    if !Path::new(BRIDGE_NF_CALL_IPTABLES).exists() {
        match std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => tracing::warn!(status = %s, "modprobe br_netfilter failed"),
            Err(e) => tracing::warn!(error = %e, "could not run modprobe br_netfilter"),
        }
    }
    if let Err(e) = set(BRIDGE_NF_CALL_IPTABLES, "1") {
        tracing::warn!(error = %e, "could not set net.bridge.bridge-nf-call-iptables=1");
    }
    if let Err(e) = set(ROUTE_LOCALNET, "1") {
        tracing::warn!(error = %e, "could not set net.ipv4.conf.all.route_localnet=1");
    }
}
