//! `rudder bench sim`: what N simulated nodes cost while idle. It starts `rudder server` (a
//! child process), runs the nodes in this process (nothing else runs here), lets them settle
//! and then reads this process's CPU time and memory over a window, and how many Lease renewals
//! got through (N / 10 s are due).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::api::{server_command, status_mb, wait_ready};
use super::machine_summary;

#[derive(clap::Args)]
pub struct SimBenchArgs {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Seconds of idle measurement (after the nodes registered and settled for 10 s).
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// The server's store.
    #[arg(long, default_value = "redb")]
    backend: String,
}

/// This process's user + system CPU time.
fn cpu_time() -> Duration {
    super::pods::cpu_of(std::process::id())
}

pub async fn run(args: SimBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let (mut cmd, addr, data, _etcd) = server_command(&args.backend, dir.path())?;
    let mut server = super::scheduler::Guard(cmd.spawn().context("starting rudder server")?);
    wait_ready(addr, &data, &mut server.0).await?;
    let client = super::scheduler::admin_client(&data).await?;
    let t = Instant::now();
    let sim = rudder_sim::Sim::start(
        client,
        rudder_sim::SimOptions {
            nodes: args.nodes,
            ..Default::default()
        },
    )
    .await
    .context("starting the simulated nodes")?;
    let registered = t.elapsed();
    eprintln!("{} nodes registered in {registered:.1?}", args.nodes);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu0, renewed0, t0) = (
        cpu_time(),
        sim.stats().leases_renewed.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64() / wall * 100.0;
    let renewed = (sim.stats().leases_renewed.load(Ordering::Relaxed) - renewed0) as f64 / wall;
    let me = std::process::id();
    let (rss, peak) = (status_mb(me, "VmRSS:"), status_mb(me, "VmHWM:"));
    let errors = sim.stats().api_errors.load(Ordering::Relaxed);
    sim.stop().await;
    println!("Machine: {}", machine_summary());
    println!(
        "Command: rudder bench sim --nodes {} --seconds {} --backend {}",
        args.nodes, args.seconds, args.backend
    );
    println!();
    println!("| nodes | registration | idle CPU (% of one core) | RSS (peak) | Lease renewals/s (due) | API errors |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1} s | {cpu:.2} % | {rss:.0} MB ({peak:.0} MB) | {renewed:.0} ({:.0}) | {errors} |",
        args.nodes,
        registered.as_secs_f64(),
        args.nodes as f64 / 10.0
    );
    Ok(())
}
