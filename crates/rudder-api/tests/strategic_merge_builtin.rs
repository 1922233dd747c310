//! Strategic merge patch on the built-in types, with the schema table built from
//! `data/list-and-patch-semantics.tsv`: upstream's documented behaviour for containers, env,
//! ports, volumes, tolerations, the directives, and what kubectl really sends.

use rudder_api::patch::{
    create_merge_patch, create_two_way_merge_patch, merge_patch, strategic_merge, FieldShape,
    ListType, MapType, PatchStrategy, SchemaTable, StructType, TypeSchema,
};
use serde_json::{json, Value};

fn table() -> &'static SchemaTable {
    SchemaTable::builtin().expect("builtin schema parses")
}

fn kind(api_version: &str, kind: &str) -> TypeSchema<'static> {
    table().kind(api_version, kind).expect("built-in kind")
}

fn apply(api_version: &str, k: &str, original: &Value, patch: &Value) -> Value {
    strategic_merge(original, patch, kind(api_version, k)).expect("patch applies")
}

/// The Deployment of the Kubernetes docs' "Update API Objects in Place Using kubectl patch".
fn patch_demo() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "patch-demo"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                    "tolerations": [
                        {"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}
                    ]
                }
            }
        }
    })
}

fn pod_spec(v: &Value) -> &Value {
    &v["spec"]["template"]["spec"]
}

#[test]
fn containers_merge_by_name_and_new_ones_come_first() {
    // Docs: `kubectl patch deployment patch-demo --patch-file patch-file.yaml`.
    let patch = json!({"spec": {"template": {"spec": {
        "containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]
    }}}});
    let result = apply("apps/v1", "Deployment", &patch_demo(), &patch);
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([
            {"name": "patch-demo-ctr-2", "image": "redis"},
            {"name": "patch-demo-ctr", "image": "nginx"}
        ])
    );
}

#[test]
fn tolerations_are_replaced_whole() {
    // Docs: "the tolerations list in the PodSpec was replaced, not merged" (no patchStrategy).
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]
    }}}});
    let result = apply("apps/v1", "Deployment", &patch_demo(), &patch);
    assert_eq!(
        pod_spec(&result)["tolerations"],
        json!([{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}])
    );
    assert_eq!(
        pod_spec(&result)["containers"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn json_merge_patch_replaces_containers() {
    // Docs: `kubectl patch ... --type merge --patch-file patch-file-2.yaml`.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}
    ]}}}});
    let result = merge_patch(&patch_demo(), &patch);
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([{"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}])
    );
}

#[test]
fn retain_keys_switches_rolling_update_to_recreate() {
    // Docs: "Notes on the strategic merge patch using the retainKeys strategy".
    let mut deploy = patch_demo();
    deploy["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "30%"}});

    let plain = json!({"spec": {"strategy": {"type": "Recreate"}}});
    let result = apply("apps/v1", "Deployment", &deploy, &plain);
    assert_eq!(
        result["spec"]["strategy"],
        json!({"type": "Recreate", "rollingUpdate": {"maxSurge": "30%"}}),
        "without $retainKeys the old rollingUpdate stays (and validation would reject it)"
    );

    let retain = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let result = apply("apps/v1", "Deployment", &deploy, &retain);
    assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));

    // The two-way diff builds the directive itself, because DeploymentSpec.strategy has
    // patchStrategy retainKeys.
    let mut modified = deploy.clone();
    modified["spec"]["strategy"] = json!({"type": "Recreate"});
    let patch = create_two_way_merge_patch(&deploy, &modified, kind("apps/v1", "Deployment"))
        .expect("diff");
    assert_eq!(
        patch,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}})
    );
    assert_eq!(apply("apps/v1", "Deployment", &deploy, &patch), modified);
}

#[test]
fn kubectl_apply_patch_with_set_element_order() {
    // The body kubectl v1.37 sent for `apply -f deploy2.yaml` (kubectl-wire.md §7).
    let mut live = patch_demo();
    live["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
    ]);
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{"image": "nginx:1.27", "name": "nginx"}]
        }}}
    });
    let result = apply("apps/v1", "Deployment", &live, &patch);
    assert_eq!(result["spec"]["replicas"], json!(3));
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])
    );
    assert_eq!(
        result["metadata"]["annotations"],
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"})
    );
}

#[test]
fn set_image_diff_is_what_kubectl_sends() {
    let mut original = patch_demo();
    original["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "nginx", "image": "nginx:1.26"},
        {"name": "sidecar", "image": "busybox"}
    ]);
    let mut modified = original.clone();
    modified["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let patch = create_two_way_merge_patch(&original, &modified, kind("apps/v1", "Deployment"))
        .expect("diff");
    assert_eq!(
        patch,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
            "containers": [{"image": "nginx:1.27", "name": "nginx"}]
        }}}})
    );
    assert_eq!(apply("apps/v1", "Deployment", &original, &patch), modified);
}

#[test]
fn env_merges_by_name_and_deletes_by_key() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{
        "name": "app", "image": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    }]}});
    let patch = json!({"spec": {"containers": [{"name": "app", "env": [
        {"name": "B", "value": "3"}, {"name": "C", "value": "4"}
    ]}]}});
    let result = apply("v1", "Pod", &pod, &patch);
    assert_eq!(
        result["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
    );

    let delete = json!({"spec": {"containers": [{"name": "app", "env": [
        {"name": "A", "$patch": "delete"}
    ]}]}});
    let result = apply("v1", "Pod", &pod, &delete);
    assert_eq!(
        result["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "2"}])
    );

    // Deleting a value with null inside a merged item.
    let null_value = json!({"spec": {"containers": [{"name": "app", "env": [
        {"name": "B", "value": null}
    ]}]}});
    let result = apply("v1", "Pod", &pod, &null_value);
    assert_eq!(
        result["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B"}])
    );
}

#[test]
fn ports_merge_by_container_port_only() {
    let pod = json!({"spec": {"containers": [{"name": "web", "ports": [
        {"containerPort": 80, "protocol": "TCP"}
    ]}]}});
    let add = json!({"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 443}]}]}});
    let result = apply("v1", "Pod", &pod, &add);
    assert_eq!(
        result["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
    );

    let rename = json!({"spec": {"containers": [{"name": "web", "ports": [
        {"containerPort": 80, "name": "http"}
    ]}]}});
    let result = apply("v1", "Pod", &pod, &rename);
    assert_eq!(
        result["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "name": "http", "protocol": "TCP"}])
    );

    // SMP keys ports by containerPort alone (unlike SSA's containerPort+protocol), so a UDP
    // port on the same number merges into the TCP one, as upstream does.
    let udp = json!({"spec": {"containers": [{"name": "web", "ports": [
        {"containerPort": 80, "protocol": "UDP"}
    ]}]}});
    let result = apply("v1", "Pod", &pod, &udp);
    assert_eq!(
        result["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "UDP"}])
    );
}

#[test]
fn volumes_merge_by_name_with_retain_keys() {
    let pod = json!({"spec": {"volumes": [
        {"name": "data", "emptyDir": {}},
        {"name": "config", "configMap": {"name": "cfg"}}
    ]}});
    let patch = json!({"spec": {"volumes": [
        {"name": "data", "hostPath": {"path": "/data"}, "$retainKeys": ["hostPath", "name"]}
    ]}});
    let result = apply("v1", "Pod", &pod, &patch);
    assert_eq!(
        result["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/data"}}, {"name": "config", "configMap": {"name": "cfg"}}])
    );

    // PodSpec.volumes is "merge,retainKeys": the diff puts $retainKeys on each changed item.
    let mut modified = pod.clone();
    modified["spec"]["volumes"][0] = json!({"name": "data", "hostPath": {"path": "/data"}});
    let patch = create_two_way_merge_patch(&pod, &modified, kind("v1", "Pod")).expect("diff");
    assert_eq!(
        patch,
        json!({"spec": {
            "$setElementOrder/volumes": [{"name": "data"}, {"name": "config"}],
            "volumes": [{
                "$retainKeys": ["hostPath", "name"],
                "emptyDir": null,
                "hostPath": {"path": "/data"},
                "name": "data"
            }]
        }})
    );
    assert_eq!(apply("v1", "Pod", &pod, &patch), modified);
}

#[test]
fn finalizers_are_a_merged_set() {
    let obj = json!({"metadata": {"name": "x", "finalizers": ["a", "b", "c"]}});
    let delete = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}});
    assert_eq!(
        apply("v1", "ConfigMap", &obj, &delete)["metadata"]["finalizers"],
        json!(["a", "c"])
    );
    // Upstream's diff compares an in-place sorted copy of the original with the modified list:
    // reordering into sorted order goes unnoticed, any other reorder sends $setElementOrder.
    let schema = kind("v1", "ConfigMap");
    let unsorted = json!({"metadata": {"finalizers": ["b", "a"]}});
    let sorted = json!({"metadata": {"finalizers": ["a", "b"]}});
    assert_eq!(
        create_two_way_merge_patch(&unsorted, &sorted, schema).expect("diff"),
        json!({})
    );
    assert_eq!(
        create_two_way_merge_patch(&sorted, &unsorted, schema).expect("diff"),
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}})
    );
    assert_eq!(
        create_two_way_merge_patch(&unsorted, &unsorted, schema).expect("diff"),
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "a"]}})
    );

    let add = json!({"metadata": {"finalizers": ["d", "a"]}});
    assert_eq!(
        apply("v1", "ConfigMap", &obj, &add)["metadata"]["finalizers"],
        json!(["d", "a", "b", "c"])
    );
    // Namespace.spec.finalizers has no patch strategy: replaced.
    let ns = json!({"spec": {"finalizers": ["kubernetes"]}});
    let patch = json!({"spec": {"finalizers": ["other"]}});
    assert_eq!(
        apply("v1", "Namespace", &ns, &patch)["spec"]["finalizers"],
        json!(["other"])
    );
}

#[test]
fn nulls_delete_fields() {
    let mut deploy = patch_demo();
    deploy["spec"]["paused"] = json!(true);
    // `kubectl rollout resume`.
    let result = apply(
        "apps/v1",
        "Deployment",
        &deploy,
        &json!({"spec": {"paused": null}}),
    );
    assert!(result["spec"].get("paused").is_none());
    // `kubectl taint ... -` sends taints: null; `uncordon` unschedulable: null.
    let node =
        json!({"spec": {"unschedulable": true, "taints": [{"key": "k", "effect": "NoSchedule"}]}});
    let result = apply(
        "v1",
        "Node",
        &node,
        &json!({"spec": {"taints": null, "unschedulable": null}}),
    );
    assert_eq!(result["spec"], json!({}));
    // A null for a field that is not there is dropped, not stored.
    let result = apply(
        "v1",
        "Node",
        &node,
        &json!({"metadata": {"labels": {"a": null, "b": "1"}}}),
    );
    assert_eq!(result["metadata"], json!({"labels": {"b": "1"}}));
}

#[test]
fn patch_directives_on_maps_and_lists() {
    let deploy = patch_demo();
    let replace_list = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "busybox"}
    ]}}}});
    let result = apply("apps/v1", "Deployment", &deploy, &replace_list);
    assert_eq!(
        pod_spec(&result)["containers"],
        json!([{"name": "only", "image": "busybox"}])
    );

    let replace_map = json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "web"}}}}});
    let result = apply("apps/v1", "Deployment", &deploy, &replace_map);
    assert_eq!(
        result["spec"]["template"]["metadata"]["labels"],
        json!({"tier": "web"})
    );

    // `$patch: delete` on a map empties it (upstream returns an empty map, not an absent key).
    let delete_map = json!({"spec": {"selector": {"$patch": "delete"}}});
    let result = apply("apps/v1", "Deployment", &deploy, &delete_map);
    assert_eq!(result["spec"]["selector"], json!({}));

    // Merging is the default; `$patch: merge` in a list is refused as upstream does.
    let merge_in_list =
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}});
    let err = strategic_merge(&deploy, &merge_in_list, kind("apps/v1", "Deployment"))
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn missing_merge_key_is_upstreams_error() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "nginx"}]}}}});
    let err = strategic_merge(&patch_demo(), &patch, kind("apps/v1", "Deployment"))
        .expect_err("must fail");
    assert_eq!(
        err.to_string(),
        "map: map[image:nginx] does not contain declared merge key: name"
    );
    assert_eq!(err.http_status(), 500);

    let err = strategic_merge(&patch_demo(), &json!([1]), kind("apps/v1", "Deployment"))
        .expect_err("must fail");
    assert_eq!(err.to_string(), "invalid JSON document");
    assert_eq!(err.http_status(), 400);
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"spec": {"ports": [
        {"port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"port": 443, "targetPort": 8443, "protocol": "TCP"}
    ]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    let result = apply("v1", "Service", &svc, &patch);
    assert_eq!(
        result["spec"]["ports"],
        json!([
            {"port": 80, "targetPort": 9090, "protocol": "TCP"},
            {"port": 443, "targetPort": 8443, "protocol": "TCP"}
        ])
    );
}

#[test]
fn owner_references_merge_by_uid_and_ephemeral_containers_by_inlined_tags() {
    let pod = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]},
        "spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "A", "value": "1"}]}]}
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "2", "kind": "Job", "name": "j"}]},
        "spec": {"ephemeralContainers": [{"name": "debug", "env": [{"name": "B", "value": "2"}]}]}
    });
    let result = apply("v1", "Pod", &pod, &patch);
    assert_eq!(
        result["metadata"]["ownerReferences"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        result["spec"]["ephemeralContainers"][0]["env"],
        json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
    );
}

#[test]
fn replace_strategy_maps_are_sent_whole() {
    // PodDisruptionBudgetSpec.selector has patchStrategy replace: upstream's diff always sends
    // it, and applying replaces the selector instead of merging it.
    let pdb = json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "a", "tier": "web"}}}});
    let mut modified = pdb.clone();
    modified["spec"]["minAvailable"] = json!(2);
    let patch =
        create_two_way_merge_patch(&pdb, &modified, kind("policy/v1", "PodDisruptionBudget"))
            .expect("diff");
    assert_eq!(
        patch,
        json!({"spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "a", "tier": "web"}}}})
    );
    let narrower = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
    let result = apply("policy/v1", "PodDisruptionBudget", &pdb, &narrower);
    assert_eq!(
        result["spec"]["selector"],
        json!({"matchLabels": {"app": "a"}})
    );
}

#[test]
fn unknown_kinds_and_fields_get_json_merge_semantics() {
    assert!(table().kind("example.com/v1", "Widget").is_none());
    let widget = json!({"spec": {"items": [{"name": "a"}], "size": 1, "labels": {"x": "1"}}});
    let patch = json!({"spec": {"items": [{"name": "b"}], "size": null, "labels": {"y": "2"}}});
    let result = strategic_merge(&widget, &patch, TypeSchema::unknown()).expect("applies");
    assert_eq!(
        result,
        json!({"spec": {"items": [{"name": "b"}], "labels": {"x": "1", "y": "2"}}})
    );
    assert_eq!(result, merge_patch(&widget, &patch));

    // An unknown field inside a known type: its lists are atomic too.
    let pod = json!({"spec": {"futureList": [1, 2], "containers": []}});
    let patch = json!({"spec": {"futureList": [3]}});
    assert_eq!(
        apply("v1", "Pod", &pod, &patch)["spec"]["futureList"],
        json!([3])
    );
    // Where upstream's diff fails on a changed unknown map ("unable to find api field"), this
    // port diffs it like a JSON merge patch.
    let modified = json!({"spec": {"futureList": [1], "futureMap": {"a": 1}, "containers": []}});
    let diff = create_two_way_merge_patch(&pod, &modified, kind("v1", "Pod")).expect("diff");
    assert_eq!(
        diff,
        json!({"spec": {"futureList": [1], "futureMap": {"a": 1}}})
    );
}

#[test]
fn json_merge_patch_round_trip_on_a_deployment() {
    let original = patch_demo();
    let mut modified = original.clone();
    modified["spec"]["replicas"] = json!(5);
    modified["metadata"]["labels"] = json!({"team": "a"});
    let patch = create_merge_patch(&original, &modified);
    assert_eq!(
        patch,
        json!({"metadata": {"labels": {"team": "a"}}, "spec": {"replicas": 5}})
    );
    assert_eq!(merge_patch(&original, &patch), modified);
}

/// The table must say exactly what the upstream data says, for every row.
#[test]
fn table_agrees_with_the_semantics_tsv() {
    let tsv = include_str!("../data/list-and-patch-semantics.tsv");
    let mut rows = 0;
    for line in tsv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut cols: Vec<&str> = line.split('\t').collect();
        cols.resize(10, "");
        let [gv, ty, json_name, go_type, strategy, merge_key, list_type, map_keys, map_type, struct_type] = [
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8],
            cols[9],
        ];
        rows += 1;
        if json_name == "(struct)" {
            let def = table()
                .type_def(gv, ty)
                .unwrap_or_else(|| panic!("{gv} {ty}"));
            let expected = match struct_type {
                "atomic" => Some(StructType::Atomic),
                "granular" => Some(StructType::Granular),
                _ => None,
            };
            assert_eq!(def.struct_type(), expected, "{gv} {ty}");
            continue;
        }
        let f = table()
            .field(gv, ty, json_name)
            .unwrap_or_else(|| panic!("{gv} {ty}.{json_name} missing"));
        let ctx = format!("{gv} {ty}.{json_name}");
        assert_eq!(f.go_type(), Some(go_type), "{ctx}");
        let expected_strategy = if strategy.split(',').any(|s| s == "merge") {
            Some(PatchStrategy::Merge)
        } else if strategy.split(',').any(|s| s == "replace") {
            Some(PatchStrategy::Replace)
        } else {
            None
        };
        assert_eq!(f.patch_strategy(), expected_strategy, "{ctx}");
        assert_eq!(f.retain_keys(), strategy.contains("retainKeys"), "{ctx}");
        assert_eq!(
            f.patch_merge_key(),
            (!merge_key.is_empty()).then_some(merge_key),
            "{ctx}"
        );
        let expected_list_type = match list_type {
            "atomic" => Some(ListType::Atomic),
            "set" => Some(ListType::Set),
            "map" => Some(ListType::Map),
            _ => None,
        };
        assert_eq!(f.list_type(), expected_list_type, "{ctx}");
        let keys: Vec<&str> = map_keys.split(',').filter(|k| !k.is_empty()).collect();
        assert_eq!(f.list_map_keys(), keys.as_slice(), "{ctx}");
        let expected_map_type = match map_type {
            "atomic" => Some(MapType::Atomic),
            "granular" => Some(MapType::Granular),
            _ => None,
        };
        assert_eq!(f.map_type(), expected_map_type, "{ctx}");
        if go_type.starts_with("[]") {
            assert_eq!(f.shape(), FieldShape::List, "{ctx}");
        }
    }
    assert!(rows > 600, "read {rows} rows");
}

/// The fields the issue names, spelled out.
#[test]
fn well_known_fields() {
    let t = table();
    let containers = t
        .field("core/v1", "PodSpec", "containers")
        .expect("containers");
    assert_eq!(containers.patch_strategy(), Some(PatchStrategy::Merge));
    assert_eq!(containers.patch_merge_key(), Some("name"));

    let ports = t.field("core/v1", "Container", "ports").expect("ports");
    assert_eq!(ports.patch_strategy(), Some(PatchStrategy::Merge));
    assert_eq!(ports.patch_merge_key(), Some("containerPort"));
    assert_eq!(ports.list_type(), Some(ListType::Map));
    assert_eq!(ports.list_map_keys(), ["containerPort", "protocol"]);

    let env = t.field("core/v1", "Container", "env").expect("env");
    assert_eq!(
        (env.patch_strategy(), env.patch_merge_key()),
        (Some(PatchStrategy::Merge), Some("name"))
    );

    let finalizers = t
        .field("meta/v1", "ObjectMeta", "finalizers")
        .expect("finalizers");
    assert_eq!(finalizers.patch_strategy(), Some(PatchStrategy::Merge));
    assert_eq!(finalizers.patch_merge_key(), None);
    assert_eq!(finalizers.list_type(), Some(ListType::Set));

    let tolerations = t
        .field("core/v1", "PodSpec", "tolerations")
        .expect("tolerations");
    assert_eq!(tolerations.patch_strategy(), None);
    assert_eq!(tolerations.list_type(), Some(ListType::Atomic));

    let svc_ports = t
        .field("core/v1", "ServiceSpec", "ports")
        .expect("service ports");
    assert_eq!(svc_ports.patch_strategy(), Some(PatchStrategy::Merge));
    assert_eq!(svc_ports.patch_merge_key(), Some("port"));
    assert_eq!(svc_ports.list_map_keys(), ["port", "protocol"]);

    let volumes = t.field("core/v1", "PodSpec", "volumes").expect("volumes");
    assert_eq!(volumes.patch_strategy(), Some(PatchStrategy::Merge));
    assert!(volumes.retain_keys());

    let strategy = t
        .field("apps/v1", "DeploymentSpec", "strategy")
        .expect("strategy");
    assert_eq!(strategy.patch_strategy(), None);
    assert!(strategy.retain_keys());
    assert_eq!(
        t.elem_type(strategy).map(|d| d.name()),
        Some("DeploymentStrategy")
    );

    // Walking Deployment down to a container's env, as the engine does.
    let (spec, _) = kind("apps/v1", "Deployment").lookup_map("spec");
    let (template, _) = spec.lookup_map("template");
    let (pod_spec, _) = template.lookup_map("spec");
    let (container, meta) = pod_spec.lookup_list("containers");
    assert_eq!(meta.merge_key, "name");
    let (_, env_meta) = container.lookup_list("env");
    assert_eq!(
        (env_meta.strategy, env_meta.merge_key),
        (Some(PatchStrategy::Merge), "name")
    );
}

/// Every inline (embedded) struct's tagged fields exist on the outer type.
#[test]
fn inline_table_matches_the_struct_graph() {
    let inline = include_str!("../data/inline.tsv");
    let semantics = include_str!("../data/list-and-patch-semantics.tsv");
    let struct_fields = include_str!("../data/struct-fields.tsv");
    for line in inline.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (gv, outer, inner) = (cols[0], cols[1], cols[2]);
        let inner_fields: Vec<&str> = semantics
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|c| c.len() > 2 && c[0] == gv && c[1] == inner && c[2] != "(struct)")
            .map(|c| c[2])
            .collect();
        assert!(!inner_fields.is_empty(), "{gv} {inner} has rows");
        for field in inner_fields {
            let declared = struct_fields.lines().any(|l| {
                let c: Vec<&str> = l.split('\t').collect();
                c.len() > 2 && c[0] == gv && c[1] == outer && c[2] == field
            });
            assert!(declared, "{gv} {outer} lacks {field} of inlined {inner}");
        }
    }
}

/// kinds.tsv agrees with k8s-openapi's own resource constants.
#[test]
fn kinds_match_k8s_openapi() {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    use k8s_openapi::api::{networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac};
    use k8s_openapi::Resource;
    fn check<R: Resource>() {
        let schema = table()
            .kind(R::API_VERSION, R::KIND)
            .unwrap_or_else(|| panic!("{} {}", R::API_VERSION, R::KIND));
        assert_eq!(schema.type_def().map(|d| d.name()), Some(R::KIND));
    }
    check::<core::Pod>();
    check::<core::Service>();
    check::<core::ConfigMap>();
    check::<core::Node>();
    check::<core::Namespace>();
    check::<apps::Deployment>();
    check::<apps::StatefulSet>();
    check::<apps::DaemonSet>();
    check::<batch::Job>();
    check::<batch::CronJob>();
    check::<networking::Ingress>();
    check::<policy::PodDisruptionBudget>();
    check::<rbac::ClusterRole>();
}
