//! `rudder controller-manager`: the controllers as their own process against any cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Clone, Debug)]
pub struct ControllerManagerArgs {
    /// kubeconfig of the cluster to manage.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Controllers to run: `*` for every controller on by default, `name` to enable one,
    /// `-name` to disable one (upstream's `--controllers`).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Most endpoints in one EndpointSlice the endpointslice controller writes (upstream's
    /// `--max-endpoints-per-slice`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_endpoints_per_slice: u16,
    /// Contend for the kube-system/kube-controller-manager Lease before running.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Address of the plain-HTTP /healthz and /metrics endpoint.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,
    /// Port of the /healthz and /metrics endpoint (upstream's 10257); 0 disables it.
    #[arg(long, default_value_t = 10257)]
    pub health_port: u16,
}

pub async fn run(args: ControllerManagerArgs) -> anyhow::Result<()> {
    rudder_controllers::manager::validate(&args.controllers)
        .map_err(|e| anyhow::anyhow!("--controllers: {e}"))?;
    rudder_controllers::endpointslice::set_max_endpoints_per_slice(
        args.max_endpoints_per_slice.into(),
    );
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    let metrics = Arc::new(rudder_controllers::QueueMetrics::default());
    let leader = rudder_component::LeaderMetrics::default();
    if args.health_port != 0 {
        let addr = SocketAddr::new(args.bind_address, args.health_port);
        let render = crate::components::controllers_metrics_render(metrics.clone(), leader.clone());
        tokio::spawn(async move {
            if let Err(e) =
                rudder_component::serve_health(addr, render, crate::server::shutdown_signal()).await
            {
                tracing::error!(error = %e, "health endpoint failed");
            }
        });
    }
    crate::components::run_controllers(
        client,
        args.controllers,
        args.leader_elect,
        metrics,
        leader,
        crate::server::shutdown_signal(),
    )
    .await;
    Ok(())
}
