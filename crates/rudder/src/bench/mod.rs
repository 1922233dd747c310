//! `rudder bench …`: reproducible measurements whose output goes into BENCHMARKS.md.

mod api;
mod authz;
mod client;
mod controllers;
mod dns;
mod net;
mod netpol;
mod pods;
mod proxy;
mod scheduler;
mod sim;
mod store;
mod webhook;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The state store: the embedded backend and etcd, side by side in one run.
    Store(store::StoreBenchArgs),
    /// The API server over HTTPS: start-up, memory, creates, gets, lists and watches, on the
    /// embedded store and on etcd.
    Api(api::ApiBenchArgs),
    /// Authorization's cost: GET/s of a user bound by RBAC among 1,000 RoleBindings against
    /// AlwaysAllow, and the authorizer's own cost per request.
    Authz(authz::AuthzBenchArgs),
    /// The scheduler: scheduler_perf's workloads against `rudder server` and simulated nodes.
    Scheduler(scheduler::SchedulerBenchArgs),
    /// A component's client in-process against over HTTPS, side by side.
    Client(client::ClientBenchArgs),
    /// The controller manager: Deployments to running pods on simulated nodes, and their
    /// garbage collection, against bare pod creates in the same run.
    Controllers(controllers::ControllersBenchArgs),
    /// Simulated nodes: idle CPU and memory of N nodes in one process.
    Sim(sim::SimBenchArgs),
    /// Pod start-up latency on one real node (containerd), and the agent's idle cost.
    Pods(pods::PodsBenchArgs),
    /// One NetworkPolicy sync at scale: rendering the node's table and replacing it with nft.
    Netpol(netpol::NetpolBenchArgs),
    /// The cluster DNS server on one core: queries/s and latency, with a Rust UDP client and
    /// dnsperf.
    Dns(dns::DnsBenchArgs),
    /// The service proxy's sync latency (endpoint change → rules live) at 1,000 and 10,000
    /// services.
    Proxy(proxy::ProxyBenchArgs),
    /// Pod-to-pod TCP throughput across two nodes (network namespaces) with the host-gw and
    /// vxlan backends, against a direct veth.
    Net(net::NetBenchArgs),
    /// Admission webhook round-trip overhead: creates/s without and with a no-op webhook.
    Webhook(webhook::WebhookBenchArgs),
}

pub async fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(args).await,
        BenchCommand::Api(args) => api::run(args).await,
        BenchCommand::Authz(args) => authz::run(args).await,
        BenchCommand::Scheduler(args) => scheduler::run(args).await,
        BenchCommand::Sim(args) => sim::run(args).await,
        BenchCommand::Client(args) => client::run(args).await,
        BenchCommand::Controllers(args) => controllers::run(args).await,
        BenchCommand::Pods(args) => pods::run(args).await,
        BenchCommand::Netpol(args) => netpol::run(args).await,
        BenchCommand::Dns(args) => dns::run(args).await,
        BenchCommand::Proxy(args) => proxy::run(args).await,
        BenchCommand::Net(args) => net::run(args).await,
        BenchCommand::Webhook(args) => webhook::run(args).await,
    }
}

/// The p-th percentile (0–100) of sorted samples.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// One line describing the machine, for the benchmark record.
pub fn machine_summary() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{cpus} × {model}, {mem_gib} GiB RAM")
}
