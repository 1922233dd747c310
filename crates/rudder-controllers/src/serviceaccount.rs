//! Upstream's serviceaccount-controller (pkg/controller/serviceaccount/serviceaccounts_controller.go):
//! every active namespace has the `default` ServiceAccount, recreated when deleted.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::controller::{is_conflict, run_workers, Next, ReconcileResult, Reconciler};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// Upstream's `DefaultServiceAccountsControllerOptions`: only `default`.
const SERVICE_ACCOUNTS: &[&str] = &["default"];

struct ServiceAccountController {
    client: Client,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
    queue: Arc<WorkQueue>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(ServiceAccountController {
        client: cx.client.clone(),
        namespaces: cx.informers.get::<Namespace>(),
        accounts: cx.informers.get::<ServiceAccount>(),
        queue: WorkQueue::new("serviceaccount", cx.metrics.clone()),
    });
    let this = c.clone();
    c.namespaces.add_handler(move |ch| match ch {
        Change::Added(ns) | Change::Updated { new: ns, .. } => {
            this.queue.add(ns.metadata.name.clone().unwrap_or_default())
        }
        Change::Deleted(_) => {}
    });
    let this = c.clone();
    // Only a deleted account needs the namespace looked at again (upstream's serviceAccountDeleted).
    c.accounts.add_handler(move |ch| {
        if let Change::Deleted(sa) = ch {
            this.queue
                .add(sa.metadata.namespace.clone().unwrap_or_default())
        }
    });
    let (namespaces, accounts, queue) = (c.namespaces.clone(), c.accounts.clone(), c.queue.clone());
    tasks.spawn(async move {
        namespaces.wait_synced().await;
        accounts.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl Reconciler for ServiceAccountController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(ns) = self.namespaces.get("", &key) else {
                return Ok(Next::Done);
            };
            let active = ns.metadata.deletion_timestamp.is_none()
                && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
            if !active {
                return Ok(Next::Done);
            }
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &key);
            for name in SERVICE_ACCOUNTS {
                if self.accounts.get(&key, name).is_some() {
                    continue;
                }
                let sa = ServiceAccount {
                    metadata: ObjectMeta {
                        name: Some((*name).to_string()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &sa).await {
                    Ok(_) => {}
                    // Already there (our cache lags) or the namespace is going away: nothing to do.
                    Err(e) if is_conflict(&e) => {}
                    Err(e) if crate::podutil::namespace_terminating(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(Next::Done)
        })
    }
}
