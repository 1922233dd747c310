//! End to end: per-object API compatibility with upstream (issue 8 items 3–5): a Secret's
//! `stringData` through every write path, autoscaling v1 ⇄ v2 HorizontalPodAutoscalers with
//! their defaults, and each kind's own name rule; with the real kubectl (v1.37) and curl, on
//! both store backends.

mod support;

use serde_json::{json, Value};
use support::{Backend, Cluster};

/// One raw request: status code, `Content-Type` and body.
struct Answer {
    code: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `curl -X <method> -H 'Content-Type: <ct>' --data <body> <server><path>` as the admin.
fn send(c: &Cluster, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
    let out = c.curl(&[
        "-X",
        method,
        "-H",
        &format!("Authorization: Bearer {}", c.admin_token()),
        "-H",
        "Accept: application/json",
        "-H",
        &format!("Content-Type: {content_type}"),
        "--data-binary",
        body,
        "-w",
        "\n%{http_code} %{content_type}",
        &format!("{}{path}", c.url()),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').expect("curl wrote its trailer");
    let (code, content_type) = trailer.split_once(' ').unwrap_or((trailer, ""));
    Answer {
        code: code.parse().unwrap_or(0),
        content_type: content_type.to_string(),
        body: body.to_string(),
    }
}

fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&c.ok(&all)).unwrap()
}

/// Upstream's 422 `Status` for one invalid field (`k8s.io/apimachinery` `NewInvalid`).
fn invalid_status(kind: &str, group: &str, name: &str, field: &str, detail: &str) -> Value {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut details = json!({
        "name": name,
        "kind": kind,
        "causes": [{"reason": "FieldValueInvalid", "message": detail, "field": field}],
    });
    if !group.is_empty() {
        details["group"] = json!(group);
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("{qualified} {name:?} is invalid: {field}: {detail}"),
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}

// ---------------------------------------------------------------------------------------------
// Item 3: Secret stringData (upstream `Convert_v1_Secret_To_core_Secret`: stringData entries
// overwrite data entries; the field is write-only).

fn secret_string_data(b: Backend) {
    let c = Cluster::start(b);
    // kubectl's typed client (protobuf) with --from-literal.
    assert_eq!(
        c.ok(&[
            "create",
            "secret",
            "generic",
            "lit",
            "--from-literal=user=admin"
        ]),
        "secret/lit created\n"
    );
    assert_eq!(
        get_json(&c, &["secret", "lit"])["data"],
        json!({"user": "YWRtaW4="})
    );

    // Strict field validation (what kubectl create/apply ask for) knows stringData.
    let created = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/secrets?fieldValidation=Strict",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"strict"},
            "data":{"password":"eHg=","other":"eHg="},"stringData":{"password":"hunter2"}}"#,
    );
    assert_eq!(
        (created.code, created.content_type.as_str()),
        (201, "application/json"),
        "{}",
        created.body
    );
    let body = created.json();
    assert_eq!(
        body["data"],
        json!({"other": "eHg=", "password": "aHVudGVyMg=="})
    );
    assert!(body.get("stringData").is_none(), "{body}");
    assert_eq!(body["type"], "Opaque");

    // A strategic merge patch and a JSON merge patch adding stringData.
    c.ok(&[
        "patch",
        "secret",
        "strict",
        "-p",
        r#"{"stringData":{"token":"abc"}}"#,
    ]);
    c.ok(&[
        "patch",
        "secret",
        "strict",
        "--type=merge",
        "-p",
        r#"{"stringData":{"other":"new"}}"#,
    ]);
    let s = get_json(&c, &["secret", "strict"]);
    assert_eq!(
        s["data"],
        json!({"other": "bmV3", "password": "aHVudGVyMg==", "token": "YWJj"})
    );
    assert!(s.get("stringData").is_none(), "{s}");

    // A PUT of what was read plus stringData, and a JSON patch adding it.
    let mut put = get_json(&c, &["secret", "strict"]);
    put["stringData"] = json!({"token": "def"});
    let replaced = send(
        &c,
        "PUT",
        "/api/v1/namespaces/default/secrets/strict?fieldValidation=Strict",
        "application/json",
        &put.to_string(),
    );
    assert_eq!(
        (replaced.code, replaced.content_type.as_str()),
        (200, "application/json"),
        "{}",
        replaced.body
    );
    assert_eq!(replaced.json()["data"]["token"], "ZGVm");
    assert!(replaced.json().get("stringData").is_none());
    c.ok(&[
        "patch",
        "secret",
        "strict",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/stringData","value":{"token":"ghi"}}]"#,
    ]);
    assert_eq!(
        c.ok(&["get", "secret", "strict", "-o", "jsonpath={.data.token}"]),
        "Z2hp"
    );

    // An unknown field next to stringData is still refused, with upstream's message.
    let refused = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/secrets?fieldValidation=Strict",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"bad"},"stringData":{"a":"b"},"bogus":1}"#,
    );
    assert_eq!(refused.code, 400, "{}", refused.body);
    assert_eq!(refused.content_type, "application/json");
    assert_eq!(
        refused.json()["message"],
        "strict decoding error: unknown field \"bogus\""
    );

    // Client-side apply of a manifest with stringData, then a changed value.
    let manifest = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: applied\nstringData:\n  password: {v}\n"
        )
    };
    assert_eq!(
        c.ok_stdin(&["apply", "-f", "-"], &manifest("one")),
        "secret/applied created\n"
    );
    assert_eq!(
        c.ok_stdin(&["apply", "-f", "-"], &manifest("two")),
        "secret/applied configured\n"
    );
    let s = get_json(&c, &["secret", "applied"]);
    assert_eq!(s["data"], json!({"password": "dHdv"}));
    assert!(s.get("stringData").is_none(), "{s}");

    // Server-side apply: created, then changed; the manager owns what it applied.
    let ssa = |v: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ssa\nstringData:\n  key: {v}\n")
    };
    assert_eq!(
        c.ok_stdin(&["apply", "--server-side", "-f", "-"], &ssa("one")),
        "secret/ssa serverside-applied\n"
    );
    assert_eq!(
        c.ok_stdin(&["apply", "--server-side", "-f", "-"], &ssa("two")),
        "secret/ssa serverside-applied\n"
    );
    let s = get_json(&c, &["secret", "ssa", "--show-managed-fields"]);
    assert_eq!(s["data"], json!({"key": "dHdv"}));
    assert!(s.get("stringData").is_none(), "{s}");
    assert_eq!(
        s["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:stringData": {"f:key": {}}})
    );
}

// ---------------------------------------------------------------------------------------------
// Item 4: HorizontalPodAutoscalers, one object read and written as autoscaling/v1 and /v2
// (upstream `pkg/apis/autoscaling/v1/conversion.go`, `v1/defaults.go`, `v2/defaults.go`).

const HPA_V1: &str = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
const HPA_V2: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

fn hpa_versions(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "deployment", "web", "--image=nginx"]);
    assert_eq!(
        c.ok(&["autoscale", "deployment", "web", "--max=5", "--cpu=60%"]),
        "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    );
    // Read as v1: the CPU metric is targetCPUUtilizationPercentage, minReplicas defaulted.
    let v1 = send(&c, "GET", &format!("{HPA_V1}/web"), "application/json", "");
    assert_eq!(
        (v1.code, v1.content_type.as_str()),
        (200, "application/json")
    );
    let v1 = v1.json();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(
        v1["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60})
    );
    assert_eq!(
        v1["status"],
        json!({"currentReplicas": 0, "desiredReplicas": 0})
    );
    assert!(v1["metadata"].get("annotations").is_none(), "{v1}");

    // Created as v1 without a target: v2 shows minReplicas 1 and the 80% CPU metric that
    // conversion adds.
    let created = send(
        &c,
        "POST",
        HPA_V1,
        "application/json",
        r#"{"apiVersion":"autoscaling/v1","kind":"HorizontalPodAutoscaler","metadata":{"name":"old"},
            "spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":"web"},"maxReplicas":4}}"#,
    );
    assert_eq!(
        (created.code, created.content_type.as_str()),
        (201, "application/json")
    );
    assert_eq!(
        created.json()["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 80})
    );
    let v2 = send(&c, "GET", &format!("{HPA_V2}/old"), "application/json", "").json();
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]})
    );
    assert_eq!(v2["status"], json!({"desiredReplicas": 0}));

    // Created as v2 with a memory metric and half a behavior: the behavior rules are filled in,
    // and v1 keeps what it cannot express in upstream's annotations.
    let manifest = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: mem\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  maxReplicas: 4\n  metrics:\n  - type: Resource\n    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}\n  behavior:\n    scaleDown: {stabilizationWindowSeconds: 60}\n";
    assert_eq!(
        c.ok_stdin(&["create", "-f", "-"], manifest),
        "horizontalpodautoscaler.autoscaling/mem created\n"
    );
    let v2 = get_json(&c, &["hpa", "mem"]);
    assert_eq!(
        v2["spec"]["behavior"],
        json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15}]}})
    );
    let v1 = send(&c, "GET", &format!("{HPA_V1}/mem"), "application/json", "").json();
    assert!(
        v1["spec"].get("targetCPUUtilizationPercentage").is_none(),
        "{v1}"
    );
    let ann = &v1["metadata"]["annotations"];
    assert_eq!(
        ann["autoscaling.alpha.kubernetes.io/metrics"],
        r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}}]"#
    );
    assert_eq!(
        ann["autoscaling.alpha.kubernetes.io/behavior"],
        r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15},{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null},"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Max","Policies":[{"Type":"Percent","Value":100,"PeriodSeconds":15}],"Tolerance":null}}"#
    );

    // A v1 client writes back what it read with a new maxReplicas: nothing v2 had is lost, and
    // the annotations never reach the stored (v2) object.
    let mut put = v1.clone();
    put["spec"]["maxReplicas"] = json!(9);
    let updated = send(
        &c,
        "PUT",
        &format!("{HPA_V1}/mem"),
        "application/json",
        &put.to_string(),
    );
    assert_eq!(updated.code, 200, "{}", updated.body);
    let v2_after = get_json(&c, &["hpa", "mem"]);
    assert_eq!(v2_after["spec"]["maxReplicas"], 9);
    assert_eq!(v2_after["spec"]["metrics"], v2["spec"]["metrics"]);
    assert_eq!(v2_after["spec"]["behavior"], v2["spec"]["behavior"]);
    assert!(
        v2_after["metadata"].get("annotations").is_none(),
        "{v2_after}"
    );
    assert_eq!(v2_after["metadata"]["generation"], 2);

    // Both versions list the same three objects; kubectl's table reads them.
    let names = |path: &str| -> Vec<String> {
        let list = send(&c, "GET", path, "application/json", "").json();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["apiVersion"].as_str().unwrap(),
                    i["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        names(HPA_V1),
        [
            "autoscaling/v1/mem",
            "autoscaling/v1/old",
            "autoscaling/v1/web"
        ]
    );
    assert_eq!(
        names(HPA_V2),
        [
            "autoscaling/v2/mem",
            "autoscaling/v2/old",
            "autoscaling/v2/web"
        ]
    );
    let table = c.ok(&[
        "get",
        "hpa",
        "-o",
        "custom-columns=NAME:.metadata.name,MIN:.spec.minReplicas,MAX:.spec.maxReplicas",
    ]);
    assert_eq!(
        table,
        "NAME   MIN   MAX\nmem    1     9\nold    1     4\nweb    1     5\n"
    );
}

/// Item 4's survey: the cheap `SetDefaults_*` that were missing (docs/DEFAULTING.md), each as
/// upstream's defaults.go writes it.
fn more_defaults(b: Backend) {
    let c = Cluster::start(b);
    let manifests = r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np}
spec:
  podSelector: {}
  egress: [{ports: [{port: 53}]}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ic}
spec:
  controller: example.com/ingress
  parameters: {kind: Params, name: p}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: example.com/local
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv1}
---
apiVersion: v1
kind: LimitRange
metadata: {name: lr}
spec:
  limits:
  - type: Container
    max: {cpu: "2"}
    min: {memory: 64Mi}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: es}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{port: 80}]
"#;
    c.ok_stdin(&["apply", "-f", "-"], manifests);
    let get = |args: &[&str]| get_json(&c, args);
    let np = get(&["networkpolicy", "np"]);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["spec"]["egress"][0]["ports"],
        json!([{"port": 53, "protocol": "TCP"}])
    );
    assert_eq!(
        get(&["ingressclass", "ic"])["spec"]["parameters"],
        json!({"kind": "Params", "name": "p", "scope": "Cluster"})
    );
    let sc = get(&["storageclass", "local"]);
    assert_eq!(
        (&sc["reclaimPolicy"], &sc["volumeBindingMode"]),
        (&json!("Delete"), &json!("Immediate"))
    );
    assert_eq!(
        get(&["priorityclass", "high"])["preemptionPolicy"],
        "PreemptLowerPriority"
    );
    let pv = get(&["pv", "pv1"]);
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(
        pv["spec"]["hostPath"],
        json!({"path": "/tmp/pv1", "type": ""})
    );
    // Created Pending (upstream's default); the PV controller then makes it Available.
    assert!(
        pv["status"]["phase"] == "Pending" || pv["status"]["phase"] == "Available",
        "{pv}"
    );
    assert!(pv["status"]["lastPhaseTransitionTime"].is_string(), "{pv}");
    support::wait_for("pv1 to become Available", || {
        (get(&["pv", "pv1"])["status"]["phase"] == "Available").then_some(())
    });
    assert_eq!(
        get(&["limitrange", "lr"])["spec"]["limits"][0],
        json!({"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
            "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "64Mi"}})
    );
    assert_eq!(
        get(&["endpointslice", "es"])["ports"],
        json!([{"name": "", "port": 80, "protocol": "TCP"}])
    );
    // Bindings: the role's group, and the RBAC group for users and groups (not for service
    // accounts), through a raw POST with neither set.
    let rb = send(
        &c,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        "application/json",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"rb"},
            "roleRef":{"kind":"ClusterRole","name":"view"},
            "subjects":[{"kind":"User","name":"bob"},{"kind":"ServiceAccount","name":"sa","namespace":"default"}]}"#,
    );
    assert_eq!(
        (rb.code, rb.content_type.as_str()),
        (201, "application/json"),
        "{}",
        rb.body
    );
    let rb = rb.json();
    assert_eq!(
        rb["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"})
    );
    assert_eq!(
        rb["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
            {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}])
    );
}

// ---------------------------------------------------------------------------------------------
// Item 5: each kind's name rule (the `ValidateNameFunc` of its upstream `ValidateObjectMeta`).

fn name_rules_per_kind(b: Backend) {
    let c = Cluster::start(b);
    // RBAC objects only need a valid path segment (upstream `minimalNameRequirements`).
    assert_eq!(
        c.ok(&[
            "create",
            "clusterrole",
            "testing-CR",
            "--verb=get",
            "--resource=pods"
        ]),
        "clusterrole.rbac.authorization.k8s.io/testing-CR created\n"
    );
    assert_eq!(
        c.ok(&["create", "role", "My_Role", "--verb=get", "--resource=pods"]),
        "role.rbac.authorization.k8s.io/My_Role created\n"
    );
    assert_eq!(
        c.ok(&[
            "create",
            "rolebinding",
            "Bind:Me",
            "--role=My_Role",
            "--user=alice"
        ]),
        "rolebinding.rbac.authorization.k8s.io/Bind:Me created\n"
    );
    assert_eq!(
        c.ok(&[
            "create",
            "clusterrolebinding",
            "testing-CRB",
            "--clusterrole=testing-CR",
            "--group=devs"
        ]),
        "clusterrolebinding.rbac.authorization.k8s.io/testing-CRB created\n"
    );
    assert_eq!(
        c.ok(&["get", "clusterrole", "testing-CR", "-o", "name"]),
        "clusterrole.rbac.authorization.k8s.io/testing-CR\n"
    );
    let bad_role = send(
        &c,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "application/json",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"a%b"}}"#,
    );
    assert_eq!(
        (bad_role.code, bad_role.content_type.as_str()),
        (422, "application/json")
    );
    assert_eq!(
        bad_role.json(),
        invalid_status(
            "ClusterRole",
            "rbac.authorization.k8s.io",
            "a%b",
            "metadata.name",
            "Invalid value: \"a%b\": may not contain '%'"
        )
    );

    // Namespaces are DNS labels (upstream `ValidateNamespaceName`).
    let ns = send(
        &c,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a.b"}}"#,
    );
    assert_eq!(
        (ns.code, ns.content_type.as_str()),
        (422, "application/json")
    );
    assert_eq!(
        ns.json(),
        invalid_status(
            "Namespace",
            "",
            "a.b",
            "metadata.name",
            "Invalid value: \"a.b\": must not contain dots"
        )
    );
    // Services are DNS-1035 labels, and only that message is given.
    let err = c.fails(&["create", "service", "clusterip", "1web", "--tcp=80"]);
    assert_eq!(
        err,
        "error: failed to create ClusterIP service: Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')\n"
    );
    // A bad name and a bad spec are one 422 with both causes, metadata first.
    let both = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"Web"},"spec":{}}"#,
    );
    assert_eq!(both.code, 422, "{}", both.body);
    assert_eq!(
        both.json()["details"]["causes"],
        json!([
            {"reason": "FieldValueInvalid", "field": "metadata.name",
             "message": "Invalid value: \"Web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"},
            {"reason": "FieldValueRequired", "field": "spec.ports", "message": "Required value"}
        ])
    );
    // Nodes are DNS subdomains (upstream `ValidateNodeName`).
    let node = send(
        &c,
        "POST",
        "/api/v1/nodes",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"Worker_1"}}"#,
    );
    assert_eq!(node.code, 422, "{}", node.body);
    assert_eq!(
        node.json()["details"]["causes"][0]["message"],
        "Invalid value: \"Worker_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    // core/v1 Events skip ValidateObjectMeta "for backwards compatibility"; events.k8s.io/v1
    // ones are DNS subdomains.
    let core_event = send(
        &c,
        "POST",
        "/api/v1/namespaces/default/events",
        "application/json",
        r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"Pod_X.1"},
            "involvedObject":{"kind":"Pod","name":"x","namespace":"default"},"reason":"Test"}"#,
    );
    assert_eq!(core_event.code, 201, "{}", core_event.body);
    let v1_event = send(
        &c,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/default/events",
        "application/json",
        r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"Pod_X.2"},
            "eventTime":"2026-01-01T00:00:00.000000Z","reportingController":"e2e/test",
            "reportingInstance":"i","action":"Act","reason":"Test","type":"Normal",
            "regarding":{"kind":"Pod","name":"x","namespace":"default"}}"#,
    );
    assert_eq!(v1_event.code, 422, "{}", v1_event.body);
    assert_eq!(
        v1_event.json()["details"]["causes"][0]["field"],
        "metadata.name"
    );
    // StatefulSets are DNS labels (their pods append `-<ordinal>`).
    let sts = send(
        &c,
        "POST",
        "/apis/apps/v1/namespaces/default/statefulsets",
        "application/json",
        r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db.primary"},
            "spec":{"selector":{"matchLabels":{"a":"b"}},"serviceName":"db",
            "template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#,
    );
    assert_eq!(sts.code, 422, "{}", sts.body);
    assert_eq!(
        sts.json()["details"]["causes"],
        json!([{"reason": "FieldValueInvalid", "field": "metadata.name",
            "message": "Invalid value: \"db.primary\": must not contain dots"}])
    );
    // Names that depend on the object: a CRD is `<plural>.<group>`, an APIService
    // `<version>.<group>` (upstream's name functions close over the spec).
    let crd = send(
        &c,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets"},
            "spec":{"group":"example.com","scope":"Namespaced",
            "names":{"plural":"widgets","singular":"widget","kind":"Widget","listKind":"WidgetList"},
            "versions":[{"name":"v1","served":true,"storage":true,
                "schema":{"openAPIV3Schema":{"type":"object"}}}]}}"#,
    );
    assert_eq!(
        (crd.code, crd.content_type.as_str()),
        (422, "application/json")
    );
    assert_eq!(
        crd.json(),
        invalid_status(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            "widgets",
            "metadata.name",
            "Invalid value: \"widgets\": must be spec.names.plural+\".\"+spec.group"
        )
    );
    let api_service = send(
        &c,
        "POST",
        "/apis/apiregistration.k8s.io/v1/apiservices",
        "application/json",
        r#"{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"wardle"},
            "spec":{"group":"wardle.example.com","version":"v1alpha1",
            "groupPriorityMinimum":1000,"versionPriority":15}}"#,
    );
    assert_eq!(api_service.code, 422, "{}", api_service.body);
    assert_eq!(
        api_service.json()["message"],
        "APIService.apiregistration.k8s.io \"wardle\" is invalid: metadata.name: Invalid value: \"wardle\": must be `spec.version+\".\"+spec.group`: \"v1alpha1.wardle.example.com\""
    );

    // PriorityClasses: `system-` is reserved for the built-in classes.
    let pc = send(
        &c,
        "POST",
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        "application/json",
        r#"{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{"name":"system-mine"},"value":1000}"#,
    );
    assert_eq!(
        (pc.code, pc.content_type.as_str()),
        (422, "application/json")
    );
    assert_eq!(
        pc.json()["message"],
        "PriorityClass.scheduling.k8s.io \"system-mine\" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
    );
    assert_eq!(
        c.fails(&["create", "priorityclass", "too-high", "--value=2000000000"]),
        "error: failed to create priorityclass: PriorityClass.scheduling.k8s.io \"too-high\" is invalid: value: Forbidden: maximum allowed value of a user defined priority is 1000000000\n"
    );
    c.ok(&["create", "priorityclass", "fixed", "--value=10"]);
    assert_eq!(
        c.fails(&["patch", "priorityclass", "fixed", "--type=merge", "-p", r#"{"value":11}"#]),
        "The PriorityClass \"fixed\" is invalid: value: Forbidden: may not be changed in an update.\n"
    );

    // generateName is checked as a prefix with the same rule.
    let gen = send(
        &c,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        "application/json",
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"generateName":"Gen-"}}"#,
    );
    assert_eq!(gen.code, 201, "{}", gen.body);
    assert!(
        gen.json()["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Gen-") && n.len() == 9),
        "{}",
        gen.body
    );
}

on_both_backends!(
    secret_string_data,
    hpa_versions,
    more_defaults,
    name_rules_per_kind
);
