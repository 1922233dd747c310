//! HorizontalPodAutoscalers: one resource served as autoscaling/v2 (the stored form, as
//! upstream's storage version) and autoscaling/v1 (converted on every read and write).
//!
//! Upstream pieces this module follows:
//! - `pkg/apis/autoscaling/v1/defaults.go` and `v2/defaults.go`: `minReplicas` 1; in v2 a CPU
//!   utilization metric of 80% when there is none, and a `behavior` given with any rule filled
//!   from the default scale-up/scale-down rules;
//! - `pkg/apis/autoscaling/v1/conversion.go`: `targetCPUUtilizationPercentage` ⇄ a `Resource`
//!   metric on `cpu` with a `Utilization` target, every other metric, the current metrics, the
//!   conditions and the behavior kept in the `autoscaling.alpha.kubernetes.io/*` annotations of
//!   the v1 object (metrics and statuses as v1's `MetricSpec`/`MetricStatus` JSON, behavior as
//!   Go's encoding of the internal struct), the 80% CPU default when no metric is left;
//! - `pkg/apis/autoscaling/v2/conversion.go` and `helpers.go`: v2 objects never carry those
//!   annotations (`DropRoundTripHorizontalPodAutoscalerAnnotations`).

use rudder_api::k8s_openapi::api::autoscaling::{v1, v2};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Map, Value};

use super::decode::round_trip;
use super::util::*;

const METRIC_SPECS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const METRIC_STATUSES: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const ROUND_TRIP_ANNOTATIONS: [&str; 4] = [METRIC_SPECS, BEHAVIOR, METRIC_STATUSES, CONDITIONS];

/// Upstream `autoscaling.DefaultCPUUtilization`.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

pub struct HpaStrategy {
    /// Serving autoscaling/v1 (converted); otherwise autoscaling/v2 (stored).
    v1: bool,
}

impl HpaStrategy {
    pub const V1: HpaStrategy = HpaStrategy { v1: true };
    pub const V2: HpaStrategy = HpaStrategy { v1: false };
}

impl Strategy for HpaStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        if self.v1 {
            round_trip::<v1::HorizontalPodAutoscaler>(obj)
        } else {
            round_trip::<v2::HorizontalPodAutoscaler>(obj)
        }
    }

    fn to_internal(&self, mut obj: Value) -> Value {
        if !self.v1 {
            drop_round_trip_annotations(&mut obj);
        }
        obj
    }

    fn default(&self, obj: &mut Value) {
        if self.v1 {
            // v1's own defaulting; the CPU default needs the annotations, so conversion does it.
            default_field(child_obj(obj, "spec"), "minReplicas", json!(1));
        } else {
            default_v2(obj);
        }
    }

    /// Upstream's `PrepareForCreate`: the status starts empty (which v2 writes as
    /// `desiredReplicas: 0`).
    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        obj["status"] = if self.v1 {
            json!({})
        } else {
            json!({"desiredReplicas": 0})
        };
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn converts(&self) -> bool {
        self.v1
    }

    fn version_to_storage(&self, obj: Value) -> Result<Value, String> {
        let mut v2 = v1_to_v2(&obj);
        default_v2(&mut v2);
        round_trip::<v2::HorizontalPodAutoscaler>(v2)
    }

    fn storage_to_version(&self, obj: Value) -> Value {
        // The stored form was written through the v2 decoder, so a failing round trip can only
        // be a hand-edited store; show it converted but not normalised then.
        let converted = v2_to_v1(&obj);
        let mut out =
            round_trip::<v1::HorizontalPodAutoscaler>(converted.clone()).unwrap_or(converted);
        // v1's status counts have no omitempty: Go always writes them.
        let status = child_obj(&mut out, "status");
        default_field(status, "currentReplicas", json!(0));
        default_field(status, "desiredReplicas", json!(0));
        out
    }
}

fn drop_round_trip_annotations(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
        return;
    };
    if !ROUND_TRIP_ANNOTATIONS.iter().any(|k| ann.contains_key(*k)) {
        return;
    }
    for k in ROUND_TRIP_ANNOTATIONS {
        ann.remove(k);
    }
    // Go's `omitempty` drops the emptied map.
    if ann.is_empty() {
        meta.remove("annotations");
    }
}

/// Upstream v2 `SetDefaults_HorizontalPodAutoscaler`.
pub(crate) fn default_v2(obj: &mut Value) {
    // Not a default upstream, but Go always writes this non-omitempty count.
    default_field(child_obj(obj, "status"), "desiredReplicas", json!(0));
    let spec = child_obj(obj, "spec");
    default_field(spec, "minReplicas", json!(1));
    if list_at(spec, "metrics").is_empty() {
        spec["metrics"] = json!([cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]);
    }
    if has(spec, "behavior") {
        let behavior = child_obj(spec, "behavior");
        let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        // Scale-down leaves the window unset: the controller's flag decides it.
        let down = json!({"selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        for (key, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            let rules = child_obj(behavior, key);
            if let Some(d) = defaults.as_object() {
                for (k, v) in d {
                    default_field(rules, k, v.clone());
                }
            }
        }
    }
}

/// The spec and status fields both versions have, by the same names.
const SHARED_SPEC: &[&str] = &["scaleTargetRef", "minReplicas", "maxReplicas"];
const SHARED_STATUS: &[&str] = &[
    "observedGeneration",
    "lastScaleTime",
    "currentReplicas",
    "desiredReplicas",
];

fn copy_keys(from: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|k| from.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

fn cpu_utilization_metric(percent: i64) -> Value {
    json!({"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": percent}}})
}

fn is_cpu_resource(m: &Value) -> bool {
    str_at(m, "type") == "Resource"
        && m.get("resource")
            .is_some_and(|r| r.is_object() && str_at(r, "name") == "cpu")
}

// ---------------------------------------------------------------------------------------------
// v2 (stored) → v1

/// Upstream `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler` (via
/// the internal type, which has v2's shape).
pub(crate) fn v2_to_v1(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    drop_round_trip_annotations(&mut out);
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    let metrics = list_at(&spec, "metrics");

    let mut v1_spec = copy_keys(&spec, SHARED_SPEC);
    if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m)) {
        if let Some(u) = at(cpu, &["resource", "target", "averageUtilization"]) {
            v1_spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
        }
    }
    let mut v1_status = copy_keys(&status, SHARED_STATUS);
    let current = list_at(&status, "currentMetrics");
    // No `break`: the last CPU utilization wins, as upstream's loop.
    for m in current.iter().filter(|m| is_cpu_resource(m)) {
        if let Some(u) = at(m, &["resource", "current", "averageUtilization"]) {
            v1_status.insert("currentCPUUtilizationPercentage".into(), u.clone());
        }
    }
    out["spec"] = Value::Object(v1_spec);
    out["status"] = Value::Object(v1_status);

    let others: Vec<String> = metrics
        .iter()
        .filter(|m| {
            !(is_cpu_resource(m) && at(m, &["resource", "target", "averageUtilization"]).is_some())
        })
        .map(|m| metric_v1_json(m, Half::Spec))
        .collect();
    let mut set = Vec::new();
    if !others.is_empty() {
        set.push((METRIC_SPECS, format!("[{}]", others.join(","))));
    }
    if !current.is_empty() {
        let enc: Vec<String> = current
            .iter()
            .map(|m| metric_v1_json(m, Half::Status))
            .collect();
        set.push((METRIC_STATUSES, format!("[{}]", enc.join(","))));
    }
    let conditions = list_at(&status, "conditions");
    if !conditions.is_empty() {
        let enc: Vec<String> = conditions.iter().map(condition_json).collect();
        set.push((CONDITIONS, format!("[{}]", enc.join(","))));
    }
    if let Some(b) = spec.get("behavior").filter(|b| b.is_object()) {
        set.push((BEHAVIOR, behavior_internal_json(b)));
    }
    if !set.is_empty() {
        let ann = annotations_mut(&mut out);
        for (k, v) in set {
            ann[k] = json!(v);
        }
    }
    out
}

/// A Go struct's JSON: `fields` in declaration order, `None` for an omitted (omitempty) one.
fn go_struct(fields: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("\"{k}\":{v}")))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A present, non-null value's Go JSON.
fn opt(v: Option<&Value>) -> Option<String> {
    v.filter(|v| !v.is_null()).map(go_json)
}

/// A string field without omitempty (`""` when absent).
fn req_str(v: &Value, key: &str) -> Option<String> {
    Some(go_json(&json!(str_at(v, key))))
}

/// A non-pointer `resource.Quantity` (`"0"` when absent).
fn req_quantity(v: Option<&Value>) -> Option<String> {
    Some(opt(v).unwrap_or_else(|| "\"0\"".into()))
}

/// A `*metav1.LabelSelector` with omitempty.
fn selector(v: Option<&Value>) -> Option<String> {
    match v.filter(|v| !v.is_null()) {
        Some(s) => match selector_json(Some(s)) {
            rudder_api::field::BadValue::Raw(r) => Some(r),
            _ => None,
        },
        None => None,
    }
}

/// v1 `CrossVersionObjectReference`: kind, name, apiVersion (omitempty).
fn object_ref(v: Option<&Value>) -> String {
    let r = v.cloned().unwrap_or_else(|| json!({}));
    go_struct(&[
        ("kind", req_str(&r, "kind")),
        ("name", req_str(&r, "name")),
        (
            "apiVersion",
            Some(str_at(&r, "apiVersion"))
                .filter(|s| !s.is_empty())
                .map(|s| go_json(&json!(s))),
        ),
    ])
}

/// Which half of a metric a conversion handles: the spec's target or the status's current
/// value. v1 names the fields `target…`/`current…` and, in a few places, makes a status value a
/// non-pointer quantity (always written, `"0"` when unset) where the spec's is optional.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Half {
    Spec,
    Status,
}

impl Half {
    /// The v2 field holding the values, and the prefix of v1's field names.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Half::Spec => ("target", "target"),
            Half::Status => ("current", "current"),
        }
    }
}

/// One metric as v1's `MetricSpec` or `MetricStatus` JSON (the generated conversions plus
/// upstream's hand-written source conversions), in Go's field order.
fn metric_v1_json(m: &Value, half: Half) -> String {
    let (sub, word) = half.names();
    let status = half == Half::Status;
    let field = |key: &str| m.get(key).filter(|v| v.is_object());
    let val = |s: &Value, k: &str| at(s, &[sub, k]).cloned();
    // A quantity that is a non-pointer (always written) only in the status.
    let quantity = |v: Option<Value>, required: bool| {
        if required {
            req_quantity(v.as_ref())
        } else {
            opt(v.as_ref())
        }
    };
    let metric_name = |s: &Value| {
        let name = at(s, &["metric", "name"])
            .and_then(Value::as_str)
            .unwrap_or("");
        Some(go_json(&json!(name)))
    };
    let value_key = format!("{word}Value");
    let average_key = format!("{word}AverageValue");
    let utilization_key = format!("{word}AverageUtilization");
    let object = field("object").map(|s| {
        go_struct(&[
            ("target", Some(object_ref(s.get("describedObject")))),
            ("metricName", metric_name(s)),
            (&value_key, req_quantity(val(s, "value").as_ref())),
            ("selector", selector(at(s, &["metric", "selector"]))),
            ("averageValue", opt(val(s, "averageValue").as_ref())),
        ])
    });
    let pods = field("pods").map(|s| {
        go_struct(&[
            ("metricName", metric_name(s)),
            (&average_key, req_quantity(val(s, "averageValue").as_ref())),
            ("selector", selector(at(s, &["metric", "selector"]))),
        ])
    });
    let resource = |s: &Value, container: bool| {
        let mut fields = vec![
            ("name", req_str(s, "name")),
            (&utilization_key, opt(val(s, "averageUtilization").as_ref())),
            (&average_key, quantity(val(s, "averageValue"), status)),
        ];
        if container {
            fields.push(("container", req_str(s, "container")));
        }
        go_struct(&fields)
    };
    let external = field("external").map(|s| {
        go_struct(&[
            ("metricName", metric_name(s)),
            ("metricSelector", selector(at(s, &["metric", "selector"]))),
            (&value_key, quantity(val(s, "value"), status)),
            (&average_key, opt(val(s, "averageValue").as_ref())),
        ])
    });
    go_struct(&[
        ("type", req_str(m, "type")),
        ("object", object),
        ("pods", pods),
        ("resource", field("resource").map(|s| resource(s, false))),
        (
            "containerResource",
            field("containerResource").map(|s| resource(s, true)),
        ),
        ("external", external),
    ])
}

/// v1 `HorizontalPodAutoscalerCondition` JSON (a zero `metav1.Time` is `null`).
fn condition_json(c: &Value) -> String {
    let nonempty = |k: &str| {
        Some(str_at(c, k))
            .filter(|s| !s.is_empty())
            .map(|s| go_json(&json!(s)))
    };
    go_struct(&[
        ("type", req_str(c, "type")),
        ("status", req_str(c, "status")),
        (
            "lastTransitionTime",
            Some(opt(c.get("lastTransitionTime")).unwrap_or_else(|| "null".into())),
        ),
        ("reason", nonempty("reason")),
        ("message", nonempty("message")),
    ])
}

/// Go's `json.Marshal` of the internal `HorizontalPodAutoscalerBehavior` (no JSON tags: Go
/// field names, nil pointers as `null`), which is what upstream writes into the annotation.
fn behavior_internal_json(b: &Value) -> String {
    let rules = |r: Option<&Value>| -> String {
        let Some(r) = r.filter(|r| r.is_object()) else {
            return "null".into();
        };
        let policies = match r.get("policies").and_then(Value::as_array) {
            Some(ps) => {
                let enc: Vec<String> = ps
                    .iter()
                    .map(|p| {
                        go_struct(&[
                            ("Type", req_str(p, "type")),
                            ("Value", Some(int_at(p, "value").unwrap_or(0).to_string())),
                            (
                                "PeriodSeconds",
                                Some(int_at(p, "periodSeconds").unwrap_or(0).to_string()),
                            ),
                        ])
                    })
                    .collect();
                format!("[{}]", enc.join(","))
            }
            None => "null".into(),
        };
        let nullable = |k: &str| Some(opt(r.get(k)).unwrap_or_else(|| "null".into()));
        go_struct(&[
            (
                "StabilizationWindowSeconds",
                nullable("stabilizationWindowSeconds"),
            ),
            ("SelectPolicy", nullable("selectPolicy")),
            ("Policies", Some(policies)),
            ("Tolerance", nullable("tolerance")),
        ])
    };
    go_struct(&[
        ("ScaleUp", Some(rules(b.get("scaleUp")))),
        ("ScaleDown", Some(rules(b.get("scaleDown")))),
    ])
}

// ---------------------------------------------------------------------------------------------
// v1 → v2 (stored)

/// Upstream `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`.
/// Malformed annotations are ignored, as upstream's newer conversion does.
pub(crate) fn v1_to_v2(obj: &Value) -> Value {
    let mut out = obj.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let status = obj.get("status").cloned().unwrap_or_else(|| json!({}));
    let annotation = |k: &str| -> Option<Value> {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str(s).ok())
    };

    let mut v2_spec = copy_keys(&spec, SHARED_SPEC);
    let mut metrics: Vec<Value> = Vec::new();
    if let Some(others) = annotation(METRIC_SPECS).and_then(|v| v.as_array().cloned()) {
        metrics.extend(others.iter().map(|m| metric_from_v1(m, Half::Spec)));
    }
    if let Some(cpu) = int_at(&spec, "targetCPUUtilizationPercentage") {
        metrics.push(cpu_utilization_metric(cpu));
    }
    if metrics.is_empty() {
        metrics.push(cpu_utilization_metric(DEFAULT_CPU_UTILIZATION));
    }
    v2_spec.insert("metrics".into(), Value::Array(metrics));
    if let Some(b) = annotation(BEHAVIOR).and_then(|b| behavior_from_internal(&b)) {
        v2_spec.insert("behavior".into(), b);
    }

    let mut v2_status = copy_keys(&status, SHARED_STATUS);
    if let Some(cpu) = int_at(&status, "currentCPUUtilizationPercentage") {
        v2_status.insert(
            "currentMetrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": cpu}}}]),
        );
    }
    // The annotation has more than the CPU percentage: it replaces it.
    if let Some(current) = annotation(METRIC_STATUSES).and_then(|v| v.as_array().cloned()) {
        v2_status.insert(
            "currentMetrics".into(),
            Value::Array(
                current
                    .iter()
                    .map(|m| metric_from_v1(m, Half::Status))
                    .collect(),
            ),
        );
    }
    if let Some(conds) = annotation(CONDITIONS).filter(Value::is_array) {
        v2_status.insert("conditions".into(), conds);
    }
    out["spec"] = Value::Object(v2_spec);
    out["status"] = Value::Object(v2_status);
    drop_round_trip_annotations(&mut out);
    out
}

fn metric_id(name: Option<&Value>, selector: Option<&Value>) -> Value {
    let mut m = json!({"name": name.cloned().unwrap_or_else(|| json!(""))});
    if let Some(s) = selector.filter(|s| !s.is_null()) {
        m["selector"] = s.clone();
    }
    m
}

/// A target or current value with only the fields that are set.
fn values(pairs: &[(&str, Option<&Value>)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .filter_map(|(k, v)| {
                v.filter(|v| !v.is_null())
                    .map(|v| (k.to_string(), v.clone()))
            })
            .collect(),
    )
}

/// v1 `MetricSpec` or `MetricStatus` (from the annotations) → v2. A spec's target gets the
/// type upstream infers from which values are set.
fn metric_from_v1(m: &Value, half: Half) -> Value {
    let (sub, word) = half.names();
    let status = half == Half::Status;
    let zero = json!("0");
    let field = |key: &str| m.get(key).filter(|v| v.is_object());
    // v1's value `key`; a non-pointer quantity reads as "0" when absent.
    let get = |s: &Value, key: &str, required: bool| -> Option<Value> {
        s.get(key)
            .filter(|v| !v.is_null())
            .or(required.then_some(&zero))
            .cloned()
    };
    let typed = |pairs: Vec<(&str, Option<Value>)>, ty: &str| -> Value {
        let mut v = Value::Object(
            pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                .collect(),
        );
        if !status {
            v["type"] = json!(ty);
        }
        v
    };
    let value_key = format!("{word}Value");
    let average_key = format!("{word}AverageValue");
    let utilization_key = format!("{word}AverageUtilization");
    let mut out = json!({"type": str_at(m, "type")});
    if let Some(s) = field("object") {
        let ty = if has(s, "averageValue") {
            "AverageValue"
        } else {
            "Value"
        };
        out["object"] = json!({
            "describedObject": s.get("target").cloned().unwrap_or_else(|| json!({})),
            "metric": metric_id(s.get("metricName"), s.get("selector")),
            sub: typed(vec![
                ("value", get(s, &value_key, true)),
                ("averageValue", get(s, "averageValue", false)),
            ], ty),
        });
    }
    if let Some(s) = field("pods") {
        out["pods"] = json!({
            "metric": metric_id(s.get("metricName"), s.get("selector")),
            sub: typed(vec![("averageValue", get(s, &average_key, true))], "AverageValue"),
        });
    }
    for key in ["resource", "containerResource"] {
        if let Some(s) = field(key) {
            let ty = if has(s, &utilization_key) {
                "Utilization"
            } else {
                "AverageValue"
            };
            let mut r = json!({
                "name": str_at(s, "name"),
                sub: typed(vec![
                    ("averageUtilization", get(s, &utilization_key, false)),
                    ("averageValue", get(s, &average_key, status)),
                ], ty),
            });
            if key == "containerResource" {
                r["container"] = json!(str_at(s, "container"));
            }
            out[key] = r;
        }
    }
    if let Some(s) = field("external") {
        let ty = if has(s, &value_key) {
            "Value"
        } else {
            "AverageValue"
        };
        out["external"] = json!({
            "metric": metric_id(s.get("metricName"), s.get("metricSelector")),
            sub: typed(vec![
                ("value", get(s, &value_key, status)),
                ("averageValue", get(s, &average_key, false)),
            ], ty),
        });
    }
    out
}

/// The behavior annotation (internal Go field names) → v2's `behavior`; `None` when it is
/// malformed or empty, which upstream ignores.
fn behavior_from_internal(b: &Value) -> Option<Value> {
    let b = b.as_object()?;
    let rules = |r: Option<&Value>| -> Option<Value> {
        let r = r.filter(|r| r.is_object())?;
        let policies = r.get("Policies").and_then(Value::as_array).map(|ps| {
            ps.iter()
                .map(|p| {
                    json!({"type": str_at(p, "Type"), "value": int_at(p, "Value").unwrap_or(0),
                        "periodSeconds": int_at(p, "PeriodSeconds").unwrap_or(0)})
                })
                .collect::<Vec<_>>()
        });
        Some(values(&[
            (
                "stabilizationWindowSeconds",
                r.get("StabilizationWindowSeconds"),
            ),
            ("selectPolicy", r.get("SelectPolicy")),
            ("policies", policies.map(Value::Array).as_ref()),
            ("tolerance", r.get("Tolerance")),
        ]))
    };
    let up = rules(b.get("ScaleUp"));
    let down = rules(b.get("ScaleDown"));
    if up.is_none() && down.is_none() {
        return None;
    }
    let mut out = Map::new();
    if let Some(u) = up {
        out.insert("scaleUp".into(), u);
    }
    if let Some(d) = down {
        out.insert("scaleDown".into(), d);
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_hpa() -> Value {
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}})
    }

    #[test]
    fn v1_defaults_and_converts_to_the_stored_v2() {
        let s = HpaStrategy::V1;
        let mut obj = s.to_internal(s.decode(v1_hpa()).unwrap());
        s.default(&mut obj);
        assert_eq!(obj["spec"]["minReplicas"], 1);
        let stored = s.version_to_storage(obj).unwrap();
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"],
            json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [cpu_utilization_metric(60)]})
        );
        let back = s.storage_to_version(stored);
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 60);
        assert!(back["metadata"].get("annotations").is_none(), "{back}");
        assert_eq!(
            back["status"],
            json!({"currentReplicas": 0, "desiredReplicas": 0})
        );
    }

    #[test]
    fn v1_without_target_gets_the_80_percent_default() {
        let mut v1 = v1_hpa();
        v1["spec"]
            .as_object_mut()
            .unwrap()
            .remove("targetCPUUtilizationPercentage");
        let stored = HpaStrategy::V1.version_to_storage(v1).unwrap();
        assert_eq!(
            stored["spec"]["metrics"],
            json!([cpu_utilization_metric(80)])
        );
    }

    #[test]
    fn v2_defaults_behavior_rules() {
        let s = HpaStrategy::V2;
        let mut obj = s
            .decode(
                json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
            )
            .unwrap();
        s.default(&mut obj);
        assert_eq!(obj["spec"]["minReplicas"], 1);
        assert_eq!(obj["spec"]["metrics"], json!([cpu_utilization_metric(80)]));
        assert_eq!(
            obj["spec"]["behavior"],
            json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]}})
        );
    }

    #[test]
    fn other_metrics_status_and_behavior_round_trip_through_v1_annotations() {
        let mut stored = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"keep": "me"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    cpu_utilization_metric(50),
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "target": {"type": "AverageValue", "averageValue": "10"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 30}}},
            "status": {"currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 70, "averageValue": "350m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "ReadyForNewScale"}]}});
        default_v2(&mut stored);
        let v1 = HpaStrategy::V1.storage_to_version(stored.clone());
        let ann = &v1["metadata"]["annotations"];
        assert_eq!(ann["keep"], "me");
        assert_eq!(
            ann[METRIC_SPECS],
            r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}},{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"10"}}]"#
        );
        assert_eq!(
            ann[METRIC_STATUSES],
            r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":70,"currentAverageValue":"350m"}}]"#
        );
        assert_eq!(
            ann[CONDITIONS],
            r#"[{"type":"AbleToScale","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z","reason":"ReadyForNewScale"}]"#
        );
        assert_eq!(
            ann[BEHAVIOR],
            r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15},{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null},"ScaleDown":{"StabilizationWindowSeconds":30,"SelectPolicy":"Max","Policies":[{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null}}"#
        );
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 70);

        // Back: the CPU metric goes after the others (upstream's order), nothing else is lost.
        let again = HpaStrategy::V1.version_to_storage(v1).unwrap();
        let m = again["spec"]["metrics"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0], stored["spec"]["metrics"][0]);
        assert_eq!(m[1], stored["spec"]["metrics"][2]);
        assert_eq!(m[2], stored["spec"]["metrics"][1]);
        assert_eq!(again["spec"]["behavior"], stored["spec"]["behavior"]);
        assert_eq!(again["status"], stored["status"]);
        assert_eq!(again["metadata"]["annotations"], json!({"keep": "me"}));
    }

    #[test]
    fn v2_bodies_drop_round_trip_annotations() {
        let s = HpaStrategy::V2;
        let obj = s.to_internal(
            s.decode(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "web", "annotations": {METRIC_SPECS: "[]"}},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}}))
                .unwrap(),
        );
        assert!(obj["metadata"].get("annotations").is_none(), "{obj}");
    }
}
