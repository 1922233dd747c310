//! Errors of the field manager.

use crate::conflict::Conflicts;

/// Why managed fields could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldManagerError {
    /// A FieldsV1 value that does not decode.
    #[error("invalid FieldsV1: {message}")]
    InvalidFieldsV1 {
        /// What is wrong.
        message: String,
    },
    /// `metadata.managedFields` that does not decode.
    #[error("failed to decode managed fields: {message}")]
    InvalidManagedFields {
        /// What is wrong.
        message: String,
    },
    /// An object that does not conform to its schema (for example a `listType: map` item
    /// without its key fields).
    #[error("{path}: {message}")]
    InvalidObject {
        /// Where, rendered as upstream renders paths.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Apply conflicts with other managers (HTTP 409).
    #[error("{0}")]
    Conflict(Conflicts),
}
