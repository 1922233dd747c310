//! The horizontal-pod-autoscaler controller (upstream's `pkg/controller/podautoscaler`), for a
//! cluster without a metrics API (Rudder serves none): every 15 s each autoscaling/v2 HPA reads
//! its target's scale subresource (`AbleToScale`), brings a target below `minReplicas` or above
//! `maxReplicas` back into range (`SuccessfulRescale`), and otherwise reports, as upstream does
//! when the metrics cannot be fetched, `ScalingActive=False` with the metric's failure reason and
//! the `FailedGetResourceMetric` / `FailedComputeMetricsReplicas` warnings. When a metrics API
//! does answer, the replica computation from its values is not implemented: the HPA says so in
//! `ScalingActive` rather than scaling on numbers it did not compute.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::ResourceExt;

use crate::controller::{is_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::events::Recorder;
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

/// Upstream's `--horizontal-pod-autoscaler-sync-period` default.
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

pub struct HorizontalController {
    client: kube::Client,
    hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    queue: Arc<WorkQueue>,
    /// Keys waiting out their interval: upstream's fixed-interval rate limiter over a delaying
    /// queue keeps one pending add per HPA.
    waiting: Arc<Mutex<HashSet<String>>>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(HorizontalController {
        client: cx.client.clone(),
        hpas: cx.informers.get(),
        queue: WorkQueue::new("horizontalpodautoscaler", cx.metrics.clone()),
        waiting: Arc::default(),
        recorder: Recorder::new(cx.client.clone(), "horizontal-pod-autoscaler", &cx.host),
    });
    let this = c.clone();
    c.hpas.add_handler(move |ch| match ch {
        Change::Added(h) | Change::Updated { new: h, .. } => this.enqueue(key_of(h.as_ref())),
        Change::Deleted(_) => {}
    });
    let hpas = c.hpas.clone();
    let queue = c.queue.clone();
    tasks.spawn(async move {
        hpas.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

impl HorizontalController {
    /// Upstream's `enqueueHPA`: `AddRateLimited` with the fixed sync-period interval, one
    /// pending add per key.
    fn enqueue(&self, key: String) {
        if !self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let (queue, waiting) = (self.queue.clone(), self.waiting.clone());
        tokio::spawn(async move {
            tokio::time::sleep(SYNC_PERIOD).await;
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            queue.add(key);
        });
    }

    async fn sync(self: Arc<Self>, key: String) -> ReconcileResult {
        let (ns, name) = split_key(&key);
        let Some(hpa) = self.hpas.get(ns, name) else {
            return Ok(Next::Done);
        };
        if let Err(e) = self.reconcile_autoscaler(&hpa).await {
            tracing::info!(hpa = %key, error = %e, "horizontal pod autoscaler sync failed");
        }
        // Every HPA is looked at again a sync period later, success or not.
        self.enqueue(key);
        Ok(Next::Done)
    }

    /// Upstream's `reconcileAutoscaler`; the error is only logged (the next period retries).
    async fn reconcile_autoscaler(&self, shared: &HorizontalPodAutoscaler) -> Result<(), String> {
        let mut hpa = shared.clone();
        let original = hpa.status.clone().unwrap_or_default();
        let ns = hpa.namespace().unwrap_or_default();
        let target = hpa.spec.scale_target_ref.clone();
        let reference = format!("{}/{ns}/{}", target.kind, target.name);
        let now = jiff::Timestamp::now();

        let scale = match self
            .get_scale(
                &ns,
                target.api_version.as_deref().unwrap_or(""),
                &target.kind,
                &target.name,
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                self.recorder
                    .event(&hpa, "Warning", "FailedGetScale", e.clone());
                set_condition(
                    &mut hpa,
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                    now,
                );
                self.update_status_if_needed(&original, &hpa).await;
                return Err(format!(
                    "failed to query scale subresource for {reference}: {e}"
                ));
            }
        };
        let (scale, path) = scale;
        set_condition(
            &mut hpa,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
            now,
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let min = hpa.spec.min_replicas.unwrap_or(1);
        let max = hpa.spec.max_replicas;

        let (desired, reason) = if current == 0 && min != 0 {
            set_condition(
                &mut hpa,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
                now,
            );
            set_status(&mut hpa, current, 0, None, false, now);
            self.update_status_if_needed(&original, &hpa).await;
            return Ok(());
        } else if current > max {
            (max, "Current number of replicas above Spec.MaxReplicas")
        } else if current < min {
            (min, "Current number of replicas below Spec.MinReplicas")
        } else {
            let selector = scale
                .status
                .as_ref()
                .and_then(|s| s.selector.clone())
                .unwrap_or_default();
            let metrics = hpa.spec.metrics.clone().unwrap_or_default();
            let (err, statuses) = self
                .metrics_failure(&mut hpa, &ns, &selector, &metrics, now)
                .await;
            let desired_before = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
            set_status(&mut hpa, current, desired_before, statuses, false, now);
            self.update_status_if_needed(&original, &hpa).await;
            self.recorder
                .event(&hpa, "Warning", "FailedComputeMetricsReplicas", err.clone());
            return Err(format!(
                "failed to compute desired number of replicas based on listed metrics for {reference}: {err}"
            ));
        };

        let mut scaled = scale.clone();
        scaled.spec.get_or_insert_with(Default::default).replicas = Some(desired);
        if let Err(e) = self.update_scale(&path, &scaled).await {
            self.recorder.event(
                &hpa,
                "Warning",
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {e}"),
            );
            set_condition(
                &mut hpa,
                "AbleToScale",
                "False",
                "FailedUpdateScale",
                format!("the HPA controller was unable to update the target scale: {e}"),
                now,
            );
            let desired_before = hpa.status.as_ref().map_or(0, |s| s.desired_replicas);
            set_status(&mut hpa, current, desired_before, None, false, now);
            self.update_status_if_needed(&original, &hpa).await;
            return Err(format!("failed to rescale {reference}: {e}"));
        }
        set_condition(
            &mut hpa,
            "AbleToScale",
            "True",
            "SucceededRescale",
            format!("the HPA controller was able to update the target scale to {desired}"),
            now,
        );
        self.recorder.event(
            &hpa,
            "Normal",
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        );
        set_status(&mut hpa, current, desired, None, true, now);
        self.update_status_if_needed(&original, &hpa).await;
        Ok(())
    }

    /// Upstream's `computeReplicasForMetrics` when no metric can be read: the ScalingActive
    /// condition of the first failing metric, its event, the overall error, and one empty
    /// status per metric (upstream's `make([]MetricStatus, len(specs))`).
    async fn metrics_failure(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        ns: &str,
        selector: &str,
        metrics: &[MetricSpec],
        now: jiff::Timestamp,
    ) -> (String, Option<Vec<MetricStatus>>) {
        if selector.is_empty() {
            self.recorder.event(
                &*hpa,
                "Warning",
                "SelectorRequired",
                "selector is required".into(),
            );
            set_condition(
                hpa,
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
                now,
            );
            return ("selector is required".into(), None);
        }
        let mut first: Option<(String, String, String)> = None;
        for m in metrics {
            let api = self.metric_api_text(ns, selector, m).await;
            let (reason, detail, wrapped) = metric_failure(ns, m, &api);
            // Upstream's getUnableComputeReplicaCountCondition records an event per failure.
            self.recorder
                .event(&*hpa, "Warning", &reason, detail.clone());
            first.get_or_insert((reason, detail, wrapped));
        }
        let statuses = vec![MetricStatus::default(); metrics.len()];
        let Some((reason, detail, wrapped)) = first else {
            // No metrics at all (the API server defaults one, so only a hand-made status gets here).
            return (
                "invalid metrics (0 invalid out of 0), first error is: <nil>".into(),
                Some(statuses),
            );
        };
        let message = format!("the HPA was unable to compute the replica count: {detail}");
        set_condition(hpa, "ScalingActive", "False", &reason, message, now);
        (
            format!(
                "invalid metrics ({n} invalid out of {n}), first error is: {wrapped}",
                n = metrics.len()
            ),
            Some(statuses),
        )
    }

    /// What the metrics API a metric needs answers (its error text, as client-go words it).
    async fn metric_api_text(&self, ns: &str, selector: &str, m: &MetricSpec) -> String {
        match m.type_.as_str() {
            "Resource" | "ContainerResource" => self.resource_metrics_error(ns, selector).await,
            "Pods" | "Object" => {
                self.api_error(
                    "custom.metrics.k8s.io",
                    "no custom metrics API (custom.metrics.k8s.io) registered",
                )
                .await
            }
            "External" => {
                let name = m.external.as_ref().map_or("", |e| e.metric.name.as_str());
                self.api_error(
                    "external.metrics.k8s.io",
                    &format!("the server could not find the requested resource (get {name}.external.metrics.k8s.io)"),
                )
                .await
            }
            _ => String::new(),
        }
    }

    /// What listing pod metrics says: client-go's text for the 404 kube-apiserver answers when
    /// no metrics API is registered, or the API's own error.
    async fn resource_metrics_error(&self, ns: &str, selector: &str) -> String {
        let path = format!(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods?labelSelector={}",
            form_encode(selector)
        );
        let Ok(req) = http::Request::get(path).body(Vec::new()) else {
            return "invalid request".into();
        };
        match self.client.request_text(req).await {
            Err(e) if is_not_found(&e) => {
                "the server could not find the requested resource (get pods.metrics.k8s.io)".into()
            }
            Err(kube::Error::Api(s)) => s.message,
            Err(e) => e.to_string(),
            Ok(_) => NOT_IMPLEMENTED.into(),
        }
    }

    /// Whether an aggregated metrics group is registered: `missing` when it is not.
    async fn api_error(&self, group: &str, missing: &str) -> String {
        let Ok(req) = http::Request::get(format!("/apis/{group}")).body(Vec::new()) else {
            return missing.into();
        };
        match self.client.request_text(req).await {
            Err(e) if is_not_found(&e) => missing.into(),
            Err(e) => e.to_string(),
            Ok(_) => NOT_IMPLEMENTED.into(),
        }
    }

    /// The scale subresource of the target, found through discovery as upstream's REST mapper
    /// does, with its path for the update.
    async fn get_scale(
        &self,
        ns: &str,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<(Scale, String), String> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let no_match = || format!("no matches for kind {kind:?} in group {group:?}");
        if api_version.is_empty() {
            return Err(no_match());
        }
        let list = match self.client.list_api_group_resources(api_version).await {
            Ok(l) => l,
            Err(e) if is_not_found(&e) => return Err(no_match()),
            Err(e) => return Err(api_message(e)),
        };
        let Some(res) = list
            .resources
            .iter()
            .find(|r| r.kind == kind && !r.name.contains('/'))
        else {
            return Err(no_match());
        };
        let base = if group.is_empty() { "/api" } else { "/apis" };
        let path = format!(
            "{base}/{api_version}/namespaces/{ns}/{}/{name}/scale",
            res.name
        );
        let req = http::Request::get(&path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        let scale: Scale = self.client.request(req).await.map_err(api_message)?;
        Ok((scale, path))
    }

    async fn update_scale(&self, path: &str, scale: &Scale) -> Result<(), String> {
        let body = serde_json::to_vec(scale).map_err(|e| e.to_string())?;
        let req = http::Request::put(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .map_err(|e| e.to_string())?;
        self.client
            .request::<Scale>(req)
            .await
            .map_err(api_message)?;
        Ok(())
    }

    /// Upstream's `updateStatusIfNeeded`: a write only when the status changed.
    async fn update_status_if_needed(
        &self,
        original: &HorizontalPodAutoscalerStatus,
        hpa: &HorizontalPodAutoscaler,
    ) {
        if hpa.status.as_ref() == Some(original) {
            return;
        }
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &hpa.namespace().unwrap_or_default());
        match api
            .replace_status(&hpa.name_any(), &PostParams::default(), hpa)
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                let e = api_message(e);
                self.recorder
                    .event(hpa, "Warning", "FailedUpdateStatus", e.clone());
                tracing::info!(hpa = %key_of(hpa), error = %e, "failed to update HPA status");
            }
        }
    }
}

impl Reconciler for HorizontalController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(self.sync(key))
    }
}

const NOT_IMPLEMENTED: &str =
    "the metrics API answered, but computing replicas from metric values is not implemented by this controller";

/// One metric's failure given what its metrics API answered: (reason, the error the event
/// carries, the error as `computeReplicasForMetric` wraps it).
pub fn metric_failure(ns: &str, m: &MetricSpec, api: &str) -> (String, String, String) {
    let resource = |name: &str, target: &k8s_openapi::api::autoscaling::v2::MetricTarget| {
        if target.average_value.is_some() {
            format!("failed to get {name} usage: unable to get metrics for resource {name}: unable to fetch metrics from resource metrics API: {api}")
        } else if target.average_utilization.is_some() {
            format!("failed to get {name} utilization: unable to get metrics for resource {name}: unable to fetch metrics from resource metrics API: {api}")
        } else {
            "invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".to_string()
        }
    };
    let custom = |name: &str| {
        format!(
            "unable to get metric {name}: unable to fetch metrics from custom metrics API: {api}"
        )
    };
    let (reason, detail, wrapped) = match (m.type_.as_str(), m) {
        (
            "Resource",
            MetricSpec {
                resource: Some(r), ..
            },
        ) => {
            let d = resource(&r.name, &r.target);
            (
                "FailedGetResourceMetric",
                d.clone(),
                format!("failed to get {} resource metric value: {d}", r.name),
            )
        }
        (
            "ContainerResource",
            MetricSpec {
                container_resource: Some(c),
                ..
            },
        ) => {
            let d = resource(&c.name, &c.target);
            (
                "FailedGetContainerResourceMetric",
                d.clone(),
                format!("failed to get {} container metric value: {d}", c.name),
            )
        }
        ("Pods", MetricSpec { pods: Some(p), .. }) => {
            let d = custom(&p.metric.name);
            (
                "FailedGetPodsMetric",
                d.clone(),
                format!("failed to get pods metric value: {d}"),
            )
        }
        (
            "Object",
            MetricSpec {
                object: Some(o), ..
            },
        ) => {
            let d = custom(&o.metric.name);
            (
                "FailedGetObjectMetric",
                d.clone(),
                format!("failed to get object metric value: {d}"),
            )
        }
        (
            "External",
            MetricSpec {
                external: Some(e), ..
            },
        ) => {
            let d = format!(
                "unable to get external metric {ns}/{}: unable to fetch metrics from external metrics API: {api}",
                e.metric.name
            );
            (
                "FailedGetExternalMetric",
                d.clone(),
                format!("failed to get external metric value: {d}"),
            )
        }
        (other, _) => {
            let d = format!("unknown metric source type {other:?}");
            ("InvalidMetricSourceType", d.clone(), d)
        }
    };
    (reason.to_string(), detail, wrapped)
}

/// An API error as Go's `err.Error()` prints it: the Status message.
fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        e => e.to_string(),
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Upstream's `setConditionInList`: the transition time moves only when the status changes.
pub fn set_condition(
    hpa: &mut HorizontalPodAutoscaler,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) {
    let conds = hpa
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let i = match conds.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conds.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..Default::default()
            });
            conds.len() - 1
        }
    };
    let c = &mut conds[i];
    if c.status != status {
        c.last_transition_time = Some(Time(now));
    }
    c.status = status.into();
    c.reason = Some(reason.into());
    c.message = Some(message);
}

/// Upstream's `setStatus`.
pub fn set_status(
    hpa: &mut HorizontalPodAutoscaler,
    current: i32,
    desired: i32,
    metrics: Option<Vec<MetricStatus>>,
    rescaled: bool,
    now: jiff::Timestamp,
) {
    let old = hpa.status.take().unwrap_or_default();
    hpa.status = Some(HorizontalPodAutoscalerStatus {
        current_replicas: Some(current),
        desired_replicas: desired,
        last_scale_time: if rescaled {
            Some(Time(now))
        } else {
            old.last_scale_time
        },
        current_metrics: metrics,
        conditions: old.conditions,
        observed_generation: old.observed_generation,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hpa() -> HorizontalPodAutoscaler {
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "d"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5}}))
        .unwrap()
    }

    #[test]
    fn conditions_keep_their_transition_time_while_the_status_holds() {
        let mut h = hpa();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: jiff::Timestamp = "2026-01-01T00:00:15Z".parse().unwrap();
        set_condition(
            &mut h,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "a".into(),
            t0,
        );
        set_condition(
            &mut h,
            "AbleToScale",
            "True",
            "SucceededRescale",
            "b".into(),
            t1,
        );
        let c = &h.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t0);
        assert_eq!(
            (c.reason.as_deref(), c.message.as_deref()),
            (Some("SucceededRescale"), Some("b"))
        );
        set_condition(
            &mut h,
            "AbleToScale",
            "False",
            "FailedGetScale",
            "c".into(),
            t1,
        );
        let c = &h.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time.as_ref().unwrap().0, t1);
    }

    #[test]
    fn status_as_upstream_sets_it() {
        let mut h = hpa();
        let t0: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        set_condition(
            &mut h,
            "ScalingActive",
            "False",
            "FailedGetResourceMetric",
            "m".into(),
            t0,
        );
        set_status(&mut h, 2, 0, Some(vec![MetricStatus::default()]), false, t0);
        let v = serde_json::to_value(h.status.as_ref().unwrap()).unwrap();
        // One empty metric status per failing metric, as upstream's zeroed slice.
        assert_eq!(v["currentMetrics"], json!([{"type": ""}]));
        assert_eq!(
            (v["currentReplicas"].clone(), v["desiredReplicas"].clone()),
            (json!(2), json!(0))
        );
        assert!(v.get("lastScaleTime").is_none());
        assert_eq!(v["conditions"][0]["reason"], "FailedGetResourceMetric");
        set_status(&mut h, 1, 2, None, true, t0);
        let v = serde_json::to_value(h.status.as_ref().unwrap()).unwrap();
        assert_eq!(v["lastScaleTime"], "2026-01-01T00:00:00Z");
        assert!(v.get("currentMetrics").is_none());
    }

    // The texts kubectl describe shows on a cluster without metrics-server.
    #[test]
    fn metric_failures_read_as_upstream() {
        let api = "the server could not find the requested resource (get pods.metrics.k8s.io)";
        let cpu: MetricSpec = serde_json::from_value(json!({"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}))
        .unwrap();
        let (reason, detail, wrapped) = metric_failure("d", &cpu, api);
        assert_eq!(reason, "FailedGetResourceMetric");
        assert_eq!(detail, "failed to get cpu utilization: unable to get metrics for resource cpu: unable to fetch metrics from resource metrics API: the server could not find the requested resource (get pods.metrics.k8s.io)");
        assert_eq!(
            wrapped,
            format!("failed to get cpu resource metric value: {detail}")
        );
        let mem: MetricSpec = serde_json::from_value(json!({"type": "Resource",
            "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}))
        .unwrap();
        let (_, detail, _) = metric_failure("d", &mem, api);
        assert!(
            detail.starts_with(
                "failed to get memory usage: unable to get metrics for resource memory"
            ),
            "{detail}"
        );
        let odd: MetricSpec = serde_json::from_value(json!({"type": "Sideways"})).unwrap();
        let (reason, detail, _) = metric_failure("d", &odd, api);
        assert_eq!(
            (reason.as_str(), detail.as_str()),
            (
                "InvalidMetricSourceType",
                "unknown metric source type \"Sideways\""
            )
        );
    }

    #[test]
    fn selectors_are_query_encoded() {
        assert_eq!(
            form_encode("app=web,tier in (a,b)"),
            "app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
        );
    }
}
