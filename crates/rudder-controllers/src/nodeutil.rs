//! What the node controllers share (upstream's `pkg/controller/util/node`, `pkg/util/taints` and
//! the toleration helpers of `pkg/apis/core/v1/helper`): taint and toleration matching, node
//! conditions, the node taint swap and the pod status writes they make.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::controller::is_conflict;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

/// Upstream's `Taint.MatchTaint`: same key and effect.
pub fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

pub fn has_taint(node: &Node, t: &Taint) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|x| same_taint(x, t)))
}

pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    taints(node)
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, t: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != t.effect {
            return false;
        }
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != t.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        // An empty key with Equal is invalid (validation refuses it); it matches nothing.
        "Equal" | "" => {
            !key.is_empty()
                && tol.value.as_deref().unwrap_or("") == t.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Upstream's `GetMatchingTolerations`: whether every taint is tolerated, and for each taint
/// the first toleration that tolerates it.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> (bool, Vec<(usize, &'a Toleration)>) {
    let mut used = Vec::new();
    for (i, t) in taints.iter().enumerate() {
        match tolerations.iter().find(|tol| tolerates(tol, t)) {
            Some(tol) => used.push((i, tol)),
            None => return (false, Vec::new()),
        }
    }
    (true, used)
}

pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Upstream's `IsNodeReady`.
pub fn is_ready(node: &Node) -> bool {
    condition(node, "Ready").is_some_and(|c| c.status == "True")
}

/// The pods bound to `node` (a scan: upstream indexes pods by `spec.nodeName`; nodes change
/// rarely enough that the node controllers can afford it).
pub fn pods_on_node(pods: &[std::sync::Arc<Pod>], node: &str) -> Vec<std::sync::Arc<Pod>> {
    pods.iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .cloned()
        .collect()
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

pub fn now_time() -> Time {
    Time(
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    )
}

/// The node's taints with `add` added (a taint of the same key and effect replaced only when
/// its value differs, so `timeAdded` is kept) and `remove` removed; `None` when nothing changes.
pub fn swapped_taints(current: &[Taint], add: &[Taint], remove: &[Taint]) -> Option<Vec<Taint>> {
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !remove.iter().any(|r| same_taint(r, t)))
        .cloned()
        .collect();
    let mut changed = out.len() != current.len();
    for a in add {
        match out.iter_mut().find(|t| same_taint(t, a)) {
            Some(t) if t.value == a.value => {}
            Some(t) => {
                *t = a.clone();
                changed = true;
            }
            None => {
                out.push(a.clone());
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// Upstream's `SwapNodeControllerTaint`: adds `add` (stamped with `timeAdded` now) and removes
/// `remove` on the live node, compare-and-swap on its resourceVersion, retried on conflicts.
pub async fn swap_node_taints(
    client: &Client,
    node: &str,
    add: &[Taint],
    remove: &[Taint],
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = now_time();
    let add: Vec<Taint> = add
        .iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t.clone()
        })
        .collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let live = api.get(node).await?;
        let Some(new) = swapped_taints(taints(&live), &add, remove) else {
            return Ok(());
        };
        let patch = json!({
            "metadata": {"resourceVersion": live.metadata.resource_version},
            "spec": {"taints": new},
        });
        match api
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < 5 => {}
            Err(e) => return Err(e),
        }
    }
}

/// Strategic-merge patch of one pod condition (conditions merge by type), with the pod's UID
/// as a precondition, as upstream's `PatchPodStatus`; `phase` optionally set too.
pub async fn patch_pod_condition(
    client: &Client,
    pod: &Pod,
    condition: serde_json::Value,
    phase: Option<&str>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or(""),
    );
    let mut status = json!({});
    if !condition.is_null() {
        status["conditions"] = json!([condition]);
    }
    if let Some(p) = phase {
        status["phase"] = json!(p);
    }
    let patch = json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
    api.patch_status(
        pod.metadata.name.as_deref().unwrap_or(""),
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .map(|_| ())
}

/// The pod's condition of `type_` if it is True.
pub fn pod_condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, value: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: (!op.is_empty()).then(|| op.into()),
            value: (!value.is_empty()).then(|| value.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: secs,
        }
    }

    // Cases of upstream's TestTolerationToleratesTaint (pkg/apis/core/v1/helper).
    #[test]
    fn tolerations_match_as_upstream() {
        let t = Taint {
            key: "foo".into(),
            value: Some("bar".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        assert!(tolerates(
            &tol("foo", "Equal", "bar", "NoSchedule", None),
            &t
        ));
        assert!(tolerates(&tol("foo", "Exists", "", "NoSchedule", None), &t));
        assert!(tolerates(&tol("foo", "Exists", "", "", None), &t));
        assert!(tolerates(&tol("", "Exists", "", "", None), &t));
        assert!(!tolerates(
            &tol("foo", "Equal", "baz", "NoSchedule", None),
            &t
        ));
        assert!(!tolerates(&tol("foo", "Exists", "", "NoExecute", None), &t));
        assert!(!tolerates(&tol("other", "Exists", "", "", None), &t));
        // Operator defaults to Equal.
        assert!(tolerates(&tol("foo", "", "bar", "", None), &t));
    }

    #[test]
    fn every_taint_needs_a_toleration() {
        let ts = vec![
            taint(TAINT_UNREACHABLE, "NoExecute"),
            taint(TAINT_NOT_READY, "NoExecute"),
        ];
        let tols = vec![tol(TAINT_UNREACHABLE, "Exists", "", "NoExecute", Some(5))];
        assert!(!matching_tolerations(&ts, &tols).0);
        let tols = vec![
            tol(TAINT_UNREACHABLE, "Exists", "", "NoExecute", Some(5)),
            tol("", "Exists", "", "", None),
        ];
        let (all, used) = matching_tolerations(&ts, &tols);
        assert!(all);
        assert_eq!(used.len(), 2);
        assert_eq!(used[0].1.toleration_seconds, Some(5));
        assert_eq!(used[1].1.toleration_seconds, None);
    }

    #[test]
    fn taint_swap_keeps_time_added_and_reports_no_change() {
        let mut old = taint(TAINT_UNREACHABLE, "NoExecute");
        old.time_added = Some(now_time());
        let current = vec![old.clone(), taint("user", "NoSchedule")];
        assert_eq!(
            swapped_taints(&current, &[taint(TAINT_UNREACHABLE, "NoExecute")], &[]),
            None
        );
        let new = swapped_taints(
            &current,
            &[taint(TAINT_NOT_READY, "NoExecute")],
            &[taint(TAINT_UNREACHABLE, "NoExecute")],
        )
        .unwrap();
        assert_eq!(
            new.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            ["user", TAINT_NOT_READY]
        );
        assert_eq!(
            swapped_taints(&current, &[], &[taint("absent", "NoExecute")]),
            None
        );
    }
}
