//! kube-proxy's sync metrics, with upstream's names and buckets (`pkg/proxy/metrics`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrafficLabels {
    pub traffic_policy: String,
}

pub struct ProxyMetrics {
    pub sync_duration: Histogram,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub programming_duration: Histogram,
    pub sync_failures: Counter,
    pub no_local_endpoints: Family<TrafficLabels, Gauge>,
}

/// Upstream's `NetworkProgrammingLatency` buckets: 0.25 s steps to 0.5 s, 1 s steps to a
/// minute, 5 s steps to two, then 30 s steps.
fn programming_buckets() -> Vec<f64> {
    let mut b = vec![0.25, 0.5];
    b.extend((1..=59).map(f64::from));
    b.extend((0..12).map(|i| 60.0 + 5.0 * f64::from(i)));
    b.extend((0..7).map(|i| 120.0 + 30.0 * f64::from(i)));
    b
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            sync_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            last_sync: Gauge::default(),
            programming_duration: Histogram::new(programming_buckets()),
            sync_failures: Counter::default(),
            no_local_endpoints: Family::default(),
        }
    }
}

impl ProxyMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_sync.clone(),
        );
        r.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            self.programming_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "Number of failures of nftables sync",
            self.sync_failures.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_no_local_endpoints",
            "Number of services with a Local traffic policy and no endpoints",
            self.no_local_endpoints.clone(),
        );
    }
}
