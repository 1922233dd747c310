//! k3s's ServiceLB ("klipper-lb", `pkg/cloudprovider/servicelb.go`) address logic:
//! a `type: LoadBalancer` service without `spec.loadBalancerClass` gets the addresses of the
//! Ready nodes in `status.loadBalancer.ingress` (a node's ExternalIPs when it has any, else
//! its InternalIPs; sorted), from every node, or only from nodes labelled
//! `svccontroller.k3s.cattle.io/enablelb=true` once any node carries that label. The service
//! proxy on every node captures those addresses like externalIPs, so the service answers on
//! them (k3s runs a hostPort DaemonSet for this; the data plane here is the proxy's). When the
//! service stops being a LoadBalancer its addresses are removed.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// The node label that limits which nodes serve load balancers (k3s's).
pub const ENABLE_LB_LABEL: &str = "svccontroller.k3s.cattle.io/enablelb";

pub struct ServiceLb {
    client: Client,
    services: Arc<Informer<Service>>,
    nodes: Arc<Informer<Node>>,
}

fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer") && s.load_balancer_class.is_none()
    })
}

fn has_ingress(svc: &Service) -> bool {
    current_ips(svc).is_some_and(|i| !i.is_empty())
}

fn current_ips(svc: &Service) -> Option<Vec<String>> {
    let ingress = svc
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?;
    Some(ingress.iter().filter_map(|i| i.ip.clone()).collect())
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The addresses `nodes` offer, as k3s picks them.
pub fn node_addresses<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Vec<String> {
    let nodes: Vec<&Node> = nodes.into_iter().collect();
    let labelled = |n: &Node| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ENABLE_LB_LABEL))
            .is_some_and(|v| v == "true")
    };
    let only_labelled = nodes.iter().any(|n| labelled(n));
    let mut out = BTreeSet::new();
    for n in nodes {
        if !node_ready(n) || (only_labelled && !labelled(n)) {
            continue;
        }
        let addrs = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .cloned()
            .unwrap_or_default();
        let of = |t: &str| -> Vec<String> {
            addrs
                .iter()
                .filter(|a| a.type_ == t)
                .map(|a| a.address.clone())
                .collect()
        };
        let external = of("ExternalIP");
        out.extend(if external.is_empty() {
            of("InternalIP")
        } else {
            external
        });
    }
    out.into_iter().collect()
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(ServiceLb {
        client: cx.client.clone(),
        services: cx.informers.get::<Service>(),
        nodes: cx.informers.get::<Node>(),
    });
    let queue = WorkQueue::new("service_lb", cx.metrics.clone());
    let q = queue.clone();
    c.services.add_handler(move |ch| match ch {
        Change::Added(s) | Change::Updated { new: s, .. } => {
            if is_ours(s) || has_ingress(s) {
                q.add(key_of(s.as_ref()));
            }
        }
        Change::Deleted(_) => {}
    });
    let (q, services) = (queue.clone(), c.services.clone());
    c.nodes.add_handler(move |_| {
        for s in services.list_all() {
            if is_ours(&s) {
                q.add(key_of(s.as_ref()));
            }
        }
    });
    let (services, nodes) = (c.services.clone(), c.nodes.clone());
    tasks.spawn(async move {
        services.wait_synced().await;
        nodes.wait_synced().await;
        run_workers(queue, c, 2).await;
    });
}

impl ServiceLb {
    async fn sync(&self, key: &str) -> ReconcileResult {
        let (ns, name) = split_key(key);
        let Some(svc) = self.services.get(ns, name) else {
            return Ok(Next::Done);
        };
        let want = if is_ours(&svc) {
            let nodes = self.nodes.list_all();
            node_addresses(nodes.iter().map(|n| n.as_ref()))
        } else if svc
            .spec
            .as_ref()
            .is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer"))
        {
            // Another load balancer's (loadBalancerClass): not ours to write.
            return Ok(Next::Done);
        } else {
            Vec::new()
        };
        if current_ips(&svc).unwrap_or_default() == want {
            return Ok(Next::Done);
        }
        let ingress = if want.is_empty() {
            serde_json::Value::Null
        } else {
            json!(want.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>())
        };
        let api: Api<Service> = Api::namespaced(self.client.clone(), ns);
        let r = api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": {"loadBalancer": {"ingress": ingress}}})),
            )
            .await;
        if r.is_ok() {
            tracing::info!(service = %key, ingress = ?want, "updated load balancer status");
        }
        ignore_not_found(r)?;
        Ok(Next::Done)
    }
}

impl Reconciler for ServiceLb {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move { self.sync(&key).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, label: Option<&str>, addrs: &[(&str, &str)]) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": label.map(|v| json!({ENABLE_LB_LABEL: v})).unwrap_or(json!({}))},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "addresses": addrs.iter().map(|(t, a)| json!({"type": t, "address": a})).collect::<Vec<_>>(),
            }
        }))
        .unwrap()
    }

    #[test]
    fn ready_nodes_external_before_internal_and_the_label_limits() {
        let a = node(
            "a",
            true,
            None,
            &[("InternalIP", "10.0.0.2"), ("Hostname", "a")],
        );
        let b = node(
            "b",
            true,
            None,
            &[("InternalIP", "10.0.0.3"), ("ExternalIP", "192.0.2.3")],
        );
        let down = node("c", false, None, &[("InternalIP", "10.0.0.4")]);
        assert_eq!(
            node_addresses([&a, &b, &down]),
            vec!["10.0.0.2".to_string(), "192.0.2.3".to_string()]
        );
        let labelled = node("d", true, Some("true"), &[("InternalIP", "10.0.0.5")]);
        assert_eq!(
            node_addresses([&a, &b, &labelled]),
            vec!["10.0.0.5".to_string()]
        );
    }
}
