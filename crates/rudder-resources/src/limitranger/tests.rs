// Cases from upstream's plugin/pkg/admission/limitranger/admission_test.go.
use super::*;

fn range(limits: Value) -> Value {
    json!({"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": limits}})
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}})
}

#[test]
fn defaults_fill_unset_resources_and_annotate() {
    let lr = range(json!([{"type": "Container",
        "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
    let mut p = pod(json!([
        {"name": "a", "image": "i"},
        {"name": "b", "image": "i", "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "1", "memory": "1Gi"}}}
    ]));
    mutate_pod(&lr, &mut p);
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}})
    );
    assert_eq!(
        p["spec"]["containers"][1]["resources"],
        json!({"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"][ANNOTATION],
        json!("LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; memory request for container b")
    );
    // Nothing to set: no annotation.
    let mut q = pod(json!([{"name": "a", "image": "i"}]));
    mutate_pod(
        &range(json!([{"type": "Pod", "max": {"cpu": "1"}}])),
        &mut q,
    );
    assert!(q["metadata"].get("annotations").is_none());
}

#[test]
fn container_min_max_and_ratio() {
    let lr = range(
        json!([{"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "100Mi"},
        "maxLimitRequestRatio": {"cpu": "2"}}]),
    );
    let c = |req: Value, lim: Value| {
        pod(json!([{"name": "c", "image": "i", "resources": {"requests": req, "limits": lim}}]))
    };
    assert_eq!(
        aggregate(validate_pod(
            &lr,
            &c(json!({"cpu": "1", "memory": "1Gi"}), json!({"cpu": "2"}))
        )),
        Some("maximum cpu usage per Container is 1, but limit is 2".into())
    );
    assert_eq!(
        aggregate(validate_pod(
            &lr,
            &c(json!({"cpu": "200m", "memory": "1Gi"}), json!({"cpu": "1"}))
        )),
        Some(
            "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000"
                .into()
        )
    );
    assert_eq!(
        aggregate(validate_pod(&lr, &c(json!({"cpu": "1"}), json!({})))),
        Some("[minimum memory usage per Container is 100Mi.  No request is specified, maximum cpu usage per Container is 1.  No limit is specified, cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0]".into())
    );
    assert_eq!(
        aggregate(validate_pod(
            &lr,
            &c(json!({"cpu": "1", "memory": "1Gi"}), json!({"cpu": "1"}))
        )),
        None
    );
}

#[test]
fn pod_limits_sum_containers() {
    let lr = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
    let p = pod(json!([
        {"name": "a", "image": "i", "resources": {"limits": {"memory": "768Mi"}}},
        {"name": "b", "image": "i", "resources": {"limits": {"memory": "512Mi"}}}
    ]));
    assert_eq!(
        aggregate(validate_pod(&lr, &p)),
        Some("maximum memory usage per Pod is 1Gi, but limit is 1280Mi".into())
    );
}

#[test]
fn claims_min_and_max_on_requests() {
    let lr = range(
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
    );
    let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
    assert_eq!(
        aggregate(validate_claim(&lr, &pvc("20Gi"))),
        Some("maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi".into())
    );
    assert_eq!(
        aggregate(validate_claim(&lr, &pvc("100Mi"))),
        Some("minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 100Mi".into())
    );
    assert_eq!(aggregate(validate_claim(&lr, &pvc("5Gi"))), None);
}
