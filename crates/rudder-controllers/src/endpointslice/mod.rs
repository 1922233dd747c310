//! The EndpointSlice controller (upstream's `pkg/controller/endpointslice`): for every
//! Service with a selector, EndpointSlices (per address type, labelled
//! `kubernetes.io/service-name` and managed by `endpointslice-controller.k8s.io`, owned by the
//! Service) listing the selected pods with their ready/serving/terminating conditions, node,
//! zone, target and hostname, in slices of at most 100 endpoints packed as upstream packs them
//! (`reconciler.rs`).

pub mod reconciler;
pub mod util;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::ResourceExt;

use crate::controller::{run_workers, Next, ReconcileError, ReconcileResult, Reconciler};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;
use util::{
    pods_for_service, selector, services_for_pod_change, services_for_slice_change,
    set_trigger_time, SliceTracker, TriggerTimeTracker,
};

/// The `endpointslice.kubernetes.io/managed-by` value of this controller's slices.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// `--max-endpoints-per-slice`, set once by the binary before the controllers start (a
/// process-wide option, as upstream's component config, without a field in every caller).
static MAX_PER_SLICE: AtomicUsize = AtomicUsize::new(MAX_ENDPOINTS_PER_SLICE);

/// Sets `--max-endpoints-per-slice` (upstream accepts 1 to 1000).
pub fn set_max_endpoints_per_slice(n: usize) {
    MAX_PER_SLICE.store(n.clamp(1, 1000), Ordering::Relaxed);
}
/// Upstream's `endpointSliceChangeMinSyncDelay`: a slice changed by someone else is looked at
/// after this long, so a burst of changes is one sync.
const SLICE_CHANGE_DELAY: Duration = Duration::from_secs(1);

pub struct EndpointSliceController {
    client: kube::Client,
    services: Arc<Informer<Service>>,
    pods: Arc<Informer<Pod>>,
    slices: Arc<Informer<EndpointSlice>>,
    nodes: Arc<Informer<Node>>,
    queue: Arc<WorkQueue>,
    tracker: SliceTracker,
    triggers: TriggerTimeTracker,
    recorder: Recorder,
    max_endpoints: usize,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(EndpointSliceController {
        client: cx.client.clone(),
        services: cx.informers.get::<Service>(),
        pods: cx.informers.get::<Pod>(),
        slices: cx.informers.get::<EndpointSlice>(),
        nodes: cx.informers.get::<Node>(),
        queue: WorkQueue::new("endpoint_slice", cx.metrics.clone()),
        tracker: SliceTracker::default(),
        triggers: TriggerTimeTracker::default(),
        recorder: Recorder::new(cx.client.clone(), "endpoint-slice-controller", &cx.host),
        max_endpoints: MAX_PER_SLICE.load(Ordering::Relaxed),
    });
    c.register_handlers();
    let queue = c.queue.clone();
    let this = c.clone();
    tasks.spawn(async move {
        this.services.wait_synced().await;
        this.pods.wait_synced().await;
        this.slices.wait_synced().await;
        this.nodes.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl EndpointSliceController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.services.add_handler(move |ch| match ch {
            Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => {
                this.queue.add(key_of(s.as_ref()))
            }
        });
        let this = self.clone();
        self.pods.add_handler(move |ch| {
            for k in services_for_pod_change(&this.services, ch) {
                this.queue.add(k);
            }
        });
        let this = self.clone();
        self.slices.add_handler(move |ch| {
            for k in services_for_slice_change(&this.tracker, CONTROLLER_NAME, ch) {
                this.queue.add_after(k, SLICE_CHANGE_DELAY);
            }
        });
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(svc) = self.services.get(ns, name) else {
            // The garbage collector deletes the slices with their owner.
            self.triggers.delete(&key);
            self.tracker.delete_service(&key);
            return Ok(Next::Done);
        };
        if util::is_external_name(&svc) || selector(&svc).is_none() {
            return Ok(Next::Done);
        }
        let pods = pods_for_service(&self.pods, &svc);
        let mut slices = util::managed_slices(&self.slices, ns, name, CONTROLLER_NAME);
        slices.retain(|s| s.metadata.deletion_timestamp.is_none());
        if self.tracker.stale(&key, &slices) {
            return Err(ReconcileError::Other(
                "EndpointSlice informer cache is out of date".into(),
            ));
        }
        let trigger = self.triggers.compute(&key, &svc, &pods);
        let nodes = self.nodes.clone();
        let zone = move |node: &str| {
            nodes.get("", node).map(|n| {
                n.labels()
                    .get("topology.kubernetes.io/zone")
                    .filter(|z| !z.is_empty())
                    .cloned()
            })
        };
        let (mut plan, skipped) = reconciler::reconcile(&reconciler::Input {
            service: &svc,
            pods: &pods,
            existing: &slices,
            node_zone: &zone,
            max_endpoints: self.max_endpoints,
            controller_name: CONTROLLER_NAME,
        });
        reconciler::recycle(&mut plan, &svc);
        if let Err(e) = self.finalize(&key, &svc, plan, trigger).await {
            self.recorder.event(
                svc.as_ref(),
                "Warning",
                "FailedToUpdateEndpointSlices",
                format!("Error updating Endpoint Slices for Service {key}: {e}"),
            );
            return Err(e);
        }
        if let Some(first) = skipped.into_iter().next() {
            return Err(ReconcileError::Other(first));
        }
        Ok(Next::Done)
    }

    /// Upstream's `finalize`: creates (not while the service is being deleted), updates,
    /// deletes, each recorded in the tracker.
    async fn finalize(
        &self,
        key: &str,
        svc: &Service,
        plan: reconciler::Plan,
        trigger: Option<jiff::Timestamp>,
    ) -> Result<(), ReconcileError> {
        let api: Api<EndpointSlice> =
            Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
        let (mut create, mut update) = (plan.create, plan.update);
        for s in create.iter_mut().chain(update.iter_mut()) {
            set_trigger_time(&mut s.metadata.annotations, trigger);
        }
        util::write_slices(
            &api,
            &self.tracker,
            key,
            [create, update, plan.delete],
            svc.metadata.deletion_timestamp.is_none(),
        )
        .await
    }
}

impl Reconciler for EndpointSliceController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}
