//! `/openapi/v2`: one Swagger 2.0 document for every served group/version, derived from the
//! generated OpenAPI v3 documents (never written by hand), served as JSON or as the gnostic
//! `openapi.v2.Document` protobuf message kubectl asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).
//!
//! The conversion from v3:
//! - `components.schemas` become `definitions`; `$ref`s point at `#/definitions/`; the v3-only
//!   `allOf: [{$ref}]` wrapper (a reference with siblings) becomes a plain `$ref` with the
//!   siblings beside it, as upstream's v2 document has them; `nullable`, `oneOf`, `anyOf` and
//!   `not` are dropped.
//! - parameters carry their schema's `type`/`format`/... directly; a `requestBody` becomes an
//!   `in: body` parameter named `body` (its media types become `consumes`); responses carry
//!   their `schema` directly (their media types become `produces`).
//!
//! The protobuf encoding (module `proto` below) is written by hand for the messages the
//! document uses, with the field numbers of gnostic's `openapiv2/OpenAPIv2.proto`. Vendor
//! extensions (`x-*`) are `NamedAny { name, value: Any { yaml } }`, as gnostic encodes them; the
//! YAML text is the value's JSON, which is valid YAML (flow style).

use serde_json::{json, Map, Value};

const V3_REF: &str = "#/components/schemas/";
const V2_REF: &str = "#/definitions/";

/// The Swagger 2.0 document for the v3 group/version documents `v3`.
pub(crate) fn document<'a>(v3: impl IntoIterator<Item = &'a Value>, kube_version: &str) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in v3 {
        if let Some(ps) = doc["paths"].as_object() {
            for (path, item) in ps {
                paths.entry(path.clone()).or_insert_with(|| path_item(item));
            }
        }
        if let Some(schemas) = doc["components"]["schemas"].as_object() {
            for (name, s) in schemas {
                definitions.entry(name.clone()).or_insert_with(|| schema(s));
            }
        }
    }
    json!({
        "definitions": definitions,
        "info": {"title": "Kubernetes", "version": kube_version},
        "paths": paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": {
            "description": "Bearer Token authentication",
            "in": "header",
            "name": "authorization",
            "type": "apiKey",
        }},
        "swagger": "2.0",
    })
}

/// A v3 schema as a v2 one.
fn schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, val) in o {
                match k.as_str() {
                    "$ref" => {
                        let r = val.as_str().unwrap_or_default();
                        let r = r
                            .strip_prefix(V3_REF)
                            .map_or_else(|| r.to_owned(), |n| format!("{V2_REF}{n}"));
                        out.insert(k.clone(), Value::String(r));
                    }
                    "nullable" | "oneOf" | "anyOf" | "not" => {}
                    "allOf" => match val.as_array().map(Vec::as_slice) {
                        Some([single]) if single.get("$ref").is_some() => {
                            if let Value::Object(s) = schema(single) {
                                out.extend(s);
                            }
                        }
                        _ => {
                            out.insert(k.clone(), schema(val));
                        }
                    },
                    // Maps keyed by name (not schemas themselves), and literal values.
                    "properties" => {
                        let props = val
                            .as_object()
                            .map(|p| p.iter().map(|(n, s)| (n.clone(), schema(s))).collect())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "default" | "example" | "enum" => {
                        out.insert(k.clone(), val.clone());
                    }
                    _ if k.starts_with("x-") => {
                        out.insert(k.clone(), val.clone());
                    }
                    _ => {
                        out.insert(k.clone(), schema(val));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(schema).collect()),
        other => other.clone(),
    }
}

/// A v3 parameter as a v2 one: the schema's keywords beside `name`/`in`.
fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    if let Some(o) = p.as_object() {
        for (k, v) in o {
            if k == "schema" {
                if let Value::Object(s) = schema(v) {
                    out.extend(s);
                }
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn media_types(content: &Value, into: &mut Vec<Value>) {
    if let Some(c) = content.as_object() {
        for mt in c.keys() {
            let mt = Value::String(mt.clone());
            if !into.contains(&mt) {
                into.push(mt);
            }
        }
    }
}

/// The schema of the first media type of a v3 `content`.
fn content_schema(content: &Value) -> Option<Value> {
    content
        .as_object()?
        .values()
        .find_map(|m| m.get("schema"))
        .map(schema)
}

fn operation(op: &Value) -> Value {
    let Some(o) = op.as_object() else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params: Vec<Value> = o
        .get("parameters")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().map(parameter).collect())
        .unwrap_or_default();
    let mut consumes = Vec::new();
    if let Some(body) = o.get("requestBody") {
        media_types(&body["content"], &mut consumes);
        let mut b = json!({"in": "body", "name": "body"});
        if let Some(s) = content_schema(&body["content"]) {
            b["schema"] = s;
        }
        if body["required"].as_bool() == Some(true) {
            b["required"] = Value::Bool(true);
        }
        params.insert(0, b);
    }
    let mut produces = Vec::new();
    let mut responses = Map::new();
    if let Some(rs) = o.get("responses").and_then(Value::as_object) {
        for (code, r) in rs {
            media_types(&r["content"], &mut produces);
            let mut out = json!({"description": r["description"].clone()});
            if let Some(s) = content_schema(&r["content"]) {
                out["schema"] = s;
            }
            responses.insert(code.clone(), out);
        }
        // Upstream's v2 document adds its CommonResponses to every operation; v3 does not.
        responses.insert("401".to_owned(), json!({"description": "Unauthorized"}));
    }
    for (k, v) in o {
        match k.as_str() {
            "parameters" | "requestBody" | "responses" => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !consumes.is_empty() {
        out.insert("consumes".to_owned(), Value::Array(consumes));
    }
    if !produces.is_empty() {
        out.insert("produces".to_owned(), Value::Array(produces));
    }
    if !params.is_empty() {
        out.insert("parameters".to_owned(), Value::Array(params));
    }
    out.insert("responses".to_owned(), Value::Object(responses));
    out.insert("schemes".to_owned(), json!(["https"]));
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let Some(o) = item.as_object() else {
        return item.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        let v = match k.as_str() {
            "parameters" => Value::Array(
                v.as_array()
                    .map(|ps| ps.iter().map(parameter).collect())
                    .unwrap_or_default(),
            ),
            "get" | "put" | "post" | "delete" | "options" | "head" | "patch" => operation(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

/// The gnostic `openapi.v2.Document` encoding of a Swagger 2.0 JSON document.
pub(crate) mod proto {
    use serde_json::{Map, Value};

    /// A protobuf message being written.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }
        fn key(&mut self, field: u32, wire: u8) {
            self.varint((u64::from(field) << 3) | u64::from(wire));
        }
        fn bytes(&mut self, field: u32, b: &[u8]) {
            self.key(field, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
        }
        /// A string field; proto3 omits empty ones.
        fn string(&mut self, field: u32, s: &str) {
            if !s.is_empty() {
                self.bytes(field, s.as_bytes());
            }
        }
        fn strings(&mut self, field: u32, v: Option<&Value>) {
            match v {
                Some(Value::String(s)) => self.bytes(field, s.as_bytes()),
                Some(Value::Array(a)) => {
                    for s in a.iter().filter_map(Value::as_str) {
                        self.bytes(field, s.as_bytes());
                    }
                }
                _ => {}
            }
        }
        fn boolean(&mut self, field: u32, v: Option<&Value>) {
            if v.and_then(Value::as_bool) == Some(true) {
                self.key(field, 0);
                self.varint(1);
            }
        }
        fn int64(&mut self, field: u32, v: Option<&Value>) {
            if let Some(n) = v.and_then(Value::as_i64).filter(|n| *n != 0) {
                self.key(field, 0);
                self.varint(n as u64);
            }
        }
        fn double(&mut self, field: u32, v: Option<&Value>) {
            if let Some(n) = v.and_then(Value::as_f64).filter(|n| *n != 0.0) {
                self.key(field, 1);
                self.0.extend_from_slice(&n.to_le_bytes());
            }
        }
        /// A nested message, written by `f` (always present, even when empty).
        fn message(&mut self, field: u32, f: impl FnOnce(&mut W)) {
            let mut inner = W::default();
            f(&mut inner);
            self.bytes(field, &inner.0);
        }
        fn str_of(&mut self, field: u32, o: &Map<String, Value>, key: &str) {
            self.string(
                field,
                o.get(key).and_then(Value::as_str).unwrap_or_default(),
            );
        }
    }

    /// `Any { yaml }`: JSON text is YAML (flow style).
    fn any(w: &mut W, field: u32, v: &Value) {
        w.message(field, |w| w.string(2, &format!("{v}\n")));
    }

    /// `repeated NamedAny vendor_extension` for every `x-*` key of `o`.
    fn extensions(w: &mut W, field: u32, o: &Map<String, Value>) {
        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
            w.message(field, |w| {
                w.string(1, k);
                any(w, 2, v);
            });
        }
    }

    fn schema(w: &mut W, v: &Value) {
        let Some(o) = v.as_object() else {
            return;
        };
        w.str_of(1, o, "$ref");
        w.str_of(2, o, "format");
        w.str_of(3, o, "title");
        w.str_of(4, o, "description");
        if let Some(d) = o.get("default") {
            any(w, 5, d);
        }
        w.double(6, o.get("multipleOf"));
        w.double(7, o.get("maximum"));
        w.boolean(8, o.get("exclusiveMaximum"));
        w.double(9, o.get("minimum"));
        w.boolean(10, o.get("exclusiveMinimum"));
        w.int64(11, o.get("maxLength"));
        w.int64(12, o.get("minLength"));
        w.str_of(13, o, "pattern");
        w.int64(14, o.get("maxItems"));
        w.int64(15, o.get("minItems"));
        w.boolean(16, o.get("uniqueItems"));
        w.int64(17, o.get("maxProperties"));
        w.int64(18, o.get("minProperties"));
        w.strings(19, o.get("required"));
        for e in o
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            any(w, 20, e);
        }
        match o.get("additionalProperties") {
            Some(Value::Bool(b)) => w.message(21, |w| {
                w.key(2, 0);
                w.varint(u64::from(*b));
            }),
            Some(s @ Value::Object(_)) => w.message(21, |w| w.message(1, |w| schema(w, s))),
            _ => {}
        }
        if o.contains_key("type") {
            w.message(22, |w| w.strings(1, o.get("type")));
        }
        match o.get("items") {
            Some(Value::Array(a)) => w.message(23, |w| {
                for s in a {
                    w.message(1, |w| schema(w, s));
                }
            }),
            Some(s @ Value::Object(_)) => w.message(23, |w| w.message(1, |w| schema(w, s))),
            _ => {}
        }
        for s in o
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            w.message(24, |w| schema(w, s));
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            w.message(25, |w| named_schemas(w, 1, props));
        }
        w.str_of(26, o, "discriminator");
        w.boolean(27, o.get("readOnly"));
        if let Some(e) = o.get("example") {
            any(w, 30, e);
        }
        extensions(w, 31, o);
    }

    /// `repeated NamedSchema`.
    fn named_schemas(w: &mut W, field: u32, m: &Map<String, Value>) {
        for (name, s) in m {
            w.message(field, |w| {
                w.string(1, name);
                w.message(2, |w| schema(w, s));
            });
        }
    }

    /// A non-body parameter sub-schema: header, formData, query and path ones share the
    /// layout up to `name` (field 4); query and formData have `allowEmptyValue` (5) before
    /// `type`, which shifts the rest by one.
    fn sub_schema(w: &mut W, o: &Map<String, Value>, shifted: bool) {
        let s = u32::from(shifted);
        w.boolean(1, o.get("required"));
        w.str_of(2, o, "in");
        w.str_of(3, o, "description");
        w.str_of(4, o, "name");
        if shifted {
            w.boolean(5, o.get("allowEmptyValue"));
        }
        w.str_of(5 + s, o, "type");
        w.str_of(6 + s, o, "format");
        w.str_of(8 + s, o, "collectionFormat");
        if let Some(d) = o.get("default") {
            any(w, 9 + s, d);
        }
        w.boolean(19 + s, o.get("uniqueItems"));
        for e in o
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            any(w, 20 + s, e);
        }
        extensions(w, 22 + s, o);
    }

    /// `ParametersItem { parameter: Parameter }`.
    fn parameter(w: &mut W, p: &Value) {
        let Some(o) = p.as_object() else {
            return;
        };
        w.message(1, |w| match o.get("in").and_then(Value::as_str) {
            Some("body") => w.message(1, |w| {
                w.str_of(1, o, "description");
                w.str_of(2, o, "name");
                w.str_of(3, o, "in");
                w.boolean(4, o.get("required"));
                if let Some(s) = o.get("schema") {
                    w.message(5, |w| schema(w, s));
                }
                extensions(w, 6, o);
            }),
            location => w.message(2, |w| {
                let (field, shifted) = match location {
                    Some("header") => (1, false),
                    Some("formData") => (2, true),
                    Some("path") => (4, false),
                    _ => (3, true),
                };
                w.message(field, |w| sub_schema(w, o, shifted));
            }),
        });
    }

    fn operation(w: &mut W, op: &Value) {
        let Some(o) = op.as_object() else {
            return;
        };
        w.strings(1, o.get("tags"));
        w.str_of(2, o, "summary");
        w.str_of(3, o, "description");
        w.str_of(5, o, "operationId");
        w.strings(6, o.get("produces"));
        w.strings(7, o.get("consumes"));
        for p in o
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            w.message(8, |w| parameter(w, p));
        }
        if let Some(rs) = o.get("responses").and_then(Value::as_object) {
            w.message(9, |w| {
                for (code, r) in rs {
                    w.message(1, |w| {
                        w.string(1, code);
                        // ResponseValue { response: Response { description, schema } }
                        w.message(2, |w| {
                            w.message(1, |w| {
                                w.string(1, r["description"].as_str().unwrap_or_default());
                                if let Some(s) = r.get("schema") {
                                    w.message(2, |w| w.message(1, |w| schema(w, s)));
                                }
                            })
                        });
                    });
                }
            });
        }
        w.strings(10, o.get("schemes"));
        w.boolean(11, o.get("deprecated"));
        extensions(w, 13, o);
    }

    fn path_item(w: &mut W, item: &Value) {
        let Some(o) = item.as_object() else {
            return;
        };
        for (field, method) in [
            (2, "get"),
            (3, "put"),
            (4, "post"),
            (5, "delete"),
            (6, "options"),
            (7, "head"),
            (8, "patch"),
        ] {
            if let Some(op) = o.get(method) {
                w.message(field, |w| operation(w, op));
            }
        }
        for p in o
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            w.message(9, |w| parameter(w, p));
        }
        extensions(w, 10, o);
    }

    /// Encodes the Swagger 2.0 document `doc` (as `super::document` builds it).
    pub(crate) fn encode(doc: &Value) -> Vec<u8> {
        let mut w = W::default();
        w.string(1, doc["swagger"].as_str().unwrap_or_default());
        w.message(2, |w| {
            w.string(1, doc["info"]["title"].as_str().unwrap_or_default());
            w.string(2, doc["info"]["version"].as_str().unwrap_or_default());
        });
        if let Some(paths) = doc["paths"].as_object() {
            w.message(8, |w| {
                for (path, item) in paths {
                    w.message(2, |w| {
                        w.string(1, path);
                        w.message(2, |w| path_item(w, item));
                    });
                }
            });
        }
        if let Some(defs) = doc["definitions"].as_object() {
            w.message(9, |w| named_schemas(w, 1, defs));
        }
        for req in doc["security"].as_array().into_iter().flatten() {
            w.message(12, |w| {
                for (name, scopes) in req.as_object().into_iter().flatten() {
                    w.message(1, |w| {
                        w.string(1, name);
                        w.message(2, |w| w.strings(1, Some(scopes)));
                    });
                }
            });
        }
        if let Some(defs) = doc["securityDefinitions"].as_object() {
            w.message(13, |w| {
                for (name, d) in defs {
                    w.message(1, |w| {
                        w.string(1, name);
                        // SecurityDefinitionsItem { api_key_security: ApiKeySecurity }
                        w.message(2, |w| {
                            w.message(2, |w| {
                                let o = d.as_object().cloned().unwrap_or_default();
                                w.str_of(1, &o, "type");
                                w.str_of(2, &o, "name");
                                w.str_of(3, &o, "in");
                                w.str_of(4, &o, "description");
                            })
                        });
                    });
                }
            });
        }
        w.0
    }
}
