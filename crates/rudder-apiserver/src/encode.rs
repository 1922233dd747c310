//! Content negotiation: what a client sends (JSON, YAML, Kubernetes protobuf) and what it gets
//! (JSON, YAML, `meta.k8s.io/v1` Table, PartialObjectMetadata).

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, StatusCode};
use rudder_api::status::ApiError;
use rudder_registry::{CachedObject, Entry};
use serde_json::{json, Value};

use crate::request::Query;

pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// How a response is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    Table(IncludeObject),
    /// `as=PartialObjectMetadata`: one object's metadata (also each event of a watch).
    PartialMetadata,
    /// `as=PartialObjectMetadataList`: a list of metadata.
    PartialMetadataList,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

struct MediaType<'a> {
    essence: String,
    params: Vec<(&'a str, &'a str)>,
}

fn media_types(accept: &str) -> impl Iterator<Item = MediaType<'_>> {
    accept.split(',').map(|part| {
        let mut it = part.split(';');
        let essence = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = it
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim(), v.trim()))
            })
            .collect();
        MediaType { essence, params }
    })
}

/// Pick the response form from `Accept`, in the client's order of preference. The
/// kinds this server does not render (protobuf) are skipped when JSON is also acceptable, and so
/// is a Table where the endpoint has no table convertor (`tables` false: reviews, bindings),
/// as upstream's `AllowsMediaTypeTransform` does; nothing acceptable left is a 406.
pub fn negotiate(accept: Option<&str>, query: &Query, tables: bool) -> Result<Output, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Output::Json);
    };
    for mt in media_types(accept) {
        let param = |k: &str| mt.params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let essence = mt.essence.as_str();
        match (essence, param("as")) {
            ("application/json" | "*/*" | "application/*", None) => return Ok(Output::Json),
            ("application/yaml", None) => return Ok(Output::Yaml),
            ("application/json", Some("Table"))
                if tables
                    && param("g") == Some("meta.k8s.io")
                    && matches!(param("v"), Some("v1") | Some("v1beta1")) =>
            {
                let include = match query.get("includeObject") {
                    Some("None") => IncludeObject::None,
                    Some("Object") => IncludeObject::Object,
                    _ => IncludeObject::Metadata,
                };
                return Ok(Output::Table(include));
            }
            (
                "application/json",
                Some(kind @ ("PartialObjectMetadata" | "PartialObjectMetadataList")),
            ) if param("g") == Some("meta.k8s.io")
                && matches!(param("v"), Some("v1") | Some("v1beta1")) =>
            {
                return Ok(if kind == "PartialObjectMetadata" {
                    Output::PartialMetadata
                } else {
                    Output::PartialMetadataList
                });
            }
            _ => {}
        }
    }
    Err(ApiError::not_acceptable(&[JSON, YAML, PROTOBUF]))
}

/// Decode a create or update body by its Content-Type.
pub fn decode_body(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_else(|| JSON.to_string());
    match essence.as_str() {
        "application/json" | "" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
            serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
        }
        PROTOBUF => rudder_protobuf::decode_object(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}"))),
        _ => Err(ApiError::unsupported_media_type(&[JSON, YAML, PROTOBUF])),
    }
}

pub fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error as upstream sends it: a `Status` object.
pub fn error_response(err: &ApiError) -> Response {
    let mut resp = json_response(status_code(err.code), &err.to_json());
    if let Some(secs) = err.retry_after_seconds() {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

/// An error as upstream's `ErrorNegotiated` writes it: in the client's first plain media type
/// (JSON or YAML), or, when the client accepts only transformed forms (a Table, metadata), as
/// `WriteRawJSON` does: indented JSON in the Status's field order.
pub fn error_negotiated(accept: Option<&str>, err: &ApiError) -> Response {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return error_response(err);
    };
    let plain = media_types(accept).find(|mt| {
        !mt.params.iter().any(|(k, _)| *k == "as")
            && matches!(
                mt.essence.as_str(),
                "application/json" | "application/yaml" | PROTOBUF | "*/*" | "application/*"
            )
    });
    match plain {
        Some(mt) if mt.essence == YAML => yaml_response(status_code(err.code), &err.to_json())
            .unwrap_or_else(|_| error_response(err)),
        Some(_) => error_response(err),
        None => raw_status(err),
    }
}

/// `metav1.Status` through Go's `json.MarshalIndent`, fields in the struct's order.
fn raw_status(err: &ApiError) -> Response {
    let v = err.to_json();
    let mut out = String::from("{");
    let mut first = true;
    for key in [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ] {
        let Some(field) = v.get(key) else { continue };
        let Ok(text) = serde_json::to_string_pretty(field) else {
            continue;
        };
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&format!("\n  \"{key}\": {}", text.replace('\n', "\n  ")));
    }
    out.push_str("\n}");
    let mut resp = bytes_response(status_code(err.code), JSON, Bytes::from(out));
    if let Some(secs) = err.retry_after_seconds() {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

pub fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(
        code,
        JSON,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}

pub fn bytes_response(code: StatusCode, content_type: &str, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// One object in the negotiated form.
pub fn object_response(
    entry: &Entry,
    code: StatusCode,
    obj: &Value,
    output: Output,
) -> Result<Response, ApiError> {
    match output {
        Output::Json => Ok(json_response(code, obj)),
        Output::Yaml => yaml_response(code, obj),
        Output::Table(include) => {
            let table = table(entry, &[obj], include, None, None)?;
            Ok(json_response(code, &table))
        }
        Output::PartialMetadata => Ok(json_response(code, &partial_metadata(obj))),
        Output::PartialMetadataList => Err(not_acceptable(format!(
            "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
            go_type(&entry.info.group, &entry.info.kind)
        ))),
    }
}

/// Upstream's `errNotAcceptable` from the response transforms: 406 with its own message.
pub fn not_acceptable(message: String) -> ApiError {
    ApiError::new_generic(
        406,
        rudder_api::status::StatusReason::NotAcceptable,
        message,
    )
}

/// The Go type (`%T`) of the internal object upstream's handlers transform: `*core.Pod`,
/// `*apps.Deployment`.
pub fn go_type(group: &str, kind: &str) -> String {
    let pkg = match group {
        "" | "events.k8s.io" => "core",
        "rbac.authorization.k8s.io" => "rbac",
        "flowcontrol.apiserver.k8s.io" => "flowcontrol",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("*{pkg}.{kind}")
}

pub fn yaml_response(code: StatusCode, obj: &Value) -> Result<Response, ApiError> {
    let text = serde_saphyr::to_string(obj).map_err(ApiError::internal_error)?;
    Ok(bytes_response(code, YAML, Bytes::from(text)))
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A `meta.k8s.io/v1` Table of objects, with upstream's columns and cells for the kind.
pub fn table(
    entry: &Entry,
    objs: &[&Value],
    include: IncludeObject,
    resource_version: Option<String>,
    continue_token: Option<String>,
) -> Result<Value, ApiError> {
    let info = &entry.info;
    if let Some(columns) = entry.strategy.printer_columns() {
        let (defs, cells) =
            rudder_resources::printers::custom_table(columns, objs, SystemTime::now());
        let rows = cells
            .into_iter()
            .zip(objs)
            .map(|(cells, obj)| table_row(cells, obj, include))
            .collect();
        return Ok(table_doc(defs, rows, resource_version, continue_token));
    }
    kind_table(
        &info.group,
        &info.kind,
        objs,
        include,
        resource_version,
        continue_token,
    )
}

/// A Table of objects of `group`/`kind` (a resource's kind, or a subresource's such as Scale).
pub fn kind_table(
    group: &str,
    kind: &str,
    objs: &[&Value],
    include: IncludeObject,
    resource_version: Option<String>,
    continue_token: Option<String>,
) -> Result<Value, ApiError> {
    let rows = rudder_resources::printers::table_rows(
        group,
        kind,
        objs.iter().copied(),
        SystemTime::now(),
    )
    .map_err(ApiError::internal_error)?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let mut r = table_row(row.cells, objs[row.index], include);
            if let Some(c) = row.conditions {
                r["conditions"] = c;
            }
            r
        })
        .collect();
    Ok(table_doc(
        rudder_resources::printers::column_definitions_of(group, kind),
        rows,
        resource_version,
        continue_token,
    ))
}

fn table_row(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

fn table_doc(
    columns: Value,
    rows: Vec<Value>,
    resource_version: Option<String>,
    continue_token: Option<String>,
) -> Value {
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A list in the negotiated form. JSON lists are assembled from each object's cached bytes.
pub fn list_response(
    entry: &Entry,
    items: &[Arc<CachedObject>],
    revision: i64,
    continue_token: Option<String>,
    remaining: Option<i64>,
    output: Output,
) -> Result<Response, ApiError> {
    let rv = rudder_api::meta::format_resource_version(revision);
    let list_kind = format!("{}List", entry.info.kind);
    match output {
        Output::Json => {
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(r) = remaining {
                meta["remainingItemCount"] = json!(r);
            }
            let head = json!({"kind": list_kind, "apiVersion": entry.info.api_version(), "metadata": meta});
            let head = serde_json::to_vec(&head).map_err(ApiError::internal_error)?;
            let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
            let mut buf = BytesMut::with_capacity(head.len() + size + 16);
            // `{...head...}` with `,"items":[...]}` spliced in before the closing brace.
            buf.put_slice(&head[..head.len() - 1]);
            buf.put_slice(b",\"items\":[");
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                buf.put_slice(&o.json);
            }
            buf.put_slice(b"]}");
            Ok(bytes_response(StatusCode::OK, JSON, buf.freeze()))
        }
        Output::Yaml => {
            let list = json!({
                "kind": list_kind,
                "apiVersion": entry.info.api_version(),
                "metadata": {"resourceVersion": rv, "continue": continue_token},
                "items": items.iter().map(|o| o.value()).collect::<Vec<_>>(),
            });
            yaml_response(StatusCode::OK, &list)
        }
        Output::Table(include) => {
            let values: Vec<Value> = items.iter().map(|o| o.value()).collect();
            let objs: Vec<&Value> = values.iter().collect();
            let t = table(entry, &objs, include, Some(rv), continue_token)?;
            Ok(json_response(StatusCode::OK, &t))
        }
        Output::PartialMetadata => Err(not_acceptable(format!(
            "you requested PartialObjectMetadata, but the requested object is a list ({}List)",
            go_type(&entry.info.group, &entry.info.kind)
        ))),
        Output::PartialMetadataList => {
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = &continue_token {
                meta["continue"] = json!(c);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": items.iter().map(|o| partial_metadata(&o.value())).collect::<Vec<_>>(),
                }),
            ))
        }
    }
}

/// An object of the stored form in `entry`'s version (events.k8s.io events are stored as core
/// events): converted and re-encoded, keeping what selectors read.
pub fn in_version(entry: &Entry, o: &Arc<CachedObject>) -> Arc<CachedObject> {
    if !entry.strategy.converts() {
        return o.clone();
    }
    with_value(o, &entry.strategy.storage_to_version(o.value()))
}

/// Stored objects in `entry`'s version as [`in_version`] gives them, through the entry's
/// conversion webhook first when it has one (one call for them all).
pub async fn in_version_all(
    entry: &Entry,
    objs: &[Arc<CachedObject>],
) -> Result<Vec<Arc<CachedObject>>, ApiError> {
    let Some(converter) = &entry.converter else {
        return Ok(objs.iter().map(|o| in_version(entry, o)).collect());
    };
    let converted = converter
        .to_version(objs.iter().map(|o| o.value()).collect())
        .await?;
    Ok(objs
        .iter()
        .zip(converted)
        .map(|(o, v)| in_version(entry, &with_value(o, &v)))
        .collect())
}

fn with_value(o: &CachedObject, value: &Value) -> Arc<CachedObject> {
    Arc::new(CachedObject {
        key: o.key.clone(),
        revision: o.revision,
        json: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        labels: o.labels.clone(),
        fields: o.fields.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_client_preference() {
        let q = Query::default();
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(table), &q, true).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                &q,
                true
            )
            .unwrap(),
            Output::Json
        );
        assert_eq!(negotiate(None, &q, true).unwrap(), Output::Json);
        assert_eq!(
            negotiate(Some("application/yaml"), &q, true).unwrap(),
            Output::Yaml
        );
        assert_eq!(negotiate(Some("*/*"), &q, true).unwrap(), Output::Json);
        assert_eq!(
            negotiate(Some("text/html"), &q, true).unwrap_err().code,
            406
        );
        // No table convertor: the Table is skipped for the next acceptable type, else 406.
        assert_eq!(negotiate(Some(table), &q, false).unwrap(), Output::Json);
        let only = "application/json;as=Table;v=v1;g=meta.k8s.io";
        let err = negotiate(Some(only), &q, false).unwrap_err();
        assert_eq!(err.code, 406);
        assert_eq!(
            err.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        let pom = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
        assert_eq!(
            negotiate(Some(pom), &q, false).unwrap(),
            Output::PartialMetadataList
        );
        let q = Query::parse(Some("includeObject=Object"));
        assert_eq!(
            negotiate(Some(table), &q, true).unwrap(),
            Output::Table(IncludeObject::Object)
        );
    }

    #[test]
    fn errors_follow_the_accepted_type() {
        let err = ApiError::not_acceptable(&[JSON]);
        let body = |r: Response| async move {
            let b = http_body_util::BodyExt::collect(r.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8(b.to_vec()).unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let table_only = "application/json;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(
            rt.block_on(body(error_negotiated(Some(table_only), &err))),
            "{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {},\n  \"status\": \"Failure\",\n  \"message\": \"only the following media types are accepted: application/json\",\n  \"reason\": \"NotAcceptable\",\n  \"code\": 406\n}"
        );
        let yaml = error_negotiated(Some("application/yaml"), &err);
        assert_eq!(yaml.headers()[header::CONTENT_TYPE], YAML);
        let json = error_negotiated(Some(&format!("{table_only},application/json")), &err);
        assert_eq!(json.headers()[header::CONTENT_TYPE], JSON);
    }

    #[test]
    fn bodies_decode_by_content_type() {
        let v = decode_body(Some("application/json"), br#"{"a":1}"#).unwrap();
        assert_eq!(v["a"], 1);
        let v = decode_body(Some("application/yaml"), b"a: 1\nb: [x]\n").unwrap();
        assert_eq!(v["b"][0], "x");
        assert_eq!(decode_body(Some("text/plain"), b"x").unwrap_err().code, 415);
        assert_eq!(decode_body(None, b"{").unwrap_err().code, 400);
    }
}
