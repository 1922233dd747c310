//! `rudder sim`: N simulated nodes (hollow kubelets) in one process against any cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args, Clone, Debug)]
pub struct SimArgs {
    /// kubeconfig of the cluster the nodes join.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// How many nodes to run.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Node names are this prefix and a number from 0.
    #[arg(long, default_value = "sim-node-")]
    pub node_name_prefix: String,
    /// status.capacity cpu of each node.
    #[arg(long, default_value = "4")]
    pub cpu: String,
    /// status.capacity memory of each node.
    #[arg(long, default_value = "32Gi")]
    pub memory: String,
    /// status.capacity pods of each node.
    #[arg(long, default_value = "110")]
    pub pods: String,
    /// status.capacity ephemeral-storage of each node.
    #[arg(long, default_value = "100Gi")]
    pub ephemeral_storage: String,
    /// status.allocatable cpu (default: the capacity).
    #[arg(long)]
    pub allocatable_cpu: Option<String>,
    /// status.allocatable memory (default: the capacity).
    #[arg(long)]
    pub allocatable_memory: Option<String>,
    /// status.allocatable pods (default: the capacity).
    #[arg(long)]
    pub allocatable_pods: Option<String>,
    /// Extra node label `key=value` (repeatable), as the kubelet's --node-labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// topology.kubernetes.io/zone values, given to the nodes round-robin.
    #[arg(long, value_delimiter = ',')]
    pub zones: Vec<String>,
    /// Taint `key[=value]:Effect` the nodes register with (repeatable), as the kubelet's
    /// --register-with-taints.
    #[arg(long = "taint", value_name = "KEY[=VALUE]:EFFECT")]
    pub taints: Vec<rudder_sim::Taint>,
    /// Pod IPs come from node i's /24 of this range when the node has no spec.podCIDR.
    #[arg(long, default_value = "10.128.0.0/9")]
    pub pod_cidr: rudder_sim::Cidr,
    /// Node i's InternalIP is the (i+1)-th address of this range.
    #[arg(long, default_value = "10.127.0.0/16")]
    pub node_ip_cidr: rudder_sim::Cidr,
    /// Status report interval when nothing changed (the kubelet's nodeStatusReportFrequency).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub node_status_report_frequency: Duration,
    /// Leave pods alone (nodes only).
    #[arg(long)]
    pub no_pods: bool,
    /// API requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    rudder_sim::parse_duration(s).ok_or_else(|| format!("invalid duration {s:?} (e.g. 10s, 5m)"))
}

impl SimArgs {
    pub fn options(&self) -> anyhow::Result<rudder_sim::SimOptions> {
        let mut labels = BTreeMap::new();
        for l in &self.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--label {l}: want KEY=VALUE"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(rudder_sim::SimOptions {
            nodes: self.nodes,
            name_prefix: self.node_name_prefix.clone(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            pods: self.pods.clone(),
            ephemeral_storage: self.ephemeral_storage.clone(),
            allocatable_cpu: self.allocatable_cpu.clone(),
            allocatable_memory: self.allocatable_memory.clone(),
            allocatable_pods: self.allocatable_pods.clone(),
            labels,
            zones: self.zones.clone(),
            taints: self.taints.clone(),
            pod_cidr: self.pod_cidr,
            node_ip_cidr: self.node_ip_cidr,
            status_report_interval: self.node_status_report_frequency,
            manage_pods: !self.no_pods,
            concurrency: self.concurrency,
            ..Default::default()
        })
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    let started = std::time::Instant::now();
    let sim = rudder_sim::Sim::start(client, opts)
        .await
        .context("starting the simulated nodes")?;
    eprintln!(
        "{} simulated nodes registered in {:.1} s ({}0 … {}{}); Ctrl-C stops them",
        sim.node_names().len(),
        started.elapsed().as_secs_f64(),
        args.node_name_prefix,
        args.node_name_prefix,
        args.nodes.saturating_sub(1)
    );
    crate::server::shutdown_signal().await;
    sim.stop().await;
    Ok(())
}
