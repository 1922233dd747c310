//! `rudder bench store`: the embedded store and etcd measured side by side in one run.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{RangeRequest, Store, WriteOptions};

use super::{machine_summary, percentile};

#[derive(clap::Args)]
pub struct StoreBenchArgs {
    /// Backends to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "redb,etcd")]
    backends: Vec<String>,
    /// Seconds each write and read workload runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Directory for the data (default: a temporary directory on the same disk as /tmp).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Number of watchers in the watch-latency workload.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
}

#[derive(Default, Clone)]
struct Results {
    writes: Vec<(usize, f64)>,
    reads_per_s: f64,
    list_10k: Duration,
    watch_p50: Duration,
    watch_p99: Duration,
    watch_samples: usize,
}

/// A value about the size of a small ConfigMap in JSON.
fn value() -> Bytes {
    let mut v = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"bench","namespace":"default"},"data":{"k":""#.to_vec();
    v.extend(std::iter::repeat_n(b'x', 300));
    v.extend_from_slice(b"\"}}");
    Bytes::from(v)
}

pub async fn run(args: StoreBenchArgs) -> anyhow::Result<()> {
    let base = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let fsyncs = fsync_rate(base.path())?;
    let mut all = Vec::new();
    for name in &args.backends {
        eprintln!("== {name}");
        let (store, _guard) = open(name, base.path()).await?;
        let r = measure(store, &args).await?;
        all.push((name.clone(), r));
    }
    print_report(&args, &all, fsyncs);
    Ok(())
}

/// Keeps a backend's process alive for the measurement (dropping it stops etcd).
enum Guard {
    None,
    #[allow(dead_code)]
    Etcd(Box<rudder_store_etcd::testing::EtcdProcess>),
}

async fn open(name: &str, dir: &std::path::Path) -> anyhow::Result<(Arc<dyn Store>, Guard)> {
    match name {
        "redb" => {
            let s = rudder_store_redb::RedbStore::open(
                dir.join("bench.redb"),
                rudder_store_redb::RedbOptions::default(),
            )
            .await?;
            Ok((Arc::new(s), Guard::None))
        }
        "etcd" => {
            let p = rudder_store_etcd::testing::EtcdProcess::start_in(&dir.join("etcd"))
                .context("starting etcd (apt-get install etcd-server)")?;
            let s = rudder_store_etcd::EtcdStore::connect(rudder_store_etcd::EtcdConfig {
                endpoints: vec![p.endpoint()],
                ..Default::default()
            })
            .await?;
            Ok((Arc::new(s), Guard::Etcd(Box::new(p))))
        }
        other => anyhow::bail!("unknown backend {other:?} (expected redb or etcd)"),
    }
}

async fn measure(s: Arc<dyn Store>, args: &StoreBenchArgs) -> anyhow::Result<Results> {
    let mut r = Results::default();
    let secs = Duration::from_secs(args.seconds);
    for writers in [1usize, 16, 64] {
        let rate = write_rate(&s, writers, secs).await?;
        eprintln!("  writes/s with {writers} writers: {rate:.0}");
        r.writes.push((writers, rate));
    }
    // 10,000 keys for the read and list workloads.
    fill(&s, "/registry/configmaps/list/", 10_000).await?;
    r.reads_per_s = read_rate(&s, 16, secs).await?;
    eprintln!("  point reads/s: {:.0}", r.reads_per_s);
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let resp = s
            .range(RangeRequest {
                prefix: "/registry/configmaps/list/".into(),
                ..Default::default()
            })
            .await?;
        anyhow::ensure!(resp.kvs.len() == 10_000, "listed {} keys", resp.kvs.len());
        lists.push(t.elapsed());
    }
    lists.sort();
    r.list_10k = lists[lists.len() / 2];
    eprintln!("  10k-key list: {:?}", r.list_10k);
    let (p50, p99, n) = watch_latency(&s, args.watchers, 500).await?;
    r.watch_p50 = p50;
    r.watch_p99 = p99;
    r.watch_samples = n;
    eprintln!("  watch delivery p50 {p50:?} p99 {p99:?} ({n} deliveries)");
    Ok(r)
}

async fn fill(s: &Arc<dyn Store>, prefix: &str, n: usize) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let s = s.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                for i in (t..n).step_by(32) {
                    s.create(&format!("{prefix}{i:06}"), value(), WriteOptions::default())
                        .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn write_rate(s: &Arc<dyn Store>, writers: usize, dur: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let key = format!("/registry/configmaps/w{writers}/{w}-{n}");
                    s.create(&key, value(), WriteOptions::default()).await?;
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn read_rate(s: &Arc<dyn Store>, readers: usize, dur: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let deadline = start + dur;
    let tasks: Vec<_> = (0..readers)
        .map(|r| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let mut i = r * 7919;
                while Instant::now() < deadline {
                    i = (i + 104_729) % 10_000;
                    let key = format!("/registry/configmaps/list/{i:06}");
                    let (kv, _) = s.get(&key, None).await?;
                    anyhow::ensure!(kv.is_some(), "key {key} missing");
                    n += 1;
                }
                anyhow::Ok(n)
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Latency from issuing a write to its event reaching each of `watchers` watchers.
async fn watch_latency(
    s: &Arc<dyn Store>,
    watchers: usize,
    writes: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let prefix = "/registry/configmaps/watch/";
    let from = s.current_revision().await?;
    let mut handles = Vec::new();
    for _ in 0..watchers {
        let mut w = s.watch(prefix, from).await?;
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(writes);
            while seen.len() < writes {
                match tokio::time::timeout(Duration::from_secs(30), w.next()).await {
                    Ok(Some(Ok(ev))) => seen.push((ev.revision(), Instant::now())),
                    Ok(Some(Err(e))) => return Err(anyhow::anyhow!("watch failed: {e}")),
                    Ok(None) => anyhow::bail!("watch ended early"),
                    Err(_) => anyhow::bail!("watch stalled"),
                }
            }
            Ok(seen)
        }));
    }
    let mut issued = HashMap::with_capacity(writes);
    for i in 0..writes {
        let t0 = Instant::now();
        let rev = s
            .create(&format!("{prefix}{i:06}"), value(), WriteOptions::default())
            .await?;
        issued.insert(rev, t0);
        // Pace the writes a little so we measure delivery, not a queue building up.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut lat = Vec::with_capacity(writes * watchers);
    for h in handles {
        for (rev, at) in h.await?? {
            let t0 = issued
                .get(&rev)
                .with_context(|| format!("event for unknown revision {rev}"))?;
            lat.push(at.saturating_duration_since(*t0));
        }
    }
    lat.sort();
    Ok((percentile(&lat, 50.0), percentile(&lat, 99.0), lat.len()))
}

/// Synchronous 4 KiB write + fdatasync round trips per second on the data directory's disk.
pub(super) fn fsync_rate(dir: &std::path::Path) -> anyhow::Result<f64> {
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let buf = vec![0u8; 4096];
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(1) {
        f.write_all(&buf)?;
        f.sync_data()?;
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(rate)
}

fn print_report(args: &StoreBenchArgs, all: &[(String, Results)], fsyncs: f64) {
    println!("Machine: {}", machine_summary());
    println!("Disk: {fsyncs:.0} fdatasync/s (4 KiB, one thread) on the data directory");
    println!(
        "Command: rudder bench store --backends {} --seconds {} --watchers {}",
        args.backends.join(","),
        args.seconds,
        args.watchers
    );
    println!();
    let mut header = String::from("| workload |");
    let mut rule = String::from("|---|");
    for (name, _) in all {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---|");
    }
    let ratio = all.len() == 2;
    if ratio {
        header.push_str(&format!(" {} / {} |", all[0].0, all[1].0));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");
    let row = |label: &str, vals: Vec<f64>, fmt: &dyn Fn(f64) -> String, higher_better: bool| {
        let mut line = format!("| {label} |");
        for v in &vals {
            line.push_str(&format!(" {} |", fmt(*v)));
        }
        if vals.len() == 2 && vals[0] > 0.0 && vals[1] > 0.0 {
            let r = if higher_better {
                vals[0] / vals[1]
            } else {
                vals[1] / vals[0]
            };
            line.push_str(&format!(" {r:.2}× |"));
        }
        println!("{line}");
    };
    let per_s = |v: f64| format!("{v:.0}/s");
    let ms = |v: f64| format!("{v:.2} ms");
    for (i, (writers, _)) in all[0].1.writes.iter().enumerate() {
        let vals = all.iter().map(|(_, r)| r.writes[i].1).collect();
        row(
            &format!("durable creates, {writers} writer(s)"),
            vals,
            &per_s,
            true,
        );
    }
    row(
        "point reads, 16 readers",
        all.iter().map(|(_, r)| r.reads_per_s).collect(),
        &per_s,
        true,
    );
    row(
        "list 10,000 keys (median of 5)",
        all.iter()
            .map(|(_, r)| r.list_10k.as_secs_f64() * 1e3)
            .collect(),
        &ms,
        false,
    );
    row(
        &format!("watch delivery p50, {} watchers", args.watchers),
        all.iter()
            .map(|(_, r)| r.watch_p50.as_secs_f64() * 1e3)
            .collect(),
        &ms,
        false,
    );
    row(
        &format!("watch delivery p99, {} watchers", args.watchers),
        all.iter()
            .map(|(_, r)| r.watch_p99.as_secs_f64() * 1e3)
            .collect(),
        &ms,
        false,
    );
    if ratio {
        println!("\nRatios: > 1 means {} is better.", all[0].0);
    }
}
