//! What the kubelet asks the runtime for a pod: the sandbox config (namespaces, DNS, ports,
//! cgroup parent), container configs (command, env, mounts, resources, security), image pulls
//! with pull secrets, and the runtime's view of one pod.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Secret, SecurityContext};
use kube::api::Api;

use crate::cri::{api as cri, labels, Cri, CriError};

use super::status::{PodRuntime, RunState, RuntimeContainer, RuntimeSandbox};

pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_GRACE: &str = "io.kubernetes.pod.terminationGracePeriod";

/// Upstream's default masked and read-only /proc paths for unprivileged containers.
const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

pub fn pod_full_name(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod_uid(pod)
    )
}

/// The runtime's containers and sandboxes of one pod, newest first, with full statuses.
pub async fn pod_runtime(
    cri: &Cri,
    uid: &str,
    all: Option<&Snapshot>,
) -> Result<PodRuntime, CriError> {
    let owned;
    let snap = match all {
        Some(s) => s,
        None => {
            owned = Snapshot::take(cri).await?;
            &owned
        }
    };
    let mut rt = PodRuntime::default();
    for s in snap
        .sandboxes
        .iter()
        .filter(|s| s.labels.get(labels::POD_UID).map(String::as_str) == Some(uid))
    {
        let ready = s.state == cri::PodSandboxState::SandboxReady as i32;
        let ip = if ready {
            cri.sandbox_status(&s.id)
                .await
                .ok()
                .and_then(|st| st.network)
                .map(|n| n.ip)
                .filter(|ip| !ip.is_empty())
        } else {
            None
        };
        rt.sandboxes.push(RuntimeSandbox {
            id: s.id.clone(),
            attempt: s.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            ready,
            ip,
            created_at: s.created_at,
        });
    }
    rt.sandboxes
        .sort_by_key(|s| std::cmp::Reverse(s.created_at));
    for c in snap
        .containers
        .iter()
        .filter(|c| c.labels.get(labels::POD_UID).map(String::as_str) == Some(uid))
    {
        let st = match cri.container_status(&c.id).await {
            Ok(st) => st,
            Err(e) if e.code() == Some(tonic::Code::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let state = match st.state {
            x if x == cri::ContainerState::ContainerCreated as i32 => RunState::Created,
            x if x == cri::ContainerState::ContainerRunning as i32 => RunState::Running,
            x if x == cri::ContainerState::ContainerExited as i32 => RunState::Exited,
            _ => RunState::Unknown,
        };
        let restart_count = c
            .annotations
            .get(RESTART_COUNT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut reason = st.reason.clone();
        // containerd records an OOM kill from a separate event that can arrive after the exit:
        // a recent 137 without a reason may still turn into OOMKilled.
        let finished_ago = jiff::Timestamp::now().as_nanosecond() - i128::from(st.finished_at);
        let reason_pending = state == RunState::Exited
            && reason.is_empty()
            && st.exit_code == 137
            && finished_ago < 10_000_000_000;
        if state == RunState::Exited && reason.is_empty() {
            reason = if st.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into();
        }
        rt.containers.push(RuntimeContainer {
            id: c.id.clone(),
            sandbox_id: c.pod_sandbox_id.clone(),
            name: c
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_default(),
            attempt: c.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            restart_count,
            state,
            created_at: st.created_at,
            started_at: st.started_at,
            finished_at: st.finished_at,
            exit_code: st.exit_code,
            reason,
            message: st.message.clone(),
            image: st
                .image
                .as_ref()
                .map(|i| i.user_specified_image.clone())
                .filter(|s| !s.is_empty())
                .or_else(|| st.image.as_ref().map(|i| i.image.clone()))
                .unwrap_or_default(),
            image_ref: st.image_ref.clone(),
            log_path: st.log_path.clone(),
            reason_pending,
        });
    }
    rt.containers
        .sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(rt)
}

/// One relist of the runtime (the PLEG's input).
#[derive(Default)]
pub struct Snapshot {
    pub sandboxes: Vec<cri::PodSandbox>,
    pub containers: Vec<cri::Container>,
}

impl Snapshot {
    pub async fn take(cri: &Cri) -> Result<Snapshot, CriError> {
        Ok(Snapshot {
            sandboxes: cri.list_sandboxes().await?,
            containers: cri.list_containers().await?,
        })
    }
}

fn namespace_options(spec: &PodSpec) -> cri::NamespaceOption {
    let node = cri::NamespaceMode::Node as i32;
    let pod = cri::NamespaceMode::Pod as i32;
    cri::NamespaceOption {
        network: if spec.host_network == Some(true) {
            node
        } else {
            pod
        },
        pid: if spec.host_pid == Some(true) {
            node
        } else if spec.share_process_namespace == Some(true) {
            pod
        } else {
            cri::NamespaceMode::Container as i32
        },
        ipc: if spec.host_ipc == Some(true) {
            node
        } else {
            pod
        },
        ..Default::default()
    }
}

fn parse_resolv_conf(text: &str) -> cri::DnsConfig {
    let mut d = cri::DnsConfig::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("").trim();
        let mut f = line.split_whitespace();
        match f.next() {
            Some("nameserver") => d.servers.extend(f.next().map(str::to_string)),
            Some("search") => d.searches = f.map(str::to_string).collect(),
            Some("options") => d.options.extend(f.map(str::to_string)),
            _ => {}
        }
    }
    d
}

/// The pod's DNS settings by `dnsPolicy` and `dnsConfig` (upstream's `GetPodDNS`).
pub fn dns_config(pod: &Pod, cluster_dns: &[std::net::IpAddr], domain: &str) -> cri::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_net = spec.host_network == Some(true);
    let host = parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let mut policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if policy == "ClusterFirst" && host_net {
        policy = "Default";
    }
    if policy == "ClusterFirstWithHostNet" {
        policy = "ClusterFirst";
    }
    if policy == "ClusterFirst" && cluster_dns.is_empty() {
        policy = "Default";
    }
    let mut d = match policy {
        "None" => cri::DnsConfig::default(),
        "ClusterFirst" => {
            let mut searches = vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            searches.extend(host.searches.iter().cloned());
            cri::DnsConfig {
                servers: cluster_dns.iter().map(|i| i.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host,
    };
    if let Some(c) = &spec.dns_config {
        for s in c.nameservers.iter().flatten() {
            if !d.servers.contains(s) {
                d.servers.push(s.clone());
            }
        }
        for s in c.searches.iter().flatten() {
            if !d.searches.contains(s) {
                d.searches.push(s.clone());
            }
        }
        for o in c.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.as_deref().unwrap_or_default();
            d.options.retain(|x| x.split(':').next() != Some(name));
            d.options.push(opt);
        }
    }
    // glibc's limits: 3 nameservers, 32 search domains.
    d.servers.truncate(3);
    d.searches.truncate(32);
    d
}

pub fn hostname_and_domain(pod: &Pod, domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut host = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    host.truncate(63);
    let host = host.trim_end_matches(['-', '.']).to_string();
    let fqdn = spec
        .subdomain
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(|sub| {
            format!(
                "{host}.{sub}.{}.svc.{domain}",
                pod.metadata.namespace.as_deref().unwrap_or("default")
            )
        });
    (host, fqdn)
}

/// The managed /etc/hosts (upstream's `managedHostsFileContent`).
pub fn hosts_file(pod: &Pod, pod_ip: Option<&str>, domain: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut s = String::new();
    if spec.host_network == Some(true) {
        s.push_str(&std::fs::read_to_string("/etc/hosts").unwrap_or_default());
    } else {
        s.push_str("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n");
        if let Some(ip) = pod_ip {
            let (host, fqdn) = hostname_and_domain(pod, domain);
            match fqdn {
                Some(f) => s.push_str(&format!("{ip}\t{f}\t{host}\n")),
                None => s.push_str(&format!("{ip}\t{host}\n")),
            }
        }
    }
    if let Some(aliases) = spec.host_aliases.as_ref().filter(|a| !a.is_empty()) {
        s.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            s.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.clone().unwrap_or_default().join("\t")
            ));
        }
    }
    s
}

pub fn cgroup_parent(root: &str, qos: &str, uid: &str) -> String {
    match qos {
        "Guaranteed" => format!("{root}/pod{uid}"),
        "Burstable" => format!("{root}/burstable/pod{uid}"),
        _ => format!("{root}/besteffort/pod{uid}"),
    }
}

/// Creates the pod-level cgroup with the pod's limits before its sandbox starts (upstream's
/// pod container manager): cpu.shares from the sum of CPU requests, and when every container
/// has a limit, the CFS quota and the memory limit from their sums. runc puts the containers
/// inside it.
pub fn setup_pod_cgroup(parent: &str, spec: &PodSpec) -> std::io::Result<()> {
    let rel = parent.trim_start_matches('/');
    let sum = |kind: &str, res: &str, milli: bool| -> Option<i64> {
        let mut total = 0;
        for c in &spec.containers {
            let m = c.resources.as_ref().and_then(|r| {
                if kind == "limits" {
                    r.limits.as_ref()
                } else {
                    r.requests.as_ref()
                }
            });
            let q = m
                .and_then(|m| m.get(res))
                .and_then(|q| rudder_api::quantity::parse(&q.0).ok())?;
            total += if milli { q.milli_value() } else { q.value() };
        }
        Some(total)
    };
    let cpu_dir = Path::new("/sys/fs/cgroup/cpu").join(rel);
    let mem_dir = Path::new("/sys/fs/cgroup/memory").join(rel);
    std::fs::create_dir_all(&cpu_dir)?;
    std::fs::create_dir_all(&mem_dir)?;
    let shares = spec
        .containers
        .iter()
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu").cloned())
        .filter_map(|q| rudder_api::quantity::parse(&q.0).ok())
        .map(|q| q.milli_value())
        .sum::<i64>();
    let shares = if shares > 0 {
        (shares * 1024 / 1000).max(2)
    } else {
        2
    };
    std::fs::write(cpu_dir.join("cpu.shares"), shares.to_string())?;
    if let Some(cpu) = sum("limits", "cpu", true).filter(|c| *c > 0) {
        std::fs::write(cpu_dir.join("cpu.cfs_period_us"), "100000")?;
        std::fs::write(
            cpu_dir.join("cpu.cfs_quota_us"),
            (cpu * 100).max(1000).to_string(),
        )?;
    }
    if let Some(mem) = sum("limits", "memory", false).filter(|m| *m > 0) {
        std::fs::write(mem_dir.join("memory.limit_in_bytes"), mem.to_string())?;
    }
    Ok(())
}

/// Removes a pod's cgroup directories, which runc creates and nobody else removes (spike).
/// Returns whether they are all gone (a container's cgroup may still be going away).
pub fn remove_pod_cgroup(parent: &str) -> bool {
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return true;
    };
    let mut gone = true;
    for c in controllers.flatten() {
        let dir = c.path().join(parent.trim_start_matches('/'));
        remove_cgroup_tree(&dir);
        gone &= !dir.exists();
    }
    gone
}

/// `remove_pod_cgroup`, retried for a few seconds off the async threads.
pub async fn remove_pod_cgroup_eventually(parent: String) {
    for _ in 0..20 {
        let p = parent.clone();
        if tokio::task::spawn_blocking(move || remove_pod_cgroup(&p))
            .await
            .unwrap_or(true)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    tracing::debug!(cgroup = %parent, "pod cgroup still busy; left in place");
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(children) = std::fs::read_dir(dir) {
        for ch in children.flatten() {
            if ch.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&ch.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

pub struct SandboxInput<'a> {
    pub pod: &'a Pod,
    pub attempt: u32,
    pub log_dir: PathBuf,
    pub cgroup_parent: String,
    pub cluster_dns: &'a [std::net::IpAddr],
    pub domain: &'a str,
}

pub fn sandbox_config(i: &SandboxInput<'_>) -> cri::PodSandboxConfig {
    let pod = i.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let mut lbls: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    lbls.insert(
        labels::POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    lbls.insert(
        labels::POD_NAMESPACE.into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    lbls.insert(labels::POD_UID.into(), pod_uid(pod));
    let host_net = spec.host_network == Some(true);
    let mut ports = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let host_port = p.host_port.unwrap_or(0);
            if host_port <= 0 && !host_net {
                continue;
            }
            if host_net {
                continue;
            }
            ports.push(cri::PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => cri::Protocol::Udp as i32,
                    Some("SCTP") => cri::Protocol::Sctp as i32,
                    _ => cri::Protocol::Tcp as i32,
                },
                container_port: p.container_port,
                host_port,
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let (hostname, _) = hostname_and_domain(pod, i.domain);
    let sc = spec.security_context.clone().unwrap_or_default();
    let sysctls = sc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod_uid(pod),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt: i.attempt,
        }),
        // A host-network sandbox must not set a hostname (runc refuses without a UTS namespace).
        hostname: if host_net { String::new() } else { hostname },
        log_directory: i.log_dir.to_string_lossy().into_owned(),
        dns_config: Some(dns_config(pod, i.cluster_dns, i.domain)),
        port_mappings: ports,
        labels: lbls,
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: i.cgroup_parent.clone(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                // containerd refuses a privileged container in an unprivileged sandbox
                // (upstream's `HasPrivilegedContainer`).
                privileged: has_privileged_container(&spec),
                namespace_options: Some(namespace_options(&spec)),
                run_as_user: sc.run_as_user.map(|v| cri::Int64Value { value: v }),
                run_as_group: sc.run_as_group.map(|v| cri::Int64Value { value: v }),
                supplemental_groups: sc
                    .supplemental_groups
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .chain(sc.fs_group)
                    .collect(),
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

fn has_privileged_container(spec: &PodSpec) -> bool {
    let privileged =
        |sc: Option<&SecurityContext>| sc.and_then(|sc| sc.privileged).unwrap_or(false);
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| privileged(c.security_context.as_ref()))
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| privileged(c.security_context.as_ref()))
}

fn quantity_milli(
    v: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Option<i64> {
    v.and_then(|q| rudder_api::quantity::parse(&q.0).ok())
        .map(|q| q.milli_value())
}

fn quantity_value(
    v: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Option<i64> {
    v.and_then(|q| rudder_api::quantity::parse(&q.0).ok())
        .map(|q| q.value())
}

/// requests/limits as cgroup settings (upstream's `calculateLinuxResources` and
/// `GetContainerOOMScoreAdjust`).
pub fn linux_resources(
    c: &Container,
    qos: &str,
    memory_capacity: i64,
) -> cri::LinuxContainerResources {
    const PERIOD: i64 = 100_000;
    let res = c.resources.clone().unwrap_or_default();
    let req = res.requests.unwrap_or_default();
    let lim = res.limits.unwrap_or_default();
    let cpu_req = quantity_milli(req.get("cpu")).or(quantity_milli(lim.get("cpu")));
    let cpu_lim = quantity_milli(lim.get("cpu"));
    let mem_lim = quantity_value(lim.get("memory"));
    let mem_req = quantity_value(req.get("memory")).or(mem_lim).unwrap_or(0);
    let shares = match cpu_req {
        Some(m) if m > 0 => (m * 1024 / 1000).max(2),
        _ => 2,
    };
    let quota = cpu_lim.map(|m| (m * PERIOD / 1000).max(1000)).unwrap_or(0);
    let oom = match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let adj = if memory_capacity > 0 {
                1000 - (1000 * mem_req) / memory_capacity
            } else {
                999
            };
            adj.clamp(2, 999)
        }
    };
    cri::LinuxContainerResources {
        cpu_period: if quota > 0 { PERIOD } else { 0 },
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: mem_lim.unwrap_or(0),
        oom_score_adj: oom,
        ..Default::default()
    }
}

pub fn security_context(pod: &Pod, c: &Container) -> cri::LinuxContainerSecurityContext {
    let spec = pod.spec.clone().unwrap_or_default();
    let psc = spec.security_context.clone().unwrap_or_default();
    let sc = c.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let seccomp = sc.seccomp_profile.clone().or(psc.seccomp_profile.clone());
    let seccomp = seccomp.map(|p| match p.type_.as_str() {
        "RuntimeDefault" => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        },
        "Localhost" => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Localhost as i32,
            localhost_ref: p.localhost_profile.unwrap_or_default(),
        },
        _ => cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        },
    });
    cri::LinuxContainerSecurityContext {
        capabilities: Some(cri::Capability {
            add_capabilities: caps.add.unwrap_or_default(),
            drop_capabilities: caps.drop.unwrap_or_default(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged,
        namespace_options: Some(namespace_options(&spec)),
        run_as_user: sc
            .run_as_user
            .or(psc.run_as_user)
            .map(|v| cri::Int64Value { value: v }),
        run_as_group: sc
            .run_as_group
            .or(psc.run_as_group)
            .map(|v| cri::Int64Value { value: v }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: psc
            .supplemental_groups
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(psc.fs_group)
            .collect(),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged {
            vec![]
        } else {
            MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged {
            vec![]
        } else {
            READONLY_PATHS.iter().map(|s| s.to_string()).collect()
        },
        seccomp,
        ..Default::default()
    }
}

/// Registry credentials from the pod's `imagePullSecrets` for an image (docker config JSON,
/// matched by registry host as the kubelet's credential keyring does).
pub async fn pull_auth(client: &kube::Client, pod: &Pod, image: &str) -> Option<cri::AuthConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let secrets = pod.spec.as_ref()?.image_pull_secrets.clone()?;
    let registry = image_registry(image);
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    for r in secrets {
        let Ok(Some(s)) = api.get_opt(&r.name).await else {
            continue;
        };
        if let Some(auth) = docker_config_auth(&s.data.unwrap_or_default(), &registry) {
            return Some(auth);
        }
    }
    None
}

/// What a `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`) secret holds for
/// `registry`, matched on the registry host as upstream's keyring does. The server address
/// stays empty, as upstream's kubelet sends it: containerd parses a non-empty one as a URL
/// and drops (or fails on) credentials whose host it cannot match.
pub fn docker_config_auth(
    data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
    registry: &str,
) -> Option<cri::AuthConfig> {
    let cfg: serde_json::Value = if let Some(d) = data.get(".dockerconfigjson") {
        serde_json::from_slice::<serde_json::Value>(&d.0)
            .ok()?
            .get("auths")
            .cloned()?
    } else {
        serde_json::from_slice(&data.get(".dockercfg")?.0).ok()?
    };
    for (server, auth) in cfg.as_object()? {
        let host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let matches = host == registry || (registry == "docker.io" && host.contains("docker.io"));
        if !matches {
            continue;
        }
        let field = |k: &str| {
            auth.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        return Some(cri::AuthConfig {
            username: field("username"),
            password: field("password"),
            auth: field("auth"),
            ..Default::default()
        });
    }
    None
}

/// The registry host of an image reference (docker's normalisation: no dot, colon or
/// `localhost` in the first component means Docker Hub).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cluster_first_dns() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [],
            "dnsConfig": {"options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}}),
        );
        let d = dns_config(&p, &["10.43.0.10".parse().unwrap()], "cluster.local");
        assert_eq!(d.servers, ["10.43.0.10"]);
        assert_eq!(
            &d.searches[..3],
            ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local"]
        );
        assert_eq!(d.options, ["ndots:2", "edns0"]);
        let none = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["1.2.3.4"], "searches": ["a.b"]}}}),
        );
        let d = dns_config(&none, &["10.43.0.10".parse().unwrap()], "cluster.local");
        assert_eq!(d.servers, ["1.2.3.4"]);
        assert_eq!(d.searches, ["a.b"]);
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let p = pod(
            json!({"metadata": {"name": "web-0", "namespace": "ns"}, "spec": {"containers": [],
            "subdomain": "web", "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["foo", "bar"]}]}}),
        );
        let h = hosts_file(&p, Some("10.42.0.5"), "cluster.local");
        assert!(
            h.contains("10.42.0.5\tweb-0.web.ns.svc.cluster.local\tweb-0\n"),
            "{h}"
        );
        assert!(
            h.contains("# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"),
            "{h}"
        );
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
    }

    #[test]
    fn resources_to_cgroups() {
        let c: Container = serde_json::from_value(json!({"name": "a", "resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}})).unwrap();
        let r = linux_resources(&c, "Burstable", 1 << 30);
        assert_eq!(r.cpu_shares, 256);
        assert_eq!(r.cpu_quota, 50_000);
        assert_eq!(r.cpu_period, 100_000);
        assert_eq!(r.memory_limit_in_bytes, 128 << 20);
        assert_eq!(r.oom_score_adj, 1000 - (1000 * (64 << 20)) / (1 << 30));
        let be: Container = serde_json::from_value(json!({"name": "a"})).unwrap();
        let r = linux_resources(&be, "BestEffort", 1 << 30);
        assert_eq!((r.cpu_shares, r.cpu_quota, r.oom_score_adj), (2, 0, 1000));
    }

    #[test]
    fn a_privileged_container_makes_a_privileged_sandbox() {
        let p = |containers: serde_json::Value, init: serde_json::Value| {
            pod(serde_json::json!({"spec": {"containers": containers, "initContainers": init}}))
                .spec
                .unwrap()
        };
        let plain = serde_json::json!([{"name": "a"}]);
        let privileged =
            serde_json::json!([{"name": "b", "securityContext": {"privileged": true}}]);
        assert!(!has_privileged_container(&p(
            plain.clone(),
            serde_json::json!([])
        )));
        assert!(has_privileged_container(&p(
            privileged.clone(),
            serde_json::json!([])
        )));
        assert!(has_privileged_container(&p(plain, privileged)));
    }

    #[test]
    fn registries_of_images() {
        assert_eq!(image_registry("busybox"), "docker.io");
        assert_eq!(image_registry("library/busybox:1"), "docker.io");
        assert_eq!(
            image_registry("127.0.0.1:5000/t/busybox:1"),
            "127.0.0.1:5000"
        );
        assert_eq!(image_registry("localhost/x"), "localhost");
        assert_eq!(
            image_registry("registry.k8s.io/pause:3.10"),
            "registry.k8s.io"
        );
    }

    #[test]
    fn docker_config_secrets_give_credentials_for_their_registry() {
        let secret = |key: &str, json: &str| {
            std::collections::BTreeMap::from([(
                key.to_string(),
                k8s_openapi::ByteString(json.as_bytes().to_vec()),
            )])
        };
        // What `kubectl create secret docker-registry` writes.
        let data = secret(
            ".dockerconfigjson",
            r#"{"auths":{"127.0.0.1:5001":{"username":"user","password":"secret","auth":"dXNlcjpzZWNyZXQ="}}}"#,
        );
        let a = docker_config_auth(&data, "127.0.0.1:5001").unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("user", "secret")
        );
        assert_eq!(a.auth, "dXNlcjpzZWNyZXQ=");
        assert_eq!(a.server_address, "", "as upstream's kubelet sends it");
        assert!(docker_config_auth(&data, "127.0.0.1:5000").is_none());
        let legacy = secret(
            ".dockercfg",
            r#"{"https://index.docker.io/v1/":{"auth":"dTpw"}}"#,
        );
        assert_eq!(
            docker_config_auth(&legacy, "docker.io").unwrap().auth,
            "dTpw"
        );
        assert!(docker_config_auth(&secret(".dockerconfigjson", "not json"), "x").is_none());
    }
}
