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
use super::pods::cpu_of;
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

/// CPU used by the server, the controller manager and the bench process itself (creators,
/// watches and simulated nodes) over a phase, in cores (CPU seconds per wall second): on two
/// cores, which of them saturates says what limits the phase.
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    server: f64,
    cm: f64,
    bench: f64,
}

struct CpuMark {
    at: Instant,
    pids: [u32; 3],
    cpu: [Duration; 3],
}

impl CpuMark {
    fn start(server_pid: u32, cm_pid: u32) -> Self {
        let pids = [server_pid, cm_pid, std::process::id()];
        Self {
            at: Instant::now(),
            pids,
            cpu: pids.map(cpu_of),
        }
    }

    fn until(&self, end: Instant) -> CpuSplit {
        let wall = end
            .saturating_duration_since(self.at)
            .as_secs_f64()
            .max(1e-9);
        let used = |i: usize| {
            cpu_of(self.pids[i])
                .saturating_sub(self.cpu[i])
                .as_secs_f64()
                / wall
        };
        CpuSplit {
            server: used(0),
            cm: used(1),
            bench: used(2),
        }
    }
}

/// Writes the API server has answered, per `verb resource[/subresource]`, from its
/// `apiserver_request_total`: what each phase asked of the server's write path.
async fn write_counts(client: &kube::Client) -> anyhow::Result<HashMap<String, f64>> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .context("building the metrics request")?;
    let text = client
        .request_text(req)
        .await
        .context("reading the server's metrics")?;
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !matches!(
            verb.as_str(),
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        ) {
            continue;
        }
        let (resource, sub, code) = (label("resource"), label("subresource"), label("code"));
        let mut key = if sub.is_empty() {
            format!("{verb} {resource}")
        } else {
            format!("{verb} {resource}/{sub}")
        };
        // Refused writes (conflicts above all) cost the server too; they are counted apart.
        if !code.starts_with('2') {
            key = format!("{key} → {code}");
        }
        *out.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

fn delta(after: HashMap<String, f64>, before: &HashMap<String, f64>) -> HashMap<String, f64> {
    after
        .into_iter()
        .map(|(k, v)| {
            let d = v - before.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect()
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

struct Baseline {
    /// Until the creators' last create was answered: the API server's write rate for pods.
    to_created: Duration,
    to_running: Duration,
    cpu: CpuSplit,
    writes: HashMap<String, f64>,
}

/// Bare pods created by `creators` concurrent clients; the time until all were created and
/// until all are Running.
async fn baseline(
    client: &kube::Client,
    pods: usize,
    creators: usize,
    stall: Duration,
    pids: (u32, u32),
) -> anyhow::Result<Baseline> {
    let ns = "bench-direct";
    create_namespace(client, ns).await?;
    let (seen, watch) = watch_pods(client.clone(), ns).await?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writes = write_counts(client).await?;
    let cpu = CpuMark::start(pids.0, pids.1);
    let t0 = cpu.at;
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
    let to_created = t0.elapsed();
    let end = wait_until(&seen, stall, "bare pods", |s| s.running.len() >= pods).await?;
    let cpu = cpu.until(end);
    let writes = delta(write_counts(client).await?, &writes);
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
    Ok(Baseline {
        to_created,
        to_running: end.saturating_duration_since(t0),
        cpu,
        writes,
    })
}

struct Measured {
    to_created: Duration,
    to_running: Duration,
    /// Creation → Running per pod.
    latencies: Vec<Duration>,
    cpu: CpuSplit,
    writes: HashMap<String, f64>,
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
    let writes = write_counts(client).await?;
    let cpu = CpuMark::start(server_pid, cm_pid);
    let t0 = cpu.at;
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
    let cpu = cpu.until(running_at);
    let writes = delta(write_counts(client).await?, &writes);
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
        cpu,
        writes,
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
    baseline: Baseline,
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
    let baseline = baseline(
        &client,
        pods,
        args.creators,
        stall,
        (server.0.id(), cm.0.id()),
    )
    .await?;
    eprintln!(
        "  bare pods: all Running in {:.1} s",
        baseline.to_running.as_secs_f64()
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
        "| pods | deployments | nodes | bare pods → all created | Deployments → all created | creation rate vs bare | bare pods → all Running | Deployments → all Running | vs bare | Deployment pod created → Running p50 / p99 | delete Deployments → pods gone (GC) | controller-manager RSS with all pods up (peak) | server RSS (peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let s = |d: Duration, n: usize| {
        format!(
            "{:.1} s ({:.0}/s)",
            d.as_secs_f64(),
            n as f64 / d.as_secs_f64().max(1e-9)
        )
    };
    // Same pod count, so the rate ratio is the inverse ratio of the times.
    let vs = |bare: Duration, ours: Duration| bare.as_secs_f64() / ours.as_secs_f64().max(1e-9);
    for r in &rows {
        let (m, b) = (&r.m, &r.baseline);
        println!(
            "| {} | {} | {} | {} | {} | {:.2}× | {} | {} | {:.2}× | {:.0} ms / {:.0} ms | {} | {:.0} MB ({:.0} MB) | {:.0} MB ({:.0} MB) |",
            r.pods,
            args.deployments,
            r.nodes,
            s(b.to_created, r.pods),
            s(m.to_created, r.pods),
            vs(b.to_created, m.to_created),
            s(b.to_running, r.pods),
            s(m.to_running, r.pods),
            vs(b.to_running, m.to_running),
            percentile(&m.latencies, 50.0).as_secs_f64() * 1e3,
            percentile(&m.latencies, 99.0).as_secs_f64() * 1e3,
            s(m.to_deleted, r.pods),
            m.cm_rss_running,
            m.cm_peak,
            m.server_rss,
            m.server_peak,
        );
    }
    println!();
    println!(
        "CPU used until all pods were Running, in cores (the machine has {}): server (API server and scheduler) / controller manager / bench process (creators, watches, simulated nodes)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| pods | bare pods | Deployments |");
    println!("|---|---|---|");
    let c = |c: &CpuSplit| format!("{:.2} / {:.2} / {:.2}", c.server, c.cm, c.bench);
    for r in &rows {
        println!("| {} | {} | {} |", r.pods, c(&r.baseline.cpu), c(&r.m.cpu));
    }
    for r in &rows {
        println!();
        println!(
            "Writes the API server answered per pod until all {} pods were Running (from its apiserver_request_total; 0.01 and up):",
            r.pods
        );
        println!();
        println!("| request | bare pods | Deployments |");
        println!("|---|---|---|");
        let per_pod = |m: &HashMap<String, f64>, k: &str| {
            m.get(k).copied().unwrap_or(0.0) / r.pods.max(1) as f64
        };
        let mut keys: Vec<&String> = r.baseline.writes.keys().chain(r.m.writes.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.sort_by(|a, b| per_pod(&r.m.writes, b).total_cmp(&per_pod(&r.m.writes, a)));
        for k in keys {
            let (b, d) = (per_pod(&r.baseline.writes, k), per_pod(&r.m.writes, k));
            if b.max(d) >= 0.01 {
                println!("| {k} | {b:.2} | {d:.2} |");
            }
        }
        let total = |m: &HashMap<String, f64>| m.values().sum::<f64>() / r.pods.max(1) as f64;
        println!(
            "| all writes | {:.2} | {:.2} |",
            total(&r.baseline.writes),
            total(&r.m.writes)
        );
    }
    Ok(())
}
