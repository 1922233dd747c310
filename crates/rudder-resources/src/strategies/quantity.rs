//! Resource quantities live in `rudder-api` (the scheduler and kubelet need them too, and
//! must not depend on this crate).
pub(crate) use rudder_api::quantity::*;
