//! The pod garbage collector (upstream's `pkg/controller/podgc/gc_controller.go`): every 20 s
//! it force-deletes (grace 0) terminated pods beyond `--terminated-pod-gc-threshold` (evicted
//! ones first, then the oldest), terminating pods on not-ready nodes tainted
//! `node.kubernetes.io/out-of-service`, pods bound to nodes that no longer exist (once the node
//! has been missing for a 40 s quarantine and a live GET confirms it; these get the
//! `DisruptionTarget` condition, `DeletionByPodGC`) and unscheduled pods that are terminating.
//! A pod not yet terminal is moved to `Failed` first, as no kubelet will ever do it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::json;

use crate::controller::{ignore_not_found, is_not_found, ReconcileError};
use crate::informer::Informer;
use crate::manager::Context;
use crate::nodeutil;
use crate::podutil;

/// Upstream's `gcCheckPeriod` and `quarantineTime`.
const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
const QUARANTINE: Duration = Duration::from_secs(40);

pub struct PodGc {
    client: Client,
    nodes: Arc<Informer<Node>>,
    pods: Arc<Informer<Pod>>,
    threshold: usize,
    /// Nodes pods are bound to that the informer does not have, since when.
    missing: Mutex<HashMap<String, Instant>>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(PodGc {
        client: cx.client.clone(),
        nodes: cx.informers.get::<Node>(),
        pods: cx.informers.get::<Pod>(),
        threshold: cx.options.terminated_pod_gc_threshold,
        missing: Mutex::default(),
    });
    tasks.spawn(async move {
        c.nodes.wait_synced().await;
        c.pods.wait_synced().await;
        loop {
            c.gc().await;
            tokio::time::sleep(GC_CHECK_PERIOD).await;
        }
    });
}

/// Upstream's `isPodTerminated`: neither Pending, Running nor Unknown.
fn is_terminated(pod: &Pod) -> bool {
    !matches!(podutil::phase(pod), "Pending" | "Running" | "Unknown")
}

/// Upstream's `eviction.PodIsEvicted`.
fn is_evicted(pod: &Pod) -> bool {
    podutil::phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// The terminated pods beyond `threshold`, in upstream's order (`byEvictionAndCreationTimestamp`:
/// evicted first, then oldest, then by name).
pub fn terminated_over_threshold(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    let Some(over) = done.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return Vec::new();
    };
    done.sort_by(|a, b| {
        is_evicted(b)
            .cmp(&is_evicted(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    done.truncate(over);
    done
}

/// Upstream's `gcUnscheduledTerminating`: terminating pods never bound to a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some()
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
        })
        .cloned()
        .collect()
}

/// Upstream's `gcTerminating`: terminating pods on not-ready out-of-service nodes.
pub fn terminating_out_of_service(
    pods: &[Arc<Pod>],
    node: impl Fn(&str) -> Option<Arc<Node>>,
) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| {
            let Some(n) = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(&node)
            else {
                return false;
            };
            !nodeutil::is_ready(&n)
                && nodeutil::taints(&n)
                    .iter()
                    .any(|t| t.key == nodeutil::TAINT_OUT_OF_SERVICE)
        })
        .cloned()
        .collect()
}

impl PodGc {
    async fn gc(&self) {
        let pods = self.pods.list_all();
        let mut victims: Vec<(Arc<Pod>, Option<serde_json::Value>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |p: Arc<Pod>, cond: Option<serde_json::Value>| {
            if seen.insert(nodeutil::pod_key(&p)) {
                victims.push((p, cond));
            }
        };
        for p in terminated_over_threshold(&pods, self.threshold) {
            push(p, None);
        }
        for p in terminating_out_of_service(&pods, |n| self.nodes.get("", n)) {
            push(p, None);
        }
        for p in self.orphaned(&pods).await {
            let cond = json!({
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": nodeutil::now_time(),
            });
            push(p, Some(cond));
        }
        for p in unscheduled_terminating(&pods) {
            push(p, None);
        }
        for (p, cond) in victims {
            if let Err(e) = self.mark_failed_and_delete(&p, cond).await {
                tracing::info!(pod = %nodeutil::pod_key(&p), error = %e, "pod GC failed to delete a pod");
            } else {
                tracing::info!(pod = %nodeutil::pod_key(&p), "PodGC force-deleted a pod");
            }
        }
    }

    /// Upstream's `gcOrphaned`: pods on nodes missing for the quarantine and gone for a GET.
    async fn orphaned(&self, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let now = Instant::now();
        let bound: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .filter(|n| !n.is_empty())
            .collect();
        let due: Vec<String> = {
            let mut missing = self.missing.lock().unwrap_or_else(|e| e.into_inner());
            missing.retain(|n, _| bound.contains(n) && self.nodes.get("", n).is_none());
            for n in &bound {
                if self.nodes.get("", n).is_none() {
                    missing.entry(n.clone()).or_insert(now);
                }
            }
            missing
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= QUARANTINE)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let mut gone = HashSet::new();
        for n in due {
            match api.get(&n).await {
                Err(e) if is_not_found(&e) => {
                    gone.insert(n);
                }
                Err(e) => tracing::info!(node = %n, error = %e, "pod GC could not check a node"),
                Ok(_) => {}
            }
        }
        pods.iter()
            .filter(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| gone.contains(n))
            })
            .cloned()
            .collect()
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        cond: Option<serde_json::Value>,
    ) -> Result<(), ReconcileError> {
        let phase = podutil::phase(pod);
        if phase != "Succeeded" && phase != "Failed" {
            ignore_not_found(
                nodeutil::patch_pod_condition(
                    &self.client,
                    pod,
                    cond.unwrap_or(serde_json::Value::Null),
                    Some("Failed"),
                )
                .await,
            )?;
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or(""),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        ignore_not_found(
            api.delete(pod.metadata.name.as_deref().unwrap_or(""), &dp)
                .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: i64, extra: serde_json::Value) -> Arc<Pod> {
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default",
                "creationTimestamp": jiff::Timestamp::from_second(1_700_000_000 + created).unwrap().to_string()},
            "spec": {"containers": [{"name": "c"}], "nodeName": "node"},
            "status": {"phase": phase},
        });
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            for (k, e) in extra {
                match (v.get_mut(k), e) {
                    (Some(serde_json::Value::Object(m)), serde_json::Value::Object(e)) => {
                        m.extend(e.clone());
                    }
                    _ => {
                        v.insert(k.clone(), e.clone());
                    }
                }
            }
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn names(ps: &[Arc<Pod>]) -> Vec<&str> {
        ps.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    // Cases of upstream's TestGCTerminated.
    #[test]
    fn terminated_beyond_threshold_oldest_and_evicted_first() {
        let pods = vec![
            pod("a", "Failed", 1, json!({})),
            pod("b", "Succeeded", 0, json!({})),
            pod("c", "Failed", 2, json!({})),
            pod("running", "Running", -5, json!({})),
            pod("pending", "Pending", -5, json!({})),
        ];
        assert_eq!(names(&terminated_over_threshold(&pods, 1)), ["b", "a"]);
        assert!(terminated_over_threshold(&pods, 3).is_empty());
        assert!(
            terminated_over_threshold(&pods, 0).is_empty(),
            "0 disables it"
        );
        let pods = vec![
            pod("a", "Failed", 1, json!({})),
            pod(
                "evicted",
                "Failed",
                5,
                json!({"status": {"reason": "Evicted"}}),
            ),
            pod("b", "Succeeded", 0, json!({})),
        ];
        assert_eq!(
            names(&terminated_over_threshold(&pods, 1)),
            ["evicted", "b"]
        );
    }

    // Cases of upstream's TestGCUnscheduledTerminating.
    #[test]
    fn unscheduled_terminating_pods() {
        let del = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let pods = vec![
            pod("scheduled", "Running", 0, del.clone()),
            pod(
                "unscheduled",
                "Pending",
                0,
                json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {"nodeName": ""}}),
            ),
            pod("alive", "Pending", 0, json!({"spec": {"nodeName": ""}})),
        ];
        assert_eq!(names(&unscheduled_terminating(&pods)), ["unscheduled"]);
    }

    // Cases of upstream's TestGCTerminating (out-of-service).
    #[test]
    fn terminating_on_out_of_service_nodes() {
        let del = json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}});
        let pods = vec![
            pod("t", "Running", 0, del),
            pod("r", "Running", 0, json!({})),
        ];
        let node = |ready: &str, oos: bool| -> Arc<Node> {
            let taints = if oos {
                json!([{"key": nodeutil::TAINT_OUT_OF_SERVICE, "effect": "NoExecute"}])
            } else {
                json!([])
            };
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "node"},
                    "spec": {"taints": taints},
                    "status": {"conditions": [{"type": "Ready", "status": ready}]},
                }))
                .unwrap(),
            )
        };
        assert_eq!(
            names(&terminating_out_of_service(&pods, |_| Some(node(
                "False", true
            )))),
            ["t"]
        );
        assert!(terminating_out_of_service(&pods, |_| Some(node("True", true))).is_empty());
        assert!(terminating_out_of_service(&pods, |_| Some(node("False", false))).is_empty());
    }
}
