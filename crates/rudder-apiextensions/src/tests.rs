use serde_json::json;

use super::*;

fn msgs(errs: &ErrorList) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn widget_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["color"],
                "properties": {
                    "color": {"type": "string", "enum": ["red", "blue"]},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "small": {"type": "integer", "format": "int32"},
                    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5, "minLength": 2},
                    "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1.5},
                    "port": {"x-kubernetes-int-or-string": true},
                    "when": {"type": "string", "format": "date-time"},
                    "ip": {"type": "string", "format": "ipv4"},
                    "tags": {"type": "array", "maxItems": 2, "minItems": 1, "items": {"type": "string"},
                             "x-kubernetes-list-type": "set"},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"],
                              "items": {"type": "object", "required": ["name"], "properties": {
                                  "name": {"type": "string"},
                                  "port": {"type": "integer", "default": 80}}}},
                    "labels": {"type": "object", "maxProperties": 1,
                               "additionalProperties": {"type": "string", "default": "x"}},
                    "note": {"type": "string", "nullable": true},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                             "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                 "x-kubernetes-preserve-unknown-fields": true},
                },
            },
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
        },
    })
}

fn widget() -> Structural {
    Structural::from_schema(&widget_schema()).expect("structural")
}

fn validate(obj: Value) -> Vec<String> {
    msgs(&widget().validate(&obj, None))
}

fn obj(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": spec})
}

#[test]
fn a_valid_object_has_no_errors() {
    let errs = validate(obj(json!({
        "color": "red", "replicas": 3, "name": "abc", "ratio": 1.2, "port": "http",
        "when": "2026-12-04T10:00:00Z", "ip": "10.0.0.1", "tags": ["a", "b"],
        "ports": [{"name": "a"}, {"name": "b"}], "labels": {"a": "b"}, "note": null,
        "free": {"anything": [1, 2]}, "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}},
    })));
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn value_validation_messages_are_upstreams() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"color": "red", "replicas": "three"}),
         r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        (json!({"color": "green"}),
         r#"spec.color: Unsupported value: "green": supported values: "red", "blue""#),
        (json!({}), "spec.color: Required value"),
        (json!({"color": "red", "replicas": 11}),
         "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
        (json!({"color": "red", "replicas": 0}),
         "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"),
        (json!({"color": "red", "replicas": 2.5}),
         r#"spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number""#),
        (json!({"color": "red", "replicas": 2.5}),
         r#"<nil>: Invalid value: "": Checked value must be of type integer (default format) in spec.replicas"#),
        (json!({"color": "red", "small": 3_000_000_000i64}),
         r#"<nil>: Invalid value: "": Checked value must be of type integer with format int32 in spec.small"#),
        (json!({"color": "red", "name": "ABC"}),
         r#"spec.name: Invalid value: "ABC": spec.name in body should match '^[a-z]+$'"#),
        (json!({"color": "red", "name": "abcdefg"}),
         "spec.name: Too long: may not be more than 5 bytes"),
        (json!({"color": "red", "name": "a"}),
         r#"spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long"#),
        (json!({"color": "red", "ratio": 1.5}),
         "spec.ratio: Invalid value: 1.5: spec.ratio in body should be less than 1.5"),
        (json!({"color": "red", "port": true}),
         r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#),
        (json!({"color": "red", "when": "yesterday"}),
         r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#),
        (json!({"color": "red", "ip": "10.0.0"}),
         r#"spec.ip: Invalid value: "10.0.0": spec.ip in body must be of type ipv4: "10.0.0""#),
        (json!({"color": "red", "tags": ["a", "b", "c"]}),
         "spec.tags: Too many: 3: must have at most 2 items"),
        (json!({"color": "red", "tags": []}),
         "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"),
        (json!({"color": "red", "tags": ["a", "a"]}), r#"spec.tags[1]: Duplicate value: "a""#),
        (json!({"color": "red", "ports": [{"name": "a"}, {"name": "a"}]}),
         r#"spec.ports[1]: Duplicate value: {"name":"a"}"#),
        (json!({"color": "red", "ports": [{"port": 1}]}), "spec.ports[0].name: Required value"),
        (json!({"color": "red", "labels": {"a": "b", "c": "d"}}),
         "spec.labels: Too many: 2: must have at most 1 item"),
        (json!({"color": "red", "labels": {"a": 1}}),
         r#"spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer""#),
        (json!({"color": null}),
         r#"spec.color: Invalid value: "null": spec.color in body must be of type string: "null""#),
        (json!({"color": "red", "free": {"known": {"a": 1}}}),
         r#"spec.free.known.a: Invalid value: "integer": spec.free.known.a in body must be of type string: "integer""#),
        (json!({"color": "red", "template": {"kind": "Pod"}}),
         "spec.template.apiVersion: Required value: must not be empty"),
    ];
    for (spec, want) in cases {
        let got = validate(obj(spec.clone()));
        assert!(
            got.iter().any(|g| g == want),
            "{spec}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn a_wrong_type_at_the_root_of_spec() {
    assert_eq!(
        validate(obj(json!("x"))),
        vec![r#"spec: Invalid value: "string": spec in body must be of type object: "string""#]
    );
}

#[test]
fn embedded_metadata_is_validated() {
    let got = validate(obj(json!({"color": "red", "template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a/b"}}})));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("spec.template.metadata.name: Invalid value: \"a/b\""),
        "{got:?}"
    );
}

#[test]
fn unchanged_fields_are_not_revalidated_on_update() {
    let s = widget();
    let old = obj(json!({"color": "green", "replicas": 3}));
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(4);
    assert!(s.validate(&new, Some(&old)).is_empty());
    new["spec"]["replicas"] = json!(40);
    assert_eq!(
        msgs(&s.validate(&new, Some(&old))),
        vec!["spec.replicas: Invalid value: 40: spec.replicas in body should be less than or equal to 10"]
    );
}

#[test]
fn status_writes_validate_status_only() {
    let s = widget();
    let o = json!({"spec": {"color": "green"}, "status": {"ready": "yes"}});
    assert_eq!(
        msgs(&s.validate_status(&o, None)),
        vec![
            r#"status.ready: Invalid value: "string": status.ready in body must be of type boolean: "string""#
        ]
    );
}

#[test]
fn unknown_fields_are_pruned() {
    let s = widget();
    let mut o = obj(
        json!({"color": "red", "bogus": 1, "ports": [{"name": "a", "x": 1}],
        "free": {"kept": 1, "known": {"a": "b", "gone": 2}},
        "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {}}}),
    );
    o["metadata"]["unknownMeta"] = json!(1);
    o["extra"] = json!(true);
    let removed = s.prune(&mut o);
    assert_eq!(
        removed,
        vec![
            "extra",
            "metadata.unknownMeta",
            "spec.bogus",
            "spec.free.known.gone",
            "spec.ports[0].x",
            "spec.template.metadata.junk",
        ]
    );
    assert_eq!(o["spec"]["free"]["kept"], json!(1));
    assert_eq!(o["spec"]["template"]["spec"], json!({}));
    assert_eq!(o["apiVersion"], json!("example.com/v1"));
}

#[test]
fn defaults_are_applied_in_items_and_map_values() {
    let s = widget();
    let mut o = obj(
        json!({"color": "red", "ports": [{"name": "a"}, {"name": "b", "port": 8080}],
        "labels": {"a": null}, "name": null}),
    );
    s.default(&mut o);
    assert_eq!(o["spec"]["replicas"], json!(1));
    assert_eq!(
        o["spec"]["ports"],
        json!([{"name": "a", "port": 80}, {"name": "b", "port": 8080}])
    );
    assert_eq!(o["spec"]["labels"]["a"], json!("x"));
    // A null without default or nullable is dropped.
    assert!(o["spec"].get("name").is_none());
    assert!(s.has_defaults());
}

#[test]
fn a_missing_parent_is_not_created_by_nested_defaults() {
    let s = widget();
    let mut o =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}});
    s.default(&mut o);
    assert!(o.get("spec").is_none());
}

fn schema_errs(schema: Value) -> Vec<String> {
    let at = Path::new("spec")
        .child("versions")
        .index(0)
        .child("schema")
        .child("openAPIV3Schema");
    match Structural::from_schema_at(&schema, &at) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn non_structural_schemas_are_refused_with_upstreams_messages() {
    let p = "spec.versions[0].schema.openAPIV3Schema";
    let cases: Vec<(Value, String)> = vec![
        (json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
         format!("{p}.properties[spec].type: Required value: must not be empty for specified object fields")),
        (json!({"type": "object", "properties": {"l": {"type": "array"}}}),
         format!("{p}.properties[l].items: Required value: must be specified")),
        (json!({"type": "object", "properties": {"l": {"type": "array", "items": {}}}}),
         format!("{p}.properties[l].items.type: Required value: must not be empty for specified array items")),
        (json!({"type": "string"}), format!("{p}.type: Invalid value: \"string\": must be object at the root")),
        (json!({"properties": {}}), format!("{p}.type: Required value: must not be empty at the root")),
        (json!({"type": "object", "properties": {"a": {"type": "string",
            "anyOf": [{"type": "string"}]}}}),
         format!("{p}.properties[a].anyOf[0].type: Forbidden: must be empty to be structural")),
        (json!({"type": "object", "properties": {"metadata": {"type": "object",
            "properties": {"labels": {"type": "object"}}}}}),
         format!("{p}.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified")),
        (json!({"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": true}}}),
         format!("{p}.properties[a].type: Invalid value: \"string\": must be empty if x-kubernetes-int-or-string is true")),
        (json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}}),
         format!("{p}.properties[a].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: ")),
        (json!({"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}}),
         format!("{p}.properties[a].default: Invalid value: \"string\":  in body must be of type integer: \"string\"")),
        (json!({"type": "object", "properties": {"a": {"type": "object", "default": {"b": 1},
            "properties": {"c": {"type": "string"}}}}}),
         format!("{p}.properties[a].default: Invalid value: {{\"b\":1}}: must not have unknown fields")),
        (json!({"type": "object", "properties": {"a": {"type": "object", "additionalProperties": {"type": "string"},
            "properties": {"b": {"type": "string"}}}}}),
         format!("{p}.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive")),
        (json!({"type": "object", "properties": {"a": {"type": "object"}},
            "anyOf": [{"properties": {"a": {"properties": {"b": {"minLength": 1}}}}}]}),
         format!("{p}.properties[a].properties[b]: Required value: because it is defined in {p}.anyOf[0].properties[a].properties[b]")),
        (json!({"type": "object", "properties": {"a": {"type": "null"}}}),
         format!("{p}.properties[a].type: Forbidden: type cannot be set to null")),
        (json!({"type": "object", "properties": {"a": {"type": "object", "x-kubernetes-embedded-resource": true}}}),
         format!("{p}.properties[a].properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields")),
        (json!({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
            "items": {"type": "object"}}}}),
         format!("{p}.properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map")),
        (json!({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}}}),
         format!("{p}.properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic")),
    ];
    for (schema, want) in cases {
        let got = schema_errs(schema.clone());
        assert!(
            got.iter().any(|g| g.starts_with(&want)),
            "{schema}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn the_int_or_string_any_of_pattern_is_structural() {
    let errs = schema_errs(json!({"type": "object", "properties": {"port": {
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]}}}));
    assert!(errs.is_empty(), "{errs:?}");
    let s = Structural::from_schema(&json!({"type": "object", "properties": {"port": {
        "x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}}}))
    .unwrap();
    assert!(s.validate(&json!({"port": 8080}), None).is_empty());
    assert!(s.validate(&json!({"port": "http"}), None).is_empty());
    let got = msgs(&s.validate(&json!({"port": 1.5}), None));
    assert!(
        got.contains(
            &r#"<nil>: Invalid value: "": "port" must validate at least one schema (anyOf)"#
                .to_string()
        ),
        "{got:?}"
    );
}

#[test]
fn go_float_formatting() {
    use crate::validate::go_float;
    assert_eq!(go_float(10.0), "10");
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(1_000_000.0), "1e+06");
    assert_eq!(go_float(123_456.0), "123456");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(0.0001), "0.0001");
}

#[test]
fn formats() {
    use crate::format::valid;
    for (f, ok, bad) in [
        ("date", "2026-12-04", "2026-13-04"),
        ("date-time", "2026-12-04T10:00:00.5+01:00", "2026-12-04"),
        ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
        ("hostname", "example.com", "-bad-"),
        ("ipv6", "::1", "1.2.3.4"),
        ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
        ("byte", "aGVsbG8=", "not base64!"),
        ("uri", "https://example.com/x", "not a uri"),
        ("email", "a@example.com", "nope"),
        ("mac", "00:11:22:33:44:55", "00:11"),
    ] {
        assert_eq!(valid(f, ok), Some(true), "{f} {ok}");
        assert_eq!(valid(f, bad), Some(false), "{f} {bad}");
    }
    assert_eq!(valid("k8s-unknown", "x"), None);
}

fn cel_schema() -> Structural {
    Structural::from_schema(&json!({
        "type": "object",
        "properties": {"spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= self.maxReplicas",
                 "message": "replicas must not exceed maxReplicas"},
                {"rule": "!has(self.mode) || self.mode != 'off' || self.replicas == 0",
                 "messageExpression": "'mode off needs 0 replicas, not ' + string(self.replicas)",
                 "fieldPath": ".mode", "reason": "FieldValueForbidden"},
            ],
            "properties": {
                "replicas": {"type": "integer"},
                "maxReplicas": {"type": "integer"},
                "mode": {"type": "string"},
                "name": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "Value is immutable"}]},
                "size": {"type": "integer", "x-kubernetes-validations": [
                    {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()",
                     "optionalOldSelf": true, "message": "may only grow"},
                    {"rule": "self % 2 == 0"}]},
                "items": {"type": "array", "items": {"type": "string",
                    "x-kubernetes-validations": [{"rule": "self.startsWith('x')"}]}},
                "quantity": {"x-kubernetes-int-or-string": true, "x-kubernetes-validations": [
                    {"rule": "self.matches('^[0-9]+$')"}]},
            },
        }},
    }))
    .expect("structural")
}

#[test]
fn cel_rules_report_upstreams_messages() {
    let s = cel_schema();
    let o = |spec: Value| json!({"spec": spec});
    assert!(s
        .validate(&o(json!({"replicas": 1, "maxReplicas": 2})), None)
        .is_empty());
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"replicas": 3, "maxReplicas": 2}),
            r#"spec: Invalid value: "object": replicas must not exceed maxReplicas"#,
        ),
        (
            json!({"replicas": 1, "maxReplicas": 2, "mode": "off"}),
            "spec.mode: Forbidden: mode off needs 0 replicas, not 1",
        ),
        (
            json!({"replicas": 1, "maxReplicas": 2, "size": 3}),
            r#"spec.size: Invalid value: "integer": failed rule: self % 2 == 0"#,
        ),
        (
            json!({"replicas": 1, "maxReplicas": 2, "items": ["xa", "b"]}),
            r#"spec.items[1]: Invalid value: "string": failed rule: self.startsWith('x')"#,
        ),
        (
            json!({"replicas": 1, "maxReplicas": 2, "quantity": 5}),
            r#"spec.quantity: Invalid value: "integer,string": "#,
        ),
    ];
    for (spec, want) in cases {
        let got = msgs(&s.validate(&o(spec.clone()), None));
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "{spec}: want {want:?}, got {got:?}"
        );
    }
    // Rules are not checked on an object of the wrong shape.
    let got = msgs(&s.validate(&o(json!({"replicas": "many", "maxReplicas": 2})), None));
    assert_eq!(
        got.last().map(String::as_str),
        Some(
            r#"<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"#
        ),
        "{got:?}"
    );
}

#[test]
fn cel_transition_rules_see_the_old_object() {
    let s = cel_schema();
    let old = json!({"spec": {"replicas": 1, "maxReplicas": 2, "name": "a", "size": 4}});
    // On create the transition rule is skipped, the optional one sees no old value.
    assert!(s.validate(&old, None).is_empty());
    let mut new = old.clone();
    new["spec"]["name"] = json!("b");
    new["spec"]["size"] = json!(2);
    let got = msgs(&s.validate(&new, Some(&old)));
    assert_eq!(
        got,
        vec![
            r#"spec.name: Invalid value: "string": Value is immutable"#,
            r#"spec.size: Invalid value: "integer": may only grow"#,
        ]
    );
    new["spec"]["name"] = json!("a");
    new["spec"]["size"] = json!(6);
    assert!(s.validate(&new, Some(&old)).is_empty());
}

#[test]
fn cel_rules_that_do_not_compile_are_crd_errors() {
    let errs = schema_errs(json!({"type": "object", "x-kubernetes-validations": [
        {"rule": "self.a =="}, {"rule": "[1, 2].filter(x, x > 1).size() == 1"}]}));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with(
        r#"spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: {"rule":"self.a =="}: compilation failed: "#
    ), "{errs:?}");
}

/// Upstream's environment declares `self` and `oldSelf` only: anything else is refused when the
/// CRD is written, with cel-go's message, on the rule (or messageExpression) that reads it;
/// comprehension variables are not undeclared references.
#[test]
fn cel_rules_reading_undeclared_variables_are_crd_errors() {
    let errs = schema_errs(json!({"type": "object", "x-kubernetes-validations": [
        {"rule": "self.all(k, self[k] != other)"},
        {"rule": "self.size() > 0", "messageExpression": "'has ' + string(object.size())"},
        {"rule": "self.map(k, k).filter(x, x != '').all(y, y == oldSelf.a)"}]}));
    assert_eq!(
        errs,
        vec![
            "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule: Invalid value: \
             {\"rule\":\"self.all(k, self[k] != other)\"}: compilation failed: ERROR: <input>:1:24: \
             undeclared reference to 'other' (in container '')\n | self.all(k, self[k] != other)\n \
             | .......................^",
            "spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[1].messageExpression: \
             Invalid value: {\"messageExpression\":\"'has ' + string(object.size())\",\"rule\":\"self.size() \\u003e 0\"}: \
             messageExpression compilation failed: ERROR: <input>:1:17: undeclared reference to 'object' \
             (in container '')\n | 'has ' + string(object.size())\n | ................^",
        ]
    );
}
