//! Rudder's service proxy: upstream kube-proxy in nftables mode, as an API client. Reflectors
//! keep Services and EndpointSlices; every change asks for a sync, and a sync renders the
//! whole `ip kube-proxy` table ([`rules`]) and applies it as one `nft -f -` transaction, no
//! sooner than `min_sync_period` after the previous one (so a burst of endpoint changes costs
//! one sync, upstream's `--min-sync-period`), and at least every `sync_period`.

pub mod conntrack;
pub mod metrics;
pub mod model;
pub mod nft;
pub mod rules;
pub mod sysctl;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::Store;
use rudder_component::reflect::reflect;
use tokio::sync::Notify;

pub use metrics::ProxyMetrics;
pub use rules::RuleConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("the informers stopped before they synced")]
    NotSynced,
}

/// The proxy's flags (kube-proxy's names).
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `--hostname-override`: the node whose endpoints count as local.
    pub node_name: String,
    pub rules: RuleConfig,
    /// `--min-sync-period` (1 s).
    pub min_sync_period: Duration,
    /// `--sync-period`: a full resync even without changes (30 s).
    pub sync_period: Duration,
}

impl ProxyConfig {
    pub fn new(node_name: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            node_name: node_name.into(),
            rules: RuleConfig::default(),
            min_sync_period: Duration::from_secs(1),
            sync_period: Duration::from_secs(30),
        }
    }
}

/// What the proxier remembers between syncs.
#[derive(Default)]
struct State {
    prev: rules::Previous,
    /// Chains flushed because unused, with when: deleted a second later.
    stale: HashMap<String, Instant>,
    last_text: String,
    /// Each slice's resourceVersion at the last sync, to time network programming once per
    /// change.
    slice_versions: HashMap<String, String>,
    last_endpoints: BTreeMap<model::PortKey, Vec<model::Endpoint>>,
}

/// Runs the proxy until the future is dropped.
pub async fn run(
    client: kube::Client,
    cfg: ProxyConfig,
    metrics: Arc<ProxyMetrics>,
) -> Result<(), ProxyError> {
    sysctl::setup();
    nft::delete_table(rules::TABLE).await;
    let changed = Arc::new(Notify::new());
    let wake = |n: Arc<Notify>| move |_| n.notify_one();
    let (services, run_services) = reflect::<Service>(&client, wake(changed.clone()));
    let (slices, run_slices) = reflect::<EndpointSlice>(&client, wake(changed.clone()));
    let informers = async move {
        tokio::join!(run_services, run_slices);
    };
    let proxier = async move {
        if services.wait_until_ready().await.is_err() || slices.wait_until_ready().await.is_err() {
            return Err(ProxyError::NotSynced);
        }
        tracing::info!(node = %cfg.node_name, "service proxy synced its informers");
        let mut state = State::default();
        let mut last: Option<Instant> = None;
        let mut periodic = true;
        loop {
            if let Some(t) = last {
                // Coalesce: whatever arrives until then is in the next sync.
                tokio::time::sleep_until((t + cfg.min_sync_period).into()).await;
            }
            let started = Instant::now();
            let ok = sync(&cfg, &services, &slices, &metrics, &mut state, periodic).await;
            last = Some(started);
            let wait = if ok {
                cfg.sync_period
            } else {
                // Upstream retries a failed sync after --sync-period; a second is kinder to a
                // node whose nft failed on a transient error.
                Duration::from_secs(1).max(cfg.min_sync_period)
            };
            periodic = tokio::select! {
                _ = changed.notified() => false,
                _ = tokio::time::sleep(wait) => true,
            };
        }
    };
    tokio::select! {
        _ = informers => Err(ProxyError::NotSynced),
        r = proxier => r,
    }
}

/// One sync: render, apply, account. Returns whether the rules are in place.
async fn sync(
    cfg: &ProxyConfig,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    metrics: &ProxyMetrics,
    state: &mut State,
    periodic: bool,
) -> bool {
    let start = Instant::now();
    // Chains retired at least a second ago can go now.
    let old: Vec<String> = state
        .stale
        .iter()
        .filter(|(_, t)| start.duration_since(**t) >= Duration::from_secs(1))
        .map(|(c, _)| c.clone())
        .collect();
    if !old.is_empty() {
        for c in &old {
            state.stale.remove(c);
        }
        if let Err(e) = nft::apply(&rules::delete_chains(&old)).await {
            tracing::warn!(error = %e, "could not delete stale chains; will retry");
        }
    }

    let mut ports: Vec<model::ServicePort> = services
        .state()
        .iter()
        .flat_map(|s| model::service_ports(s))
        .collect();
    ports.sort_by(|a, b| a.key.cmp(&b.key));
    let all_slices = slices.state();
    let endpoints = model::endpoints_by_port(all_slices.iter().map(|s| s.as_ref()), &cfg.node_name);
    // Changed services only, as upstream's partial syncs; the periodic resync rewrites all.
    let mut prev = state.prev.clone();
    if periodic {
        prev.signatures.clear();
    }
    let rs = rules::render(&cfg.rules, &ports, &endpoints, &prev);
    let same = rs.text == state.last_text && state.prev.initialized;
    if !same || periodic {
        if let Err(e) = nft::apply(&rs.text).await {
            tracing::error!(error = %e, "nftables sync failed");
            metrics.sync_failures.inc();
            metrics.sync_duration.observe(start.elapsed().as_secs_f64());
            return false;
        }
    }
    metrics.sync_duration.observe(start.elapsed().as_secs_f64());
    metrics.last_sync.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
    );
    for (policy, n) in [
        ("internal", rs.no_local_internal),
        ("external", rs.no_local_external),
    ] {
        metrics
            .no_local_endpoints
            .get_or_create(&metrics::TrafficLabels {
                traffic_policy: policy.into(),
            })
            .set(n as i64);
    }
    observe_programming(&all_slices, metrics, state);

    let now = Instant::now();
    for c in &rs.stale_chains {
        state.stale.entry(c.clone()).or_insert(now);
    }
    for c in &rs.chains {
        state.stale.remove(c);
    }
    state.prev = rules::Previous {
        chains: rs.chains,
        affinity_sets: rs.affinity_sets,
        signatures: rs.signatures,
        initialized: true,
    };
    state.last_text = rs.text;
    if endpoints != state.last_endpoints {
        clean_udp_conntrack(&ports, &endpoints).await;
        state.last_endpoints = endpoints;
    }
    tracing::debug!(
        services = ports.len(),
        took_ms = start.elapsed().as_millis() as u64,
        "synced nftables rules"
    );
    true
}

/// Upstream's network programming latency: from the `last-change-trigger-time` the
/// endpointslice controller stamps on a slice to the rules that include the change.
fn observe_programming(slices: &[Arc<EndpointSlice>], metrics: &ProxyMetrics, state: &mut State) {
    let now = jiff::Timestamp::now();
    let mut seen = HashMap::with_capacity(slices.len());
    for s in slices {
        let key = format!(
            "{}/{}",
            s.metadata.namespace.as_deref().unwrap_or(""),
            s.metadata.name.as_deref().unwrap_or("")
        );
        let rv = s.metadata.resource_version.clone().unwrap_or_default();
        let changed = state.slice_versions.get(&key) != Some(&rv);
        if changed && !state.slice_versions.is_empty() {
            if let Some(t) = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("endpoints.kubernetes.io/last-change-trigger-time"))
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            {
                let secs = now.duration_since(t).as_secs_f64();
                if secs >= 0.0 {
                    metrics.programming_duration.observe(secs);
                }
            }
        }
        seen.insert(key, rv);
    }
    state.slice_versions = seen;
}

async fn clean_udp_conntrack(
    ports: &[model::ServicePort],
    endpoints: &BTreeMap<model::PortKey, Vec<model::Endpoint>>,
) {
    let mut by_ip: BTreeMap<Ipv4Addr, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut by_port: BTreeMap<u16, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for p in ports.iter().filter(|p| p.key.protocol == "udp") {
        let serving: BTreeSet<Ipv4Addr> = endpoints
            .get(&p.key)
            .into_iter()
            .flatten()
            .filter(|e| e.serving)
            .map(|e| e.ip)
            .collect();
        for ip in std::iter::once(&p.cluster_ip)
            .chain(&p.external_ips)
            .chain(&p.load_balancer_ips)
        {
            by_ip
                .entry(*ip)
                .or_default()
                .extend(serving.iter().copied());
        }
        if p.node_port != 0 {
            by_port
                .entry(p.node_port)
                .or_default()
                .extend(serving.iter().copied());
        }
    }
    conntrack::clean(&by_ip, &by_port).await;
}
