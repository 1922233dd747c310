//! The CronJob controller (upstream's `pkg/controller/cronjob`, `cronjob_controllerv2.go` and
//! `utils.go`): on each schedule time creates a Job named `<cronjob>-<scheduled unix minutes>`
//! from the job template, honouring `concurrencyPolicy`, `startingDeadlineSeconds`, `suspend` and
//! `timeZone`; keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; prunes
//! finished Jobs past the history limits; and requeues itself for the next schedule time.
//!
//! Schedules are parsed by `rudder_api::cron` (robfig/cron v3's standard parser, shared with API
//! validation); [`next`] is robfig's `SpecSchedule.Next` over jiff's time zones.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::civil;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams};
use kube::ResourceExt;
use rudder_api::cron::{parse_standard, Schedule, STAR_BIT};

use crate::controller::{
    is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::{object_reference, Recorder};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{controller_ref, owner_ref};
use crate::workqueue::WorkQueue;

/// `batchv1.CronJobScheduledTimestampAnnotation`.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's `nextScheduleDelta`: requeue a little after the schedule time, against clock skew.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

pub struct CronJobController {
    client: kube::Client,
    cronjobs: Arc<Informer<CronJob>>,
    jobs: Arc<Informer<Job>>,
    queue: Arc<WorkQueue>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(CronJobController {
        client: cx.client.clone(),
        cronjobs: cx.informers.get::<CronJob>(),
        jobs: cx.informers.get::<Job>(),
        queue: WorkQueue::new("cronjob", cx.metrics.clone()),
        recorder: Recorder::new(cx.client.clone(), "cronjob-controller", &cx.host),
    });
    c.register_handlers();
    let (cronjobs, jobs, queue) = (c.cronjobs.clone(), c.jobs.clone(), c.queue.clone());
    tasks.spawn(async move {
        cronjobs.wait_synced().await;
        jobs.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl CronJobController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.cronjobs.add_handler(move |ch| match ch {
            Change::Added(cj) | Change::Deleted(cj) => this.queue.add(key_of(cj.as_ref())),
            Change::Updated { old, new } => this.cron_job_updated(old, new),
        });
        let this = self.clone();
        self.jobs.add_handler(move |ch| {
            let jobs: Vec<&Job> = match ch {
                Change::Added(j) | Change::Deleted(j) => vec![j.as_ref()],
                Change::Updated { old, new } => {
                    if old.metadata.resource_version == new.metadata.resource_version {
                        return;
                    }
                    vec![old.as_ref(), new.as_ref()]
                }
            };
            for j in jobs {
                if let Some(key) = this.owner_key(j) {
                    this.queue.add(key);
                }
            }
        });
    }

    /// Upstream's `resolveControllerRef`: the owning CronJob's key, if it still exists with
    /// that UID.
    fn owner_key(&self, job: &Job) -> Option<String> {
        let r = controller_ref(&job.metadata)?;
        if r.kind != "CronJob" {
            return None;
        }
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let cj = self.cronjobs.get(ns, &r.name)?;
        (cj.metadata.uid.as_deref() == Some(r.uid.as_str())).then(|| key_of(cj.as_ref()))
    }

    /// Upstream's `updateCronJob`: a schedule or zone change requeues at the new next time,
    /// anything else now.
    fn cron_job_updated(self: &Arc<Self>, old: &CronJob, new: &CronJob) {
        let key = key_of(new);
        if (&old.spec.schedule, &old.spec.time_zone) == (&new.spec.schedule, &new.spec.time_zone) {
            self.queue.add(key);
            return;
        }
        let schedule = new.spec.schedule.clone();
        match resolve_schedule(new, &TimeZone::system()) {
            Ok((sched, tz)) => {
                let d = next_schedule_time_duration(new, Timestamp::now(), &sched, &tz);
                self.queue.add_after(key, d);
            }
            Err(e) => {
                tracing::debug!(%key, %schedule, error = %e, "unparseable schedule for cronjob");
                self.recorder.event(
                    new,
                    "Warning",
                    "UnParseableCronJobSchedule",
                    format!("unparseable schedule for cronjob: {schedule}"),
                );
            }
        }
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(cj) = self.cronjobs.get(ns, name) else {
            return Ok(Next::Done);
        };
        // Every Job naming this CronJob as its controller, whatever its labels now say.
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .list(ns)
            .into_iter()
            .filter(|j| {
                controller_ref(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == name)
            })
            .collect();
        let mut cj = (*cj).clone();
        let mut update = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let result = self.sync_cron_job(&mut cj, &jobs, &mut update).await;
        if update {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            match api.replace_status(name, &PostParams::default(), &cj).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(Next::Done),
                Err(e) => return Err(e.into()),
            }
        }
        match result {
            Ok(Some(d)) => Ok(Next::After(d)),
            Ok(None) => Ok(Next::Done),
            Err(e) => Err(e),
        }
    }

    /// Upstream's `syncCronJob`: returns when to look again (`None` = only on a change).
    async fn sync_cron_job(
        &self,
        cj: &mut CronJob,
        jobs: &[Arc<Job>],
        update: &mut bool,
    ) -> Result<Option<Duration>, ReconcileError> {
        let now = Timestamp::now();
        let ns = cj.namespace().unwrap_or_default();
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        for j in jobs {
            let uid = j.metadata.uid.as_deref().unwrap_or("");
            let found = in_active_list(cj, uid);
            let finished = finished_condition(j);
            if !found && finished.is_none() {
                // Our status may just be older than the Job list: check the live object.
                let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
                let fresh = api.get(&cj.name_any()).await?;
                if in_active_list(&fresh, uid) {
                    *cj = fresh;
                    continue;
                }
                self.recorder.event(
                    &*cj,
                    "Warning",
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        j.name_any()
                    ),
                );
            } else if let Some(condition) = finished {
                if found {
                    delete_from_active_list(cj, uid);
                    self.recorder.event(
                        &*cj,
                        "Normal",
                        "SawCompletedJob",
                        format!(
                            "Saw completed job: {}, condition: {condition}",
                            j.name_any()
                        ),
                    );
                    *update = true;
                }
                if condition == "Complete" {
                    let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                    let status = cj.status.get_or_insert_with(Default::default);
                    let later = match (&status.last_successful_time, &done) {
                        (None, _) => true,
                        (Some(last), Some(d)) => d.0 > last.0,
                        (Some(_), None) => false,
                    };
                    if later && status.last_successful_time != done {
                        status.last_successful_time = done;
                        *update = true;
                    }
                }
            }
        }

        // Active entries whose Job is gone (checked against the API, not just the cache) would
        // keep a Forbid CronJob blocked forever.
        let children: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.metadata.uid.as_deref())
            .collect();
        let active = cj
            .status
            .as_ref()
            .and_then(|s| s.active.clone())
            .unwrap_or_default();
        for r in active {
            if children.contains(&r.uid.as_deref().unwrap_or("")) {
                continue;
            }
            let name = r.name.clone().unwrap_or_default();
            match jobs_api.get(&name).await {
                Err(e) if is_not_found(&e) => {
                    self.recorder.event(
                        &*cj,
                        "Normal",
                        "MissingJob",
                        format!("Active job went missing: {name}"),
                    );
                    delete_from_active_list(cj, r.uid.as_deref().unwrap_or(""));
                    *update = true;
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        }

        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let decision = decide(cj, now, &TimeZone::system());
        for (type_, reason, msg) in &decision.events {
            self.recorder.event(&*cj, type_, reason, msg.clone());
        }
        let Some(scheduled) = decision.create else {
            return Ok(decision.requeue);
        };
        let spec = cj.spec.clone();
        if spec.concurrency_policy.as_deref() == Some("Replace") {
            let active = cj
                .status
                .as_ref()
                .and_then(|s| s.active.clone())
                .unwrap_or_default();
            for r in active {
                let name = r.name.clone().unwrap_or_default();
                let job = match jobs_api.get(&name).await {
                    Ok(j) => j,
                    Err(e) => {
                        self.recorder
                            .event(&*cj, "Warning", "FailedGet", format!("Get job: {e}"));
                        return Err(e.into());
                    }
                };
                if !self.delete_job(cj, &job).await {
                    return Err(ReconcileError::Other(format!(
                        "could not replace job {ns}/{name}"
                    )));
                }
                *update = true;
            }
        }

        let req = job_from_template(cj, scheduled);
        let job = match jobs_api.create(&PostParams::default(), &req).await {
            Ok(job) => {
                self.recorder.event(
                    &*cj,
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created job {}", job.name_any()),
                );
                job
            }
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                // Created by us before a status write was lost, or by someone else.
                let job = jobs_api.get(&req.name_any()).await?;
                let ours = controller_ref(&job.metadata)
                    .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref());
                if !ours || in_active_list(cj, job.metadata.uid.as_deref().unwrap_or("")) {
                    return Ok(None);
                }
                tracing::info!(cronjob = %cj.name_any(), job = %job.name_any(), "job already exists");
                job
            }
            Err(kube::Error::Api(s))
                if s.details.as_ref().is_some_and(|d| {
                    d.causes.iter().any(|c| c.reason == "NamespaceTerminating")
                }) =>
            {
                return Err(kube::Error::Api(s).into());
            }
            Err(e) => {
                self.recorder.event(
                    &*cj,
                    "Warning",
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return Err(e.into());
            }
        };
        let status = cj.status.get_or_insert_with(Default::default);
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(object_reference(&job));
        status.last_schedule_time = Some(Time(scheduled));
        *update = true;
        Ok(decision.after_create)
    }

    /// Upstream's `cleanupFinishedJobs`: oldest finished Jobs past the history limits go.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none()
        {
            return false;
        }
        let pick = |kind: &str| -> Vec<&Arc<Job>> {
            jobs.iter()
                .filter(|j| finished_condition(j) == Some(kind))
                .collect()
        };
        let mut update = false;
        for (limit, kind) in [
            (spec.successful_jobs_history_limit, "Complete"),
            (spec.failed_jobs_history_limit, "Failed"),
        ] {
            let Some(limit) = limit else { continue };
            for job in oldest_beyond(pick(kind), limit) {
                if self.delete_job(cj, job).await {
                    update = true;
                }
            }
        }
        update
    }

    /// Upstream's `deleteJob`: the Job (background propagation), then its active entry.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let api: Api<Job> =
            Api::namespaced(self.client.clone(), &job.namespace().unwrap_or_default());
        if let Err(e) = api
            .delete(&job.name_any(), &DeleteParams::background())
            .await
        {
            tracing::info!(cronjob = %cj.name_any(), job = %job.name_any(), error = %e, "error deleting job from cronjob");
            self.recorder
                .event(&*cj, "Warning", "FailedDelete", format!("Deleted job: {e}"));
            return false;
        }
        delete_from_active_list(cj, job.metadata.uid.as_deref().unwrap_or(""));
        self.recorder.event(
            &*cj,
            "Normal",
            "SuccessfulDelete",
            format!("Deleted job {}", job.name_any()),
        );
        true
    }
}

impl Reconciler for CronJobController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

/// The `n` oldest of `jobs` beyond `keep` (upstream's `byJobStartTime`: by start time, jobs
/// without one last, ties by name).
fn oldest_beyond(mut jobs: Vec<&Arc<Job>>, keep: i32) -> Vec<&Arc<Job>> {
    let n = jobs.len() as i64 - i64::from(keep);
    if n <= 0 {
        return Vec::new();
    }
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    jobs.sort_by(|a, b| match (start(a), start(b)) {
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (x, y) if x == y => a.name_any().cmp(&b.name_any()),
        (x, y) => x.cmp(&y),
    });
    jobs.truncate(n as usize);
    jobs
}

/// `Complete` or `Failed` when the Job has that condition true.
fn finished_condition(j: &Job) -> Option<&'static str> {
    let cs = j.status.as_ref()?.conditions.as_ref()?;
    cs.iter()
        .find_map(|c| match (c.type_.as_str(), c.status.as_str()) {
            ("Complete", "True") => Some("Complete"),
            ("Failed", "True") => Some("Failed"),
            _ => None,
        })
}

fn in_active_list(cj: &CronJob, uid: &str) -> bool {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| a.iter().any(|r| r.uid.as_deref() == Some(uid)))
}

fn delete_from_active_list(cj: &mut CronJob, uid: &str) {
    if let Some(s) = cj.status.as_mut() {
        if let Some(a) = s.active.as_mut() {
            a.retain(|r| r.uid.as_deref() != Some(uid));
        }
        // Upstream's empty list is omitted from the JSON.
        if s.active.as_ref().is_some_and(Vec::is_empty) {
            s.active = None;
        }
    }
}

/// What `syncCronJob` decides once the active list is reconciled.
#[derive(Debug, Default, PartialEq)]
struct Decision {
    /// Events to record: (type, reason, message).
    events: Vec<(&'static str, &'static str, String)>,
    /// When to look again if no Job is created.
    requeue: Option<Duration>,
    /// Create the Job for this scheduled time.
    create: Option<Timestamp>,
    /// When to look again after creating it.
    after_create: Option<Duration>,
}

/// The schedule a CronJob runs and the zone it runs in (upstream's `formatSchedule` then
/// `cron.ParseStandard`): `TZ=` in the schedule wins, then `timeZone`, then the controller's
/// local zone.
fn resolve_schedule(cj: &CronJob, local: &TimeZone) -> Result<(Schedule, TimeZone), String> {
    let spec = cj.spec.clone();
    let sched = parse_standard(&spec.schedule)?;
    let in_schedule = match &sched {
        Schedule::Spec { location, .. } => location.clone(),
        Schedule::Every { .. } => None,
    };
    let tz = match (in_schedule, spec.time_zone) {
        (Some(loc), _) => {
            load_location(&loc).map_err(|e| format!("provided bad location {loc}: {e}"))?
        }
        (None, Some(tz)) if !spec.schedule.contains("TZ") => {
            load_location(&tz).unwrap_or_else(|_| local.clone())
        }
        _ => local.clone(),
    };
    Ok((sched, tz))
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the local zone, else the tz database.
fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// `local` is the controller's zone, for schedules without `timeZone`.
fn decide(cj: &CronJob, now: Timestamp, local: &TimeZone) -> Decision {
    let mut d = Decision::default();
    let spec = cj.spec.clone();
    if let Some(tz) = &spec.time_zone {
        if let Err(e) = load_location(tz) {
            d.events.push((
                "Warning",
                "UnknownTimeZone",
                format!("invalid timeZone: {}: {e}", rudder_api::go_quote(tz)),
            ));
            return d;
        }
    }
    if spec.suspend == Some(true) {
        return d;
    }
    if spec.schedule.contains("TZ") {
        d.events.push((
            "Warning",
            "UnsupportedSchedule",
            format!(
                "CRON_TZ or TZ used in schedule {} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details",
                rudder_api::go_quote(&spec.schedule)
            ),
        ));
    }
    let (sched, tz) = match resolve_schedule(cj, local) {
        Ok(s) => s,
        Err(e) => {
            d.events.push((
                "Warning",
                "UnparseableSchedule",
                format!(
                    "unparseable schedule: {} : {e}",
                    rudder_api::go_quote(&spec.schedule)
                ),
            ));
            return d;
        }
    };
    let requeue = Some(next_schedule_time_duration(cj, now, &sched, &tz));
    let scheduled = match most_recent_schedule_time(cj, now, &sched, &tz, true) {
        Err(e) => {
            d.events.push((
                "Warning",
                "InvalidSchedule",
                format!("invalid schedule: {} : {e}", spec.schedule),
            ));
            return d;
        }
        Ok(m) => {
            if m.missed == Missed::Many && m.most_recent.is_some() {
                d.events.push((
                    "Warning",
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                ));
            }
            m.most_recent
        }
    };
    d.requeue = requeue;
    let Some(scheduled) = scheduled else {
        return d;
    };
    if let Some(deadline) = spec.starting_deadline_seconds {
        if plus(scheduled, deadline).is_some_and(|t| t < now) {
            d.events.push((
                "Warning",
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc1123z(scheduled)
                ),
            ));
            return d;
        }
    }
    let status = cj.status.clone().unwrap_or_default();
    let active = status.active.unwrap_or_default();
    let name = job_name(cj, scheduled);
    let ns = cj.metadata.namespace.clone();
    if active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()) && r.namespace == ns)
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(scheduled)
    {
        return d;
    }
    if spec.concurrency_policy.as_deref() == Some("Forbid") && !active.is_empty() {
        d.events.push((
            "Normal",
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        ));
        return d;
    }
    d.requeue = None;
    d.create = Some(scheduled);
    // The requeue after creating counts from the new lastScheduleTime.
    let mut after = cj.clone();
    after
        .status
        .get_or_insert_with(Default::default)
        .last_schedule_time = Some(Time(scheduled));
    d.after_create = Some(next_schedule_time_duration(&after, now, &sched, &tz));
    d
}

/// Go's `time.RFC1123Z` in UTC: `Mon, 02 Jan 2006 15:04:05 -0700`.
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// `getJobName`: the scheduled time in minutes since the epoch keeps names deterministic, so a
/// lost status write never creates a second Job for the same time.
fn job_name(cj: &CronJob, scheduled: Timestamp) -> String {
    format!("{}-{}", cj.name_any(), scheduled.as_second().div_euclid(60))
}

/// Upstream's `getJobFromTemplate2`.
fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Job {
    let spec = cj.spec.clone();
    let meta = spec.job_template.metadata.clone().unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    // The annotation is in the CronJob's zone (UTC without one), RFC 3339.
    let zone = spec
        .time_zone
        .as_deref()
        .and_then(|z| load_location(z).ok())
        .unwrap_or(TimeZone::UTC);
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339(scheduled, &zone));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: Some(meta.labels.unwrap_or_default()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_ref(cj)]),
            ..Default::default()
        },
        spec: spec.job_template.spec.clone(),
        status: None,
    }
}

/// Go's `time.RFC3339` (`Z` for a zero offset).
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missed {
    None,
    Few,
    Many,
}

#[derive(Debug)]
struct MostRecent {
    earliest: Timestamp,
    most_recent: Option<Timestamp>,
    missed: Missed,
}

/// Upstream's `mostRecentScheduleTime`: the last schedule time (or creation time), the most
/// recent time a Job should have started (none if that is still ahead), and how many were
/// missed, estimated from the interval between the next two activations (more than 100 is
/// "many").
fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
    include_deadline: bool,
) -> Result<MostRecent, String> {
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .map(|t| t.0)
        .unwrap_or(created);
    if include_deadline {
        if let Some(sds) = cj.spec.starting_deadline_seconds {
            let deadline = plus(now, -sds).unwrap_or(Timestamp::MIN);
            if deadline > earliest {
                earliest = deadline;
            }
        }
    }
    let mut out = MostRecent {
        earliest,
        most_recent: None,
        missed: Missed::None,
    };
    let invalid = || "time difference between two schedules is less than 1 second".to_string();
    let t1 = next(sched, tz, earliest).ok_or_else(invalid)?;
    if now < t1 {
        return Ok(out);
    }
    let t2 = next(sched, tz, t1).ok_or_else(invalid)?;
    if now < t2 {
        out.most_recent = Some(t1);
        return Ok(out);
    }
    let between = t2.as_second() - t1.as_second();
    if between < 1 {
        return Err(invalid());
    }
    let elapsed = (now.as_second() - t1.as_second())
        - i64::from(now.subsec_nanosecond() < t1.subsec_nanosecond());
    let missed = elapsed / between + 1;
    let mut t = plus(t1, (missed - 2).saturating_mul(between)).and_then(|p| next(sched, tz, p));
    while let Some(x) = t.filter(|x| *x <= now) {
        out.most_recent = Some(x);
        t = next(sched, tz, x);
    }
    out.missed = if missed > 100 {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok(out)
}

/// `t` plus `secs` seconds, `None` past the representable range.
fn plus(t: Timestamp, secs: i64) -> Option<Timestamp> {
    t.checked_add(jiff::SignedDuration::from_secs(secs)).ok()
}

/// Upstream's `nextScheduleTimeDuration`: from now until just after the next activation.
fn next_schedule_time_duration(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    tz: &TimeZone,
) -> Duration {
    let from = match most_recent_schedule_time(cj, now, sched, tz, false) {
        Err(_) => now,
        Ok(MostRecent {
            most_recent: Some(t),
            ..
        }) => t,
        Ok(m) if m.missed == Missed::None => m.earliest,
        Ok(_) => now,
    };
    let Some(at) = next(sched, tz, from) else {
        return Duration::ZERO;
    };
    let d = at.duration_since(now);
    Duration::try_from(d).unwrap_or(Duration::ZERO) + NEXT_SCHEDULE_DELTA
}

/// robfig's `Schedule.Next`: the first activation strictly after `t` (whole seconds), `None`
/// when nothing matches within five years (robfig's zero time).
pub fn next(sched: &Schedule, tz: &TimeZone, t: Timestamp) -> Option<Timestamp> {
    let spec = match sched {
        Schedule::Every { seconds } => {
            let base = Timestamp::from_second(t.as_second()).ok()?;
            return base.checked_add((*seconds as i64).seconds()).ok();
        }
        Schedule::Spec {
            minute,
            hour,
            dom,
            month,
            dow,
            ..
        } => (*minute, *hour, *dom, *month, *dow),
    };
    let (minute, hour, dom, month, dow) = spec;
    let second_floor = t.as_second() - i64::from(t.subsec_nanosecond() < 0);
    let mut t = Timestamp::from_second(second_floor + 1).ok()?;
    let civil_of = |t: Timestamp| tz.to_datetime(t);
    let at = |d: civil::DateTime| tz.to_ambiguous_timestamp(d).compatible().ok();
    let year_limit = civil_of(t).year() + 5;
    let mut added = false;
    let has = |bits: u64, v: i8| bits & (1u64 << v) != 0;
    'wrap: loop {
        if civil_of(t).year() > year_limit {
            return None;
        }
        while !has(month, civil_of(t).month()) {
            let c = civil_of(t);
            if !added {
                added = true;
                t = at(civil::date(c.year(), c.month(), 1).at(0, 0, 0, 0))?;
            }
            t = at(add_civil(civil_of(t), 1, 0)?)?;
            if civil_of(t).month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(dom, dow, civil_of(t)) {
            let c = civil_of(t);
            if !added {
                added = true;
                t = at(c.date().at(0, 0, 0, 0))?;
            }
            t = at(add_civil(civil_of(t), 0, 1)?)?;
            // A DST change may have moved midnight: snap back to it.
            let h = i64::from(civil_of(t).hour());
            if h != 0 {
                t = if h > 12 {
                    t.checked_add((24 - h).hours()).ok()?
                } else {
                    t.checked_sub(h.hours()).ok()?
                };
            }
            if civil_of(t).day() == 1 {
                continue 'wrap;
            }
        }
        while !has(hour, civil_of(t).hour()) {
            if !added {
                added = true;
                let c = civil_of(t);
                t = at(c.date().at(c.hour(), 0, 0, 0))?;
            }
            t = t.checked_add(1.hour()).ok()?;
            if civil_of(t).hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(minute, civil_of(t).minute()) {
            if !added {
                added = true;
                t = Timestamp::from_second(t.as_second().div_euclid(60) * 60).ok()?;
            }
            t = t.checked_add(1.minute()).ok()?;
            if civil_of(t).minute() == 0 {
                continue 'wrap;
            }
        }
        // The standard parser's seconds field is always 0.
        while civil_of(t).second() != 0 {
            added = true;
            t = t.checked_add(1.second()).ok()?;
            if civil_of(t).second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t);
    }
}

/// Go's `AddDate(0, months, days)`: civil arithmetic, overflowing days roll into the next month.
fn add_civil(c: civil::DateTime, months: i32, days: i32) -> Option<civil::DateTime> {
    let total = i32::from(c.year()) * 12 + i32::from(c.month()) - 1 + months;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let first = civil::Date::new(i16::try_from(y).ok()?, m as i8, 1).ok()?;
    let date = first
        .checked_add((i32::from(c.day()) - 1 + days).days())
        .ok()?;
    Some(date.to_datetime(c.time()))
}

/// robfig's `dayMatches`: day of month and day of week both match if either was `*`, else either.
fn day_matches(dom: u64, dow: u64, c: civil::DateTime) -> bool {
    let dom_match = dom & (1u64 << c.day()) != 0;
    let dow_match = dow & (1u64 << c.weekday().to_sunday_zero_offset()) != 0;
    if dom & STAR_BIT != 0 || dow & STAR_BIT != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus, JobStatus};
    use k8s_openapi::api::core::v1::ObjectReference;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Upstream's `topOfTheHour()` plus a delta in seconds.
    fn top(plus_secs: i64) -> Timestamp {
        plus(ts("2016-05-19T10:00:00Z"), plus_secs).unwrap()
    }

    const M: i64 = 60;
    const H: i64 = 3600;

    fn cj(
        schedule: &str,
        created: Timestamp,
        last: Option<Timestamp>,
        sds: Option<i64>,
    ) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("mycronjob".into()),
                namespace: Some("snazzycats".into()),
                uid: Some("1a2b3c".into()),
                creation_timestamp: Some(Time(created)),
                ..Default::default()
            },
            spec: CronJobSpec {
                schedule: schedule.into(),
                concurrency_policy: Some("Allow".into()),
                starting_deadline_seconds: sds,
                ..Default::default()
            },
            status: Some(CronJobStatus {
                last_schedule_time: last.map(Time),
                ..Default::default()
            }),
        }
    }

    fn most_recent(c: &CronJob, now: Timestamp, sds: bool) -> Result<MostRecent, String> {
        let sched = parse_standard(&c.spec.schedule).unwrap();
        most_recent_schedule_time(c, now, &sched, &TimeZone::UTC, sds)
    }

    type Case = (
        &'static str,
        CronJob,
        bool,
        Timestamp,
        Timestamp,
        Option<Timestamp>,
        Missed,
    );

    // utils_test.go TestMostRecentScheduleTime.
    #[test]
    fn most_recent_schedule_time_as_upstream() {
        let cases: Vec<Case> = vec![
            (
                "now before next schedule",
                cj("0 * * * *", top(0), None, None),
                false,
                top(30),
                top(0),
                None,
                Missed::None,
            ),
            (
                "now just after next schedule",
                cj("0 * * * *", top(0), None, None),
                false,
                top(61 * M),
                top(0),
                Some(top(60 * M)),
                Missed::None,
            ),
            (
                "missed 5 schedules",
                cj("0 * * * *", top(10), None, None),
                false,
                top(301 * M),
                top(10),
                Some(top(300 * M)),
                Missed::Few,
            ),
            (
                "complex schedule",
                cj("30 6-16/4 * * 1-5", top(0), Some(top(30 * M)), None),
                false,
                top(24 * H + 31 * M),
                top(30 * M),
                Some(top(24 * H + 30 * M)),
                Missed::Few,
            ),
            (
                "another complex schedule",
                cj("30 10,11,12 * * 1-5", top(0), Some(top(30 * M)), None),
                false,
                top(30 * H + 30 * M),
                top(30 * M),
                None,
                Missed::Few,
            ),
            (
                "longer diff between executions",
                cj("30 6-16/4 * * 1-5", top(0), Some(top(30 * M)), None),
                false,
                top(96 * H + 31 * M),
                top(30 * M),
                Some(top(96 * H + 30 * M)),
                Missed::Few,
            ),
            (
                "shorter diff between executions",
                cj("30 6-16/4 * * 1-5", top(0), None, None),
                false,
                top(24 * H + 31 * M),
                top(0),
                Some(top(24 * H + 30 * M)),
                Missed::Few,
            ),
            (
                "@every schedule",
                cj("@every 1h", top(-59 * M), Some(top(M)), Some(10)),
                false,
                top(7 * 24 * H),
                top(M),
                Some(top(6 * 24 * H + 23 * H + M)),
                Missed::Many,
            ),
            (
                "earliestTime being CreationTimestamp and LastScheduleTime",
                cj("0 * * * *", top(0), Some(top(0)), None),
                false,
                top(30),
                top(0),
                None,
                Missed::None,
            ),
            (
                "earliestTime being LastScheduleTime",
                cj("*/5 * * * *", top(0), Some(top(30 * M)), None),
                false,
                top(31 * M),
                top(30 * M),
                None,
                Missed::None,
            ),
            (
                "within StartingDeadlineSeconds",
                cj("*/5 * * * *", top(0), Some(top(30 * M)), Some(60)),
                false,
                top(31 * M),
                top(30 * M),
                None,
                Missed::None,
            ),
            (
                "outside StartingDeadlineSeconds",
                cj("*/5 * * * *", top(0), Some(top(30 * M)), Some(60)),
                true,
                top(32 * M),
                top(31 * M),
                None,
                Missed::None,
            ),
        ];
        for (name, c, sds, now, earliest, recent, missed) in cases {
            let got = most_recent(&c, now, sds).unwrap();
            assert_eq!(got.earliest, earliest, "{name}");
            assert_eq!(got.most_recent, recent, "{name}");
            assert_eq!(got.missed, missed, "{name}");
        }
        // "rogue cronjob": February 31st never comes.
        assert_eq!(
            most_recent(&cj("59 23 31 2 *", top(10), None, None), top(H), false).unwrap_err(),
            "time difference between two schedules is less than 1 second"
        );
    }

    // utils_test.go TestNextScheduleTimeDuration.
    #[test]
    fn next_schedule_time_duration_as_upstream() {
        let delta = NEXT_SCHEDULE_DELTA;
        let cases = [
            (
                cj("30 6-16/4 * * 1-5", top(0), Some(top(30 * M)), None),
                top(24 * H + 31 * M),
                3 * H + 59 * M,
            ),
            (
                cj("30 10,11,12 * * 1-5", top(0), Some(top(30 * M)), None),
                top(30 * H + 30 * M),
                66 * H,
            ),
            (
                cj("0 12 * * 4", top(0), Some(top(2 * H)), None),
                top(19 * 24 * H + H + 30 * M),
                48 * H + 30 * M,
            ),
            (cj("0 12 * * 5", top(0), None, None), top(6 * H), 20 * H),
        ];
        for (c, now, want) in cases {
            let sched = parse_standard(&c.spec.schedule).unwrap();
            assert_eq!(
                next_schedule_time_duration(&c, now, &sched, &TimeZone::UTC),
                Duration::from_secs(want as u64) + delta,
                "{}",
                c.spec.schedule
            );
        }
    }

    fn next_utc(spec: &str, from: &str) -> Option<String> {
        next(&parse_standard(spec).unwrap(), &TimeZone::UTC, ts(from)).map(|t| t.to_string())
    }

    // robfig/cron spec_test.go TestNext, a selection.
    #[test]
    fn next_activation_as_robfig() {
        let cases = [
            (
                "*/15 * * * *",
                "2012-07-09T14:45:00Z",
                Some("2012-07-09T15:00:00Z"),
            ),
            (
                "*/15 * * * *",
                "2012-07-09T14:59:59Z",
                Some("2012-07-09T15:00:00Z"),
            ),
            (
                "*/15 * * * *",
                "2012-07-09T23:46:00Z",
                Some("2012-07-10T00:00:00Z"),
            ),
            (
                "0 */2 * * *",
                "2012-07-09T22:30:00Z",
                Some("2012-07-10T00:00:00Z"),
            ),
            (
                "0 0 * * 1-5",
                "2012-07-07T00:00:00Z",
                Some("2012-07-09T00:00:00Z"),
            ),
            (
                "0 0 * Feb Mon/2",
                "2012-12-31T23:59:45Z",
                Some("2013-02-01T00:00:00Z"),
            ),
            (
                "0 0 29 Feb *",
                "2012-03-01T00:00:00Z",
                Some("2016-02-29T00:00:00Z"),
            ),
            // Day of month and day of week, neither `*`: either matches.
            (
                "0 0 1 * 1",
                "2012-07-02T00:00:00Z",
                Some("2012-07-09T00:00:00Z"),
            ),
            (
                "0 0 1 * 1",
                "2012-07-30T00:00:00Z",
                Some("2012-08-01T00:00:00Z"),
            ),
            // `?` counts as `*`: both must match.
            (
                "0 0 1 * ?",
                "2012-07-02T00:00:00Z",
                Some("2012-08-01T00:00:00Z"),
            ),
            (
                "@weekly",
                "2012-07-09T00:00:00Z",
                Some("2012-07-15T00:00:00Z"),
            ),
            (
                "@monthly",
                "2012-07-09T00:00:00Z",
                Some("2012-08-01T00:00:00Z"),
            ),
            (
                "@yearly",
                "2012-07-09T00:00:00Z",
                Some("2013-01-01T00:00:00Z"),
            ),
            (
                "@hourly",
                "2012-07-09T00:00:00.5Z",
                Some("2012-07-09T01:00:00Z"),
            ),
            (
                "@every 90s",
                "2012-07-09T00:00:00.5Z",
                Some("2012-07-09T00:01:30Z"),
            ),
            ("59 23 31 2 *", "2012-07-09T00:00:00Z", None),
        ];
        for (spec, from, want) in cases {
            assert_eq!(next_utc(spec, from).as_deref(), want, "{spec} after {from}");
        }
        // In a zone: 06:00 in New York (EDT, -04:00) is 10:00Z; across the DST change the
        // wall-clock time stays 06:00 (EST, -05:00 → 11:00Z).
        let ny = TimeZone::get("America/New_York").unwrap();
        let s = parse_standard("0 6 * * *").unwrap();
        assert_eq!(next(&s, &ny, top(-H)), Some(top(0)));
        assert_eq!(
            next(&s, &ny, ts("2016-11-06T00:00:00Z")),
            Some(ts("2016-11-06T11:00:00Z"))
        );
    }

    fn decide_utc(c: &CronJob, now: Timestamp) -> Decision {
        decide(c, now, &TimeZone::UTC)
    }

    fn reasons(d: &Decision) -> Vec<&str> {
        d.events.iter().map(|e| e.1).collect()
    }

    fn active(c: &mut CronJob, name: &str) {
        c.status.get_or_insert_with(Default::default).active = Some(vec![ObjectReference {
            name: Some(name.into()),
            namespace: Some("snazzycats".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        }]);
    }

    // cronjob_controllerv2_test.go TestControllerV2SyncCronJob, the cases decided without API
    // calls ("justAfterThePriorHour" = 09:01, "justBeforeTheHour" = 09:59, "justAfterTheHour" =
    // 10:01, schedule on the hour).
    #[test]
    fn sync_decisions_as_upstream() {
        let on_the_hour = "0 * * * ?";
        let delta = NEXT_SCHEDULE_DELTA;
        let secs = |n: i64| Duration::from_secs(n as u64) + delta;
        let base = || cj(on_the_hour, top(-59 * M), None, None);

        // never ran, not time
        let d = decide_utc(&base(), top(-M));
        assert_eq!((d.create, d.requeue), (None, Some(secs(M))));
        // never ran, is time (A/F/R alike)
        for policy in ["Allow", "Forbid", "Replace"] {
            let mut c = base();
            c.spec.concurrency_policy = Some(policy.into());
            let d = decide_utc(&c, top(M));
            assert_eq!(d.create, Some(top(0)), "{policy}");
            assert_eq!(d.after_create, Some(secs(H - M)), "{policy}");
            assert!(d.events.is_empty());
        }
        // never ran, is time, suspended
        let mut c = base();
        c.spec.suspend = Some(true);
        assert_eq!(decide_utc(&c, top(M)), Decision::default());
        // never ran, is time, past deadline
        let mut c = base();
        c.spec.starting_deadline_seconds = Some(10);
        let d = decide_utc(&c, top(M + 11 * M));
        assert_eq!(d.create, None);
        assert_eq!(d.requeue, Some(secs(H - M - 11 * M)));
        // The deadline moves the earliest time past 10:00, so nothing is missed to report.
        assert!(d.events.is_empty());
        // never ran, is time, not past deadline
        c.spec.starting_deadline_seconds = Some(1_000_000);
        assert_eq!(decide_utc(&c, top(M)).create, Some(top(0)));
        // still active, is time: Allow creates, Forbid waits, Replace creates (after deleting)
        for (policy, creates) in [("Allow", true), ("Forbid", false), ("Replace", true)] {
            let mut c = base();
            c.spec.concurrency_policy = Some(policy.into());
            c.status
                .get_or_insert_with(Default::default)
                .last_schedule_time = Some(Time(top(-H)));
            active(&mut c, "mycronjob-24394140");
            let d = decide_utc(&c, top(M));
            assert_eq!(d.create.is_some(), creates, "{policy}");
            if !creates {
                assert_eq!(reasons(&d), ["JobAlreadyActive"]);
                assert_eq!(d.requeue, Some(secs(H - M)));
            }
        }
        // the scheduled time was already processed (lastScheduleTime, or its Job is active)
        let mut c = base();
        c.status
            .get_or_insert_with(Default::default)
            .last_schedule_time = Some(Time(top(0)));
        let d = decide_utc(&c, top(M));
        assert_eq!((d.create, d.requeue), (None, Some(secs(H - M))));
        let mut c = base();
        let name = job_name(&c, top(0));
        active(&mut c, &name);
        assert_eq!(decide_utc(&c, top(M)).create, None);
        // many missed: a week of minutes since creation
        let c = cj("* * * * *", top(-7 * 24 * H), None, None);
        let d = decide_utc(&c, top(30));
        assert_eq!(reasons(&d), ["TooManyMissedTimes"]);
        assert_eq!(
            d.events[0].2,
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
        );
        assert_eq!(d.create, Some(top(0)));
        // unparseable schedule, unknown time zone
        let c = cj("obvious error schedule", top(0), None, None);
        assert_eq!(
            decide_utc(&c, top(M)).events,
            vec![(
                "Warning",
                "UnparseableSchedule",
                "unparseable schedule: \"obvious error schedule\" : expected exactly 5 fields, found 3: [obvious error schedule]".to_string()
            )]
        );
        let mut c = base();
        c.spec.time_zone = Some("bad timezone".into());
        assert_eq!(
            decide_utc(&c, top(M)).events,
            vec![(
                "Warning",
                "UnknownTimeZone",
                "invalid timeZone: \"bad timezone\": unknown time zone bad timezone".to_string()
            )]
        );
        // TZ in the schedule still runs, with a warning
        let mut c = cj(&format!("TZ=UTC {on_the_hour}"), top(-59 * M), None, None);
        c.spec.time_zone = Some("America/New_York".into());
        let d = decide_utc(&c, top(M));
        assert_eq!(reasons(&d), ["UnsupportedSchedule"]);
        assert_eq!(d.create, Some(top(0)));
    }

    #[test]
    fn job_from_template_as_upstream() {
        let mut c = cj("0 6 * * *", top(0), None, None);
        c.spec.job_template.metadata = Some(ObjectMeta {
            labels: Some([("a".to_string(), "b".to_string())].into()),
            annotations: Some([("x".to_string(), "y".to_string())].into()),
            ..Default::default()
        });
        let j = job_from_template(&c, top(0));
        assert_eq!(j.metadata.name.as_deref(), Some("mycronjob-24394200"));
        let ann = j.metadata.annotations.clone().unwrap();
        assert_eq!(ann["x"], "y");
        assert_eq!(ann[SCHEDULED_TIMESTAMP], "2016-05-19T10:00:00Z");
        assert_eq!(j.metadata.labels.unwrap()["a"], "b");
        let r = &j.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.uid.as_str(), r.controller),
            ("CronJob", "1a2b3c", Some(true))
        );
        c.spec.time_zone = Some("America/New_York".into());
        let ann = job_from_template(&c, top(0)).metadata.annotations.unwrap();
        assert_eq!(ann[SCHEDULED_TIMESTAMP], "2016-05-19T06:00:00-04:00");
    }

    // utils_test.go TestByJobStartTime.
    #[test]
    fn history_pruned_oldest_first() {
        let job = |name: &str, start: Option<i64>| {
            Arc::new(Job {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                status: Some(JobStatus {
                    start_time: start.map(|s| Time(top(s))),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let jobs = [
            job("d", None),
            job("c", Some(20)),
            job("b", Some(10)),
            job("a", Some(10)),
        ];
        let names = |keep| {
            oldest_beyond(jobs.iter().collect(), keep)
                .iter()
                .map(|j| j.name_any())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(1), ["a", "b", "c"]);
        assert_eq!(names(3), ["a"]);
        assert!(names(4).is_empty());
    }
}
