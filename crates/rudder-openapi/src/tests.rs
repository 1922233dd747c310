use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use http::Request;
use http_body_util::BodyExt;
use rudder_api::resources::ResourceTable;
use tower::ServiceExt;

use super::*;

fn table() -> &'static ResourceTable {
    ResourceTable::builtin().unwrap_or_else(|e| panic!("{e}"))
}

/// One service for every test: building the documents is the expensive part.
static API: LazyLock<Arc<OpenApi>> =
    LazyLock::new(|| Arc::new(OpenApi::new(table().resources().to_vec(), "v1.37.0")));

fn docs() -> &'static Documents {
    API.documents().unwrap_or_else(|e| panic!("{e}"))
}

fn doc(key: &str) -> Value {
    let d = docs()
        .group_versions
        .get(key)
        .unwrap_or_else(|| panic!("no document {key}"));
    serde_json::from_slice(&d.json).unwrap_or_else(|e| panic!("{e}"))
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// The group/versions of the table k8s-openapi has no types for (upstream stopped serving
/// them), which get no document.
const UNDESCRIBED: &[&str] = &[
    "apis/flowcontrol.apiserver.k8s.io/v1beta2",
    "apis/flowcontrol.apiserver.k8s.io/v1beta3",
    "apis/storage.k8s.io/v1beta1",
];

#[test]
fn every_served_kind_has_a_schema_and_a_patch_operation_with_field_validation() {
    let mut checked = 0;
    for r in table().resources() {
        let key = gv_key(&r.group, &r.version);
        if UNDESCRIBED.contains(&key.as_str()) {
            assert!(!docs().group_versions.contains_key(&key), "{key}");
            continue;
        }
        let d = doc(&key);
        let want = gvk(&r.group, &r.version, &r.kind);
        // The kind's schema carries its GVK (a list, on schemas).
        let schemas = d["components"]["schemas"]
            .as_object()
            .unwrap_or_else(|| panic!("{key}: no schemas"));
        let kind_schema = schemas.iter().find(|(_, s)| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|l| l.contains(&want))
        });
        let (name, s) = kind_schema.unwrap_or_else(|| panic!("{key}: no schema for {}", r.kind));
        assert!(
            s["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{name} has no description"
        );
        if r.has_verb("list") {
            let list = gvk(&r.group, &r.version, &format!("{}List", r.kind));
            assert!(
                schemas
                    .values()
                    .any(|s| s["x-kubernetes-group-version-kind"]
                        .as_array()
                        .is_some_and(|l| l.contains(&list))),
                "{key}: no list schema for {}",
                r.kind
            );
        }
        // Every operation on the resource names the kind (a single object on operations), and
        // PATCH lists fieldValidation: what kubectl's field-validation check looks for.
        let prefix = paths::api_prefix(&r.group, &r.version);
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        if r.has_verb("patch") {
            let patch = &d["paths"][&item]["patch"];
            assert_eq!(patch["x-kubernetes-group-version-kind"], want, "{item}");
            assert_eq!(patch["x-kubernetes-action"], "patch");
            let params: Vec<&str> = patch["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{item}: no parameters"))
                .iter()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert_eq!(
                params,
                ["dryRun", "fieldManager", "fieldValidation", "force"],
                "{item}"
            );
            let content = patch["requestBody"]["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{item}: no request body"));
            for t in [
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ] {
                assert!(content.contains_key(t), "{item}: {t}");
            }
            checked += 1;
        }
        if r.has_verb("get") {
            assert_eq!(
                d["paths"][&item]["get"]["x-kubernetes-group-version-kind"], want,
                "{item}"
            );
        }
    }
    assert!(checked >= 45, "{checked}");
}

#[test]
fn container_ports_carry_upstream_list_semantics() {
    let d = doc("api/v1");
    let ports = &schema(&d, "io.k8s.api.core.v1.Container")["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-list-type"], "map");
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(ports["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        ports["items"],
        json!({"$ref": "#/components/schemas/io.k8s.api.core.v1.ContainerPort"})
    );
    let containers = &schema(&d, "io.k8s.api.core.v1.PodSpec")["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let volumes = &schema(&d, "io.k8s.api.core.v1.PodSpec")["properties"]["volumes"];
    assert_eq!(volumes["x-kubernetes-patch-strategy"], "merge,retainKeys");
    let node_selector = &schema(&d, "io.k8s.api.core.v1.PodSpec")["properties"]["nodeSelector"];
    assert_eq!(node_selector["x-kubernetes-map-type"], "atomic");
    let finalizers =
        &schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-list-type"], "set");
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(
        schema(&d, "io.k8s.api.core.v1.ObjectFieldSelector")["x-kubernetes-map-type"],
        "atomic"
    );
}

#[test]
fn schemas_have_upstream_shapes() {
    let d = doc("apis/apps/v1");
    let deployment = schema(&d, "io.k8s.api.apps.v1.Deployment");
    assert_eq!(
        deployment["x-kubernetes-group-version-kind"],
        json!([gvk("apps", "v1", "Deployment")])
    );
    assert_eq!(deployment["type"], "object");
    // Upstream requires neither metadata nor spec of a Deployment (k8s-openapi does).
    assert!(
        deployment.get("required").is_none(),
        "{}",
        deployment["required"]
    );
    assert_eq!(
        schema(
            &doc("apis/rbac.authorization.k8s.io/v1"),
            "io.k8s.api.rbac.v1.RoleBinding"
        )["required"],
        json!(["roleRef"])
    );
    assert_eq!(
        schema(&doc("api/v1"), "io.k8s.api.core.v1.Event")["required"],
        json!(["involvedObject", "metadata"])
    );
    assert_eq!(
        schema(&doc("apis/events.k8s.io/v1"), "io.k8s.api.events.v1.Event")["required"],
        json!(["eventTime"])
    );
    // A described reference is `allOf: [{$ref}]` beside the description.
    let spec = &deployment["properties"]["spec"];
    assert_eq!(
        spec["allOf"],
        json!([{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}])
    );
    assert!(spec["description"].is_string());
    assert!(spec.get("$ref").is_none());
    let ds = schema(&d, "io.k8s.api.apps.v1.DeploymentSpec");
    assert_eq!(ds["required"], json!(["selector", "template"]));
    assert_eq!(ds["properties"]["replicas"]["format"], "int32");
    assert_eq!(
        ds["properties"]["strategy"]["x-kubernetes-patch-strategy"],
        "retainKeys"
    );
    assert_eq!(
        schema(&d, "io.k8s.apimachinery.pkg.util.intstr.IntOrString")["x-kubernetes-int-or-string"],
        true
    );
    assert_eq!(
        schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.Time")["format"],
        "date-time"
    );
    assert_eq!(
        schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")["x-kubernetes-map-type"],
        "atomic"
    );
    // Subresource kinds from other groups, and the generic kinds.
    assert_eq!(
        schema(&d, "io.k8s.api.autoscaling.v1.Scale")["x-kubernetes-group-version-kind"],
        json!([gvk("autoscaling", "v1", "Scale")])
    );
    let delete_options = schema(&d, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
    let gvks = delete_options["x-kubernetes-group-version-kind"]
        .as_array()
        .unwrap_or_else(|| panic!("no DeleteOptions GVKs"));
    assert!(gvks.contains(&gvk("", "v1", "DeleteOptions")));
    assert!(gvks.contains(&gvk("apps", "v1", "DeleteOptions")));
    let list = schema(&d, "io.k8s.api.apps.v1.DeploymentList");
    assert_eq!(
        list["properties"]["items"]["items"],
        json!({"$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"})
    );
    let secret = doc("api/v1");
    assert_eq!(
        schema(&secret, "io.k8s.api.core.v1.Secret")["properties"]["data"]["additionalProperties"]
            ["format"],
        "byte"
    );
}

fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(o) => {
            out.push(o);
            o.values().for_each(|x| walk(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
        _ => {}
    }
}

#[test]
fn references_resolve_and_have_no_siblings() {
    for (key, d) in &docs().group_versions {
        let v: Value = serde_json::from_slice(&d.json).unwrap_or_else(|e| panic!("{e}"));
        let schemas = v["components"]["schemas"]
            .as_object()
            .unwrap_or_else(|| panic!("{key}"));
        let mut objects = Vec::new();
        walk(&v, &mut objects);
        for o in objects {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                assert_eq!(o.len(), 1, "{key}: $ref with siblings: {o:?}");
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("{key}: {r}"));
                assert!(schemas.contains_key(name), "{key}: dangling {r}");
            }
        }
        assert_eq!(v["openapi"], "3.0.0");
    }
}

#[test]
fn operations_follow_upstream_naming() {
    let core = doc("api/v1");
    let p = &core["paths"];
    let cm = &p["/api/v1/namespaces/{namespace}/configmaps/{name}"];
    assert_eq!(cm["get"]["operationId"], "readCoreV1NamespacedConfigMap");
    assert_eq!(cm["put"]["operationId"], "replaceCoreV1NamespacedConfigMap");
    assert_eq!(cm["patch"]["operationId"], "patchCoreV1NamespacedConfigMap");
    assert_eq!(
        cm["delete"]["operationId"],
        "deleteCoreV1NamespacedConfigMap"
    );
    let names: Vec<&str> = cm["parameters"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["name", "namespace", "pretty"]);
    let cms = &p["/api/v1/namespaces/{namespace}/configmaps"];
    assert_eq!(cms["get"]["operationId"], "listCoreV1NamespacedConfigMap");
    assert_eq!(cms["get"]["x-kubernetes-action"], "list");
    let list_params: BTreeSet<&str> = cms["get"]["parameters"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    for want in [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
        "allowWatchBookmarks",
    ] {
        assert!(list_params.contains(want), "{want}");
    }
    assert_eq!(
        cms["post"]["operationId"],
        "createCoreV1NamespacedConfigMap"
    );
    assert_eq!(
        cms["delete"]["operationId"],
        "deleteCoreV1CollectionNamespacedConfigMap"
    );
    assert_eq!(cms["delete"]["x-kubernetes-action"], "deletecollection");
    assert_eq!(
        p["/api/v1/configmaps"]["get"]["operationId"],
        "listCoreV1ConfigMapForAllNamespaces"
    );
    assert_eq!(
        p["/api/v1/watch/namespaces/{namespace}/configmaps/{name}"]["get"]["x-kubernetes-action"],
        "watch"
    );
    assert_eq!(
        p["/api/v1/nodes/{name}"]["get"]["operationId"],
        "readCoreV1Node"
    );
    assert_eq!(
        p["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"],
        "replaceCoreV1NamespaceFinalize"
    );
    let pod = "/api/v1/namespaces/{namespace}/pods/{name}";
    assert_eq!(
        p[format!("{pod}/status")]["patch"]["operationId"],
        "patchCoreV1NamespacedPodStatus"
    );
    assert_eq!(
        p[format!("{pod}/binding")]["post"]["operationId"],
        "createCoreV1NamespacedPodBinding"
    );
    let eviction = &p[format!("{pod}/eviction")]["post"];
    assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"],
        gvk("policy", "v1", "Eviction")
    );
    assert_eq!(
        eviction["requestBody"]["content"]["*/*"]["schema"],
        json!({"$ref": "#/components/schemas/io.k8s.api.policy.v1.Eviction"})
    );
    let exec = &p[format!("{pod}/exec")];
    assert_eq!(
        exec["get"]["operationId"],
        "connectCoreV1GetNamespacedPodExec"
    );
    assert_eq!(exec["post"]["x-kubernetes-action"], "connect");
    assert_eq!(
        p[format!("{pod}/log")]["get"]["operationId"],
        "readCoreV1NamespacedPodLog"
    );
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"]["operationId"],
        "createCoreV1NamespacedServiceAccountToken"
    );
    let apps = doc("apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["get"]["operationId"],
        "readAppsV1NamespacedDeploymentScale"
    );
    assert_eq!(
        scale["get"]["x-kubernetes-group-version-kind"],
        gvk("autoscaling", "v1", "Scale")
    );
    assert_eq!(
        apps["paths"]["/apis/apps/v1/"]["get"]["operationId"],
        "getAppsV1APIResources"
    );
    let rbac = doc("apis/rbac.authorization.k8s.io/v1");
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["get"]
            ["operationId"],
        "readRbacAuthorizationV1ClusterRole"
    );
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["get"]["tags"],
        json!(["rbacAuthorization_v1"])
    );
}

#[test]
fn the_index_names_every_document_by_its_hash() {
    let root: Value = serde_json::from_slice(&docs().root.json).unwrap_or_else(|e| panic!("{e}"));
    let paths = root["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths"));
    assert_eq!(paths.len(), docs().group_versions.len());
    for want in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/autoscaling/v2",
    ] {
        assert!(paths.contains_key(want), "{want}");
    }
    for (key, d) in &docs().group_versions {
        assert_eq!(d.hash.len(), 128);
        assert!(d
            .hash
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
        assert_eq!(d.hash, sha512_hex(&d.json));
        assert_eq!(
            paths[key]["serverRelativeURL"],
            format!("/openapi/v3/{key}?hash={}", d.hash)
        );
    }
    // SHA-512 test vector ("abc", FIPS 180-2).
    assert!(sha512_hex(b"abc").starts_with("DDAF35A193617ABACC417349AE204131"));
}

#[test]
fn semantics_rows_match_the_generated_schemas() {
    // Rows for fields k8s-openapi's 1.37 types do not have (the table is from upstream master).
    let d = doc("api/v1");
    let mut schemas = d["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let rules = semantics::rules().unwrap_or_else(|e| panic!("{e}"));
    let unmatched: Vec<String> = semantics::apply(&mut schemas, rules)
        .iter()
        .map(|r| format!("{}.{}", r.schema, r.field.as_deref().unwrap_or("")))
        .collect();
    assert!(unmatched.len() <= 3, "{unmatched:?}");
}

async fn send(uri: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    let app: Router = router(API.clone());
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Body::empty()).unwrap_or_else(|e| panic!("{e}"));
    let resp = app.oneshot(req).await.unwrap_or_else(|e| match e {});
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (parts.status, parts.headers, body)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[tokio::test]
async fn http_caching_as_upstream() {
    let (code, h, body) = send("/openapi/v3", &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(header(&h, "cache-control"), "no-cache, private");
    let root_etag = header(&h, "etag").to_owned();
    assert_eq!(root_etag, format!("\"{}\"", sha512_hex(&body)));
    let (code, _, body) = send("/openapi/v3", &[("if-none-match", &root_etag)]).await;
    assert_eq!((code, body.len()), (StatusCode::NOT_MODIFIED, 0));

    let apps = &docs().group_versions["apis/apps/v1"];
    let url = format!("/openapi/v3/apis/apps/v1?hash={}&timeout=32s", apps.hash);
    let (code, h, body) = send(&url, &[("accept", "application/json")]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body, apps.json);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(header(&h, "cache-control"), "public, immutable");
    assert_eq!(header(&h, "etag"), format!("\"{}\"", apps.hash));
    assert_eq!(header(&h, "vary"), "Accept");
    let expires =
        httpdate::parse_http_date(header(&h, "expires")).unwrap_or_else(|e| panic!("expires: {e}"));
    assert!(expires > SystemTime::now() + Duration::from_secs(300 * 24 * 3600));
    let (code, _, _) = send(&url, &[("if-none-match", &format!("\"{}\"", apps.hash))]).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);

    // A stale hash is redirected to the current document.
    let (code, h, _) = send("/openapi/v3/apis/apps/v1?hash=ABC", &[]).await;
    assert_eq!(code, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        header(&h, "location"),
        format!("/openapi/v3/apis/apps/v1?hash={}", apps.hash)
    );

    // Unhashed: revalidate every time.
    let (code, h, _) = send("/openapi/v3/api/v1", &[]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(header(&h, "cache-control"), "no-cache, private");
    assert_eq!(
        header(&h, "etag"),
        format!("\"{}\"", docs().group_versions["api/v1"].hash)
    );

    let (code, _, _) = send("/openapi/v3/apis/nope/v1", &[]).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) = send(
        "/openapi/v3/api/v1",
        &[(
            "accept",
            "application/com.github.proto-openapi.spec.v3.v1.0+protobuf",
        )],
    )
    .await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
}

// ---- /openapi/v2 ----

fn v2_doc() -> Value {
    serde_json::from_slice(&docs().v2.json).unwrap_or_else(|e| panic!("{e}"))
}

/// Every `$ref` in `v`, with the JSON path where it is.
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" && x.is_string() {
                    out.push((at.to_owned(), x.as_str().unwrap_or_default().to_owned()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn v2_has_a_definition_for_every_served_kind_and_no_dangling_ref() {
    let d = v2_doc();
    assert_eq!(d["swagger"], "2.0");
    assert_eq!(d["info"]["version"], "v1.37.0");
    assert_eq!(d["securityDefinitions"]["BearerToken"]["type"], "apiKey");
    let defs = d["definitions"]
        .as_object()
        .unwrap_or_else(|| panic!("no definitions"));
    let paths = d["paths"].as_object().unwrap_or_else(|| panic!("no paths"));
    for r in table().resources() {
        if UNDESCRIBED.contains(&gv_key(&r.group, &r.version).as_str()) {
            continue;
        }
        let want = gvk(&r.group, &r.version, &r.kind);
        assert!(
            defs.values().any(|s| s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|l| l.contains(&want))),
            "no v2 definition for {want}"
        );
    }
    // Every v3 path and schema is there.
    let mut v3_paths = BTreeSet::new();
    let mut v3_schemas = BTreeSet::new();
    for key in docs().group_versions.keys() {
        let v3 = doc(key);
        v3_paths.extend(
            v3["paths"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
        v3_schemas.extend(
            v3["components"]["schemas"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
    }
    assert_eq!(paths.keys().cloned().collect::<BTreeSet<_>>(), v3_paths);
    assert_eq!(defs.keys().cloned().collect::<BTreeSet<_>>(), v3_schemas);

    let mut all = Vec::new();
    refs(&d, "", &mut all);
    assert!(all.len() > 1000, "{}", all.len());
    for (at, r) in &all {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("{at}: {r} is not a v2 reference"));
        assert!(defs.contains_key(name), "{at}: dangling {r}");
    }
    let text = String::from_utf8_lossy(&docs().v2.json);
    // (JSONSchemaProps has fields named `nullable`, `oneOf` and `anyOf`.)
    for v3_only in [
        "\"requestBody\"",
        "#/components/",
        "\"allOf\":[{\"$ref\":\"#/definitions/io.k8s.api",
    ] {
        assert!(!text.contains(v3_only), "{v3_only} in /openapi/v2");
    }

    // A reference with siblings is a plain `$ref` again.
    let spec = &defs["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
    assert_eq!(
        spec["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(spec.get("allOf").is_none(), "{spec}");

    // v2 parameter shapes.
    let patch = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    let params = patch["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{patch}"));
    let body = params
        .iter()
        .find(|p| p["in"] == "body")
        .unwrap_or_else(|| panic!("no body parameter"));
    assert_eq!(
        body["schema"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    );
    assert_eq!(body["required"], true);
    let fv = params
        .iter()
        .find(|p| p["name"] == "fieldValidation")
        .unwrap_or_else(|| panic!("no fieldValidation"));
    assert_eq!(
        (&fv["in"], &fv["type"]),
        (&json!("query"), &json!("string"))
    );
    assert!(fv.get("schema").is_none());
    assert!(patch["consumes"]
        .as_array()
        .is_some_and(|c| c.contains(&json!("application/strategic-merge-patch+json"))));
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        gvk("apps", "v1", "Deployment")
    );
    assert_eq!(
        patch["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.Deployment"
    );
}

/// A minimal protobuf reader: the fields of one message, as (number, wire type, payload);
/// varints and fixed64 are returned as their bytes.
fn fields(mut b: &[u8]) -> Vec<(u32, u8, &[u8])> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b
                .split_first()
                .unwrap_or_else(|| panic!("truncated varint"));
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let (field, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let payload: &[u8] = match wire {
            0 => {
                let start = b;
                varint(&mut b);
                &start[..start.len() - b.len()]
            }
            1 => {
                let (p, rest) = b.split_at(8);
                b = rest;
                p
            }
            2 => {
                let len = varint(&mut b) as usize;
                let (p, rest) = b.split_at(len);
                b = rest;
                p
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((field, wire, payload));
    }
    out
}

fn field<'a>(msg: &[(u32, u8, &'a [u8])], n: u32) -> Vec<&'a [u8]> {
    msg.iter()
        .filter(|(f, _, _)| *f == n)
        .map(|(_, _, p)| *p)
        .collect()
}

fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn v2_protobuf_decodes_to_the_json_document() {
    let json = v2_doc();
    let doc = fields(&docs().v2_protobuf.json);
    assert_eq!(text(field(&doc, 1)[0]), "2.0");
    let info = fields(field(&doc, 2)[0]);
    assert_eq!(text(field(&info, 2)[0]), "v1.37.0");

    // Paths { repeated NamedPathItem path = 2 }
    let paths = fields(field(&doc, 8)[0]);
    let named: Vec<_> = field(&paths, 2).into_iter().map(fields).collect();
    assert_eq!(named.len(), json["paths"].as_object().map_or(0, Map::len));
    let deploy = named
        .iter()
        .find(|n| text(field(n, 1)[0]) == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .unwrap_or_else(|| panic!("no deployment path"));
    let item = fields(field(deploy, 2)[0]);
    let patch = fields(field(&item, 8)[0]);
    // vendor_extension 13: NamedAny { name, Any { yaml } }
    let ext: Vec<_> = field(&patch, 13).into_iter().map(fields).collect();
    let gvk_ext = ext
        .iter()
        .find(|e| text(field(e, 1)[0]) == "x-kubernetes-group-version-kind")
        .unwrap_or_else(|| panic!("no gvk extension"));
    let yaml = text(field(&fields(field(gvk_ext, 2)[0]), 2)[0]);
    let parsed: Value = serde_json::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed, gvk("apps", "v1", "Deployment"));
    // parameters 8: the body parameter (ParametersItem.parameter.body_parameter) and query ones.
    let params: Vec<_> = field(&patch, 8)
        .into_iter()
        .map(|p| fields(field(&fields(p), 1)[0]))
        .collect();
    assert!(
        params.iter().any(|p| !field(p, 1).is_empty()),
        "no body parameter"
    );
    assert!(params.iter().any(|p| {
        field(p, 2).first().is_some_and(|nb| {
            field(&fields(nb), 3)
                .first()
                .is_some_and(|q| text(field(&fields(q), 4)[0]) == "fieldValidation")
        })
    }));

    // Definitions { repeated NamedSchema additional_properties = 1 }
    let defs: Vec<_> = field(&fields(field(&doc, 9)[0]), 1)
        .into_iter()
        .map(fields)
        .collect();
    assert_eq!(
        defs.len(),
        json["definitions"].as_object().map_or(0, Map::len)
    );
    let deployment = defs
        .iter()
        .find(|n| text(field(n, 1)[0]) == "io.k8s.api.apps.v1.Deployment")
        .map(|n| fields(field(n, 2)[0]))
        .unwrap_or_else(|| panic!("no Deployment definition"));
    // type 22: TypeItem { value = ["object"] }
    assert_eq!(
        text(field(&fields(field(&deployment, 22)[0]), 1)[0]),
        "object"
    );
    // properties 25 → spec → $ref 1
    let props: Vec<_> = field(&fields(field(&deployment, 25)[0]), 1)
        .into_iter()
        .map(fields)
        .collect();
    let spec = props
        .iter()
        .find(|p| text(field(p, 1)[0]) == "spec")
        .map(|p| fields(field(p, 2)[0]))
        .unwrap_or_else(|| panic!("no spec property"));
    assert_eq!(
        text(field(&spec, 1)[0]),
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    assert!(!field(&deployment, 31).is_empty(), "no vendor extensions");
    // security_definitions 13 → BearerToken → api_key_security 2 → type 1
    let sec = fields(field(&fields(field(&doc, 13)[0]), 1)[0]);
    assert_eq!(text(field(&sec, 1)[0]), "BearerToken");
    let api_key = fields(field(&fields(field(&sec, 2)[0]), 2)[0]);
    assert_eq!(text(field(&api_key, 1)[0]), "apiKey");
}

#[tokio::test]
async fn v2_http_negotiation_and_caching() {
    let (code, h, body) = send("/openapi/v2", &[("accept", V2_PROTOBUF_ACCEPT)]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), V2_PROTOBUF);
    assert_eq!(body, docs().v2_protobuf.json);
    let etag = header(&h, "etag").to_owned();
    assert_eq!(etag, format!("\"{}\"", sha512_hex(&body)));
    assert_eq!(header(&h, "cache-control"), "no-cache, private");
    assert_eq!(header(&h, "vary"), "Accept");
    assert!(!header(&h, "last-modified").is_empty());
    let (code, _, body) = send(
        "/openapi/v2",
        &[("accept", V2_PROTOBUF), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!((code, body.len()), (StatusCode::NOT_MODIFIED, 0));

    let (code, h, body) = send("/openapi/v2", &[("accept", "application/json")]).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(body, docs().v2.json);
    assert_ne!(header(&h, "etag"), etag);
    let (code, _, _) = send("/openapi/v2", &[]).await;
    assert_eq!(code, StatusCode::OK);

    let (code, _, _) = send("/openapi/v2", &[("accept", "application/yaml")]).await;
    assert_eq!(code, StatusCode::NOT_ACCEPTABLE);
}

#[test]
fn a_field_named_ref_is_not_a_reference() {
    let d = doc("apis/apiextensions.k8s.io/v1");
    let props = &schema(
        &d,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
    )["properties"];
    assert_eq!(props["$ref"], json!({"type": "string"}));
    assert_eq!(props["allOf"]["type"], "array");
    let v2 = v2_doc();
    let props = &v2["definitions"]
        ["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]["properties"];
    assert_eq!(props["$ref"], json!({"type": "string"}));
    assert_eq!(props["allOf"]["type"], "array");
}

fn widget(version: &str, kind: &str, plural: &str) -> CustomKind {
    let verbs = [
        "create", "delete", "get", "list", "patch", "update", "watch",
    ];
    CustomKind {
        info: ResourceInfo {
            group: "demo.rudder.dev".into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced: true,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            subresources: Vec::new(),
            columns: Vec::new(),
        },
        schema: json!({
            "type": "object",
            "description": "A thing.",
            "properties": {"spec": {"type": "object", "properties": {
                "size": {"type": "integer", "description": "How big."}}}},
        }),
    }
}

#[test]
fn custom_resources_get_a_document_per_group_version_rebuilt_when_they_change() {
    let state = Arc::new(std::sync::Mutex::new(vec![
        widget("v1", "Widget", "widgets"),
        widget("v1", "Gadget", "gadgets"),
    ]));
    let (s1, s2) = (state.clone(), state.clone());
    let api = OpenApi::new(table().resources().to_vec(), "v1.37.0").with_custom(
        move || {
            let kinds = s1.lock().unwrap();
            kinds.iter().map(|k| k.info.plural.clone()).collect()
        },
        move || s2.lock().unwrap().clone(),
    );
    let docs = api.current().unwrap();
    let d: Value =
        serde_json::from_slice(&docs.group_versions["apis/demo.rudder.dev/v1"].json).unwrap();
    let widget = schema(&d, "dev.rudder.demo.v1.Widget");
    assert_eq!(widget["description"], "A thing.");
    assert_eq!(
        widget["properties"]["spec"]["properties"]["size"]["type"],
        "integer"
    );
    assert_eq!(widget["properties"]["kind"]["type"], "string");
    assert_eq!(
        widget["properties"]["metadata"]["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    assert!(d["components"]["schemas"]
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .is_some());
    assert_eq!(
        widget["x-kubernetes-group-version-kind"],
        json!([gvk("demo.rudder.dev", "v1", "Widget")])
    );
    let list = schema(&d, "dev.rudder.demo.v1.WidgetList");
    assert_eq!(
        list["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/dev.rudder.demo.v1.Widget"
    );
    assert!(d["components"]["schemas"]
        .get("dev.rudder.demo.v1.Gadget")
        .is_some());
    let patch =
        &d["paths"]["/apis/demo.rudder.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        gvk("demo.rudder.dev", "v1", "Widget")
    );
    assert!(patch["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "fieldValidation"));
    let root: Value = serde_json::from_slice(&docs.root.json).unwrap();
    assert!(root["paths"].get("apis/demo.rudder.dev/v1").is_some());
    assert!(root["paths"].get("apis/apps/v1").is_some());
    let v2: Value = serde_json::from_slice(&docs.v2.json).unwrap();
    assert!(v2["definitions"].get("dev.rudder.demo.v1.Widget").is_some());

    // Same key: the same documents. A change: rebuilt without the removed kinds.
    assert!(Arc::ptr_eq(&docs, &api.current().unwrap()));
    state.lock().unwrap().clear();
    let docs = api.current().unwrap();
    assert!(!docs.group_versions.contains_key("apis/demo.rudder.dev/v1"));
    let v2: Value = serde_json::from_slice(&docs.v2.json).unwrap();
    assert!(v2["definitions"].get("dev.rudder.demo.v1.Widget").is_none());
}
