//! Per-type behaviour: what makes a Pod a Pod, and nothing else.
//!
//! Strategies are synchronous and pure (no IO; the clock comes in through [`OpCx`]) so they are
//! the cheapest code in the project to test. Anything that must read other objects (namespace
//! lifecycle, quota, service-account defaulting) is admission, not strategy. They work on the
//! object's JSON; a strategy that wants typed access decodes into its k8s-openapi type.

use rudder_api::field::ErrorList;
use rudder_api::status::ApiError;
use rudder_api::validation::NameValidator;
use serde_json::Value;

/// What a strategy may know about the operation.
#[derive(Clone, Debug)]
pub struct OpCx {
    /// The operation's time, as written into timestamps (RFC 3339, whole seconds).
    pub now: String,
}

impl OpCx {
    pub fn now() -> Self {
        OpCx {
            now: crate::object::now_rfc3339(),
        }
    }
}

/// The authenticated user behind a request (upstream's `user.Info`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requester {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

/// A column of a custom resource's Table (a CRD's `additionalPrinterColumns`).
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    /// A simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`).
    pub json_path: String,
}

/// Where a custom resource keeps what its `scale` subresource shows, as JSON pointers (a CRD's
/// `specReplicasPath`, `statusReplicasPath`, `labelSelectorPath`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// The generic store calls these hooks in upstream's order: `decode`, `to_internal` and
/// `default` on every body, then `prepare_for_create` / `prepare_for_update`, then validation.
pub trait Strategy: Send + Sync + 'static {
    /// Normalise a decoded body into the type's canonical JSON (e.g. a round trip through the
    /// typed struct). An error is the decode error upstream would give (400 BadRequest).
    fn decode(&self, obj: Value) -> Result<Value, String> {
        Ok(obj)
    }

    /// The decoded body in the form that is defaulted, validated and stored (upstream's
    /// conversion to the internal version). It runs after the unknown-field check, so fields a
    /// version accepts but never stores are folded in here and are not "unknown" (a Secret's
    /// `stringData` goes into `data`).
    fn to_internal(&self, obj: Value) -> Value {
        obj
    }

    /// Upstream's defaulting (`SetDefaults_*`), applied to every create and update body.
    fn default(&self, _obj: &mut Value) {}

    /// Clear fields users may not set on create (e.g. `status`).
    fn prepare_for_create(&self, _cx: &OpCx, _obj: &mut Value) {}

    /// Carry over what an update of the main resource must not change (e.g. `status`).
    fn prepare_for_update(&self, _cx: &OpCx, _new: &mut Value, _old: &Value) {}

    /// The kind's rule for `metadata.name` and `metadata.generateName` (the `ValidateNameFunc`
    /// its upstream `ValidateObjectMeta` call gets): a DNS subdomain unless the kind says
    /// otherwise.
    fn name_validator(&self) -> NameValidator {
        rudder_api::validation::name_is_dns_subdomain
    }

    /// The name rule as applied to `obj`: [`Strategy::name_validator`], unless the rule depends
    /// on the object (a CustomResourceDefinition's name is `<plural>.<group>`).
    fn name_errors(&self, _obj: &Value, name: &str, prefix: bool) -> Vec<String> {
        (self.name_validator())(name, prefix)
    }

    /// Record the creator on the object (upstream strategies that read the user from the
    /// request context, e.g. a CertificateSigningRequest's `spec.username`).
    fn prepare_for_create_by(&self, _user: Option<&Requester>, _obj: &mut Value) {}

    /// Shape a write through a subresource: `status` (after the generic store has kept
    /// everything of the old object but `status`) or one named in
    /// [`WriteOpts::subresource`](crate::WriteOpts::subresource) (`new` is the body with the
    /// server's metadata restored; the strategy keeps what the subresource may change).
    fn prepare_for_subresource_update(
        &self,
        _subresource: &str,
        _cx: &OpCx,
        _new: &mut Value,
        _old: &Value,
    ) {
    }

    /// Validation of a write through a subresource; by default that of any update.
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        cx: &OpCx,
        new: &Value,
        old: &Value,
    ) -> ErrorList {
        self.validate_update(cx, new, old)
    }

    /// Validation of the object beyond ObjectMeta, which the generic store checks itself.
    fn validate(&self, _cx: &OpCx, _obj: &Value) -> ErrorList {
        ErrorList::new()
    }

    /// Validation of an update; by default the new object is validated like a created one.
    fn validate_update(&self, cx: &OpCx, new: &Value, _old: &Value) -> ErrorList {
        self.validate(cx, new)
    }

    /// Whether `metadata.generation` is maintained: set to 1 on create and bumped whenever
    /// `spec` changes (kinds with a spec, upstream).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether PUT may create a missing object.
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Whether an update without `metadata.resourceVersion` is accepted (last write wins).
    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// Fields beyond `metadata.name`/`metadata.namespace` that field selectors may use
    /// (upstream's selectable fields, e.g. pods' `spec.nodeName` and `status.phase`).
    fn selectable_fields(&self, _obj: &Value, _out: &mut Vec<(String, String)>) {}

    /// The Table columns of a resource defined at run time; `None` for kinds whose printers
    /// are built in.
    fn printer_columns(&self) -> Option<&[PrinterColumn]> {
        None
    }

    /// Where the `scale` subresource reads and writes, for kinds other than the built-in
    /// workloads (whose replicas are `spec.replicas`).
    fn scale_paths(&self) -> Option<&ScalePaths> {
        None
    }

    /// Whether objects of this version are stored in another version's form (events.k8s.io/v1
    /// events are stored as core/v1 events, as upstream stores one version per resource).
    fn converts(&self) -> bool {
        false
    }

    /// This version's object in the stored form (called only when [`Strategy::converts`]).
    fn version_to_storage(&self, obj: Value) -> Result<Value, String> {
        Ok(obj)
    }

    /// A stored object in this version's form (called only when [`Strategy::converts`]).
    fn storage_to_version(&self, obj: Value) -> Value {
        obj
    }

    /// Called on a delete that nothing else holds (no finalizers, no grace period). Kinds whose
    /// deletion is a process keep the object, marked, and return true: a namespace turns
    /// `Terminating` until the namespace controller has emptied it and cleared
    /// `spec.finalizers`.
    fn begin_delete(&self, _cx: &OpCx, _obj: &mut Value) -> bool {
        false
    }

    /// The grace period a delete should wait, if the kind deletes gracefully (pods: their
    /// `terminationGracePeriodSeconds` once scheduled). `None` deletes at once.
    fn graceful_delete_seconds(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }
}

/// The strategy of kinds with no special behaviour.
pub struct DefaultStrategy {
    pub tracks_generation: bool,
}

impl Strategy for DefaultStrategy {
    fn tracks_generation(&self) -> bool {
        self.tracks_generation
    }
}

/// Conversion between versions of a resource that needs I/O: a CRD's conversion webhook
/// (upstream's `webhookConverter`). One per served version, which knows that version and the
/// storage version.
#[async_trait::async_trait]
pub trait Converter: Send + Sync {
    /// An object of the entry's version in the storage version.
    async fn to_storage(&self, obj: Value) -> Result<Value, ApiError>;

    /// Stored objects in the entry's version, in order (one call for a whole list).
    async fn to_version(&self, objs: Vec<Value>) -> Result<Vec<Value>, ApiError>;
}
