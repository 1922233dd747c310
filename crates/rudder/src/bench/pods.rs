//! `rudder bench pods`: pod start-up latency on one real node (create → Running seen by a
//! watch, then → Ready) for 1 and for 30 pods created at once, against upstream's SLO (p99
//! ≤ 5 s for stateless pods with pre-pulled images), and the node agent's RSS and CPU with 30
//! pods idle. The agent runs as its own process (`rudder agent`) with its own containerd, so
//! run this inside a network namespace (`ip netns exec`/`nsenter --net`): it sets up a pod
//! network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

use super::api::{rss_mb, server_command, wait_ready};
use super::scheduler::{admin_client, Guard};
use super::{machine_summary, percentile};

#[derive(clap::Args, Debug)]
pub struct PodsBenchArgs {
    /// Pods created at once, per round.
    #[arg(long, value_delimiter = ',', default_value = "1,30")]
    pods: Vec<usize>,
    /// Rounds per size (latencies are pooled).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The pods' image: present on the node (the built-in pause image by default).
    #[arg(long, default_value = "rudder.dev/pause:3.10")]
    image: String,
    /// How long the agent's idle CPU is measured with the last round's pods running.
    #[arg(long, default_value_t = 30)]
    idle_seconds: u64,
}

/// User + system CPU time of a process (USER_HZ is 100 on Linux).
pub(super) fn cpu_of(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(") ")?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent"}],
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
        },
    }))
    .unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates `n` pods at once; returns each pod's (→ Running, → Ready) latency.
async fn round(
    client: &kube::Client,
    n: usize,
    image: &str,
    tag: &str,
) -> anyhow::Result<Vec<(Duration, Duration)>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = (0..n).map(|i| format!("bench-{tag}-{i}")).collect();
    let stream = watcher(api.clone(), watcher::Config::default().labels("bench=pods"))
        .default_backoff()
        .applied_objects();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(Ok(p)) = stream.next().await {
            let _ = tx.send((Instant::now(), p));
        }
    });
    // Let the watch start before the clock does.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = names.iter().map(|name| {
        let (api, body) = (api.clone(), pod(name, image));
        async move {
            let t = Instant::now();
            api.create(&PostParams::default(), &body).await.map(|_| t)
        }
    });
    for (name, r) in names.iter().zip(futures::future::join_all(creates).await) {
        created.insert(name.clone(), r.context("creating a pod")?);
    }
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut ready: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while ready.len() < n {
        let Ok(Some((t, p))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            anyhow::bail!(
                "pods did not become Ready within 5 minutes ({} of {n} ready)",
                ready.len()
            );
        };
        let Some(name) = p.metadata.name.clone().filter(|n| created.contains_key(n)) else {
            continue;
        };
        if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") {
            running.entry(name.clone()).or_insert(t);
        }
        if is_ready(&p) {
            ready.entry(name).or_insert(t);
        }
    }
    watch.abort();
    Ok(names
        .iter()
        .map(|n| {
            let c = created[n];
            (
                running.get(n).copied().unwrap_or(ready[n]) - c,
                ready[n] - c,
            )
        })
        .collect())
}

async fn delete_all(client: &kube::Client) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("bench=pods"),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !api
        .list(&ListParams::default().labels("bench=pods"))
        .await?
        .items
        .is_empty()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "pods were not deleted within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

pub async fn run(args: PodsBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let (mut cmd, addr, data, _etcd) = server_command("redb", dir.path())?;
    let mut server = Guard(cmd.spawn().context("starting rudder server")?);
    wait_ready(addr, &data, &mut server.0).await?;
    let client = admin_client(&data).await?;
    let agent = Guard(
        std::process::Command::new(std::env::current_exe()?)
            .args(["agent", "--node-name", "bench-node"])
            .arg("--kubeconfig")
            .arg(data.join("kubeconfig.yaml"))
            .arg("--data-dir")
            .arg(dir.path().join("agent"))
            .args([
                "--eviction-hard",
                "memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
            ])
            .args(["--kubelet-port", "0"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting rudder agent")?,
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes.get_opt("bench-node").await?.is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the node did not become Ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Warm-up: the first pod also creates the bridge.
    round(&client, 1, &args.image, "warmup").await?;
    delete_all(&client).await?;
    let mut rows = Vec::new();
    let last = args.pods.len().saturating_sub(1);
    let mut idle = None;
    for (i, &n) in args.pods.iter().enumerate() {
        let mut running = Vec::new();
        let mut ready = Vec::new();
        for r in 0..args.rounds {
            let lat = round(&client, n, &args.image, &format!("{n}-{r}")).await?;
            running.extend(lat.iter().map(|l| l.0));
            ready.extend(lat.iter().map(|l| l.1));
            let keep = i == last && r + 1 == args.rounds;
            if keep {
                let pid = agent.0.id();
                let procs: Vec<u32> = std::iter::once(pid).chain(children(pid)).collect();
                let cpu0: Vec<Duration> = procs.iter().map(|p| cpu_of(*p)).collect();
                let t0 = Instant::now();
                tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
                let secs = t0.elapsed().as_secs_f64();
                let cpu: Vec<f64> = procs
                    .iter()
                    .zip(cpu0)
                    .map(|(p, c0)| (cpu_of(*p) - c0).as_secs_f64() / secs * 100.0)
                    .collect();
                idle = Some((
                    n,
                    rss_mb(pid),
                    cpu[0],
                    procs.get(1).map(|c| rss_mb(*c)),
                    cpu.get(1).copied(),
                ));
            }
            delete_all(&client).await?;
        }
        running.sort();
        ready.sort();
        rows.push((n, running, ready));
    }
    drop(agent);
    println!("Machine: {}", machine_summary());
    println!(
        "Command: rudder bench pods --pods {} --rounds {} --image {} (inside a network namespace)",
        args.pods
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(","),
        args.rounds,
        args.image
    );
    println!();
    println!("| pods at once | samples | create → Running p50 / p99 | create → Ready p50 / p99 | SLO (p99 ≤ 5 s) |");
    println!("|---|---|---|---|---|");
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    for (n, running, ready) in &rows {
        let p99 = percentile(ready, 99.0);
        println!(
            "| {n} | {} | {} / {} | {} / {} | {} |",
            ready.len(),
            ms(percentile(running, 50.0)),
            ms(percentile(running, 99.0)),
            ms(percentile(ready, 50.0)),
            ms(p99),
            if p99 <= Duration::from_secs(5) {
                "met"
            } else {
                "missed"
            }
        );
    }
    if let Some((n, rss, cpu, crss, ccpu)) = idle {
        println!();
        println!(
            "Idle with {n} pods, over {} s: rudder agent RSS {rss:.0} MB, CPU {cpu:.1} % of one core; its containerd RSS {:.0} MB, CPU {:.1} %.",
            args.idle_seconds,
            crss.unwrap_or(0.0),
            ccpu.unwrap_or(0.0)
        );
    }
    Ok(())
}
