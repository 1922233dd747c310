//! The in-tree plugins and the registry that builds them by name from a profile's config.

pub mod basic;
pub mod binder;
pub mod fit;
pub mod inter_pod_affinity;
pub mod memo;
pub mod node_affinity;
pub mod pod_topology_spread;
pub mod preemption;
#[cfg(test)]
pub(crate) mod testing;
pub mod volume;
pub mod volume_limits;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::runtime::reflector::{self, Store};
use rudder_component::reflect::Watched;
use serde::de::DeserializeOwned;

use crate::framework::{ActionType, EventResource, Plugin};
use crate::stores::reflect_notify;

/// What a plugin factory gets besides its args.
#[derive(Clone)]
pub struct Handle {
    pub client: kube::Client,
    /// Objects plugins read besides nodes and pods (upstream's informer-backed listers).
    pub listers: Listers,
}

impl Handle {
    /// A handle whose listers nothing feeds: enough to build (and so validate) profiles.
    pub fn new(client: kube::Client) -> Handle {
        Handle {
            client,
            listers: Listers::empty(),
        }
    }

    /// A handle whose listers are fed by the returned informer futures (run them while the
    /// scheduler runs; [`Listers::wait_ready`] says when they have listed once).
    pub fn start(client: kube::Client) -> (Handle, Vec<futures::future::BoxFuture<'static, ()>>) {
        let mut informers = Vec::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let listers = Listers {
            pdbs: reflect(&client, &mut informers),
            pvcs: reflect_notify(
                &client,
                &mut informers,
                EventResource::PersistentVolumeClaim,
                tx.clone(),
            ),
            pvs: reflect_notify(
                &client,
                &mut informers,
                EventResource::PersistentVolume,
                tx.clone(),
            ),
            storage_classes: reflect_notify(
                &client,
                &mut informers,
                EventResource::StorageClass,
                tx.clone(),
            ),
            csi_nodes: reflect_notify(&client, &mut informers, EventResource::CSINode, tx),
            cluster_events: Arc::new(std::sync::Mutex::new(Some(rx))),
            namespaces: reflect(&client, &mut informers),
            services: reflect(&client, &mut informers),
            replica_sets: reflect(&client, &mut informers),
            stateful_sets: reflect(&client, &mut informers),
            replication_controllers: reflect(&client, &mut informers),
        };
        (Handle { client, listers }, informers)
    }
}

/// Reflector-backed stores, one per resource a plugin needs.
#[derive(Clone)]
pub struct Listers {
    /// InterPodAffinity: `namespaceSelector` terms match namespace labels.
    pub namespaces: Store<Namespace>,
    /// PodTopologySpread: the default constraints select a pod's siblings by these.
    pub services: Store<Service>,
    pub replica_sets: Store<ReplicaSet>,
    pub stateful_sets: Store<StatefulSet>,
    pub replication_controllers: Store<ReplicationController>,
    /// DefaultPreemption: victims whose PDB would be violated are avoided.
    pub pdbs: Store<PodDisruptionBudget>,
    /// The volume plugins.
    pub pvcs: Store<PersistentVolumeClaim>,
    pub pvs: Store<PersistentVolume>,
    pub storage_classes: Store<StorageClass>,
    /// NodeVolumeLimits: per-driver attach limits.
    pub csi_nodes: Store<CSINode>,
    /// Changes of the stores above that may make a pod schedulable; the scheduler takes the
    /// receiver and requeues the pods plugins rejected.
    pub cluster_events: ClusterEvents,
}

pub type ClusterEvents = Arc<
    std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<(EventResource, ActionType)>>>,
>;

impl Listers {
    /// Empty stores with no informer behind them (tests fill them through the writers).
    pub fn empty() -> Listers {
        Listers {
            namespaces: reflector::store::Writer::default().as_reader(),
            services: reflector::store::Writer::default().as_reader(),
            replica_sets: reflector::store::Writer::default().as_reader(),
            stateful_sets: reflector::store::Writer::default().as_reader(),
            replication_controllers: reflector::store::Writer::default().as_reader(),
            pdbs: reflector::store::Writer::default().as_reader(),
            pvcs: reflector::store::Writer::default().as_reader(),
            pvs: reflector::store::Writer::default().as_reader(),
            storage_classes: reflector::store::Writer::default().as_reader(),
            csi_nodes: reflector::store::Writer::default().as_reader(),
            cluster_events: Default::default(),
        }
    }

    /// Waits until every store has listed once (upstream's `WaitForCacheSync`).
    pub async fn wait_ready(&self) {
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.replica_sets.wait_until_ready().await;
        let _ = self.stateful_sets.wait_until_ready().await;
        let _ = self.replication_controllers.wait_until_ready().await;
        let _ = self.pdbs.wait_until_ready().await;
        let _ = self.pvcs.wait_until_ready().await;
        let _ = self.pvs.wait_until_ready().await;
        let _ = self.storage_classes.wait_until_ready().await;
        let _ = self.csi_nodes.wait_until_ready().await;
    }
}

/// A store of every `K` in the cluster; its informer future joins `informers`.
fn reflect<K: Watched>(
    client: &kube::Client,
    informers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
) -> Store<K> {
    let (store, run) = rudder_component::reflect::reflect(client, |_| {});
    informers.push(run);
    store
}

/// Builds a plugin from its `pluginConfig` args (`None`: defaults). Errors name the field.
pub type Factory = fn(Option<&serde_json::Value>, &Handle, &str) -> Result<Arc<dyn Plugin>, String>;

fn args<T: DeserializeOwned + Default>(
    v: Option<&serde_json::Value>,
    path: &str,
) -> Result<T, String> {
    match v {
        None => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("{path}: {e}")),
    }
}

fn no_args(v: Option<&serde_json::Value>, path: &str) -> Result<(), String> {
    match v {
        Some(serde_json::Value::Object(m))
            if m.keys().any(|k| k != "apiVersion" && k != "kind") =>
        {
            Err(format!("{path}: this plugin takes no arguments"))
        }
        _ => Ok(()),
    }
}

/// Every plugin this scheduler knows, by upstream's name.
pub fn registry() -> Vec<(&'static str, Factory)> {
    vec![
        ("SchedulingGates", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::SchedulingGates))
        }),
        ("PrioritySort", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::PrioritySort))
        }),
        ("NodeUnschedulable", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodeUnschedulable))
        }),
        ("NodeName", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodeName))
        }),
        ("TaintToleration", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::TaintToleration))
        }),
        ("NodeAffinity", |a, _, p| {
            Ok(Arc::new(node_affinity::NodeAffinity { args: args(a, p)? }))
        }),
        ("NodePorts", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::NodePorts))
        }),
        ("NodeResourcesFit", |a, _, p| {
            let args: fit::FitArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(fit::NodeResourcesFit { args }))
        }),
        ("VolumeRestrictions", |a, h, p| {
            no_args(a, p)?;
            Ok(Arc::new(volume::VolumeRestrictions {
                pvcs: h.listers.pvcs.clone(),
            }))
        }),
        ("VolumeBinding", |a, h, p| {
            let args: volume::VolumeBindingArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(volume::VolumeBinding::new(args, h)))
        }),
        ("NodeVolumeLimits", |a, h, p| {
            no_args(a, p)?;
            Ok(Arc::new(volume_limits::NodeVolumeLimits::new(h)))
        }),
        ("VolumeZone", |a, h, p| {
            no_args(a, p)?;
            Ok(Arc::new(volume_limits::VolumeZone {
                pvcs: h.listers.pvcs.clone(),
                pvs: h.listers.pvs.clone(),
                classes: h.listers.storage_classes.clone(),
            }))
        }),
        ("PodTopologySpread", |a, h, p| {
            let args: pod_topology_spread::PodTopologySpreadArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(pod_topology_spread::PodTopologySpread::new(
                &args,
                h.listers.clone(),
            )))
        }),
        ("InterPodAffinity", |a, h, p| {
            let args: inter_pod_affinity::InterPodAffinityArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(inter_pod_affinity::InterPodAffinity::new(
                args,
                h.listers.namespaces.clone(),
            )))
        }),
        ("DefaultPreemption", |a, h, p| {
            let args: preemption::PreemptionArgs = args(a, p)?;
            args.validate(p)?;
            Ok(Arc::new(preemption::DefaultPreemption {
                args,
                pdbs: h.listers.pdbs.clone(),
            }))
        }),
        ("NodeResourcesBalancedAllocation", |a, _, p| {
            Ok(Arc::new(fit::BalancedAllocation { args: args(a, p)? }))
        }),
        ("ImageLocality", |a, _, p| {
            no_args(a, p)?;
            Ok(Arc::new(basic::ImageLocality))
        }),
        ("DefaultBinder", |a, h, p| {
            no_args(a, p)?;
            Ok(Arc::new(binder::DefaultBinder {
                client: h.client.clone(),
            }))
        }),
    ]
}

/// Upstream's default plugin set (`getDefaultPlugins`, multiPoint) with score weights, in order.
/// Plugins of that set not implemented here yet are left out of it.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("SchedulingGates", 0),
    ("PrioritySort", 0),
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeRestrictions", 0),
    ("NodeVolumeLimits", 0),
    ("VolumeBinding", 0),
    ("VolumeZone", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];
