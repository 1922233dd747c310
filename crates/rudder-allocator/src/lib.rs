//! Service ClusterIP and NodePort allocation, as upstream's service REST allocators
//! (`pkg/registry/core/service/storage/alloc.go`, `ipallocator`, `portallocator`), packaged as
//! one [`rudder_registry::Admission`] plugin for core/v1 `services`: [`ServiceAllocator`].
//!
//! - **ClusterIPs** come from the service CIDR ([`DEFAULT_SERVICE_CIDR`], k3s's 10.43.0.0/16),
//!   never its network or broadcast address. Dynamic allocation starts at a random point of the
//!   range above a lower part kept for static assignment (KEP-3070: min(max(16, size/16), 256)
//!   addresses; 10.43.0.1, the `kubernetes` service's, is in it), and uses the lower part only
//!   once the rest is full. A requested IP must be inside the CIDR and free.
//! - **Node ports** come from [`DEFAULT_NODE_PORT_RANGE`] (30000-32767) the same way (lower
//!   part min(max(16, size/32), 128) ports) for NodePort and LoadBalancer services, plus a
//!   `healthCheckNodePort` for LoadBalancers with `externalTrafficPolicy: Local`.
//! - Errors carry upstream's texts: 422 `spec.clusterIPs: Invalid value: ["10.43.0.5"]: failed
//!   to allocate IP 10.43.0.5: provided IP is already allocated`, 500 `failed to allocate a
//!   serviceIP: range is full`, and so on.
//!
//! See [`allocator`] for how reservations follow writes (pending until committed, released on
//! abort, delete or type change) and how the state is rebuilt at start-up.

pub mod allocator;
pub mod config;
mod pool;
mod service;

pub use allocator::{
    kubernetes_service, IpAllocError, LoadError, PortAllocError, ServiceAllocator,
};
pub use config::{
    ConfigError, NodePortRange, ServiceAllocatorConfig, ServiceCidr, DEFAULT_NODE_PORT_RANGE,
    DEFAULT_SERVICE_CIDR,
};
