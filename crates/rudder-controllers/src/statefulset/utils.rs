//! Upstream's `stateful_set_utils.go`: pod identity (ordinal names, hostname/subdomain, the
//! pod-name and pod-index labels), storage (claims from `volumeClaimTemplates`), the PVC
//! retention policy expressed as ownerReferences, revisions as strategic-merge patches of the
//! pod template, and the pod-state predicates the update algorithm uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde_json::{json, Value};

use crate::history;
use crate::podutil::{is_available, is_ready, owner_ref, phase};
use crate::replicaset::pod_from_template;

/// `apps.StatefulSetPodNameLabel`.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// `apps.PodIndexLabel`.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// `apps.StatefulSetRevisionLabel` (= `ControllerRevisionHashLabelKey`).
pub const REVISION_LABEL: &str = "controller-revision-hash";

pub const RETAIN: &str = "Retain";
pub const DELETE: &str = "Delete";

/// `getParentNameAndOrdinal`: the name split as `(.*)-([0-9]+)$`, the ordinal -1 when there is
/// none or it does not fit an int32.
pub fn parent_and_ordinal(name: &str) -> (&str, i64) {
    match name.rsplit_once('-') {
        Some((parent, digits))
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (parent, digits.parse::<i32>().map_or(-1, i64::from))
        }
        _ => ("", -1),
    }
}

pub fn ordinal(pod: &Pod) -> i64 {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or("")).1
}

pub fn replicas(set: &StatefulSet) -> i64 {
    i64::from(set.spec.replicas.unwrap_or(1))
}

pub fn start_ordinal(set: &StatefulSet) -> i64 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .map_or(0, i64::from)
}

pub fn end_ordinal(set: &StatefulSet) -> i64 {
    start_ordinal(set) + replicas(set) - 1
}

pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

pub fn pod_name(set: &StatefulSet, ordinal: i64) -> String {
    format!("{}-{ordinal}", set_name(set))
}

pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i64) -> String {
    format!(
        "{}-{}-{ordinal}",
        template.metadata.name.as_deref().unwrap_or(""),
        set_name(set)
    )
}

pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(pod.metadata.name.as_deref().unwrap_or("")).0 == set_name(set)
}

pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let (parent, ordinal) = parent_and_ordinal(name);
    ordinal >= 0
        && parent == set_name(set)
        && name == pod_name(set, ordinal)
        && pod.metadata.namespace == set.metadata.namespace
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str)
            == Some(name)
}

fn templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec.volume_claim_templates.as_deref().unwrap_or(&[])
}

pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let ordinal = ordinal(pod);
    if ordinal < 0 {
        return false;
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    templates(set).iter().all(|t| {
        volumes
            .iter()
            .find(|v| Some(&v.name) == t.metadata.name.as_ref())
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == claim_name(set, t, ordinal))
    })
}

/// `getPersistentVolumeClaims`: (template name, claim) for the pod's ordinal, labelled with the
/// selector's matchLabels.
pub fn claims_for(set: &StatefulSet, ordinal: i64) -> Vec<(String, PersistentVolumeClaim)> {
    templates(set)
        .iter()
        .map(|t| {
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(set, t, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(set.spec.selector.match_labels.clone().unwrap_or_default());
            claim.metadata.labels = Some(labels);
            (t.metadata.name.clone().unwrap_or_default(), claim)
        })
        .collect()
}

/// `updateStorage`: the claims' volumes first, then the pod's other volumes.
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let claims = claims_for(set, ordinal(pod));
    let spec = pod.spec.get_or_insert_with(Default::default);
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !claims.iter().any(|(n, _)| *n == v.name)),
    );
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
}

/// `updateIdentity`: name, namespace and the pod-name/pod-index labels.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let ordinal = ordinal(pod);
    let name = pod_name(set, ordinal);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
}

/// `newStatefulSetPod`: from the template, with identity (hostname = pod name, subdomain =
/// serviceName, set only at creation as upstream does) and storage.
pub fn new_pod(set: &StatefulSet, ordinal: i64) -> Pod {
    let mut pod = pod_from_template(&set.spec.template, set);
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = pod.metadata.name.clone();
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    update_storage(set, &mut pod);
    pod
}

fn rolling_partition(set: &StatefulSet) -> Option<i64> {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .map(|r| i64::from(r.partition.unwrap_or(0)))
}

pub fn strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// `newVersionedStatefulSetPod`: ordinals below the partition (or, without a rollingUpdate
/// block, below currentReplicas) are created at the current revision, the rest at the update
/// revision. The condition keeps upstream's operator precedence (`a && b || c`).
pub fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i64,
) -> Pod {
    let start = start_ordinal(current_set);
    let current_replicas = current_set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .map_or(0, i64::from);
    let partition = rolling_partition(current_set);
    let at_current = (strategy_type(current_set) == "RollingUpdate"
        && partition.is_none()
        && ordinal < start + current_replicas)
        || partition.is_some_and(|p| ordinal < start + p);
    let (set, rev) = if at_current {
        (current_set, current_revision)
    } else {
        (update_set, update_revision)
    };
    let mut pod = new_pod(set, ordinal);
    set_revision(&mut pod, rev);
    pod
}

pub fn set_revision(pod: &mut Pod, revision: &str) {
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.into(), revision.into());
}

pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

/// `getPatch`: `{"spec":{"template":<template>,"$patch":"replace"}}`, the template as the
/// API serves it.
pub fn revision_data(set: &StatefulSet) -> Value {
    let mut template = serde_json::to_value(&set.spec.template).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut template {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// `newRevision`: a revision of the set's template, carrying the set's annotations.
pub fn new_revision(set: &StatefulSet, revision: i64, collision_count: i32) -> ControllerRevision {
    let labels = set
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    let mut cr = history::new_controller_revision(
        set,
        labels,
        revision_data(set),
        revision,
        Some(collision_count),
    );
    let mut annotations = BTreeMap::new();
    annotations.extend(set.metadata.annotations.clone().unwrap_or_default());
    cr.metadata.annotations = Some(annotations);
    cr
}

/// `ApplyRevision`: the set with the revision's template (the revision's patch replaces
/// `spec.template` wholesale, so applying it is a replacement).
pub fn apply_revision(set: &StatefulSet, rev: &ControllerRevision) -> StatefulSet {
    let mut out = set.clone();
    let mut template = rev
        .data
        .0
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    if let Value::Object(m) = &mut template {
        m.remove("$patch");
    }
    if let Ok(t) = serde_json::from_value::<PodTemplateSpec>(template) {
        out.spec.template = t;
    }
    out
}

pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// `isRunningAndAvailable` (upstream's is podutil.IsPodAvailable).
pub fn is_running_and_available(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    is_available(pod, min_ready, now)
}

/// `isUnavailable`: not available, or terminating.
pub fn is_unavailable(pod: &Pod, min_ready: i32, now: jiff::Timestamp) -> bool {
    !is_available(pod, min_ready, now) || is_terminating(pod)
}

pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec.pod_management_policy.as_deref() == Some("Parallel")
}

/// `getStatefulSetMaxUnavailable`: default 1, percentages rounded down, never below 1.
pub fn max_unavailable(set: &StatefulSet) -> i64 {
    let v = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    let n = match v {
        None => 1,
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(1, |p| p * replicas(set) / 100),
    };
    n.max(1)
}

/// `inconsistentStatus`: whether `status` differs from the set's in a field upstream writes.
pub fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let cur = set.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    status.observed_generation.unwrap_or(0) > cur.observed_generation.unwrap_or(0)
        || status.replicas != cur.replicas
        || n(status.current_replicas) != n(cur.current_replicas)
        || n(status.ready_replicas) != n(cur.ready_replicas)
        || n(status.updated_replicas) != n(cur.updated_replicas)
        || status.current_revision.as_deref().unwrap_or("")
            != cur.current_revision.as_deref().unwrap_or("")
        || n(status.available_replicas) != n(cur.available_replicas)
        || status.update_revision.as_deref().unwrap_or("")
            != cur.update_revision.as_deref().unwrap_or("")
}

/// `completeRollingUpdate`: once every replica is updated and ready, the update revision
/// becomes current.
pub fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let want = set.spec.replicas.unwrap_or(1);
    if strategy_type(set) == "RollingUpdate"
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

// ---- PVC retention policy (ownerReferences on the claims) ----

pub struct RetentionPolicy<'a> {
    pub when_deleted: &'a str,
    pub when_scaled: &'a str,
}

pub fn retention_policy(set: &StatefulSet) -> RetentionPolicy<'_> {
    let p = set.spec.persistent_volume_claim_retention_policy.as_ref();
    RetentionPolicy {
        when_deleted: p.and_then(|p| p.when_deleted.as_deref()).unwrap_or(RETAIN),
        when_scaled: p.and_then(|p| p.when_scaled.as_deref()).unwrap_or(RETAIN),
    }
}

/// The identity an ownerReference is matched against (`matchesRef`): apiVersion, kind, name.
pub struct Owner<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> Owner<'a> {
    pub fn of_set(set: &'a StatefulSet) -> Owner<'a> {
        Owner {
            api_version: "apps/v1",
            kind: "StatefulSet",
            name: set_name(set),
            uid: set.metadata.uid.as_deref().unwrap_or(""),
        }
    }
    pub fn of_pod(pod: &'a Pod) -> Owner<'a> {
        Owner {
            api_version: "v1",
            kind: "Pod",
            name: pod.metadata.name.as_deref().unwrap_or(""),
            uid: pod.metadata.uid.as_deref().unwrap_or(""),
        }
    }
    fn matches(&self, r: &OwnerReference) -> bool {
        r.api_version == self.api_version && r.kind == self.kind && r.name == self.name
    }
    fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.into(),
            kind: self.kind.into(),
            name: self.name.into(),
            uid: self.uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim.metadata.owner_references.as_deref().unwrap_or(&[])
}

fn has_owner_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim).iter().any(|r| r.uid == owner.uid)
}

/// `hasStaleOwnerRef`: a ref to the same-named object with another UID.
pub fn has_stale_owner_ref(claim: &PersistentVolumeClaim, owner: &Owner) -> bool {
    refs(claim)
        .iter()
        .find(|r| owner.matches(r))
        .is_some_and(|r| r.uid != owner.uid)
}

/// `hasUnexpectedController`.
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let p = retention_policy(set);
    if p.when_scaled == RETAIN && p.when_deleted == RETAIN {
        return false;
    }
    let (s, o) = (Owner::of_set(set), Owner::of_pod(pod));
    for r in refs(claim) {
        if s.matches(r) {
            if r.uid != s.uid {
                return true;
            }
            continue;
        }
        if o.matches(r) {
            if r.uid != o.uid {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (s, o) = (Owner::of_set(set), Owner::of_pod(pod));
    refs(claim)
        .iter()
        .any(|r| (r.uid == s.uid || r.uid == o.uid) && r.controller != Some(true))
}

/// `isClaimOwnerUpToDate`: whether the claim's refs already express the retention policy
/// (Retain/Retain: none; WhenDeleted=Delete: the set; WhenScaled=Delete: the pod once it is
/// scaled down).
pub fn is_claim_owner_up_to_date(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let (s, o) = (Owner::of_set(set), Owner::of_pod(pod));
    if has_stale_owner_ref(claim, &s) || has_stale_owner_ref(claim, &o) {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_owner_ref(claim, &s) || has_owner_ref(claim, &o));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let p = retention_policy(set);
    let scaled_down = !in_ordinal_range(pod, set);
    match (p.when_scaled, p.when_deleted) {
        (DELETE, RETAIN) => !has_owner_ref(claim, &s) && scaled_down == has_owner_ref(claim, &o),
        (DELETE, DELETE) => {
            scaled_down != has_owner_ref(claim, &s) && scaled_down == has_owner_ref(claim, &o)
        }
        (RETAIN, DELETE) => has_owner_ref(claim, &s) && !has_owner_ref(claim, &o),
        // Retain/Retain and unknown policies (upstream treats those as Retain).
        _ => !has_owner_ref(claim, &s) && !has_owner_ref(claim, &o),
    }
}

/// `updateClaimOwnerRefForSetAndPod`: rewrites the claim's refs to the set and pod to match
/// the policy.
pub fn update_claim_owner_refs(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let (s, o) = (Owner::of_set(set), Owner::of_pod(pod));
    let mut refs: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !s.matches(r) && !o.matches(r))
        .cloned()
        .collect();
    if !unexpected {
        let p = retention_policy(set);
        let scaled_down = !in_ordinal_range(pod, set);
        let mut add = |owner: &Owner| {
            if !refs.iter().any(|r| r.uid == owner.uid) {
                refs.push(owner.controller_ref());
            }
        };
        match (p.when_scaled, p.when_deleted) {
            (RETAIN, DELETE) => add(&s),
            (DELETE, RETAIN) if scaled_down => add(&o),
            (DELETE, DELETE) if scaled_down => add(&o),
            (DELETE, DELETE) => add(&s),
            _ => {}
        }
    }
    claim.metadata.owner_references = (!refs.is_empty()).then_some(refs);
}

/// Status counts over pods (`computeReplicaStatus`/`updateStatus`).
pub fn count_status(
    status: &mut StatefulSetStatus,
    min_ready: i32,
    current_revision: &str,
    update_revision: &str,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let rev = pod_revision(pod);
            if rev == current_revision {
                current += 1;
            }
            if rev == update_revision {
                updated += 1;
            }
        }
    }
    // Upstream's omitempty fields are left out when zero; availableReplicas is always written.
    let nz = |n: i32| (n != 0).then_some(n);
    status.replicas = replicas;
    status.ready_replicas = nz(ready);
    status.available_replicas = Some(available);
    status.current_replicas = nz(current);
    status.updated_replicas = nz(updated);
}

/// The controller ref a StatefulSet puts on its pods (`metav1.NewControllerRef`).
pub fn set_ref(set: &StatefulSet) -> OwnerReference {
    owner_ref(set)
}

/// Whether the set's kind matches a controller ref (`resolveControllerRef`'s kind check).
pub fn is_set_ref(r: &OwnerReference) -> bool {
    r.kind == StatefulSet::kind(&())
}
