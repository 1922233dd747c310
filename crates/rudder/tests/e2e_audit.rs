//! Auditing with kube-apiserver's flags: `--audit-policy-file` and `--audit-log-path` give one
//! `audit.k8s.io/v1` Event per line for the requests the policy keeps, at its level. Auditing
//! sits above the store, so one backend is enough here.

mod support;

use serde_json::Value;
use support::{Backend, Cluster};

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: RequestResponse
  userGroups: ["system:masters"]
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
  userGroups: ["system:masters"]
  omitStages: [ResponseStarted]
- level: None
"#;

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn requests_are_audited_at_the_policy_level() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let log = dir.path().join("audit").join("audit.log");
    let c = Cluster::start_with(
        Backend::Redb,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
            "--audit-log-maxsize",
            "1",
        ],
    );
    c.ok(&["create", "configmap", "audited", "--from-literal=k=v"]);
    c.ok(&["get", "pods"]);
    let out = c.kubectl(&["get", "secret", "missing"]);
    assert_ne!(out.code, 0);
    let all = support::wait_for_within(
        "the audit events",
        std::time::Duration::from_secs(10),
        || {
            let ev = events(&log);
            ev.iter()
                .any(|e| e["objectRef"]["name"] == "missing")
                .then_some(ev)
        },
    );
    for e in &all {
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1", "{e}");
        assert_eq!(e["kind"], "Event", "{e}");
        // Only the admin's requests are kept, and never their RequestReceived stage.
        assert_eq!(e["user"]["username"], "system:admin", "{e}");
        assert_ne!(e["stage"], "RequestReceived", "{e}");
        assert!(e["auditID"].as_str().is_some_and(|s| s.len() == 36), "{e}");
        assert!(
            e["stageTimestamp"]
                .as_str()
                .is_some_and(|s| s.ends_with('Z') && s.len() == 27),
            "{e}"
        );
    }
    let create = all
        .iter()
        .find(|e| e["verb"] == "create" && e["objectRef"]["resource"] == "configmaps")
        .unwrap_or_else(|| panic!("no configmap create in {all:?}"));
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["stage"], "ResponseComplete");
    assert_eq!(create["responseStatus"]["code"], 201);
    // The reference is completed from the body, as upstream does.
    assert_eq!(create["objectRef"]["name"], "audited", "{create}");
    assert_eq!(create["requestObject"]["data"]["k"], "v", "{create}");
    assert_eq!(create["responseObject"]["metadata"]["name"], "audited");
    assert!(create["userAgent"]
        .as_str()
        .unwrap_or("")
        .starts_with("kubectl"));
    assert_eq!(create["sourceIPs"][0], "127.0.0.1");
    let list = all
        .iter()
        .find(|e| e["verb"] == "list" && e["objectRef"]["resource"] == "pods")
        .unwrap_or_else(|| panic!("no pod list in {all:?}"));
    assert_eq!(list["level"], "Metadata");
    assert!(list.get("responseObject").is_none(), "{list}");
    assert_eq!(list["objectRef"]["namespace"], "default");
    assert_eq!(list["objectRef"]["apiVersion"], "v1");
    let missing = all
        .iter()
        .find(|e| e["objectRef"]["name"] == "missing")
        .unwrap();
    assert_eq!(missing["responseStatus"]["code"], 404);
    assert_eq!(missing["responseStatus"]["reason"], "NotFound");
    assert_eq!(
        missing["responseStatus"]["message"],
        "secrets \"missing\" not found"
    );
    // Authorization's decision is on every event that completed.
    assert_eq!(
        create["annotations"]["authorization.k8s.io/decision"], "allow",
        "{create}"
    );
    assert!(create["annotations"]
        .get("authorization.k8s.io/reason")
        .is_some());

    // PodSecurity's audit level: the pod is admitted, its violations are on its event.
    c.ok(&["create", "namespace", "psa"]);
    c.ok(&[
        "label",
        "namespace",
        "psa",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    c.ok(&[
        "run",
        "plain",
        "-n",
        "psa",
        "--image=busybox",
        "--restart=Never",
    ]);
    let pod = support::wait_for_within(
        "the pod's audit event",
        std::time::Duration::from_secs(10),
        || {
            events(&log).into_iter().find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["resource"] == "pods"
                    && e["stage"] == "ResponseComplete"
            })
        },
    );
    let ann = &pod["annotations"];
    assert_eq!(
        ann["pod-security.kubernetes.io/enforce-policy"], "privileged:latest",
        "{pod}"
    );
    let violations = ann["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_else(|| panic!("no audit-violations in {pod}"));
    assert!(
        violations.starts_with(
            "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"
        ),
        "{violations}"
    );

    // A ValidatingAdmissionPolicy bound with the Audit action admits, and records the failed
    // validation and its audit annotations on the event.
    c.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-bad-data}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "!has(object.data) || !('k' in object.data) || object.data.k != 'bad'"
    message: data.k must not be bad
  auditAnnotations:
  - key: seen
    valueExpression: "'configmap ' + object.metadata.name"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-bad-data-audit}
spec:
  policyName: no-bad-data
  validationActions: [Audit]
"#,
    );
    let mut n = 0;
    let probe = support::wait_for_within(
        "the policy's audit annotations",
        std::time::Duration::from_secs(30),
        || {
            n += 1;
            let name = format!("probe-{n}");
            c.ok(&["create", "configmap", &name, "--from-literal=k=bad"]);
            events(&log).into_iter().find(|e| {
                e["objectRef"]["name"] == name.as_str()
                    && e["annotations"]
                        .get("validation.policy.admission.k8s.io/validation_failure")
                        .is_some()
            })
        },
    );
    let ann = &probe["annotations"];
    let name = probe["objectRef"]["name"].as_str().unwrap();
    assert_eq!(
        ann["no-bad-data/seen"],
        format!("configmap {name}"),
        "{probe}"
    );
    let failures: Value = serde_json::from_str(
        ann["validation.policy.admission.k8s.io/validation_failure"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        failures[0]["message"], "data.k must not be bad",
        "{failures}"
    );
    assert_eq!(failures[0]["policy"], "no-bad-data");
    assert_eq!(failures[0]["binding"], "no-bad-data-audit");
    assert_eq!(failures[0]["expressionIndex"], 0);
    assert_eq!(failures[0]["validationActions"][0], "Audit");

    // The response carries the event's ID, as upstream's Audit-Id header.
    let raw = c.kubectl(&["get", "--raw", "/api/v1/namespaces", "-v=8"]);
    assert!(
        raw.stderr.to_lowercase().contains("audit-id"),
        "{}",
        raw.stderr
    );
}

#[test]
fn a_bad_policy_file_stops_the_server_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- levl: Metadata\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["server", "--disable-agent", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--audit-policy-file")
        .arg(&policy)
        .args(["--audit-log-path", "-", "--https-listen-port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("levl") && err.contains("policy.yaml"), "{err}");
}
