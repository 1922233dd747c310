//! Discovery documents, all built from the registry so they cannot disagree with routing:
//! aggregated discovery (`apidiscovery.k8s.io/v2`) on `/api` and `/apis`, and the legacy
//! `APIVersions`, `APIGroupList`, `APIGroup` and `APIResourceList` forms (what clients older
//! than aggregated discovery v2 read, and what `kubectl drain` and `auth can-i` still use).
//!
//! Content negotiation follows upstream's (`apiserver/pkg/endpoints/handlers/negotiation` and
//! `discovery/aggregated/{wrapper,negotiation}.go`): `/api` and `/apis` answer the aggregated
//! list only when an `Accept` clause asks for `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`
//! in a type we encode, and otherwise the legacy document, negotiated like any object (406
//! when no clause fits).
//!
//! Why v2beta1 is not served: upstream stopped serving `apidiscovery.k8s.io/v2beta1` in 1.33
//! (feature gate `AggregatedDiscoveryRemoveBetaType`, locked on since 1.35), so kube-apiserver
//! 1.37 answers a v2beta1-only request with the legacy document. client-go 1.27–1.29 (what
//! kubectl 1.27–1.29 embed) send
//! `application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json`
//! and read a plain `application/json` answer as `APIGroupList`, then fetch each group
//! version's `APIResourceList` — so they need no v2beta1 from us, only the faithful fallback and
//! legacy documents.
//!
//! Protobuf: we encode none of these documents, so a protobuf clause is skipped as upstream's
//! negotiation skips a type its serializer lacks (the next clause decides, or 406).
//!
//! Field order is Go struct order (typed structs below, not `serde_json::Value`, whose map sorts
//! keys), since clients and tests compare the text.

use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use rudder_api::resources::ResourceInfo;
use rudder_api::status::ApiError;
use rudder_registry::Snapshot;
use serde::Serialize;

use crate::encode;

/// The aggregated discovery type served: `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
const AGGREGATED_GROUP: &str = "apidiscovery.k8s.io";
const AGGREGATED_VERSION: &str = "v2";
const AGGREGATED_KIND: &str = "APIGroupDiscoveryList";

/// The types upstream's legacy discovery serializer offers, for the 406 message.
const LEGACY_MEDIA_TYPES: [&str; 3] = [encode::JSON, encode::YAML, encode::PROTOBUF];

/// How a discovery document is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// The encodings we serve, in upstream's serializer order (`application/json`,
/// `application/yaml`; protobuf is upstream's third), with whether each has a stream form.
const SERVED: [(&str, &str, Format, bool); 2] = [
    ("application", "json", Format::Json, true),
    ("application", "yaml", Format::Yaml, false),
];

impl Format {
    fn media_type(self) -> &'static str {
        match self {
            Format::Json => encode::JSON,
            Format::Yaml => encode::YAML,
        }
    }
}

/// Which negotiation applies: the aggregated handler's (`DiscoveryEndpointRestrictions`: the
/// clause must ask for the aggregated kind) or the legacy handlers' (`DefaultEndpointRestrictions`:
/// the clause must ask for no conversion at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Aggregated,
    Legacy,
}

/// One clause of an `Accept` header, as goautoneg parses it.
#[derive(Debug)]
struct Clause<'a> {
    typ: &'a str,
    sub: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl<'a> Clause<'a> {
    /// The value of a parameter; a repeated one keeps its last value, as goautoneg's map does.
    fn param(&self, key: &str) -> Option<&'a str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

/// goautoneg's `ParseAccept`: clauses without a subtype are dropped (except `*`), `q` defaults
/// to 1 (0 when unparsable), then clauses are ordered by q and by specificity.
fn parse_accept(header: &str) -> Vec<Clause<'_>> {
    let mut clauses = Vec::new();
    for part in header.split(',') {
        let part = part.trim_matches(' ');
        let mut pieces = part.split(';');
        let range = pieces.next().unwrap_or("");
        let mut sp = range.split('/');
        let typ = sp.next().unwrap_or("").trim_matches(' ');
        let sub = match (sp.next(), sp.next()) {
            (None, _) if typ == "*" => "*",
            (Some(s), None) => s.trim_matches(' '),
            _ => continue,
        };
        let mut clause = Clause {
            typ,
            sub,
            q: 1.0,
            params: Vec::new(),
        };
        for param in pieces {
            let Some((k, v)) = param.split_once('=') else {
                continue;
            };
            let k = k.trim_matches(' ');
            if k == "q" {
                clause.q = v.parse().unwrap_or(0.0);
            } else {
                clause.params.push((k, v.trim_matches(' ')));
            }
        }
        clauses.push(clause);
    }
    // goautoneg sorts with `sort.Sort` and a comparator that is not a strict order; for the
    // handful of clauses a header carries Go runs an insertion sort, reproduced here so that
    // ties land where upstream puts them.
    let less = |a: &Clause, b: &Clause| {
        a.q > b.q || (a.typ != "*" && b.typ == "*") || (a.sub != "*" && b.sub == "*")
    };
    for i in 1..clauses.len() {
        let mut j = i;
        while j > 0 && less(&clauses[j], &clauses[j - 1]) {
            clauses.swap(j, j - 1);
            j -= 1;
        }
    }
    clauses
}

/// upstream `acceptMediaTypeOptions`: whether a clause's parameters are acceptable for one
/// served type at this endpoint.
fn options_allowed(clause: &Clause, streams: bool, endpoint: Endpoint) -> bool {
    if let Some(stream) = clause.param("stream").filter(|s| !s.is_empty()) {
        if !streams || stream != "watch" {
            return false;
        }
    }
    if clause.param("sv").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    let (g, v, k) = (clause.param("g"), clause.param("v"), clause.param("as"));
    let converts = g.is_some() || v.is_some() || k.is_some();
    match endpoint {
        Endpoint::Legacy => !converts,
        Endpoint::Aggregated => {
            (g, v, k)
                == (
                    Some(AGGREGATED_GROUP),
                    Some(AGGREGATED_VERSION),
                    Some(AGGREGATED_KIND),
                )
        }
    }
}

/// upstream `NegotiateMediaTypeOptions` over the types we encode: the first clause, in
/// preference order, that a served type matches with acceptable parameters. An empty header
/// means the default type, which asks for no conversion (so never the aggregated list).
pub fn negotiate(accept: &str, endpoint: Endpoint) -> Option<Format> {
    if accept.is_empty() {
        return (endpoint == Endpoint::Legacy).then_some(Format::Json);
    }
    for clause in parse_accept(accept) {
        for (typ, sub, format, streams) in SERVED {
            let matches = (clause.typ == typ && (clause.sub == sub || clause.sub == "*"))
                || (clause.typ == "*" && clause.sub == "*");
            if matches && options_allowed(&clause, streams, endpoint) {
                return Some(format);
            }
        }
    }
    None
}

/// A document in the negotiated format. The aggregated list's Content-Type names its group,
/// version and kind (upstream `generateMediaTypeWithGVK`), which clients check.
pub(crate) fn respond<T: Serialize>(doc: &T, format: Format, aggregated: bool) -> Response {
    let body = match format {
        Format::Json => serde_json::to_vec(doc).map_err(ApiError::internal_error),
        // Upstream's YAML goes through a map (sigs.k8s.io/yaml), so its keys come out sorted,
        // as serde_json's map sorts them.
        Format::Yaml => serde_json::to_value(doc)
            .map_err(ApiError::internal_error)
            .and_then(|v| serde_saphyr::to_string(&v).map_err(ApiError::internal_error))
            .map(String::into_bytes),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return encode::error_response(&e),
    };
    let content_type = if aggregated {
        format!(
            "{};g={AGGREGATED_GROUP};v={AGGREGATED_VERSION};as={AGGREGATED_KIND}",
            format.media_type()
        )
    } else {
        format.media_type().to_string()
    };
    encode::bytes_response(StatusCode::OK, &content_type, Bytes::from(body))
}

/// A legacy document in the negotiated format, or upstream's 406 when no clause fits.
pub(crate) fn legacy_response<T: Serialize>(doc: &T, format: Option<Format>) -> Response {
    match format {
        Some(f) => respond(doc, f, false),
        None => encode::error_response(&ApiError::not_acceptable(&LEGACY_MEDIA_TYPES)),
    }
}

/// Answer a discovery path (`/api`, `/apis`, `/api/v1`, `/apis/<group>`,
/// `/apis/<group>/<version>`), or `None` when the path names no served group or version.
pub fn serve(
    registry: &Snapshot,
    advertise_address: &str,
    path: &str,
    accept: &str,
) -> Option<Response> {
    let path = path.trim_end_matches('/');
    if path == "/api" || path == "/apis" {
        // upstream's WrappedHandler: the aggregated handler only for an aggregated clause.
        if let Some(format) = negotiate(accept, Endpoint::Aggregated) {
            let doc = aggregated(registry, path == "/api");
            return Some(respond(&doc, format, true));
        }
    }
    let format = negotiate(accept, Endpoint::Legacy);
    match path {
        "/api" => Some(legacy_response(&api_versions(advertise_address), format)),
        "/apis" => Some(legacy_response(&api_group_list(registry), format)),
        "/api/v1" => resource_list(registry, "", "v1").map(|d| legacy_response(&d, format)),
        p => {
            let parts: Vec<&str> = p.strip_prefix("/apis/")?.split('/').collect();
            match parts.as_slice() {
                [group] => api_group(registry, group).map(|d| legacy_response(&d, format)),
                [group, version] => {
                    resource_list(registry, group, version).map(|d| legacy_response(&d, format))
                }
                _ => None,
            }
        }
    }
}

/// Groups in the order they are advertised, each with its versions (most preferred first).
pub(crate) fn groups(registry: &Snapshot) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for e in registry.entries() {
        let (g, v) = (e.info.group.as_str(), e.info.version.as_str());
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, versions)) => {
                if !versions.contains(&v) {
                    versions.push(v);
                }
            }
            None => out.push((g, vec![v])),
        }
    }
    for (_, versions) in &mut out {
        versions.sort_by(|a, b| rudder_api::resources::compare_kube_versions(a, b));
    }
    out
}

/// The resources of one group version, by name as upstream's installer sorts them.
fn resources<'a>(registry: &'a Snapshot, group: &str, version: &str) -> Vec<&'a ResourceInfo> {
    let mut out: Vec<&ResourceInfo> = registry
        .entries()
        .iter()
        .map(|e| &e.info)
        .filter(|i| i.group == group && i.version == version)
        .collect();
    out.sort_by(|a, b| a.plural.cmp(&b.plural));
    out
}

/// `metav1.GroupVersionKind`.
#[derive(Debug, Serialize)]
pub struct Gvk<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
}

/// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDiscoveryList<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: ListMeta,
    items: Vec<GroupDiscovery<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ListMeta {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMeta<'a> {
    name: &'a str,
    /// Go's zero `metav1.Time` encodes as `null`.
    creation_timestamp: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct GroupDiscovery<'a> {
    metadata: GroupMeta<'a>,
    versions: Vec<VersionDiscovery<'a>>,
}

#[derive(Debug, Serialize)]
pub struct VersionDiscovery<'a> {
    version: &'a str,
    resources: Vec<ResourceDiscovery<'a>>,
    freshness: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiscovery<'a> {
    resource: &'a str,
    response_kind: Gvk<'a>,
    scope: &'static str,
    singular_resource: &'a str,
    verbs: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    short_names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    categories: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subresources: Vec<SubresourceDiscovery<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubresourceDiscovery<'a> {
    subresource: &'a str,
    response_kind: Gvk<'a>,
    verbs: &'a [String],
}

fn aggregated_resource(r: &ResourceInfo) -> ResourceDiscovery<'_> {
    ResourceDiscovery {
        resource: &r.plural,
        response_kind: Gvk {
            group: &r.group,
            version: &r.version,
            kind: &r.kind,
        },
        scope: if r.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        },
        singular_resource: &r.singular,
        verbs: &r.verbs,
        short_names: &r.short_names,
        categories: &r.categories,
        subresources: r
            .subresources
            .iter()
            .map(|s| SubresourceDiscovery {
                subresource: &s.name,
                response_kind: Gvk {
                    group: &s.group,
                    version: &s.version,
                    kind: &s.kind,
                },
                verbs: &s.verbs,
            })
            .collect(),
    }
}

/// `/api` (core) or `/apis` (every other group) as an `APIGroupDiscoveryList`.
pub fn aggregated(registry: &Snapshot, core: bool) -> GroupDiscoveryList<'_> {
    let items = groups(registry)
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(name, versions)| GroupDiscovery {
            metadata: GroupMeta {
                name,
                creation_timestamp: None,
            },
            versions: versions
                .into_iter()
                .map(|version| VersionDiscovery {
                    version,
                    resources: resources(registry, name, version)
                        .into_iter()
                        .map(aggregated_resource)
                        .collect(),
                    freshness: "Current",
                })
                .collect(),
        })
        .collect();
    GroupDiscoveryList {
        kind: AGGREGATED_KIND,
        api_version: "apidiscovery.k8s.io/v2",
        metadata: ListMeta {},
        items,
    }
}

/// `metav1.APIVersions` (legacy `/api`); upstream writes it without `apiVersion`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersions<'a> {
    kind: &'static str,
    versions: [&'static str; 1],
    #[serde(rename = "serverAddressByClientCIDRs")]
    server_address_by_client_cidrs: [ServerAddress<'a>; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerAddress<'a> {
    #[serde(rename = "clientCIDR")]
    client_cidr: &'static str,
    server_address: &'a str,
}

/// Legacy `/api`.
pub fn api_versions(server_address: &str) -> ApiVersions<'_> {
    ApiVersions {
        kind: "APIVersions",
        versions: ["v1"],
        server_address_by_client_cidrs: [ServerAddress {
            client_cidr: "0.0.0.0/0",
            server_address,
        }],
    }
}

/// `metav1.GroupVersionForDiscovery`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionForDiscovery {
    group_version: String,
    version: String,
}

/// `metav1.APIGroup`; inside an `APIGroupList` its type fields are empty and omitted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroup<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'static str,
    name: &'a str,
    versions: Vec<GroupVersionForDiscovery>,
    preferred_version: Option<GroupVersionForDiscovery>,
}

/// `metav1.APIGroupList` (legacy `/apis`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroupList<'a> {
    kind: &'static str,
    api_version: &'static str,
    groups: Vec<ApiGroup<'a>>,
}

fn group_doc<'a>(name: &'a str, versions: &[&str]) -> ApiGroup<'a> {
    let gv = |v: &&str| GroupVersionForDiscovery {
        group_version: format!("{name}/{v}"),
        version: v.to_string(),
    };
    ApiGroup {
        kind: "",
        api_version: "",
        name,
        versions: versions.iter().map(gv).collect(),
        preferred_version: versions.first().map(gv),
    }
}

/// Legacy `/apis`.
pub fn api_group_list(registry: &Snapshot) -> ApiGroupList<'_> {
    let groups = groups(registry)
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group_doc(g, &versions))
        .collect();
    ApiGroupList {
        kind: "APIGroupList",
        api_version: "v1",
        groups,
    }
}

/// `/apis/<group>`.
pub fn api_group<'a>(registry: &'a Snapshot, group: &str) -> Option<ApiGroup<'a>> {
    groups(registry)
        .into_iter()
        .find(|(g, _)| *g == group && !g.is_empty())
        .map(|(g, versions)| ApiGroup {
            kind: "APIGroup",
            api_version: "v1",
            ..group_doc(g, &versions)
        })
}

/// `metav1.APIResource`, fields in Go struct order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource<'a> {
    name: String,
    singular_name: &'a str,
    namespaced: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    version: &'a str,
    kind: &'a str,
    verbs: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    short_names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    categories: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_version_hash: Option<String>,
}

/// `metav1.APIResourceList`. Upstream's core `/api/v1` carries no `apiVersion`; the named
/// groups' documents say `v1`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceList<'a> {
    kind: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    api_version: &'static str,
    group_version: String,
    resources: Vec<ApiResource<'a>>,
}

/// upstream `discovery.StorageVersionHash`: base64 of the first 8 bytes of the SHA-256 of
/// `group/version/kind` of the storage version, so a storage migrator can tell when it changes.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{group}/{version}/{kind}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// `/api/v1` or `/apis/<group>/<version>` as an `APIResourceList`, resources and subresources
/// sorted by name as upstream's installer sorts its storage paths.
pub fn resource_list<'a>(
    registry: &'a Snapshot,
    group: &str,
    version: &str,
) -> Option<ApiResourceList<'a>> {
    let rs = resources(registry, group, version);
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        out.push(ApiResource {
            name: r.plural.clone(),
            singular_name: &r.singular,
            namespaced: r.namespaced,
            group: "",
            version: "",
            kind: &r.kind,
            verbs: &r.verbs,
            short_names: &r.short_names,
            categories: &r.categories,
            storage_version_hash: r
                .storage_gvk()
                .map(|(g, v, k)| storage_version_hash(g, v, k)),
        });
        for s in &r.subresources {
            // A subresource of another group's kind says so (pods/eviction is policy/v1).
            let foreign = s.group != r.group || s.version != r.version;
            out.push(ApiResource {
                name: format!("{}/{}", r.plural, s.name),
                singular_name: "",
                namespaced: r.namespaced,
                group: if foreign { &s.group } else { "" },
                version: if foreign { &s.version } else { "" },
                kind: &s.kind,
                verbs: &s.verbs,
                short_names: &[],
                categories: &[],
                storage_version_hash: None,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Some(ApiResourceList {
        kind: "APIResourceList",
        api_version: if group.is_empty() { "" } else { "v1" },
        group_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        resources: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_registry::DefaultStrategy;
    use serde_json::{json, Value};
    use std::sync::Arc;

    fn registry() -> Arc<Snapshot> {
        rudder_registry::Registry::builtin(|_| {
            Arc::new(DefaultStrategy {
                tracks_generation: false,
            })
        })
        .unwrap()
        .snapshot()
    }

    const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    const V2_PROTO: &str =
        "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
    const V2BETA1: &str =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
    const V2BETA1_PROTO: &str = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

    /// upstream `TestAggregationEnabled` (wrapper_test.go) with v1.37's gate (v2beta1 removed),
    /// plus what the legacy handler then negotiates; protobuf is not encoded here, so the
    /// protobuf-only cases fall through to the next clause or to 406.
    #[test]
    fn negotiation_follows_upstream_wrapper_cases() {
        use Endpoint::*;
        use Format::*;
        let cases: &[(&str, Option<Format>, Option<Format>)] = &[
            ("application/json;foo=bar", None, Some(Json)),
            ("", None, Some(Json)),
            (V2BETA1, None, None),
            (V2BETA1_PROTO, None, None),
            (V2, Some(Json), None),
            (V2_PROTO, None, None),
            ("application/json", None, Some(Json)),
            ("application/vnd.kubernetes.protobuf", None, None),
            (&format!("{V2},application/json"), Some(Json), Some(Json)),
            (
                &format!("{V2_PROTO},application/vnd.kubernetes.protobuf"),
                None,
                None,
            ),
            // client-go 1.27–1.29
            (&format!("{V2BETA1},application/json"), None, Some(Json)),
            // client-go 1.30+
            (
                &format!("{V2},{V2BETA1},application/json"),
                Some(Json),
                Some(Json),
            ),
            (
                &format!("{V2_PROTO},{V2},application/json"),
                Some(Json),
                Some(Json),
            ),
            (
                "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                Some(Yaml),
                None,
            ),
            ("*/*", None, Some(Json)),
            (
                "*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
                Some(Json),
                None,
            ),
            ("application/*", None, Some(Json)),
            ("text/html", None, None),
            ("application/json;stream=watch", None, Some(Json)),
            ("application/yaml;stream=watch", None, None),
            ("application/json;q=0.5,application/yaml", None, Some(Yaml)),
            (
                &format!("application/json,{V2};q=0.9"),
                Some(Json),
                Some(Json),
            ),
            ("application/json;g=meta.k8s.io;v=v1;as=Table", None, None),
        ];
        for (accept, aggregated, legacy) in cases {
            assert_eq!(
                negotiate(accept, Aggregated),
                *aggregated,
                "aggregated: {accept}"
            );
            assert_eq!(negotiate(accept, Legacy), *legacy, "legacy: {accept}");
        }
    }

    #[test]
    fn accept_clauses_sort_like_goautoneg() {
        let order = |h: &str| -> Vec<String> {
            parse_accept(h)
                .iter()
                .map(|c| format!("{}/{}", c.typ, c.sub))
                .collect()
        };
        // Go's insertion sort with goautoneg's comparator: a lower q can still rise above a
        // wildcard, since specificity alone already counts as "less".
        assert_eq!(
            order("*/*, application/*;q=1, text/plain;q=0.5, application/json"),
            ["application/json", "text/plain", "application/*", "*/*"]
        );
        assert_eq!(
            order("application/yaml;q=0.5, application/json"),
            ["application/json", "application/yaml"]
        );
        // No subtype: dropped, except for `*`.
        assert_eq!(order("application, *"), ["*/*"]);
    }

    /// Values from upstream kube-apiserver's legacy discovery.
    #[test]
    fn storage_version_hashes_match_upstream() {
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(storage_version_hash("", "v1", "ConfigMap"), "qFsyl6wFWjQ=");
        let reg = registry();
        let hash = |g: &str, v: &str, r: &str| {
            reg.get(g, v, r).and_then(|e| {
                e.info
                    .storage_gvk()
                    .map(|(g, v, k)| storage_version_hash(g, v, k))
            })
        };
        assert_eq!(hash("", "v1", "services").as_deref(), Some("0/CO1lhkEBI="));
        assert_eq!(
            hash("coordination.k8s.io", "v1", "leases").as_deref(),
            Some("gqkMMb/YqFM=")
        );
        // Both served versions report the v2 storage version.
        for v in ["v1", "v2"] {
            assert_eq!(
                hash("autoscaling", v, "horizontalpodautoscalers").as_deref(),
                Some("qwQve8ut294=")
            );
        }
        assert_eq!(
            hash("events.k8s.io", "v1", "events").as_deref(),
            Some("r2yiGXH7wu8=")
        );
        assert_eq!(hash("", "v1", "bindings"), None);
        assert_eq!(hash("", "v1", "componentstatuses"), None);
        assert_eq!(
            hash("authorization.k8s.io", "v1", "subjectaccessreviews"),
            None
        );
    }

    /// Go struct order and omitted empties, as in an upstream capture of `/api/v1`.
    #[test]
    fn legacy_documents_in_upstream_field_order() {
        let reg = registry();
        let v1 = serde_json::to_string(&resource_list(&reg, "", "v1").unwrap()).unwrap();
        assert!(v1.starts_with(r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"bindings","singularName":"binding","namespaced":true,"kind":"Binding","verbs":["create"]},{"name":"componentstatuses","singularName":"componentstatus","namespaced":false,"kind":"ComponentStatus","verbs":["get","list"],"shortNames":["cs"]},{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["cm"],"storageVersionHash":"qFsyl6wFWjQ="}"#), "{v1}");
        assert!(v1.contains(r#"{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","delete","deletecollection","get","list","patch","update","watch"],"shortNames":["po"],"categories":["all"],"storageVersionHash":"xPOwRZ+Yhw8="}"#), "{v1}");
        assert!(v1.contains(r#"{"name":"pods/eviction","singularName":"","namespaced":true,"group":"policy","version":"v1","kind":"Eviction","verbs":["create"]}"#), "{v1}");
        let apps = serde_json::to_string(&resource_list(&reg, "apps", "v1").unwrap()).unwrap();
        assert!(
            apps.starts_with(r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[{"name":"controllerrevisions","#),
            "{apps}"
        );
        assert_eq!(
            serde_json::to_string(&api_versions("10.0.0.1:6443")).unwrap(),
            r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"10.0.0.1:6443"}]}"#
        );
        assert_eq!(
            serde_json::to_string(&api_group(&reg, "apps").unwrap()).unwrap(),
            r#"{"kind":"APIGroup","apiVersion":"v1","name":"apps","versions":[{"groupVersion":"apps/v1","version":"v1"}],"preferredVersion":{"groupVersion":"apps/v1","version":"v1"}}"#
        );
        let list = serde_json::to_string(&api_group_list(&reg)).unwrap();
        assert!(
            list.starts_with(r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"#),
            "{list}"
        );
    }

    #[test]
    fn documents_list_upstream_names() {
        let reg = registry();
        let core = serde_json::to_value(aggregated(&reg, true)).unwrap();
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
        let apis = serde_json::to_value(aggregated(&reg, false)).unwrap();
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
        let groups = serde_json::to_value(api_group_list(&reg)).unwrap();
        let autoscaling = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == "autoscaling")
            .unwrap()
            .clone();
        assert_eq!(autoscaling["preferredVersion"]["version"], "v2");
        let _: Value = groups;
    }

    #[test]
    fn aggregated_list_in_upstream_field_order() {
        let reg = registry();
        let text = serde_json::to_string(&aggregated(&reg, true)).unwrap();
        assert!(text.starts_with(r#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},"items":[{"metadata":{"name":"","creationTimestamp":null},"versions":[{"version":"v1","resources":[{"resource":"bindings","responseKind":{"group":"","version":"v1","kind":"Binding"},"scope":"Namespaced","singularResource":"binding","verbs":["create"]}"#), "{text}");
    }
}
