//! Rudder's cluster DNS: upstream's DNS-based service discovery specification
//! (kubernetes/dns `docs/specification.md`) answered as CoreDNS's kubernetes plugin answers it
//! in k3s, from an in-memory index of Services, EndpointSlices and Namespaces kept by watches;
//! other names are forwarded to the node's resolvers. An API client only (`kube::Client`).
//!
//! `rudder server` runs it in-process on the node's address (port 53, UDP and TCP; metrics on
//! 9153) behind the `kube-system/kube-dns` Service at `--cluster-dns`.

pub mod forward;
pub mod index;
pub mod metrics;
pub mod objects;
pub mod resolve;
pub mod server;
pub mod watch;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use forward::Forwarder;
pub use index::Index;
pub use metrics::DnsMetrics;
pub use objects::KubeDnsService;
pub use resolve::Resolver;
pub use server::{Bound, DnsHandler};

/// CoreDNS's Prometheus port.
pub const METRICS_PORT: u16 = 9153;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("DNS server stopped: {0}")]
    Serve(String),
}

#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// `--cluster-domain` (`cluster.local`).
    pub cluster_domain: String,
    /// Where to answer (`<node-ip>:53`).
    pub listen: Vec<SocketAddr>,
    /// Where to serve `/metrics` (`<node-ip>:9153`), if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Resolvers for names outside the cluster.
    pub upstreams: Vec<SocketAddr>,
    /// The `kube-dns` Service and EndpointSlice to keep, if any.
    pub service: Option<KubeDnsService>,
    /// Networks whose clients may have outside names resolved besides loopback, this server's
    /// addresses and the nodes' (`--cluster-cidr`); `None`: anyone.
    pub recursion_clients: Option<Vec<(IpAddr, u8)>>,
}

/// Binds the sockets, then serves (watches, the kube-dns objects, metrics) until `shutdown`
/// resolves; a port already taken is an error before anything runs.
pub async fn start(
    client: kube::Client,
    cfg: DnsConfig,
    metrics: Arc<DnsMetrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, DnsError> {
    let mut bound = Vec::new();
    for addr in &cfg.listen {
        bound.push(
            Bound::bind(std::slice::from_ref(addr))
                .await
                .map_err(|source| DnsError::Listen {
                    addr: *addr,
                    source,
                })?,
        );
    }
    let local_ips: Vec<IpAddr> = cfg.listen.iter().map(|a| a.ip()).collect();
    // A node whose resolv.conf names this server (its address or kube-dns's) would send every
    // outside name round in a loop (what CoreDNS's `loop` plugin stops on).
    let cluster_ip = cfg.service.as_ref().map(|s| s.cluster_ip);
    let upstreams: Vec<SocketAddr> = cfg
        .upstreams
        .iter()
        .filter(|u| !cfg.listen.contains(u) && Some(u.ip()) != cluster_ip)
        .copied()
        .collect();
    let index = Arc::new(Index::new());
    let mut resolver = Resolver::new(
        &cfg.cluster_domain,
        index.clone(),
        Forwarder::new(upstreams.clone()),
        local_ips,
    );
    if let Some(nets) = cfg.recursion_clients.clone() {
        resolver = resolver.restrict_recursion(nets);
    }
    let resolver = Arc::new(resolver);
    let handler = DnsHandler {
        resolver,
        metrics: metrics.clone(),
    };
    tracing::info!(listen = ?cfg.listen, ?upstreams, "cluster DNS is serving");
    Ok(tokio::spawn(async move {
        let watches = watch::run(client.clone(), index);
        let objects = async {
            match cfg.service.clone() {
                Some(s) => objects::keep(client.clone(), s).await,
                None => std::future::pending().await,
            }
        };
        let metrics_server = async {
            match cfg.metrics {
                Some(addr) => {
                    let m = metrics.clone();
                    let render: rudder_component::health::MetricsRender =
                        Arc::new(move |out: &mut String| m.render(out));
                    if let Err(e) =
                        rudder_component::health::serve_health(addr, render, std::future::pending())
                            .await
                    {
                        tracing::warn!(%addr, error = %e, "cluster DNS metrics are not served");
                    }
                    std::future::pending::<()>().await
                }
                None => std::future::pending().await,
            }
        };
        let serving = async {
            let runs = bound
                .into_iter()
                .map(|b| b.serve(handler.clone(), std::future::pending::<()>()));
            for r in futures::future::join_all(runs).await {
                if let Err(e) = r {
                    tracing::error!(error = %e, "cluster DNS stopped");
                }
            }
        };
        tokio::select! {
            _ = watches => {}
            _ = objects => {}
            _ = metrics_server => {}
            _ = serving => {}
            _ = shutdown => {}
        }
    }))
}

#[cfg(test)]
mod tests;
