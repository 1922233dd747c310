//! `rudder bench proxy`: the service proxy's sync latency at scale — from an EndpointSlice
//! change in the proxier's caches to the rules being live (render the `ip kube-proxy` table,
//! apply it with one `nft -f -` transaction, which returns once the kernel committed it), in
//! a network namespace the bench creates (`ip netns add`, root needed). The watch delivery in
//! front of it is the API server's (`rudder bench api`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rudder_proxy::model::{Endpoint, PortKey, ServicePort};
use rudder_proxy::rules::{render, Previous, RuleConfig};

#[derive(clap::Args)]
pub struct ProxyBenchArgs {
    /// Service counts to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub services: Vec<usize>,
    /// Endpoints per service.
    #[arg(long, default_value_t = 2)]
    pub endpoints: usize,
    /// Endpoint changes to time per size.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

fn cluster(n: usize, per: usize) -> (Vec<ServicePort>, BTreeMap<PortKey, Vec<Endpoint>>) {
    let mut ports = Vec::with_capacity(n);
    let mut eps = BTreeMap::new();
    for i in 0..n {
        let key = PortKey {
            namespace: format!("ns{}", i % 100),
            name: format!("svc{i}"),
            port: "http".into(),
            protocol: "tcp".into(),
        };
        ports.push(ServicePort {
            key: key.clone(),
            cluster_ip: std::net::Ipv4Addr::from(0x0a2b_0000 + i as u32 + 2),
            port: 80,
            node_port: if i % 10 == 0 {
                30000 + (i / 10) as u16 % 2768
            } else {
                0
            },
            external_ips: vec![],
            load_balancer_ips: vec![],
            load_balancer_source_ranges: vec![],
            affinity_timeout: None,
            internal_policy_local: false,
            external_policy_local: false,
        });
        let list = (0..per)
            .map(|j| Endpoint {
                ip: std::net::Ipv4Addr::from(0x0a2a_0000 + (i * per + j) as u32 + 2),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                local: j == 0,
            })
            .collect();
        eps.insert(key, list);
    }
    ports.sort_by(|a, b| a.key.cmp(&b.key));
    (ports, eps)
}

pub async fn run(a: ProxyBenchArgs) -> anyhow::Result<()> {
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "Command: rudder bench proxy --services {} --endpoints {} --rounds {}",
        a.services
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(","),
        a.endpoints,
        a.rounds
    );
    println!();
    println!("| services | table lines | first sync | endpoint change → live p50 | max | of which render p50 |");
    println!("|---|---|---|---|---|---|");
    for &n in &a.services {
        let netns = format!("rudder-bench-proxy-{}-{n}", std::process::id());
        let st = std::process::Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .context("ip netns add (root needed)")?;
        anyhow::ensure!(st.success(), "ip netns add {netns} failed");
        let result = async {
            let cfg = RuleConfig::default();
            let (ports, mut eps) = cluster(n, a.endpoints.max(1));
            let t = Instant::now();
            let rs = render(&cfg, &ports, &eps, &Previous::default());
            super::netpol::nft_in(&netns, &rs.text).await?;
            let first = t.elapsed();
            let lines = rs.text.lines().count();
            let mut prev = Previous {
                chains: rs.chains,
                affinity_sets: rs.affinity_sets,
                signatures: rs.signatures,
                initialized: true,
            };
            let (mut total, mut rendering) = (Vec::new(), Vec::new());
            for round in 0..a.rounds.max(1) {
                // One pod of one service replaced (a new IP), as a rollout step does.
                let key = ports[(round * 7919) % ports.len()].key.clone();
                if let Some(list) = eps.get_mut(&key) {
                    list[0].ip = std::net::Ipv4Addr::from(0x0a2c_0000 + round as u32 + 2);
                }
                let t = Instant::now();
                let rs = render(&cfg, &ports, &eps, &prev);
                rendering.push(t.elapsed());
                super::netpol::nft_in(&netns, &rs.text).await?;
                total.push(t.elapsed());
                prev.chains = rs.chains;
                prev.signatures = rs.signatures;
            }
            anyhow::Ok((first, lines, total, rendering))
        }
        .await;
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &netns])
            .status();
        let (first, lines, mut total, mut rendering) = result?;
        total.sort();
        rendering.sort();
        println!(
            "| {n} | {lines} | {} | {} | {} | {} |",
            ms(first),
            ms(super::percentile(&total, 50.0)),
            ms(*total.last().unwrap_or(&Duration::ZERO)),
            ms(super::percentile(&rendering, 50.0)),
        );
    }
    Ok(())
}
