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
use k8s_openapi::api::batch::v1::{
    Job, JobCondition, JobSpec, JobStatus, PodFailurePolicy, SuccessPolicy,
};
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
    /// Pods whose tracking finalizer this controller removed, until the cache shows it gone
    /// (upstream's `finalizerExpectations`): a stale cached pod must not be counted twice.
    released: std::sync::Mutex<BTreeSet<String>>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(JobController {
        client: cx.client.clone(),
        jobs: cx.informers.get::<Job>(),
        pods: cx.informers.get::<Pod>(),
        queue: WorkQueue::new("job", cx.metrics.clone()),
        expectations: Arc::default(),
        released: Default::default(),
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
                if !has_tracking_finalizer(new) {
                    this.release_observed(new);
                }
                if let Some(key) = this.owner_key(new) {
                    this.queue.add(key);
                }
            }
            Change::Deleted(p) => {
                this.release_observed(p);
                if let Some(key) = this.owner_key(p) {
                    this.expectations
                        .deletion_observed(&key, &key_of(p.as_ref()));
                    this.queue.add(key);
                }
            }
        });
    }

    fn release_observed(&self, pod: &Pod) {
        if let (Some(uid), Ok(mut r)) = (pod.metadata.uid.as_ref(), self.released.lock()) {
            r.remove(uid);
        }
    }

    /// The cached pod, without the tracking finalizer if this controller already removed it.
    fn as_released(&self, pod: Arc<Pod>) -> Arc<Pod> {
        let released = match (pod.metadata.uid.as_ref(), self.released.lock()) {
            (Some(uid), Ok(r)) => r.contains(uid),
            _ => false,
        };
        if !released || !has_tracking_finalizer(&pod) {
            return pod;
        }
        let mut p = (*pod).clone();
        if let Some(fs) = p.metadata.finalizers.as_mut() {
            fs.retain(|f| f != TRACKING_FINALIZER);
        }
        Arc::new(p)
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
        // A Job another controller manages (spec.managedBy) is left to it.
        if job
            .spec
            .as_ref()
            .and_then(|s| s.managed_by.as_deref())
            .is_some_and(|m| m != "kubernetes.io/job-controller")
        {
            return Ok(Next::Done);
        }
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .map(|p| self.as_released(p))
            .collect();
        if is_finished(&job) {
            // Every result is counted: nothing holds its pods any more.
            self.remove_tracking_finalizers(ns, pods.iter()).await?;
            return Ok(Next::Done);
        }
        if let Some(mode) = job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) {
            if mode != "NonIndexed" && mode != "Indexed" {
                self.recorder.event(
                    job.as_ref(),
                    "Warning",
                    "UnknownCompletionMode",
                    "Skipped Job sync because completion mode is unknown".into(),
                );
                return Ok(Next::Done);
            }
        }
        let now = jiff::Timestamp::now();
        let satisfied = self.expectations.satisfied(&key);
        let mut cx = analyze(&job, &pods, now);
        let ns_api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut next = cx.requeue.map_or(Next::Done, Next::After);
        let mut suspend_changed = false;
        if cx.finished.is_some() {
            // Pods of a finishing Job keep their finalizer: they are counted as failed below.
            let (deleted, deleted_ready) =
                self.delete_pods(&job, &ns_api, &cx.active, false).await?;
            if deleted != cx.active.len() as i32 || !satisfied {
                // Not finished while pods remain that this sync could not account for.
                cx.finished = None;
            }
            cx.active_count -= deleted;
            cx.terminating += deleted;
            cx.ready -= deleted_ready;
        } else {
            let mut manage_called = false;
            if satisfied && job.metadata.deletion_timestamp.is_none() {
                if let Some(wait) = self.manage_job(&job, &key, &ns_api, &mut cx, now).await? {
                    next = shorter(next, wait);
                }
                manage_called = true;
            }
            let spec = job.spec.clone().unwrap_or_default();
            let complete = match spec.completions {
                None => cx.succeeded > 0 && cx.active_count == 0,
                Some(c) => cx.succeeded >= c && cx.active_count == 0,
            };
            if complete {
                cx.finished = Some(Cond::new(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ));
            } else if manage_called {
                let status = &mut cx.status;
                if spec.suspend == Some(true) {
                    if set_condition(
                        status,
                        "Suspended",
                        "True",
                        "JobSuspended",
                        "Job suspended",
                        now,
                    ) {
                        suspend_changed = true;
                        self.recorder.event(
                            job.as_ref(),
                            "Normal",
                            "Suspended",
                            "Job suspended".into(),
                        );
                    }
                } else if set_condition(
                    status,
                    "Suspended",
                    "False",
                    "JobResumed",
                    "Job resumed",
                    now,
                ) {
                    suspend_changed = true;
                    self.recorder
                        .event(job.as_ref(), "Normal", "Resumed", "Job resumed".into());
                    // activeDeadlineSeconds counts continuous activity from the resume.
                    cx.status.start_time = Some(Time(now));
                }
            }
        }
        cx.status.active = Some(cx.active_count);
        cx.status.ready = Some(cx.ready);
        cx.status.terminating = Some(cx.terminating);
        let needs_flush = suspend_changed || Some(&cx.status) != job.status.as_ref();
        self.track_status_and_remove_finalizers(&job, &pods, cx, needs_flush, now)
            .await?;
        Ok(next)
    }

    /// Upstream's `manageJob`: deletes pods beyond what is wanted (all of them while suspended,
    /// and those of failed indexes), else creates the missing ones after the failure back-off.
    /// Returns when to look again if the back-off holds creation.
    async fn manage_job(
        &self,
        job: &Arc<Job>,
        key: &str,
        api: &Api<Pod>,
        cx: &mut JobCtx,
        now: jiff::Timestamp,
    ) -> Result<Option<Duration>, ReconcileError> {
        let spec = job.spec.clone().unwrap_or_default();
        let active = cx.active_count;
        if spec.suspend == Some(true) {
            let (deleted, ready) = self.delete_pods(job, api, &cx.active, true).await?;
            cx.active_count -= deleted;
            cx.ready -= ready;
            return Ok(None);
        }
        let parallelism = spec.parallelism.unwrap_or(1).max(0);
        let want = match spec.completions {
            None if cx.succeeded > 0 => active,
            None => parallelism,
            Some(c) => (c - cx.succeeded).clamp(0, parallelism),
        };
        // Pods of failed indexes go first, then any beyond `want`.
        let mut doomed: Vec<Arc<Pod>> = cx
            .active
            .iter()
            .filter(|p| pod_index(p).is_some_and(|i| cx.failed_indexes.contains(&i)))
            .cloned()
            .collect();
        if active > want {
            let need = ((active - want) as usize).saturating_sub(doomed.len());
            let more: Vec<Arc<Pod>> = cx
                .active
                .iter()
                .rev()
                .filter(|p| !doomed.iter().any(|d| d.metadata.uid == p.metadata.uid))
                .take(need)
                .cloned()
                .collect();
            doomed.extend(more);
        }
        if !doomed.is_empty() {
            let (deleted, ready) = self.delete_pods(job, api, &doomed, true).await?;
            cx.active_count -= deleted;
            cx.ready -= ready;
            return Ok(None);
        }
        // With podReplacementPolicy Failed (implied by a pod failure policy), a terminating pod
        // is replaced only once it has failed.
        let only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
            || spec.pod_failure_policy.is_some();
        let terminating_pods: Vec<&Arc<Pod>> = cx
            .pods
            .iter()
            .filter(|p| {
                only_failed
                    && p.metadata.deletion_timestamp.is_some()
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .collect();
        let busy_count = active + terminating_pods.len() as i32;
        if busy_count >= want {
            return Ok(None);
        }
        let to_create = (want - busy_count) as usize;
        let per_index = spec.backoff_limit_per_index.is_some();
        let indexes: Vec<Option<i32>> = if cx.indexed {
            let busy: BTreeSet<i32> = cx
                .active
                .iter()
                .chain(terminating_pods.iter().copied())
                .filter_map(|p| pod_index(p))
                .collect();
            (0..spec.completions.unwrap_or(0))
                .filter(|i| {
                    !cx.succeeded_indexes.contains(i)
                        && !busy.contains(i)
                        && !cx.failed_indexes.contains(i)
                })
                .take(to_create)
                .map(Some)
                .collect()
        } else {
            vec![None; to_create]
        };
        if indexes.is_empty() {
            return Ok(None);
        }
        if per_index {
            // Each index backs off on its own failures.
            let mut ready_now = Vec::new();
            let mut wait: Option<Duration> = None;
            for i in indexes {
                let last = last_failed_in_index(&cx.pods, i.unwrap_or(-1));
                let left = last.and_then(|p| {
                    let count = index_failure_count(p) + 1;
                    remaining(finished_at(p)?, backoff_delay(count as u32), now)
                });
                match left {
                    Some(d) => wait = Some(wait.map_or(d, |w| w.min(d))),
                    None => ready_now.push(i),
                }
            }
            if !ready_now.is_empty() {
                self.create_pods(job, key, api, ready_now, &cx.pods).await?;
            }
            return Ok(wait);
        }
        if let Some(wait) = remaining_backoff(&cx.pods, now) {
            return Ok(Some(wait));
        }
        self.create_pods(job, key, api, indexes, &cx.pods).await?;
        Ok(None)
    }

    /// Upstream's `trackJobStatusAndRemoveFinalizers`: records finished pods in
    /// `uncountedTerminatedPods` (and the interim FailureTarget/SuccessCriteriaMet condition),
    /// removes their tracking finalizers, moves them into the counters, and finally adds
    /// Complete or Failed once nothing is uncounted or terminating.
    async fn track_status_and_remove_finalizers(
        &self,
        job: &Arc<Job>,
        pods: &[Arc<Pod>],
        mut cx: JobCtx,
        mut needs_flush: bool,
        now: jiff::Timestamp,
    ) -> Result<(), ReconcileError> {
        let spec = job.spec.clone().unwrap_or_default();
        let completions = spec.completions.unwrap_or(0);
        let mut with_finalizer: BTreeSet<String> = pods
            .iter()
            .filter(|p| has_tracking_finalizer(p))
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        if clean_uncounted(&mut cx.status, &with_finalizer) {
            needs_flush = true;
        }
        let mut to_release: Vec<&Arc<Pod>> = Vec::new();
        let mut new_indexes = BTreeSet::new();
        let job_deleting = job.metadata.deletion_timestamp.is_some();
        let finishing_as_failure = cx
            .finished
            .as_ref()
            .is_some_and(|c| c.type_ != "SuccessCriteriaMet");
        for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let failed = is_pod_failed(p, &spec);
            let succeeded = phase(p) == "Succeeded";
            if !(job_deleting || cx.finished.is_some() || succeeded || failed) {
                continue;
            }
            to_release.push(p);
            let unc = cx
                .status
                .uncounted_terminated_pods
                .get_or_insert_with(Default::default);
            let in_failed = unc.failed.iter().flatten().any(|u| *u == uid);
            if succeeded && !in_failed {
                if cx.indexed {
                    if let Some(i) = pod_index(p).filter(|i| *i < completions) {
                        if !cx.succeeded_indexes.contains(&i) {
                            new_indexes.insert(i);
                            needs_flush = true;
                        }
                    }
                } else if !unc.succeeded.iter().flatten().any(|u| *u == uid) {
                    unc.succeeded.get_or_insert_with(Vec::new).push(uid);
                    needs_flush = true;
                }
            } else if (failed || finishing_as_failure) && !in_failed {
                let valid_index = !cx.indexed || pod_index(p).is_some_and(|i| i < completions);
                let counts = spec
                    .pod_failure_policy
                    .as_ref()
                    .is_none_or(|pfp| match_pod_failure_policy(pfp, p).count);
                if valid_index && counts {
                    unc.failed.get_or_insert_with(Vec::new).push(uid);
                    needs_flush = true;
                }
            }
        }
        if cx.indexed {
            cx.succeeded_indexes.extend(new_indexes);
            cx.status.completed_indexes = Some(format_indexes(&cx.succeeded_indexes));
            cx.status.succeeded = Some(cx.succeeded_indexes.len() as i32);
            cx.status.failed_indexes = spec
                .backoff_limit_per_index
                .map(|_| format_indexes(&cx.failed_indexes));
        }
        let mut finished = cx.finished.take();
        if let Some(c) = finished.as_mut() {
            if c.type_ == "FailureTarget" {
                // Recorded before any finalizer goes, so the cause survives a restart.
                set_condition(
                    &mut cx.status,
                    "FailureTarget",
                    "True",
                    &c.reason,
                    &c.message,
                    now,
                );
                c.type_ = "Failed".into();
            } else if c.type_ == "SuccessCriteriaMet" {
                set_condition(
                    &mut cx.status,
                    "SuccessCriteriaMet",
                    "True",
                    &c.reason,
                    &c.message,
                    now,
                );
                c.type_ = "Complete".into();
            }
        }
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        let mut current = (**job).clone();
        if needs_flush || Some(&cx.status) != job.status.as_ref() {
            current = match self.write_status(&jobs, &current, &cx.status).await? {
                Some(j) => j,
                None => return Ok(()),
            };
        }
        // Release the pods whose result the status now holds.
        let released = self
            .remove_tracking_finalizers(&ns, to_release.iter().copied())
            .await;
        if released.is_ok() {
            for p in &to_release {
                if let Some(u) = &p.metadata.uid {
                    with_finalizer.remove(u);
                }
            }
        }
        let mut flush = clean_uncounted(&mut cx.status, &with_finalizer);
        let uncounted = cx.status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
            u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
        });
        let mut finished_now = None;
        if let Some(c) = finished.filter(|_| uncounted == 0 && cx.terminating == 0) {
            set_condition(&mut cx.status, &c.type_, "True", &c.reason, &c.message, now);
            if c.type_ == "Complete" {
                cx.status.completion_time = Some(Time(now));
            }
            flush = true;
            finished_now = Some(c);
        }
        if flush {
            if self
                .write_status(&jobs, &current, &cx.status)
                .await?
                .is_none()
            {
                return Ok(());
            }
            if let Some(c) = finished_now {
                if c.type_ == "Complete" {
                    if spec
                        .completions
                        .is_some_and(|n| cx.status.succeeded.unwrap_or(0) > n)
                    {
                        self.recorder.event(
                            job.as_ref(),
                            "Warning",
                            "TooManySucceededPods",
                            "Too many succeeded pods running after completion count reached".into(),
                        );
                    }
                    self.recorder.event(
                        job.as_ref(),
                        "Normal",
                        "Completed",
                        "Job completed".into(),
                    );
                } else {
                    self.recorder
                        .event(job.as_ref(), "Warning", &c.reason, c.message.clone());
                }
            }
        }
        released
    }

    /// Writes the status over `job`'s resourceVersion; `None` when the Job is gone.
    async fn write_status(
        &self,
        api: &Api<Job>,
        job: &Job,
        status: &JobStatus,
    ) -> Result<Option<Job>, ReconcileError> {
        let mut updated = job.clone();
        updated.status = Some(status.clone());
        match api
            .replace_status(&job.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(j) => Ok(Some(j)),
            Err(e) if crate::controller::is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
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
            // Expected before the patch: the informer may show the change before it returns.
            let uid = p.metadata.uid.clone().unwrap_or_default();
            if let Ok(mut r) = self.released.lock() {
                r.insert(uid.clone());
            }
            let result = api
                .patch(
                    &p.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            if result.is_err() {
                if let Ok(mut r) = self.released.lock() {
                    r.remove(&uid);
                }
            }
            ignore_not_found(result)?;
        }
        Ok(())
    }

    /// Deletes pods (upstream's `deleteJobPods` when `release` — the tracking finalizer goes
    /// first, so the pod is not counted as failed — else `deleteActivePods`). Returns how many
    /// were deleted, and how many of those were ready.
    async fn delete_pods(
        &self,
        job: &Job,
        api: &Api<Pod>,
        pods: &[Arc<Pod>],
        release: bool,
    ) -> Result<(i32, i32), ReconcileError> {
        let ns = job.metadata.namespace.clone().unwrap_or_default();
        let (mut deleted, mut ready) = (0, 0);
        let mut first_err = None;
        for p in pods {
            if release {
                if let Err(e) = self
                    .remove_tracking_finalizers(&ns, std::iter::once(p))
                    .await
                {
                    first_err.get_or_insert(e);
                    continue;
                }
            }
            match api.delete(&p.name_any(), &DeleteParams::background()).await {
                Ok(_) => self.recorder.event(
                    job,
                    "Normal",
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", p.name_any()),
                ),
                Err(e) if crate::controller::is_not_found(&e) => {}
                Err(e) => {
                    self.recorder.event(
                        job,
                        "Warning",
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    );
                    first_err.get_or_insert(e.into());
                    continue;
                }
            }
            deleted += 1;
            if is_ready(p) {
                ready += 1;
            }
        }
        match first_err {
            Some(e) if deleted == 0 => Err(e),
            _ => Ok((deleted, ready)),
        }
    }

    async fn create_pods(
        &self,
        job: &Job,
        key: &str,
        api: &Api<Pod>,
        indexes: Vec<Option<i32>>,
        pods: &[Arc<Pod>],
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
                if spec.backoff_limit_per_index.is_some() {
                    // The replacement carries the index's failure counts on.
                    let (failures, ignored) =
                        new_index_failure_counts(&spec, last_failed_in_index(pods, i));
                    let ann = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
                    ann.insert(INDEX_FAILURE_COUNT.into(), failures.to_string());
                    if ignored > 0 {
                        ann.insert(INDEX_IGNORED_FAILURE_COUNT.into(), ignored.to_string());
                    }
                }
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

/// `batch.kubernetes.io/job-index-failure-count`: failures of the pod's index before it.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// `batch.kubernetes.io/job-index-ignored-failure-count`: failures an Ignore rule skipped.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// A condition to set: type, reason, message.
#[derive(Debug, Clone, PartialEq)]
struct Cond {
    type_: String,
    reason: String,
    message: String,
}

impl Cond {
    fn new(type_: &str, reason: &str, message: &str) -> Cond {
        Cond {
            type_: type_.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// What one sync knows about a Job (upstream's `syncJobCtx`).
struct JobCtx {
    status: JobStatus,
    pods: Vec<Arc<Pod>>,
    active: Vec<Arc<Pod>>,
    active_count: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    indexed: bool,
    succeeded_indexes: BTreeSet<i32>,
    failed_indexes: BTreeSet<i32>,
    /// Failed/FailureTarget/SuccessCriteriaMet to reach, once pods are accounted for.
    finished: Option<Cond>,
    /// Look again then (activeDeadlineSeconds).
    requeue: Option<Duration>,
}

/// The first half of upstream's `syncJob`: counts, and whether (and how) the Job is finished.
fn analyze(job: &Job, pods: &[Arc<Pod>], now: jiff::Timestamp) -> JobCtx {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);
    let unc = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let in_list = |l: &Option<Vec<String>>, uid: &str| l.iter().flatten().any(|u| u == uid);
    let active: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .cloned()
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_some() && !matches!(phase(p), "Succeeded" | "Failed")
        })
        .count() as i32;
    let uid = |p: &Pod| p.metadata.uid.clone().unwrap_or_default();
    let new_succeeded = pods
        .iter()
        .filter(|p| {
            has_tracking_finalizer(p)
                && phase(p) == "Succeeded"
                && !in_list(&unc.succeeded, &uid(p))
        })
        .count() as i32;
    let new_failed = pods
        .iter()
        .filter(|p| {
            has_tracking_finalizer(p)
                && is_pod_failed(p, &spec)
                && !in_list(&unc.failed, &uid(p))
                && spec
                    .pod_failure_policy
                    .as_ref()
                    .is_none_or(|pfp| match_pod_failure_policy(pfp, p).count)
        })
        .count() as i32;
    let count = |l: &Option<Vec<String>>| l.as_ref().map_or(0, Vec::len) as i32;
    let mut succeeded = status.succeeded.unwrap_or(0) + new_succeeded + count(&unc.succeeded);
    let failed = status.failed.unwrap_or(0) + new_failed + count(&unc.failed);
    let suspended = spec.suspend == Some(true);
    if status.start_time.is_none() && !suspended {
        status.start_time = Some(Time(now));
    }
    let per_index = spec.backoff_limit_per_index;
    let backoff_limit = spec.backoff_limit.unwrap_or(if per_index.is_some() {
        i32::MAX
    } else {
        DEFAULT_BACKOFF_LIMIT
    });
    let cond = |t: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t && c.status == "True")
            .map(|c| {
                Cond::new(
                    t,
                    c.reason.as_deref().unwrap_or(""),
                    c.message.as_deref().unwrap_or(""),
                )
            })
    };
    let mut finished = cond("SuccessCriteriaMet");
    let mut requeue = None;
    if finished.is_none() {
        if let Some(t) = cond("FailureTarget") {
            finished = Some(Cond {
                type_: "Failed".into(),
                ..t
            });
        } else if let Some(msg) = fail_job_message(&spec, pods) {
            finished = Some(Cond::new("FailureTarget", "PodFailurePolicy", &msg));
        }
    }
    if finished.is_none() {
        let elapsed = status
            .start_time
            .as_ref()
            .map(|s| now.as_second() - s.0.as_second());
        if failed > backoff_limit || past_backoff_limit_on_failure(&spec, pods, backoff_limit) {
            finished = Some(Cond::new(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ));
        } else if let (Some(ads), Some(el), false) =
            (spec.active_deadline_seconds, elapsed, suspended)
        {
            if el >= ads {
                finished = Some(Cond::new(
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                ));
            } else {
                requeue = Some(Duration::from_secs((ads - el).max(1) as u64));
            }
        }
    }
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(0);
    let mut succeeded_indexes = BTreeSet::new();
    let mut failed_indexes = BTreeSet::new();
    if indexed {
        succeeded_indexes = parse_indexes(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        succeeded_indexes.extend(
            pods.iter()
                .filter(|p| phase(p) == "Succeeded")
                .filter_map(|p| pod_index(p))
                .filter(|i| (0..completions).contains(i)),
        );
        succeeded = succeeded_indexes.len() as i32;
        if let Some(limit) = per_index {
            failed_indexes =
                parse_indexes(status.failed_indexes.as_deref().unwrap_or(""), completions);
            failed_indexes.extend(
                pods.iter()
                    .filter(|p| has_tracking_finalizer(p) && is_index_failed(&spec, p, limit))
                    .filter_map(|p| pod_index(p))
                    .filter(|i| (0..completions).contains(i)),
            );
            if finished.is_none() {
                let nfailed = failed_indexes.len() as i32;
                if spec.max_failed_indexes.is_some_and(|m| nfailed > m) {
                    finished = Some(Cond::new(
                        "FailureTarget",
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                    ));
                } else if nfailed > 0 && nfailed + succeeded >= completions {
                    finished = Some(Cond::new(
                        "FailureTarget",
                        "FailedIndexes",
                        "Job has failed indexes",
                    ));
                }
            }
        }
        if finished.is_none() {
            if let Some(msg) = spec
                .success_policy
                .as_ref()
                .and_then(|sp| match_success_policy(sp, completions, &succeeded_indexes))
            {
                finished = Some(Cond::new("SuccessCriteriaMet", "SuccessPolicy", &msg));
            }
        }
    }
    JobCtx {
        status,
        pods: pods.to_vec(),
        active_count: active.len() as i32,
        ready: active.iter().filter(|p| is_ready(p)).count() as i32,
        active,
        terminating,
        succeeded,
        indexed,
        succeeded_indexes,
        failed_indexes,
        finished,
        requeue,
    }
}

/// Upstream's `pastBackoffLimitOnFailure`: container restarts of running pods count against
/// the backoff limit when pods restart in place.
fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[Arc<Pod>], limit: i32) -> bool {
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");
    if !on_failure {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn has_tracking_finalizer(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Upstream's `isPodFailed`: Failed, or (unless only failed pods are replaced, as with a pod
/// failure policy) deleted before it succeeded.
fn is_pod_failed(p: &Pod, spec: &JobSpec) -> bool {
    if phase(p) == "Failed" {
        return true;
    }
    let only_failed = spec.pod_replacement_policy.as_deref() == Some("Failed")
        || spec.pod_failure_policy.is_some();
    !only_failed && p.metadata.deletion_timestamp.is_some() && phase(p) != "Succeeded"
}

/// Upstream's `getFailJobMessage`: the message of the first failed pod a FailJob rule matches.
fn fail_job_message(spec: &JobSpec, pods: &[Arc<Pod>]) -> Option<String> {
    let pfp = spec.pod_failure_policy.as_ref()?;
    pods.iter()
        .filter(|p| is_pod_failed(p, spec))
        .find_map(|p| match_pod_failure_policy(pfp, p).fail_job)
}

/// What a failed pod's match against the pod failure policy says.
#[derive(Debug, PartialEq)]
struct PolicyMatch {
    /// The Job's failure message, when a FailJob rule matched.
    fail_job: Option<String>,
    /// Whether the failure counts against the backoff limit (not for Ignore).
    count: bool,
    /// The matched rule's action.
    action: Option<String>,
}

/// Upstream's `matchPodFailurePolicy`: the first rule matching a failed pod, by a terminated
/// container's non-zero exit code (In/NotIn, optionally for one container) or by a pod
/// condition.
fn match_pod_failure_policy(pfp: &PodFailurePolicy, pod: &Pod) -> PolicyMatch {
    let status = pod.status.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.name_any();
    for (index, rule) in pfp.rules.iter().enumerate() {
        let matched: Option<String> = if let Some(req) = &rule.on_exit_codes {
            status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    let name_ok = req.container_name.as_ref().is_none_or(|n| *n == c.name);
                    let listed = req.values.contains(&code);
                    let op_ok = match req.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        _ => false,
                    };
                    (name_ok && code != 0 && op_ok).then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {index}",
                            c.name, rule.action
                        )
                    })
                })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            status.conditions.iter().flatten().find_map(|c| {
                patterns
                    .iter()
                    .any(|pt| {
                        pt.type_ == c.type_ && pt.status.as_deref().unwrap_or("True") == c.status
                    })
                    .then(|| {
                        format!(
                            "Pod {ns}/{name} has condition {} matching {} rule at index {index}",
                            c.type_, rule.action
                        )
                    })
            })
        } else {
            None
        };
        let Some(msg) = matched else { continue };
        let m = |fail_job, count| PolicyMatch {
            fail_job,
            count,
            action: Some(rule.action.clone()),
        };
        match rule.action.as_str() {
            "Ignore" => return m(None, false),
            "Count" | "FailIndex" => return m(None, true),
            "FailJob" => return m(Some(msg), true),
            // An unknown action matches nothing (upstream falls through to the next rule).
            _ => {}
        }
    }
    PolicyMatch {
        fail_job: None,
        count: true,
        action: None,
    }
}

/// Upstream's `isIndexFailed`: a FailIndex rule matched, or a counted failure of an index
/// that already used up `backoffLimitPerIndex`.
fn is_index_failed(spec: &JobSpec, p: &Pod, limit: i32) -> bool {
    if !is_pod_failed(p, spec) {
        return false;
    }
    let counted = match &spec.pod_failure_policy {
        Some(pfp) => {
            let m = match_pod_failure_policy(pfp, p);
            if m.action.as_deref() == Some("FailIndex") {
                return true;
            }
            m.count
        }
        None => true,
    };
    counted && index_failure_count(p) >= limit
}

fn annotation_count(p: &Pod, key: &str) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn index_failure_count(p: &Pod) -> i32 {
    annotation_count(p, INDEX_FAILURE_COUNT)
}

/// Upstream's `getNewIndexFailureCounts`: the replaced pod's counts, plus its own failure.
fn new_index_failure_counts(spec: &JobSpec, replaced: Option<&Arc<Pod>>) -> (i32, i32) {
    let Some(p) = replaced else { return (0, 0) };
    let (mut failures, mut ignored) = (
        index_failure_count(p),
        annotation_count(p, INDEX_IGNORED_FAILURE_COUNT),
    );
    let counts = spec
        .pod_failure_policy
        .as_ref()
        .is_none_or(|pfp| match_pod_failure_policy(pfp, p).count);
    if counts {
        failures += 1;
    } else {
        ignored += 1;
    }
    (failures, ignored)
}

/// The index's most recently finished failed pod (the one a new pod replaces).
fn last_failed_in_index(pods: &[Arc<Pod>], index: i32) -> Option<&Arc<Pod>> {
    pods.iter()
        .filter(|p| phase(p) == "Failed" && pod_index(p) == Some(index))
        .max_by_key(|p| (finished_at(p), index_failure_count(p)))
}

/// Upstream's `cleanUncountedPodsWithoutFinalizers`: uncounted pods whose finalizer is gone
/// move into the counters. Returns whether anything moved.
fn clean_uncounted(status: &mut JobStatus, with_finalizer: &BTreeSet<String>) -> bool {
    let Some(unc) = status.uncounted_terminated_pods.as_mut() else {
        return false;
    };
    let mut moved = false;
    for (list, counter) in [
        (&mut unc.succeeded, &mut status.succeeded),
        (&mut unc.failed, &mut status.failed),
    ] {
        let Some(l) = list.as_mut() else { continue };
        let before = l.len();
        l.retain(|u| with_finalizer.contains(u));
        let gone = (before - l.len()) as i32;
        if gone > 0 {
            moved = true;
            *counter = Some(counter.unwrap_or(0) + gone);
        }
        if l.is_empty() {
            *list = None;
        }
    }
    moved
}

/// Upstream's `parseIndexesFromString`: `1,3-5` style, indexes past `completions` dropped,
/// malformed parts skipped.
fn parse_indexes(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    if s.is_empty() {
        return out;
    }
    for part in s.split(',') {
        let mut limits = part.split('-');
        let Some(Ok(first)) = limits.next().map(str::parse::<i32>) else {
            continue;
        };
        if first >= completions {
            break;
        }
        let last = match limits.next().map(str::parse::<i32>) {
            None => first,
            Some(Ok(l)) => l.min(completions - 1),
            Some(Err(_)) => continue,
        };
        out.extend(first..=last);
    }
    out
}

/// Upstream's `matchSuccessPolicy`: the first rule whose indexes (all, or `succeededCount` of
/// them) or plain count has succeeded.
fn match_success_policy(
    sp: &SuccessPolicy,
    completions: i32,
    succeeded: &BTreeSet<i32>,
) -> Option<String> {
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in sp.rules.iter().enumerate() {
        let met = if let Some(ixs) = &rule.succeeded_indexes {
            let required = parse_indexes(ixs, completions);
            if required.is_empty() {
                continue;
            }
            let contains = required.intersection(succeeded).count();
            contains == required.len()
                || rule.succeeded_count.is_some_and(|c| contains >= c as usize)
        } else {
            rule.succeeded_count
                .is_some_and(|c| succeeded.len() >= c as usize)
        };
        if met {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// How long is left of `delay` after `since`, if any.
fn remaining(since: jiff::Timestamp, delay: Duration, now: jiff::Timestamp) -> Option<Duration> {
    let elapsed =
        Duration::from_secs(now.as_second().saturating_sub(since.as_second()).max(0) as u64);
    (elapsed < delay).then(|| delay - elapsed)
}

/// The sooner of a planned requeue and another wait.
fn shorter(next: Next, d: Duration) -> Next {
    match next {
        Next::After(n) if n < d => next,
        _ => Next::After(d),
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
    remaining(*last, backoff_delay(failures.len() as u32), now)
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

    use k8s_openapi::api::batch::v1::UncountedTerminatedPods;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
        PodFailurePolicyRule, SuccessPolicyRule,
    };
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A pod of the Job: phase, main container exit code, completion index, extra annotations.
    fn pod(
        name: &str,
        phase: &str,
        exit: Option<i32>,
        index: Option<i32>,
        ann: &[(&str, &str)],
    ) -> Arc<Pod> {
        let mut annotations: BTreeMap<String, String> = ann
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(i) = index {
            annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        }
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                annotations: Some(annotations),
                finalizers: Some(vec![TRACKING_FINALIZER.into()]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                container_statuses: exit.map(|code| {
                    vec![ContainerStatus {
                        name: "main-container".into(),
                        state: Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: code,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    fn exit_rule(
        action: &str,
        op: &str,
        values: &[i32],
        container: Option<&str>,
    ) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: container.map(Into::into),
                operator: op.into(),
                values: values.to_vec(),
            }),
            on_pod_conditions: None,
        }
    }

    fn policy(rules: Vec<PodFailurePolicyRule>) -> PodFailurePolicy {
        PodFailurePolicy { rules }
    }

    // pod_failure_policy_test.go TestMatchPodFailurePolicy, a selection.
    #[test]
    fn pod_failure_policy_matches_as_upstream() {
        let failed = |code| pod("mypod", "Failed", Some(code), None, &[]);
        let fail_job = policy(vec![exit_rule("FailJob", "In", &[2], None)]);
        assert_eq!(
            match_pod_failure_policy(&fail_job, &failed(2)),
            PolicyMatch {
                fail_job: Some("Container main-container for pod default/mypod failed with exit code 2 matching FailJob rule at index 0".into()),
                count: true,
                action: Some("FailJob".into()),
            }
        );
        // No rule matches: counted, no action.
        let none = match_pod_failure_policy(&fail_job, &failed(3));
        assert_eq!((none.fail_job, none.count, none.action), (None, true, None));
        // Ignore does not count; NotIn matches codes outside the list; 0 never matches.
        let ignore = policy(vec![exit_rule("Ignore", "NotIn", &[1, 2], None)]);
        assert!(!match_pod_failure_policy(&ignore, &failed(3)).count);
        assert!(match_pod_failure_policy(&ignore, &failed(2)).count);
        assert_eq!(match_pod_failure_policy(&ignore, &failed(0)).action, None);
        // A rule for another container does not match.
        let other = policy(vec![exit_rule("FailJob", "In", &[2], Some("sidecar"))]);
        assert_eq!(match_pod_failure_policy(&other, &failed(2)).action, None);
        // The first matching rule wins; Count and FailIndex count.
        let ordered = policy(vec![
            exit_rule("Count", "In", &[2], None),
            exit_rule("FailJob", "In", &[2], None),
        ]);
        assert_eq!(
            match_pod_failure_policy(&ordered, &failed(2))
                .action
                .as_deref(),
            Some("Count")
        );
        let fail_index = policy(vec![exit_rule("FailIndex", "In", &[42], None)]);
        let m = match_pod_failure_policy(&fail_index, &failed(42));
        assert_eq!((m.count, m.action.as_deref()), (true, Some("FailIndex")));
        // On pod conditions (status defaults to True).
        let disrupted = policy(vec![PodFailurePolicyRule {
            action: "Ignore".into(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: "DisruptionTarget".into(),
                status: None,
            }]),
        }]);
        let mut p = (*failed(137)).clone();
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert!(!match_pod_failure_policy(&disrupted, &p).count);
        let fail_on_condition = policy(vec![PodFailurePolicyRule {
            action: "FailJob".into(),
            ..disrupted.rules[0].clone()
        }]);
        assert_eq!(
            match_pod_failure_policy(&fail_on_condition, &p)
                .fail_job
                .as_deref(),
            Some(
                "Pod default/mypod has condition DisruptionTarget matching FailJob rule at index 0"
            )
        );
    }

    fn job(spec: JobSpec) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("job".into()),
                namespace: Some("default".into()),
                uid: Some("job-uid".into()),
                ..Default::default()
            },
            spec: Some(spec),
            status: None,
        }
    }

    fn finished(j: &Job, pods: &[Arc<Pod>]) -> Option<(String, String, String)> {
        analyze(j, pods, jiff::Timestamp::now())
            .finished
            .map(|c| (c.type_, c.reason, c.message))
    }

    fn cond(t: &str, r: &str, m: &str) -> Option<(String, String, String)> {
        Some((t.into(), r.into(), m.into()))
    }

    // job_controller_test.go TestSyncJobWithJobPodFailurePolicy / TestSyncJobPastDeadline /
    // TestBackoffLimitPerIndex, the finishing decisions.
    #[test]
    fn finishing_conditions_as_upstream() {
        // backoffLimit 1, two counted failures.
        let j = job(JobSpec {
            backoff_limit: Some(1),
            ..Default::default()
        });
        let two = [
            pod("a", "Failed", Some(1), None, &[]),
            pod("b", "Failed", Some(1), None, &[]),
        ];
        assert_eq!(
            finished(&j, &two),
            cond(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            )
        );
        assert_eq!(finished(&j, &two[..1]), None);
        // FailJob on exit code 5; Ignore keeps failures out of the backoff count.
        let j = job(JobSpec {
            backoff_limit: Some(0),
            pod_failure_policy: Some(policy(vec![
                exit_rule("FailJob", "In", &[5], None),
                exit_rule("Ignore", "In", &[6], None),
            ])),
            ..Default::default()
        });
        assert_eq!(
            finished(&j, &[pod("p", "Failed", Some(5), None, &[])]),
            cond("FailureTarget", "PodFailurePolicy", "Container main-container for pod default/p failed with exit code 5 matching FailJob rule at index 0")
        );
        assert_eq!(
            finished(&j, &[pod("p", "Failed", Some(6), None, &[])]),
            None
        );
        // A recorded FailureTarget turns into Failed with its reason and message.
        let mut j2 = j.clone();
        j2.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: "FailureTarget".into(),
                status: "True".into(),
                reason: Some("PodFailurePolicy".into()),
                message: Some("m".into()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(finished(&j2, &[]), cond("Failed", "PodFailurePolicy", "m"));
        // Deadline.
        let mut j3 = job(JobSpec {
            active_deadline_seconds: Some(10),
            ..Default::default()
        });
        j3.status = Some(JobStatus {
            start_time: Some(Time(
                jiff::Timestamp::now() - jiff::SignedDuration::from_secs(11),
            )),
            ..Default::default()
        });
        assert_eq!(
            finished(&j3, &[]),
            cond(
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline"
            )
        );
    }

    #[test]
    fn backoff_limit_per_index_as_upstream() {
        let spec = JobSpec {
            completions: Some(3),
            parallelism: Some(3),
            completion_mode: Some("Indexed".into()),
            backoff_limit_per_index: Some(1),
            ..Default::default()
        };
        let j = job(spec.clone());
        // Index 0 failed once (count 0 < limit 1): retried, not failed.
        let first = pod("a", "Failed", Some(1), Some(0), &[]);
        let cx = analyze(&j, std::slice::from_ref(&first), jiff::Timestamp::now());
        assert!(cx.failed_indexes.is_empty() && cx.finished.is_none());
        // Its replacement carries count 1, and failing again fails the index.
        assert_eq!(new_index_failure_counts(&spec, Some(&first)), (1, 0));
        let second = pod(
            "b",
            "Failed",
            Some(1),
            Some(0),
            &[(INDEX_FAILURE_COUNT, "1")],
        );
        let ok = [
            pod("c", "Succeeded", None, Some(1), &[]),
            pod("d", "Succeeded", None, Some(2), &[]),
        ];
        let pods = [first.clone(), second.clone(), ok[0].clone(), ok[1].clone()];
        let cx = analyze(&j, &pods, jiff::Timestamp::now());
        assert_eq!(format_indexes(&cx.failed_indexes), "0");
        assert_eq!(format_indexes(&cx.succeeded_indexes), "1-2");
        assert_eq!(
            cx.finished.map(|c| (c.reason, c.message)),
            Some(("FailedIndexes".into(), "Job has failed indexes".into()))
        );
        // maxFailedIndexes 0: the first failed index ends the Job.
        let j = job(JobSpec {
            max_failed_indexes: Some(0),
            ..spec.clone()
        });
        assert_eq!(
            finished(&j, &[first.clone(), second.clone()]),
            cond(
                "FailureTarget",
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximal number of failed indexes"
            )
        );
        // FailIndex fails the index at once; Ignore counts separately.
        let j = job(JobSpec {
            pod_failure_policy: Some(policy(vec![
                exit_rule("FailIndex", "In", &[42], None),
                exit_rule("Ignore", "In", &[43], None),
            ])),
            ..spec.clone()
        });
        let cx = analyze(
            &j,
            &[pod("x", "Failed", Some(42), Some(2), &[])],
            jiff::Timestamp::now(),
        );
        assert_eq!(format_indexes(&cx.failed_indexes), "2");
        let ignored = pod("y", "Failed", Some(43), Some(1), &[]);
        assert_eq!(
            new_index_failure_counts(j.spec.as_ref().unwrap(), Some(&ignored)),
            (0, 1)
        );
    }

    // success_policy_test.go TestMatchSuccessPolicy, a selection.
    #[test]
    fn success_policy_as_upstream() {
        let rule = |ixs: Option<&str>, count: Option<i32>| SuccessPolicyRule {
            succeeded_indexes: ixs.map(Into::into),
            succeeded_count: count,
        };
        let sp = |rules| SuccessPolicy { rules };
        let set = |s: &str| parse_indexes(s, 10);
        assert_eq!(
            match_success_policy(&sp(vec![rule(Some("0-2"), None)]), 10, &set("0-3")),
            Some("Matched rules at index 0".into())
        );
        assert_eq!(
            match_success_policy(&sp(vec![rule(Some("0-2"), None)]), 10, &set("0,2")),
            None
        );
        assert_eq!(
            match_success_policy(&sp(vec![rule(Some("0-2"), Some(2))]), 10, &set("0,2")),
            Some("Matched rules at index 0".into())
        );
        assert_eq!(
            match_success_policy(
                &sp(vec![rule(Some("5"), None), rule(None, Some(3))]),
                10,
                &set("1,3,7")
            ),
            Some("Matched rules at index 1".into())
        );
        assert_eq!(
            match_success_policy(&sp(vec![rule(None, Some(1))]), 10, &set("")),
            None
        );
        // A SuccessCriteriaMet with reason SuccessPolicy ends an Indexed Job early.
        let j = job(JobSpec {
            completions: Some(3),
            completion_mode: Some("Indexed".into()),
            success_policy: Some(sp(vec![rule(Some("0"), None)])),
            ..Default::default()
        });
        assert_eq!(
            finished(&j, &[pod("a", "Succeeded", None, Some(0), &[])]),
            cond(
                "SuccessCriteriaMet",
                "SuccessPolicy",
                "Matched rules at index 0"
            )
        );
        assert_eq!(format_indexes(&parse_indexes("0,2-4,x,7-9", 8)), "0,2-4,7");
    }

    // tracking_utils / TestTrackJobStatusAndRemoveFinalizers: uncounted pods whose finalizer
    // is gone move into the counters.
    #[test]
    fn uncounted_pods_move_into_counters() {
        let mut st = JobStatus {
            succeeded: Some(1),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let keep: BTreeSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut st, &keep));
        assert_eq!((st.succeeded, st.failed), (Some(2), Some(1)));
        let unc = st.uncounted_terminated_pods.clone().unwrap();
        assert_eq!(
            (unc.succeeded, unc.failed),
            (Some(vec!["b".to_string()]), None)
        );
        assert!(!clean_uncounted(&mut st, &keep));
    }

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
