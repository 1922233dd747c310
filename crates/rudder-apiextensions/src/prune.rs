//! Pruning of unknown fields (upstream `apiserver/schema/pruning`).

use serde_json::Value;

use crate::schema::{Additional, Node};

/// ObjectMeta's fields: anything else under a resource's `metadata` is dropped, as upstream's
/// round trip through the typed ObjectMeta does.
const OBJECT_META_FIELDS: [&str; 16] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "clusterName",
];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Prune `v` against `s` (`None`: no schema, everything inside goes). `resource_root` keeps
/// `apiVersion`, `kind` and `metadata` (the object's root and embedded resources).
pub(crate) fn prune(
    v: &mut Value,
    s: Option<&Node>,
    resource_root: bool,
    path: &str,
    out: &mut Vec<String>,
) {
    if let Some(s) = s {
        if s.preserve_unknown {
            skip_prune(v, s, resource_root || s.embedded, path, out);
            return;
        }
    }
    match v {
        Value::Object(m) => {
            let Some(s) = s else {
                for k in m.keys() {
                    out.push(join(path, k));
                }
                m.clear();
                return;
            };
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let p = join(path, &k);
                if resource_root || s.embedded {
                    match k.as_str() {
                        "apiVersion" | "kind" => continue,
                        "metadata" => {
                            if let Some(meta) = m.get_mut("metadata") {
                                prune_meta(meta, &p, out);
                            }
                            continue;
                        }
                        _ => {}
                    }
                }
                if let Some(prop) = s.properties.get(&k) {
                    if let Some(child) = m.get_mut(&k) {
                        prune(child, Some(prop), prop.embedded, &p, out);
                    }
                    continue;
                }
                match &s.additional {
                    Some(Additional::Schema(a)) => {
                        if let Some(child) = m.get_mut(&k) {
                            prune(child, Some(a), a.embedded, &p, out);
                        }
                    }
                    // `additionalProperties: true` keeps every other key as it is.
                    Some(Additional::Allows(true)) => {}
                    _ => {
                        out.push(p);
                        m.remove(&k);
                    }
                }
            }
        }
        Value::Array(a) => {
            let items = s.and_then(|s| s.items.as_deref());
            for (i, item) in a.iter_mut().enumerate() {
                let p = format!("{path}[{i}]");
                match (s, items) {
                    (Some(_), Some(items)) => prune(item, Some(items), items.embedded, &p, out),
                    _ => prune(item, None, false, &p, out),
                }
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields` unknown keys stay, known ones are still
/// pruned by their schema.
fn skip_prune(v: &mut Value, s: &Node, resource: bool, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let p = join(path, k);
                if resource && (k == "apiVersion" || k == "kind") {
                    continue;
                }
                if resource && k == "metadata" {
                    prune_meta(child, &p, out);
                    continue;
                }
                if let Some(prop) = s.property(k) {
                    prune(child, Some(prop), prop.embedded, &p, out);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.items.as_deref() {
                for (i, item) in a.iter_mut().enumerate() {
                    prune(
                        item,
                        Some(items),
                        items.embedded,
                        &format!("{path}[{i}]"),
                        out,
                    );
                }
            }
        }
        _ => {}
    }
}

fn prune_meta(meta: &mut Value, path: &str, out: &mut Vec<String>) {
    if let Value::Object(m) = meta {
        let unknown: Vec<String> = m
            .keys()
            .filter(|k| !OBJECT_META_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            out.push(join(path, &k));
            m.remove(&k);
        }
    }
}
