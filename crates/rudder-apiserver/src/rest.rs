//! The resource verbs, one handler each, all over the generic store.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rudder_api::selector::fields::FieldSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::ApiError;
use rudder_registry::{
    object, AuditContext, DeleteOpts, Deleted, Entry, FieldValidation, ListOpts, Warnings,
    WatchFrom, WriteOpts,
};
use serde_json::{json, Value};

use crate::encode::{self, Output};
use crate::gojson::Gvk;
use crate::request::{Query, RequestInfo};
use crate::watch::{self, WatchSpec};
use crate::ApiServer;

mod eviction;

/// Everything a verb handler needs about its request.
pub struct Call<'a> {
    pub server: &'a Arc<ApiServer>,
    pub info: &'a RequestInfo,
    pub entry: Arc<Entry>,
    pub query: &'a Query,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The authenticated caller.
    pub user: &'a rudder_auth::UserInfo,
    /// The request's audit event annotations (inert when it is not audited).
    pub audit: AuditContext,
}

impl Call<'_> {
    fn namespace(&self) -> Option<&str> {
        (self.entry.info.namespaced && !self.info.namespace.is_empty())
            .then_some(self.info.namespace.as_str())
    }

    pub(crate) fn output(&self) -> Result<Output, ApiError> {
        let accept = self
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        encode::negotiate(accept, self.query, self.has_tables())
    }

    /// Whether upstream's storage behind this endpoint converts to Tables: every stored
    /// resource with its status and scale; not the reviews, bindings and other subresources.
    fn has_tables(&self) -> bool {
        let info = self.info;
        let review = crate::review::is_review(&info.group, &info.resource);
        let bindings = info.group.is_empty() && info.resource == "bindings";
        let stored = !review && !bindings;
        stored && matches!(info.subresource.as_str(), "" | "status" | "scale")
    }

    /// Decode a create or update body for `target` as upstream's decoder does: Go's JSON syntax
    /// errors, and its messages for a body of another kind or API version.
    pub(crate) fn decode_object(&self, target: &Gvk) -> Result<Value, ApiError> {
        let essence = self
            .content_type()
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let reg = &self.server.gs.registry.snapshot();
        let registered = |g: &Gvk| scheme_knows(reg, g);
        if matches!(essence.as_str(), "" | "application/json") {
            if let Some(v) = crate::gojson::check_body(target, &self.body, true, registered)? {
                return Ok(v);
            }
        }
        let value = encode::decode_body(self.content_type(), &self.body)?;
        crate::gojson::check_value(target, &self.body, &value, registered)?;
        Ok(value)
    }

    /// The kind this endpoint takes and returns.
    fn target(&self) -> Gvk {
        let i = &self.entry.info;
        Gvk::new(&i.group, &i.version, &i.kind)
    }

    fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other}; supported values: All"
            ))),
        }
    }

    fn field_validation(&self) -> Result<FieldValidation, ApiError> {
        match self.query.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
            ))),
        }
    }

    /// Managed-fields bookkeeping for a non-apply write through `subresource`.
    fn tracker(&self, subresource: &str) -> rudder_registry::Tracker {
        let manager = match self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            Some(m) => m.to_string(),
            // Upstream's default: the user agent up to its first slash.
            None => self
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .and_then(|ua| ua.split('/').next())
                .filter(|p| !p.is_empty())
                .unwrap_or("unknown")
                .to_string(),
        };
        rudder_registry::Tracker(Some(Arc::new(ManagedFields {
            manager,
            api_version: self.entry.info.api_version(),
            subresource: subresource.to_string(),
        })))
    }

    /// Keys given twice in a JSON body: an error under `fieldValidation=Strict`, warnings under
    /// Warn (the default), nothing under Ignore; the last value wins, as upstream.
    fn check_duplicates(&self, opts: &WriteOpts) -> Result<(), ApiError> {
        let json = self
            .content_type()
            .and_then(|c| c.split(';').next())
            .is_none_or(|c| c.trim().ends_with("json"));
        if !json || opts.field_validation == FieldValidation::Ignore {
            return Ok(());
        }
        let dupes = crate::dupes::duplicate_fields(&self.body);
        if dupes.is_empty() {
            return Ok(());
        }
        let msgs: Vec<String> = dupes
            .iter()
            .map(|p| format!("duplicate field \"{p}\""))
            .collect();
        if opts.field_validation == FieldValidation::Strict {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                msgs.join(", ")
            )));
        }
        msgs.into_iter().for_each(|m| opts.warnings.push(m));
        Ok(())
    }

    /// The caller, for kinds that record who created them.
    fn requester(&self) -> rudder_registry::Requester {
        rudder_registry::Requester {
            name: self.user.name.clone(),
            uid: self.user.uid.clone(),
            groups: self.user.groups.clone(),
            extra: self.user.extra.clone(),
        }
    }

    /// What every write tells admission about its request: the caller, the subresource and
    /// the options object upstream puts in an AdmissionReview.
    pub(crate) fn admission_opts(&self) -> WriteOpts {
        let kind = match self.info.verb.as_str() {
            "create" => "CreateOptions",
            "patch" => "PatchOptions",
            _ => "UpdateOptions",
        };
        let mut options = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
        if let Some(d) = self.query.get("dryRun").filter(|d| !d.is_empty()) {
            options["dryRun"] = json!([d]);
        }
        for key in ["fieldManager", "fieldValidation"] {
            if let Some(v) = self.query.get(key).filter(|v| !v.is_empty()) {
                options[key] = json!(v);
            }
        }
        if kind == "PatchOptions" && self.query.flag("force") {
            options["force"] = json!(true);
        }
        WriteOpts {
            user: Some(self.requester()),
            request_subresource: (!self.info.subresource.is_empty())
                .then(|| self.info.subresource.clone()),
            options: Some(options),
            audit: self.audit.clone(),
            ..Default::default()
        }
    }

    /// A subresource whose writes the strategy shapes itself (upstream registers a separate
    /// strategy for it): `certificatesigningrequests/approval`, `pods/ephemeralcontainers`.
    fn strategy_subresource(&self) -> Option<&'static str> {
        match self.info.subresource.as_str() {
            "approval" => Some("approval"),
            "ephemeralcontainers" => Some("ephemeralcontainers"),
            _ => None,
        }
    }

    /// RBAC's escalation check of a role or binding write (only when RBAC authorizes).
    fn check_rbac_write(&self, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        match &self.server.rbac {
            Some(index) if self.info.group == rudder_auth::rbac::GROUP => {
                crate::rbac::check_escalation(
                    index,
                    self.server.authz.as_ref(),
                    self.user,
                    &self.info.resource,
                    self.namespace().unwrap_or(""),
                    new,
                    old,
                )
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn gs(&self) -> &rudder_registry::GenericStore {
        &self.server.gs
    }
}

pub async fn dispatch(call: Call<'_>) -> Result<Response, ApiError> {
    let info = call.info;
    let sub = info.subresource.as_str();
    if !sub.is_empty() && call.entry.info.subresource(sub).is_none() {
        return Err(not_found_route());
    }
    if sub.is_empty() && !call.entry.info.has_verb(&info.verb) {
        return Err(ApiError::method_not_supported(
            &call.entry.info.group_resource(),
            &info.verb,
        ));
    }
    match (info.verb.as_str(), sub) {
        ("get", "") | ("get", "status") | ("get", "approval") => get(&call).await,
        ("get", "scale") => get_scale(&call).await,
        ("list", _) => list(&call).await,
        ("watch", _) => watch(&call).await,
        ("create", "") if info.group.is_empty() && info.resource == "bindings" => bind(&call).await,
        ("create", "") if crate::review::is_review(&info.group, &info.resource) => {
            crate::review::create(&call, call.user)
        }
        ("create", "") => create(&call).await,
        ("create", "binding") => bind(&call).await,
        ("create", "eviction") => eviction::evict(&call).await,
        ("create", "token") => crate::tokens::create(&call).await,
        ("update", "") => update(&call, false).await,
        ("update", "status") => update(&call, true).await,
        ("update", "scale") => update_scale(&call).await,
        ("update", "finalize") => finalize(&call).await,
        ("update", "approval") => update(&call, false).await,
        ("update", "ephemeralcontainers") => update(&call, false).await,
        ("get", "ephemeralcontainers") => get(&call).await,
        ("patch", "") => patch(&call, false).await,
        ("patch", "status") => patch(&call, true).await,
        ("patch", "scale") => patch_scale(&call).await,
        ("patch", "approval") => patch(&call, false).await,
        ("patch", "ephemeralcontainers") => patch(&call, false).await,
        ("delete", "") => delete(&call).await,
        ("deletecollection", "") => delete_collection(&call).await,
        _ => Err(ApiError::method_not_supported(
            &call.entry.info.group_resource(),
            &info.verb,
        )),
    }
}

/// Warnings (e.g. unknown fields under `fieldValidation=Warn`) as upstream's `Warning` headers,
/// which kubectl prints as `Warning: <text>`.
fn with_warnings(mut resp: Response, warnings: &Warnings) -> Result<Response, ApiError> {
    for w in warnings.take() {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("warning", v);
        }
    }
    Ok(resp)
}

/// Whether upstream's scheme has `g`: the served kinds, their lists and subresource kinds, and
/// the option and status kinds registered in every group version.
fn scheme_knows(reg: &rudder_registry::Snapshot, g: &Gvk) -> bool {
    const META: [&str; 8] = [
        "Status",
        "DeleteOptions",
        "ListOptions",
        "GetOptions",
        "CreateOptions",
        "UpdateOptions",
        "PatchOptions",
        "WatchEvent",
    ];
    let mut any_version = false;
    let found = reg.entries().iter().any(|e| {
        let i = &e.info;
        if i.group == g.group && i.version == g.version {
            any_version = true;
            if i.kind == g.kind || g.kind.strip_suffix("List") == Some(i.kind.as_str()) {
                return true;
            }
        }
        i.subresources
            .iter()
            .any(|s| s.group == g.group && s.version == g.version && s.kind == g.kind)
    });
    found || (any_version && META.contains(&g.kind.as_str()))
}

/// Go's `strconv.ParseInt(v, 10, 64)` error text, which upstream returns for a query
/// parameter that does not convert.
fn parse_int(v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!(
            "strconv.ParseInt: parsing {}: {why}",
            rudder_api::go_quote(v)
        ))
    })
}

/// An integer query parameter as upstream's `Convert_Slice_string_To_Pointer_int64`: absent is
/// unset, anything present (even empty) must parse.
fn int_param(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    q.get(key).map(parse_int).transpose()
}

/// Upstream's answer for a path no route serves.
pub fn not_found_route() -> ApiError {
    ApiError::new_generic(
        404,
        rudder_api::status::StatusReason::NotFound,
        "the server could not find the requested resource",
    )
}

async fn get(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let obj = call
        .gs()
        .get(&call.entry, call.namespace(), &call.info.name)
        .await?;
    encode::object_response(&call.entry, StatusCode::OK, &obj, output)
}

/// Upstream rejects a field selector on a field the resource cannot be selected by.
fn check_field_selector(entry: &Entry, sel: &FieldSelector) -> Result<(), ApiError> {
    // Strategies report every selectable field (empty when the object lacks it), so the
    // names come from an empty object.
    let mut supported = vec![
        ("metadata.name".to_string(), String::new()),
        ("metadata.namespace".to_string(), String::new()),
    ];
    entry.strategy.selectable_fields(&json!({}), &mut supported);
    for field in sel.requirements().iter().map(|r| r.field.as_str()) {
        if supported.iter().any(|(name, _)| name == field) {
            continue;
        }
        // Kinds with their own field-label conversion say "not supported"; the rest fall back
        // to upstream's DefaultMetaV1FieldSelectorConversion and its wording.
        let msg = if supported.len() > 2 {
            format!("field label not supported: {field}")
        } else {
            format!(
                "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )
        };
        return Err(ApiError::bad_request(msg));
    }
    Ok(())
}

fn list_opts(q: &Query) -> Result<ListOpts, ApiError> {
    // Upstream converts url.Values field by field in ListOptions' order (timeoutSeconds, then
    // limit) before it parses the selectors.
    int_param(q, "timeoutSeconds")?;
    let limit = int_param(q, "limit")?.unwrap_or(0).max(0) as usize;
    let label_selector = match q.get("labelSelector") {
        Some(s) if !s.is_empty() => Some(Selector::parse(s).map_err(|e| e.to_api_error())?),
        _ => None,
    };
    let field_selector = match q.get("fieldSelector") {
        Some(s) if !s.is_empty() => {
            Some(FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        _ => None,
    };
    Ok(ListOpts {
        label_selector,
        field_selector,
        limit,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        resource_version_match: q.get("resourceVersionMatch").map(str::to_string),
    })
}

async fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let opts = list_opts(call.query)?;
    if let Some(sel) = &opts.field_selector {
        check_field_selector(&call.entry, sel)?;
    }
    let r = call.gs().list(&call.entry, call.namespace(), &opts).await?;
    let items = encode::in_version_all(&call.entry, &r.items).await?;
    encode::list_response(
        &call.entry,
        &items,
        r.revision,
        r.continue_token,
        r.remaining,
        output,
    )
}

async fn watch(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let q = call.query;
    let mut opts = list_opts(q)?;
    // A watch of one object by name in the URL is a watch with a name field selector.
    if !call.info.name.is_empty() {
        let sel = format!("metadata.name={}", call.info.name);
        opts.field_selector =
            Some(FieldSelector::parse(&sel).map_err(|e| ApiError::bad_request(e.to_string()))?);
    }
    if let Some(sel) = &opts.field_selector {
        check_field_selector(&call.entry, sel)?;
    }
    // Upstream's Convert_Slice_string_To_Pointer_bool: only "0" and "false" (any case) are
    // false.
    let send_initial = q
        .get("sendInitialEvents")
        .is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
    let bookmarks = q.flag("allowWatchBookmarks");
    let rv = opts.resource_version.clone().unwrap_or_default();
    if send_initial {
        // Upstream's validation of the WatchList parameters.
        if opts.resource_version_match.as_deref() != Some("NotOlderThan") || !bookmarks {
            return Err(ApiError::invalid(
                &rudder_api::status::GroupKind::new("meta.k8s.io", "ListOptions"),
                "",
                &rudder_api::field::ErrorList(vec![rudder_api::field::FieldError::forbidden(
                    &rudder_api::field::Path::new("sendInitialEvents"),
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled and resourceVersionMatch is set to NotOlderThan and allowWatchBookmarks is set to true",
                )]),
            ));
        }
    }
    let from = match rv.as_str() {
        "" | "0" => {
            if rv.is_empty() || send_initial {
                // Consistent: the initial state is at least as new as the store.
                let current = call
                    .server
                    .gs
                    .store
                    .current_revision()
                    .await
                    .map_err(ApiError::internal_error)?;
                call.server.gs.cache.wait_for(current).await?;
            }
            WatchFrom::Now
        }
        s => {
            let r = rudder_api::meta::parse_resource_version(s).map_err(|e| e.to_api_error())?;
            if send_initial {
                call.server.gs.cache.wait_for(r).await?;
                WatchFrom::Now
            } else {
                WatchFrom::Revision(r)
            }
        }
    };
    let timeout = match int_param(q, "timeoutSeconds")? {
        Some(t) => Duration::from_secs(t.max(0) as u64),
        // Upstream picks 30–60 minutes; clients re-watch when the stream ends.
        None => Duration::from_secs(1800 + (std::process::id() as u64 % 1800)),
    };
    let cache_watch = match call.gs().watch(&call.entry, call.namespace(), from).await {
        Ok(w) => w,
        // Too old a resourceVersion is reported inside the stream, as upstream does.
        Err(e) if e.code == 410 => return Ok(watch::error_stream(&e)),
        Err(e) => return Err(e),
    };
    let spec = WatchSpec {
        entry: call.entry.clone(),
        label_selector: opts.label_selector,
        field_selector: opts.field_selector,
        output,
        bookmarks,
        initial_events_end: send_initial,
        timeout,
    };
    Ok(watch::serve(
        call.server.gs.cache.clone(),
        cache_watch,
        spec,
    ))
}

async fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let body = call.decode_object(&call.target())?;
    call.audit.set_object_name(object::name(&body));
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        tracker: call.tracker(""),
        ..call.admission_opts()
    };
    call.check_duplicates(&opts)?;
    call.check_rbac_write(&body, None)?;
    let obj = call
        .gs()
        .create(&call.entry, call.namespace(), body, &opts)
        .await?;
    with_warnings(
        encode::object_response(&call.entry, StatusCode::CREATED, &obj, output)?,
        &opts.warnings,
    )
}

async fn update(call: &Call<'_>, status: bool) -> Result<Response, ApiError> {
    let output = call.output()?;
    let body = call.decode_object(&call.target())?;
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        status,
        tracker: call.tracker(&call.info.subresource),
        subresource: call.strategy_subresource(),
        ..call.admission_opts()
    };
    call.check_duplicates(&opts)?;
    let (obj, created) = call
        .gs()
        .update(
            &call.entry,
            call.namespace(),
            &call.info.name,
            |current| {
                call.check_rbac_write(&body, current)?;
                Ok(body.clone())
            },
            &opts,
        )
        .await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    with_warnings(
        encode::object_response(&call.entry, code, &obj, output)?,
        &opts.warnings,
    )
}

/// Upstream's namespace `FinalizeREST`: an update of `spec.finalizers` only (the main resource
/// keeps them); a terminating namespace left with none is deleted by that update.
async fn finalize(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let body = encode::decode_body(call.content_type(), &call.body)?;
    let finalizers = body
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let rv = body.pointer("/metadata/resourceVersion").cloned();
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        raw: true,
        tracker: call.tracker("finalize"),
        ..call.admission_opts()
    };
    let (obj, _) = call
        .gs()
        .update(
            &call.entry,
            call.namespace(),
            &call.info.name,
            |old| {
                let Some(old) = old else {
                    return Ok(body.clone());
                };
                let mut obj = old.clone();
                obj["spec"]["finalizers"] = finalizers.clone();
                match &rv {
                    Some(rv) => object::set_meta(&mut obj, "resourceVersion", rv.clone()),
                    None => {
                        object::remove_meta(&mut obj, "resourceVersion");
                    }
                }
                Ok(obj)
            },
            &opts,
        )
        .await?;
    encode::object_response(&call.entry, StatusCode::OK, &obj, output)
}

/// The patch types this server applies, by Content-Type.
enum PatchType {
    Merge,
    Json,
    Strategic,
}

fn patch_type(content_type: Option<&str>) -> Result<PatchType, ApiError> {
    let essence = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ])),
    }
}

/// Apply a patch document to an object of `api_version`/`kind_name` (upstream's patcher).
fn apply_patch(
    kind: &PatchType,
    patch: &Value,
    current: &Value,
    api_version: &str,
    kind_name: &str,
) -> Result<Value, ApiError> {
    let mut doc = current.clone();
    match kind {
        PatchType::Strategic => {
            let table =
                rudder_api::patch::SchemaTable::builtin().map_err(ApiError::internal_error)?;
            // Upstream refuses strategic merge for types it has no Go struct for (CRDs).
            let schema = table.kind(api_version, kind_name).ok_or_else(|| {
                ApiError::unsupported_media_type(&[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                ])
            })?;
            let mut merged =
                rudder_api::patch::strategic_merge(current, patch, schema).map_err(|e| {
                    let code = e.http_status();
                    let reason = match code {
                        400 => rudder_api::status::StatusReason::BadRequest,
                        422 => rudder_api::status::StatusReason::Invalid,
                        _ => rudder_api::status::StatusReason::InternalError,
                    };
                    ApiError::new_generic(code, reason, e.to_string())
                })?;
            // Directives left in new list items or replaced values never reach storage, as
            // upstream's typed decode drops them.
            strip_directives(&mut merged);
            return Ok(merged);
        }
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("patch body must be a JSON object"));
            }
            json_patch::merge(&mut doc, patch);
        }
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::new_generic(
                    422,
                    rudder_api::status::StatusReason::Invalid,
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
    }
    Ok(doc)
}

/// The field manager recording a non-apply write.
struct ManagedFields {
    manager: String,
    api_version: String,
    subresource: String,
}

impl rudder_registry::FieldTracker for ManagedFields {
    fn track(&self, live: Option<&Value>, new: Value) -> Result<Value, ApiError> {
        let table = rudder_api::patch::SchemaTable::builtin().map_err(ApiError::internal_error)?;
        let now = object::now_rfc3339();
        let info = rudder_fieldmanager::OperationInfo {
            manager: &self.manager,
            api_version: &self.api_version,
            subresource: &self.subresource,
            time: &now,
            reset_fields: None,
        };
        rudder_fieldmanager::FieldManager::new(table)
            .update(live, new, &info)
            .map_err(field_manager_error)
    }
}

fn is_apply_patch(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| {
            c.trim()
                .eq_ignore_ascii_case("application/apply-patch+yaml")
        })
}

fn field_manager_error(e: rudder_fieldmanager::FieldManagerError) -> ApiError {
    match e {
        rudder_fieldmanager::FieldManagerError::Conflict(conflicts) => {
            let causes = conflicts
                .0
                .iter()
                .map(|c| {
                    let (message, field) = c.cause();
                    rudder_api::status::Cause {
                        reason: "FieldManagerConflict".into(),
                        message,
                        field,
                    }
                })
                .collect();
            ApiError::apply_conflict(causes, conflicts.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Server-side apply (`application/apply-patch+yaml`): the applied configuration is merged by
/// the field manager, which tracks who owns each field; conflicts with other managers are 409
/// unless `force=true`. A missing object is created (201).
async fn apply(call: &Call<'_>, status: bool) -> Result<Response, ApiError> {
    let output = call.output()?;
    let manager = call.query.get("fieldManager").unwrap_or("").to_string();
    if manager.is_empty() {
        return Err(ApiError::invalid(
            &rudder_api::status::GroupKind::new("meta.k8s.io", "PatchOptions"),
            "",
            &rudder_api::field::ErrorList(vec![rudder_api::field::FieldError::required(
                &rudder_api::field::Path::new("fieldManager"),
                "is required for apply patch",
            )]),
        ));
    }
    let force = call.query.flag("force");
    let applied = encode::decode_body(Some(encode::YAML), &call.body)?;
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    let api_version = call.entry.info.api_version();
    let table = rudder_api::patch::SchemaTable::builtin().map_err(ApiError::internal_error)?;
    let fm = rudder_fieldmanager::FieldManager::new(table);
    let now = object::now_rfc3339();
    let subresource = call.info.subresource.as_str();
    let info = rudder_fieldmanager::OperationInfo {
        manager: &manager,
        api_version: &api_version,
        subresource,
        time: &now,
        reset_fields: None,
    };
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        status,
        subresource: call.strategy_subresource(),
        ..call.admission_opts()
    };
    // Create on apply.
    let exists = match call
        .gs()
        .get(&call.entry, call.namespace(), &call.info.name)
        .await
    {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(e),
    };
    if !exists && subresource.is_empty() {
        let mut obj = fm
            .apply(None, &applied, &info, force)
            .map_err(field_manager_error)?;
        if object::name(&obj).is_empty() {
            object::set_meta(&mut obj, "name", json!(call.info.name));
        }
        call.check_rbac_write(&obj, None)?;
        let created = call
            .gs()
            .create(&call.entry, call.namespace(), obj, &opts)
            .await?;
        return with_warnings(
            encode::object_response(&call.entry, StatusCode::CREATED, &created, output)?,
            &opts.warnings,
        );
    }
    let gr = call.entry.info.group_resource();
    let name = call.info.name.clone();
    let (obj, _) = call
        .gs()
        .update(
            &call.entry,
            call.namespace(),
            &call.info.name,
            |current| {
                let current = current.ok_or_else(|| ApiError::not_found(&gr, &name))?;
                let mut merged = fm
                    .apply(Some(current), &applied, &info, force)
                    .map_err(field_manager_error)?;
                call.check_rbac_write(&merged, Some(current))?;
                // A resourceVersion in the applied configuration is a precondition.
                if object::meta_str(&applied, "resourceVersion").is_empty() {
                    object::set_meta(
                        &mut merged,
                        "resourceVersion",
                        json!(object::meta_str(current, "resourceVersion")),
                    );
                }
                Ok(merged)
            },
            &opts,
        )
        .await?;
    with_warnings(
        encode::object_response(&call.entry, StatusCode::OK, &obj, output)?,
        &opts.warnings,
    )
}

/// Remove `$patch`, `$setElementOrder/…`, `$retainKeys` and `$deleteFromPrimitiveList/…` keys.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

async fn patch(call: &Call<'_>, status: bool) -> Result<Response, ApiError> {
    if is_apply_patch(call.content_type()) {
        return apply(call, status).await;
    }
    let output = call.output()?;
    let kind = patch_type(call.content_type())?;
    let patch: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        status,
        tracker: call.tracker(&call.info.subresource),
        subresource: call.strategy_subresource(),
        ..call.admission_opts()
    };
    call.check_duplicates(&opts)?;
    let name = call.info.name.clone();
    let gr = call.entry.info.group_resource();
    let api_version = call.entry.info.api_version();
    let kind_name = call.entry.info.kind.clone();
    let (obj, _) = call
        .gs()
        .update(
            &call.entry,
            call.namespace(),
            &call.info.name,
            |current| {
                let current = current.ok_or_else(|| ApiError::not_found(&gr, &name))?;
                // A resourceVersion in the patch is a precondition; absent, the patch applies to
                // whatever is current on this attempt.
                let mut patched = apply_patch(&kind, &patch, current, &api_version, &kind_name)?;
                call.check_rbac_write(&patched, Some(current))?;
                if object::meta_str(&patched, "resourceVersion").is_empty() {
                    object::set_meta(
                        &mut patched,
                        "resourceVersion",
                        json!(object::meta_str(current, "resourceVersion")),
                    );
                }
                Ok(patched)
            },
            &opts,
        )
        .await?;
    with_warnings(
        encode::object_response(&call.entry, StatusCode::OK, &obj, output)?,
        &opts.warnings,
    )
}

fn delete_opts(call: &Call<'_>) -> Result<DeleteOpts, ApiError> {
    let body: Value = if call.body.is_empty() {
        json!({})
    } else {
        encode::decode_body(call.content_type(), &call.body)?
    };
    delete_opts_from(call, &body)
}

/// DeleteOptions from a body (a delete's, or an Eviction's `deleteOptions`) and the query.
fn delete_opts_from(call: &Call<'_>, body: &Value) -> Result<DeleteOpts, ApiError> {
    let q = call.query;
    let grace = match int_param(q, "gracePeriodSeconds")? {
        Some(g) => Some(g),
        None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
    };
    let policy = q
        .get("propagationPolicy")
        .map(str::to_string)
        .or_else(|| {
            body.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(
            || match body.get("orphanDependents").and_then(Value::as_bool) {
                Some(true) => Some("Orphan".to_string()),
                Some(false) => Some("Background".to_string()),
                None => None,
            },
        );
    let dry_run = call.dry_run()?
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let mut options = json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"});
    if let Some(m) = body.as_object() {
        for (k, v) in m {
            if !matches!(k.as_str(), "kind" | "apiVersion") {
                options[k] = v.clone();
            }
        }
    }
    if let Some(g) = grace {
        options["gracePeriodSeconds"] = json!(g);
    }
    if let Some(p) = &policy {
        options["propagationPolicy"] = json!(p);
    }
    if dry_run {
        options["dryRun"] = json!(["All"]);
    }
    Ok(DeleteOpts {
        user: Some(call.requester()),
        options: Some(options),
        warnings: Warnings::default(),
        audit: call.audit.clone(),
        dry_run,
        grace_period_seconds: grace,
        propagation_policy: policy,
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

async fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let opts = delete_opts(call)?;
    let resp = match call
        .gs()
        .delete(&call.entry, call.namespace(), &call.info.name, &opts)
        .await?
    {
        Deleted::Pending(obj) => encode::object_response(&call.entry, StatusCode::OK, &obj, output),
        Deleted::Now(obj) => {
            let details = rudder_registry::GenericStore::delete_details(&call.entry, &obj);
            let status = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": details.name,
                    "group": details.group,
                    "kind": details.kind,
                    "uid": details.uid,
                },
            });
            Ok(encode::json_response(StatusCode::OK, &status))
        }
    }?;
    with_warnings(resp, &opts.warnings)
}

async fn delete_collection(call: &Call<'_>) -> Result<Response, ApiError> {
    let opts = delete_opts(call)?;
    let list = list_opts(call.query)?;
    let deleted = call
        .gs()
        .delete_collection(&call.entry, call.namespace(), &list, &opts)
        .await?;
    Ok(encode::json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", call.entry.info.kind),
            "apiVersion": call.entry.info.api_version(),
            "metadata": {},
            "items": deleted,
        }),
    ))
}

/// `pods/binding`: the scheduler's (or anyone's) assignment of a pod to a node.
async fn bind(call: &Call<'_>) -> Result<Response, ApiError> {
    // Negotiated first (a Table is not acceptable here), though the answer is a Status.
    call.output()?;
    let binding = encode::decode_body(call.content_type(), &call.body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // `POST …/pods/<name>/binding`, or the `bindings` resource naming the pod in the body.
    let (entry, name) = if call.info.resource == "bindings" {
        let pods = call
            .gs()
            .registry
            .get("", "v1", "pods")
            .ok_or_else(not_found_route)?;
        let name = object::name(&binding).to_string();
        (pods, name)
    } else {
        (call.entry.clone(), call.info.name.clone())
    };
    let gr = entry.info.group_resource();
    if node.is_empty() {
        return Err(ApiError::invalid(
            &rudder_api::status::GroupKind::new("", "Binding"),
            &name,
            &rudder_api::field::ErrorList(vec![rudder_api::field::FieldError::required(
                &rudder_api::field::Path::new("target").child("name"),
                "",
            )]),
        ));
    }
    let now = rudder_registry::object::now_rfc3339();
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        raw: true,
        ..call.admission_opts()
    };
    // spec.nodeName is immutable through the pod itself; the binding sets it, with the
    // PodScheduled condition, in one system write.
    call.gs()
        .update(
            &entry,
            call.namespace(),
            &name,
            |current| {
                let current = current.ok_or_else(|| ApiError::not_found(&gr, &name))?;
                if object::meta(current).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                    return Err(ApiError::conflict(&gr, &name, format!("pod {name} is being deleted, cannot be assigned to a host")));
                }
                let assigned = current.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
                if !assigned.is_empty() {
                    return Err(ApiError::conflict(&gr, &name, format!("pod {name} is already assigned to node \"{assigned}\"")));
                }
                let mut pod = current.clone();
                pod["spec"]["nodeName"] = json!(node);
                let conds = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
                let mut conds: Vec<Value> = conds.into_iter().filter(|c| c["type"] != "PodScheduled").collect();
                conds.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
                pod["status"]["conditions"] = Value::Array(conds);
                Ok(pod)
            },
            &opts,
        )
        .await?;
    Ok(encode::json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The `autoscaling/v1` Scale view of a workload.
fn scale_of(entry: &Entry, obj: &Value) -> Value {
    let paths = entry.strategy.scale_paths();
    let (spec_at, status_at) = paths.map_or(("/spec/replicas", "/status/replicas"), |p| {
        (p.spec_replicas.as_str(), p.status_replicas.as_str())
    });
    let selector = match paths {
        // A custom resource keeps its selector in string form.
        Some(p) => p
            .label_selector
            .as_deref()
            .and_then(|at| obj.pointer(at))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        None => obj
            .pointer("/spec/selector")
            .map(selector_string)
            .unwrap_or_default(),
    };
    let meta = object::meta(obj).cloned().unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": {"replicas": obj.pointer(spec_at).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer(status_at).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// A label selector object (or a replication controller's plain map) as its string form.
fn selector_string(sel: &Value) -> String {
    let plain = |m: &serde_json::Map<String, Value>| -> Vec<String> {
        m.iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect()
    };
    let Some(m) = sel.as_object() else {
        return String::new();
    };
    if !m.contains_key("matchLabels") && !m.contains_key("matchExpressions") {
        return plain(m).join(",");
    }
    match serde_json::from_value::<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>(
        sel.clone(),
    ) {
        Ok(ls) => Selector::from_label_selector(Some(&ls))
            .map(|s| s.to_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// A Scale in the negotiated form (upstream's scale storage converts to its own Table).
fn scale_response(output: Output, scale: &Value) -> Result<Response, ApiError> {
    match output {
        Output::Table(include) => {
            let t = encode::kind_table("autoscaling", "Scale", &[scale], include, None, None)?;
            Ok(encode::json_response(StatusCode::OK, &t))
        }
        Output::Yaml => encode::yaml_response(StatusCode::OK, scale),
        Output::PartialMetadata => Ok(encode::json_response(
            StatusCode::OK,
            &encode::partial_metadata(scale),
        )),
        Output::PartialMetadataList => Err(encode::not_acceptable(
            "you requested PartialObjectMetadataList, but the requested object is not a list (*autoscaling.Scale)".to_owned(),
        )),
        Output::Json => Ok(encode::json_response(StatusCode::OK, scale)),
    }
}

async fn get_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let output = call.output()?;
    let obj = call
        .gs()
        .get(&call.entry, call.namespace(), &call.info.name)
        .await?;
    scale_response(output, &scale_of(&call.entry, &obj))
}

async fn write_scale(
    call: &Call<'_>,
    mut to_scale: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let output = call.output()?;
    let opts = WriteOpts {
        dry_run: call.dry_run()?,
        field_validation: call.field_validation()?,
        ..call.admission_opts()
    };
    let gr = call.entry.info.group_resource();
    let name = call.info.name.clone();
    let (obj, _) = call
        .gs()
        .update(
            &call.entry,
            call.namespace(),
            &call.info.name,
            |current| {
                let current = current.ok_or_else(|| ApiError::not_found(&gr, &name))?;
                let scale = to_scale(&scale_of(&call.entry, current))?;
                let rv = object::meta_str(&scale, "resourceVersion");
                let mut obj = current.clone();
                if !rv.is_empty() {
                    object::set_meta(&mut obj, "resourceVersion", json!(rv));
                }
                let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
                if !replicas.is_i64() || replicas.as_i64().unwrap_or(-1) < 0 {
                    return Err(ApiError::invalid(
                        &rudder_api::status::GroupKind::new("autoscaling", "Scale"),
                        &name,
                        &rudder_api::field::ErrorList(vec![
                            rudder_api::field::FieldError::invalid(
                                &rudder_api::field::Path::new("spec").child("replicas"),
                                replicas.to_string(),
                                "must be greater than or equal to 0",
                            ),
                        ]),
                    ));
                }
                match call.entry.strategy.scale_paths() {
                    Some(p) => set_at(&mut obj, &p.spec_replicas, replicas),
                    None => obj["spec"]["replicas"] = replicas,
                }
                Ok(obj)
            },
            &opts,
        )
        .await?;
    scale_response(output, &scale_of(&call.entry, &obj))
}

/// Set the value at a JSON pointer, creating the objects on the way.
fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    for part in pointer.trim_start_matches('/').split('/') {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = &mut cur[part];
    }
    *cur = value;
}

async fn update_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let body = call.decode_object(&Gvk::new("autoscaling", "v1", "Scale"))?;
    write_scale(call, |_| Ok(body.clone())).await
}

async fn patch_scale(call: &Call<'_>) -> Result<Response, ApiError> {
    let kind = patch_type(call.content_type())?;
    let patch: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    write_scale(call, |scale| {
        let mut s = apply_patch(&kind, &patch, scale, "autoscaling/v1", "Scale")?;
        if object::meta_str(&s, "resourceVersion") == object::meta_str(scale, "resourceVersion") {
            // No precondition from the client: apply to whatever is current.
            object::remove_meta(&mut s, "resourceVersion");
        }
        Ok(s)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_as_strings() {
        assert_eq!(
            selector_string(&json!({"matchLabels": {"app": "web"}})),
            "app=web"
        );
        assert_eq!(selector_string(&json!({"app": "rc"})), "app=rc");
        assert_eq!(
            selector_string(
                &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})
            ),
            "tier in (a,b)"
        );
    }

    #[test]
    fn patches_apply() {
        let cur = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}});
        let p = |kind, patch: Value| apply_patch(&kind, &patch, &cur, "apps/v1", "Deployment");
        let merged = p(
            PatchType::Merge,
            json!({"metadata": {"labels": {"b": null, "c": "3"}}}),
        )
        .unwrap();
        assert_eq!(merged["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        let patched = p(
            PatchType::Json,
            json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
        )
        .unwrap();
        assert_eq!(patched["spec"]["replicas"], 2);
        let err = p(PatchType::Json, json!([{"op": "remove", "path": "/nope"}])).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            patch_type(Some("application/apply-patch+yaml"))
                .err()
                .unwrap()
                .code,
            415
        );
        // Strategic merge: containers merge by name; directives never reach the object.
        let deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "b:2"}]}}}});
        let out = apply_patch(
            &PatchType::Strategic,
            &patch,
            &deploy,
            "apps/v1",
            "Deployment",
        )
        .unwrap();
        let ctrs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            ctrs,
            &json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
        // No Go type for a custom resource: 415, as upstream.
        let err = apply_patch(
            &PatchType::Strategic,
            &patch,
            &deploy,
            "example.com/v1",
            "Widget",
        )
        .unwrap_err();
        assert_eq!(err.code, 415);
    }
}
