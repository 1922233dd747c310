//! End to end: admission webhooks (a mutating one adds a label, a validating one denies with
//! upstream's message, failurePolicy with the server down, matchConditions, DELETE),
//! ValidatingAdmissionPolicy and PodSecurity, through kubectl. The webhooks are an HTTPS
//! server this test runs on loopback with its own CA, named by `clientConfig.url`.

mod support;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Value};
use support::tlsserver::TlsJsonServer;
use support::{Backend, Cluster};

/// A webhook server: `/mutate` adds the label `webhook=mutated` (JSONPatch), `/validate`
/// denies objects labelled `deny=true` (403, with a message) and objects labelled
/// `protected=true` on DELETE, and allows everything else with a warning. It records every
/// AdmissionReview request it gets.
struct HookServer {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl HookServer {
    fn start() -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let server = TlsJsonServer::start(
            listener,
            &["127.0.0.1"],
            Arc::new(move |path: &str, review: &Value| {
                record.lock().unwrap().push(review.clone());
                json!({
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "response": respond(path, &review["request"]),
                })
            }),
        );
        HookServer {
            port,
            ca_pem: server.ca_pem,
            seen,
        }
    }

    fn client_config(&self, path: &str) -> Value {
        json!({
            "url": format!("https://127.0.0.1:{}{path}", self.port),
            "caBundle": base64::engine::general_purpose::STANDARD.encode(&self.ca_pem),
        })
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }
}

fn respond(path: &str, req: &Value) -> Value {
    let uid = req["uid"].clone();
    let labels = |o: &Value| o["metadata"]["labels"].clone();
    match path {
        "/mutate" => {
            let patch = if labels(&req["object"]).is_object() {
                json!([{"op": "add", "path": "/metadata/labels/webhook", "value": "mutated"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"webhook": "mutated"}}])
            };
            json!({
                "uid": uid,
                "allowed": true,
                "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
            })
        }
        _ if labels(&req["object"])["deny"] == "true" => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": 403, "message": "the label deny=true is not allowed"},
        }),
        _ if req["operation"] == "DELETE" && labels(&req["oldObject"])["protected"] == "true" => {
            json!({"uid": uid, "allowed": false, "status": {"message": "it is protected"}})
        }
        _ => json!({"uid": uid, "allowed": true, "warnings": ["checked by the test webhook"],
                    "auditAnnotations": {"checked": "yes"}}),
    }
}

fn apply(c: &Cluster, v: &Value) -> String {
    c.ok_stdin(&["apply", "-f", "-"], &v.to_string())
}

fn closed_port() -> u16 {
    // Bound and dropped: nothing listens there afterwards.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn admission_webhooks_mutate_validate_and_fail_by_policy() {
    let hooks = HookServer::start();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\", resources: [configmaps]}]\n",
    )
    .unwrap();
    let log = dir.path().join("audit.log");
    let c = Cluster::start_with(
        Backend::Redb,
        &[
            "--audit-policy-file",
            policy.to_str().unwrap(),
            "--audit-log-path",
            log.to_str().unwrap(),
        ],
    );
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "label-adder"},
            "webhooks": [{
                "name": "mutate.rudder.test",
                "clientConfig": hooks.client_config("/mutate"),
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["configmaps"]}],
                "objectSelector": {"matchExpressions": [{"key": "skip-mutation", "operator": "DoesNotExist"}]},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        }),
    );
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "denier"},
            "webhooks": [{
                "name": "deny.rudder.test",
                "clientConfig": hooks.client_config("/validate"),
                "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""],
                           "apiVersions": ["v1"], "resources": ["configmaps"]}],
                "matchConditions": [{"name": "not-skipped",
                                     "expression": "object == null || object.metadata.name != 'skip-me'"}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        }),
    );

    // The mutating webhook's label is on the stored object; the validating one warns.
    let r = c.kubectl(&["create", "configmap", "plain", "--from-literal=k=v"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Warning: checked by the test webhook"),
        "{}",
        r.stderr
    );
    assert_eq!(
        c.ok(&[
            "get",
            "configmap",
            "plain",
            "-o",
            "jsonpath={.metadata.labels.webhook}"
        ]),
        "mutated"
    );
    let create = hooks
        .seen()
        .into_iter()
        .find(|r| r["request"]["name"] == "plain" && r["request"]["operation"] == "CREATE")
        .expect("the webhook saw the create");
    let req = &create["request"];
    assert_eq!(
        req["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(req["resource"]["resource"], "configmaps");
    assert_eq!(req["namespace"], "default");
    assert_eq!(req["dryRun"], false);
    assert_eq!(req["options"]["kind"], "CreateOptions");
    assert!(!req["userInfo"]["username"]
        .as_str()
        .unwrap_or("")
        .is_empty());

    // Both webhooks are on the request's audit event: which mutating webhook changed the
    // object, and the validating one's own annotations under its name.
    let event = support::wait_for("the create's audit event", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["name"] == "plain"
                    && e["stage"] == "ResponseComplete"
            })
    });
    let ann = &event["annotations"];
    let mutation: Value = serde_json::from_str(
        ann["mutation.webhook.admission.k8s.io/round_0_index_0"]
            .as_str()
            .unwrap_or_else(|| panic!("no mutation annotation in {event}")),
    )
    .unwrap();
    assert_eq!(
        mutation,
        json!({"configuration": "label-adder", "webhook": "mutate.rudder.test", "mutated": true})
    );
    assert_eq!(ann["deny.rudder.test/checked"], "yes", "{event}");

    // The object selector excludes objects from the mutating webhook.
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "unmutated", "labels": {"skip-mutation": "yes"}}}),
    );
    assert_eq!(
        c.ok(&[
            "get",
            "configmap",
            "unmutated",
            "-o",
            "jsonpath={.metadata.labels.webhook}"
        ]),
        ""
    );

    // A denial is the API error upstream builds from the webhook's status.
    let denied = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "bad", "labels": {"deny": "true"}}});
    let r = c.kubectl_stdin(&["apply", "-f", "-"], &denied.to_string());
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "admission webhook \"deny.rudder.test\" denied the request: the label deny=true is not allowed"
        ),
        "{}",
        r.stderr
    );
    // The webhook's status has no reason, so kubectl names none.
    assert!(r.stderr.contains("Error from server: "), "{}", r.stderr);
    c.fails(&["get", "configmap", "bad"]);

    // matchConditions: the webhook is not called for `skip-me`.
    let skipped = json!({"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "skip-me", "labels": {"deny": "true"}}});
    apply(&c, &skipped);

    // Validating webhooks see deletes, with the old object.
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "keep", "labels": {"protected": "true"}}}),
    );
    let err = c.fails(&["delete", "configmap", "keep"]);
    assert!(
        err.contains("admission webhook \"deny.rudder.test\" denied the request: it is protected"),
        "{err}"
    );
    c.ok(&["get", "configmap", "keep"]);

    // failurePolicy: a webhook that cannot be reached fails the request (Fail, the default)...
    let down = |policy: &str| {
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "down"},
            "webhooks": [{
                "name": "down.rudder.test",
                "clientConfig": {
                    "url": format!("https://127.0.0.1:{}/validate", closed_port()),
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(&hooks.ca_pem),
                },
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["secrets"]}],
                "failurePolicy": policy,
                "timeoutSeconds": 5,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }],
        })
    };
    apply(&c, &down("Fail"));
    let err = c.fails(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
    assert!(
        err.contains("Internal error occurred: failed calling webhook \"down.rudder.test\": failed to call webhook: Post \"https://127.0.0.1:"),
        "{err}"
    );
    // ... and is skipped with Ignore.
    apply(&c, &down("Ignore"));
    c.ok(&["create", "secret", "generic", "s1", "--from-literal=a=b"]);
}

fn privileged_pod(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "busybox",
                                    "securityContext": {"privileged": true}}]}})
}

#[test]
fn pod_security_enforces_and_warns_by_namespace_labels() {
    let c = Cluster::start(Backend::Redb);
    c.ok(&["create", "namespace", "locked"]);
    c.ok(&["create", "namespace", "watched"]);
    c.ok(&["create", "namespace", "open"]);
    // A pod that already runs where the enforce level is raised is warned about.
    apply(&c, &privileged_pod("locked", "before"));
    let r = c.kubectl(&[
        "label",
        "namespace",
        "locked",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "Warning: existing pods in namespace \"locked\" violate the new PodSecurity enforce level \"restricted:latest\""
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Warning: before: allowPrivilegeEscalation != false, unrestricted capabilities, privileged, runAsNonRoot != true, seccompProfile"),
        "{}",
        r.stderr
    );

    // enforce=restricted refuses a privileged pod with upstream's message.
    let r = c.kubectl_stdin(
        &["apply", "-f", "-"],
        &privileged_pod("locked", "priv").to_string(),
    );
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(
            "pods \"priv\" is forbidden: violates PodSecurity \"restricted:latest\": \
allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
privileged (container \"c\" must not set securityContext.privileged=true), \
runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Error from server (Forbidden)"),
        "{}",
        r.stderr
    );
    // A compliant pod is admitted.
    apply(
        &c,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok", "namespace": "locked"},
                "spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                         "containers": [{"name": "c", "image": "busybox", "securityContext": {
                             "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}),
    );
    // Workload templates are only warned about, even under enforce.
    let r = c.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "locked",
        "--image=nginx",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{}",
        r.stderr
    );

    // warn=baseline admits the pod with a kubectl warning.
    c.ok(&[
        "label",
        "namespace",
        "watched",
        "pod-security.kubernetes.io/warn=baseline",
        "pod-security.kubernetes.io/warn-version=v1.37",
    ]);
    let r = c.kubectl_stdin(
        &["apply", "-f", "-"],
        &privileged_pod("watched", "priv").to_string(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "Warning: would violate PodSecurity \"baseline:v1.37\": privileged (container \"c\" must not set securityContext.privileged=true)"
        ),
        "{}",
        r.stderr
    );
    // No labels: privileged, nothing said.
    let r = c.kubectl_stdin(
        &["apply", "-f", "-"],
        &privileged_pod("open", "priv").to_string(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("PodSecurity"), "{}", r.stderr);
}

#[test]
fn validating_admission_policy_with_params_denies_and_warns() {
    let c = Cluster::start(Backend::Redb);
    c.ok(&[
        "create",
        "configmap",
        "limits",
        "--from-literal=maxReplicas=3",
    ]);
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "replica-limit"},
            "spec": {
                "failurePolicy": "Fail",
                "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
                "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
                "variables": [{"name": "replicas", "expression": "object.spec.replicas"}],
                "validations": [{
                    "expression": "variables.replicas <= int(params.data.maxReplicas)",
                    "messageExpression": "'replicas must be at most ' + params.data.maxReplicas",
                    "reason": "Forbidden",
                }],
            },
        }),
    );
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "replica-limit-default"},
            "spec": {"policyName": "replica-limit", "validationActions": ["Deny"],
                     "paramRef": {"name": "limits", "namespace": "default",
                                  "parameterNotFoundAction": "Deny"}},
        }),
    );
    let err = c.fails(&[
        "create",
        "deployment",
        "big",
        "--image=nginx",
        "--replicas=5",
    ]);
    assert!(
        err.contains("deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-default' denied request: replicas must be at most 3"),
        "{err}"
    );
    c.ok(&[
        "create",
        "deployment",
        "small",
        "--image=nginx",
        "--replicas=2",
    ]);
    // The param is read at each request.
    c.ok(&[
        "patch",
        "configmap",
        "limits",
        "-p",
        r#"{"data":{"maxReplicas":"10"}}"#,
    ]);
    c.ok(&[
        "create",
        "deployment",
        "big",
        "--image=nginx",
        "--replicas=5",
    ]);

    // Warn: the request goes through with kubectl's warning.
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "name-check"},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["configmaps"]}]},
                "validations": [{"expression": "!object.metadata.name.startsWith('tmp-')",
                                 "message": "temporary names are discouraged"}],
            },
        }),
    );
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "name-check-warn"},
            "spec": {"policyName": "name-check", "validationActions": ["Warn"]},
        }),
    );
    let r = c.kubectl(&["create", "configmap", "tmp-1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("Warning: Validation failed for ValidatingAdmissionPolicy 'name-check' with binding 'name-check-warn': temporary names are discouraged"),
        "{}",
        r.stderr
    );

    // The `authorizer` variable asks the server's authorizers about the requesting user, or
    // about a service account.
    c.ok(&[
        "create",
        "role",
        "cm-writer",
        "--verb=create,get",
        "--resource=configmaps",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "cm-writer",
        "--role=cm-writer",
        "--user=writer",
    ]);
    c.ok(&["create", "serviceaccount", "lister"]);
    c.ok(&[
        "create",
        "role",
        "secret-lister",
        "--verb=list",
        "--resource=secrets",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "secret-lister",
        "--role=secret-lister",
        "--serviceaccount=default:lister",
    ]);
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "guarded"},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE"], "resources": ["configmaps"]}]},
                "validations": [
                    {"expression": "object.metadata.name != 'guarded' || authorizer.requestResource.check('delete').allowed()",
                     "message": "only users who may delete configmaps may create 'guarded'"},
                    {"expression": "object.metadata.name != 'sa-check' || (authorizer.serviceAccount('default', 'lister').group('').resource('secrets').namespace('default').check('list').allowed() && !authorizer.serviceAccount('default', 'lister').group('').resource('secrets').namespace('default').check('get').allowed())",
                     "message": "the service account's rights are not as granted"},
                ],
            },
        }),
    );
    apply(
        &c,
        &json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "guarded-deny"},
            "spec": {"policyName": "guarded", "validationActions": ["Deny"]},
        }),
    );
    let err = support::wait_for("the guarded policy to deny the writer", || {
        let r = c.kubectl(&["create", "configmap", "guarded", "--as=writer"]);
        (r.code != 0).then_some(r.stderr)
    });
    assert!(
        err.contains("configmaps \"guarded\" is forbidden: ValidatingAdmissionPolicy 'guarded' with binding 'guarded-deny' denied request: only users who may delete configmaps may create 'guarded'"),
        "{err}"
    );
    c.ok(&["create", "configmap", "other", "--as=writer"]);
    // The admin may delete configmaps, so may create it.
    c.ok(&["create", "configmap", "guarded"]);
    c.ok(&["create", "configmap", "sa-check"]);
}

#[test]
fn mutating_admission_policies_apply_configurations_and_json_patches() {
    let c = Cluster::start(Backend::Redb);
    let policy = |name: &str, resource: &str, group: &str, mutations: Value| {
        apply(
            &c,
            &json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {
                    "matchConstraints": {"resourceRules": [{"apiGroups": [group], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": [resource]}]},
                    "reinvocationPolicy": "Never",
                    "mutations": mutations,
                },
            }),
        );
        apply(
            &c,
            &json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingAdmissionPolicyBinding",
                "metadata": {"name": name},
                "spec": {"policyName": name},
            }),
        );
    };
    // An apply configuration merges into the object: the label is added, the object's own
    // labels stay.
    policy(
        "team-label",
        "configmaps",
        "",
        json!([{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{metadata: Object.metadata{labels: {'team': 'blue'}}}"}}]),
    );
    // A JSON Patch, with a key escaped for its path.
    policy(
        "annotate",
        "configmaps",
        "",
        json!([{"patchType": "JSONPatch", "jsonPatch": {"expression":
            "has(object.metadata.annotations) ? [JSONPatch{op: 'add', path: '/metadata/annotations/' + jsonpatch.escapeKey('example.com/by'), value: 'policy'}] : [JSONPatch{op: 'add', path: '/metadata/annotations', value: {'example.com/by': 'policy'}}]"}}]),
    );
    let mut n = 0;
    let labels = support::wait_for("the mutating policies to act", || {
        n += 1;
        let name = format!("cm-{n}");
        apply(
            &c,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": {"own": "yes"}}}),
        );
        let got: Value =
            serde_json::from_str(&c.ok(&["get", "configmap", &name, "-o", "json"])).unwrap();
        (got["metadata"]["labels"]["team"] == "blue"
            && got["metadata"]["annotations"]["example.com/by"] == "policy")
            .then(|| got["metadata"]["labels"].clone())
    });
    assert_eq!(labels, json!({"own": "yes", "team": "blue"}));

    // Lists merge by their keys, as server-side apply merges: one field of the named
    // container is set, the rest of it stays.
    policy(
        "pull-always",
        "deployments",
        "apps",
        json!([{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: [Object.spec.template.spec.containers{name: object.spec.template.spec.containers[0].name, imagePullPolicy: 'Always'}]}}}}"}}]),
    );
    let mut n = 0;
    let container = support::wait_for("the deployment policy to act", || {
        n += 1;
        let name = format!("web-{n}");
        c.ok(&["create", "deployment", &name, "--image=nginx:1.27"]);
        let got: Value =
            serde_json::from_str(&c.ok(&["get", "deployment", &name, "-o", "json"])).unwrap();
        let container = got["spec"]["template"]["spec"]["containers"][0].clone();
        (container["imagePullPolicy"] == "Always").then_some(container)
    });
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["name"], "nginx");

    // Atomic parts may not be set (merging would replace them whole): under failurePolicy
    // Fail the request is refused with upstream's message.
    policy(
        "selector",
        "replicasets",
        "apps",
        json!([{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
            "Object{spec: Object.spec{selector: Object.spec.selector{matchLabels: {'a': 'b'}}}}"}}]),
    );
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let err = support::wait_for("the atomic mutation to be refused", || {
        let r = c.kubectl_stdin(&["create", "-f", "-"], &rs.to_string());
        if r.code == 0 {
            c.ok(&["delete", "replicaset", "rs", "--wait=false"]);
            return None;
        }
        Some(r.stderr)
    });
    assert!(
        err.contains("policy 'selector' with binding 'selector' denied request: error applying patch: invalid ApplyConfiguration: may not mutate atomic arrays, maps or structs: .spec.selector"),
        "{err}"
    );
}
