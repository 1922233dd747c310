//! `components.schemas` of one group/version document: the schema of every kind the group/
//! version serves (and of its list kind), of the kinds its subresources take (`Scale`,
//! `Eviction`, ...), of the generic request and response bodies (`DeleteOptions`, `Status`,
//! `Patch`, `WatchEvent`, `APIResourceList`), and of every type those reference.
//!
//! Generated with k8s-openapi's `schemars` support in OpenAPI 3.0 mode (references are
//! `#/components/schemas/<name>`, and a reference with a description next to it becomes
//! `allOf: [{$ref}]`, the shape upstream publishes), then completed with what upstream adds
//! and k8s-openapi's schemas lack: the list and patch extensions of every field
//! ([`crate::semantics`]), `x-kubernetes-group-version-kind` on kinds, and the `<Kind>List`
//! schemas.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::schemars::generate::SchemaSettings;
use rudder_api::resources::ResourceInfo;
use serde_json::{json, Map, Value};

use crate::types::{self, META};
use crate::{semantics, OpenApiError};

/// A group/version/kind, ordered as upstream prints them (group, kind, version).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// The schemas of one document, and which schema describes each kind.
pub(crate) struct Components {
    pub schemas: Map<String, Value>,
    /// Kind → definition name, for the kinds that have a schema.
    pub kinds: BTreeMap<Gvk, String>,
    pub delete_options: String,
    pub status: String,
    pub patch: String,
    pub watch_event: String,
    pub api_resource_list: String,
}

impl Components {
    /// `{"$ref": ...}` to the schema of `gvk`, or a plain object schema for kinds without one
    /// (the `*Options` kinds of connect subresources).
    pub fn kind_ref(&self, gvk: &Gvk) -> Value {
        match self.kinds.get(gvk) {
            Some(name) => schema_ref(name),
            None => json!({"type": "object"}),
        }
    }

    /// `{"$ref": ...}` to the list schema of `gvk`.
    pub fn list_ref(&self, gvk: &Gvk) -> Value {
        match self.kinds.get(gvk) {
            Some(name) => schema_ref(&format!("{name}List")),
            None => json!({"type": "object"}),
        }
    }
}

pub(crate) fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// Generates the schemas for `resources` (one group/version). `all_group_versions` are every
/// group/version the server serves: upstream lists each as a GVK of `DeleteOptions` and
/// `WatchEvent`, which every group registers.
pub(crate) fn generate(
    resources: &[&ResourceInfo],
    all_group_versions: &BTreeSet<(String, String)>,
) -> Result<Components, OpenApiError> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = BTreeMap::new();
    let mut add_kind = |generator: &mut _, gvk: Gvk| {
        if kinds.contains_key(&gvk) {
            return;
        }
        if let Some(t) = types::find(&gvk.group, &gvk.version, &gvk.kind) {
            (t.add)(generator);
            kinds.insert(gvk, (t.schema_name)().into_owned());
        }
    };
    for r in resources {
        add_kind(&mut generator, Gvk::new(&r.group, &r.version, &r.kind));
        for sub in &r.subresources {
            add_kind(
                &mut generator,
                Gvk::new(&sub.group, &sub.version, &sub.kind),
            );
        }
    }
    for meta in [
        &META.delete_options,
        &META.status,
        &META.patch,
        &META.watch_event,
        &META.api_resource_list,
        &META.object_meta,
    ] {
        (meta.add)(&mut generator);
    }
    let mut schemas = generator.take_definitions(true);

    let kind_schemas: BTreeSet<&String> = kinds.values().collect();
    for name in kind_schemas {
        if let Some(Value::Object(schema)) = schemas.get_mut(name.as_str()) {
            upstream_required(name, schema);
        }
    }

    let unmatched = semantics::apply(&mut schemas, semantics::rules()?);
    for rule in unmatched {
        tracing::debug!(schema = %rule.schema, field = ?rule.field, "list/patch semantics for a field k8s-openapi does not have");
    }

    // The kinds: their GVK, and a list schema for each listable one.
    let mut gvks: BTreeMap<String, BTreeSet<Gvk>> = BTreeMap::new();
    for (gvk, name) in &kinds {
        gvks.entry(name.clone()).or_default().insert(gvk.clone());
    }
    for r in resources {
        let gvk = Gvk::new(&r.group, &r.version, &r.kind);
        let Some(name) = kinds.get(&gvk) else {
            continue;
        };
        if !r.has_verb("list") {
            continue;
        }
        let list_name = format!("{name}List");
        if let Some(list) = list_schema(&schemas, name, r) {
            schemas.insert(list_name.clone(), list);
            gvks.entry(list_name).or_default().insert(Gvk::new(
                &r.group,
                &r.version,
                &format!("{}List", r.kind),
            ));
        }
    }

    // The generic kinds, as every group registers them.
    let meta_name = |m: &types::MetaType| (m.schema_name)().into_owned();
    let delete_options = meta_name(&META.delete_options);
    let watch_event = meta_name(&META.watch_event);
    let status = meta_name(&META.status);
    let api_resource_list = meta_name(&META.api_resource_list);
    let mut every_group = all_group_versions.clone();
    every_group.insert((String::new(), "v1".to_owned()));
    for (g, v) in &every_group {
        gvks.entry(delete_options.clone())
            .or_default()
            .insert(Gvk::new(g, v, "DeleteOptions"));
        gvks.entry(watch_event.clone())
            .or_default()
            .insert(Gvk::new(g, v, "WatchEvent"));
    }
    gvks.entry(status.clone())
        .or_default()
        .insert(Gvk::new("", "v1", "Status"));
    gvks.entry(api_resource_list.clone())
        .or_default()
        .insert(Gvk::new("", "v1", "APIResourceList"));

    for (name, set) in gvks {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
            schema.insert(
                "x-kubernetes-group-version-kind".to_owned(),
                Value::Array(set.iter().map(Gvk::to_json).collect()),
            );
        }
    }

    for schema in schemas.values_mut() {
        normalize_refs(schema);
    }

    Ok(Components {
        schemas,
        kinds,
        delete_options,
        status,
        patch: meta_name(&META.patch),
        watch_event,
        api_resource_list,
    })
}

/// Kinds whose `spec` upstream leaves optional (`json:"spec,omitempty"`) but k8s-openapi's
/// Rust type makes non-optional, and so its schema lists as required.
const SPEC_OPTIONAL_UPSTREAM: &[&str] = &[
    "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBinding",
    "io.k8s.api.apps.v1.DaemonSet",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
    "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
    "io.k8s.api.batch.v1.CronJob",
    "io.k8s.api.flowcontrol.v1.FlowSchema",
    "io.k8s.api.flowcontrol.v1.PriorityLevelConfiguration",
    "io.k8s.api.networking.v1.IPAddress",
];

/// Puts back upstream's `required` list of a kind where k8s-openapi changed it for its Rust
/// types: it makes every kind's `metadata` required (its `resource_metadata_not_optional`
/// fixup; upstream requires it only on core/v1 Event), the `spec` of the kinds above, and it
/// makes events.k8s.io/v1 Event's `eventTime` optional, which upstream requires.
fn upstream_required(name: &str, schema: &mut Map<String, Value>) {
    let mut required: Vec<Value> = match schema.remove("required") {
        Some(Value::Array(r)) => r,
        _ => Vec::new(),
    };
    if name != "io.k8s.api.core.v1.Event" {
        required.retain(|f| f != "metadata");
    }
    if SPEC_OPTIONAL_UPSTREAM.contains(&name) {
        required.retain(|f| f != "spec");
    }
    if name == "io.k8s.api.events.v1.Event" && !required.iter().any(|f| f == "eventTime") {
        required.push(Value::from("eventTime"));
    }
    if !required.is_empty() {
        schema.insert("required".to_owned(), Value::Array(required));
    }
}

/// The `<Kind>List` schema upstream publishes for a listable kind (k8s-openapi has one generic
/// `List<T>` without a schema).
pub(crate) fn list_schema(
    schemas: &Map<String, Value>,
    item: &str,
    r: &ResourceInfo,
) -> Option<Value> {
    let props = schemas.get(item)?.get("properties")?;
    let mut properties = Map::new();
    for field in ["apiVersion", "kind"] {
        if let Some(p) = props.get(field) {
            properties.insert(field.to_owned(), p.clone());
        }
    }
    properties.insert(
        "items".to_owned(),
        json!({
            "description": format!("List of {}.", r.plural),
            "type": "array",
            "items": schema_ref(item),
        }),
    );
    properties.insert(
        "metadata".to_owned(),
        json!({
            "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
        }),
    );
    Some(json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "properties": properties,
        "required": ["items"],
    }))
}

/// OpenAPI 3.0 ignores everything next to a `$ref`; upstream wraps such references as
/// `allOf: [{$ref}]` with the siblings beside it. schemars does the same for what it generates;
/// this also covers what was added afterwards.
fn normalize_refs(value: &mut Value) {
    match value {
        Value::Object(obj) => {
            for v in obj.values_mut() {
                normalize_refs(v);
            }
            // Only a string `$ref` is a reference: a `properties` map can name a field `$ref`
            // (JSONSchemaProps does).
            if obj.len() > 1 && obj.get("$ref").is_some_and(Value::is_string) {
                if let Some(r) = obj.remove("$ref") {
                    match obj.get_mut("allOf") {
                        Some(Value::Array(all_of)) => all_of.push(json!({"$ref": r})),
                        _ => {
                            obj.insert("allOf".to_owned(), json!([{"$ref": r}]));
                        }
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_siblings_become_all_of() {
        let mut v = json!({"properties": {
            "a": {"$ref": "#/x", "description": "d"},
            "b": {"$ref": "#/y"},
        }});
        normalize_refs(&mut v);
        assert_eq!(
            v,
            json!({"properties": {
                "a": {"allOf": [{"$ref": "#/x"}], "description": "d"},
                "b": {"$ref": "#/y"},
            }})
        );
    }
}
