//! Rudder's OpenAPI v3 documents, as kube-apiserver serves them.
//!
//! - `GET /openapi/v3`: the index, `{"paths": {"api/v1": {"serverRelativeURL":
//!   "/openapi/v3/api/v1?hash=<HEX>"}, "apis/apps/v1": {...}, ...}}`, one entry per served
//!   group/version; the hash is the uppercase hex SHA-512 of that document's JSON, as upstream's
//!   kube-openapi computes it.
//! - `GET /openapi/v3/api/v1`, `GET /openapi/v3/apis/<group>/<version>`: an OpenAPI 3.0
//!   document with the `paths` of every resource of the group/version (module `paths`) and the
//!   `components.schemas` of every type they reach (module `schema`).
//!
//! The documents are generated, never written by hand or copied: the schemas come from
//! k8s-openapi's `schemars` support (its types are generated from upstream's OpenAPI
//! definitions, descriptions included), the list/patch extensions from upstream's field markers
//! (module `semantics`), and the paths from the resource table the router serves; only the
//! parameter descriptions are Rudder's own words. They are built once, on first use.
//!
//! kubectl needs these for `explain`, and for `apply`, `create -f`, `replace -f` and `edit`,
//! which refuse to run (without `--validate=false`) unless the PATCH operation of the kind
//! lists the `fieldValidation` parameter.
//!
//! `GET /openapi/v2`: one Swagger 2.0 document for every served group/version, converted from
//! the v3 documents (module `v2`), as JSON or, for
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf` (kubectl's
//! `explain --output=plaintext-openapiv2` and its fallback when v3 is unusable), as gnostic's
//! `openapi.v2.Document` protobuf message; other `Accept` types get 406.
//!
//! Caching, as upstream: hashed URLs are immutable (`Cache-Control: public, immutable`, an
//! `Expires` a year ahead); a stale hash is redirected (301) to the current one; unhashed URLs
//! and the index are `no-cache, private`; every response has an `ETag` and `If-None-Match`
//! answers 304.
//!
//! Compile-time cost: k8s-openapi's `schemars` feature is enabled here and only here, but Cargo
//! unifies features, so every build that includes this crate (the `rudder` binary, the
//! workspace) compiles k8s-openapi with it. Measured for k8s-openapi 0.29 with `v1_37` alone
//! (2 cores, lightly shared): the k8s-openapi unit goes from 11–12 s to 19–25 s in dev and from
//! 25–26 s to 56–70 s in release, plus 1–7 s for schemars itself; peak memory from 0.95 to
//! 1.4 GB. The unit is on the critical path of every crate, so a clean build's wall time grows
//! by about as much.

mod custom;
mod paths;
mod schema;
mod semantics;
mod types;
mod v2;

/// A custom resource version to describe, with its CRD schema.
pub use custom::CustomKind;
/// A group/version/kind, also for other crates that name kinds as upstream does.
pub use schema::Gvk;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use rudder_api::resources::ResourceInfo;
use rudder_api::status::{ApiError, StatusReason};
use serde_json::{json, Map, Value};

/// Why the documents could not be built. Only a broken build can cause these (a unit test
/// builds every document).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    #[error("list-and-patch semantics data is malformed: {0}")]
    Semantics(String),
    #[error("cannot encode the OpenAPI document: {0}")]
    Encode(String),
}

/// One served document: its JSON and the hash that names it.
#[derive(Clone, Debug)]
pub struct Document {
    /// The document's bytes: JSON, except for `Documents::v2_protobuf`.
    pub json: Bytes,
    /// Uppercase hex SHA-512 of `json`.
    pub hash: String,
}

impl Document {
    fn new(value: &Value) -> Result<Document, OpenApiError> {
        let json = serde_json::to_vec(value).map_err(|e| OpenApiError::Encode(e.to_string()))?;
        let hash = sha512_hex(&json);
        Ok(Document {
            json: Bytes::from(json),
            hash,
        })
    }

    fn from_bytes(data: Vec<u8>) -> Document {
        let hash = sha512_hex(&data);
        Document {
            json: Bytes::from(data),
            hash,
        }
    }

    fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

fn sha512_hex(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, data);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

/// Every document, built together.
#[derive(Debug)]
pub struct Documents {
    /// `/openapi/v3`.
    pub root: Document,
    /// Keyed by the path after `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
    pub group_versions: BTreeMap<String, Document>,
    /// `/openapi/v2` as JSON.
    pub v2: Document,
    /// `/openapi/v2` as the gnostic `openapi.v2.Document` protobuf message.
    pub v2_protobuf: Document,
    /// When they were built (`Last-Modified`).
    pub built: SystemTime,
}

/// Where the custom resources come from: `key` names their current state cheaply (it
/// changes whenever a CRD does), `kinds` lists them.
struct CustomSource {
    key: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    kinds: Box<dyn Fn() -> Vec<CustomKind> + Send + Sync>,
}

/// The documents of the built-in group/versions, built once, and their JSON values, which the
/// documents with custom resources are assembled from.
struct Builtin {
    values: BTreeMap<(String, String), Value>,
    documents: Arc<Documents>,
}

/// The OpenAPI service: the served resources and, once built, their documents.
pub struct OpenApi {
    resources: Vec<ResourceInfo>,
    /// `info.version` of the documents, e.g. `v1.37.0`.
    version: String,
    builtin: OnceLock<Result<Builtin, OpenApiError>>,
    custom: Option<CustomSource>,
    /// The documents with the custom resources of the state the key names.
    current: Mutex<Option<(Vec<String>, Arc<Documents>)>>,
}

impl OpenApi {
    /// The service for `resources` (every served group/version/resource).
    pub fn new(resources: impl IntoIterator<Item = ResourceInfo>, version: &str) -> OpenApi {
        OpenApi {
            resources: resources.into_iter().collect(),
            version: version.to_owned(),
            builtin: OnceLock::new(),
            custom: None,
            current: Mutex::new(None),
        }
    }

    /// Also describe custom resources: `kinds` lists them, `key` changes whenever they do
    /// (e.g. every CRD's name and resourceVersion). The documents are rebuilt on the first
    /// request after the key changes, as upstream rebuilds them when a CRD changes.
    pub fn with_custom(
        mut self,
        key: impl Fn() -> Vec<String> + Send + Sync + 'static,
        kinds: impl Fn() -> Vec<CustomKind> + Send + Sync + 'static,
    ) -> OpenApi {
        self.custom = Some(CustomSource {
            key: Box::new(key),
            kinds: Box::new(kinds),
        });
        self
    }

    fn builtin(&self) -> Result<&Builtin, OpenApiError> {
        self.builtin
            .get_or_init(|| {
                let values = builtin_values(&self.resources, &self.version)?;
                let documents = Arc::new(assemble(&values, &self.version)?);
                Ok(Builtin { values, documents })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The documents of the built-in resources, built on first use.
    pub fn documents(&self) -> Result<&Documents, OpenApiError> {
        self.builtin().map(|b| &*b.documents)
    }

    /// The documents of every resource served now, custom ones included. Blocks while they
    /// are (re)built.
    pub fn current(&self) -> Result<Arc<Documents>, OpenApiError> {
        let builtin = self.builtin()?;
        let Some(source) = &self.custom else {
            return Ok(builtin.documents.clone());
        };
        let key = (source.key)();
        if key.is_empty() {
            return Ok(builtin.documents.clone());
        }
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, docs)) = &*current {
            if *k == key {
                return Ok(docs.clone());
            }
        }
        let kinds = (source.kinds)();
        let mut values = builtin.values.clone();
        values.extend(custom_values(&kinds, &values, &self.version)?);
        let docs = Arc::new(assemble(&values, &self.version)?);
        *current = Some((key, docs.clone()));
        Ok(docs)
    }
}

/// The key of a group/version under `/openapi/v3/`: `api/v1` or `apis/<group>/<version>`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Builds one group/version document as a JSON value.
fn group_version_document(
    group: &str,
    version: &str,
    resources: &[&ResourceInfo],
    custom: &[&CustomKind],
    all: &BTreeSet<(String, String)>,
    kube_version: &str,
) -> Result<Value, OpenApiError> {
    let mut components = schema::generate(resources, all)?;
    custom::add(&mut components, custom);
    let paths = paths::generate(group, version, resources, &components);
    let mut comps = Map::new();
    comps.insert("schemas".to_owned(), Value::Object(components.schemas));
    comps.insert(
        "securitySchemes".to_owned(),
        json!({"BearerToken": {
            "description": "Bearer Token authentication",
            "in": "header",
            "name": "authorization",
            "type": "apiKey",
        }}),
    );
    Ok(json!({
        "components": comps,
        "info": {"title": "Kubernetes", "version": kube_version},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}],
    }))
}

/// Whether k8s-openapi describes any kind of the group/version: upstream no longer serves the
/// ones it lacks (e.g. `flowcontrol.apiserver.k8s.io/v1beta3`), so they get no document.
fn described(resources: &[&ResourceInfo]) -> bool {
    resources
        .iter()
        .any(|r| types::find(&r.group, &r.version, &r.kind).is_some())
}

/// The JSON documents of the built-in group/versions.
fn builtin_values(
    resources: &[ResourceInfo],
    kube_version: &str,
) -> Result<BTreeMap<(String, String), Value>, OpenApiError> {
    let mut by_gv: BTreeMap<(String, String), Vec<&ResourceInfo>> = BTreeMap::new();
    for r in resources {
        by_gv
            .entry((r.group.clone(), r.version.clone()))
            .or_default()
            .push(r);
    }
    by_gv.retain(|_, rs| described(rs));
    let all: BTreeSet<(String, String)> = by_gv.keys().cloned().collect();
    let mut values = BTreeMap::new();
    for ((group, version), rs) in &by_gv {
        let value = group_version_document(group, version, rs, &[], &all, kube_version)?;
        values.insert((group.clone(), version.clone()), value);
    }
    Ok(values)
}

/// The JSON documents of the group/versions of custom resources; `builtin` are the built-in
/// ones (a custom resource never shares a group/version with them).
fn custom_values(
    kinds: &[CustomKind],
    builtin: &BTreeMap<(String, String), Value>,
    kube_version: &str,
) -> Result<BTreeMap<(String, String), Value>, OpenApiError> {
    let mut by_gv: BTreeMap<(String, String), Vec<&CustomKind>> = BTreeMap::new();
    for k in kinds {
        let gv = (k.info.group.clone(), k.info.version.clone());
        if !builtin.contains_key(&gv) {
            by_gv.entry(gv).or_default().push(k);
        }
    }
    let mut all: BTreeSet<(String, String)> = builtin.keys().cloned().collect();
    all.extend(by_gv.keys().cloned());
    let mut values = BTreeMap::new();
    for ((group, version), ks) in &by_gv {
        let infos: Vec<&ResourceInfo> = ks.iter().map(|k| &k.info).collect();
        let value = group_version_document(group, version, &infos, ks, &all, kube_version)?;
        values.insert((group.clone(), version.clone()), value);
    }
    Ok(values)
}

/// The served documents (index, one per group/version, v2) from their JSON values.
fn assemble(
    values: &BTreeMap<(String, String), Value>,
    kube_version: &str,
) -> Result<Documents, OpenApiError> {
    let started = std::time::Instant::now();
    let mut group_versions = BTreeMap::new();
    let mut index = Map::new();
    for ((group, version), value) in values {
        let doc = Document::new(value)?;
        let key = gv_key(group, version);
        index.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}),
        );
        group_versions.insert(key, doc);
    }
    let root = Document::new(&json!({ "paths": index }))?;
    let v2_value = v2::document(values.values(), kube_version);
    let v2 = Document::new(&v2_value)?;
    let v2_protobuf = Document::from_bytes(v2::proto::encode(&v2_value));
    tracing::debug!(
        documents = group_versions.len(),
        bytes = group_versions.values().map(|d| d.json.len()).sum::<usize>(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built the OpenAPI documents"
    );
    Ok(Documents {
        root,
        group_versions,
        v2,
        v2_protobuf,
        built: SystemTime::now(),
    })
}

/// The routes `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<group-version>`, for the API
/// server to mount behind authentication.
pub fn router<S>(api: Arc<OpenApi>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/openapi/v2", get(swagger))
        .route("/openapi/v3", get(root))
        .route("/openapi/v3/{*gv}", get(group_version))
        .with_state(api)
}

/// The current documents, (re)built off the async workers.
async fn documents(api: &Arc<OpenApi>) -> Result<Arc<Documents>, ApiError> {
    let a = api.clone();
    match tokio::task::spawn_blocking(move || a.current()).await {
        Ok(docs) => docs.map_err(ApiError::internal_error),
        Err(e) => Err(ApiError::internal_error(e)),
    }
}

fn error_response(err: &ApiError) -> Response {
    let body = serde_json::to_vec(&err.to_json()).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() =
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn not_found() -> Response {
    error_response(&ApiError::new_generic(
        404,
        StatusReason::NotFound,
        "the server could not find the requested resource",
    ))
}

fn set(resp: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A document response (200, or 304 for a matching `If-None-Match`), with the headers the
/// caller adds on top.
fn document_response(
    doc: &Document,
    built: SystemTime,
    headers: &HeaderMap,
    cache_control: &str,
) -> Response {
    typed_document_response(doc, built, headers, cache_control, "application/json")
}

/// `document_response` for a document of type `content_type`.
fn typed_document_response(
    doc: &Document,
    built: SystemTime,
    headers: &HeaderMap,
    cache_control: &str,
    content_type: &str,
) -> Response {
    let etag = doc.etag();
    let mut resp = if not_modified(headers, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Body::from(doc.json.clone()));
        set(&mut r, header::CONTENT_TYPE, content_type);
        r
    };
    set(&mut resp, header::ETAG, &etag);
    set(&mut resp, header::CACHE_CONTROL, cache_control);
    set(
        &mut resp,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(built),
    );
    resp
}

async fn root(State(api): State<Arc<OpenApi>>, headers: HeaderMap) -> Response {
    match documents(&api).await {
        Ok(docs) => document_response(&docs.root, docs.built, &headers, "no-cache, private"),
        Err(e) => error_response(&e),
    }
}

/// Whether the `Accept` header allows JSON (no header means anything).
fn accepts_json(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|clause| {
        let media = clause.split(';').next().unwrap_or("").trim();
        matches!(media, "application/json" | "application/*" | "*/*")
    })
}

/// The media type kubectl asks for the protobuf `/openapi/v2` with (upstream's deprecated
/// spelling; Go's `mime.ParseMediaType` rejects the `@`, so responses carry `V2_PROTOBUF`).
pub const V2_PROTOBUF_ACCEPT: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The media type of the protobuf `/openapi/v2`, as upstream answers it.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether the `Accept` header asks for the protobuf `/openapi/v2`.
fn accepts_v2_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|clause| {
            let media = clause.split(';').next().unwrap_or("").trim();
            media == V2_PROTOBUF || media == V2_PROTOBUF_ACCEPT
        })
}

/// `GET /openapi/v2`: protobuf when asked for, else JSON, else 406.
async fn swagger(State(api): State<Arc<OpenApi>>, headers: HeaderMap) -> Response {
    let docs = match documents(&api).await {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    let mut resp = if accepts_v2_protobuf(&headers) {
        typed_document_response(
            &docs.v2_protobuf,
            docs.built,
            &headers,
            "no-cache, private",
            V2_PROTOBUF,
        )
    } else if accepts_json(&headers) {
        document_response(&docs.v2, docs.built, &headers, "no-cache, private")
    } else {
        error_response(&ApiError::not_acceptable(&[
            "application/json",
            V2_PROTOBUF,
        ]))
    };
    set(&mut resp, header::VARY, "Accept");
    resp
}

fn query_hash(uri: &Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("hash="))
}

async fn group_version(
    State(api): State<Arc<OpenApi>>,
    Path(gv): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let docs = match documents(&api).await {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    let key = gv.trim_end_matches('/');
    let Some(doc) = docs.group_versions.get(key) else {
        return not_found();
    };
    if !accepts_json(&headers) {
        let mut resp = error_response(&ApiError::not_acceptable(&["application/json"]));
        set(&mut resp, header::VARY, "Accept");
        return resp;
    }
    let mut resp = match query_hash(&uri) {
        Some(hash) if hash != doc.hash => {
            // Upstream redirects a stale hash to the current document.
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
            set(
                &mut r,
                header::LOCATION,
                &format!("/openapi/v3/{key}?hash={}", doc.hash),
            );
            set(&mut r, header::ETAG, &doc.etag());
            r
        }
        Some(_) => {
            let mut r = document_response(doc, docs.built, &headers, "public, immutable");
            let year = SystemTime::now() + Duration::from_secs(365 * 24 * 60 * 60);
            set(&mut r, header::EXPIRES, &httpdate::fmt_http_date(year));
            r
        }
        None => document_response(doc, docs.built, &headers, "no-cache, private"),
    };
    set(&mut resp, header::VARY, "Accept");
    resp
}

#[cfg(test)]
mod tests;
