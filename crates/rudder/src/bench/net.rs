//! `rudder bench net`: pod-to-pod TCP throughput between two nodes over a switch, with the pod
//! network's host-gw and vxlan backends programmed by `rudder-flannel` itself, against a direct
//! veth between the two pods' namespaces. Each "node" is a network namespace with a `cni0`
//! bridge and a pod namespace on it (as the CNI bridge plugin lays them out); the nodes share a
//! bridge in a "switch" namespace. Root is needed; nothing outside the namespaces it creates is
//! touched. The sender and receiver are plain TCP sockets in the pods' namespaces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct NetBenchArgs {
    /// Seconds each transfer runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Transfers per path (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// Namespaces made for one path, deleted on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: String) -> anyhow::Result<String> {
        ip(&["netns", "add", &name])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        self.0.push(name.clone());
        Ok(name)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

/// The benchmark's topology is built with iproute2 like the tests' (the data path under test is
/// what rudder-flannel programs over netlink).
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Runs `f` on a thread inside network namespace `ns`.
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("opening netns {ns}"))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid namespace fd; only this thread's network namespace changes.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            anyhow::ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))?
    })
}

/// Bytes per second from a sender in `from` to a receiver in `to` listening on `addr`.
fn transfer(from: &str, to: &str, addr: Ipv4Addr, seconds: u64) -> anyhow::Result<f64> {
    let port = 5201;
    let listener = in_netns(to, || TcpListener::bind(("0.0.0.0", port)))??;
    std::thread::scope(|s| {
        let receiver = s.spawn(move || -> std::io::Result<(u64, Duration)> {
            let (mut conn, _) = listener.accept()?;
            let mut buf = vec![0u8; 256 * 1024];
            let (mut total, start) = (0u64, Instant::now());
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    return Ok((total, start.elapsed()));
                }
                total += n as u64;
            }
        });
        in_netns(from, || -> std::io::Result<()> {
            let mut conn = TcpStream::connect_timeout(
                &SocketAddr::from((addr, port)),
                Duration::from_secs(5),
            )?;
            let buf = vec![0x5au8; 256 * 1024];
            let end = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < end {
                conn.write_all(&buf)?;
            }
            conn.shutdown(std::net::Shutdown::Write)
        })??;
        let (bytes, elapsed) = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the receiver panicked"))??;
        Ok(bytes as f64 / elapsed.as_secs_f64())
    })
}

/// Two pods joined by one veth pair: the baseline.
fn direct(tag: &str) -> anyhow::Result<(Namespaces, String, String, Ipv4Addr)> {
    let mut ns = Namespaces(Vec::new());
    let (a, b) = (ns.add(format!("{tag}da"))?, ns.add(format!("{tag}db"))?);
    ip(&[
        "link", "add", "eth0", "netns", &a, "type", "veth", "peer", "name", "eth0", "netns", &b,
    ])?;
    ip(&["-n", &a, "addr", "add", "10.99.0.1/24", "dev", "eth0"])?;
    ip(&["-n", &b, "addr", "add", "10.99.0.2/24", "dev", "eth0"])?;
    ip(&["-n", &a, "link", "set", "eth0", "up"])?;
    ip(&["-n", &b, "link", "set", "eth0", "up"])?;
    Ok((ns, a, b, Ipv4Addr::new(10, 99, 0, 2)))
}

/// Two nodes on a switch, a pod on each node's `cni0`, the backend programmed by rudder-flannel.
fn two_nodes(
    tag: &str,
    backend: rudder_flannel::Backend,
) -> anyhow::Result<(Namespaces, String, String, Ipv4Addr)> {
    let mut ns = Namespaces(Vec::new());
    let sw = ns.add(format!("{tag}sw"))?;
    ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &sw, "link", "set", "br0", "up"])?;
    let cluster_cidr: ipnet::Ipv4Net = "10.42.0.0/16".parse()?;
    let mut nodes = Vec::new();
    for i in 0..2u8 {
        let node = ns.add(format!("{tag}n{i}"))?;
        let pod = ns.add(format!("{tag}p{i}"))?;
        let public = Ipv4Addr::new(10, 254, 0, i + 1);
        let cidr: ipnet::Ipv4Net = format!("10.42.{i}.0/24").parse()?;
        let port = format!("s{i}");
        ip(&[
            "link", "add", "eth0", "netns", &node, "type", "veth", "peer", "name", &port, "netns",
            &sw,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &node,
            "addr",
            "add",
            &format!("{public}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &node, "link", "set", "eth0", "up"])?;
        let cfg = rudder_flannel::Config {
            node_name: format!("node-{i}"),
            backend,
            iface: None,
            public_ip: public,
            cluster_cidr,
        };
        // The backend's device first: its MTU is the pods'.
        let (mtu, mac) = in_netns(&node, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let dev = rudder_flannel::Devices::setup(&cfg).await?;
                    rudder_flannel::masq::apply(&rudder_flannel::masq::ruleset(cluster_cidr, cidr))
                        .await?;
                    anyhow::Ok((dev.mtu, dev.vtep_mac()))
                })
        })??;
        let gw = Ipv4Addr::from(u32::from(cidr.network()) + 1);
        let mtu_s = mtu.to_string();
        ip(&["-n", &node, "link", "add", "cni0", "type", "bridge"])?;
        ip(&[
            "-n",
            &node,
            "addr",
            "add",
            &format!("{gw}/24"),
            "dev",
            "cni0",
        ])?;
        ip(&["-n", &node, "link", "set", "cni0", "mtu", &mtu_s, "up"])?;
        ip(&[
            "link", "add", "veth0", "netns", &node, "mtu", &mtu_s, "type", "veth", "peer", "name",
            "eth0", "netns", &pod,
        ])?;
        ip(&["-n", &node, "link", "set", "veth0", "master", "cni0", "up"])?;
        ip(&["-n", &pod, "link", "set", "eth0", "mtu", &mtu_s, "up"])?;
        let pod_ip = Ipv4Addr::from(u32::from(cidr.network()) + 2);
        ip(&[
            "-n",
            &pod,
            "addr",
            "add",
            &format!("{pod_ip}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&[
            "-n",
            &pod,
            "route",
            "add",
            "default",
            "via",
            &gw.to_string(),
        ])?;
        nodes.push((node, pod, cfg, cidr, mac, pod_ip));
    }
    // Each node learns the other as it would from the other's Node object.
    for (i, (node, _, cfg, cidr, _, _)) in nodes.iter().enumerate() {
        let (_, _, other, other_cidr, other_mac, _) = &nodes[1 - i];
        let lease = rudder_flannel::Lease {
            node: other.node_name.clone(),
            subnet: *other_cidr,
            public_ip: other.public_ip,
            backend: backend.as_str().to_string(),
            vtep_mac: *other_mac,
        };
        in_netns(node, || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let dev = rudder_flannel::Devices::setup(cfg).await?;
                    dev.sync(cfg, Some(*cidr), &[lease]).await?;
                    anyhow::Ok(())
                })
        })??;
    }
    let (a, b) = (nodes[0].1.clone(), nodes[1].1.clone());
    Ok((ns, a, b, nodes[1].5))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(args: NetBenchArgs) -> anyhow::Result<()> {
    let tag = format!("rbn{}", std::process::id() % 100_000);
    println!("# rudder bench net ({})", super::machine_summary());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "pod-to-pod TCP, one stream, {} s × {} rounds, paths interleaved per round (median); \
         load average at start: {}\n",
        args.seconds,
        args.rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (seconds, rounds) = (args.seconds, args.rounds.max(1));
    let medians = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(&str, f64)>> {
        // All three paths exist at once (each in its own namespaces), so that each round runs
        // them back to back and a busy machine weighs on all of them alike.
        let paths = [
            ("direct veth (baseline)", direct(&format!("{tag}d"))?),
            (
                "host-gw",
                two_nodes(&format!("{tag}h"), rudder_flannel::Backend::HostGw)?,
            ),
            (
                "vxlan",
                two_nodes(&format!("{tag}v"), rudder_flannel::Backend::Vxlan)?,
            ),
        ];
        let mut samples = vec![Vec::new(); paths.len()];
        for _ in 0..rounds {
            for (i, (_, (_ns, a, b, addr))) in paths.iter().enumerate() {
                samples[i].push(transfer(a, b, *addr, seconds)? * 8.0 / 1e9);
            }
        }
        Ok(paths
            .iter()
            .zip(samples)
            .map(|((name, _), s)| (*name, median(s)))
            .collect())
    })
    .await??;
    println!("| path | Gbit/s | vs direct veth |");
    println!("|---|---|---|");
    let base = medians.first().map_or(1.0, |m| m.1);
    for (name, gbits) in medians {
        println!("| {name} | {gbits:.2} | {:.2} |", gbits / base);
    }
    Ok(())
}
