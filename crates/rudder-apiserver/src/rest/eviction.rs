//! `pods/eviction` (upstream's `pkg/registry/core/pod/storage/eviction.go`): a delete that
//! honours the pod's PodDisruptionBudget. Terminal, pending and terminating pods are deleted
//! without looking at budgets; otherwise the one budget selecting the pod must allow a
//! disruption, which the eviction takes (decrementing `disruptionsAllowed` and recording the pod
//! in `disruptedPods`, compare-and-swap on the budget) before the pod gets the
//! `DisruptionTarget` condition and is deleted with the caller's DeleteOptions.

use std::time::Duration;

use axum::response::Response;
use http::StatusCode;
use rudder_api::selector::labels::Selector;
use rudder_api::status::{ApiError, Cause, ErrorDetails, GroupResource, StatusReason};
use rudder_registry::{object, DeleteOpts, ListOpts, WriteOpts};
use serde_json::{json, Value};

use super::Call;
use crate::encode;
use crate::gojson::Gvk;

/// Upstream's `MaxDisruptedPodSize`.
const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// Upstream's `EvictionsRetry`: 20 steps of 500 ms on conflicts.
const RETRY_STEPS: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(500);

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

pub(super) async fn evict(call: &Call<'_>) -> Result<Response, ApiError> {
    call.output()?;
    // Upstream accepts policy/v1 and policy/v1beta1 Evictions on this endpoint.
    let v1beta1 = serde_json::from_slice::<Value>(&call.body)
        .ok()
        .is_some_and(|v| v.get("apiVersion") == Some(&json!("policy/v1beta1")));
    let eviction = if v1beta1 {
        // Upstream's scheme registers policy/v1beta1 though the group version is not served.
        let target = Gvk::new("policy", "v1beta1", "Eviction");
        let reg = &call.server.gs.registry.snapshot();
        let known = |g: &Gvk| *g == target || super::scheme_knows(reg, g);
        crate::gojson::check_body(&target, &call.body, true, known)?
            .ok_or_else(|| ApiError::bad_request("unable to decode the Eviction"))?
    } else {
        call.decode_object(&Gvk::new("policy", "v1", "Eviction"))?
    };
    let name = call.info.name.as_str();
    if object::name(&eviction) != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let gs = call.gs();
    let ns = call.namespace();
    let pods = call.entry.clone();
    // Admission sees the Eviction (pods/eviction), as upstream's: webhooks, policies and
    // NodeRestriction (a node evicts only its own pods).
    let mut eviction = eviction;
    gs.admit_subresource_create(
        &pods,
        ns.unwrap_or(""),
        name,
        &mut eviction,
        &call.admission_opts(),
    )
    .await?;
    let del = delete_options(call, eviction.get("deleteOptions"))?;
    let rv_unset = del.precondition_resource_version.is_none();

    // Pods whose budget does not matter are deleted straight away, retrying conflicts.
    let mut attempt = 0;
    let pod = loop {
        let pod = gs.get(&pods, ns, name).await?;
        if !can_ignore_pdb(&pod) {
            break pod;
        }
        let mut opts = del.clone();
        if should_enforce_resource_version(&pod) && rv_unset {
            opts.precondition_resource_version =
                Some(object::meta_str(&pod, "resourceVersion").to_string());
        }
        match add_condition_and_delete(call, opts).await {
            Ok(()) => return success(),
            Err(e) if e.code == 409 && rv_unset && attempt + 1 < RETRY_STEPS => {
                attempt += 1;
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    };

    let pdb_entry = gs
        .registry
        .get("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal_error("poddisruptionbudgets are not served"))?;
    let listed = gs.list(&pdb_entry, ns, &ListOpts::default()).await?;
    let pdbs: Vec<Value> = listed
        .items
        .iter()
        .map(|o| o.value())
        .filter(|pdb| selects(pdb, &pod))
        .collect();
    if pdbs.len() > 1 {
        return Err(ApiError::new_generic(
            500,
            StatusReason::Unknown,
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
        ));
    }
    let mut update_deletion_options = false;
    let mut pdb_name = String::new();
    if let Some(pdb) = pdbs.first() {
        pdb_name = object::name(pdb).to_string();
        let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let (current, desired) = (int("/status/currentHealthy"), int("/status/desiredHealthy"));
        let always_allow =
            pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
        // An unready pod does not count as healthy: deleting it takes nothing from the budget
        // when the policy allows it or the application is not disrupted now.
        if !is_ready(&pod) && (always_allow || (current >= desired && desired > 0)) {
            update_deletion_options = true;
        } else if del.dry_run {
            check_and_decrement(pdb, object::name(&pod), true, &object::now_rfc3339())?;
        } else {
            let opts = WriteOpts {
                status: true,
                ..Default::default()
            };
            let pod_name = object::name(&pod).to_string();
            let gr = pdb_entry.info.group_resource();
            gs.update(
                &pdb_entry,
                ns,
                &pdb_name,
                |current| {
                    let current = current.ok_or_else(|| ApiError::not_found(&gr, &pdb_name))?;
                    check_and_decrement(current, &pod_name, false, &object::now_rfc3339())
                },
                &opts,
            )
            .await?;
        }
    }

    let mut opts = del.clone();
    if update_deletion_options {
        // The pod must not have become ready since it was judged unhealthy.
        opts.precondition_resource_version =
            Some(object::meta_str(&pod, "resourceVersion").to_string());
    }
    match add_condition_and_delete(call, opts).await {
        Ok(()) => success(),
        Err(e) if e.code == 409 && update_deletion_options && rv_unset => {
            Err(still_processing(&pdb_name))
        }
        Err(e) => Err(e),
    }
}

/// 201 with a Success Status: upstream's create handler fills the code of the Status the
/// eviction returns.
fn success() -> Result<Response, ApiError> {
    Ok(encode::json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The Eviction's DeleteOptions with the request's `dryRun` folded in (upstream's
/// `propagateDryRun`).
fn delete_options(call: &Call<'_>, body: Option<&Value>) -> Result<DeleteOpts, ApiError> {
    let body = body.cloned().unwrap_or_else(|| json!({}));
    let mut opts = super::delete_opts_from(call, &body)?;
    let in_body: Vec<&str> = body
        .get("dryRun")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let in_query: Vec<&str> = call.query.get("dryRun").into_iter().collect();
    if !in_body.is_empty() && !in_query.is_empty() && in_body != in_query {
        // A plain error upstream: a 500 with no reason.
        return Err(ApiError::new_generic(
            500,
            StatusReason::Unknown,
            format!(
                "Non-matching dry-run options in request and content: [{}] and [{}]",
                in_query.join(" "),
                in_body.join(" ")
            ),
        ));
    }
    opts.dry_run = opts.dry_run || call.dry_run()?;
    Ok(opts)
}

/// Marks the pod `DisruptionTarget` (through the status, honouring the preconditions against the
/// latest pod) and deletes it, as upstream's `addConditionAndDeletePod`.
async fn add_condition_and_delete(call: &Call<'_>, mut opts: DeleteOpts) -> Result<(), ApiError> {
    let gs = call.gs();
    let ns = call.namespace();
    let name = call.info.name.as_str();
    if !opts.dry_run {
        let gr = call.entry.info.group_resource();
        let pod_gr = GroupResource::new("", "Pod");
        let write = WriteOpts {
            status: true,
            ..Default::default()
        };
        let (updated, _) = gs
            .update(
                &call.entry,
                ns,
                name,
                |current| {
                    let current = current.ok_or_else(|| ApiError::not_found(&gr, name))?;
                    check_preconditions(current, &opts, &pod_gr)?;
                    let mut pod = current.clone();
                    add_disruption_target(&mut pod, &object::now_rfc3339());
                    Ok(pod)
                },
                &write,
            )
            .await?;
        if opts.precondition_resource_version.is_some() {
            // Our own write moved the pod's resourceVersion.
            opts.precondition_resource_version =
                Some(object::meta_str(&updated, "resourceVersion").to_string());
        }
    }
    gs.delete(&call.entry, ns, name, &opts).await?;
    Ok(())
}

fn check_preconditions(pod: &Value, opts: &DeleteOpts, gr: &GroupResource) -> Result<(), ApiError> {
    let name = object::name(pod);
    if let Some(uid) = opts.precondition_uid.as_deref().filter(|u| !u.is_empty()) {
        let actual = object::meta_str(pod, "uid");
        if uid != actual {
            return Err(ApiError::conflict(gr, name, format!(
                "the UID in the precondition ({uid}) does not match the UID in record ({actual}). The object might have been deleted and then recreated"
            )));
        }
    }
    if let Some(rv) = opts
        .precondition_resource_version
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        let actual = object::meta_str(pod, "resourceVersion");
        if rv != actual {
            return Err(ApiError::conflict(gr, name, format!(
                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({actual}). The object might have been modified"
            )));
        }
    }
    Ok(())
}

/// Upstream's `UpdatePodCondition` with `DisruptionTarget=True`, `EvictionByEvictionAPI`.
fn add_disruption_target(pod: &mut Value, now: &str) {
    let mut cond = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
        "lastTransitionTime": now, "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"});
    let conds = &mut pod["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    match list.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
        Some(old) => {
            if old["status"] == cond["status"] {
                cond["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            *old = cond;
        }
        None => list.push(cond),
    }
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn terminating(pod: &Value) -> bool {
    object::meta(pod).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|t| !t.is_null()))
}

/// Upstream's `canIgnorePDB`: terminal, pending or terminating pods.
fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || terminating(pod)
}

/// Upstream's `shouldEnforceResourceVersion`.
fn should_enforce_resource_version(pod: &Value) -> bool {
    !(matches!(phase(pod), "Succeeded" | "Failed") || terminating(pod))
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Whether a budget selects the pod (`LabelSelectorAsSelector`: no selector selects nothing, an
/// empty one every pod; an invalid one none).
fn selects(pdb: &Value, pod: &Value) -> bool {
    let sel = pdb
        .pointer("/spec/selector")
        .filter(|s| !s.is_null())
        .and_then(|s| serde_json::from_value(s.clone()).ok());
    let Ok(sel) = Selector::from_label_selector(sel.as_ref()) else {
        return false;
    };
    let labels: std::collections::BTreeMap<String, String> = object::meta(pod)
        .and_then(|m| m.get("labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    sel.matches(&labels)
}

fn budget_cause(message: String) -> Cause {
    Cause {
        reason: "DisruptionBudget".into(),
        message,
        field: String::new(),
    }
}

/// Upstream's `createTooManyRequestsError`.
fn still_processing(pdb: &str) -> ApiError {
    let mut e = ApiError::too_many_requests(VIOLATION, 10);
    if let Some(d) = e.details.as_mut() {
        d.causes.push(budget_cause(format!(
            "The disruption budget {pdb} is still being processed by the server."
        )));
    }
    e
}

/// Upstream's `checkAndDecrement`: the budget with one disruption taken and the pod recorded,
/// or why the eviction must wait.
fn check_and_decrement(
    pdb: &Value,
    pod: &str,
    dry_run: bool,
    now: &str,
) -> Result<Value, ApiError> {
    let name = object::name(pdb);
    let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let generation = object::meta(pdb)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if int("/status/observedGeneration") < generation {
        return Err(still_processing(name));
    }
    let allowed = int("/status/disruptionsAllowed");
    let gr = GroupResource::new("policy", "poddisruptionbudget");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, |m| m.len());
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return Err(ApiError::forbidden(
            &gr,
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        let mut e = ApiError::too_many_requests(VIOLATION, 0);
        let details = e
            .details
            .get_or_insert_with(|| Box::new(ErrorDetails::default()));
        details.causes.push(budget_cause(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            int("/status/desiredHealthy"),
            int("/status/currentHealthy")
        )));
        return Err(e);
    }
    let mut out = pdb.clone();
    out["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_insufficient_pods(&mut out, now);
    }
    if dry_run {
        return Ok(out);
    }
    let stamp = now;
    let map = &mut out["status"]["disruptedPods"];
    if !map.is_object() {
        *map = json!({});
    }
    map[pod] = json!(stamp);
    Ok(out)
}

/// `pdbhelper.UpdateDisruptionAllowedCondition` for a budget left with no disruption.
fn set_insufficient_pods(pdb: &mut Value, now: &str) {
    let generation = pdb.pointer("/status/observedGeneration").cloned();
    let conds = &mut pdb["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let stamp = now;
    match list.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
        Some(c) => {
            if c["status"] != "False" {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(stamp);
            }
            c["reason"] = json!("InsufficientPods");
            c["message"] = json!("");
            match generation {
                Some(g) => c["observedGeneration"] = g,
                None => {
                    if let Some(o) = c.as_object_mut() {
                        o.remove("observedGeneration");
                    }
                }
            }
        }
        None => {
            let mut c = json!({"type": "DisruptionAllowed", "status": "False",
                "reason": "InsufficientPods", "message": "", "lastTransitionTime": stamp});
            if let Some(g) = generation {
                c["observedGeneration"] = g;
            }
            list.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(status: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "d", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": status})
    }

    fn now() -> &'static str {
        "2026-01-01T00:00:00Z"
    }

    // upstream TestEviction: "matching pdbs with no disruptions allowed" → 429 with the cause.
    #[test]
    fn no_disruption_allowed_is_429_with_the_budget_cause() {
        let p = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 0,
            "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}));
        let e = check_and_decrement(&p, "web-1", false, now()).unwrap_err();
        assert_eq!((e.code, &e.reason), (429, &StatusReason::TooManyRequests));
        assert_eq!(e.message, VIOLATION);
        let d = e.details.unwrap();
        assert_eq!(d.retry_after_seconds, 0);
        assert_eq!(d.causes.len(), 1);
        assert_eq!(d.causes[0].reason, "DisruptionBudget");
        assert_eq!(
            d.causes[0].message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
    }

    #[test]
    fn unobserved_generation_is_still_being_processed() {
        let p = pdb(json!({"disruptionsAllowed": 1}));
        let e = check_and_decrement(&p, "web-1", false, now()).unwrap_err();
        assert_eq!(e.code, 429);
        let d = e.details.unwrap();
        assert_eq!(d.retry_after_seconds, 10);
        assert_eq!(
            d.causes[0].message,
            "The disruption budget web is still being processed by the server."
        );
        let neg = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": -1}));
        let e = check_and_decrement(&neg, "p", false, now()).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn decrement_records_the_pod_and_flips_the_condition() {
        let p = pdb(json!({"observedGeneration": 1, "disruptionsAllowed": 1,
            "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
            "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
                "message": "", "observedGeneration": 1, "lastTransitionTime": "2025-01-01T00:00:00Z"}]}));
        let out = check_and_decrement(&p, "web-1", false, now()).unwrap();
        assert_eq!(out["status"]["disruptionsAllowed"], 0);
        assert_eq!(
            out["status"]["disruptedPods"],
            json!({"web-1": "2026-01-01T00:00:00Z"})
        );
        let c = &out["status"]["conditions"][0];
        assert_eq!(
            (&c["status"], &c["reason"], &c["lastTransitionTime"]),
            (
                &json!("False"),
                &json!("InsufficientPods"),
                &json!("2026-01-01T00:00:00Z")
            )
        );
        // A dry run takes the disruption but records no pod.
        let out = check_and_decrement(&p, "web-1", true, now()).unwrap();
        assert!(out["status"].get("disruptedPods").is_none());
    }

    #[test]
    fn pods_that_skip_the_budget() {
        let pod = |phase: &str| json!({"metadata": {"name": "p"}, "status": {"phase": phase}});
        assert!(can_ignore_pdb(&pod("Succeeded")));
        assert!(can_ignore_pdb(&pod("Failed")));
        assert!(can_ignore_pdb(&pod("Pending")));
        assert!(!can_ignore_pdb(&pod("Running")));
        assert!(should_enforce_resource_version(&pod("Pending")));
        assert!(!should_enforce_resource_version(&pod("Failed")));
        let terminating = json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running"}});
        assert!(can_ignore_pdb(&terminating));
        assert!(!should_enforce_resource_version(&terminating));
    }

    #[test]
    fn selection_and_condition() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "status": {}});
        assert!(selects(&pdb(json!({})), &pod));
        assert!(selects(&json!({"spec": {"selector": {}}}), &pod));
        assert!(!selects(&json!({"spec": {}}), &pod));
        assert!(!selects(
            &json!({"spec": {"selector": {"matchLabels": {"app": "db"}}}}),
            &pod
        ));
        let mut p = pod.clone();
        add_disruption_target(&mut p, "2026-01-01T00:00:00Z");
        assert_eq!(
            p["status"]["conditions"][0],
            json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                "lastTransitionTime": "2026-01-01T00:00:00Z", "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting"})
        );
    }

    #[test]
    fn preconditions_conflict_as_upstream() {
        let pod = json!({"metadata": {"name": "p", "uid": "u1", "resourceVersion": "5"}});
        let gr = GroupResource::new("", "Pod");
        let opts = DeleteOpts {
            precondition_resource_version: Some("4".into()),
            ..Default::default()
        };
        let e = check_preconditions(&pod, &opts, &gr).unwrap_err();
        assert_eq!(e.code, 409);
        assert_eq!(e.message, "Operation cannot be fulfilled on Pod \"p\": the ResourceVersion in the precondition (4) does not match the ResourceVersion in record (5). The object might have been modified");
    }
}
