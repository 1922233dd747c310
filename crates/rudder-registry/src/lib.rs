//! Rudder's generic registry: the API server's one implementation of every verb.
//!
//! A resource is data (a [`registry::Entry`]: its description from `rudder-api` plus a handle
//! to its [`strategy::Strategy`]) served by one [`generic::GenericStore`] over the state store,
//! with reads and watches served from one [`cache::WatchCache`]. Nothing here knows HTTP.

pub mod admission;
pub mod cache;
pub mod generic;
pub mod object;
pub mod registry;
pub mod strategy;

pub use admission::{Admission, Attributes, Operation};
pub use cache::{CacheEvent, CacheWatch, CachedObject, EventKind, WatchCache, WatchFrom};
pub use generic::{
    AuditContext, DeleteOpts, Deleted, FieldTracker, FieldValidation, GenericStore, ListOpts,
    ListResult, Tracker, Warnings, WriteOpts,
};
pub use registry::{Entry, Registry, Snapshot};
pub use strategy::{
    Converter, DefaultStrategy, OpCx, PrinterColumn, Requester, ScalePaths, Strategy,
};
