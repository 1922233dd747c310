//! End to end: `/openapi/v2` as the real kubectl (v1.37) uses it, on both backends:
//! `explain --output=plaintext-openapiv2` reads the protobuf document (gnostic
//! `openapi.v2.Document`), `get --raw` the JSON one.

mod support;

use support::{Backend, Cluster};

fn explain_plaintext_openapiv2(b: Backend) {
    let c = Cluster::start(b);
    let out = c.ok(&["explain", "deployment.spec", "--output=plaintext-openapiv2"]);
    assert!(out.contains("KIND:") && out.contains("Deployment"), "{out}");
    assert!(out.contains("VERSION:") && out.contains("v1"), "{out}");
    assert!(
        out.contains("DeploymentSpec is the specification of the desired behavior"),
        "{out}"
    );
    for field in ["replicas", "selector", "strategy", "template"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(field)),
            "{field} missing:\n{out}"
        );
    }

    let containers = c.ok(&[
        "explain",
        "pods.spec.containers",
        "--output=plaintext-openapiv2",
    ]);
    assert!(
        containers.contains("Name of the container specified as a DNS_LABEL"),
        "{containers}"
    );

    let raw = c.ok(&["get", "--raw", "/openapi/v2"]);
    let doc: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(doc["swagger"], "2.0");
    assert!(doc["definitions"]["io.k8s.api.apps.v1.Deployment"].is_object());
}

on_both_backends!(explain_plaintext_openapiv2);
