//! The taint eviction controller (upstream's `pkg/controller/tainteviction`): a pod on a node
//! with NoExecute taints it does not tolerate is deleted at once; one that tolerates them all
//! for a limited `tolerationSeconds` is deleted when the shortest of them runs out, counted
//! from the taint's `timeAdded` (upstream counts from when the controller saw the taint, which
//! a controller restart resets; the taint's own time survives it). Before deleting, the pod
//! gets the `DisruptionTarget` condition (`DeletionByTaintManager`) and a
//! `TaintManagerEviction` event; a scheduled deletion that is no longer due is cancelled with
//! upstream's "Cancelling deletion" event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::json;

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::events::Recorder;
use crate::informer::{split_key, Change, Informer};
use crate::manager::Context;
use crate::nodeutil;
use crate::workqueue::WorkQueue;

/// When a pod on a node with `taints` must go: `None` never (tolerated forever or no taints),
/// `Some(t)` at `t` (`now` when a taint is not tolerated). `seen` is when this controller first
/// saw each taint without a `timeAdded`.
pub fn eviction_time(
    taints: &[Taint],
    tolerations: &[Toleration],
    now: Timestamp,
    seen: impl Fn(&Taint) -> Timestamp,
) -> Option<Timestamp> {
    if taints.is_empty() {
        return None;
    }
    let (all, used) = nodeutil::matching_tolerations(taints, tolerations);
    if !all {
        return Some(now);
    }
    // Upstream's getMinTolerationTime: a toleration without seconds tolerates forever, one
    // with seconds <= 0 not at all.
    used.iter()
        .filter_map(|(i, tol)| {
            let secs = tol.toleration_seconds?;
            let t = &taints[*i];
            let start = t
                .time_added
                .as_ref()
                .map(|t| t.0)
                .unwrap_or_else(|| seen(t));
            Some(if secs <= 0 {
                now
            } else {
                start
                    .checked_add(jiff::SignedDuration::from_secs(secs))
                    .unwrap_or(now)
            })
        })
        .min()
}

pub struct TaintEviction {
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    queue: Arc<WorkQueue>,
    /// Pod key → when its deletion is due.
    scheduled: Mutex<HashMap<String, Timestamp>>,
    /// (node, taint key, effect) → when a taint without `timeAdded` was first seen.
    first_seen: Mutex<HashMap<(String, String), Timestamp>>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(TaintEviction {
        client: cx.client.clone(),
        nodes: cx.informers.get::<Node>(),
        pods: cx.informers.get::<Pod>(),
        recorder: Recorder::new(cx.client.clone(), "taint-eviction-controller", &cx.host),
        queue: WorkQueue::new("noexec_taint", cx.metrics.clone()),
        scheduled: Mutex::default(),
        first_seen: Mutex::default(),
    });
    let q = c.queue.clone();
    c.nodes.add_handler(move |ch| {
        let (old, new) = match ch {
            Change::Added(n) => (None, Some(n)),
            Change::Updated { old, new } => (Some(old), Some(new)),
            Change::Deleted(n) => (Some(n), None),
        };
        if let (Some(o), Some(n)) = (old, new) {
            if nodeutil::no_execute_taints(o) == nodeutil::no_execute_taints(n) {
                return;
            }
        }
        if let Some(n) = new.or(old) {
            q.add(format!("node:{}", n.metadata.name.as_deref().unwrap_or("")));
        }
    });
    let q = c.queue.clone();
    c.pods.add_handler(move |ch| {
        let (old, new) = match ch {
            Change::Added(p) => (None, p),
            Change::Updated { old, new } => (Some(old), new),
            Change::Deleted(p) => (None, p),
        };
        let spec = |p: &Pod| {
            p.spec
                .as_ref()
                .map(|s| (s.node_name.clone(), s.tolerations.clone()))
        };
        if old.is_some_and(|o| spec(o) == spec(new)) {
            return;
        }
        q.add(format!("pod:{}", nodeutil::pod_key(new)));
    });
    let (nodes, pods, queue) = (c.nodes.clone(), c.pods.clone(), c.queue.clone());
    tasks.spawn(async move {
        nodes.wait_synced().await;
        pods.wait_synced().await;
        run_workers(queue, c, 8).await;
    });
}

impl TaintEviction {
    /// A `TaintManagerEviction` event on the pod `key` (by name: it may be gone already).
    fn pod_event(&self, key: &str, message: String) {
        let (ns, name) = split_key(key);
        let regarding = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        };
        self.recorder.event_for(
            regarding,
            ns.to_string(),
            "Normal",
            "TaintManagerEviction",
            message,
        );
    }

    fn cancel(&self, pod_key: &str) {
        let had = self
            .scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_key)
            .is_some();
        if had {
            self.pod_event(pod_key, format!("Cancelling deletion of Pod {pod_key}"));
        }
    }

    /// Upstream's `processPodOnNode`.
    fn process_pod(&self, pod: &Pod, node: &Node, now: Timestamp) {
        let key = nodeutil::pod_key(pod);
        if pod.metadata.deletion_timestamp.is_some() {
            // Already going: nothing to schedule (upstream would delete it again).
            self.scheduled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            return;
        }
        let taints = nodeutil::no_execute_taints(node);
        let node_name = node.metadata.name.clone().unwrap_or_default();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[]);
        let seen = |t: &Taint| {
            *self
                .first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry((node_name.clone(), format!("{}:{}", t.key, t.effect)))
                .or_insert(now)
        };
        let Some(at) = eviction_time(&taints, tolerations, now, seen) else {
            self.cancel(&key);
            return;
        };
        let previous = self
            .scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), at);
        if previous == Some(at) {
            return;
        }
        let delay = std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default();
        self.queue.add_after(format!("evict:{key}"), delay);
    }

    async fn sync_node(&self, name: &str) -> ReconcileResult {
        let pods = nodeutil::pods_on_node(&self.pods.list_all(), name);
        let Some(node) = self.nodes.get("", name) else {
            self.first_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(n, _), _| n != name);
            for p in &pods {
                self.cancel(&nodeutil::pod_key(p));
            }
            return Ok(Next::Done);
        };
        let now = Timestamp::now();
        let taints = nodeutil::no_execute_taints(&node);
        self.first_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(n, k), _| {
                n != name
                    || taints
                        .iter()
                        .any(|t| *k == format!("{}:{}", t.key, t.effect))
            });
        for p in &pods {
            self.process_pod(p, &node, now);
        }
        Ok(Next::Done)
    }

    async fn sync_pod(&self, key: &str) -> ReconcileResult {
        let (ns, name) = split_key(key);
        let Some(pod) = self.pods.get(ns, name) else {
            self.cancel(key);
            return Ok(Next::Done);
        };
        let Some(node) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.nodes.get("", n))
        else {
            return Ok(Next::Done);
        };
        self.process_pod(&pod, &node, Timestamp::now());
        Ok(Next::Done)
    }

    /// Upstream's `deletePodHandler`: the event, the DisruptionTarget condition, the delete.
    async fn evict(&self, key: &str) -> ReconcileResult {
        let due = self
            .scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied();
        let Some(due) = due else {
            return Ok(Next::Done);
        };
        let now = Timestamp::now();
        if due > now {
            // Rescheduled later; that later timer fires it.
            return Ok(Next::Done);
        }
        let (ns, name) = split_key(key);
        self.pod_event(key, format!("Marking for deletion Pod {key}"));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = match api.get(name).await {
            Ok(p) => p,
            Err(e) if crate::controller::is_not_found(&e) => {
                self.scheduled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(key);
                return Ok(Next::Done);
            }
            Err(e) => return Err(e.into()),
        };
        if !nodeutil::pod_condition_true(&pod, "DisruptionTarget") {
            let cond = json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": nodeutil::now_time(),
            });
            ignore_not_found(nodeutil::patch_pod_condition(&self.client, &pod, cond, None).await)?;
        }
        ignore_not_found(api.delete(name, &DeleteParams::default()).await)?;
        self.scheduled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(Next::Done)
    }
}

impl Reconciler for TaintEviction {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            if let Some(n) = key.strip_prefix("node:") {
                self.sync_node(n).await
            } else if let Some(p) = key.strip_prefix("pod:") {
                self.sync_pod(p).await
            } else if let Some(p) = key.strip_prefix("evict:") {
                self.evict(p).await
            } else {
                Ok(Next::Done)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeutil::{taint, TAINT_NOT_READY, TAINT_UNREACHABLE};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn added(key: &str, when: i64) -> Taint {
        Taint {
            time_added: Some(Time(at(when))),
            ..taint(key, "NoExecute")
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    // Cases of upstream's TestCreatePod / TestUpdateNode / TestUpdateNodeWithMultipleTaints.
    #[test]
    fn not_tolerated_is_evicted_now() {
        let e = eviction_time(&[added(TAINT_UNREACHABLE, 0)], &[], at(10), |_| at(10));
        assert_eq!(e, Some(at(10)));
        // Tolerating one of two taints is not enough.
        let e = eviction_time(
            &[added(TAINT_UNREACHABLE, 0), added("other", 0)],
            &[tol(TAINT_UNREACHABLE, None)],
            at(10),
            |_| at(10),
        );
        assert_eq!(e, Some(at(10)));
    }

    #[test]
    fn tolerated_forever_is_never_evicted() {
        let e = eviction_time(
            &[added(TAINT_UNREACHABLE, 0)],
            &[tol(TAINT_UNREACHABLE, None)],
            at(10),
            |_| at(10),
        );
        assert_eq!(e, None);
        assert_eq!(eviction_time(&[], &[], at(10), |_| at(10)), None);
    }

    #[test]
    fn toleration_seconds_count_from_time_added() {
        let e = eviction_time(
            &[added(TAINT_UNREACHABLE, 5)],
            &[tol(TAINT_UNREACHABLE, Some(300))],
            at(10),
            |_| at(10),
        );
        assert_eq!(e, Some(at(305)));
        // The shortest toleration wins; zero or negative means now.
        let taints = [added(TAINT_UNREACHABLE, 5), added(TAINT_NOT_READY, 8)];
        let tols = [
            tol(TAINT_UNREACHABLE, Some(300)),
            tol(TAINT_NOT_READY, Some(2)),
        ];
        assert_eq!(
            eviction_time(&taints, &tols, at(10), |_| at(10)),
            Some(at(10))
        );
        let tols = [
            tol(TAINT_UNREACHABLE, Some(300)),
            tol(TAINT_NOT_READY, Some(0)),
        ];
        assert_eq!(eviction_time(&taints, &tols, at(9), |_| at(9)), Some(at(9)));
        // No timeAdded: counted from when the controller first saw it.
        let e = eviction_time(
            &[taint(TAINT_UNREACHABLE, "NoExecute")],
            &[tol(TAINT_UNREACHABLE, Some(30))],
            at(10),
            |_| at(7),
        );
        assert_eq!(e, Some(at(37)));
    }
}
