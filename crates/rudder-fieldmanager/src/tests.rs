//! Behaviour tests against upstream's documented and observed managedFields.

use serde_json::{json, Value};

use rudder_api::patch::SchemaTable;

use crate::{
    to_field_set, FieldManager, FieldManagerError, FieldSet, ManagedFieldsEntry, Operation,
    OperationInfo,
};

const T1: &str = "2026-11-22T10:00:00Z";
const T2: &str = "2026-11-22T11:00:00Z";
const T3: &str = "2026-11-22T12:00:00Z";

fn fm() -> FieldManager<'static> {
    FieldManager::new(SchemaTable::builtin().unwrap())
}

fn op<'a>(manager: &'a str, api_version: &'a str, time: &'a str) -> OperationInfo<'a> {
    OperationInfo {
        manager,
        api_version,
        subresource: "",
        time,
        reset_fields: None,
    }
}

fn entries(obj: &Value) -> Vec<ManagedFieldsEntry> {
    ManagedFieldsEntry::decode_object(obj).unwrap()
}

fn fields_of(obj: &Value, manager: &str) -> String {
    entries(obj)
        .into_iter()
        .find(|e| e.manager == manager)
        .map(|e| e.fields.to_fields_v1_string())
        .unwrap_or_default()
}

/// What the API server stores for `kubectl create deployment web --image=nginx` after
/// defaulting (the uid is set by the registry later).
fn created_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                "type": "RollingUpdate"
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "image": "nginx",
                        "imagePullPolicy": "Always",
                        "name": "nginx",
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        }
    })
}

fn with_uid(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!("0b8c6e5e-0000-4000-8000-000000000001");
    obj
}

#[test]
fn create_records_every_field_like_kubectl_create() {
    // Upstream's managedFields of `kubectl create deployment` (Kubernetes 1.3x).
    let expected = concat!(
        r#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
        r#""f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},"#,
        r#""f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},"#,
        r#""f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"#,
        r#""f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"#,
        r#""f:dnsPolicy":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}"#
    );
    let out = fm()
        .update(
            None,
            created_deployment(),
            &op("kubectl-create", "apps/v1", T1),
        )
        .unwrap();
    let es = entries(&out);
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].operation, Operation::Update);
    assert_eq!(es[0].api_version, "apps/v1");
    assert_eq!(es[0].time.as_deref(), Some(T1));
    assert_eq!(es[0].fields.to_fields_v1_string(), expected);
    let json = &out["metadata"]["managedFields"][0];
    assert_eq!(json["fieldsType"], "FieldsV1");
    assert_eq!(json["manager"], "kubectl-create");
}

#[test]
fn field_set_of_applied_configuration() {
    // The server-side apply example of the Kubernetes documentation (ConfigMap).
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "test-cm", "namespace": "default", "labels": {"test-label": "test"}},
        "data": {"key": "some value"}
    });
    let table = SchemaTable::builtin().unwrap();
    let schema = table.kind("v1", "ConfigMap").unwrap();
    let set = to_field_set(&cm, schema).unwrap();
    let strip = FieldSet::from_fields_v1_str(
        r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:name":{},"f:namespace":{}}}"#,
    )
    .unwrap();
    assert_eq!(
        set.difference(&strip).to_fields_v1_string(),
        r#"{"f:data":{"f:key":{}},"f:metadata":{"f:labels":{"f:test-label":{}}}}"#
    );

    // Deployment: list-map items keyed (ports by containerPort and defaulted protocol), env by
    // name, set lists by value, atomic selector.
    let deploy = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["example.com/a"]},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "MODE", "value": "prod"}],
                "args": ["--a", "--b"]
            }]}}
        }
    });
    let schema = table.kind("apps/v1", "Deployment").unwrap();
    let set = to_field_set(&deploy, schema).unwrap();
    assert_eq!(
        set.to_fields_v1_string(),
        concat!(
            r#"{"f:apiVersion":{},"f:kind":{},"f:metadata":{"f:finalizers":{"v:\"example.com/a\"":{}},"f:name":{}},"#,
            r#""f:spec":{"f:selector":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"#,
            r#""f:args":{},"f:env":{"k:{\"name\":\"MODE\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:name":{},"#,
            r#""f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}}}}"#
        )
    );

    // A list-map item without its key is an error, as upstream.
    let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    assert!(matches!(
        to_field_set(&bad, schema),
        Err(FieldManagerError::InvalidObject { .. })
    ));

    // Unknown kinds: maps granular (entries are members), lists atomic.
    let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "spec": {"size": 3, "tags": ["a"], "nested": {"x": 1}}});
    let set = to_field_set(&cr, rudder_api::patch::TypeSchema::unknown()).unwrap();
    assert_eq!(
        set.to_fields_v1_string(),
        r#"{"f:apiVersion":{},"f:kind":{},"f:spec":{".":{},"f:nested":{".":{},"f:x":{}},"f:size":{},"f:tags":{}}}"#
    );
}

#[test]
fn update_moves_changed_fields_and_keeps_upstream_order() {
    let created = fm()
        .update(
            None,
            created_deployment(),
            &op("kubectl-create", "apps/v1", T1),
        )
        .unwrap();
    let live = with_uid(created);

    // `kubectl scale` style update of replicas by another manager.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(3);
    let out = fm()
        .update(Some(&live), scaled, &op("kubectl-edit", "apps/v1", T2))
        .unwrap();
    let es = entries(&out);
    assert_eq!(es.len(), 2);
    assert_eq!(es[0].manager, "kubectl-create");
    assert_eq!(es[1].manager, "kubectl-edit");
    assert_eq!(
        fields_of(&out, "kubectl-edit"),
        r#"{"f:spec":{"f:replicas":{}}}"#
    );
    assert!(!fields_of(&out, "kubectl-create").contains("f:replicas"));

    // A no-op update records nothing and keeps times.
    let out2 = fm()
        .update(Some(&out), out.clone(), &op("someone", "apps/v1", T3))
        .unwrap();
    assert_eq!(entries(&out2), entries(&out));

    // Removing a label takes it from its owner; an entry left empty is dropped.
    let mut unlabelled = out.clone();
    unlabelled["spec"]["replicas"] = json!(1);
    let out3 = fm()
        .update(Some(&out), unlabelled, &op("kubectl-create", "apps/v1", T3))
        .unwrap();
    let es = entries(&out3);
    assert_eq!(es.len(), 1, "{es:?}");
    assert_eq!(es[0].time.as_deref(), Some(T3));

    // An existing object that has no managed fields stays untracked, as upstream.
    let mut bare = with_uid(created_deployment());
    bare["spec"]["replicas"] = json!(2);
    let out4 = fm()
        .update(
            Some(&with_uid(created_deployment())),
            bare,
            &op("x", "apps/v1", T2),
        )
        .unwrap();
    assert!(out4["metadata"].get("managedFields").is_none());
}

#[test]
fn status_writes_are_recorded_with_their_subresource() {
    let live = with_uid(
        fm().update(
            None,
            created_deployment(),
            &op("kubectl-create", "apps/v1", T1),
        )
        .unwrap(),
    );
    let mut new = live.clone();
    new["status"] = json!({"replicas": 1, "observedGeneration": 1});
    // A status write that also tries to change the spec: the spec is reset by the strategy;
    // ownership of reset fields is never recorded through this endpoint.
    let reset = FieldSet::from_fields_v1_str(r#"{"f:spec":{}}"#).unwrap();
    let info = OperationInfo {
        manager: "kube-controller-manager",
        api_version: "apps/v1",
        subresource: "status",
        time: T2,
        reset_fields: Some(&reset),
    };
    let out = fm().update(Some(&live), new, &info).unwrap();
    let es = entries(&out);
    let status = es.iter().find(|e| e.subresource == "status").unwrap();
    assert_eq!(status.manager, "kube-controller-manager");
    assert_eq!(
        status.fields.to_fields_v1_string(),
        r#"{"f:status":{"f:observedGeneration":{},"f:replicas":{}}}"#
    );
    assert_eq!(out["metadata"]["managedFields"][1]["subresource"], "status");
}

fn applied_deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "web", "image": image,
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "0"}]
                }]}
            }
        }
    })
}

#[test]
fn apply_conflicts_with_client_side_apply_then_force_takes_over() {
    // Created by client-side apply (an Update by kubectl-client-side-apply).
    let live = with_uid(
        fm().update(
            None,
            applied_deployment(1, "nginx:1.26"),
            &op("kubectl-client-side-apply", "apps/v1", T1),
        )
        .unwrap(),
    );

    // Same values: no conflict, shared ownership.
    let same = fm()
        .apply(
            Some(&live),
            &applied_deployment(1, "nginx:1.26"),
            &op("kubectl", "apps/v1", T2),
            false,
        )
        .unwrap();
    assert!(fields_of(&same, "kubectl-client-side-apply").contains("f:replicas"));
    assert!(fields_of(&same, "kubectl").contains("f:replicas"));
    assert_eq!(entries(&same)[0].operation, Operation::Apply);

    // Different replicas: one conflict, upstream's message.
    let err = fm()
        .apply(
            Some(&live),
            &applied_deployment(3, "nginx:1.26"),
            &op("kubectl", "apps/v1", T2),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
    );
    let FieldManagerError::Conflict(conflicts) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        conflicts.0[0].cause(),
        (
            r#"conflict with "kubectl-client-side-apply" using apps/v1"#.to_owned(),
            ".spec.replicas".to_owned()
        )
    );

    // Two conflicts: upstream's multi-line form.
    let err = fm()
        .apply(
            Some(&live),
            &applied_deployment(3, "nginx:1.27"),
            &op("kubectl", "apps/v1", T2),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        concat!(
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:\n",
            "- .spec.replicas\n",
            "- .spec.template.spec.containers[name=\"web\"].image"
        )
    );

    // Force: the applier takes the fields over.
    let forced = fm()
        .apply(
            Some(&live),
            &applied_deployment(3, "nginx:1.27"),
            &op("kubectl", "apps/v1", T2),
            true,
        )
        .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    let csa = fields_of(&forced, "kubectl-client-side-apply");
    assert!(
        !csa.contains("f:replicas") && !csa.contains("f:image"),
        "{csa}"
    );
    let mine = fields_of(&forced, "kubectl");
    assert!(mine.contains("f:replicas") && mine.contains("f:image"));
    // Applier sets exclude the stripped metadata (name, namespace, apiVersion, kind).
    assert!(!mine.contains("f:name\":{},\"f:namespace") && !mine.contains("f:apiVersion"));
}

#[test]
fn apply_removes_fields_dropped_from_the_configuration() {
    let table_op = op("helm", "apps/v1", T1);
    let mut first = applied_deployment(2, "nginx:1.27");
    first["metadata"]["labels"]["tier"] = json!("frontend");
    let created = fm().apply(None, &first, &table_op, false).unwrap();
    assert_eq!(entries(&created).len(), 1);
    assert_eq!(created["metadata"]["labels"]["tier"], "frontend");
    let live = with_uid(created);

    // Another manager adds its own label; it must survive helm's next apply.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["owner"] = json!("ops");
    let live = fm()
        .update(Some(&live), labelled, &op("kubectl-label", "apps/v1", T2))
        .unwrap();

    // Helm drops the tier label and the DEBUG env var.
    let mut second = applied_deployment(2, "nginx:1.27");
    second["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "MODE", "value": "prod"}]);
    let out = fm()
        .apply(Some(&live), &second, &op("helm", "apps/v1", T3), false)
        .unwrap();
    let labels = &out["metadata"]["labels"];
    assert!(labels.get("tier").is_none(), "{labels}");
    assert_eq!(labels["owner"], "ops");
    assert_eq!(labels["app"], "web");
    let env = &out["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(env, &json!([{"name": "MODE", "value": "prod"}]));
    let helm = fields_of(&out, "helm");
    assert!(!helm.contains("tier") && !helm.contains("DEBUG"));
    assert_eq!(entries(&out)[0].time.as_deref(), Some(T3));

    // Applying the same configuration again changes nothing and keeps the time.
    let again = fm()
        .apply(
            Some(&out),
            &second,
            &op("helm", "apps/v1", "2026-11-23T00:00:00Z"),
            false,
        )
        .unwrap();
    assert_eq!(entries(&again), entries(&out));
}

#[test]
fn apply_merges_list_maps_and_sets() {
    let base = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "finalizers": ["a"]},
        "data": {"one": "1"}
    });
    let live = with_uid(fm().apply(None, &base, &op("m1", "v1", T1), false).unwrap());
    let other = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "finalizers": ["b"]},
        "data": {"two": "2"}
    });
    let out = fm()
        .apply(Some(&live), &other, &op("m2", "v1", T2), false)
        .unwrap();
    assert_eq!(out["data"], json!({"one": "1", "two": "2"}));
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b"]));
    assert_eq!(
        fields_of(&out, "m2"),
        r#"{"f:data":{"f:two":{}},"f:metadata":{"f:finalizers":{"v:\"b\"":{}}}}"#
    );

    // Containers merge by name: a second applier adds a sidecar, the first keeps its own.
    let d1 = applied_deployment(1, "nginx");
    let live = with_uid(
        fm().apply(None, &d1, &op("a", "apps/v1", T1), false)
            .unwrap(),
    );
    let d2 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}});
    let out = fm()
        .apply(Some(&live), &d2, &op("b", "apps/v1", T2), false)
        .unwrap();
    let names: Vec<&str> = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web", "sidecar"]);
}

#[test]
fn first_apply_to_an_untracked_object_credits_before_first_apply() {
    let live = with_uid(created_deployment());
    let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 1}});
    let out = fm()
        .apply(Some(&live), &applied, &op("kubectl", "apps/v1", T2), false)
        .unwrap();
    let es = entries(&out);
    assert_eq!(es[0].manager, "kubectl");
    assert_eq!(es[0].operation, Operation::Apply);
    assert_eq!(es[1].manager, crate::BEFORE_FIRST_APPLY_MANAGER);
    assert_eq!(es[1].operation, Operation::Update);
    assert!(es[1].fields.to_fields_v1_string().contains("f:replicas"));

    // Applied configurations must not carry managedFields.
    let mut bad = applied.clone();
    bad["metadata"]["managedFields"] = json!([]);
    assert!(fm()
        .apply(Some(&live), &bad, &op("kubectl", "apps/v1", T2), false)
        .is_err());
}

#[test]
fn clients_may_replace_or_clear_managed_fields_on_the_main_resource() {
    let live = with_uid(
        fm().update(
            None,
            created_deployment(),
            &op("kubectl-create", "apps/v1", T1),
        )
        .unwrap(),
    );
    // `[{}]` clears them; the object then stays untracked.
    let mut cleared = live.clone();
    cleared["metadata"]["managedFields"] = json!([{}]);
    cleared["spec"]["replicas"] = json!(4);
    let out = fm()
        .update(Some(&live), cleared, &op("kubectl-edit", "apps/v1", T2))
        .unwrap();
    assert!(out["metadata"].get("managedFields").is_none());

    // Entries the client sends replace the live ones.
    let mut edited = live.clone();
    edited["metadata"]["managedFields"] = json!([{
        "manager": "someone", "operation": "Update", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}
    }]);
    let out = fm()
        .update(
            Some(&live),
            edited.clone(),
            &op("kubectl-edit", "apps/v1", T2),
        )
        .unwrap();
    let es = entries(&out);
    assert_eq!(es.len(), 1);
    assert_eq!(es[0].manager, "someone");

    // On a subresource they are ignored and the live ones kept.
    let info = OperationInfo {
        subresource: "status",
        ..op("kubectl-edit", "apps/v1", T2)
    };
    let out = fm().update(Some(&live), edited, &info).unwrap();
    assert_eq!(entries(&out)[0].manager, "kubectl-create");
}

#[test]
fn conflicts_name_appliers_and_list_every_manager() {
    let cm = |data: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data});
    let live = with_uid(
        fm().apply(
            None,
            &cm(json!({"a": "1", "b": "1"})),
            &op("helm", "v1", T1),
            false,
        )
        .unwrap(),
    );
    let live = fm()
        .apply(
            Some(&live),
            &cm(json!({"c": "1"})),
            &op("argocd", "v1", T2),
            false,
        )
        .unwrap();
    let mut edited = live.clone();
    edited["data"]["c"] = json!("2");
    let live = fm()
        .update(Some(&live), edited, &op("kubectl-edit", "v1", T2))
        .unwrap();
    let err = fm()
        .apply(
            Some(&live),
            &cm(json!({"a": "9", "c": "9"})),
            &op("kubectl", "v1", T3),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        concat!(
            "Apply failed with 2 conflicts: conflicts with \"helm\":\n",
            "- .data.a\n",
            "conflicts with \"kubectl-edit\" using v1:\n",
            "- .data.c"
        )
    );
    // argocd lost .data.c to kubectl-edit's update, so it no longer conflicts.
    assert!(!fields_of(&live, "argocd").contains("f:c"));
}

#[test]
fn merge_keeps_live_order_and_places_new_items_by_applied_order() {
    let table = SchemaTable::builtin().unwrap();
    let schema = table.kind("v1", "Pod").unwrap();
    let c = |names: &[&str]| {
        let items: Vec<Value> = names
            .iter()
            .map(|n| json!({"name": n, "image": "i"}))
            .collect();
        json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": items}})
    };
    let merged = crate::merge(&c(&["a", "b", "c"]), &c(&["x", "b"]), schema).unwrap();
    let names: Vec<&str> = merged["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "x", "b", "c"]);
}

#[test]
fn update_managers_are_capped_into_ancient_changes() {
    let mut obj = fm()
        .update(
            None,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"base": "x"}}),
            &op("creator", "v1", "2026-01-01T00:00:00Z"),
        )
        .unwrap();
    obj = with_uid(obj);
    // 12 Update managers: the creator and 11 writers; the three oldest go to the bucket.
    for i in 0..11 {
        let mut next = obj.clone();
        next["data"][format!("k{i}")] = json!("v");
        let time = format!("2026-01-01T00:00:{i:02}Z");
        let name = format!("writer-{i:02}");
        obj = fm()
            .update(Some(&obj), next, &op(&name, "v1", &time))
            .unwrap();
    }
    let es = entries(&obj);
    assert_eq!(es.len(), crate::MAX_UPDATE_MANAGERS);
    let ancient = es
        .iter()
        .find(|e| e.manager == crate::ANCIENT_CHANGES_MANAGER)
        .unwrap();
    assert_eq!(
        ancient.fields.to_fields_v1_string(),
        r#"{"f:data":{".":{},"f:base":{},"f:k0":{},"f:k1":{}}}"#
    );
    assert_eq!(ancient.time.as_deref(), Some("2026-01-01T00:00:01Z"));
}

/// What `kubectl apply` (client-side) creates: the configuration plus its last-applied
/// annotation, which kubectl writes with `"annotations":{}` and a trailing newline.
fn client_side_applied(replicas: i64, image: &str) -> Value {
    let mut config = applied_deployment(replicas, image);
    config["metadata"]["annotations"] = json!({});
    let text = format!("{}\n", crate::path::go_json(&config));
    config["metadata"]["annotations"] = json!({ crate::LAST_APPLIED_ANNOTATION: text });
    with_uid(
        fm().update(
            None,
            config,
            &op("kubectl-client-side-apply", "apps/v1", T1),
        )
        .unwrap(),
    )
}

fn last_applied(obj: &Value) -> &str {
    obj["metadata"]["annotations"][crate::LAST_APPLIED_ANNOTATION]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn kubectl_takes_over_fields_client_side_apply_set() {
    let live = client_side_applied(1, "nginx:1.26");
    let applied = applied_deployment(3, "nginx:1.27");
    let out = fm()
        .apply(Some(&live), &applied, &op("kubectl", "apps/v1", T2), false)
        .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let csa = fields_of(&out, "kubectl-client-side-apply");
    assert!(
        !csa.contains("f:replicas") && !csa.contains("f:image"),
        "{csa}"
    );
    // The annotation stays with client-side apply, which keeps the fields nobody changed.
    assert!(csa.contains("f:kubectl.kubernetes.io/last-applied-configuration"));
    assert!(csa.contains("f:selector"), "{csa}");
    let mine = fields_of(&out, "kubectl");
    assert!(mine.contains("f:replicas") && mine.contains("f:image"));
    // The annotation now holds the applied configuration, encoded as upstream encodes it.
    assert_eq!(
        last_applied(&out),
        format!("{}\n", crate::path::go_json(&applied))
    );

    // Any other manager still conflicts, and the annotation is left alone.
    let err = fm()
        .apply(Some(&live), &applied, &op("other", "apps/v1", T2), false)
        .unwrap_err();
    assert!(err.to_string().starts_with(
        "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using apps/v1:"
    ));
    let same = fm()
        .apply(
            Some(&live),
            &applied_deployment(1, "nginx:1.26"),
            &op("other", "apps/v1", T2),
            false,
        )
        .unwrap();
    assert_eq!(last_applied(&same), last_applied(&live));
}

#[test]
fn kubectl_still_conflicts_on_fields_changed_since_the_last_client_side_apply() {
    let live = client_side_applied(1, "nginx:1.26");
    // Someone scaled it after the client-side apply: the annotation no longer describes
    // replicas, so that conflict stays; the image conflict (client-side apply's) is dropped.
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    let scaled = fm()
        .update(Some(&live), scaled, &op("kubectl-scale", "apps/v1", T2))
        .unwrap();
    let err = fm()
        .apply(
            Some(&scaled),
            &applied_deployment(3, "nginx:1.27"),
            &op("kubectl", "apps/v1", T3),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
    );
    // An annotation of another apiVersion is not used.
    let mut other_version = live.clone();
    let text = last_applied(&live).replace("apps/v1", "apps/v1beta1");
    other_version["metadata"]["annotations"][crate::LAST_APPLIED_ANNOTATION] = json!(text);
    let err = fm()
        .apply(
            Some(&other_version),
            &applied_deployment(3, "nginx:1.26"),
            &op("kubectl", "apps/v1", T3),
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("kubectl-client-side-apply"),
        "{err}"
    );
}

#[test]
fn annotation_of_an_applied_configuration_drops_itself_and_keeps_other_annotations() {
    let live = client_side_applied(1, "nginx:1.26");
    let mut applied = applied_deployment(1, "nginx:1.26");
    applied["metadata"]["annotations"] = json!({
        crate::LAST_APPLIED_ANNOTATION: "stale",
        "note": "a<b"
    });
    let out = fm()
        .apply(Some(&live), &applied, &op("kubectl", "apps/v1", T2), true)
        .unwrap();
    let text = last_applied(&out);
    assert!(text.ends_with("}\n"), "{text}");
    assert!(
        text.contains(r#""metadata":{"annotations":{"note":"a\u003cb"},"labels""#),
        "{text}"
    );
}
