//! URL → what the request is about, as upstream's `RequestInfoFactory` parses it. Authorization,
//! routing and audit all read this one parse.

use std::collections::HashMap;

use http::Method;

/// A parsed API request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// Whether the path is under `/api` or `/apis` and names a resource.
    pub resource_request: bool,
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or for
    /// non-resource requests the lowercased method.
    pub verb: String,
    pub api_prefix: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// Query parameters, first value wins (as Go's `url.Values.Get`).
#[derive(Clone, Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map = HashMap::new();
        if let Some(q) = raw {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                map.entry(k.into_owned()).or_insert_with(|| v.into_owned());
            }
        }
        Query(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A boolean parameter as upstream's `Convert_Slice_string_To_bool`: present and not "0"
    /// or "false" in any case.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some(v) if v != "0" && !v.eq_ignore_ascii_case("false"))
    }
}

/// Subresources of a namespace that are not resources inside it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

pub fn parse(method: &Method, path: &str, query: &Query) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.as_str().to_lowercase(),
        ..Default::default()
    };
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        vec![]
    } else {
        trimmed.split('/').collect()
    };
    // /api/v1/... (3 parts at least: prefix, version, resource) or /apis/<group>/<version>/...
    let min = match parts.first() {
        Some(&"api") => 3,
        Some(&"apis") => 4,
        _ => return info,
    };
    if parts.len() < min {
        return info;
    }
    info.resource_request = true;
    info.api_prefix = parts[0].to_string();
    parts.remove(0);
    if info.api_prefix == "apis" {
        info.group = parts.remove(0).to_string();
    }
    info.version = parts.remove(0).to_string();
    // The deprecated /watch/ prefix.
    let mut watch_prefix = false;
    if parts.first() == Some(&"watch") {
        parts.remove(0);
        watch_prefix = true;
    }
    info.verb = match *method {
        Method::POST => "create",
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    if watch_prefix {
        info.verb = "watch".into();
    }
    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        info.namespace = parts[1].to_string();
        if parts.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&parts[2]) {
            parts.drain(..2);
        }
    }
    if parts.len() >= 3 {
        info.subresource = parts[2].to_string();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_string();
    }
    if !parts.is_empty() {
        info.resource = parts[0].to_string();
    }
    if info.name.is_empty() && info.verb == "get" {
        info.verb = if query.flag("watch") {
            "watch".into()
        } else {
            "list".into()
        };
    }
    if info.verb == "get" && query.flag("watch") {
        // A watch of one object, by name in the URL.
        info.verb = "watch".into();
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: Method, path: &str, q: &str) -> RequestInfo {
        parse(&method, path, &Query::parse(Some(q)))
    }

    #[test]
    fn parses_like_upstream() {
        let i = p(Method::GET, "/api/v1/namespaces/default/pods/web", "");
        assert_eq!(
            (
                i.verb.as_str(),
                i.group.as_str(),
                i.version.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str()
            ),
            ("get", "", "v1", "default", "pods", "web")
        );
        let i = p(Method::GET, "/apis/apps/v1/deployments", "");
        assert_eq!(
            (i.verb.as_str(), i.group.as_str(), i.resource.as_str()),
            ("list", "apps", "deployments")
        );
        let i = p(Method::GET, "/api/v1/namespaces/default/pods", "watch=true");
        assert_eq!(i.verb, "watch");
        let i = p(Method::GET, "/api/v1/watch/namespaces/default/pods", "");
        assert_eq!((i.verb.as_str(), i.resource.as_str()), ("watch", "pods"));
        let i = p(Method::DELETE, "/api/v1/namespaces/default/configmaps", "");
        assert_eq!(i.verb, "deletecollection");
        let i = p(
            Method::PUT,
            "/apis/apps/v1/namespaces/x/deployments/d/scale",
            "",
        );
        assert_eq!(
            (i.verb.as_str(), i.subresource.as_str(), i.name.as_str()),
            ("update", "scale", "d")
        );
        // A namespace itself, and its status subresource.
        let i = p(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.namespace.as_str()),
            ("namespaces", "kube-system", "kube-system")
        );
        let i = p(Method::PUT, "/api/v1/namespaces/x/finalize", "");
        assert_eq!(
            (i.resource.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("namespaces", "x", "finalize")
        );
        let i = p(Method::GET, "/api/v1/namespaces", "");
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str()),
            ("list", "namespaces")
        );
        assert!(!p(Method::GET, "/healthz", "").resource_request);
        assert!(!p(Method::GET, "/api/v1", "").resource_request);
        assert!(!p(Method::GET, "/apis/apps/v1", "").resource_request);
    }
}
