//! `paths` of one group/version document, from the resource table: for every resource its
//! collection and item paths (and the cluster-wide list of a namespaced one), the deprecated
//! `/watch/` paths, and one path per subresource; each operation with upstream's
//! `operationId` (`readAppsV1NamespacedDeployment`), `x-kubernetes-action`,
//! `x-kubernetes-group-version-kind`, query parameters, request body and responses.
//!
//! kubectl reads this part for two things: `explain` finds a resource's kind through the
//! operations' GVK, and `apply`/`create -f`/`replace -f`/`edit` check that the PATCH operation
//! of the kind has a `fieldValidation` parameter before sending `fieldValidation=Strict`.

use rudder_api::resources::{ResourceInfo, SubresourceInfo};
use serde_json::{json, Map, Value};

use crate::schema::{schema_ref, Components, Gvk};

/// Response media types of single objects, lists and watches (what the server can encode).
const OBJECT_TYPES: &[&str] = &["application/json", "application/yaml"];
const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/json;stream=watch",
    "application/yaml",
];
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const LOG_TYPES: &[&str] = &["application/json", "application/yaml", "text/plain"];

/// `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn api_prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The group part of operation ids (`CoreV1`, `AppsV1`, `RbacAuthorizationV1`,
/// `FlowcontrolApiserverV1`): the group without `.k8s.io`, each dot-separated part capitalised.
fn id_prefix(group: &str, version: &str) -> String {
    let mut out: String = group_words(group).iter().map(|w| capitalize(w)).collect();
    out.push_str(&capitalize(version));
    out
}

/// The operations' tag (`core_v1`, `apps_v1`, `rbacAuthorization_v1`).
fn tag(group: &str, version: &str) -> String {
    let words = group_words(group);
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i == 0 {
            out.push_str(w);
        } else {
            out.push_str(&capitalize(w));
        }
    }
    format!("{out}_{version}")
}

fn group_words(group: &str) -> Vec<&str> {
    if group.is_empty() {
        return vec!["core"];
    }
    group
        .strip_suffix(".k8s.io")
        .unwrap_or(group)
        .split('.')
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn param(name: &str, location: &str, ty: &str, description: &str) -> Value {
    let mut p = json!({
        "description": description,
        "in": location,
        "name": name,
        "schema": {"type": ty, "uniqueItems": true},
    });
    if location == "path" {
        p["required"] = Value::Bool(true);
    }
    p
}

fn query(name: &str) -> Value {
    let (ty, description) = match name {
        "pretty" => ("string", "If 'true', the output is pretty printed."),
        "dryRun" => (
            "string",
            "When present, modifications are not persisted. The only valid value is All: every dry-run stage is processed. An unknown value is an error.",
        ),
        "fieldManager" => (
            "string",
            "The name of the actor or entity making these changes: at most 128 printable characters.",
        ),
        "fieldValidation" => (
            "string",
            "How the server treats unknown or duplicate fields in the request object (POST, PUT, PATCH). Ignore drops them silently (the only behaviour before v1.23). Warn drops them and returns one warning header per dropped or duplicate field; the request still succeeds (the default since v1.23). Strict fails the request with BadRequest, listing every unknown and duplicate field.",
        ),
        "force" => (
            "boolean",
            "Force takes over fields other managers own when applying. Must be unset for patches other than apply patches.",
        ),
        "allowWatchBookmarks" => (
            "boolean",
            "Ask for BOOKMARK watch events. The server sends them at its discretion; clients must not rely on their timing or number. Ignored when the request is not a watch.",
        ),
        "continue" => (
            "string",
            "The continue token of the previous page of a paginated list, to get the next page of the same query. An expired token is answered 410 Gone (with a token for an inconsistent continuation); restart the list without it for a consistent one. Not supported with watch: start a watch from the list's resourceVersion instead.",
        ),
        "fieldSelector" => (
            "string",
            "A selector restricting the returned objects by their fields. Defaults to everything.",
        ),
        "labelSelector" => (
            "string",
            "A selector restricting the returned objects by their labels. Defaults to everything.",
        ),
        "limit" => (
            "integer",
            "The maximum number of objects to return. When more exist, the list metadata carries a continue token for the next page; an empty token means the list is complete. Every page of one list comes from the same consistent snapshot. The server may return fewer objects than asked, and servers that do not paginate return them all. Not supported with watch.",
        ),
        "resourceVersion" => (
            "string",
            "A constraint on the resource versions the request may be served from; see https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions. Defaults to unset.",
        ),
        "resourceVersionMatch" => (
            "string",
            "How resourceVersion applies to a list call (Exact or NotOlderThan); recommended whenever resourceVersion is set. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions. Defaults to unset.",
        ),
        "sendInitialEvents" => (
            "boolean",
            "With watch=true: start the stream with synthetic ADDED events for the current objects, then a BOOKMARK annotated \"k8s.io/initial-events-end\": \"true\" carrying the resourceVersion of that state, then the changes after it. Requires resourceVersionMatch=NotOlderThan (data at least as new as resourceVersion; unset resourceVersion means a consistent read). Defaults to true for resourceVersion \"\" or \"0\" and to false otherwise.",
        ),
        "timeoutSeconds" => (
            "integer",
            "Timeout of the list or watch call, whatever the activity.",
        ),
        "watch" => (
            "boolean",
            "Watch for changes to the described resources and return them as a stream of ADDED, MODIFIED and DELETED events. Specify resourceVersion.",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "Seconds before the object is deleted: a non-negative integer, zero meaning immediately. Unset means the kind's default grace period.",
        ),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => (
            "boolean",
            "Delete the object even when it cannot be read from storage. Unsafe: finalizers and preconditions are skipped. Defaults to false.",
        ),
        "orphanDependents" => (
            "boolean",
            "Deprecated: use propagationPolicy. Whether the dependents are orphaned (the \"orphan\" finalizer is added to or removed from the object). Not together with propagationPolicy.",
        ),
        "propagationPolicy" => (
            "string",
            "Whether and how garbage collection happens: Orphan leaves the dependents, Background lets the garbage collector delete them in the background, Foreground deletes them before the object. Defaults to what the object's finalizers and the kind say.",
        ),
        // Log options.
        "container" => (
            "string",
            "The container, when the pod has more than one.",
        ),
        "follow" => ("boolean", "Follow the log stream. Defaults to false."),
        "limitBytes" => (
            "integer",
            "Stop the log output after this many bytes.",
        ),
        "previous" => (
            "boolean",
            "The log of the previous, terminated instance of the container. Defaults to false.",
        ),
        "sinceSeconds" => (
            "integer",
            "Only the log lines newer than this many seconds.",
        ),
        "sinceTime" => (
            "string",
            "Only the log lines from this RFC 3339 time on.",
        ),
        "tailLines" => (
            "integer",
            "Only this many lines from the end of the log.",
        ),
        "timestamps" => (
            "boolean",
            "Prefix every line with its RFC 3339 timestamp. Defaults to false.",
        ),
        // Connect options.
        "command" => ("string", "The command to run, one argument per parameter."),
        "stdin" => ("boolean", "Attach the container's standard input."),
        "stdout" => ("boolean", "Attach the container's standard output."),
        "stderr" => ("boolean", "Attach the container's standard error."),
        "tty" => ("boolean", "Allocate a terminal."),
        "ports" => ("integer", "The ports to forward."),
        "path" => ("string", "The path of the proxied request."),
        _ => ("string", ""),
    };
    param(name, "query", ty, description)
}

fn queries(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| query(n)).collect()
}

const LIST_PARAMS: &[&str] = &[
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETE_COLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];
const LOG_PARAMS: &[&str] = &[
    "container",
    "follow",
    "limitBytes",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "timestamps",
];

fn patch_params() -> Vec<Value> {
    let mut p = queries(&["dryRun", "fieldManager", "fieldValidation", "force"]);
    p[1]["description"] = Value::String(
        "The name of the actor or entity making these changes: at most 128 printable characters. Required for apply patches (application/apply-patch+yaml), optional for JSON, merge and strategic merge patches.".to_owned(),
    );
    p
}

fn connect_params(sub: &str) -> Vec<Value> {
    match sub {
        "exec" => queries(&["command", "container", "stderr", "stdin", "stdout", "tty"]),
        "attach" => queries(&["container", "stderr", "stdin", "stdout", "tty"]),
        "portforward" => queries(&["ports"]),
        "proxy" => queries(&["path"]),
        _ => Vec::new(),
    }
}

fn content(schema: &Value, media_types: &[&str]) -> Value {
    Value::Object(
        media_types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": schema })))
            .collect(),
    )
}

fn responses(codes: &[u16], schema: &Value, media_types: &[&str]) -> Value {
    let mut out = Map::new();
    for code in codes {
        let description = match code {
            200 => "OK",
            201 => "Created",
            202 => "Accepted",
            _ => "",
        };
        out.insert(
            code.to_string(),
            json!({"content": content(schema, media_types), "description": description}),
        );
    }
    out.insert("401".to_owned(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// What varies between operations.
struct Op<'a> {
    description: String,
    id: String,
    /// `x-kubernetes-action`; empty for none.
    action: &'a str,
    gvk: Option<&'a Gvk>,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

/// Builds the paths of one group/version.
struct Builder<'a> {
    prefix: String,
    id: String,
    tag: String,
    c: &'a Components,
    paths: Map<String, Value>,
}

impl Builder<'_> {
    fn add(&mut self, path: &str, path_params: &[Value], method: &str, op: Op<'_>) {
        let mut o = json!({
            "description": op.description,
            "operationId": op.id,
            "responses": op.responses,
            "tags": [self.tag],
        });
        if !op.action.is_empty() {
            o["x-kubernetes-action"] = Value::from(op.action);
        }
        if let Some(gvk) = op.gvk {
            o["x-kubernetes-group-version-kind"] = gvk.to_json();
        }
        if !op.params.is_empty() {
            o["parameters"] = Value::Array(op.params);
        }
        if let Some(body) = op.body {
            o["requestBody"] = body;
        }
        let item = self
            .paths
            .entry(path.to_owned())
            .or_insert_with(|| json!({}));
        if !path_params.is_empty() {
            item["parameters"] = Value::Array(path_params.to_vec());
        }
        item[method] = o;
    }

    fn resource(&mut self, r: &ResourceInfo) {
        let gvk = Gvk::new(&r.group, &r.version, &r.kind);
        let kind = r.kind.as_str();
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let id = self.id.clone();
        let obj = self.c.kind_ref(&gvk);
        let list = self.c.list_ref(&gvk);
        let status = schema_ref(&self.c.status);
        let watch_event = schema_ref(&self.c.watch_event);
        let body =
            |schema: &Value| json!({"content": {"*/*": {"schema": schema}}, "required": true});
        let delete_body =
            json!({"content": {"*/*": {"schema": schema_ref(&self.c.delete_options)}}});
        let patch_body = json!({
            "content": content(&schema_ref(&self.c.patch), PATCH_TYPES),
            "required": true,
        });

        let namespace = param(
            "namespace",
            "path",
            "string",
            "The namespace of the object: its name and authorization scope.",
        );
        let name = param("name", "path", "string", &format!("name of the {kind}"));
        let pretty = query("pretty");
        let (base, collection_params, item_params) = if r.namespaced {
            (
                format!("{}/namespaces/{{namespace}}/{}", self.prefix, r.plural),
                vec![namespace.clone(), pretty.clone()],
                vec![name.clone(), namespace.clone(), pretty.clone()],
            )
        } else {
            (
                format!("{}/{}", self.prefix, r.plural),
                vec![pretty.clone()],
                vec![name.clone(), pretty.clone()],
            )
        };
        let item = format!("{base}/{{name}}");

        if r.has_verb("list") {
            self.add(
                &base,
                &collection_params,
                "get",
                Op {
                    description: format!("list or watch objects of kind {kind}"),
                    id: format!("list{id}{ns}{kind}"),
                    action: "list",
                    gvk: Some(&gvk),
                    params: queries(LIST_PARAMS),
                    body: None,
                    responses: responses(&[200], &list, LIST_TYPES),
                },
            );
            if r.namespaced {
                self.add(
                    &format!("{}/{}", self.prefix, r.plural),
                    std::slice::from_ref(&pretty),
                    "get",
                    Op {
                        description: format!("list or watch objects of kind {kind}"),
                        id: format!("list{id}{kind}ForAllNamespaces"),
                        action: "list",
                        gvk: Some(&gvk),
                        params: queries(LIST_PARAMS),
                        body: None,
                        responses: responses(&[200], &list, LIST_TYPES),
                    },
                );
            }
        }
        if r.has_verb("create") {
            self.add(
                &base,
                &collection_params,
                "post",
                Op {
                    description: format!("create {} {kind}", article(kind)),
                    id: format!("create{id}{ns}{kind}"),
                    action: "post",
                    gvk: Some(&gvk),
                    params: queries(WRITE_PARAMS),
                    body: Some(body(&obj)),
                    responses: responses(&[200, 201, 202], &obj, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("deletecollection") {
            self.add(
                &base,
                &collection_params,
                "delete",
                Op {
                    description: format!("delete collection of {kind}"),
                    id: format!("delete{id}Collection{ns}{kind}"),
                    action: "deletecollection",
                    gvk: Some(&gvk),
                    params: queries(DELETE_COLLECTION_PARAMS),
                    body: Some(delete_body.clone()),
                    responses: responses(&[200], &status, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("get") {
            self.add(
                &item,
                &item_params,
                "get",
                Op {
                    description: format!("read the specified {kind}"),
                    id: format!("read{id}{ns}{kind}"),
                    action: "get",
                    gvk: Some(&gvk),
                    params: Vec::new(),
                    body: None,
                    responses: responses(&[200], &obj, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("update") {
            self.add(
                &item,
                &item_params,
                "put",
                Op {
                    description: format!("replace the specified {kind}"),
                    id: format!("replace{id}{ns}{kind}"),
                    action: "put",
                    gvk: Some(&gvk),
                    params: queries(WRITE_PARAMS),
                    body: Some(body(&obj)),
                    responses: responses(&[200, 201], &obj, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("patch") {
            self.add(
                &item,
                &item_params,
                "patch",
                Op {
                    description: format!("partially update the specified {kind}"),
                    id: format!("patch{id}{ns}{kind}"),
                    action: "patch",
                    gvk: Some(&gvk),
                    params: patch_params(),
                    body: Some(patch_body.clone()),
                    responses: responses(&[200, 201], &obj, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("delete") {
            self.add(
                &item,
                &item_params,
                "delete",
                Op {
                    description: format!("delete {} {kind}", article(kind)),
                    id: format!("delete{id}{ns}{kind}"),
                    action: "delete",
                    gvk: Some(&gvk),
                    params: queries(DELETE_PARAMS),
                    body: Some(delete_body),
                    responses: responses(&[200, 202], &status, OBJECT_TYPES),
                },
            );
        }
        if r.has_verb("watch") {
            let watch_list = |description: String, id: String| Op {
                description,
                id,
                action: "watchlist",
                gvk: Some(&gvk),
                params: queries(LIST_PARAMS),
                body: None,
                responses: responses(&[200], &watch_event, LIST_TYPES),
            };
            let list_desc = format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead.");
            let item_desc = format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.");
            let watch_base = if r.namespaced {
                format!(
                    "{}/watch/namespaces/{{namespace}}/{}",
                    self.prefix, r.plural
                )
            } else {
                format!("{}/watch/{}", self.prefix, r.plural)
            };
            self.add(
                &watch_base,
                &collection_params,
                "get",
                watch_list(list_desc.clone(), format!("watch{id}{ns}{kind}List")),
            );
            self.add(
                &format!("{watch_base}/{{name}}"),
                &item_params,
                "get",
                Op {
                    description: item_desc,
                    id: format!("watch{id}{ns}{kind}"),
                    action: "watch",
                    gvk: Some(&gvk),
                    params: queries(LIST_PARAMS),
                    body: None,
                    responses: responses(&[200], &watch_event, LIST_TYPES),
                },
            );
            if r.namespaced {
                self.add(
                    &format!("{}/watch/{}", self.prefix, r.plural),
                    std::slice::from_ref(&pretty),
                    "get",
                    watch_list(list_desc, format!("watch{id}{kind}ListForAllNamespaces")),
                );
            }
        }
        for sub in &r.subresources {
            self.subresource(r, sub, &item, &item_params);
        }
    }

    fn subresource(
        &mut self,
        r: &ResourceInfo,
        sub: &SubresourceInfo,
        item: &str,
        item_params: &[Value],
    ) {
        let kind = r.kind.as_str();
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let id = self.id.clone();
        let sub_id = capitalize(&sub.name);
        let gvk = Gvk::new(&sub.group, &sub.version, &sub.kind);
        let path = format!("{item}/{}", sub.name);
        let obj = self.c.kind_ref(&gvk);
        let mut params = item_params.to_vec();
        if let Some(n) = params.first_mut() {
            n["description"] = Value::String(format!("name of the {}", sub.kind));
        }

        if sub.kind.ends_with("Options") {
            // Connect subresources (exec, attach, portforward, proxy): a stream, no object.
            params.retain(|p| p["name"] != "pretty");
            let string = json!({"type": "string"});
            let mut paths = vec![(path.clone(), params.clone(), String::new())];
            if sub.name == "proxy" {
                let mut with_path = params.clone();
                with_path.insert(
                    1,
                    param("path", "path", "string", "The path of the proxied request."),
                );
                paths.push((format!("{path}/{{path}}"), with_path, "WithPath".to_owned()));
            }
            for (p, p_params, suffix) in paths {
                for verb in &sub.verbs {
                    let Some((method, method_id)) = http_method(verb) else {
                        continue;
                    };
                    self.add(
                        &p,
                        &p_params,
                        method,
                        Op {
                            description: format!(
                                "connect {} requests to {} of {kind}",
                                method.to_uppercase(),
                                sub.name
                            ),
                            id: format!("connect{id}{method_id}{ns}{kind}{sub_id}{suffix}"),
                            action: "connect",
                            gvk: Some(&gvk),
                            params: connect_params(&sub.name),
                            body: None,
                            responses: responses(&[200], &string, &["*/*"]),
                        },
                    );
                }
            }
            return;
        }
        if sub.name == "log" {
            self.add(
                &path,
                &params,
                "get",
                Op {
                    description: format!("read log of the specified {kind}"),
                    id: format!("read{id}{ns}{kind}Log"),
                    action: "get",
                    gvk: Some(&gvk),
                    params: queries(LOG_PARAMS),
                    body: None,
                    responses: responses(&[200], &json!({"type": "string"}), LOG_TYPES),
                },
            );
            return;
        }
        for verb in &sub.verbs {
            let op = match verb.as_str() {
                "create" => Some((
                    "post",
                    Op {
                        description: format!("create {} of {} {kind}", sub.name, article(kind)),
                        id: format!("create{id}{ns}{kind}{sub_id}"),
                        action: "post",
                        gvk: Some(&gvk),
                        params: queries(WRITE_PARAMS),
                        body: Some(json!({"content": {"*/*": {"schema": obj}}, "required": true})),
                        responses: responses(&[200, 201, 202], &obj, OBJECT_TYPES),
                    },
                )),
                "get" => Some((
                    "get",
                    Op {
                        description: format!("read {} of the specified {kind}", sub.name),
                        id: format!("read{id}{ns}{kind}{sub_id}"),
                        action: "get",
                        gvk: Some(&gvk),
                        params: Vec::new(),
                        body: None,
                        responses: responses(&[200], &obj, OBJECT_TYPES),
                    },
                )),
                "update" => Some((
                    "put",
                    Op {
                        description: format!("replace {} of the specified {kind}", sub.name),
                        id: format!("replace{id}{ns}{kind}{sub_id}"),
                        action: "put",
                        gvk: Some(&gvk),
                        params: queries(WRITE_PARAMS),
                        body: Some(json!({"content": {"*/*": {"schema": obj}}, "required": true})),
                        responses: responses(&[200, 201], &obj, OBJECT_TYPES),
                    },
                )),
                "patch" => Some((
                    "patch",
                    Op {
                        description: format!(
                            "partially update {} of the specified {kind}",
                            sub.name
                        ),
                        id: format!("patch{id}{ns}{kind}{sub_id}"),
                        action: "patch",
                        gvk: Some(&gvk),
                        params: patch_params(),
                        body: Some(json!({
                            "content": content(&schema_ref(&self.c.patch), PATCH_TYPES),
                            "required": true,
                        })),
                        responses: responses(&[200, 201], &obj, OBJECT_TYPES),
                    },
                )),
                _ => None,
            };
            if let Some((method, op)) = op {
                let path_params = if method == "post" {
                    // Upstream's create subresources take no `pretty` at the path level.
                    params
                        .iter()
                        .filter(|p| p["name"] != "pretty")
                        .cloned()
                        .collect::<Vec<_>>()
                } else {
                    params.clone()
                };
                self.add(&path, &path_params, method, op);
            }
        }
    }
}

fn http_method(verb: &str) -> Option<(&'static str, &'static str)> {
    Some(match verb {
        "get" => ("get", "Get"),
        "create" => ("post", "Post"),
        "update" => ("put", "Put"),
        "patch" => ("patch", "Patch"),
        "delete" => ("delete", "Delete"),
        _ => return None,
    })
}

fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

/// The `paths` of the `group`/`version` document.
pub(crate) fn generate(
    group: &str,
    version: &str,
    resources: &[&ResourceInfo],
    c: &Components,
) -> Map<String, Value> {
    let prefix = api_prefix(group, version);
    let mut b = Builder {
        id: id_prefix(group, version),
        tag: tag(group, version),
        prefix: prefix.clone(),
        c,
        paths: Map::new(),
    };
    b.add(
        &format!("{prefix}/"),
        &[],
        "get",
        Op {
            description: "get available resources".to_owned(),
            id: format!("get{}APIResources", b.id),
            action: "",
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: responses(
                &[200],
                &schema_ref(&c.api_resource_list),
                &["application/json", "application/yaml"],
            ),
        },
    );
    for r in resources {
        b.resource(r);
    }
    b.paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_upstream() {
        assert_eq!(id_prefix("", "v1"), "CoreV1");
        assert_eq!(id_prefix("apps", "v1"), "AppsV1");
        assert_eq!(
            id_prefix("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(
            id_prefix("flowcontrol.apiserver.k8s.io", "v1beta3"),
            "FlowcontrolApiserverV1beta3"
        );
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("networking.k8s.io", "v1"), "networking_v1");
        assert_eq!(api_prefix("", "v1"), "/api/v1");
        assert_eq!(api_prefix("apps", "v1"), "/apis/apps/v1");
    }
}
