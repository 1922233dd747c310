//! `rudder bench controllers`: how fast the controller manager turns Deployments into running
//! pods, and garbage-collects them, against a real `rudder server` and simulated nodes.
//!
//! The controller manager runs as its own process (`rudder controller-manager`, the server
//! with `--disable-controllers`), so its memory is measured apart from the server's. Each run
//! first creates the same number of bare pods straight from the bench with concurrent
//! creators: that is the API server's write rate with the scheduler and the nodes doing the
//! same work, the baseline the Deployment run is compared with in the same run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

use super::api::{server_command, status_mb, wait_ready};
use super::scheduler::{admin_client, Guard};
use super::{machine_summary, percentile};

#[derive(clap::Args)]
pub struct ControllersBenchArgs {
    /// Pods per run, in order (each run starts a fresh server).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pods: Vec<usize>,
    /// Deployments a run's pods are spread over.
    #[arg(long, default_value_t = 10)]
    deployments: usize,
    /// Simulated nodes (default: one per 50 pods, at least 10).
    #[arg(long)]
    nodes: Option<usize>,
    /// Concurrent creators of the baseline's bare pods.
    #[arg(long, default_value_t = 16)]
    creators: usize,
    /// The server's store.
    #[arg(long, default_value = "redb")]
    backend: String,
    /// A phase is given up when nothing progressed for this many seconds.
    #[arg(long, default_value_t = 60)]
    stall_seconds: u64,
}

const LABEL: &str = "rudder-bench";

/// The pods of one namespace as a watch sees them: when each was first seen and when first
/// seen Running; deleted ones leave `live`.
#[derive(Default)]
struct Seen {
    first: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
    live: std::collections::HashSet<String>,
    last_change: Option<Instant>,
}

async fn watch_pods(
    client: kube::Client,
    ns: &str,
) -> anyhow::Result<(Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>)> {
    let api: Api<Pod> = Api::namespaced(client, ns);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let cfg = watcher::Config::default().labels(LABEL).any_semantic();
    let s = seen.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let stream = watcher(api, cfg);
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let now = Instant::now();
            let Ok(mut s) = s.lock() else { return };
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                    let Some(name) = p.metadata.name.clone() else {
                        continue;
                    };
                    s.first.entry(name.clone()).or_insert(now);
                    let running =
                        p.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Running");
                    if running {
                        s.running.entry(name.clone()).or_insert(now);
                    }
                    s.live.insert(name);
                    s.last_change = Some(now);
                }
                Ok(watcher::Event::Delete(p)) => {
                    if let Some(name) = p.metadata.name {
                        s.live.remove(&name);
                        s.last_change = Some(now);
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
    Ok((seen, task))
}

/// Waits until `done` holds over what the watch saw, or nothing changed for `stall`.
async fn wait_until(
    seen: &Mutex<Seen>,
    stall: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    loop {
        {
            let s = seen
                .lock()
                .map_err(|_| anyhow::anyhow!("watch state poisoned"))?;
            if done(&s) {
                return Ok(s.last_change.unwrap_or(started));
            }
            let last = s.last_change.unwrap_or(started).max(started);
            anyhow::ensure!(
                last.elapsed() < stall,
                "{what}: nothing changed for {stall:?} ({} pods seen, {} running, {} live)",
                s.first.len(),
                s.running.len(),
                s.live.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pod_template(app: &str) -> Value {
    json!({
        "metadata": {"labels": {LABEL: "1", "app": app}},
        "spec": {
            "containers": [{
                "name": "pause",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            }],
            "terminationGracePeriodSeconds": 0,
        },
    })
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Bare pods created by `creators` concurrent clients; the time until all are Running.
async fn baseline(
    client: &kube::Client,
    pods: usize,
    creators: usize,
    stall: Duration,
) -> anyhow::Result<Duration> {
    let ns = "bench-direct";
    create_namespace(client, ns).await?;
    let (seen, watch) = watch_pods(client.clone(), ns).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..creators.max(1) {
        let (api, next) = (Api::<Pod>::namespaced(client.clone(), ns), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= pods {
                    return Ok::<(), anyhow::Error>(());
                }
                let mut p = pod_template("direct");
                p["metadata"]["name"] = json!(format!("direct-{i:05}"));
                let p: Pod = serde_json::from_value(p)?;
                api.create(&PostParams::default(), &p)
                    .await
                    .context("creating a pod")?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let end = wait_until(&seen, stall, "bare pods", |s| s.running.len() >= pods).await?;
    watch.abort();
    // Out of the way of the measured run (and its nodes' capacity): the namespace controller
    // and the nodes clean up.
    Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await
        .context("deleting the baseline namespace")?;
    let (seen, watch) = watch_pods(client.clone(), ns).await?;
    wait_until(&seen, stall, "baseline clean-up", |s| s.live.is_empty()).await?;
    watch.abort();
    Ok(end.saturating_duration_since(t0))
}

struct Measured {
    to_created: Duration,
    to_running: Duration,
    /// Creation → Running per pod.
    latencies: Vec<Duration>,
    to_deleted: Duration,
    cm_rss_running: f64,
    cm_peak: f64,
    server_rss: f64,
    server_peak: f64,
}

async fn deployments(
    client: &kube::Client,
    pods: usize,
    count: usize,
    stall: Duration,
    cm_pid: u32,
    server_pid: u32,
) -> anyhow::Result<Measured> {
    let ns = "bench-deploy";
    create_namespace(client, ns).await?;
    let (seen, watch) = watch_pods(client.clone(), ns).await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let count = count.clamp(1, pods.max(1));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        // The remainder goes to the first ones, so the replicas add up to `pods`.
        let replicas = pods / count + usize::from(i < pods % count);
        let api = api.clone();
        tasks.spawn(async move {
            let app = format!("web-{i:03}");
            let d: Deployment = serde_json::from_value(json!({
                "metadata": {"name": app},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": app}},
                    "template": pod_template(&app),
                },
            }))?;
            api.create(&PostParams::default(), &d)
                .await
                .with_context(|| format!("creating deployment {app}"))?;
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let running_at =
        wait_until(&seen, stall, "deployment pods", |s| s.running.len() >= pods).await?;
    let (to_created, latencies) = {
        let s = seen
            .lock()
            .map_err(|_| anyhow::anyhow!("watch state poisoned"))?;
        let created = s.first.values().max().copied().unwrap_or(t0);
        let mut l: Vec<Duration> = s
            .running
            .iter()
            .filter_map(|(n, r)| s.first.get(n).map(|f| r.saturating_duration_since(*f)))
            .collect();
        l.sort();
        (created.saturating_duration_since(t0), l)
    };
    let cm_rss_running = status_mb(cm_pid, "VmRSS:");

    // Deleting the Deployments (background propagation, kubectl's default): the garbage
    // collector deletes their ReplicaSets, then their pods.
    let t1 = Instant::now();
    for i in 0..count {
        api.delete(&format!("web-{i:03}"), &DeleteParams::background())
            .await
            .context("deleting a deployment")?;
    }
    let deleted_at = wait_until(&seen, stall, "garbage collection", |s| s.live.is_empty()).await?;
    watch.abort();
    Ok(Measured {
        to_created,
        to_running: running_at.saturating_duration_since(t0),
        latencies,
        to_deleted: deleted_at.saturating_duration_since(t1),
        cm_rss_running,
        cm_peak: status_mb(cm_pid, "VmHWM:"),
        server_rss: status_mb(server_pid, "VmRSS:"),
        server_peak: status_mb(server_pid, "VmHWM:"),
    })
}

struct Row {
    pods: usize,
    nodes: usize,
    baseline: Duration,
    m: Measured,
}

async fn run_one(args: &ControllersBenchArgs, pods: usize) -> anyhow::Result<Row> {
    let nodes = args.nodes.unwrap_or((pods / 50).max(10));
    let dir = tempfile::tempdir()?;
    let (mut cmd, addr, data, _etcd) = server_command(&args.backend, dir.path())?;
    cmd.arg("--disable-controllers");
    let mut server = Guard(cmd.spawn().context("starting rudder server")?);
    wait_ready(addr, &data, &mut server.0).await?;
    let client = admin_client(&data).await?;
    let cm = Guard(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "controller-manager",
                "--leader-elect=false",
                "--health-port=0",
            ])
            .arg("--kubeconfig")
            .arg(data.join("kubeconfig.yaml"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting rudder controller-manager")?,
    );
    let sim = rudder_sim::Sim::start(
        client.clone(),
        rudder_sim::SimOptions {
            nodes,
            concurrency: 64,
            ..Default::default()
        },
    )
    .await
    .context("starting the simulated nodes")?;
    let stall = Duration::from_secs(args.stall_seconds);
    eprintln!("== {pods} pods on {nodes} nodes");
    let baseline = baseline(&client, pods, args.creators, stall).await?;
    eprintln!(
        "  bare pods: all Running in {:.1} s",
        baseline.as_secs_f64()
    );
    let m = deployments(
        &client,
        pods,
        args.deployments,
        stall,
        cm.0.id(),
        server.0.id(),
    )
    .await?;
    eprintln!(
        "  deployments: all Running in {:.1} s, deleted in {:.1} s",
        m.to_running.as_secs_f64(),
        m.to_deleted.as_secs_f64()
    );
    sim.stop().await;
    Ok(Row {
        pods,
        nodes,
        baseline,
        m,
    })
}

pub async fn run(args: ControllersBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut rows = Vec::new();
    for &pods in &args.pods {
        rows.push(run_one(&args, pods).await?);
    }
    println!("Machine: {}", machine_summary());
    println!(
        "Command: rudder bench controllers --pods {} --deployments {} --creators {} --backend {}{}",
        args.pods
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        args.deployments,
        args.creators,
        args.backend,
        args.nodes
            .map(|n| format!(" --nodes {n}"))
            .unwrap_or_default()
    );
    println!(
        "The controller manager runs as its own process; the scheduler runs in the server; \
         simulated nodes run in the bench process. Baseline: the same number of bare pods \
         created by {} concurrent clients, in the same run.",
        args.creators
    );
    println!();
    println!(
        "| pods | deployments | nodes | bare pods → Running | pods/s | Deployments → all pods created | → all Running | pods/s | vs bare pods | pod created → Running p50 / p99 | delete Deployments → pods gone (GC) | pods/s | controller-manager RSS with all pods up (peak) | server RSS (peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    for r in &rows {
        let m = &r.m;
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {:.2}× | {:.0} ms / {:.0} ms | {} | {:.0} | {:.0} MB ({:.0} MB) | {:.0} MB ({:.0} MB) |",
            r.pods,
            args.deployments,
            r.nodes,
            s(r.baseline),
            rate(r.pods, r.baseline),
            s(m.to_created),
            s(m.to_running),
            rate(r.pods, m.to_running),
            rate(r.pods, m.to_running) / rate(r.pods, r.baseline).max(1e-9),
            percentile(&m.latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&m.latencies, 99.0).as_secs_f64() * 1e3,
            s(m.to_deleted),
            rate(r.pods, m.to_deleted),
            m.cm_rss_running,
            m.cm_peak,
            m.server_rss,
            m.server_peak,
        );
    }
    Ok(())
}
