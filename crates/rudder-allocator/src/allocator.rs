//! The ClusterIP and NodePort allocators as one admission plugin for core/v1 services: the
//! behaviour of upstream's service REST storage (`pkg/registry/core/service/storage/alloc.go`
//! over `ipallocator` and `portallocator`).
//!
//! Every value a write takes is reserved under a mutex while its admission runs, marked
//! *pending* with the service's `namespace/name`. When the write lands
//! ([`Admission::committed`]) its values become *persisted*, and what only the old object
//! held is released; when it does not ([`Admission::abort`]: dry run, conflict, validation
//! failure), the pending values it reserved are released. A value is only ever released on
//! behalf of the service that holds it, so nothing is handed out twice.
//!
//! State lives in this process and is rebuilt at start-up from the stored services
//! ([`ServiceAllocator::from_store`], [`ServiceAllocator::from_cache`]). Upstream, where
//! several API servers share one etcd, keeps the allocation state in etcd itself (the
//! `/registry/ranges/*` bitmaps, and since 1.33 one IPAddress object per ClusterIP) so the
//! servers agree; Rudder runs one API server per store for now, so memory is enough.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rudder_api::field::{ErrorList, FieldError, Path};
use rudder_api::status::ApiError;
use rudder_registry::cache::WatchCache;
use rudder_registry::registry::Entry;
use rudder_registry::{object, Admission};
use rudder_store::{RangeRequest, Store, StoreError};
use serde_json::{json, Value};

use crate::config::{NodePortRange, ServiceAllocatorConfig, ServiceCidr};
use crate::pool::{Holder, Pool};
use crate::service::{
    init_ip_family_fields, normalize_cluster_ips, patch_allocated_values, Held, Svc, EXTERNAL_NAME,
    IPV4, NONE,
};

/// Why a ClusterIP could not be allocated; the texts are upstream's `ipallocator` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpAllocError {
    #[error("range is full")]
    Full,
    #[error("provided IP is already allocated")]
    Allocated,
    /// The network or broadcast address of the service CIDR.
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    NotInRange { ip: Ipv4Addr, range: ServiceCidr },
    /// Outside every service CIDR (upstream's MetaAllocator, the default since 1.33).
    #[error("the provided network does not match the current range")]
    MismatchedNetwork,
}

/// Why a node port could not be allocated; the texts are upstream's `portallocator` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortAllocError {
    #[error("range is full")]
    Full,
    #[error("provided port is already allocated")]
    Allocated,
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    NotInRange { range: NodePortRange },
}

/// A failure to rebuild the allocation state from the store.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("listing services: {0}")]
    Store(#[from] StoreError),
}

/// Why admission refused a service: upstream's 422 Invalid or 500 InternalError.
enum Refusal {
    Invalid(ErrorList),
    Internal(String),
}

impl Refusal {
    fn into_api(self, entry: &Entry, name: &str) -> ApiError {
        match self {
            Refusal::Invalid(errs) => ApiError::invalid(&entry.info.group_kind(), name, &errs),
            Refusal::Internal(msg) => ApiError::internal_error(msg),
        }
    }
}

impl From<ErrorList> for Refusal {
    fn from(errs: ErrorList) -> Self {
        Refusal::Invalid(errs)
    }
}

struct State {
    cidr: ServiceCidr,
    ports: NodePortRange,
    ip_pool: Pool,
    port_pool: Pool,
    rng: fastrand::Rng,
}

impl State {
    /// Mark what a persisted service holds, as the start-up rebuild and commits do.
    fn persist(&mut self, key: &Arc<str>, held: &Held) {
        for ip in &held.ips {
            match self.cidr.index_of(*ip) {
                Some(i) => persist_one(&mut self.ip_pool, i, key, &ip.to_string()),
                None => tracing::warn!(
                    service = %key, %ip, cidr = %self.cidr,
                    "the cluster IP of a service is not within the service CIDR; please recreate it"
                ),
            }
        }
        for port in &held.ports {
            match self.ports.index_of(*port) {
                Some(i) => persist_one(&mut self.port_pool, i, key, &port.to_string()),
                None => tracing::warn!(
                    service = %key, port, range = %self.ports,
                    "the node port of a service is not within the node port range; please recreate it"
                ),
            }
        }
    }

    /// Release what `key` holds of `held`: pending reservations only (`pending`), or
    /// persisted values only.
    fn release(&mut self, key: &str, held: &Held, pending: bool) {
        for ip in &held.ips {
            if let Some(i) = self.cidr.index_of(*ip) {
                release_one(&mut self.ip_pool, i, key, pending);
            }
        }
        for port in &held.ports {
            if let Some(i) = self.ports.index_of(*port) {
                release_one(&mut self.port_pool, i, key, pending);
            }
        }
    }
}

fn persist_one(pool: &mut Pool, index: u32, key: &Arc<str>, value: &str) {
    match pool.holder_mut(index) {
        Some(h) if h.key == *key => h.pending = false,
        Some(h) => tracing::warn!(
            service = %key, value, holder = %h.key,
            "a cluster IP or node port is assigned to more than one service; please recreate one"
        ),
        None => {
            pool.take(
                index,
                Holder {
                    key: key.clone(),
                    pending: false,
                },
            );
        }
    }
}

fn release_one(pool: &mut Pool, index: u32, key: &str, pending: bool) {
    if pool
        .holder(index)
        .is_some_and(|h| &*h.key == key && h.pending == pending)
    {
        pool.release(index);
    }
}

/// The values one admission call has reserved so far, released again if it fails.
struct Txn<'a> {
    state: &'a mut State,
    key: Arc<str>,
    ips: Vec<u32>,
    ports: Vec<u32>,
}

impl<'a> Txn<'a> {
    fn new(state: &'a mut State, key: Arc<str>) -> Self {
        Txn {
            state,
            key,
            ips: Vec::new(),
            ports: Vec::new(),
        }
    }

    fn holder(&self) -> Holder {
        Holder {
            key: self.key.clone(),
            pending: true,
        }
    }

    fn next_ip(&mut self) -> Result<Ipv4Addr, IpAllocError> {
        let holder = self.holder();
        let s = &mut *self.state;
        let i = s
            .ip_pool
            .take_next(holder, &mut s.rng)
            .ok_or(IpAllocError::Full)?;
        self.ips.push(i);
        Ok(s.cidr.ip_at(i))
    }

    fn ip(&mut self, ip: Ipv4Addr) -> Result<(), IpAllocError> {
        let cidr = self.state.cidr;
        if !cidr.contains(ip) {
            return Err(IpAllocError::MismatchedNetwork);
        }
        let i = cidr
            .index_of(ip)
            .ok_or(IpAllocError::NotInRange { ip, range: cidr })?;
        let holder = self.holder();
        if !self.state.ip_pool.take(i, holder) {
            return Err(IpAllocError::Allocated);
        }
        self.ips.push(i);
        Ok(())
    }

    fn next_port(&mut self) -> Result<i64, PortAllocError> {
        let holder = self.holder();
        let s = &mut *self.state;
        let i = s
            .port_pool
            .take_next(holder, &mut s.rng)
            .ok_or(PortAllocError::Full)?;
        self.ports.push(i);
        Ok(s.ports.port_at(i))
    }

    fn port(&mut self, port: i64) -> Result<(), PortAllocError> {
        let range = self.state.ports;
        let i = range
            .index_of(port)
            .ok_or(PortAllocError::NotInRange { range })?;
        let holder = self.holder();
        if !self.state.port_pool.take(i, holder) {
            return Err(PortAllocError::Allocated);
        }
        self.ports.push(i);
        Ok(())
    }

    fn rollback(self) {
        for i in self.ips {
            self.state.ip_pool.release(i);
        }
        for i in self.ports {
            self.state.port_pool.release(i);
        }
    }
}

/// The Service ClusterIP and NodePort allocators, as an [`Admission`] plugin for core/v1
/// `services`.
pub struct ServiceAllocator {
    config: ServiceAllocatorConfig,
    state: Mutex<State>,
}

fn key_of(obj: &Value) -> Arc<str> {
    Arc::from(format!("{}/{}", object::namespace(obj), object::name(obj)))
}

/// The `kubernetes` service upstream's control-plane bootstrap controller keeps in `default`:
/// the API server at the service CIDR's first IP, port 443 (`https`) to `target_port`.
pub fn kubernetes_service(config: &ServiceAllocatorConfig, target_port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": config.kubernetes_service_ip().to_string(),
            "sessionAffinity": "None",
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": target_port}],
        },
    })
}

impl ServiceAllocator {
    /// An allocator with nothing allocated.
    pub fn new(config: ServiceAllocatorConfig) -> ServiceAllocator {
        let cidr = config.service_cidr;
        let ports = config.node_port_range;
        ServiceAllocator {
            config,
            state: Mutex::new(State {
                cidr,
                ports,
                ip_pool: Pool::new(cidr.usable(), cidr.static_offset()),
                port_pool: Pool::new(ports.size(), ports.static_offset()),
                rng: fastrand::Rng::new(),
            }),
        }
    }

    /// An allocator holding every ClusterIP and node port of the services in the watch cache.
    pub fn from_cache(config: ServiceAllocatorConfig, cache: &WatchCache) -> ServiceAllocator {
        let prefix = rudder_api::resources::storage_prefix("", "services");
        let key_prefix = rudder_api::resources::list_prefix(&prefix, None);
        let (items, _) = cache.list(&prefix, &key_prefix);
        let alloc = ServiceAllocator::new(config);
        let values: Vec<serde_json::Value> = items.iter().map(|o| o.value()).collect();
        alloc.rebuild(values.iter());
        alloc
    }

    /// An allocator holding every ClusterIP and node port of the services in the store (the
    /// same state the watch cache loads; for the composition root, before anything is
    /// served).
    pub async fn from_store(
        config: ServiceAllocatorConfig,
        store: &dyn Store,
    ) -> Result<ServiceAllocator, LoadError> {
        let prefix = rudder_api::resources::list_prefix(
            &rudder_api::resources::storage_prefix("", "services"),
            None,
        );
        let alloc = ServiceAllocator::new(config);
        let (mut start_after, mut revision) = (None, None);
        loop {
            let page = store
                .range(RangeRequest {
                    prefix: prefix.clone(),
                    start_after: start_after.take(),
                    limit: 1000,
                    revision,
                })
                .await?;
            revision = Some(page.revision);
            let services: Vec<Value> = page
                .kvs
                .iter()
                .filter_map(|kv| match serde_json::from_slice(&kv.value) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(key = %kv.key, error = %e, "skipping an undecodable service");
                        None
                    }
                })
                .collect();
            alloc.rebuild(&services);
            match page.kvs.last() {
                Some(last) if page.more => start_after = Some(last.key.clone()),
                _ => return Ok(alloc),
            }
        }
    }

    /// Mark every ClusterIP and node port of these (stored) services as taken. A value two
    /// services claim stays with the first; a value outside the ranges is ignored. Both are
    /// logged, as upstream's repair controllers do.
    pub fn rebuild<'a>(&self, services: impl IntoIterator<Item = &'a Value>) {
        let mut state = self.lock();
        for svc in services {
            state.persist(&key_of(svc), &Svc::read(svc).held());
        }
    }

    pub fn config(&self) -> &ServiceAllocatorConfig {
        &self.config
    }

    /// Whether `ip` is taken (reserved by a write in flight, or held by a stored service).
    pub fn ip_in_use(&self, ip: Ipv4Addr) -> bool {
        let state = self.lock();
        state
            .cidr
            .index_of(ip)
            .is_some_and(|i| state.ip_pool.holder(i).is_some())
    }

    /// Whether node port `port` is taken.
    pub fn port_in_use(&self, port: u16) -> bool {
        let state = self.lock();
        state
            .ports
            .index_of(i64::from(port))
            .is_some_and(|i| state.port_pool.holder(i).is_some())
    }

    /// How many ClusterIPs and node ports are taken.
    pub fn used(&self) -> (usize, usize) {
        let state = self.lock();
        (state.ip_pool.used(), state.port_pool.used())
    }

    /// How many ClusterIPs and node ports are free.
    pub fn free(&self) -> (usize, usize) {
        let state = self.lock();
        (
            state.ip_pool.size() as usize - state.ip_pool.used(),
            state.port_pool.size() as usize - state.port_pool.used(),
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Upstream's `beginCreate`: normalise, default the IP family fields, allocate.
    fn allocate_create(&self, obj: &mut Value) -> Result<(), Refusal> {
        let orig = Svc::read(obj);
        if orig.svc_type == EXTERNAL_NAME {
            return Ok(());
        }
        let mut svc = orig.clone();
        normalize_cluster_ips(&mut svc, None);
        init_ip_family_fields(&mut svc, None)?;
        let mut state = self.lock();
        let mut txn = Txn::new(&mut state, key_of(obj));
        let done = alloc_cluster_ips(&mut txn, &mut svc).and_then(|()| {
            if svc.needs_node_port() {
                init_node_ports(&mut txn, &mut svc)?;
            }
            if svc.needs_health_check_node_port() {
                alloc_health_check_node_port(&mut txn, &mut svc)?;
            }
            Ok(())
        });
        match done {
            Ok(()) => {
                svc.write(&orig, obj);
                Ok(())
            }
            Err(e) => {
                txn.rollback();
                Err(e)
            }
        }
    }

    /// Upstream's `beginUpdate`: keep allocated values a client left out, normalise, default
    /// the IP family fields, and allocate what a type change needs. Releases wait for the
    /// commit.
    fn allocate_update(&self, new: &mut Value, old: &Value) -> Result<(), Refusal> {
        if new.get("spec") == old.get("spec") {
            // Metadata or status only: nothing to allocate.
            return Ok(());
        }
        let old_svc = Svc::read(old);
        let orig = Svc::read(new);
        let mut svc = orig.clone();
        patch_allocated_values(&mut svc, &old_svc);
        normalize_cluster_ips(&mut svc, Some(&old_svc));
        init_ip_family_fields(&mut svc, Some(&old_svc))?;
        let mut state = self.lock();
        let mut txn = Txn::new(&mut state, key_of(new));
        let done = (|| -> Result<(), Refusal> {
            // ExternalName to a type with a cluster IP: allocate one (or the requested one).
            // The opposite direction releases on commit.
            if old_svc.svc_type == EXTERNAL_NAME && svc.svc_type != EXTERNAL_NAME {
                alloc_cluster_ips(&mut txn, &mut svc)?;
            }
            if svc.needs_node_port() {
                update_node_ports(&mut txn, &mut svc, &old_svc)?;
            }
            if !old_svc.needs_health_check_node_port() && svc.needs_health_check_node_port() {
                alloc_health_check_node_port(&mut txn, &mut svc)?;
            }
            Ok(())
        })();
        match done {
            Ok(()) => {
                svc.write(&orig, new);
                Ok(())
            }
            Err(e) => {
                txn.rollback();
                Err(e)
            }
        }
    }
}

/// Upstream's `allocClusterIPs`: one IP per family, the requested one or the next free one.
fn alloc_cluster_ips(txn: &mut Txn<'_>, svc: &mut Svc) -> Result<(), Refusal> {
    if svc.svc_type == EXTERNAL_NAME || svc.cluster_ips.first().is_some_and(|ip| ip == NONE) {
        return Ok(());
    }
    for i in 0..svc.ip_families.len() {
        if svc.cluster_ips.len() <= i {
            svc.cluster_ips.push(String::new());
        }
        if svc.ip_families[i] != IPV4 {
            // initIPFamilyFields refuses families this cluster does not serve.
            return Err(Refusal::Internal(format!(
                "{} is not configured on this cluster",
                svc.ip_families[i]
            )));
        }
        let requested = svc.cluster_ips[i].clone();
        let ip = if requested.is_empty() {
            txn.next_ip()
                .map_err(|e| Refusal::Internal(format!("failed to allocate a serviceIP: {e}")))?
                .to_string()
        } else {
            let parsed: Ipv4Addr = requested.parse().map_err(|_| {
                Refusal::Internal(format!("failed to parse service IP {requested:?}"))
            })?;
            txn.ip(parsed).map_err(|e| {
                Refusal::Invalid(ErrorList(vec![FieldError::invalid(
                    &Path::new("spec").child("clusterIPs"),
                    &svc.cluster_ips[..],
                    format!("failed to allocate IP {requested}: {e}"),
                )]))
            })?;
            requested
        };
        if i == 0 {
            svc.cluster_ip = ip.clone();
        }
        svc.cluster_ips[i] = ip;
    }
    Ok(())
}

fn node_port_refusal(index: usize, port: i64, err: PortAllocError) -> Refusal {
    Refusal::Invalid(ErrorList(vec![FieldError::invalid(
        &Path::new("spec")
            .child("ports")
            .index(index)
            .child("nodePort"),
        port,
        err.to_string(),
    )]))
}

fn next_node_port(txn: &mut Txn<'_>) -> Result<i64, Refusal> {
    txn.next_port()
        .map_err(|e| Refusal::Internal(format!("failed to allocate a nodePort: {e}")))
}

/// Upstream's `initNodePorts`: ports with the same port number share one node port (TCP and
/// UDP 53, say); a requested node port must be in range and free.
fn init_node_ports(txn: &mut Txn<'_>, svc: &mut Svc) -> Result<(), Refusal> {
    let mut by_port: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for i in 0..svc.ports.len() {
        let (port, node_port) = (svc.ports[i].port, svc.ports[i].node_port);
        if node_port == 0 && !svc.should_allocate_node_ports() {
            // Nothing to allocate, but requests are still honoured.
            continue;
        }
        match by_port.get(&port).copied() {
            None => {
                let requested = svc
                    .ports
                    .iter()
                    .find(|p| p.port == port && p.node_port != 0)
                    .map_or(0, |p| p.node_port);
                let np = if requested != 0 {
                    txn.port(requested)
                        .map_err(|e| node_port_refusal(i, requested, e))?;
                    requested
                } else {
                    next_node_port(txn)?
                };
                svc.ports[i].node_port = np;
                by_port.insert(port, np);
            }
            Some(allocated) if node_port != allocated => {
                if node_port == 0 {
                    svc.ports[i].node_port = allocated;
                } else {
                    txn.port(node_port)
                        .map_err(|e| node_port_refusal(i, node_port, e))?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Upstream's `updateNodePorts`: keep the old node ports, reserve newly requested ones,
/// allocate missing ones. The old ones the new object dropped are released on commit.
fn update_node_ports(txn: &mut Txn<'_>, svc: &mut Svc, old: &Svc) -> Result<(), Refusal> {
    let old_ports = old.held().ports;
    let mut reserved = std::collections::HashSet::new();
    let mut seen: Vec<(String, i64)> = Vec::new();
    for i in 0..svc.ports.len() {
        let node_port = svc.ports[i].node_port;
        if node_port == 0 && !svc.should_allocate_node_ports() {
            continue;
        }
        let np = if node_port != 0 {
            if !old_ports.contains(&node_port) && !reserved.contains(&node_port) {
                txn.port(node_port)
                    .map_err(|e| node_port_refusal(i, node_port, e))?;
                reserved.insert(node_port);
            }
            node_port
        } else {
            let np = next_node_port(txn)?;
            svc.ports[i].node_port = np;
            np
        };
        let entry = (svc.ports[i].protocol.clone(), np);
        if seen.contains(&entry) {
            return Err(Refusal::Internal(format!(
                "duplicate nodePort: {{{} {}}}",
                entry.0, entry.1
            )));
        }
        seen.push(entry);
    }
    Ok(())
}

/// Upstream's `allocHealthCheckNodePort` (its errors are 500s upstream too).
fn alloc_health_check_node_port(txn: &mut Txn<'_>, svc: &mut Svc) -> Result<(), Refusal> {
    let requested = svc.health_check_node_port;
    if requested != 0 {
        txn.port(requested).map_err(|e| {
            Refusal::Internal(format!(
                "failed to allocate requested HealthCheck NodePort {requested}: {e}"
            ))
        })?;
    } else {
        // Upstream prints the (shadowed, zero) port in this message.
        svc.health_check_node_port = txn.next_port().map_err(|e| {
            Refusal::Internal(format!("failed to allocate a HealthCheck NodePort 0: {e}"))
        })?;
    }
    Ok(())
}

impl Admission for ServiceAllocator {
    fn handles(&self, entry: &Entry) -> bool {
        entry.info.group.is_empty() && entry.info.plural == "services"
    }

    /// Allocates under the mutex. A dry run reserves like any write: the generic store aborts
    /// every dry run (success or not), which releases it, so nothing stays reserved and the
    /// values shown are ones a real create could have had.
    fn admit_create(&self, entry: &Entry, obj: &mut Value, _dry_run: bool) -> Result<(), ApiError> {
        let name = object::name(obj).to_string();
        self.allocate_create(obj)
            .map_err(|r| r.into_api(entry, &name))
    }

    fn admit_update(
        &self,
        entry: &Entry,
        new: &mut Value,
        old: &Value,
        _dry_run: bool,
    ) -> Result<(), ApiError> {
        let name = object::name(new).to_string();
        self.allocate_update(new, old)
            .map_err(|r| r.into_api(entry, &name))
    }

    fn abort(&self, _entry: &Entry, obj: &Value, old: Option<&Value>) {
        let held = Svc::read(obj).held();
        let new_values = match old {
            Some(old) => held.minus(&Svc::read(old).held()),
            None => held,
        };
        self.lock().release(&key_of(obj), &new_values, true);
    }

    fn committed(&self, _entry: &Entry, new: Option<&Value>, old: Option<&Value>) {
        let Some(obj) = new.or(old) else {
            return;
        };
        let key = key_of(obj);
        let new_held = new.map(|n| Svc::read(n).held()).unwrap_or_default();
        let old_held = old.map(|o| Svc::read(o).held()).unwrap_or_default();
        let mut state = self.lock();
        if new.is_some() {
            state.persist(&key, &new_held);
        }
        state.release(&key, &old_held.minus(&new_held), false);
    }
}

#[cfg(test)]
mod tests;
