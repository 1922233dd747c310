//! Server-side apply and managed-fields tracking, after upstream's
//! `sigs.k8s.io/structured-merge-diff` (`fieldpath`, `typed`, `merge`) and
//! `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager`.
//!
//! - [`PathElement`], [`FieldSet`]: field paths and sets, encoded as FieldsV1 exactly as
//!   upstream.
//! - [`to_field_set`], [`compare`], [`merge`], [`remove_items`]: the typed operations over a JSON
//!   value and its [`TypeSchema`](rudder_api::patch::TypeSchema).
//! - [`ManagedFieldsEntry`]: `metadata.managedFields` decode/encode and upstream's ordering.
//! - [`FieldManager`]: `update` (non-apply writes) and `apply` (with conflicts and `force`).

mod conflict;
mod error;
mod lastapplied;
mod managed;
mod manager;
mod path;
mod set;
mod typed;

pub use conflict::{Conflict, Conflicts};
pub use error::FieldManagerError;
pub use lastapplied::LAST_APPLIED_ANNOTATION;
pub use managed::{ManagedFieldsEntry, Operation};
pub use manager::{
    FieldManager, OperationInfo, ANCIENT_CHANGES_MANAGER, BEFORE_FIRST_APPLY_MANAGER,
    MAX_UPDATE_MANAGERS,
};
pub use path::{path_string, Path, PathElement};
pub use set::FieldSet;
pub use typed::{atomic_paths, compare, merge, remove_items, to_field_set, Comparison};

#[cfg(test)]
mod tests;
