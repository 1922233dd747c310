//! The strategies as the generic store drives them (decode, default, prepare, validate), for
//! the bodies kubectl sends, through the public `strategy_for`.

use std::sync::Arc;

use rudder_api::resources::ResourceTable;
use rudder_registry::{OpCx, Strategy};
use rudder_resources::strategies::strategy_for;
use serde_json::{json, Value};

fn strategy(group: &str, version: &str, kind: &str) -> Arc<dyn Strategy> {
    let table = ResourceTable::builtin().unwrap();
    let info = table.by_gvk(group, version, kind).unwrap();
    strategy_for(info)
}

fn cx() -> OpCx {
    OpCx {
        now: "2024-01-01T00:00:00Z".into(),
    }
}

/// What the generic store does on create, up to validation; the messages of the 422.
fn create(s: &dyn Strategy, body: Value) -> Result<(Value, Vec<String>), String> {
    let mut obj = s.to_internal(s.decode(body)?);
    s.default(&mut obj);
    obj["metadata"]["uid"] = json!("2b1c6b0e-0000-4000-8000-000000000001");
    obj["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    s.prepare_for_create(&cx(), &mut obj);
    // The generic store checks ObjectMeta with the kind's name rule, then the strategy (every
    // kind here is namespaced; the request's namespace is filled in).
    if obj["metadata"].get("namespace").is_none() {
        obj["metadata"]["namespace"] = json!("default");
    }
    let meta = serde_json::from_value(obj["metadata"].clone()).map_err(|e| e.to_string())?;
    let mut errs = rudder_api::validation::validate_object_meta(
        &meta,
        true,
        s.name_validator(),
        &rudder_api::field::Path::new("metadata"),
    );
    if errs.is_empty() {
        errs = s.validate(&cx(), &obj);
    }
    Ok((obj, errs.iter().map(ToString::to_string).collect()))
}

#[test]
fn kubectl_run() {
    let s = strategy("", "v1", "Pod");
    let (pod, errs) = create(
        &*s,
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "nginx", "creationTimestamp": null, "labels": {"run": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "resources": {}}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"},
            "status": {}}),
    )
    .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(
        pod["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    assert_eq!(pod["spec"]["securityContext"], json!({}));
    assert_eq!(
        pod["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    assert!(pod["metadata"].get("creationTimestamp").is_some());
}

#[test]
fn wrongly_typed_field_is_a_decode_error() {
    let s = strategy("apps", "v1", "Deployment");
    let err = create(
        &*s,
        json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"},
            "spec": {"replicas": "three"}}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot unmarshal string into Go struct field spec.replicas of type int32"
    );
}

#[test]
fn kubectl_expose_deployment() {
    let s = strategy("", "v1", "Service");
    let (svc, errs) = create(
        &*s,
        json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "nginx", "creationTimestamp": null},
            "spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "selector": {"app": "nginx"}},
            "status": {"loadBalancer": {}}}),
    )
    .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
    // The IP family fields are the allocator admission plugin's.
    assert!(svc["spec"].get("ipFamilies").is_none());
    let (_, errs) = create(
        &*s,
        json!({"kind": "Service", "apiVersion": "v1", "metadata": {"name": "Bad_Name"},
            "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("metadata.name: Invalid value: \"Bad_Name\": a DNS-1035 label"));
}

#[test]
fn kubectl_create_secret_tls_without_key() {
    let s = strategy("", "v1", "Secret");
    let (_, errs) = create(
        &*s,
        json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "tls"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA=="}}),
    )
    .unwrap();
    assert_eq!(errs, vec!["data[tls.key]: Required value"]);
}

#[test]
fn kubectl_create_cronjob() {
    let s = strategy("batch", "v1", "CronJob");
    let (cj, errs) = create(
        &*s,
        json!({"kind": "CronJob", "apiVersion": "batch/v1", "metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "hello"},
                "spec": {"template": {"metadata": {}, "spec": {"containers": [
                    {"name": "hello", "image": "busybox", "resources": {}}], "restartPolicy": "OnFailure"}}}}},
            "status": {}}),
    )
    .unwrap();
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    // Job defaults are not applied to a CronJob's job template, as upstream.
    assert!(cj["spec"]["jobTemplate"]["spec"]
        .get("backoffLimit")
        .is_none());
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
}
