//! Admission: per-request logic that needs more than the object itself (upstream's admission
//! plugins and the REST-layer allocators). Unlike a strategy it may hold state, such as the
//! Service IP and node-port allocators. The generic store calls every plugin that handles the
//! resource, in order, after defaulting and before validation.

use rudder_api::status::ApiError;
use serde_json::Value;

use crate::registry::Entry;

#[async_trait::async_trait]
pub trait Admission: Send + Sync {
    /// Whether this plugin acts on the resource.
    fn handles(&self, entry: &Entry) -> bool;

    /// Mutating admission of a create: may change the object (allocate a cluster IP) or
    /// refuse it. With `dry_run` nothing may stay reserved.
    fn admit_create(
        &self,
        _entry: &Entry,
        _obj: &mut Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Mutating admission of an update of `old` to `new`.
    fn admit_update(
        &self,
        _entry: &Entry,
        _new: &mut Value,
        _old: &Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// Validating admission (upstream's `ValidationInterface`): runs once the object passed
    /// validation, just before it is persisted, and may read and write other objects (quota
    /// admission charges usage to ResourceQuotas here). `old` is the object an update
    /// replaces; `subresource` the subresource written (`status`, ...).
    async fn validate(
        &self,
        _entry: &Entry,
        _obj: &Value,
        _old: Option<&Value>,
        _subresource: Option<&str>,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        Ok(())
    }

    /// The write admitted with `obj` (replacing `old`, if an update) was not persisted: undo
    /// what admission reserved for it.
    fn abort(&self, _entry: &Entry, _obj: &Value, _old: Option<&Value>) {}

    /// A write was persisted: `old` (if any) was replaced by `new` (`None` when deleted).
    /// Release what only `old` held.
    fn committed(&self, _entry: &Entry, _new: Option<&Value>, _old: Option<&Value>) {}
}
