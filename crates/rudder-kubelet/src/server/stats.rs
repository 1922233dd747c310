//! `/stats/summary` (upstream's Summary API, what metrics-server reads) and
//! `/metrics/resource` (the resource metrics in Prometheus text), from the cgroup v1 files of
//! the node, its pods and their containers (cpuacct and memory controllers, as cAdvisor reads
//! them on this kind of host).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Ctx;
use crate::cri::{api as cri, labels};

/// The previous cumulative CPU reading per cgroup, for `usageNanoCores`.
#[derive(Default)]
pub struct CpuRates {
    last: Mutex<HashMap<PathBuf, (u64, Instant)>>,
}

impl CpuRates {
    fn rate(&self, cgroup: &Path, total_ns: u64) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().ok()?;
        let prev = last.insert(cgroup.to_path_buf(), (total_ns, now));
        let (p, t) = prev?;
        let secs = now.duration_since(t).as_secs_f64();
        (secs > 0.0 && total_ns >= p).then(|| ((total_ns - p) as f64 / secs) as u64)
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn memory_stat(dir: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join("memory.stat"))
        .ok()?
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
}

/// (cpu json, memory json, cumulative cpu seconds, working set) of a cgroup path.
fn cgroup_stats(rates: &CpuRates, rel: &str, now: &str) -> Option<(Value, Value, f64, u64)> {
    let rel = rel.trim_start_matches('/');
    let cpu_dir = Path::new("/sys/fs/cgroup/cpuacct").join(rel);
    let mem_dir = Path::new("/sys/fs/cgroup/memory").join(rel);
    let cpu_total = read_u64(&cpu_dir.join("cpuacct.usage"))?;
    let usage = read_u64(&mem_dir.join("memory.usage_in_bytes")).unwrap_or(0);
    let inactive = memory_stat(&mem_dir, "total_inactive_file").unwrap_or(0);
    let ws = usage.saturating_sub(inactive);
    let mut cpu = json!({"time": now, "usageCoreNanoSeconds": cpu_total});
    if let Some(r) = rates.rate(&cpu_dir, cpu_total) {
        cpu["usageNanoCores"] = json!(r);
    }
    let memory = json!({
        "time": now,
        "usageBytes": usage,
        "workingSetBytes": ws,
        "rssBytes": memory_stat(&mem_dir, "total_rss").unwrap_or(0),
        "pageFaults": memory_stat(&mem_dir, "total_pgfault").unwrap_or(0),
        "majorPageFaults": memory_stat(&mem_dir, "total_pgmajfault").unwrap_or(0),
    });
    Some((cpu, memory, cpu_total as f64 / 1e9, ws))
}

struct Sample {
    summary: Value,
    /// (namespace, pod, container, cpu seconds, working set)
    containers: Vec<(String, String, String, f64, u64)>,
    pods: Vec<(String, String, f64, u64)>,
    node: (f64, u64),
}

async fn sample(ctx: &Ctx) -> Sample {
    let now = jiff::Timestamp::now().to_string();
    let cfg = &ctx.pods.cfg;
    let rates = &ctx.rates;
    let containers = ctx.cri.list_containers().await.unwrap_or_default();
    let mut pods_json = Vec::new();
    let mut cs_out = Vec::new();
    let mut pods_out = Vec::new();
    for pod in ctx.pods.all_pods() {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let qos = pod
            .spec
            .as_ref()
            .map(crate::pods::status::qos_class)
            .unwrap_or("BestEffort");
        let parent = crate::pods::runtime::cgroup_parent(&cfg.cgroup_root, qos, &uid);
        let mut cjson = Vec::new();
        for c in containers.iter().filter(|c| {
            c.labels.get(labels::POD_UID) == Some(&uid)
                && c.state == cri::ContainerState::ContainerRunning as i32
        }) {
            let cname = c
                .labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_default();
            if let Some((cpu, mem, secs, ws)) =
                cgroup_stats(rates, &format!("{parent}/{}", c.id), &now)
            {
                cjson.push(json!({"name": cname, "startTime": crate::pods::status::time_from_nanos(c.created_at), "cpu": cpu, "memory": mem}));
                cs_out.push((ns.clone(), name.clone(), cname, secs, ws));
            }
        }
        let Some((cpu, mem, secs, ws)) = cgroup_stats(rates, &parent, &now) else {
            continue;
        };
        pods_out.push((ns.clone(), name.clone(), secs, ws));
        pods_json.push(json!({
            "podRef": {"name": name, "namespace": ns, "uid": uid},
            "startTime": pod.status.as_ref().and_then(|s| s.start_time.clone()),
            "containers": cjson,
            "cpu": cpu,
            "memory": mem,
        }));
    }
    let (node_cpu, node_mem, node_secs, node_ws) =
        cgroup_stats(rates, "/", &now).unwrap_or((json!({}), json!({}), 0.0, 0));
    let mut node_mem = node_mem;
    if let Some(total) = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines().find_map(|l| {
            l.strip_prefix("MemTotal:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
    }) {
        node_mem["availableBytes"] = json!((total * 1024).saturating_sub(node_ws));
    }
    let fs = crate::config::statvfs(&cfg.agent_dir)
        .map(|(cap, avail)| json!({"time": now, "availableBytes": avail, "capacityBytes": cap, "usedBytes": cap - avail}))
        .unwrap_or(json!({}));
    let summary = json!({
        "node": {
            "nodeName": cfg.node_name,
            "startTime": now,
            "cpu": node_cpu,
            "memory": node_mem,
            "fs": fs,
            "runtime": {"imageFs": fs},
        },
        "pods": pods_json,
    });
    Sample {
        summary,
        containers: cs_out,
        pods: pods_out,
        node: (node_secs, node_ws),
    }
}

pub(super) async fn summary(State(ctx): State<Ctx>) -> Response {
    let s = sample(&ctx).await;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        s.summary.to_string(),
    )
        .into_response()
}

/// The kubelet's `/metrics/resource` (metrics-server's source since 0.6).
pub(super) async fn resource_metrics(State(ctx): State<Ctx>) -> Response {
    let s = sample(&ctx).await;
    let ms = jiff::Timestamp::now().as_millisecond();
    let mut out = String::new();
    let _ = writeln!(out, "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total {} {ms}", s.node.0);
    let _ = writeln!(out, "# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes\n# TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes {} {ms}", s.node.1);
    let _ = writeln!(out, "# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds\n# TYPE pod_cpu_usage_seconds_total counter");
    for (ns, pod, secs, _) in &s.pods {
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{namespace=\"{ns}\",pod=\"{pod}\"}} {secs} {ms}"
        );
    }
    let _ = writeln!(out, "# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes\n# TYPE pod_memory_working_set_bytes gauge");
    for (ns, pod, _, ws) in &s.pods {
        let _ = writeln!(
            out,
            "pod_memory_working_set_bytes{{namespace=\"{ns}\",pod=\"{pod}\"}} {ws} {ms}"
        );
    }
    let _ = writeln!(out, "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter");
    for (ns, pod, c, secs, _) in &s.containers {
        let _ = writeln!(out, "container_cpu_usage_seconds_total{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {secs} {ms}");
    }
    let _ = writeln!(out, "# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes\n# TYPE container_memory_working_set_bytes gauge");
    for (ns, pod, c, _, ws) in &s.containers {
        let _ = writeln!(out, "container_memory_working_set_bytes{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {ws} {ms}");
    }
    let _ = writeln!(out, "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0");
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    )
        .into_response()
}
