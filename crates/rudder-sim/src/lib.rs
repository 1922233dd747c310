//! Simulated nodes, as kwok or kubemark's hollow nodes do it for upstream: N nodes in one
//! process that register, renew their Leases and report status as upstream's kubelet does, and
//! move the pods bound to them through the lifecycle a kubelet reports (Running with an IP and
//! ready containers; Succeeded/Failed on request; the final delete after graceful deletion),
//! with no containers at all. Everything goes through a `kube::Client`, so it works against
//! Rudder or upstream kube-apiserver alike, and any scheduler sees ordinary nodes.
//!
//! Cost is per process, not per node: one task renews every Lease (in batches spread over the
//! renew interval), one task sends status heartbeats, one watch covers the pods of all nodes and
//! one the nodes themselves.

mod ipam;
mod node;
mod pods;
mod util;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use ipam::Cidr;
pub use util::parse_duration;

/// Marks a pod's containers to finish this long after they started (Go duration: `5s`, `1m30s`).
pub const COMPLETE_AFTER_ANNOTATION: &str = "sim.rudder.dev/complete-after";
/// The exit code of containers that finish through [`COMPLETE_AFTER_ANNOTATION`] (default 0:
/// the pod Succeeds; anything else: it Fails).
pub const EXIT_CODE_ANNOTATION: &str = "sim.rudder.dev/exit-code";
/// How long a pod's containers take to stop after SIGTERM when it is deleted gracefully
/// (default: they use the whole grace period, as a container that ignores SIGTERM does).
pub const STOP_AFTER_ANNOTATION: &str = "sim.rudder.dev/stop-after";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating the lease of node {node}: {source}")]
    Lease {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("invalid option {option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
}

/// A taint the nodes register with (the kubelet's `--register-with-taints`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

impl std::str::FromStr for Taint {
    type Err = String;

    /// kubectl's and the kubelet's syntax: `key=value:Effect` or `key:Effect`.
    fn from_str(s: &str) -> Result<Taint, String> {
        let (kv, effect) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("invalid taint spec: {s} (want key[=value]:Effect)"))?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(format!(
                "invalid taint effect: {effect}, unsupported taint effect"
            ));
        }
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        if key.is_empty() {
            return Err(format!("invalid taint spec: {s}, the key is empty"));
        }
        Ok(Taint {
            key: key.into(),
            value: value.into(),
            effect: effect.into(),
        })
    }
}

/// What the simulated nodes look like and how they behave.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// How many nodes: `<prefix>0` … `<prefix>{nodes-1}`.
    pub nodes: usize,
    pub name_prefix: String,
    /// `status.capacity` (cpu, memory, pods, ephemeral-storage; hugepages are reported as 0 as
    /// a kubelet on a host without them does).
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub ephemeral_storage: String,
    /// `status.allocatable`; `None`: equal to capacity.
    pub allocatable_cpu: Option<String>,
    pub allocatable_memory: Option<String>,
    pub allocatable_pods: Option<String>,
    /// Extra labels (the kubelet's `--node-labels`), on top of the ones it always sets.
    pub labels: BTreeMap<String, String>,
    /// `topology.kubernetes.io/zone` values given to the nodes round-robin (none: no zone).
    pub zones: Vec<String>,
    pub taints: Vec<Taint>,
    /// Where pod IPs come from when a node has no `spec.podCIDR`: node `i` gets the i-th /24.
    pub pod_cidr: Cidr,
    /// Node `i`'s InternalIP is the (i+1)-th address of this range.
    pub node_ip_cidr: Cidr,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// The kubelet's `nodeLeaseDurationSeconds` (40); the lease is renewed every quarter of it.
    pub lease_duration_seconds: u32,
    /// The kubelet's `nodeStatusReportFrequency` (5 min): status is reported this often when
    /// nothing changed.
    pub status_report_interval: Duration,
    /// Move pods bound to the nodes through their lifecycle (false: nodes only).
    pub manage_pods: bool,
    /// API calls in flight at once (registration, leases, pod status).
    pub concurrency: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 1,
            name_prefix: "sim-node-".into(),
            // scheduler_perf's default node (templates/node-default.yaml).
            cpu: "4".into(),
            memory: "32Gi".into(),
            pods: "110".into(),
            ephemeral_storage: "100Gi".into(),
            allocatable_cpu: None,
            allocatable_memory: None,
            allocatable_pods: None,
            labels: BTreeMap::new(),
            zones: Vec::new(),
            taints: Vec::new(),
            pod_cidr: "10.128.0.0/9".parse().expect("a valid literal CIDR"),
            node_ip_cidr: "10.127.0.0/16".parse().expect("a valid literal CIDR"),
            kubelet_version: "v1.37.0".into(),
            lease_duration_seconds: 40,
            status_report_interval: Duration::from_secs(300),
            manage_pods: true,
            concurrency: 32,
        }
    }
}

impl SimOptions {
    pub fn node_name(&self, index: usize) -> String {
        format!("{}{index}", self.name_prefix)
    }

    fn check(&self) -> Result<(), Error> {
        if self.concurrency == 0 {
            return Err(Error::Option {
                option: "concurrency",
                message: "must be at least 1".into(),
            });
        }
        if self.lease_duration_seconds < 4 {
            return Err(Error::Option {
                option: "lease_duration_seconds",
                message: "must be at least 4".into(),
            });
        }
        if self.pod_cidr.prefix > 24 {
            return Err(Error::Option {
                option: "pod_cidr",
                message: format!("{} is smaller than one /24 per node", self.pod_cidr),
            });
        }
        Ok(())
    }
}

/// Counters of what the simulation did, for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct SimStats {
    pub leases_renewed: AtomicU64,
    pub status_reports: AtomicU64,
    pub pods_started: AtomicU64,
    pub pods_finished: AtomicU64,
    pub pods_deleted: AtomicU64,
    pub api_errors: AtomicU64,
}

impl SimStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The per-node state shared by the tasks.
pub(crate) struct SimNode {
    pub index: usize,
    pub name: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    pub pool: std::sync::Mutex<ipam::Pool>,
}

pub(crate) struct Shared {
    pub client: kube::Client,
    pub opts: SimOptions,
    pub nodes: Vec<SimNode>,
    pub by_name: HashMap<String, usize>,
    pub stats: Arc<SimStats>,
    pub permits: Arc<tokio::sync::Semaphore>,
}

/// Entry point: `Sim::start(client, options)`.
pub struct Sim;

impl Sim {
    /// Registers the nodes and their Leases (returns once all exist), then keeps them alive and
    /// runs their pods until the handle is dropped or stopped.
    pub async fn start(client: kube::Client, opts: SimOptions) -> Result<SimHandle, Error> {
        opts.check()?;
        let stats = Arc::new(SimStats::default());
        let permits = Arc::new(tokio::sync::Semaphore::new(opts.concurrency));
        let nodes = node::register_all(&client, &opts, &permits).await?;
        let by_name = nodes
            .iter()
            .map(|n| (n.name.clone(), n.index))
            .collect::<HashMap<_, _>>();
        let shared = Arc::new(Shared {
            client,
            opts,
            nodes,
            by_name,
            stats: stats.clone(),
            permits,
        });
        let leases = node::create_leases(&shared).await?;
        let mut tasks = vec![
            tokio::spawn(node::renew_leases(shared.clone(), leases)),
            tokio::spawn(node::report_status(shared.clone())),
            tokio::spawn(node::watch_nodes(shared.clone())),
        ];
        if shared.opts.manage_pods {
            tasks.push(tokio::spawn(pods::run(shared.clone())));
        }
        tracing::info!(nodes = shared.nodes.len(), "simulated nodes registered");
        Ok(SimHandle {
            names: shared.nodes.iter().map(|n| n.name.clone()).collect(),
            stats,
            tasks,
        })
    }
}

/// Running simulated nodes; dropping it stops them (the Node objects stay, as a stopped kubelet
/// leaves its Node).
pub struct SimHandle {
    names: Vec<String>,
    stats: Arc<SimStats>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    pub fn node_names(&self) -> &[String] {
        &self.names
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Stops every task of the simulation.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_kubectl_writes_them() {
        assert_eq!(
            "dedicated=gpu:NoSchedule".parse::<Taint>(),
            Ok(Taint {
                key: "dedicated".into(),
                value: "gpu".into(),
                effect: "NoSchedule".into()
            })
        );
        assert_eq!(
            "node.kubernetes.io/slow:PreferNoSchedule"
                .parse::<Taint>()
                .map(|t| (t.key, t.value)),
            Ok(("node.kubernetes.io/slow".into(), String::new()))
        );
        assert!("a=b:Sometimes".parse::<Taint>().is_err());
        assert!("a=b".parse::<Taint>().is_err());
    }
}
