//! ResourceQuota usage: what an object consumes and whether a quota covers it (upstream's
//! `pkg/quota/v1` helpers and `pkg/quota/v1/evaluator/core`). Shared by the quota admission in
//! the API server and the resourcequota controller, so both count exactly the same way.
//!
//! Objects are JSON (the API server's form; the controller serialises its typed objects).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::quantity::Amount;

/// Upstream's `corev1.ResourceList` with quantities that remember their format.
pub type ResourceList = BTreeMap<String, Amount>;

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
const REQUESTS_PREFIX: &str = "requests.";
const HUGEPAGES_PREFIX: &str = "hugepages-";

/// A ResourceList from a JSON map; entries that are not quantities are skipped (validation
/// rejected them already).
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Amount::from_json(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A ResourceList as JSON, each quantity in its canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect(),
    )
}

/// `quota.Add`.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        let sum = match out.get(k) {
            Some(x) => x.add(*v),
            None => *v,
        };
        out.insert(k.clone(), sum);
    }
    out
}

/// `quota.SubtractWithNonNegativeResult`.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(k, v)| {
            let d = b.get(k).map_or(*v, |x| v.sub(*x));
            let d = if d.value.is_negative() {
                Amount::zero()
            } else {
                d
            };
            (k.clone(), d)
        })
        .collect()
}

/// `quota.Mask`: only the named resources.
pub fn mask(list: &ResourceList, names: &BTreeSet<String>) -> ResourceList {
    list.iter()
        .filter(|(k, _)| names.contains(*k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

pub fn names(list: &ResourceList) -> BTreeSet<String> {
    list.keys().cloned().collect()
}

/// `quota.Equals`: same names, equal values (formats aside).
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|x| x.value == v.value))
}

/// `quota.LessThanOrEqual`: whether every value of `a` that `b` limits is within it, and the
/// names that are not.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, BTreeSet<String>) {
    let exceeded: BTreeSet<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|limit| v.value > limit.value))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// `quota.RemoveZeros`.
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The controller's `prettyPrint`: `k=v` sorted by name, comma-separated.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `max` of two lists per name (upstream's `maxResourceList`: the greater value wins, with its
/// format).
fn max_into(list: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        match list.get(k) {
            Some(x) if x.value >= v.value => {}
            _ => {
                list.insert(k.clone(), *v);
            }
        }
    }
}

/// One requirement of a quota's scopes (`spec.scopes` become `Exists` requirements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Upstream's `getScopeSelectorsFromQuota`.
pub fn scope_selectors(quota: &Value) -> Vec<ScopeRequirement> {
    let spec = quota.get("spec").unwrap_or(&Value::Null);
    let mut out: Vec<ScopeRequirement> = spec
        .get("scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| ScopeRequirement {
            scope: s.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    out.extend(
        spec.pointer("/scopeSelector/matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| ScopeRequirement {
                scope: str_of(r, "scopeName").to_string(),
                operator: str_of(r, "operator").to_string(),
                values: r
                    .get("values")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
            }),
    );
    out
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// What measures one kind of object (upstream's registry of evaluators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluator {
    Pods,
    Services,
    PersistentVolumeClaims,
    /// Upstream's generic object count evaluator: `count/<resource>[.<group>]`, and for the
    /// legacy kinds also their bare name (`configmaps`, `secrets`, ...).
    ObjectCount {
        group: String,
        resource: String,
        alias: Option<String>,
    },
}

/// `generic.ObjectCountQuotaResourceNameFor`.
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

const SERVICE_RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

const PVC_RESOURCES: &[&str] = &[
    "count/persistentvolumeclaims",
    "persistentvolumeclaims",
    "requests.storage",
];

/// Cpu and memory: quotas on them oblige every container to state them (upstream's
/// `validationSet`, kept for backward compatibility).
const VALIDATION_SET: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// `helper.IsNativeResource`: no domain, or a `kubernetes.io` one.
fn is_native(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain.contains("kubernetes.io"),
    }
}

/// `helper.IsExtendedResourceName`.
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with(REQUESTS_PREFIX)
}

impl Evaluator {
    /// The evaluator upstream registers for a group/resource (an object counter for any kind
    /// without its own).
    pub fn for_resource(group: &str, resource: &str) -> Evaluator {
        match (group, resource) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::PersistentVolumeClaims,
            _ => {
                let alias = match (group, resource) {
                    (
                        "",
                        r
                        @ ("configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"),
                    ) => Some(r.to_string()),
                    _ => None,
                };
                Evaluator::ObjectCount {
                    group: group.to_string(),
                    resource: resource.to_string(),
                    alias,
                }
            }
        }
    }

    /// Upstream's `Handles`: which writes can change usage. Only creates for pods (resizes go
    /// through a subresource) and plain object counts.
    pub fn handles_update(&self) -> bool {
        matches!(
            self,
            Evaluator::Services | Evaluator::PersistentVolumeClaims
        )
    }

    /// `MatchingResources`: the names among `input` this evaluator measures.
    pub fn matching_resources<'a>(
        &self,
        input: impl IntoIterator<Item = &'a String>,
    ) -> BTreeSet<String> {
        input
            .into_iter()
            .filter(|n| match self {
                Evaluator::Pods => {
                    POD_RESOURCES.contains(&n.as_str())
                        || n.starts_with(HUGEPAGES_PREFIX)
                        || n.starts_with("requests.hugepages-")
                        || (!is_native(n) && n.starts_with(REQUESTS_PREFIX))
                }
                Evaluator::Services => SERVICE_RESOURCES.contains(&n.as_str()),
                Evaluator::PersistentVolumeClaims => {
                    PVC_RESOURCES.contains(&n.as_str())
                        || n.split_once(STORAGE_CLASS_SUFFIX).is_some_and(|(_, r)| {
                            r == "persistentvolumeclaims" || r == "requests.storage"
                        })
                }
                Evaluator::ObjectCount {
                    group,
                    resource,
                    alias,
                } => {
                    **n == object_count_name(group, resource)
                        || alias.as_deref() == Some(n.as_str())
                }
            })
            .cloned()
            .collect()
    }

    /// The scope function: whether an object matches one scope requirement. Only pods have
    /// scopes; a scoped quota matches nothing else (`MatchesNoScopeFunc`).
    pub fn matches_scope(&self, req: &ScopeRequirement, obj: &Value) -> bool {
        match self {
            Evaluator::Pods => pod_matches_scope(req, obj),
            _ => false,
        }
    }

    /// `Usage`: what one object consumes; `now` (Unix seconds) decides whether a pod's deletion
    /// grace period is over.
    pub fn usage(&self, obj: &Value, now: i64) -> ResourceList {
        match self {
            Evaluator::Pods => pod_usage(obj, now),
            Evaluator::Services => service_usage(obj),
            Evaluator::PersistentVolumeClaims => pvc_usage(obj),
            Evaluator::ObjectCount {
                group,
                resource,
                alias,
            } => {
                let mut out = ResourceList::new();
                out.insert(object_count_name(group, resource), Amount::count(1));
                if let Some(a) = alias {
                    out.insert(a.clone(), Amount::count(1));
                }
                out
            }
        }
    }

    /// `Constraints`: a pod under a cpu or memory quota must state those for every container.
    pub fn constraints(&self, required: &BTreeSet<String>, obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|n| VALIDATION_SET.contains(n))
            .collect();
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let spec = obj.get("spec").unwrap_or(&Value::Null);
        for c in containers(spec, "containers").chain(containers(spec, "initContainers")) {
            let usage = compute_usage(
                &resource_list(c.pointer("/resources/requests")),
                &resource_list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !usage.contains_key(*r) {
                    missing
                        .entry(r)
                        .or_default()
                        .insert(str_of(c, "name").to_string());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// `generic.Matches`: the quota limits something this evaluator measures and the object is in
/// all of its scopes.
pub fn quota_matches(quota: &Value, evaluator: &Evaluator, obj: &Value) -> bool {
    let hard = resource_list(quota.pointer("/status/hard"));
    !evaluator.matching_resources(hard.keys()).is_empty()
        && scope_selectors(quota)
            .iter()
            .all(|s| evaluator.matches_scope(s, obj))
}

fn containers<'a>(spec: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    spec.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// `podComputeUsageHelper`.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Amount::count(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.into(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (r, q) in requests {
        if r.starts_with(HUGEPAGES_PREFIX) {
            out.insert(r.clone(), *q);
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
        if is_extended(r) {
            out.insert(format!("{REQUESTS_PREFIX}{r}"), *q);
        }
    }
    out
}

/// `QuotaV1Pod`: terminal pods, and pods past their deletion grace period, are not charged.
fn pod_charged(pod: &Value, now: i64) -> bool {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Failed" || phase == "Succeeded" {
        return false;
    }
    let meta = pod.get("metadata").unwrap_or(&Value::Null);
    if let (Some(ts), Some(grace)) = (
        meta.get("deletionTimestamp").and_then(Value::as_str),
        meta.get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64),
    ) {
        if let Ok(t) = ts.parse::<jiff::Timestamp>() {
            if now > t.as_second() + grace {
                return false;
            }
        }
    }
    true
}

/// Upstream's `PodRequests`/`PodLimits` (component-helpers): containers summed, init
/// containers as a maximum (restartable sidecars running alongside), pod-level cpu/memory
/// overriding, overhead added when asked (to limits only where a limit is set).
pub fn pod_resources(pod: &Value, field: &str, with_overhead: bool) -> ResourceList {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let of = |c: &Value| resource_list(c.pointer(&format!("/resources/{field}")));
    let mut total = ResourceList::new();
    for c in containers(spec, "containers") {
        total = add(&total, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in containers(spec, "initContainers") {
        let mut r = of(c);
        if str_of(c, "restartPolicy") == "Always" {
            total = add(&total, &r);
            sidecars = add(&sidecars, &r);
            r = sidecars.clone();
        } else {
            r = add(&r, &sidecars);
        }
        max_into(&mut init, &r);
    }
    max_into(&mut total, &init);
    for (k, v) in resource_list(spec.pointer(&format!("/resources/{field}"))) {
        if k == "cpu" || k == "memory" || k.starts_with(HUGEPAGES_PREFIX) {
            total.insert(k, v);
        }
    }
    if !with_overhead {
        return total;
    }
    let overhead = resource_list(spec.get("overhead"));
    if field == "requests" {
        total = add(&total, &overhead);
    } else {
        for (k, v) in overhead {
            if let Some(x) = total.get(&k) {
                total.insert(k, x.add(v));
            }
        }
    }
    total
}

/// `PodUsageFunc`.
pub fn pod_usage(pod: &Value, now: i64) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), Amount::count(1));
    if !pod_charged(pod, now) {
        return out;
    }
    add(
        &out,
        &compute_usage(
            &pod_resources(pod, "requests", true),
            &pod_resources(pod, "limits", true),
        ),
    )
}

/// `qos.GetPodQOS(pod) == BestEffort`: no cpu or memory request or limit above zero anywhere.
pub fn is_best_effort(pod: &Value) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let sets_any = |r: Option<&Value>| {
        resource_list(r)
            .iter()
            .any(|(k, v)| (k == "cpu" || k == "memory") && v.value > 0)
    };
    if spec.get("resources").is_some()
        && (sets_any(spec.pointer("/resources/requests"))
            || sets_any(spec.pointer("/resources/limits")))
    {
        return false;
    }
    !containers(spec, "containers")
        .chain(containers(spec, "initContainers"))
        .any(|c| {
            sets_any(c.pointer("/resources/requests")) || sets_any(c.pointer("/resources/limits"))
        })
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

/// `usesCrossNamespacePodAffinity`.
fn cross_namespace_affinity(pod: &Value) -> bool {
    let Some(aff) = pod.pointer("/spec/affinity") else {
        return false;
    };
    let cross = |t: &Value| {
        t.get("namespaces")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
            || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let terms = |p: &str| {
            aff.pointer(&format!("/{kind}/{p}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        terms("requiredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .any(cross)
            || terms("preferredDuringSchedulingIgnoredDuringExecution")
                .iter()
                .any(|w| w.get("podAffinityTerm").is_some_and(cross))
    })
}

/// `podMatchesScopeFunc`.
fn pod_matches_scope(req: &ScopeRequirement, pod: &Value) -> bool {
    match req.scope.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            // The class as the value of a `PriorityClass` label (a pod without one has none).
            match req.operator.as_str() {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && req.values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !req.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}

/// `ServiceUsage`.
fn service_usage(svc: &Value) -> ResourceList {
    let spec = svc.get("spec").unwrap_or(&Value::Null);
    let ports: Vec<&Value> = containers(spec, "ports").collect();
    let mut out = ResourceList::new();
    out.insert("count/services".into(), Amount::count(1));
    out.insert("services".into(), Amount::count(1));
    out.insert("services.loadbalancers".into(), Amount::zero());
    out.insert("services.nodeports".into(), Amount::zero());
    match str_of(spec, "type") {
        "NodePort" => {
            out.insert(
                "services.nodeports".into(),
                Amount::count(ports.len() as i64),
            );
        }
        "LoadBalancer" => {
            let node_ports = if spec.get("allocateLoadBalancerNodePorts") == Some(&json!(false)) {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            out.insert(
                "services.nodeports".into(),
                Amount::count(node_ports as i64),
            );
            out.insert("services.loadbalancers".into(), Amount::count(1));
        }
        _ => {}
    }
    out
}

/// `storagehelpers.GetPersistentVolumeClaimClass`: the beta annotation, else the field.
fn pvc_class(pvc: &Value) -> &str {
    if let Some(c) = pvc
        .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
    {
        return c;
    }
    pvc.pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `pvcEvaluator.Usage`: the request (or the larger allocated size), in whole bytes.
fn pvc_usage(pvc: &Value) -> ResourceList {
    let class = pvc_class(pvc);
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".into(), Amount::count(1));
    out.insert("count/persistentvolumeclaims".into(), Amount::count(1));
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Amount::count(1),
        );
    }
    let requested = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(Amount::from_json)
        .map(|q| {
            let q = q.round_up();
            match pvc
                .pointer("/status/allocatedResources/storage")
                .and_then(Amount::from_json)
            {
                Some(a) if a.value > q.value => a.round_up(),
                _ => q,
            }
        });
    if let Some(q) = requested {
        out.insert("requests.storage".into(), q);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
    out
}

/// Upstream's `CalculateUsageStats` for one evaluator over the namespace's objects: every
/// tracked resource starts at zero, and objects in all the quota's scopes add their usage.
pub fn usage_stats<'a>(
    evaluator: &Evaluator,
    quota: &Value,
    resources: &BTreeSet<String>,
    objects: impl IntoIterator<Item = &'a Value>,
    now: i64,
) -> ResourceList {
    let mut used: ResourceList = resources
        .iter()
        .map(|r| (r.clone(), Amount::zero()))
        .collect();
    let scopes = scope_selectors(quota);
    for obj in objects {
        if scopes.iter().all(|s| evaluator.matches_scope(s, obj)) {
            used = add(&used, &evaluator.usage(obj, now));
        }
    }
    used
}

/// A request quota admission refused: the message of the 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// Upstream's `CheckRequest` (admission): the quotas (with `status` as stored) whose usage the
/// request changes, with their new `status.used`; or why it is refused. `old` is the object an
/// update replaces.
pub fn check_request(
    quotas: &[Value],
    evaluator: &Evaluator,
    obj: &Value,
    old: Option<&Value>,
    status_subresource: bool,
    now: i64,
) -> Result<Vec<(usize, ResourceList)>, Denied> {
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        if !quota_matches(q, evaluator, obj) {
            continue;
        }
        let hard = resource_list(q.pointer("/status/hard"));
        let restricted = evaluator.matching_resources(hard.keys());
        evaluator
            .constraints(&restricted, obj)
            .map_err(|e| Denied(format!("failed quota: {}: {e}", name_of(q))))?;
        let used = resource_list(q.pointer("/status/used"));
        if restricted.iter().any(|r| !used.contains_key(r)) {
            return Err(Denied(format!(
                "status unknown for quota: {}, resources: {}",
                name_of(q),
                restricted.iter().cloned().collect::<Vec<_>>().join(",")
            )));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let input = evaluator.usage(obj, now);
    let negative: Vec<&str> = input
        .iter()
        .filter(|(_, v)| v.value.is_negative())
        .map(|(k, _)| k.as_str())
        .collect();
    if !negative.is_empty() {
        return Err(Denied(format!(
            "quota usage is negative for resource(s): {}",
            negative.join(",")
        )));
    }
    let mut deltas: BTreeMap<usize, ResourceList> =
        interesting.iter().map(|i| (*i, input.clone())).collect();
    if let Some(prev) = old {
        // An update is charged the growth only, for the quotas the old object was in too.
        let prev_usage = evaluator.usage(prev, now);
        let delta = subtract_non_negative(&input, &prev_usage);
        for i in &interesting {
            if quota_matches(&quotas[*i], evaluator, prev) {
                deltas.insert(*i, delta.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (i, delta) in deltas {
        let delta = remove_zeros(&delta);
        if delta.is_empty() {
            continue;
        }
        let q = &quotas[i];
        let hard = resource_list(q.pointer("/status/hard"));
        let used = resource_list(q.pointer("/status/used"));
        let requested = mask(&delta, &names(&hard));
        let new_used = add(&used, &requested);
        if !status_subresource {
            let (ok, exceeded) = less_than_or_equal(&mask(&new_used, &names(&requested)), &hard);
            if !ok {
                return Err(Denied(format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    name_of(q),
                    pretty(&mask(&requested, &exceeded)),
                    pretty(&mask(&used, &exceeded)),
                    pretty(&mask(&hard, &exceeded)),
                )));
            }
        }
        if !equals(&new_used, &used) {
            out.push((i, new_used));
        }
    }
    Ok(out)
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The evaluators the controller runs for a quota: the built-in kinds, and an object counter
/// for each `count/<resource>.<group>` it limits.
pub fn evaluators_for(hard: &ResourceList) -> Vec<Evaluator> {
    let mut out: Vec<Evaluator> = [
        ("", "pods"),
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "replicationcontrollers"),
        ("", "resourcequotas"),
    ]
    .iter()
    .map(|(g, r)| Evaluator::for_resource(g, r))
    .collect();
    for name in hard.keys() {
        let Some(gr) = name.strip_prefix("count/") else {
            continue;
        };
        let (resource, group) = gr.split_once('.').unwrap_or((gr, ""));
        let e = Evaluator::for_resource(group, resource);
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests;
