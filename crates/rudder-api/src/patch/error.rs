//! Errors of the patch engines, worded as upstream's `mergepatch` and `strategicpatch` errors.
//!
//! kube-apiserver returns these messages verbatim in the `Status` of a failed PATCH, and kubectl
//! prints them (`Error from server: map: map[image:nginx] does not contain declared merge key:
//! name`), so the Display strings are part of the wire contract. Values inside messages are
//! rendered with Go's `%v`/`%s` rules (see `govalue`).

/// Why a patch could not be computed or applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The original, modified or patch document is not a JSON object.
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// A list item is itself a list; no built-in type has such a field.
    #[error("lists of lists are not supported")]
    NoListOfLists,
    /// A `$deleteFromPrimitiveList/...` key without a field name.
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    /// `$retainKeys` is not a list, or the patch sets a field the list does not retain.
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    /// A `$setElementOrder/...` key without a field name.
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    /// An item of a merge-by-key list lacks its merge key (`map` is Go's `%v` of the item).
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey {
        /// The item, formatted as Go prints a `map[string]interface{}`.
        map: String,
        /// The declared merge key.
        key: String,
    },
    /// A value has the wrong JSON type (Go type names: `map[string]interface {}`, ...).
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        /// The Go type upstream expected.
        expected: String,
        /// The Go type it got.
        actual: String,
    },
    /// `$patch` has a value other than `replace`, `delete` (or `merge` where allowed).
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType {
        /// The directive value, formatted with Go's `%s`.
        directive: String,
        /// The map that carries it, formatted with Go's `%v`.
        map: String,
    },
    /// The items of a list have different JSON types.
    #[error("list element types are not identical: {0}")]
    ListElementTypesNotIdentical(String),
    /// A `$setElementOrder` list was given for a list that is empty on both sides.
    #[error("no elements in any of the given slices")]
    NoElements,
    /// A list of objects has merge strategy but no merge key.
    #[error("cannot merge lists without merge key for {0}")]
    NoMergeKeyForList(String),
    /// `$patch: merge` inside a list.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// The patch list orders its items differently from `$setElementOrder`, or has items the
    /// order list lacks.
    #[error("the order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}")]
    SetElementOrderMismatch {
        /// The patch list, Go `%v`.
        patch: String,
        /// The `$setElementOrder` list, Go `%v`.
        order: String,
    },
    /// A merge-by-key list holds something other than objects.
    #[error("value for key {0} is not a map")]
    NotAMap(usize),
    /// `$patch` inside the documents being diffed is not a string.
    #[error("invalid value for special key: $patch")]
    InvalidDirectiveValue,
}

impl PatchError {
    /// The HTTP status kube-apiserver answers a failed strategic merge patch with.
    ///
    /// Upstream's `interpretStrategicMergePatchError` turns the malformed-patch errors into 400
    /// BadRequest and lists of lists into 422; every other error reaches the client as a plain
    /// error, which the handler chain reports as 500 with the message unchanged.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::BadJsonDoc
            | PatchError::BadPatchFormatForPrimitiveList
            | PatchError::BadPatchFormatForRetainKeys
            | PatchError::BadPatchFormatForSetElementOrderList => 400,
            PatchError::NoListOfLists => 422,
            _ => 500,
        }
    }
}
