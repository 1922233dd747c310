//! The `LimitRanger` admission plugin (upstream's `plugin/pkg/admission/limitranger`): a new
//! pod's containers get the `default`/`defaultRequest` of their namespace's LimitRanges (noted in
//! the `kubernetes.io/limit-ranger` annotation), then pods and PersistentVolumeClaims are held
//! to the ranges' `min`, `max` and `maxLimitRequestRatio`, with upstream's 403 messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rudder_api::quantity::Amount;
use rudder_api::quota::{pod_resources, resource_list, ResourceList};
use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Attributes, Entry, Operation, WatchCache};
use serde_json::{json, Map, Value};

use crate::resourcequota::validation_forbidden;

const ANNOTATION: &str = "kubernetes.io/limit-ranger";

pub struct LimitRangerAdmission {
    cache: Arc<WatchCache>,
    /// The store prefix of LimitRanges.
    prefix: String,
}

impl LimitRangerAdmission {
    pub fn new(cache: Arc<WatchCache>, limit_range_prefix: String) -> LimitRangerAdmission {
        LimitRangerAdmission {
            cache,
            prefix: limit_range_prefix,
        }
    }

    fn ranges(&self, ns: &str) -> Vec<Value> {
        let (items, _) = self
            .cache
            .list(&self.prefix, &format!("{}/{ns}/", self.prefix));
        items.iter().map(|o| o.value()).collect()
    }
}

fn is_core(entry: &Entry, plural: &str) -> bool {
    entry.info.group.is_empty() && entry.info.plural == plural
}

fn limits(range: &Value) -> impl Iterator<Item = &Value> {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `defaultContainerResourceRequirements`: (requests, limits) of the range's Container items.
fn container_defaults(range: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let (mut requests, mut limits_out) = (Map::new(), Map::new());
    for item in limits(range).filter(|i| str_of(i, "type") == "Container") {
        if let Some(m) = item.get("defaultRequest").and_then(Value::as_object) {
            requests.extend(m.clone());
        }
        if let Some(m) = item.get("default").and_then(Value::as_object) {
            limits_out.extend(m.clone());
        }
    }
    (requests, limits_out)
}

/// `mergeContainerResources`: fills what the container leaves unset; the annotation parts.
fn merge_container(
    c: &mut Value,
    requests: &Map<String, Value>,
    limits_default: &Map<String, Value>,
    kind: &str,
    notes: &mut Vec<String>,
) {
    let name = str_of(c, "name").to_string();
    let Some(c) = c.as_object_mut() else {
        return;
    };
    let resources = c.entry("resources").or_insert_with(|| json!({}));
    let mut fill = |field: &str, defaults: &Map<String, Value>| -> Vec<String> {
        let Some(r) = resources.as_object_mut() else {
            return Vec::new();
        };
        let list = r.entry(field).or_insert_with(|| json!({}));
        let Some(list) = list.as_object_mut() else {
            return Vec::new();
        };
        let mut set: Vec<String> = Vec::new();
        for (k, v) in defaults {
            if !list.contains_key(k) {
                list.insert(k.clone(), v.clone());
                set.push(k.clone());
            }
        }
        set.sort();
        set
    };
    let set_requests = fill("requests", requests);
    let set_limits = fill("limits", limits_default);
    if !set_requests.is_empty() {
        notes.push(format!(
            "{} request for {kind} {name}",
            set_requests.join(", ")
        ));
    }
    if !set_limits.is_empty() {
        notes.push(format!("{} limit for {kind} {name}", set_limits.join(", ")));
    }
}

/// `PodMutateLimitFunc`.
fn mutate_pod(range: &Value, pod: &mut Value) {
    let (requests, limits_default) = container_defaults(range);
    let mut notes = Vec::new();
    for (field, kind) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        if let Some(cs) = pod
            .get_mut("spec")
            .and_then(|s| s.get_mut(field))
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                merge_container(c, &requests, &limits_default, kind, &mut notes);
            }
        }
    }
    if !notes.is_empty() {
        if let Some(meta) = object::meta_mut(pod) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(
                    ANNOTATION.into(),
                    json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
                );
            }
        }
    }
}

/// `requestLimitEnforcedValues`: milli-units, comparable across cpu and bytes alike.
fn milli(a: Option<&Amount>) -> i64 {
    a.map_or(0, |a| a.value.milli_value())
}

/// Upstream's `minConstraint`, `maxConstraint` and `maxRequestConstraint`: the `first` value
/// must be present and, like the optional `second`, not beyond the bound.
fn bound(
    max: bool,
    kind: &str,
    name: &str,
    enforced: &Amount,
    first: (&str, Option<&Amount>),
    second: Option<(&str, Option<&Amount>)>,
) -> Option<String> {
    let word = if max { "maximum" } else { "minimum" };
    let e = enforced.value.milli_value();
    let beyond = |a: &Amount| {
        let v = milli(Some(a));
        if max {
            v > e
        } else {
            v < e
        }
    };
    let (label, value) = first;
    let Some(value) = value else {
        return Some(format!(
            "{word} {name} usage per {kind} is {enforced}.  No {label} is specified"
        ));
    };
    let over = std::iter::once((label, Some(value)))
        .chain(second)
        .find_map(|(label, v)| v.filter(|v| beyond(v)).map(|v| (label, v)));
    over.map(|(label, v)| {
        format!("{word} {name} usage per {kind} is {enforced}, but {label} is {v}")
    })
}

fn ratio_constraint(
    kind: &str,
    name: &str,
    enforced: &Amount,
    req: &ResourceList,
    lim: &ResourceList,
) -> Option<String> {
    let (r, l) = (milli(req.get(name)), milli(lim.get(name)));
    if r == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if l == 0 {
        return Some(format!("{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let ratio = l as f64 / r as f64;
    if ratio * 1000.0 > enforced.value.milli_value() as f64 {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {ratio:.6}"
        ));
    }
    None
}

/// The quantities of one field of a limit item, sorted by name (upstream walks a Go map; a
/// fixed order keeps messages stable).
fn item_list(item: &Value, field: &str) -> BTreeMap<String, Amount> {
    resource_list(item.get(field))
}

/// Min, max and ratio of one item over one (requests, limits) pair.
fn check_item(
    item: &Value,
    kind: &str,
    req: &ResourceList,
    lim: &ResourceList,
    errs: &mut Vec<String>,
) {
    for (k, v) in item_list(item, "min") {
        let (r, l) = (("request", req.get(&k)), ("limit", lim.get(&k)));
        errs.extend(bound(false, kind, &k, &v, r, Some(l)));
    }
    for (k, v) in item_list(item, "max") {
        let (r, l) = (("request", req.get(&k)), ("limit", lim.get(&k)));
        errs.extend(bound(true, kind, &k, &v, l, Some(r)));
    }
    for (k, v) in item_list(item, "maxLimitRequestRatio") {
        errs.extend(ratio_constraint(kind, &k, &v, req, lim));
    }
}

/// `PodValidateLimitFunc`.
fn validate_pod(range: &Value, pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for item in limits(range) {
        match str_of(item, "type") {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in spec
                        .get(field)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let req = resource_list(c.pointer("/resources/requests"));
                        let lim = resource_list(c.pointer("/resources/limits"));
                        check_item(item, "Container", &req, &lim, &mut errs);
                    }
                }
            }
            "Pod" => {
                let req = pod_resources(pod, "requests", false);
                let lim = pod_resources(pod, "limits", false);
                check_item(item, "Pod", &req, &lim, &mut errs);
            }
            _ => {}
        }
    }
    errs
}

/// `PersistentVolumeClaimValidateLimitFunc`.
fn validate_claim(range: &Value, pvc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = resource_list(pvc.pointer("/spec/resources/requests"));
    for item in limits(range).filter(|i| str_of(i, "type") == "PersistentVolumeClaim") {
        // Claims state requests only; their limits are not user input here.
        for (k, v) in item_list(item, "min") {
            let r = ("request", req.get(&k));
            errs.extend(bound(false, "PersistentVolumeClaim", &k, &v, r, None));
        }
        for (k, v) in item_list(item, "max") {
            let r = ("request", req.get(&k));
            errs.extend(bound(true, "PersistentVolumeClaim", &k, &v, r, None));
        }
    }
    errs
}

/// `utilerrors.NewAggregate(errs).Error()`: one message as is, several deduplicated in
/// brackets.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut seen = BTreeSet::new();
    let unique: Vec<String> = errs
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect();
    match unique.len() {
        0 => None,
        1 => unique.into_iter().next(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

/// Upstream ignores writes to objects already being deleted.
fn being_deleted(old: Option<&Value>) -> bool {
    old.and_then(object::meta)
        .is_some_and(|m| m.contains_key("deletionTimestamp"))
}

#[async_trait::async_trait]
impl Admission for LimitRangerAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        is_core(entry, "pods") || is_core(entry, "persistentvolumeclaims")
    }

    fn admit_create(&self, entry: &Entry, obj: &mut Value, _dry_run: bool) -> Result<(), ApiError> {
        if is_core(entry, "pods") {
            for range in self.ranges(object::namespace(obj)) {
                mutate_pod(&range, obj);
            }
        }
        Ok(())
    }

    /// Upstream validates in the validating phase, after every mutating plugin, so it sees
    /// the pod as it will be stored.
    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let (entry, old) = (attrs.entry, attrs.old);
        // Pod updates cannot change containers' resources (resize is its own subresource).
        let pods = is_core(entry, "pods");
        if attrs.operation != Operation::Create && attrs.operation != Operation::Update
            || !attrs.is_main_resource()
            || being_deleted(old)
            || (pods && old.is_some())
        {
            return Ok(());
        }
        for range in self.ranges(object::namespace(obj)) {
            let errs = if pods {
                validate_pod(&range, obj)
            } else {
                validate_claim(&range, obj)
            };
            if let Some(msg) = aggregate(errs) {
                return Err(validation_forbidden(entry, obj, msg));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
