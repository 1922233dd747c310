//! Protobuf object bytes → the JSON upstream's Go types would marshal them to.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::error::{Path, ProtobufError};
use crate::schema::{Card, Message, Special, Ty};
use crate::timefmt;
use crate::wire::{Reader, WireType};

/// Kubernetes objects nest about a dozen messages deep; anything far beyond is hostile input, and
/// recursion must stay bounded on a server thread's stack.
const MAX_DEPTH: u32 = 64;

/// What one field has collected so far. Singular messages keep their raw slices because
/// protobuf merges repeated occurrences of a message field, which concatenating does for free.
enum Acc<'a> {
    Scalar(Value),
    Slices(Vec<&'a [u8]>),
    List(Vec<Value>),
    Map(Map<String, Value>),
}

/// Decodes a non-special message into a JSON object.
pub(crate) fn object(
    buf: &[u8],
    msg: &'static Message,
    path: &Path,
    depth: u32,
) -> Result<Map<String, Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(path.malformed("messages nested too deeply"));
    }
    let mut accs: Vec<Option<Acc>> = (0..msg.fields.len()).map(|_| None).collect();
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (number, wire) = r.tag().map_err(|e| path.malformed(e))?;
        let Ok(i) = msg.fields.binary_search_by_key(&number, |f| f.number) else {
            r.skip(wire).map_err(|e| path.malformed(e))?;
            continue;
        };
        let field = &msg.fields[i];
        let fpath = path.field(field.json);
        let acc = &mut accs[i];
        match (field.card, field.ty) {
            (Card::One | Card::Inline, Ty::Message(_)) => {
                let slice = len_delimited(&mut r, wire, &fpath)?;
                match acc {
                    Some(Acc::Slices(v)) => v.push(slice),
                    _ => *acc = Some(Acc::Slices(vec![slice])),
                }
            }
            (Card::One | Card::Inline, ty) => {
                *acc = Some(Acc::Scalar(scalar(&mut r, wire, ty, &fpath)?));
            }
            (Card::Repeated, ty) => {
                if !matches!(acc, Some(Acc::List(_))) {
                    *acc = Some(Acc::List(Vec::new()));
                }
                if let Some(Acc::List(list)) = acc {
                    repeated(&mut r, wire, ty, list, &fpath, depth)?;
                }
            }
            (Card::Map, ty) => {
                let entry = len_delimited(&mut r, wire, &fpath)?;
                let (key, value) = map_entry(entry, ty, &fpath, depth)?;
                match acc {
                    Some(Acc::Map(map)) => {
                        map.insert(key, value);
                    }
                    _ => {
                        let mut map = Map::new();
                        map.insert(key, value);
                        *acc = Some(Acc::Map(map));
                    }
                }
            }
        }
    }

    let mut out = Map::new();
    let mut inlined = Vec::new();
    for (field, acc) in msg.fields.iter().zip(accs) {
        let Some(acc) = acc else { continue };
        let fpath = path.field(field.json);
        let value = match acc {
            Acc::Scalar(v) if !field.keep_zero && is_zero(&v) => continue,
            Acc::Scalar(v) => v,
            Acc::Slices(slices) => {
                let joined;
                let bytes: &[u8] = match slices.as_slice() {
                    [one] => one,
                    many => {
                        joined = many.concat();
                        &joined
                    }
                };
                let Ty::Message(target) = field.ty else {
                    continue;
                };
                if field.card == Card::Inline {
                    inlined.push(object(bytes, target, &fpath, depth + 1)?);
                    continue;
                }
                match message(bytes, target, field.keep_zero, &fpath, depth + 1)? {
                    Some(v) => v,
                    None => continue,
                }
            }
            Acc::List(list) => Value::Array(list),
            Acc::Map(map) => Value::Object(map),
        };
        out.insert(field.json.to_string(), value);
    }
    // Go resolves name clashes between an embedded struct and the parent in favour of the
    // shallower field, hence `or_insert`.
    for map in inlined {
        for (k, v) in map {
            out.entry(k).or_insert(v);
        }
    }
    Ok(out)
}

/// Decodes any message value. `None` means "leave the field out": Go prints a zero time or an
/// empty RawExtension as `null`, which is noise unless the field has no `omitempty`.
pub(crate) fn message(
    buf: &[u8],
    msg: &'static Message,
    keep_zero: bool,
    path: &Path,
    depth: u32,
) -> Result<Option<Value>, ProtobufError> {
    let value = match msg.special {
        Special::None => Value::Object(object(buf, msg, path, depth)?),
        Special::Time | Special::MicroTime => {
            // Go writes the zero time as an empty message and decodes only that as zero (an
            // explicit {0, 0} is the epoch); the zero time marshals to JSON null.
            if buf.is_empty() {
                return Ok(keep_zero.then_some(Value::Null));
            }
            let seconds = int_field(buf, 1, path)?;
            let micro = msg.special == Special::MicroTime;
            // metav1.Time keeps whole seconds only; MicroTime normalises nanos like time.Unix.
            let (seconds, nanos) = if micro {
                let nanos = i64::from(int_field(buf, 2, path)? as i32);
                let carry = nanos.div_euclid(1_000_000_000);
                let seconds = seconds
                    .checked_add(carry)
                    .ok_or_else(|| path.malformed("time out of range"))?;
                (seconds, nanos.rem_euclid(1_000_000_000) as i32)
            } else {
                (seconds, 0)
            };
            let text =
                timefmt::format_rfc3339(seconds, nanos, micro).map_err(|e| path.malformed(e))?;
            Value::String(text)
        }
        Special::Duration => Value::String(timefmt::format_go_duration(int_field(buf, 1, path)?)),
        Special::Quantity => {
            let s = string_field(buf, 1, path)?.unwrap_or_default();
            // A zero Quantity marshals as "0" in Go.
            Value::String(if s.is_empty() { "0".to_string() } else { s })
        }
        Special::IntOrString => match int_field(buf, 1, path)? {
            0 => {
                // Protobuf int32 is the low 32 bits of the varint.
                Value::Number((int_field(buf, 2, path)? as i32).into())
            }
            1 => Value::String(string_field(buf, 3, path)?.unwrap_or_default()),
            other => return Err(path.malformed(format!("IntOrString type {other}"))),
        },
        Special::RawJson => {
            let raw = bytes_field(buf, 1, path)?.unwrap_or_default();
            if raw.is_empty() {
                return Ok(keep_zero.then_some(Value::Null));
            }
            if raw.starts_with(&crate::MAGIC) {
                crate::decode_object_at(raw, path, depth + 1)?
            } else {
                serde_json::from_slice(raw)
                    .map_err(|e| path.malformed(format!("embedded object is not JSON: {e}")))?
            }
        }
        Special::StringList => {
            let mut items = Vec::new();
            let mut r = Reader::new(buf);
            while !r.is_empty() {
                let (number, wire) = r.tag().map_err(|e| path.malformed(e))?;
                if number == 1 {
                    items.push(Value::String(read_string(&mut r, wire, path)?));
                } else {
                    r.skip(wire).map_err(|e| path.malformed(e))?;
                }
            }
            Value::Array(items)
        }
    };
    Ok(Some(value))
}

fn len_delimited<'a>(
    r: &mut Reader<'a>,
    wire: WireType,
    path: &Path,
) -> Result<&'a [u8], ProtobufError> {
    if wire != WireType::Len {
        return Err(path.malformed(format!("wire type {wire}, expected length-delimited")));
    }
    r.bytes().map_err(|e| path.malformed(e))
}

fn scalar(r: &mut Reader, wire: WireType, ty: Ty, path: &Path) -> Result<Value, ProtobufError> {
    Ok(match ty {
        Ty::String => Value::String(read_string(r, wire, path)?),
        Ty::Bytes => Value::String(
            base64::engine::general_purpose::STANDARD.encode(len_delimited(r, wire, path)?),
        ),
        Ty::Bool => Value::Bool(read_varint(r, wire, path)? != 0),
        // Protobuf int32 is the low 32 bits of the varint.
        Ty::Int32 => Value::Number((read_varint(r, wire, path)? as i32).into()),
        Ty::Int64 => Value::Number((read_varint(r, wire, path)? as i64).into()),
        Ty::Message(_) => return Err(path.malformed("message where a scalar was expected")),
    })
}

fn read_varint(r: &mut Reader, wire: WireType, path: &Path) -> Result<u64, ProtobufError> {
    if wire != WireType::Varint {
        return Err(path.malformed(format!("wire type {wire}, expected varint")));
    }
    r.varint().map_err(|e| path.malformed(e))
}

/// gogo does not validate UTF-8 and Go's JSON encoder replaces invalid bytes, as here.
fn read_string(r: &mut Reader, wire: WireType, path: &Path) -> Result<String, ProtobufError> {
    Ok(String::from_utf8_lossy(len_delimited(r, wire, path)?).into_owned())
}

fn repeated(
    r: &mut Reader,
    wire: WireType,
    ty: Ty,
    list: &mut Vec<Value>,
    path: &Path,
    depth: u32,
) -> Result<(), ProtobufError> {
    let item_path = path.index(list.len());
    match ty {
        Ty::Message(target) => {
            let bytes = len_delimited(r, wire, &item_path)?;
            let value = message(bytes, target, true, &item_path, depth + 1)?;
            list.push(value.unwrap_or(Value::Null));
        }
        // proto2 repeated scalars are unpacked, but a packed list must be accepted too.
        Ty::Bool | Ty::Int32 | Ty::Int64 if wire == WireType::Len => {
            let mut packed = Reader::new(r.bytes().map_err(|e| item_path.malformed(e))?);
            while !packed.is_empty() {
                list.push(scalar(
                    &mut packed,
                    WireType::Varint,
                    ty,
                    &path.index(list.len()),
                )?);
            }
        }
        _ => list.push(scalar(r, wire, ty, &item_path)?),
    }
    Ok(())
}

fn map_entry(
    entry: &[u8],
    ty: Ty,
    path: &Path,
    depth: u32,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut message_bytes: Option<&[u8]> = None;
    let mut r = Reader::new(entry);
    while !r.is_empty() {
        let (number, wire) = r.tag().map_err(|e| path.malformed(e))?;
        match (number, ty) {
            (1, _) => key = read_string(&mut r, wire, path)?,
            (2, Ty::Message(_)) => message_bytes = Some(len_delimited(&mut r, wire, path)?),
            (2, _) => value = Some(scalar(&mut r, wire, ty, path)?),
            _ => r.skip(wire).map_err(|e| path.malformed(e))?,
        }
    }
    let vpath = path.key(&key);
    // A missing value is the zero value, as in Go.
    let value = match ty {
        Ty::Message(target) => message(
            message_bytes.unwrap_or_default(),
            target,
            true,
            &vpath,
            depth + 1,
        )?
        .unwrap_or(Value::Null),
        _ => value.unwrap_or_else(|| zero(ty)),
    };
    Ok((key, value))
}

fn zero(ty: Ty) -> Value {
    match ty {
        Ty::String | Ty::Bytes => Value::String(String::new()),
        Ty::Bool => Value::Bool(false),
        Ty::Int32 | Ty::Int64 => Value::Number(Number::from(0)),
        Ty::Message(_) => Value::Null,
    }
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// Reads the last occurrence of an integer field of a small special message.
fn int_field(buf: &[u8], number: u32, path: &Path) -> Result<i64, ProtobufError> {
    let mut out = 0;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (n, wire) = r.tag().map_err(|e| path.malformed(e))?;
        if n == number {
            out = read_varint(&mut r, wire, path)? as i64;
        } else {
            r.skip(wire).map_err(|e| path.malformed(e))?;
        }
    }
    Ok(out)
}

fn bytes_field<'a>(
    buf: &'a [u8],
    number: u32,
    path: &Path,
) -> Result<Option<&'a [u8]>, ProtobufError> {
    let mut out = None;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (n, wire) = r.tag().map_err(|e| path.malformed(e))?;
        if n == number {
            out = Some(len_delimited(&mut r, wire, path)?);
        } else {
            r.skip(wire).map_err(|e| path.malformed(e))?;
        }
    }
    Ok(out)
}

fn string_field(buf: &[u8], number: u32, path: &Path) -> Result<Option<String>, ProtobufError> {
    Ok(bytes_field(buf, number, path)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}
