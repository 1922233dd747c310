//! The Rust types behind the served kinds: k8s-openapi's generated API types, each with the
//! `schemars` schema k8s-openapi derives from upstream's own OpenAPI definitions (descriptions,
//! `required`, formats, `x-kubernetes-int-or-string`).

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{JsonSchema, Schema, SchemaGenerator};
use k8s_openapi::Resource;

/// One kind k8s-openapi has a type for.
pub(crate) struct KindType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Upstream's definition name (`io.k8s.api.apps.v1.Deployment`).
    pub schema_name: fn() -> Cow<'static, str>,
    /// Adds the type's schema (and every schema it references) to the generator.
    pub add: fn(&mut SchemaGenerator) -> Schema,
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

macro_rules! kinds {
    ($($t:ty),* $(,)?) => {
        /// Every kind k8s-openapi can describe.
        pub(crate) static KINDS: &[KindType] = &[$(KindType {
            group: <$t as Resource>::GROUP,
            version: <$t as Resource>::VERSION,
            kind: <$t as Resource>::KIND,
            schema_name: <$t as JsonSchema>::schema_name,
            add: add::<$t>,
        }),*];
    };
}

include!("kinds.rs");

/// The type of `group/version, Kind`, if k8s-openapi has one.
pub(crate) fn find(group: &str, version: &str, kind: &str) -> Option<&'static KindType> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

/// A meta/v1 type every group/version document refers to.
pub(crate) struct MetaType {
    pub schema_name: fn() -> Cow<'static, str>,
    pub add: fn(&mut SchemaGenerator) -> Schema,
}

macro_rules! meta_type {
    ($t:ty) => {
        MetaType {
            schema_name: <$t as JsonSchema>::schema_name,
            add: add::<$t>,
        }
    };
}

/// The request and response bodies of the generic verbs.
pub(crate) struct MetaTypes {
    pub delete_options: MetaType,
    pub status: MetaType,
    pub patch: MetaType,
    pub watch_event: MetaType,
    pub api_resource_list: MetaType,
    /// Custom resources' schemas refer to it by name (their own schema has no `metadata`).
    pub object_meta: MetaType,
}

pub(crate) static META: MetaTypes = MetaTypes {
    delete_options: meta_type!(meta::DeleteOptions),
    status: meta_type!(meta::Status),
    patch: meta_type!(meta::Patch),
    watch_event: meta_type!(meta::WatchEvent<serde_json::Value>),
    api_resource_list: meta_type!(meta::APIResourceList),
    object_meta: meta_type!(meta::ObjectMeta),
};
