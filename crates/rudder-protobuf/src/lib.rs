//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) to and from JSON.
//!
//! Since client-go 1.32 kubectl's typed clients (`create deployment|namespace|secret|…`,
//! `auth can-i`, `auth whoami`, `create token`, `autoscale`, `debug`, drain's evictions) POST and
//! PUT protobuf and do not fall back to JSON on 415, so the API server must read protobuf. The
//! server works on JSON everywhere else, so this crate turns a protobuf body into exactly the JSON
//! the client would have sent, and lets the rest of the server stay JSON-only.
//!
//! # Wire format
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message
//! `{1: typeMeta {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}` where
//! `raw` is the object's own message (from upstream's `generated.proto`, proto2, written by
//! gogo-protobuf).
//!
//! # Approach: a generated static schema and a small hand-written codec
//!
//! Two other designs were considered:
//! - `k8s-pb` (kube-rs's prost types) at run time: it works with the workspace's prost 0.14 and
//!   decodes fine, but its structs have no serde and no reflection, so turning ~1200 message
//!   types into JSON would need per-type conversion code; it also takes ~25 s to compile.
//! - Vendored `generated.proto` compiled by `protox` in a build script plus `prost-reflect`
//!   walking a `DynamicMessage`: no per-type code, but a protobuf compiler in every build and a
//!   reflection runtime, and proto field names still are not always the JSON names (`uID` vs
//!   `uid`, `json:",inline"` embedded structs) nor do they say which fields Go omits when empty,
//!   so the same side tables would be needed anyway. The proto files would also have to be
//!   copied into the repository.
//!
//! Instead `tests/schema_fresh.rs` reads the sources of two crates cargo already downloads,
//! `k8s-pb` (field numbers, wire types, maps, Go doc comments) and `k8s-openapi` (exact JSON
//! names, required fields, the apiVersion/kind of every resource), and writes
//! `src/schema/generated.rs`: one static per message, pointing at each other. The codec walks
//! those tables; it is about 1,200 lines with the Kubernetes special types and the generator about
//! 600. Run time depends on `serde_json`, `base64` and `thiserror` only; the crate builds in under
//! 2 s (debug, dependencies built) and the tables cost nothing at start-up.
//!
//! # JSON semantics
//!
//! The JSON is what upstream's Go types would marshal after decoding the protobuf:
//! - gogo writes every non-pointer field, so zeros (`""`, `0`, `false`) are on the wire for
//!   fields the client never set. A zero scalar is dropped unless Go would keep it: fields
//!   without `omitempty` (required in OpenAPI, or without `+optional` in the Go doc), and pointer
//!   fields whose zero differs from unset (the doc names a non-zero default or a pointer, or a
//!   hand-checked list such as `replicas`, `runAsUser`, `automountServiceAccountToken`).
//! - Messages present on the wire are kept even when empty (`strategy: {}`, `resources: {}`),
//!   as Go's `omitempty` never drops a struct.
//! - `Time` → RFC 3339 in whole seconds, `MicroTime` → six fractional digits; the zero time (an
//!   empty message) is left out where optional and `null` where required (Go always writes
//!   `null`, e.g. `creationTimestamp: null`, which carries nothing). `Duration` → Go duration
//!   string, `Quantity` → its string, `IntOrString` → number or string, `RawExtension`/`FieldsV1`
//!   → the embedded JSON (or a nested `k8s\0` object), `bytes` → base64, `ExtraValue` → array,
//!   maps → objects, embedded Go structs (`json:",inline"`) → spliced into the parent.
//! - Field numbers the schema does not know are skipped, as gogo does.
//!
//! # Approximations
//!
//! - The schema is that of `k8s-pb` 0.9.0 (Kubernetes 1.35). Fields added in 1.36/1.37 have no
//!   field number here and are skipped like unknown fields (listed at the end of
//!   `generated.rs`); the encoder refuses them instead.
//! - Pointer-ness of Go fields is in neither source, so the zero rules above are heuristic. When
//!   wrong, the JSON differs by a zero the server defaults the same way (`stdin: false`), except
//!   for pointer fields missing from the hand-checked list, whose explicit zero would be lost.
//! - Quantities are passed through as sent, not canonicalised (`1000m` stays `1000m`).
//! - `contentEncoding`/`contentType` in the envelope must be empty (or the protobuf type);
//!   upstream ignores them.
//! - apiextensions (CRDs), the aggregator and metrics groups are not included.

mod decode;
mod encode;
mod error;
mod schema;
mod timefmt;
mod wire;

use serde_json::{Map, Value};

use crate::error::Path;
use crate::wire::{put_len, Reader, WireType};

pub use crate::error::ProtobufError;

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Decodes a `k8s\0`-prefixed protobuf body into the JSON object a client would have sent,
/// `apiVersion` and `kind` included.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_object_at(body, &Path::root(""), 0)
}

/// Encodes a JSON object (with `apiVersion` and `kind`) as a protobuf body, envelope included,
/// as client-go would. Fails on fields the schema does not know rather than dropping them.
pub fn encode_object(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let root = Path::root("");
    let obj = value
        .as_object()
        .ok_or_else(|| root.encode_error("expected a JSON object"))?;
    let type_field = |name: &'static str| {
        obj.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| root.field(name).encode_error("missing"))
    };
    let (api_version, kind) = (type_field("apiVersion")?, type_field("kind")?);
    let msg =
        schema::lookup_kind(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })?;
    let mut raw = Vec::new();
    encode::object(obj, msg, &root, 0, true, &mut raw)?;

    let mut type_meta = Vec::new();
    put_len(&mut type_meta, 1, api_version.as_bytes());
    put_len(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(raw.len() + type_meta.len() + 16);
    out.extend_from_slice(&MAGIC);
    put_len(&mut out, 1, &type_meta);
    put_len(&mut out, 2, &raw);
    // runtime.Unknown's contentEncoding and contentType: gogo writes the empty strings.
    put_len(&mut out, 3, b"");
    put_len(&mut out, 4, b"");
    Ok(out)
}

/// Whether bodies of this apiVersion/kind can be decoded, so a server can answer 415 up front.
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    schema::lookup_kind(api_version, kind).is_some()
}

/// Every apiVersion/kind with a schema. `CreateOptions`, `DeleteOptions`, `GetOptions`,
/// `ListOptions`, `PatchOptions` and `UpdateOptions` are listed under `meta.k8s.io/v1` but are
/// also accepted under every other listed apiVersion, as upstream registers them everywhere.
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::kinds()
}

struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

pub(crate) fn decode_object_at(
    body: &[u8],
    path: &Path,
    depth: u32,
) -> Result<Value, ProtobufError> {
    let rest = match body.strip_prefix(&MAGIC) {
        _ if body.is_empty() => return Err(ProtobufError::Empty),
        Some([]) => return Err(ProtobufError::Empty),
        Some(rest) => rest,
        None => return Err(ProtobufError::MissingMagic),
    };
    let env = envelope(rest)?;
    if env.kind.is_empty() {
        return Err(ProtobufError::MissingKind);
    }
    if env.api_version.is_empty() {
        return Err(ProtobufError::MissingApiVersion { kind: env.kind });
    }
    // Upstream ignores both fields and would then fail to parse; naming them is kinder.
    if !env.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(
            env.content_encoding,
        ));
    }
    if !env.content_type.is_empty() && env.content_type != CONTENT_TYPE {
        return Err(ProtobufError::UnsupportedContentType(env.content_type));
    }
    let msg = schema::lookup_kind(&env.api_version, &env.kind).ok_or_else(|| {
        ProtobufError::UnsupportedKind {
            api_version: env.api_version.clone(),
            kind: env.kind.clone(),
        }
    })?;
    let mut obj: Map<String, Value> = decode::object(env.raw, msg, path, depth)?;
    obj.insert("apiVersion".to_string(), Value::String(env.api_version));
    obj.insert("kind".to_string(), Value::String(env.kind));
    Ok(Value::Object(obj))
}

fn envelope(buf: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let path = Path::root("<envelope>");
    let mut env = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (number, wire) = r.tag().map_err(|e| path.malformed(e))?;
        if !(1..=4).contains(&number) {
            r.skip(wire).map_err(|e| path.malformed(e))?;
            continue;
        }
        if wire != WireType::Len {
            return Err(path.malformed(format!("field {number} has wire type {wire}")));
        }
        let bytes = r.bytes().map_err(|e| path.malformed(e))?;
        let text = || String::from_utf8_lossy(bytes).into_owned();
        match number {
            1 => {
                let tpath = path.field("typeMeta");
                let mut t = Reader::new(bytes);
                while !t.is_empty() {
                    let (n, w) = t.tag().map_err(|e| tpath.malformed(e))?;
                    let slot = match n {
                        1 => &mut env.api_version,
                        2 => &mut env.kind,
                        _ => {
                            t.skip(w).map_err(|e| tpath.malformed(e))?;
                            continue;
                        }
                    };
                    if w != WireType::Len {
                        return Err(tpath.malformed(format!("field {n} has wire type {w}")));
                    }
                    *slot = String::from_utf8_lossy(t.bytes().map_err(|e| tpath.malformed(e))?)
                        .into_owned();
                }
            }
            2 => env.raw = bytes,
            3 => env.content_encoding = text(),
            _ => env.content_type = text(),
        }
    }
    Ok(env)
}
