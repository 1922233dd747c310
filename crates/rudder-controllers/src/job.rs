//! The Job controller (upstream's `pkg/controller/job`): creates pods from the template up to
//! `parallelism` until `completions` pods succeeded (NonIndexed) or every index in
//! `0..completions` has a succeeded pod (Indexed, with the completion-index annotation, label,
//! `JOB_COMPLETION_INDEX` and hostname), fails the Job past `backoffLimit` or
//! `activeDeadlineSeconds`, honours `suspend`, and reports status and conditions with
//! upstream's reasons, messages and events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;

use crate::controller::{
    ignore_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{controller_ref, is_ready, phase};
use crate::replicaset::pod_from_template;
use crate::workqueue::WorkQueue;

pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// Keeps a Job's pods until their result is counted in the Job's status.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

pub struct JobController {
    client: kube::Client,
    jobs: Arc<Informer<Job>>,
    pods: Arc<Informer<Pod>>,
    queue: Arc<WorkQueue>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(JobController {
        client: cx.client.clone(),
        jobs: cx.informers.get::<Job>(),
        pods: cx.informers.get::<Pod>(),
        queue: WorkQueue::new("job", cx.metrics.clone()),
        expectations: Arc::default(),
        recorder: Recorder::new(cx.client.clone(), "job-controller", &cx.host),
    });
    c.register_handlers();
    let (jobs, pods, queue) = (c.jobs.clone(), c.pods.clone(), c.queue.clone());
    tasks.spawn(async move {
        jobs.wait_synced().await;
        pods.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl JobController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.jobs.add_handler(move |ch| match ch {
            Change::Added(j) | Change::Updated { new: j, .. } => this.queue.add(key_of(j.as_ref())),
            Change::Deleted(j) => {
                let key = key_of(j.as_ref());
                this.expectations.delete(&key);
                this.queue.add(key);
            }
        });
        let this = self.clone();
        self.pods.add_handler(move |ch| match ch {
            Change::Added(p) => {
                if let Some(key) = this.owner_key(p) {
                    this.expectations.creation_observed(&key);
                    this.queue.add(key);
                }
            }
            Change::Updated { new, .. } => {
                if let Some(key) = this.owner_key(new) {
                    this.queue.add(key);
                }
            }
            Change::Deleted(p) => {
                if let Some(key) = this.owner_key(p) {
                    this.expectations
                        .deletion_observed(&key, &key_of(p.as_ref()));
                    this.queue.add(key);
                }
            }
        });
    }

    fn owner_key(&self, pod: &Pod) -> Option<String> {
        let r = controller_ref(&pod.metadata)?;
        (r.kind == "Job").then(|| {
            format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                r.name
            )
        })
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(job) = self.jobs.get(ns, name) else {
            self.expectations.delete(&key);
            // The Job is gone: its pods must not stay blocked by the tracking finalizer.
            let orphans: Vec<Arc<Pod>> = self
                .pods
                .list(ns)
                .into_iter()
                .filter(|p| {
                    controller_ref(&p.metadata).is_some_and(|r| r.kind == "Job" && r.name == name)
                })
                .collect();
            self.remove_tracking_finalizers(ns, orphans.iter()).await?;
            return Ok(Next::Done);
        };
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .collect();
        if is_finished(&job) || job.metadata.deletion_timestamp.is_some() {
            // Every result is counted: nothing holds its pods any more.
            self.remove_tracking_finalizers(ns, pods.iter()).await?;
            return Ok(Next::Done);
        }
        let now = jiff::Timestamp::now();
        let spec = job.spec.clone().unwrap_or_default();
        let old = job.status.clone().unwrap_or_default();
        let mut status = old.clone();
        let suspended = spec.suspend.unwrap_or(false);
        if status.start_time.is_none() && !suspended {
            status.start_time = Some(Time(now));
        }
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        let active: Vec<&Arc<Pod>> = pods
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .collect();
        let succeeded_pods: Vec<&Arc<Pod>> =
            pods.iter().filter(|p| phase(p) == "Succeeded").collect();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i32;
        let failed = failed.max(old.failed.unwrap_or(0));
        let completed: BTreeSet<i32> = succeeded_pods.iter().filter_map(|p| pod_index(p)).collect();
        let completions = spec.completions;
        let succeeded = if indexed {
            completed.len() as i32
        } else {
            (succeeded_pods.len() as i32).max(old.succeeded.unwrap_or(0))
        };
        status.succeeded = Some(succeeded);
        status.failed = Some(failed);
        if indexed {
            status.completed_indexes = Some(format_indexes(&completed));
        }
        let backoff_limit = spec.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT);
        let parallelism = spec.parallelism.unwrap_or(1).max(0);

        let mut finish: Option<(&str, &str, String)> = None;
        if failed > backoff_limit {
            finish = Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
            ));
        } else if let (Some(ads), Some(start)) =
            (spec.active_deadline_seconds, status.start_time.as_ref())
        {
            if !suspended && now.as_second() - start.0.as_second() >= ads {
                finish = Some((
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline".into(),
                ));
            }
        }
        let complete = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if finish.is_none() && complete {
            finish = Some((
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods".into(),
            ));
        }

        let ns_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut next = Next::Done;
        if let Some((kind, reason, message)) = finish {
            self.delete_pods(&ns_api, &active).await?;
            let target = if kind == "Failed" {
                "FailureTarget"
            } else {
                "SuccessCriteriaMet"
            };
            set_condition(&mut status, target, "True", reason, &message, now);
            set_condition(&mut status, kind, "True", reason, &message, now);
            status.active = Some(0);
            status.ready = Some(0);
            if kind == "Complete" {
                status.completion_time = Some(Time(now));
                self.recorder
                    .event(job.as_ref(), "Normal", "Completed", "Job completed".into());
            } else {
                self.recorder
                    .event(job.as_ref(), "Warning", reason, message.clone());
            }
        } else if suspended {
            self.delete_pods(&ns_api, &active).await?;
            status.active = Some(0);
            status.ready = Some(0);
            if set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                status.start_time = None;
                self.recorder
                    .event(job.as_ref(), "Normal", "Suspended", "Job suspended".into());
            }
        } else {
            if status.conditions.as_ref().is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Suspended" && c.status == "True")
            }) {
                set_condition(
                    &mut status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                );
                self.recorder
                    .event(job.as_ref(), "Normal", "Resumed", "Job resumed".into());
            }
            status.active = Some(active.len() as i32);
            status.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
            if self.expectations.satisfied(&key) {
                let mut want = parallelism;
                if let Some(c) = completions {
                    want = want.min(c - succeeded);
                }
                let to_create = (want - active.len() as i32).max(0);
                let indexes: Vec<Option<i32>> = if indexed {
                    let busy: BTreeSet<i32> = active.iter().filter_map(|p| pod_index(p)).collect();
                    (0..completions.unwrap_or(0))
                        .filter(|i| !completed.contains(i) && !busy.contains(i))
                        .take(to_create as usize)
                        .map(Some)
                        .collect()
                } else {
                    vec![None; to_create as usize]
                };
                if !indexes.is_empty() {
                    match remaining_backoff(&pods, now) {
                        Some(wait) => next = Next::After(wait),
                        None => self.create_pods(&job, &key, &ns_api, indexes).await?,
                    }
                }
            }
            if let (Some(ads), Some(start)) =
                (spec.active_deadline_seconds, status.start_time.as_ref())
            {
                let left = Duration::from_secs(
                    (ads - (now.as_second() - start.0.as_second())).max(1) as u64,
                );
                next = match next {
                    Next::After(d) if d < left => next,
                    _ => Next::After(left),
                };
            }
        }
        if Some(&status) != job.status.as_ref() {
            let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
            let mut updated = (*job).clone();
            updated.status = Some(status.clone());
            ignore_not_found(
                api.replace_status(name, &PostParams::default(), &updated)
                    .await,
            )?;
        }
        let finished_job = status_finished(&status);
        let counted = pods.iter().filter(|p| {
            finished_job
                || matches!(phase(p), "Succeeded" | "Failed")
                || p.metadata.deletion_timestamp.is_some()
        });
        self.remove_tracking_finalizers(ns, counted).await?;
        Ok(next)
    }

    /// Drops `batch.kubernetes.io/job-tracking` from pods whose result the Job's status holds.
    async fn remove_tracking_finalizers<'a>(
        &self,
        ns: &str,
        pods: impl Iterator<Item = &'a Arc<Pod>>,
    ) -> Result<(), ReconcileError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        for p in pods {
            let Some(fs) = p.metadata.finalizers.as_ref() else {
                continue;
            };
            if !fs.iter().any(|f| f == TRACKING_FINALIZER) {
                continue;
            }
            let keep: Vec<&String> = fs.iter().filter(|f| *f != TRACKING_FINALIZER).collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": keep,
                "resourceVersion": p.metadata.resource_version,
            }});
            ignore_not_found(
                api.patch(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await,
            )?;
        }
        Ok(())
    }

    async fn delete_pods(&self, api: &Api<Pod>, pods: &[&Arc<Pod>]) -> Result<(), ReconcileError> {
        for p in pods {
            ignore_not_found(api.delete(&p.name_any(), &DeleteParams::background()).await)?;
        }
        Ok(())
    }

    async fn create_pods(
        &self,
        job: &Job,
        key: &str,
        api: &Api<Pod>,
        indexes: Vec<Option<i32>>,
    ) -> Result<(), ReconcileError> {
        let spec = job.spec.clone().unwrap_or_default();
        let name = job.name_any();
        let uid = job.metadata.uid.clone().unwrap_or_default();
        self.expectations
            .expect(key, indexes.len() as i64, Vec::new());
        let mut first_err = None;
        for idx in indexes {
            let mut pod = pod_from_template(&spec.template, job);
            pod.metadata
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(TRACKING_FINALIZER.into());
            let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
            for k in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                labels.insert(k.into(), uid.clone());
            }
            for k in ["job-name", "batch.kubernetes.io/job-name"] {
                labels.insert(k.into(), name.clone());
            }
            if let Some(i) = idx {
                labels.insert(COMPLETION_INDEX.into(), i.to_string());
                pod.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(COMPLETION_INDEX.into(), i.to_string());
                pod.metadata.generate_name = Some(format!("{name}-{i}-"));
                if let Some(ps) = pod.spec.as_mut() {
                    if ps.hostname.is_none() {
                        ps.hostname = Some(format!("{name}-{i}"));
                    }
                    let env = EnvVar {
                        name: "JOB_COMPLETION_INDEX".into(),
                        value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                            field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                                field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    };
                    let add = |c: &mut k8s_openapi::api::core::v1::Container| {
                        c.env.get_or_insert_with(Vec::new).push(env.clone())
                    };
                    ps.containers.iter_mut().for_each(add);
                    ps.init_containers.iter_mut().flatten().for_each(add);
                }
            }
            match api.create(&PostParams::default(), &pod).await {
                Ok(p) => self.recorder.event(
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", p.name_any()),
                ),
                Err(e) => {
                    self.expectations.creation_observed(key);
                    self.recorder.event(
                        job,
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Reconciler for JobController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(status_finished)
}

fn status_finished(s: &JobStatus) -> bool {
    s.conditions.as_ref().is_some_and(|cs| {
        cs.iter()
            .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
    })
}

/// When a pod ended: its last container's `finishedAt`, else its Ready condition's transition.
fn finished_at(p: &Pod) -> Option<jiff::Timestamp> {
    let st = p.status.as_ref()?;
    let from_containers = st
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    from_containers.or_else(|| {
        st.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0)
    })
}

/// Upstream's pod failure back-off (`backoffRecord`): after `n` failures since the last
/// success, new pods wait `10 s * 2^(n-1)` (at most 6 min) from the last failure.
fn remaining_backoff(pods: &[Arc<Pod>], now: jiff::Timestamp) -> Option<Duration> {
    let last_success = pods
        .iter()
        .filter(|p| phase(p) == "Succeeded")
        .filter_map(|p| finished_at(p))
        .max();
    let failures: Vec<jiff::Timestamp> = pods
        .iter()
        .filter(|p| phase(p) == "Failed")
        .filter_map(|p| finished_at(p))
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let last = failures.iter().max()?;
    let delay = backoff_delay(failures.len() as u32);
    let elapsed =
        Duration::from_secs(now.as_second().saturating_sub(last.as_second()).max(0) as u64);
    (elapsed < delay).then(|| delay - elapsed)
}

/// `DefaultJobPodFailureBackOff` (10 s) doubled per failure, capped at `MaxJobPodFailureBackOff` (6 min).
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (failures - 1).min(20));
    Duration::from_secs(secs.min(360))
}

fn pod_index(p: &Pod) -> Option<i32> {
    p.metadata
        .annotations
        .as_ref()?
        .get(COMPLETION_INDEX)?
        .parse()
        .ok()
}

/// Sets a condition; returns whether anything changed.
fn set_condition(
    s: &mut JobStatus,
    t: &str,
    status: &str,
    reason: &str,
    msg: &str,
    now: jiff::Timestamp,
) -> bool {
    let cs = s.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = cs.iter_mut().find(|c| c.type_ == t) {
        if c.status == status && c.reason.as_deref() == Some(reason) {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(msg.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    cs.push(JobCondition {
        type_: t.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(msg.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

/// Upstream's completed-indexes format: ascending, runs of 3+ … any run of 2+ as `a-b`.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let v: Vec<i32> = set.iter().copied().collect();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if j > i {
            out.push(format!("{}-{}", v[i], v[j]));
        } else {
            out.push(v[i].to_string());
        }
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_format() {
        let s = |v: &[i32]| format_indexes(&v.iter().copied().collect());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        assert_eq!(s(&[3]), "3");
    }

    #[test]
    fn pod_failure_backoff_doubles_to_six_minutes() {
        let d = |n| backoff_delay(n).as_secs();
        assert_eq!(
            [d(0), d(1), d(2), d(3), d(6), d(7), d(40)],
            [0, 10, 20, 40, 320, 360, 360]
        );
    }
}
