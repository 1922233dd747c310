// Cases from upstream's pkg/quota/v1/evaluator/core/{pods,services,persistent_volume_claims}_test.go
// and apiserver/pkg/admission/plugin/resourcequota/admission_test.go.
use super::*;

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}})
}

fn ctr(name: &str, requests: Value, limits: Value) -> Value {
    json!({"name": name, "image": "i", "resources": {"requests": requests, "limits": limits}})
}

fn list(v: Value) -> ResourceList {
    resource_list(Some(&v))
}

fn shown(l: &ResourceList) -> Value {
    to_json(l)
}

fn quota(name: &str, hard: Value, used: Option<Value>) -> Value {
    let mut q = json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard.clone()}, "status": {"hard": hard}});
    if let Some(u) = used {
        q["status"]["used"] = u;
    }
    q
}

#[test]
fn pod_usage_sums_containers_and_takes_init_maximum() {
    let mut p = pod(json!([
        ctr(
            "a",
            json!({"cpu": "100m", "memory": "1Gi"}),
            json!({"cpu": "200m"})
        ),
        ctr("b", json!({"cpu": "400m", "memory": "1Gi"}), json!({})),
    ]));
    p["spec"]["initContainers"] = json!([ctr("i", json!({"cpu": "1"}), json!({}))]);
    let u = pod_usage(&p, 0);
    assert_eq!(
        shown(&u),
        json!({"count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1",
               "limits.cpu": "200m", "memory": "2Gi", "requests.memory": "2Gi"})
    );
    // A restartable (sidecar) init container runs alongside the containers.
    p["spec"]["initContainers"] = json!([{"name": "s", "image": "i", "restartPolicy": "Always",
        "resources": {"requests": {"cpu": "500m"}}}]);
    assert_eq!(shown(&pod_usage(&p, 0))["requests.cpu"], json!("1"));
}

#[test]
fn pod_usage_extended_and_hugepages_and_overhead() {
    let mut p = pod(json!([ctr(
        "a",
        json!({"example.com/dongle": "3", "hugepages-2Mi": "4Mi", "cpu": "1"}),
        json!({"example.com/dongle": "3", "cpu": "2"})
    )]));
    p["spec"]["overhead"] = json!({"cpu": "250m"});
    let u = pod_usage(&p, 0);
    assert_eq!(u["requests.example.com/dongle"].to_string(), "3");
    assert!(!u.contains_key("example.com/dongle"));
    assert_eq!(u["hugepages-2Mi"].to_string(), "4Mi");
    assert_eq!(u["requests.hugepages-2Mi"].to_string(), "4Mi");
    assert_eq!(u["requests.cpu"].to_string(), "1250m");
    assert_eq!(u["limits.cpu"].to_string(), "2250m");
}

#[test]
fn terminal_and_expired_pods_count_only_as_objects() {
    let mut p = pod(json!([ctr("a", json!({"cpu": "1"}), json!({}))]));
    p["status"] = json!({"phase": "Succeeded"});
    assert_eq!(shown(&pod_usage(&p, 0)), json!({"count/pods": "1"}));
    p["status"] = json!({"phase": "Running"});
    p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let t = 1_704_067_200; // 2024-01-01T00:00:00Z
    assert!(pod_usage(&p, t + 10).contains_key("pods"));
    assert_eq!(shown(&pod_usage(&p, t + 31)), json!({"count/pods": "1"}));
}

#[test]
fn constraints_name_every_container_missing_a_quota_resource() {
    let p = pod(json!([
        ctr("a", json!({"cpu": "1"}), json!({})),
        ctr("b", json!({}), json!({"cpu": "1"})),
    ]));
    let required: BTreeSet<String> = ["limits.cpu", "requests.cpu", "pods", "limits.memory"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        Evaluator::Pods.constraints(&required, &p),
        Err("must specify limits.cpu for: a; limits.memory for: a,b; requests.cpu for: b".into())
    );
    // Quotas on other resources oblige nothing.
    let only_pods: BTreeSet<String> = ["pods".to_string()].into();
    assert_eq!(Evaluator::Pods.constraints(&only_pods, &p), Ok(()));
}

#[test]
fn pod_scopes() {
    let best_effort = pod(json!([{"name": "a", "image": "i"}]));
    let burstable = pod(json!([ctr("a", json!({"cpu": "1"}), json!({}))]));
    let exists = |s: &str| ScopeRequirement {
        scope: s.into(),
        operator: "Exists".into(),
        values: vec![],
    };
    let e = Evaluator::Pods;
    assert!(e.matches_scope(&exists("BestEffort"), &best_effort));
    assert!(!e.matches_scope(&exists("BestEffort"), &burstable));
    assert!(e.matches_scope(&exists("NotBestEffort"), &burstable));
    let mut terminating = best_effort.clone();
    terminating["spec"]["activeDeadlineSeconds"] = json!(60);
    assert!(e.matches_scope(&exists("Terminating"), &terminating));
    assert!(e.matches_scope(&exists("NotTerminating"), &best_effort));
    let mut high = best_effort.clone();
    high["spec"]["priorityClassName"] = json!("high");
    let in_ = |v: &[&str]| ScopeRequirement {
        scope: "PriorityClass".into(),
        operator: "In".into(),
        values: v.iter().map(|s| s.to_string()).collect(),
    };
    assert!(e.matches_scope(&in_(&["high", "low"]), &high));
    assert!(!e.matches_scope(&in_(&["low"]), &high));
    assert!(!e.matches_scope(&in_(&["high"]), &best_effort));
    assert!(e.matches_scope(&exists("PriorityClass"), &high));
    // A scoped quota never matches services.
    assert!(!Evaluator::Services.matches_scope(&exists("BestEffort"), &json!({})));
    let q = json!({"spec": {"scopes": ["BestEffort"],
        "scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
    assert_eq!(
        scope_selectors(&q),
        vec![exists("BestEffort"), in_(&["high"])]
    );
}

#[test]
fn service_usage_counts_node_ports_and_load_balancers() {
    let svc = |t: &str, extra: Value| {
        let mut s =
            json!({"spec": {"type": t, "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}});
        if let (Some(m), Some(e)) = (s["spec"].as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        s
    };
    let u = |s: Value| shown(&Evaluator::Services.usage(&s, 0));
    assert_eq!(
        u(svc("ClusterIP", json!({}))),
        json!({"count/services": "1", "services": "1", "services.loadbalancers": "0", "services.nodeports": "0"})
    );
    assert_eq!(
        u(svc("NodePort", json!({})))["services.nodeports"],
        json!("2")
    );
    let lb = u(svc(
        "LoadBalancer",
        json!({"allocateLoadBalancerNodePorts": false}),
    ));
    assert_eq!(lb["services.nodeports"], json!("1"));
    assert_eq!(lb["services.loadbalancers"], json!("1"));
}

#[test]
fn pvc_usage_by_storage_class() {
    let pvc = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "10Gi"}}}});
    assert_eq!(
        shown(&Evaluator::PersistentVolumeClaims.usage(&pvc, 0)),
        json!({"count/persistentvolumeclaims": "1", "persistentvolumeclaims": "1",
               "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
               "gold.storageclass.storage.k8s.io/requests.storage": "10Gi",
               "requests.storage": "10Gi"})
    );
    let names: Vec<String> = [
        "gold.storageclass.storage.k8s.io/requests.storage",
        "requests.storage",
        "pods",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        Evaluator::PersistentVolumeClaims
            .matching_resources(&names)
            .len(),
        2
    );
}

#[test]
fn object_counts_with_legacy_alias_and_generic_form() {
    let cm = Evaluator::for_resource("", "configmaps");
    assert_eq!(
        shown(&cm.usage(&json!({}), 0)),
        json!({"configmaps": "1", "count/configmaps": "1"})
    );
    let hard = list(json!({"count/deployments.apps": "2", "pods": "1"}));
    let evs = evaluators_for(&hard);
    let dep = Evaluator::for_resource("apps", "deployments");
    assert!(evs.contains(&dep));
    assert_eq!(
        shown(&dep.usage(&json!({}), 0)),
        json!({"count/deployments.apps": "1"})
    );
}

#[test]
fn admission_rejects_over_quota_with_upstream_message() {
    let quotas = vec![quota(
        "q",
        json!({"pods": "2", "requests.cpu": "1"}),
        Some(json!({"pods": "2", "requests.cpu": "500m"})),
    )];
    let p = pod(json!([ctr("c", json!({"cpu": "100m"}), json!({}))]));
    let e = check_request(&quotas, &Evaluator::Pods, &p, None, false, 0).unwrap_err();
    assert_eq!(
        e.0,
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let quotas = vec![quota(
        "q",
        json!({"pods": "5", "requests.cpu": "1"}),
        Some(json!({"pods": "2", "requests.cpu": "500m"})),
    )];
    let big = pod(json!([ctr("c", json!({"cpu": "600m"}), json!({}))]));
    let e = check_request(&quotas, &Evaluator::Pods, &big, None, false, 0).unwrap_err();
    assert_eq!(
        e.0,
        "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
    );
    // Within quota: the new usage to store.
    let out = check_request(&quotas, &Evaluator::Pods, &p, None, false, 0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        shown(&out[0].1),
        json!({"pods": "3", "requests.cpu": "600m"})
    );
}

#[test]
fn admission_needs_usage_and_constraints() {
    let quotas = vec![quota("q", json!({"pods": "2", "limits.cpu": "2"}), None)];
    let p = pod(json!([ctr(
        "c",
        json!({"cpu": "100m"}),
        json!({"cpu": "1"})
    )]));
    let e = check_request(&quotas, &Evaluator::Pods, &p, None, false, 0).unwrap_err();
    assert_eq!(
        e.0,
        "status unknown for quota: q, resources: limits.cpu,pods"
    );
    let quotas = vec![quota(
        "q",
        json!({"pods": "2", "limits.cpu": "2"}),
        Some(json!({"pods": "0", "limits.cpu": "0"})),
    )];
    let bare = pod(json!([{"name": "c", "image": "i"}]));
    let e = check_request(&quotas, &Evaluator::Pods, &bare, None, false, 0).unwrap_err();
    assert_eq!(e.0, "failed quota: q: must specify limits.cpu for: c");
    // A quota on something else does not apply.
    let other = vec![quota("s", json!({"services": "1"}), None)];
    assert_eq!(
        check_request(&other, &Evaluator::Pods, &bare, None, false, 0),
        Ok(vec![])
    );
}

#[test]
fn admission_charges_only_the_growth_of_an_update() {
    let quotas = vec![quota(
        "q",
        json!({"services.nodeports": "2", "services": "5"}),
        Some(json!({"services.nodeports": "1", "services": "1"})),
    )];
    let old = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
    let new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}});
    let e = check_request(&quotas, &Evaluator::Services, &new, Some(&old), false, 0).unwrap_err();
    assert_eq!(e.0, "exceeded quota: q, requested: services.nodeports=2, used: services.nodeports=1, limited: services.nodeports=2");
    let one = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    let out = check_request(&quotas, &Evaluator::Services, &one, Some(&old), false, 0).unwrap();
    assert_eq!(
        shown(&out[0].1),
        json!({"services": "1", "services.nodeports": "2"})
    );
}

#[test]
fn usage_stats_follow_scopes() {
    let q = json!({"spec": {"scopes": ["BestEffort"]}});
    let be = pod(json!([{"name": "a", "image": "i"}]));
    let burst = pod(json!([ctr("a", json!({"memory": "1Gi"}), json!({}))]));
    let resources: BTreeSet<String> = ["pods".to_string(), "memory".to_string()].into();
    let used = usage_stats(&Evaluator::Pods, &q, &resources, [&be, &burst, &be], 0);
    assert_eq!(used["pods"].to_string(), "2");
    assert_eq!(used["memory"].to_string(), "0");
    let unscoped = json!({"spec": {}});
    let used = usage_stats(&Evaluator::Pods, &unscoped, &resources, [&be, &burst], 0);
    assert_eq!(used["memory"].to_string(), "1Gi");
}
