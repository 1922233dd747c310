//! OpenAPI validation of custom resources, as kube-openapi's `validate.SchemaValidator` does it
//! with apiextensions' conversion of its results to field errors
//! (`kubeOpenAPIResultToFieldErrors`), and the list-type checks (`schema/listtype`).

use std::collections::BTreeMap;

use rudder_api::field::{BadValue, ErrorType, FieldError, Path};
use serde_json::Value;

use crate::schema::{bad_value, Additional, Node};
use crate::type_name;

/// Where an error lands: kube-openapi names the value by a dotted path (`spec.items[0].name`)
/// that apiextensions appends to the caller's field path (nil for a custom resource).
struct At<'a> {
    base: Option<&'a Path>,
    name: &'a str,
}

impl At<'_> {
    fn field(&self) -> String {
        match (self.base, self.name.is_empty()) {
            (Some(b), true) => b.to_string(),
            (Some(b), false) if b.is_nil() => self.name.to_owned(),
            (Some(b), false) => b.child(self.name).to_string(),
            (None, true) => Path::nil().to_string(),
            (None, false) => self.name.to_owned(),
        }
    }

    fn base_field(&self) -> String {
        self.base
            .map_or_else(|| Path::nil().to_string(), Path::to_string)
    }

    fn err(&self, error_type: ErrorType, value: BadValue, detail: String) -> FieldError {
        FieldError {
            error_type,
            field: self.field(),
            bad_value: value,
            detail,
        }
    }

    /// An error built by `rudder_api`'s constructors, moved to this place.
    fn relocate(&self, f: FieldError) -> FieldError {
        FieldError {
            field: self.field(),
            ..f
        }
    }

    /// `<name> in body <rest>`, kube-openapi's message shape.
    fn msg(&self, rest: &str) -> String {
        format!("{} in body {rest}", self.name)
    }
}

/// Go's `%v` of a float64 (`10`, `1.5`, `1e+06`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let s = format!("{f}");
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    }
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64()
}

fn integral(f: f64) -> bool {
    f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15
}

/// The types a node accepts (`x-kubernetes-int-or-string` is integer or string).
fn types(s: &Node) -> Vec<&str> {
    if s.int_or_string {
        vec!["integer", "string"]
    } else if s.type_.is_empty() {
        Vec::new()
    } else {
        vec![s.type_.as_str()]
    }
}

/// Validate `v` against `s`. `old` is the value at the same place in the stored object on
/// update: an unchanged value is not validated again (ratcheting).
pub(crate) fn validate(
    s: &Node,
    v: &Value,
    old: Option<&Value>,
    base: Option<&Path>,
    name: &str,
    _resource_root: bool,
    errs: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    let at = At { base, name };
    let ts = types(s);
    // Type.
    if v.is_null() {
        if !ts.is_empty() && !s.nullable {
            errs.push(at.err(
                ErrorType::TypeInvalid,
                BadValue::Str("null".into()),
                at.msg(&format!("must be of type {}: \"null\"", ts.join(","))),
            ));
        }
        if let Some(e) = &s.enum_ {
            if !s.nullable && !e.contains(v) {
                errs.push(enum_fail(&at, v, e));
            }
        }
        return;
    }
    let sch = type_name(v);
    let data_format = match v {
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "double",
        _ => "",
    };
    let is_float_int =
        sch == "number" && v.as_f64().is_some_and(integral) && ts.contains(&"integer");
    let is_int_float = sch == "integer" && ts.contains(&"number");
    if !ts.is_empty() || !s.format.is_empty() {
        let is_lower_int = s.format == "int64" && data_format == "int32";
        let is_lower_float = s.format == "double" && data_format == "float";
        let string_or_array = matches!(v, Value::String(_) | Value::Array(_));
        let numeric = ts.contains(&"number") || ts.contains(&"integer");
        // A string with a format of a non-numeric type: the format validator speaks.
        let formatted_string = !numeric && !s.format.is_empty() && string_or_array;
        let type_matches = ts.is_empty() || ts.contains(&sch) || is_float_int || is_int_float;
        if !string_or_array
            && !s.format.is_empty()
            && !(ts.contains(&sch)
                || data_format == s.format
                || is_float_int
                || is_int_float
                || is_lower_int
                || is_lower_float)
        {
            errs.push(at.err(
                ErrorType::TypeInvalid,
                BadValue::Str(data_format.into()),
                at.msg(&format!(
                    "must be of type {}: {}",
                    s.format,
                    rudder_api::go_quote(data_format)
                )),
            ));
        } else if !formatted_string && !type_matches {
            errs.push(at.err(
                ErrorType::TypeInvalid,
                BadValue::Str(sch.into()),
                at.msg(&format!(
                    "must be of type {}: {}",
                    ts.join(","),
                    rudder_api::go_quote(sch)
                )),
            ));
        }
    }
    // allOf / anyOf / oneOf / not.
    junctors(s, v, &at, errs);
    // String.
    if let Value::String(text) = v {
        string(s, text, &at, errs);
        if !s.format.is_empty() {
            if let Some(false) = crate::format::valid(&s.format, text) {
                errs.push(at.err(
                    ErrorType::TypeInvalid,
                    BadValue::Str(text.clone()),
                    at.msg(&format!(
                        "must be of type {}: {}",
                        s.format,
                        rudder_api::go_quote(text)
                    )),
                ));
            }
        }
    }
    // Number.
    if v.is_number() {
        number(s, v, &at, errs);
    }
    // Array.
    if let Value::Array(items) = v {
        if let Some(is) = &s.items {
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let old_item = correlate(s, item, old_items);
                let n = format!("{name}[{i}]");
                validate(is, item, old_item, base, &n, false, errs);
            }
        }
        let size = items.len() as i64;
        size_bounds(&at, size, s.min_items, s.max_items, "items", errs);
        if s.unique_items {
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].iter().any(|b| b == a));
            if dup {
                errs.push(at.err(
                    ErrorType::Invalid,
                    BadValue::Str(String::new()),
                    at.msg("shouldn't contain duplicates"),
                ));
            }
        }
    }
    // Enum.
    if let Some(e) = &s.enum_ {
        if !e.iter().any(|x| enum_equal(x, v)) {
            errs.push(enum_fail(&at, v, e));
        }
    }
    // Object.
    if let Value::Object(m) = v {
        let size = m.len() as i64;
        size_bounds(
            &at,
            size,
            s.min_properties,
            s.max_properties,
            "properties",
            errs,
        );
        let old_map = old.and_then(Value::as_object);
        if let Some(Additional::Allows(false)) = &s.additional {
            for k in m.keys() {
                if !s.properties.contains_key(k) {
                    errs.push(at.err(
                        ErrorType::Invalid,
                        BadValue::Str(k.clone()),
                        format!("{}.{k} in body is a forbidden property", name),
                    ));
                }
            }
        } else if let Some(Additional::Schema(a)) = &s.additional {
            for (k, child) in m {
                if !s.properties.contains_key(k) {
                    let n = format!("{name}.{k}");
                    let o = old_map.and_then(|o| o.get(k));
                    validate(a, child, o, base, &n, false, errs);
                }
            }
        }
        for (k, prop) in &s.properties {
            if let Some(child) = m.get(k) {
                let n = if name.is_empty() {
                    k.clone()
                } else {
                    format!("{name}.{k}")
                };
                let o = old_map.and_then(|o| o.get(k));
                validate(prop, child, o, base, &n, false, errs);
            }
        }
        for k in &s.required {
            if !m.contains_key(k) {
                let n = format!("{name}.{k}");
                let field = At {
                    base,
                    name: n.trim_start_matches('.'),
                }
                .field();
                errs.push(FieldError {
                    error_type: ErrorType::Required,
                    field,
                    bad_value: BadValue::Str(String::new()),
                    detail: String::new(),
                });
            }
        }
    }
}

/// `minItems`/`maxItems` and `minProperties`/`maxProperties`: too few is kube-openapi's
/// message, too many apiextensions' `TooMany`.
fn size_bounds(
    at: &At,
    size: i64,
    min: Option<i64>,
    max: Option<i64>,
    what: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(min) = min.filter(|m| size < *m) {
        errs.push(at.err(
            ErrorType::Invalid,
            BadValue::Int(size),
            at.msg(&format!("should have at least {min} {what}")),
        ));
    }
    if let Some(max) = max.filter(|m| size > *m) {
        errs.push(at.relocate(FieldError::too_many(&Path::nil(), Some(size), max)));
    }
}

/// The old item an array item is compared with for ratcheting: by key for map lists, by
/// value for sets; other lists are not correlated (upstream correlates only those two).
pub(crate) fn correlate<'a>(
    s: &Node,
    item: &Value,
    old: Option<&'a Vec<Value>>,
) -> Option<&'a Value> {
    let old = old?;
    match s.list_type.as_deref() {
        Some("map") => {
            let key = map_key(item, &s.list_map_keys);
            old.iter().find(|o| map_key(o, &s.list_map_keys) == key)
        }
        Some("set") => old.iter().find(|o| *o == item),
        _ => None,
    }
}

fn map_key(item: &Value, keys: &[String]) -> BTreeMap<String, Value> {
    keys.iter()
        .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// kube-openapi converts the value to the enum member's Go type before comparing: an
/// integer matches an equal float member and vice versa.
fn enum_equal(member: &Value, v: &Value) -> bool {
    match (member, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

fn enum_fail(at: &At, v: &Value, e: &[Value]) -> FieldError {
    let values: Vec<String> = e
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    at.relocate(FieldError::not_supported(
        &Path::nil(),
        bad_value(v),
        &values,
    ))
}

fn string(s: &Node, text: &str, at: &At, errs: &mut Vec<FieldError>) {
    let len = text.chars().count() as i64;
    if let Some(max) = s.max_length {
        if len > max {
            errs.push(at.relocate(FieldError::too_long(&Path::nil(), max)));
            return;
        }
    }
    if let Some(min) = s.min_length {
        if len < min {
            errs.push(at.err(
                ErrorType::Invalid,
                BadValue::Str(text.to_owned()),
                at.msg(&format!("should be at least {min} chars long")),
            ));
            return;
        }
    }
    if let Some(p) = &s.pattern {
        let matched = match &p.re {
            Ok(re) => re.is_match(text),
            Err(e) => {
                errs.push(at.err(
                    ErrorType::Invalid,
                    BadValue::Str(text.to_owned()),
                    at.msg(&format!(
                        "should match '{}, but pattern is invalid: {e}'",
                        p.source
                    )),
                ));
                return;
            }
        };
        if !matched {
            errs.push(at.err(
                ErrorType::Invalid,
                BadValue::Str(text.to_owned()),
                at.msg(&format!("should match '{}'", p.source)),
            ));
        }
    }
}

/// kube-openapi's `IsValueValidAgainstRange` for the node's single type and format: an
/// integer must be integral and fit its format, a `float` must fit 32 bits. Its error is a
/// plain one, so apiextensions reports it at the caller's path with an empty value.
fn range_check(s: &Node, v: &Value, at: &At, errs: &mut Vec<FieldError>) {
    let f = v.as_f64().unwrap_or_default();
    let (type_name, format, ok) = match (s.type_.as_str(), s.format.as_str()) {
        ("integer", "int32") => (
            "integer",
            "int32",
            match v.as_i64() {
                Some(i) => i32::try_from(i).is_ok(),
                None => integral(f) && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX),
            },
        ),
        ("integer", fmt) => (
            "integer",
            if fmt == "int64" { "int64" } else { "" },
            v.as_i64().is_some() || (v.as_u64().is_none() && f.fract() == 0.0 && f.abs() < 9.2e18),
        ),
        ("number", "float") => ("number", "float", f.abs() <= f64::from(f32::MAX)),
        _ => return,
    };
    if !ok {
        let detail = if format.is_empty() {
            format!(
                "Checked value must be of type {type_name} (default format) in {}",
                at.name
            )
        } else {
            format!(
                "Checked value must be of type {type_name} with format {format} in {}",
                at.name
            )
        };
        errs.push(FieldError {
            error_type: ErrorType::Invalid,
            field: at.base_field(),
            bad_value: BadValue::Str(String::new()),
            detail,
        });
    }
}

fn number(s: &Node, v: &Value, at: &At, errs: &mut Vec<FieldError>) {
    range_check(s, v, at, errs);
    let f = v.as_f64().unwrap_or_default();
    let int = as_int(v);
    let value = bad_value(v);
    if let Some(m) = s.multiple_of {
        let bad = match int {
            // checked: `i64::MIN % -1` overflows.
            Some(i) if integral(m) && m != 0.0 => i.checked_rem(m as i64).is_some_and(|r| r != 0),
            _ => {
                let q = f / m;
                q.fract() != 0.0
            }
        };
        if bad {
            let shown = match int {
                Some(_) if integral(m) => format!("{}", m as i64),
                _ => go_float(m),
            };
            errs.push(at.err(
                ErrorType::Invalid,
                value.clone(),
                at.msg(&format!("should be a multiple of {shown}")),
            ));
        }
    }
    let bound = |b: f64| match int {
        Some(_) if integral(b) => format!("{}", b as i64),
        _ => go_float(b),
    };
    if let Some(max) = s.maximum {
        let over = match int {
            Some(i) if integral(max) => {
                let m = max as i64;
                if s.exclusive_maximum {
                    i >= m
                } else {
                    i > m
                }
            }
            _ => {
                if s.exclusive_maximum {
                    f >= max
                } else {
                    f > max
                }
            }
        };
        if over {
            let rel = if s.exclusive_maximum {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(at.err(
                ErrorType::Invalid,
                value.clone(),
                at.msg(&format!("should be {rel} {}", bound(max))),
            ));
        }
    }
    if let Some(min) = s.minimum {
        let under = match int {
            Some(i) if integral(min) => {
                let m = min as i64;
                if s.exclusive_minimum {
                    i <= m
                } else {
                    i < m
                }
            }
            _ => {
                if s.exclusive_minimum {
                    f <= min
                } else {
                    f < min
                }
            }
        };
        if under {
            let rel = if s.exclusive_minimum {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(at.err(
                ErrorType::Invalid,
                value,
                at.msg(&format!("should be {rel} {}", bound(min))),
            ));
        }
    }
}

/// `allOf`, `anyOf`, `oneOf`, `not`: upstream reports the composite failure at the caller's
/// path (nil for a custom resource, so `<nil>`) plus the best failing branch's errors.
fn junctors(s: &Node, v: &Value, at: &At, errs: &mut Vec<FieldError>) {
    let run = |n: &Node| {
        let mut e = Vec::new();
        validate(n, v, None, at.base, at.name, false, &mut e);
        e
    };
    let composite = |msg: String| FieldError {
        error_type: ErrorType::Invalid,
        field: at.base_field(),
        bad_value: BadValue::Str(String::new()),
        detail: msg,
    };
    let quoted = rudder_api::go_quote(at.name);
    if !s.any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = s.any_of.iter().map(run).collect();
        if !results.iter().any(Vec::is_empty) {
            errs.push(composite(format!(
                "{quoted} must validate at least one schema (anyOf)"
            )));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }
    if !s.one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = s.one_of.iter().map(run).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            let extra = if valid == 0 {
                "Found none valid".to_owned()
            } else {
                format!("Found {valid} valid alternatives")
            };
            errs.push(composite(format!(
                "{quoted} must validate one and only one schema (oneOf). {extra}"
            )));
            if valid == 0 {
                if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                    errs.extend(best);
                }
            }
        }
    }
    if !s.all_of.is_empty() {
        let mut validated = 0;
        for n in &s.all_of {
            let r = run(n);
            if r.is_empty() {
                validated += 1;
            }
            errs.extend(r);
        }
        if validated != s.all_of.len() {
            let extra = if validated == 0 {
                ". None validated"
            } else {
                ""
            };
            errs.push(composite(format!(
                "{quoted} must validate all the schemas (allOf){extra}"
            )));
        }
    }
    if let Some(not) = &s.not {
        if run(not).is_empty() {
            errs.push(composite(format!(
                "{quoted} must not validate the schema (not)"
            )));
        }
    }
}

/// Upstream `ValidateListSetsAndMaps`: items of `x-kubernetes-list-type: set` lists are
/// unique, and so are the keys of `map` lists.
pub(crate) fn list_types(
    s: &Node,
    v: &Value,
    old: Option<&Value>,
    at: &Path,
    errs: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    let at_child = |k: &str| crate::schema::child(at, k);
    match v {
        Value::Object(m) => {
            let old_map = old.and_then(Value::as_object);
            for (k, child) in m {
                if let Some(prop) = s.property(k) {
                    list_types(
                        prop,
                        child,
                        old_map.and_then(|o| o.get(k)),
                        &at_child(k),
                        errs,
                    );
                }
            }
        }
        Value::Array(items) => {
            match s.list_type.as_deref() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            errs.push(FieldError::duplicate(&at.index(i), bad_value(item)));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<BTreeMap<String, Value>> =
                        items.iter().map(|i| map_key(i, &s.list_map_keys)).collect();
                    for (i, k) in keys.iter().enumerate() {
                        if keys[..i].contains(k) {
                            let shown: serde_json::Map<String, Value> =
                                k.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
                            errs.push(FieldError::duplicate(
                                &at.index(i),
                                BadValue::Json(Value::Object(shown)),
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(is) = &s.items {
                let old_items = old.and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    let o = correlate(s, item, old_items);
                    list_types(is, item, o, &at.index(i), errs);
                }
            }
        }
        _ => {}
    }
}
