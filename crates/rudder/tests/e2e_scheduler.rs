//! End to end: the scheduler in `rudder server` and standalone (`rudder scheduler`), driven by
//! the real kubectl against Node objects created with kubectl (no node agent, no `rudder sim`:
//! the scheduler needs nothing but the API), on both store backends.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{wait_for, Backend, Cluster};

fn node(name: &str, labels: &str, taints: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}{labels}}}\nspec:\n  taints: [{taints}]\nstatus:\n  capacity: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n  allocatable: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n---\n"
    )
}

fn pod(name: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec_extra}  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: 100m}}}}\n---\n"
    )
}

fn node_of(c: &Cluster, pod: &str) -> String {
    c.ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

fn wait_bound(c: &Cluster, pod: &str) -> String {
    wait_for(&format!("{pod} to be bound"), || {
        Some(node_of(c, pod)).filter(|n| !n.is_empty())
    })
}

fn three_nodes(c: &Cluster) {
    let nodes = node(
        "n-ssd",
        ", disk: ssd, topology.kubernetes.io/zone: z1",
        "",
        "2",
    ) + &node(
        "n-hdd",
        ", disk: hdd, topology.kubernetes.io/zone: z2",
        "",
        "2",
    ) + &node(
        "n-gpu",
        ", topology.kubernetes.io/zone: z2",
        "{key: dedicated, value: gpu, effect: NoSchedule}",
        "2",
    );
    c.ok_stdin(&["apply", "-f", "-"], &nodes);
}

fn pods_land_where_selectors_affinity_and_taints_say(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    let pods = pod("on-ssd", "  nodeSelector: {disk: ssd}\n")
        + &pod(
            "in-z2",
            "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [z2]}]\n",
        )
        + &pod(
            "gpu",
            "  nodeSelector: {kubernetes.io/hostname: n-gpu}\n  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n",
        )
        + &pod(
            "prefers-hdd",
            "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - weight: 100\n        preference: {matchExpressions: [{key: disk, operator: In, values: [hdd]}]}\n",
        );
    c.ok_stdin(&["apply", "-f", "-"], &pods);
    assert_eq!(wait_bound(&c, "on-ssd"), "n-ssd");
    // z2 holds n-hdd and n-gpu; the gpu node's taint is not tolerated.
    assert_eq!(wait_bound(&c, "in-z2"), "n-hdd");
    assert_eq!(wait_bound(&c, "gpu"), "n-gpu");
    assert_eq!(wait_bound(&c, "prefers-hdd"), "n-hdd");
    // What `kubectl describe` shows, as upstream: the Scheduled event and the condition.
    let d = c.ok(&["describe", "pod", "on-ssd"]);
    assert!(
        d.contains("Successfully assigned default/on-ssd to n-ssd"),
        "{d}"
    );
    assert!(d.contains("default-scheduler"), "{d}");
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "on-ssd",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].status}"
        ]),
        "True"
    );
}

fn a_pod_no_node_fits_stays_pending_with_upstreams_message(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("nowhere", "  nodeSelector: {disk: nvme}\n"),
    );
    let cond = "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}";
    // Pods and nodes come on separate watches, so the scheduler may try the pod before it has
    // seen all three nodes (as upstream can); the node events requeue it and the condition then
    // tells about all three.
    let msg = wait_for("the PodScheduled condition over 3 nodes", || {
        Some(c.ok(&["get", "pod", "nowhere", "-o", cond])).filter(|m| m.starts_with("0/3 "))
    });
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
    );
    assert_eq!(
        c.ok(&[
            "get",
            "pod",
            "nowhere",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].reason}"
        ]),
        "Unschedulable"
    );
    let d = c.ok(&["describe", "pod", "nowhere"]);
    assert!(d.contains("FailedScheduling"), "{d}");
    assert!(d.contains(&msg), "{d}");
    assert!(c.ok(&["get", "pod", "nowhere"]).contains("Pending"));
    // A node that fits appears: the pod is requeued by that event and lands.
    c.ok_stdin(
        &["apply", "-f", "-"],
        &node("n-nvme", ", disk: nvme", "", "2"),
    );
    assert_eq!(wait_bound(&c, "nowhere"), "n-nvme");
}

fn insufficient_resources_are_counted_per_node(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"1500m\"}}\n",
    );
    let first = wait_bound(&c, "big");
    assert_ne!(first, "n-gpu");
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big2\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"1500m\"}}\n",
    );
    let second = wait_bound(&c, "big2");
    assert!(second != first && second != "n-gpu", "{first} {second}");
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big3\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"1500m\"}}\n",
    );
    let cond = "jsonpath={.status.conditions[?(@.type==\"PodScheduled\")].message}";
    let msg = wait_for("big3's condition", || {
        Some(c.ok(&["get", "pod", "big3", "-o", cond])).filter(|m| !m.is_empty())
    });
    assert!(
        // Upstream sorts the "<count> <reason>" strings.
        msg.starts_with(
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
        ),
        "{msg}"
    );
    // Deleting a pod frees its node's CPU: the waiting pod is requeued and placed there.
    // (No kubelet finishes a graceful deletion here, so delete at once.)
    c.ok(&["delete", "pod", "big", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(&c, "big3"), first);
}

fn gated_pods_wait_until_their_gates_are_removed(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod("gated", "  schedulingGates: [{name: example.com/wait}]\n"),
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(node_of(&c, "gated"), "");
    assert!(c.ok(&["get", "pod", "gated"]).contains("SchedulingGated"));
    // No attempt was made: no FailedScheduling event.
    assert!(!c
        .ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=gated"
        ])
        .contains("FailedScheduling"));
    c.ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/schedulingGates"}]"#,
    ]);
    wait_bound(&c, "gated");
}

fn pods_for_another_scheduler_are_left_alone(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &(pod("other", "  schedulerName: my-scheduler\n") + &pod("mine", "")),
    );
    wait_bound(&c, "mine");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_of(&c, "other"), "");
    assert_eq!(
        c.ok(&["get", "pod", "other", "-o", "jsonpath={.status.conditions}"]),
        ""
    );
}

fn scheduler_metrics_are_served_by_the_server(b: Backend) {
    let c = Cluster::start(b);
    three_nodes(&c);
    c.ok_stdin(&["apply", "-f", "-"], &pod("m", ""));
    wait_bound(&c, "m");
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("scheduler_schedule_attempts_total{result=\"scheduled\",profile=\"default-scheduler\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("leader_election_master_status{name=\"kube-scheduler\"} 1"));
    // The in-process scheduler holds the lease under its own identity.
    let holder = c.ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty());
}

struct Standalone(Child, std::path::PathBuf);

impl Standalone {
    fn start(c: &Cluster, name: &str, extra: &[&str]) -> Standalone {
        let log = c.dir.path().join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["scheduler", "--health-port", "0", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start rudder scheduler");
        Standalone(child, log)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM: a leader releases its lease on the way out.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn holder(c: &Cluster) -> String {
    c.kubectl(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
    .stdout
}

fn standalone_schedulers_hand_over_leadership(b: Backend) {
    let c = Cluster::start_with(b, &["--disable-scheduler"]);
    three_nodes(&c);
    c.ok_stdin(&["apply", "-f", "-"], &pod("before", ""));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(node_of(&c, "before"), "", "no scheduler runs yet");
    let mut a = Standalone::start(&c, "a", &[]);
    let first = wait_for("a leader", || Some(holder(&c)).filter(|h| !h.is_empty()));
    wait_bound(&c, "before");
    let mut b2 = Standalone::start(&c, "b", &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(holder(&c), first, "the standby must not take a held lease");
    a.stop();
    let second = wait_for("the standby to take over", || {
        Some(holder(&c)).filter(|h| !h.is_empty() && *h != first)
    });
    assert_ne!(first, second);
    c.ok_stdin(&["apply", "-f", "-"], &pod("after", ""));
    wait_bound(&c, "after");
    assert!(
        b2.log().contains("successfully acquired lease"),
        "{}",
        b2.log()
    );
    b2.stop();
}

fn a_bad_config_file_is_a_clear_error_at_start(b: Backend) {
    let c = Cluster::start_with(b, &["--disable-scheduler"]);
    let cfg = c.dir.path().join("sched.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- schedulerName: default-scheduler\n  pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: Bogus\n",
    )
    .unwrap();
    let mut s = Standalone::start(&c, "bad", &["--config", cfg.to_str().unwrap()]);
    let status = s.0.wait().unwrap();
    assert!(!status.success());
    assert!(
        s.log().contains(
            "profiles[0].pluginConfig[0].args.scoringStrategy.type: Unsupported value: \"Bogus\""
        ),
        "{}",
        s.log()
    );
    // A profile config: a second profile with its own name schedules its pods; MostAllocated
    // packs them onto one node.
    std::fs::write(
        &cfg,
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection: {leaderElect: false}\nprofiles:\n- schedulerName: default-scheduler\n- schedulerName: packer\n  plugins:\n    score:\n      disabled: [{name: NodeResourcesBalancedAllocation}, {name: ImageLocality}]\n  pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: MostAllocated\n",
    )
    .unwrap();
    three_nodes(&c);
    let _s = Standalone::start(&c, "good", &["--config", cfg.to_str().unwrap()]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        &pod(
            "p0",
            "  schedulerName: packer\n  nodeSelector: {disk: ssd}\n",
        ),
    );
    assert_eq!(wait_bound(&c, "p0"), "n-ssd");
    for i in 1..4 {
        let name = format!("p{i}");
        c.ok_stdin(
            &["apply", "-f", "-"],
            &pod(&name, "  schedulerName: packer\n"),
        );
        assert_eq!(wait_bound(&c, &name), "n-ssd", "MostAllocated packs");
    }
}

on_both_backends!(
    pods_land_where_selectors_affinity_and_taints_say,
    a_pod_no_node_fits_stays_pending_with_upstreams_message,
    insufficient_resources_are_counted_per_node,
    gated_pods_wait_until_their_gates_are_removed,
    pods_for_another_scheduler_are_left_alone,
    scheduler_metrics_are_served_by_the_server,
    standalone_schedulers_hand_over_leadership,
    a_bad_config_file_is_a_clear_error_at_start,
);
