//! `rudder bench netpol`: the cost of one NetworkPolicy sync at scale: rendering the node's
//! table from N policies and M pods, and replacing it with `nft -f -`, in a network namespace
//! the bench creates (`ip netns add`, root needed) so the machine's own rules are untouched.

use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;

#[derive(clap::Args)]
pub struct NetpolBenchArgs {
    /// NetworkPolicies (spread over the namespaces).
    #[arg(long, default_value_t = 1000)]
    pub policies: usize,
    /// Pods in the cluster (peers).
    #[arg(long, default_value_t = 1000)]
    pub pods: usize,
    /// Of those, pods on this node (each gets its chains; upstream's default limit is 110).
    #[arg(long, default_value_t = 110)]
    pub local_pods: usize,
    #[arg(long, default_value_t = 10)]
    pub namespaces: usize,
    /// Syncs to time (each renders and replaces the table).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

const NODE: &str = "bench-node";

/// Synthetic objects: pods labelled app=a<i%50>, tier=t<i%5>; each policy selects one app
/// in its namespace and allows two tiers on a numeric and a named port, one namespace label,
/// and egress to an ipBlock with an except.
fn objects(a: &NetpolBenchArgs) -> anyhow::Result<(Vec<NetworkPolicy>, Vec<Pod>, Vec<Namespace>)> {
    let nss = a.namespaces.max(1);
    let namespaces = (0..nss)
        .map(|n| serde_json::from_value(json!({"metadata": {"name": format!("ns{n}"), "labels": {"team": format!("team{}", n % 3)}}})))
        .collect::<Result<Vec<Namespace>, _>>()?;
    let pods = (0..a.pods)
        .map(|i| {
            let node = if i < a.local_pods { NODE } else { "other" };
            let ip = format!("10.42.{}.{}", i / 250, i % 250 + 2);
            serde_json::from_value(json!({
                "metadata": {"namespace": format!("ns{}", i % nss), "name": format!("p{i}"),
                    "labels": {"app": format!("a{}", i % 50), "tier": format!("t{}", i % 5)}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }))
        })
        .collect::<Result<Vec<Pod>, _>>()?;
    let policies = (0..a.policies)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"namespace": format!("ns{}", i % nss), "name": format!("np{i}")},
                "spec": {
                    "podSelector": {"matchLabels": {"app": format!("a{}", i % 50)}},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [
                        {"from": [{"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                            "values": [format!("t{}", i % 5), format!("t{}", (i + 1) % 5)]}]}}],
                         "ports": [{"port": 8000 + (i % 100) as i32}, {"port": "http"}]},
                        {"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team{}", i % 3)}}}],
                         "ports": [{"port": 9000, "endPort": 9100}]},
                    ],
                    "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": [format!("10.{}.0.0/16", i % 200 + 1)]}}]}],
                },
            }))
        })
        .collect::<Result<Vec<NetworkPolicy>, _>>()?;
    Ok((policies, pods, namespaces))
}

pub(crate) async fn nft_in(netns: &str, script: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running ip netns exec … nft")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    anyhow::ensure!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub async fn run(a: NetpolBenchArgs) -> anyhow::Result<()> {
    let (policies, pods, namespaces) = objects(&a)?;
    let netns = format!("rudder-bench-netpol-{}", std::process::id());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &netns])
        .status()
        .context("ip netns add (root needed)")?;
    anyhow::ensure!(st.success(), "ip netns add {netns} failed");
    let result = async {
        let (mut render, mut apply) = (Vec::new(), Vec::new());
        let mut size = (0, 0);
        for round in 0..a.rounds.max(1) {
            // A label change between rounds, so every sync has something new to apply.
            let mut pods = pods.clone();
            let changed = round % pods.len().max(1);
            if let Some(labels) = pods[changed].metadata.labels.as_mut() {
                labels.insert("tier".into(), "changed".into());
            }
            let t = Instant::now();
            let table = rudder_netpol::rules::render(NODE, &policies, &pods, &namespaces);
            render.push(t.elapsed());
            let script = rudder_netpol::nft::replace_script(&table);
            size = (table.len(), table.lines().count());
            let t = Instant::now();
            nft_in(&netns, &script).await?;
            apply.push(t.elapsed());
        }
        anyhow::Ok((render, apply, size))
    }
    .await;
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", &netns])
        .status();
    let (mut render, mut apply, (bytes, lines)) = result?;
    render.sort();
    apply.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "Command: rudder bench netpol --policies {} --pods {} --local-pods {} --namespaces {} --rounds {}",
        a.policies, a.pods, a.local_pods, a.namespaces, a.rounds
    );
    println!("Table: {bytes} bytes, {lines} lines");
    println!();
    println!("| step | p50 | max |");
    println!("|---|---|---|");
    println!(
        "| render (stores → text) | {} | {} |",
        ms(super::percentile(&render, 50.0)),
        ms(*render.last().unwrap_or(&Duration::ZERO))
    );
    println!(
        "| nft -f - (replace the table) | {} | {} |",
        ms(super::percentile(&apply, 50.0)),
        ms(*apply.last().unwrap_or(&Duration::ZERO))
    );
    Ok(())
}
