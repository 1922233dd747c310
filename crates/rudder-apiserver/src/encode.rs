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
    PartialMetadata,
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
/// kinds this server does not render (protobuf) are skipped when JSON is also acceptable.
pub fn negotiate(accept: Option<&str>, query: &Query) -> Result<Output, ApiError> {
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
                if param("g") == Some("meta.k8s.io")
                    && matches!(param("v"), Some("v1") | Some("v1beta1")) =>
            {
                let include = match query.get("includeObject") {
                    Some("None") => IncludeObject::None,
                    Some("Object") => IncludeObject::Object,
                    _ => IncludeObject::Metadata,
                };
                return Ok(Output::Table(include));
            }
            ("application/json", Some("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if param("g") == Some("meta.k8s.io") =>
            {
                return Ok(Output::PartialMetadata)
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
    }
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
    let rows = rudder_resources::printers::table_rows(
        &info.group,
        &info.kind,
        objs.iter().copied(),
        SystemTime::now(),
    )
    .map_err(ApiError::internal_error)?;
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            let obj = objs[row.index];
            let mut r = json!({"cells": row.cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => r["object"] = partial_metadata(obj),
                IncludeObject::Object => r["object"] = obj.clone(),
            }
            if let Some(c) = row.conditions {
                r["conditions"] = c;
            }
            r
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    Ok(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": rudder_resources::printers::column_definitions(info),
        "rows": rows,
    }))
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
                "items": items.iter().map(|o| o.value.clone()).collect::<Vec<_>>(),
            });
            yaml_response(StatusCode::OK, &list)
        }
        Output::Table(include) => {
            let objs: Vec<&Value> = items.iter().map(|o| &o.value).collect();
            let t = table(entry, &objs, include, Some(rv), continue_token)?;
            Ok(json_response(StatusCode::OK, &t))
        }
        Output::PartialMetadata => {
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
                    "items": items.iter().map(|o| partial_metadata(&o.value)).collect::<Vec<_>>(),
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
    let value = entry.strategy.storage_to_version(o.value.clone());
    let json = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    Arc::new(CachedObject {
        key: o.key.clone(),
        revision: o.revision,
        value,
        json,
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
            negotiate(Some(table), &q).unwrap(),
            Output::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                &q
            )
            .unwrap(),
            Output::Json
        );
        assert_eq!(negotiate(None, &q).unwrap(), Output::Json);
        assert_eq!(
            negotiate(Some("application/yaml"), &q).unwrap(),
            Output::Yaml
        );
        assert_eq!(negotiate(Some("*/*"), &q).unwrap(), Output::Json);
        assert_eq!(negotiate(Some("text/html"), &q).unwrap_err().code, 406);
        let q = Query::parse(Some("includeObject=Object"));
        assert_eq!(
            negotiate(Some(table), &q).unwrap(),
            Output::Table(IncludeObject::Object)
        );
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
