//! The pod network on one node: a CNI conflist for the standard plugins (bridge + host-local
//! IPAM on the node's podCIDR + portmap for hostPorts), written where containerd's CRI
//! plugin reads it.

use std::path::Path;

pub const CONFLIST: &str = "10-rudder.conflist";

/// The conflist for a podCIDR (the bridge is the pods' gateway at the range's first address).
pub fn conflist(ipam_dir: &Path, pod_cidr: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "rudder-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": true,
                "ipMasq": true,
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
    })
}

/// Writes the conflist in place (containerd 1.6 reloads on writes but ignores files renamed
/// into the directory); unchanged content is not rewritten.
pub fn write_conflist(conf_dir: &Path, ipam_dir: &Path, pod_cidr: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(conf_dir)?;
    std::fs::create_dir_all(ipam_dir)?;
    let body =
        serde_json::to_vec_pretty(&conflist(ipam_dir, pod_cidr)).map_err(std::io::Error::other)?;
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
