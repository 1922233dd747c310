//! `rudder scheduler`: the scheduler as its own process against any cluster (Rudder or upstream).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

#[derive(clap::Args, Clone, Debug)]
pub struct SchedulerArgs {
    /// kubeconfig of the cluster to schedule for.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Contend for the kube-system/kube-scheduler Lease before scheduling (overrides the
    /// config file's leaderElection.leaderElect).
    #[arg(long)]
    pub leader_elect: Option<bool>,
    /// Address of the plain-HTTP /healthz and /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port of the /healthz and /metrics endpoint (upstream's 10259); 0 disables it.
    #[arg(long, default_value_t = 10259)]
    pub health_port: u16,
}

pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => rudder_scheduler::SchedulerConfig::from_file(path)?,
        None => rudder_scheduler::SchedulerConfig::default(),
    };
    if let Some(le) = args.leader_elect {
        config.leader_election.leader_elect = le;
    }
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    // Plugin args are checked when profiles are built: do it now, so a bad file fails at start.
    config.build_profiles(&rudder_scheduler::plugins::Handle::new(client.clone()))?;
    let metrics = Arc::new(rudder_scheduler::SchedulerMetrics::default());
    let leader = rudder_component::LeaderMetrics::default();
    if args.health_port != 0 {
        let addr = SocketAddr::new(args.bind_address, args.health_port);
        let render = crate::components::scheduler_metrics_render(metrics.clone(), leader.clone());
        let listener_check =
            std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        drop(listener_check);
        tokio::spawn(async move {
            if let Err(e) =
                rudder_component::serve_health(addr, render, crate::server::shutdown_signal()).await
            {
                tracing::error!(error = %e, "health endpoint failed");
            }
        });
    }
    tracing::info!(kubeconfig = %args.kubeconfig.display(), "rudder scheduler starting");
    crate::components::run_scheduler(
        client,
        config,
        metrics,
        leader,
        crate::server::shutdown_signal(),
    )
    .await;
    Ok(())
}
