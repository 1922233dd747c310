//! JSON object → protobuf object bytes, the inverse of `decode`.
//!
//! Strict on purpose: a key the schema does not know (a field newer than the schema) is an error
//! rather than silently dropped, so a caller encoding a response can fall back to JSON instead of
//! losing data.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Path, ProtobufError};
use crate::schema::{Card, Message, Special, Ty};
use crate::timefmt;
use crate::wire::{put_int, put_len};

const MAX_DEPTH: u32 = 64;

/// Encodes `obj` as `msg`. `top` skips `apiVersion`/`kind`, which live in the envelope.
pub(crate) fn object(
    obj: &Map<String, Value>,
    msg: &'static Message,
    path: &Path,
    depth: u32,
    top: bool,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(path.encode_error("objects nested too deeply"));
    }
    for key in obj.keys() {
        if !(top && (key == "apiVersion" || key == "kind")) && !accepts(msg, key) {
            return Err(path
                .field(key)
                .encode_error(format!("not a field of {}", msg.name)));
        }
    }
    fields(obj, msg, path, depth, out)
}

/// Whether `key` is a field of `msg` or of a struct embedded in it.
fn accepts(msg: &'static Message, key: &str) -> bool {
    msg.fields.iter().any(|f| match (f.card, f.ty) {
        (Card::Inline, Ty::Message(inner)) => accepts(inner, key),
        _ => f.json == key,
    })
}

fn fields(
    obj: &Map<String, Value>,
    msg: &'static Message,
    path: &Path,
    depth: u32,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    for field in msg.fields {
        if let (Card::Inline, Ty::Message(inner)) = (field.card, field.ty) {
            // Go writes an embedded struct even when all of its fields are empty.
            let mut buf = Vec::new();
            fields(obj, inner, path, depth + 1, &mut buf)?;
            put_len(out, field.number, &buf);
            continue;
        }
        let Some(v) = obj.get(field.json) else {
            continue;
        };
        if v.is_null() {
            // `null` is how Go prints a zero Time or an empty RawExtension, which gogo writes as
            // an empty message; for anything else it means "unset".
            if let (Card::One, Ty::Message(inner)) = (field.card, field.ty) {
                if matches!(
                    inner.special,
                    Special::Time | Special::MicroTime | Special::RawJson
                ) {
                    put_len(out, field.number, b"");
                }
            }
            continue;
        }
        let fpath = path.field(field.json);
        match field.card {
            Card::One | Card::Inline => value(field.number, field.ty, v, &fpath, depth, out)?,
            Card::Repeated => {
                let items = v
                    .as_array()
                    .ok_or_else(|| fpath.encode_error("expected an array"))?;
                for (i, item) in items.iter().enumerate() {
                    value(field.number, field.ty, item, &fpath.index(i), depth, out)?;
                }
            }
            Card::Map => {
                let map = v
                    .as_object()
                    .ok_or_else(|| fpath.encode_error("expected an object"))?;
                // gogo writes map entries in key order; sort in case serde_json keeps insertion
                // order (its `preserve_order` feature may be on elsewhere in the workspace).
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    let mut entry = Vec::new();
                    put_len(&mut entry, 1, key.as_bytes());
                    let item = &map[key.as_str()];
                    value(2, field.ty, item, &fpath.key(key), depth, &mut entry)?;
                    put_len(out, field.number, &entry);
                }
            }
        }
    }
    Ok(())
}

/// Writes one value of field `number`. JSON null inside a list or map stands for the zero value.
fn value(
    number: u32,
    ty: Ty,
    v: &Value,
    path: &Path,
    depth: u32,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    match ty {
        Ty::String => put_len(out, number, str_or_null(v, path)?.as_bytes()),
        Ty::Bytes => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(str_or_null(v, path)?)
                .map_err(|e| path.encode_error(format!("invalid base64: {e}")))?;
            put_len(out, number, &raw);
        }
        Ty::Bool => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::Null => false,
                _ => return Err(path.encode_error("expected a boolean")),
            };
            put_int(out, number, i64::from(b));
        }
        Ty::Int32 => {
            let n = int(v, path)?;
            let n = i32::try_from(n).map_err(|_| path.encode_error("out of range for int32"))?;
            put_int(out, number, i64::from(n));
        }
        Ty::Int64 => put_int(out, number, int(v, path)?),
        Ty::Message(msg) => {
            let mut buf = Vec::new();
            message(v, msg, path, depth + 1, &mut buf)?;
            put_len(out, number, &buf);
        }
    }
    Ok(())
}

fn message(
    v: &Value,
    msg: &'static Message,
    path: &Path,
    depth: u32,
    out: &mut Vec<u8>,
) -> Result<(), ProtobufError> {
    match msg.special {
        Special::None => match v {
            Value::Object(obj) => object(obj, msg, path, depth, false, out)?,
            Value::Null => {}
            _ => return Err(path.encode_error("expected an object")),
        },
        Special::Time | Special::MicroTime => {
            if let Value::String(text) = v {
                let (seconds, nanos) =
                    timefmt::parse_rfc3339(text).map_err(|e| path.encode_error(e))?;
                put_int(out, 1, seconds);
                put_int(out, 2, i64::from(nanos));
            } else if !v.is_null() {
                return Err(path.encode_error("expected an RFC 3339 time string"));
            }
        }
        Special::Duration => {
            let text = v
                .as_str()
                .ok_or_else(|| path.encode_error("expected a duration string"))?;
            let nanos = timefmt::parse_go_duration(text).map_err(|e| path.encode_error(e))?;
            put_int(out, 1, nanos);
        }
        Special::Quantity => {
            // Go's Quantity also accepts a bare JSON number.
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(path.encode_error("expected a quantity string")),
            };
            put_len(out, 1, text.as_bytes());
        }
        Special::IntOrString => {
            // gogo writes all three fields of the struct, whichever is in use.
            match v {
                Value::Number(_) => {
                    let n = i32::try_from(int(v, path)?)
                        .map_err(|_| path.encode_error("out of range for int32"))?;
                    put_int(out, 1, 0);
                    put_int(out, 2, i64::from(n));
                    put_len(out, 3, b"");
                }
                Value::String(s) => {
                    put_int(out, 1, 1);
                    put_int(out, 2, 0);
                    put_len(out, 3, s.as_bytes());
                }
                _ => return Err(path.encode_error("expected an integer or a string")),
            }
        }
        Special::RawJson => {
            let raw = serde_json::to_vec(v).map_err(|e| path.encode_error(e))?;
            put_len(out, 1, &raw);
        }
        Special::StringList => {
            let items = v
                .as_array()
                .ok_or_else(|| path.encode_error("expected an array of strings"))?;
            for (i, item) in items.iter().enumerate() {
                put_len(out, 1, str_or_null(item, &path.index(i))?.as_bytes());
            }
        }
    }
    Ok(())
}

fn str_or_null<'a>(v: &'a Value, path: &Path) -> Result<&'a str, ProtobufError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Ok(""),
        _ => Err(path.encode_error("expected a string")),
    }
}

/// Go's JSON decoder takes `2.0` for an int; so do we, but not `2.5`.
fn int(v: &Value, path: &Path) -> Result<i64, ProtobufError> {
    if v.is_null() {
        return Ok(0);
    }
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(path.encode_error("expected an integer")),
    }
}
