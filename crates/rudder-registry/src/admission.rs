//! Admission: per-request logic that needs more than the object itself (upstream's admission
//! plugins and the REST-layer allocators). Unlike a strategy it may hold state, such as the
//! Service IP and node-port allocators.
//!
//! The generic store runs, for every plugin that [handles](Admission::handles) the resource and
//! in the order plugins are given:
//! 1. after defaulting, the synchronous mutating hooks ([`Admission::admit_create`],
//!    [`Admission::admit_update`]) of every plugin (built-in defaulting and allocation);
//! 2. then the asynchronous mutating step ([`Admission::mutate`]) of every plugin (mutating
//!    webhooks, which upstream runs after the built-in mutating plugins);
//! 3. after the object passed validation, just before it is persisted,
//!    [`Admission::validate`] of every plugin; deletes run this step too (with the object
//!    being deleted), as upstream's validating admission sees DELETE.
//!
//! Every hook past the allocation hooks sees upstream's `admission.Attributes`
//! ([`Attributes`]): the requesting user, operation, subresource, dry run, options and the old
//! object.

use rudder_api::status::ApiError;
use serde_json::Value;

use crate::generic::{AuditContext, Warnings};
use crate::registry::Entry;
use crate::strategy::Requester;

/// Upstream's `admission.Operation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The name on the wire (`AdmissionRequest.operation`, rules' `operations`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// Upstream's `admission.Attributes`: what a plugin knows about the request besides the object.
#[derive(Clone, Copy)]
pub struct Attributes<'a> {
    pub entry: &'a Entry,
    pub operation: Operation,
    pub namespace: &'a str,
    /// The object's name (after `generateName` on a create).
    pub name: &'a str,
    /// The subresource written (`status`, `scale`, `binding`, ...); empty for the resource.
    pub subresource: &'a str,
    /// The authenticated caller; `None` for the server's own writes.
    pub user: Option<&'a Requester>,
    pub dry_run: bool,
    /// The request's options object (`CreateOptions`, `UpdateOptions`, `PatchOptions`,
    /// `DeleteOptions`), as upstream puts in an AdmissionReview.
    pub options: Option<&'a Value>,
    /// The object an update replaces; on DELETE, the object being deleted.
    pub old: Option<&'a Value>,
    /// Where warnings for the response go (the `Warning` headers).
    pub warnings: &'a Warnings,
    /// Where annotations for the request's audit event go.
    pub audit: &'a AuditContext,
}

impl Attributes<'_> {
    /// Whether this is a write of the resource itself rather than a subresource.
    pub fn is_main_resource(&self) -> bool {
        self.subresource.is_empty()
    }
}

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

    /// Asynchronous mutating admission of a CREATE or UPDATE (upstream's `MutationInterface`
    /// for plugins that call out, such as mutating webhooks): runs after every plugin's
    /// synchronous hooks. Plugins that reserve nothing need no [`abort`](Admission::abort).
    async fn mutate(&self, _attrs: &Attributes<'_>, _obj: &mut Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// Validating admission (upstream's `ValidationInterface`): runs once the object passed
    /// validation, just before it is persisted, and may read and write other objects (quota
    /// admission charges usage to ResourceQuotas here). On DELETE `obj` is the object being
    /// deleted (also `attrs.old`); plugins that only check writes return early for it.
    async fn validate(&self, _attrs: &Attributes<'_>, _obj: &Value) -> Result<(), ApiError> {
        Ok(())
    }

    /// The write admitted with `obj` (replacing `old`, if an update) was not persisted: undo
    /// what admission reserved for it.
    fn abort(&self, _entry: &Entry, _obj: &Value, _old: Option<&Value>) {}

    /// A write was persisted: `old` (if any) was replaced by `new` (`None` when deleted).
    /// Release what only `old` held.
    fn committed(&self, _entry: &Entry, _new: Option<&Value>, _old: Option<&Value>) {}
}
