//! The kubelet's configuration and the facts it reads from the host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

#[derive(Clone, Debug)]
pub struct KubeletConfig {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub node_labels: BTreeMap<String, String>,
    pub node_taints: Vec<Taint>,
    /// `<data-dir>/agent`: containerd's state, pod volumes, logs, the CNI config.
    pub agent_dir: PathBuf,
    /// Static pod manifests (`--pod-manifest-path`).
    pub pod_manifest_path: PathBuf,
    /// An existing CRI socket (`--container-runtime-endpoint`); None: the agent runs containerd.
    pub runtime_endpoint: Option<String>,
    pub cni_bin_dir: PathBuf,
    /// Written into every pod's resolv.conf for `dnsPolicy: ClusterFirst` (k3s: 10.43.0.10).
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The kubelet's HTTPS port (logs, exec, port-forward): `status.daemonEndpoints`.
    pub port: u16,
    pub max_pods: u32,
    /// `--system-reserved` / `--kube-reserved` (`cpu=500m,memory=1Gi`): subtracted from capacity.
    pub system_reserved: BTreeMap<String, String>,
    pub kube_reserved: BTreeMap<String, String>,
    pub kubelet_version: String,
    /// The cgroup (v1 cgroupfs path) under which pod cgroups live: upstream's `/kubepods`.
    pub cgroup_root: String,
    pub node_status_update_frequency: Duration,
    pub node_status_report_frequency: Duration,
    pub lease_duration_seconds: i32,
    /// `registries.yaml` (k3s-style mirrors) for the managed containerd.
    pub registries: Option<PathBuf>,
    /// `--eviction-hard` thresholds.
    pub eviction_hard: Vec<crate::eviction::Threshold>,
    pub eviction_pressure_transition_period: Duration,
    /// The sandbox image (never garbage-collected).
    pub pause_image: String,
    /// The CA whose client certificates the kubelet's HTTPS server accepts (the cluster CA);
    /// without it the server is not started.
    pub client_ca_pem: Option<String>,
}

impl KubeletConfig {
    pub fn new(node_name: String, node_ip: IpAddr, agent_dir: PathBuf) -> KubeletConfig {
        KubeletConfig {
            node_name,
            node_ip,
            node_labels: BTreeMap::new(),
            node_taints: Vec::new(),
            pod_manifest_path: agent_dir.join("pod-manifests"),
            agent_dir,
            runtime_endpoint: None,
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            cluster_dns: vec![IpAddr::from([10, 43, 0, 10])],
            cluster_domain: "cluster.local".into(),
            port: 10250,
            max_pods: 110,
            system_reserved: BTreeMap::new(),
            kube_reserved: BTreeMap::new(),
            kubelet_version: "v1.37.0".into(),
            cgroup_root: "/kubepods".into(),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            lease_duration_seconds: 40,
            registries: None,
            eviction_hard: crate::eviction::parse_thresholds(crate::eviction::DEFAULT_HARD)
                .unwrap_or_default(),
            eviction_pressure_transition_period: Duration::from_secs(300),
            pause_image: "rudder.dev/pause:3.10".into(),
            client_ca_pem: None,
        }
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.agent_dir.join("pods")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.agent_dir.join("logs").join("pods")
    }
}

/// `key=value:Effect` or `key:Effect` (`--node-taint`, kubectl taint's syntax).
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid taint {s:?}: expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "invalid taint effect {effect:?} in {s:?}: must be NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("invalid taint {s:?}: empty key"));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// `k=v,k2=v2` (`--node-label`, `--system-reserved`).
pub fn parse_map(items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items.iter().flat_map(|s| s.split(',')) {
        if item.is_empty() {
            continue;
        }
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("invalid {item:?}: expected key=value"))?;
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// The node's address when `--node-ip` is not given (k3s): the IPv4 address of the interface
/// holding the default route, else the first non-loopback address, else loopback.
pub fn default_node_ip() -> IpAddr {
    let addrs = if_addrs::get_if_addrs().unwrap_or_default();
    let route_iface = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| {
            t.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
            })
        });
    if let Some(iface) = route_iface {
        if let Some(a) = addrs.iter().find(|a| a.name == iface && a.ip().is_ipv4()) {
            return a.ip();
        }
    }
    addrs
        .iter()
        .find(|a| !a.is_loopback() && a.ip().is_ipv4())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The host facts a Node reports.
#[derive(Clone, Debug, Default)]
pub struct HostInfo {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub architecture: String,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl HostInfo {
    /// Reads /proc, /etc and statvfs of the agent's directory (blocking: call from
    /// `spawn_blocking`).
    pub fn read(agent_dir: &std::path::Path) -> HostInfo {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let rest = l.strip_prefix("MemTotal:")?;
                    let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
                    Some(kb * 1024)
                })
            })
            .unwrap_or(0);
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("PRETTY_NAME=")
                        .map(|v| v.trim_matches('"').to_string())
                })
            })
            .unwrap_or_else(|| "Linux".into());
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        }
        .to_string();
        HostInfo {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes: statvfs_total(agent_dir),
            kernel_version: read_trim("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read_trim("/etc/machine-id"),
            system_uuid: read_trim("/sys/class/dmi/id/product_uuid"),
            boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
            architecture,
        }
    }
}

/// Total bytes of the filesystem holding `path` (0 when it cannot be read).
pub fn statvfs_total(path: &std::path::Path) -> u64 {
    statvfs(path).map(|(total, _)| total).unwrap_or(0)
}

/// (total, available) bytes of the filesystem holding `path`.
pub fn statvfs(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_kubectl_taint() {
        let t = parse_taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = parse_taint("node-role:NoExecute").unwrap();
        assert_eq!((t.key.as_str(), t.value), ("node-role", None));
        assert!(parse_taint("a=b:Sometimes").unwrap_err().contains("effect"));
        assert!(parse_taint("nocolon").is_err());
    }

    #[test]
    fn maps_parse_comma_lists() {
        let m = parse_map(&["cpu=500m,memory=1Gi".into(), "pods=10".into()]).unwrap();
        assert_eq!(m["cpu"], "500m");
        assert_eq!(m["memory"], "1Gi");
        assert_eq!(m["pods"], "10");
        assert!(parse_map(&["novalue".into()]).is_err());
    }

    #[test]
    fn host_info_reads_this_machine() {
        let h = HostInfo::read(std::path::Path::new("/"));
        assert!(h.cpus >= 1);
        assert!(h.memory_bytes > 0);
        assert!(h.ephemeral_storage_bytes > 0);
        assert!(!h.kernel_version.is_empty());
    }
}
