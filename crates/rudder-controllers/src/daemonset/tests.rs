//! The decisions of `manage`, `rollingUpdate` and the status, over the cases of upstream's
//! `daemon_controller_test.go` and `update_test.go`.

use super::*;
use serde_json::json;

const HASH: &str = "new";

fn ds(extra: Value) -> DaemonSet {
    let mut v = json!({"metadata": {"name": "foo", "namespace": "default", "uid": "u1", "generation": 1,
            "annotations": {"deprecated.daemonset.template.generation": "1"}},
        "spec": {"selector": {"matchLabels": {"name": "simple-daemon"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "template": {"metadata": {"labels": {"name": "simple-daemon"}},
                "spec": {"containers": [{"name": "c", "image": "foo/bar"}]}}}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

/// Deep-merges `b` into `a` (objects key by key, anything else replaced).
pub(super) fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn node(name: &str, extra: Value) -> Arc<Node> {
    let mut v = json!({"metadata": {"name": name}});
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).unwrap())
}

fn nodes(n: usize) -> Vec<Arc<Node>> {
    (0..n)
        .map(|i| node(&format!("node-{i}"), json!({})))
        .collect()
}

/// A daemon pod on `node`, of revision `hash`, ready since 2020 when `ready`.
fn pod(name: &str, node: &str, hash: &str, ready: bool, created: &str) -> Arc<Pod> {
    let conds = if ready {
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}])
    } else {
        json!([{"type": "Ready", "status": "False"}])
    };
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
            "creationTimestamp": created,
            "labels": {"name": "simple-daemon", "controller-revision-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "foo", "uid": "u1", "controller": true}]},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": "Running", "conditions": conds}}))
        .unwrap(),
    )
}

fn with_phase(p: &Arc<Pod>, phase: &str) -> Arc<Pod> {
    let mut p = p.as_ref().clone();
    p.status.as_mut().unwrap().phase = Some(phase.into());
    Arc::new(p)
}

fn now() -> jiff::Timestamp {
    "2020-01-01T01:00:00Z".parse().unwrap()
}

fn manage(d: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Plan {
    let b = FailedPodsBackoff::default();
    plan_manage(
        d,
        nodes,
        &node_to_daemon_pods(pods, false),
        HASH,
        &b,
        Instant::now(),
        now(),
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// `TestSimpleDaemonSetLaunchesPods`: one pod per node.
#[test]
fn launches_one_pod_per_node() {
    let p = manage(&ds(json!({})), &nodes(5), &[]);
    assert_eq!(p.create.len(), 5);
    assert!(p.delete.is_empty());
    // A node that has its pod gets none.
    let p = manage(
        &ds(json!({})),
        &nodes(2),
        &[pod("a", "node-0", HASH, true, "2020-01-01T00:00:00Z")],
    );
    assert_eq!(p.create, ["node-1"]);
}

/// `TestNodeSelectorDaemonLaunchesPods` / `TestSelectorDaemonDeletesUnselectedPods`.
#[test]
fn node_selector_picks_nodes_and_evicts_from_others() {
    let d = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"color": "blue"}}}}}));
    let mut ns = nodes(4);
    ns.push(node(
        "blue-0",
        json!({"metadata": {"labels": {"color": "blue"}}}),
    ));
    ns.push(node(
        "blue-1",
        json!({"metadata": {"labels": {"color": "blue"}}}),
    ));
    let pods = [
        pod(
            "on-unselected",
            "node-0",
            HASH,
            true,
            "2020-01-01T00:00:00Z",
        ),
        pod("on-blue", "blue-0", HASH, true, "2020-01-01T00:00:00Z"),
    ];
    let p = manage(&d, &ns, &pods);
    assert_eq!(p.create, ["blue-1"]);
    assert_eq!(p.delete, ["on-unselected"]);
}

/// `TestTaintedNodeDaemonDoesNotLaunchIntolerantPods` / `TestTaintedNodeDaemonLaunchesToleratePod`
/// / `TestNodeDaemonLaunchesToleratePod`, and a NoSchedule taint keeping the pod already there.
#[test]
fn taints_and_tolerations() {
    let tainted = node(
        "tainted",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
    );
    let plain = ds(json!({}));
    assert!(manage(&plain, std::slice::from_ref(&tainted), &[])
        .create
        .is_empty());
    // Already running there: stays (NoSchedule does not evict).
    let there = [pod("p", "tainted", HASH, true, "2020-01-01T00:00:00Z")];
    assert_eq!(
        manage(&plain, std::slice::from_ref(&tainted), &there),
        Plan::default()
    );
    let tolerant = ds(
        json!({"spec": {"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}}),
    );
    assert_eq!(manage(&tolerant, &[tainted], &[]).create, ["tainted"]);
    // NoExecute: the pod goes.
    let evicting = node(
        "evicting",
        json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}),
    );
    let there = [pod("p", "evicting", HASH, true, "2020-01-01T00:00:00Z")];
    assert_eq!(manage(&plain, &[evicting], &there).delete, ["p"]);
    // `TestUnschedulableNodeDaemonDoesLaunchPod` and not-ready nodes: the automatic tolerations.
    let cordoned = node(
        "cordoned",
        json!({"spec": {"unschedulable": true, "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}),
    );
    let not_ready = node(
        "not-ready",
        json!({"spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}}),
    );
    assert_eq!(
        manage(&plain, &[cordoned, not_ready], &[]).create,
        ["cordoned", "not-ready"]
    );
}

/// `TestDealsWithExistingPods`: duplicates on a node are pruned to the oldest.
#[test]
fn duplicates_keep_the_oldest() {
    let pods = [
        pod("newest", "node-0", HASH, true, "2020-01-01T00:00:03Z"),
        pod("oldest", "node-0", HASH, true, "2020-01-01T00:00:01Z"),
        pod("middle", "node-0", HASH, true, "2020-01-01T00:00:02Z"),
    ];
    let p = manage(&ds(json!({})), &nodes(1), &pods);
    assert_eq!(sorted(p.delete), ["middle", "newest"]);
    assert!(p.create.is_empty());
}

/// `TestDaemonKillFailedPods` / `TestDaemonKillFailedPodsBackoff`: a failed pod is deleted with
/// a FailedDaemonPod event, then not again until its node's back-off has passed.
#[test]
fn failed_pods_are_killed_under_backoff() {
    let d = ds(json!({}));
    let failed = with_phase(
        &pod("bad", "node-0", HASH, false, "2020-01-01T00:00:00Z"),
        "Failed",
    );
    let map = node_to_daemon_pods(std::slice::from_ref(&failed), false);
    let b = FailedPodsBackoff::default();
    let t0 = Instant::now();
    let p = plan_manage(&d, &nodes(1), &map, HASH, &b, t0, now());
    assert_eq!(p.delete, ["bad"]);
    assert_eq!(
        p.events,
        [(
            "Warning",
            "FailedDaemonPod",
            "Found failed daemon pod default/bad on node node-0, will try to kill it".to_string()
        )]
    );
    // Still failing half a second later: in back-off, look again after it.
    let p = plan_manage(
        &d,
        &nodes(1),
        &map,
        HASH,
        &b,
        t0 + Duration::from_millis(500),
        now(),
    );
    assert!(p.delete.is_empty() && p.create.is_empty());
    assert_eq!(p.requeue_after, Some(Duration::from_secs(1)));
    // After it, killed again and the back-off doubles.
    let p = plan_manage(
        &d,
        &nodes(1),
        &map,
        HASH,
        &b,
        t0 + Duration::from_secs(1),
        now(),
    );
    assert_eq!(p.delete, ["bad"]);
    assert_eq!(
        b.get(&failed_pods_backoff_key(&d, "node-0")),
        Duration::from_secs(2)
    );
}

/// `TestDaemonKillSucceededPods`-style: a succeeded pod is deleted with SucceededDaemonPod.
#[test]
fn succeeded_pods_are_deleted() {
    let done = with_phase(
        &pod("done", "node-0", HASH, false, "2020-01-01T00:00:00Z"),
        "Succeeded",
    );
    let p = manage(&ds(json!({})), &nodes(1), &[done]);
    assert_eq!(p.delete, ["done"]);
    assert_eq!(p.events[0].1, "SucceededDaemonPod");
    assert_eq!(
        p.events[0].2,
        "Found succeeded daemon pod default/done on node node-0, will try to delete it"
    );
}

/// `TestDeleteUnscheduledPodForNotExistingNode`: a pending pod aimed at a node that is gone.
#[test]
fn unscheduled_pods_for_missing_nodes_are_deleted() {
    let mut p = pod("orphaned", "", HASH, false, "2020-01-01T00:00:00Z")
        .as_ref()
        .clone();
    let spec = p.spec.as_mut().unwrap();
    spec.node_name = None;
    spec.affinity = Some(replace_node_name_affinity(None, "gone"));
    let plan = manage(&ds(json!({})), &nodes(1), &[Arc::new(p)]);
    assert_eq!(plan.create, ["node-0"]);
    assert_eq!(plan.delete, ["orphaned"]);
}

/// Terminal pods already being deleted are not the controller's business any more.
#[test]
fn deleted_terminal_pods_are_left_out() {
    let mut p = with_phase(
        &pod("gone", "node-0", HASH, false, "2020-01-01T00:00:00Z"),
        "Failed",
    )
    .as_ref()
    .clone();
    p.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    let pods = [Arc::new(p)];
    assert!(node_to_daemon_pods(&pods, false).is_empty());
    assert_eq!(node_to_daemon_pods(&pods, true)["node-0"].len(), 1);
}

/// `TestSurgeDealsWithExistingPods` & co: with surge a node keeps an old ready pod beside a new
/// one until the new one is available.
#[test]
fn surge_keeps_old_pod_until_new_is_available() {
    let d = ds(
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}}}),
    );
    let old = pod("old", "node-0", "old", true, "2020-01-01T00:00:00Z");
    let new_unready = pod("new", "node-0", HASH, false, "2020-01-01T00:00:01Z");
    assert_eq!(
        manage(&d, &nodes(1), &[old.clone(), new_unready]),
        Plan::default()
    );
    let new_ready = pod("new", "node-0", HASH, true, "2020-01-01T00:00:01Z");
    assert_eq!(
        manage(&d, &nodes(1), &[old.clone(), new_ready.clone()]).delete,
        ["old"]
    );
    // An old pod that is not ready goes at once.
    let old_unready = pod("old", "node-0", "old", false, "2020-01-01T00:00:00Z");
    let new_unready = pod("new", "node-0", HASH, false, "2020-01-01T00:00:01Z");
    assert_eq!(
        manage(&d, &nodes(1), &[old_unready, new_unready]).delete,
        ["old"]
    );
    // Extra pods of either kind beyond one each go.
    let old2 = pod("old2", "node-0", "old", true, "2020-01-01T00:00:02Z");
    let p = manage(&d, &nodes(1), &[old, old2, new_ready]);
    assert_eq!(sorted(p.delete), ["old", "old2"]);
}

fn rolling(d: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Plan {
    plan_rolling_update(d, nodes, &node_to_daemon_pods(pods, false), HASH, now()).unwrap()
}

fn old_pods(n: usize) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            pod(
                &format!("old-{i}"),
                &format!("node-{i}"),
                "old",
                true,
                "2020-01-01T00:00:00Z",
            )
        })
        .collect()
}

/// `TestDaemonSetUpdatesPods` / `TestDaemonSetUpdatesPodsWithMaxSurge`-style: at most
/// maxUnavailable old pods are taken down at once, absolute or percent (rounded up).
#[test]
fn rolling_update_respects_max_unavailable() {
    let n = nodes(5);
    let pods = old_pods(5);
    assert_eq!(rolling(&ds(json!({})), &n, &pods).delete.len(), 1);
    let two = ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}));
    assert_eq!(rolling(&two, &n, &pods).delete.len(), 2);
    let pct = ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}}));
    assert_eq!(rolling(&pct, &n, &pods).delete.len(), 3);
    // One node is already down (its new pod not ready yet): one fewer may go.
    let mut pods2 = pods.clone();
    pods2[0] = pod("new-0", "node-0", HASH, false, "2020-01-01T00:00:00Z");
    assert!(rolling(&ds(json!({})), &n, &pods2).delete.is_empty());
    assert_eq!(rolling(&two, &n, &pods2).delete.len(), 1);
    // Unavailable old pods are replaced regardless of the budget.
    let mut pods3 = pods.clone();
    pods3[1] = pod("old-1", "node-1", "old", false, "2020-01-01T00:00:00Z");
    pods3[2] = pod("old-2", "node-2", "old", false, "2020-01-01T00:00:00Z");
    assert_eq!(
        sorted(rolling(&ds(json!({})), &n, &pods3).delete),
        ["old-1", "old-2"]
    );
    // Both zero from the API: one at a time anyway.
    let zero = ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0}}}}));
    assert_eq!(rolling(&zero, &n, &pods).delete.len(), 1);
    // minReadySeconds: a new pod ready for less than that is unavailable.
    let slow = ds(
        json!({"spec": {"minReadySeconds": 7200, "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}),
    );
    let mut pods4 = pods.clone();
    pods4[0] = pod("new-0", "node-0", HASH, true, "2020-01-01T00:00:00Z");
    // Every pod (old too) is unavailable under a 2 h minReadySeconds: all are replacements.
    assert_eq!(rolling(&slow, &n, &pods4).delete.len(), 4);
}

/// Surge: a new pod beside an old one on up to maxSurge nodes; the old one goes once the new
/// one is available.
#[test]
fn rolling_update_with_surge() {
    let d = ds(
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 2}}}}),
    );
    let n = nodes(5);
    let pods = old_pods(5);
    let p = rolling(&d, &n, &pods);
    assert_eq!(p.create, ["node-0", "node-1"]);
    assert!(p.delete.is_empty());
    // node-0's new pod is available: its old pod goes, and node-1 still surges, so one more.
    let mut pods2 = pods.clone();
    pods2.push(pod("new-0", "node-0", HASH, true, "2020-01-01T00:00:01Z"));
    pods2.push(pod("new-1", "node-1", HASH, false, "2020-01-01T00:00:01Z"));
    let p = rolling(&d, &n, &pods2);
    assert_eq!(p.delete, ["old-0"]);
    assert_eq!(p.create, ["node-2"]);
}

/// `updateDaemonSetStatus` counts, `TestUpdateDaemonSetStatus`-style.
#[test]
fn status_counts_as_upstream() {
    let d = ds(
        json!({"spec": {"minReadySeconds": 60, "template": {"spec": {"nodeSelector": {"run": "yes"}}}}}),
    );
    let yes = json!({"metadata": {"labels": {"run": "yes"}}});
    let ns = vec![
        node("a", yes.clone()),
        node("b", yes.clone()),
        node("c", yes.clone()),
        node("d", yes),
        node("e", json!({})),
    ];
    let recent = {
        let mut p = pod("b1", "b", HASH, true, "2020-01-01T00:00:00Z")
            .as_ref()
            .clone();
        let c = &mut p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        c.last_transition_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2020-01-01T00:59:30Z".parse().unwrap(),
        ));
        Arc::new(p)
    };
    let pods = [
        pod("a1", "a", HASH, true, "2020-01-01T00:00:00Z"),
        recent,
        pod("c1", "c", "old", false, "2020-01-01T00:00:00Z"),
        pod("e1", "e", HASH, true, "2020-01-01T00:00:00Z"),
    ];
    let s = calculate_status(&d, &ns, &node_to_daemon_pods(&pods, false), HASH, now());
    assert_eq!(s.desired_number_scheduled, 4);
    assert_eq!(s.current_number_scheduled, 3);
    assert_eq!(s.number_misscheduled, 1);
    assert_eq!(s.number_ready, 2);
    assert_eq!(s.number_available, Some(1));
    assert_eq!(s.number_unavailable, Some(3));
    assert_eq!(s.updated_number_scheduled, Some(2));
}

/// The revision data is upstream's `getPatch`: the template, whole, under `$patch: replace`.
#[test]
fn revision_data_replaces_the_template() {
    let d = ds(json!({}));
    let data = revision_data(&d);
    assert_eq!(data["spec"]["template"]["$patch"], "replace");
    assert_eq!(
        data["spec"]["template"]["metadata"]["labels"]["name"],
        "simple-daemon"
    );
    assert_eq!(data.as_object().unwrap().len(), 1);
    let rev = ControllerRevision {
        data: RawExtension(data),
        ..Default::default()
    };
    assert!(revision_matches(&d, &rev));
    let changed = ds(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "foo/baz"}]}}}}),
    );
    assert!(!revision_matches(&changed, &rev));
}

/// Pods are created with the node-name affinity, the hash label and the daemon tolerations,
/// never with `nodeName` (the default scheduler binds them).
#[test]
fn created_pods_are_for_the_scheduler() {
    let d = ds(json!({}));
    let t = create_pod_template(&d.spec.template, template_generation(&d), HASH);
    let mut p = pod_from_template(&t, &d);
    let spec = p.spec.as_mut().unwrap();
    spec.affinity = Some(replace_node_name_affinity(spec.affinity.take(), "node-3"));
    assert_eq!(spec.node_name, None);
    assert_eq!(target_node_name(&p).as_deref(), Some("node-3"));
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[HASH_LABEL], HASH);
    assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "1");
    assert_eq!(p.metadata.generate_name.as_deref(), Some("foo-"));
    let o = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((o.kind.as_str(), o.controller), ("DaemonSet", Some(true)));
}
