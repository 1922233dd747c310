//! Rudder's sans-IO Kubernetes API helpers.
//!
//! The API server (and anything else that must speak the Kubernetes API exactly) builds on the
//! pure functions here. There is no async runtime and no HTTP stack in this crate, so it
//! compiles quickly and every rule can be unit-tested against upstream behaviour:
//!
//! - [`status`]: [`ApiError`] and its `metav1.Status` form, with upstream's reasons and messages;
//! - [`cron`]: robfig/cron's standard schedule parser (CronJob schedules);
//! - [`field`]: field paths and field errors (`spec.containers[0].name: Required value`);
//! - [`validation`]: name, label and annotation validators and ObjectMeta validation;
//! - [`selector`]: label and field selector parsing, matching and printing;
//! - [`resources`]: the built-in resource table (kinds, verbs, subresources, Table columns)
//!   and upstream's etcd key layout;
//! - [`meta`]: resourceVersion and continue-token codecs;
//! - [`patch`]: strategic merge patch and JSON merge patch, as upstream applies them.
//!
//! This crate depends on `k8s-openapi` without choosing a Kubernetes version; the binary does
//! (one `v1_*` feature). Tests enable `latest` through a dev-dependency; to build the library on
//! its own, set `K8S_OPENAPI_ENABLED_VERSION=1.37`.

pub mod cron;
pub mod field;
pub mod meta;
pub mod patch;
pub mod quantity;
pub mod quota;
pub mod resources;
pub mod selector;
pub mod status;
pub mod validation;

mod gofmt;

/// Go's `strconv.Quote` (the `%q` verb), for messages built outside this crate.
pub fn go_quote(s: &str) -> String {
    gofmt::quote(s)
}

pub use k8s_openapi;

pub use field::{ErrorList, FieldError, Path};
pub use status::{ApiError, GroupKind, GroupResource, StatusReason};
