//! Parsing an `openAPIV3Schema` into [`Node`]s and upstream's structural checks.

use std::collections::BTreeMap;

use regex::Regex;
use rudder_api::field::{BadValue, FieldError, Path};
use serde_json::{Map, Value};

/// Where a node sits, for the structural check's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Root,
    Item,
    Field,
    /// Inside `allOf`/`anyOf`/`oneOf`/`not` (a value validation, upstream's
    /// `NestedValueValidation`).
    Nested,
}

/// `additionalProperties`: a boolean or a schema for every other key.
#[derive(Clone, Debug)]
pub enum Additional {
    Allows(bool),
    Schema(Box<Node>),
}

/// A `pattern`, compiled once.
#[derive(Clone, Debug)]
pub struct Pattern {
    pub source: String,
    pub re: Result<Regex, String>,
}

/// One schema node: the structural part (type, properties, items, extensions) and its value
/// validations.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub type_: String,
    pub format: String,
    pub nullable: bool,
    pub default: Option<Value>,
    pub properties: BTreeMap<String, Node>,
    pub additional: Option<Additional>,
    pub items: Option<Box<Node>>,
    pub preserve_unknown: bool,
    pub embedded: bool,
    pub int_or_string: bool,
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub enum_: Option<Vec<Value>>,
    pub pattern: Option<Pattern>,
    pub maximum: Option<f64>,
    pub exclusive_maximum: bool,
    pub minimum: Option<f64>,
    pub exclusive_minimum: bool,
    pub multiple_of: Option<f64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub max_items: Option<i64>,
    pub min_items: Option<i64>,
    pub unique_items: bool,
    pub max_properties: Option<i64>,
    pub min_properties: Option<i64>,
    pub required: Vec<String>,
    pub all_of: Vec<Node>,
    pub any_of: Vec<Node>,
    pub one_of: Vec<Node>,
    pub not: Option<Box<Node>>,
    /// `x-kubernetes-validations`, compiled.
    pub rules: Vec<crate::cel::Rule>,
}

impl Node {
    /// The schema for a key of an object: its property, else `additionalProperties`' schema.
    pub fn property(&self, key: &str) -> Option<&Node> {
        self.properties.get(key).or(match &self.additional {
            Some(Additional::Schema(s)) => Some(s),
            _ => None,
        })
    }

    pub(crate) fn has_rules(&self) -> bool {
        !self.rules.is_empty()
            || self.properties.values().any(Node::has_rules)
            || self.items.as_ref().is_some_and(|i| i.has_rules())
            || matches!(&self.additional, Some(Additional::Schema(s)) if s.has_rules())
    }

    pub(crate) fn has_defaults(&self) -> bool {
        self.default.is_some()
            || self.properties.values().any(Node::has_defaults)
            || self.items.as_ref().is_some_and(|i| i.has_defaults())
            || matches!(&self.additional, Some(Additional::Schema(s)) if s.has_defaults())
    }
}

fn bad(v: &Value) -> BadValue {
    match v {
        Value::String(s) => BadValue::Str(s.clone()),
        Value::Bool(b) => BadValue::Bool(*b),
        Value::Number(n) if n.is_i64() => BadValue::Int(n.as_i64().unwrap_or_default()),
        other => BadValue::Json(other.clone()),
    }
}

pub(crate) fn bad_value(v: &Value) -> BadValue {
    bad(v)
}

/// A child path of `at`; under the nil path the child starts a new root, as upstream's
/// `(*Path)(nil).Child(..)` does.
pub(crate) fn child(at: &Path, name: &str) -> Path {
    if at.is_nil() {
        Path::new(name)
    } else {
        at.child(name)
    }
}

fn invalid(at: &Path, name: &str, v: &Value, detail: &str) -> FieldError {
    FieldError::invalid(&child(at, name), bad(v), detail)
}

fn wrong_json_type(at: &Path, name: &str, v: &Value, want: &str) -> FieldError {
    invalid(at, name, v, &format!("must be of type {want}"))
}

fn get_bool(m: &Map<String, Value>, k: &str, at: &Path, errs: &mut Vec<FieldError>) -> bool {
    match m.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            errs.push(wrong_json_type(at, k, v, "boolean"));
            false
        }
    }
}

fn get_str(m: &Map<String, Value>, k: &str, at: &Path, errs: &mut Vec<FieldError>) -> String {
    match m.get(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            errs.push(wrong_json_type(at, k, v, "string"));
            String::new()
        }
    }
}

fn get_f64(m: &Map<String, Value>, k: &str, at: &Path, errs: &mut Vec<FieldError>) -> Option<f64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(v) => {
            errs.push(wrong_json_type(at, k, v, "number"));
            None
        }
    }
}

fn get_i64(m: &Map<String, Value>, k: &str, at: &Path, errs: &mut Vec<FieldError>) -> Option<i64> {
    match m.get(k) {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        Some(v) => {
            errs.push(wrong_json_type(at, k, v, "integer"));
            None
        }
    }
}

fn parse_list(m: &Map<String, Value>, k: &str, at: &Path, errs: &mut Vec<FieldError>) -> Vec<Node> {
    match m.get(k) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, s)| parse(s, &child(at, k).index(i), Level::Nested, errs))
            .collect(),
        Some(v) => {
            errs.push(wrong_json_type(at, k, v, "array"));
            Vec::new()
        }
    }
}

/// Parse one node. JSON-shape problems and upstream's CRD schema rules
/// (`ValidateCustomResourceDefinitionOpenAPISchema`) are reported into `errs`.
pub(crate) fn parse(v: &Value, at: &Path, level: Level, errs: &mut Vec<FieldError>) -> Node {
    let Some(m) = v.as_object() else {
        errs.push(FieldError::invalid(at, bad(v), "must be a JSON object"));
        return Node::default();
    };
    let mut n = Node {
        type_: get_str(m, "type", at, errs),
        format: get_str(m, "format", at, errs),
        nullable: get_bool(m, "nullable", at, errs),
        default: m.get("default").cloned(),
        preserve_unknown: get_bool(m, "x-kubernetes-preserve-unknown-fields", at, errs),
        embedded: get_bool(m, "x-kubernetes-embedded-resource", at, errs),
        int_or_string: get_bool(m, "x-kubernetes-int-or-string", at, errs),
        maximum: get_f64(m, "maximum", at, errs),
        exclusive_maximum: get_bool(m, "exclusiveMaximum", at, errs),
        minimum: get_f64(m, "minimum", at, errs),
        exclusive_minimum: get_bool(m, "exclusiveMinimum", at, errs),
        multiple_of: get_f64(m, "multipleOf", at, errs),
        max_length: get_i64(m, "maxLength", at, errs),
        min_length: get_i64(m, "minLength", at, errs),
        max_items: get_i64(m, "maxItems", at, errs),
        min_items: get_i64(m, "minItems", at, errs),
        unique_items: get_bool(m, "uniqueItems", at, errs),
        max_properties: get_i64(m, "maxProperties", at, errs),
        min_properties: get_i64(m, "minProperties", at, errs),
        ..Node::default()
    };
    if n.type_ == "null" {
        errs.push(FieldError::forbidden(
            &child(at, "type"),
            "type cannot be set to null",
        ));
    }
    if let Some(p) = m.get("x-kubernetes-preserve-unknown-fields") {
        if p == &Value::Bool(false) {
            errs.push(invalid(
                at,
                "x-kubernetes-preserve-unknown-fields",
                p,
                "must be true or undefined",
            ));
        }
    }
    if m.get("$ref").is_some_and(|r| !r.is_null()) {
        errs.push(FieldError::forbidden(
            &child(at, "$ref"),
            "$ref is not supported",
        ));
    }
    if n.unique_items {
        errs.push(FieldError::forbidden(
            &child(at, "uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    for forbidden in [
        "additionalItems",
        "patternProperties",
        "definitions",
        "dependencies",
    ] {
        if m.get(forbidden).is_some_and(|v| !v.is_null()) {
            errs.push(FieldError::forbidden(
                &child(at, forbidden),
                format!("{forbidden} is not supported"),
            ));
        }
    }
    match m.get("enum") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => n.enum_ = Some(a.clone()),
        Some(v) => errs.push(wrong_json_type(at, "enum", v, "array")),
    }
    match m.get("required") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            n.required = a
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        }
        Some(v) => errs.push(wrong_json_type(at, "required", v, "array")),
    }
    let pattern = get_str(m, "pattern", at, errs);
    if !pattern.is_empty() {
        let re = Regex::new(&pattern).map_err(|e| e.to_string());
        if let Err(e) = &re {
            errs.push(FieldError::invalid(
                &child(at, "pattern"),
                pattern.as_str(),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
        n.pattern = Some(Pattern {
            source: pattern,
            re,
        });
    }
    match m.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            for (k, p) in props {
                let sub = if level == Level::Nested {
                    Level::Nested
                } else {
                    Level::Field
                };
                let node = parse(p, &child(at, "properties").key(k.as_str()), sub, errs);
                n.properties.insert(k.clone(), node);
            }
        }
        Some(v) => errs.push(wrong_json_type(at, "properties", v, "object")),
    }
    match m.get("additionalProperties") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => n.additional = Some(Additional::Allows(*b)),
        Some(v @ Value::Object(_)) => {
            let sub = if level == Level::Nested {
                Level::Nested
            } else {
                Level::Field
            };
            n.additional = Some(Additional::Schema(Box::new(parse(
                v,
                &child(at, "additionalProperties"),
                sub,
                errs,
            ))));
        }
        Some(v) => errs.push(wrong_json_type(at, "additionalProperties", v, "object")),
    }
    if !n.properties.is_empty()
        && matches!(
            n.additional,
            Some(Additional::Allows(false)) | Some(Additional::Schema(_))
        )
    {
        errs.push(FieldError::forbidden(
            &child(at, "additionalProperties"),
            "additionalProperties and properties are mutual exclusive",
        ));
    }
    match m.get("items") {
        None | Some(Value::Null) => {}
        Some(v @ Value::Object(_)) => {
            let sub = if level == Level::Nested {
                Level::Nested
            } else {
                Level::Item
            };
            n.items = Some(Box::new(parse(v, &child(at, "items"), sub, errs)));
        }
        Some(Value::Array(_)) => errs.push(FieldError::forbidden(
            &child(at, "items"),
            "items must be a schema object and not an array",
        )),
        Some(v) => errs.push(wrong_json_type(at, "items", v, "object")),
    }
    n.all_of = parse_list(m, "allOf", at, errs);
    n.any_of = parse_list(m, "anyOf", at, errs);
    n.one_of = parse_list(m, "oneOf", at, errs);
    match m.get("not") {
        None | Some(Value::Null) => {}
        Some(v) => n.not = Some(Box::new(parse(v, &child(at, "not"), Level::Nested, errs))),
    }
    match m.get("x-kubernetes-list-type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) => {
            if !["atomic", "set", "map"].contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    &child(at, "x-kubernetes-list-type"),
                    t.as_str(),
                    &["atomic", "set", "map"],
                ));
            }
            if n.type_ != "array" && level != Level::Nested {
                errs.push(FieldError::invalid(
                    &child(at, "x-kubernetes-list-type"),
                    t.as_str(),
                    "must only be used if type is array",
                ));
            }
            n.list_type = Some(t.clone());
        }
        Some(v) => errs.push(wrong_json_type(at, "x-kubernetes-list-type", v, "string")),
    }
    match m.get("x-kubernetes-list-map-keys") {
        None | Some(Value::Null) => {}
        Some(Value::Array(keys)) => {
            n.list_map_keys = keys
                .iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        }
        Some(v) => errs.push(wrong_json_type(
            at,
            "x-kubernetes-list-map-keys",
            v,
            "array",
        )),
    }
    if n.list_type.as_deref() == Some("map") && level != Level::Nested {
        if n.list_map_keys.is_empty() {
            errs.push(FieldError::required(
                &child(at, "x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        if let Some(items) = &n.items {
            if !items.type_.is_empty() && items.type_ != "object" {
                errs.push(FieldError::invalid(
                    &child(&child(at, "items"), "type"),
                    items.type_.as_str(),
                    "must be object if parent array's x-kubernetes-list-type is map",
                ));
            }
            for (i, k) in n.list_map_keys.iter().enumerate() {
                match items.properties.get(k) {
                    None => errs.push(FieldError::invalid(
                        &child(at, "x-kubernetes-list-map-keys").index(i),
                        k.as_str(),
                        "entries must all be names of item properties",
                    )),
                    Some(p)
                        if !["string", "integer", "boolean", "number"]
                            .contains(&p.type_.as_str()) =>
                    {
                        errs.push(FieldError::invalid(
                            &child(
                                &child(&child(at, "items"), "properties").key(k.as_str()),
                                "type",
                            ),
                            p.type_.as_str(),
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        ))
                    }
                    _ => {}
                }
            }
        }
    } else if !n.list_map_keys.is_empty() && level != Level::Nested {
        errs.push(FieldError::forbidden(
            &child(at, "x-kubernetes-list-map-keys"),
            "must not be set if x-kubernetes-list-type is not map",
        ));
    }
    match m.get("x-kubernetes-validations") {
        None | Some(Value::Null) => {}
        Some(Value::Array(rules)) => {
            let rules_at = child(at, "x-kubernetes-validations");
            n.rules = rules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| crate::cel::Rule::compile(r, &rules_at.index(i), errs))
                .collect();
        }
        Some(v) => errs.push(wrong_json_type(at, "x-kubernetes-validations", v, "array")),
    }
    n
}

/// Upstream's `ValidateStructural` invariants over the parsed tree. `raw` is the node as
/// written (to see which generic fields a nested value validation sets).
pub(crate) fn check_structural(n: &Node, raw: &Value, at: &Path, errs: &mut Vec<FieldError>) {
    invariants(n, raw, Level::Root, at, errs);
    completeness(n, at, errs);
}

/// Upstream `validateStructuralCompleteness`: every field or item a value validation
/// (`allOf`, `anyOf`, `oneOf`, `not`) talks about must also be specified structurally.
fn completeness(n: &Node, at: &Path, errs: &mut Vec<FieldError>) {
    for (v, v_at) in junctor_members(n, at) {
        nested_complete(v, Some(n), at, &v_at, errs);
    }
    for (k, p) in &n.properties {
        completeness(p, &child(at, "properties").key(k.as_str()), errs);
    }
    if let Some(items) = &n.items {
        completeness(items, &child(at, "items"), errs);
    }
    if let Some(Additional::Schema(a)) = &n.additional {
        completeness(a, &child(at, "additionalProperties"), errs);
    }
}

/// The members of a node's `allOf`, `anyOf`, `oneOf` and `not`, with their paths.
fn junctor_members<'a>(n: &'a Node, at: &Path) -> Vec<(&'a Node, Path)> {
    let mut out = Vec::new();
    for (name, list) in [
        ("allOf", &n.all_of),
        ("anyOf", &n.any_of),
        ("oneOf", &n.one_of),
    ] {
        out.extend(
            list.iter()
                .enumerate()
                .map(|(i, m)| (m, child(at, name).index(i))),
        );
    }
    if let Some(not) = &n.not {
        out.push((&**not, child(at, "not")));
    }
    out
}

fn nested_complete(
    v: &Node,
    s: Option<&Node>,
    s_at: &Path,
    v_at: &Path,
    errs: &mut Vec<FieldError>,
) {
    let Some(s) = s else {
        errs.push(FieldError::required(
            s_at,
            format!("because it is defined in {v_at}"),
        ));
        return;
    };
    for (x, x_at) in junctor_members(v, v_at) {
        nested_complete(x, Some(s), s_at, &x_at, errs);
    }
    if let Some(items) = &v.items {
        nested_complete(
            items,
            s.items.as_deref(),
            &child(s_at, "items"),
            &child(v_at, "items"),
            errs,
        );
    }
    for (k, p) in &v.properties {
        let (target, target_at) = match (s.properties.get(k), &s.additional) {
            (Some(t), _) => (Some(t), child(s_at, "properties").key(k.as_str())),
            (None, Some(Additional::Schema(a))) => {
                (Some(&**a), child(s_at, "additionalProperties"))
            }
            (None, _) => (None, child(s_at, "properties").key(k.as_str())),
        };
        nested_complete(
            p,
            target,
            &target_at,
            &child(v_at, "properties").key(k.as_str()),
            errs,
        );
    }
}

fn is_int_or_string_any_of(any_of: &[Value]) -> bool {
    any_of.len() == 2
        && any_of[0] == serde_json::json!({"type": "integer"})
        && any_of[1] == serde_json::json!({"type": "string"})
}

fn invariants(n: &Node, raw: &Value, level: Level, at: &Path, errs: &mut Vec<FieldError>) {
    let empty = Map::new();
    let m = raw.as_object().unwrap_or(&empty);
    if n.type_ == "array" && n.items.is_none() {
        errs.push(FieldError::required(
            &child(at, "items"),
            "must be specified",
        ));
    }
    if let (Some(items), Some(raw_items)) = (&n.items, m.get("items")) {
        invariants(items, raw_items, Level::Item, &child(at, "items"), errs);
    }
    let raw_props = m.get("properties").and_then(Value::as_object);
    for (k, p) in &n.properties {
        let raw_p = raw_props.and_then(|r| r.get(k)).unwrap_or(&Value::Null);
        invariants(
            p,
            raw_p,
            Level::Field,
            &child(at, "properties").key(k.as_str()),
            errs,
        );
    }
    if let Some(Additional::Schema(s)) = &n.additional {
        if level == Level::Root {
            errs.push(FieldError::forbidden(
                &child(at, "additionalProperties"),
                "must not be used at the root",
            ));
        }
        invariants(
            s,
            m.get("additionalProperties").unwrap_or(&Value::Null),
            Level::Field,
            &child(at, "additionalProperties"),
            errs,
        );
    }
    if n.int_or_string && n.preserve_unknown {
        errs.push(FieldError::invalid(
            &child(at, "x-kubernetes-preserve-unknown-fields"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if n.int_or_string && n.embedded {
        errs.push(FieldError::invalid(
            &child(at, "x-kubernetes-embedded-resource"),
            true,
            "must be false if x-kubernetes-int-or-string is true",
        ));
    }
    if n.int_or_string && !n.type_.is_empty() {
        errs.push(FieldError::invalid(
            &child(at, "type"),
            n.type_.as_str(),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    // Value validations: the int-or-string `anyOf: [{type: integer}, {type: string}]` pattern
    // (also as the first `allOf`'s `anyOf`) may name types; nothing else nested may.
    let any_of_raw = m.get("anyOf").and_then(Value::as_array);
    let skip_any_of = any_of_raw.is_some_and(|a| is_int_or_string_any_of(a));
    let all_of_raw = m.get("allOf").and_then(Value::as_array);
    let skip_first_all_of = all_of_raw.is_some_and(|a| {
        a.first()
            .and_then(|f| f.get("anyOf"))
            .and_then(Value::as_array)
            .is_some_and(|x| is_int_or_string_any_of(x))
    });
    nested_value_validation(m, skip_any_of, skip_first_all_of, level, at, errs);

    let check_metadata = level == Level::Root || n.embedded;
    if n.embedded && n.type_ != "object" {
        if n.type_.is_empty() {
            errs.push(FieldError::required(
                &child(at, "type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errs.push(FieldError::invalid(
                &child(at, "type"),
                n.type_.as_str(),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if n.type_.is_empty() && !n.int_or_string && !n.preserve_unknown {
        let detail = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            _ => "must not be empty for specified object fields",
        };
        errs.push(FieldError::required(&child(at, "type"), detail));
    }
    if n.embedded && n.additional.is_some() {
        errs.push(FieldError::forbidden(
            &child(at, "additionalProperties"),
            "must not be used if x-kubernetes-embedded-resource is set",
        ));
    }
    if level == Level::Root && !n.type_.is_empty() && n.type_ != "object" {
        errs.push(FieldError::invalid(
            &child(at, "type"),
            n.type_.as_str(),
            "must be object at the root",
        ));
    }
    if check_metadata {
        for (k, want) in [
            ("kind", "string"),
            ("apiVersion", "string"),
            ("metadata", "object"),
        ] {
            if let Some(p) = n.properties.get(k) {
                if p.type_ != want {
                    errs.push(FieldError::invalid(
                        &child(&child(at, "properties").key(k), "type"),
                        p.type_.as_str(),
                        format!("must be {want}"),
                    ));
                }
            }
        }
    }
    if level == Level::Root {
        if let Some(meta) = raw_props
            .and_then(|p| p.get("metadata"))
            .and_then(Value::as_object)
        {
            // Only name and generateName may be restricted.
            let ok = meta.iter().all(|(k, v)| match k.as_str() {
                "type" | "default" => true,
                "properties" => v
                    .as_object()
                    .is_some_and(|p| p.keys().all(|k| k == "name" || k == "generateName")),
                _ => false,
            });
            if !ok {
                errs.push(FieldError::forbidden(
                    &child(at, "properties").key("metadata"),
                    "must not specify anything other than name and generateName, but metadata is implicitly specified",
                ));
            }
        }
    }
    if n.embedded && !n.preserve_unknown && n.properties.is_empty() {
        errs.push(FieldError::required(
            &child(at, "properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
}

/// The junctors of a node (`anyOf`, `allOf`, `oneOf`, `not`): their members may only
/// validate values, never define structure (upstream `validateNestedValueValidation`).
fn nested_value_validation(
    m: &Map<String, Value>,
    skip_any_of: bool,
    skip_first_all_of_any_of: bool,
    level: Level,
    at: &Path,
    errs: &mut Vec<FieldError>,
) {
    let junctor = |name: &str, skip: &dyn Fn(usize) -> bool, errs: &mut Vec<FieldError>| {
        if let Some(list) = m.get(name).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                nested(v, skip(i), level, &child(at, name).index(i), errs);
            }
        }
    };
    if !skip_any_of {
        junctor("anyOf", &|_| false, errs);
    }
    junctor("allOf", &|i| skip_first_all_of_any_of && i == 0, errs);
    junctor("oneOf", &|_| false, errs);
    if let Some(not) = m.get("not") {
        nested(not, false, level, &child(at, "not"), errs);
    }
}

fn nested(v: &Value, skip_any_of: bool, level: Level, at: &Path, errs: &mut Vec<FieldError>) {
    let Some(m) = v.as_object() else {
        return;
    };
    nested_value_validation(m, skip_any_of, false, level, at, errs);
    if let Some(items) = m.get("items") {
        nested(items, false, level, &child(at, "items"), errs);
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        for (k, p) in props {
            nested(
                p,
                false,
                Level::Field,
                &child(at, "properties").key(k.as_str()),
                errs,
            );
        }
        if props.contains_key("metadata") {
            errs.push(FieldError::forbidden(
                &child(at, "properties").key("metadata"),
                "must not be specified in a nested context",
            ));
        }
    }
    let set = |k: &str| m.get(k).is_some_and(|v| !v.is_null());
    let non_empty_str = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let is_true = |k: &str| m.get(k) == Some(&Value::Bool(true));
    if non_empty_str("type") {
        errs.push(FieldError::forbidden(
            &child(at, "type"),
            "must be empty to be structural",
        ));
    }
    if set("additionalProperties") {
        errs.push(FieldError::forbidden(
            &child(at, "additionalProperties"),
            "must be undefined to be structural",
        ));
    }
    if set("default") {
        errs.push(FieldError::forbidden(
            &child(at, "default"),
            "must be undefined to be structural",
        ));
    }
    if non_empty_str("title") {
        errs.push(FieldError::forbidden(
            &child(at, "title"),
            "must be empty to be structural",
        ));
    }
    if non_empty_str("description") {
        errs.push(FieldError::forbidden(
            &child(at, "description"),
            "must be empty to be structural",
        ));
    }
    if is_true("nullable") {
        errs.push(FieldError::forbidden(
            &child(at, "nullable"),
            "must be false to be structural",
        ));
    }
    for x in [
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if is_true(x) {
            errs.push(FieldError::forbidden(
                &child(at, x),
                "must be false to be structural",
            ));
        }
    }
    if m.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        errs.push(FieldError::forbidden(
            &child(at, "x-kubernetes-list-map-keys"),
            "must be empty to be structural",
        ));
    }
    if set("x-kubernetes-list-type") {
        errs.push(FieldError::forbidden(
            &child(at, "x-kubernetes-list-type"),
            "must be undefined to be structural",
        ));
    }
}
