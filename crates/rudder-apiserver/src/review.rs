//! The review resources: requests answered by the API server's own authenticator and
//! authorizer and never stored (upstream's `authorization.k8s.io` and `authentication.k8s.io`
//! virtual resources). `kubectl auth can-i`, `auth can-i --list` and `auth whoami` use them.

use axum::response::Response;
use http::StatusCode;
use rudder_api::status::ApiError;
use rudder_auth::{Attributes, Decision, UserInfo};
use serde_json::{json, Value};

use crate::encode;
use crate::rest::Call;

/// Whether `resource` in `group` is a review this module answers.
pub fn is_review(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews"
                | "subjectaccessreviews"
                | "localsubjectaccessreviews"
                | "selfsubjectrulesreviews"
        ) | (
            "authentication.k8s.io",
            "selfsubjectreviews" | "tokenreviews"
        )
    )
}

/// `authentication.k8s.io/v1` UserInfo, empty fields omitted as upstream's `omitempty`.
fn user_info_json(u: &UserInfo) -> Value {
    user_info_value(&u.name, &u.uid, &u.groups, &u.extra)
}

/// The same from its parts (admission's requester has the same fields).
pub(crate) fn user_info_value(
    name: &str,
    uid: &str,
    groups: &[String],
    extra: &std::collections::BTreeMap<String, Vec<String>>,
) -> Value {
    let mut v = json!({"username": name});
    if !uid.is_empty() {
        v["uid"] = json!(uid);
    }
    if !groups.is_empty() {
        v["groups"] = json!(groups);
    }
    if !extra.is_empty() {
        v["extra"] = json!(extra);
    }
    v
}

/// A TokenReview: the token through this server's own authenticators, as a webhook token
/// authenticator elsewhere would ask.
fn token_review(call: &Call<'_>, spec: &Value) -> Value {
    let token = spec["token"].as_str().unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    let authenticated = http::HeaderValue::from_str(&format!("Bearer {token}"))
        .ok()
        .map(|v| {
            headers.insert(http::header::AUTHORIZATION, v);
            call.server
                .authn
                .authenticate(&rudder_auth::AuthRequest::new(&headers))
        });
    let mut status = match authenticated {
        Some(Ok(Some(user))) => json!({"authenticated": true, "user": user_info_json(&user)}),
        Some(Err(e)) => json!({"user": {}, "error": e.to_string()}),
        _ => json!({"user": {}}),
    };
    if let Some(a) = spec.get("audiences").filter(|a| a.is_array()) {
        if status["authenticated"] == true {
            status["audiences"] = a.clone();
        }
    }
    status
}

fn user_of(spec: &Value) -> UserInfo {
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut u = UserInfo::new(spec["user"].as_str().unwrap_or(""));
    u.groups = groups;
    u.uid = spec["uid"].as_str().unwrap_or("").to_string();
    if let Some(extra) = spec
        .get("extra")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
    {
        u.extra = extra;
    }
    u
}

/// SelfSubjectRulesReview: the rules RBAC grants the caller in `namespace` (cluster-wide ones
/// included), split into resource and non-resource rules as upstream's `RulesFor`. Without
/// RBAC the answer is what the authorizer allows as a whole.
fn rules_review(call: &Call<'_>, caller: &UserInfo, namespace: &str) -> Value {
    let Some(index) = &call.server.rbac else {
        let probe = Attributes {
            verb: "*".into(),
            api_group: "*".into(),
            resource: "*".into(),
            namespace: namespace.to_string(),
            resource_request: true,
            ..Default::default()
        };
        return if call.server.authz.authorize(caller, &probe).allowed() {
            json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            })
        } else {
            json!({"resourceRules": [], "nonResourceRules": [], "incomplete": true,
                   "evaluationError": "the authorizer cannot enumerate rules"})
        };
    };
    let (rules, errors) = index.rules_for(caller, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if !r.resources.is_empty() {
            let mut v =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                v["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(v);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

fn attributes(spec: &Value, namespace_override: Option<&str>) -> Attributes {
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        Attributes {
            verb: s("verb"),
            api_group: s("group"),
            api_version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            namespace: namespace_override.map_or_else(|| s("namespace"), str::to_string),
            name: s("name"),
            path: String::new(),
            resource_request: true,
        }
    } else {
        let n = &spec["nonResourceAttributes"];
        Attributes {
            verb: n["verb"].as_str().unwrap_or("").to_string(),
            path: n["path"].as_str().unwrap_or("").to_string(),
            resource_request: false,
            ..Default::default()
        }
    }
}

/// Answer a review POST.
pub fn create(call: &Call<'_>, caller: &UserInfo) -> Result<Response, ApiError> {
    // Reviews have no table convertor: a Table-only Accept is a 406, as upstream.
    let output = call.output()?;
    let mut body = encode::decode_body(
        call.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        &call.body,
    )?;
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    body["apiVersion"] = json!(call.entry.info.api_version());
    body["kind"] = json!(call.entry.info.kind);
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let authz = &call.server.authz;
    let status = match call.info.resource.as_str() {
        "selfsubjectreviews" => json!({"userInfo": user_info_json(caller)}),
        "tokenreviews" => token_review(call, &spec),
        "selfsubjectrulesreviews" => {
            let namespace = spec["namespace"].as_str().unwrap_or("");
            rules_review(call, caller, namespace)
        }
        resource => {
            let (user, ns) = match resource {
                "selfsubjectaccessreviews" => (caller.clone(), None),
                "localsubjectaccessreviews" => (user_of(&spec), Some(call.info.namespace.as_str())),
                _ => (user_of(&spec), None),
            };
            let attrs = attributes(&spec, ns);
            match authz.authorize(&user, &attrs) {
                Decision::Allow => json!({"allowed": true}),
                Decision::Deny(reason) => {
                    json!({"allowed": false, "denied": true, "reason": reason})
                }
                Decision::NoOpinion => json!({"allowed": false}),
                Decision::NoOpinionBecause(reason) => json!({"allowed": false, "reason": reason}),
            }
        }
    };
    body["status"] = status;
    if body.get("metadata").is_none() {
        body["metadata"] = json!({});
    }
    encode::object_response(&call.entry, StatusCode::CREATED, &body, output)
}
