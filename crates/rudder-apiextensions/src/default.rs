//! Defaulting (upstream `apiserver/schema/defaulting`) and the CRD-time checks of `default`s.

use rudder_api::field::{FieldError, Path};
use serde_json::Value;

use crate::schema::{child, Additional, Node};

fn non_nullable_null(v: &Value, s: Option<&Node>) -> bool {
    v.is_null() && s.is_some_and(|s| !s.nullable)
}

/// Upstream `Default`: missing properties (and non-nullable nulls) get their default, then
/// every value is defaulted by its own schema, including freshly defaulted ones.
pub(crate) fn default(v: &mut Value, s: &Node) {
    match v {
        Value::Object(m) => {
            for (k, prop) in &s.properties {
                let Some(d) = &prop.default else {
                    continue;
                };
                match m.get(k) {
                    Some(cur) if !non_nullable_null(cur, Some(prop)) => {}
                    _ => {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            for (k, child) in m.iter_mut() {
                if let Some(prop) = s.properties.get(k) {
                    default(child, prop);
                } else if let Some(Additional::Schema(a)) = &s.additional {
                    if non_nullable_null(child, Some(a)) {
                        if let Some(d) = &a.default {
                            *child = d.clone();
                        }
                    }
                    default(child, a);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.items.as_deref() {
                for item in items.iter_mut() {
                    if non_nullable_null(item, Some(is)) {
                        if let Some(d) = &is.default {
                            *item = d.clone();
                        }
                    }
                    default(item, is);
                }
            }
        }
        _ => {}
    }
}

/// Upstream `PruneNonNullableNullsWithoutDefaults`: a `null` for a field that is neither
/// nullable nor defaulted is dropped rather than rejected.
pub(crate) fn prune_non_nullable_nulls(v: &mut Value, s: &Node) {
    match v {
        Value::Object(m) => {
            m.retain(|k, child| match s.properties.get(k) {
                Some(prop) => !(child.is_null() && !prop.nullable && prop.default.is_none()),
                None => true,
            });
            for (k, child) in m.iter_mut() {
                if let Some(prop) = s.property(k) {
                    prune_non_nullable_nulls(child, prop);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.items.as_deref() {
                for item in items.iter_mut() {
                    prune_non_nullable_nulls(item, is);
                }
            }
        }
        _ => {}
    }
}

/// Upstream `ValidateDefaults` (without CEL): every `default` must survive pruning unchanged,
/// validate against its own node's schema, and `metadata` at the root may not have one.
pub(crate) fn validate_defaults(root: &Node, at: &Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(meta) = root.properties.get("metadata") {
        let meta_at = child(at, "properties").key("metadata");
        if meta.default.is_some() {
            errs.push(FieldError::forbidden(
                &child(&meta_at, "default"),
                "must not be set in top-level metadata",
            ));
        }
        for (k, p) in &meta.properties {
            if p.default.is_some() {
                errs.push(FieldError::forbidden(
                    &child(&child(&meta_at, "properties").key(k.as_str()), "default"),
                    "must not be set in top-level metadata",
                ));
            }
        }
    }
    walk(root, at, true, &mut errs);
    errs
}

fn walk(s: &Node, at: &Path, root: bool, errs: &mut Vec<FieldError>) {
    if let Some(d) = &s.default {
        let d_at = child(at, "default");
        let mut pruned = d.clone();
        let mut removed = Vec::new();
        crate::prune::prune(&mut pruned, Some(s), s.embedded, "", &mut removed);
        if !removed.is_empty() {
            errs.push(FieldError::invalid(
                &d_at,
                crate::schema::bad_value(d),
                "must not have unknown fields",
            ));
        } else {
            let mut found = Vec::new();
            crate::validate::validate(s, d, None, Some(&d_at), "", false, &mut found);
            if s.embedded {
                crate::meta::validate_embedded(s, d, &d_at, true, &mut found);
            }
            if found.is_empty() {
                crate::cel::validate(s, d, None, &d_at, &mut found);
            }
            errs.extend(found);
        }
    }
    if let Some(items) = &s.items {
        walk(items, &child(at, "items"), false, errs);
    }
    for (k, p) in &s.properties {
        if root && k == "metadata" {
            continue;
        }
        walk(p, &child(at, "properties").key(k.as_str()), false, errs);
    }
}
