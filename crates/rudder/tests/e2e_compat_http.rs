//! End to end: the HTTP edges of the API as upstream kube-apiserver (v1.37) answers them, seen
//! by real clients (kubectl, curl, wget) on both store backends: undecodable bodies, Table and
//! metadata requests the endpoint cannot serve, pretty-printed JSON for people, the OpenAPI
//! parameter texts, the request body limit, unparsable query parameters and /metrics' auth.
//! Expected texts are upstream's (apiserver `handlers/rest.go` transformDecodeError and
//! limitedReadBody, apimachinery's JSON serializer, scheme and conversion errors, negotiation,
//! `responsewriters`), not Rudder's.

mod support;

use serde_json::Value;
use support::{Backend, Cluster};

/// One curl request: status code, content type and body.
struct Reply {
    code: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The Status message, after checking the Status shape, code and reason.
    fn status(&self, code: u16, reason: &str) -> String {
        assert_eq!(self.code, code, "{}", self.body);
        assert_eq!(self.content_type, "application/json", "{}", self.body);
        let s = self.json();
        assert_eq!(s["kind"], "Status", "{}", self.body);
        assert_eq!(s["status"], "Failure", "{}", self.body);
        assert_eq!(s["code"], code, "{}", self.body);
        assert_eq!(s["reason"], reason, "{}", self.body);
        s["message"].as_str().unwrap_or_default().to_string()
    }
}

fn request(c: &Cluster, args: &[&str]) -> Reply {
    let mut all: Vec<&str> = vec!["-w", "\n%{http_code} %{content_type}"];
    all.extend_from_slice(args);
    let out = c.curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, content_type) = tail.split_once(' ').unwrap_or((tail, ""));
    Reply {
        code: code.parse().unwrap_or(0),
        content_type: content_type.to_string(),
        body: body.to_string(),
    }
}

/// An authenticated curl request as kubectl's own user agent would not be pretty-printed;
/// `extra` adds headers, method, body; `path` is under the server URL.
fn admin(c: &Cluster, extra: &[&str], path: &str) -> Reply {
    let auth = format!("Authorization: Bearer {}", c.admin_token());
    let url = format!("{}{path}", c.url());
    let mut args: Vec<&str> = vec!["-H", &auth];
    args.extend_from_slice(extra);
    args.push(&url);
    request(c, &args)
}

fn post_json(c: &Cluster, path: &str, body: &str) -> Reply {
    admin(
        c,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ],
        path,
    )
}

/// Run a Python `kubernetes` client script (`api` is a configured ApiClient) and return what it
/// prints.
fn python(c: &Cluster, body: &str) -> String {
    let script = format!(
        "import json, sys\nfrom kubernetes import client, config, dynamic\nfrom kubernetes.client.rest import ApiException\napi = config.new_client_from_config(sys.argv[1])\n{body}"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(&c.kubeconfig)
        .output()
        .expect("python3 runs (scripts/install-deps installs the kubernetes client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A JSON create refused with 400 BadRequest: its message.
fn bad_post(c: &Cluster, path: &str, body: &str) -> String {
    post_json(c, path, body).status(400, "BadRequest")
}

const SCHEME: &str = "k8s.io/kubernetes/pkg/api/legacyscheme/scheme.go:30";

/// Item 6: a body of the wrong kind, version or syntax for the URL.
fn undecodable_bodies(b: Backend) {
    let c = Cluster::start(b);
    // kubectl's own regression test: a YAML Pod posted raw (as JSON) to the namespaces.
    let pod_yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: valid-pod\nspec:\n  containers:\n  - name: c\n    image: nginx\n";
    let file = c.dir.path().join("valid-pod.yaml");
    std::fs::write(&file, pod_yaml).unwrap();
    let hex: String = pod_yaml.as_bytes()[..30]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let err = c.fails(&[
        "create",
        "--raw",
        "/api/v1/namespaces",
        "-f",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        err.trim_end(),
        format!("Error from server (BadRequest): the object provided is unrecognized (must be of type Namespace): couldn't get version/kind; json parse error: invalid character 'a' looking for beginning of value ({hex} ...)")
    );

    // The same Pod as JSON: decoded as a Pod, which does not convert to a Namespace.
    assert_eq!(
        bad_post(
            &c,
            "/api/v1/namespaces",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"valid-pod"}}"#
        ),
        r#"Pod in version "v1" cannot be handled as a Namespace: converting (v1.Pod) to (core.Namespace): unknown conversion"#
    );
    // The Python client posting a typed Pod where a Namespace belongs.
    let out = python(
        &c,
        r#"pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
try:
    dynamic.DynamicClient(api).resources.get(api_version="v1", kind="Namespace").create(body=pod)
except dynamic.exceptions.DynamicApiError as e:
    s = json.loads(e.body)
    print(e.status, e.headers["Content-Type"], s["reason"], s["message"])
"#,
    );
    assert_eq!(
        out,
        "400 application/json BadRequest Pod in version \"v1\" cannot be handled as a Namespace: converting (v1.Pod) to (core.Namespace): unknown conversion\n"
    );
    // A kind the scheme does not have (the classic lower-case typo).
    let deploy = "apiVersion: apps/v1\nkind: deployment\nmetadata:\n  name: d\nspec:\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n";
    let r = admin(
        &c,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/yaml",
            "--data-binary",
            deploy,
        ],
        "/apis/apps/v1/namespaces/default/deployments",
    );
    assert_eq!(
        r.status(400, "BadRequest"),
        format!(
            r#"deployment in version "v1" cannot be handled as a Deployment: no kind "deployment" is registered for version "apps/v1" in scheme "{SCHEME}""#
        )
    );
    // An API version the group does not have.
    assert_eq!(
        bad_post(
            &c,
            "/apis/apps/v1/namespaces/default/deployments",
            r#"{"apiVersion":"apps/v2","kind":"Deployment","metadata":{"name":"d"}}"#
        ),
        format!(
            r#"Deployment in version "v2" cannot be handled as a Deployment: no kind "Deployment" is registered for version "apps/v2" in scheme "{SCHEME}""#
        )
    );
    // The same kind from another group: it decodes, then the version check refuses it.
    assert_eq!(
        bad_post(&c, "/api/v1/namespaces/default/events", r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e"}}"#),
        "the API version in the data (events.k8s.io/v1) does not match the expected API version (v1)"
    );
    // Malformed JSON, in Go's words, with the start of the body.
    assert_eq!(
        bad_post(
            &c,
            "/api/v1/namespaces/default/configmaps",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}"#
        ),
        r#"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: unexpected end of JSON input ({"apiVersion":"v1","kind":"Con ...)"#
    );
    let r = post_json(&c, "/api/v1/namespaces/default/configmaps", "[1]");
    assert_eq!(
        r.status(400, "BadRequest"),
        r#"the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" } (5b315d)"#
    );
    // A missing kind and apiVersion come from the URL.
    let r = post_json(
        &c,
        "/api/v1/namespaces/default/configmaps",
        r#"{"metadata":{"name":"nokind"}}"#,
    );
    assert_eq!(r.code, 201, "{}", r.body);
    // Updates decode the same way.
    let r = admin(
        &c,
        &[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"nokind"}}"#,
        ],
        "/api/v1/namespaces/default/configmaps/nokind",
    );
    assert_eq!(
        r.status(400, "BadRequest"),
        r#"Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): unknown conversion"#
    );
}

/// Item 9: Tables where the storage has no table convertor, metadata of the wrong shape.
fn tables_and_metadata_refused(b: Backend) {
    let c = Cluster::start(b);
    c.ok(&["create", "deployment", "web", "--image=nginx"]);
    let table = "Accept: application/json;as=Table;v=v1;g=meta.k8s.io";
    let only = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    // A review has no table convertor: nothing acceptable, and the Status is written as
    // upstream's WriteRawJSON writes it when even the error cannot be negotiated.
    let review = |accept: &str| {
        admin(
            &c,
            &[
                "-A",
                "kubectl/v1.37.0",
                "-H",
                accept,
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}"#,
            ],
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        )
    };
    let r = review(table);
    assert_eq!(r.status(406, "NotAcceptable"), only);
    assert_eq!(
        r.body,
        format!("{{\n  \"kind\": \"Status\",\n  \"apiVersion\": \"v1\",\n  \"metadata\": {{}},\n  \"status\": \"Failure\",\n  \"message\": \"{only}\",\n  \"reason\": \"NotAcceptable\",\n  \"code\": 406\n}}")
    );
    // With JSON as a fallback the review is answered, and kubectl's own use still works.
    let r = review("Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.json()["kind"], "SelfSubjectAccessReview");
    assert_eq!(c.ok(&["auth", "can-i", "get", "pods"]).trim(), "yes");
    // pods/binding: no table convertor either.
    let r = admin(
        &c,
        &[
            "-H",
            table,
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p"},"target":{"name":"n"}}"#,
        ],
        "/api/v1/namespaces/default/pods/p/binding",
    );
    assert_eq!(r.status(406, "NotAcceptable"), only);
    // The scale subresource converts to its own Table (printScale), as kubectl shows it.
    let out = c.ok(&["get", "deployment", "web", "--subresource=scale"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "DESIRED", "AVAILABLE", "AGE"], "{out}");
    assert!(
        out.lines().nth(1).unwrap_or("").starts_with("web "),
        "{out}"
    );
    // Metadata of one object asked of a list, and a metadata list asked of one object.
    let r = admin(
        &c,
        &[
            "-H",
            "Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ],
        "/apis/apps/v1/namespaces/default/deployments",
    );
    assert_eq!(
        r.status(406, "NotAcceptable"),
        "you requested PartialObjectMetadata, but the requested object is a list (*apps.DeploymentList)"
    );
    let r = admin(
        &c,
        &[
            "-H",
            "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ],
        "/api/v1/namespaces/default",
    );
    assert_eq!(
        r.status(406, "NotAcceptable"),
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.Namespace)"
    );
    // The right shapes are served.
    let r = admin(
        &c,
        &[
            "-H",
            "Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ],
        "/apis/apps/v1/namespaces/default/deployments",
    );
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "PartialObjectMetadataList");
}

/// Item 10: indented JSON for curl, wget and browsers, and upstream's OpenAPI texts.
fn pretty_for_humans(b: Backend) {
    let c = Cluster::start(b);
    let path = "/api/v1/namespaces/default";
    // curl's own user agent: indented, as Go's json.MarshalIndent with two spaces.
    let r = admin(&c, &[], path);
    assert_eq!((r.code, r.content_type.as_str()), (200, "application/json"));
    assert!(r.body.starts_with("{\n  \""), "{}", r.body);
    assert!(
        r.body.contains("\n  \"kind\": \"Namespace\",\n"),
        "{}",
        r.body
    );
    // kubectl's: compact. `?pretty` decides over the user agent.
    let r = admin(
        &c,
        &["-A", "kubectl/v1.37.0 (linux/amd64) kubernetes/abc"],
        path,
    );
    assert!(r.body.starts_with("{\""), "{}", r.body);
    let r = admin(&c, &[], &format!("{path}?pretty=false"));
    assert!(r.body.starts_with("{\""), "{}", r.body);
    let r = admin(&c, &["-A", "python"], &format!("{path}?pretty=true"));
    assert!(r.body.starts_with("{\n  \""), "{}", r.body);
    let r = admin(&c, &["-A", "Mozilla/5.0 (X11)"], path);
    assert!(r.body.starts_with("{\n  \""), "{}", r.body);
    // Errors too.
    let r = admin(&c, &[], "/api/v1/namespaces/nope");
    assert!(
        r.body.contains("\n  \"reason\": \"NotFound\",\n"),
        "{}",
        r.body
    );
    // wget, with its own user agent.
    let out = std::process::Command::new("wget")
        .args(["-q", "-O", "-", "--ca-certificate"])
        .arg(c.dir.path().join("data/server/tls/ca.crt"))
        .arg(format!(
            "--header=Authorization: Bearer {}",
            c.admin_token()
        ))
        .arg(format!("{}{path}", c.url()))
        .output()
        .expect("wget runs (scripts/install-deps installs it)");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.starts_with("{\n  \""), "{body}");
    // /version is always indented, in upstream's field order (WriteRawJSON).
    let r = request(
        &c,
        &["-A", "kubectl/v1.37.0", &format!("{}/version", c.url())],
    );
    assert_eq!(r.code, 200);
    assert!(
        r.body
            .starts_with("{\n  \"major\": \"1\",\n  \"minor\": \"37\",\n"),
        "{}",
        r.body
    );

    // OpenAPI v3: upstream's parameter and response texts, no 401 (v3 has no common responses).
    let v3 = admin(&c, &[], "/openapi/v3/apis/apps/v1").json();
    let list = &v3["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"];
    let param = |params: &Value, name: &str| -> String {
        params
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .and_then(|p| p["description"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    for (params, name, text) in [
        (&list["parameters"], "pretty", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
        (&list["parameters"], "namespace", "object name and auth scope, such as for teams and projects"),
        (&list["get"]["parameters"], "labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        (&list["get"]["parameters"], "resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        (&list["post"]["parameters"], "dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        (&list["post"]["parameters"], "fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
    ] {
        assert_eq!(param(params, name), text, "{name}");
    }
    let item = &v3["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert!(param(&item["patch"]["parameters"], "fieldManager").ends_with(
        " This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."
    ));
    assert_eq!(param(&item["parameters"], "name"), "name of the Deployment");
    let responses = &list["post"]["responses"];
    assert_eq!(responses["200"]["description"], "OK");
    assert_eq!(responses["201"]["description"], "Created");
    assert_eq!(responses["202"]["description"], "Accepted");
    assert!(responses.get("401").is_none(), "{responses}");
    // v2: the same texts, plus the common 401.
    let v2 = admin(&c, &[], "/openapi/v2").json();
    let post = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
    assert_eq!(post["responses"]["401"]["description"], "Unauthorized");
    assert_eq!(post["responses"]["201"]["description"], "Created");
    assert_eq!(
        param(&post["parameters"], "dryRun"),
        param(&list["post"]["parameters"], "dryRun")
    );
}

/// Item 11: the 3 MiB body limit, unparsable query parameters, and who may read /metrics.
fn limits_and_parameters(b: Backend) {
    let c = Cluster::start(b);
    let too_large = "Request entity too large: limit is 3145728";
    // 64 MiB, over HTTP/1.1 (with and without `Expect: 100-continue`, and chunked) and
    // HTTP/2: always the 413 Status, never a reset connection.
    let big = c.dir.path().join("big.json");
    std::fs::write(&big, vec![b'a'; 64 << 20]).unwrap();
    let at_big = format!("@{}", big.display());
    let cm = "/api/v1/namespaces/default/configmaps";
    for extra in [
        &["--http1.1"][..],
        &["--http1.1", "-H", "Expect:"][..],
        &["--http1.1", "-H", "Transfer-Encoding: chunked"][..],
        &["--http2"][..],
    ] {
        let mut args = extra.to_vec();
        args.extend_from_slice(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &at_big,
        ]);
        let r = admin(&c, &args, cm);
        assert_eq!(
            r.status(413, "RequestEntityTooLarge"),
            too_large,
            "{extra:?}"
        );
    }
    // Just over the limit, from kubectl.
    let cm_file = c.dir.path().join("big-cm.json");
    let data = "x".repeat(3 << 20);
    std::fs::write(
        &cm_file,
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"k":"{data}"}}}}"#),
    )
    .unwrap();
    let err = c.fails(&["create", "-f", cm_file.to_str().unwrap()]);
    assert_eq!(
        err.trim_end(),
        format!(
            "Error from server (RequestEntityTooLarge): error when creating \"{}\": {too_large}",
            cm_file.display()
        )
    );
    // And from the Python client, over its own HTTP stack.
    let out = python(
        &c,
        r#"cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="huge"), data={"k": "x" * (4 << 20)})
try:
    client.CoreV1Api(api).create_namespaced_config_map("default", cm)
except ApiException as e:
    s = json.loads(e.body)
    print(e.status, s["reason"], s["message"])
cms = dynamic.DynamicClient(api).resources.get(api_version="v1", kind="ConfigMap")
try:
    cms.get(namespace="default", timeout_seconds="abc")
except dynamic.exceptions.DynamicApiError as e:
    print(e.status, json.loads(e.body)["message"])
"#,
    );
    assert_eq!(
        out,
        format!("413 RequestEntityTooLarge {too_large}\n400 strconv.ParseInt: parsing \"abc\": invalid syntax\n")
    );
    // The server still answers on new connections.
    assert_eq!(admin(&c, &[], cm).code, 200);

    // Query parameters that do not convert: upstream's ParameterCodec errors, 400.
    for (query, msg) in [
        (
            "limit=abc",
            r#"strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        (
            "timeoutSeconds=abc",
            r#"strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        (
            "watch=true&timeoutSeconds=abc",
            r#"strconv.ParseInt: parsing "abc": invalid syntax"#,
        ),
        ("limit=", r#"strconv.ParseInt: parsing "": invalid syntax"#),
        (
            "limit=99999999999999999999",
            r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
        ),
        // timeoutSeconds converts before limit.
        (
            "limit=x&timeoutSeconds=y",
            r#"strconv.ParseInt: parsing "y": invalid syntax"#,
        ),
        (
            "resourceVersion=abc",
            r#"invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax"#,
        ),
    ] {
        let r = admin(&c, &["-A", "kubectl/v1.37.0"], &format!("{cm}?{query}"));
        assert_eq!(r.status(400, "BadRequest"), msg, "{query}");
    }
    c.ok(&["create", "configmap", "keep"]);
    let r = admin(
        &c,
        &["-X", "DELETE"],
        &format!("{cm}/keep?gracePeriodSeconds=soon"),
    );
    assert_eq!(
        r.status(400, "BadRequest"),
        r#"strconv.ParseInt: parsing "soon": invalid syntax"#
    );
    // kubectl passes the server's text through.
    let err = c.fails(&["get", "--raw", &format!("{cm}?limit=abc")]);
    assert!(
        err.contains(r#"strconv.ParseInt: parsing \"abc\": invalid syntax"#)
            || err.contains(r#"strconv.ParseInt: parsing "abc": invalid syntax"#),
        "{err}"
    );

    // /metrics needs credentials (anonymous requests are not authenticated here, as with
    // upstream's --anonymous-auth=false); the health checks and /version do not.
    let anon = request(&c, &[&format!("{}/metrics", c.url())]);
    assert_eq!(anon.status(401, "Unauthorized"), "Unauthorized");
    let m = admin(&c, &[], "/metrics");
    assert_eq!(m.code, 200);
    assert!(m.body.contains("apiserver_request_total{"), "{}", m.body);
    for path in ["/healthz", "/livez", "/readyz", "/version"] {
        let r = request(&c, &[&format!("{}{path}", c.url())]);
        assert_eq!(r.code, 200, "{path}: {}", r.body);
    }
}

on_both_backends!(
    undecodable_bodies,
    tables_and_metadata_refused,
    pretty_for_humans,
    limits_and_parameters,
);
