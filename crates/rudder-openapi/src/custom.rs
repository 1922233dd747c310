//! The schemas of custom resources, as upstream's apiextensions-apiserver
//! (`pkg/controller/openapi/builder`) publishes them: the CRD version's `openAPIV3Schema` under
//! `<reversed group>.<version>.<Kind>` (`dev.rudder.demo.v1.Widget`), with `apiVersion`,
//! `kind` and a `metadata` reference to `ObjectMeta` set on top, its GVK, and a `<Kind>List`.

use rudder_api::resources::ResourceInfo;
use serde_json::{json, Map, Value};

use crate::schema::{list_schema, schema_ref, Components, Gvk};
use crate::types::META;

/// One served version of a custom resource and its schema (`openAPIV3Schema`; `null` when the
/// version has none, which upstream publishes as an object that allows anything).
#[derive(Clone, Debug)]
pub struct CustomKind {
    pub info: ResourceInfo,
    pub schema: Value,
}

/// `dev.rudder.demo.v1.Widget` for `demo.rudder.dev/v1, Kind=Widget`.
pub(crate) fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

// Upstream's descriptions of TypeMeta's and ObjectMeta's fields on a kind.
const API_VERSION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn kind_schema(k: &CustomKind) -> Value {
    let mut schema = match &k.schema {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".to_owned()));
    let props = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props.insert(
            "apiVersion".to_owned(),
            json!({"description": API_VERSION, "type": "string"}),
        );
        props.insert(
            "kind".to_owned(),
            json!({"description": KIND, "type": "string"}),
        );
        let object_meta = (META.object_meta.schema_name)();
        props.insert(
            "metadata".to_owned(),
            json!({"description": METADATA, "allOf": [schema_ref(&object_meta)]}),
        );
    }
    let i = &k.info;
    schema.insert(
        "x-kubernetes-group-version-kind".to_owned(),
        json!([Gvk::new(&i.group, &i.version, &i.kind).to_json()]),
    );
    Value::Object(schema)
}

/// Adds the schemas of `kinds` (of one group/version) to `components`.
pub(crate) fn add(components: &mut Components, kinds: &[&CustomKind]) {
    for k in kinds {
        let i = &k.info;
        let name = definition_name(&i.group, &i.version, &i.kind);
        components.schemas.insert(name.clone(), kind_schema(k));
        components
            .kinds
            .insert(Gvk::new(&i.group, &i.version, &i.kind), name.clone());
        if !i.has_verb("list") {
            continue;
        }
        if let Some(mut list) = list_schema(&components.schemas, &name, i) {
            list["x-kubernetes-group-version-kind"] =
                json!([Gvk::new(&i.group, &i.version, &format!("{}List", i.kind)).to_json()]);
            components.schemas.insert(format!("{name}List"), list);
        }
    }
}
