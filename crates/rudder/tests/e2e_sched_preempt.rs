//! End to end with the real kubectl against `rudder server` (its in-process scheduler) and Node
//! objects created by kubectl (no kubelet): the system PriorityClasses, Priority admission,
//! preemption (victim marked and deleted, preemptor nominated then bound), `preemptionPolicy:
//! Never`, and pods with claims on local PVs, on both store backends.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, Cluster};

fn node(name: &str, cpu: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\nstatus:\n  capacity: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n  allocatable: {{cpu: \"{cpu}\", memory: 8Gi, pods: \"110\"}}\n---\n"
    )
}

fn priority_class(name: &str, value: i64, extra: &str) -> String {
    format!(
        "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: {name}\nvalue: {value}\n{extra}---\n"
    )
}

fn pod(name: &str, class: &str, cpu: &str, extra: &str) -> String {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!("  priorityClassName: {class}\n")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{class}{extra}  containers:\n  - name: c\n    image: busybox\n    resources: {{requests: {{cpu: {cpu}}}}}\n---\n"
    )
}

/// Waits until `f` returns Some, or panics with `what` after 30 s.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn field(c: &Cluster, args: &[&str], path: &str) -> String {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    let jp = format!("jsonpath={path}");
    a.extend_from_slice(&["-o", &jp]);
    c.ok(&a)
}

fn wait_bound(c: &Cluster, pod: &str) -> String {
    wait_for(&format!("{pod} to be bound"), || {
        Some(field(c, &["pod", pod], "{.spec.nodeName}")).filter(|n| !n.is_empty())
    })
}

fn scheduled_message(c: &Cluster, pod: &str) -> String {
    field(
        c,
        &["pod", pod],
        "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
    )
}

fn wait_message(c: &Cluster, pod: &str, want: &str) {
    wait_for(&format!("{pod}'s message {want:?}"), || {
        (scheduled_message(c, pod) == want).then_some(())
    });
}

fn system_priority_classes_and_admission(b: Backend) {
    let c = Cluster::start(b);
    // Created at start, as upstream's scheduling storage post-start hook does.
    assert_eq!(
        field(
            &c,
            &["priorityclass", "system-node-critical"],
            "{.value} {.preemptionPolicy} {.globalDefault}"
        ),
        "2000001000 PreemptLowerPriority "
    );
    assert_eq!(
        field(
            &c,
            &["priorityclass", "system-cluster-critical"],
            "{.value}"
        ),
        "2000000000"
    );
    let out = c.ok(&["get", "priorityclasses"]);
    assert!(
        out.contains("system-cluster-critical   2000000000   false          ")
            && out.contains("system-node-critical      2000001000   false          "),
        "{out}"
    );
    // System classes are reserved; user values stop at one billion.
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &priority_class("system-mine", 10, ""),
        )
        .stderr;
    assert!(
        err.contains("metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"),
        "{err}"
    );
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &priority_class("huge", 2_000_000_000, ""),
        )
        .stderr;
    assert!(
        err.contains(
            "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
        ),
        "{err}"
    );

    // Priority admission: the class's value and policy; unknown classes are refused.
    c.ok_stdin(
        &["create", "-f", "-"],
        &(priority_class("high", 1000, "")
            + &priority_class("polite", 500, "preemptionPolicy: Never\n")),
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &(pod("a", "high", "10m", "") + &pod("b", "polite", "10m", "") + &pod("c", "", "10m", "")),
    );
    assert_eq!(
        field(
            &c,
            &["pod", "a"],
            "{.spec.priority} {.spec.preemptionPolicy}"
        ),
        "1000 PreemptLowerPriority"
    );
    assert_eq!(
        field(
            &c,
            &["pod", "b"],
            "{.spec.priority} {.spec.preemptionPolicy}"
        ),
        "500 Never"
    );
    assert_eq!(
        field(
            &c,
            &["pod", "c"],
            "{.spec.priority} {.spec.preemptionPolicy}"
        ),
        "0 PreemptLowerPriority"
    );
    let err = c
        .kubectl_stdin(&["create", "-f", "-"], &pod("d", "nope", "10m", ""))
        .stderr;
    assert!(
        err.contains("pods \"d\" is forbidden: no PriorityClass with name nope was found"),
        "{err}"
    );
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &pod("e", "high", "10m", "  priority: 7\n"),
        )
        .stderr;
    assert!(
        err.contains("pods \"e\" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
        "{err}"
    );
    // A global default names the class of pods without one; only one default may exist.
    c.ok_stdin(
        &["create", "-f", "-"],
        &priority_class("dflt", 5, "globalDefault: true\n"),
    );
    let err = c
        .kubectl_stdin(
            &["create", "-f", "-"],
            &priority_class("dflt2", 6, "globalDefault: true\n"),
        )
        .stderr;
    assert!(
        err.contains("priorityclasses.scheduling.k8s.io \"dflt2\" is forbidden: PriorityClass dflt is already marked as default. Only one default can exist"),
        "{err}"
    );
    c.ok_stdin(&["create", "-f", "-"], &pod("f", "", "10m", ""));
    assert_eq!(
        field(
            &c,
            &["pod", "f"],
            "{.spec.priorityClassName} {.spec.priority}"
        ),
        "dflt 5"
    );
}

fn high_priority_pod_preempts_a_low_one(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(
        &["create", "-f", "-"],
        &(node("n1", "1")
            + &priority_class("low", 10, "")
            + &priority_class("high", 1000, "")
            + &priority_class("high-polite", 1000, "preemptionPolicy: Never\n")),
    );
    c.ok_stdin(&["create", "-f", "-"], &pod("victim", "low", "800m", ""));
    assert_eq!(wait_bound(&c, "victim"), "n1");

    // A pod that may not preempt stays Pending, with upstream's message.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("polite", "high-polite", "500m", ""),
    );
    wait_message(
        &c,
        "polite",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never..",
    );
    c.ok(&["delete", "pod", "polite"]);
    assert_eq!(
        field(&c, &["pod", "victim"], "{.metadata.deletionTimestamp}"),
        ""
    );

    // The preemptor: the victim is marked and deleted (gracefully: it is Terminating until
    // its kubelet would confirm), the preemptor is nominated to its node.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("preemptor", "high", "500m", ""),
    );
    wait_for("the victim to be deleted", || {
        (!field(&c, &["pod", "victim"], "{.metadata.deletionTimestamp}").is_empty()).then_some(())
    });
    assert_eq!(
        field(
            &c,
            &["pod", "victim"],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}: {.status.conditions[?(@.type==\"DisruptionTarget\")].message}"
        ),
        "PreemptionByScheduler: default-scheduler: preempting to accommodate a higher priority pod"
    );
    wait_for("the preemptor's nomination", || {
        (field(&c, &["pod", "preemptor"], "{.status.nominatedNodeName}") == "n1").then_some(())
    });
    let uid = field(&c, &["pod", "preemptor"], "{.metadata.uid}");
    let preempted = wait_for("the Preempted event", || {
        Some(c.ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=Preempted",
            "-o",
            "jsonpath={.items[*].message}",
        ]))
        .filter(|m| !m.is_empty())
    });
    assert_eq!(preempted, format!("Preempted by pod {uid} on node n1"));
    // While the victim terminates the preemptor does not preempt again.
    wait_message(
        &c,
        "preemptor",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to a terminating pod on the nominated node..",
    );
    // The kubelet's final delete; then the preemptor is bound to the node.
    c.ok(&["delete", "pod", "victim", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(&c, "preemptor"), "n1");

    // Equal priority: nothing to preempt.
    c.ok_stdin(&["create", "-f", "-"], &pod("peer", "high", "800m", ""));
    wait_message(
        &c,
        "peer",
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..",
    );
}

fn pods_with_local_volume_claims(b: Backend) {
    let c = Cluster::start(b);
    c.ok_stdin(
        &["create", "-f", "-"],
        &(node("n1", "2") + &node("n2", "2") + &node("n3", "2")),
    );
    let local_pv = |name: &str, node: &str, claim: &str, class: &str| {
        let claim_ref = if claim.is_empty() {
            String::new()
        } else {
            format!("  claimRef: {{namespace: default, name: {claim}}}\n")
        };
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"{class}\"\n  local: {{path: /mnt/{name}}}\n{claim_ref}  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: kubernetes.io/hostname, operator: In, values: [{node}]}}\n---\n"
        )
    };
    let claim = |name: &str, class: &str, volume: &str| {
        let bound = if volume.is_empty() {
            String::new()
        } else {
            format!("  volumeName: {volume}\n")
        };
        let ann = if volume.is_empty() {
            String::new()
        } else {
            "  annotations: {pv.kubernetes.io/bind-completed: \"yes\"}\n".to_string()
        };
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n{ann}spec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"{class}\"\n  resources: {{requests: {{storage: 1Gi}}}}\n{bound}---\n"
        )
    };
    let with_claim = |c: &str| {
        format!("  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: {c}}}\n")
    };

    // A claim bound (as the PV controller would) to a local PV on n2: the pod lands on n2.
    c.ok_stdin(
        &["create", "-f", "-"],
        &(local_pv("pv-n2", "n2", "data", "") + &claim("data", "", "pv-n2")),
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("uses-pv", "", "100m", &with_claim("data")),
    );
    assert_eq!(wait_bound(&c, "uses-pv"), "n2");

    // A missing claim: upstream's PreFilter message; preemption cannot help.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("no-claim", "", "100m", &with_claim("missing")),
    );
    wait_message(
        &c,
        "no-claim",
        "0/3 nodes are available: persistentvolumeclaim \"missing\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
    );
    // An unbound claim of a class without WaitForFirstConsumer is the PV controller's to bind.
    c.ok_stdin(
        &["create", "-f", "-"],
        &(claim("immediate", "", "") + &pod("waits", "", "100m", &with_claim("immediate"))),
    );
    wait_message(
        &c,
        "waits",
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
    );

    // WaitForFirstConsumer: the scheduler picks the node with an available PV and reserves it
    // for the claim (claimRef); once the claim is bound the pod is bound to that node.
    c.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\nprovisioner: kubernetes.io/no-provisioner\nvolumeBindingMode: WaitForFirstConsumer\n---\n",
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &(local_pv("pv-n3", "n3", "", "local") + &claim("late", "local", "")),
    );
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("consumer", "", "100m", &with_claim("late")),
    );
    let claimed = wait_for("the PV to be reserved for the claim", || {
        Some(field(&c, &["pv", "pv-n3"], "{.spec.claimRef.name}")).filter(|n| !n.is_empty())
    });
    assert_eq!(claimed, "late");
    assert_eq!(
        field(
            &c,
            &["pv", "pv-n3"],
            "{.metadata.annotations.pv\\.kubernetes\\.io/bound-by-controller}"
        ),
        "yes"
    );
    // The PV controller (persistentvolume-binder) finishes the binding; then the pod is bound.
    assert_eq!(wait_bound(&c, "consumer"), "n3");
}

fn pods_follow_their_volumes_zone_and_attach_limits(b: Backend) {
    let c = Cluster::start(b);
    let zoned = |name: &str, zone: &str| {
        node(name, "2").replace(
            "labels: {kubernetes.io/hostname: ",
            &format!("labels: {{topology.kubernetes.io/zone: {zone}, kubernetes.io/hostname: "),
        )
    };
    // The CSI driver on each node can attach one volume (as its kubelet plugin reports).
    let csi_node = |name: &str| {
        format!("apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: {name}\nspec:\n  drivers:\n  - {{name: csi.example.com, nodeID: {name}, allocatable: {{count: 1}}}}\n---\n")
    };
    c.ok_stdin(
        &["create", "-f", "-"],
        &(zoned("za", "zone-a") + &zoned("zb", "zone-b") + &csi_node("za") + &csi_node("zb")),
    );
    // PVs in zone-b, and claims bound to them as the PV controller would bind them.
    let bound = |n: u32| {
        format!("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv-{n}\n  labels: {{topology.kubernetes.io/zone: zone-b}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  csi: {{driver: csi.example.com, volumeHandle: vol-{n}}}\n  claimRef: {{namespace: default, name: claim-{n}}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: claim-{n}\n  annotations: {{pv.kubernetes.io/bind-completed: \"yes\"}}\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  resources: {{requests: {{storage: 1Gi}}}}\n  volumeName: pv-{n}\n---\n")
    };
    c.ok_stdin(&["create", "-f", "-"], &(bound(1) + &bound(2)));
    let with_claim = |n: u32| {
        format!("  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: claim-{n}}}\n")
    };
    // VolumeZone: the pod goes where its volume is.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("first", "", "100m", &with_claim(1)),
    );
    assert_eq!(wait_bound(&c, "first"), "zb");
    // NodeVolumeLimits: zone-b's node has its one volume attached; zone-a's is in the wrong
    // zone.
    c.ok_stdin(
        &["create", "-f", "-"],
        &pod("second", "", "100m", &with_claim(2)),
    );
    wait_message(
        &c,
        "second",
        "0/2 nodes are available: 1 node(s) exceed max volume count, 1 node(s) had no available volume zone. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..",
    );
    // The first pod leaves: the deletion requeues the second, which now fits.
    c.ok(&["delete", "pod", "first", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(&c, "second"), "zb");
}

on_both_backends!(
    system_priority_classes_and_admission,
    high_priority_pod_preempts_a_low_one,
    pods_with_local_volume_claims,
    pods_follow_their_volumes_zone_and_attach_limits,
);
