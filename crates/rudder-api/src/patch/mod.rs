//! Patch engines: strategic merge patch (SMP) and JSON merge patch (RFC 7386).
//!
//! kubectl sends `application/strategic-merge-patch+json` for `apply`, `edit`, `set`, `rollout`,
//! `patch` (its default), `cordon`, `taint` and `debug`, and computes those patches with
//! upstream's `strategicpatch` package. The server must apply them exactly as kube-apiserver
//! does, so this module is a port of `k8s.io/apimachinery/pkg/util/strategicpatch` (v0.36), the
//! apply half (`StrategicMergePatch`) and the two-way diff (`CreateTwoWayMergePatch`), with the
//! same directive handling, list ordering rules and error messages.
//!
//! Upstream reads the per-field merge strategy from Go struct tags. Rust has no such tags, and
//! `k8s-openapi` carries none of the `x-kubernetes-patch-*` extensions, so the strategies come
//! from data: [`SchemaTable::builtin`] is built from `data/list-and-patch-semantics.tsv` (the
//! tags of every built-in field, extracted from upstream's types) and `data/struct-fields.tsv`
//! (the struct graph, generated from k8s-openapi's sources of the same Kubernetes version).
//!
//! - [`strategic_merge`]: upstream's `StrategicMergePatch`.
//! - [`create_two_way_merge_patch`]: upstream's `CreateTwoWayMergePatch`.
//! - [`merge_patch`] and [`create_merge_patch`]: RFC 7386, used for `application/merge-patch+json`
//!   and for custom resources, which have no struct tags.
//!
//! Kinds without a schema (custom resources) and fields the table does not know get JSON-merge
//! semantics inside SMP: maps merge recursively, lists are replaced whole.

mod diff;
mod error;
mod govalue;
mod merge;
mod order;
mod schema;
mod strategic;

pub use diff::create_two_way_merge_patch;
pub use error::PatchError;
pub use merge::{create_merge_patch, merge_patch};
pub use schema::{
    FieldDef, FieldShape, ListType, MapType, PatchMeta, PatchStrategy, SchemaError, SchemaTable,
    StructType, TypeDef, TypeSchema,
};
pub use strategic::strategic_merge;
