//! Upstream's list, map and patch semantics per field (`data/list-and-patch-semantics.tsv`,
//! extracted from the `+listType`, `+listMapKey`, `+mapType`, `+structType` markers and the
//! `patchStrategy`/`patchMergeKey` tags of the upstream API types) as the OpenAPI extensions
//! kube-apiserver publishes them with: `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`,
//! `x-kubernetes-map-type`, `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`.
//! kubectl computes strategic merge patches from these and server-side apply merges by them.
//!
//! k8s-openapi's schemas carry none of them, so they are added here, to every field the table
//! covers.

use std::sync::LazyLock;

use serde_json::{Map, Value};

use crate::OpenApiError;

const TSV: &str = include_str!("../data/list-and-patch-semantics.tsv");

/// The extensions of one field (or, for `(struct)` rows, of one type).
#[derive(Debug)]
pub(crate) struct Rule {
    /// Upstream's definition name of the type (`io.k8s.api.core.v1.Container`).
    pub schema: String,
    /// The JSON field, or `None` for a type-level rule.
    pub field: Option<String>,
    pub extensions: Vec<(&'static str, Value)>,
}

static RULES: LazyLock<Result<Vec<Rule>, OpenApiError>> = LazyLock::new(|| parse(TSV));

/// The parsed table, once per process.
pub(crate) fn rules() -> Result<&'static [Rule], OpenApiError> {
    RULES.as_deref().map_err(Clone::clone)
}

/// Upstream's definition name of a type in a Go API package (`core/v1` → `io.k8s.api.core.v1`,
/// `meta/v1` → `io.k8s.apimachinery.pkg.apis.meta.v1`).
pub(crate) fn schema_name(group_version: &str, ty: &str) -> String {
    let package = group_version.replace('/', ".");
    if group_version.starts_with("meta/") {
        format!("io.k8s.apimachinery.pkg.apis.{package}.{ty}")
    } else {
        format!("io.k8s.api.{package}.{ty}")
    }
}

fn parse(tsv: &str) -> Result<Vec<Rule>, OpenApiError> {
    let mut rules = Vec::new();
    for (n, line) in tsv.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [gv, ty, field, _go_type, strategy, merge_key, list_type, map_keys, map_type, struct_type] =
            cols[..]
        else {
            return Err(OpenApiError::Semantics(format!(
                "line {}: expected 10 columns, found {}",
                n + 1,
                cols.len()
            )));
        };
        let mut extensions = Vec::new();
        let mut put = |key: &'static str, value: &str| {
            if !value.is_empty() {
                extensions.push((key, Value::String(value.to_owned())));
            }
        };
        let field = if field == "(struct)" {
            // `+structType=atomic` is published as the type's map type.
            put("x-kubernetes-map-type", struct_type);
            None
        } else {
            put("x-kubernetes-list-type", list_type);
            put("x-kubernetes-map-type", map_type);
            put("x-kubernetes-patch-merge-key", merge_key);
            put("x-kubernetes-patch-strategy", strategy);
            if !map_keys.is_empty() {
                let keys = map_keys
                    .split(',')
                    .map(|k| Value::String(k.to_owned()))
                    .collect();
                extensions.push(("x-kubernetes-list-map-keys", Value::Array(keys)));
            }
            Some(field.to_owned())
        };
        if !extensions.is_empty() {
            rules.push(Rule {
                schema: schema_name(gv, ty),
                field,
                extensions,
            });
        }
    }
    Ok(rules)
}

/// Adds the extensions to every schema and property of `schemas` the rules cover. Returns the
/// rules whose type is present but whose field is not (a k8s-openapi/upstream mismatch).
pub(crate) fn apply<'r>(schemas: &mut Map<String, Value>, rules: &'r [Rule]) -> Vec<&'r Rule> {
    let mut unmatched = Vec::new();
    for rule in rules {
        let Some(Value::Object(schema)) = schemas.get_mut(&rule.schema) else {
            continue;
        };
        let target = match &rule.field {
            None => Some(schema),
            Some(field) => match schema.get_mut("properties") {
                Some(Value::Object(props)) => match props.get_mut(field) {
                    Some(Value::Object(prop)) => Some(prop),
                    _ => None,
                },
                _ => None,
            },
        };
        match target {
            Some(obj) => {
                for (key, value) in &rule.extensions {
                    obj.insert((*key).to_owned(), value.clone());
                }
            }
            None => unmatched.push(rule),
        }
    }
    unmatched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        let rules = rules().unwrap_or_else(|e| panic!("{e}"));
        assert!(rules.len() > 500, "{}", rules.len());
        let ports = rules
            .iter()
            .find(|r| {
                r.schema == "io.k8s.api.core.v1.Container" && r.field.as_deref() == Some("ports")
            })
            .unwrap_or_else(|| panic!("no Container.ports rule"));
        let ext: Map<String, Value> = ports
            .extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        assert_eq!(
            Value::Object(ext),
            serde_json::json!({
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-patch-merge-key": "containerPort",
                "x-kubernetes-patch-strategy": "merge",
            })
        );
        let selector = rules
            .iter()
            .find(|r| r.schema == "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
            .unwrap_or_else(|| panic!("no LabelSelector rule"));
        assert_eq!(selector.field, None);
        assert_eq!(
            selector.extensions,
            [("x-kubernetes-map-type", Value::from("atomic"))]
        );
    }

    #[test]
    fn malformed_rows_are_errors() {
        assert!(parse("header\na\tb\n").is_err());
    }
}
