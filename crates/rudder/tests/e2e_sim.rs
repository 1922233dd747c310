//! End to end: `rudder sim` (simulated nodes) joins `rudder server`, as the real kubectl (v1.37)
//! sees it, on both backends: nodes Ready with the kubelet's labels, conditions and Leases;
//! pods scheduled onto them and reported Running with an IP; pods marked to complete reaching
//! Succeeded/Failed; graceful deletion finished by the simulated kubelet.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Cluster};

fn sim_log(c: &Cluster) -> String {
    std::fs::read_to_string(c.dir.path().join("sim.log")).unwrap_or_default()
}

/// Polls kubectl `args` until `done` holds for its stdout; panics with the last output.
fn wait_for(c: &Cluster, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c.kubectl(args);
        if r.code == 0 && done(&r.stdout) {
            return r.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last: {}{}\nsim log:\n{}",
            r.stdout,
            r.stderr,
            sim_log(c)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rows(s: &str) -> Vec<Vec<&str>> {
    s.lines().map(|l| l.split_whitespace().collect()).collect()
}

/// `kubectl get KIND NAME -o jsonpath=PATH`.
fn jsonpath(c: &Cluster, kind: &str, name: &str, path: &str) -> String {
    c.ok(&["get", kind, name, "-o", &format!("jsonpath={path}")])
}

/// How many table rows have `value` in column `col`.
fn count_in_column(table: &str, col: usize, value: &str) -> usize {
    rows(table)
        .iter()
        .filter(|r| r.get(col) == Some(&value))
        .count()
}

fn pod(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: sim\n  annotations:\n{annotations}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: app\n    image: registry.k8s.io/pause:3.10\n"
    )
}

fn nodes_leases_and_pods(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&[
        "--nodes",
        "3",
        "--zones",
        "zone-a,zone-b",
        "--label",
        "pool=sim",
        "--cpu",
        "8",
    ]);

    // The nodes appear Ready, with the kubelet's version column.
    let out = wait_for(&c, &["get", "nodes"], "3 Ready nodes", |s| {
        count_in_column(s, 1, "Ready") == 3
    });
    let table = rows(&out);
    assert_eq!(table[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let names: Vec<&str> = table[1..].iter().map(|r| r[0]).collect();
    assert_eq!(names, ["sim-node-0", "sim-node-1", "sim-node-2"]);
    assert!(
        table[1..]
            .iter()
            .all(|r| r[2] == "<none>" && r[4] == "v1.37.0"),
        "{out}"
    );

    // What the kubelet registers: its labels (no instance-type without a cloud provider),
    // the four conditions in its order and words, addresses, capacity.
    let labels = c.ok(&[
        "get",
        "node",
        "sim-node-1",
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(
        labels,
        serde_json::json!({
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": "sim-node-1",
            "kubernetes.io/os": "linux",
            "pool": "sim",
            "topology.kubernetes.io/zone": "zone-b",
        })
    );
    assert_eq!(
        jsonpath(&c, "node", "sim-node-1", "{range .status.conditions[*]}{.type}={.status}/{.reason} {end}"),
        "MemoryPressure=False/KubeletHasSufficientMemory DiskPressure=False/KubeletHasNoDiskPressure \
         PIDPressure=False/KubeletHasSufficientPID Ready=True/KubeletReady "
    );
    assert_eq!(
        jsonpath(&c, "node", "sim-node-1", "{.status.addresses[0].type}={.status.addresses[0].address} {.status.addresses[1].type}={.status.addresses[1].address} {.status.capacity.cpu} {.status.allocatable.pods} {.status.nodeInfo.kubeletVersion}"),
        "InternalIP=10.127.0.2 Hostname=sim-node-1 8 110 v1.37.0"
    );
    let describe = c.ok(&["describe", "node", "sim-node-0"]);
    assert!(
        describe.contains("kubelet is posting ready status"),
        "{describe}"
    );

    // One Lease per node in kube-node-lease, held by the node and owned by it, renewed.
    let leases = c.ok(&["get", "leases", "-n", "kube-node-lease"]);
    let table = rows(&leases);
    assert_eq!(table[0], ["NAME", "HOLDER", "AGE"]);
    assert_eq!(table.len(), 4, "{leases}");
    assert!(table[1..].iter().all(|r| r[0] == r[1]), "{leases}");
    let lease_args = |field: &'static str| {
        [
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "sim-node-2",
            "-o",
            field,
        ]
    };
    assert_eq!(
        c.ok(&lease_args("jsonpath={.spec.leaseDurationSeconds} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}")),
        "40 Node/sim-node-2"
    );
    let renew_time = lease_args("jsonpath={.spec.renewTime}");
    let first_renew = c.ok(&renew_time);
    wait_for(&c, &renew_time, "a lease renewal", |s| s != first_renew);

    // Pods created with kubectl are scheduled onto the simulated nodes and reported Running
    // with an IP from the node's podCIDR, as `get pods -o wide` shows.
    for i in 0..4 {
        c.ok_stdin(&["create", "-f", "-"], &pod(&format!("p{i}"), "    {}"));
    }
    let out = wait_for(
        &c,
        &["get", "pods", "-o", "wide", "-l", "app=sim"],
        "4 Running pods",
        |s| count_in_column(s, 2, "Running") == 4,
    );
    let table = rows(&out);
    assert_eq!(
        table[0][..7],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    );
    let mut ips = Vec::new();
    for r in &table[1..] {
        assert_eq!((r[1], r[3]), ("1/1", "0"), "{out}");
        assert!(r[6].starts_with("sim-node-"), "{out}");
        // node-ipam-controller gave each node a /24 of --cluster-cidr (10.42.0.0/16).
        assert!(r[5].starts_with("10.42."), "{out}");
        ips.push(r[5]);
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4, "pod IPs are unique: {out}");
    assert_eq!(
        jsonpath(&c, "pod", "p0", "{range .status.conditions[*]}{.type}={.status} {end}|{.status.containerStatuses[0].ready} {.status.containerStatuses[0].started} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].image}"),
        "PodReadyToStartContainers=True Initialized=True Ready=True ContainersReady=True PodScheduled=True |true true 0 registry.k8s.io/pause:3.10"
    );
    let started = c.ok(&[
        "get",
        "pod",
        "p0",
        "-o",
        "jsonpath={.status.startTime} {.status.hostIP}",
    ]);
    assert!(started.contains(" 10.127.0."), "{started}");

    // Marked to complete: Succeeded (exit 0) or Failed (exit 3), containers terminated.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("done", "    sim.rudder.dev/complete-after: 1s"),
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod(
            "failed",
            "    sim.rudder.dev/complete-after: 1s\n    sim.rudder.dev/exit-code: \"3\"",
        ),
    );
    wait_for(
        &c,
        &["get", "pod", "done", "-o", "jsonpath={.status.phase}"],
        "pod done to succeed",
        |s| s == "Succeeded",
    );
    assert_eq!(
        jsonpath(&c, "pod", "done", "{.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}"),
        "Completed 0"
    );
    let out = wait_for(&c, &["get", "pod", "failed"], "pod failed to fail", |s| {
        rows(s).get(1).is_some_and(|r| r[2] == "Error")
    });
    assert_eq!(rows(&out)[1][1], "0/1", "{out}");
    assert_eq!(jsonpath(&c, "pod", "failed", "{.status.phase}"), "Failed");

    // kubectl delete: graceful (2 s), finished by the simulated kubelet's final delete.
    let t = Instant::now();
    assert_eq!(
        c.ok(&["delete", "pod", "p1"]),
        "pod \"p1\" deleted from default namespace\n"
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    let gone = c.fails(&["get", "pod", "p1"]);
    assert!(gone.contains("pods \"p1\" not found"), "{gone}");
    // A terminated pod goes at once.
    c.ok(&["delete", "pod", "done", "--wait=true"]);
    c.fails(&["get", "pod", "done"]);
}

on_both_backends!(nodes_leases_and_pods);
