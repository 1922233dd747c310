//! Upstream's `FieldManager`: `Update` for non-apply writes and `Apply` for server-side apply.

use serde_json::Value;

use rudder_api::patch::{SchemaTable, TypeSchema};

use crate::conflict::{Conflict, Conflicts};
use crate::error::FieldManagerError;
use crate::lastapplied::{allowed_conflicts, update_last_applied, LAST_APPLIED_MANAGER};
use crate::managed::{ManagedFieldsEntry, Operation};
use crate::path::PathElement;
use crate::set::FieldSet;
use crate::typed::{
    compare, ensure_named_fields_are_members, merge, remove_items, to_field_set, Comparison,
};

/// The manager that receives an object's existing fields when it is first applied to and has
/// no managed fields yet (upstream's `skipNonAppliedManager`).
pub const BEFORE_FIRST_APPLY_MANAGER: &str = "before-first-apply";

/// Who writes, and when.
#[derive(Debug, Clone, Copy)]
pub struct OperationInfo<'a> {
    /// `fieldManager` (or the default derived from the user agent).
    pub manager: &'a str,
    /// The apiVersion of the request (`apps/v1`).
    pub api_version: &'a str,
    /// The subresource written (`status`, `scale`), empty for the main resource.
    pub subresource: &'a str,
    /// Now, RFC 3339 at second precision in UTC (`2026-11-22T18:16:01Z`).
    pub time: &'a str,
    /// Fields this endpoint resets and nobody may own through it (upstream's strategy
    /// `GetResetFields`: `status` for the main resource, everything but `status` for the status
    /// subresource).
    pub reset_fields: Option<&'a FieldSet>,
}

/// Computes managed fields for writes of built-in kinds (by the schema table) and of any other
/// kind (without schema: maps granular, lists atomic).
#[derive(Debug, Clone, Copy)]
pub struct FieldManager<'t> {
    table: &'t SchemaTable,
}

impl<'t> FieldManager<'t> {
    /// A field manager over a schema table (normally [`SchemaTable::builtin`]).
    pub fn new(table: &'t SchemaTable) -> Self {
        FieldManager { table }
    }

    fn schema_of(&self, object: &Value) -> TypeSchema<'t> {
        let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or("");
        self.table
            .kind(text("apiVersion"), text("kind"))
            .unwrap_or_else(TypeSchema::unknown)
    }

    /// Upstream's `FieldManager.Update`: records a non-apply write of `new` over `live`
    /// (`None` on create) and returns `new` with its `metadata.managedFields` set.
    ///
    /// Managed fields the client sent in `new` replace the live ones (upstream lets clients
    /// edit them directly), except on subresources; `[{}]` clears them; ones that do not decode
    /// are ignored. The fields that changed are given to the
    /// writer's `Update` entry and taken from every other entry; fields that disappeared are
    /// taken from everyone. An existing object without managed fields stays untracked, as
    /// upstream's default chain does.
    pub fn update(
        &self,
        live: Option<&Value>,
        mut new: Value,
        op: &OperationInfo<'_>,
    ) -> Result<Value, FieldManagerError> {
        let schema = self.schema_of(&new);
        let sent = new.pointer("/metadata/managedFields");
        let reset = op.subresource.is_empty()
            && matches!(sent, Some(Value::Array(items))
                    if items.len() == 1 && items[0].as_object().is_some_and(|m| m.is_empty()));
        let from_request = if op.subresource.is_empty() && !reset {
            ManagedFieldsEntry::decode_object(&new).unwrap_or_default()
        } else {
            Vec::new()
        };
        let entries = if reset || !from_request.is_empty() {
            Ok(from_request)
        } else {
            match live {
                Some(l) => ManagedFieldsEntry::decode_object(l),
                None => Ok(Vec::new()),
            }
        };
        // Upstream leaves the object as it is when the live managed fields do not decode.
        let Ok(mut entries) = entries else {
            return Ok(new);
        };
        strip_managed_fields(&mut new);
        let existing = live.is_some_and(|l| {
            l.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .is_some_and(|u| !u.is_empty())
        });
        if entries.is_empty() && existing {
            return Ok(new);
        }
        let live_clean = match live {
            Some(l) if existing => clean(l),
            _ => Value::Object(serde_json::Map::new()),
        };
        let writer = ManagedFieldsEntry {
            manager: op.manager.to_owned(),
            operation: Operation::Update,
            api_version: op.api_version.to_owned(),
            time: Some(op.time.to_owned()),
            fields: FieldSet::new(),
            subresource: op.subresource.to_owned(),
        };
        record_update(&mut entries, &live_clean, &new, schema, &writer, op)?;
        cap_update_managers(&mut entries);
        ManagedFieldsEntry::encode_object(&mut new, &mut entries);
        Ok(new)
    }

    /// Upstream's `FieldManager.Apply`: merges the applied configuration into `live` (`None`
    /// creates) and returns the new object with its managed fields, or the conflicts with
    /// other managers when `force` is false.
    ///
    /// For the `kubectl` manager, upstream's `lastAppliedManager` and `lastAppliedUpdater` wrap
    /// the apply: conflicts on fields the client-side-apply annotation still describes are
    /// forced (so `kubectl apply --server-side` takes over from `kubectl apply`), and that
    /// annotation is rewritten to the applied configuration (so a later client-side apply still
    /// computes the right patch).
    pub fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        op: &OperationInfo<'_>,
        force: bool,
    ) -> Result<Value, FieldManagerError> {
        let mut out = match self.apply_once(live, applied, op, force) {
            Err(FieldManagerError::Conflict(conflicts)) if op.manager == LAST_APPLIED_MANAGER => {
                let allowed = live.and_then(|l| {
                    let schema = self.schema_of(l);
                    allowed_conflicts(l, op.api_version, schema)
                });
                let Some(allowed) = allowed else {
                    return Err(FieldManagerError::Conflict(conflicts));
                };
                let rest: Vec<Conflict> = conflicts
                    .0
                    .into_iter()
                    .filter(|c| !allowed.has(&c.path))
                    .collect();
                if !rest.is_empty() {
                    return Err(FieldManagerError::Conflict(Conflicts(rest)));
                }
                self.apply_once(live, applied, op, true)?
            }
            other => other?,
        };
        if op.manager == LAST_APPLIED_MANAGER {
            update_last_applied(&mut out, applied);
        }
        Ok(out)
    }

    fn apply_once(
        &self,
        live: Option<&Value>,
        applied: &Value,
        op: &OperationInfo<'_>,
        force: bool,
    ) -> Result<Value, FieldManagerError> {
        if !applied.is_object() {
            return Err(FieldManagerError::InvalidObject {
                path: String::new(),
                message: "applied configuration is not an object".to_owned(),
            });
        }
        if applied
            .pointer("/metadata/managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(FieldManagerError::InvalidObject {
                path: ".metadata.managedFields".to_owned(),
                message: "metadata.managedFields must be nil".to_owned(),
            });
        }
        let schema = self.schema_of(applied);
        let mut entries = match live {
            Some(l) => ManagedFieldsEntry::decode_object(l)?,
            None => Vec::new(),
        };
        let live_clean = match live {
            Some(l) => clean(l),
            None => Value::Object(serde_json::Map::new()),
        };
        if entries.is_empty() && live.is_some() {
            // The object's existing fields go to "before-first-apply".
            let before = ManagedFieldsEntry {
                manager: BEFORE_FIRST_APPLY_MANAGER.to_owned(),
                operation: Operation::Update,
                api_version: op.api_version.to_owned(),
                time: Some(op.time.to_owned()),
                fields: FieldSet::new(),
                subresource: op.subresource.to_owned(),
            };
            let empty = Value::Object(serde_json::Map::new());
            record_update(&mut entries, &empty, &live_clean, schema, &before, op)?;
        }

        let merged = merge(&live_clean, applied, schema)?;
        let mut applied_set = to_field_set(applied, schema)?;
        if let Some(reset) = op.reset_fields {
            applied_set = applied_set.recursive_difference(reset);
        }
        let me = ManagedFieldsEntry {
            manager: op.manager.to_owned(),
            operation: Operation::Apply,
            api_version: op.api_version.to_owned(),
            time: Some(op.time.to_owned()),
            fields: applied_set.clone(),
            subresource: op.subresource.to_owned(),
        };
        let mine = entries.iter().position(|e| e.same_manager(&me));
        let (last_set, last_time) = match mine {
            Some(i) => {
                let old = entries.remove(i);
                (old.fields, old.time)
            }
            None => (FieldSet::new(), None),
        };

        // Prune what this manager applied before and applies no more, unless someone owns it.
        let new_object = if last_set.is_empty() {
            merged
        } else {
            let mut all = applied_set.clone();
            for e in &entries {
                all = all.union(&e.fields);
            }
            prune(&merged, &last_set, &all, schema)?
        };

        let comparison = filtered(compare(Some(&live_clean), Some(&new_object), schema)?, op);
        let changed = comparison.modified.union(&comparison.added);
        let mut conflicts = Vec::new();
        for e in &entries {
            let clash = e.fields.intersection(&changed);
            for path in clash.paths() {
                conflicts.push(Conflict {
                    manager: e.display_name(),
                    path,
                });
            }
        }
        if !conflicts.is_empty() && !force {
            conflicts.sort_by(|a, b| a.manager.cmp(&b.manager).then_with(|| a.path.cmp(&b.path)));
            return Err(FieldManagerError::Conflict(Conflicts(conflicts)));
        }
        for e in &mut entries {
            e.fields = e
                .fields
                .difference(&changed)
                .difference(&comparison.removed);
        }
        entries.retain(|e| !e.fields.is_empty());

        let fields = applied_set.difference(&strip_set());
        if !fields.is_empty() {
            let unchanged = comparison.is_same();
            entries.push(ManagedFieldsEntry {
                fields,
                time: if unchanged && mine.is_some() {
                    last_time
                } else {
                    me.time.clone()
                },
                ..me
            });
        }
        let mut out = new_object;
        ManagedFieldsEntry::encode_object(&mut out, &mut entries);
        Ok(out)
    }
}

/// The update half shared by `update` and the before-first-apply step: changed fields move to
/// `writer`'s entry (created or extended, with a new time), removed fields leave every entry.
fn record_update(
    entries: &mut Vec<ManagedFieldsEntry>,
    old: &Value,
    new: &Value,
    schema: TypeSchema<'_>,
    writer: &ManagedFieldsEntry,
    op: &OperationInfo<'_>,
) -> Result<(), FieldManagerError> {
    let comparison = filtered(compare(Some(old), Some(new), schema)?, op);
    let changed = comparison.modified.union(&comparison.added);
    for e in entries.iter_mut() {
        e.fields = e
            .fields
            .difference(&changed)
            .difference(&comparison.removed);
    }
    let gained = changed.difference(&strip_set());
    match entries.iter().position(|e| e.same_manager(writer)) {
        Some(i) if !gained.is_empty() => {
            let prev = entries.remove(i);
            entries.push(ManagedFieldsEntry {
                fields: gained.union(&prev.fields),
                ..writer.clone()
            });
        }
        None if !gained.is_empty() => entries.push(ManagedFieldsEntry {
            fields: gained,
            ..writer.clone()
        }),
        _ => {}
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(())
}

/// Upstream's `DefaultMaxUpdateManagers`.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// Where upstream's `capManagersManager` merges the oldest `Update` entries.
pub const ANCIENT_CHANGES_MANAGER: &str = "ancient-changes";

/// Upstream's `capManagersManager`: while there are more than [`MAX_UPDATE_MANAGERS`] `Update`
/// entries, the oldest (by time, then manager) is merged into the `ancient-changes` entry of
/// its apiVersion, which takes its time.
fn cap_update_managers(entries: &mut Vec<ManagedFieldsEntry>) {
    let count = |es: &[ManagedFieldsEntry]| {
        es.iter()
            .filter(|e| e.operation == Operation::Update)
            .count()
    };
    let mut order: Vec<(Option<String>, String, String, String)> = entries
        .iter()
        .filter(|e| e.operation == Operation::Update)
        .map(|e| {
            (
                e.time.clone(),
                e.manager.clone(),
                e.api_version.clone(),
                e.subresource.clone(),
            )
        })
        .collect();
    order.sort();
    for (time, manager, api_version, subresource) in order {
        if count(entries) <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(i) = entries.iter().position(|e| {
            e.operation == Operation::Update
                && e.manager == manager
                && e.api_version == api_version
                && e.subresource == subresource
        }) else {
            continue;
        };
        let old = entries.remove(i);
        let bucket = entries.iter_mut().find(|e| {
            e.operation == Operation::Update
                && e.manager == ANCIENT_CHANGES_MANAGER
                && e.api_version == api_version
                && e.subresource.is_empty()
        });
        match bucket {
            Some(b) => {
                b.fields = b.fields.union(&old.fields);
                b.time = time;
            }
            None => entries.push(ManagedFieldsEntry {
                manager: ANCIENT_CHANGES_MANAGER.to_owned(),
                subresource: String::new(),
                ..old
            }),
        }
    }
}

fn filtered(mut c: Comparison, op: &OperationInfo<'_>) -> Comparison {
    if let Some(reset) = op.reset_fields {
        c.added = c.added.recursive_difference(reset);
        c.modified = c.modified.recursive_difference(reset);
        c.removed = c.removed.recursive_difference(reset);
    }
    c
}

/// Upstream's `Updater.prune` with `addBackOwnedItems` and `addBackDanglingItems`.
fn prune(
    merged: &Value,
    last: &FieldSet,
    owned: &FieldSet,
    schema: TypeSchema<'_>,
) -> Result<Value, FieldManagerError> {
    let ensure = |s: &FieldSet| ensure_named_fields_are_members(s, schema);
    let pruned = remove_items(merged, &ensure(last), schema)?;
    // Add back what anyone (including the new configuration) owns.
    let merged_set = ensure(&to_field_set(merged, schema)?);
    let pruned_set = ensure(&to_field_set(&pruned, schema)?);
    let pruned = remove_items(
        merged,
        &merged_set.difference(&pruned_set.union(&ensure(owned))),
        schema,
    )?;
    // Remove only what this manager owned before.
    let pruned_set = ensure(&to_field_set(&pruned, schema)?);
    remove_items(
        merged,
        &merged_set
            .difference(&pruned_set)
            .intersection(&ensure(last)),
        schema,
    )
}

/// The paths upstream's `stripMetaManager` never records.
fn strip_set() -> FieldSet {
    let f = PathElement::field;
    let mut paths = vec![vec![f("apiVersion")], vec![f("kind")], vec![f("metadata")]];
    for name in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        paths.push(vec![f("metadata"), f(name)]);
    }
    FieldSet::from_paths(paths)
}

fn strip_managed_fields(object: &mut Value) {
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        meta.remove("managedFields");
    }
}

fn clean(object: &Value) -> Value {
    let mut out = object.clone();
    strip_managed_fields(&mut out);
    out
}
