//! End to end: the node controllers of `rudder server` with simulated nodes, driven by the real
//! kubectl, on both store backends. A node whose `rudder sim` process is killed stops renewing
//! its Lease and, after `--node-monitor-grace-period`, is marked Ready=Unknown with the
//! unreachable taints (node-lifecycle-controller); its pods are marked not ready, evicted when
//! their toleration runs out (taint-eviction-controller; DefaultTolerationSeconds gives the
//! rest 300 s) and a Deployment's are recreated elsewhere; the node recovers when the sim comes
//! back; once deleted, its pods are garbage-collected (pod-garbage-collector); every node gets
//! a podCIDR (node-ipam-controller) that its pods' IPs come from.

mod support;

use std::time::{Duration, Instant};

use support::{wait_for_within, Backend, Cluster};

fn wait_secs<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_within(what, Duration::from_secs(secs), f)
}

fn jsonpath(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a: Vec<&str> = vec!["get"];
    a.extend_from_slice(args);
    let p = format!("jsonpath={path}");
    a.extend_from_slice(&["-o", &p]);
    c.kubectl(&a).stdout
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 3}
      containers: [{name: c, image: busybox}]
";

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: stay}
spec:
  tolerations:
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [{name: c, image: busybox}]
";

/// `name node phase deleting` of every pod.
fn pods(c: &Cluster) -> Vec<(String, String, String, bool)> {
    c.ok(&[
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 3).then(|| (f[0].into(), f[1].into(), f[2].into(), f.len() > 3))
    })
    .collect()
}

fn pod_cidr(c: &Cluster, node: &str) -> String {
    jsonpath(c, &["node", node], "{.spec.podCIDR} {.spec.podCIDRs[0]}")
}

/// Whether `ip` is inside the IPv4 `cidr`.
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (Some((base, len)), Ok(ip)) = (cidr.split_once('/'), ip.parse::<std::net::Ipv4Addr>())
    else {
        return false;
    };
    let (Ok(base), Ok(len)) = (base.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
        return false;
    };
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(base) & mask
}

fn node_events(c: &Cluster, node: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.kind=Node,involvedObject.name={node}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message} [{.source.component}]{\"\\n\"}{end}",
    ])
}

fn pod_events(c: &Cluster, pod: &str) -> String {
    c.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={pod}"),
        "-o",
        "jsonpath={range .items[*]}{.type} {.reason}: {.message} [{.source.component}]{\"\\n\"}{end}",
    ])
}

/// A server that notices a silent node within 20 s (upstream's flags; the simulated nodes renew
/// their Leases every 10 s).
fn quick_failure_detection(b: Backend) -> Cluster {
    Cluster::start_with(
        b,
        &[
            "--node-monitor-grace-period",
            "20s",
            "--node-monitor-period",
            "2s",
        ],
    )
}

fn unreachable_node_lifecycle(b: Backend) {
    let c = quick_failure_detection(b);
    // The node that will fail runs in its own sim process, started first so the workloads
    // land on it.
    let doomed_args = [
        "--nodes",
        "1",
        "--node-name-prefix",
        "doomed-",
        "--node-ip-cidr",
        "10.126.0.0/16",
    ];
    let doomed = c.sim(&doomed_args);
    let cidr = wait_secs(30, "doomed-0's podCIDR", || {
        let s = pod_cidr(&c, "doomed-0");
        let f: Vec<&str> = s.split_whitespace().collect();
        (f.len() == 2 && f[0] == f[1] && f[0].starts_with("10.42.") && f[0].ends_with(".0/24"))
            .then(|| f[0].to_string())
    });

    c.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    c.ok_stdin(&["apply", "-f", "-"], PODS);
    // DefaultTolerationSeconds: 300 s for what the pod does not tolerate already.
    assert_eq!(
        jsonpath(
            &c,
            &["pod", "plain"],
            "{range .spec.tolerations[*]}{.key}:{.effect}:{.tolerationSeconds} {end}"
        ),
        "node.kubernetes.io/not-ready:NoExecute:300 node.kubernetes.io/unreachable:NoExecute:300 "
    );
    assert_eq!(
        jsonpath(
            &c,
            &["pod", "stay"],
            "{range .spec.tolerations[*]}{.key}:{.tolerationSeconds} {end}"
        ),
        "node.kubernetes.io/unreachable: node.kubernetes.io/not-ready:300 "
    );
    wait_secs(60, "4 pods running on doomed-0", || {
        let p = pods(&c);
        (p.len() == 4 && p.iter().all(|p| p.1 == "doomed-0" && p.2 == "Running")).then_some(())
    });
    // The sim hands out pod IPs from the node's podCIDR.
    let ips = jsonpath(&c, &["pods"], "{.items[*].status.podIP}");
    assert!(
        ips.split_whitespace().count() == 4 && ips.split_whitespace().all(|ip| in_cidr(ip, &cidr)),
        "{ips} not in {cidr}"
    );

    let _healthy = c.sim(&["--nodes", "2"]);
    let cidrs = wait_secs(30, "podCIDRs of the other nodes", || {
        let a = pod_cidr(&c, "sim-node-0");
        let b = pod_cidr(&c, "sim-node-1");
        (!a.is_empty() && !b.is_empty()).then_some((a, b))
    });
    let mut all = vec![
        cidr.clone(),
        cidrs.0.split_whitespace().next().unwrap_or("").to_string(),
        cidrs.1.split_whitespace().next().unwrap_or("").to_string(),
    ];
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "every node has its own podCIDR: {all:?}");

    // The node dies: no more Lease renewals.
    drop(doomed);
    let killed = Instant::now();
    let ready = wait_secs(60, "doomed-0 Ready=Unknown", || {
        let s = jsonpath(
            &c,
            &["node", "doomed-0"],
            "{.status.conditions[?(@.type==\"Ready\")].status}|{.status.conditions[?(@.type==\"Ready\")].reason}|{.status.conditions[?(@.type==\"Ready\")].message}|{.status.conditions[?(@.type==\"MemoryPressure\")].status}",
        );
        s.starts_with("Unknown|").then_some(s)
    });
    assert_eq!(
        ready,
        "Unknown|NodeStatusUnknown|Kubelet stopped posting node status.|Unknown"
    );
    // The Lease was renewed at most 10 s before the kill: the 20 s grace was honoured.
    assert!(
        killed.elapsed() >= Duration::from_secs(9),
        "{:?}",
        killed.elapsed()
    );
    let taints = wait_secs(30, "unreachable taints", || {
        let t = jsonpath(
            &c,
            &["node", "doomed-0"],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        );
        (t.contains("node.kubernetes.io/unreachable:NoSchedule")
            && t.contains("node.kubernetes.io/unreachable:NoExecute"))
        .then_some(t)
    });
    assert!(!taints.contains("not-ready"), "{taints}");
    let ev = wait_secs(30, "NodeNotReady event", || {
        let e = node_events(&c, "doomed-0");
        e.contains("NodeNotReady").then_some(e)
    });
    assert!(
        ev.contains("NodeNotReady: Node doomed-0 status is now: NodeNotReady [node-controller]"),
        "{ev}"
    );
    assert!(
        ev.contains("RegisteredNode: Node doomed-0 event: Registered Node doomed-0 in Controller"),
        "{ev}"
    );

    // Pods on it: marked not ready; the Deployment's (3 s toleration) evicted and replaced.
    wait_secs(30, "stay marked not ready", || {
        (jsonpath(
            &c,
            &["pod", "stay"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "False")
            .then_some(())
    });
    let ev = wait_secs(30, "NodeNotReady event on the pod", || {
        let e = pod_events(&c, "stay");
        e.contains("NodeNotReady").then_some(e)
    });
    assert!(
        ev.contains("Warning NodeNotReady: Node is not ready [node-controller]"),
        "{ev}"
    );
    let evicted = wait_secs(30, "web pods evicted", || {
        let p = pods(&c);
        let old: Vec<String> = p
            .iter()
            .filter(|p| p.0.starts_with("web-") && p.1 == "doomed-0")
            .map(|p| p.0.clone())
            .collect();
        (old.len() == 2 && p.iter().filter(|p| old.contains(&p.0)).all(|p| p.3)).then_some(old)
    });
    let victim = &evicted[0];
    assert_eq!(
        jsonpath(&c, &["pod", victim], "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}: {.status.conditions[?(@.type==\"DisruptionTarget\")].message}"),
        "DeletionByTaintManager: Taint manager: deleting due to NoExecute taint"
    );
    let ev = pod_events(&c, victim);
    assert!(
        ev.contains(&format!("Normal TaintManagerEviction: Marking for deletion Pod default/{victim} [taint-eviction-controller]")),
        "{ev}"
    );
    wait_secs(60, "web replacements running elsewhere", || {
        let p = pods(&c);
        (p.iter()
            .filter(|p| {
                p.0.starts_with("web-") && p.1.starts_with("sim-node-") && p.2 == "Running" && !p.3
            })
            .count()
            == 2)
            .then_some(())
    });
    // The others tolerate the taint (forever, or for 300 s): still there.
    let p = pods(&c);
    for name in ["stay", "plain"] {
        assert!(p.iter().any(|x| x.0 == name && !x.3), "{name}: {p:?}");
    }

    // The node comes back: Ready again, taints gone; the sim finishes the evicted pods' deletion.
    let doomed = c.sim(&doomed_args);
    wait_secs(60, "doomed-0 recovered", || {
        let t = jsonpath(&c, &["node", "doomed-0"], "{.spec.taints}");
        let r = jsonpath(
            &c,
            &["node", "doomed-0"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        (r == "True" && !t.contains("unreachable")).then_some(())
    });

    // And goes for good: deleted, its pods are collected (after the 40 s quarantine).
    drop(doomed);
    c.ok(&["delete", "node", "doomed-0"]);
    wait_secs(120, "orphaned pods collected", || {
        let p = pods(&c);
        (!p.iter().any(|p| p.1 == "doomed-0")).then_some(())
    });
    wait_secs(30, "RemovingNode event", || {
        node_events(&c, "doomed-0")
            .contains("RemovingNode: Node doomed-0 event: Removing Node doomed-0 from Controller")
            .then_some(())
    });
}

fn terminated_pods_beyond_the_threshold(b: Backend) {
    let c = Cluster::start_with(b, &["--terminated-pod-gc-threshold", "2"]);
    let _sim = c.sim(&["--nodes", "1"]);
    for i in 0..4 {
        let pod = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: done-{i}\n  annotations: {{sim.rudder.dev/complete-after: 1s}}\nspec:\n  restartPolicy: Never\n  containers: [{{name: c, image: busybox}}]\n"
        );
        c.ok_stdin(&["apply", "-f", "-"], &pod);
        // Distinct creation times: the oldest go first.
        std::thread::sleep(Duration::from_millis(1100));
    }
    wait_secs(90, "two oldest terminated pods collected", || {
        let names: Vec<String> = pods(&c).into_iter().map(|p| p.0).collect();
        (names == ["done-2", "done-3"]).then_some(())
    });
}

/// Every node silent at once (upstream's "master disruption mode": most likely the control
/// plane's own network failed; here the one node of a single-node cluster): the node is marked
/// Unknown and gets the NoSchedule taint, but no NoExecute taint, so nothing is evicted. (With
/// several nodes going silent a pass apart, the first would be tainted before the zone counts
/// as fully disrupted, upstream as here.)
fn no_evictions_when_every_node_is_down(b: Backend) {
    let c = quick_failure_detection(b);
    let sim = c.sim(&["--nodes", "1"]);
    c.ok_stdin(&["apply", "-f", "-"], DEPLOYMENT);
    wait_secs(60, "web pods running", || {
        let p = pods(&c);
        (p.len() == 2 && p.iter().all(|p| p.2 == "Running")).then_some(())
    });
    drop(sim);
    let node = "sim-node-0";
    wait_secs(60, "Ready=Unknown and the NoSchedule taint", || {
        let r = jsonpath(
            &c,
            &["node", node],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        let t = jsonpath(
            &c,
            &["node", node],
            "{range .spec.taints[*]}{.key}:{.effect} {end}",
        );
        (r == "Unknown" && t.contains("node.kubernetes.io/unreachable:NoSchedule")).then_some(())
    });
    // Well past the pods' 3 s toleration: still no NoExecute taint, no eviction.
    std::thread::sleep(Duration::from_secs(8));
    let t = jsonpath(
        &c,
        &["node", node],
        "{range .spec.taints[*]}{.key}:{.effect} {end}",
    );
    assert!(!t.contains("NoExecute"), "{node}: {t}");
    let p = pods(&c);
    assert!(p.len() == 2 && p.iter().all(|p| !p.3), "{p:?}");
}

on_both_backends!(
    unreachable_node_lifecycle,
    terminated_pods_beyond_the_threshold,
    no_evictions_when_every_node_is_down
);
