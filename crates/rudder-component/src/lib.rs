//! Machinery every Rudder component that is an API client shares (the scheduler, the controller
//! manager, later the node agent): leader election on a `coordination.k8s.io` Lease as
//! client-go's `leaderelection` does it, and the `/healthz` + `/metrics` endpoint a component
//! serves when it runs as its own process.

pub mod duration;
pub mod events;
pub mod health;
pub mod leader;
pub mod reflect;

pub use duration::parse_go_duration;
pub use health::{serve_health, MetricsRender};
pub use leader::{LeaderElection, LeaderMetrics};
