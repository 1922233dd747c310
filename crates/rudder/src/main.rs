//! The `rudder` binary: one executable for every role of a cluster.

mod agent;
mod bench;
mod components;
mod controllers_cmd;
mod dns_cmd;
mod image_cmd;
mod join;
mod proxy_cmd;
mod scheduler_cmd;
mod secrets_encrypt;
mod server;
mod sim_cmd;

use clap::{Parser, Subcommand};

// glibc's malloc spent a quarter to a third of the API server's CPU under concurrent writes
// (arena contention and chunk consolidation in `perf`); mimalloc's per-thread heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rudder",
    version,
    about = "A Kubernetes-compatible cluster in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: the Kubernetes API server on the embedded store (or etcd).
    Server(Box<server::ServerArgs>),
    /// Run a node: the kubelet (and its containerd), joining a server with its token.
    Agent(agent::AgentArgs),
    /// Run the scheduler standalone against a cluster (Rudder's or upstream's).
    Scheduler(scheduler_cmd::SchedulerArgs),
    /// Run the controller manager standalone against a cluster (Rudder's or upstream's).
    ControllerManager(controllers_cmd::ControllerManagerArgs),
    /// Run the service proxy standalone (kube-proxy's nftables mode) for a node.
    Proxy(proxy_cmd::ProxyArgs),
    /// Run simulated nodes (hollow kubelets, no containers) against a cluster.
    Sim(sim_cmd::SimArgs),
    /// Run the cluster DNS standalone against a cluster (Rudder's or upstream's).
    Dns(dns_cmd::DnsArgs),
    /// Import image archives into the node's containerd, or list its images.
    Image(image_cmd::ImageArgs),
    /// Encryption of Secrets at rest: status, key rotation, re-encryption (as k3s's).
    SecretsEncrypt(secrets_encrypt::Args),
    /// Measure Rudder's components; results are printed as a Markdown table.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // hickory's server logs every DNS request at info.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Bench { what } => runtime.block_on(bench::run(what)),
        Command::Server(args) => runtime.block_on(server::run(*args)),
        Command::Agent(args) => runtime.block_on(agent::run(args)),
        Command::Scheduler(args) => runtime.block_on(scheduler_cmd::run(args)),
        Command::ControllerManager(args) => runtime.block_on(controllers_cmd::run(args)),
        Command::Proxy(args) => runtime.block_on(proxy_cmd::run(args)),
        Command::Sim(args) => runtime.block_on(sim_cmd::run(args)),
        Command::Image(args) => runtime.block_on(image_cmd::run(args)),
        Command::SecretsEncrypt(args) => runtime.block_on(secrets_encrypt::run(args)),
        Command::Dns(args) => runtime.block_on(dns_cmd::run(args)),
    }
}
