//! End to end, on both backends: server-side apply taking over from client-side apply (upstream's
//! last-applied handling for the `kubectl` manager), and CertificateSigningRequests with their
//! `approval` subresource as `kubectl certificate approve|deny` drive them.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::{Backend, Cluster};

const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn cm(b: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: \"1\"\n  b: \"{b}\"\n")
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&c.ok(&all)).unwrap()
}

/// `manager operation fieldsV1` of every managedFields entry, in the stored order.
fn owners(obj: &Value) -> Vec<String> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
                e["fieldsV1"]
            )
        })
        .collect()
}

fn last_applied(obj: &Value) -> &str {
    obj["metadata"]["annotations"][ANNOTATION]
        .as_str()
        .unwrap_or_default()
}

/// curl with the admin token; returns (status code, content type, body).
fn curl(
    c: &Cluster,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let out = c.curl(&[
        "-X",
        method,
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{content_type}",
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        "-H",
        &format!("Content-Type: {content_type}"),
        "-H",
        "Accept: application/json",
        "--data-binary",
        body,
        &format!("{}{path}", c.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (code, ctype) = tail.split_once(' ').unwrap();
    (code.parse().unwrap(), ctype.to_string(), body.to_string())
}

/// `kubectl apply` then `kubectl apply --server-side` with a changed value: no conflict with
/// `kubectl-client-side-apply`, the changed field moves to `kubectl`, and the annotation follows
/// the applied configuration so client-side apply keeps working.
fn server_side_apply_after_client_side_apply(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    let f = write(&dir, "cm.yaml", &cm("2"));
    assert_eq!(c.ok(&["apply", "-f", &f]), "configmap/web created\n");
    let csa = get_json(&c, &["cm", "web"]);
    assert_eq!(
        last_applied(&csa),
        "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\",\"b\":\"2\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"web\",\"namespace\":\"default\"}}\n"
    );

    // Server-side diff first: it shows the change and does not conflict.
    write(&dir, "cm.yaml", &cm("3"));
    let d = c.kubectl(&["diff", "--server-side", "-f", &f]);
    assert_eq!(d.code, 1, "{}", d.stderr);
    assert!(
        d.stdout.contains("-  b: \"2\"\n+  b: \"3\""),
        "{}",
        d.stdout
    );
    assert_eq!(c.ok(&["get", "cm", "web", "-o", "jsonpath={.data.b}"]), "2");

    assert_eq!(
        c.ok(&["apply", "--server-side", "-f", &f]),
        "configmap/web serverside-applied\n"
    );
    let ssa = get_json(&c, &["cm", "web"]);
    assert_eq!(ssa["data"], json!({"a": "1", "b": "3"}));
    // Ownership afterwards: kubectl 1.37 follows its apply with an apply of the annotation
    // alone as `kubectl-last-applied` and a JSON patch folding `kubectl-client-side-apply`'s
    // entry into its own (csaupgrade), then applies once more; what the server computes at each
    // step leaves these two entries, as upstream's.
    let mut got = owners(&ssa);
    got.sort();
    assert_eq!(
        got,
        [
            "kubectl Apply {\"f:data\":{\"f:a\":{},\"f:b\":{}}}",
            "kubectl-last-applied Apply {\"f:metadata\":{\"f:annotations\":{\"f:kubectl.kubernetes.io/last-applied-configuration\":{}}}}",
        ]
    );
    // The annotation is now the applied configuration (what kubectl sent, Go's JSON encoding).
    assert_eq!(
        last_applied(&ssa),
        "{\"apiVersion\":\"v1\",\"data\":{\"a\":\"1\",\"b\":\"3\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"web\",\"namespace\":\"default\"}}\n"
    );
    // Re-applying the same configuration server-side changes nothing.
    let rv = ssa["metadata"]["resourceVersion"].clone();
    c.ok(&["apply", "--server-side", "-f", &f]);
    assert_eq!(
        get_json(&c, &["cm", "web"])["metadata"]["resourceVersion"],
        rv
    );

    // Back to client-side apply: it patches from the updated annotation.
    write(&dir, "cm.yaml", &cm("4"));
    assert_eq!(c.ok(&["apply", "-f", &f]), "configmap/web configured\n");
    assert_eq!(c.ok(&["get", "cm", "web", "-o", "jsonpath={.data.b}"]), "4");

    // Another field manager gets no such pass: it conflicts with client-side apply.
    write(&dir, "cm.yaml", &cm("5"));
    let err = c.fails(&["apply", "--server-side", "--field-manager=other", "-f", &f]);
    assert!(
        err.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.b\n"
        ),
        "{err}"
    );
}

/// A field changed since the last client-side apply (here by `kubectl patch`) is not the
/// annotation's any more: that conflict stays, exactly as upstream reports it.
fn conflicts_remain_for_fields_changed_since(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    let f = write(&dir, "cm.yaml", &cm("2"));
    // `create --save-config` writes the annotation as kubectl-create: same pass.
    c.ok(&["create", "--save-config", "-f", &f]);
    write(&dir, "cm.yaml", &cm("3"));
    c.ok(&["apply", "--server-side", "-f", &f]);
    assert_eq!(c.ok(&["get", "cm", "web", "-o", "jsonpath={.data.b}"]), "3");

    c.ok(&["patch", "cm", "web", "-p", r#"{"data":{"a":"9"}}"#]);
    let err = c.fails(&["apply", "--server-side", "-f", &f]);
    assert!(
        err.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.a\nPlease review the fields above--they currently have other managers."
        ),
        "{err}"
    );

    // The raw 409 as upstream sends it.
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"a":"1","b":"3"}}"#;
    let (code, ctype, text) = curl(
        &c,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/web?fieldManager=kubectl",
        "application/apply-patch+yaml",
        body,
    );
    assert_eq!((code, ctype.as_str()), (409, "application/json"));
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Apply failed with 1 conflict: conflict with \"kubectl-patch\" using v1: .data.a",
            "reason": "Conflict",
            "details": {"causes": [{
                "reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-patch\" using v1",
                "field": ".data.a"
            }]},
            "code": 409
        })
    );
}

/// A PEM PKCS#10 request for `cn` from a fresh P-256 key, made with openssl.
fn csr_pem(dir: &Path, cn: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(dir.join(format!("{cn}.key")))
        .output()
        .expect("openssl runs (scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn csr_yaml(name: &str, request: &str) -> String {
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {request}\n  signerName: example.com/signer\n  usages:\n  - client auth\n  username: someone-else\n"
    )
}

fn csr_condition(c: &Cluster, name: &str) -> String {
    let out = c.ok(&["get", "csr", name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ],
        "{out}"
    );
    lines[1].split_whitespace().last().unwrap().to_string()
}

fn certificate_approval(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    for name in ["one", "two"] {
        let f = write(
            &dir,
            &format!("{name}.yaml"),
            &csr_yaml(name, &b64(csr_pem(&dir, name).as_bytes())),
        );
        assert_eq!(
            c.ok(&["create", "-f", &f]),
            format!("certificatesigningrequest.certificates.k8s.io/{name} created\n")
        );
    }
    // The requester is the caller, whatever the body said; status starts empty.
    let one = get_json(&c, &["csr", "one"]);
    assert_eq!(one["spec"]["username"], "system:admin");
    assert_eq!(
        one["spec"]["groups"],
        json!(["system:masters", "system:authenticated"])
    );
    assert_eq!(one["status"], json!({}));
    assert_eq!(csr_condition(&c, "one"), "Pending");

    // Approve: kubectl reads the CSR and PUTs it to /approval with its condition.
    assert_eq!(
        c.ok(&["certificate", "approve", "one"]),
        "certificatesigningrequest.certificates.k8s.io/one approved\n"
    );
    assert_eq!(csr_condition(&c, "one"), "Approved");
    let one = get_json(&c, &["csr", "one"]);
    let cond = &one["status"]["conditions"][0];
    assert_eq!(cond["type"], "Approved");
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "KubectlApprove");
    assert_eq!(
        cond["message"],
        "This CSR was approved by kubectl certificate approve."
    );
    // The server fills lastTransitionTime in; kubectl sent lastUpdateTime.
    assert!(cond["lastTransitionTime"].is_string(), "{cond}");
    assert!(cond["lastUpdateTime"].is_string(), "{cond}");
    let approval = one["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subresource"] == "approval")
        .cloned()
        .unwrap_or_default();
    assert_eq!(approval["manager"], "kubectl", "{one}");
    assert_eq!(approval["operation"], "Update");

    // Approving again is a no-op; denying an approved request is kubectl's own error.
    assert_eq!(
        c.ok(&["certificate", "approve", "one"]),
        "certificatesigningrequest.certificates.k8s.io/one approved\n"
    );
    assert_eq!(
        c.fails(&["certificate", "deny", "one"]),
        "error: certificate signing request \"one\" is already Approved\n"
    );
    assert_eq!(
        c.ok(&["certificate", "deny", "two"]),
        "certificatesigningrequest.certificates.k8s.io/two denied\n"
    );
    assert_eq!(csr_condition(&c, "two"), "Denied");

    // Upstream's validation through /approval: no removing, not both.
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/one/approval";
    let mut cleared = one.clone();
    cleared["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    cleared["status"]["conditions"] = json!([]);
    let (code, ctype, text) = curl(&c, "PUT", path, "application/json", &cleared.to_string());
    assert_eq!((code, ctype.as_str()), (422, "application/json"), "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status["message"],
        "CertificateSigningRequest.certificates.k8s.io \"one\" is invalid: status.conditions: Forbidden: updates may not remove a condition of type \"Approved\""
    );
    assert_eq!(
        status["details"],
        json!({"name": "one", "group": "certificates.k8s.io", "kind": "CertificateSigningRequest", "causes": [{
            "reason": "FieldValueForbidden",
            "message": "Forbidden: updates may not remove a condition of type \"Approved\"",
            "field": "status.conditions"
        }]})
    );
    let mut both = cleared.clone();
    both["status"]["conditions"] = json!([
        cond,
        {"type": "Denied", "status": "True", "reason": "Changed", "message": "no"}
    ]);
    let (code, _, text) = curl(&c, "PUT", path, "application/json", &both.to_string());
    assert_eq!(code, 422, "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status["message"],
        "CertificateSigningRequest.certificates.k8s.io \"one\" is invalid: status.conditions: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
    );

    // Neither the main resource nor /status may approve: the main resource keeps its status,
    // /status may not add an Approved condition.
    let three = write(
        &dir,
        "three.yaml",
        &csr_yaml("three", &b64(csr_pem(&dir, "three").as_bytes())),
    );
    c.ok(&["create", "-f", &three]);
    let mut approved = get_json(&c, &["csr", "three"]);
    approved["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("managedFields");
    approved["status"] = json!({"conditions": [{"type": "Approved", "status": "True", "reason": "R", "message": "m"}]});
    let main = "/apis/certificates.k8s.io/v1/certificatesigningrequests/three";
    let (code, _, text) = curl(&c, "PUT", main, "application/json", &approved.to_string());
    assert_eq!(code, 200, "{text}");
    assert_eq!(csr_condition(&c, "three"), "Pending");
    let (code, _, text) = curl(
        &c,
        "PUT",
        &format!("{main}/status"),
        "application/json",
        &approved.to_string(),
    );
    assert_eq!(code, 422, "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        status["message"],
        "CertificateSigningRequest.certificates.k8s.io \"three\" is invalid: status.conditions: Forbidden: updates may not add a condition of type \"Approved\""
    );
    // A merge patch through /approval works as the PUT does.
    let (code, _, text) = curl(
        &c,
        "PATCH",
        &format!("{main}/approval"),
        "application/merge-patch+json",
        r#"{"status":{"conditions":[{"type":"Denied","status":"True","reason":"Nope","message":"no"}]}}"#,
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(csr_condition(&c, "three"), "Denied");
}

fn certificate_request_validation(b: Backend) {
    let c = Cluster::start(b);
    let dir = c.dir.path().to_path_buf();
    let create = |name: &str, spec: Value| {
        let body = json!({
            "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name}, "spec": spec
        });
        let (code, ctype, text) = curl(
            &c,
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            "application/json",
            &body.to_string(),
        );
        assert_eq!(ctype, "application/json");
        let status: Value = serde_json::from_str(&text).unwrap();
        (
            code,
            status["message"].as_str().unwrap_or_default().to_string(),
        )
    };
    // Not PEM: upstream prints the bytes as Go's %#v.
    let (code, msg) = create(
        "bad",
        json!({"request": b64(b"hello"), "signerName": "example.com/signer", "usages": ["client auth"]}),
    );
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "CertificateSigningRequest.certificates.k8s.io \"bad\" is invalid: spec.request: Invalid value: []byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST"
    );
    // A request whose signature does not verify.
    let pem = csr_pem(&dir, "tampered");
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut der = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(der_b64)
            .unwrap()
    };
    let last = der.len() - 2;
    der[last] ^= 0x01;
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        b64(&der)
    );
    let (code, msg) = create(
        "tampered",
        json!({"request": b64(tampered.as_bytes()), "signerName": "example.com/signer", "usages": ["client auth"]}),
    );
    assert_eq!(code, 422);
    assert!(msg.ends_with(": x509: ECDSA verification failure"), "{msg}");
    // Required fields, in upstream's order; unknown usages and a bad signer name.
    let good = b64(csr_pem(&dir, "good").as_bytes());
    let (code, msg) = create("empty", json!({"request": good}));
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "CertificateSigningRequest.certificates.k8s.io \"empty\" is invalid: [spec.usages: Required value, spec.signerName: Required value]"
    );
    let (_, msg) = create(
        "odd",
        json!({"request": good, "signerName": "signer", "usages": ["client auth", "flying"], "expirationSeconds": 60}),
    );
    assert_eq!(
        msg,
        "CertificateSigningRequest.certificates.k8s.io \"odd\" is invalid: [spec.usages[1]: Unsupported value: \"flying\": supported values: \"any\", \"cert sign\", \"client auth\", \"code signing\", \"content commitment\", \"crl sign\", \"data encipherment\", \"decipher only\", \"digital signature\", \"email protection\", \"encipher only\", \"ipsec end system\", \"ipsec tunnel\", \"ipsec user\", \"key agreement\", \"key encipherment\", \"microsoft sgc\", \"netscape sgc\", \"ocsp signing\", \"s/mime\", \"server auth\", \"signing\", \"timestamping\", spec.signerName: Invalid value: \"signer\": must be a fully qualified domain and path of the form 'example.com/signer-name', spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 600 seconds (10 minutes)]"
    );
    let (_, msg) = create(
        "legacy",
        json!({"request": good, "signerName": "kubernetes.io/legacy-unknown", "usages": ["client auth"]}),
    );
    assert_eq!(
        msg,
        "CertificateSigningRequest.certificates.k8s.io \"legacy\" is invalid: spec.signerName: Invalid value: \"kubernetes.io/legacy-unknown\": the legacy signerName is not allowed via this API version"
    );
    // Field selection by signer, as upstream allows.
    let (code, _) = create(
        "fine",
        json!({"request": good, "signerName": "example.com/signer", "usages": ["client auth"]}),
    );
    assert_eq!(code, 201);
    assert_eq!(
        c.ok(&[
            "get",
            "csr",
            "--field-selector",
            "spec.signerName=example.com/signer",
            "-o",
            "name"
        ]),
        "certificatesigningrequest.certificates.k8s.io/fine\n"
    );
}

on_both_backends!(
    server_side_apply_after_client_side_apply,
    conflicts_remain_for_fields_changed_since,
    certificate_approval,
    certificate_request_validation,
);
