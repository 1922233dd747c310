//! Upstream's `pkg/controller/deployment/util/deployment_util.go`: the rolling-update arithmetic
//! (maxSurge/maxUnavailable fenceposts, new ReplicaSet sizing, proportional scaling), the
//! revision and replica annotations, template hashing and the Deployment conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";
/// Upstream's `maxRevHistoryLengthInChars`.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// Annotations never copied from a Deployment to its ReplicaSets (`annotationsToSkip`).
const SKIP_COPY: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid value for IntOrString: {0}")]
pub struct BadIntOrString(pub String);

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, BadIntOrString> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| BadIntOrString(s.clone()))?;
            let n = pct * i64::from(total);
            let v = if round_up {
                (n + 99).div_euclid(100)
            } else {
                n.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas; both zero after
/// rounding makes maxUnavailable 1, so a rollout can always move.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), BadIntOrString> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 1))
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

pub fn sum_spec(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|r| rs_replicas(r)).sum()
}

pub fn sum_status(rss: &[Arc<ReplicaSet>], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|r| f(r)).sum()
}

pub fn status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

pub fn status_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `NewRSNewReplicas`: how far the new ReplicaSet may grow now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[Arc<ReplicaSet>], new_rs_replicas: i32) -> i32 {
    if !is_rolling_update(d) {
        return replicas(d);
    }
    let max_total = replicas(d) + max_surge(d);
    let current = sum_spec(all);
    if current >= max_total {
        return new_rs_replicas;
    }
    let up = (max_total - current).min(replicas(d) - new_rs_replicas);
    new_rs_replicas + up
}

/// The scale-down a rolling update may do on old ReplicaSets (`reconcileOldReplicaSets`):
/// what may go without dropping under minAvailable, counting the new set's unavailable pods.
pub fn max_scaled_down(d: &Deployment, all: &[Arc<ReplicaSet>], new_rs: &ReplicaSet) -> i32 {
    let min_available = replicas(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    sum_spec(all) - min_available - new_unavailable
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[Arc<ReplicaSet>]) -> i64 {
    rss.iter().map(|r| revision(r)).max().unwrap_or(0)
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

/// `SetReplicasAnnotations`: whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(rs, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(rs, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// `SetNewReplicaSetAnnotations`: the Deployment's annotations, the new revision (keeping the
/// revisions a rolled-back-to set had in `revision-history`), and for a set about to be
/// created the replica annotations. Whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if SKIP_COPY.contains(&k.as_str()) {
            continue;
        }
        if a.get(k) != Some(v) {
            a.insert(k.clone(), v.clone());
            changed = true;
        }
    }
    let old = a.get(REVISION).cloned();
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(v) => v,
            Err(_) => return false,
        },
    };
    if old_int < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|_| true) {
            let hist = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if hist.is_empty() {
                a.insert(REVISION_HISTORY.into(), old);
            } else {
                let mut olds: Vec<&str> = hist.split(',').collect();
                let mut total = hist.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_REV_HISTORY_CHARS && start < olds.len() {
                    total -= olds[start].len() + 1;
                    start += 1;
                }
                if total <= MAX_REV_HISTORY_CHARS {
                    olds.drain(..start);
                    olds.push(&old);
                    let joined = olds.join(",");
                    a.insert(REVISION_HISTORY.into(), joined);
                }
            }
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `controller.ComputeHash`: FNV-32a over the template (upstream feeds it a spew dump of the
/// Go struct; we feed canonical JSON, so names differ from upstream's but are as stable), then
/// the collision count, rendered with the safe alphabet.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    let v = canonical(serde_json::to_value(template).unwrap_or(Value::Null));
    feed(v.to_string().as_bytes());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    h.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// JSON with empty maps, empty lists and nulls dropped (serde_json's map is sorted), so
/// semantically equal templates compare and hash equal, as `apiequality.Semantic` does.
pub fn canonical(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, canonical(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(canonical).collect()),
        v => v,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `EqualIgnoreHash`: the templates equal once the `pod-template-hash` label is removed.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.remove(HASH_LABEL);
        }
        canonical(serde_json::to_value(t).unwrap_or(Value::Null))
    };
    strip(a) == strip(b)
}

/// `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// `FindNewReplicaSet`: the oldest set whose template is the Deployment's.
pub fn find_new(d: &Deployment, rss: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let tmpl = &d.spec.template;
    let mut sorted = rss.to_vec();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, tmpl))
    })
}

/// `FindActiveOrLatest`: the one set with replicas, or the newest when none has any.
pub fn find_active_or_latest(
    new_rs: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
) -> Option<Arc<ReplicaSet>> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut olds = old.to_vec();
    olds.sort_by(|a, b| by_creation(b, a));
    let all: Vec<Arc<ReplicaSet>> = olds
        .iter()
        .chain(new_rs)
        .filter(|r| rs_replicas(r) > 0)
        .cloned()
        .collect();
    match all.len() {
        0 => new_rs.cloned().or_else(|| olds.first().cloned()),
        1 => all.first().cloned(),
        _ => None,
    }
}

/// `IsSaturated`: the new set runs all of the Deployment's replicas, available.
pub fn is_saturated(d: &Deployment, rs: Option<&Arc<ReplicaSet>>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = desired_annotation(rs) else {
        return false;
    };
    rs_replicas(rs) == replicas(d) && desired == replicas(d) && rs_available(rs) == replicas(d)
}

/// `GetProportion`: this set's share of `to_add`, bounded by what is left to add.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let max_now = replicas(d) + max_surge(d);
    let before = annotation(rs, MAX_REPLICAS)
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|v| *v != 0)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if before == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(max_now) / f64::from(before);
    size.round() as i32 - rs_replicas(rs)
}

/// New sizes for proportional scaling (`scale` in sync.go) of the active sets, largest first.
pub fn proportional_sizes(
    d: &Deployment,
    active: &mut [Arc<ReplicaSet>],
) -> Vec<(Arc<ReplicaSet>, i32)> {
    let current = sum_spec(active);
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    // Same size: up grows newer sets first, down shrinks older sets first.
    if to_add > 0 {
        active.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(b, a))
        });
    } else if to_add < 0 {
        active.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(a, b))
        });
    }
    let mut added = 0;
    let mut sizes: Vec<(Arc<ReplicaSet>, i32)> = active
        .iter()
        .map(|rs| {
            if to_add == 0 {
                return (rs.clone(), rs_replicas(rs));
            }
            let p = proportion(rs, d, to_add, added);
            added += p;
            (rs.clone(), rs_replicas(rs) + p)
        })
        .collect();
    if to_add != 0 {
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
    }
    sizes
}

pub fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> DeploymentCondition {
    let now = Time(jiff::Timestamp::now());
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// `SetDeploymentCondition`: same status and reason is no change; same status keeps the
/// transition time; the condition moves to the end.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = condition(s, c.type_.as_deref().unwrap_or("")) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, c.type_.as_deref().unwrap_or(""));
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|p| p != i32::MAX)
}

pub fn progress_deadline(d: &Deployment) -> i64 {
    i64::from(d.spec.progress_deadline_seconds.unwrap_or(600))
}

/// `DeploymentComplete`.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = replicas(d);
    s.updated_replicas.unwrap_or(0) == r
        && s.replicas.unwrap_or(0) == r
        && s.available_replicas.unwrap_or(0) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones.
pub fn is_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// `DeploymentTimedOut` at `now`.
pub fn is_timed_out(d: &Deployment, s: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    from.0 + jiff::SignedDuration::from_secs(progress_deadline(d)) < now
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
        serde_json::from_value(json!({"metadata": {"name": "foo", "namespace": "ns"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}))
        .unwrap()
    }

    fn rs(name: &str, replicas: i32, available: i32, created: &str, ann: Value) -> Arc<ReplicaSet> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "creationTimestamp": created, "annotations": ann},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": replicas, "availableReplicas": available}}),
            )
            .unwrap(),
        )
    }

    #[test]
    fn fenceposts_round_as_upstream() {
        // TestResolveFenceposts.
        let s = |v: &str| IntOrString::String(v.into());
        let i = IntOrString::Int;
        assert_eq!(
            resolve_fenceposts(Some(&s("0%")), Some(&s("0%")), 0),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("39%")), Some(&s("39%")), 10),
            Ok((4, 3))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("oops")), Some(&s("39%")), 10),
            Err(BadIntOrString("oops".into()))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("55%")), Some(&s("urg")), 10),
            Err(BadIntOrString("urg".into()))
        );
        assert_eq!(resolve_fenceposts(None, Some(&s("39%")), 10), Ok((0, 3)));
        assert_eq!(resolve_fenceposts(Some(&s("39%")), None, 10), Ok((4, 0)));
        assert_eq!(resolve_fenceposts(None, None, 10), Ok((0, 1)));
        assert_eq!(resolve_fenceposts(Some(&i(2)), Some(&i(0)), 10), Ok((2, 0)));
        // The defaults, 25%/25%.
        assert_eq!(
            resolve_fenceposts(Some(&s("25%")), Some(&s("25%")), 3),
            Ok((1, 0))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("25%")), Some(&s("25%")), 1),
            Ok((1, 0))
        );
    }

    #[test]
    fn max_unavailable_is_capped_by_replicas() {
        // TestMaxUnavailable.
        assert_eq!(max_unavailable(&deploy(10, json!(0), json!(20))), 10);
        assert_eq!(max_unavailable(&deploy(10, json!(0), json!(10))), 10);
        assert_eq!(max_unavailable(&deploy(10, json!(0), json!(5))), 5);
        assert_eq!(max_unavailable(&deploy(0, json!(0), json!(10))), 0);
        assert_eq!(max_unavailable(&deploy(10, json!(0), json!("50%"))), 5);
        assert_eq!(max_unavailable(&deploy(10, json!(0), json!("200%"))), 10);
        let mut recreate = deploy(10, json!(0), json!(5));
        recreate.spec.strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        assert_eq!(max_unavailable(&recreate), 0);
        assert_eq!(max_surge(&recreate), 0);
    }

    #[test]
    fn new_rs_new_replicas_as_upstream() {
        // TestNewRSNewReplicas: 1 desired, surge 1 → from 0 with 1 old pod, may reach 1.
        let t = "2020-01-01T00:00:00Z";
        let d = deploy(1, json!(1), json!(0));
        let new = rs("new", 0, 0, t, json!({}));
        let old = rs("old", 1, 1, t, json!({}));
        assert_eq!(new_rs_new_replicas(&d, &[new.clone(), old.clone()], 0), 1);
        // Already at 1 + surge: no more.
        let new1 = rs("new", 1, 0, t, json!({}));
        assert_eq!(new_rs_new_replicas(&d, &[new1, old.clone()], 1), 1);
        // 10 desired, 25% surge (3): 10 old → new may take 3.
        let d = deploy(10, json!("25%"), json!("25%"));
        let old = rs("old", 10, 10, t, json!({}));
        assert_eq!(new_rs_new_replicas(&d, &[new.clone(), old], 0), 3);
        // Never past the desired count.
        let old = rs("old", 1, 1, t, json!({}));
        assert_eq!(
            new_rs_new_replicas(&d, &[rs("new", 9, 9, t, json!({})), old], 9),
            10
        );
        // Recreate takes the whole count at once.
        let mut r = deploy(5, json!(1), json!(0));
        r.spec.strategy = Some(serde_json::from_value(json!({"type": "Recreate"})).unwrap());
        assert_eq!(new_rs_new_replicas(&r, &[new], 0), 5);
    }

    #[test]
    fn old_replica_sets_scale_down_within_max_unavailable() {
        // TestDeploymentController_reconcileOldReplicaSets shapes: 10 desired, maxUnavailable 2.
        let t = "2020-01-01T00:00:00Z";
        let d = deploy(10, json!(0), json!(2));
        // 10 old available, new with 0: may scale 2 down.
        let new = rs("new", 0, 0, t, json!({}));
        let old = rs("old", 10, 10, t, json!({}));
        assert_eq!(max_scaled_down(&d, &[old.clone(), new.clone()], &new), 2);
        // New has 2 not yet available: nothing may go.
        let new = rs("new", 2, 0, t, json!({}));
        let old8 = rs("old", 8, 8, t, json!({}));
        assert_eq!(max_scaled_down(&d, &[old8, new.clone()], &new), 0);
        // New has 2 available: 2 more old may go.
        let new = rs("new", 2, 2, t, json!({}));
        let old8 = rs("old", 8, 8, t, json!({}));
        assert_eq!(max_scaled_down(&d, &[old8, new.clone()], &new), 2);
    }

    #[test]
    fn hash_is_stable_and_follows_template_and_collisions() {
        let d = deploy(1, json!(1), json!(0));
        let t = &d.spec.template;
        let h = compute_hash(t, None);
        assert_eq!(h, compute_hash(t, None));
        assert!(h.len() <= 10 && h.bytes().all(|b| SAFE.contains(&b)), "{h}");
        assert_ne!(h, compute_hash(t, Some(1)));
        assert_ne!(compute_hash(t, Some(1)), compute_hash(t, Some(2)));
        let mut t2 = t.clone();
        t2.spec.as_mut().unwrap().containers[0].image = Some("j".into());
        assert_ne!(h, compute_hash(&t2, None));
        // Empty vs absent fields are the same template.
        let mut t3 = t.clone();
        t3.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        assert_eq!(h, compute_hash(&t3, None));
        // The hash label does not matter to equality.
        let mut t4 = t.clone();
        t4.metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h.clone());
        assert!(equal_ignore_hash(t, &t4));
        assert!(!equal_ignore_hash(t, &t2));
    }

    /// (old, new) sizes after proportionally scaling old 3 + new 2 (sized for 5) to `to`.
    fn scaled_from_5(to: i32) -> (i32, i32) {
        let d = deploy(to, json!(0), json!(1));
        let old = rs(
            "old",
            3,
            3,
            "2020-01-01T00:00:00Z",
            json!({MAX_REPLICAS: "5"}),
        );
        let new = rs(
            "new",
            2,
            2,
            "2020-01-02T00:00:00Z",
            json!({MAX_REPLICAS: "5"}),
        );
        let sizes = proportional_sizes(&d, &mut [new, old]);
        let size = |n: &str| {
            sizes
                .iter()
                .find(|(r, _)| r.metadata.name.as_deref() == Some(n))
                .unwrap()
                .1
        };
        (size("old"), size("new"))
    }

    #[test]
    fn proportional_scaling_as_upstream() {
        // TestScale's proportional cases: shares by size, leftovers to the largest set.
        assert_eq!(scaled_from_5(10), (6, 4));
        assert_eq!(scaled_from_5(3), (2, 1));
        assert_eq!(scaled_from_5(0), (0, 0));
        assert_eq!(scaled_from_5(5), (3, 2));
    }

    #[test]
    fn revision_annotations_on_rollback_keep_history() {
        let d = deploy(3, json!(1), json!(0));
        let mut r: ReplicaSet =
            (*rs("x", 0, 0, "2020-01-01T00:00:00Z", json!({REVISION: "1"}))).clone();
        assert!(set_new_rs_annotations(&d, &mut r, 3, true));
        let a = r.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            (a[REVISION].as_str(), a[REVISION_HISTORY].as_str()),
            ("3", "1")
        );
        assert!(set_new_rs_annotations(&d, &mut r, 5, true));
        assert_eq!(
            r.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY],
            "1,3"
        );
        // A lower revision changes nothing.
        assert!(!set_new_rs_annotations(&d, &mut r, 4, true));
        // A new set gets the replica annotations.
        let mut n: ReplicaSet = (*rs("n", 0, 0, "2020-01-01T00:00:00Z", json!({}))).clone();
        set_new_rs_annotations(&d, &mut n, 1, false);
        let a = n.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            (
                a[REVISION].as_str(),
                a[DESIRED_REPLICAS].as_str(),
                a[MAX_REPLICAS].as_str()
            ),
            ("1", "3", "4")
        );
        assert!(!a.contains_key(REVISION_HISTORY));
    }

    #[test]
    fn conditions_keep_transition_time_on_same_status() {
        let mut s = DeploymentStatus::default();
        let mut c = new_condition("Progressing", "True", NEW_RS_CREATED, "a".into());
        c.last_transition_time = Some(Time("2020-01-01T00:00:00Z".parse().unwrap()));
        set_condition(&mut s, c);
        set_condition(
            &mut s,
            new_condition("Progressing", "True", RS_UPDATED, "b".into()),
        );
        let c = condition(&s, "Progressing").unwrap();
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            c.last_transition_time.as_ref().unwrap().0.to_string(),
            "2020-01-01T00:00:00Z"
        );
        // Same status and reason: untouched.
        set_condition(
            &mut s,
            new_condition("Progressing", "True", RS_UPDATED, "c".into()),
        );
        assert_eq!(
            condition(&s, "Progressing").unwrap().message.as_deref(),
            Some("b")
        );
    }
}
