//! The generic store: every verb implemented once, over the state store and a per-type
//! strategy (upstream's `genericregistry.Store`). It knows nothing about HTTP; it takes decoded
//! objects and options and returns objects or `ApiError`s with upstream's reasons.

use std::sync::Arc;

use bytes::Bytes;
use rudder_api::field::{ErrorList, Path};
use rudder_api::meta::{decode_continue, encode_continue, parse_resource_version};
use rudder_api::selector::fields::FieldSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::{ApiError, ErrorDetails};
use rudder_api::validation::object_meta::{validate_object_meta, validate_object_meta_update};
use rudder_store::{RangeRequest, Store, StoreError, WriteOptions};
use serde_json::{json, Value};

use crate::admission::{Admission, Attributes, Operation};
use crate::cache::{CacheWatch, CachedObject, WatchCache, WatchFrom};
use crate::object;
use crate::registry::{Entry, Registry};
use crate::strategy::{OpCx, Requester};

/// How many times an update is retried when another writer got in between.
const MAX_UPDATE_ATTEMPTS: usize = 16;
/// The finalizers `propagationPolicy` adds (acted on by the garbage collector).
pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// `fieldValidation`: what to do with fields the kind does not have (upstream's default is
/// Warn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Warnings a write produced, for the `Warning` response headers.
#[derive(Clone, Debug, Default)]
pub struct Warnings(Arc<std::sync::Mutex<Vec<String>>>);

impl Warnings {
    pub fn push(&self, w: String) {
        if let Ok(mut v) = self.0.lock() {
            if !v.contains(&w) {
                v.push(w);
            }
        }
    }

    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// What a request's handling adds to its audit event (upstream's audit context): annotations
/// (`audit.AddAuditAnnotation`: authorization's decision, admission plugins' findings) and the
/// name of a created object, which only the body carries. Empty and free when the request is
/// not audited.
#[derive(Clone, Debug, Default)]
pub struct AuditContext(Option<Arc<std::sync::Mutex<AuditNotes>>>);

#[derive(Debug, Default)]
struct AuditNotes {
    annotations: Vec<(String, String)>,
    object_name: Option<String>,
}

impl AuditContext {
    /// A collector for an audited request.
    pub fn collecting() -> Self {
        AuditContext(Some(Arc::default()))
    }

    /// Whether anything added is kept (the request is audited).
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    fn with<T>(&self, f: impl FnOnce(&mut AuditNotes) -> T) -> Option<T> {
        let m = self.0.as_ref()?;
        m.lock().ok().map(|mut n| f(&mut n))
    }

    /// Adds an annotation; as upstream, a key keeps its first value.
    pub fn add(&self, key: impl Into<String>, value: impl Into<String>) {
        self.with(|n| {
            let key = key.into();
            match n.annotations.iter().find(|(k, _)| *k == key) {
                Some((_, old)) => {
                    tracing::debug!(key, old, "audit annotation already set; keeping the first")
                }
                None => n.annotations.push((key, value.into())),
            }
        });
    }

    /// The request object's name, for an event whose URL names none (a create).
    pub fn set_object_name(&self, name: &str) {
        if !name.is_empty() {
            self.with(|n| n.object_name = Some(name.to_string()));
        }
    }

    /// The annotations added so far, in key order.
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.with(|n| n.annotations.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn object_name(&self) -> Option<String> {
        self.with(|n| n.object_name.clone()).flatten()
    }
}

/// Records who set which fields (`metadata.managedFields`) on a non-apply write; the API server
/// implements it with the field manager. It runs after defaulting, as upstream's does.
pub trait FieldTracker: Send + Sync {
    fn track(&self, live: Option<&Value>, new: Value) -> Result<Value, ApiError>;
}

#[derive(Clone, Default)]
pub struct Tracker(pub Option<Arc<dyn FieldTracker>>);

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Tracker(on)"
        } else {
            "Tracker(off)"
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct WriteOpts {
    /// Managed-fields bookkeeping for this write, if any.
    pub tracker: Tracker,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub warnings: Warnings,
    pub audit: AuditContext,
    /// Whether this write is through the `status` subresource.
    pub status: bool,
    /// A system write that sets exactly what the update function returns (spec and status
    /// alike), skipping the strategy's update hooks: `pods/binding` and similar subresources
    /// that change fields the main resource treats as immutable.
    pub raw: bool,
    /// A subresource other than `status` whose writes the strategy shapes entirely
    /// (`certificatesigningrequests/approval`): see
    /// [`Strategy::prepare_for_subresource_update`](crate::Strategy::prepare_for_subresource_update).
    pub subresource: Option<&'static str>,
    /// The authenticated caller, for kinds that record who created them
    /// ([`Strategy::prepare_for_create_by`](crate::Strategy::prepare_for_create_by)) and for
    /// admission.
    pub user: Option<Requester>,
    /// The subresource of the request as admission sees it (`scale`, `binding`, ...), when
    /// neither `status` nor `subresource` says it.
    pub request_subresource: Option<String>,
    /// The request's options object (`CreateOptions`, `UpdateOptions`, `PatchOptions`) for
    /// admission.
    pub options: Option<Value>,
}

impl WriteOpts {
    /// The subresource admission is told about; empty for the resource itself.
    pub fn admission_subresource(&self) -> &str {
        self.request_subresource
            .as_deref()
            .or(self.subresource)
            .or(self.status.then_some("status"))
            .unwrap_or("")
    }

    fn attributes<'a>(
        &'a self,
        entry: &'a Entry,
        operation: Operation,
        namespace: &'a str,
        name: &'a str,
        old: Option<&'a Value>,
    ) -> Attributes<'a> {
        Attributes {
            entry,
            operation,
            namespace,
            name,
            subresource: self.admission_subresource(),
            user: self.user.as_ref(),
            dry_run: self.dry_run,
            options: self.options.as_ref(),
            old,
            warnings: &self.warnings,
            audit: &self.audit,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// The authenticated caller, for admission.
    pub user: Option<Requester>,
    /// The request's `DeleteOptions`, for admission.
    pub options: Option<Value>,
    pub warnings: Warnings,
    pub audit: AuditContext,
}

#[derive(Clone, Debug, Default)]
pub struct ListOpts {
    pub label_selector: Option<Selector>,
    pub field_selector: Option<FieldSelector>,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
}

/// A list result: the items and the list's metadata.
pub struct ListResult {
    pub items: Vec<Arc<CachedObject>>,
    pub revision: i64,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

enum CreateFailure {
    NameTaken,
    Error(ApiError),
}

/// The outcome of a delete.
pub enum Deleted {
    /// Gone from the store; the last state.
    Now(Value),
    /// Marked for deletion (graceful, or waiting on finalizers); the updated object.
    Pending(Value),
}

pub struct GenericStore {
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub registry: Arc<Registry>,
    /// Admission plugins, run in order.
    pub admission: Vec<Arc<dyn Admission>>,
}

/// Map store errors that can reach a client.
fn store_err(entry: &Entry, name: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound { .. } => ApiError::not_found(&entry.info.group_resource(), name),
        StoreError::AlreadyExists { .. } => {
            ApiError::already_exists(&entry.info.group_resource(), name)
        }
        StoreError::Conflict { .. } => {
            ApiError::optimistic_lock_conflict(&entry.info.group_resource(), name)
        }
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::too_old_resource_version(requested, compacted),
        StoreError::FutureRevision { requested, current } => {
            ApiError::too_large_resource_version(requested, current, 1)
        }
        StoreError::InvalidRequest(msg) => ApiError::bad_request(msg),
        other => ApiError::internal_error(other),
    }
}

fn decode_stored(key: &str, raw: &[u8], revision: i64) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(raw)
        .map_err(|e| ApiError::internal_error(format!("undecodable object at {key}: {e}")))?;
    object::set_resource_version(&mut v, revision);
    Ok(v)
}

/// The bytes stored for an object: its JSON without resourceVersion (the store's revision is
/// the resourceVersion, as upstream).
fn encode_for_store(obj: &Value) -> Result<Bytes, ApiError> {
    let mut v = obj.clone();
    object::remove_meta(&mut v, "resourceVersion");
    serde_json::to_vec(&v)
        .map(Bytes::from)
        .map_err(ApiError::internal_error)
}

fn invalid(entry: &Entry, name: &str, errs: ErrorList) -> ApiError {
    ApiError::invalid(&entry.info.group_kind(), name, &errs)
}

/// The random suffix of `generateName`: upstream's alphabet (no vowels, no confusable digits).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn metadata_of(
    obj: &Value,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, ApiError> {
    serde_json::from_value(obj.get("metadata").cloned().unwrap_or_else(|| json!({})))
        .map_err(|e| ApiError::bad_request(format!("invalid metadata: {e}")))
}

fn validate_meta(entry: &Entry, obj: &Value) -> Result<ErrorList, ApiError> {
    let meta = metadata_of(obj)?;
    Ok(validate_object_meta(
        &meta,
        entry.info.namespaced,
        |name: &str, prefix: bool| entry.strategy.name_errors(obj, name, prefix),
        &Path::new("metadata"),
    ))
}

impl GenericStore {
    /// Upstream's `BeforeCreate` + `Create`.
    pub async fn create(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        let cx = OpCx::now();
        let mut obj = self.prepare_body(entry, body, opts)?;
        if entry.info.namespaced {
            let req_ns = namespace.unwrap_or("");
            let obj_ns = object::namespace(&obj).to_string();
            if obj_ns.is_empty() {
                object::set_meta(&mut obj, "namespace", json!(req_ns));
            } else if obj_ns != req_ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        } else {
            object::remove_meta(&mut obj, "namespace");
        }
        if !object::meta_str(&obj, "resourceVersion").is_empty() {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        // System fields are the server's to set.
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            object::remove_meta(&mut obj, f);
        }
        let generate_name = object::meta_str(&obj, "generateName").to_string();
        let named = !object::name(&obj).is_empty();
        object::set_meta(&mut obj, "uid", json!(uuid::Uuid::new_v4().to_string()));
        object::set_meta(&mut obj, "creationTimestamp", json!(cx.now));
        entry.strategy.prepare_for_create(&cx, &mut obj);
        entry
            .strategy
            .prepare_for_create_by(opts.user.as_ref(), &mut obj);
        if entry.strategy.tracks_generation() {
            object::set_meta(&mut obj, "generation", json!(1));
        }
        if let Some(t) = &opts.tracker.0 {
            obj = t.track(None, obj)?;
        }
        let plugins: Vec<&Arc<dyn Admission>> =
            self.admission.iter().filter(|a| a.handles(entry)).collect();
        for attempt in 0..8 {
            if !named && !generate_name.is_empty() {
                object::set_meta(
                    &mut obj,
                    "name",
                    json!(format!("{generate_name}{}", random_suffix())),
                );
            }
            let name = object::name(&obj).to_string();
            let mut admitted = obj.clone();
            for (i, a) in plugins.iter().enumerate() {
                if let Err(e) = a.admit_create(entry, &mut admitted, opts.dry_run) {
                    for done in &plugins[..i] {
                        done.abort(entry, &admitted, None);
                    }
                    return Err(e);
                }
            }
            if let Err(e) = mutate_async(
                &plugins,
                opts,
                entry,
                Operation::Create,
                &mut admitted,
                None,
            )
            .await
            {
                plugins.iter().for_each(|a| a.abort(entry, &admitted, None));
                return Err(e);
            }
            let (failed, why) = match self
                .create_admitted(entry, admitted, opts, &cx, &plugins)
                .await
            {
                Ok(created) => return Ok(created),
                Err(f) => f,
            };
            plugins.iter().for_each(|a| a.abort(entry, &failed, None));
            match why {
                CreateFailure::NameTaken if !named && !generate_name.is_empty() && attempt < 7 => {
                    continue
                }
                CreateFailure::NameTaken if !named && !generate_name.is_empty() => {
                    return Err(ApiError::generate_name_conflict(
                        &entry.info.group_resource(),
                        &name,
                        1,
                    ))
                }
                CreateFailure::NameTaken => {
                    return Err(ApiError::already_exists(
                        &entry.info.group_resource(),
                        &name,
                    ))
                }
                CreateFailure::Error(e) => return Err(e),
            }
        }
        Err(ApiError::internal_error("name generation did not converge"))
    }

    /// Validate and persist an admitted object. On failure the object is handed back so that
    /// admission can release what it reserved for it.
    async fn create_admitted(
        &self,
        entry: &Entry,
        mut obj: Value,
        opts: &WriteOpts,
        cx: &OpCx,
        plugins: &[&Arc<dyn Admission>],
    ) -> Result<Value, (Value, CreateFailure)> {
        let name = object::name(&obj).to_string();
        self.catch_up_on_missing_namespace(entry, &obj).await;
        let checked = (|| -> Result<String, ApiError> {
            // One list, metadata first, as upstream's `Validate` functions start with
            // `ValidateObjectMeta` and go on with the spec.
            let mut errs = validate_meta(entry, &obj)?;
            errs.0.extend(entry.strategy.validate(cx, &obj).0);
            if !errs.0.is_empty() {
                return Err(invalid(entry, &name, errs));
            }
            self.check_namespace(entry, &obj)?;
            entry.key(Some(object::namespace(&obj)), &name)
        })();
        let key = match checked {
            Ok(k) => k,
            Err(e) => return Err((obj, CreateFailure::Error(e))),
        };
        let refused = {
            let attrs = opts.attributes(
                entry,
                Operation::Create,
                object::namespace(&obj),
                &name,
                None,
            );
            let mut refused = None;
            for a in plugins {
                if let Err(e) = a.validate(&attrs, &obj).await {
                    refused = Some(e);
                    break;
                }
            }
            refused
        };
        if let Some(e) = refused {
            return Err((obj, CreateFailure::Error(e)));
        }
        if opts.dry_run {
            return match self.store.get(&key, None).await {
                Ok((Some(_), _)) => Err((obj, CreateFailure::NameTaken)),
                Ok((None, _)) => {
                    // A dry run keeps nothing admission reserved.
                    plugins.iter().for_each(|a| a.abort(entry, &obj, None));
                    Ok(obj)
                }
                Err(e) => Err((obj, CreateFailure::Error(store_err(entry, &name, e)))),
            };
        }
        let (stored, bytes) = match self.storage_bytes(entry, &obj).await {
            Ok(b) => b,
            Err(e) => return Err((obj, CreateFailure::Error(e))),
        };
        match self.store.create(&key, bytes, write_options(entry)).await {
            Ok(rev) => {
                obj = self.written_form(entry, obj, stored).await;
                object::set_resource_version(&mut obj, rev);
                plugins
                    .iter()
                    .for_each(|a| a.committed(entry, Some(&obj), None));
                Ok(obj)
            }
            Err(StoreError::AlreadyExists { .. }) => Err((obj, CreateFailure::NameTaken)),
            Err(e) => Err((obj, CreateFailure::Error(store_err(entry, &name, e)))),
        }
    }

    /// The form an object of `entry`'s version is stored in.
    async fn storage_form(&self, entry: &Entry, obj: &Value) -> Result<Value, ApiError> {
        let obj = match &entry.converter {
            Some(c) => c.to_storage(obj.clone()).await?,
            None => obj.clone(),
        };
        if entry.strategy.converts() {
            entry
                .strategy
                .version_to_storage(obj)
                .map_err(ApiError::bad_request)
        } else {
            Ok(obj)
        }
    }

    /// The stored form of an object and its bytes.
    async fn storage_bytes(&self, entry: &Entry, obj: &Value) -> Result<(Value, Bytes), ApiError> {
        let stored = self.storage_form(entry, obj).await?;
        let bytes = encode_for_store(&stored)?;
        Ok((stored, bytes))
    }

    /// What a write answers: the object as a read would now return it. For a converted version
    /// that is the stored form converted back (upstream answers with what it decoded from
    /// storage), so what conversion adds (an autoscaling/v1 HPA's default CPU target) shows.
    /// The write is done by then: should a conversion webhook fail on the way back, the
    /// object as it was written is answered rather than an error for a stored write.
    async fn written_form(&self, entry: &Entry, obj: Value, stored: Value) -> Value {
        if !entry.strategy.converts() && entry.converter.is_none() {
            return obj;
        }
        match self.version_form(entry, stored).await {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(resource = %entry.info.group_resource(), %err,
                    "converting a written object back to its version");
                obj
            }
        }
    }

    /// A stored object in `entry`'s version.
    pub async fn version_form(&self, entry: &Entry, obj: Value) -> Result<Value, ApiError> {
        let obj = match &entry.converter {
            Some(c) => c
                .to_version(vec![obj])
                .await?
                .pop()
                .ok_or_else(|| ApiError::internal_error("the converter returned no object"))?,
            None => obj,
        };
        Ok(if entry.strategy.converts() {
            entry.strategy.storage_to_version(obj)
        } else {
            obj
        })
    }

    /// Decode, normalise and default a request body; its apiVersion and kind must be the
    /// resource's (upstream's 400 when they are not).
    fn prepare_body(
        &self,
        entry: &Entry,
        body: Value,
        opts: &WriteOpts,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was not a JSON object",
            ));
        }
        let want_version = entry.info.api_version();
        let got_version = object::api_version(&body);
        if !got_version.is_empty() && got_version != want_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({got_version}) does not match the expected API version ({want_version})"
            )));
        }
        let got_kind = object::kind(&body);
        if !got_kind.is_empty() && got_kind != entry.info.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({got_kind}) does not match the expected kind ({})",
                entry.info.kind
            )));
        }
        let mut body = body;
        if let Some(m) = body.as_object_mut() {
            m.insert("apiVersion".into(), json!(want_version));
            m.insert("kind".into(), json!(entry.info.kind));
        }
        let input = (opts.field_validation != FieldValidation::Ignore).then(|| body.clone());
        let obj = entry.strategy.decode(body).map_err(ApiError::bad_request)?;
        if let Some(input) = input {
            // What the typed decode dropped is what the kind does not have.
            let mut unknown = Vec::new();
            unknown_fields(&input, &obj, "", &mut unknown);
            if !unknown.is_empty() {
                let msgs: Vec<String> = unknown
                    .iter()
                    .map(|p| format!("unknown field \"{p}\""))
                    .collect();
                match opts.field_validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {}",
                            msgs.join(", ")
                        )))
                    }
                    _ => msgs.into_iter().for_each(|m| opts.warnings.push(m)),
                }
            }
        }
        let mut obj = entry.strategy.to_internal(obj);
        entry.strategy.default(&mut obj);
        Ok(obj)
    }

    /// A namespace created a moment ago may not be in the watch cache yet: upstream's
    /// NamespaceLifecycle looks a namespace missing from its informer up live before refusing;
    /// here the cache is first brought to the store's current revision.
    async fn catch_up_on_missing_namespace(&self, entry: &Entry, obj: &Value) {
        if !entry.info.namespaced {
            return;
        }
        let Some(ns_entry) = self.registry.get("", "v1", "namespaces") else {
            return;
        };
        let Ok(key) = ns_entry.key(None, object::namespace(obj)) else {
            return;
        };
        if self.cache.get(&ns_entry.prefix, &key).is_some() {
            return;
        }
        if let Ok(rev) = self.store.current_revision().await {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), self.cache.wait_for(rev))
                    .await;
        }
    }

    /// Namespace lifecycle admission: namespaced objects need an existing, active namespace.
    fn check_namespace(&self, entry: &Entry, obj: &Value) -> Result<(), ApiError> {
        if !entry.info.namespaced {
            return Ok(());
        }
        let ns = object::namespace(obj);
        let Some(ns_entry) = self.registry.get("", "v1", "namespaces") else {
            return Ok(());
        };
        let key = ns_entry.key(None, ns)?;
        match self.cache.get(&ns_entry.prefix, &key) {
            None => Err(ApiError::not_found(&ns_entry.info.group_resource(), ns)),
            Some(n)
                if {
                    let n = n.value();
                    n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
                        || object::meta(&n).is_some_and(|m| m.contains_key("deletionTimestamp"))
                } =>
            {
                // Upstream's NamespaceLifecycle adds the cause that controllers test for
                // (`HasStatusCause(err, NamespaceTerminatingCause)`).
                let mut err = ApiError::forbidden(
                    &entry.info.group_resource(),
                    object::name(obj),
                    format!("unable to create new content in namespace {ns} because it is being terminated"),
                );
                if let Some(d) = err.details.as_mut() {
                    d.causes.push(rudder_api::status::Cause {
                        reason: "NamespaceTerminating".into(),
                        message: format!("namespace {ns} is being terminated"),
                        field: "metadata.namespace".into(),
                    });
                }
                Err(err)
            }
            Some(_) => Ok(()),
        }
    }

    /// Admission of a subresource write that creates no object of `entry` (a pod's
    /// eviction, a service account's token request): the entry's plugins' asynchronous
    /// mutating and their validating hooks see the request's object (`Eviction`,
    /// `TokenRequest`) with `opts`' subresource, as upstream admits such requests.
    pub async fn admit_subresource_create(
        &self,
        entry: &Entry,
        namespace: &str,
        name: &str,
        obj: &mut Value,
        opts: &WriteOpts,
    ) -> Result<(), ApiError> {
        let attrs = opts.attributes(entry, Operation::Create, namespace, name, None);
        let plugins: Vec<&Arc<dyn Admission>> =
            self.admission.iter().filter(|a| a.handles(entry)).collect();
        for a in &plugins {
            a.mutate(&attrs, obj).await?;
        }
        for a in &plugins {
            a.validate(&attrs, obj).await?;
        }
        Ok(())
    }

    /// Read one object from the store (a consistent read).
    pub async fn get(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = entry.key(namespace, name)?;
        match self.store.get(&key, None).await {
            Ok((Some(kv), _)) => {
                self.version_form(entry, decode_stored(&key, &kv.value, kv.mod_revision)?)
                    .await
            }
            Ok((None, _)) => Err(ApiError::not_found(&entry.info.group_resource(), name)),
            Err(e) => Err(store_err(entry, name, e)),
        }
    }

    /// Upstream's `GuaranteedUpdate`: `update` maps the current object (None if absent) to the
    /// new one, and is re-run on the fresh object whenever another writer got in between. PUT
    /// bodies and every patch type are such functions.
    pub async fn update(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        name: &str,
        mut update: impl FnMut(Option<&Value>) -> Result<Value, ApiError>,
        opts: &WriteOpts,
    ) -> Result<(Value, bool), ApiError> {
        let key = entry.key(namespace, name)?;
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let cx = OpCx::now();
            let current = match self.store.get(&key, None).await {
                Ok((kv, _)) => kv,
                Err(e) => return Err(store_err(entry, name, e)),
            };
            let old = match &current {
                Some(kv) => Some(
                    self.version_form(entry, decode_stored(&key, &kv.value, kv.mod_revision)?)
                        .await?,
                ),
                None => None,
            };
            let body = update(old.as_ref())?;
            let Some(old) = old else {
                if !entry.strategy.allow_create_on_update() || opts.status {
                    return Err(ApiError::not_found(&entry.info.group_resource(), name));
                }
                let mut body = body;
                object::remove_meta(&mut body, "resourceVersion");
                let created = self.create(entry, namespace, body, opts).await?;
                return Ok((created, true));
            };
            let mut obj = self.prepare_body(entry, body, opts)?;
            if object::name(&obj) != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    object::name(&obj)
                )));
            }
            if entry.info.namespaced {
                let ns = object::namespace(&obj).to_string();
                if ns.is_empty() {
                    object::set_meta(&mut obj, "namespace", json!(object::namespace(&old)));
                } else if ns != object::namespace(&old) {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
            // Optimistic concurrency: a resourceVersion in the body must be the current one.
            let rv = object::meta_str(&obj, "resourceVersion").to_string();
            let current_rv = object::meta_str(&old, "resourceVersion").to_string();
            if rv.is_empty() {
                if !entry.strategy.allow_unconditional_update() {
                    let errs = ErrorList(vec![rudder_api::field::FieldError::invalid(
                        &Path::new("metadata").child("resourceVersion"),
                        rv.as_str(),
                        "must be specified for an update",
                    )]);
                    return Err(invalid(entry, name, errs));
                }
            } else if rv != current_rv {
                parse_resource_version(&rv).map_err(|e| e.to_api_error())?;
                return Err(ApiError::optimistic_lock_conflict(
                    &entry.info.group_resource(),
                    name,
                ));
            }
            // An unconditional update applies to the current version (upstream's store fills
            // the resourceVersion in before validating).
            object::set_meta(&mut obj, "resourceVersion", json!(current_rv));
            let uid = object::meta_str(&obj, "uid").to_string();
            if !uid.is_empty() && uid != object::meta_str(&old, "uid") {
                return Err(ApiError::conflict(
                    &entry.info.group_resource(),
                    name,
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::meta_str(&old, "uid")
                    ),
                ));
            }
            // The server's fields come from the stored object.
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ] {
                match object::meta(&old).and_then(|m| m.get(f)).cloned() {
                    Some(v) => object::set_meta(&mut obj, f, v),
                    None => {
                        object::remove_meta(&mut obj, f);
                    }
                }
            }
            if opts.raw {
                // Exactly what the caller built.
            } else if let Some(sub) = opts.subresource {
                entry
                    .strategy
                    .prepare_for_subresource_update(sub, &cx, &mut obj, &old);
            } else if opts.status {
                // The status subresource changes status only.
                let status = obj.get("status").cloned();
                let mut merged = old.clone();
                if let Some(m) = merged.as_object_mut() {
                    match status {
                        Some(s) => m.insert("status".into(), s),
                        None => m.remove("status"),
                    };
                }
                obj = merged;
                entry
                    .strategy
                    .prepare_for_subresource_update("status", &cx, &mut obj, &old);
            } else {
                if entry.has_status() {
                    if let Some(m) = obj.as_object_mut() {
                        match old.get("status") {
                            Some(s) => m.insert("status".into(), s.clone()),
                            None => m.remove("status"),
                        };
                    }
                }
                entry.strategy.prepare_for_update(&cx, &mut obj, &old);
                if entry.strategy.tracks_generation() && obj.get("spec") != old.get("spec") {
                    let gen = object::meta(&old)
                        .and_then(|m| m.get("generation"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    object::set_meta(&mut obj, "generation", json!(gen + 1));
                }
            }
            if let Some(t) = &opts.tracker.0 {
                obj = t.track(Some(&old), obj)?;
            }
            let plugins: Vec<&Arc<dyn Admission>> =
                self.admission.iter().filter(|a| a.handles(entry)).collect();
            for (i, a) in plugins.iter().enumerate() {
                if let Err(e) = a.admit_update(entry, &mut obj, &old, opts.dry_run) {
                    for done in &plugins[..i] {
                        done.abort(entry, &obj, Some(&old));
                    }
                    return Err(e);
                }
            }
            let abort = |o: &Value| plugins.iter().for_each(|a| a.abort(entry, o, Some(&old)));
            if let Err(e) = mutate_async(
                &plugins,
                opts,
                entry,
                Operation::Update,
                &mut obj,
                Some(&old),
            )
            .await
            {
                abort(&obj);
                return Err(e);
            }
            let checked = (|| -> Result<(), ApiError> {
                let mut errs = validate_object_meta_update(
                    &metadata_of(&obj)?,
                    &metadata_of(&old)?,
                    &Path::new("metadata"),
                );
                errs.0.extend(validate_meta(entry, &obj)?.0);
                if !opts.raw {
                    let strategy = &entry.strategy;
                    errs.0.extend(
                        match opts.subresource.or(opts.status.then_some("status")) {
                            Some(sub) => strategy.validate_subresource_update(sub, &cx, &obj, &old),
                            None => strategy.validate_update(&cx, &obj, &old),
                        }
                        .0,
                    );
                }
                if errs.0.is_empty() {
                    Ok(())
                } else {
                    Err(invalid(entry, name, errs))
                }
            })();
            if let Err(e) = checked {
                abort(&obj);
                return Err(e);
            }
            object::set_meta(&mut obj, "resourceVersion", json!(current_rv));
            if obj == old {
                // No change: nothing is written and the resourceVersion stays (upstream).
                abort(&obj);
                return Ok((old, false));
            }
            let attrs = opts.attributes(
                entry,
                Operation::Update,
                object::namespace(&obj),
                name,
                Some(&old),
            );
            for a in &plugins {
                if let Err(e) = a.validate(&attrs, &obj).await {
                    abort(&obj);
                    return Err(e);
                }
            }
            if opts.dry_run {
                abort(&obj);
                return Ok((obj, false));
            }
            let expected = current.as_ref().map_or(0, |kv| kv.mod_revision);
            // The last finalizer gone from an object being deleted: delete it now (unless the
            // kind still holds it, as a namespace does until `spec.finalizers` is empty).
            if object::meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp"))
                && object::finalizers(&obj).is_empty()
                && !entry.strategy.begin_delete(&cx, &mut obj.clone())
                && object::meta(&obj)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    == 0
            {
                abort(&obj);
                match self.store.delete(&key, Some(expected)).await {
                    Ok((rev, _)) => {
                        object::set_resource_version(&mut obj, rev);
                        plugins
                            .iter()
                            .for_each(|a| a.committed(entry, None, Some(&old)));
                        return Ok((obj, false));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(store_err(entry, name, e)),
                }
            }
            let (stored, bytes) = match self.storage_bytes(entry, &obj).await {
                Ok(b) => b,
                Err(e) => {
                    abort(&obj);
                    return Err(e);
                }
            };
            match self
                .store
                .update(&key, bytes, expected, write_options(entry))
                .await
            {
                Ok(rev) => {
                    obj = self.written_form(entry, obj, stored).await;
                    object::set_resource_version(&mut obj, rev);
                    plugins
                        .iter()
                        .for_each(|a| a.committed(entry, Some(&obj), Some(&old)));
                    return Ok((obj, false));
                }
                Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                    abort(&obj);
                    continue;
                }
                Err(e) => {
                    abort(&obj);
                    return Err(store_err(entry, name, e));
                }
            }
        }
        Err(ApiError::conflict(
            &entry.info.group_resource(),
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// Upstream's `Delete`: preconditions, graceful deletion, finalizers and the
    /// orphan/foreground finalizers of `propagationPolicy`.
    pub async fn delete(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Deleted, ApiError> {
        let key = entry.key(namespace, name)?;
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            let cx = OpCx::now();
            let (kv, _) = self
                .store
                .get(&key, None)
                .await
                .map_err(|e| store_err(entry, name, e))?;
            let Some(kv) = kv else {
                return Err(ApiError::not_found(&entry.info.group_resource(), name));
            };
            let mut obj = self
                .version_form(entry, decode_stored(&key, &kv.value, kv.mod_revision)?)
                .await?;
            if let Some(uid) = &opts.precondition_uid {
                if uid != object::meta_str(&obj, "uid") {
                    return Err(ApiError::conflict(
                        &entry.info.group_resource(),
                        name,
                        format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            object::meta_str(&obj, "uid")
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_resource_version {
                if rv != object::meta_str(&obj, "resourceVersion") {
                    return Err(ApiError::conflict(
                        &entry.info.group_resource(),
                        name,
                        format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            object::meta_str(&obj, "resourceVersion")
                        ),
                    ));
                }
            }
            // Validating admission sees every delete request, before anything changes
            // (upstream's `deleteValidation`).
            let attrs = Attributes {
                entry,
                operation: Operation::Delete,
                namespace: object::namespace(&obj),
                name,
                subresource: "",
                user: opts.user.as_ref(),
                dry_run: opts.dry_run,
                options: opts.options.as_ref(),
                old: Some(&obj),
                warnings: &opts.warnings,
                audit: &opts.audit,
            };
            for a in self.admission.iter().filter(|a| a.handles(entry)) {
                a.validate(&attrs, &obj).await?;
            }
            let mut finalizers = object::finalizers(&obj);
            let mut changed = false;
            match opts.propagation_policy.as_deref() {
                Some("Orphan") if !finalizers.iter().any(|f| f == FINALIZER_ORPHAN) => {
                    finalizers.retain(|f| f != FINALIZER_FOREGROUND);
                    finalizers.push(FINALIZER_ORPHAN.into());
                    changed = true;
                }
                Some("Foreground") if !finalizers.iter().any(|f| f == FINALIZER_FOREGROUND) => {
                    finalizers.retain(|f| f != FINALIZER_ORPHAN);
                    finalizers.push(FINALIZER_FOREGROUND.into());
                    changed = true;
                }
                Some("Orphan") | Some("Foreground") | Some("Background") | None => {}
                Some(other) => {
                    return Err(invalid(
                        entry,
                        name,
                        ErrorList(vec![rudder_api::field::FieldError::not_supported(
                            &Path::new("propagationPolicy"),
                            other,
                            &["Foreground", "Background", "Orphan", "nil"],
                        )]),
                    ))
                }
            }
            let already_deleting =
                object::meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp"));
            let grace = entry
                .strategy
                .graceful_delete_seconds(&obj, opts.grace_period_seconds)
                .filter(|g| *g > 0);
            let mut pending = !finalizers.is_empty() || grace.is_some();
            if !pending && entry.strategy.begin_delete(&cx, &mut obj) {
                // A kind may hold its deletion with a finalizer of its own (a
                // CustomResourceDefinition's `customresourcecleanup`).
                finalizers = object::finalizers(&obj);
                if already_deleting {
                    return Ok(Deleted::Pending(obj));
                }
                pending = true;
            }
            if pending {
                if already_deleting && !changed {
                    // Deleting again only shortens a pending grace period.
                    let current = object::meta(&obj)
                        .and_then(|m| m.get("deletionGracePeriodSeconds"))
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    match grace {
                        Some(g) if g < current => {}
                        _ if finalizers.is_empty() && opts.grace_period_seconds == Some(0) => {}
                        _ => return Ok(Deleted::Pending(obj)),
                    }
                }
                let grace_s = grace.unwrap_or(0);
                if grace_s == 0
                    && finalizers.is_empty()
                    && !entry.strategy.begin_delete(&cx, &mut obj)
                {
                    // fall through to immediate deletion
                } else {
                    object::set_finalizers(&mut obj, &finalizers);
                    let when = jiff::Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_secs(grace_s))
                        .map(object::format_time)
                        .unwrap_or_else(|_| cx.now.clone());
                    if !already_deleting || grace.is_some() {
                        object::set_meta(&mut obj, "deletionTimestamp", json!(when));
                    }
                    object::set_meta(&mut obj, "deletionGracePeriodSeconds", json!(grace_s));
                    if entry.strategy.tracks_generation() {
                        let gen = object::meta(&obj)
                            .and_then(|m| m.get("generation"))
                            .and_then(Value::as_i64)
                            .unwrap_or(0);
                        object::set_meta(&mut obj, "generation", json!(gen + 1));
                    }
                    if opts.dry_run {
                        return Ok(Deleted::Pending(obj));
                    }
                    let bytes = encode_for_store(&self.storage_form(entry, &obj).await?)?;
                    match self
                        .store
                        .update(&key, bytes, kv.mod_revision, write_options(entry))
                        .await
                    {
                        Ok(rev) => {
                            object::set_resource_version(&mut obj, rev);
                            return Ok(Deleted::Pending(obj));
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => return Err(store_err(entry, name, e)),
                    }
                }
            }
            if opts.dry_run {
                return Ok(Deleted::Now(obj));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(_) => {
                    self.admission
                        .iter()
                        .filter(|a| a.handles(entry))
                        .for_each(|a| a.committed(entry, None, Some(&obj)));
                    return Ok(Deleted::Now(obj));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_err(entry, name, e)),
            }
        }
        Err(ApiError::conflict(
            &entry.info.group_resource(),
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// A list, from the watch cache unless the request needs a past snapshot (pagination or an
    /// exact resourceVersion), which the store serves.
    pub async fn list(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        opts: &ListOpts,
    ) -> Result<ListResult, ApiError> {
        let key_prefix = entry.list_prefix(namespace);
        let rv = match opts.resource_version.as_deref() {
            None | Some("") => None,
            Some(s) => Some(parse_resource_version(s).map_err(|e| e.to_api_error())?),
        };
        let exact = opts.resource_version_match.as_deref() == Some("Exact");
        match opts.resource_version_match.as_deref() {
            None | Some("") | Some("Exact") | Some("NotOlderThan") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid resourceVersionMatch: {other}"
                )))
            }
        }
        let matches = |o: &CachedObject| {
            opts.label_selector
                .as_ref()
                .is_none_or(|s| s.matches(&o.labels))
                && opts
                    .field_selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&FieldsOf(o)))
        };
        if opts.limit == 0 && opts.continue_token.is_none() && !exact {
            match rv {
                // resourceVersion=0: any cached state will do.
                Some(0) => {}
                Some(r) => self.cache.wait_for(r).await?,
                // Unset: a consistent read, so wait until the cache has what the store has.
                None => {
                    let current = self
                        .store
                        .current_revision()
                        .await
                        .map_err(|e| store_err(entry, "", e))?;
                    self.cache.wait_for(current).await?;
                }
            }
            let (items, revision) = self.cache.list(&entry.prefix, &key_prefix);
            let items = items.into_iter().filter(|o| matches(o)).collect();
            return Ok(ListResult {
                items,
                revision,
                continue_token: None,
                remaining: None,
            });
        }
        // Paginated (or exact) lists read one store snapshot page by page.
        let (mut start_after, mut revision) = match &opts.continue_token {
            Some(token) => {
                let t = decode_continue(token, &key_prefix).map_err(|e| e.to_api_error())?;
                // The token's key is where the next page starts: resume just before it.
                (
                    Some(before(&t.start_key)),
                    (t.resource_version > 0).then_some(t.resource_version),
                )
            }
            None => (None, rv.filter(|r| *r > 0 && exact)),
        };
        let mut items = Vec::new();
        let limit = if opts.limit == 0 {
            usize::MAX
        } else {
            opts.limit
        };
        loop {
            let want = limit.saturating_sub(items.len()).clamp(1, 10_000);
            let page = self
                .store
                .range(RangeRequest {
                    prefix: key_prefix.clone(),
                    start_after: start_after.clone(),
                    limit: want,
                    revision,
                })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } => ApiError::resource_expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    e => store_err(entry, "", e),
                })?;
            revision = Some(page.revision);
            let mut last_key = None;
            for kv in &page.kvs {
                last_key = Some(kv.key.clone());
                let obj =
                    CachedObject::from_store(&self.registry, &kv.key, &kv.value, kv.mod_revision)
                        .map_err(ApiError::internal_error)?;
                if matches(&obj) {
                    items.push(Arc::new(obj));
                    if items.len() == limit {
                        break;
                    }
                }
            }
            let exhausted = !page.more && last_key.as_ref() == page.kvs.last().map(|kv| &kv.key);
            if items.len() == limit {
                let last = items.last().map(|o| o.key.clone()).unwrap_or_default();
                let more_after = if last_key.as_deref() == page.kvs.last().map(|kv| kv.key.as_str())
                {
                    page.more
                } else {
                    true
                };
                let token = if more_after {
                    Some(
                        encode_continue(&format!("{last}\u{0}"), &key_prefix, page.revision)
                            .map_err(|e| e.to_api_error())?,
                    )
                } else {
                    None
                };
                let remaining = if token.is_some()
                    && opts.label_selector.is_none()
                    && opts.field_selector.is_none()
                {
                    let total = self.store.count(&key_prefix).await.ok();
                    total.map(|t| {
                        let after = items.len() as i64;
                        (t as i64 - after).max(0)
                    })
                } else {
                    None
                };
                return Ok(ListResult {
                    items,
                    revision: page.revision,
                    continue_token: token,
                    remaining: remaining.filter(|_| opts.continue_token.is_none()),
                });
            }
            if exhausted || !page.more {
                return Ok(ListResult {
                    items,
                    revision: page.revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            start_after = last_key;
        }
    }

    /// A watch from the cache. `from` is `None` for "current state, then changes".
    pub async fn watch(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        from: WatchFrom,
    ) -> Result<CacheWatch, ApiError> {
        let key_prefix = entry.list_prefix(namespace);
        self.cache.watch(&entry.prefix, &key_prefix, from).await
    }

    /// Delete every object a list selects, one by one (upstream's DeleteCollection).
    pub async fn delete_collection(
        &self,
        entry: &Entry,
        namespace: Option<&str>,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> Result<Vec<Value>, ApiError> {
        let items = self.list(entry, namespace, list).await?.items;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let value = item.value();
            let ns = object::namespace(&value).to_string();
            let ns = (!ns.is_empty()).then_some(ns);
            match self
                .delete(entry, ns.as_deref(), object::name(&value), opts)
                .await
            {
                Ok(Deleted::Now(v)) | Ok(Deleted::Pending(v)) => out.push(v),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The `details` upstream puts in the Status a delete returns.
    pub fn delete_details(entry: &Entry, obj: &Value) -> ErrorDetails {
        ErrorDetails {
            name: object::name(obj).to_string(),
            group: entry.info.group.clone(),
            kind: entry.info.plural.clone(),
            uid: object::meta_str(obj, "uid").to_string(),
            ..Default::default()
        }
    }
}

/// The asynchronous mutating step of every plugin, in order, on a CREATE or UPDATE.
async fn mutate_async(
    plugins: &[&Arc<dyn Admission>],
    opts: &WriteOpts,
    entry: &Entry,
    operation: Operation,
    obj: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let namespace = object::namespace(obj).to_string();
    let name = object::name(obj).to_string();
    let attrs = opts.attributes(entry, operation, &namespace, &name, old);
    for a in plugins {
        a.mutate(&attrs, obj).await?;
    }
    Ok(())
}

/// Paths (upstream's form: `spec.foo`, `spec.containers[0].bar`) of the fields present in
/// `input` with a value but absent from the decoded object.
fn unknown_fields(input: &Value, decoded: &Value, path: &str, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    Some(dv) => unknown_fields(v, dv, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(d)) if i.len() == d.len() => {
            for (n, (iv, dv)) in i.iter().zip(d).enumerate() {
                unknown_fields(iv, dv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// The key just before `key` in byte order, for resuming a range that starts at `key`.
fn before(key: &str) -> String {
    // Continue tokens point at `<last>\0`; the range resumes strictly after `<last>`.
    key.strip_suffix('\u{0}').unwrap_or(key).to_string()
}

fn write_options(entry: &Entry) -> WriteOptions {
    // Events expire an hour after their last write, as upstream's --event-ttl default.
    if entry.info.plural == "events" {
        WriteOptions::ttl(std::time::Duration::from_secs(3600))
    } else {
        WriteOptions::default()
    }
}

struct FieldsOf<'a>(&'a CachedObject);

impl rudder_api::selector::fields::Fields for FieldsOf<'_> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.0.field(field)
    }
}
