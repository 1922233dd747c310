//! Cases after upstream's `stateful_set_control_test.go`, `stateful_set_utils_test.go` and
//! `stateful_pod_control_test.go`, run against [`plan`] and the utils.

use super::*;
use serde_json::{json, Value};

const NOW: &str = "2026-01-01T00:10:00Z";

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

fn set_with(extra: Value) -> StatefulSet {
    let mut v = json!({"metadata": {"name": "web", "namespace": "ns", "uid": "set-uid", "generation": 2},
        "spec": {"replicas": 3, "serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}});
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A pod of `set` at `ordinal` and `revision`, in `phase`, Ready (since long ago) or not.
fn pod(set: &StatefulSet, ordinal: i64, revision: &str, phase: &str, ready: bool) -> Arc<Pod> {
    let mut p = new_pod(set, ordinal);
    set_revision(&mut p, revision);
    p.metadata.uid = Some(format!("pod-uid-{ordinal}"));
    let conds = if ready {
        json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    } else {
        json!([{"type": "Ready", "status": "False"}])
    };
    p.status = Some(serde_json::from_value(json!({"phase": phase, "conditions": conds})).unwrap());
    Arc::new(p)
}

fn terminating(p: Arc<Pod>) -> Arc<Pod> {
    let mut p = (*p).clone();
    p.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
    Arc::new(p)
}

fn no_claims(_: &str) -> Option<Arc<PersistentVolumeClaim>> {
    None
}

fn revs<'a>(set: &'a StatefulSet, current: &'a str, update: &'a str) -> Revisions<'a> {
    Revisions {
        current_set: set,
        update_set: set,
        current,
        update,
        collision_count: 0,
    }
}

fn run(set: &StatefulSet, pods: &[Arc<Pod>]) -> Plan {
    plan(set, &revs(set, "web-a", "web-b"), pods, &no_claims, now())
}

fn run_same_revision(set: &StatefulSet, pods: &[Arc<Pod>]) -> Plan {
    plan(set, &revs(set, "web-a", "web-a"), pods, &no_claims, now())
}

/// The actions of a plan, as `verb name` strings in order.
fn actions(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .flat_map(|s| s.groups.iter().flatten())
        .map(|a| match a {
            Action::Create(p) => format!("create {}", p.name_any()),
            Action::CreateMissingClaims(p) => format!("claims {}", p.name_any()),
            Action::Update(p) => format!("update {}", p.name_any()),
            Action::FixClaims(p) => format!("fixclaims {}", p.name_any()),
            Action::Delete(p, _) => format!("delete {}", p.name_any()),
        })
        .collect()
}

#[test]
fn ordinals_parse_as_upstream() {
    assert_eq!(parent_and_ordinal("web-0"), ("web", 0));
    assert_eq!(parent_and_ordinal("my-web-12"), ("my-web", 12));
    assert_eq!(parent_and_ordinal("web"), ("", -1));
    assert_eq!(parent_and_ordinal("web-x"), ("", -1));
    assert_eq!(parent_and_ordinal("web-99999999999").1, -1);
}

/// `TestStatefulPodControlCreatesPods` / `TestIdentityMatches` / `TestStorageMatches`: a new pod
/// has its identity, the revision label, its claims' volumes and the controller ref.
#[test]
fn new_pods_have_identity_and_storage() {
    let set = set_with(json!({"spec": {"ordinals": {"start": 5}}}));
    let p = new_versioned_pod(&set, &set, "web-a", "web-b", 6);
    assert_eq!(p.metadata.name.as_deref(), Some("web-6"));
    assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-6");
    assert_eq!(labels[POD_INDEX_LABEL], "6");
    assert_eq!(labels[REVISION_LABEL], "web-b");
    assert_eq!(labels["app"], "web");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-6"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let v = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(v.name, "data");
    assert_eq!(
        v.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-web-6"
    );
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (r.kind.as_str(), r.uid.as_str(), r.controller),
        ("StatefulSet", "set-uid", Some(true))
    );
    assert!(identity_matches(&set, &p) && storage_matches(&set, &p));
    let claims = claims_for(&set, 6);
    assert_eq!(claims[0].1.metadata.name.as_deref(), Some("data-web-6"));
    assert_eq!(claims[0].1.metadata.labels.as_ref().unwrap()["app"], "web");
    // A pod whose name label was removed no longer matches its identity.
    let mut q = p.clone();
    q.metadata.labels.as_mut().unwrap().remove(POD_NAME_LABEL);
    assert!(!identity_matches(&set, &q));
    let mut q = p.clone();
    q.spec.as_mut().unwrap().volumes = None;
    assert!(!storage_matches(&set, &q));
}

/// OrderedReady (`TestStatefulSetControlScaleUp` monotonic): one pod at a time, each only once
/// its predecessor is Running and Ready.
#[test]
fn ordered_ready_creates_one_at_a_time() {
    let set = set_with(json!({}));
    assert_eq!(actions(&run(&set, &[])), ["create web-0"]);
    let p0 = pod(&set, 0, "web-b", "Pending", false);
    assert_eq!(actions(&run(&set, &[p0])), ["claims web-0"]);
    let p0 = pod(&set, 0, "web-b", "Running", false);
    assert!(actions(&run(&set, &[p0])).is_empty());
    let p0 = pod(&set, 0, "web-b", "Running", true);
    assert_eq!(
        actions(&run(&set, std::slice::from_ref(&p0))),
        ["create web-1"]
    );
    let p1 = pod(&set, 1, "web-b", "Running", true);
    let plan = run(&set, &[p0, p1]);
    assert_eq!(actions(&plan), ["create web-2"]);
    assert_eq!(plan.status.replicas, 2);
    assert_eq!(plan.status.ready_replicas, Some(2));
    assert_eq!(plan.status.updated_replicas, Some(2));
    assert_eq!(plan.status.current_replicas, None);
    assert_eq!(plan.status.observed_generation, Some(2));
}

/// With minReadySeconds the predecessor must also be available.
#[test]
fn ordered_ready_waits_for_min_ready_seconds() {
    let set = set_with(json!({"spec": {"minReadySeconds": 3600}}));
    let p0 = pod(&set, 0, "web-b", "Running", true);
    let plan = run(&set, &[p0]);
    assert!(actions(&plan).is_empty());
    assert_eq!(plan.status.available_replicas, Some(0));
}

/// Parallel (`burst`): every missing pod at once, and every condemned pod too.
#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let set = set_with(json!({"spec": {"podManagementPolicy": "Parallel"}}));
    let plan = run(&set, &[]);
    assert_eq!(
        actions(&plan),
        ["create web-0", "create web-1", "create web-2"]
    );
    assert!(plan.steps[0].parallel);
    let set = set_with(json!({"spec": {"podManagementPolicy": "Parallel", "replicas": 1}}));
    let pods: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-b", "Running", false))
        .collect();
    assert_eq!(actions(&run(&set, &pods)), ["delete web-2", "delete web-1"]);
}

/// `TestStatefulSetControlScaleDown` monotonic: the highest ordinal goes first, one at a time,
/// waiting for it to terminate.
#[test]
fn ordered_scale_down_in_reverse() {
    let set = set_with(json!({"spec": {"replicas": 1}}));
    let p: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-b", "Running", true))
        .collect();
    assert_eq!(actions(&run(&set, &p)), ["delete web-2"]);
    let pods = vec![p[0].clone(), p[1].clone(), terminating(p[2].clone())];
    assert!(actions(&run(&set, &pods)).is_empty());
    assert_eq!(actions(&run(&set, &p[..2])), ["delete web-1"]);
}

/// Scale-down blocks while a remaining replica is unhealthy (`processCondemned` waits unless the
/// condemned pod is the first unhealthy one).
#[test]
fn scale_down_waits_for_unhealthy_predecessor() {
    let set = set_with(json!({"spec": {"replicas": 2}}));
    let pods = vec![
        pod(&set, 0, "web-b", "Running", true),
        pod(&set, 1, "web-b", "Running", false),
        pod(&set, 2, "web-b", "Running", true),
    ];
    // web-1 is not ready: processReplica stops before any condemned pod is considered.
    assert!(actions(&run(&set, &pods)).is_empty());
    // An unhealthy condemned pod that is the first unhealthy one is deleted.
    let pods = vec![
        pod(&set, 0, "web-b", "Running", true),
        pod(&set, 1, "web-b", "Running", true),
        pod(&set, 2, "web-b", "Running", false),
    ];
    assert_eq!(actions(&run(&set, &pods)), ["delete web-2"]);
}

/// Failed and Succeeded pods are deleted to be recreated.
#[test]
fn failed_pods_are_replaced() {
    let set = set_with(json!({}));
    let pods = vec![pod(&set, 0, "web-b", "Failed", false)];
    assert_eq!(actions(&run(&set, &pods)), ["delete web-0"]);
}

/// `TestStatefulSetControlRollingUpdateWithPartition`: with partition 1, only ordinals >= 1 are
/// deleted for the update, highest first, each once its successors are available again.
#[test]
fn partitioned_rolling_update() {
    let set = set_with(
        json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}}),
    );
    let old: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-a", "Running", true))
        .collect();
    let plan = run(&set, &old);
    assert_eq!(actions(&plan), ["delete web-2"]);
    assert_eq!(plan.status.current_replicas, Some(2));
    // web-2 recreated at the update revision but not ready yet: wait.
    let pods = vec![
        old[0].clone(),
        old[1].clone(),
        pod(&set, 2, "web-b", "Running", false),
    ];
    assert!(actions(&run(&set, &pods)).is_empty());
    let pods = vec![
        old[0].clone(),
        old[1].clone(),
        pod(&set, 2, "web-b", "Running", true),
    ];
    assert_eq!(actions(&run(&set, &pods)), ["delete web-1"]);
    let pods = vec![
        old[0].clone(),
        pod(&set, 1, "web-b", "Running", true),
        pod(&set, 2, "web-b", "Running", true),
    ];
    let plan = run(&set, &pods);
    assert!(actions(&plan).is_empty(), "web-0 is below the partition");
    assert_eq!(plan.status.current_replicas, Some(1));
    assert_eq!(plan.status.updated_replicas, Some(2));
    // A missing ordinal below the partition is recreated at the current revision.
    let p = new_versioned_pod(&set, &set, "web-a", "web-b", 0);
    assert_eq!(pod_revision(&p), "web-a");
    let p = new_versioned_pod(&set, &set, "web-a", "web-b", 1);
    assert_eq!(pod_revision(&p), "web-b");
}

/// `TestStatefulSetControlRollingUpdateWithMaxUnavailable`: up to maxUnavailable at a time,
/// counting pods already unavailable.
#[test]
fn rolling_update_with_max_unavailable() {
    let set = set_with(
        json!({"spec": {"replicas": 4, "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}}),
    );
    let old: Vec<_> = (0..4)
        .map(|i| pod(&set, i, "web-a", "Running", true))
        .collect();
    assert_eq!(actions(&run(&set, &old)), ["delete web-3", "delete web-2"]);
    let mut pods = old.clone();
    pods[3] = pod(&set, 3, "web-b", "Running", false);
    assert_eq!(actions(&run(&set, &pods)), ["delete web-2"]);
    let set = set_with(
        json!({"spec": {"replicas": 10, "updateStrategy": {"rollingUpdate": {"maxUnavailable": "25%"}}}}),
    );
    assert_eq!(max_unavailable(&set), 2);
    let set = set_with(
        json!({"spec": {"replicas": 3, "updateStrategy": {"rollingUpdate": {"maxUnavailable": "10%"}}}}),
    );
    assert_eq!(max_unavailable(&set), 1);
}

/// OnDelete: nothing is deleted for an update; pods recreated after a manual delete get the
/// update revision.
#[test]
fn on_delete_waits_for_manual_deletion() {
    let set = set_with(json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
    let old: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-a", "Running", true))
        .collect();
    assert!(actions(&run(&set, &old)).is_empty());
    let plan = run(&set, &old[..2]);
    assert_eq!(actions(&plan), ["create web-2"]);
    let Action::Create(p) = &plan.steps[0].groups[0][0] else {
        panic!()
    };
    assert_eq!(pod_revision(p), "web-b");
}

/// A set being deleted only reports status.
#[test]
fn deleting_set_only_reports_status() {
    let set = set_with(json!({"metadata": {"deletionTimestamp": NOW}}));
    let plan = run(&set, &[]);
    assert!(plan.steps.is_empty());
}

/// `completeRollingUpdate`: the update revision becomes current once all replicas are updated
/// and ready.
#[test]
fn rolling_update_completes() {
    let set = set_with(json!({}));
    let pods: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-b", "Running", true))
        .collect();
    let mut status = run(&set, &pods).status;
    complete_rolling_update(&set, &mut status);
    assert_eq!(status.current_revision.as_deref(), Some("web-b"));
    assert_eq!(status.current_replicas, Some(3));
    let pods: Vec<_> = (0..3)
        .map(|i| pod(&set, i, "web-a", "Running", true))
        .collect();
    let same = run_same_revision(&set, &pods).status;
    assert_eq!(same.current_replicas, Some(3));
    assert!(inconsistent_status(&set, &same));
    let mut synced = set.clone();
    synced.status = Some(same.clone());
    assert!(!inconsistent_status(&synced, &same));
}

/// Revisions: the template as a `$patch: replace` patch, applied back as the template.
#[test]
fn revisions_round_trip_the_template() {
    let set = set_with(json!({"metadata": {"annotations": {"note": "x"}}}));
    let rev = new_revision(&set, 1, 0);
    assert_eq!(rev.data.0["spec"]["template"]["$patch"], "replace");
    assert_eq!(
        rev.data.0["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1"
    );
    assert_eq!(rev.metadata.annotations.as_ref().unwrap()["note"], "x");
    assert_eq!(rev.labels()["app"], "web");
    assert!(rev.name_any().starts_with("web-"));
    let mut changed = set.clone();
    changed.spec.template.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    let back = apply_revision(&changed, &rev);
    assert_eq!(back.spec.template, set.spec.template);
    assert_ne!(new_revision(&changed, 1, 0).name_any(), rev.name_any());
}

fn claim(refs: Value) -> PersistentVolumeClaim {
    serde_json::from_value(
        json!({"metadata": {"name": "data-web-1", "namespace": "ns", "ownerReferences": refs}}),
    )
    .unwrap()
}

fn set_ref_json() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid", "controller": true, "blockOwnerDeletion": true})
}

fn pod_ref_json() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "pod-uid-1", "controller": true, "blockOwnerDeletion": true})
}

/// `TestClaimOwnerMatchesSetAndPod` / `TestUpdateClaimOwnerRefForSetAndPod`: the refs each
/// retention policy wants, for a pod in range and a scaled-down one.
#[test]
fn retention_policy_as_owner_refs() {
    let policy = |scaled: &str, deleted: &str, replicas: i32| {
        set_with(json!({"spec": {"replicas": replicas,
            "persistentVolumeClaimRetentionPolicy": {"whenScaled": scaled, "whenDeleted": deleted}}}))
    };
    let cases = [
        // (whenScaled, whenDeleted, replicas, set ref wanted, pod ref wanted)
        ("Retain", "Retain", 3, false, false),
        ("Retain", "Delete", 3, true, false),
        ("Delete", "Retain", 3, false, false),
        ("Delete", "Retain", 1, false, true),
        ("Delete", "Delete", 3, true, false),
        ("Delete", "Delete", 1, false, true),
    ];
    for (scaled, deleted, replicas, want_set, want_pod) in cases {
        let set = policy(scaled, deleted, replicas);
        let p = pod(&set, 1, "web-b", "Running", true);
        let mut c = claim(json!([]));
        update_claim_owner_refs(&mut c, &set, &p);
        let refs = c.metadata.owner_references.clone().unwrap_or_default();
        let has = |uid: &str| {
            refs.iter()
                .any(|r| r.uid == uid && r.controller == Some(true))
        };
        assert_eq!(
            (has("set-uid"), has("pod-uid-1")),
            (want_set, want_pod),
            "{scaled}/{deleted} replicas {replicas}"
        );
        assert!(
            is_claim_owner_up_to_date(&c, &set, &p),
            "{scaled}/{deleted}"
        );
        let wrong = claim(json!([set_ref_json(), pod_ref_json()]));
        assert_eq!(
            is_claim_owner_up_to_date(&wrong, &set, &p),
            want_set && want_pod,
            "{scaled}/{deleted} replicas {replicas}"
        );
    }
    // Another controller on the claim: leave it alone (and drop our refs).
    let set = policy("Delete", "Delete", 3);
    let p = pod(&set, 1, "web-b", "Running", true);
    let other = json!({"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "other", "controller": true});
    let c = claim(json!([other]));
    assert!(has_unexpected_controller(&c, &set, &p));
    assert!(is_claim_owner_up_to_date(&c, &set, &p));
    let mut c = claim(json!([other, set_ref_json()]));
    assert!(!is_claim_owner_up_to_date(&c, &set, &p));
    update_claim_owner_refs(&mut c, &set, &p);
    assert_eq!(c.metadata.owner_references.unwrap().len(), 1);
    // A ref to an earlier pod of the same name is stale: not touched, and blocks re-creation
    // with WhenScaled=Delete.
    let stale = json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "old-pod", "controller": true});
    let c = Arc::new(claim(json!([stale])));
    assert!(is_claim_owner_up_to_date(&c, &set, &p));
    let fresh = new_pod(&set, 1);
    let lookup = |n: &str| (n == "data-web-1").then(|| c.clone());
    assert!(pod_claim_is_stale(&set, &fresh, &lookup));
    let retain = policy("Retain", "Delete", 3);
    assert!(!pod_claim_is_stale(&retain, &fresh, &lookup));
}

/// Condemned pods' claims get the pod ref before deletion with WhenScaled=Delete.
#[test]
fn condemned_claims_are_fixed_before_deletion() {
    let set = set_with(json!({"spec": {"replicas": 1,
        "persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete", "whenDeleted": "Retain"}}}));
    let pods: Vec<_> = (0..2)
        .map(|i| pod(&set, i, "web-b", "Running", true))
        .collect();
    let c = Arc::new(claim(json!([])));
    let lookup = |n: &str| (n == "data-web-1").then(|| c.clone());
    let p = plan(&set, &revs(&set, "web-b", "web-b"), &pods, &lookup, now());
    assert_eq!(actions(&p), ["fixclaims web-1", "delete web-1"]);
}
