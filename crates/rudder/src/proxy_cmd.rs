//! The service proxy's composition: `rudder proxy --kubeconfig FILE --node-name N` runs it on
//! its own (kube-proxy's flags), and every agent runs one for its node unless
//! `--disable-kube-proxy` (k3s's flag).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

/// kube-proxy's flags, as `rudder proxy` takes them.
#[derive(clap::Args, Clone, Debug)]
pub struct ProxyArgs {
    /// kubeconfig of the cluster to proxy for.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// The node this proxy runs on (its endpoints are the local ones; kube-proxy's
    /// `--hostname-override`).
    #[arg(long, alias = "hostname-override")]
    pub node_name: Option<String>,
    /// The pods' address range: traffic from elsewhere to a ClusterIP is masqueraded.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The services' address range: unallocated addresses in it are dropped.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Addresses NodePorts answer on (comma-separated; default: every local address,
    /// 127.0.0.1 included).
    #[arg(long, value_delimiter = ',')]
    pub nodeport_addresses: Vec<std::net::Ipv4Addr>,
    /// Least time between two syncs of the rules.
    #[arg(long, default_value = "1s", value_parser = go_duration)]
    pub min_sync_period: std::time::Duration,
    /// Most time between two syncs of the rules.
    #[arg(long, default_value = "30s", value_parser = go_duration)]
    pub sync_period: std::time::Duration,
    /// Address of the plain-HTTP /healthz and /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_bind_address: IpAddr,
    /// Port of the /healthz and /metrics endpoint (upstream's 10249); 0 disables it.
    #[arg(long, default_value_t = 10249)]
    pub metrics_port: u16,
}

fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    rudder_component::parse_go_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

/// The proxy's configuration for `node` with the cluster's pod and service ranges.
pub fn config(node: &str, cluster_cidr: &str, service_cidr: &str) -> rudder_proxy::ProxyConfig {
    let mut cfg = rudder_proxy::ProxyConfig::new(node);
    cfg.rules.cluster_cidr = Some(cluster_cidr.to_string());
    cfg.rules.service_cidrs = vec![service_cidr.to_string()];
    cfg
}

/// Renders the proxy's metrics in the text format (appended to the server's `/metrics` when
/// in-process, served on the metrics port standalone).
pub fn metrics_render(
    metrics: Arc<rudder_proxy::ProxyMetrics>,
) -> Arc<dyn Fn(&mut String) + Send + Sync> {
    Arc::new(move |out: &mut String| {
        let mut r = prometheus_client::registry::Registry::default();
        metrics.register(&mut r);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &r).is_ok() {
            out.push_str(text.trim_end_matches("# EOF\n"));
        }
    })
}

/// Starts the proxy in the background; it stops when the process does.
pub fn spawn(
    client: kube::Client,
    cfg: rudder_proxy::ProxyConfig,
    metrics: Arc<rudder_proxy::ProxyMetrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(node = %cfg.node_name, "service proxy starting");
        if let Err(e) = rudder_proxy::run(client, cfg, metrics).await {
            tracing::error!(error = %e, "service proxy stopped");
        }
    })
}

pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    let node = args
        .node_name
        .clone()
        .unwrap_or_else(crate::components::hostname)
        .to_lowercase();
    let mut cfg = config(&node, &args.cluster_cidr, &args.service_cidr);
    cfg.rules.nodeport_ips = args.nodeport_addresses.clone();
    cfg.min_sync_period = args.min_sync_period;
    cfg.sync_period = args.sync_period;
    let metrics = Arc::new(rudder_proxy::ProxyMetrics::default());
    if args.metrics_port != 0 {
        let addr = SocketAddr::new(args.metrics_bind_address, args.metrics_port);
        std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        let render = metrics_render(metrics.clone());
        tokio::spawn(async move {
            if let Err(e) =
                rudder_component::serve_health(addr, render, crate::server::shutdown_signal()).await
            {
                tracing::error!(error = %e, "metrics endpoint failed");
            }
        });
    }
    tokio::select! {
        r = rudder_proxy::run(client, cfg, metrics) => r.map_err(anyhow::Error::from),
        _ = crate::server::shutdown_signal() => Ok(()),
    }
}
