//! Real-world CRDs (from charts people install) are accepted as upstream accepts them, and
//! their custom resources are pruned, defaulted and validated with upstream's messages.

use rudder_apiextensions::Structural;
use rudder_resources::custom::{default_crd, validate_crd};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn accepted(name: &str) -> Structural {
    let mut crd = fixture(name);
    default_crd(&mut crd);
    let errs = validate_crd(&crd, None);
    assert!(errs.is_empty(), "{name}: {errs}");
    Structural::from_schema(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]).unwrap()
}

fn messages(s: &Structural, obj: &Value) -> Vec<String> {
    s.validate(obj, None)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn prometheus_operator_rules() {
    let s = accepted("crd-prometheusrules.yaml");
    let mut rule = json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"groups": [{"name": "g", "rules": [
            {"alert": "Down", "expr": "up == 0", "for": "5m", "labels": {"severity": "page"}, "typo": 1}]}]},
    });
    assert_eq!(s.prune(&mut rule), vec!["spec.groups[0].rules[0].typo"]);
    s.default(&mut rule);
    assert!(messages(&s, &rule).is_empty(), "{:?}", messages(&s, &rule));
    rule["spec"]["groups"][0]["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("expr");
    rule["spec"]["groups"][0]["rules"][0]["for"] = json!("five minutes");
    let got = messages(&s, &rule);
    assert!(
        got.contains(&"spec.groups[0].rules[0].expr: Required value".to_string()),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m.starts_with(
            r#"spec.groups[0].rules[0].for: Invalid value: "five minutes": spec.groups[0].rules[0].for in body should match '"#
        )),
        "{got:?}"
    );
}

#[test]
fn cert_manager_certificate_requests() {
    let s = accepted("crd-certificaterequests.yaml");
    let req = json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": {"request": "LS0tLS1CRUdJTg==", "issuerRef": {"name": "ca", "kind": "Issuer"},
                 "usages": ["digital signature", "key encipherment"]},
    });
    assert!(messages(&s, &req).is_empty(), "{:?}", messages(&s, &req));
    let mut bad = req.clone();
    bad["spec"]["request"] = json!("not base64!");
    bad["spec"]["usages"] = json!(["juggling"]);
    let got = messages(&s, &bad);
    assert!(
        got.contains(&r#"spec.request: Invalid value: "not base64!": spec.request in body must be of type byte: "not base64!""#.to_string()),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m.starts_with(r#"spec.usages[0]: Unsupported value: "juggling": supported values: "signing", "digital signature""#)),
        "{got:?}"
    );
}
