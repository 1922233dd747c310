//! A CRD with two versions converted by a webhook served from a pod: the pod runs the host's
//! python3 (its `/usr`, and `/lib` and `/lib64`, which are under `/usr` on a merged-/usr
//! Debian, mounted read-only into the test busybox image) as an
//! HTTPS server with a certificate for `conv.default.svc` from a Secret, behind the Service
//! the CRD's `conversion.webhook.clientConfig` names. The webhook renames a field between the
//! versions (v1 `spec.cronSpec`, v2 `spec.schedule`), so every read shows whether it ran.

mod support;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use support::node::{
    apply, host_python_mounts, host_python_volumes, host_with_registry, python_json_server,
    wait_phase, IMAGE,
};
use support::tlsserver::Certificates;
use support::{jp, wait_for_within, Cluster};

/// The conversion webhook: v1 `spec.cronSpec` <-> v2 `spec.schedule`; it logs every review.
const CONVERT: &str = r#"
def convert(obj, desired):
    spec = obj.get("spec", {})
    if desired.endswith("/v2") and "cronSpec" in spec:
        spec["schedule"] = spec.pop("cronSpec")
    if desired.endswith("/v1") and "schedule" in spec:
        spec["cronSpec"] = spec.pop("schedule")
    obj["apiVersion"] = desired
    return obj

def handle(path, review):
    req = review["request"]
    objs = [convert(o, req["desiredAPIVersion"]) for o in req["objects"]]
    print("converted %d to %s" % (len(objs), req["desiredAPIVersion"]), flush=True)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "response": {"uid": req["uid"], "result": {"status": "Success"},
                         "convertedObjects": objs}}
"#;

fn crd(ca_pem: &str) -> Value {
    let schema = |field: &str| {
        json!({"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {field: {"type": "string"}}}}}})
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema("cronSpec")},
                {"name": "v2", "served": true, "storage": false, "schema": schema("schedule")},
            ],
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {
                        "service": {"namespace": "default", "name": "conv", "path": "/convert"},
                        "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
                    },
                },
            },
        },
    })
}

fn get(c: &Cluster, what: &str) -> Value {
    serde_json::from_str(&c.ok(&["get", what, "-o", "json"])).unwrap()
}

/// How many conversions to `version` the webhook has logged.
fn conversions_to(c: &Cluster, version: &str) -> usize {
    c.ok(&["logs", "conv"])
        .lines()
        .filter(|l| l.ends_with(&format!("to stable.example.com/{version}")))
        .count()
}

#[test]
fn a_conversion_webhook_in_a_pod_converts_between_versions() {
    let mut host = host_with_registry();
    let c = host.cluster(&[]);
    let certs = Certificates::for_names(&["conv.default.svc"]);
    let (ca, cert, key) = (certs.ca_pem, certs.cert_pem, certs.key_pem);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &key).unwrap();
    std::fs::write(dir.path().join("server.py"), python_json_server(CONVERT)).unwrap();
    let file = |n: &str| dir.path().join(n).display().to_string();
    c.ok(&[
        "create",
        "secret",
        "tls",
        "conv-tls",
        &format!("--cert={}", file("tls.crt")),
        &format!("--key={}", file("tls.key")),
    ]);
    c.ok(&[
        "create",
        "configmap",
        "conv-server",
        &format!("--from-file=server.py={}", file("server.py")),
    ]);
    apply(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: conv, labels: {{app: conv}}}}
spec:
  containers:
  - name: server
    image: {IMAGE}
    command: [/usr/bin/python3, /conv/server.py]
    env: [{{name: PYTHONDONTWRITEBYTECODE, value: "1"}}]
    ports: [{{containerPort: 8443}}]
    volumeMounts:
{mounts}    - {{name: server, mountPath: /conv}}
    - {{name: tls, mountPath: /tls}}
  volumes:
{volumes}  - {{name: server, configMap: {{name: conv-server}}}}
  - {{name: tls, secret: {{secretName: conv-tls}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: conv}}
spec:
  selector: {{app: conv}}
  ports: [{{port: 443, targetPort: 8443}}]
"#,
            mounts = host_python_mounts("    "),
            volumes = host_python_volumes("  "),
        ),
    );
    wait_phase(&c, "conv", "Running");
    wait_for_within("the webhook to serve", Duration::from_secs(60), || {
        c.ok(&["logs", "conv"]).contains("serving").then_some(())
    });
    c.ok_stdin(&["apply", "-f", "-"], &crd(&ca).to_string());
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=60s",
    ]);

    // Written in v1 (the storage version), read in v2: the field is renamed by the webhook.
    apply(
        &c,
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: one, labels: {tier: a}}\nspec: {cronSpec: '*/5 * * * *'}\n",
    );
    let one = wait_for_within("the v2 read", Duration::from_secs(60), || {
        let r = c.kubectl(&["get", "crontabs.v2.stable.example.com", "one", "-o", "json"]);
        (r.code == 0).then(|| serde_json::from_str::<Value>(&r.stdout).unwrap())
    });
    assert_eq!(one["apiVersion"], "stable.example.com/v2");
    assert_eq!(one["spec"], json!({"schedule": "*/5 * * * *"}), "{one}");
    assert_eq!(one["metadata"]["labels"], json!({"tier": "a"}));
    assert!(conversions_to(&c, "v2") >= 1);

    // Written in v2: stored in v1 through the webhook, so a v1 read has the v1 field.
    apply(
        &c,
        "apiVersion: stable.example.com/v2\nkind: CronTab\nmetadata: {name: two}\nspec: {schedule: '0 * * * *'}\n",
    );
    let two = get(&c, "crontabs.v1.stable.example.com/two");
    assert_eq!(two["spec"], json!({"cronSpec": "0 * * * *"}), "{two}");
    assert!(conversions_to(&c, "v1") >= 1);

    // A list in v2 converts every item (in one review).
    let before = conversions_to(&c, "v2");
    let list = get(&c, "crontabs.v2.stable.example.com");
    let schedules: Vec<&Value> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["spec"]["schedule"])
        .collect();
    assert_eq!(schedules, vec!["*/5 * * * *", "0 * * * *"], "{list}");
    assert_eq!(conversions_to(&c, "v2"), before + 1);

    // A watch in v2 gets converted objects.
    let watched = c.ok(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v2/namespaces/default/crontabs?watch=true&timeoutSeconds=3",
    ]);
    let events: Vec<Value> = watched
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{watched}");
    for e in &events {
        assert_eq!(e["type"], "ADDED");
        assert_eq!(e["object"]["apiVersion"], "stable.example.com/v2");
        assert!(e["object"]["spec"]["schedule"].is_string(), "{e}");
    }

    // An update through v2 keeps what v1 holds.
    c.ok(&[
        "patch",
        "crontabs.v2.stable.example.com",
        "one",
        "--type=merge",
        "-p",
        r#"{"spec":{"schedule":"1 2 * * *"}}"#,
    ]);
    assert_eq!(
        jp(&c, "crontabs.v1.stable.example.com/one", "{.spec.cronSpec}"),
        "1 2 * * *"
    );

    // With the webhook gone, reads that need it fail with upstream's message; reads in the
    // storage version do not need it.
    c.ok(&["delete", "pod", "conv", "--grace-period=0", "--force"]);
    let err = wait_for_within(
        "reads to fail without the webhook",
        Duration::from_secs(60),
        || {
            let r = c.kubectl(&["get", "crontabs.v2.stable.example.com", "one"]);
            (r.code != 0).then_some(r.stderr)
        },
    );
    assert!(
        err.contains("Internal error occurred: conversion webhook for stable.example.com/v1, Kind=CronTab failed:"),
        "{err}"
    );
    assert_eq!(
        jp(&c, "crontabs.v1.stable.example.com/two", "{.spec.cronSpec}"),
        "0 * * * *"
    );
}
