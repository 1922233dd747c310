//! The in-tree plugins and the registry that builds them by name from a profile's config.

pub mod basic;
pub mod binder;
pub mod fit;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod pod_topology_spread;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, ReplicationController, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

use crate::framework::Plugin;

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
        let listers = Listers {
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
}

impl Listers {
    /// Empty stores with no informer behind them (tests fill them through the writers).
    pub fn empty() -> Listers {
        Listers {
            namespaces: reflector::store::Writer::default().as_reader(),
            services: reflector::store::Writer::default().as_reader(),
            replica_sets: reflector::store::Writer::default().as_reader(),
            stateful_sets: reflector::store::Writer::default().as_reader(),
            replication_controllers: reflector::store::Writer::default().as_reader(),
        }
    }

    /// Waits until every store has listed once (upstream's `WaitForCacheSync`).
    pub async fn wait_ready(&self) {
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.replica_sets.wait_until_ready().await;
        let _ = self.stateful_sets.wait_until_ready().await;
        let _ = self.replication_controllers.wait_until_ready().await;
    }
}

/// A store of every `K` in the cluster and the informer future that keeps it current.
fn reflect<K>(
    client: &kube::Client,
    informers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api: kube::Api<K> = kube::Api::all(client.clone());
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()));
    informers.push(Box::pin(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }));
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
            Ok(Arc::new(inter_pod_affinity::InterPodAffinity {
                args,
                namespaces: h.listers.namespaces.clone(),
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
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
    ("DefaultBinder", 0),
];
