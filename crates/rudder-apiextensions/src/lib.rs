//! Structural schemas of CustomResourceDefinitions and what the API server does with them
//! (upstream `k8s.io/apiextensions-apiserver/pkg/apiserver/schema` and its `pruning`,
//! `defaulting`, `objectmeta` and `listtype` packages, plus the kube-openapi validator the
//! apiextensions server runs over custom resources).
//!
//! A CRD version's `openAPIV3Schema` is parsed once into a [`Structural`] (which also checks
//! that it is structural, with upstream's messages); the server then, per request:
//! [`Structural::prune`]s fields the schema does not know, applies [`Structural::default`]s, and
//! [`Structural::validate`]s the object. Everything works on the objects' JSON.

mod cel;
mod default;
mod format;
mod meta;
mod prune;
mod schema;
mod validate;

use rudder_api::field::{ErrorList, FieldError, Path};
use serde_json::Value;

pub use schema::Node;

/// A parsed structural schema (one CRD version's `openAPIV3Schema`).
#[derive(Clone, Debug)]
pub struct Structural {
    root: Node,
}

impl Structural {
    /// Parse + structural check (upstream's `NewStructural` + `ValidateStructural`), with
    /// upstream's messages and field paths relative to the schema root (the caller prefixes
    /// `spec.versions[i].schema.openAPIV3Schema`; errors here are rendered without a prefix,
    /// so use [`Structural::from_schema_at`] to get them under a path).
    pub fn from_schema(schema: &Value) -> Result<Structural, Vec<FieldError>> {
        Self::from_schema_at(schema, &Path::nil())
    }

    /// [`Structural::from_schema`] with the errors' paths under `at` (e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`).
    pub fn from_schema_at(schema: &Value, at: &Path) -> Result<Structural, Vec<FieldError>> {
        let mut errs = Vec::new();
        let root = schema::parse(schema, at, schema::Level::Root, &mut errs);
        if errs.is_empty() {
            schema::check_structural(&root, schema, at, &mut errs);
        }
        if errs.is_empty() {
            errs.extend(default::validate_defaults(&root, at));
        }
        if errs.is_empty() {
            Ok(Structural { root })
        } else {
            // Upstream sorts the structural errors so their order does not depend on map order.
            errs.sort_by_key(|e| e.to_string());
            errs.dedup();
            Err(errs)
        }
    }

    /// The root of the schema.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Whether any node has a `default` (reads then need defaulting too).
    pub fn has_defaults(&self) -> bool {
        self.root.has_defaults()
    }

    /// Drops fields the schema does not know (respecting `x-kubernetes-preserve-unknown-fields`
    /// and `x-kubernetes-embedded-resource`, which keeps apiVersion/kind/metadata); returns the
    /// removed paths (`spec.foo`, `spec.items[0].bar`) in the order met.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        prune::prune(obj, Some(&self.root), true, "", &mut out);
        out
    }

    /// Applies `default`s as upstream does (inside array items and map values too; a `null`
    /// of a non-nullable field is replaced by its default, or dropped when it has none).
    pub fn default(&self, obj: &mut Value) {
        default::default(obj, &self.root);
        default::prune_non_nullable_nulls(obj, &self.root);
    }

    /// OpenAPI validation of a custom resource with upstream's errors: the schema's value
    /// validations, list-type uniqueness and embedded resources' metadata. On update `old` is
    /// the stored object: errors in parts the update did not change are not reported
    /// (upstream's validation ratcheting), so a schema made stricter does not block updates of
    /// other fields.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        let mut errs = ErrorList::new();
        validate::validate(&self.root, obj, old, None, "", true, &mut errs.0);
        meta::validate_embedded(&self.root, obj, &Path::nil(), true, &mut errs.0);
        validate::list_types(&self.root, obj, old, &Path::nil(), &mut errs.0);
        self.rules(obj, old, &mut errs);
        errs
    }

    /// The CEL rules run only over an object of the right shape (upstream's
    /// `hasBlockingErr`): after a type error they are reported as not checked.
    fn rules(&self, obj: &Value, old: Option<&Value>, errs: &mut ErrorList) {
        if !self.root.has_rules() {
            return;
        }
        if errs
            .iter()
            .any(|e| e.error_type == rudder_api::field::ErrorType::TypeInvalid)
        {
            errs.push(FieldError {
                error_type: rudder_api::field::ErrorType::Invalid,
                field: Path::nil().to_string(),
                bad_value: rudder_api::field::BadValue::Json(Value::Null),
                detail: "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
            });
            return;
        }
        cel::validate(&self.root, obj, old, &Path::nil(), &mut errs.0);
    }

    /// Validation of a write through the `status` subresource: only `status` is checked
    /// against its schema, as upstream's status strategy does.
    pub fn validate_status(&self, obj: &Value, old: Option<&Value>) -> ErrorList {
        let mut errs = ErrorList::new();
        let (Some(schema), Some(status)) = (self.root.properties.get("status"), obj.get("status"))
        else {
            return errs;
        };
        let old_status = old.and_then(|o| o.get("status"));
        validate::validate(
            schema,
            status,
            old_status,
            None,
            "status",
            false,
            &mut errs.0,
        );
        validate::list_types(
            schema,
            status,
            old_status,
            &Path::new("status"),
            &mut errs.0,
        );
        meta::validate_embedded(schema, status, &Path::new("status"), false, &mut errs.0);
        // Upstream runs the rules over the whole object; unchanged parts are ratcheted.
        self.rules(obj, old, &mut errs);
        errs
    }
}

/// The JSON type name the OpenAPI validator uses for a value.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
