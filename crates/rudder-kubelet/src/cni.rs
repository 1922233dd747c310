//! The pod network on one node: a CNI conflist for the standard plugins (bridge + host-local
//! IPAM on the node's podCIDR + portmap for hostPorts), written where containerd's CRI
//! plugin reads it. The bridge does not masquerade: it would rewrite the source of traffic
//! between pods on different nodes too; the pod network (rudder-flannel) masquerades only what
//! leaves the cluster CIDR, as Flannel does.

use std::path::Path;

pub const CONFLIST: &str = "10-rudder.conflist";

/// The conflist for a podCIDR (the bridge is the pods' gateway at the range's first address),
/// with the pod network's MTU when it has one (vxlan: the interface's less the encapsulation).
pub fn conflist(ipam_dir: &Path, pod_cidr: &str, mtu: Option<u32>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "rudder-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    if let Some(mtu) = mtu {
        v["plugins"][0]["mtu"] = mtu.into();
    }
    v
}

/// Writes the conflist in place (containerd 1.6 reloads on writes but ignores files renamed
/// into the directory); unchanged content is not rewritten.
pub fn write_conflist(conf_dir: &Path, ipam_dir: &Path, pod_cidr: &str) -> std::io::Result<()> {
    write_conflist_mtu(conf_dir, ipam_dir, pod_cidr, None)
}

/// [`write_conflist`] with the bridge's MTU.
pub fn write_conflist_mtu(
    conf_dir: &Path,
    ipam_dir: &Path,
    pod_cidr: &str,
    mtu: Option<u32>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(ipam_dir)?;
    let body = serde_json::to_vec_pretty(&conflist(ipam_dir, pod_cidr, mtu))
        .map_err(std::io::Error::other)?;
    let path = conf_dir.join(CONFLIST);
    if std::fs::read(&path).ok().as_deref() == Some(body.as_slice()) {
        return Ok(());
    }
    std::fs::write(path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_uses_the_pod_cidr() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let ipam = dir.path().join("ipam");
        write_conflist(&conf, &ipam, "10.42.3.0/24").unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(conf.join(CONFLIST)).unwrap()).unwrap();
        assert_eq!(v["plugins"][0]["type"], "bridge");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.3.0/24"
        );
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
        assert_eq!(v["plugins"][0]["ipMasq"], false);
        assert!(v["plugins"][0].get("mtu").is_none());
        let with_mtu = conflist(&ipam, "10.42.3.0/24", Some(1450));
        assert_eq!(with_mtu["plugins"][0]["mtu"], 1450);
        let before = std::fs::metadata(conf.join(CONFLIST))
            .unwrap()
            .modified()
            .unwrap();
        write_conflist(&conf, &ipam, "10.42.3.0/24").unwrap();
        assert_eq!(
            std::fs::metadata(conf.join(CONFLIST))
                .unwrap()
                .modified()
                .unwrap(),
            before
        );
    }
}
