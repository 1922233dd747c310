//! End to end: discovery as older clients see it, on both the embedded store and etcd.
//!
//! kubectl 1.27–1.29 ask `/api` and `/apis` for aggregated discovery v2beta1 or plain JSON;
//! kube-apiserver 1.37 serves only v2, so it answers them with the legacy `APIVersions` /
//! `APIGroupList` and they walk every group version's `APIResourceList`. The expected answers
//! (status, Content-Type, body) are upstream's: `apiserver/pkg/endpoints/discovery/aggregated`
//! (wrapper_test.go's Accept cases), `handlers/negotiation`, and captured `/api/v1` responses.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{Backend, Cluster, Run};

/// kubectl v1.28, which `scripts/install-deps` extracts next to the v1.37 one.
fn kubectl_128() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL_1_28") {
        return PathBuf::from(k);
    }
    support::python_scripts_dir()
        .map(|d| d.join("kubectl-1.28"))
        .unwrap_or_else(|| PathBuf::from("kubectl-1.28"))
}

/// Run kubectl v1.28 against the cluster, with its own discovery cache.
fn old(c: &Cluster, args: &[&str]) -> Run {
    Command::new(kubectl_128())
        .env("KUBECONFIG", &c.kubeconfig)
        .arg("--cache-dir")
        .arg(c.dir.path().join("kube-cache-1.28"))
        .args(args)
        .output()
        .expect("kubectl-1.28 runs (scripts/install-deps extracts it)")
        .into()
}

/// kubectl v1.28 must succeed and say nothing on stderr (no discovery errors or warnings).
fn old_ok(c: &Cluster, args: &[&str]) -> String {
    let r = old(c, args);
    assert_eq!(
        r.code, 0,
        "kubectl-1.28 {args:?}: {}\n{}",
        r.stderr, r.stdout
    );
    assert_eq!(r.stderr, "", "kubectl-1.28 {args:?} warned");
    r.stdout
}

const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
const V2_PROTO: &str =
    "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
const V2BETA1_PROTO: &str =
    "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
const PROTO: &str = "application/vnd.kubernetes.protobuf";
const NOT_ACCEPTABLE: &str = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";

/// One raw GET: status, Content-Type and body. `accept: None` sends no Accept header at all.
fn get(c: &Cluster, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let auth = format!("Authorization: Bearer {}", c.admin_token());
    // A bare `Accept:` makes curl send no Accept header at all.
    let accept = accept.map_or_else(|| "Accept:".to_string(), |a| format!("Accept: {a}"));
    let url = format!("{}{path}", c.url());
    // Not curl's own user agent: upstream indents JSON for curl (see e2e_compat_http).
    let out = c.curl(&[
        "-A",
        "kubectl/v1.37.0 (linux/amd64) kubernetes/rudder",
        "-H",
        &auth,
        "-H",
        &accept,
        "-w",
        "\n%{http_code} %{content_type}",
        &url,
    ]);
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').expect("curl wrote the status line");
    let (code, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        code.parse().expect("an HTTP status"),
        content_type.to_string(),
        body.to_string(),
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// kubectl 1.28 drives the cluster as it drives upstream 1.37: discovery through the legacy
/// documents, then get, apply (client-side and server-side), api-resources and explain.
fn old_kubectl_get_apply_explain(b: Backend) {
    let c = Cluster::start(b);
    let version = old_ok(&c, &["version", "--client"]);
    assert!(version.contains("v1.28."), "{version}");

    let ns = old_ok(&c, &["get", "namespaces"]);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(name), "{ns}");
    }
    // The `all` category comes from the legacy documents' `categories`.
    let all = old_ok(&c, &["get", "all", "-A"]);
    assert!(all.contains("service/kubernetes"), "{all}");

    let manifest = "apiVersion: v1
kind: ConfigMap
metadata:
  name: old-client
data:
  a: \"1\"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
";
    let file = c.dir.path().join("old-client.yaml");
    std::fs::write(&file, manifest).unwrap();
    let file = file.to_str().unwrap();
    assert_eq!(
        old_ok(&c, &["apply", "-f", file]),
        "configmap/old-client created\ndeployment.apps/web created\n"
    );
    assert_eq!(
        old_ok(&c, &["apply", "-f", file]),
        "configmap/old-client unchanged\ndeployment.apps/web unchanged\n"
    );
    assert_eq!(
        old_ok(&c, &["apply", "--server-side", "-f", file]),
        "configmap/old-client serverside-applied\ndeployment.apps/web serverside-applied\n"
    );
    let deploy = old_ok(
        &c,
        &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
    );
    assert_eq!(deploy, "1");
    // Short names and the all category through the old client too.
    let cm = old_ok(&c, &["get", "cm", "old-client", "-o", "name"]);
    assert_eq!(cm, "configmap/old-client\n");

    let explain = old_ok(&c, &["explain", "deployment.spec.replicas"]);
    assert!(
        explain.contains("GROUP:      apps")
            && explain.contains("KIND:       Deployment")
            && explain.contains("FIELD: replicas <integer>"),
        "{explain}"
    );
    let explain = old_ok(&c, &["explain", "pods"]);
    assert!(
        explain.starts_with("KIND:       Pod\nVERSION:    v1\n"),
        "{explain}"
    );

    // Legacy discovery (1.28) and aggregated discovery (1.37) list the same resources.
    let legacy = old_ok(&c, &["api-resources"]);
    let aggregated = c.ok(&["api-resources"]);
    assert_eq!(legacy, aggregated);
    assert!(
        legacy.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "po", "v1", "true", "Pod"]
        ),
        "{legacy}"
    );
    let wide = old_ok(&c, &["api-resources", "-o", "wide", "--api-group=apps"]);
    let deployments = wide
        .lines()
        .find(|l| l.starts_with("deployments "))
        .unwrap_or_else(|| panic!("{wide}"));
    assert_eq!(
        deployments.split_whitespace().collect::<Vec<_>>(),
        [
            "deployments",
            "deploy",
            "apps/v1",
            "true",
            "Deployment",
            "create,delete,deletecollection,get,list,patch,update,watch",
            "all"
        ]
    );
}

/// `/api` and `/apis` for every Accept combination upstream's discovery tests cover, plus what
/// client-go of each age sends.
fn raw_accept_combinations(b: Backend) {
    let c = Cluster::start(b);
    let aggregated_ct = V2;
    enum Want {
        Aggregated,
        Legacy(&'static str),
        NotAcceptable,
    }
    use Want::*;
    let kubectl_128 = format!("{V2BETA1},application/json");
    let kubectl_137 = format!("{V2},application/json");
    let client_go_130 = format!("{V2},{V2BETA1},application/json");
    let v2_first = format!("{V2},application/json");
    let proto_first = format!("{V2_PROTO},{PROTO}");
    let proto_then_json = format!("{PROTO}, application/json");
    let cases: Vec<(Option<&str>, Want)> = vec![
        // wrapper_test.go TestAggregationEnabled
        (Some("application/json;foo=bar"), Legacy("application/json")),
        (None, Legacy("application/json")),
        (Some(V2BETA1), NotAcceptable),
        (Some(V2BETA1_PROTO), NotAcceptable),
        (Some(V2), Aggregated),
        (Some(V2_PROTO), NotAcceptable),
        (Some("application/json"), Legacy("application/json")),
        (Some(PROTO), NotAcceptable),
        (Some(&v2_first), Aggregated),
        (Some(&proto_first), NotAcceptable),
        // clients in the wild
        (Some(&kubectl_128), Legacy("application/json")),
        (Some(&kubectl_137), Aggregated),
        (Some(&client_go_130), Aggregated),
        (Some(&proto_then_json), Legacy("application/json")),
        (Some("application/json, */*"), Legacy("application/json")),
        (Some("*/*"), Legacy("application/json")),
        (Some("application/yaml"), Legacy("application/yaml")),
        (Some("text/html"), NotAcceptable),
    ];
    for path in ["/api", "/apis"] {
        let legacy_kind = if path == "/api" {
            "APIVersions"
        } else {
            "APIGroupList"
        };
        for (accept, want) in &cases {
            let (code, ct, body) = get(&c, path, *accept);
            let what = format!("GET {path} Accept {accept:?}");
            match want {
                Aggregated => {
                    assert_eq!((code, ct.as_str()), (200, aggregated_ct), "{what}");
                    let doc = json(&body);
                    assert_eq!(doc["kind"], "APIGroupDiscoveryList", "{what}");
                    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2", "{what}");
                }
                Legacy(media) => {
                    assert_eq!((code, ct.as_str()), (200, *media), "{what}: {body}");
                    if *media == "application/json" {
                        assert_eq!(json(&body)["kind"], legacy_kind, "{what}");
                    } else {
                        assert!(body.contains(&format!("kind: {legacy_kind}\n")), "{what}");
                    }
                }
                NotAcceptable => {
                    assert_eq!((code, ct.as_str()), (406, "application/json"), "{what}");
                    let st = json(&body);
                    assert_eq!(st["kind"], "Status", "{what}");
                    assert_eq!(st["reason"], "NotAcceptable", "{what}");
                    assert_eq!(st["code"], 406, "{what}");
                    assert_eq!(st["message"], NOT_ACCEPTABLE, "{what}");
                }
            }
        }
        // The aggregated list in YAML names its kind in the Content-Type too.
        let yaml_v2 = "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let (code, ct, body) = get(&c, path, Some(yaml_v2));
        assert_eq!((code, ct.as_str()), (200, yaml_v2));
        assert!(
            body.starts_with("apiVersion: apidiscovery.k8s.io/v2\n"),
            "{body}"
        );
    }
    // The per-group-version documents are legacy only: an aggregated-only Accept is refused.
    for path in ["/api/v1", "/apis/apps", "/apis/apps/v1"] {
        let (code, ct, _) = get(&c, path, Some(V2));
        assert_eq!((code, ct.as_str()), (406, "application/json"), "{path}");
        let (code, ct, _) = get(&c, path, Some("application/json, */*"));
        assert_eq!((code, ct.as_str()), (200, "application/json"), "{path}");
    }
    // An unknown group is 404 whatever the Accept.
    for accept in [Some(V2), Some("application/json"), None] {
        let (code, _, body) = get(&c, "/apis/nothing.example.com/v1", accept);
        assert_eq!(code, 404, "{body}");
    }
}

/// The legacy documents' text, field for field, as upstream kube-apiserver writes it.
fn legacy_documents_as_upstream(b: Backend) {
    let c = Cluster::start(b);
    let accept = Some("application/json, */*");
    let (_, _, core) = get(&c, "/api/v1", accept);
    assert!(core.starts_with(concat!(
        r#"{"kind":"APIResourceList","groupVersion":"v1","resources":["#,
        r#"{"name":"bindings","singularName":"binding","namespaced":true,"kind":"Binding","verbs":["create"]},"#,
        r#"{"name":"componentstatuses","singularName":"componentstatus","namespaced":false,"kind":"ComponentStatus","verbs":["get","list"],"shortNames":["cs"]},"#,
        r#"{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["cm"],"storageVersionHash":"qFsyl6wFWjQ="},"#,
        r#"{"name":"endpoints","singularName":"endpoints","namespaced":true,"kind":"Endpoints","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["ep"],"storageVersionHash":"fWeeMqaN/OA="},"#,
    )), "{core}");
    for entry in [
        r#"{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"],"categories":["all"],"storageVersionHash":"xPOwRZ+Yhw8="},{"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},{"name":"pods/binding","singularName":"","namespaced":true,"kind":"Binding","verbs":["create"]}"#,
        r#"{"name":"pods/eviction","singularName":"","namespaced":true,"group":"policy","version":"v1","kind":"Eviction","verbs":["create"]}"#,
        r#"{"name":"services","singularName":"service","namespaced":true,"kind":"Service","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["svc"],"categories":["all"],"storageVersionHash":"0/CO1lhkEBI="}"#,
        r#"{"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["create","delete","get","list","patch","update","watch"],"shortNames":["ns"],"storageVersionHash":"Q3oi5N2YM8M="},{"name":"namespaces/finalize","singularName":"","namespaced":false,"kind":"Namespace","verbs":["update"]},{"name":"namespaces/status","singularName":"","namespaced":false,"kind":"Namespace","verbs":["get","patch","update"]}"#,
        r#"{"name":"events","singularName":"event","namespaced":true,"kind":"Event","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["ev"],"storageVersionHash":"r2yiGXH7wu8="}"#,
    ] {
        assert!(core.contains(entry), "{entry}\nnot in\n{core}");
    }

    let (_, _, apps) = get(&c, "/apis/apps/v1", accept);
    assert!(
        apps.starts_with(r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[{"name":"controllerrevisions","singularName":"controllerrevision","namespaced":true,"kind":"ControllerRevision","#),
        "{apps}"
    );
    let deployments = r#"{"name":"deployments","singularName":"deployment","namespaced":true,"kind":"Deployment","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["deploy"],"categories":["all"],"storageVersionHash":"8aSe+NMegvE="},{"name":"deployments/scale","singularName":"","namespaced":true,"group":"autoscaling","version":"v1","kind":"Scale","verbs":["get","patch","update"]},{"name":"deployments/status","singularName":"","namespaced":true,"kind":"Deployment","verbs":["get","patch","update"]}"#;
    assert!(apps.contains(deployments), "{apps}");
    // Events of events.k8s.io are stored as core Events: the same hash.
    let (_, _, events) = get(&c, "/apis/events.k8s.io/v1", accept);
    assert_eq!(
        events,
        r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"events.k8s.io/v1","resources":[{"name":"events","singularName":"event","namespaced":true,"kind":"Event","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["ev"],"storageVersionHash":"r2yiGXH7wu8="}]}"#
    );
    // Both HPA versions report the v2 storage version.
    for v in ["v1", "v2"] {
        let (_, _, hpa) = get(&c, &format!("/apis/autoscaling/{v}"), accept);
        assert!(
            hpa.contains(
                r#""shortNames":["hpa"],"categories":["all"],"storageVersionHash":"qwQve8ut294="}"#
            ),
            "{hpa}"
        );
    }
    // Reviews have no storage and so no hash.
    let (_, _, authz) = get(&c, "/apis/authorization.k8s.io/v1", accept);
    assert!(!authz.contains("storageVersionHash"), "{authz}");

    let (code, ct, api) = get(&c, "/api", accept);
    assert_eq!((code, ct.as_str()), (200, "application/json"));
    assert_eq!(
        api,
        format!(
            r#"{{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{{"clientCIDR":"0.0.0.0/0","serverAddress":"{}"}}]}}"#,
            json(&api)["serverAddressByClientCIDRs"][0]["serverAddress"]
                .as_str()
                .unwrap()
        )
    );
    let (_, _, group) = get(&c, "/apis/apps", accept);
    assert_eq!(
        group,
        r#"{"kind":"APIGroup","apiVersion":"v1","name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}}"#
    );
    let (_, _, groups) = get(&c, "/apis", accept);
    assert!(
        groups.starts_with(r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":""#),
        "{groups}"
    );
    assert!(
        groups.contains(r#"{"name":"autoscaling","versions":[{"groupVersion":"autoscaling/v2","version":"v2"},{"groupVersion":"autoscaling/v1","version":"v1"}],"preferredVersion":{"groupVersion":"autoscaling/v2","version":"v2"}}"#),
        "{groups}"
    );
}

/// The Python `kubernetes` client: its typed models read the legacy documents (rejecting a
/// missing `singularName`, `namespaced`, `kind` or `verbs`), its DynamicClient discovers through
/// them and then creates and lists.
const PYTHON_CLIENT: &str = r#"
import sys
from kubernetes import client, config, dynamic
config.load_kube_config(sys.argv[1])
api = client.ApiClient()
print(client.CoreApi(api).get_api_versions().versions)
groups = {g.name: g for g in client.ApisApi(api).get_api_versions().groups}
print(groups["autoscaling"].preferred_version.group_version, [v.version for v in groups["autoscaling"].versions])
pods = next(r for r in client.CoreV1Api(api).get_api_resources().resources if r.name == "pods")
print(pods.singular_name, pods.short_names, pods.categories, pods.storage_version_hash)
deploy = next(r for r in client.AppsV1Api(api).get_api_resources().resources if r.name == "deployments")
print(deploy.singular_name, deploy.short_names, deploy.categories, deploy.storage_version_hash)
dyn = dynamic.DynamicClient(api)
cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-python"}, "data": {"a": "1"}}, namespace="default")
print("from-python" in [i.metadata.name for i in cms.get(namespace="default").items])
deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
print(deployments.namespaced, deployments.short_names, deployments.categories)
"#;

fn python_client(b: Backend) {
    let c = Cluster::start(b);
    let out = Command::new("python3")
        .args(["-c", PYTHON_CLIENT])
        .arg(&c.kubeconfig)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "['v1']
autoscaling/v2 ['v2', 'v1']
pod ['po'] ['all'] xPOwRZ+Yhw8=
deployment ['deploy'] ['all'] 8aSe+NMegvE=
True
True ['deploy'] ['all']
"
    );
}

on_both_backends!(
    old_kubectl_get_apply_explain,
    raw_accept_combinations,
    legacy_documents_as_upstream,
    python_client,
);
