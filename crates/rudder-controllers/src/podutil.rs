//! Pod and ownership helpers the workload controllers share (upstream's `controller_utils.go`,
//! `podutil`, `metav1.LabelSelectorAsSelector`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Resource;

/// Whether `labels` match a LabelSelector: an empty selector matches everything.
pub fn selector_matches(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    for (k, v) in sel.match_labels.iter().flatten() {
        if get(k) != Some(v) {
            return false;
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.as_deref().unwrap_or(&[]);
        let ok = match e.operator.as_str() {
            "In" => get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => get(&e.key).is_some(),
            "DoesNotExist" => get(&e.key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Whether a selector selects nothing at all (no labels, no expressions): upstream refuses to
/// let such a selector adopt every pod of a namespace.
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
}

pub fn controller_ref(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// An ownerReference making `owner` the controller of a child.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Upstream's `IsPodActive`: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    phase(pod) != "Succeeded" && phase(pod) != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Upstream's `IsPodAvailable`: ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    let Some(c) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    match &c.last_transition_time {
        Some(t) => t.0 + jiff::SignedDuration::from_secs(i64::from(min_ready_seconds)) <= now,
        None => false,
    }
}

fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Upstream's `ActivePodsWithRanks.Less`: which pod to delete first when scaling down.
/// `rank` is the number of the controller's pods on the same node (more colocated first).
pub fn delete_first(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
            .to_string()
    };
    // 1. Unassigned before assigned.
    let (na, nb) = (node(a).is_empty(), node(b).is_empty());
    if na != nb {
        return if na {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let order = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    if order(a) != order(b) {
        return order(a).cmp(&order(b));
    }
    // 3. Not ready before ready.
    if is_ready(a) != is_ready(b) {
        return if is_ready(a) {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. More colocated siblings first.
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // 5. Ready for less time first.
    if is_ready(a) && is_ready(b) {
        let (ta, tb) = (ready_since(a), ready_since(b));
        if ta != tb {
            return tb.cmp(&ta);
        }
    }
    // 6. More restarts first.
    if restarts(a) != restarts(b) {
        return restarts(b).cmp(&restarts(a));
    }
    // 7. Newer first (empty creation time first).
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    match (created(a), created(b)) {
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (ta, tb) => tb.cmp(&ta),
    }
}

/// Upstream's `PodControllerRefManager.ClaimPods`: of `pods`, keeps those `owner` controls that
/// `matches` accepts, releases those it controls that stopped matching (unless the owner is
/// being deleted), and adopts matching orphans while neither is being deleted and `can_adopt`
/// (asked once, only if there is an orphan to adopt) allows it.
pub async fn claim_pods<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    owner: &K,
    pods: Vec<std::sync::Arc<Pod>>,
    matches: impl Fn(&Pod) -> bool,
    can_adopt: impl AsyncFnOnce() -> Result<bool, crate::controller::ReconcileError>,
) -> Result<Vec<std::sync::Arc<Pod>>, crate::controller::ReconcileError> {
    use kube::api::{Api, Patch, PatchParams};
    let meta = owner.meta();
    let uid = meta.uid.clone().unwrap_or_default();
    let deleting = meta.deletion_timestamp.is_some();
    let api: Api<Pod> = Api::namespaced(client.clone(), meta.namespace.as_deref().unwrap_or(""));
    let patch = |pod: &Pod, refs: serde_json::Value| {
        let body =
            serde_json::json!({"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid}});
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api = api.clone();
        async move {
            api.patch(&name, &PatchParams::default(), &Patch::Strategic(&body))
                .await
        }
    };
    let mut can_adopt = Some(can_adopt);
    let mut adoptable = None;
    let mut out = Vec::new();
    for pod in pods {
        let ok = matches(&pod);
        match controller_ref(&pod.metadata) {
            Some(r) if r.uid == uid => {
                if ok {
                    out.push(pod);
                } else if !deleting {
                    let release = serde_json::json!([{"$patch": "delete", "uid": uid}]);
                    crate::controller::ignore_not_found(patch(&pod, release).await)?;
                }
            }
            Some(_) => {}
            None if ok && !deleting && pod.metadata.deletion_timestamp.is_none() => {
                if let Some(f) = can_adopt.take() {
                    adoptable = Some(f().await?);
                }
                if adoptable != Some(true) {
                    continue;
                }
                let adopt = serde_json::json!([owner_ref(owner)]);
                match patch(&pod, adopt).await {
                    Ok(p) => out.push(std::sync::Arc::new(p)),
                    Err(e) if crate::controller::is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => {}
        }
    }
    Ok(out)
}

/// Whether a write failed because its namespace is being deleted (upstream's
/// `HasStatusCause(err, NamespaceTerminatingCause)`): every later create fails the same way.
pub fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Upstream's `slowStartBatch` over pod creates, as the ReplicaSet and DaemonSet controllers
/// use it: `count` pods (the i-th from `make(i)`) created in batches of 1, 2, 4, …, each batch
/// at once, stopping after a batch with a failure. Each result is recorded on `owner` as
/// upstream's `SuccessfulCreate` / `FailedCreate` event; every create that failed or was
/// skipped is marked observed in `expectations` under `key`, so the next sync is not held up
/// waiting for it. A namespace being deleted is not an error. Returns how many were created
/// and the errors.
pub async fn create_pods_slow_start<K: Resource<DynamicType = ()>>(
    api: &kube::Api<Pod>,
    owner: &K,
    recorder: &crate::events::Recorder,
    expectations: &crate::expectations::Expectations,
    key: &str,
    count: usize,
    make: impl Fn(usize) -> Pod,
) -> (usize, Vec<kube::Error>) {
    use kube::ResourceExt;
    let pp = kube::api::PostParams::default();
    let (mut pos, mut batch, mut created) = (0, count.min(1), 0);
    let mut errors = Vec::new();
    while pos < count {
        let failed_before = errors.len();
        let pods: Vec<Pod> = (pos..pos + batch).map(&make).collect();
        let results = futures::future::join_all(pods.iter().map(|p| api.create(&pp, p))).await;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    recorder.event(
                        owner,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {}", p.name_any()),
                    );
                }
                Err(e) => {
                    // A failed create will never be observed.
                    expectations.creation_observed(key);
                    if namespace_terminating(&e) {
                        continue;
                    }
                    recorder.event(
                        owner,
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {}", crate::controller::api_message(&e)),
                    );
                    errors.push(e);
                }
            }
        }
        pos += batch;
        if errors.len() > failed_before {
            // The rest would most likely fail the same way: not attempted, not expected.
            for _ in pos..count {
                expectations.creation_observed(key);
            }
            break;
        }
        batch = (2 * batch).min(count - pos);
    }
    (created, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn selectors() {
        let sel: LabelSelector = serde_json::from_value(json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}, {"key": "x", "operator": "DoesNotExist"}]})).unwrap();
        let l = |v: serde_json::Value| -> BTreeMap<String, String> {
            serde_json::from_value(v).unwrap()
        };
        assert!(selector_matches(
            &sel,
            Some(&l(json!({"app": "web", "tier": "fe"})))
        ));
        assert!(!selector_matches(
            &sel,
            Some(&l(json!({"app": "web", "tier": "db"})))
        ));
        assert!(!selector_matches(
            &sel,
            Some(&l(json!({"app": "web", "tier": "fe", "x": ""})))
        ));
        assert!(selector_matches(&LabelSelector::default(), None));
    }

    #[test]
    fn deletion_ranking_as_upstream() {
        let unassigned = pod(
            json!({"metadata": {"name": "u"}, "spec": {"containers": []}, "status": {"phase": "Pending"}}),
        );
        let pending = pod(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "nodeName": "n"}, "status": {"phase": "Pending"}}),
        );
        let running_not_ready = pod(
            json!({"metadata": {"name": "r"}, "spec": {"containers": [], "nodeName": "n"}, "status": {"phase": "Running"}}),
        );
        let ready = pod(
            json!({"metadata": {"name": "ok"}, "spec": {"containers": [], "nodeName": "n"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let mut pods = [&ready, &running_not_ready, &pending, &unassigned];
        pods.sort_by(|a, b| delete_first(a, 0, b, 0));
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["u", "p", "r", "ok"]);
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod(
            json!({"spec": {"containers": []}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let t0: jiff::Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        assert!(is_available(&p, 0, t0));
        assert!(!is_available(&p, 10, t0));
        assert!(is_available(&p, 5, t0));
    }
}
