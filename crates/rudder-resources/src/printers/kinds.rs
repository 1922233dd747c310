//! The cells of every kind except pods (see `pod.rs`), in the order of upstream's
//! `pkg/printers/internalversion/printers.go`, each a port of the print function named above it.
//!
//! Every function takes the object as JSON in its served (versioned) shape and reads the fields
//! its upstream counterpart reads after conversion to the internal type.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::duration::human_duration;
use super::format::{
    access_modes, condition, condition_true, container_cells, format_label_selector, format_labels,
    go_label_selector_string, int_or_string, join_host_port, label_selector_string, list_with_more,
    load_balancer_status, or_none, print_bool_ptr, slash_pair,
};
use super::json::{
    annotation, arr_at, at, bool_at, int, int_at, is_deleting, len_cell, map_len, name, obj_at,
    opt_bool_at, opt_int_at, opt_str_at, str_at,
};
use super::quantity::{quantity_ptr_string, quantity_string};
use super::time::{age, time_at, translate_timestamp_since, Timestamp};
use super::PrintError;

pub(crate) type Cells = Result<Vec<Value>, PrintError>;

/// A row of cells, each converted to its JSON form.
macro_rules! row {
    ($($cell:expr),* $(,)?) => { Ok(vec![$(Value::from($cell)),*]) };
}

const NULL: Value = Value::Null;

fn spec(o: &Value) -> &Value {
    at(o, &["spec"]).unwrap_or(&NULL)
}

fn status(o: &Value) -> &Value {
    at(o, &["status"]).unwrap_or(&NULL)
}

// ---- core ----

/// `printPodTemplate`.
pub(crate) fn pod_template(o: &Value, _now: Timestamp) -> Cells {
    let (names, images) = container_cells(at(o, &["template", "spec"]));
    row![
        name(o),
        names,
        images,
        format_labels(obj_at(o, &["template", "metadata", "labels"]))
    ]
}

/// `printPodDisruptionBudget`.
pub(crate) fn pod_disruption_budget(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let or_na = |field: &str| at(s, &[field]).map_or_else(|| "N/A".to_owned(), int_or_string);
    row![
        name(o),
        or_na("minAvailable"),
        or_na("maxUnavailable"),
        int_at(o, &["status", "disruptionsAllowed"]),
        age(o, now)
    ]
}

/// `printReplicationController`.
pub(crate) fn replication_controller(o: &Value, now: Timestamp) -> Cells {
    let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
    row![
        name(o),
        int_at(o, &["spec", "replicas"]),
        int_at(o, &["status", "replicas"]),
        int_at(o, &["status", "readyReplicas"]),
        age(o, now),
        names,
        images,
        format_labels(obj_at(o, &["spec", "selector"]))
    ]
}

/// `printService`.
pub(crate) fn service(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let internal_ip = match arr_at(s, &["clusterIPs"]).first() {
        Some(ip) => ip.as_str().unwrap_or_default().to_owned(),
        None => or_none(s, &["clusterIP"]),
    };
    let ports: Vec<String> = arr_at(s, &["ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let proto = str_at(p, &["protocol"]);
            match int_at(p, &["nodePort"]) {
                np if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".to_owned()
    } else {
        ports.join(",")
    };
    row![
        name(o),
        str_at(s, &["type"]),
        internal_ip,
        service_external_ip(o),
        ports,
        age(o, now),
        format_labels(obj_at(s, &["selector"]))
    ]
}

/// `getServiceExternalIP`, wide (the API server never clips the load-balancer list).
fn service_external_ip(o: &Value) -> String {
    let s = spec(o);
    let external: Vec<&str> = arr_at(s, &["externalIPs"])
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    match str_at(s, &["type"]) {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_owned(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let lb = load_balancer_status(at(o, &["status", "loadBalancer"]));
            if !external.is_empty() {
                let mut results: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    results.extend(lb.split(','));
                }
                results.extend(external);
                return results.join(",");
            }
            if lb.is_empty() {
                "<pending>".to_owned()
            } else {
                lb
            }
        }
        "ExternalName" => str_at(s, &["externalName"]).to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `printEndpoints`.
pub(crate) fn endpoints(o: &Value, now: Timestamp) -> Cells {
    row![name(o), format_endpoints(o), age(o, now)]
}

/// `formatEndpoints` with all ports: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr_at(o, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addrs = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(a, &["ip"]).to_owned());
            }
            continue;
        }
        for port in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(str_at(a, &["ip"]), int_at(port, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

/// `printNode`, with the architecture after the kernel version (kubernetes#132402), so mixed
/// amd64/arm64 clusters can be told apart in `-o wide`.
pub(crate) fn node(o: &Value, now: Timestamp) -> Cells {
    let st = status(o);
    // Upstream keys conditions by type in a map, so the last `Ready` condition wins.
    let ready = arr_at(st, &["conditions"])
        .iter()
        .rfind(|c| str_at(c, &["type"]) == "Ready");
    let mut states = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(o, &["spec", "unschedulable"]) {
        states.push("SchedulingDisabled");
    }
    let roles = node_roles(o);
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    };
    let info = at(st, &["nodeInfo"]).unwrap_or(&NULL);
    let unknown = |field: &str| match str_at(info, &[field]) {
        "" => "<unknown>".to_owned(),
        v => v.to_owned(),
    };
    let mut kernel = unknown("kernelVersion");
    let arch = str_at(info, &["architecture"]);
    if !arch.is_empty() {
        kernel = format!("{kernel} ({arch})");
    }
    row![
        name(o),
        states.join(","),
        roles,
        age(o, now),
        str_at(info, &["kubeletVersion"]),
        node_address(st, "InternalIP"),
        node_address(st, "ExternalIP"),
        unknown("osImage"),
        kernel,
        unknown("containerRuntimeVersion")
    ]
}

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` keys and the `kubernetes.io/role` value,
/// sorted and de-duplicated.
fn node_roles(o: &Value) -> BTreeSet<&str> {
    let mut roles = BTreeSet::new();
    for (k, v) in obj_at(o, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if k == "kubernetes.io/role" {
            match v.as_str() {
                Some(v) if !v.is_empty() => {
                    roles.insert(v);
                }
                _ => {}
            }
        }
    }
    roles
}

/// The first address of a type, or `<none>`.
fn node_address(status: &Value, type_: &str) -> String {
    arr_at(status, &["addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == type_)
        .map_or_else(
            || "<none>".to_owned(),
            |a| str_at(a, &["address"]).to_owned(),
        )
}

/// The fields `printEvent` reads, wherever the served version keeps them.
struct EventFields<'a> {
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    event_time: Option<Timestamp>,
    count: i64,
    series: Option<&'a Value>,
    involved: &'a Value,
    message: &'a str,
    source_component: &'a str,
    source_host: &'a str,
    reporting_controller: &'a str,
}

/// `printEvent` over a core/v1 Event.
pub(crate) fn event(o: &Value, now: Timestamp) -> Cells {
    event_cells(
        o,
        EventFields {
            first: time_at(o, &["firstTimestamp"]),
            last: time_at(o, &["lastTimestamp"]),
            event_time: time_at(o, &["eventTime"]),
            count: int_at(o, &["count"]),
            series: at(o, &["series"]),
            involved: at(o, &["involvedObject"]).unwrap_or(&NULL),
            message: str_at(o, &["message"]),
            source_component: str_at(o, &["source", "component"]),
            source_host: str_at(o, &["source", "host"]),
            // The JSON name of core/v1 `ReportingController`.
            reporting_controller: str_at(o, &["reportingComponent"]),
        },
        now,
    )
}

/// `printEvent` over an events.k8s.io/v1 Event, after upstream's conversion to the core shape
/// (`regarding` → involvedObject, `note` → message, `deprecated*` → the old fields).
pub(crate) fn events_k8s_io_event(o: &Value, now: Timestamp) -> Cells {
    event_cells(
        o,
        EventFields {
            first: time_at(o, &["deprecatedFirstTimestamp"]),
            last: time_at(o, &["deprecatedLastTimestamp"]),
            event_time: time_at(o, &["eventTime"]),
            count: int_at(o, &["deprecatedCount"]),
            series: at(o, &["series"]),
            involved: at(o, &["regarding"]).unwrap_or(&NULL),
            message: str_at(o, &["note"]),
            source_component: str_at(o, &["deprecatedSource", "component"]),
            source_host: str_at(o, &["deprecatedSource", "host"]),
            reporting_controller: str_at(o, &["reportingController"]),
        },
        now,
    )
}

fn event_cells(o: &Value, f: EventFields<'_>, now: Timestamp) -> Cells {
    let is_zero = |t: Option<Timestamp>| t.is_none_or(Timestamp::is_zero);
    let first = if is_zero(f.first) {
        translate_timestamp_since(f.event_time, now)
    } else {
        translate_timestamp_since(f.first, now)
    };
    let mut last = if is_zero(f.last) {
        first.clone()
    } else {
        translate_timestamp_since(f.last, now)
    };
    let mut count = f.count;
    if let Some(series) = f.series {
        last = translate_timestamp_since(time_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = str_at(f.involved, &["kind"]).to_lowercase();
    let target = match str_at(f.involved, &["name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = first_non_empty(f.source_component, f.reporting_controller);
    let instance = first_non_empty(f.source_host, str_at(o, &["reportingInstance"]));
    let source = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    row![
        last,
        str_at(o, &["type"]),
        str_at(o, &["reason"]),
        target,
        str_at(f.involved, &["fieldPath"]),
        source,
        f.message.trim(),
        first,
        count,
        name(o)
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}

/// `printNamespace`.
pub(crate) fn namespace(o: &Value, now: Timestamp) -> Cells {
    row![name(o), str_at(o, &["status", "phase"]), age(o, now)]
}

/// `printSecret`: DATA counts `data` keys (`stringData` is write-only and never stored).
pub(crate) fn secret(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        str_at(o, &["type"]),
        map_len(o, &["data"]),
        age(o, now)
    ]
}

/// `printServiceAccount` with the SECRETS column of the project's (v1.26) column data, as
/// asked for. Upstream dropped the column in kubernetes#117160 because the field has not been
/// populated since v1.24: leaving out this cell and the column is all it takes to follow.
pub(crate) fn service_account(o: &Value, now: Timestamp) -> Cells {
    row![name(o), len_cell(o, &["secrets"]), age(o, now)]
}

/// `GetPersistentVolumeClass` / `GetPersistentVolumeClaimClass`: the beta annotation, when
/// present (even empty), wins over `spec.storageClassName`.
fn storage_class_of(o: &Value) -> &str {
    annotation(o, "volume.beta.kubernetes.io/storage-class")
        .unwrap_or_else(|| str_at(o, &["spec", "storageClassName"]))
}

fn or_unset(v: Option<&str>) -> String {
    v.unwrap_or("<unset>").to_owned()
}

/// `printPersistentVolume`.
pub(crate) fn persistent_volume(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let claim = at(s, &["claimRef"])
        .map(|c| format!("{}/{}", str_at(c, &["namespace"]), str_at(c, &["name"])))
        .unwrap_or_default();
    let phase = if is_deleting(o) {
        "Terminating"
    } else {
        str_at(o, &["status", "phase"])
    };
    row![
        name(o),
        quantity_string(at(s, &["capacity", "storage"])),
        access_modes(arr_at(s, &["accessModes"])),
        str_at(s, &["persistentVolumeReclaimPolicy"]),
        phase,
        claim,
        storage_class_of(o),
        or_unset(opt_str_at(s, &["volumeAttributesClassName"])),
        str_at(o, &["status", "reason"]),
        age(o, now),
        or_unset(opt_str_at(s, &["volumeMode"]))
    ]
}

/// `printPersistentVolumeClaim`: capacity and access modes only once bound to a volume.
pub(crate) fn persistent_volume_claim(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let st = status(o);
    let phase = if is_deleting(o) {
        "Terminating"
    } else {
        str_at(st, &["phase"])
    };
    let volume = str_at(s, &["volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity_string(at(st, &["capacity", "storage"])),
            access_modes(arr_at(st, &["accessModes"])),
        )
    };
    row![
        name(o),
        phase,
        volume,
        capacity,
        modes,
        storage_class_of(o),
        or_unset(opt_str_at(s, &["volumeAttributesClassName"])),
        age(o, now),
        or_unset(opt_str_at(s, &["volumeMode"]))
    ]
}

/// `printComponentStatus`: the first `Healthy` condition decides.
pub(crate) fn component_status(o: &Value, _now: Timestamp) -> Cells {
    let (state, message, error) = match condition(arr_at(o, &["conditions"]), "Healthy") {
        None => ("Unknown", "", ""),
        Some(c) => (
            if str_at(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            str_at(c, &["message"]),
            str_at(c, &["error"]),
        ),
    };
    row![name(o), state, message, error]
}

/// `printConfigMap`: DATA counts `data` and `binaryData` keys.
pub(crate) fn config_map(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        map_len(o, &["data"]) + map_len(o, &["binaryData"]),
        age(o, now)
    ]
}

/// `printResourceQuota`: `name: used/hard` per resource, sorted by name, `limits.*` apart.
pub(crate) fn resource_quota(o: &Value, now: Timestamp) -> Cells {
    let st = status(o);
    let mut resources: Vec<&String> = obj_at(st, &["hard"])
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    resources.sort_unstable();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for r in resources {
        let entry = format!(
            "{r}: {}/{}",
            quantity_string(at(st, &["used", r.as_str()])),
            quantity_string(at(st, &["hard", r.as_str()]))
        );
        let mut pieces = r.split('.');
        if pieces.next() == Some("limits") && pieces.next().is_some() {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    row![name(o), requests.join(", "), limits.join(", "), age(o, now)]
}

// ---- apps ----

/// `printReplicaSet`.
pub(crate) fn replica_set(o: &Value, now: Timestamp) -> Cells {
    let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
    row![
        name(o),
        int_at(o, &["spec", "replicas"]),
        int_at(o, &["status", "replicas"]),
        int_at(o, &["status", "readyReplicas"]),
        age(o, now),
        names,
        images,
        format_label_selector(at(o, &["spec", "selector"]))
    ]
}

/// `printDaemonSet`.
pub(crate) fn daemon_set(o: &Value, now: Timestamp) -> Cells {
    let st = status(o);
    let pod_spec = at(o, &["spec", "template", "spec"]);
    let (names, images) = container_cells(pod_spec);
    row![
        name(o),
        int_at(st, &["desiredNumberScheduled"]),
        int_at(st, &["currentNumberScheduled"]),
        int_at(st, &["numberReady"]),
        int_at(st, &["updatedNumberScheduled"]),
        int_at(st, &["numberAvailable"]),
        format_labels(pod_spec.and_then(|p| obj_at(p, &["nodeSelector"]))),
        age(o, now),
        names,
        images,
        format_label_selector(at(o, &["spec", "selector"]))
    ]
}

/// `printStatefulSet`.
pub(crate) fn stateful_set(o: &Value, now: Timestamp) -> Cells {
    let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
    row![
        name(o),
        format!(
            "{}/{}",
            int_at(o, &["status", "readyReplicas"]),
            int_at(o, &["spec", "replicas"])
        ),
        age(o, now),
        names,
        images
    ]
}

/// `printDeployment`: the selector is printed bare (`""` when nil or empty, `<invalid>` when it
/// does not convert), unlike the other workloads.
pub(crate) fn deployment(o: &Value, now: Timestamp) -> Cells {
    let (names, images) = container_cells(at(o, &["spec", "template", "spec"]));
    let selector = label_selector_string(at(o, &["spec", "selector"]))
        .unwrap_or_else(|()| "<invalid>".to_owned());
    row![
        name(o),
        format!(
            "{}/{}",
            int_at(o, &["status", "readyReplicas"]),
            int_at(o, &["spec", "replicas"])
        ),
        int_at(o, &["status", "updatedReplicas"]),
        int_at(o, &["status", "availableReplicas"]),
        age(o, now),
        names,
        images,
        selector
    ]
}

/// `printControllerRevision`: the controlling owner as `kind.group/name`.
pub(crate) fn controller_revision(o: &Value, now: Timestamp) -> Cells {
    let owner = arr_at(o, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| bool_at(r, &["controller"]));
    let controller = match owner {
        None => "<none>".to_owned(),
        Some(r) => {
            let api_version = str_at(r, &["apiVersion"]);
            // `schema.ParseGroupVersion`: "" and "/" are the empty group/version.
            let group = if api_version.is_empty() || api_version == "/" {
                ""
            } else {
                match api_version.split('/').collect::<Vec<_>>().as_slice() {
                    [_version] => "",
                    [group, _version] => group,
                    _ => {
                        return Err(PrintError::GroupVersion {
                            value: api_version.to_owned(),
                        })
                    }
                }
            };
            let kind = str_at(r, &["kind"]);
            let owner_name = str_at(r, &["name"]);
            if group.is_empty() && kind.is_empty() {
                owner_name.to_owned()
            } else if group.is_empty() {
                format!("{}/{owner_name}", kind.to_lowercase())
            } else {
                format!("{}/{owner_name}", format!("{kind}.{group}").to_lowercase())
            }
        }
    };
    row![name(o), controller, int_at(o, &["revision"]), age(o, now)]
}

// ---- batch ----

/// `printJob`, with the STATUS column and its `SuccessCriteriaMet` state (kubernetes#132832),
/// which tell a finished or doomed job apart from a running one at a glance.
pub(crate) fn job(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let st = status(o);
    let succeeded = int_at(st, &["succeeded"]);
    let completions = match opt_int_at(s, &["completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(s, &["parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_at(st, &["startTime"]),
        time_at(st, &["completionTime"]),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.since(start)),
        (Some(start), Some(done)) => human_duration(done.since(start)),
    };
    let conditions = arr_at(st, &["conditions"]);
    let state = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if is_deleting(o) {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else if condition_true(conditions, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    };
    let (names, images) = container_cells(at(s, &["template", "spec"]));
    row![
        name(o),
        state,
        completions,
        duration,
        age(o, now),
        names,
        images,
        format_label_selector(at(s, &["selector"]))
    ]
}

/// `printCronJob`.
pub(crate) fn cron_job(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let last_schedule = match at(o, &["status", "lastScheduleTime"]) {
        None => "<none>".to_owned(),
        Some(t) => translate_timestamp_since(Timestamp::from_json(Some(t)), now),
    };
    let job_spec = at(s, &["jobTemplate", "spec"]).unwrap_or(&NULL);
    let (names, images) = container_cells(at(job_spec, &["template", "spec"]));
    row![
        name(o),
        str_at(s, &["schedule"]),
        opt_str_at(s, &["timeZone"]).unwrap_or("<none>"),
        print_bool_ptr(opt_bool_at(s, &["suspend"])),
        len_cell(o, &["status", "active"]),
        last_schedule,
        age(o, now),
        names,
        images,
        format_label_selector(at(job_spec, &["selector"]))
    ]
}

// ---- autoscaling ----

/// `printHorizontalPodAutoscaler`, over the v2 shape; autoscaling/v1 objects are first
/// converted as upstream converts them to the internal type.
pub(crate) fn horizontal_pod_autoscaler(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let converted;
    let (metrics, current) = if at(s, &["metrics"]).is_none()
        && (str_at(o, &["apiVersion"]) == "autoscaling/v1"
            || at(s, &["targetCPUUtilizationPercentage"]).is_some())
    {
        converted = hpa_v1_metrics(o);
        (&converted.0, &converted.1)
    } else {
        (
            at(s, &["metrics"]).unwrap_or(&NULL),
            at(o, &["status", "currentMetrics"]).unwrap_or(&NULL),
        )
    };
    let min_pods =
        opt_int_at(s, &["minReplicas"]).map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    row![
        name(o),
        slash_pair(at(s, &["scaleTargetRef"]), "kind", "name"),
        format_hpa_metrics(
            metrics.as_array().map_or(&[], Vec::as_slice),
            current.as_array().map_or(&[], Vec::as_slice)
        ),
        min_pods,
        int_at(s, &["maxReplicas"]),
        int_at(o, &["status", "currentReplicas"]),
        age(o, now)
    ]
}

/// The v1 → internal conversion of the CPU target and its current value.
fn hpa_v1_metrics(o: &Value) -> (Value, Value) {
    let spec_metrics = match opt_int_at(o, &["spec", "targetCPUUtilizationPercentage"]) {
        Some(t) => json!([{"type": "Resource", "resource": {"name": "cpu",
                          "target": {"type": "Utilization", "averageUtilization": t}}}]),
        None => json!([]),
    };
    let status_metrics = match opt_int_at(o, &["status", "currentCPUUtilizationPercentage"]) {
        Some(c) => json!([{"type": "Resource", "resource": {"name": "cpu",
                          "current": {"averageUtilization": c}}}]),
        None => json!([]),
    };
    (spec_metrics, status_metrics)
}

/// `formatHPAMetrics`: the first two metrics as `current/target`, then `+ N more...`.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    const MAX: usize = 2;
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let status = statuses.get(i);
            match str_at(spec, &["type"]) {
                "External" => value_metric(spec, status, "external"),
                "Object" => value_metric(spec, status, "object"),
                "Pods" => {
                    let current = match status.and_then(|s| at(s, &["pods"])) {
                        Some(p) => quantity_ptr_string(at(p, &["current", "averageValue"])),
                        None => "<unknown>".to_owned(),
                    };
                    let target = quantity_ptr_string(at(spec, &["pods", "target", "averageValue"]));
                    format!("{current}/{target}")
                }
                "Resource" => resource_metric(spec, status, "resource"),
                "ContainerResource" => resource_metric(spec, status, "containerResource"),
                _ => "<unknown type>".to_owned(),
            }
        })
        .collect();
    if list.len() > MAX {
        return format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX);
    }
    list.join(", ")
}

/// External and Object metrics: an average value (`(avg)`) or a total value.
fn value_metric(spec: &Value, status: Option<&Value>, key: &str) -> String {
    let source = at(spec, &[key]).unwrap_or(&NULL);
    let current_of = status.and_then(|s| at(s, &[key]));
    match at(source, &["target", "averageValue"]) {
        Some(target) => {
            let current = current_of
                .and_then(|c| at(c, &["current", "averageValue"]))
                .map_or_else(|| "<unknown>".to_owned(), |q| quantity_string(Some(q)));
            format!("{current}/{} (avg)", quantity_string(Some(target)))
        }
        None => {
            let current = current_of.map_or_else(
                || "<unknown>".to_owned(),
                |c| quantity_ptr_string(at(c, &["current", "value"])),
            );
            let target = quantity_ptr_string(at(source, &["target", "value"]));
            format!("{current}/{target}")
        }
    }
}

/// Resource and ContainerResource metrics: an average value or a utilisation percentage.
fn resource_metric(spec: &Value, status: Option<&Value>, key: &str) -> String {
    let source = at(spec, &[key]).unwrap_or(&NULL);
    let resource = str_at(source, &["name"]);
    let current_of = status.and_then(|s| at(s, &[key]));
    match at(source, &["target", "averageValue"]) {
        Some(target) => {
            let current = current_of.map_or_else(
                || "<unknown>".to_owned(),
                |c| quantity_ptr_string(at(c, &["current", "averageValue"])),
            );
            format!("{resource}: {current}/{}", quantity_string(Some(target)))
        }
        None => {
            let current = current_of
                .and_then(|c| at(c, &["current", "averageUtilization"]))
                .map_or_else(|| "<unknown>".to_owned(), |u| format!("{}%", int(u)));
            let target = at(source, &["target", "averageUtilization"])
                .map_or_else(|| "<auto>".to_owned(), |u| format!("{}%", int(u)));
            format!("{resource}: {current}/{target}")
        }
    }
}

// ---- networking.k8s.io and discovery.k8s.io ----

/// `printIngress`.
pub(crate) fn ingress(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let ports = if arr_at(s, &["tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    row![
        name(o),
        opt_str_at(s, &["ingressClassName"]).unwrap_or("<none>"),
        format_hosts(arr_at(s, &["rules"])),
        load_balancer_status(at(o, &["status", "loadBalancer"])),
        ports,
        age(o, now)
    ]
}

/// `formatHosts`: up to three hosts, `*` when no rule names one.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_owned();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

/// `printIngressClass`, marking the default class as StorageClasses are (kubernetes#134422).
pub(crate) fn ingress_class(o: &Value, now: Timestamp) -> Cells {
    let mut n = name(o).to_owned();
    if annotation(o, "ingressclass.kubernetes.io/is-default-class") == Some("true") {
        n.push_str(" (default)");
    }
    let parameters = match at(o, &["spec", "parameters"]) {
        None => "<none>".to_owned(),
        Some(p) => {
            let mut s = str_at(p, &["kind"]).to_owned();
            if let Some(group) = opt_str_at(p, &["apiGroup"]) {
                s = format!("{s}.{group}");
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
    };
    row![
        n,
        str_at(o, &["spec", "controller"]),
        parameters,
        age(o, now)
    ]
}

/// `printNetworkPolicy`: `spec.podSelector` is not a pointer, so absent prints `<none>`.
pub(crate) fn network_policy(o: &Value, now: Timestamp) -> Cells {
    // An absent selector reads as the empty one: both select everything and print `<none>`.
    row![
        name(o),
        format_label_selector(at(o, &["spec", "podSelector"])),
        age(o, now)
    ]
}

/// `printServiceCIDR`.
pub(crate) fn service_cidr(o: &Value, now: Timestamp) -> Cells {
    let cidrs: Vec<&str> = arr_at(o, &["spec", "cidrs"])
        .iter()
        .map(|c| c.as_str().unwrap_or_default())
        .collect();
    row![name(o), cidrs.join(","), age(o, now)]
}

/// `printIPAddress`: the parent as `resource.group/namespace/name`, lower-cased.
pub(crate) fn ip_address(o: &Value, now: Timestamp) -> Cells {
    let parent = match at(o, &["spec", "parentRef"]) {
        None => "<none>".to_owned(),
        Some(p) => {
            let resource = str_at(p, &["resource"]);
            let mut s = match str_at(p, &["group"]) {
                "" => resource.to_lowercase(),
                g => format!("{resource}.{g}").to_lowercase(),
            };
            let ns = str_at(p, &["namespace"]);
            if !ns.is_empty() {
                s = format!("{s}/{ns}");
            }
            format!("{s}/{}", str_at(p, &["name"]))
        }
    };
    row![name(o), parent, age(o, now)]
}

/// `printEndpointSlice`.
pub(crate) fn endpoint_slice(o: &Value, now: Timestamp) -> Cells {
    const MAX: usize = 3;
    let mut ports = Vec::new();
    let mut more = false;
    let all_ports = arr_at(o, &["ports"]);
    for p in all_ports {
        if ports.len() < MAX {
            ports.push(match (opt_int_at(p, &["port"]), opt_str_at(p, &["name"])) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_owned(),
                (None, None) => "*".to_owned(),
            });
        } else if ports.len() == MAX {
            more = true;
        }
    }
    let ports = list_with_more(&ports, more, all_ports.len(), MAX);

    let mut addrs = Vec::new();
    let mut more = false;
    let mut count = 0;
    for e in arr_at(o, &["endpoints"]) {
        for a in arr_at(e, &["addresses"]) {
            if addrs.len() < MAX {
                addrs.push(a.as_str().unwrap_or_default().to_owned());
            } else if addrs.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    let endpoints = list_with_more(&addrs, more, count, MAX);
    row![
        name(o),
        str_at(o, &["addressType"]),
        ports,
        endpoints,
        age(o, now)
    ]
}

// ---- rbac.authorization.k8s.io ----

/// `printRoleBinding` / `printClusterRoleBinding` with `rbac.SubjectsStrings`.
pub(crate) fn role_binding(o: &Value, now: Timestamp) -> Cells {
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut service_accounts = Vec::new();
    for s in arr_at(o, &["subjects"]) {
        match str_at(s, &["kind"]) {
            "ServiceAccount" => service_accounts.push(format!(
                "{}/{}",
                str_at(s, &["namespace"]),
                str_at(s, &["name"])
            )),
            "User" => users.push(str_at(s, &["name"]).to_owned()),
            "Group" => groups.push(str_at(s, &["name"]).to_owned()),
            _ => {}
        }
    }
    row![
        name(o),
        slash_pair(at(o, &["roleRef"]), "kind", "name"),
        age(o, now),
        users.join(", "),
        groups.join(", "),
        service_accounts.join(", ")
    ]
}

// ---- certificates.k8s.io ----

/// `printCertificateSigningRequest`.
pub(crate) fn certificate_signing_request(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let requested = match opt_int_at(s, &["expirationSeconds"]) {
        None => "<none>".to_owned(),
        Some(secs) => human_duration(secs.saturating_mul(1_000_000_000)),
    };
    row![
        name(o),
        age(o, now),
        or_none(s, &["signerName"]),
        str_at(s, &["username"]),
        requested,
        csr_status(o)
    ]
}

/// `extractCSRStatus`: Denied over Approved over Pending, then `,Failed` and `,Issued`.
fn csr_status(o: &Value) -> String {
    let conditions = arr_at(o, &["status", "conditions"]);
    let has = |t: &str| conditions.iter().any(|c| str_at(c, &["type"]) == t);
    let mut status = if has("Denied") {
        "Denied"
    } else if has("Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_owned();
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !str_at(o, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

/// `printClusterTrustBundle`.
pub(crate) fn cluster_trust_bundle(o: &Value, _now: Timestamp) -> Cells {
    row![name(o), or_none(o, &["spec", "signerName"])]
}

// ---- coordination.k8s.io ----

/// `printLease`.
pub(crate) fn lease(o: &Value, now: Timestamp) -> Cells {
    row![name(o), str_at(o, &["spec", "holderIdentity"]), age(o, now)]
}

/// `printLeaseCandidate`.
pub(crate) fn lease_candidate(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    row![
        name(o),
        str_at(s, &["leaseName"]),
        str_at(s, &["binaryVersion"]),
        str_at(s, &["emulationVersion"]),
        age(o, now)
    ]
}

// ---- storage.k8s.io ----

/// `storageutil.IsDefaultAnnotation`: the GA or the beta annotation set to `true`.
pub(crate) fn is_default_storage_class(o: &Value) -> bool {
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotation(o, k) == Some("true"))
}

/// `printStorageClass` with `(default)` on the object when it is the default one.
pub(crate) fn storage_class(o: &Value, now: Timestamp) -> Cells {
    storage_class_with_default(o, now, is_default_storage_class(o))
}

pub(crate) fn storage_class_with_default(o: &Value, now: Timestamp, is_default: bool) -> Cells {
    let mut n = name(o).to_owned();
    if is_default {
        n.push_str(" (default)");
    }
    row![
        n,
        str_at(o, &["provisioner"]),
        opt_str_at(o, &["reclaimPolicy"]).unwrap_or("Delete"),
        opt_str_at(o, &["volumeBindingMode"]).unwrap_or("Immediate"),
        bool_at(o, &["allowVolumeExpansion"]),
        age(o, now)
    ]
}

/// `printVolumeAttributesClass`.
pub(crate) fn volume_attributes_class(o: &Value, now: Timestamp) -> Cells {
    let mut n = name(o).to_owned();
    if annotation(
        o,
        "volumeattributesclass.alpha.kubernetes.io/is-default-class",
    ) == Some("true")
    {
        n.push_str(" (default)");
    }
    row![n, str_at(o, &["driverName"]), age(o, now)]
}

/// `printVolumeAttachment`.
pub(crate) fn volume_attachment(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    row![
        name(o),
        str_at(s, &["attacher"]),
        str_at(s, &["source", "persistentVolumeName"]),
        str_at(s, &["nodeName"]),
        bool_at(o, &["status", "attached"]),
        age(o, now)
    ]
}

/// `printCSINode`.
pub(crate) fn csi_node(o: &Value, now: Timestamp) -> Cells {
    row![name(o), len_cell(o, &["spec", "drivers"]), age(o, now)]
}

/// `printCSIDriver`, with upstream's defaults for unset booleans.
pub(crate) fn csi_driver(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let modes: Vec<&str> = arr_at(s, &["volumeLifecycleModes"])
        .iter()
        .map(|m| m.as_str().unwrap_or_default())
        .collect();
    let modes = if modes.is_empty() {
        "<none>".to_owned()
    } else {
        modes.join(",")
    };
    let token_requests = match at(s, &["tokenRequests"]) {
        None => "<unset>".to_owned(),
        Some(_) => arr_at(s, &["tokenRequests"])
            .iter()
            .map(|t| str_at(t, &["audience"]))
            .collect::<Vec<_>>()
            .join(","),
    };
    row![
        name(o),
        opt_bool_at(s, &["attachRequired"]).unwrap_or(true),
        bool_at(s, &["podInfoOnMount"]),
        bool_at(s, &["storageCapacity"]),
        token_requests,
        bool_at(s, &["requiresRepublish"]),
        modes,
        age(o, now)
    ]
}

// ---- scheduling.k8s.io, node.k8s.io ----

/// `printPriorityClass`: PREEMPTIONPOLICY has priority 0 upstream, so it always shows.
pub(crate) fn priority_class(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        int_at(o, &["value"]),
        bool_at(o, &["globalDefault"]),
        age(o, now),
        str_at(o, &["preemptionPolicy"])
    ]
}

/// `printRuntimeClass`.
pub(crate) fn runtime_class(o: &Value, now: Timestamp) -> Cells {
    row![name(o), str_at(o, &["handler"]), age(o, now)]
}

// ---- admissionregistration.k8s.io ----

/// `printMutatingWebhook` / `printValidatingWebhook`.
pub(crate) fn webhook_configuration(o: &Value, now: Timestamp) -> Cells {
    row![name(o), len_cell(o, &["webhooks"]), age(o, now)]
}

fn param_kind(o: &Value) -> String {
    match at(o, &["spec", "paramKind"]) {
        None => "<unset>".to_owned(),
        Some(p) => format!("{}/{}", str_at(p, &["apiVersion"]), str_at(p, &["kind"])),
    }
}

/// `printValidatingAdmissionPolicy`.
pub(crate) fn validating_admission_policy(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        len_cell(o, &["spec", "validations"]),
        param_kind(o),
        age(o, now)
    ]
}

/// `printMutatingAdmissionPolicy`.
pub(crate) fn mutating_admission_policy(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        len_cell(o, &["spec", "mutations"]),
        param_kind(o),
        age(o, now)
    ]
}

/// `printValidatingAdmissionPolicyBinding` / `printMutatingAdmissionPolicyBinding`.
pub(crate) fn admission_policy_binding(o: &Value, now: Timestamp) -> Cells {
    let param = match at(o, &["spec", "paramRef"]) {
        None => "<unset>".to_owned(),
        Some(p) => {
            let pname = str_at(p, &["name"]);
            if !pname.is_empty() {
                match str_at(p, &["namespace"]) {
                    "" => format!("*/{pname}"),
                    ns => format!("{ns}/{pname}"),
                }
            } else if let Some(sel) = at(p, &["selector"]) {
                go_label_selector_string(sel)
            } else {
                "<unset>".to_owned()
            }
        }
    };
    row![
        name(o),
        str_at(o, &["spec", "policyName"]),
        param,
        age(o, now)
    ]
}

// ---- flowcontrol.apiserver.k8s.io ----

/// `printFlowSchema`.
pub(crate) fn flow_schema(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    let distinguisher = match at(s, &["distinguisherMethod"]) {
        None => "<none>".to_owned(),
        Some(d) => str_at(d, &["type"]).to_owned(),
    };
    let missing_pl = condition(arr_at(o, &["status", "conditions"]), "Dangling")
        .map_or_else(|| "?".to_owned(), |c| str_at(c, &["status"]).to_owned());
    row![
        name(o),
        str_at(s, &["priorityLevelConfiguration", "name"]),
        int_at(s, &["matchingPrecedence"]),
        distinguisher,
        age(o, now),
        missing_pl
    ]
}

/// `printPriorityLevelConfiguration`: numbers where configured, `<none>` otherwise.
/// (v1beta2 calls the shares `assuredConcurrencyShares`; conversion renames them.)
pub(crate) fn priority_level_configuration(o: &Value, now: Timestamp) -> Cells {
    let none = || Value::from("<none>");
    let (mut ncs, mut queues, mut hand_size, mut queue_length) = (none(), none(), none(), none());
    if let Some(limited) = at(o, &["spec", "limited"]) {
        ncs = Value::from(
            opt_int_at(limited, &["nominalConcurrencyShares"])
                .unwrap_or_else(|| int_at(limited, &["assuredConcurrencyShares"])),
        );
        if let Some(q) = at(limited, &["limitResponse", "queuing"]) {
            queues = Value::from(int_at(q, &["queues"]));
            hand_size = Value::from(int_at(q, &["handSize"]));
            queue_length = Value::from(int_at(q, &["queueLengthLimit"]));
        }
    }
    Ok(vec![
        Value::from(name(o)),
        Value::from(str_at(o, &["spec", "type"])),
        ncs,
        queues,
        hand_size,
        queue_length,
        Value::from(age(o, now)),
    ])
}

// ---- apiregistration.k8s.io (kube-aggregator's own convertor) ----

/// kube-aggregator `REST.ConvertToTable`: `Local` or `namespace/name`, and the `Available`
/// condition with its reason when it is not `True`.
pub(crate) fn api_service(o: &Value, now: Timestamp) -> Cells {
    let service = match at(o, &["spec", "service"]) {
        None => "Local".to_owned(),
        Some(s) => slash_pair(Some(s), "namespace", "name"),
    };
    let available = match condition(arr_at(o, &["status", "conditions"]), "Available") {
        None => "Unknown".to_owned(),
        Some(c) => {
            let st = str_at(c, &["status"]);
            match str_at(c, &["reason"]) {
                r if st != "True" && !r.is_empty() => format!("{st} ({r})"),
                _ => st.to_owned(),
            }
        }
    };
    row![name(o), service, available, age(o, now)]
}

// ---- resource.k8s.io ----

/// `printDeviceClass` / `printResourceClaimTemplate`: name and age only.
pub(crate) fn name_and_age(o: &Value, now: Timestamp) -> Cells {
    row![name(o), age(o, now)]
}

/// `printScale`: the scale subresource's own Table.
pub(crate) fn scale(o: &Value, now: Timestamp) -> Cells {
    row![
        name(o),
        int_at(o, &["spec", "replicas"]),
        int_at(o, &["status", "replicas"]),
        age(o, now)
    ]
}

/// `printResourceClaim` with `resourceClaimState`.
pub(crate) fn resource_claim(o: &Value, now: Timestamp) -> Cells {
    let mut states = Vec::new();
    let deleting = is_deleting(o);
    if deleting {
        states.push("deleted");
    }
    if at(o, &["status", "allocation"]).is_none() {
        if !deleting {
            states.push("pending");
        }
    } else {
        states.push("allocated");
        if !arr_at(o, &["status", "reservedFor"]).is_empty() {
            states.push("reserved");
        }
    }
    row![name(o), states.join(","), age(o, now)]
}

/// `printResourceSlice`.
pub(crate) fn resource_slice(o: &Value, now: Timestamp) -> Cells {
    let s = spec(o);
    row![
        name(o),
        str_at(s, &["nodeName"]),
        str_at(s, &["driver"]),
        str_at(s, &["pool", "name"]),
        age(o, now)
    ]
}
