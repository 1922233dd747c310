//! The node agent's composition: `rudder agent --server URL --token TOKEN` joins a cluster, and
//! `rudder server` runs one for its own node (k3s-style; `--disable-agent` for a
//! control-plane-only server). Flags are k3s's where k3s has them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// The agent's own flags, also accepted by `rudder server` for its node.
#[derive(clap::Args, Clone, Debug)]
pub struct AgentFlags {
    /// Node name (default: the host name).
    #[arg(long, env = "RUDDER_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the address of the default route's interface, else the
    /// first non-loopback address).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Labels to register the node with (`key=value`, repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// Taints to register the node with (`key=value:Effect`, repeatable).
    #[arg(long = "node-taint")]
    pub node_taints: Vec<String>,
    /// Static pod manifests (default: <data-dir>/agent/pod-manifests).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,
    /// Use this CRI socket instead of starting containerd (`unix:///run/containerd/containerd.sock`).
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// Where the CNI plugins are (Debian's containernetworking-plugins).
    #[arg(long, default_value = "/usr/lib/cni")]
    pub cni_bin_dir: PathBuf,
    /// Resources kept for the system (`cpu=500m,memory=1Gi`).
    #[arg(long, value_delimiter = ',')]
    pub system_reserved: Vec<String>,
    /// Resources kept for Kubernetes daemons (`cpu=500m,memory=1Gi`).
    #[arg(long, value_delimiter = ',')]
    pub kube_reserved: Vec<String>,
    /// The cluster DNS service address pods resolve names with.
    #[arg(long, default_value = "10.43.0.10")]
    pub cluster_dns: IpAddr,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The kubelet's HTTPS port (logs, exec, port-forward).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Registry mirrors and credentials, k3s's registries.yaml format (default:
    /// <data-dir>/agent/registries.yaml when it exists).
    #[arg(long)]
    pub registries: Option<PathBuf>,
    /// The cgroup (cgroupfs path) pods' cgroups go under.
    #[arg(long, default_value = "/kubepods")]
    pub cgroup_root: String,
    /// Hard eviction thresholds (`memory.available<100Mi,nodefs.available<10%,…`).
    #[arg(long, default_value = rudder_kubelet::eviction::DEFAULT_HARD)]
    pub eviction_hard: String,
    /// How long a pressure condition stays after its threshold is no longer crossed.
    #[arg(long, default_value = "5m", value_parser = go_duration)]
    pub eviction_pressure_transition_period: std::time::Duration,
    /// Do not enforce NetworkPolicies on this node (k3s's flag); a table left by an earlier
    /// run is removed.
    #[arg(long)]
    pub disable_network_policy: bool,
    /// Run no service proxy on this node (k3s's flag).
    #[arg(long)]
    pub disable_kube_proxy: bool,
    /// The pod network's backend between nodes: `vxlan`, `host-gw`, or `none` (bring your own
    /// CNI plugin: no CNI config is written).
    #[arg(long, default_value = "vxlan")]
    pub flannel_backend: rudder_flannel::Backend,
    /// The interface node-to-node pod traffic uses (default: the node IP's).
    #[arg(long)]
    pub flannel_iface: Option<String>,
}

impl AgentFlags {
    /// The pod network's settings, for a cluster whose pods are in `cluster_cidr`.
    pub fn flannel_config(
        &self,
        kubelet: &rudder_kubelet::KubeletConfig,
        cluster_cidr: &str,
    ) -> anyhow::Result<rudder_flannel::Config> {
        let public_ip = match kubelet.node_ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => anyhow::bail!("the pod network needs an IPv4 node IP, not {ip}"),
        };
        Ok(rudder_flannel::Config {
            node_name: kubelet.node_name.clone(),
            backend: self.flannel_backend,
            iface: self.flannel_iface.clone(),
            public_ip,
            cluster_cidr: cluster_cidr
                .parse()
                .map_err(|e| anyhow::anyhow!("--cluster-cidr {cluster_cidr}: {e}"))?,
        })
    }
}

pub fn kubelet_config(
    flags: &AgentFlags,
    data_dir: &Path,
) -> anyhow::Result<rudder_kubelet::KubeletConfig> {
    let name = flags
        .node_name
        .clone()
        .unwrap_or_else(crate::components::hostname)
        .to_lowercase();
    let ip = flags
        .node_ip
        .unwrap_or_else(rudder_kubelet::config::default_node_ip);
    let agent_dir = data_dir.join("agent");
    let mut cfg = rudder_kubelet::KubeletConfig::new(name, ip, agent_dir.clone());
    cfg.node_labels = rudder_kubelet::config::parse_map(&flags.node_labels)
        .map_err(|e| anyhow::anyhow!("--node-label: {e}"))?;
    cfg.node_taints = flags
        .node_taints
        .iter()
        .map(|t| rudder_kubelet::config::parse_taint(t))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--node-taint: {e}"))?;
    if let Some(p) = &flags.pod_manifest_path {
        cfg.pod_manifest_path = p.clone();
    }
    cfg.runtime_endpoint = flags.container_runtime_endpoint.clone();
    cfg.cni_bin_dir = flags.cni_bin_dir.clone();
    cfg.system_reserved = rudder_kubelet::config::parse_map(&flags.system_reserved)
        .map_err(|e| anyhow::anyhow!("--system-reserved: {e}"))?;
    cfg.kube_reserved = rudder_kubelet::config::parse_map(&flags.kube_reserved)
        .map_err(|e| anyhow::anyhow!("--kube-reserved: {e}"))?;
    cfg.cluster_dns = vec![flags.cluster_dns];
    cfg.cluster_domain = flags.cluster_domain.clone();
    cfg.port = flags.kubelet_port;
    cfg.registries = flags.registries.clone().or_else(|| {
        let p = agent_dir.join("registries.yaml");
        p.exists().then_some(p)
    });
    cfg.cgroup_root = format!("/{}", flags.cgroup_root.trim_matches('/'));
    cfg.eviction_hard = rudder_kubelet::eviction::parse_thresholds(&flags.eviction_hard)
        .map_err(|e| anyhow::anyhow!("--eviction-hard: {e}"))?;
    cfg.eviction_pressure_transition_period = flags.eviction_pressure_transition_period;
    cfg.kubelet_version = format!(
        "v{}.{}.0+rudder.{}",
        rudder_apiserver::KUBE_MAJOR,
        rudder_apiserver::KUBE_MINOR,
        env!("CARGO_PKG_VERSION")
    );
    Ok(cfg)
}

/// A started node agent; dropping it leaves the containers running (as k3s does), stopping
/// containerd only when the agent started it.
pub struct RunningAgent {
    pub containerd: Option<rudder_kubelet::containerd::Containerd>,
}

/// Starts the runtime (our own containerd unless an endpoint is given), the pod network and the
/// kubelet.
pub async fn start_agent(
    client: kube::Client,
    cfg: rudder_kubelet::KubeletConfig,
    flags: &AgentFlags,
    flannel: rudder_flannel::Config,
) -> anyhow::Result<RunningAgent> {
    let (socket, containerd) = match &cfg.runtime_endpoint {
        Some(ep) => (rudder_kubelet::cri::socket_path(ep)?, None),
        None => {
            let c = rudder_kubelet::containerd::Containerd::start(
                &rudder_kubelet::containerd::ContainerdConfig {
                    agent_dir: cfg.agent_dir.clone(),
                    sandbox_image: rudder_kubelet::images::PAUSE_IMAGE.to_string(),
                    cni_bin_dir: cfg.cni_bin_dir.clone(),
                    registries: cfg.registries.clone(),
                },
            )
            .await
            .context("starting containerd")?;
            (c.socket().to_path_buf(), Some(c))
        }
    };
    rudder_kubelet::images::ensure_pause_image(&socket)
        .await
        .context("importing the pause image")?;
    rudder_kubelet::images::spawn_import_dir(socket.clone(), cfg.agent_dir.join("images"));
    let cri = rudder_kubelet::cri::Cri::connect(&socket)?;
    let conf_dir = cfg.agent_dir.join("etc").join("cni").join("net.d");
    let ipam_dir = cfg.agent_dir.join("cni").join("ipam");
    // The pod network's devices first: the CNI config carries its MTU.
    let network = rudder_flannel::start(client.clone(), flannel)
        .await
        .context("starting the pod network (flannel)")?;
    let hook: rudder_kubelet::PodCidrHook = Box::new(move |cidr: &str| {
        if !network.writes_cni {
            return Ok(());
        }
        rudder_kubelet::cni::write_conflist_mtu(&conf_dir, &ipam_dir, cidr, network.mtu)
    });
    // NetworkPolicy enforcement for this node's pods, with the node's credentials (as k3s
    // runs kube-router's policy controller).
    if flags.disable_network_policy {
        if let Err(e) = rudder_netpol::nft::remove().await {
            tracing::debug!(error = %e, "no network policy table to remove");
        }
    } else {
        rudder_netpol::start(
            client.clone(),
            rudder_netpol::Config::new(cfg.node_name.clone()),
        );
    }
    let kubelet = rudder_kubelet::start(client, cfg, cri, hook)
        .await
        .context("starting the kubelet")?;
    tracing::info!(node = %kubelet.node.cfg.node_name, "node agent is running");
    Ok(RunningAgent { containerd })
}

/// `rudder agent`: a node that joins a cluster.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The server to join (`https://<server>:6443`).
    #[arg(long, env = "RUDDER_URL")]
    pub server: Option<String>,
    /// The join token the server printed (`<data-dir>/token` on the server).
    #[arg(long, env = "RUDDER_TOKEN")]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long, env = "RUDDER_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Use this kubeconfig's credentials instead of joining with a token (the identity must be
    /// `system:node:<node-name>`).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(
        long,
        short = 'd',
        env = "RUDDER_DATA_DIR",
        default_value = "/var/lib/rudder"
    )]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub flags: AgentFlags,
    /// The cluster's pod range (the server's `--cluster-cidr`): the service proxy tells pod
    /// traffic by it, and the pod network masquerades what leaves it.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The cluster's service range (the server's `--service-cidr`).
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cfg = kubelet_config(&args.flags, &args.data_dir)?;
    std::fs::create_dir_all(&cfg.agent_dir)
        .with_context(|| format!("creating {}", cfg.agent_dir.display()))?;
    let kubeconfig = match (&args.kubeconfig, &args.server) {
        (Some(k), _) => k.clone(),
        (None, Some(server)) => {
            let token = match (&args.token, &args.token_file) {
                (Some(t), _) => t.trim().to_string(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading --token-file {}", f.display()))?
                    .trim()
                    .to_string(),
                (None, None) => anyhow::bail!("--server needs --token or --token-file"),
            };
            rudder_kubelet::bootstrap::bootstrap(server, &token, &cfg.node_name, &cfg.agent_dir)
                .await
                .with_context(|| format!("joining {server}"))?
        }
        (None, None) => anyhow::bail!("rudder agent needs --server and --token (or --kubeconfig)"),
    };
    let client = crate::components::kubeconfig_client(&kubeconfig).await?;
    let mut cfg = cfg;
    cfg.client_ca_pem = client_ca(&cfg.agent_dir, &kubeconfig);
    if !args.flags.disable_kube_proxy {
        // A remote agent has only its node's credentials: the proxy uses them.
        crate::proxy_cmd::spawn(
            client.clone(),
            crate::proxy_cmd::config(&cfg.node_name, &args.cluster_cidr, &args.service_cidr),
            Default::default(),
        );
    }
    let flannel = args.flags.flannel_config(&cfg, &args.cluster_cidr)?;
    let agent = start_agent(client, cfg, &args.flags, flannel).await?;
    eprintln!("Rudder agent is running.");
    crate::server::shutdown_signal().await;
    if let Some(c) = agent.containerd {
        c.stop().await;
    }
    Ok(())
}

fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    rudder_component::duration::parse_go_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?} (e.g. 5m, 30s)"))
}

/// The cluster CA the kubelet's server trusts for client certificates: the one the TLS
/// bootstrap verified, else the kubeconfig's.
fn client_ca(agent_dir: &Path, kubeconfig: &Path) -> Option<String> {
    if let Ok(pem) =
        std::fs::read_to_string(agent_dir.join(rudder_kubelet::bootstrap::SERVER_CA_FILE))
    {
        return Some(pem);
    }
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let cluster = kc.clusters.first()?.cluster.as_ref()?;
    if let Some(data) = &cluster.certificate_authority_data {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .ok()?;
        return String::from_utf8(bytes).ok();
    }
    cluster
        .certificate_authority
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
}
