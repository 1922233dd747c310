//! Custom resources: what a CustomResourceDefinition makes the registry serve (upstream's
//! `apiextensions-apiserver` `customresource` strategy and the naming controller's checks).
//!
//! A CRD becomes one registry [`Entry`] per served version, built from its `spec` once the
//! CRD is `Established`; all versions share one storage prefix, `/registry/<group>/<plural>`.

use std::sync::Arc;

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::resources::{ResourceInfo, SubresourceInfo};
use rudder_api::validation::{is_dns1035_label, is_dns1123_subdomain};
use rudder_apiextensions::Structural;
use rudder_registry::{Entry, OpCx, PrinterColumn, ScalePaths, Strategy};
use serde_json::{json, Value};

/// The finalizer that holds a CRD's deletion until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Upstream's verbs on a custom resource.
const VERBS: [&str; 8] = [
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

/// Objects of one version of a custom resource.
pub struct CustomResourceStrategy {
    status: bool,
    /// `spec.versions[].selectableFields[].jsonPath`s, without the leading dot.
    selectable: Vec<String>,
    columns: Vec<PrinterColumn>,
    scale: Option<ScalePaths>,
    /// The version's structural schema; `None` when it has none or it is not structural
    /// (then nothing is pruned, defaulted or validated, as upstream for such CRDs).
    schema: Option<Arc<Structural>>,
    /// `<group>/<version>` of this version and of the storage version: objects are stored in
    /// the storage version and converted with the `None` strategy (only `apiVersion` changes,
    /// as upstream's nopConverter) when they differ.
    api_version: String,
    storage_api_version: String,
}

impl Strategy for CustomResourceStrategy {
    fn tracks_generation(&self) -> bool {
        true
    }

    /// Unknown fields are pruned here; the generic store reports what went (as
    /// `unknown field "spec.foo"`, an error under `fieldValidation=Strict`).
    fn decode(&self, mut obj: Value) -> Result<Value, String> {
        if let Some(s) = &self.schema {
            s.prune(&mut obj);
        }
        Ok(obj)
    }

    fn default(&self, obj: &mut Value) {
        if let Some(s) = &self.schema {
            s.default(obj);
        }
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        self.schema
            .as_ref()
            .map_or_else(ErrorList::new, |s| s.validate(obj, None))
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        self.schema
            .as_ref()
            .map_or_else(ErrorList::new, |s| s.validate(new, Some(old)))
    }

    fn validate_subresource_update(
        &self,
        subresource: &str,
        cx: &OpCx,
        new: &Value,
        old: &Value,
    ) -> ErrorList {
        match (subresource, &self.schema) {
            ("status", Some(s)) => s.validate_status(new, Some(old)),
            _ => self.validate_update(cx, new, old),
        }
    }

    /// Upstream defaults objects read from storage too, so a default added to the schema
    /// later shows on old objects. Only schemas with defaults pay for the read-time pass.
    fn converts(&self) -> bool {
        self.api_version != self.storage_api_version
            || self.schema.as_ref().is_some_and(|s| s.has_defaults())
    }

    fn version_to_storage(&self, mut obj: Value) -> Result<Value, String> {
        if let Some(m) = obj.as_object_mut() {
            m.insert(
                "apiVersion".into(),
                Value::String(self.storage_api_version.clone()),
            );
        }
        Ok(obj)
    }

    fn storage_to_version(&self, mut obj: Value) -> Value {
        // Whatever version an object was stored at (the storage version may have changed
        // since), a read answers in the version asked for.
        if let Some(m) = obj.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        }
        if let Some(s) = &self.schema {
            s.default(&mut obj);
        }
        obj
    }

    fn prepare_for_create(&self, _cx: &OpCx, obj: &mut Value) {
        // With a status subresource, status is written only through it.
        if self.status {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
    }

    fn scale_paths(&self) -> Option<&ScalePaths> {
        self.scale.as_ref()
    }

    fn printer_columns(&self) -> Option<&[PrinterColumn]> {
        Some(&self.columns)
    }

    fn allow_unconditional_update(&self) -> bool {
        // Upstream's customresource strategy: a PUT must name the resourceVersion it replaces.
        false
    }

    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        for path in &self.selectable {
            let pointer = format!("/{}", path.replace('.', "/"));
            let value = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                _ => String::new(),
            };
            out.push((path.clone(), value));
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn strings_at(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The names a CRD asks for, defaulted as upstream does (`singular` is the lower-cased kind,
/// `listKind` is `<kind>List`).
#[derive(Clone, Debug, PartialEq)]
pub struct Names {
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
}

impl Names {
    pub fn of(names: &Value) -> Names {
        let kind = str_at(names, "/kind").to_owned();
        let singular = match str_at(names, "/singular") {
            "" => kind.to_lowercase(),
            s => s.to_owned(),
        };
        let list_kind = match str_at(names, "/listKind") {
            "" => format!("{kind}List"),
            s => s.to_owned(),
        };
        Names {
            plural: str_at(names, "/plural").to_owned(),
            singular,
            kind,
            list_kind,
            short_names: strings_at(names, "/shortNames"),
            categories: strings_at(names, "/categories"),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "plural": self.plural,
            "singular": self.singular,
            "kind": self.kind,
            "listKind": self.list_kind,
        });
        if !self.short_names.is_empty() {
            v["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            v["categories"] = json!(self.categories);
        }
        v
    }
}

/// Upstream's naming controller: the names `crd` asks for, checked against the names other
/// CRDs of its group have been granted. `Err` is the `NamesAccepted=False` reason and message.
pub fn accept_names(crd: &Value, others: &[&Value]) -> Result<Names, (&'static str, String)> {
    let requested = Names::of(crd.pointer("/spec/names").unwrap_or(&Value::Null));
    let group = str_at(crd, "/spec/group");
    let me = str_at(crd, "/metadata/name");
    let mut taken: Vec<Names> = Vec::new();
    for other in others {
        if str_at(other, "/spec/group") != group || str_at(other, "/metadata/name") == me {
            continue;
        }
        if let Some(n) = other.pointer("/status/acceptedNames") {
            taken.push(Names::of(n));
        }
    }
    let in_use = |s: &str| format!("{} is already in use", rudder_api::go_quote(s));
    for t in &taken {
        if t.plural == requested.plural || t.singular == requested.plural {
            return Err(("PluralConflict", in_use(&requested.plural)));
        }
        if t.plural == requested.singular || t.singular == requested.singular {
            return Err(("SingularConflict", in_use(&requested.singular)));
        }
        if let Some(s) = requested
            .short_names
            .iter()
            .find(|s| t.short_names.contains(s) || **s == t.plural || **s == t.singular)
        {
            return Err(("ShortNamesConflict", in_use(s)));
        }
        if t.kind == requested.kind || t.list_kind == requested.kind {
            return Err(("KindConflict", in_use(&requested.kind)));
        }
        if t.kind == requested.list_kind || t.list_kind == requested.list_kind {
            return Err(("ListKindConflict", in_use(&requested.list_kind)));
        }
    }
    Ok(requested)
}

/// Whether a CRD's condition of `type_` is `True`.
pub fn condition_true(crd: &Value, type_: &str) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == type_ && c["status"] == "True")
        })
}

/// Set a CRD condition, keeping `lastTransitionTime` when its status does not change (upstream's
/// `SetCRDCondition`). Returns whether anything changed.
pub fn set_condition(
    crd: &mut Value,
    now: &str,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    if !crd["status"]["conditions"].is_array() {
        crd["status"]["conditions"] = json!([]);
    }
    let Some(conds) = crd["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let new = json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    });
    match conds.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] == status && c["reason"] == reason && c["message"] == message {
                return false;
            }
            let mut new = new;
            if c["status"] == status {
                new["lastTransitionTime"] = c["lastTransitionTime"].clone();
            }
            *c = new;
        }
        None => conds.push(new),
    }
    true
}

/// The registry entries an established CRD serves: one per served version, named by its
/// accepted names.
pub fn entries(crd: &Value) -> Vec<Entry> {
    if !condition_true(crd, "Established") {
        return Vec::new();
    }
    let names = Names::of(crd.pointer("/status/acceptedNames").unwrap_or(&Value::Null));
    let group = str_at(crd, "/spec/group").to_owned();
    if names.plural.is_empty() || names.kind.is_empty() || group.is_empty() {
        return Vec::new();
    }
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    let prefix = rudder_api::resources::storage_prefix(&group, &names.plural);
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .map(|v| str_at(v, "/name").to_owned())
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| {
            let version = str_at(v, "/name").to_owned();
            let status = v.pointer("/subresources/status").is_some();
            let scale = v.pointer("/subresources/scale").is_some();
            let verbs = vec!["get".to_owned(), "patch".to_owned(), "update".to_owned()];
            let mut subresources = Vec::new();
            if scale {
                subresources.push(SubresourceInfo {
                    name: "scale".into(),
                    group: "autoscaling".into(),
                    version: "v1".into(),
                    kind: "Scale".into(),
                    verbs: verbs.clone(),
                });
            }
            if status {
                subresources.push(SubresourceInfo {
                    name: "status".into(),
                    group: group.clone(),
                    version: version.clone(),
                    kind: names.kind.clone(),
                    verbs,
                });
            }
            let selectable = v
                .pointer("/selectableFields")
                .and_then(Value::as_array)
                .map(|fs| {
                    fs.iter()
                        .filter_map(|f| f["jsonPath"].as_str())
                        .map(|p| p.trim_start_matches('.').to_owned())
                        .collect()
                })
                .unwrap_or_default();
            Entry {
                info: ResourceInfo {
                    group: group.clone(),
                    version,
                    plural: names.plural.clone(),
                    singular: names.singular.clone(),
                    kind: names.kind.clone(),
                    short_names: names.short_names.clone(),
                    categories: names.categories.clone(),
                    namespaced,
                    verbs: VERBS.iter().map(|s| s.to_string()).collect(),
                    subresources,
                    columns: Vec::new(),
                },
                prefix: prefix.clone(),
                // The API server gives versions of a Webhook-converted CRD its webhook.
                converter: None,
                strategy: Arc::new(CustomResourceStrategy {
                    schema: version_schema(crd, v),
                    api_version: format!("{group}/{}", str_at(v, "/name")),
                    storage_api_version: format!("{group}/{storage}"),
                    status,
                    selectable,
                    columns: printer_columns(v),
                    scale: v.pointer("/subresources/scale").map(|s| {
                        let pointer = |p: &str| p.trim_start_matches('.').replace('.', "/");
                        ScalePaths {
                            spec_replicas: format!("/{}", pointer(str_at(s, "/specReplicasPath"))),
                            status_replicas: format!(
                                "/{}",
                                pointer(str_at(s, "/statusReplicasPath"))
                            ),
                            label_selector: s["labelSelectorPath"]
                                .as_str()
                                .map(|p| format!("/{}", pointer(p))),
                        }
                    }),
                }),
            }
        })
        .collect()
}

/// A version's structural schema: its own `schema.openAPIV3Schema`, else the CRD's top-level
/// one (older stored CRDs).
fn version_schema(crd: &Value, version: &Value) -> Option<Arc<Structural>> {
    let schema = version
        .pointer("/schema/openAPIV3Schema")
        .or_else(|| crd.pointer("/spec/validation/openAPIV3Schema"))?;
    Structural::from_schema(schema).ok().map(Arc::new)
}

/// A version's `additionalPrinterColumns`; upstream's default is one `Age` column.
fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    let cols = match version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    {
        Some(cols) if !cols.is_empty() => cols.clone(),
        _ => {
            vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
        }
    };
    cols.iter()
        .map(|c| PrinterColumn {
            name: str_at(c, "/name").to_owned(),
            type_: str_at(c, "/type").to_owned(),
            format: str_at(c, "/format").to_owned(),
            description: str_at(c, "/description").to_owned(),
            priority: c["priority"].as_i64().unwrap_or(0) as i32,
            json_path: str_at(c, "/jsonPath").to_owned(),
        })
        .collect()
}

/// Upstream's CRD defaulting (`SetDefaults_CustomResourceDefinition*`): the singular name,
/// the list kind and the conversion strategy.
pub fn default_crd(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if names
            .get("singular")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if names
            .get("listKind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && !kind.is_empty()
        {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    match spec.get_mut("conversion").and_then(Value::as_object_mut) {
        Some(c) => {
            if c.get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                c.insert("strategy".into(), json!("None"));
            }
            // Upstream's `SetDefaults_ServiceReference`.
            if let Some(svc) = c
                .get_mut("webhook")
                .and_then(|w| w.get_mut("clientConfig"))
                .and_then(|cc| cc.get_mut("service"))
                .and_then(Value::as_object_mut)
            {
                svc.entry("port").or_insert(json!(443));
            }
        }
        None => {
            spec.insert("conversion".into(), json!({"strategy": "None"}));
        }
    }
}

/// Upstream's `validateCustomResourceConversion`. Its paths name the internal type's fields
/// (`webhookClientConfig`, `conversionReviewVersions` directly under `conversion`), as
/// upstream's messages for v1 objects do.
fn conversion(c: &Value, require_recognized: bool, path: &Path, errs: &mut ErrorList) {
    let webhook = c.get("webhook").filter(|w| !w.is_null());
    let client_config = webhook
        .and_then(|w| w.get("clientConfig"))
        .filter(|c| !c.is_null());
    let review_versions: Vec<&str> = webhook
        .and_then(|w| w.get("conversionReviewVersions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let cc_path = path.child("webhookClientConfig");
    let rv_path = path.child("conversionReviewVersions");
    if str_at(c, "/strategy") != "Webhook" {
        if client_config.is_some() {
            errs.push(FieldError::forbidden(
                &cc_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        if !review_versions.is_empty() {
            errs.push(FieldError::forbidden(
                &rv_path,
                "should not be set when strategy is not set to Webhook",
            ));
        }
        return;
    }
    match client_config {
        None => errs.push(FieldError::required(
            &cc_path,
            "required when strategy is set to Webhook",
        )),
        Some(cc) => {
            let url = cc.get("url").and_then(Value::as_str);
            let service = cc.get("service").filter(|s| s.is_object());
            match (url, service) {
                (Some(u), None) => validate_webhook_url(&cc_path.child("url"), u, errs),
                (None, Some(svc)) => validate_webhook_service(&cc_path.child("service"), svc, errs),
                _ => errs.push(FieldError::required(
                    &cc_path,
                    "exactly one of url or service is required",
                )),
            }
        }
    }
    if review_versions.is_empty() {
        errs.push(FieldError::required(&rv_path, ""));
        return;
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut recognized = false;
    for (i, v) in review_versions.iter().enumerate() {
        if seen.contains(v) {
            errs.push(FieldError::invalid(
                &rv_path.index(i),
                *v,
                "duplicate version",
            ));
            continue;
        }
        seen.push(v);
        for msg in is_dns1035_label(v) {
            errs.push(FieldError::invalid(&rv_path.index(i), *v, msg));
        }
        recognized |= matches!(*v, "v1" | "v1beta1");
    }
    if require_recognized && !recognized {
        let shown: Vec<String> = review_versions.iter().map(|v| format!("{v:?}")).collect();
        errs.push(FieldError::invalid(
            &rv_path,
            rudder_api::field::BadValue::Raw(format!("[]string{{{}}}", shown.join(", "))),
            "must include at least one of v1, v1beta1",
        ));
    }
}

/// Upstream's `ValidateWebhookURL` with https required.
fn validate_webhook_url(path: &Path, url: &str, errs: &mut ErrorList) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (rest, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once(':') {
        Some((s, r))
            if !s.is_empty()
                && s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (s.to_ascii_lowercase(), r)
        }
        _ => (String::new(), rest),
    };
    let (user, host) = match rest.strip_prefix("//") {
        Some(authority) => {
            let authority = authority.split('/').next().unwrap_or("");
            match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            }
        }
        None => (None, ""),
    };
    if scheme != "https" {
        errs.push(FieldError::invalid(
            path,
            scheme.as_str(),
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    if host.is_empty() {
        errs.push(FieldError::invalid(
            path,
            host,
            format!("host must be provided{FORM}"),
        ));
    }
    if let Some(u) = user {
        // Go prints the user without its password's text.
        let shown = match u.split_once(':') {
            Some((name, _)) => format!("{name}:xxxxx"),
            None => u.to_string(),
        };
        errs.push(FieldError::invalid(
            path,
            shown,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errs.push(FieldError::invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(FieldError::invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
}

/// Upstream's `ValidateWebhookService`.
fn validate_webhook_service(path: &Path, svc: &Value, errs: &mut ErrorList) {
    if str_at(svc, "/name").is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "service name is required",
        ));
    }
    if str_at(svc, "/namespace").is_empty() {
        errs.push(FieldError::required(
            &path.child("namespace"),
            "service namespace is required",
        ));
    }
    let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            &path.child("port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(url_path) = svc.get("path").and_then(Value::as_str) else {
        return;
    };
    if url_path.is_empty() || url_path == "/" {
        return;
    }
    let at = path.child("path");
    if url_path == "//" {
        errs.push(FieldError::invalid(
            &at,
            url_path,
            "segment[0] may not be empty",
        ));
        return;
    }
    if !url_path.starts_with('/') {
        errs.push(FieldError::invalid(&at, url_path, "must start with a '/'"));
    }
    let inner = url_path.get(1..).unwrap_or("");
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    for (i, step) in inner.split('/').enumerate() {
        if step.is_empty() {
            errs.push(FieldError::invalid(
                &at,
                url_path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for failure in is_dns1123_subdomain(step) {
            errs.push(FieldError::invalid(
                &at,
                url_path,
                format!("segment[{i}]: {failure}"),
            ));
        }
    }
}

fn dns1035(value: &str, path: &Path, mixed_case: bool, errs: &mut ErrorList) {
    if value.is_empty() {
        return;
    }
    let problems = if mixed_case {
        is_dns1035_label(&value.to_lowercase())
    } else {
        is_dns1035_label(value)
    };
    if !problems.is_empty() {
        let detail = if mixed_case {
            format!(
                "may have mixed case, but should otherwise match: {}",
                problems.join(",")
            )
        } else {
            problems.join(",")
        };
        errs.push(FieldError::invalid(path, value, detail));
    }
}

/// Upstream `validateSimpleJSONPath` (printer columns, scale paths).
fn simple_json_path(s: &str, path: &Path, errs: &mut ErrorList) -> bool {
    if s.is_empty() {
        errs.push(FieldError::invalid(path, s, "must not be empty"));
        false
    } else if !s.starts_with('.') {
        errs.push(FieldError::invalid(
            path,
            s,
            "must be a simple json path starting with .",
        ));
        false
    } else {
        true
    }
}

const PRINTER_COLUMN_TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
const PRINTER_COLUMN_FORMATS: [&str; 8] = [
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// Upstream `ValidateCustomResourceDefinition` (+ `...Update` with `old`): group, scope,
/// names, versions (exactly one storage version), each version's schema (structural, its
/// defaults valid and pruned), printer columns, scale paths, conversion.
pub fn validate_crd(crd: &Value, old: Option<&Value>) -> ErrorList {
    let mut errs = ErrorList::new();
    let spec_at = Path::new("spec");
    let empty = json!({});
    let spec = crd.get("spec").unwrap_or(&empty);
    let group = str_at(spec, "/group");
    if group.is_empty() {
        errs.push(FieldError::required(&spec_at.child("group"), ""));
    } else {
        let problems = is_dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &spec_at.child("group"),
                group,
                problems.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                &spec_at.child("group"),
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match str_at(spec, "/scope") {
        "" => errs.push(FieldError::required(&spec_at.child("scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            &spec_at.child("scope"),
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let versions_at = spec_at.child("versions");
    let mut storage = 0;
    let mut seen: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, v) in versions.iter().enumerate() {
        let at = versions_at.index(i);
        let name = str_at(v, "/name");
        if v["storage"] == true {
            storage += 1;
        }
        if seen.contains(&name) {
            unique = false;
        }
        seen.push(name);
        let problems = is_dns1035_label(name);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &at.child("name"),
                name,
                problems.join(","),
            ));
        }
        let schema_at = at.child("schema").child("openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema") {
            None | Some(Value::Null) => {
                errs.push(FieldError::required(&schema_at, "schemas are required"))
            }
            Some(schema) => {
                if let Err(found) = Structural::from_schema_at(schema, &schema_at) {
                    errs.0.extend(found);
                }
            }
        }
        if let Some(scale) = v.pointer("/subresources/scale") {
            let sub_at = at.child("subresources");
            for (key, under, required) in [
                ("specReplicasPath", ".spec.", true),
                ("statusReplicasPath", ".status.", true),
                ("labelSelectorPath", ".status.", false),
            ] {
                let p = sub_at.child(format!("scale.{key}"));
                let value = str_at(scale, &format!("/{key}"));
                if value.is_empty() {
                    if required {
                        errs.push(FieldError::required(&p, ""));
                    }
                } else if simple_json_path(value, &p, &mut errs) && !value.starts_with(under) {
                    let what = under.trim_matches('.');
                    errs.push(FieldError::invalid(
                        &p,
                        value,
                        format!("should be a json path under .{what}"),
                    ));
                }
            }
        }
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (j, c) in cols.iter().enumerate() {
            let cat = at.child("additionalPrinterColumns").index(j);
            if str_at(c, "/name").is_empty() {
                errs.push(FieldError::required(&cat.child("name"), ""));
            }
            let t = str_at(c, "/type");
            let types = format!("must be one of {}", PRINTER_COLUMN_TYPES.join(","));
            if t.is_empty() {
                errs.push(FieldError::required(&cat.child("type"), types));
            } else if !PRINTER_COLUMN_TYPES.contains(&t) {
                errs.push(FieldError::invalid(&cat.child("type"), t, types));
            }
            let f = str_at(c, "/format");
            if !f.is_empty() && !PRINTER_COLUMN_FORMATS.contains(&f) {
                errs.push(FieldError::invalid(
                    &cat.child("format"),
                    f,
                    format!("must be one of {}", PRINTER_COLUMN_FORMATS.join(",")),
                ));
            }
            let jp = str_at(c, "/jsonPath");
            if jp.is_empty() {
                errs.push(FieldError::required(&cat.child("jsonPath"), ""));
            } else {
                simple_json_path(jp, &cat.child("jsonPath"), &mut errs);
            }
        }
        let fields = v
            .get("selectableFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut seen_paths: Vec<&str> = Vec::new();
        for (j, f) in fields.iter().enumerate() {
            let fat = at.child("selectableFields").index(j).child("jsonPath");
            let jp = f.get("jsonPath").and_then(Value::as_str).unwrap_or("");
            if jp.is_empty() {
                errs.push(FieldError::required(&fat, ""));
                continue;
            }
            if seen_paths.contains(&jp) {
                errs.push(FieldError::duplicate(&fat, jp));
            }
            seen_paths.push(jp);
        }
    }
    if !unique {
        errs.push(FieldError::invalid(
            &versions_at,
            Value::Array(versions.clone()),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            &versions_at,
            Value::Array(versions.clone()),
            "must have exactly one version marked as storage version",
        ));
    }
    let names_at = spec_at.child("names");
    for key in ["plural", "singular", "kind", "listKind"] {
        if str_at(spec, &format!("/names/{key}")).is_empty() {
            errs.push(FieldError::required(&names_at.child(key), ""));
        }
    }
    let names = spec.get("names").unwrap_or(&empty);
    dns1035(
        str_at(names, "/plural"),
        &names_at.child("plural"),
        false,
        &mut errs,
    );
    dns1035(
        str_at(names, "/singular"),
        &names_at.child("singular"),
        false,
        &mut errs,
    );
    dns1035(
        str_at(names, "/kind"),
        &names_at.child("kind"),
        true,
        &mut errs,
    );
    dns1035(
        str_at(names, "/listKind"),
        &names_at.child("listKind"),
        true,
        &mut errs,
    );
    for (i, s) in strings_at(names, "/shortNames").iter().enumerate() {
        dns1035(s, &names_at.child("shortNames").index(i), false, &mut errs);
    }
    let kind = str_at(names, "/kind");
    if !kind.is_empty() && kind == str_at(names, "/listKind") {
        errs.push(FieldError::invalid(
            &names_at.child("listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, s) in strings_at(names, "/categories").iter().enumerate() {
        dns1035(s, &names_at.child("categories").index(i), false, &mut errs);
    }
    if spec.get("preserveUnknownFields") == Some(&Value::Bool(true)) {
        errs.push(FieldError::invalid(
            &spec_at.child("preserveUnknownFields"),
            true,
            "must be false",
        ));
    }
    match str_at(spec, "/conversion/strategy") {
        "" | "None" | "Webhook" => {}
        other => errs.push(FieldError::not_supported(
            &spec_at.child("conversion").child("strategy"),
            other,
            &["None", "Webhook"],
        )),
    }
    if let Some(c) = spec.get("conversion").filter(|c| c.is_object()) {
        // An update may keep review versions it no longer recognizes, as upstream.
        let require_recognized = old.is_none_or(|o| {
            o.pointer("/spec/conversion/webhook/conversionReviewVersions")
                .and_then(Value::as_array)
                .is_none_or(|vs| {
                    vs.iter()
                        .any(|v| matches!(v.as_str(), Some("v1" | "v1beta1")))
                })
        });
        conversion(
            c,
            require_recognized,
            &spec_at.child("conversion"),
            &mut errs,
        );
    }
    if let Some(old) = old {
        let immutable = |p: &str, path: Path, errs: &mut ErrorList| {
            let (new_v, old_v) = (str_at(crd, p), str_at(old, p));
            if new_v != old_v {
                errs.push(FieldError::invalid(&path, new_v, "field is immutable"));
            }
        };
        if condition_true(old, "Established") {
            immutable("/spec/scope", spec_at.child("scope"), &mut errs);
            immutable("/spec/names/kind", names_at.child("kind"), &mut errs);
        }
        immutable("/spec/group", spec_at.child("group"), &mut errs);
        immutable("/spec/names/plural", names_at.child("plural"), &mut errs);
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, plural: &str, kind: &str, short: &[&str]) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": plural, "kind": kind, "shortNames": short},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}},
                     "selectableFields": [{"jsonPath": ".spec.color"}]},
                    {"name": "v0", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn established_crd_serves_its_served_versions() {
        let mut c = crd("widgets.example.com", "widgets", "Widget", &["wd"]);
        assert!(entries(&c).is_empty(), "not served before Established");
        let names = accept_names(&c, &[]).unwrap();
        assert_eq!(names.singular, "widget");
        assert_eq!(names.list_kind, "WidgetList");
        c["status"] = json!({
            "acceptedNames": names.to_json(),
            "conditions": [{"type": "Established", "status": "True"}],
        });
        let es = entries(&c);
        assert_eq!(es.len(), 1);
        let e = &es[0];
        assert_eq!(e.prefix, "/registry/example.com/widgets");
        assert_eq!(e.info.short_names, vec!["wd"]);
        assert!(e.has_status());
        let mut fields = Vec::new();
        e.strategy
            .selectable_fields(&json!({"spec": {"color": "red"}}), &mut fields);
        assert_eq!(fields, vec![("spec.color".to_string(), "red".to_string())]);
    }

    #[test]
    fn printer_columns_are_typed_as_declared() {
        let cols = printer_columns(&json!({"additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[0].status"},
            {"name": "Wrong", "type": "integer", "jsonPath": ".spec.name"},
        ]}));
        let obj = json!({
            "metadata": {"name": "a"},
            "spec": {"replicas": 3.0, "name": "x"},
            "status": {"conditions": [{"status": "True"}]},
        });
        let (defs, rows) =
            crate::printers::custom_table(&cols, &[&obj], std::time::SystemTime::now());
        assert_eq!(defs[1]["name"], "Replicas");
        assert_eq!(
            rows,
            vec![vec![json!("a"), json!(3), json!("True"), Value::Null]]
        );
        assert_eq!(
            printer_columns(&json!({}))[0].json_path,
            ".metadata.creationTimestamp"
        );
    }

    #[test]
    fn names_in_use_are_refused() {
        let mut a = crd("widgets.example.com", "widgets", "Widget", &["wd"]);
        a["status"]["acceptedNames"] = accept_names(&a, &[]).unwrap().to_json();
        let b = crd("gadgets.example.com", "gadgets", "Gadget", &["wd"]);
        assert_eq!(
            accept_names(&b, &[&a]),
            Err(("ShortNamesConflict", "\"wd\" is already in use".into()))
        );
        let mut k = crd("others.example.com", "others", "Widget", &[]);
        k["spec"]["names"]["singular"] = json!("other");
        assert_eq!(accept_names(&k, &[&a]).unwrap_err().0, "KindConflict");
    }

    fn errors(crd: &Value) -> Vec<String> {
        validate_crd(crd, None)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn crd_validation_has_upstreams_messages() {
        let mut c = crd("widgets.example.com", "widgets", "Widget", &[]);
        c["spec"]["versions"].as_array_mut().unwrap().truncate(1);
        default_crd(&mut c);
        assert_eq!(c["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(c["spec"]["conversion"]["strategy"], "None");
        assert_eq!(
            errors(&c),
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"]
        );
        c["spec"]["versions"][0]["schema"] = json!({"openAPIV3Schema": {"type": "object",
            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer", "default": "big"}}}}}});
        assert_eq!(
            errors(&c),
            vec![
                r#"spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].default: Invalid value: "string":  in body must be of type integer: "string""#
            ]
        );
        c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["size"]["default"] = json!(3);
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
        c["spec"]["group"] = json!("example");
        c["spec"]["versions"][0]["storage"] = json!(false);
        c["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "X", "type": "color", "jsonPath": "spec.x"}]);
        let got = errors(&c);
        assert!(got.contains(&r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#.to_string()), "{got:?}");
        assert!(
            got.iter()
                .any(|e| e.starts_with("spec.versions: Invalid value: [{")
                    && e.ends_with("must have exactly one version marked as storage version")),
            "{got:?}"
        );
        assert!(got.contains(&r#"spec.versions[0].additionalPrinterColumns[0].type: Invalid value: "color": must be one of boolean,date,integer,number,string"#.to_string()), "{got:?}");
        assert!(got.contains(&r#"spec.versions[0].additionalPrinterColumns[0].jsonPath: Invalid value: "spec.x": must be a simple json path starting with ."#.to_string()), "{got:?}");
    }

    #[test]
    fn conversion_webhooks_are_validated_as_upstream() {
        let mut c = crd("widgets.example.com", "widgets", "Widget", &[]);
        c["spec"]["versions"].as_array_mut().unwrap().truncate(1);
        c["spec"]["versions"][0]["schema"] = json!({"openAPIV3Schema": {"type": "object"}});
        c["spec"]["conversion"] = json!({"strategy": "Webhook"});
        default_crd(&mut c);
        assert_eq!(
            errors(&c),
            vec![
                "spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.conversionReviewVersions: Required value",
            ]
        );
        c["spec"]["conversion"]["webhook"] = json!({
            "clientConfig": {"url": "http://user:pw@conv.example.com/x?a=b#f"},
            "conversionReviewVersions": ["v2", "v2"]});
        assert_eq!(
            errors(&c),
            vec![
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]"#,
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "user:xxxxx": user information is not permitted in the URL"#,
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "f": fragments are not permitted in the URL"#,
                r#"spec.conversion.webhookClientConfig.url: Invalid value: "a=b": query parameters are not permitted in the URL"#,
                r#"spec.conversion.conversionReviewVersions[1]: Invalid value: "v2": duplicate version"#,
                r#"spec.conversion.conversionReviewVersions: Invalid value: []string{"v2", "v2"}: must include at least one of v1, v1beta1"#,
            ]
        );
        c["spec"]["conversion"]["webhook"] = json!({
            "clientConfig": {"service": {"name": "conv", "namespace": "ns", "path": "/convert//x"}},
            "conversionReviewVersions": ["v1"]});
        default_crd(&mut c);
        assert_eq!(
            c["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"],
            443
        );
        assert_eq!(
            errors(&c),
            vec![
                r#"spec.conversion.webhookClientConfig.service.path: Invalid value: "/convert//x": segment[1] may not be empty"#
            ]
        );
        c["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["path"] = json!("/convert");
        assert!(errors(&c).is_empty(), "{:?}", errors(&c));
        // Webhook settings with another strategy are refused.
        c["spec"]["conversion"]["strategy"] = json!("None");
        assert_eq!(
            errors(&c),
            vec![
                "spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
                "spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook",
            ]
        );
    }
}
