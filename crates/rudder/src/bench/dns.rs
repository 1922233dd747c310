//! `rudder bench dns`: the cluster DNS server's throughput and latency on one core. The server
//! (the real `rudder-dns` handler and hickory server loop, an index of N ClusterIP services)
//! runs on a current-thread runtime in a thread pinned to CPU 0; a UDP load client with a fixed
//! number of outstanding queries runs pinned to CPU 1 and asks A questions for random services.
//! dnsperf (Debian's package), when installed, is run against the same server for a
//! side-by-side figure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::{machine_summary, percentile};

#[derive(clap::Args)]
pub struct DnsBenchArgs {
    /// ClusterIP services in the index (spread over 10 namespaces).
    #[arg(long, default_value_t = 1000)]
    services: usize,
    /// Seconds of measurement per load tool (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Queries the Rust client keeps outstanding.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Skip dnsperf even when it is installed.
    #[arg(long)]
    no_dnsperf: bool,
}

/// Pins the calling thread to one CPU (taskset for a thread).
fn pin(cpu: usize) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only read
    // and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % cpus, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

fn service_name(i: usize) -> String {
    format!("svc-{i}.ns-{}.svc.cluster.local.", i % 10)
}

/// The index: N ClusterIP services with one named port each, and their namespaces.
fn index(n: usize) -> Arc<rudder_dns::Index> {
    use k8s_openapi::api::core::v1::{Namespace, Service};
    let index = Arc::new(rudder_dns::Index::new());
    let nss: Vec<Namespace> = (0..10)
        .map(|i| {
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("ns-{i}")}}))
                .unwrap_or_default()
        })
        .collect();
    index.replace_namespaces(&nss);
    let svcs: Vec<Service> = (0..n)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 10)},
                "spec": {"clusterIP": format!("10.43.{}.{}", i / 250 + 1, i % 250 + 1),
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            }))
            .unwrap_or_default()
        })
        .collect();
    index.replace_services(&svcs);
    index.replace_slices(&[]);
    index
}

/// Starts the server on its own pinned thread; returns its address and thread id.
fn start_server(n: usize) -> anyhow::Result<(SocketAddr, u32)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("dns-server".into())
        .spawn(move || {
            pin(0);
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let bound = match rudder_dns::Bound::bind(&["127.0.0.1:0"
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))])
                .await
                {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!(e)));
                        return;
                    }
                };
                let addr = bound.local_addrs()[0];
                let handler = rudder_dns::DnsHandler {
                    resolver: Arc::new(rudder_dns::Resolver::new(
                        "cluster.local",
                        index(n),
                        rudder_dns::Forwarder::new(vec![]),
                        vec![addr.ip()],
                    )),
                    metrics: Arc::new(rudder_dns::DnsMetrics::default()),
                };
                let _ = tx.send(Ok((addr, gettid())));
                let _ = bound.serve(handler, std::future::pending()).await;
            });
        })?;
    rx.recv().context("the DNS server thread did not start")?
}

struct ClientResult {
    answered: usize,
    timeouts: usize,
    latencies: Vec<Duration>,
}

/// One socket's closed loop: ask, wait for the answer (1 s at most), record, repeat.
async fn client_loop(server: SocketAddr, n: usize, until: Instant, warm: Instant) -> ClientResult {
    let mut r = ClientResult {
        answered: 0,
        timeouts: 0,
        latencies: Vec::new(),
    };
    let Ok(sock) = tokio::net::UdpSocket::bind("127.0.0.1:0").await else {
        return r;
    };
    if sock.connect(server).await.is_err() {
        return r;
    }
    let mut buf = [0u8; 1500];
    let mut id: u16 = fastrand::u16(..);
    while Instant::now() < until {
        id = id.wrapping_add(1);
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        let Ok(name) = Name::from_ascii(service_name(fastrand::usize(..n))) else {
            continue;
        };
        m.add_query(Query::query(name, RecordType::A));
        let Ok(bytes) = m.to_vec() else { continue };
        let sent = Instant::now();
        if sock.send(&bytes).await.is_err() {
            continue;
        }
        let got = loop {
            match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                Ok(Ok(len)) => match Message::from_bytes(&buf[..len]) {
                    Ok(a) if a.metadata.id == id => break true,
                    _ => continue,
                },
                _ => break false,
            }
        };
        if sent < warm {
            continue;
        }
        if got {
            r.answered += 1;
            r.latencies.push(sent.elapsed());
        } else {
            r.timeouts += 1;
        }
    }
    r
}

fn run_client(server: SocketAddr, args: &DnsBenchArgs) -> anyhow::Result<ClientResult> {
    let (n, c, seconds) = (args.services, args.concurrency, args.seconds);
    std::thread::scope(|s| {
        s.spawn(move || {
            pin(1);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let warm = Instant::now() + Duration::from_secs(1);
                let until = warm + Duration::from_secs(seconds);
                let tasks: Vec<_> = (0..c)
                    .map(|_| tokio::spawn(client_loop(server, n, until, warm)))
                    .collect();
                let mut all = ClientResult {
                    answered: 0,
                    timeouts: 0,
                    latencies: Vec::new(),
                };
                for t in tasks {
                    let r = t.await?;
                    all.answered += r.answered;
                    all.timeouts += r.timeouts;
                    all.latencies.extend(r.latencies);
                }
                Ok(all)
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the load client panicked"))?
    })
}

/// dnsperf's own figures (queries/s, average latency) against the server, or why not.
fn run_dnsperf(server: SocketAddr, args: &DnsBenchArgs) -> Result<(f64, f64, String), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("queries");
    let text: String = (0..args.services)
        .map(|i| format!("{} A\n", service_name(i).trim_end_matches('.')))
        .collect();
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "1", "dnsperf", "-s"])
        .arg(server.ip().to_string())
        .arg("-p")
        .arg(server.port().to_string())
        .arg("-d")
        .arg(&file)
        .args(["-l", &args.seconds.to_string()])
        .args(["-c", "1", "-T", "1", "-q", &args.concurrency.to_string()]);
    let out = cmd
        .output()
        .map_err(|e| format!("dnsperf not run ({e}); apt-get install dnsperf"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |label: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    match (field("Queries per second"), field("Average Latency (s)")) {
        (Some(qps), Some(lat)) => Ok((qps, lat, format!("{cmd:?}"))),
        _ => Err(format!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

pub async fn run(args: DnsBenchArgs) -> anyhow::Result<()> {
    let (server, tid) = start_server(args.services)?;
    let cpu0 = super::pods::cpu_of(tid);
    let t0 = Instant::now();
    let r = tokio::task::block_in_place(|| run_client(server, &args))?;
    let wall = t0.elapsed().as_secs_f64();
    let server_cpu = (super::pods::cpu_of(tid) - cpu0).as_secs_f64() / wall * 100.0;
    let mut lat = r.latencies;
    lat.sort();
    let qps = r.answered as f64 / args.seconds as f64;
    println!("Machine: {}", machine_summary());
    println!(
        "Command: rudder bench dns --services {} --seconds {} --concurrency {}",
        args.services, args.seconds, args.concurrency
    );
    println!();
    println!("| load tool | services | outstanding | queries/s | p50 | p99 | timeouts | server CPU (% of its one core) | queries per server CPU-second |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| rudder (Rust, UDP) | {} | {} | {qps:.0} | {:.0?} | {:.0?} | {} | {server_cpu:.0} % | {:.0} |",
        args.services,
        args.concurrency,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        r.timeouts,
        qps / (server_cpu / 100.0).max(0.01),
    );
    if !args.no_dnsperf {
        let cpu0 = super::pods::cpu_of(tid);
        let t0 = Instant::now();
        match tokio::task::block_in_place(|| run_dnsperf(server, &args)) {
            Ok((dqps, avg, cmd)) => {
                let wall = t0.elapsed().as_secs_f64();
                let cpu = (super::pods::cpu_of(tid) - cpu0).as_secs_f64() / wall * 100.0;
                println!(
                    "| dnsperf 2.10 (`-c 1 -T 1 -q {}`) | {} | {} | {dqps:.0} | avg {:.0?} | — | — | {cpu:.0} % | {:.0} |",
                    args.concurrency,
                    args.services,
                    args.concurrency,
                    Duration::from_secs_f64(avg),
                    dqps / (cpu / 100.0).max(0.01),
                );
                println!();
                println!(
                    "dnsperf/rudder client ratio: {:.2}; dnsperf command: {cmd}",
                    dqps / qps.max(1.0)
                );
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    Ok(())
}
