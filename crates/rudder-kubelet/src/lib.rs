//! The node agent (kubelet): registers its Node, renews its Lease, and runs the pods bound to
//! it through CRI (containerd), reporting their status as upstream's kubelet does. An API client
//! only: it reaches the cluster through a `kube::Client` under the identity `system:node:<name>`.

pub mod bootstrap;
pub mod cni;
pub mod config;
pub mod containerd;
pub mod cri;
pub mod eviction;
pub mod gc;
pub mod images;
pub mod node;
pub mod pods;
pub mod probe;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};

pub use config::KubeletConfig;

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("{0}")]
    Cri(#[from] cri::CriError),
    #[error("{0}")]
    Node(#[from] node::NodeError),
    #[error("preparing {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// Called with the node's podCIDR once the node IPAM controller has assigned it (the
/// composition root writes the CNI configuration from it).
pub type PodCidrHook = Box<dyn Fn(&str) -> std::io::Result<()> + Send + Sync>;

/// A running kubelet's shared state, for the HTTPS server and tests.
pub struct Kubelet {
    pub pods: Arc<pods::PodManager>,
    pub node: Arc<node::NodeAgent>,
}

/// Runs the kubelet until the returned tasks are dropped (they run on the current runtime).
pub async fn start(
    client: kube::Client,
    cfg: KubeletConfig,
    cri: cri::Cri,
    on_pod_cidr: PodCidrHook,
) -> Result<Kubelet, KubeletError> {
    let cfg = Arc::new(cfg);
    for dir in [cfg.agent_dir.clone(), cfg.pods_dir(), cfg.logs_dir()] {
        std::fs::create_dir_all(&dir).map_err(|source| KubeletError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let version = cri.wait_ready(Duration::from_secs(60)).await?;
    let runtime_version = format!("{}://{}", version.runtime_name, version.runtime_version);
    let agent_dir = cfg.agent_dir.clone();
    let host = tokio::task::spawn_blocking(move || config::HostInfo::read(&agent_dir))
        .await
        .unwrap_or_default();
    let node = Arc::new(node::NodeAgent {
        client: client.clone(),
        cfg: cfg.clone(),
        cri: cri.clone(),
        host: host.clone(),
        runtime_version,
        pressure: Arc::new(eviction::Pressure::default()),
    });
    let registered = node.register().await?;
    let node_uid = registered.metadata.uid.clone().unwrap_or_default();
    let ready_changed = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(node.clone().lease_loop(node_uid));
    tokio::spawn(node.clone().status_loop(ready_changed.clone()));

    // The podCIDR arrives from the node IPAM controller after registration.
    {
        let client = client.clone();
        let name = cfg.node_name.clone();
        let ready_changed = ready_changed.clone();
        tokio::spawn(async move {
            let api: Api<Node> = Api::all(client);
            let wc = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let stream = watcher(api, wc).default_backoff().applied_objects();
            futures::pin_mut!(stream);
            let mut written: Option<String> = None;
            while let Some(ev) = stream.next().await {
                let Ok(n) = ev else { continue };
                let Some(cidr) = n.spec.and_then(|s| s.pod_cidr) else {
                    continue;
                };
                if written.as_deref() == Some(cidr.as_str()) {
                    continue;
                }
                match on_pod_cidr(&cidr) {
                    Ok(()) => {
                        tracing::info!(pod_cidr = %cidr, "pod network configured");
                        written = Some(cidr);
                        // Report NetworkReady as soon as the runtime has picked it up.
                        for _ in 0..20 {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            ready_changed.notify_one();
                        }
                    }
                    Err(e) => {
                        tracing::error!(pod_cidr = %cidr, error = %e, "writing the pod network configuration failed")
                    }
                }
            }
        });
    }

    let (services, svc_writer) = reflector::store();
    {
        let api: Api<Service> = Api::all(client.clone());
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(svc_writer)
                .applied_objects();
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {}
        });
    }
    let (allocatable, memory) = {
        let (_, alloc) = node::resources(&cfg, &host);
        let map = alloc
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        (map, host.memory_bytes as i64)
    };
    let (pod_store, pod_writer) = reflector::store();
    let recorder =
        rudder_component::events::Recorder::new(client.clone(), "kubelet", &cfg.node_name);
    let pods = pods::PodManager::new(
        client,
        cfg.clone(),
        cri.clone(),
        recorder,
        services,
        pod_store,
        allocatable,
        memory,
    );
    tokio::spawn(gc::run(
        cri.clone(),
        cfg.agent_dir.join("containerd"),
        cfg.pause_image.clone(),
    ));
    tokio::spawn(eviction::run(
        pods.clone(),
        node.pressure.clone(),
        cfg.eviction_hard.clone(),
        host.memory_bytes as i64,
        cfg.agent_dir.clone(),
        cfg.agent_dir.join("containerd"),
        cfg.eviction_pressure_transition_period,
        ready_changed.clone(),
    ));
    match (&cfg.client_ca_pem, cfg.port) {
        (Some(ca), port) if port != 0 => {
            let sc = server::ServerConfig {
                addr: std::net::SocketAddr::new(std::net::IpAddr::from([0, 0, 0, 0]), port),
                client_ca_pem: ca.clone(),
                sans: vec![cfg.node_name.clone(), cfg.node_ip.to_string(), "localhost".into()],
            };
            let (p, c) = (pods.clone(), cri.clone());
            tokio::spawn(async move {
                if let Err(e) = server::serve(sc, p, c).await {
                    tracing::error!(error = %e, "the kubelet server stopped");
                }
            });
        }
        _ => tracing::warn!("no kubelet server (no client CA or port 0): logs, exec and port-forward are unavailable"),
    }
    let synced = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(pods.clone().run_pod_source(pod_writer, synced.clone()));
    if let Err(e) = std::fs::create_dir_all(&cfg.pod_manifest_path) {
        tracing::warn!(path = %cfg.pod_manifest_path.display(), error = %e, "cannot create the static pod directory");
    }
    tokio::spawn(pods.clone().run_static_pods(
        cfg.pod_manifest_path.clone(),
        registered.metadata.uid.clone().unwrap_or_default(),
    ));
    tokio::spawn(pods.clone().run_pleg(synced));
    Ok(Kubelet { pods, node })
}
