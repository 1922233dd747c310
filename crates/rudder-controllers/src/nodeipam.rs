//! The node IPAM controller with upstream's range allocator
//! (`pkg/controller/nodeipam/ipam/range_allocator.go`, `cidrset`): every node without
//! `spec.podCIDRs` gets the next free `--node-cidr-mask-size` block of `--cluster-cidr`
//! (IPv4), written as `podCIDR`/`podCIDRs`; a deleted node's block is released; the map of used
//! blocks is rebuilt from the nodes at start (the informer's first list). When the range is
//! exhausted the node gets upstream's `CIDRNotAvailable` event.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::controller::{
    ignore_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("invalid CIDR address: {0}")]
    Parse(String),
    #[error("--node-cidr-mask-size {mask} must be at least the cluster CIDR's prefix {prefix} and at most 32 (and within 16 bits of it)")]
    Mask { mask: u8, prefix: u8 },
    #[error("CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range")]
    Full,
    #[error("cidr {0} is out the range of cluster cidr")]
    OutOfRange(String),
}

/// Upstream's `cidrset.CidrSet` for IPv4: one bit per node block of the cluster CIDR.
#[derive(Debug)]
pub struct CidrSet {
    base: u32,
    prefix: u8,
    mask: u8,
    used: Vec<bool>,
    next: usize,
}

fn parse_cidr(s: &str) -> Result<(u32, u8), CidrError> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| CidrError::Parse(s.into()))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| CidrError::Parse(s.into()))?;
    let prefix: u8 = len
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| CidrError::Parse(s.into()))?;
    let m = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ok((u32::from(ip) & m, prefix))
}

impl CidrSet {
    pub fn new(cluster_cidr: &str, mask: u8) -> Result<CidrSet, CidrError> {
        let (base, prefix) = parse_cidr(cluster_cidr)?;
        // Upstream refuses a node mask more than 16 bits longer than the cluster's.
        if mask < prefix || mask > 32 || mask - prefix > 16 {
            return Err(CidrError::Mask { mask, prefix });
        }
        Ok(CidrSet {
            base,
            prefix,
            mask,
            used: vec![false; 1 << (mask - prefix)],
            next: 0,
        })
    }

    fn block(&self, i: usize) -> String {
        let ip = self.base + ((i as u32) << (32 - u32::from(self.mask)));
        format!("{}/{}", Ipv4Addr::from(ip), self.mask)
    }

    /// Upstream's `AllocateNext`: the first free block from after the last one allocated.
    pub fn allocate_next(&mut self) -> Result<String, CidrError> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.next + step) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.next = (i + 1) % n;
                return Ok(self.block(i));
            }
        }
        Err(CidrError::Full)
    }

    fn index(&self, cidr: &str) -> Result<usize, CidrError> {
        let (ip, prefix) = parse_cidr(cidr)?;
        let cluster_mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        if ip & cluster_mask != self.base || prefix < self.prefix {
            return Err(CidrError::OutOfRange(cidr.into()));
        }
        Ok(((ip - self.base) >> (32 - u32::from(self.mask))) as usize)
    }

    /// Upstream's `Occupy`: marks every block the CIDR covers.
    pub fn occupy(&mut self, cidr: &str) -> Result<(), CidrError> {
        let (_, prefix) = parse_cidr(cidr)?;
        let first = self.index(cidr)?;
        let count = if prefix >= self.mask {
            1
        } else {
            1 << (self.mask - prefix)
        };
        for i in first..(first + count).min(self.used.len()) {
            self.used[i] = true;
        }
        Ok(())
    }

    pub fn release(&mut self, cidr: &str) -> Result<(), CidrError> {
        let i = self.index(cidr)?;
        if let Some(u) = self.used.get_mut(i) {
            *u = false;
        }
        Ok(())
    }
}

/// The service range the API server allocates ClusterIPs from (k3s's default); blocks
/// overlapping it are never given to nodes (upstream's `filterOutServiceRange`).
const SERVICE_CIDR: &str = "10.43.0.0/16";

pub struct NodeIpam {
    client: Client,
    nodes: Arc<Informer<Node>>,
    recorder: Recorder,
    set: Mutex<CidrSet>,
    /// Nodes patched whose informer copy may not show it yet (upstream's `nodesInProcessing`).
    assigned: Mutex<std::collections::HashSet<String>>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    if !cx.options.allocate_node_cidrs {
        tracing::info!("--allocate-node-cidrs is false: node-ipam-controller allocates nothing");
        return;
    }
    let mut set = match CidrSet::new(&cx.options.cluster_cidr, cx.options.node_cidr_mask_size) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, cluster_cidr = %cx.options.cluster_cidr, "node-ipam-controller cannot start");
            return;
        }
    };
    if let Ok((svc, svc_prefix)) = parse_cidr(SERVICE_CIDR) {
        let cluster_mask = if set.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - set.prefix)
        };
        let svc_mask = u32::MAX << (32 - svc_prefix);
        if svc & cluster_mask == set.base || set.base & svc_mask == svc {
            let _ = set.occupy(SERVICE_CIDR);
        }
    }
    let c = Arc::new(NodeIpam {
        client: cx.client.clone(),
        nodes: cx.informers.get::<Node>(),
        recorder: Recorder::new(cx.client.clone(), "cidrAllocator", &cx.host),
        set: Mutex::new(set),
        assigned: Mutex::default(),
    });
    let queue = WorkQueue::new("node_ipam", cx.metrics.clone());
    let (q, this) = (queue.clone(), c.clone());
    c.nodes.add_handler(move |ch| match ch {
        Change::Added(n) | Change::Updated { new: n, .. } => {
            // Occupy at once what nodes already have, so the rebuilt map is complete before any
            // allocation (the initial list arrives through here before the workers start).
            if let Some(cidrs) = n.spec.as_ref().and_then(|s| s.pod_cidrs.as_ref()) {
                this.assigned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(n.metadata.name.as_deref().unwrap_or(""));
                let mut set = this.set.lock().unwrap_or_else(|e| e.into_inner());
                for c in cidrs.iter().take(1) {
                    if let Err(e) = set.occupy(c) {
                        tracing::warn!(node = ?n.metadata.name, error = %e, "a node's podCIDR is outside --cluster-cidr");
                    }
                }
            } else {
                q.add(n.metadata.name.clone().unwrap_or_default());
            }
        }
        Change::Deleted(n) => {
            this.assigned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(n.metadata.name.as_deref().unwrap_or(""));
            if let Some(cidrs) = n.spec.as_ref().and_then(|s| s.pod_cidrs.as_ref()) {
                let mut set = this.set.lock().unwrap_or_else(|e| e.into_inner());
                for c in cidrs.iter().take(1) {
                    let _ = set.release(c);
                }
            }
        }
    });
    let nodes = c.nodes.clone();
    tasks.spawn(async move {
        nodes.wait_synced().await;
        run_workers(queue, c, 4).await;
    });
}

impl NodeIpam {
    async fn sync(&self, name: &str) -> ReconcileResult {
        let Some(node) = self.nodes.get("", name) else {
            return Ok(Next::Done);
        };
        if node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidrs.as_ref())
            .is_some_and(|c| !c.is_empty())
        {
            return Ok(Next::Done);
        }
        if self
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
        {
            return Ok(Next::Done);
        }
        let cidr = self
            .set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .allocate_next();
        let cidr = match cidr {
            Ok(c) => c,
            Err(e) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.recorder.event_for(
                    k8s_openapi::api::core::v1::ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Node".into()),
                        name: Some(name.clone()),
                        uid: node.metadata.uid.clone(),
                        ..Default::default()
                    },
                    "default".into(),
                    "Normal",
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
                return Err(ReconcileError::Other(e.to_string()));
            }
        };
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        let r = api
            .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await;
        if let Err(e) = &r {
            // Not given to the node: back to the pool (a later update retries).
            let _ = self
                .set
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .release(&cidr);
            tracing::info!(node = %name, error = %e, "setting a node's podCIDR failed");
        } else {
            self.assigned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
            tracing::info!(node = %name, pod_cidr = %cidr, "set node PodCIDR");
        }
        ignore_not_found(r)?;
        Ok(Next::Done)
    }
}

impl Reconciler for NodeIpam {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move { self.sync(&key).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cases of upstream's cidr_set_test.go (TestCIDRSetFullyAllocated, TestCIDRSet_RandomishAllocation,
    // TestOccupy) and range_allocator_test.go (TestAllocateOrOccupyCIDRSuccess).
    #[test]
    fn allocates_in_order_and_reuses_released() {
        let mut s = CidrSet::new("10.42.0.0/16", 24).unwrap();
        assert_eq!(s.allocate_next().unwrap(), "10.42.0.0/24");
        assert_eq!(s.allocate_next().unwrap(), "10.42.1.0/24");
        s.occupy("10.42.2.0/24").unwrap();
        assert_eq!(s.allocate_next().unwrap(), "10.42.3.0/24");
        s.release("10.42.1.0/24").unwrap();
        // The scan continues after the last allocation and wraps around.
        assert_eq!(s.allocate_next().unwrap(), "10.42.4.0/24");
    }

    #[test]
    fn exhaustion_and_reuse() {
        let mut s = CidrSet::new("127.123.234.0/30", 30).unwrap();
        assert_eq!(s.allocate_next().unwrap(), "127.123.234.0/30");
        assert_eq!(s.allocate_next(), Err(CidrError::Full));
        s.release("127.123.234.0/30").unwrap();
        assert_eq!(s.allocate_next().unwrap(), "127.123.234.0/30");

        let mut s = CidrSet::new("10.0.0.0/22", 24).unwrap();
        s.occupy("10.0.0.0/23").unwrap();
        assert_eq!(s.allocate_next().unwrap(), "10.0.2.0/24");
        assert_eq!(s.allocate_next().unwrap(), "10.0.3.0/24");
        assert_eq!(
            s.allocate_next().unwrap_err().to_string(),
            "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
        );
        assert!(matches!(
            s.occupy("10.1.0.0/24"),
            Err(CidrError::OutOfRange(_))
        ));
    }

    #[test]
    fn mask_must_fit() {
        assert!(CidrSet::new("10.42.0.0/16", 8).is_err());
        assert!(CidrSet::new("10.0.0.0/8", 25).is_err());
        assert!(CidrSet::new("10.42.0.0", 24).is_err());
    }
}
