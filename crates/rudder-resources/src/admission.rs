//! Admission plugins that need other objects than the one being written (upstream's
//! `plugin/pkg/admission/*`). They read those objects from the watch cache, as upstream's read
//! them from informer listers.

use std::sync::Arc;

use rudder_api::status::ApiError;
use rudder_registry::{object, Admission, Attributes, Entry, Operation, WatchCache};
use serde_json::{json, Value};

use crate::strategies::util::{has, str_at};

/// Upstream's `scheduling.DefaultPriorityWhenNoDefaultClassExists`.
const DEFAULT_PRIORITY: i64 = 0;

/// The `Priority` admission plugin: resolves a new pod's `priorityClassName` (or the
/// `globalDefault` class) into `spec.priority` and `spec.preemptionPolicy`, and allows one
/// `globalDefault` PriorityClass only.
pub struct PriorityAdmission {
    cache: Arc<WatchCache>,
    /// The store prefix of PriorityClasses.
    prefix: String,
}

/// What a pod gets from its class.
struct Resolved {
    class: String,
    value: i64,
    preemption_policy: Option<String>,
}

impl PriorityAdmission {
    pub fn new(cache: Arc<WatchCache>, priority_class_prefix: String) -> PriorityAdmission {
        PriorityAdmission {
            cache,
            prefix: priority_class_prefix,
        }
    }

    fn classes(&self) -> Vec<Value> {
        let (items, _) = self.cache.list(&self.prefix, &format!("{}/", self.prefix));
        items.iter().map(|o| o.value()).collect()
    }
}

/// The `globalDefault` class; with several (a race upstream allows), the lowest value.
fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|c| value_of(c))
}

/// Upstream's `admitPod` on create.
fn admit_pod(classes: &[Value], entry: &Entry, pod: &mut Value) -> Result<(), ApiError> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let class = str_at(spec, "priorityClassName").to_string();
    let resolved = if class.is_empty() {
        match default_class(classes) {
            Some(c) => Resolved {
                class: object::name(c).to_string(),
                value: value_of(c),
                preemption_policy: policy_of(c),
            },
            None => Resolved {
                class: String::new(),
                value: DEFAULT_PRIORITY,
                preemption_policy: Some("PreemptLowerPriority".into()),
            },
        }
    } else {
        let Some(c) = classes.iter().find(|c| object::name(c) == class) else {
            return Err(forbidden(
                entry,
                pod,
                format!("no PriorityClass with name {class} was found"),
            ));
        };
        Resolved {
            class,
            value: value_of(c),
            preemption_policy: policy_of(c),
        }
    };
    if let Some(p) = spec.get("priority").and_then(Value::as_i64) {
        if p != resolved.value {
            return Err(forbidden(
                    entry,
                    pod,
                    format!(
                        "the integer value of priority ({p}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                        resolved.value
                    ),
                ));
        }
    }
    if let Some(policy) = &resolved.preemption_policy {
        let given = str_at(spec, "preemptionPolicy");
        if has(spec, "preemptionPolicy") && given != policy {
            return Err(forbidden(
                    entry,
                    pod,
                    format!(
                        "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                    ),
                ));
        }
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if !resolved.class.is_empty() {
        spec.insert("priorityClassName".into(), json!(resolved.class));
    }
    spec.insert("priority".into(), json!(resolved.value));
    if let Some(policy) = resolved.preemption_policy {
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// Only one class may be the global default.
fn validate_class(
    classes: &[Value],
    entry: &Entry,
    pc: &Value,
    update: bool,
) -> Result<(), ApiError> {
    if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let Some(current) = default_class(classes) else {
        return Ok(());
    };
    let current = object::name(current).to_string();
    if !update || current != object::name(pc) {
        return Err(forbidden(
            entry,
            pc,
            format!(
                "PriorityClass {current} is already marked as default. Only one default can exist"
            ),
        ));
    }
    Ok(())
}

fn value_of(pc: &Value) -> i64 {
    pc.get("value").and_then(Value::as_i64).unwrap_or(0)
}

fn policy_of(pc: &Value) -> Option<String> {
    pc.get("preemptionPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Upstream's `admission.NewForbidden`: the object's name, or its `generateName` when the name
/// is still to be generated (admission runs before name generation upstream; here the name is
/// already drawn, so a generated one is recognised by its prefix and 5-character suffix).
fn forbidden(entry: &Entry, obj: &Value, err: String) -> ApiError {
    let name = object::name(obj);
    let generate = object::meta_str(obj, "generateName");
    let shown =
        if !generate.is_empty() && name.starts_with(generate) && name.len() == generate.len() + 5 {
            generate
        } else if name.is_empty() {
            "Unknown"
        } else {
            name
        };
    ApiError::forbidden(&entry.info.group_resource(), shown, err)
}

fn is_pods(entry: &Entry) -> bool {
    entry.info.group.is_empty() && entry.info.plural == "pods"
}

fn is_priority_classes(entry: &Entry) -> bool {
    entry.info.group == "scheduling.k8s.io" && entry.info.plural == "priorityclasses"
}

impl Admission for PriorityAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        is_pods(entry) || is_priority_classes(entry)
    }

    fn admit_create(&self, entry: &Entry, obj: &mut Value, _dry_run: bool) -> Result<(), ApiError> {
        if is_pods(entry) {
            admit_pod(&self.classes(), entry, obj)
        } else {
            validate_class(&self.classes(), entry, obj, false)
        }
    }

    fn admit_update(
        &self,
        entry: &Entry,
        new: &mut Value,
        _old: &Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        // A pod keeps what admission set on create (the pod strategy carries it over).
        if is_priority_classes(entry) {
            validate_class(&self.classes(), entry, new, true)?;
        }
        Ok(())
    }
}

/// The `DefaultTolerationSeconds` admission plugin (upstream's
/// `plugin/pkg/admission/defaulttolerationseconds`): a pod that does not tolerate the
/// `not-ready` or `unreachable` NoExecute taints gets a toleration of each for
/// `--default-not-ready-toleration-seconds`/`--default-unreachable-toleration-seconds` (300),
/// so the taint eviction controller moves it off a failed node after five minutes.
pub struct DefaultTolerationSeconds {
    pub not_ready_seconds: i64,
    pub unreachable_seconds: i64,
}

impl Default for DefaultTolerationSeconds {
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready_seconds: 300,
            unreachable_seconds: 300,
        }
    }
}

const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";

impl DefaultTolerationSeconds {
    fn admit(&self, pod: &mut Value) {
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let tolerates = |tols: &[Value], key: &str| {
            tols.iter().any(|t| {
                let k = str_at(t, "key");
                let e = str_at(t, "effect");
                (k == key || k.is_empty()) && (e == "NoExecute" || e.is_empty())
            })
        };
        let tols = spec
            .get("tolerations")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut add = Vec::new();
        if !tolerates(&tols, TAINT_NOT_READY) {
            add.push((TAINT_NOT_READY, self.not_ready_seconds));
        }
        if !tolerates(&tols, TAINT_UNREACHABLE) {
            add.push((TAINT_UNREACHABLE, self.unreachable_seconds));
        }
        if add.is_empty() {
            return;
        }
        let mut tols = tols;
        for (key, secs) in add {
            tols.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": secs,
            }));
        }
        spec.insert("tolerations".into(), Value::Array(tols));
    }
}

/// Upstream's RuntimeClass plugin: a pod created with a `runtimeClassName` must name an
/// existing RuntimeClass (node.k8s.io/v1); the class's `overhead.podFixed` becomes the pod's
/// `spec.overhead` and its `scheduling` node selector and tolerations are merged into the
/// pod's, with upstream's refusals when they conflict.
pub struct RuntimeClassAdmission {
    cache: Arc<WatchCache>,
    /// The store prefix of RuntimeClasses.
    prefix: String,
}

impl RuntimeClassAdmission {
    pub fn new(cache: Arc<WatchCache>, runtime_class_prefix: String) -> RuntimeClassAdmission {
        RuntimeClassAdmission {
            cache,
            prefix: runtime_class_prefix,
        }
    }

    /// The pod's RuntimeClass, if it names one.
    fn class(&self, entry: &Entry, pod: &Value) -> Result<Option<Value>, ApiError> {
        let name = pod
            .pointer("/spec/runtimeClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if name.is_empty() {
            return Ok(None);
        }
        let key = format!("{}/{name}", self.prefix);
        match self.cache.get(&self.prefix, &key) {
            Some(o) => Ok(Some(o.value())),
            None => Err(forbidden(
                entry,
                pod,
                format!("pod rejected: RuntimeClass {name:?} not found"),
            )),
        }
    }
}

/// Two resource lists with the same quantities (`1` and `1000m` are equal), as upstream's
/// semantic equality compares them.
fn same_resources(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a.is_null() && b.is_null();
    };
    let q = |v: &Value| v.as_str().and_then(|s| rudder_api::quantity::parse(s).ok());
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| q(v).is_some() && q(v) == q(w)))
}

/// Upstream's `isSuperset`: whether toleration `ss` tolerates everything `t` does.
fn tolerates_superset(ss: &Value, t: &Value) -> bool {
    if ss == t {
        return true;
    }
    let (ss_key, t_key) = (str_at(ss, "key"), str_at(t, "key"));
    let ss_op = str_at(ss, "operator");
    if t_key != ss_key && (!ss_key.is_empty() || ss_op != "Exists") {
        return false;
    }
    let (ss_effect, t_effect) = (str_at(ss, "effect"), str_at(t, "effect"));
    if t_effect != ss_effect && !ss_effect.is_empty() {
        return false;
    }
    if ss_effect == "NoExecute" {
        if let Some(limit) = ss.get("tolerationSeconds").and_then(Value::as_i64) {
            match t.get("tolerationSeconds").and_then(Value::as_i64) {
                Some(secs) if secs <= limit => {}
                _ => return false,
            }
        }
    }
    match ss_op {
        "" | "Equal" => {
            matches!(str_at(t, "operator"), "" | "Equal")
                && str_at(t, "value") == str_at(ss, "value")
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream's `tolerations.MergeTolerations`: both sets, without those another one covers
/// (the first of equal ones kept).
fn merge_tolerations(first: &[Value], second: &[Value]) -> Vec<Value> {
    let all: Vec<&Value> = first.iter().chain(second).collect();
    let mut merged: Vec<Value> = Vec::new();
    for (i, t) in all.iter().enumerate() {
        if merged.iter().any(|m| tolerates_superset(m, t)) {
            continue;
        }
        if all[i + 1..]
            .iter()
            .any(|later| later != t && tolerates_superset(later, t))
        {
            continue;
        }
        merged.push((*t).clone());
    }
    merged
}

/// Upstream's `setOverhead` and `setScheduling` for a pod of `class`.
fn admit_runtime_class(entry: &Entry, pod: &mut Value, class: &Value) -> Result<(), ApiError> {
    if let Some(fixed) = class.pointer("/overhead/podFixed").filter(|o| !o.is_null()) {
        let current = pod
            .pointer("/spec/overhead")
            .cloned()
            .unwrap_or(Value::Null);
        if current.as_object().is_some_and(|o| !o.is_empty()) && !same_resources(fixed, &current) {
            return Err(forbidden(
                entry,
                pod,
                "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
            ));
        }
        pod["spec"]["overhead"] = fixed.clone();
    }
    let Some(scheduling) = class.get("scheduling").filter(|s| s.is_object()) else {
        return Ok(());
    };
    let mut selector = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .cloned();
    if let Some(wanted) = scheduling.get("nodeSelector").and_then(Value::as_object) {
        match &mut selector {
            None => selector = Some(wanted.clone()),
            Some(sel) => {
                for (key, value) in wanted {
                    if let Some(have) = sel.get(key).filter(|h| *h != value) {
                        return Err(forbidden(
                            entry,
                            pod,
                            format!(
                                "conflict: runtimeClass.scheduling.nodeSelector[{key}] = {}; pod.spec.nodeSelector[{key}] = {}",
                                value.as_str().unwrap_or_default(),
                                have.as_str().unwrap_or_default()
                            ),
                        ));
                    }
                    sel.insert(key.clone(), value.clone());
                }
            }
        }
    }
    let pod_tolerations = pod
        .pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let class_tolerations = scheduling
        .get("tolerations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let merged = merge_tolerations(&pod_tolerations, &class_tolerations);
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(sel) = selector {
            spec.insert("nodeSelector".into(), Value::Object(sel));
        }
        if !merged.is_empty() {
            spec.insert("tolerations".into(), Value::Array(merged));
        }
    }
    Ok(())
}

/// Upstream's `validateOverhead`.
fn validate_overhead(entry: &Entry, pod: &Value, class: Option<&Value>) -> Result<(), ApiError> {
    let overhead = pod.pointer("/spec/overhead").filter(|o| !o.is_null());
    match class
        .and_then(|c| c.pointer("/overhead/podFixed"))
        .filter(|o| !o.is_null())
    {
        Some(fixed) if !same_resources(fixed, overhead.unwrap_or(&Value::Null)) => Err(forbidden(
            entry,
            pod,
            "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead".into(),
        )),
        None if overhead.is_some() => Err(forbidden(
            entry,
            pod,
            "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
                .into(),
        )),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Admission for RuntimeClassAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        is_pods(entry)
    }

    fn admit_create(&self, entry: &Entry, pod: &mut Value, _dry_run: bool) -> Result<(), ApiError> {
        match self.class(entry, pod)? {
            Some(class) => admit_runtime_class(entry, pod, &class),
            None => Ok(()),
        }
    }

    /// Upstream's `validateOverhead`, after every mutation (webhooks included): the pod's
    /// overhead is its class's, or absent without one.
    async fn validate(&self, attrs: &Attributes<'_>, pod: &Value) -> Result<(), ApiError> {
        if attrs.operation != Operation::Create || !attrs.is_main_resource() {
            return Ok(());
        }
        let class = self.class(attrs.entry, pod)?;
        validate_overhead(attrs.entry, pod, class.as_ref())
    }
}

/// Upstream's TaintNodesByCondition: a Node is created with the
/// `node.kubernetes.io/not-ready:NoSchedule` taint, so nothing is scheduled onto it before the
/// node lifecycle controller has seen it Ready (and removed the taint).
pub struct TaintNodesByCondition;

impl Admission for TaintNodesByCondition {
    fn handles(&self, entry: &Entry) -> bool {
        entry.info.group.is_empty() && entry.info.plural == "nodes"
    }

    fn admit_create(
        &self,
        _entry: &Entry,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        let Some(m) = obj.as_object_mut() else {
            return Ok(());
        };
        let spec = m.entry("spec").or_insert_with(|| json!({}));
        let Some(spec) = spec.as_object_mut() else {
            return Ok(());
        };
        let taints = spec.entry("taints").or_insert_with(|| json!([]));
        if taints.is_null() {
            *taints = json!([]);
        }
        let Some(taints) = taints.as_array_mut() else {
            return Ok(());
        };
        // Upstream's `MatchTaint`: the same key and effect.
        if !taints
            .iter()
            .any(|t| str_at(t, "key") == TAINT_NOT_READY && str_at(t, "effect") == "NoSchedule")
        {
            taints.push(json!({"key": TAINT_NOT_READY, "effect": "NoSchedule"}));
        }
        Ok(())
    }
}

impl Admission for DefaultTolerationSeconds {
    fn handles(&self, entry: &Entry) -> bool {
        is_pods(entry)
    }

    fn admit_create(
        &self,
        _entry: &Entry,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        self.admit(obj);
        Ok(())
    }

    fn admit_update(
        &self,
        _entry: &Entry,
        new: &mut Value,
        old: &Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        // Upstream admits updates of the pod itself, not its subresources; a subresource
        // write (status, binding) carries the old spec, which had its tolerations at create.
        if new.get("spec") != old.get("spec") {
            self.admit(new);
        }
        Ok(())
    }
}

/// Where the service-account credentials appear in every container (upstream's
/// `DefaultAPITokenMountPath`).
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The `ServiceAccount` admission plugin (upstream's `plugin/pkg/admission/serviceaccount`):
/// a pod runs as `default` unless it names an account, and, unless the pod or its account
/// opts out with `automountServiceAccountToken: false`, gets the projected
/// `kube-api-access-<random>` volume (a bound token from TokenRequest that the kubelet
/// refreshes, the cluster CA from `kube-root-ca.crt`, the namespace) mounted read-only at
/// `/var/run/secrets/kubernetes.io/serviceaccount` in every container, so in-cluster clients
/// work; a pod without `imagePullSecrets` gets its account's. Mirror pods of static pods are
/// left alone, as upstream.
pub struct ServiceAccountAdmission {
    cache: Arc<WatchCache>,
    /// The store prefix of ServiceAccounts.
    prefix: String,
}

impl ServiceAccountAdmission {
    pub fn new(cache: Arc<WatchCache>, service_account_prefix: String) -> ServiceAccountAdmission {
        ServiceAccountAdmission {
            cache,
            prefix: service_account_prefix,
        }
    }

    fn account(&self, namespace: &str, name: &str) -> Option<Value> {
        let key = rudder_api::resources::object_key(&self.prefix, Some(namespace), name).ok()?;
        self.cache
            .get(&self.prefix, &key)
            .map(|o| o.value().clone())
    }

    fn admit(&self, pod: &mut Value) {
        inject_service_account(pod, |ns, name| self.account(ns, name));
    }
}

/// The plugin's mutation, given how to read an account (`None` when it does not exist).
pub fn inject_service_account(pod: &mut Value, account_of: impl Fn(&str, &str) -> Option<Value>) {
    {
        let mirror = pod
            .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
            .is_some();
        if mirror {
            return;
        }
        let namespace =
            str_at(pod.get("metadata").unwrap_or(&Value::Null), "namespace").to_string();
        let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        let account = spec
            .get("serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(account));
        let sa = account_of(&namespace, &account);
        let pull_secrets = spec
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .is_some_and(|l| !l.is_empty());
        if !pull_secrets {
            let names: Vec<Value> = sa
                .as_ref()
                .and_then(|sa| sa.get("imagePullSecrets"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|r| json!({"name": str_at(r, "name")}))
                .collect();
            if !names.is_empty() {
                spec.insert("imagePullSecrets".into(), Value::Array(names));
            }
        }
        let automount = match spec
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool)
        {
            Some(v) => v,
            None => sa
                .as_ref()
                .and_then(|sa| sa.get("automountServiceAccountToken"))
                .and_then(Value::as_bool)
                .unwrap_or(true),
        };
        if !automount {
            return;
        }
        let container_lists = ["initContainers", "containers"];
        let already = container_lists.iter().any(|l| {
            spec.get(*l).and_then(Value::as_array).is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("volumeMounts")
                        .and_then(Value::as_array)
                        .is_some_and(|ms| {
                            ms.iter()
                                .any(|m| str_at(m, "mountPath") == SERVICE_ACCOUNT_MOUNT_PATH)
                        })
                })
            })
        });
        if already {
            return;
        }
        let name = format!("kube-api-access-{}", random_suffix());
        let volume = json!({
            "name": name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            },
        });
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(v) = volumes.as_array_mut() {
            v.push(volume);
        }
        let mount =
            json!({"name": name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH});
        for l in container_lists {
            if let Some(cs) = spec.get_mut(l).and_then(Value::as_array_mut) {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                        if let Some(m) = mounts.as_array_mut() {
                            m.push(mount.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Upstream's `SimpleNameGenerator` suffix: 5 characters without vowels or confusable digits.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl Admission for ServiceAccountAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        is_pods(entry)
    }

    fn admit_create(
        &self,
        _entry: &Entry,
        obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        self.admit(obj);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_registry::Registry;

    fn entry(group: &str, plural: &str) -> Arc<Entry> {
        let registry = Registry::builtin(crate::strategies::strategy_for).unwrap();
        registry.get(group, "v1", plural).unwrap().clone()
    }

    fn class(name: &str, value: i64, default: bool, policy: &str) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default, "preemptionPolicy": policy})
    }

    fn pod(spec: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "i"}]);
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    // Cases from upstream's plugin/pkg/admission/runtimeclass/admission_test.go.
    #[test]
    fn runtime_class_overhead_and_scheduling() {
        let pods = entry("", "pods");
        let class = json!({"metadata": {"name": "kata"}, "handler": "kata",
            "overhead": {"podFixed": {"cpu": "100m", "memory": "16Mi"}},
            "scheduling": {"nodeSelector": {"sandbox": "kata"},
                           "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"},
                                           {"key": "dedicated", "operator": "Equal", "value": "x"}]}});
        let mut p = pod(
            json!({"runtimeClassName": "kata", "nodeSelector": {"zone": "a"},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        );
        admit_runtime_class(&pods, &mut p, &class).unwrap();
        assert_eq!(
            p["spec"]["overhead"],
            json!({"cpu": "100m", "memory": "16Mi"})
        );
        assert_eq!(
            p["spec"]["nodeSelector"],
            json!({"zone": "a", "sandbox": "kata"})
        );
        // The pod's Exists toleration covers the class's Equal one for the same key.
        assert_eq!(
            p["spec"]["tolerations"],
            json!([{"key": "dedicated", "operator": "Exists"},
                   {"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}])
        );
        validate_overhead(&pods, &p, Some(&class)).unwrap();

        // An overhead set to the same quantities is kept; another is refused.
        let mut same =
            pod(json!({"runtimeClassName": "kata", "overhead": {"cpu": "0.1", "memory": "16Mi"}}));
        admit_runtime_class(&pods, &mut same, &class).unwrap();
        let mut other = pod(json!({"runtimeClassName": "kata", "overhead": {"cpu": "1"}}));
        assert_eq!(
            admit_runtime_class(&pods, &mut other, &class).unwrap_err().message,
            "pods \"p\" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
        );
        let mut conflict =
            pod(json!({"runtimeClassName": "kata", "nodeSelector": {"sandbox": "gvisor"}}));
        assert_eq!(
            admit_runtime_class(&pods, &mut conflict, &class).unwrap_err().message,
            "pods \"p\" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[sandbox] = kata; pod.spec.nodeSelector[sandbox] = gvisor"
        );
        // An overhead without a class that defines one is refused at validation.
        let lone = pod(json!({"overhead": {"cpu": "1"}}));
        assert_eq!(
            validate_overhead(&pods, &lone, None).unwrap_err().message,
            "pods \"p\" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"
        );
        let changed = pod(json!({"runtimeClassName": "kata", "overhead": {"cpu": "2"}}));
        assert!(validate_overhead(&pods, &changed, Some(&class)).is_err());
        validate_overhead(&pods, &pod(json!({})), None).unwrap();
    }

    #[test]
    fn tolerations_merge_as_upstream() {
        let t = |v: Value| v;
        let exists_all = t(json!({"operator": "Exists"}));
        let key_eq =
            t(json!({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}));
        let key_exists = t(json!({"key": "k", "operator": "Exists"}));
        // A superset later in either list wins; equal ones are kept once.
        assert_eq!(
            merge_tolerations(
                std::slice::from_ref(&key_eq),
                std::slice::from_ref(&key_exists)
            ),
            vec![key_exists.clone()]
        );
        assert_eq!(
            merge_tolerations(std::slice::from_ref(&key_eq), std::slice::from_ref(&key_eq)),
            vec![key_eq.clone()]
        );
        assert_eq!(
            merge_tolerations(&[key_eq.clone(), exists_all.clone()], &[]),
            vec![exists_all]
        );
        // A NoExecute toleration covers one with a shorter tolerationSeconds, not a longer one
        // nor one without a limit.
        let short = t(
            json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}),
        );
        let long = t(
            json!({"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60}),
        );
        let forever = t(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}));
        assert_eq!(
            merge_tolerations(std::slice::from_ref(&short), std::slice::from_ref(&long)),
            vec![long.clone()]
        );
        assert_eq!(
            merge_tolerations(std::slice::from_ref(&long), std::slice::from_ref(&short)),
            vec![long.clone()]
        );
        assert_eq!(
            merge_tolerations(std::slice::from_ref(&long), std::slice::from_ref(&forever)),
            vec![forever]
        );
    }

    // Cases from upstream's plugin/pkg/admission/nodetaint/admission_test.go.
    #[test]
    fn new_nodes_are_tainted_not_ready() {
        let nodes = entry("", "nodes");
        let not_ready = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"});
        let admit = |mut n: Value| {
            TaintNodesByCondition
                .admit_create(&nodes, &mut n, false)
                .unwrap();
            n["spec"]["taints"].clone()
        };
        assert_eq!(
            admit(json!({"metadata": {"name": "n"}})),
            json!([not_ready])
        );
        // Already tainted: unchanged.
        assert_eq!(
            admit(json!({"metadata": {"name": "n"}, "spec": {"taints": [not_ready]}})),
            json!([not_ready])
        );
        // Other taints stay, and a not-ready taint with another effect is another taint.
        let other = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"});
        assert_eq!(
            admit(json!({"metadata": {"name": "n"}, "spec": {"taints": [other]}})),
            json!([other, not_ready])
        );
    }

    // Cases from upstream's plugin/pkg/admission/priority/admission_test.go (TestPodAdmission).
    #[test]
    fn pod_priority_from_class_default_or_zero() {
        let pods = entry("", "pods");
        let classes = vec![
            class("high", 1000, false, "PreemptLowerPriority"),
            class("nonpreempting", 500, false, "Never"),
        ];
        let mut p = pod(json!({"priorityClassName": "high"}));
        admit_pod(&classes, &pods, &mut p).unwrap();
        assert_eq!(p["spec"]["priority"], json!(1000));
        assert_eq!(p["spec"]["preemptionPolicy"], json!("PreemptLowerPriority"));

        let mut p = pod(json!({"priorityClassName": "nonpreempting"}));
        admit_pod(&classes, &pods, &mut p).unwrap();
        assert_eq!(p["spec"]["preemptionPolicy"], json!("Never"));

        // No class and no default: priority 0.
        let mut p = pod(json!({}));
        admit_pod(&classes, &pods, &mut p).unwrap();
        assert_eq!(p["spec"]["priority"], json!(0));
        assert_eq!(p["spec"]["preemptionPolicy"], json!("PreemptLowerPriority"));
        assert!(p["spec"].get("priorityClassName").is_none());

        // The global default (the lowest of several) names the pod's class.
        let mut with_default = classes.clone();
        with_default.push(class("default-a", 300, true, "PreemptLowerPriority"));
        with_default.push(class("default-b", 200, true, "Never"));
        let mut p = pod(json!({}));
        admit_pod(&with_default, &pods, &mut p).unwrap();
        assert_eq!(p["spec"]["priority"], json!(200));
        assert_eq!(p["spec"]["priorityClassName"], json!("default-b"));
        assert_eq!(p["spec"]["preemptionPolicy"], json!("Never"));
    }

    // Cases of upstream's defaulttolerationseconds/admission_test.go.
    #[test]
    fn default_toleration_seconds() {
        let plugin = DefaultTolerationSeconds::default();
        let tols = |p: &Value| p["spec"]["tolerations"].clone();
        let mut p = pod(json!({}));
        plugin.admit(&mut p);
        assert_eq!(
            tols(&p),
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ])
        );
        // One already tolerated (here by an empty effect): only the other is added.
        let mut p = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 700}]}),
        );
        plugin.admit(&mut p);
        assert_eq!(tols(&p).as_array().unwrap().len(), 2);
        assert_eq!(tols(&p)[0]["tolerationSeconds"], json!(700));
        assert_eq!(tols(&p)[1]["key"], json!("node.kubernetes.io/not-ready"));
        // A NoSchedule toleration of the same key does not count.
        let mut p = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        plugin.admit(&mut p);
        assert_eq!(tols(&p).as_array().unwrap().len(), 3);
        // Tolerating everything: untouched.
        let mut p = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        plugin.admit(&mut p);
        assert_eq!(tols(&p), json!([{"operator": "Exists"}]));
    }

    #[test]
    fn pod_priority_rejections() {
        let pods = entry("", "pods");
        let classes = vec![class("high", 1000, false, "PreemptLowerPriority")];
        let mut p = pod(json!({"priorityClassName": "foo"}));
        let e = admit_pod(&classes, &pods, &mut p).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods \"p\" is forbidden: no PriorityClass with name foo was found"
        );
        let mut p = pod(json!({"priorityClassName": "high", "priority": 5}));
        let e = admit_pod(&classes, &pods, &mut p).unwrap_err();
        assert_eq!(e.message, "pods \"p\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name");
        // The same value is accepted.
        let mut p = pod(json!({"priorityClassName": "high", "priority": 1000}));
        admit_pod(&classes, &pods, &mut p).unwrap();
        let mut p = pod(json!({"priorityClassName": "high", "preemptionPolicy": "Never"}));
        let e = admit_pod(&classes, &pods, &mut p).unwrap_err();
        assert_eq!(e.message, "pods \"p\" is forbidden: the string value of PreemptionPolicy (Never) must not be provided in pod spec; priority admission controller computed PreemptLowerPriority from the given PriorityClass name");
    }

    #[test]
    fn one_global_default() {
        let pcs = entry("scheduling.k8s.io", "priorityclasses");
        let classes = vec![class("d", 1, true, "PreemptLowerPriority")];
        let e = validate_class(&classes, &pcs, &class("e", 2, true, "Never"), false).unwrap_err();
        assert_eq!(e.message, "priorityclasses.scheduling.k8s.io \"e\" is forbidden: PriorityClass d is already marked as default. Only one default can exist");
        validate_class(&classes, &pcs, &class("d", 3, true, "Never"), true).unwrap();
        validate_class(&classes, &pcs, &class("e", 2, false, "Never"), false).unwrap();
    }

    #[test]
    fn service_account_volume_is_injected_unless_opted_out() {
        let mut p = pod(json!({"initContainers": [{"name": "i", "image": "x"}]}));
        inject_service_account(&mut p, |_, _| None);
        let spec = &p["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        let vol = &spec["volumes"][0];
        let name = vol["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            vol["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        for l in ["containers", "initContainers"] {
            let m = &spec[l][0]["volumeMounts"][0];
            assert_eq!(m["mountPath"], SERVICE_ACCOUNT_MOUNT_PATH);
            assert_eq!(m["readOnly"], true);
            assert_eq!(m["name"], name);
        }
        // The account opts out; the pod's own setting wins over the account's.
        let mut p = pod(json!({"serviceAccountName": "bot"}));
        inject_service_account(&mut p, |ns, sa| {
            (ns == "default" && sa == "bot").then(|| json!({"automountServiceAccountToken": false}))
        });
        assert!(p["spec"].get("volumes").is_none());
        let mut p = pod(json!({"automountServiceAccountToken": true}));
        inject_service_account(&mut p, |_, _| {
            Some(json!({"automountServiceAccountToken": false}))
        });
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        // Mirror pods are left alone.
        let mut p = pod(json!({}));
        p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
        inject_service_account(&mut p, |_, _| None);
        assert!(p["spec"].get("volumes").is_none());
    }

    #[test]
    fn the_accounts_image_pull_secrets_unless_the_pod_names_its_own() {
        let account = |_: &str, _: &str| {
            Some(json!({"imagePullSecrets": [{"name": "regcred"}, {"name": "other"}]}))
        };
        let mut p = pod(json!({}));
        inject_service_account(&mut p, account);
        assert_eq!(
            p["spec"]["imagePullSecrets"],
            json!([{"name": "regcred"}, {"name": "other"}])
        );
        let mut p = pod(json!({"imagePullSecrets": [{"name": "mine"}]}));
        inject_service_account(&mut p, account);
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
        // An empty list is no list (upstream checks the length).
        let mut p = pod(json!({"imagePullSecrets": []}));
        inject_service_account(&mut p, account);
        assert_eq!(p["spec"]["imagePullSecrets"].as_array().unwrap().len(), 2);
        let mut p = pod(json!({}));
        inject_service_account(&mut p, |_, _| None);
        assert!(p["spec"].get("imagePullSecrets").is_none());
    }
}
