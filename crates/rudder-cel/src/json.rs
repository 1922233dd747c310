//! JSON ↔ CEL values, as upstream's unstructured conversion does it: JSON integers stay `int`,
//! numbers with a fraction or exponent (or beyond int64) are `double`, objects are maps with string
//! keys, and an int-or-string field is whichever of the two the JSON holds.

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString,
};
use cel::common::value::Val;
use cel::Value;
use std::collections::HashMap;

/// Converts a JSON document into a CEL value the interpreter can borrow for every evaluation.
pub fn to_val(json: &serde_json::Value) -> Box<dyn Val> {
    match json {
        serde_json::Value::Null => Box::new(CelNull),
        serde_json::Value::Bool(b) => Box::new(CelBool::from(*b)),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            // Upstream decodes JSON numbers into int64 or float64: a uint64 beyond int64 is a float.
            None => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        serde_json::Value::String(s) => Box::new(CelString::from(s.clone())),
        serde_json::Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>()))
        }
        serde_json::Value::Object(fields) => Box::new(CelMap::from(
            fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.clone()), to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

/// Converts a JSON document into an owned CEL [`Value`].
pub fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.clone()),
        serde_json::Value::Array(items) => {
            Value::List(items.iter().map(to_value).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(fields) => Value::Map(cel::objects::Map {
            map: std::sync::Arc::new(
                fields
                    .iter()
                    .map(|(k, v)| (cel::objects::Key::from(k.clone()), to_value(v)))
                    .collect(),
            ),
        }),
    }
}

/// Why a CEL value has no JSON form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct NotJson(pub String);

/// Converts a CEL value into JSON: bytes become base64 (as Kubernetes serializes `[]byte`),
/// timestamps RFC 3339, durations Go's `1h2m3s` form, quantities and other opaque values their
/// string form.
pub fn from_value(value: &Value) -> Result<serde_json::Value, NotJson> {
    use base64::Engine as _;
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| NotJson(format!("{f} has no JSON representation")))?,
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::Bytes(b) => serde_json::Value::String(
            base64::engine::general_purpose::STANDARD.encode(b.as_slice()),
        ),
        Value::List(items) => {
            serde_json::Value::Array(items.iter().map(from_value).collect::<Result<_, _>>()?)
        }
        Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    cel::objects::Key::String(s) => s.to_string(),
                    cel::objects::Key::Int(i) => i.to_string(),
                    cel::objects::Key::Uint(u) => u.to_string(),
                    cel::objects::Key::Bool(b) => b.to_string(),
                };
                out.insert(key, from_value(v)?);
            }
            serde_json::Value::Object(out)
        }
        Value::Timestamp(t) => {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        }
        Value::Duration(d) => serde_json::Value::String(go_duration(d)),
        // An optional is its value, or null when absent.
        Value::Opaque(o) if o.downcast_ref::<cel::objects::OptionalValue>().is_some() => {
            match o
                .downcast_ref::<cel::objects::OptionalValue>()
                .and_then(|v| v.value())
            {
                Some(inner) => from_value(inner)?,
                None => serde_json::Value::Null,
            }
        }
        Value::Opaque(o) => match o.json() {
            Some(v) => v,
            None => {
                return Err(NotJson(format!(
                    "a value of type {} has no JSON representation",
                    o.runtime_type_name()
                )))
            }
        },
        // An object initializer (`Object{...}`, `JSONPatch{...}`) is the object of its fields.
        Value::Struct(st) => {
            let mut out = serde_json::Map::new();
            for (field, v) in st.field_values() {
                let v = Value::try_from(v.as_ref()).map_err(|e| NotJson(e.to_string()))?;
                out.insert(field, from_value(&v)?);
            }
            serde_json::Value::Object(out)
        }
        other => {
            return Err(NotJson(format!(
                "a value of type {} has no JSON representation",
                other.type_of()
            )))
        }
    })
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(d: &chrono::Duration) -> String {
    let nanos = d
        .num_nanoseconds()
        .map(i128::from)
        .unwrap_or_else(|| i128::from(d.num_seconds()) * 1_000_000_000);
    if nanos == 0 {
        return "0s".to_string();
    }
    let neg = nanos < 0;
    let n = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if n < 1_000_000_000 {
        // Below a second Go picks the largest unit that keeps an integer part.
        let (unit, scale) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(n, scale));
        out.push_str(unit);
        return out;
    }
    let hours = n / 3_600_000_000_000;
    let rest = n % 3_600_000_000_000;
    let minutes = rest / 60_000_000_000;
    let rest = rest % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(rest, 1_000_000_000));
    out.push('s');
    out
}

fn fraction(n: u128, scale: u128) -> String {
    let whole = n / scale;
    let frac = n % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
