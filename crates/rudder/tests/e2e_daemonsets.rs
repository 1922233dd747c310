//! End to end: the DaemonSet controller in `rudder server` with simulated nodes, driven by the
//! real kubectl on both store backends — a pod on every node (placed by the default scheduler
//! through the node-name affinity), a node added later gets one, a tainted node is skipped
//! unless tolerated, nodeSelector, failed pods replaced with `FailedDaemonPod`, `set image`
//! rolling within maxUnavailable at every observed moment, `rollout status|history|undo`, and
//! OnDelete.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{jp, wait_described, Backend, Cluster};

fn wait_until(c: &Cluster, what: &str, f: impl FnMut() -> bool) {
    c.wait_until(what, "ds,pods,nodes", f)
}

/// `desired/current/ready/available/updated/misscheduled` of a DaemonSet.
fn counts(c: &Cluster, ds: &str) -> String {
    jp(c, &format!("ds/{ds}"), "{.status.desiredNumberScheduled}/{.status.currentNumberScheduled}/{.status.numberReady}/{.status.numberAvailable}/{.status.updatedNumberScheduled}/{.status.numberMisscheduled}")
}

/// The nodes the (non-terminating) pods of app=`app` run on.
fn pod_nodes(c: &Cluster, app: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .ok(&["get", "pods", "-l", &format!("app={app}"), "-o",
            "jsonpath={range .items[*]}{.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}"])
        .lines()
        .filter(|l| l.split(' ').nth(1).is_none_or(str::is_empty))
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect();
    v.sort();
    v
}

fn apply(c: &Cluster, yaml: &str) {
    c.ok_stdin(&["apply", "-f", "-"], yaml);
}

fn daemonset(name: &str, image: &str, extra_spec: &str, extra_pod_spec: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
{extra_spec}
  template:
    metadata:
      labels:
        app: {name}
      annotations:
        sim.rudder.dev/stop-after: 0s
    spec:
{extra_pod_spec}
      containers:
      - name: c
        image: {image}
"#
    )
}

fn every_node_taints_selector_and_late_nodes(b: Backend) {
    let c = Cluster::start(b);
    let _plain = c.sim(&["--nodes", "2"]);
    let _tainted = c.sim(&[
        "--nodes",
        "1",
        "--node-name-prefix",
        "infra-",
        "--taint",
        "dedicated=infra:NoSchedule",
        "--label",
        "role=infra",
        "--pod-cidr",
        "10.200.0.0/16",
        "--node-ip-cidr",
        "10.126.0.0/16",
    ]);
    wait_until(&c, "3 nodes", || {
        c.ok(&["get", "nodes", "-o", "name"]).lines().count() == 3
    });

    apply(&c, &daemonset("agent", "busybox", "", ""));
    let out = c.ok(&["rollout", "status", "ds/agent", "--timeout=90s"]);
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    // The tainted node is skipped; one pod on each other node.
    assert_eq!(pod_nodes(&c, "agent"), ["sim-node-0", "sim-node-1"]);
    wait_until(&c, "agent status", || counts(&c, "agent") == "2/2/2/2/2/0");
    assert_eq!(
        jp(
            &c,
            "ds/agent",
            "{.status.observedGeneration}/{.status.numberUnavailable}"
        ),
        "1/"
    );

    // Placed by the scheduler through the node-name affinity, with the daemon tolerations, the
    // revision hash and the controller reference.
    let pod = c
        .ok(&["get", "pods", "-l", "app=agent", "-o", "name"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let term = jp(&c, &pod, "{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0]}");
    assert!(
        term.contains("\"key\":\"metadata.name\"") && term.contains("\"operator\":\"In\""),
        "{term}"
    );
    let node = jp(&c, &pod, "{.spec.nodeName}");
    assert!(term.contains(&format!("\"values\":[\"{node}\"]")), "{term}");
    let tolerations = jp(&c, &pod, "{.spec.tolerations[*].key}");
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(tolerations.contains(key), "{key} not in {tolerations}");
    }
    assert!(
        !tolerations.contains("network-unavailable"),
        "{tolerations}"
    );
    assert_eq!(
        jp(&c, &pod, "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.labels.pod-template-generation}"),
        "DaemonSet/agent/1"
    );
    let hash = jp(&c, &pod, "{.metadata.labels.controller-revision-hash}");
    assert!(!hash.is_empty());
    // Its ControllerRevision: named after the hash, revision 1, owned by the DaemonSet.
    assert_eq!(
        jp(&c, &format!("controllerrevision/agent-{hash}"), "{.revision}/{.metadata.ownerReferences[0].kind}/{.metadata.labels.controller-revision-hash}"),
        format!("1/DaemonSet/{hash}")
    );
    let data = jp(
        &c,
        &format!("controllerrevision/agent-{hash}"),
        "{.data.spec.template}",
    );
    assert!(data.contains("\"$patch\":\"replace\""), "{data}");
    wait_described(
        &c,
        &["ds", "agent"],
        &["SuccessfulCreate", "Created pod: agent-"],
    );

    // Tolerating the taint and selecting the node's label: only the tainted node.
    apply(
        &c,
        &daemonset(
            "infra",
            "busybox",
            "",
            "      nodeSelector:\n        role: infra\n      tolerations:\n      - key: dedicated\n        operator: Equal\n        value: infra\n        effect: NoSchedule",
        ),
    );
    c.ok(&["rollout", "status", "ds/infra", "--timeout=90s"]);
    assert_eq!(pod_nodes(&c, "infra"), ["infra-0"]);
    wait_until(&c, "infra status", || counts(&c, "infra") == "1/1/1/1/1/0");

    // A node joining later gets the agent (not the infra pod, whose selector it lacks).
    let _late = c.sim(&[
        "--nodes",
        "1",
        "--node-name-prefix",
        "late-",
        "--pod-cidr",
        "10.201.0.0/16",
        "--node-ip-cidr",
        "10.125.0.0/16",
    ]);
    wait_until(&c, "agent on the late node", || {
        pod_nodes(&c, "agent") == ["late-0", "sim-node-0", "sim-node-1"]
            && counts(&c, "agent") == "3/3/3/3/3/0"
    });
    assert_eq!(pod_nodes(&c, "infra"), ["infra-0"]);

    // Labelling a node away from the selector evicts the infra pod from it.
    c.ok(&["label", "node", "infra-0", "role=other", "--overwrite"]);
    wait_until(&c, "infra pod gone", || {
        pod_nodes(&c, "infra").is_empty() && counts(&c, "infra") == "0/0/0///0"
    });
    wait_described(
        &c,
        &["ds", "infra"],
        &["SuccessfulDelete", "Deleted pod: infra-"],
    );

    // Failed daemon pods are deleted (FailedDaemonPod) and replaced.
    apply(
        &c,
        &daemonset("crashy", "busybox", "", "")
            .replace(
                "sim.rudder.dev/stop-after: 0s",
                "sim.rudder.dev/stop-after: 0s\n        sim.rudder.dev/complete-after: 1s\n        sim.rudder.dev/exit-code: \"1\"",
            )
            .replace(
                "    spec:\n\n",
                "    spec:\n      nodeSelector:\n        kubernetes.io/hostname: sim-node-0\n",
            ),
    );
    wait_described(
        &c,
        &["ds", "crashy"],
        &[
            "FailedDaemonPod",
            "Found failed daemon pod default/crashy-",
            "on node sim-node-0, will try to kill it",
        ],
    );
    wait_until(&c, "a second crashy pod", || {
        let created = c.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=crashy,reason=SuccessfulCreate",
            "-o",
            "jsonpath={.items[*].count}",
        ]);
        created
            .split(' ')
            .filter_map(|n| n.parse::<i32>().ok())
            .sum::<i32>()
            >= 2
    });
    c.ok(&["delete", "ds", "crashy"]);
}

/// Watches the pods of app=`app` while `f` runs; at every observation at least `min_available`
/// nodes have a ready pod that is not terminating, and no node has more than `per_node` of them.
fn observing<T>(
    c: &Cluster,
    app: &str,
    min_available: usize,
    per_node: usize,
    f: impl FnOnce() -> T,
) -> (T, usize) {
    let selector = format!("app={app}");
    let args = ["get", "pods", "-l", &selector, "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}"];
    let (r, seen, violations) = c.observing(
        &args,
        move |s| {
            let mut ready = BTreeSet::new();
            let mut live = Vec::new();
            for l in s.lines() {
                let f: Vec<&str> = l.split(' ').collect();
                let terminating = f.get(2).is_some_and(|t| !t.is_empty());
                if !terminating && !f[0].is_empty() {
                    live.push(f[0]);
                    if f.get(1) == Some(&"True") {
                        ready.insert(f[0]);
                    }
                }
            }
            let crowded = live
                .iter()
                .any(|n| live.iter().filter(|m| *m == n).count() > per_node);
            ready.len() >= min_available && !crowded
        },
        f,
    );
    assert!(
        violations.is_empty(),
        "rollout broke maxUnavailable/maxSurge: {violations:?}"
    );
    (r, seen)
}

/// The images of the pods of app=`app`, sorted.
fn images(c: &Cluster, app: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .ok(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
        ])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The REVISION column of `kubectl rollout history`.
fn history(c: &Cluster, name: &str) -> Vec<String> {
    c.ok(&["rollout", "history", &format!("ds/{name}")])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn rolling_update_history_undo_and_on_delete(b: Backend) {
    let c = Cluster::start(b);
    let _sim = c.sim(&["--nodes", "4"]);
    wait_until(&c, "4 nodes", || {
        c.ok(&["get", "nodes", "-o", "name"]).lines().count() == 4
    });
    apply(
        &c,
        &daemonset(
            "web",
            "busybox:1",
            "  minReadySeconds: 2\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 1",
            "",
        ),
    );
    c.ok(&["rollout", "status", "ds/web", "--timeout=90s"]);
    wait_until(&c, "web available", || counts(&c, "web") == "4/4/4/4/4/0");

    let ((), seen) = observing(&c, "web", 3, 1, || {
        c.ok(&["set", "image", "ds/web", "c=busybox:2"]);
        let out = c.ok(&["rollout", "status", "ds/web", "--timeout=120s"]);
        assert!(
            out.contains("daemon set \"web\" successfully rolled out"),
            "{out}"
        );
    });
    assert!(seen > 2, "only {seen} observations");
    wait_until(&c, "new pods only", || {
        images(&c, "web") == ["busybox:2"; 4] && counts(&c, "web") == "4/4/4/4/4/0"
    });
    assert_eq!(
        jp(&c, "ds/web", "{.status.observedGeneration}"),
        jp(&c, "ds/web", "{.metadata.generation}")
    );
    assert_eq!(history(&c, "web"), ["1", "2"]);
    wait_described(
        &c,
        &["ds", "web"],
        &["SuccessfulDelete", "Deleted pod: web-"],
    );
    let rev2 = c.ok(&["rollout", "history", "ds/web", "--revision=2"]);
    assert!(rev2.contains("busybox:2"), "{rev2}");

    // Undo: the template of revision 1 comes back as revision 3.
    let out = c.ok(&["rollout", "undo", "ds/web"]);
    assert!(out.contains("rolled back"), "{out}");
    c.ok(&["rollout", "status", "ds/web", "--timeout=120s"]);
    wait_until(&c, "old image back", || {
        images(&c, "web") == ["busybox:1"; 4] && counts(&c, "web") == "4/4/4/4/4/0"
    });
    assert_eq!(history(&c, "web"), ["2", "3"]);
    // kubectl compares the revision's bytes with its own encoding of the live template.
    let out = c.ok(&["rollout", "undo", "ds/web", "--to-revision=3"]);
    assert!(
        out.contains("skipped rollback (current template already matches revision 3)"),
        "{out}"
    );

    // OnDelete: a new template replaces only the pods deleted by hand.
    c.ok(&[
        "patch",
        "ds/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}"#,
    ]);
    c.ok(&["set", "image", "ds/web", "c=busybox:3"]);
    wait_until(&c, "generation observed", || {
        jp(&c, "ds/web", "{.status.observedGeneration}")
            == jp(&c, "ds/web", "{.metadata.generation}")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(images(&c, "web"), ["busybox:1"; 4]);
    // updatedNumberScheduled is 0, which upstream omits.
    assert_eq!(counts(&c, "web"), "4/4/4/4//0");
    let victim = c
        .ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    c.ok(&["delete", &victim]);
    wait_until(&c, "the deleted pod replaced by the new template", || {
        images(&c, "web") == ["busybox:1", "busybox:1", "busybox:1", "busybox:3"]
            && counts(&c, "web") == "4/4/4/4/1/0"
    });
    let out = c.fails(&["rollout", "status", "ds/web", "--timeout=5s"]);
    assert!(
        out.contains("rollout status is only available for RollingUpdate strategy type"),
        "{out}"
    );

    // Back to RollingUpdate with surge and no unavailability: each remaining old pod gets a new
    // one beside it, and goes once that one is available; every node keeps a ready pod.
    let ((), seen) = observing(&c, "web", 4, 2, || {
        c.ok(&[
            "patch",
            "ds/web",
            "-p",
            r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}"#,
        ]);
        c.ok(&["rollout", "status", "ds/web", "--timeout=120s"]);
    });
    assert!(seen > 2, "only {seen} observations");
    wait_until(&c, "surged to the new template", || {
        images(&c, "web") == ["busybox:3"; 4] && counts(&c, "web") == "4/4/4/4/4/0"
    });
}

on_both_backends!(
    every_node_taints_selector_and_late_nodes,
    rolling_update_history_undo_and_on_delete,
);
