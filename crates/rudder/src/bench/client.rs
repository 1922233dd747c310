//! `rudder bench client`: what an in-process component's client costs against the same
//! component talking to the same server over HTTPS (a kubeconfig client), side by side in one
//! process and one run: the measurement behind composing components in-process.

use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};

use super::{machine_summary, percentile};

/// Parses server flags exactly as `rudder server` would.
#[derive(Parser)]
struct ServerFlags {
    #[command(flatten)]
    args: crate::server::ServerArgs,
}

#[derive(clap::Args)]
pub struct ClientBenchArgs {
    /// Requests per operation and client.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// ConfigMaps in the listed namespace.
    #[arg(long, default_value_t = 1000)]
    list_size: usize,
}

struct Row {
    gets_per_s: f64,
    get_p50: Duration,
    get_p99: Duration,
    creates_per_s: f64,
    list_ms: f64,
}

async fn measure(client: kube::Client, ns: &str, args: &ClientBenchArgs) -> anyhow::Result<Row> {
    let api: Api<ConfigMap> = Api::namespaced(client, ns);
    let mut cm = ConfigMap::default();
    cm.metadata.generate_name = Some("c-".into());
    cm.data = Some([("k".to_string(), "v".to_string())].into());
    let started = Instant::now();
    let mut first = String::new();
    for _ in 0..args.requests {
        let made = api.create(&PostParams::default(), &cm).await?;
        if first.is_empty() {
            first = made.metadata.name.unwrap_or_default();
        }
    }
    let creates_per_s = args.requests as f64 / started.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(args.requests);
    let started = Instant::now();
    for _ in 0..args.requests {
        let t = Instant::now();
        api.get(&first).await?;
        lat.push(t.elapsed());
    }
    let gets_per_s = args.requests as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    let mut list_times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let l = api.list(&ListParams::default()).await?;
        anyhow::ensure!(l.items.len() >= args.requests, "short list");
        list_times.push(t.elapsed());
    }
    list_times.sort();
    Ok(Row {
        gets_per_s,
        get_p50: percentile(&lat, 50.0),
        get_p99: percentile(&lat, 99.0),
        creates_per_s,
        list_ms: percentile(&list_times, 50.0).as_secs_f64() * 1e3,
    })
}

pub async fn run(args: ClientBenchArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server_args = ServerFlags::parse_from([
        "server",
        "--bind-address",
        "127.0.0.1",
        "--https-listen-port",
        &port.to_string(),
        "--data-dir",
        &dir.path().display().to_string(),
    ])
    .args;
    let built = crate::server::build(&server_args).await?;
    built
        .server
        .ready
        .store(true, std::sync::atomic::Ordering::Release);
    let router = built.server.router();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tokio::spawn(rudder_apiserver::serve_tls(
        listener,
        built.pki.server_tls_config(),
        router.clone(),
        std::future::pending::<()>(),
    ));
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    rudder_pki::write_kubeconfig(
        &kubeconfig,
        &built
            .pki
            .admin_kubeconfig(format!("https://127.0.0.1:{port}")),
    )?;
    let inproc = crate::components::in_process_client(router, "system:kube-scheduler", &[]);
    let https = crate::components::kubeconfig_client(&kubeconfig).await?;
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(inproc.clone());
    for ns in ["inproc", "https"] {
        let mut n = k8s_openapi::api::core::v1::Namespace::default();
        n.metadata.name = Some(ns.into());
        ns_api.create(&PostParams::default(), &n).await?;
    }
    let args = ClientBenchArgs {
        requests: args.requests.max(args.list_size),
        list_size: args.list_size,
    };
    // Alternate so neither side always runs on a warmer process.
    let a = measure(inproc, "inproc", &args).await?;
    let b = measure(https, "https", &args).await?;
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    println!("Machine: {}", machine_summary());
    println!(
        "Command: rudder bench client --requests {} --list-size {}",
        args.requests, args.list_size
    );
    println!("Store: embedded (redb); one client, sequential requests.\n");
    println!("| operation | in-process | HTTPS (kubeconfig) | in-process / HTTPS |");
    println!("|---|---|---|---|");
    println!(
        "| GET ConfigMap | {:.0}/s | {:.0}/s | {:.2}× |",
        a.gets_per_s,
        b.gets_per_s,
        ratio(a.gets_per_s, b.gets_per_s)
    );
    println!(
        "| GET p50 / p99 | {:.0} µs / {:.0} µs | {:.0} µs / {:.0} µs | |",
        a.get_p50.as_secs_f64() * 1e6,
        a.get_p99.as_secs_f64() * 1e6,
        b.get_p50.as_secs_f64() * 1e6,
        b.get_p99.as_secs_f64() * 1e6
    );
    println!(
        "| create ConfigMap (durable) | {:.0}/s | {:.0}/s | {:.2}× |",
        a.creates_per_s,
        b.creates_per_s,
        ratio(a.creates_per_s, b.creates_per_s)
    );
    println!(
        "| list {} ConfigMaps (p50) | {:.1} ms | {:.1} ms | {:.2}× faster |",
        args.requests,
        a.list_ms,
        b.list_ms,
        ratio(b.list_ms, a.list_ms)
    );
    Ok(())
}
