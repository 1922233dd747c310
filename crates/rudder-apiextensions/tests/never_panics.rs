//! Fuzz-style property test: a CRD's schema comes from a client, and so do the objects checked
//! against it. Any schema must parse to a structural schema or field errors, and pruning,
//! defaulting and validation (with and without an old object) must never panic.

use proptest::prelude::*;
use rudder_apiextensions::Structural;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "type",
    "format",
    "nullable",
    "default",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "pattern",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
    "rule",
    "message",
    "messageExpression",
    "fieldPath",
    "optionalOldSelf",
    "metadata",
    "spec",
    "status",
    "apiVersion",
    "kind",
    "name",
    "a",
    "$ref",
];

const STRINGS: &[&str] = &[
    "object",
    "array",
    "string",
    "integer",
    "number",
    "boolean",
    "null",
    "int32",
    "int64",
    "date-time",
    "ipv4",
    "cidr",
    "byte",
    "uuid",
    "map",
    "set",
    "atomic",
    "^[a-z]+$",
    "(",
    "a",
    "self.a > 1",
    "self == oldSelf",
    "size(self) < 3",
    "self.a ==",
    "",
    "v1",
    "Pod",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-1i64),
            Just(0i64),
            -5i64..20
        ]
        .prop_map(|i| json!(i)),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(1e300), Just(2.0)].prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_schema_and_object_is_handled(schema in value(), obj in value(), old in value()) {
        // A schema that parses is also exercised whole: most random ones do not.
        let schema = match schema {
            Value::Object(mut m) => {
                m.insert("type".into(), json!("object"));
                Value::Object(m)
            }
            other => other,
        };
        if let Ok(s) = Structural::from_schema(&schema) {
            let mut o = obj.clone();
            s.prune(&mut o);
            s.default(&mut o);
            let _ = s.validate(&o, None);
            let _ = s.validate(&o, Some(&old));
            let _ = s.validate_status(&o, Some(&old));
        }
    }
}

/// Schemas built from the structural grammar, so that most of them parse and the object
/// walks go deep.
fn node() -> impl Strategy<Value = Value> {
    let scalar = (
        prop::sample::select(&["string", "integer", "number", "boolean"][..]),
        prop::option::of(leaf()),
        prop::option::of(prop::sample::select(
            &["^[a-z]+$", "date-time", "int32"][..],
        )),
        prop::option::of(-3i64..5),
        any::<bool>(),
        prop::option::of(prop::sample::select(
            &["self > 1", "size(self) < 3", "self == oldSelf", "self.a"][..],
        )),
    )
        .prop_map(|(t, default, extra, bound, nullable, rule)| {
            let mut m = json!({"type": t, "nullable": nullable});
            if let Some(d) = default {
                m["default"] = d;
            }
            match extra {
                Some(p) if p.starts_with('^') => m["pattern"] = json!(p),
                Some(f) => m["format"] = json!(f),
                None => {}
            }
            if let Some(b) = bound {
                m["minimum"] = json!(b);
                m["maxLength"] = json!(b);
                m["enum"] = json!([b, "a"]);
            }
            if let Some(r) = rule {
                m["x-kubernetes-validations"] = json!([{"rule": r, "optionalOldSelf": nullable}]);
            }
            m
        });
    scalar.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (
                prop::collection::btree_map(prop::sample::select(&["a", "b", "spec"][..]), inner.clone(), 0..3),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(props, preserve, embedded)| {
                    let mut m = json!({"type": "object", "properties": props,
                        "x-kubernetes-preserve-unknown-fields": preserve.then_some(true),
                        "x-kubernetes-embedded-resource": embedded.then_some(true)});
                    m["required"] = json!(["a"]);
                    m
                }),
            (inner.clone(), any::<bool>()).prop_map(|(items, map)| {
                if map {
                    json!({"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}, "b": items}},
                           "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"], "maxItems": 3})
                } else {
                    json!({"type": "array", "items": items, "x-kubernetes-list-type": "set"})
                }
            }),
            inner.clone().prop_map(|v| json!({"type": "object", "additionalProperties": v})),
            Just(json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]})),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn structural_schemas_handle_any_object(spec in node(), obj in value(), old in value()) {
        let schema = json!({"type": "object", "properties": {"spec": spec, "status": spec}});
        if let Ok(s) = Structural::from_schema(&schema) {
            for (o, old) in [(json!({"spec": obj.clone(), "status": old.clone()}), json!({"spec": old})), (obj, Value::Null)] {
                let mut o = o;
                s.prune(&mut o);
                s.default(&mut o);
                let _ = s.validate(&o, None);
                let _ = s.validate(&o, Some(&old));
                let _ = s.validate_status(&o, Some(&old));
            }
        }
    }
}
