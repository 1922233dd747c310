//! `rudder dns`: the cluster DNS on its own against a cluster (Rudder's or upstream's), as
//! CoreDNS runs outside k3s. It answers only; the `kube-dns` Service is the cluster's business.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct DnsArgs {
    /// Credentials and server to watch Services, EndpointSlices and Namespaces with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Where to answer, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// Where to serve /metrics (CoreDNS's port).
    #[arg(long, default_value = "0.0.0.0:9153")]
    pub metrics_address: SocketAddr,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    #[command(flatten)]
    pub flags: crate::components::DnsFlags,
}

pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let client = crate::components::kubeconfig_client(&args.kubeconfig).await?;
    let cfg = rudder_dns::DnsConfig {
        cluster_domain: args.cluster_domain.clone(),
        listen: vec![args.listen],
        metrics: Some(args.metrics_address),
        upstreams: args.flags.upstreams(),
        service: None,
        recursion_clients: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rudder_dns::start(
        client,
        cfg,
        Arc::new(rudder_dns::DnsMetrics::default()),
        async move {
            let _ = rx.await;
        },
    )
    .await?;
    eprintln!("Rudder DNS is answering on {} (UDP and TCP).", args.listen);
    crate::server::shutdown_signal().await;
    let _ = tx.send(());
    let _ = handle.await;
    Ok(())
}
