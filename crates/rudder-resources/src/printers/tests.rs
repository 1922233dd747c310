//! Table-driven printer tests. Expected cells come from upstream's `printers_test.go` where it
//! has cases (objects translated to their JSON form; rows include the wide cells, which the API
//! server always prints), and from upstream's code where it has none.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rudder_api::resources::ResourceTable;
use serde_json::{json, Value};

use super::*;

/// 2026-01-01T00:00:00Z, the `now` of every test.
const NOW_SECS: i64 = 1_767_225_600;
const S: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * S;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS.unsigned_abs())
}

/// RFC 3339 (with nanoseconds) of `now + offset`.
fn at(offset: i64) -> String {
    let t = Timestamp::from_unix_nanos(i128::from(NOW_SECS) * i128::from(S) + i128::from(offset));
    let base = t.to_rfc3339();
    let frac = t.unix_nanos().rem_euclid(i128::from(S));
    format!("{}.{frac:09}Z", &base[..base.len() - 1])
}

/// Upstream tests' `time.Now().Add(1.9e9)`: clock skew that prints as `0s`.
fn soon() -> String {
    at(1_900_000_000)
}

fn ago(d: i64) -> String {
    at(-d)
}

fn row(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    table_row(group, kind, obj, now()).unwrap_or_else(|e| panic!("{group}/{kind}: {e}"))
}

/// Compares whole rows.
fn check(group: &str, kind: &str, cases: &[(Value, Value)]) {
    for (i, (obj, want)) in cases.iter().enumerate() {
        let got = Value::Array(row(group, kind, obj));
        assert_eq!(&got, want, "{group}/{kind} case {i}: {obj}");
        assert_eq!(
            got.as_array().map(Vec::len),
            Some(columns(group, kind).len()),
            "{kind} case {i}: cells vs columns"
        );
    }
}

/// Compares the first cells (upstream's non-wide expectations).
fn check_prefix(group: &str, kind: &str, cases: &[(Value, Value)]) {
    for (i, (obj, want)) in cases.iter().enumerate() {
        let got = row(group, kind, obj);
        let want = want.as_array().cloned().unwrap_or_default();
        assert_eq!(
            &got[..want.len()],
            &want[..],
            "{group}/{kind} case {i}: {obj}"
        );
    }
}

fn two_containers() -> Value {
    json!([{"name": "fake-container1", "image": "fake-image1"},
           {"name": "fake-container2", "image": "fake-image2"}])
}

// ---- the invariants ----

/// The column data of every resource of the built-in table lines up with the cells, and
/// differs from upstream's v1.26 data only where upstream changed the columns since.
#[test]
fn every_resource_has_as_many_cells_as_columns() {
    let table = match ResourceTable::builtin() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    // Columns upstream added (or reordered) after v1.26, by kind.
    let changed: &[(&str, &str, &[&str])] = &[
        ("batch", "Job", &["Status"]),
        ("batch", "CronJob", &["Timezone"]),
        ("", "PersistentVolume", &["VolumeAttributesClass"]),
        ("", "PersistentVolumeClaim", &["VolumeAttributesClass"]),
        ("scheduling.k8s.io", "PriorityClass", &["PreemptionPolicy"]),
        ("", "ResourceQuota", &[]),
    ];
    let objects = [
        json!({}),
        json!({"metadata": {"name": "x", "creationTimestamp": ago(5 * S)},
               "spec": {}, "status": {}}),
        json!({"metadata": 7, "spec": [], "status": "odd", "data": 1, "webhooks": {}}),
    ];
    let mut checked = 0;
    for info in table.resources() {
        let cols = table_columns(info);
        for obj in &objects {
            let cells = match table_row(&info.group, &info.kind, obj, now()) {
                Ok(c) => c,
                Err(e) => panic!("{}/{}: {e}", info.group, info.kind),
            };
            assert_eq!(
                cells.len(),
                cols.len(),
                "{} {}",
                info.api_version(),
                info.plural
            );
        }
        assert_eq!(
            column_definitions(info).as_array().map(Vec::len),
            Some(cols.len())
        );
        if info.columns.is_empty() {
            continue; // not listable: no column data to compare with
        }
        checked += 1;
        let key = |c: &TableColumn| {
            (
                c.name.clone(),
                c.type_.clone(),
                c.format.clone(),
                c.priority,
            )
        };
        let mine: Vec<_> = cols.iter().map(key).collect();
        let theirs: Vec<_> = info.columns.iter().map(key).collect();
        match changed
            .iter()
            .find(|(g, k, _)| *g == info.group && *k == info.kind)
        {
            None => assert_eq!(mine, theirs, "{} {}", info.api_version(), info.plural),
            Some((_, _, added)) => {
                let mut kept: Vec<_> = mine
                    .iter()
                    .filter(|c| !added.contains(&c.0.as_str()))
                    .cloned()
                    .collect();
                let mut theirs = theirs.clone();
                if added.is_empty() {
                    // Reordered only.
                    kept.sort();
                    theirs.sort();
                }
                assert_eq!(kept, theirs, "{} {}", info.api_version(), info.plural);
            }
        }
        // A printer exactly where the data has more than the default columns.
        let default_like = info.columns.len() == 2 && info.columns[1].name == "Created At";
        assert_eq!(
            has_printer(&info.group, &info.kind),
            !default_like,
            "{} {}",
            info.api_version(),
            info.plural
        );
    }
    // 53 in the v1.26 capture, less the five of the betas 1.37 no longer serves.
    assert!(checked >= 48, "only {checked} resources with column data");
}

/// Printers for kinds beyond the v1.26 data, and odd objects: never a panic, always as many
/// cells as columns.
#[test]
fn odd_objects_print_without_panicking() {
    let odd = [
        Value::Null,
        json!([]),
        json!("a string"),
        json!(42),
        json!({"status": {"containerStatuses": [{"restartCount": i64::MAX, "lastState":
            {"terminated": {"finishedAt": "0001-01-01T00:00:00Z"}}}, {"restartCount": i64::MAX}],
            "podIPs": [1], "phase": 3}}),
        json!({"metadata": {"name": 5, "creationTimestamp": "yesterday",
                            "deletionTimestamp": "x", "labels": [], "annotations": "no",
                            "ownerReferences": [{"controller": true, "apiVersion": 3}]},
               "spec": {"containers": "none", "initContainers": [1, null], "replicas": "3",
                        "selector": {"matchLabels": {"a": 1}}, "ports": [{"port": "80"}],
                        "metrics": [{"type": "Resource"}, {"type": "Pods"}, {"type": "Object"},
                                    {"type": "External"}, {"type": "ContainerResource"},
                                    {"type": 9}],
                        "rules": [null], "tls": {}, "capacity": {"storage": []},
                        "podSelector": "x", "limited": {"limitResponse": {"queuing": 1}},
                        "paramRef": {"selector": 1}, "parentRef": {}, "source": 1},
               "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": "1"}}},
                                                 {"state": {"waiting": 1}}],
                          "initContainerStatuses": [{"state": 5}], "conditions": [5, {}],
                          "hard": {"cpu": {}}, "loadBalancer": {"ingress": [1]},
                          "currentMetrics": [null, 5], "allocation": {}},
               "subsets": [{"addresses": [{"ip": 1}], "ports": [{}]}],
               "conditions": "x", "data": [], "webhooks": 3}),
    ];
    for p in PRINTERS {
        for obj in &odd {
            let cells = table_row(p.group, p.kind, obj, now());
            if let Ok(cells) = cells {
                assert_eq!(
                    cells.len(),
                    p.columns.len(),
                    "{}/{}: {obj}",
                    p.group,
                    p.kind
                );
            }
        }
    }
}

// ---- pods ----

fn pod(name: &str, containers: usize, status: Value) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"containers": vec![json!({}); containers]},
           "status": status})
}

fn terminated_ago(d: i64) -> Value {
    json!({"terminated": {"finishedAt": ago(d)}})
}

#[test]
fn pods() {
    let running = json!({"running": {}});
    let completed = json!({"terminated": {"reason": "Completed", "exitCode": 0}});
    let deleting = |mut p: Value| {
        p["metadata"]["deletionTimestamp"] = json!(ago(10 * S));
        p
    };
    check_prefix(
        "",
        "Pod",
        &[
            (
                pod(
                    "test1",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": running}, {"restartCount": 3}]}),
                ),
                json!(["test1", "1/2", "podPhase", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test2",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": running},
                    {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]}),
                ),
                json!(["test2", "1/2", "ContainerWaitingReason", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test3",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [
                    {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3},
                    {"state": {"terminated": {"reason": "ContainerTerminatedReason"}}, "restartCount": 3}]}),
                ),
                json!(["test3", "0/2", "ContainerWaitingReason", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test4",
                    2,
                    json!({"phase": "podPhase", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": running},
                    {"ready": true, "restartCount": 3}]}),
                ),
                json!(["test4", "1/2", "podPhase", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test5",
                    2,
                    json!({"reason": "podReason", "phase": "podPhase", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": running},
                    {"ready": true, "restartCount": 3}]}),
                ),
                json!(["test5", "1/2", "podReason", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test6",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": completed},
                    {"ready": true, "restartCount": 3, "state": running}]}),
                ),
                json!(["test6", "1/2", "NotReady", "6", "<unknown>"]),
            ),
            (
                pod(
                    "test6",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": completed},
                    {"ready": true, "restartCount": 3, "state": running}],
                    "conditions": [{"type": "Ready", "status": "True"}]}),
                ),
                json!(["test6", "1/2", "Running", "6", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test7"},
                       "spec": {"initContainers": [{}], "containers": [{}]},
                       "status": {"phase": "podPhase",
                                  "initContainerStatuses": [{"ready": false, "restartCount": 3,
                                      "state": running, "lastState": terminated_ago(10 * S)}],
                                  "containerStatuses": [{"ready": false, "restartCount": 0,
                                      "state": {"waiting": {}}}]}}),
                json!(["test7", "0/1", "Init:0/1", "3 (10s ago)", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test8"},
                       "spec": {"initContainers": [{}, {}], "containers": [{}]},
                       "status": {"phase": "podPhase",
                                  "initContainerStatuses": [
                                      {"restartCount": 3, "state": running,
                                       "lastState": terminated_ago(10 * S)},
                                      {"state": {"waiting": {}}}],
                                  "containerStatuses": [{"state": {"waiting": {}}}]}}),
                json!(["test8", "0/1", "Init:0/2", "3 (10s ago)", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test9"},
                       "spec": {"initContainers": [{}, {}], "containers": [{}]},
                       "status": {"phase": "podPhase",
                                  "initContainerStatuses": [
                                      {"state": {"terminated": {}}},
                                      {"restartCount": 3, "state": running,
                                       "lastState": terminated_ago(10 * S)}],
                                  "containerStatuses": [{"state": {"waiting": {}}}]}}),
                json!(["test9", "0/1", "Init:1/2", "3 (10s ago)", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test10"},
                       "spec": {"initContainers": [{}, {}], "containers": [{}]},
                       "status": {"phase": "podPhase",
                                  "initContainerStatuses": [
                                      {"restartCount": 2, "state": {"terminated": {}},
                                       "lastState": terminated_ago(2 * MINUTE)},
                                      {"restartCount": 3, "state": running,
                                       "lastState": terminated_ago(10 * S)}],
                                  "containerStatuses": [{"state": {"waiting": {}}}]}}),
                json!(["test10", "0/1", "Init:1/2", "5 (10s ago)", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test11"},
                       "spec": {"initContainers": [{}], "containers": [{}]},
                       "status": {"phase": "Running",
                                  "initContainerStatuses": [
                                      {"restartCount": 2, "state": {"terminated": {}},
                                       "lastState": terminated_ago(2 * MINUTE)}],
                                  "containerStatuses": [{"restartCount": 4, "state": running,
                                      "lastState": terminated_ago(20 * S)}]}}),
                json!(["test11", "0/1", "Running", "4 (20s ago)", "<unknown>"]),
            ),
            (
                pod(
                    "test12",
                    1,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 3, "state": running,
                     "lastState": terminated_ago(5 * DAY)}]}),
                ),
                json!(["test12", "1/1", "Running", "3 (5d ago)", "<unknown>"]),
            ),
            (
                pod(
                    "test13",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 0, "state": running},
                    {"ready": true, "restartCount": 3, "state": running,
                     "lastState": terminated_ago(10 * DAY)}]}),
                ),
                json!(["test13", "2/2", "Running", "3 (10d ago)", "<unknown>"]),
            ),
            (
                pod(
                    "test14",
                    2,
                    json!({"phase": "Running", "containerStatuses": [
                    {"ready": true, "restartCount": 6, "state": running,
                     "lastState": terminated_ago(5 * DAY)},
                    {"ready": true, "restartCount": 3, "state": running,
                     "lastState": terminated_ago(20 * DAY)}]}),
                ),
                json!(["test14", "2/2", "Running", "9 (5d ago)", "<unknown>"]),
            ),
            (
                pod(
                    "test15",
                    2,
                    json!({"phase": "podPhase", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                ),
                json!(["test15", "0/2", "SchedulingGated", "0", "<unknown>"]),
            ),
            (
                pod(
                    "test16",
                    1,
                    json!({"phase": "Succeeded", "containerStatuses": [
                    {"ready": false, "restartCount": 0, "state": completed}]}),
                ),
                json!(["test16", "0/1", "Completed", "0", "<unknown>"]),
            ),
            (
                pod(
                    "test17",
                    1,
                    json!({"phase": "Failed", "containerStatuses": [
                    {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
                ),
                json!(["test17", "0/1", "Error", "0", "<unknown>"]),
            ),
            (
                deleting(pod(
                    "test18",
                    1,
                    json!({"phase": "Succeeded", "containerStatuses": [
                    {"state": completed}]}),
                )),
                json!(["test18", "0/1", "Completed", "0", "<unknown>"]),
            ),
            (
                deleting(pod(
                    "test19",
                    1,
                    json!({"phase": "Running", "containerStatuses": [
                    {"state": running}]}),
                )),
                json!(["test19", "0/1", "Terminating", "0", "<unknown>"]),
            ),
            (
                deleting(pod("test20", 1, json!({"phase": "Pending"}))),
                json!(["test20", "0/1", "Terminating", "0", "<unknown>"]),
            ),
            // Not in upstream's tests: a node that stopped reporting.
            (
                deleting(pod(
                    "lost",
                    1,
                    json!({"phase": "Running", "reason": "NodeLost"}),
                )),
                json!(["lost", "0/1", "Unknown", "0", "<unknown>"]),
            ),
            // kubernetes#124766: a failed container outranks a sibling's "Completed".
            (
                pod(
                    "error",
                    2,
                    json!({"phase": "Failed", "containerStatuses": [
                    {"state": completed},
                    {"state": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
                ),
                json!(["error", "0/2", "Error", "0", "<unknown>"]),
            ),
            (
                pod(
                    "sig",
                    1,
                    json!({"phase": "Failed", "containerStatuses": [
                    {"state": {"terminated": {"signal": 9, "exitCode": 137}}}]}),
                ),
                json!(["sig", "0/1", "Signal:9", "0", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "crash", "creationTimestamp": ago(200 * S)},
                       "spec": {"initContainers": [{}], "containers": [{}]},
                       "status": {"phase": "Pending", "initContainerStatuses": [
                           {"restartCount": 4, "lastState": terminated_ago(90 * S),
                            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}),
                json!([
                    "crash",
                    "0/1",
                    "Init:CrashLoopBackOff",
                    "4 (90s ago)",
                    "3m20s"
                ]),
            ),
            (
                json!({"metadata": {"name": "initfail"},
                       "spec": {"initContainers": [{}], "containers": [{}]},
                       "status": {"initContainerStatuses": [
                           {"state": {"terminated": {"exitCode": 2}}}]}}),
                json!(["initfail", "0/1", "Init:ExitCode:2", "0", "<unknown>"]),
            ),
        ],
    );
}

#[test]
fn pods_with_restartable_init_containers() {
    let sidecars = json!([{"name": "restartable-init-1", "restartPolicy": "Always"},
                          {"name": "restartable-init-2", "restartPolicy": "Always"}]);
    let p = |status: Value| {
        json!({"metadata": {"name": "test"},
               "spec": {"initContainers": sidecars, "containers": [{}]}, "status": status})
    };
    check_prefix(
        "",
        "Pod",
        &[
            (
                p(json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}},
                     "started": false, "lastState": terminated_ago(10 * S)},
                    {"name": "restartable-init-2", "state": {"waiting": {}}, "started": false}],
                    "containerStatuses": [{"state": {"waiting": {}}}],
                    "conditions": [{"type": "Initialized", "status": "False"}]})),
                json!(["test", "0/3", "Init:0/2", "3 (10s ago)", "<unknown>"]),
            ),
            (
                p(json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}},
                     "started": true, "lastState": terminated_ago(10 * S)},
                    {"name": "restartable-init-2", "state": {"running": {}}, "started": false}],
                    "containerStatuses": [{"state": {"waiting": {}}}],
                    "conditions": [{"type": "Initialized", "status": "False"}]})),
                json!(["test", "0/3", "Init:1/2", "3 (10s ago)", "<unknown>"]),
            ),
            (
                p(json!({"phase": "Running", "initContainerStatuses": [
                    {"name": "restartable-init-1", "restartCount": 3, "state": {"running": {}},
                     "started": true, "lastState": terminated_ago(10 * S)},
                    {"name": "restartable-init-2", "state": {"running": {}}, "started": true}],
                    "containerStatuses": [{"ready": true, "restartCount": 4,
                        "state": {"running": {}}, "lastState": terminated_ago(20 * S)}],
                    "conditions": [{"type": "Initialized", "status": "True"}]})),
                json!(["test", "1/3", "Running", "7 (10s ago)", "<unknown>"]),
            ),
            (
                p(json!({"phase": "Succeeded", "initContainerStatuses": [
                    {"name": "restartable-init-1", "restartCount": 3,
                     "state": {"terminated": {"reason": "Error", "exitCode": 137}},
                     "started": false, "lastState": terminated_ago(10 * S)},
                    {"name": "restartable-init-2",
                     "state": {"terminated": {"reason": "Error", "exitCode": 137}}, "started": false}],
                    "containerStatuses": [{"restartCount": 4,
                        "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                        "lastState": terminated_ago(20 * S)}],
                    "conditions": [{"type": "Initialized", "status": "True"}]})),
                json!(["test", "0/3", "Completed", "7 (10s ago)", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test4"},
                       "spec": {"initContainers": [{"name": "init1", "image": "initimage"},
                                {"name": "sidecar1", "image": "sidecarimage", "restartPolicy": "Always"}],
                                "containers": [{"name": "container1", "image": "containerimage"}]},
                       "status": {"phase": "Running",
                                  "initContainerStatuses": [{"name": "initinvalid"}, {"name": "init1"},
                                                            {"name": "sidecar1"}],
                                  "containerStatuses": [{"name": "containerinvalid"},
                                                        {"name": "container1"}]}}),
                json!(["test4", "0/2", "Init:0/2", "0", "<unknown>"]),
            ),
        ],
    );
}

#[test]
fn pods_wide_and_row_conditions() {
    let gates = json!([{"conditionType": "condition1"}, {"conditionType": "condition2"},
                       {"conditionType": "condition3"}]);
    let statuses = json!([{"ready": true, "restartCount": 3, "state": {"running": {}}},
                          {"restartCount": 3}]);
    let p = |ips: Value| {
        json!({"metadata": {"name": "test1"},
               "spec": {"containers": [{}, {}], "nodeName": "test1", "readinessGates": gates},
               "status": {"conditions": [{"type": "condition1", "status": "False"},
                                         {"type": "condition2", "status": "True"}],
                          "phase": "podPhase", "podIPs": ips, "containerStatuses": statuses,
                          "nominatedNodeName": "node1"}})
    };
    let wide = json!([
        "test1",
        "1/2",
        "podPhase",
        "6",
        "<unknown>",
        "1.1.1.1",
        "test1",
        "node1",
        "1/3"
    ]);
    check(
        "",
        "Pod",
        &[
            (p(json!([{"ip": "1.1.1.1"}])), wide.clone()),
            (p(json!([{"ip": "1.1.1.1"}, {"ip": "2001:db8::"}])), wide),
            (
                json!({"metadata": {"name": "test2"}, "spec": {"containers": [{}, {}]},
                       "status": {"phase": "podPhase", "containerStatuses": [
                           {"ready": true, "restartCount": 3, "state": {"running": {}}},
                           {"state": {"waiting": {"reason": "ContainerWaitingReason"}}, "restartCount": 3}]}}),
                json!([
                    "test2",
                    "1/2",
                    "ContainerWaitingReason",
                    "6",
                    "<unknown>",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>"
                ]),
            ),
            // Only podIP set: the v1 → internal conversion derives the list from it.
            (
                json!({"metadata": {"name": "ip", "creationTimestamp": ago(5 * S)},
                       "spec": {"containers": [{}]}, "status": {"phase": "Pending", "podIP": "10.0.0.9"}}),
                json!([
                    "ip", "0/1", "Pending", "0", "5s", "10.0.0.9", "<none>", "<none>", "<none>"
                ]),
            ),
        ],
    );
    let succeeded = pod("s", 1, json!({"phase": "Succeeded"}));
    assert_eq!(
        row_conditions("", "Pod", &succeeded),
        Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                     "message": "The pod has completed successfully."}])
        )
    );
    assert_eq!(
        row_conditions("", "Pod", &pod("f", 1, json!({"phase": "Failed"}))),
        Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed",
                     "message": "The pod failed."}])
        )
    );
    assert_eq!(
        row_conditions("", "Pod", &pod("r", 1, json!({"phase": "Running"}))),
        None
    );
    assert_eq!(row_conditions("apps", "Deployment", &succeeded), None);
}

// ---- events ----

#[test]
fn events() {
    let base = |extra: Value| {
        let mut e = json!({"involvedObject": {"kind": "Deployment", "name": "Deployment Name",
                                             "fieldPath": "spec.containers{foo}"},
                           "reason": "Event Reason", "message": "Message Data",
                           "type": "Warning", "metadata": {"name": "event"}});
        if let (Some(e), Some(extra)) = (e.as_object_mut(), extra.as_object()) {
            e.extend(extra.clone());
        }
        e
    };
    let src = json!({"component": "kubelet", "host": "Node1"});
    let row = |last: &str, first: &str, count: i64| {
        json!([
            last,
            "Warning",
            "Event Reason",
            "deployment/Deployment Name",
            "spec.containers{foo}",
            "kubelet, Node1",
            "Message Data",
            first,
            count,
            "event"
        ])
    };
    check(
        "",
        "Event",
        &[
            (
                json!({"source": {"component": "kubelet"},
                       "involvedObject": {"kind": "Pod", "name": "Pod Name",
                                          "fieldPath": "spec.containers{foo}"},
                       "reason": "Event Reason", "message": "Message Data",
                       "firstTimestamp": ago(3 * DAY), "lastTimestamp": ago(2 * DAY),
                       "count": 6, "type": "Normal", "metadata": {"name": "event1"}}),
                json!([
                    "2d",
                    "Normal",
                    "Event Reason",
                    "pod/Pod Name",
                    "spec.containers{foo}",
                    "kubelet",
                    "Message Data",
                    "3d",
                    6,
                    "event1"
                ]),
            ),
            (
                base(json!({"source": src, "firstTimestamp": ago(3 * DAY),
                            "lastTimestamp": ago(2 * DAY), "count": 6})),
                row("2d", "3d", 6),
            ),
            (
                base(json!({"source": src, "eventTime": ago(3 * DAY),
                            "lastTimestamp": ago(3 * DAY), "count": 1})),
                row("3d", "3d", 1),
            ),
            (
                base(json!({"source": src, "eventTime": ago(3 * DAY),
                            "firstTimestamp": ago(3 * DAY), "count": 1})),
                row("3d", "3d", 1),
            ),
            (
                base(json!({"source": src, "eventTime": ago(3 * DAY), "count": 1})),
                row("3d", "3d", 1),
            ),
            (
                base(json!({"source": src, "eventTime": ago(3 * DAY),
                            "series": {"count": 2, "lastObservedTime": ago(2 * DAY)}})),
                row("2d", "3d", 2),
            ),
            (
                base(json!({"source": src, "eventTime": ago(3 * DAY)})),
                row("3d", "3d", 1),
            ),
            (
                base(
                    json!({"reportingComponent": "kubelet", "reportingInstance": "test",
                            "firstTimestamp": ago(3 * DAY), "lastTimestamp": ago(2 * DAY),
                            "count": 6, "message": "  Message Data\n"}),
                ),
                json!([
                    "2d",
                    "Warning",
                    "Event Reason",
                    "deployment/Deployment Name",
                    "spec.containers{foo}",
                    "kubelet, test",
                    "Message Data",
                    "3d",
                    6,
                    "event"
                ]),
            ),
            (
                json!({}),
                json!(["<unknown>", "", "", "", "", "", "", "<unknown>", 1, ""]),
            ),
        ],
    );
    // events.k8s.io/v1 converts into the core shape first.
    check(
        "events.k8s.io",
        "Event",
        &[(
            json!({"apiVersion": "events.k8s.io/v1", "metadata": {"name": "event"},
                   "regarding": {"kind": "Deployment", "name": "Deployment Name",
                                 "fieldPath": "spec.containers{foo}"},
                   "reason": "Event Reason", "note": "Message Data", "type": "Warning",
                   "eventTime": ago(3 * DAY), "reportingController": "kubelet",
                   "reportingInstance": "Node1",
                   "series": {"count": 4, "lastObservedTime": ago(90 * S)}}),
            row("90s", "3d", 4),
        )],
    );
}

// ---- other core kinds ----

#[test]
fn namespaces_secrets_service_accounts_config_maps() {
    check(
        "",
        "Namespace",
        &[
            (
                json!({"metadata": {"name": "namespace1", "creationTimestamp": soon()},
                       "status": {"phase": "FooStatus"}}),
                json!(["namespace1", "FooStatus", "0s"]),
            ),
            (
                json!({"metadata": {"name": "namespace2"}}),
                json!(["namespace2", "", "<unknown>"]),
            ),
        ],
    );
    check(
        "",
        "Secret",
        &[
            (
                json!({"metadata": {"name": "secret1", "creationTimestamp": soon()},
                       "type": "kubernetes.io/service-account-token",
                       "data": {"token": "c2VjcmV0IGRhdGE="}}),
                json!(["secret1", "kubernetes.io/service-account-token", 1, "0s"]),
            ),
            (
                json!({"metadata": {"name": "secret1", "creationTimestamp": soon()},
                       "type": "kubernetes.io/service-account-token"}),
                json!(["secret1", "kubernetes.io/service-account-token", 0, "0s"]),
            ),
        ],
    );
    check(
        "",
        "ServiceAccount",
        &[
            (
                json!({"metadata": {"name": "sa1", "creationTimestamp": soon()}, "secrets": []}),
                json!(["sa1", 0, "0s"]),
            ),
            (
                json!({"metadata": {"name": "sa1", "creationTimestamp": soon()},
                       "secrets": [{"name": "Secret1"}, {"name": "Secret2"}]}),
                json!(["sa1", 2, "0s"]),
            ),
        ],
    );
    check(
        "",
        "ConfigMap",
        &[
            (
                json!({"metadata": {"name": "configmap1", "creationTimestamp": soon()}}),
                json!(["configmap1", 0, "0s"]),
            ),
            (
                json!({"metadata": {"name": "configmap2", "creationTimestamp": soon()},
                       "data": {"foo": "bar"}}),
                json!(["configmap2", 1, "0s"]),
            ),
            (
                json!({"metadata": {"name": "configmap3", "creationTimestamp": soon()},
                       "data": {"foo": "bar"}, "binaryData": {"bin": "YmluYXJ5IGRhdGE="}}),
                json!(["configmap3", 2, "0s"]),
            ),
        ],
    );
}

#[test]
fn nodes() {
    let n = |name: &str, unschedulable: bool, conditions: Value| {
        json!({"metadata": {"name": name}, "spec": {"unschedulable": unschedulable},
               "status": {"conditions": conditions}})
    };
    let ready = |s: &str| json!({"type": "Ready", "status": s});
    let status = |name: &str, s: &str| json!([name, s, "<none>", "<unknown>", ""]);
    check_prefix(
        "",
        "Node",
        &[
            (
                n("foo1", false, json!([ready("True")])),
                status("foo1", "Ready"),
            ),
            (
                n("foo2", true, json!([ready("True")])),
                status("foo2", "Ready,SchedulingDisabled"),
            ),
            (
                n("foo3", false, json!([ready("True"), ready("True")])),
                status("foo3", "Ready"),
            ),
            (
                n("foo4", false, json!([ready("False")])),
                status("foo4", "NotReady"),
            ),
            (
                n("foo5", true, json!([ready("False")])),
                status("foo5", "NotReady,SchedulingDisabled"),
            ),
            (
                n(
                    "foo6",
                    false,
                    json!([{"type": "InvalidValue", "status": "True"}]),
                ),
                status("foo6", "Unknown"),
            ),
            (n("foo7", false, json!([{}])), status("foo7", "Unknown")),
            (
                n(
                    "foo8",
                    true,
                    json!([{"type": "InvalidValue", "status": "True"}]),
                ),
                status("foo8", "Unknown,SchedulingDisabled"),
            ),
            (
                n("foo9", true, json!([{}])),
                status("foo9", "Unknown,SchedulingDisabled"),
            ),
            // The last Ready condition wins, as in upstream's condition map.
            (
                n("last", false, json!([ready("True"), ready("Unknown")])),
                status("last", "NotReady"),
            ),
            (
                json!({"metadata": {"name": "foo9"}}),
                status("foo9", "Unknown"),
            ),
            (
                json!({"metadata": {"name": "foo10", "labels": {
                    "node-role.kubernetes.io/master": "", "node-role.kubernetes.io/control-plane": "",
                    "node-role.kubernetes.io/proxy": "", "kubernetes.io/role": "node"}}}),
                json!([
                    "foo10",
                    "Unknown",
                    "control-plane,master,node,proxy",
                    "<unknown>",
                    ""
                ]),
            ),
            (
                json!({"metadata": {"name": "foo11", "labels": {"kubernetes.io/role": "node"}}}),
                json!(["foo11", "Unknown", "node", "<unknown>", ""]),
            ),
            (
                json!({"metadata": {"name": "127.0.0.1"}}),
                status("127.0.0.1", "Unknown"),
            ),
            (json!({"metadata": {"name": ""}}), status("", "Unknown")),
        ],
    );
    let wide = |name: &str, info: Value, addresses: Value| json!({"metadata": {"name": name}, "status": {"nodeInfo": info, "addresses": addresses}});
    let ext = |ip: &str| json!({"type": "ExternalIP", "address": ip});
    let int = |ip: &str| json!({"type": "InternalIP", "address": ip});
    let cells = |name: &str, i: &str, e: &str, os: &str, k: &str, cr: &str| {
        json!([name, "Unknown", "<none>", "<unknown>", "", i, e, os, k, cr])
    };
    check(
        "",
        "Node",
        &[
            (
                wide(
                    "foo1",
                    json!({"osImage": "fake-os-image"}),
                    json!([ext("1.1.1.1")]),
                ),
                cells(
                    "foo1",
                    "<none>",
                    "1.1.1.1",
                    "fake-os-image",
                    "<unknown>",
                    "<unknown>",
                ),
            ),
            (
                wide(
                    "foo2",
                    json!({"kernelVersion": "fake-kernel-version"}),
                    json!([ext("1.1.1.1")]),
                ),
                cells(
                    "foo2",
                    "<none>",
                    "1.1.1.1",
                    "<unknown>",
                    "fake-kernel-version",
                    "<unknown>",
                ),
            ),
            (
                wide(
                    "foo1",
                    json!({"containerRuntimeVersion": "foo://1.2.3"}),
                    json!([ext("1.1.1.1")]),
                ),
                cells(
                    "foo1",
                    "<none>",
                    "1.1.1.1",
                    "<unknown>",
                    "<unknown>",
                    "foo://1.2.3",
                ),
            ),
            (
                wide("foo2", json!({}), json!([int("1.1.1.1")])),
                cells(
                    "foo2",
                    "1.1.1.1",
                    "<none>",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>",
                ),
            ),
            (
                wide(
                    "foo3",
                    json!({}),
                    json!([ext("2.2.2.2"), int("3.3.3.3"), ext("4.4.4.4")]),
                ),
                cells(
                    "foo3",
                    "3.3.3.3",
                    "2.2.2.2",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>",
                ),
            ),
            (
                wide(
                    "foo3",
                    json!({}),
                    json!([int("2.2.2.2"), ext("3.3.3.3"), int("4.4.4.4")]),
                ),
                cells(
                    "foo3",
                    "2.2.2.2",
                    "3.3.3.3",
                    "<unknown>",
                    "<unknown>",
                    "<unknown>",
                ),
            ),
            // kubernetes#132402: the architecture follows the kernel version.
            (
                wide(
                    "arch",
                    json!({"kernelVersion": "6.8.0-51-generic", "architecture": "arm64",
                                    "kubeletVersion": "v1.37.1"}),
                    json!([]),
                ),
                json!([
                    "arch",
                    "Unknown",
                    "<none>",
                    "<unknown>",
                    "v1.37.1",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "6.8.0-51-generic (arm64)",
                    "<unknown>"
                ]),
            ),
        ],
    );
}

#[test]
fn services() {
    let lb = |name: &str, ip: &str, ports: Value, ingress: Value, selector: Value| {
        json!({"metadata": {"name": name},
               "spec": {"clusterIPs": [ip], "type": "LoadBalancer", "ports": ports,
                        "selector": selector},
               "status": {"loadBalancer": {"ingress": ingress}}})
    };
    let tcp80 = json!([{"port": 80, "protocol": "TCP"}]);
    let three = json!([{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"},
                       {"port": 8000, "protocol": "TCP"}]);
    let many =
        json!([{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}, {"ip": "5.6.7.8", "hostname": "host5678"}]);
    check(
        "",
        "Service",
        &[
            (
                lb(
                    "service1",
                    "1.2.3.4",
                    tcp80.clone(),
                    json!([{"ip": "2.3.4.5"}, {"ip": "3.4.5.6"}]),
                    json!(null),
                ),
                json!([
                    "service1",
                    "LoadBalancer",
                    "1.2.3.4",
                    "2.3.4.5,3.4.5.6",
                    "80/TCP",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                lb(
                    "service2",
                    "1.3.4.5",
                    json!([{"port": 80, "protocol": "TCP"}, {"port": 8090, "protocol": "UDP"},
                     {"port": 8000, "protocol": "TCP"}, {"port": 7777, "protocol": "SCTP"}]),
                    json!([]),
                    json!(null),
                ),
                json!([
                    "service2",
                    "LoadBalancer",
                    "1.3.4.5",
                    "<pending>",
                    "80/TCP,8090/UDP,8000/TCP,7777/SCTP",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                lb(
                    "service3",
                    "1.4.5.6",
                    three.clone(),
                    json!([{"ip": "2.3.4.5"}]),
                    json!(null),
                ),
                json!([
                    "service3",
                    "LoadBalancer",
                    "1.4.5.6",
                    "2.3.4.5",
                    "80/TCP,8090/UDP,8000/TCP",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            // Upstream's non-wide case clips this to "2.3.4.5,3.4.5..."; the server prints wide.
            (
                lb("service4", "1.5.6.7", three, many, json!({"foo": "bar"})),
                json!([
                    "service4",
                    "LoadBalancer",
                    "1.5.6.7",
                    "2.3.4.5,3.4.5.6,5.6.7.8",
                    "80/TCP,8090/UDP,8000/TCP",
                    "<unknown>",
                    "foo=bar"
                ]),
            ),
        ],
    );
    let svc = |name: &str, spec: Value, status: Value| json!({"metadata": {"name": name}, "spec": spec, "status": status});
    let tcp = |port: i64| json!([{"protocol": "tcp", "port": port}]);
    check(
        "",
        "Service",
        &[
            (
                svc(
                    "test1",
                    json!({"type": "ClusterIP", "ports": tcp(2233), "clusterIPs": ["10.9.8.7"],
                                    "selector": {"foo": "bar"}}),
                    json!({}),
                ),
                json!([
                    "test1",
                    "ClusterIP",
                    "10.9.8.7",
                    "<none>",
                    "2233/tcp",
                    "<unknown>",
                    "foo=bar"
                ]),
            ),
            (
                svc(
                    "test2",
                    json!({"type": "NodePort", "clusterIPs": ["10.9.8.7"],
                                    "ports": [{"protocol": "tcp", "port": 8888, "nodePort": 9999}]}),
                    json!({}),
                ),
                json!([
                    "test2",
                    "NodePort",
                    "10.9.8.7",
                    "<none>",
                    "8888:9999/tcp",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                svc(
                    "test3",
                    json!({"type": "LoadBalancer", "ports": tcp(8888), "clusterIPs": ["10.9.8.7"]}),
                    json!({}),
                ),
                json!([
                    "test3",
                    "LoadBalancer",
                    "10.9.8.7",
                    "<pending>",
                    "8888/tcp",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                svc(
                    "test4",
                    json!({"type": "LoadBalancer", "ports": tcp(8888), "clusterIPs": ["10.9.8.7"],
                                    "externalIPs": ["80.11.12.10"]}),
                    json!({}),
                ),
                json!([
                    "test4",
                    "LoadBalancer",
                    "10.9.8.7",
                    "80.11.12.10",
                    "8888/tcp",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                svc(
                    "test5",
                    json!({"type": "LoadBalancer", "ports": tcp(8888), "clusterIPs": ["10.9.8.7"],
                                    "externalIPs": ["80.11.12.10"]}),
                    json!({"loadBalancer": {"ingress": [{"ip": "3.4.5.6", "hostname": "test.cluster.com"}]}}),
                ),
                json!([
                    "test5",
                    "LoadBalancer",
                    "10.9.8.7",
                    "3.4.5.6,80.11.12.10",
                    "8888/tcp",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                svc(
                    "test6",
                    json!({"type": "LoadBalancer", "ports": tcp(8888), "clusterIPs": ["10.9.8.7"],
                                    "externalIPs": ["80.11.12.10", "80.11.12.11"]}),
                    json!({"loadBalancer": {"ingress": [{"ip": "2.3.4.5", "hostname": "test.cluster.local"},
                                                        {"ip": "3.4.5.6", "hostname": "test.cluster.com"}]}}),
                ),
                json!([
                    "test6",
                    "LoadBalancer",
                    "10.9.8.7",
                    "2.3.4.5,3.4.5.6,80.11.12.10,80.11.12.11",
                    "8888/tcp",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            (
                svc(
                    "test7",
                    json!({"type": "ExternalName", "externalName": "my.database.example.com"}),
                    json!({}),
                ),
                json!([
                    "test7",
                    "ExternalName",
                    "<none>",
                    "my.database.example.com",
                    "<none>",
                    "<unknown>",
                    "<none>"
                ]),
            ),
            // Headless, and a clusterIP without the list.
            (
                svc(
                    "headless",
                    json!({"type": "ClusterIP", "clusterIP": "None"}),
                    json!({}),
                ),
                json!([
                    "headless",
                    "ClusterIP",
                    "None",
                    "<none>",
                    "<none>",
                    "<unknown>",
                    "<none>"
                ]),
            ),
        ],
    );
}

#[test]
fn endpoints_and_slices() {
    let ep = |name: &str, created: String, subsets: Value| json!({"metadata": {"name": name, "creationTimestamp": created}, "subsets": subsets});
    let addrs = json!([{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]);
    check(
        "",
        "Endpoints",
        &[
            (
                ep("endpoint1", soon(), json!(null)),
                json!(["endpoint1", "<none>", "0s"]),
            ),
            (
                ep("endpoint3", ago(5 * MINUTE), json!([{"addresses": addrs}])),
                json!(["endpoint3", "1.2.3.4,5.6.7.8", "5m"]),
            ),
            (
                ep(
                    "endpoint2",
                    soon(),
                    json!([{"addresses": addrs, "ports": [{"port": 8001, "protocol": "tcp"}]}]),
                ),
                json!(["endpoint2", "1.2.3.4:8001,5.6.7.8:8001", "0s"]),
            ),
            (
                ep(
                    "endpoint2",
                    soon(),
                    json!([{"addresses": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"},
                    {"ip": "9.8.7.6"}, {"ip": "6.6.6.6"}], "ports": [{"port": 8001, "protocol": "tcp"}]}]),
                ),
                json!([
                    "endpoint2",
                    "1.2.3.4:8001,5.6.7.8:8001,9.8.7.6:8001 + 1 more...",
                    "0s"
                ]),
            ),
            (
                ep(
                    "v6",
                    soon(),
                    json!([{"addresses": [{"ip": "2001:db8::1"}], "ports": [{"port": 80}]}]),
                ),
                json!(["v6", "[2001:db8::1]:80", "0s"]),
            ),
        ],
    );
    let slice = |name: &str, created: String, t: &str, ports: Value, endpoints: Value| {
        json!({"metadata": {"name": name, "creationTimestamp": created}, "addressType": t,
               "ports": ports, "endpoints": endpoints})
    };
    let port = |n: &str, p: i64| json!({"name": n, "port": p, "protocol": "TCP"});
    let two = json!([{"addresses": ["10.1.2.3", "2001:db8::1234:5678"]},
                     {"addresses": ["10.2.3.4", "2001:db8::2345:6789"]}]);
    check(
        "discovery.k8s.io",
        "EndpointSlice",
        &[
            (
                slice(
                    "abcslice.123",
                    soon(),
                    "IPv4",
                    json!([port("http", 80)]),
                    json!([{"addresses": ["10.1.2.3", "2001:db8::1234:5678"]}]),
                ),
                json!([
                    "abcslice.123",
                    "IPv4",
                    "80",
                    "10.1.2.3,2001:db8::1234:5678",
                    "0s"
                ]),
            ),
            (
                slice(
                    "longerslicename.123",
                    ago(5 * MINUTE),
                    "IPv6",
                    json!([port("http", 80), port("https", 443)]),
                    two.clone(),
                ),
                json!([
                    "longerslicename.123",
                    "IPv6",
                    "80,443",
                    "10.1.2.3,2001:db8::1234:5678,10.2.3.4 + 1 more...",
                    "5m"
                ]),
            ),
            (
                slice(
                    "multiportslice.123",
                    ago(5 * MINUTE),
                    "IPv4",
                    json!([
                        port("http", 80),
                        port("https", 443),
                        port("extra1", 3000),
                        port("extra2", 3001)
                    ]),
                    two,
                ),
                json!([
                    "multiportslice.123",
                    "IPv4",
                    "80,443,3000 + 1 more...",
                    "10.1.2.3,2001:db8::1234:5678,10.2.3.4 + 1 more...",
                    "5m"
                ]),
            ),
            (
                slice(
                    "named",
                    soon(),
                    "IPv4",
                    json!([{"name": "dns"}, {}]),
                    json!([]),
                ),
                json!(["named", "IPv4", "dns,*", "<unset>", "0s"]),
            ),
        ],
    );
}

#[test]
fn persistent_volumes_and_claims() {
    let pv = |name: &str, spec: Value, phase: &str| {
        let mut s = json!({"claimRef": {"name": "test", "namespace": "default"},
                           "capacity": {"storage": "4Gi"}, "accessModes": ["ReadOnlyMany"]});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
            s.extend(extra.clone());
        }
        json!({"metadata": {"name": name}, "spec": s, "status": {"phase": phase}})
    };
    let cells = |name: &str, cap: &str, modes: &str, phase: &str, sc: &str, vac: &str| {
        json!([
            name,
            cap,
            modes,
            "",
            phase,
            "default/test",
            sc,
            vac,
            "",
            "<unknown>",
            "<unset>"
        ])
    };
    let rwo10 = json!({"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]});
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    check(
        "",
        "PersistentVolume",
        &[
            (
                pv("test1", json!({}), "Bound"),
                cells("test1", "4Gi", "ROX", "Bound", "", "<unset>"),
            ),
            (
                pv("test2", json!({}), "Failed"),
                cells("test2", "4Gi", "ROX", "Failed", "", "<unset>"),
            ),
            (
                pv(
                    "test3",
                    json!({"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"]}),
                    "Pending",
                ),
                cells("test3", "10Gi", "RWX", "Pending", "", "<unset>"),
            ),
            (
                pv(
                    "test4",
                    with(rwo10.clone(), json!({"storageClassName": "my-scn"})),
                    "Pending",
                ),
                cells("test4", "10Gi", "RWO", "Pending", "my-scn", "<unset>"),
            ),
            (
                pv(
                    "test4",
                    with(
                        rwo10.clone(),
                        json!({"storageClassName": "my-scn",
                                                        "volumeAttributesClassName": "my-vacn"}),
                    ),
                    "Pending",
                ),
                cells("test4", "10Gi", "RWO", "Pending", "my-scn", "my-vacn"),
            ),
            (
                pv(
                    "test5",
                    with(rwo10.clone(), json!({"storageClassName": "my-scn"})),
                    "Available",
                ),
                cells("test5", "10Gi", "RWO", "Available", "my-scn", "<unset>"),
            ),
            (
                pv(
                    "test6",
                    with(rwo10, json!({"storageClassName": "my-scn"})),
                    "Released",
                ),
                cells("test6", "10Gi", "RWO", "Released", "my-scn", "<unset>"),
            ),
            // Canonical quantities, the beta class annotation, and a volume being deleted.
            (
                json!({"metadata": {"name": "canon", "deletionTimestamp": ago(S),
                                    "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
                       "spec": {"capacity": {"storage": "4096Mi"}, "storageClassName": "ga",
                                "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Block"},
                       "status": {"phase": "Bound", "reason": "why"}}),
                json!([
                    "canon",
                    "4Gi",
                    "",
                    "Retain",
                    "Terminating",
                    "",
                    "beta",
                    "<unset>",
                    "why",
                    "<unknown>",
                    "Block"
                ]),
            ),
            (
                json!({}),
                json!([
                    "",
                    "0",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "<unset>",
                    "",
                    "<unknown>",
                    "<unset>"
                ]),
            ),
        ],
    );
    let pvc = |name: &str, spec: Value, phase: &str, modes: Value, cap: &str| {
        json!({"metadata": {"name": name}, "spec": spec,
               "status": {"phase": phase, "accessModes": modes, "capacity": {"storage": cap}}})
    };
    check(
        "",
        "PersistentVolumeClaim",
        &[
            (
                pvc(
                    "test1",
                    json!({"volumeName": "my-volume", "volumeMode": "Filesystem"}),
                    "Bound",
                    json!(["ReadOnlyMany"]),
                    "4Gi",
                ),
                json!([
                    "test1",
                    "Bound",
                    "my-volume",
                    "4Gi",
                    "ROX",
                    "",
                    "<unset>",
                    "<unknown>",
                    "Filesystem"
                ]),
            ),
            (
                pvc(
                    "test2",
                    json!({"volumeMode": "Filesystem"}),
                    "Lost",
                    json!(["ReadOnlyMany"]),
                    "4Gi",
                ),
                json!([
                    "test2",
                    "Lost",
                    "",
                    "",
                    "",
                    "",
                    "<unset>",
                    "<unknown>",
                    "Filesystem"
                ]),
            ),
            (
                pvc(
                    "test3",
                    json!({"volumeName": "my-volume", "volumeMode": "Filesystem"}),
                    "Pending",
                    json!(["ReadWriteMany"]),
                    "10Gi",
                ),
                json!([
                    "test3",
                    "Pending",
                    "my-volume",
                    "10Gi",
                    "RWX",
                    "",
                    "<unset>",
                    "<unknown>",
                    "Filesystem"
                ]),
            ),
            (
                pvc(
                    "test4",
                    json!({"volumeName": "my-volume", "storageClassName": "my-scn",
                                    "volumeMode": "Filesystem"}),
                    "Pending",
                    json!(["ReadWriteOnce"]),
                    "10Gi",
                ),
                json!([
                    "test4",
                    "Pending",
                    "my-volume",
                    "10Gi",
                    "RWO",
                    "my-scn",
                    "<unset>",
                    "<unknown>",
                    "Filesystem"
                ]),
            ),
            (
                pvc(
                    "test5",
                    json!({"volumeName": "my-volume", "storageClassName": "my-scn"}),
                    "Pending",
                    json!(["ReadWriteOnce"]),
                    "10Gi",
                ),
                json!([
                    "test5",
                    "Pending",
                    "my-volume",
                    "10Gi",
                    "RWO",
                    "my-scn",
                    "<unset>",
                    "<unknown>",
                    "<unset>"
                ]),
            ),
            (
                pvc(
                    "test5",
                    json!({"volumeName": "my-volume", "storageClassName": "my-scn",
                                    "volumeAttributesClassName": "my-vacn"}),
                    "Pending",
                    json!(["ReadWriteOnce"]),
                    "10Gi",
                ),
                json!([
                    "test5",
                    "Pending",
                    "my-volume",
                    "10Gi",
                    "RWO",
                    "my-scn",
                    "my-vacn",
                    "<unknown>",
                    "<unset>"
                ]),
            ),
        ],
    );
}

#[test]
fn component_statuses_and_resource_quotas() {
    let cs = |name: &str, conditions: Value| json!({"metadata": {"name": name}, "conditions": conditions});
    let healthy = |status: &str| json!([{"type": "Healthy", "status": status, "message": "test message", "error": "test error"}]);
    check(
        "",
        "ComponentStatus",
        &[
            (cs("cs1", json!([])), json!(["cs1", "Unknown", "", ""])),
            (
                cs("cs2", healthy("True")),
                json!(["cs2", "Healthy", "test message", "test error"]),
            ),
            (
                cs("cs3", healthy("False")),
                json!(["cs3", "Unhealthy", "test message", "test error"]),
            ),
        ],
    );
    check(
        "",
        "ResourceQuota",
        &[(
            json!({"metadata": {"name": "test-resourcequota", "creationTimestamp": ago(5 * MINUTE)},
                   "status": {
                       "used": {"cpu": "1", "memory": "1Gi", "pods": "1", "services": "1",
                                "replicationcontrollers": "1", "resourcequotas": "1",
                                "limits.cpu": "2", "limits.memory": "2Gi"},
                       "hard": {"cpu": "100", "memory": "4Gi", "pods": "10", "services": "10",
                                "replicationcontrollers": "10", "resourcequotas": "1",
                                "limits.cpu": "200", "limits.memory": "8Gi", "requests.storage": "1000Mi"}}}),
            json!([
                "test-resourcequota",
                "cpu: 1/100, memory: 1Gi/4Gi, pods: 1/10, replicationcontrollers: 1/10, \
                    requests.storage: 0/1000Mi, resourcequotas: 1/1, services: 1/10",
                "limits.cpu: 2/200, limits.memory: 2Gi/8Gi",
                "5m"
            ]),
        )],
    );
}

#[test]
fn pod_templates_and_replication_controllers() {
    check(
        "",
        "PodTemplate",
        &[
            (
                json!({"metadata": {"name": "pod-template-1"},
                       "template": {"metadata": {"name": "pod-template-1"}, "spec": {"containers": []}}}),
                json!(["pod-template-1", "", "", "<none>"]),
            ),
            (
                json!({"metadata": {"name": "pod-template-2"},
                       "template": {"spec": {"containers": two_containers()}}}),
                json!([
                    "pod-template-2",
                    "fake-container1,fake-container2",
                    "fake-image1,fake-image2",
                    "<none>"
                ]),
            ),
            (
                json!({"metadata": {"name": "pod-template-3"},
                       "template": {"metadata": {"labels": {"foo": "bar"}}, "spec": {"containers": []}}}),
                json!(["pod-template-3", "", "", "foo=bar"]),
            ),
        ],
    );
    let rc_spec = |replicas: i64| {
        json!({"replicas": replicas, "selector": {"a": "b"},
               "template": {"metadata": {"labels": {"a": "b"}},
                            "spec": {"containers": [{"name": "test", "image": "test_image"}]}}})
    };
    check(
        "",
        "ReplicationController",
        &[
            (
                json!({"metadata": {"name": "rc1", "namespace": "test-namespace"}, "spec": rc_spec(0)}),
                json!(["rc1", 0, 0, 0, "<unknown>", "test", "test_image", "a=b"]),
            ),
            (
                json!({"metadata": {"name": "rc1"}, "spec": rc_spec(5),
                       "status": {"replicas": 3, "readyReplicas": 1}}),
                json!(["rc1", 5, 3, 1, "<unknown>", "test", "test_image", "a=b"]),
            ),
            // Upstream's "no panic" case: a bookmark-like object.
            (
                json!({"metadata": {"annotations": {"k8s.io/initial-events-end": "true"}},
                       "spec": {"replicas": 0}}),
                json!(["", 0, 0, 0, "<unknown>", "", "", "<none>"]),
            ),
        ],
    );
}

// ---- workloads ----

#[test]
fn deployments_replica_sets_daemon_sets_stateful_sets() {
    let template = json!({"spec": {"containers": two_containers()}});
    let names = "fake-container1,fake-container2";
    let images = "fake-image1,fake-image2";
    check(
        "apps",
        "Deployment",
        &[
            (
                json!({"metadata": {"name": "test1", "creationTimestamp": soon()},
                       "spec": {"replicas": 5, "template": template,
                                "selector": {"matchLabels": {"foo": "bar"}}},
                       "status": {"replicas": 10, "updatedReplicas": 2, "availableReplicas": 1,
                                  "unavailableReplicas": 4}}),
                json!(["test1", "0/5", 2, 1, "0s", names, images, "foo=bar"]),
            ),
            (
                json!({"metadata": {"name": "bad"}, "spec": {"selector":
                    {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}}),
                json!(["bad", "0/0", 0, 0, "<unknown>", "", "", "<invalid>"]),
            ),
            (
                json!({"metadata": {"name": "none"}}),
                json!(["none", "0/0", 0, 0, "<unknown>", "", "", ""]),
            ),
        ],
    );
    check(
        "apps",
        "ReplicaSet",
        &[
            (
                json!({"metadata": {"name": "test1", "creationTimestamp": soon()},
                       "spec": {"replicas": 5, "template": template,
                                "selector": {"matchLabels": {"foo": "bar"}}},
                       "status": {"replicas": 5, "readyReplicas": 2}}),
                json!(["test1", 5, 5, 2, "0s", names, images, "foo=bar"]),
            ),
            (
                json!({"metadata": {"name": "replicaset2", "creationTimestamp": soon()},
                       "spec": {"replicas": 4, "template": {}},
                       "status": {"replicas": 3, "readyReplicas": 1}}),
                json!(["replicaset2", 4, 3, 1, "0s", "", "", "<none>"]),
            ),
        ],
    );
    check(
        "apps",
        "DaemonSet",
        &[
            (
                json!({"metadata": {"name": "test1", "creationTimestamp": soon()},
                       "spec": {"template": template, "selector": {"matchLabels": {"foo": "bar"}}},
                       "status": {"currentNumberScheduled": 2, "desiredNumberScheduled": 3,
                                  "numberReady": 1, "updatedNumberScheduled": 2, "numberAvailable": 0}}),
                json!(["test1", 3, 2, 1, 2, 0, "<none>", "0s", names, images, "foo=bar"]),
            ),
            (
                json!({"metadata": {"name": "ds", "creationTimestamp": soon()},
                       "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}}),
                json!([
                    "ds",
                    0,
                    0,
                    0,
                    0,
                    0,
                    "kubernetes.io/os=linux",
                    "0s",
                    "",
                    "",
                    "<none>"
                ]),
            ),
        ],
    );
    check(
        "apps",
        "StatefulSet",
        &[(
            json!({"metadata": {"name": "test1", "creationTimestamp": soon()},
                   "spec": {"replicas": 5, "template": template},
                   "status": {"replicas": 5, "readyReplicas": 2}}),
            json!(["test1", "2/5", "0s", names, images]),
        )],
    );
}

#[test]
fn controller_revisions() {
    let cr = |name: &str, owners: Value, revision: i64| {
        json!({"metadata": {"name": name, "creationTimestamp": soon(), "ownerReferences": owners},
               "revision": revision})
    };
    check(
        "apps",
        "ControllerRevision",
        &[
            (
                cr(
                    "test1",
                    json!([{"controller": true, "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "foo"}]),
                    1,
                ),
                json!(["test1", "daemonset.apps/foo", 1, "0s"]),
            ),
            (
                cr(
                    "test2",
                    json!([{"controller": false, "kind": "ABC", "name": "foo"}]),
                    2,
                ),
                json!(["test2", "<none>", 2, "0s"]),
            ),
            (
                cr("test3", json!([]), 3),
                json!(["test3", "<none>", 3, "0s"]),
            ),
            (
                cr("test4", json!(null), 4),
                json!(["test4", "<none>", 4, "0s"]),
            ),
            (
                cr(
                    "core",
                    json!([{"controller": true, "apiVersion": "v1", "kind": "Pod", "name": "p"}]),
                    5,
                ),
                json!(["core", "pod/p", 5, "0s"]),
            ),
        ],
    );
    let bad = cr(
        "bad",
        json!([{"controller": true, "apiVersion": "a/b/c", "kind": "X", "name": "y"}]),
        1,
    );
    let err = table_row("apps", "ControllerRevision", &bad, now());
    assert_eq!(
        err,
        Err(PrintError::GroupVersion {
            value: "a/b/c".to_owned()
        })
    );
    assert_eq!(
        err.err().map(|e| e.to_string()),
        Some("unexpected GroupVersion string: a/b/c".to_owned())
    );
}

#[test]
fn jobs() {
    let containers = json!([{"name": "fake-job-container1", "image": "fake-job-image1"},
                            {"name": "fake-job-container2", "image": "fake-job-image2"}]);
    let cond = |t: &str| json!({"status": {"conditions": [{"type": t, "status": "True"}]}});
    let job = |name: &str, created: String, extra: Value| {
        let mut j = json!({"metadata": {"name": name, "creationTimestamp": created}, "spec": {}});
        if let (Some(j), Some(e)) = (j.as_object_mut(), extra.as_object()) {
            j.extend(e.clone());
        }
        j
    };
    let ten_years = ago(10 * 365 * DAY);
    let short = |name: &str, status: &str, done: &str, dur: &str, age: &str| {
        json!([name, status, done, dur, age, "", "", "<none>"])
    };
    check(
        "batch",
        "Job",
        &[
            (
                job(
                    "job1",
                    soon(),
                    json!({"spec": {"completions": 2, "template": {"spec": {"containers": containers}},
                    "selector": {"matchLabels": {"job-label": "job-label-value"}}},
                    "status": {"succeeded": 1}}),
                ),
                json!([
                    "job1",
                    "Running",
                    "1/2",
                    "",
                    "0s",
                    "fake-job-container1,fake-job-container2",
                    "fake-job-image1,fake-job-image2",
                    "job-label=job-label-value"
                ]),
            ),
            (
                job("job2", ago(3653 * DAY), json!({})),
                short("job2", "Running", "0/1", "", "10y"),
            ),
            (
                job(
                    "job3",
                    ten_years.clone(),
                    json!({"status": {"startTime": at(MINUTE), "completionTime": at(31 * MINUTE)}}),
                ),
                short("job3", "Running", "0/1", "30m", "10y"),
            ),
            (
                job(
                    "job4",
                    ten_years,
                    json!({"status": {"startTime": ago(20 * MINUTE)}}),
                ),
                short("job4", "Running", "0/1", "20m", "10y"),
            ),
            (
                job("job5", soon(), cond("Complete")),
                short("job5", "Complete", "0/1", "", "0s"),
            ),
            (
                job("job6", soon(), cond("Failed")),
                short("job6", "Failed", "0/1", "", "0s"),
            ),
            (
                job("job7", soon(), cond("Suspended")),
                short("job7", "Suspended", "0/1", "", "0s"),
            ),
            (
                job("job8", soon(), cond("FailureTarget")),
                short("job8", "FailureTarget", "0/1", "", "0s"),
            ),
            (
                {
                    let mut j = job("job9", soon(), json!({}));
                    j["metadata"]["deletionTimestamp"] = json!(soon());
                    j
                },
                short("job9", "Terminating", "0/1", "", "0s"),
            ),
            (
                job("job10", soon(), cond("SuccessCriteriaMet")),
                short("job10", "SuccessCriteriaMet", "0/1", "", "0s"),
            ),
            (
                job(
                    "par",
                    soon(),
                    json!({"spec": {"parallelism": 3}, "status": {"succeeded": 2,
                    "conditions": [{"type": "Complete", "status": "False"}]}}),
                ),
                short("par", "Running", "2/1 of 3", "", "0s"),
            ),
        ],
    );
}

#[test]
fn cron_jobs() {
    let spec = |tz: Option<&str>| {
        let mut s = json!({"schedule": "0/5 * * * ?", "suspend": false,
            "jobTemplate": {"spec": {"completions": 2,
                "template": {"spec": {"containers": [
                    {"name": "fake-job-container1", "image": "fake-job-image1"},
                    {"name": "fake-job-container2", "image": "fake-job-image2"}]}},
                "selector": {"matchLabels": {"a": "b"}}}}});
        if let Some(tz) = tz {
            s["timeZone"] = json!(tz);
        }
        s
    };
    let wide = [
        "fake-job-container1,fake-job-container2",
        "fake-job-image1,fake-job-image2",
        "a=b",
    ];
    check(
        "batch",
        "CronJob",
        &[
            (
                json!({"metadata": {"name": "cronjob1", "creationTimestamp": soon()},
                       "spec": spec(None), "status": {"lastScheduleTime": soon()}}),
                json!([
                    "cronjob1",
                    "0/5 * * * ?",
                    "<none>",
                    "False",
                    0,
                    "0s",
                    "0s",
                    wide[0],
                    wide[1],
                    wide[2]
                ]),
            ),
            (
                json!({"metadata": {"name": "cronjob1", "creationTimestamp": soon()},
                       "spec": spec(Some("LOCAL")), "status": {"lastScheduleTime": soon()}}),
                json!([
                    "cronjob1",
                    "0/5 * * * ?",
                    "LOCAL",
                    "False",
                    0,
                    "0s",
                    "0s",
                    wide[0],
                    wide[1],
                    wide[2]
                ]),
            ),
            (
                json!({"metadata": {"name": "cronjob2", "creationTimestamp": ago(5 * MINUTE)},
                       "spec": {"schedule": "0/5 * * * ?", "suspend": false},
                       "status": {"lastScheduleTime": ago(30 * S)}}),
                json!([
                    "cronjob2",
                    "0/5 * * * ?",
                    "<none>",
                    "False",
                    0,
                    "30s",
                    "5m",
                    "",
                    "",
                    "<none>"
                ]),
            ),
            (
                json!({"metadata": {"name": "cronjob3", "creationTimestamp": ago(5 * MINUTE)},
                       "spec": {"schedule": "0/5 * * * ?", "suspend": false}, "status": {}}),
                json!([
                    "cronjob3",
                    "0/5 * * * ?",
                    "<none>",
                    "False",
                    0,
                    "<none>",
                    "5m",
                    "",
                    "",
                    "<none>"
                ]),
            ),
            (
                json!({"metadata": {"name": "active"}, "spec": {"schedule": "@hourly"},
                       "status": {"active": [{"name": "j1"}, {"name": "j2"}]}}),
                json!([
                    "active",
                    "@hourly",
                    "<none>",
                    "<unset>",
                    2,
                    "<none>",
                    "<unknown>",
                    "",
                    "",
                    "<none>"
                ]),
            ),
        ],
    );
}

#[test]
fn horizontal_pod_autoscalers() {
    let hpa = |metrics: Value, current: Value| {
        json!({"metadata": {"name": "some-hpa"},
               "spec": {"scaleTargetRef": {"name": "some-rc", "kind": "ReplicationController"},
                        "minReplicas": 2, "maxReplicas": 10, "metrics": metrics},
               "status": {"currentReplicas": 4, "desiredReplicas": 5, "currentMetrics": current}})
    };
    let cells = |targets: &str| {
        json!([
            "some-hpa",
            "ReplicationController/some-rc",
            targets,
            "2",
            10,
            4,
            "<unknown>"
        ])
    };
    let external = |target: Value| {
        json!([{"type": "External", "external": {
        "metric": {"name": "some-external-metric", "selector": {"matchLabels": {"label": "value"}}},
        "target": target}}])
    };
    let object = json!([{"type": "Object", "object": {"describedObject": {"name": "some-service", "kind": "Service"},
        "metric": {"name": "some-service-metric"}, "target": {"type": "Value", "value": "100m"}}}]);
    let resource = |key: &str, target: Value| {
        json!([{"type": if key == "resource" { "Resource" } else { "ContainerResource" },
        key: {"name": "cpu", "container": "application", "target": target}}])
    };
    let current_resource = |key: &str, current: Value| {
        json!([{"type": if key == "resource" { "Resource" } else { "ContainerResource" },
        key: {"name": "cpu", "container": "application", "current": current}}])
    };
    let avg = json!({"type": "AverageValue", "averageValue": "100m"});
    let util = json!({"type": "Utilization", "averageUtilization": 80});
    let mut cases = vec![
        (
            json!({"metadata": {"name": "some-hpa"},
                   "spec": {"scaleTargetRef": {"name": "some-rc", "kind": "ReplicationController"}, "maxReplicas": 10},
                   "status": {"currentReplicas": 4, "desiredReplicas": 5}}),
            json!([
                "some-hpa",
                "ReplicationController/some-rc",
                "<none>",
                "<unset>",
                10,
                4,
                "<unknown>"
            ]),
        ),
        (
            hpa(external(avg.clone()), json!(null)),
            cells("<unknown>/100m (avg)"),
        ),
        (
            hpa(
                external(avg.clone()),
                json!([{"type": "External", "external": {
                "metric": {"name": "some-external-metric"}, "current": {"averageValue": "50m"}}}]),
            ),
            cells("50m/100m (avg)"),
        ),
        (
            hpa(
                external(json!({"type": "Value", "value": "100m"})),
                json!(null),
            ),
            cells("<unknown>/100m"),
        ),
        (
            hpa(
                external(json!({"type": "Value", "value": "100m"})),
                json!([{"type": "External", "external": {
                "metric": {"name": "some-external-metric"}, "current": {"value": "50m"}}}]),
            ),
            cells("50m/100m"),
        ),
        (
            hpa(
                json!([{"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"}, "target": avg}}]),
                json!(null),
            ),
            cells("<unknown>/100m"),
        ),
        (
            hpa(
                json!([{"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"}, "target": avg}}]),
                json!([{"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"}, "current": {"averageValue": "50m"}}}]),
            ),
            cells("50m/100m"),
        ),
        (hpa(object.clone(), json!(null)), cells("<unknown>/100m")),
        (
            hpa(
                object,
                json!([{"type": "Object", "object": {"describedObject": {"name": "some-service", "kind": "Service"},
                "metric": {"name": "some-service-metric"}, "current": {"value": "50m"}}}]),
            ),
            cells("50m/100m"),
        ),
    ];
    for key in ["resource", "containerResource"] {
        cases.push((
            hpa(resource(key, avg.clone()), json!(null)),
            cells("cpu: <unknown>/100m"),
        ));
        cases.push((
            hpa(
                resource(key, avg.clone()),
                current_resource(key, json!({"averageValue": "50m"})),
            ),
            cells("cpu: 50m/100m"),
        ));
        cases.push((
            hpa(resource(key, util.clone()), json!(null)),
            cells("cpu: <unknown>/80%"),
        ));
        cases.push((
            hpa(
                resource(key, util.clone()),
                current_resource(
                    key,
                    json!({"averageUtilization": 50, "averageValue": "40m"}),
                ),
            ),
            cells("cpu: 50%/80%"),
        ));
    }
    cases.push((
        hpa(
            json!([{"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"}, "target": avg}},
                   {"type": "Resource", "resource": {"name": "cpu", "target": util}},
                   {"type": "Pods", "pods": {"metric": {"name": "other-pods-metric"},
                                             "target": {"type": "AverageValue", "averageValue": "400m"}}}]),
            json!([{"type": "Pods", "pods": {"metric": {"name": "some-pods-metric"}, "current": {"averageValue": "50m"}}},
                   {"type": "Resource", "resource": {"name": "cpu",
                                                     "current": {"averageUtilization": 50, "averageValue": "40m"}}}]),
        ),
        cells("50m/100m, cpu: 50%/80% + 1 more..."),
    ));
    // autoscaling/v1: the CPU target converts to a Resource metric.
    cases.push((
        json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "some-hpa"},
               "spec": {"scaleTargetRef": {"name": "some-rc", "kind": "ReplicationController"},
                        "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80},
               "status": {"currentReplicas": 4, "currentCPUUtilizationPercentage": 50}}),
        cells("cpu: 50%/80%"),
    ));
    cases.push((
        json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "some-hpa"},
               "spec": {"scaleTargetRef": {"name": "some-rc", "kind": "ReplicationController"},
                        "minReplicas": 2, "maxReplicas": 10},
               "status": {"currentReplicas": 4}}),
        cells("<none>"),
    ));
    check("autoscaling", "HorizontalPodAutoscaler", &cases);
}

#[test]
fn pod_disruption_budgets() {
    let pdb = |name: &str, spec: Value| {
        json!({"metadata": {"namespace": "ns1", "name": name, "creationTimestamp": soon()},
               "spec": spec, "status": {"disruptionsAllowed": 5}})
    };
    check(
        "policy",
        "PodDisruptionBudget",
        &[
            (
                pdb("pdb1", json!({"minAvailable": 22})),
                json!(["pdb1", "22", "N/A", 5, "0s"]),
            ),
            (
                pdb("pdb2", json!({"maxUnavailable": 11})),
                json!(["pdb2", "N/A", "11", 5, "0s"]),
            ),
            (
                pdb("pdb3", json!({"maxUnavailable": "25%"})),
                json!(["pdb3", "N/A", "25%", 5, "0s"]),
            ),
        ],
    );
}

// ---- networking ----

#[test]
fn ingresses_and_classes() {
    check(
        "networking.k8s.io",
        "Ingress",
        &[
            (
                json!({"metadata": {"name": "test1", "creationTimestamp": ago(10 * 365 * DAY)},
                       "spec": {"ingressClassName": "foo", "defaultBackend": {"service": {
                           "name": "default-backend", "port": {"name": "default-backend", "number": 80}}}},
                       "status": {"loadBalancer": {"ingress": [{"ip": "2.3.4.5", "hostname": "localhost.localdomain"}]}}}),
                json!(["test1", "foo", "*", "2.3.4.5", "80", "10y"]),
            ),
            (
                json!({"metadata": {"name": "hosts"},
                       "spec": {"rules": [{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}],
                                "tls": [{"hosts": ["a"]}]}}),
                json!([
                    "hosts",
                    "<none>",
                    "a,b,c + 2 more...",
                    "",
                    "80, 443",
                    "<unknown>"
                ]),
            ),
        ],
    );
    let class = |name: &str, days: i64, params: Value| {
        json!({"metadata": {"name": name, "creationTimestamp": ago(days * 365 * DAY)},
               "spec": {"controller": "example.com/controller", "parameters": params}})
    };
    check(
        "networking.k8s.io",
        "IngressClass",
        &[
            (
                class(
                    "test1",
                    10,
                    json!({"kind": "customgroup", "name": "example"}),
                ),
                json!([
                    "test1",
                    "example.com/controller",
                    "customgroup/example",
                    "10y"
                ]),
            ),
            (
                class(
                    "test1",
                    10,
                    json!({"apiGroup": "example.com", "kind": "customgroup", "name": "example"}),
                ),
                json!([
                    "test1",
                    "example.com/controller",
                    "customgroup.example.com/example",
                    "10y"
                ]),
            ),
            (
                class("test2", 11, json!(null)),
                json!(["test2", "example.com/controller", "<none>", "11y"]),
            ),
            (
                json!({"metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                       "spec": {"controller": "k8s.io/ingress-nginx"}}),
                json!([
                    "nginx (default)",
                    "k8s.io/ingress-nginx",
                    "<none>",
                    "<unknown>"
                ]),
            ),
        ],
    );
    check(
        "networking.k8s.io",
        "NetworkPolicy",
        &[
            (
                json!({"metadata": {"name": "policy1", "creationTimestamp": soon()}, "spec": {}}),
                json!(["policy1", "<none>", "0s"]),
            ),
            (
                json!({"metadata": {"name": "policy2", "creationTimestamp": soon()},
                       "spec": {"podSelector": {"matchLabels": {"foo": "bar"}}}}),
                json!(["policy2", "foo=bar", "0s"]),
            ),
        ],
    );
    check(
        "networking.k8s.io",
        "IPAddress",
        &[
            (
                json!({"metadata": {"name": "192.168.2.2", "creationTimestamp": ago(10 * 365 * DAY)},
                       "spec": {"parentRef": {"group": "mygroup", "resource": "myresource",
                                              "namespace": "mynamespace", "name": "myname"}}}),
                json!([
                    "192.168.2.2",
                    "myresource.mygroup/mynamespace/myname",
                    "10y"
                ]),
            ),
            (
                json!({"metadata": {"name": "10.0.0.1"}, "spec": {"parentRef": {"resource": "services", "name": "kubernetes"}}}),
                json!(["10.0.0.1", "services/kubernetes", "<unknown>"]),
            ),
        ],
    );
    check(
        "networking.k8s.io",
        "ServiceCIDR",
        &[
            (
                json!({"metadata": {"name": "test1"}, "spec": {"cidrs": ["10.1.0.0/16"]}}),
                json!(["test1", "10.1.0.0/16", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "test9"}, "spec": {"cidrs": ["10.1.0.0/16", "fd00:1:1::/64"]}}),
                json!(["test9", "10.1.0.0/16,fd00:1:1::/64", "<unknown>"]),
            ),
        ],
    );
}

// ---- rbac, certificates, coordination ----

#[test]
fn role_bindings() {
    for kind in ["RoleBinding", "ClusterRoleBinding"] {
        check(
            "rbac.authorization.k8s.io",
            kind,
            &[
                (
                    json!({"metadata": {"name": "binding1", "creationTimestamp": soon()},
                           "subjects": [{"kind": "User", "name": "system:kube-controller-manager"}],
                           "roleRef": {"kind": "Role", "name": "extension-apiserver-authentication-reader"}}),
                    json!([
                        "binding1",
                        "Role/extension-apiserver-authentication-reader",
                        "0s",
                        "system:kube-controller-manager",
                        "",
                        ""
                    ]),
                ),
                (
                    json!({"metadata": {"name": "binding2", "creationTimestamp": soon()},
                           "subjects": [{"kind": "User", "name": "user-name"}, {"kind": "Group", "name": "group-name"},
                                        {"kind": "ServiceAccount", "name": "service-account-name",
                                         "namespace": "service-account-namespace"},
                                        {"kind": "Other", "name": "ignored"}],
                           "roleRef": {"kind": "Role", "name": "role-name"}}),
                    json!([
                        "binding2",
                        "Role/role-name",
                        "0s",
                        "user-name",
                        "group-name",
                        "service-account-namespace/service-account-name"
                    ]),
                ),
            ],
        );
    }
}

#[test]
fn certificate_signing_requests() {
    let csr = |spec: Value, status: Value| json!({"metadata": {"name": "csr", "creationTimestamp": soon()}, "spec": spec, "status": status});
    let approved = json!({"conditions": [{"type": "Approved"}]});
    let user = json!({"username": "CSR Requestor"});
    check(
        "certificates.k8s.io",
        "CertificateSigningRequest",
        &[
            (
                csr(json!({}), json!({})),
                json!(["csr", "0s", "<none>", "", "<none>", "Pending"]),
            ),
            (
                csr(user.clone(), approved.clone()),
                json!(["csr", "0s", "<none>", "CSR Requestor", "<none>", "Approved"]),
            ),
            (
                csr(
                    json!({"username": "CSR Requestor", "signerName": "example.com/test-signer"}),
                    approved.clone(),
                ),
                json!([
                    "csr",
                    "0s",
                    "example.com/test-signer",
                    "CSR Requestor",
                    "<none>",
                    "Approved"
                ]),
            ),
            (
                csr(
                    json!({"username": "CSR Requestor", "signerName": "example.com/test-signer",
                           "expirationSeconds": 7 * 24 * 3600 + 3600}),
                    approved,
                ),
                json!([
                    "csr",
                    "0s",
                    "example.com/test-signer",
                    "CSR Requestor",
                    "7d1h",
                    "Approved"
                ]),
            ),
            (
                csr(
                    user.clone(),
                    json!({"conditions": [{"type": "Approved"}], "certificate": "Y2VydCBkYXRh"}),
                ),
                json!([
                    "csr",
                    "0s",
                    "<none>",
                    "CSR Requestor",
                    "<none>",
                    "Approved,Issued"
                ]),
            ),
            (
                csr(user.clone(), json!({"conditions": [{"type": "Denied"}]})),
                json!(["csr", "0s", "<none>", "CSR Requestor", "<none>", "Denied"]),
            ),
            (
                csr(
                    user,
                    json!({"conditions": [{"type": "Approved"}, {"type": "Failed"}]}),
                ),
                json!([
                    "csr",
                    "0s",
                    "<none>",
                    "CSR Requestor",
                    "<none>",
                    "Approved,Failed"
                ]),
            ),
        ],
    );
    check(
        "certificates.k8s.io",
        "ClusterTrustBundle",
        &[(
            json!({"metadata": {"name": "test-cluster-trust-bundle"}, "spec": {"signerName": "test-signer-name"}}),
            json!(["test-cluster-trust-bundle", "test-signer-name"]),
        )],
    );
}

#[test]
fn leases() {
    check(
        "coordination.k8s.io",
        "Lease",
        &[
            (
                json!({"metadata": {"name": "lease1", "creationTimestamp": soon()}, "spec": {"holderIdentity": "holder1"}}),
                json!(["lease1", "holder1", "0s"]),
            ),
            (
                json!({"metadata": {"name": "lease2", "creationTimestamp": ago(5 * MINUTE)}, "spec": {"holderIdentity": "holder2"}}),
                json!(["lease2", "holder2", "5m"]),
            ),
            (
                json!({"metadata": {"name": "free"}, "spec": {}}),
                json!(["free", "", "<unknown>"]),
            ),
        ],
    );
    check(
        "coordination.k8s.io",
        "LeaseCandidate",
        &[(
            json!({"metadata": {"name": "test-lease", "creationTimestamp": ago(5 * MINUTE)},
                   "spec": {"binaryVersion": "test-binary-version", "emulationVersion": "test-emulation-version",
                            "leaseName": "test-lease-name"}}),
            json!([
                "test-lease",
                "test-lease-name",
                "test-binary-version",
                "test-emulation-version",
                "5m"
            ]),
        )],
    );
}

// ---- storage, scheduling, node ----

#[test]
fn storage_classes() {
    let sc = |name: &str, created: String, extra: Value| {
        let mut s = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        s
    };
    check(
        "storage.k8s.io",
        "StorageClass",
        &[
            (
                sc(
                    "sc1",
                    soon(),
                    json!({"provisioner": "kubernetes.io/glusterfs"}),
                ),
                json!([
                    "sc1",
                    "kubernetes.io/glusterfs",
                    "Delete",
                    "Immediate",
                    false,
                    "0s"
                ]),
            ),
            (
                sc(
                    "sc2",
                    ago(5 * MINUTE),
                    json!({"provisioner": "kubernetes.io/nfs"}),
                ),
                json!([
                    "sc2",
                    "kubernetes.io/nfs",
                    "Delete",
                    "Immediate",
                    false,
                    "5m"
                ]),
            ),
            (
                sc(
                    "sc3",
                    ago(5 * MINUTE),
                    json!({"provisioner": "kubernetes.io/nfs", "reclaimPolicy": "Delete"}),
                ),
                json!([
                    "sc3",
                    "kubernetes.io/nfs",
                    "Delete",
                    "Immediate",
                    false,
                    "5m"
                ]),
            ),
            (
                sc(
                    "sc4",
                    ago(5 * MINUTE),
                    json!({"provisioner": "kubernetes.io/nfs", "reclaimPolicy": "Retain",
                                                  "volumeBindingMode": "Immediate"}),
                ),
                json!([
                    "sc4",
                    "kubernetes.io/nfs",
                    "Retain",
                    "Immediate",
                    false,
                    "5m"
                ]),
            ),
            (
                sc(
                    "sc5",
                    ago(5 * MINUTE),
                    json!({"provisioner": "kubernetes.io/nfs", "reclaimPolicy": "Retain",
                                                  "volumeBindingMode": "WaitForFirstConsumer"}),
                ),
                json!([
                    "sc5",
                    "kubernetes.io/nfs",
                    "Retain",
                    "WaitForFirstConsumer",
                    false,
                    "5m"
                ]),
            ),
            (
                sc(
                    "sc6",
                    ago(5 * MINUTE),
                    json!({"provisioner": "kubernetes.io/nfs", "reclaimPolicy": "Retain",
                                                  "allowVolumeExpansion": true, "volumeBindingMode": "WaitForFirstConsumer"}),
                ),
                json!([
                    "sc6",
                    "kubernetes.io/nfs",
                    "Retain",
                    "WaitForFirstConsumer",
                    true,
                    "5m"
                ]),
            ),
            (
                sc(
                    "beta",
                    soon(),
                    json!({"metadata": {"name": "beta", "creationTimestamp": soon(),
                    "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "p"}),
                ),
                json!(["beta (default)", "p", "Delete", "Immediate", false, "0s"]),
            ),
        ],
    );
    // A list marks only the effective default: the newest, ties to the first name.
    let default = |name: &str, created: String| {
        json!({"metadata": {"name": name, "creationTimestamp": created,
                            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
               "provisioner": "p"})
    };
    let list = [
        default("standard", ago(48 * MINUTE)),
        default("nfs-client", ago(3 * S)),
        sc("plain", ago(S), json!({"provisioner": "p"})),
        default("b-tie", ago(3 * S)),
    ];
    assert_eq!(effective_default_storage_class(&list), Some("b-tie"));
    let rows = match table_rows("storage.k8s.io", "StorageClass", &list, now()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let names: Vec<&Value> = rows.iter().map(|r| &r.cells[0]).collect();
    assert_eq!(
        names,
        [
            &json!("standard"),
            &json!("nfs-client"),
            &json!("plain"),
            &json!("b-tie (default)")
        ]
    );
    assert_eq!(
        storage_class_row(&list[0], now(), Some("standard"))[0],
        json!("standard (default)")
    );
    assert_eq!(
        storage_class_row(&list[0], now(), None)[0],
        json!("standard")
    );
}

#[test]
fn other_storage_kinds() {
    check(
        "storage.k8s.io",
        "VolumeAttributesClass",
        &[
            (
                json!({"metadata": {"name": "vac1", "creationTimestamp": soon()}, "driverName": "fake"}),
                json!(["vac1", "fake", "0s"]),
            ),
            (
                json!({"metadata": {"name": "vac2", "creationTimestamp": ago(5 * MINUTE)}, "driverName": "fake",
                       "parameters": {"iops": "500", "throughput": "50MiB/s"}}),
                json!(["vac2", "fake", "5m"]),
            ),
        ],
    );
    check(
        "storage.k8s.io",
        "VolumeAttachment",
        &[(
            json!({"metadata": {"name": "va"}, "spec": {"attacher": "csi.example", "nodeName": "n1",
                                                        "source": {"persistentVolumeName": "pv1"}},
                   "status": {"attached": true}}),
            json!(["va", "csi.example", "pv1", "n1", true, "<unknown>"]),
        )],
    );
    check(
        "storage.k8s.io",
        "CSIDriver",
        &[
            (
                json!({"metadata": {"name": "d"}, "spec": {}}),
                json!([
                    "d",
                    true,
                    false,
                    false,
                    "<unset>",
                    false,
                    "<none>",
                    "<unknown>"
                ]),
            ),
            (
                json!({"metadata": {"name": "d"}, "spec": {"attachRequired": false, "podInfoOnMount": true,
                    "storageCapacity": true, "tokenRequests": [{"audience": "a"}, {"audience": "b"}],
                    "requiresRepublish": true, "volumeLifecycleModes": ["Persistent", "Ephemeral"]}}),
                json!([
                    "d",
                    false,
                    true,
                    true,
                    "a,b",
                    true,
                    "Persistent,Ephemeral",
                    "<unknown>"
                ]),
            ),
        ],
    );
    check(
        "storage.k8s.io",
        "CSINode",
        &[(
            json!({"metadata": {"name": "n"}, "spec": {"drivers": [{"name": "a"}, {"name": "b"}]}}),
            json!(["n", 2, "<unknown>"]),
        )],
    );
}

#[test]
fn priority_and_runtime_classes() {
    let pc = |name: &str, created: String, value: i64, global: bool, policy: Value| {
        json!({"metadata": {"name": name, "creationTimestamp": created}, "value": value,
               "globalDefault": global, "preemptionPolicy": policy})
    };
    check(
        "scheduling.k8s.io",
        "PriorityClass",
        &[
            (
                pc("pc1", soon(), 1, false, json!("Never")),
                json!(["pc1", 1, false, "0s", "Never"]),
            ),
            (
                pc(
                    "pc2",
                    ago(5 * MINUTE),
                    1_000_000_000,
                    true,
                    json!("PreemptLowerPriority"),
                ),
                json!(["pc2", 1_000_000_000, true, "5m", "PreemptLowerPriority"]),
            ),
            (
                pc("pc2", ago(5 * MINUTE), 1_000_000_000, true, json!(null)),
                json!(["pc2", 1_000_000_000, true, "5m", ""]),
            ),
        ],
    );
    check(
        "node.k8s.io",
        "RuntimeClass",
        &[
            (
                json!({"metadata": {"name": "rc1", "creationTimestamp": soon()}, "handler": "h1"}),
                json!(["rc1", "h1", "0s"]),
            ),
            (
                json!({"metadata": {"name": "rc2", "creationTimestamp": ago(5 * MINUTE)}, "handler": "h2"}),
                json!(["rc2", "h2", "5m"]),
            ),
        ],
    );
}

// ---- admissionregistration, flowcontrol, apiregistration, resource ----

#[test]
fn admission_kinds() {
    check(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        &[(
            json!({"metadata": {"name": "w"}, "webhooks": [{"name": "a"}, {"name": "b"}]}),
            json!(["w", 2, "<unknown>"]),
        )],
    );
    check(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        &[
            (
                json!({"metadata": {"name": "config", "creationTimestamp": ago(5 * MINUTE)},
                       "spec": {"policyName": "test-scale.example.com",
                                "paramRef": {"name": "test-scale-setting.example.com",
                                             "parameterNotFoundAction": "Deny"}}}),
                json!([
                    "config",
                    "test-scale.example.com",
                    "*/test-scale-setting.example.com",
                    "5m"
                ]),
            ),
            (
                json!({"metadata": {"name": "ns"}, "spec": {"policyName": "p",
                       "paramRef": {"name": "n", "namespace": "default"}}}),
                json!(["ns", "p", "default/n", "<unknown>"]),
            ),
            (
                json!({"metadata": {"name": "sel"}, "spec": {"policyName": "p",
                       "paramRef": {"selector": {"matchLabels": {"a": "b"}}}}}),
                json!([
                    "sel",
                    "p",
                    "&LabelSelector{MatchLabels:map[string]string{a: b,},\
                        MatchExpressions:[]LabelSelectorRequirement{},}",
                    "<unknown>"
                ]),
            ),
            (
                json!({"metadata": {"name": "none"}, "spec": {"policyName": "p"}}),
                json!(["none", "p", "<unset>", "<unknown>"]),
            ),
        ],
    );
    check(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        &[(
            json!({"metadata": {"name": "vap"}, "spec": {"validations": [{"expression": "true"}],
                   "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}}}),
            json!(["vap", 1, "v1/ConfigMap", "<unknown>"]),
        )],
    );
    check(
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        &[(
            json!({"metadata": {"name": "map"}, "spec": {}}),
            json!(["map", 0, "<unset>", "<unknown>"]),
        )],
    );
}

#[test]
fn flow_control() {
    let fs = |name: &str, created: String, precedence: i64, method: Value, status: Value| {
        json!({"metadata": {"name": name, "creationTimestamp": created},
               "spec": {"priorityLevelConfiguration": {"name": "allee"}, "matchingPrecedence": precedence,
                        "distinguisherMethod": method},
               "status": status})
    };
    let all = fs(
        "all-matcher",
        soon(),
        2_147_483_647,
        json!({"type": "ByUser"}),
        json!({}),
    );
    let some = fs(
        "some-matcher",
        ago(5 * MINUTE),
        0,
        json!({"type": "ByNamespace"}),
        json!({"conditions": [{"type": "Dangling", "status": "True", "lastTransitionTime": ago(HOUR)}]}),
    );
    let exempt = fs("exempt", ago(5 * MINUTE), 0, json!(null), json!({}));
    check(
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        &[
            (
                all.clone(),
                json!(["all-matcher", "allee", 2_147_483_647, "ByUser", "0s", "?"]),
            ),
            (
                some.clone(),
                json!(["some-matcher", "allee", 0, "ByNamespace", "5m", "True"]),
            ),
            (
                exempt.clone(),
                json!(["exempt", "allee", 0, "<none>", "5m", "?"]),
            ),
        ],
    );
    // Lists are ordered by precedence, then name.
    let rows = match table_rows(
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        [&all, &some, &exempt],
        now(),
    ) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rows.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 1, 0]);

    let pl = |name: &str, spec: Value| json!({"metadata": {"name": name, "creationTimestamp": soon()}, "spec": spec});
    check(
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        &[
            (
                pl("unlimited", json!({"type": "Exempt"})),
                json!([
                    "unlimited",
                    "Exempt",
                    "<none>",
                    "<none>",
                    "<none>",
                    "<none>",
                    "0s"
                ]),
            ),
            (
                pl(
                    "unqueued",
                    json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 47,
                                                                      "limitResponse": {"type": "Reject"}}}),
                ),
                json!(["unqueued", "Limited", 47, "<none>", "<none>", "<none>", "0s"]),
            ),
            (
                pl(
                    "queued",
                    json!({"type": "Limited", "limited": {"nominalConcurrencyShares": 42,
                    "limitResponse": {"type": "Queue", "queuing": {"queues": 8, "handSize": 3, "queueLengthLimit": 4}}}}),
                ),
                json!(["queued", "Limited", 42, 8, 3, 4, "0s"]),
            ),
            (
                pl(
                    "v1beta2",
                    json!({"type": "Limited", "limited": {"assuredConcurrencyShares": 5}}),
                ),
                json!(["v1beta2", "Limited", 5, "<none>", "<none>", "<none>", "0s"]),
            ),
        ],
    );
}

#[test]
fn api_services() {
    let svc = |spec: Value, conditions: Value| {
        json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "creationTimestamp": ago(2 * DAY)},
               "spec": spec, "status": {"conditions": conditions}})
    };
    check(
        "apiregistration.k8s.io",
        "APIService",
        &[
            (
                svc(
                    json!({"group": "apps"}),
                    json!([{"type": "Available", "status": "True", "reason": "Local"}]),
                ),
                json!(["v1beta1.metrics.k8s.io", "Local", "True", "2d"]),
            ),
            (
                svc(
                    json!({"service": {"namespace": "kube-system", "name": "metrics-server"}}),
                    json!([{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]),
                ),
                json!([
                    "v1beta1.metrics.k8s.io",
                    "kube-system/metrics-server",
                    "False (MissingEndpoints)",
                    "2d"
                ]),
            ),
            (
                svc(json!({}), json!([])),
                json!(["v1beta1.metrics.k8s.io", "Local", "Unknown", "2d"]),
            ),
        ],
    );
}

#[test]
fn resource_kinds() {
    check(
        "resource.k8s.io",
        "DeviceClass",
        &[
            (
                json!({"metadata": {"name": "test-deviceclass", "creationTimestamp": ago(5 * MINUTE)}}),
                json!(["test-deviceclass", "5m"]),
            ),
            (
                json!({"metadata": {"name": "test-deviceclass"}}),
                json!(["test-deviceclass", "<unknown>"]),
            ),
        ],
    );
    let claim =
        |meta: Value, status: Value| json!({"metadata": meta, "spec": {}, "status": status});
    check(
        "resource.k8s.io",
        "ResourceClaim",
        &[
            (
                claim(
                    json!({"name": "c", "creationTimestamp": ago(5 * MINUTE)}),
                    json!({}),
                ),
                json!(["c", "pending", "5m"]),
            ),
            (
                claim(json!({"name": "c"}), json!({})),
                json!(["c", "pending", "<unknown>"]),
            ),
            (
                claim(
                    json!({"name": "c", "creationTimestamp": ago(5 * MINUTE)}),
                    json!({"allocation": {}, "reservedFor": [{"resource": "pods", "name": "pod-test"}]}),
                ),
                json!(["c", "allocated,reserved", "5m"]),
            ),
            (
                claim(
                    json!({"name": "c", "creationTimestamp": ago(5 * MINUTE), "deletionTimestamp": ago(0)}),
                    json!({}),
                ),
                json!(["c", "deleted", "5m"]),
            ),
        ],
    );
    check(
        "resource.k8s.io",
        "ResourceSlice",
        &[(
            json!({"metadata": {"name": "test-resourceslice", "creationTimestamp": ago(5 * MINUTE)},
                   "spec": {"nodeName": "nodeName", "driver": "driverName",
                            "pool": {"name": "poolName", "resourceSliceCount": 1}}}),
            json!([
                "test-resourceslice",
                "nodeName",
                "driverName",
                "poolName",
                "5m"
            ]),
        )],
    );
}

// ---- the default convertor and the column JSON ----

#[test]
fn default_convertor() {
    assert!(!has_printer("rbac.authorization.k8s.io", "Role"));
    assert!(!has_printer("storage.k8s.io", "CSIStorageCapacity"));
    assert_eq!(
        row(
            "rbac.authorization.k8s.io",
            "ClusterRole",
            &json!({"metadata": {"name": "admin", "creationTimestamp": "2026-11-22T15:55:57.5+01:00"}})
        ),
        [json!("admin"), json!("2026-11-22T14:55:57Z")]
    );
    assert_eq!(
        default_row(&json!({})),
        [json!(""), json!("0001-01-01T00:00:00Z")]
    );
    assert_eq!(
        default_columns(),
        json!([
            {"name": "Name", "type": "string", "format": "name", "description": docs::META_NAME, "priority": 0},
            {"name": "Created At", "type": "date", "format": "", "description": docs::META_CREATION_TIMESTAMP, "priority": 0}
        ])
    );
    assert_eq!(columns("example.com", "CronTab"), columns::DEFAULT);
}

#[test]
fn pod_column_definitions_match_the_table_sample() {
    let table = match ResourceTable::builtin() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let Some(pods) = table.get("", "v1", "pods") else {
        panic!("no pods")
    };
    let defs = column_definitions(pods);
    let names: Vec<&str> = defs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(defs[0]["format"], "name");
    assert_eq!(defs[0]["description"], docs::META_NAME);
    assert_eq!(
        defs[1]["description"],
        "The aggregate readiness state of this pod for accepting traffic."
    );
    assert_eq!(defs[5]["priority"], 1);
    assert_eq!(defs[3]["type"], "string");
    // The sample kubectl was driven with (cells of a running pod, rendered wide).
    let pod = json!({"metadata": {"name": "mypod", "creationTimestamp": ago(5 * MINUTE)},
                     "spec": {"containers": [{"name": "mypod", "image": "nginx"}], "nodeName": "node-1"},
                     "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}],
                                "containerStatuses": [{"name": "mypod", "ready": true, "restartCount": 0,
                                                       "state": {"running": {}}}]}});
    assert_eq!(
        row("", "Pod", &pod),
        [
            json!("mypod"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("5m"),
            json!("10.0.0.9"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

/// A list of 10,000 pods prints in one pass with no per-object lookups or parsing beyond the
/// fields the cells need (a guard against accidental quadratic work, not a benchmark).
#[test]
fn large_lists_print_in_order() {
    let pods: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"metadata": {"name": format!("pod-{i}"), "creationTimestamp": ago(i * S)},
                   "spec": {"containers": [{}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"ready": true, "restartCount": 0, "state": {"running": {}}}]}})
        })
        .collect();
    let rows = match table_rows("", "Pod", &pods, now()) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rows.len(), 10_000);
    assert!(rows
        .iter()
        .enumerate()
        .all(|(i, r)| r.index == i && r.cells.len() == 9));
    assert_eq!(rows[9_999].cells[4], json!("166m"));
}
