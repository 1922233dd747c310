//! Rudder's scheduler: upstream kube-scheduler's framework (plugins at named extension points),
//! scheduling queue, cache with assumed pods and per-cycle snapshot, and its in-tree plugins,
//! over a `kube::Client` only, so it runs in `rudder server` or standalone against any cluster.

pub mod cache;
pub mod config;
pub mod framework;
pub mod metrics;
pub mod nodeinfo;
pub mod nominator;
pub mod plugins;
pub mod queue;
pub mod resource;
pub mod scheduler;
pub mod stores;

pub use config::SchedulerConfig;
pub use metrics::SchedulerMetrics;
pub use scheduler::run;
