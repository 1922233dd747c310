//! Behaviour specific to each of Rudder's built-in resource types.
//!
//! Generic API machinery (errors, validation helpers, selectors, the resource table) lives in
//! `rudder-api`; what differs from one kind to the next lives here, keyed by group and kind, so
//! the API server can stay generic:
//!
//! - [`printers`]: the `meta.k8s.io/v1` Table cells `kubectl get` prints, computed exactly as
//!   upstream kube-apiserver's printers compute them, because kubectl no longer has printers of
//!   its own.
//!
//! Everything works on an object's JSON (`serde_json::Value`) and takes the current time as a
//! parameter: no deserialisation per object, no clock reads, deterministic tests.

pub mod admission;
pub mod certificate_admission;
pub mod custom;
pub mod ingress_admission;
pub mod limitranger;
pub mod noderestriction;
pub mod podsecurity;
pub mod printers;
pub mod resourcequota;
pub mod storage_admission;
pub mod strategies;
