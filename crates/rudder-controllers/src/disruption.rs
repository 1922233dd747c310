//! The disruption controller (upstream's `pkg/controller/disruption`): keeps each
//! PodDisruptionBudget's status true — `currentHealthy` (ready pods not being deleted nor
//! promised to an eviction), `desiredHealthy` and `expectedPods` from `minAvailable` /
//! `maxUnavailable` (a percentage, or `maxUnavailable` at all, needs the scale of the pods'
//! controllers: Deployment, ReplicaSet, StatefulSet, ReplicationController from the caches, any
//! other kind through its scale subresource), `disruptionsAllowed`, the `disruptedPods` the
//! eviction subresource recorded (dropped once the pod is deleted, or after two minutes), and
//! the `DisruptionAllowed` condition. It also resets a pod's `DisruptionTarget` condition that
//! went stale (set, but the pod was not deleted within two minutes).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::ResourceExt;

use crate::controller::{
    is_conflict, is_not_found, run_workers, Next, ReconcileError, ReconcileResult, Reconciler,
};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::podutil::{controller_ref, is_ready, phase, selector_matches};
use crate::workqueue::WorkQueue;

/// Upstream's `DeletionTimeout`: how long an eviction's entry in `disruptedPods` keeps the pod
/// out of `currentHealthy` while the controller waits to see it deleted.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// Upstream's `stalePodDisruptionTimeout`.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);

pub const CONDITION: &str = "DisruptionAllowed";

pub struct DisruptionController {
    client: kube::Client,
    pdbs: Arc<Informer<PodDisruptionBudget>>,
    pods: Arc<Informer<Pod>>,
    rcs: Arc<Informer<ReplicationController>>,
    rss: Arc<Informer<ReplicaSet>>,
    deployments: Arc<Informer<Deployment>>,
    statefulsets: Arc<Informer<StatefulSet>>,
    queue: Arc<WorkQueue>,
    stale: Arc<WorkQueue>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(DisruptionController {
        client: cx.client.clone(),
        pdbs: cx.informers.get(),
        pods: cx.informers.get(),
        rcs: cx.informers.get(),
        rss: cx.informers.get(),
        deployments: cx.informers.get(),
        statefulsets: cx.informers.get(),
        queue: WorkQueue::new("disruption", cx.metrics.clone()),
        stale: WorkQueue::new("stale_pod_disruption", cx.metrics.clone()),
        // Upstream's recorder reports as `controllermanager`.
        recorder: Recorder::new(cx.client.clone(), "controllermanager", &cx.host),
    });
    c.register_handlers();
    let this = c.clone();
    tasks.spawn(async move {
        this.pdbs.wait_synced().await;
        this.pods.wait_synced().await;
        this.rcs.wait_synced().await;
        this.rss.wait_synced().await;
        this.deployments.wait_synced().await;
        this.statefulsets.wait_synced().await;
        let stale = Arc::new(StaleDisruption(this.clone()));
        tokio::join!(
            run_workers(this.queue.clone(), this.clone(), 1),
            run_workers(this.stale.clone(), stale, 1)
        );
    });
}

impl DisruptionController {
    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.pdbs.add_handler(move |ch| {
            let (Change::Added(p) | Change::Updated { new: p, .. } | Change::Deleted(p)) = ch;
            this.queue.add(key_of(p.as_ref()));
        });
        let this = self.clone();
        self.pods.add_handler(move |ch| {
            let (pod, live) = match ch {
                Change::Added(p) | Change::Updated { new: p, .. } => (p, true),
                Change::Deleted(p) => (p, false),
            };
            this.enqueue_pdbs_for(pod);
            if live {
                if let Some(after) = stale_disruption(pod, jiff::Timestamp::now()) {
                    let q = this.stale.clone();
                    q.add_after(key_of(pod.as_ref()), after);
                }
            }
        });
    }

    /// Upstream's `getPdbForPod`: the budgets selecting the pod (a pod in several gets a warning).
    fn enqueue_pdbs_for(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let pdbs: Vec<_> = self
            .pdbs
            .list(ns)
            .into_iter()
            .filter(|p| pdb_selects(p, pod))
            .collect();
        if pdbs.len() > 1 {
            self.recorder.event(
                pod,
                "Warning",
                "MultiplePodDisruptionBudgets",
                format!(
                    "Pod {:?}/{:?} matches multiple PodDisruptionBudgets.  Chose {:?} arbitrarily.",
                    ns,
                    pod.name_any(),
                    pdbs[0].name_any()
                ),
            );
        }
        for p in pdbs {
            self.queue.add(key_of(p.as_ref()));
        }
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(pdb) = self.pdbs.get(ns, name) else {
            return Ok(Next::Done);
        };
        match self.try_sync(&pdb).await {
            Ok(next) => Ok(next),
            // A conflict is retried without failing safe.
            Err(ReconcileError::Api(e)) if is_conflict(&e) => Err(e.into()),
            Err(e) => {
                tracing::info!(pdb = %key, error = %e, "failed to sync PDB");
                self.fail_safe(&pdb, &e.to_string()).await?;
                Ok(Next::Done)
            }
        }
    }

    async fn try_sync(&self, pdb: &PodDisruptionBudget) -> ReconcileResult {
        let ns = pdb.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list(&ns)
            .into_iter()
            .filter(|p| pdb_selects(pdb, p))
            .collect();
        if pods.is_empty() {
            self.recorder.event(
                pdb,
                "Normal",
                "NoPods",
                "No matching pods found".to_string(),
            );
        }
        let spec = pdb.spec.clone().unwrap_or_default();
        let scale = if needs_scale(&spec) {
            match self.expected_scale(&pods).await {
                Ok((scale, unmanaged)) => {
                    if !unmanaged.is_empty() {
                        self.recorder.event(pdb, "Warning", "UnmanagedPods", format!(
                            "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                            go_selector(spec.selector.as_ref())
                        ));
                    }
                    Some(scale)
                }
                Err(e) => return Err(self.count_failed(pdb, e)),
            }
        } else {
            None
        };
        let (expected, desired) = match pod_counts(&spec, pods.len(), scale) {
            Ok(v) => v,
            Err(e) => return Err(self.count_failed(pdb, e)),
        };
        let now = jiff::Timestamp::now();
        let (disrupted, recheck, not_deleted) = build_disrupted_pods(pdb, &pods, now);
        for pod in not_deleted {
            // Upstream's message names the namespace twice.
            self.recorder.event(
                pod.as_ref(),
                "Warning",
                "NotDeleted",
                format!("Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't"),
            );
        }
        let healthy = count_healthy(&pods, &disrupted, now);
        if let Some(status) = new_status(pdb, healthy, desired, expected, disrupted, now) {
            self.write_status(pdb, status).await?;
        }
        Ok(match recheck {
            Some(d) => Next::After(d),
            None => Next::Done,
        })
    }

    fn count_failed(&self, pdb: &PodDisruptionBudget, e: String) -> ReconcileError {
        self.recorder.event(
            pdb,
            "Warning",
            "CalculateExpectedPodCountFailed",
            format!("Failed to calculate the number of expected pods: {e}"),
        );
        ReconcileError::Other(e)
    }

    /// Upstream's `failSafe`: no disruption allowed, and why, when the status cannot be computed.
    async fn fail_safe(&self, pdb: &PodDisruptionBudget, msg: &str) -> Result<(), ReconcileError> {
        let mut status = pdb.status.clone().unwrap_or_default();
        status.disruptions_allowed = Some(0);
        let generation = status.observed_generation;
        set_condition(
            status.conditions.get_or_insert_with(Vec::new),
            "False",
            "SyncFailed",
            msg,
            generation,
            jiff::Timestamp::now(),
        );
        if pdb.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.write_status(pdb, status).await
    }

    async fn write_status(
        &self,
        pdb: &PodDisruptionBudget,
        status: PodDisruptionBudgetStatus,
    ) -> Result<(), ReconcileError> {
        let api: Api<PodDisruptionBudget> =
            Api::namespaced(self.client.clone(), &pdb.namespace().unwrap_or_default());
        let updated = PodDisruptionBudget {
            status: Some(status),
            ..pdb.clone()
        };
        match api
            .replace_status(&pdb.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream's `getExpectedScale`: the sum of the scales of the pods' controllers, and the
    /// pods no controller owns.
    async fn expected_scale(&self, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>), String> {
        let mut scales: HashMap<String, i32> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(r) = controller_ref(&pod.metadata) else {
                unmanaged.push(pod.name_any());
                continue;
            };
            if scales.contains_key(&r.uid) {
                continue;
            }
            let ns = pod.metadata.namespace.as_deref().unwrap_or("");
            let found = match self.cached_scale(r, ns)? {
                Some(found) => Some(found),
                None => self.scale_subresource(r, ns).await?,
            };
            match found {
                Some((uid, scale)) => {
                    scales.insert(uid, scale);
                }
                None => return Err(format!("found no controllers for pod {:?}", pod.name_any())),
            }
        }
        Ok((scales.values().sum(), unmanaged))
    }

    /// Upstream's finders over the listers, in its order: ReplicationController, the Deployment
    /// of a ReplicaSet, a ReplicaSet no Deployment controls, StatefulSet.
    fn cached_scale(&self, r: &OwnerReference, ns: &str) -> Result<Option<(String, i32)>, String> {
        let group = api_group(&r.api_version)?;
        let is = |kind: &str, groups: &[&str]| r.kind == kind && groups.contains(&group);
        let same = |uid: Option<&String>| uid.map(String::as_str) == Some(r.uid.as_str());
        if is("ReplicationController", &[""]) {
            if let Some(rc) = self
                .rcs
                .get(ns, &r.name)
                .filter(|o| same(o.metadata.uid.as_ref()))
            {
                let replicas = rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                return Ok(Some((r.uid.clone(), replicas)));
            }
        }
        if is("ReplicaSet", &["apps", "extensions"]) {
            if let Some(rs) = self
                .rss
                .get(ns, &r.name)
                .filter(|o| same(o.metadata.uid.as_ref()))
            {
                match controller_ref(&rs.metadata) {
                    Some(d) if d.kind == "Deployment" => {
                        if ["apps", "extensions"].contains(&api_group(&d.api_version)?) {
                            if let Some(dep) = self
                                .deployments
                                .get(ns, &d.name)
                                .filter(|o| o.metadata.uid.as_deref() == Some(d.uid.as_str()))
                            {
                                let replicas = dep.spec.replicas.unwrap_or(1);
                                return Ok(Some((d.uid.clone(), replicas)));
                            }
                        }
                    }
                    _ => return Ok(Some((r.uid.clone(), rs.spec.replicas.unwrap_or(1)))),
                }
            }
        }
        if is("StatefulSet", &["apps"]) {
            if let Some(ss) = self
                .statefulsets
                .get(ns, &r.name)
                .filter(|o| same(o.metadata.uid.as_ref()))
            {
                let replicas = ss.spec.replicas.unwrap_or(1);
                return Ok(Some((r.uid.clone(), replicas)));
            }
        }
        Ok(None)
    }

    /// Upstream's `getScaleController`: any other kind through its scale subresource, found
    /// through discovery as the REST mapper does.
    async fn scale_subresource(
        &self,
        r: &OwnerReference,
        ns: &str,
    ) -> Result<Option<(String, i32)>, String> {
        let group = api_group(&r.api_version)?;
        let list = match self.client.list_api_group_resources(&r.api_version).await {
            Ok(l) => l,
            Err(e) if is_not_found(&e) => {
                return Err(format!(
                    "no matches for kind {:?} in version {:?}",
                    r.kind, r.api_version
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        let Some(res) = list
            .resources
            .iter()
            .find(|x| x.kind == r.kind && !x.name.contains('/'))
        else {
            return Err(format!(
                "no matches for kind {:?} in version {:?}",
                r.kind, r.api_version
            ));
        };
        let gr = if group.is_empty() {
            res.name.clone()
        } else {
            format!("{}.{group}", res.name)
        };
        let base = if group.is_empty() {
            "/api".to_string()
        } else {
            "/apis".to_string()
        };
        let path = format!(
            "{base}/{}/namespaces/{ns}/{}/{}/scale",
            r.api_version, res.name, r.name
        );
        let req = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        match self
            .client
            .request::<k8s_openapi::api::autoscaling::v1::Scale>(req)
            .await
        {
            Ok(scale) => {
                if scale.metadata.uid.as_deref() != Some(r.uid.as_str()) {
                    return Ok(None);
                }
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                Ok(Some((r.uid.clone(), replicas)))
            }
            Err(e) if is_not_found(&e) => {
                let scale_name = format!("{}/scale", res.name);
                if list.resources.iter().any(|x| x.name == scale_name) {
                    Ok(None)
                } else {
                    Err(format!("{gr} does not implement the scale subresource"))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Upstream's `syncStalePodDisruption`: a `DisruptionTarget=True` condition on a pod that
    /// was not deleted within the timeout is set to False.
    async fn sync_stale(&self, key: &str) -> ReconcileResult {
        let (ns, name) = split_key(key);
        let Some(pod) = self.pods.get(ns, name) else {
            return Ok(Next::Done);
        };
        match stale_disruption(&pod, jiff::Timestamp::now()) {
            None => return Ok(Next::Done),
            Some(after) if !after.is_zero() => return Ok(Next::After(after)),
            Some(_) => {}
        }
        let mut updated = (*pod).clone();
        if let Some(c) = updated
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "DisruptionTarget"))
        {
            // Upstream's UpdatePodCondition with only type and status: the rest is cleared.
            *c = k8s_openapi::api::core::v1::PodCondition {
                type_: "DisruptionTarget".into(),
                status: "False".into(),
                last_transition_time: Some(Time(jiff::Timestamp::now())),
                ..Default::default()
            };
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        match api
            .replace_status(name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(Next::Done),
            Err(e) if is_not_found(&e) => Ok(Next::Done),
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for DisruptionController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

struct StaleDisruption(Arc<DisruptionController>);

impl Reconciler for StaleDisruption {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move { self.0.sync_stale(&key).await })
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``), as `ParseGroupVersion`.
fn api_group(api_version: &str) -> Result<&str, String> {
    match api_version.split('/').collect::<Vec<_>>()[..] {
        [_] => Ok(""),
        [g, _] => Ok(g),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// `metav1.LabelSelectorAsSelector` semantics: a missing selector selects nothing, an empty one
/// every pod of the namespace.
pub fn pdb_selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    pdb.metadata.namespace == pod.metadata.namespace
        && pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref()))
}

/// A LabelSelector as Go's `%v` prints the pointer in upstream's UnmanagedPods message.
fn go_selector(
    sel: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> String {
    match sel {
        None => "nil".into(),
        Some(s) => {
            let labels: Vec<String> = s
                .match_labels
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}: {v},"))
                .collect();
            let exprs: Vec<String> = s
                .match_expressions
                .iter()
                .flatten()
                .map(|e| {
                    format!(
                        "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}}",
                        e.key,
                        e.operator,
                        e.values.as_deref().unwrap_or(&[]).join(" ")
                    )
                })
                .collect();
            format!(
                "&LabelSelector{{MatchLabels:map[string]string{{{}}},MatchExpressions:[]LabelSelectorRequirement{{{}}},}}",
                labels.join(""),
                exprs.join(",")
            )
        }
    }
}

/// Whether the counts need the controllers' scale: `maxUnavailable`, or `minAvailable` not an
/// integer.
pub fn needs_scale(spec: &k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `intstr.GetScaledValueFromIntOrPercent` (rounding up, as the controller asks).
pub fn scaled_value(v: &IntOrString, total: i32) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(n) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .into(),
                );
            };
            let n: i64 = n.parse().map_err(|e: std::num::ParseIntError| {
                format!("invalid value for IntOrString: invalid value {s:?}: strconv.Atoi: parsing {n:?}: {}", go_atoi_error(&e))
            })?;
            Ok((n as f64 * f64::from(total) / 100.0).ceil() as i32)
        }
    }
}

fn go_atoi_error(e: &std::num::ParseIntError) -> &'static str {
    match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            "value out of range"
        }
        _ => "invalid syntax",
    }
}

/// Upstream's `getExpectedPodCount`: (expectedPods, desiredHealthy). `scale` is the sum of the
/// controllers' scales, present when `needs_scale`.
pub fn pod_counts(
    spec: &k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec,
    pods: usize,
    scale: Option<i32>,
) -> Result<(i32, i32), String> {
    if let Some(max) = &spec.max_unavailable {
        let expected = scale.unwrap_or(0);
        let max = scaled_value(max, expected)?;
        return Ok((expected, (expected - max).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(min)) => Ok((pods as i32, *min)),
        Some(min) => {
            let expected = scale.unwrap_or(0);
            Ok((expected, scaled_value(min, expected)?))
        }
        None => Ok((0, 0)),
    }
}

/// Upstream's `buildDisruptedPodMap`: the entries still pending (pod seen, not being deleted,
/// within the timeout), when to look again, and the pods whose entry expired undeleted.
pub fn build_disrupted_pods(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    now: jiff::Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>, Vec<Arc<Pod>>) {
    let mut result = BTreeMap::new();
    let mut recheck: Option<jiff::Timestamp> = None;
    let mut expired = Vec::new();
    let Some(disrupted) = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref()) else {
        return (result, None, expired);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(t) = disrupted.get(&pod.name_any()) else {
            continue;
        };
        let expected = t.0 + jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
        if expected < now {
            expired.push(pod.clone());
        } else {
            if recheck.is_none_or(|r| expected < r) {
                recheck = Some(expected);
            }
            result.insert(pod.name_any(), t.clone());
        }
    }
    let after = recheck.map(|r| Duration::try_from(r.duration_since(now)).unwrap_or_default());
    (result, after, expired)
}

/// Upstream's `countHealthyPods`: ready, not being deleted, not promised to an eviction.
pub fn count_healthy(
    pods: &[Arc<Pod>],
    disrupted: &BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> i32 {
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or_default();
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            disrupted
                .get(&p.name_any())
                .is_none_or(|t| t.0 + timeout <= now)
        })
        .filter(|p| is_ready(p))
        .count() as i32
}

/// `apimeta.SetStatusCondition`: the transition time moves only when the status changes.
pub fn set_condition(
    conds: &mut Vec<Condition>,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    match conds.iter_mut().find(|c| c.type_ == CONDITION) {
        Some(c) => {
            if c.status != status {
                c.status = status.into();
                c.last_transition_time = Time(now);
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => conds.push(Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: Time(now),
        }),
    }
}

/// `pdbhelper.UpdateDisruptionAllowedCondition`.
pub fn update_disruption_allowed(status: &mut PodDisruptionBudgetStatus, now: jiff::Timestamp) {
    let (s, reason) = if status.disruptions_allowed.unwrap_or(0) > 0 {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    let generation = status.observed_generation;
    set_condition(
        status.conditions.get_or_insert_with(Vec::new),
        s,
        reason,
        "",
        generation,
        now,
    );
}

/// `pdbhelper.ConditionsAreUpToDate`.
fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(st) = pdb.status.as_ref() else {
        return false;
    };
    let Some(c) = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION)
    else {
        return false;
    };
    if st.observed_generation != pdb.metadata.generation {
        return false;
    }
    if st.disruptions_allowed.unwrap_or(0) > 0 {
        c.status == "True" && c.reason == "SufficientPods"
    } else {
        c.status == "False" && c.reason == "InsufficientPods"
    }
}

/// Upstream's `updatePdbStatus`: the new status, or None when the current one is up to date.
pub fn new_status(
    pdb: &PodDisruptionBudget,
    current_healthy: i32,
    desired_healthy: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: jiff::Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    // expectedPods must be positive so that a budget matching no pods yet is safe when its
    // first pods appear before this controller has looked again.
    let mut allowed = current_healthy - desired_healthy;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let old = pdb.status.clone().unwrap_or_default();
    let old_disrupted = old.disrupted_pods.clone().unwrap_or_default();
    if old.current_healthy == Some(current_healthy)
        && old.desired_healthy == Some(desired_healthy)
        && old.expected_pods == Some(expected)
        && old.disruptions_allowed == Some(allowed)
        && old_disrupted == disrupted
        && old.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: Some(current_healthy),
        desired_healthy: Some(desired_healthy),
        expected_pods: Some(expected),
        disruptions_allowed: Some(allowed),
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: old.conditions,
    };
    update_disruption_allowed(&mut status, now);
    Some(status)
}

/// Upstream's `nonTerminatingPodHasStaleDisruptionCondition`: how long until a pod's
/// `DisruptionTarget=True` condition (set by someone other than the kubelet) becomes stale.
pub fn stale_disruption(pod: &Pod, now: jiff::Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")?;
    let terminal = matches!(phase(pod), "Succeeded" | "Failed");
    if c.status != "True" || c.reason.as_deref() == Some("TerminationByKubelet") || terminal {
        return None;
    }
    let since = c.last_transition_time.as_ref().map(|t| t.0).unwrap_or(now);
    let timeout = jiff::SignedDuration::try_from(STALE_POD_DISRUPTION_TIMEOUT).unwrap_or_default();
    let left = (since + timeout).duration_since(now);
    Some(Duration::try_from(left).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value, status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(
            json!({"metadata": {"name": "pdb", "namespace": "d", "generation": 1},
            "spec": spec, "status": status}),
        )
        .unwrap()
    }

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": "web"}},
                "spec": {"containers": []},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}}))
            .unwrap(),
        )
    }

    fn spec(v: serde_json::Value) -> k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec {
        serde_json::from_value(v).unwrap()
    }

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    // upstream TestNoSelector / TestUnavailable-style cases over the pure computation.
    #[test]
    fn min_available_int_counts_pods() {
        let s = spec(json!({"minAvailable": 3, "selector": {}}));
        assert!(!needs_scale(&s));
        assert_eq!(pod_counts(&s, 4, None), Ok((4, 3)));
        assert_eq!(pod_counts(&s, 0, None), Ok((0, 3)));
    }

    #[test]
    fn percentages_and_max_unavailable_use_the_scale() {
        // TestReplicaSet: minAvailable 20% of 10 → 2.
        let s = spec(json!({"minAvailable": "20%"}));
        assert!(needs_scale(&s));
        assert_eq!(pod_counts(&s, 3, Some(10)), Ok((10, 2)));
        // Rounded up: 28% of 7 = 1.96 → 2.
        assert_eq!(pod_counts(&s, 3, Some(7)), Ok((7, 2)));
        // TestMaxUnavailable: maxUnavailable 2 of 5 → desired 3.
        let s = spec(json!({"maxUnavailable": 2}));
        assert!(needs_scale(&s));
        assert_eq!(pod_counts(&s, 5, Some(5)), Ok((5, 3)));
        // maxUnavailable 60% of 3 → 2 (rounded up) → desired 1; never below 0.
        let s = spec(json!({"maxUnavailable": "60%"}));
        assert_eq!(pod_counts(&s, 3, Some(3)), Ok((3, 1)));
        let s = spec(json!({"maxUnavailable": 10}));
        assert_eq!(pod_counts(&s, 3, Some(3)), Ok((3, 0)));
        let s = spec(json!({"minAvailable": "two"}));
        assert_eq!(
            pod_counts(&s, 3, Some(3)).unwrap_err(),
            "invalid value for IntOrString: invalid type: string is not a percentage"
        );
    }

    #[test]
    fn status_and_condition_as_upstream() {
        let p = pdb(json!({"minAvailable": 2, "selector": {}}), json!({}));
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let healthy = count_healthy(&pods, &BTreeMap::new(), now());
        assert_eq!(healthy, 2);
        let st = new_status(&p, healthy, 2, 3, BTreeMap::new(), now()).unwrap();
        assert_eq!(
            (
                st.current_healthy,
                st.desired_healthy,
                st.expected_pods,
                st.disruptions_allowed
            ),
            (Some(2), Some(2), Some(3), Some(0))
        );
        assert_eq!(st.observed_generation, Some(1));
        let c = &st.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str()
            ),
            ("DisruptionAllowed", "False", "InsufficientPods", "")
        );
        // Nothing changed → no write.
        let written = PodDisruptionBudget {
            status: Some(st.clone()),
            ..p.clone()
        };
        assert!(new_status(&written, 2, 2, 3, BTreeMap::new(), now()).is_none());
        // A third ready pod allows one disruption; the condition flips with a new time.
        let later: jiff::Timestamp = "2026-01-01T00:11:00Z".parse().unwrap();
        let st2 = new_status(&written, 3, 2, 3, BTreeMap::new(), later).unwrap();
        assert_eq!(st2.disruptions_allowed, Some(1));
        let c = &st2.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "SufficientPods")
        );
        assert_eq!(c.last_transition_time.0, later);
        // No expected pods: never a disruption (upstream's safety for brand-new budgets).
        assert_eq!(
            new_status(&p, 3, 0, 0, BTreeMap::new(), now())
                .unwrap()
                .disruptions_allowed,
            Some(0)
        );
    }

    #[test]
    fn disrupted_pods_are_kept_until_deleted_or_timed_out() {
        let p = pdb(
            json!({"minAvailable": 1, "selector": {}}),
            json!({"disruptedPods": {
                "a": "2026-01-01T00:09:00Z",      // 1 min ago: pending
                "b": "2026-01-01T00:05:00Z",      // 5 min ago: expired
                "gone": "2026-01-01T00:09:30Z"}}), // pod no longer exists
        );
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let (kept, recheck, expired) = build_disrupted_pods(&p, &pods, now());
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(recheck, Some(Duration::from_secs(60)));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].name_any(), "b");
        // The pod promised to an eviction is not healthy.
        assert_eq!(count_healthy(&pods, &kept, now()), 2);
    }

    #[test]
    fn selector_semantics() {
        let pod = pod("a", true);
        let none = pdb(json!({"minAvailable": 1}), json!({}));
        assert!(!pdb_selects(&none, &pod));
        let empty = pdb(json!({"minAvailable": 1, "selector": {}}), json!({}));
        assert!(pdb_selects(&empty, &pod));
        let other = pdb(
            json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}),
            json!({}),
        );
        assert!(!pdb_selects(&other, &pod));
    }

    #[test]
    fn stale_disruption_target() {
        let mut p = (*pod("a", true)).clone();
        p.status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(json!({"type": "DisruptionTarget", "status": "True",
                "reason": "EvictionByEvictionAPI", "lastTransitionTime": "2026-01-01T00:09:00Z"}))
                .unwrap(),
            );
        assert_eq!(stale_disruption(&p, now()), Some(Duration::from_secs(60)));
        let late: jiff::Timestamp = "2026-01-01T00:30:00Z".parse().unwrap();
        assert_eq!(stale_disruption(&p, late), Some(Duration::ZERO));
        p.metadata.deletion_timestamp = Some(Time(now()));
        assert_eq!(stale_disruption(&p, now()), None);
    }

    #[test]
    fn api_groups() {
        assert_eq!(api_group("v1"), Ok(""));
        assert_eq!(api_group("apps/v1"), Ok("apps"));
        assert!(api_group("a/b/c").is_err());
    }
}
