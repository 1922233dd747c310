//! Fuzz-style property tests for what clients send: patch bodies (strategic merge with its
//! `$patch`/`$retainKeys`/`$setElementOrder`/`$deleteFromPrimitiveList` directives, JSON merge
//! patch), quantities and `LabelSelector`s. Any input must give a result or an error, never a
//! panic. The generators aim at the keys and shapes the engines branch on, so random documents
//! reach the directive handling rather than bouncing off the first type check.

use proptest::prelude::*;
use rudder_api::patch::{
    create_two_way_merge_patch, merge_patch, strategic_merge, SchemaTable, TypeSchema,
};
use rudder_api::quantity;
use rudder_api::selector::Selector;
use serde_json::{Map, Value};

fn schema(api_version: &str, kind: &str) -> TypeSchema<'static> {
    SchemaTable::builtin()
        .expect("builtin schema parses")
        .kind(api_version, kind)
        .expect("built-in kind")
}

/// Keys a Pod or Deployment patch branches on, directives included.
const KEYS: &[&str] = &[
    "metadata",
    "labels",
    "finalizers",
    "spec",
    "containers",
    "initContainers",
    "name",
    "image",
    "env",
    "value",
    "ports",
    "containerPort",
    "protocol",
    "volumes",
    "tolerations",
    "strategy",
    "rollingUpdate",
    "type",
    "template",
    "selector",
    "matchLabels",
    "replicas",
    "args",
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$setElementOrder/env",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/args",
    "$setElementOrder/ports",
    "emptyDir",
    "configMap",
];

const STRINGS: &[&str] = &["replace", "merge", "delete", "c", "a", "TCP", "", "$patch"];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        prop::sample::select(KEYS).prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn strategic_merge_never_panics(original in object(), patch in object()) {
        for (api_version, kind) in [("v1", "Pod"), ("apps/v1", "Deployment")] {
            let _ = strategic_merge(&original, &patch, schema(api_version, kind));
        }
    }

    #[test]
    fn two_way_diff_never_panics(original in object(), modified in object()) {
        let _ = create_two_way_merge_patch(&original, &modified, schema("v1", "Pod"));
    }

    #[test]
    fn json_merge_patch_never_panics(original in json_value(), patch in json_value()) {
        let _ = merge_patch(&original, &patch);
    }

    #[test]
    fn quantity_parser_never_panics(s in "[-+0-9.eEinumkKMGTP ]{0,24}|[ -~]{0,24}") {
        let _ = quantity::parse(&s);
        let _ = quantity::Amount::parse(&s);
    }

    #[test]
    fn label_selector_objects_never_panic(v in json_value()) {
        let as_selector = serde_json::json!({"matchLabels": v.clone(), "matchExpressions": [
            {"key": "app", "operator": "In", "values": [v.clone()]},
            {"key": v.clone(), "operator": v, "values": []},
        ]});
        if let Ok(sel) = serde_json::from_value(as_selector) {
            let _ = Selector::from_label_selector(Some(&sel));
        }
    }
}
