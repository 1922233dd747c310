//! `printPod`: the READY, STATUS and RESTARTS logic users know from `kubectl get pods`.

use serde_json::{json, Value};

use super::format::condition_true;
use super::json::{arr_at, at, bool_at, int_at, is_deleting, name, str_at};
use super::time::{age, time_or_zero, translate_timestamp_since, Timestamp};

/// `node.NodeUnreachablePodReason`: the status reason the node lifecycle controller sets.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

/// A container in `initContainers` that keeps running beside the app containers (a sidecar).
fn is_restartable_init_container(c: Option<&Value>) -> bool {
    c.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

/// The later of two restart times (`metav1.Time.Before`).
fn later(current: Timestamp, candidate: Timestamp) -> Timestamp {
    if current < candidate {
        candidate
    } else {
        current
    }
}

/// When the container last terminated, if its previous state was `terminated`.
fn last_terminated(cs: &Value) -> Option<Timestamp> {
    at(cs, &["lastState", "terminated"]).map(|t| time_or_zero(t, &["finishedAt"]))
}

/// `Signal:9` / `ExitCode:1` / the reason, for a terminated container (with `prefix` `Init:`
/// for init containers).
fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = str_at(t, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int_at(t, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(t, &["exitCode"]))
    }
}

pub(crate) fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = at(pod, &["spec"]).unwrap_or(&Value::Null);
    let status = at(pod, &["status"]).unwrap_or(&Value::Null);
    let conditions = arr_at(status, &["conditions"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total = arr_at(spec, &["containers"]).len();
    let mut ready: usize = 0;
    let mut last_restart = Timestamp::GO_ZERO;
    let mut last_restartable_init_restart = Timestamp::GO_ZERO;

    let phase = str_at(status, &["phase"]);
    let mut reason = match str_at(status, &["reason"]) {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    // A pod held back by scheduling gates says so rather than "Pending".
    for c in conditions {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_owned();
        }
    }

    let init_specs = arr_at(spec, &["initContainers"]);
    let init_spec = |name: &str| init_specs.iter().find(|c| str_at(c, &["name"]) == name);
    total += init_specs
        .iter()
        .filter(|c| is_restartable_init_container(Some(c)))
        .count();

    let mut initializing = false;
    for (i, cs) in arr_at(status, &["initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts = restarts.saturating_add(int_at(cs, &["restartCount"]));
        if let Some(t) = last_terminated(cs) {
            last_restart = later(last_restart, t);
        }
        let restartable = is_restartable_init_container(init_spec(str_at(cs, &["name"])));
        if restartable {
            restartable_init_restarts =
                restartable_init_restarts.saturating_add(int_at(cs, &["restartCount"]));
            if let Some(t) = last_terminated(cs) {
                last_restartable_init_restart = later(last_restartable_init_restart, t);
            }
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting = at(cs, &["state", "waiting"]);
        match (terminated, waiting) {
            (Some(t), _) if int_at(t, &["exitCode"]) == 0 => continue,
            _ if restartable && bool_at(cs, &["started"]) => {
                if bool_at(cs, &["ready"]) {
                    ready += 1;
                }
                continue;
            }
            (Some(t), _) => reason = terminated_reason(t, "Init:"),
            (None, Some(w))
                if !str_at(w, &["reason"]).is_empty()
                    && str_at(w, &["reason"]) != "PodInitializing" =>
            {
                reason = format!("Init:{}", str_at(w, &["reason"]));
            }
            _ => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    if !initializing || initialized(conditions) {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        // The failure of a terminated container, which outranks a sibling's "Completed"
        // (kubernetes#124766): otherwise the pod would look fine when it is not.
        let mut error_reason: Option<String> = None;
        // Backwards, so the first container's state is the one that ends up shown.
        for cs in arr_at(status, &["containerStatuses"]).iter().rev() {
            restarts = restarts.saturating_add(int_at(cs, &["restartCount"]));
            if let Some(t) = last_terminated(cs) {
                last_restart = later(last_restart, t);
            }
            let waiting_reason = at(cs, &["state", "waiting"]).map(|w| str_at(w, &["reason"]));
            let terminated = at(cs, &["state", "terminated"]);
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
                if int_at(t, &["exitCode"]) != 0 {
                    error_reason = Some(reason.clone());
                }
            } else if bool_at(cs, &["ready"]) && at(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A finished sidecar-style container must not make a live pod look "Completed".
        if reason == "Completed" {
            if has_running && has_pod_ready_condition(conditions) {
                reason = "Running".to_owned();
            } else if let Some(e) = error_reason {
                reason = e;
            } else if has_running {
                reason = "NotReady".to_owned();
            }
        }
    }

    if is_deleting(pod) && str_at(status, &["reason"]) == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_owned();
    } else if is_deleting(pod) && !matches!(phase, "Failed" | "Succeeded") {
        reason = "Terminating".to_owned();
    }

    let restarts_str = if restarts != 0 && !last_restart.is_zero() {
        format!(
            "{restarts} ({} ago)",
            translate_timestamp_since(Some(last_restart), now)
        )
    } else {
        restarts.to_string()
    };

    vec![
        Value::from(name(pod)),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_str),
        Value::from(age(pod, now)),
        Value::from(pod_ip(status)),
        Value::from(non_empty_or_none(str_at(spec, &["nodeName"]))),
        Value::from(non_empty_or_none(str_at(status, &["nominatedNodeName"]))),
        Value::from(readiness_gates(spec, conditions)),
    ]
}

/// `TableRow.conditions` of a pod: upstream marks finished pods so clients can tell them apart.
pub(crate) fn pod_row_conditions(pod: &Value) -> Option<Value> {
    match str_at(pod, &["status", "phase"]) {
        "Succeeded" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."
        }])),
        "Failed" => Some(json!([{
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."
        }])),
        _ => None,
    }
}

/// `hasPodReadyCondition`: any `Ready` condition with status `True` (not just the first).
fn has_pod_ready_condition(conditions: &[Value]) -> bool {
    conditions
        .iter()
        .any(|c| str_at(c, &["type"]) == "Ready" && str_at(c, &["status"]) == "True")
}

/// `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
fn initialized(conditions: &[Value]) -> bool {
    condition_true(conditions, "Initialized")
}

/// The first pod IP. The v1 → internal conversion makes `podIP` authoritative and derives the
/// list from it when only `podIP` is set.
fn pod_ip(status: &Value) -> String {
    let ip = str_at(status, &["podIP"]);
    let ip = if ip.is_empty() {
        arr_at(status, &["podIPs"])
            .first()
            .map_or("", |p| str_at(p, &["ip"]))
    } else {
        ip
    };
    non_empty_or_none(ip)
}

fn readiness_gates(spec: &Value, conditions: &[Value]) -> String {
    let gates = arr_at(spec, &["readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_owned();
    }
    let true_conditions = gates
        .iter()
        .filter(|g| {
            let wanted = str_at(g, &["conditionType"]);
            conditions
                .iter()
                .find(|c| str_at(c, &["type"]) == wanted)
                .is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{true_conditions}/{}", gates.len())
}

fn non_empty_or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_owned()
    } else {
        s.to_owned()
    }
}
