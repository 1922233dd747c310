//! The built-in resource table: every group/version/resource upstream kube-apiserver serves,
//! with kind, names, scope, verbs, subresources and Table columns, plus upstream's etcd key
//! layout.
//!
//! The data is upstream's own, captured from kube-apiserver v1.26 discovery and Table responses
//! (`data/discovery-v1.26.json`, `data/table-columns-v1.26.json`, copied from the research
//! notes) and compiled into the binary. The router, discovery, OpenAPI, RBAC and the garbage
//! collector all read this one table, so they cannot disagree about what exists.
//!
//! Derived and missing data, said plainly rather than invented:
//! - Singular names: v1.26 legacy discovery reports `singularName: ""`. Since v1.27 upstream
//!   serves the lower-cased kind for every built-in resource (`pod`, `endpoints`, ...), which is
//!   what [`ResourceInfo::singular`] holds.
//! - Table column descriptions: the captured data has none, so `description` is empty unless
//!   the data file provides one.
//! - Upstream 1.37 serves what 1.26 did not: `data/discovery-v1.37-delta.json`, generated from
//!   k8s-openapi's 1.37 types by `data/gen-discovery-1.37.py`, removes the beta group/versions
//!   no longer served (`flowcontrol.apiserver.k8s.io/v1beta2`/`v1beta3`, `storage.k8s.io/v1beta1`)
//!   and adds the GA resources since (validating/mutating admission policies and bindings,
//!   selfsubjectreviews, clustertrustbundles, podcertificaterequests, flowcontrol v1,
//!   ipaddresses and servicecidrs, resource.k8s.io v1, volumeattributesclasses,
//!   storageversionmigrations, `pods/resize`), with upstream's short names and categories.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

use crate::status::{ApiError, GroupKind, GroupResource};
use crate::validation::is_valid_path_segment_name;

const DISCOVERY_JSON: &str = include_str!("../data/discovery-v1.26.json");
const TABLE_COLUMNS_JSON: &str = include_str!("../data/table-columns-v1.26.json");
/// What upstream 1.37 serves differently from the 1.26 capture (generated from k8s-openapi's
/// 1.37 types by `data/gen-discovery-1.37.py`): group/versions no longer served, and GA
/// resources added since.
const DELTA_JSON: &str = include_str!("../data/discovery-v1.37-delta.json");

/// The group/versions the Rudder API server must serve (`""` is the core group).
pub const REQUIRED_GROUP_VERSIONS: &[(&str, &str)] = &[
    ("", "v1"),
    ("apps", "v1"),
    ("batch", "v1"),
    ("autoscaling", "v1"),
    ("autoscaling", "v2"),
    ("policy", "v1"),
    ("networking.k8s.io", "v1"),
    ("discovery.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"),
    ("rbac.authorization.k8s.io", "v1"),
    ("storage.k8s.io", "v1"),
    ("scheduling.k8s.io", "v1"),
    ("events.k8s.io", "v1"),
    ("node.k8s.io", "v1"),
    ("certificates.k8s.io", "v1"),
    ("admissionregistration.k8s.io", "v1"),
    ("apiextensions.k8s.io", "v1"),
];

/// One Table column definition (`metav1.TableColumnDefinition`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TableColumn {
    /// Column header, e.g. `Name`, `Ready`.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `date`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// OpenAPI format, e.g. `name` for the Name column.
    #[serde(default)]
    pub format: String,
    /// Human-readable description (empty when the data has none).
    #[serde(default)]
    pub description: String,
    /// 0 = always shown, 1 = `-o wide` only.
    #[serde(default)]
    pub priority: i32,
}

/// A subresource such as `status`, `scale`, `log` or `eviction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubresourceInfo {
    /// The subresource name (`status`, `scale`, ...).
    pub name: String,
    /// Group of the kind the subresource takes and returns (`autoscaling` for `scale`,
    /// `policy` for `eviction`).
    pub group: String,
    /// Version of that kind.
    pub version: String,
    /// That kind (`Scale`, `Eviction`, `PodExecOptions`, or the parent's kind).
    pub kind: String,
    /// Verbs allowed on the subresource.
    pub verbs: Vec<String>,
}

/// Everything the API server needs to know about one built-in group/version/resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Plural resource name, e.g. `deployments`.
    pub plural: String,
    /// Singular name, e.g. `deployment` (the lower-cased kind).
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Short names, e.g. `deploy`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`.
    pub categories: Vec<String>,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Verbs on the resource itself (`create`, `get`, `list`, ...).
    pub verbs: Vec<String>,
    /// Subresources, sorted by name.
    pub subresources: Vec<SubresourceInfo>,
    /// Table columns for `kubectl get` (empty for resources that cannot be listed).
    pub columns: Vec<TableColumn>,
}

impl ResourceInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The qualified resource used in error messages (`deployments.apps`).
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.plural.clone())
    }

    /// The qualified kind used in `Invalid` errors (`Deployment.apps`).
    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group.clone(), self.kind.clone())
    }

    /// True if the resource supports `verb`.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The named subresource, if any.
    pub fn subresource(&self, name: &str) -> Option<&SubresourceInfo> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Upstream's etcd key prefix for this resource (see [`storage_prefix`]).
    pub fn storage_prefix(&self) -> String {
        storage_prefix(&self.group, &self.plural)
    }

    /// The group, version and kind upstream kube-apiserver (v1.37) stores this resource as, or
    /// `None` for resources with no storage of their own (reviews, bindings, component
    /// statuses): upstream's legacy discovery derives `storageVersionHash` from it and omits the
    /// hash for the others.
    pub fn storage_gvk(&self) -> Option<(&str, &str, &str)> {
        let virtual_resource = matches!(
            (self.group.as_str(), self.plural.as_str()),
            ("", "bindings" | "componentstatuses")
                | ("authentication.k8s.io", _)
                | ("authorization.k8s.io", _)
        );
        if virtual_resource {
            return None;
        }
        let kind = self.kind.as_str();
        Some(match (self.group.as_str(), self.plural.as_str()) {
            // Stored once for every served version, in the storage version upstream picked.
            ("autoscaling", "horizontalpodautoscalers") => ("autoscaling", "v2", kind),
            ("flowcontrol.apiserver.k8s.io", _) => ("flowcontrol.apiserver.k8s.io", "v1", kind),
            ("storage.k8s.io", "csistoragecapacities") => ("storage.k8s.io", "v1", kind),
            // events.k8s.io Events are core Events in storage (one etcd prefix for both).
            ("events.k8s.io", "events") => ("", "v1", kind),
            (g, _) => (g, self.version.as_str(), kind),
        })
    }
}

/// A group with its versions, most preferred first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name; empty for the core group.
    pub name: String,
    /// Versions, most preferred first.
    pub versions: Vec<String>,
}

impl GroupInfo {
    /// The preferred version (the first).
    pub fn preferred_version(&self) -> Option<&str> {
        self.versions.first().map(String::as_str)
    }
}

/// The embedded data could not be loaded. Only a broken build can cause this; a unit test
/// loads the table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("built-in resource data is malformed: {0}")]
pub struct ResourceDataError(String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    name: String,
    kind: String,
    #[serde(default)]
    namespaced: bool,
    #[serde(default)]
    singular_name: String,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    short_names: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

/// The table of built-in resources with its lookup indexes.
#[derive(Clone, Debug)]
pub struct ResourceTable {
    resources: Vec<ResourceInfo>,
    groups: Vec<GroupInfo>,
    by_gvr: HashMap<(String, String, String), usize>,
}

static BUILTIN: LazyLock<Result<ResourceTable, ResourceDataError>> = LazyLock::new(|| {
    let discovery = apply_delta(DISCOVERY_JSON, DELTA_JSON)?;
    ResourceTable::from_json(&discovery, TABLE_COLUMNS_JSON)
});

#[derive(Deserialize)]
struct Delta {
    remove: Vec<String>,
    add: BTreeMap<String, Vec<serde_json::Value>>,
}

/// The discovery data with a delta applied (see [`DELTA_JSON`]).
fn apply_delta(discovery: &str, delta: &str) -> Result<String, ResourceDataError> {
    let err = |e: serde_json::Error| ResourceDataError(e.to_string());
    let mut d: BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_str(discovery).map_err(err)?;
    let delta: Delta = serde_json::from_str(delta).map_err(err)?;
    for gv in &delta.remove {
        d.remove(gv);
    }
    for (gv, entries) in delta.add {
        d.entry(gv).or_default().extend(entries);
    }
    serde_json::to_string(&d).map_err(err)
}

impl ResourceTable {
    /// The table built from the embedded upstream data, parsed once per process.
    pub fn builtin() -> Result<&'static ResourceTable, ResourceDataError> {
        BUILTIN.as_ref().map_err(Clone::clone)
    }

    /// Builds a table from discovery JSON (`{"<group or core>/<version>": [APIResource...]}`)
    /// and Table-column JSON (`{"<group or core>/<version>/<resource>": [column...]}`).
    pub fn from_json(discovery: &str, columns: &str) -> Result<Self, ResourceDataError> {
        let discovery: BTreeMap<String, Vec<RawEntry>> =
            serde_json::from_str(discovery).map_err(|e| ResourceDataError(e.to_string()))?;
        let mut columns: HashMap<String, Vec<TableColumn>> =
            serde_json::from_str(columns).map_err(|e| ResourceDataError(e.to_string()))?;
        // Columns of group/versions no longer served go with them.
        columns.retain(|k, _| {
            let gv = k.rsplit_once('/').map(|(gv, _)| gv).unwrap_or_default();
            discovery.contains_key(gv)
        });

        let mut resources = Vec::new();
        for (gv, entries) in &discovery {
            let (group, version) = match gv.split_once('/') {
                Some(("core", v)) => ("", v),
                Some((g, v)) => (g, v),
                None => return Err(ResourceDataError(format!("bad group/version key {gv:?}"))),
            };
            let mut subresources: Vec<(&str, SubresourceInfo)> = Vec::new();
            for e in entries {
                match e.name.split_once('/') {
                    None => {
                        let key = format!("{}/{version}/{}", core_name(group), e.name);
                        let singular = if e.singular_name.is_empty() {
                            e.kind.to_lowercase()
                        } else {
                            e.singular_name.clone()
                        };
                        resources.push(ResourceInfo {
                            group: group.to_owned(),
                            version: version.to_owned(),
                            plural: e.name.clone(),
                            singular,
                            kind: e.kind.clone(),
                            short_names: e.short_names.clone(),
                            categories: e.categories.clone(),
                            namespaced: e.namespaced,
                            verbs: e.verbs.clone(),
                            subresources: Vec::new(),
                            columns: columns.remove(&key).unwrap_or_default(),
                        });
                    }
                    Some((parent, sub)) => subresources.push((
                        parent,
                        SubresourceInfo {
                            name: sub.to_owned(),
                            group: e.group.clone().unwrap_or_else(|| group.to_owned()),
                            version: e.version.clone().unwrap_or_else(|| version.to_owned()),
                            kind: e.kind.clone(),
                            verbs: e.verbs.clone(),
                        },
                    )),
                }
            }
            for (parent, sub) in subresources {
                let owner = resources
                    .iter_mut()
                    .find(|r| r.group == group && r.version == version && r.plural == parent)
                    .ok_or_else(|| {
                        ResourceDataError(format!(
                            "subresource {parent}/{} without parent",
                            sub.name
                        ))
                    })?;
                owner.subresources.push(sub);
            }
        }
        for r in &mut resources {
            r.subresources.sort_by(|a, b| a.name.cmp(&b.name));
        }
        if let Some(orphan) = columns.keys().next() {
            return Err(ResourceDataError(format!(
                "table columns for unknown resource {orphan}"
            )));
        }

        let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &resources {
            let versions = by_version.entry(r.group.clone()).or_default();
            if !versions.contains(&r.version) {
                versions.push(r.version.clone());
            }
        }
        let groups = by_version
            .into_iter()
            .map(|(name, mut versions)| {
                versions.sort_by(|a, b| compare_kube_versions(a, b));
                GroupInfo { name, versions }
            })
            .collect();
        let by_gvr = resources
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.group.clone(), r.version.clone(), r.plural.clone()), i))
            .collect();
        Ok(ResourceTable {
            resources,
            groups,
            by_gvr,
        })
    }

    /// All resources, grouped by group/version.
    pub fn resources(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// All groups (core first, then by name), each with its versions in preference order.
    pub fn groups(&self) -> &[GroupInfo] {
        &self.groups
    }

    /// The group's versions and preference.
    pub fn group(&self, group: &str) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == group)
    }

    /// The preferred version of a group: the highest by upstream's version priority (GA over
    /// beta over alpha, then higher numbers), e.g. `v2` for `autoscaling`.
    pub fn preferred_version(&self, group: &str) -> Option<&str> {
        self.group(group)?.preferred_version()
    }

    /// The resources served in one group/version.
    pub fn resources_in<'a>(
        &'a self,
        group: &str,
        version: &str,
    ) -> impl Iterator<Item = &'a ResourceInfo> + 'a {
        let (group, version) = (group.to_owned(), version.to_owned());
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// Lookup by group, version and plural name.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.by_gvr
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .and_then(|&i| self.resources.get(i))
    }

    /// Lookup by group, version and kind.
    pub fn by_gvk(&self, group: &str, version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources_in(group, version).find(|r| r.kind == kind)
    }

    /// Lookup by group and kind, in the group's preferred version if it serves the kind there,
    /// otherwise the most preferred version that does.
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<&ResourceInfo> {
        self.preferred_match(group, |r| r.kind == kind)
    }

    /// Resources with a short name (`deploy`, `ev`, ...), one per group in its preferred
    /// version, core group first. Several groups can share one (`ev`: core and events.k8s.io).
    pub fn by_short_name(&self, short: &str) -> Vec<&ResourceInfo> {
        self.per_group(|r| r.short_names.iter().any(|s| s == short))
    }

    /// Resources with a singular name (`pod`, `deployment`), one per group in its preferred
    /// version, core group first.
    pub fn by_singular(&self, singular: &str) -> Vec<&ResourceInfo> {
        self.per_group(|r| r.singular == singular)
    }

    /// Resources with a plural name, one per group in its preferred version, core group first.
    pub fn by_plural(&self, plural: &str) -> Vec<&ResourceInfo> {
        self.per_group(|r| r.plural == plural)
    }

    /// Resources in a category (`all` drives `kubectl get all`), preferred versions only.
    pub fn in_category(&self, category: &str) -> Vec<&ResourceInfo> {
        let mut out = Vec::new();
        for g in &self.groups {
            let mut seen: Vec<&str> = Vec::new();
            for v in &g.versions {
                for r in self.resources_in(&g.name, v) {
                    if r.categories.iter().any(|c| c == category)
                        && !seen.contains(&r.plural.as_str())
                    {
                        seen.push(&r.plural);
                        out.push(r);
                    }
                }
            }
        }
        out
    }

    fn preferred_match(
        &self,
        group: &str,
        pred: impl Fn(&ResourceInfo) -> bool,
    ) -> Option<&ResourceInfo> {
        let g = self.group(group)?;
        g.versions
            .iter()
            .find_map(|v| self.resources_in(group, v).find(|r| pred(r)))
    }

    fn per_group(&self, pred: impl Fn(&ResourceInfo) -> bool) -> Vec<&ResourceInfo> {
        self.groups
            .iter()
            .filter_map(|g| self.preferred_match(&g.name, &pred))
            .collect()
    }
}

fn core_name(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group
    }
}

/// Parses `v<major>[alpha|beta<minor>]`, upstream's "kube-like" version shape
/// (`^v([\d]+)(?:(alpha|beta)([\d]+))?$`).
fn parse_kube_version(v: &str) -> Option<(u64, u8, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((major, 2, 0));
    }
    let (stability, minor) = if let Some(m) = tail.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (0, m)
    } else {
        return None;
    };
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((major, stability, minor.parse().ok()?))
}

/// Upstream `version.CompareKubeAwareVersionStrings`, as an ordering where the most preferred
/// version sorts first: GA before beta before alpha, higher major then higher minor first, and
/// non-Kubernetes-like versions last in lexical order.
pub fn compare_kube_versions(a: &str, b: &str) -> Ordering {
    match (parse_kube_version(a), parse_kube_version(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The groups kube-apiserver itself stores through its `DefaultStorageFactory` (everything but
/// the apiextensions and aggregator servers). Their keys are `/registry/<resource>/...`.
const KUBE_APISERVER_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Upstream's etcd key prefix for a resource, without a trailing slash:
/// `/registry/<prefix>` followed by `/<namespace>/<name>` or `/<name>` (see [`object_key`]).
///
/// Mirrors upstream exactly so that etcd dumps look familiar and an etcd store could in
/// principle be shared:
/// - cohabiting resources share one prefix: `events.k8s.io` events are stored as core events,
///   `extensions` deployments/daemonsets/replicasets as `apps`, `extensions` ingresses and
///   networkpolicies as `networking.k8s.io`;
/// - `SpecialDefaultResourcePrefixes` (kubernetes `pkg/kubeapiserver`): replicationcontrollers →
///   `controllers`, endpoints → `services/endpoints`, nodes → `minions`, services →
///   `services/specs`, ingresses → `ingress`;
/// - every other kube-apiserver resource uses its plural name;
/// - resources of the apiextensions and aggregator servers (CRDs, APIServices) and all custom
///   resources use upstream's `SimpleStorageFactory` layout `<group>/<resource>`.
///
/// Subresources (`pods/status`) live in their parent's key, so pass the parent resource.
pub fn storage_prefix(group: &str, resource: &str) -> String {
    let (group, resource) = match (group, resource) {
        ("events.k8s.io", "events") => ("", "events"),
        ("extensions", r @ ("deployments" | "daemonsets" | "replicasets")) => ("apps", r),
        ("extensions", r @ ("ingresses" | "networkpolicies")) => ("networking.k8s.io", r),
        ("extensions", "podsecuritypolicies") => ("policy", "podsecuritypolicies"),
        other => other,
    };
    if !KUBE_APISERVER_GROUPS.contains(&group) {
        return format!("/registry/{group}/{resource}");
    }
    let prefix = match (group, resource) {
        ("", "replicationcontrollers") => "controllers".to_owned(),
        ("", "endpoints") => "services/endpoints".to_owned(),
        ("", "nodes") => "minions".to_owned(),
        ("", "services") => "services/specs".to_owned(),
        ("networking.k8s.io", "ingresses") => "ingress".to_owned(),
        (_, r) => r.to_lowercase(),
    };
    format!("/registry/{prefix}")
}

/// Upstream's `NamespaceKeyFunc` / `NoNamespaceKeyFunc`: the key of one object under `prefix`
/// (from [`storage_prefix`]). A namespaced resource needs a namespace and the name must be a
/// valid path segment; the errors are upstream's 400s.
pub fn object_key(prefix: &str, namespace: Option<&str>, name: &str) -> Result<String, ApiError> {
    let root = match namespace {
        Some("") => return Err(ApiError::bad_request("Namespace parameter required.")),
        Some(ns) => format!("{prefix}/{ns}"),
        None => prefix.to_owned(),
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("Name parameter required."));
    }
    let msgs = is_valid_path_segment_name(name);
    if !msgs.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Name parameter invalid: {}: {}",
            crate::gofmt::quote(name),
            msgs.join(";")
        )));
    }
    Ok(format!("{root}/{name}"))
}

/// The key prefix a list or watch ranges over: every object of the resource, or every object in
/// one namespace. Always ends in `/`, so `pods/default` cannot match `pods/default-2`.
pub fn list_prefix(prefix: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{prefix}/{ns}/"),
        _ => format!("{prefix}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static ResourceTable {
        match ResourceTable::builtin() {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn embedded_data_loads_and_covers_required_groups() {
        let t = table();
        assert!(t.resources().len() > 50);
        for (g, v) in REQUIRED_GROUP_VERSIONS {
            assert!(t.resources_in(g, v).next().is_some(), "{g}/{v} missing");
        }
    }

    #[test]
    fn deployment_entry() {
        let t = table();
        let d = t.get("apps", "v1", "deployments");
        let d = d.unwrap_or_else(|| panic!("no deployments"));
        assert_eq!(d.kind, "Deployment");
        assert_eq!(d.singular, "deployment");
        assert_eq!(d.short_names, ["deploy"]);
        assert_eq!(d.categories, ["all"]);
        assert!(d.namespaced);
        assert_eq!(
            d.verbs,
            [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ]
        );
        assert_eq!(d.api_version(), "apps/v1");
        assert_eq!(d.group_resource().to_string(), "deployments.apps");
        assert_eq!(d.group_kind().to_string(), "Deployment.apps");
        let scale = d.subresource("scale").unwrap_or_else(|| panic!("no scale"));
        assert_eq!(
            (
                scale.group.as_str(),
                scale.version.as_str(),
                scale.kind.as_str()
            ),
            ("autoscaling", "v1", "Scale")
        );
        assert_eq!(scale.verbs, ["get", "patch", "update"]);
        let status = d
            .subresource("status")
            .unwrap_or_else(|| panic!("no status"));
        assert_eq!(
            (status.group.as_str(), status.kind.as_str()),
            ("apps", "Deployment")
        );
        let names: Vec<&str> = d.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(d.columns[0].format, "name");
        assert_eq!(d.columns[5].priority, 1);
        assert_eq!(d.storage_prefix(), "/registry/deployments");
    }

    #[test]
    fn pod_subresources() {
        let t = table();
        let p = t.get("", "v1", "pods").unwrap_or_else(|| panic!("no pods"));
        let subs: Vec<&str> = p.subresources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            subs,
            [
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status"
            ]
        );
        let ev = p
            .subresource("eviction")
            .unwrap_or_else(|| panic!("no eviction"));
        assert_eq!(
            (ev.group.as_str(), ev.version.as_str(), ev.kind.as_str()),
            ("policy", "v1", "Eviction")
        );
        assert_eq!(ev.verbs, ["create"]);
        assert_eq!(
            p.subresource("exec").map(|s| s.kind.as_str()),
            Some("PodExecOptions")
        );
        assert_eq!(
            p.subresource("log").map(|s| s.verbs.clone()),
            Some(vec!["get".to_owned()])
        );
        let sa = t
            .get("", "v1", "serviceaccounts")
            .unwrap_or_else(|| panic!("no sa"));
        let token = sa
            .subresource("token")
            .unwrap_or_else(|| panic!("no token"));
        assert_eq!(
            (token.group.as_str(), token.kind.as_str()),
            ("authentication.k8s.io", "TokenRequest")
        );
        let cols: Vec<(&str, i32)> = p
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.priority))
            .collect();
        assert_eq!(
            cols[..5],
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0)
            ]
        );
    }

    #[test]
    fn lookups() {
        let t = table();
        assert_eq!(t.preferred_version("autoscaling"), Some("v2"));
        assert_eq!(
            t.preferred_version("flowcontrol.apiserver.k8s.io"),
            Some("v1")
        );
        assert_eq!(t.preferred_version("storage.k8s.io"), Some("v1"));
        assert_eq!(t.preferred_version(""), Some("v1"));
        assert_eq!(t.groups()[0].name, "");
        assert_eq!(
            t.by_group_kind("autoscaling", "HorizontalPodAutoscaler")
                .map(|r| r.version.as_str()),
            Some("v2")
        );
        assert_eq!(
            t.by_gvk("autoscaling", "v1", "HorizontalPodAutoscaler")
                .map(|r| r.plural.as_str()),
            Some("horizontalpodautoscalers")
        );
        let ev: Vec<String> = t
            .by_short_name("ev")
            .iter()
            .map(|r| r.api_version())
            .collect();
        assert_eq!(ev, ["v1", "events.k8s.io/v1"]);
        let po: Vec<&str> = t
            .by_short_name("po")
            .iter()
            .map(|r| r.plural.as_str())
            .collect();
        assert_eq!(po, ["pods"]);
        assert_eq!(
            t.by_short_name("crds").first().map(|r| r.kind.as_str()),
            Some("CustomResourceDefinition")
        );
        assert_eq!(
            t.by_singular("endpoints")
                .first()
                .map(|r| r.plural.as_str()),
            Some("endpoints")
        );
        assert_eq!(
            t.by_singular("networkpolicy")
                .first()
                .map(|r| r.group.as_str()),
            Some("networking.k8s.io")
        );
        assert_eq!(
            t.by_plural("horizontalpodautoscalers")
                .first()
                .map(|r| r.version.as_str()),
            Some("v2")
        );
        assert!(t.by_short_name("nope").is_empty());
        assert!(t.get("apps", "v1", "pods").is_none());
        let all: Vec<&str> = t
            .in_category("all")
            .iter()
            .map(|r| r.plural.as_str())
            .collect();
        for want in [
            "pods",
            "services",
            "deployments",
            "replicasets",
            "statefulsets",
            "daemonsets",
            "jobs",
            "cronjobs",
            "horizontalpodautoscalers",
            "replicationcontrollers",
        ] {
            assert!(all.contains(&want), "{want} not in category all: {all:?}");
        }
        assert_eq!(
            all.iter()
                .filter(|r| **r == "horizontalpodautoscalers")
                .count(),
            1
        );
        let ns = t
            .get("", "v1", "namespaces")
            .unwrap_or_else(|| panic!("no namespaces"));
        assert!(!ns.namespaced);
        assert!(!ns.has_verb("deletecollection"));
        assert!(t
            .get("", "v1", "bindings")
            .map(|b| b.columns.is_empty())
            .unwrap_or(false));
    }

    #[test]
    fn version_priority() {
        let mut v = vec![
            "v1beta1",
            "v1",
            "v2alpha1",
            "v2",
            "v1alpha1",
            "v10",
            "foo",
            "v1beta2",
            "v11alpha2",
            "bar",
        ];
        v.sort_by(|a, b| compare_kube_versions(a, b));
        assert_eq!(
            v,
            [
                "v10",
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v11alpha2",
                "v2alpha1",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
    }

    #[test]
    fn storage_prefixes_match_upstream() {
        for (g, r, want) in [
            ("", "pods", "/registry/pods"),
            ("", "services", "/registry/services/specs"),
            ("", "endpoints", "/registry/services/endpoints"),
            ("", "nodes", "/registry/minions"),
            ("", "replicationcontrollers", "/registry/controllers"),
            ("", "events", "/registry/events"),
            ("events.k8s.io", "events", "/registry/events"),
            ("networking.k8s.io", "ingresses", "/registry/ingress"),
            ("extensions", "ingresses", "/registry/ingress"),
            ("extensions", "deployments", "/registry/deployments"),
            (
                "networking.k8s.io",
                "ingressclasses",
                "/registry/ingressclasses",
            ),
            ("apps", "deployments", "/registry/deployments"),
            ("coordination.k8s.io", "leases", "/registry/leases"),
            (
                "rbac.authorization.k8s.io",
                "clusterroles",
                "/registry/clusterroles",
            ),
            (
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                "/registry/apiextensions.k8s.io/customresourcedefinitions",
            ),
            (
                "apiregistration.k8s.io",
                "apiservices",
                "/registry/apiregistration.k8s.io/apiservices",
            ),
            (
                "stable.example.com",
                "crontabs",
                "/registry/stable.example.com/crontabs",
            ),
        ] {
            assert_eq!(storage_prefix(g, r), want, "{g}/{r}");
        }
    }

    #[test]
    fn object_keys() {
        assert_eq!(
            object_key("/registry/pods", Some("default"), "web"),
            Ok("/registry/pods/default/web".into())
        );
        assert_eq!(
            object_key("/registry/minions", None, "n1"),
            Ok("/registry/minions/n1".into())
        );
        assert_eq!(
            object_key("/registry/pods", Some(""), "web").map_err(|e| e.message),
            Err("Namespace parameter required.".into())
        );
        assert_eq!(
            object_key("/registry/pods", Some("ns"), "").map_err(|e| e.message),
            Err("Name parameter required.".into())
        );
        let e = object_key("/registry/pods", Some("ns"), "a/b%").err();
        assert_eq!(
            e.as_ref().map(|e| e.message.as_str()),
            Some(r#"Name parameter invalid: "a/b%": may not contain '/';may not contain '%'"#)
        );
        assert_eq!(e.map(|e| e.code), Some(400));
        assert_eq!(
            list_prefix("/registry/pods", Some("default")),
            "/registry/pods/default/"
        );
        assert_eq!(list_prefix("/registry/pods", None), "/registry/pods/");
    }

    #[test]
    fn malformed_data_is_an_error() {
        assert!(ResourceTable::from_json("{", "{}").is_err());
        assert!(ResourceTable::from_json(r#"{"v1":[]}"#, "{}").is_err());
        assert!(
            ResourceTable::from_json(r#"{"core/v1":[{"name":"a/b","kind":"A"}]}"#, "{}").is_err()
        );
        assert!(ResourceTable::from_json(r#"{"core/v1":[]}"#, r#"{"core/v1/x":[]}"#).is_err());
    }
}
