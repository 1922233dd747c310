//! The TTL-after-finished controller (upstream's `pkg/controller/ttlafterfinished`): deletes a
//! finished Job (Complete or Failed) `ttlSecondsAfterFinished` after it finished, with
//! foreground propagation and a UID precondition, as upstream does.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};

use crate::controller::{
    is_conflict, is_not_found, run_workers, Next, ReconcileResult, Reconciler,
};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

pub struct TtlAfterFinished {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(TtlAfterFinished {
        client: cx.client.clone(),
        jobs: cx.informers.get::<Job>(),
    });
    let queue = WorkQueue::new("ttl_jobs_to_delete", cx.metrics.clone());
    let q = queue.clone();
    c.jobs.add_handler(move |ch| match ch {
        Change::Added(j) | Change::Updated { new: j, .. } => {
            if j.spec
                .as_ref()
                .and_then(|s| s.ttl_seconds_after_finished)
                .is_some()
            {
                q.add(key_of(j.as_ref()))
            }
        }
        Change::Deleted(_) => {}
    });
    let jobs = c.jobs.clone();
    tasks.spawn(async move {
        jobs.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

/// When the Job finished: the transition time of its true Complete or Failed condition.
fn finish_time(job: &Job) -> Option<jiff::Timestamp> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

impl TtlAfterFinished {
    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(job) = self.jobs.get(ns, name) else {
            return Ok(Next::Done);
        };
        let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
            return Ok(Next::Done);
        };
        if job.metadata.deletion_timestamp.is_some() {
            return Ok(Next::Done);
        }
        let Some(finished) = finish_time(&job) else {
            return Ok(Next::Done);
        };
        let expire = finished.as_second() + i64::from(ttl);
        let now = jiff::Timestamp::now().as_second();
        if now < expire {
            return Ok(Next::After(Duration::from_secs((expire - now) as u64)));
        }
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: job.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(Next::Done),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(Next::Done),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for TtlAfterFinished {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}
