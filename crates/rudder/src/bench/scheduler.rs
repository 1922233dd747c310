//! `rudder bench scheduler`: scheduler_perf's workloads against a real `rudder server` (this
//! binary, with its in-process scheduler) and simulated nodes (`rudder-sim`, in this process).
//! Pods are created by a bounded number of concurrent creators as scheduler_perf's
//! `createPods` does; a pod's latency runs from its create request to its binding seen on a
//! watch, and throughput is measured pods over the time from the first create to the last
//! binding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

use super::api::{server_command, status_mb, wait_ready};
use super::{machine_summary, percentile};

#[derive(clap::Args)]
pub struct SchedulerBenchArgs {
    /// Workloads, in order: basic-500 (SchedulingBasic 500Nodes), basic-5000
    /// (SchedulingBasic 5000Nodes_10000Pods), anti-affinity-5000 (SchedulingPodAntiAffinity
    /// 5000Nodes_2000Pods), spread-5000 (TopologySpreading 5000Nodes_5000Pods), preemption-500
    /// (PreemptionBasic at 500 nodes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "basic-500,basic-5000,anti-affinity-5000,spread-5000,preemption-500"
    )]
    workloads: Vec<String>,
    /// Nodes of every workload (default: the workload's own).
    #[arg(long)]
    nodes: Option<usize>,
    /// Pods created before measuring (default: the workload's own).
    #[arg(long)]
    init_pods: Option<usize>,
    /// Measured pods (default: the workload's own).
    #[arg(long)]
    pods: Option<usize>,
    /// Concurrent pod creators.
    #[arg(long, default_value_t = 16)]
    creators: usize,
    /// The server's store.
    #[arg(long, default_value = "redb")]
    backend: String,
    /// Simulated nodes only register and renew: bound pods are not moved to Running
    /// (scheduler_perf runs no kubelets).
    #[arg(long)]
    no_pod_lifecycle: bool,
    /// A phase ends when no pod was bound for this many seconds (a workload whose plugin is
    /// missing may leave pods pending).
    #[arg(long, default_value_t = 30)]
    stall_seconds: u64,
}

#[derive(Clone, Copy)]
enum Template {
    /// scheduler_perf's pod-default.yaml.
    Default,
    /// pod-with-pod-anti-affinity.yaml.
    AntiAffinity,
    /// pod-with-topology-spreading.yaml.
    Spreading,
    /// pod-low-priority.yaml.
    LowPriority,
    /// pod-high-priority.yaml.
    HighPriority,
}

struct Workload {
    name: &'static str,
    upstream: &'static str,
    nodes: usize,
    init_pods: usize,
    init: Template,
    pods: usize,
    measured: Template,
    zones: &'static [&'static str],
    /// The plugin the workload exercises (`None`: the default set only).
    plugin: Option<&'static str>,
}

fn workload(name: &str) -> anyhow::Result<Workload> {
    use Template::*;
    let w = |name, upstream, nodes, init_pods, init, pods, measured, zones, plugin| Workload {
        name,
        upstream,
        nodes,
        init_pods,
        init,
        pods,
        measured,
        zones,
        plugin,
    };
    Ok(match name {
        "basic-500" => w(
            "basic-500",
            "SchedulingBasic/500Nodes",
            500,
            500,
            Default,
            1000,
            Default,
            &[],
            None,
        ),
        "basic-5000" => w(
            "basic-5000",
            "SchedulingBasic/5000Nodes_10000Pods",
            5000,
            1000,
            Default,
            10000,
            Default,
            &[],
            None,
        ),
        "anti-affinity-5000" => w(
            "anti-affinity-5000",
            "SchedulingPodAntiAffinity/5000Nodes_2000Pods",
            5000,
            1000,
            AntiAffinity,
            2000,
            AntiAffinity,
            &[],
            Some("InterPodAffinity"),
        ),
        "spread-5000" => w(
            "spread-5000",
            "TopologySpreading/5000Nodes_5000Pods",
            5000,
            5000,
            Default,
            5000,
            Spreading,
            &["moon-1", "moon-2", "moon-3"],
            Some("PodTopologySpread"),
        ),
        "preemption-500" => w(
            "preemption-500",
            "PreemptionBasic (500 nodes: 4 low-priority pods a node)",
            500,
            2000,
            LowPriority,
            500,
            HighPriority,
            &[],
            Some("DefaultPreemption"),
        ),
        other => anyhow::bail!("unknown workload {other:?}"),
    })
}

const HIGH_PRIORITY_CLASS: &str = "rudder-bench-high";

fn pod(template: Template, name: &str, ns: &str, phase: &str) -> Value {
    let resources = |cpu: &str| json!({"limits": {"cpu": cpu, "memory": "500Mi"}, "requests": {"cpu": cpu, "memory": "500Mi"}});
    let container = |cpu: &str| {
        json!([{
            "name": "pause",
            "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": resources(cpu),
        }])
    };
    let mut p = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"rudder-bench": phase}},
        "spec": {"containers": container("100m")},
    });
    match template {
        Template::Default => {}
        Template::AntiAffinity => {
            p["metadata"]["labels"]["color"] = json!("green");
            p["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"color": "green"}},
                "topologyKey": "kubernetes.io/hostname",
                "namespaces": ["sched-1", "sched-0"],
            }]}});
        }
        Template::Spreading => {
            p["metadata"]["labels"]["color"] = json!("blue");
            p["spec"]["topologySpreadConstraints"] = json!([{
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"color": "blue"}},
            }]);
        }
        Template::LowPriority => {
            p["spec"]["terminationGracePeriodSeconds"] = json!(0);
            p["spec"]["containers"] = container("900m");
        }
        Template::HighPriority => {
            // Upstream's template sets `priority: 10` (scheduler_perf runs no admission); the
            // class gives the same value through Priority admission where it exists.
            p["spec"]["priorityClassName"] = json!(HIGH_PRIORITY_CLASS);
            p["spec"]["priority"] = json!(10);
            p["spec"]["containers"] = container("3000m");
        }
    }
    p
}

/// When each pod of a phase was first seen bound.
#[derive(Default)]
struct Bound {
    at: HashMap<String, Instant>,
}

/// Watches pods with label `rudder-bench=<phase>` and records their bindings.
async fn watch_bindings(
    client: kube::Client,
    phase: &str,
) -> anyhow::Result<(Arc<Mutex<Bound>>, tokio::task::JoinHandle<()>)> {
    let api: Api<Pod> = Api::all(client);
    let bound = Arc::new(Mutex::new(Bound::default()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let cfg = watcher::Config::default()
        .labels(&format!("rudder-bench={phase}"))
        .fields("spec.nodeName!=")
        .any_semantic();
    let b = bound.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let stream = watcher(api, cfg);
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    if let (Some(name), Ok(mut b)) = (p.metadata.name, b.lock()) {
                        b.at.entry(name).or_insert(now);
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .context("the pod watch did not start")?
        .ok();
    Ok((bound, task))
}

struct PhaseResult {
    created: usize,
    bound: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Creates `count` pods from `template` in `ns` with `creators` concurrent creators and waits
/// until all are bound or none was bound for `stall`.
async fn run_phase(
    client: &kube::Client,
    template: Template,
    count: usize,
    ns: &str,
    phase: &str,
    creators: usize,
    stall: Duration,
) -> anyhow::Result<PhaseResult> {
    let (bound, watch) = watch_bindings(client.clone(), phase).await?;
    let issued = Arc::new(Mutex::new(HashMap::<String, Instant>::with_capacity(count)));
    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..creators.max(1) {
        let (api, issued, next, failures) = (
            Api::<Pod>::namespaced(client.clone(), ns),
            issued.clone(),
            next.clone(),
            failures.clone(),
        );
        let ns = ns.to_string();
        let phase = phase.to_string();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let name = format!("{phase}-{i:05}");
                let Ok(body) = serde_json::from_value::<Pod>(pod(template, &name, &ns, &phase))
                else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let at = Instant::now();
                match api.create(&PostParams::default(), &body).await {
                    Ok(_) => {
                        if let Ok(mut m) = issued.lock() {
                            m.insert(name, at);
                        }
                    }
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("  creating {name} failed: {e}");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let created = issued.lock().map(|m| m.len()).unwrap_or(0);
    // Wait for the bindings: done when all are bound, given up after `stall` without progress.
    let mut last = (0usize, Instant::now());
    loop {
        let n = bound.lock().map(|b| b.at.len()).unwrap_or(0);
        if n >= created {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > stall {
            eprintln!("  {n}/{created} bound; none for {stall:?}: giving up on the rest");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watch.abort();
    let bound = bound.lock().map(|b| b.at.clone()).unwrap_or_default();
    let issued = issued.lock().map(|m| m.clone()).unwrap_or_default();
    let mut latencies: Vec<Duration> = bound
        .iter()
        .filter_map(|(name, at)| issued.get(name).map(|t| at.saturating_duration_since(*t)))
        .collect();
    latencies.sort();
    let end = bound.values().max().copied().unwrap_or(t0);
    Ok(PhaseResult {
        created,
        bound: latencies.len(),
        elapsed: end.saturating_duration_since(t0),
        latencies,
    })
}

struct Row {
    name: &'static str,
    upstream: &'static str,
    nodes: usize,
    init_pods: usize,
    result: PhaseResult,
    server_rss: f64,
    server_peak: f64,
    bench_rss: f64,
    note: String,
}

fn plugin_present(name: &str) -> bool {
    rudder_scheduler::plugins::DEFAULT_PLUGINS
        .iter()
        .any(|(p, _)| *p == name)
}

async fn create_namespaces(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in ["sched-0", "sched-1"] {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        api.create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
    }
    let api: Api<PriorityClass> = Api::all(client.clone());
    let pc: PriorityClass = serde_json::from_value(json!({
        "metadata": {"name": HIGH_PRIORITY_CLASS},
        "value": 10,
    }))?;
    api.create(&PostParams::default(), &pc)
        .await
        .context("creating the PriorityClass")?;
    Ok(())
}

async fn run_workload(w: &Workload, args: &SchedulerBenchArgs) -> anyhow::Result<Row> {
    let nodes = args.nodes.unwrap_or(w.nodes);
    let init_pods = args.init_pods.unwrap_or(w.init_pods);
    let pods = args.pods.unwrap_or(w.pods);
    let dir = tempfile::tempdir()?;
    let (mut cmd, addr, data, _etcd) = server_command(&args.backend, dir.path())?;
    let mut server = Guard(cmd.spawn().context("starting rudder server")?);
    wait_ready(addr, &data, &mut server.0).await?;
    let client = admin_client(&data).await?;
    create_namespaces(&client).await?;

    let t = Instant::now();
    let sim = rudder_sim::Sim::start(
        client.clone(),
        rudder_sim::SimOptions {
            nodes,
            zones: w.zones.iter().map(|z| z.to_string()).collect(),
            manage_pods: !args.no_pod_lifecycle,
            concurrency: 64,
            ..Default::default()
        },
    )
    .await
    .context("starting the simulated nodes")?;
    eprintln!(
        "  {nodes} nodes registered in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let stall = Duration::from_secs(args.stall_seconds);
    if init_pods > 0 {
        let r = run_phase(
            &client,
            w.init,
            init_pods,
            "sched-0",
            "init",
            args.creators,
            stall,
        )
        .await?;
        eprintln!(
            "  {} init pods bound of {} in {:.1} s",
            r.bound,
            r.created,
            r.elapsed.as_secs_f64()
        );
    }
    let result = run_phase(
        &client,
        w.measured,
        pods,
        "sched-1",
        "measure",
        args.creators,
        stall,
    )
    .await?;
    let pid = server.0.id();
    let (server_rss, server_peak) = (status_mb(pid, "VmRSS:"), status_mb(pid, "VmHWM:"));
    let bench_rss = status_mb(std::process::id(), "VmRSS:");
    sim.stop().await;
    let mut note = String::new();
    if let Some(p) = w.plugin {
        if !plugin_present(p) {
            note = format!("{p} not in this scheduler yet: scheduled without it");
        }
    }
    if result.bound < result.created {
        if !note.is_empty() {
            note.push_str("; ");
        }
        note.push_str(&format!(
            "{} pods never bound",
            result.created - result.bound
        ));
    }
    Ok(Row {
        name: w.name,
        upstream: w.upstream,
        nodes,
        init_pods,
        result,
        server_rss,
        server_peak,
        bench_rss,
        note,
    })
}

/// A client of the server with data directory `data`, from the admin kubeconfig it writes
/// once ready.
pub(super) async fn admin_client(data: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = data.join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        anyhow::ensure!(Instant::now() < deadline, "no kubeconfig written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    crate::components::kubeconfig_client(&kubeconfig).await
}

/// Kills the server child however the workload ends.
pub(super) struct Guard(pub(super) std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(args: SchedulerBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let workloads = args
        .workloads
        .iter()
        .map(|w| workload(w))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for w in &workloads {
        eprintln!("== {} ({})", w.name, w.upstream);
        let row = run_workload(w, &args).await?;
        eprintln!(
            "  {}/{} bound, {:.0} pods/s",
            row.result.bound,
            row.result.created,
            row.result.bound as f64 / row.result.elapsed.as_secs_f64().max(1e-9)
        );
        rows.push(row);
    }
    println!("Machine: {}", machine_summary());
    let mut command = format!(
        "Command: rudder bench scheduler --workloads {} --creators {} --backend {}",
        args.workloads.join(","),
        args.creators,
        args.backend
    );
    for (flag, v) in [
        ("--nodes", args.nodes),
        ("--init-pods", args.init_pods),
        ("--pods", args.pods),
    ] {
        if let Some(v) = v {
            command.push_str(&format!(" {flag} {v}"));
        }
    }
    if args.no_pod_lifecycle {
        command.push_str(" --no-pod-lifecycle");
    }
    println!("{command}");
    println!(
        "The scheduler runs inside `rudder server` (one process): its RSS is the server's. \
         Simulated nodes and pod creators run in the bench process."
    );
    println!();
    println!(
        "| workload | upstream scheduler_perf case | nodes | init pods | measured pods | bound | pods/s | p50 | p99 | server+scheduler RSS (peak) | bench process RSS | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    for r in &rows {
        let rate = r.result.bound as f64 / r.result.elapsed.as_secs_f64().max(1e-9);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {:.0} MB ({:.0} MB) | {:.0} MB | {} |",
            r.name,
            r.upstream,
            r.nodes,
            r.init_pods,
            r.result.created,
            r.result.bound,
            rate,
            ms(percentile(&r.result.latencies, 50.0)),
            ms(percentile(&r.result.latencies, 99.0)),
            r.server_rss,
            r.server_peak,
            r.bench_rss,
            r.note
        );
    }
    Ok(())
}
