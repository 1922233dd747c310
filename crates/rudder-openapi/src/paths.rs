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

/// Upstream's query parameter descriptions (the documentation of the options' fields, as
/// kube-apiserver's OpenAPI documents carry them).
fn query(name: &str) -> Value {
    let (ty, description) = match name {
        "pretty" => (
            "string",
            "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
        ),
        "dryRun" => (
            "string",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
        ),
        "fieldManager" => ("string", FIELD_MANAGER),
        "fieldValidation" => (
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
        ),
        "force" => (
            "boolean",
            "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
        ),
        "allowWatchBookmarks" => (
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
        ),
        "continue" => (
            "string",
            "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token. If the client needs a consistent list, it must restart their list without the continue field. Otherwise, the client may send another list request with the token received with the 410 error, the server will respond with a list starting from the next key, but from the latest snapshot, which is inconsistent from the previous list results - objects that are created, modified, or deleted after the first list request will be included in the response, as long as their keys are after the \"next key\".\n\nThis field is not supported when watch is true. Clients may start a watch from the last resourceVersion value returned by the server and not miss any modifications.",
        ),
        "fieldSelector" => (
            "string",
            "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
        ),
        "labelSelector" => (
            "string",
            "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
        ),
        "limit" => (
            "integer",
            "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results. Setting a limit may return fewer than the requested amount of items (up to zero items) in the event all requested objects are filtered out and clients should only use the presence of the continue field to determine whether more results are available. Servers may choose not to support the limit argument and will return all of the available results. If limit is specified and the continue field is empty, clients may assume that no more results are available. This field is not supported if watch is true.\n\nThe server guarantees that the objects returned when using continue will be identical to issuing a single list call without a limit - that is, no objects created, modified, or deleted after the first request is issued will be included in any subsequent continued requests. This is sometimes referred to as a consistent snapshot, and ensures that a client that is using limit to receive smaller chunks of a very large result can ensure they see all possible objects. If objects are updated during a chunked list the version of the object that was present at the time the first list result was calculated is returned.",
        ),
        "resourceVersion" => (
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
        ),
        "resourceVersionMatch" => (
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
        ),
        "sendInitialEvents" => (
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation. Afterwards, the watch stream will proceed as usual, sending watch events corresponding to changes (subsequent to the RV) to objects watched.\n\nWhen `sendInitialEvents` option is set, we require `resourceVersionMatch` option to also be set. The semantic of the watch request is as following: - `resourceVersionMatch` = NotOlderThan\n  is interpreted as \"data at least as new as the provided `resourceVersion`\"\n  and the bookmark event is send when the state is synced\n  to a `resourceVersion` at least as fresh as the one provided by the ListOptions.\n  If `resourceVersion` is unset, this is interpreted as \"consistent read\" and the\n  bookmark event is send when the state is synced at least to the moment\n  when request started being processed.\n- `resourceVersionMatch` set to any other value or unset\n  Invalid error is returned.\n\nDefaults to true if `resourceVersion=\"\"` or `resourceVersion=\"0\"` (for backward compatibility reasons) and to false otherwise.",
        ),
        "timeoutSeconds" => (
            "integer",
            "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
        ),
        "watch" => (
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
        ),
        "gracePeriodSeconds" => (
            "integer",
            "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
        ),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => (
            "boolean",
            "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it",
        ),
        "orphanDependents" => (
            "boolean",
            "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
        ),
        "propagationPolicy" => (
            "string",
            "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
        ),
        // Log options.
        "container" => (
            "string",
            "The container for which to stream logs. Defaults to only container if there is one container in the pod.",
        ),
        "follow" => ("boolean", "Follow the log stream of the pod. Defaults to false."),
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

const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";

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
    p[1]["description"] = Value::String(format!(
        "{FIELD_MANAGER} This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch)."
    ));
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
            "object name and auth scope, such as for teams and projects",
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
