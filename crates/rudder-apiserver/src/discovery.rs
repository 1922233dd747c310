//! Discovery documents, all built from the registry so they cannot disagree with routing:
//! aggregated discovery (`apidiscovery.k8s.io/v2`) on `/api` and `/apis`, and the legacy
//! `APIVersions`, `APIGroupList` and `APIResourceList` forms (still used by `kubectl drain` and
//! `auth can-i`).

use rudder_api::resources::ResourceInfo;
use rudder_registry::Registry;
use serde_json::{json, Value};

/// The media type kubectl accepts aggregated discovery in; it checks the response's
/// Content-Type against exactly this.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for aggregated discovery.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        p.starts_with("application/json")
            && p.contains("g=apidiscovery.k8s.io")
            && p.contains("v=v2")
            && p.contains("as=APIGroupDiscoveryList")
    })
}

/// Groups in the order they are advertised, each with its versions (most preferred first).
fn groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for e in registry.entries() {
        let g = &e.info.group;
        match out.iter_mut().find(|(name, _)| name == g) {
            Some((_, versions)) => {
                if !versions.contains(&e.info.version) {
                    versions.push(e.info.version.clone());
                }
            }
            None => out.push((g.clone(), vec![e.info.version.clone()])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| rudder_api::resources::compare_kube_versions(a, b));
    }
    out
}

fn resources<'a>(registry: &'a Registry, group: &str, version: &str) -> Vec<&'a ResourceInfo> {
    registry
        .entries()
        .iter()
        .map(|e| &e.info)
        .filter(|i| i.group == group && i.version == version)
        .collect()
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    if !r.subresources.is_empty() {
        v["subresources"] = Value::Array(
            r.subresources
                .iter()
                .map(|s| {
                    json!({
                        "subresource": s.name,
                        "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                        "verbs": s.verbs,
                    })
                })
                .collect(),
        );
    }
    v
}

fn aggregated_group(registry: &Registry, name: &str, versions: &[String]) -> Value {
    json!({
        "metadata": {"name": name, "creationTimestamp": null},
        "versions": versions.iter().map(|v| json!({
            "version": v,
            "resources": resources(registry, name, v).into_iter().map(aggregated_resource).collect::<Vec<_>>(),
            "freshness": "Current",
        })).collect::<Vec<_>>(),
    })
}

/// `/api` (core) or `/apis` (every other group) as an `APIGroupDiscoveryList`.
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let items: Vec<Value> = groups(registry)
        .iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(g, versions)| aggregated_group(registry, g, versions))
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(gv).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(gv).unwrap_or(Value::Null),
    })
}

/// Legacy `/apis`.
pub fn api_group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry)
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_doc(g, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`.
pub fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    groups(registry)
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())
        .map(|(g, versions)| {
            let mut doc = group_doc(&g, &versions);
            doc["kind"] = json!("APIGroup");
            doc["apiVersion"] = json!("v1");
            doc
        })
}

/// `/api/v1` or `/apis/<group>/<version>` as an `APIResourceList`.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs = resources(registry, group, version);
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        let mut v = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            v["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            v["categories"] = json!(r.categories);
        }
        out.push(v);
        for s in &r.subresources {
            let mut sv = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            // A subresource of another group's kind says so (pods/eviction is policy/v1).
            if s.group != r.group || s.version != r.version {
                sv["group"] = json!(s.group);
                sv["version"] = json!(s.version);
            }
            out.push(sv);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_registry::DefaultStrategy;
    use std::sync::Arc;

    fn registry() -> Registry {
        Registry::builtin(|_| {
            Arc::new(DefaultStrategy {
                tracks_generation: false,
            })
        })
        .unwrap()
    }

    #[test]
    fn aggregated_accept_is_recognised() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
    }

    #[test]
    fn documents_list_upstream_names() {
        let reg = registry();
        let core = aggregated(&reg, true);
        let items = core["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let apis = aggregated(&reg, false);
        let apps = apis["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap()
            .clone();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap()
            .clone();
        let scale = deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "scale")
            .unwrap()
            .clone();
        assert_eq!(scale["responseKind"]["group"], "autoscaling");
        let v1 = resource_list(&reg, "", "v1").unwrap();
        let eviction = v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .unwrap()
            .clone();
        assert_eq!(
            (eviction["group"].as_str(), eviction["version"].as_str()),
            (Some("policy"), Some("v1"))
        );
        let groups = api_group_list(&reg);
        let autoscaling = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .unwrap()
            .clone();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
    }
}
