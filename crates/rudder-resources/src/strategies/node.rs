//! Nodes (upstream `ValidateNode`/`ValidateNodeUpdate`, `SetDefaults_NodeStatus`, the v1
//! `podCIDR` ↔ `podCIDRs` conversion and the node strategy's selectable fields).

use std::collections::{BTreeMap, BTreeSet};

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::k8s_openapi::api::core::v1::Node;
use rudder_api::validation::{is_valid_label_value, validate_label_name};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Value};

use super::decode::round_trip;
use super::podspec::validate_taint_effect;
use super::quantity;
use super::util::*;

pub struct NodeStrategy;

fn spec_of(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

fn pod_cidrs(spec: &Value) -> Vec<String> {
    list_at(spec, "podCIDRs")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

impl Strategy for NodeStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        round_trip::<Node>(obj)
    }

    fn default(&self, obj: &mut Value) {
        // v1 conversion: podCIDRs wins; podCIDR mirrors its first entry.
        let spec = child_obj(obj, "spec");
        let cidr = str_at(spec, "podCIDR").to_string();
        if list_at(spec, "podCIDRs").is_empty() && !cidr.is_empty() {
            spec["podCIDRs"] = json!([cidr]);
        }
        if let Some(first) = list_at(spec, "podCIDRs").first().cloned() {
            spec["podCIDR"] = first;
        }
        // SetDefaults_NodeStatus: allocatable defaults to capacity.
        if let Some(status) = obj.get_mut("status").filter(|s| s.is_object()) {
            if !has(status, "allocatable") {
                if let Some(cap) = status.get("capacity").filter(|c| !c.is_null()).cloned() {
                    status["allocatable"] = cap;
                }
            }
        }
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        validate_taints(spec_of(obj), &mut errs);
        validate_resources(obj, &mut errs);
        validate_pod_cidrs(spec_of(obj), &mut errs);
        errs
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        let mut errs = ErrorList::new();
        validate_resources(new, &mut errs);
        let mut seen = BTreeSet::new();
        for (i, a) in new
            .get("status")
            .map(|s| list_at(s, "addresses"))
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let key = (
                str_at(a, "type").to_string(),
                str_at(a, "address").to_string(),
            );
            if !seen.insert(key) {
                errs.push(FieldError::duplicate(
                    &Path::new("status").child("addresses").index(i),
                    BadValue::Raw(format!(
                        "{{\"type\":{},\"address\":{}}}",
                        go_json(&json!(str_at(a, "type"))),
                        go_json(&json!(str_at(a, "address")))
                    )),
                ));
            }
        }
        let (n, o) = (spec_of(new), spec_of(old));
        let old_cidrs = pod_cidrs(o);
        if !old_cidrs.is_empty() && old_cidrs != pod_cidrs(n) {
            let count = if old_cidrs.len() != pod_cidrs(n).len() {
                1
            } else {
                old_cidrs
                    .iter()
                    .zip(pod_cidrs(n))
                    .filter(|(a, b)| **a != *b)
                    .count()
            };
            for _ in 0..count {
                errs.push(FieldError::forbidden(
                    &Path::new("spec").child("podCIDRs"),
                    "node updates may not change podCIDR except from \"\" to valid",
                ));
            }
        }
        let old_provider = str_at(o, "providerID");
        if !old_provider.is_empty() && old_provider != str_at(n, "providerID") {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("providerID"),
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
        validate_taints(n, &mut errs);
        if str_at(n, "externalID") != str_at(o, "externalID") {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("externalID"),
                "may not be updated",
            ));
        }
        errs
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        out.push((
            "spec.unschedulable".into(),
            bool_at(spec_of(obj), "unschedulable").to_string(),
        ));
    }
}

/// Upstream `validateNodeTaints`, with its path (`metadata.taints`, as upstream reports it).
fn validate_taints(spec: &Value, errs: &mut ErrorList) {
    let path = Path::new("metadata").child("taints");
    let mut unique: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (i, t) in list_at(spec, "taints").iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        let value = str_at(t, "value");
        let effect = str_at(t, "effect");
        errs.extend(validate_label_name(key, &p.child("key")));
        let msgs = is_valid_label_value(value);
        if !msgs.is_empty() {
            errs.push(FieldError::invalid(
                &p.child("value"),
                value,
                msgs.join(";"),
            ));
        }
        validate_taint_effect(effect, false, &p.child("effect"), errs);
        let keys = unique.entry(effect.to_string()).or_default();
        if keys.contains(key) {
            let mut e = FieldError::duplicate(&p, BadValue::Raw(go_json(t)));
            e.detail = "taints must be unique by key and effect pair".into();
            errs.push(e);
            continue;
        }
        keys.insert(key.to_string());
    }
}

/// Upstream `ValidateNodeResources`.
fn validate_resources(obj: &Value, errs: &mut ErrorList) {
    let Some(status) = obj.get("status") else {
        return;
    };
    for which in ["capacity", "allocatable"] {
        if let Some(m) = obj_at(status, which) {
            for (k, v) in m {
                let s = v.as_str().unwrap_or_default();
                if quantity::parse(s).is_ok_and(|q| q.is_negative()) {
                    errs.push(FieldError::invalid(
                        &Path::from_names(["status", which, k.as_str()]),
                        s,
                        rudder_api::validation::object_meta::IS_NEGATIVE_ERROR_MSG,
                    ));
                }
            }
        }
    }
}

fn validate_pod_cidrs(spec: &Value, errs: &mut ErrorList) {
    let cidrs = pod_cidrs(spec);
    if cidrs.is_empty() {
        return;
    }
    let path = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        validate_cidr(&path.index(i), c, errs);
    }
    if cidrs.len() > 1 {
        let v6: Vec<bool> = cidrs.iter().map(|c| c.contains(':')).collect();
        let dual = v6.iter().any(|b| *b) && v6.iter().any(|b| !*b);
        if !dual || cidrs.len() > 2 {
            errs.push(FieldError::invalid(
                &path,
                BadValue::Raw(go_json(&json!(cidrs))),
                "may specify no more than one CIDR for each IP family",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in cidrs.iter().enumerate() {
            if !seen.insert(c) {
                errs.push(FieldError::duplicate(&path.index(i), c.as_str()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn taints_cidrs_and_selectable_fields() {
        let s = NodeStrategy;
        let mut node = s
            .decode(
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
                "spec": {"podCIDR": "10.244.0.0/24", "unschedulable": true,
                    "taints": [{"key": "k", "effect": "Sometimes"}]}}),
            )
            .unwrap();
        s.default(&mut node);
        assert_eq!(node["spec"]["podCIDRs"], json!(["10.244.0.0/24"]));
        assert_eq!(
            messages(&s.validate(&cx(), &node)),
            vec!["metadata.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""]
        );
        let mut out = Vec::new();
        s.selectable_fields(&node, &mut out);
        assert_eq!(
            out,
            vec![("spec.unschedulable".to_string(), "true".to_string())]
        );
        let old = node.clone();
        node["spec"]["podCIDRs"] = json!(["10.244.1.0/24"]);
        node["spec"]["taints"] = json!([]);
        assert_eq!(
            messages(&s.validate_update(&cx(), &node, &old)),
            vec!["spec.podCIDRs: Forbidden: node updates may not change podCIDR except from \"\" to valid"]
        );
    }
}
