//! NetworkPolicy enforcement on one node, as k3s embeds kube-router's network policy
//! controller, but in nftables: reflectors on NetworkPolicies, Pods and Namespaces; on any
//! change (at most once per minimum sync interval, so bursts coalesce) the node's table
//! `inet rudder-netpol` is rendered from the stores ([`rules::render`]) and, when it changed,
//! replaced in one `nft -f -` transaction ([`nft::apply`]). An API client only.

pub mod ipset;
pub mod nft;
pub mod rules;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use rudder_component::reflect::reflect;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("running nft: {0}")]
    Spawn(std::io::Error),
    #[error("nft: {0}")]
    Nft(String),
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node: only its pods are enforced here (`spec.nodeName`).
    pub node_name: String,
    /// At most one sync per interval; changes inside it wait and are applied together.
    pub min_sync_interval: Duration,
    /// A full re-application even without changes, repairing rules someone else removed
    /// (kube-router's sync period).
    pub resync_interval: Duration,
}

impl Config {
    pub fn new(node_name: impl Into<String>) -> Config {
        Config {
            node_name: node_name.into(),
            min_sync_interval: Duration::from_secs(1),
            resync_interval: Duration::from_secs(300),
        }
    }
}

/// Bridged pod-to-pod traffic on `cni0` reaches the inet forward hook only with br_netfilter's
/// `bridge-nf-call-iptables` (per network namespace); set it if it is not already.
fn ensure_bridge_netfilter() {
    const KEY: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if !std::path::Path::new(KEY).exists() {
        // br_netfilter as a module; built-in kernels have the key already.
        let _ = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .status();
    }
    match std::fs::read_to_string(KEY) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => {
            if let Err(e) = std::fs::write(KEY, "1") {
                tracing::warn!(error = %e, "cannot set {KEY}: same-node pod traffic is not filtered");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "no br_netfilter: same-node pod traffic is not filtered")
        }
    }
}

/// Starts the controller; it runs until the returned task is aborted or the process ends
/// (the table stays, as kube-router's rules do, so pods stay protected across restarts).
pub fn start(client: kube::Client, cfg: Config) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(client, cfg))
}

async fn run(client: kube::Client, cfg: Config) {
    ensure_bridge_netfilter();
    let changed = Arc::new(tokio::sync::Notify::new());
    let wake = |n: Arc<tokio::sync::Notify>| move |_| n.notify_one();
    let (policies, f1) = reflect::<NetworkPolicy>(&client, wake(changed.clone()));
    let (pods, f2) = reflect::<Pod>(&client, wake(changed.clone()));
    let (namespaces, f3) = reflect::<Namespace>(&client, wake(changed.clone()));
    tokio::spawn(f1);
    tokio::spawn(f2);
    tokio::spawn(f3);
    // A table from partial lists would briefly open or close the wrong pods.
    for ready in [
        policies.wait_until_ready().await,
        pods.wait_until_ready().await,
        namespaces.wait_until_ready().await,
    ] {
        if ready.is_err() {
            tracing::error!("network policy informers stopped before their first list");
            return;
        }
    }
    tracing::info!(node = %cfg.node_name, "network policy controller is running");
    let mut applied: Option<String> = None;
    let mut last_sync: Option<Instant> = None;
    loop {
        if applied.is_some() {
            tokio::select! {
                _ = changed.notified() => {}
                _ = tokio::time::sleep(cfg.resync_interval) => applied = None,
            }
        }
        if let Some(t) = last_sync {
            tokio::time::sleep(
                (t + cfg.min_sync_interval).saturating_duration_since(Instant::now()),
            )
            .await;
        }
        last_sync = Some(Instant::now());
        let started = Instant::now();
        let (p, q, n) = (policies.state(), pods.state(), namespaces.state());
        let table = rules::render(
            &cfg.node_name,
            p.iter().map(|x| x.as_ref()),
            q.iter().map(|x| x.as_ref()),
            n.iter().map(|x| x.as_ref()),
        );
        if applied.as_deref() == Some(table.as_str()) {
            continue;
        }
        match nft::apply(&table).await {
            Ok(()) => {
                tracing::debug!(
                    policies = p.len(),
                    pods = q.len(),
                    bytes = table.len(),
                    took = ?started.elapsed(),
                    "network policy rules synced"
                );
                applied = Some(table);
            }
            Err(e) => {
                tracing::warn!(error = %e, "network policy sync failed; retrying");
                // `applied` stays unset: the next turn retries, a little later.
                applied = None;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
