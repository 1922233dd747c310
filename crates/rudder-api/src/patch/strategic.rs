//! Applying a strategic merge patch: a port of upstream's `StrategicMergeMapPatch`
//! (`mergeMap` and the functions it calls), with `MergeParallelList` and `IgnoreUnmatchedNulls`
//! on, as kube-apiserver runs it.
//!
//! Semantics, as upstream:
//! - maps merge recursively; `null` deletes a key;
//! - lists whose field has `patchStrategy:"merge"` merge by `patchMergeKey` (lists of objects) or
//!   as sets (lists of scalars); every other list is replaced whole;
//! - `$patch: replace` / `$patch: delete` in a map replace it with the rest of the map / delete
//!   its content; in a merge list, `$patch: replace` replaces the list and `{key, $patch: delete}`
//!   removes items by key;
//! - `$retainKeys: [...]` drops the map's other keys;
//! - `$deleteFromPrimitiveList/<field>: [...]` removes scalars from a list;
//! - `$setElementOrder/<field>: [...]` fixes the order of the merged list (see `order`).
//!
//! Upstream mutates its input maps; here the inputs are cloned once and the clones are consumed.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::govalue::{
    bad_arg_type, go_capacity, go_dedup_in_place, go_s, go_v_list, go_v_map, kind, no_merge_key,
    Kind, MAP_TYPE, SLICE_TYPE,
};
use super::order::{
    find_map_by_key, normalize_element_order, partition_maps, partition_primitives,
};
use super::schema::{PatchMeta, PatchStrategy, TypeSchema};

pub(crate) const DIRECTIVE_MARKER: &str = "$patch";
pub(crate) const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
pub(crate) const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
pub(crate) const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
pub(crate) const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

/// Applies a strategic merge patch to `original` (upstream's `StrategicMergePatch`).
///
/// `schema` is the root type of the object ([`SchemaTable::kind`](super::SchemaTable::kind));
/// [`TypeSchema::unknown`] gives JSON-merge behaviour with directives still honoured. Both
/// documents must be JSON objects (`null` counts as empty, as in upstream's decoder).
///
/// Like upstream's map result, new list items and fields of `replace`-strategy values are taken
/// from the patch as they are, so a `null` inside them survives; kube-apiserver loses such
/// values when it decodes the result into the typed object.
pub fn strategic_merge(
    original: &Value,
    patch: &Value,
    schema: TypeSchema<'_>,
) -> Result<Value, PatchError> {
    let original = object_or_empty(original)?;
    let patch = object_or_empty(patch)?;
    merge_map(original, patch, schema).map(Value::Object)
}

pub(crate) fn object_or_empty(v: &Value) -> Result<Map<String, Value>, PatchError> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::Null => Ok(Map::new()),
        _ => Err(PatchError::BadJsonDoc),
    }
}

/// `mergeMap`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: TypeSchema<'_>,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        return handle_directive_in_merge_map(directive.clone(), patch);
    }
    apply_retain_keys_directive(&mut original, &mut patch)?;
    merge_patch_into_original(&mut original, &mut patch, schema)?;

    for (k, patch_v) in patch {
        let (key, is_delete_list) = if k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            (
                extract_key(&k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)?.to_owned(),
                true,
            )
        } else {
            (k, false)
        };

        if patch_v.is_null() {
            original.remove(&key);
            continue;
        }
        // A value with nothing of the same Go type to merge with is taken from the patch.
        let mergeable = original
            .get(&key)
            .is_some_and(|o| kind(o) == kind(&patch_v));
        if !mergeable {
            if !is_delete_list {
                insert_from_patch(&mut original, key, patch_v);
            }
            continue;
        }
        let Some(original_v) = original.get_mut(&key) else {
            continue;
        };
        match (original_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let (sub, meta) = schema.lookup_map(&key);
                *o = if meta.strategy == Some(PatchStrategy::Replace) {
                    p
                } else {
                    merge_map(std::mem::take(o), p, sub)?
                };
            }
            (Value::Array(o), Value::Array(p)) => {
                let (sub, meta) = schema.lookup_list(&key);
                *o = merge_slice_handler(std::mem::take(o), p, sub, meta, is_delete_list)?;
            }
            (slot, patch_v) => *slot = patch_v,
        }
    }
    Ok(original)
}

/// Stores a patch value that has nothing to merge with: nulls (which would mean "delete") are
/// dropped and maps carrying `$patch` vanish, as upstream's `discardNullValuesFromPatch` and
/// `removeDirectives` do.
fn insert_from_patch(original: &mut Map<String, Value>, key: String, mut patch_v: Value) {
    discard_null_values(&mut patch_v);
    match remove_directives(patch_v) {
        Some(v) => {
            original.insert(key, v);
        }
        None => {
            original.remove(&key);
        }
    }
}

/// `handleDirectiveInMergeMap`.
fn handle_directive_in_merge_map(
    directive: Value,
    mut patch: Map<String, Value>,
) -> Result<Map<String, Value>, PatchError> {
    match directive.as_str() {
        Some(REPLACE_DIRECTIVE) => {
            patch.remove(DIRECTIVE_MARKER);
            Ok(patch)
        }
        Some(DELETE_DIRECTIVE) => Ok(Map::new()),
        _ => Err(PatchError::BadPatchType {
            directive: go_s(&directive),
            map: go_v_map(&patch),
        }),
    }
}

/// `applyRetainKeysDirective`.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let retained = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || k.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained(k) {
            return Err(PatchError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder` and orders it.
fn merge_patch_into_original(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: TypeSchema<'_>,
) -> Result<(), PatchError> {
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for key in order_keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type(SLICE_TYPE, &order));
        };
        let original_key = extract_key(&key, SET_ELEMENT_ORDER_PREFIX)?.to_owned();
        let original_list = match original.get(&original_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
        };
        let patch_list = match patch.get(&original_key) {
            None => None,
            Some(Value::Array(l)) => Some(l.clone()),
            Some(other) => return Err(bad_arg_type(SLICE_TYPE, other)),
        };
        let (sub, meta) = schema.lookup_list(&original_key);
        validate_patch_with_set_order_list(
            patch_list.as_deref().unwrap_or_default(),
            &order,
            meta.merge_key,
        )?;

        // What upstream reads as the live order afterwards (see `aliased_original`).
        let mut server_order = original_list.clone().unwrap_or_default();
        let patch_items = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => remove_directives_from_list(p),
            (Some(o), Some(p)) => {
                let merged = merge_slice_handler(o, p, sub, meta, false)?;
                if meta.strategy == Some(PatchStrategy::Merge) {
                    server_order = aliased_original(&server_order, &patch_items, meta.merge_key);
                }
                merged
            }
            (None, None) => continue,
        };

        let (in_order, server_only) = if meta.merge_key.is_empty() {
            partition_primitives(merged, &order)
        } else {
            partition_maps(merged, &order, meta.merge_key)?
        };
        let kind = slice_element_type(&[&server_order, &patch_items])?;
        let both = normalize_element_order(
            in_order,
            server_only,
            &order,
            &server_order,
            meta.merge_key,
            kind,
        )?;
        original.insert(original_key.clone(), Value::Array(both));
        patch.remove(&original_key);
    }
    Ok(())
}

/// `validatePatchWithSetOrderList`: the patch list must follow `$setElementOrder`'s order and
/// name no item it lacks.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: &str,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_empty() {
        patch_list.iter().collect()
    } else {
        let mut keep = Vec::new();
        for v in patch_list {
            let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
            if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE_DIRECTIVE) {
                keep.push(v);
            }
        }
        keep
    };
    let (mut p, mut s) = (0, 0);
    while p < non_delete.len() && s < order.len() {
        let item = non_delete[p];
        if item
            .as_object()
            .is_some_and(|m| m.contains_key(DIRECTIVE_MARKER))
        {
            p += 1;
            continue;
        }
        if merge_key_value_equal(item, &order[s], merge_key)? {
            p += 1;
        }
        s += 1;
    }
    if p < non_delete.len() && s >= order.len() {
        return Err(PatchError::SetElementOrderMismatch {
            patch: go_v_list(patch_list),
            order: go_v_list(order),
        });
    }
    Ok(())
}

/// `mergeKeyValueEqual`.
pub(crate) fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: &str,
) -> Result<bool, PatchError> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    let l = left
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, left))?;
    let r = right
        .as_object()
        .ok_or_else(|| bad_arg_type(MAP_TYPE, right))?;
    let lv = l.get(merge_key).ok_or_else(|| no_merge_key(l, merge_key))?;
    let rv = r.get(merge_key).ok_or_else(|| no_merge_key(r, merge_key))?;
    Ok(lv == rv)
}

/// `extractKey`: the field name after a `$directive/` prefix.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str, PatchError> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX => {
            Err(PatchError::BadPatchFormatForPrimitiveList)
        }
        _ => Err(PatchError::BadPatchFormatForSetElementOrderList),
    }
}

/// `mergeSliceHandler`: parallel delete lists apply whatever the field's strategy.
fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: TypeSchema<'_>,
    meta: PatchMeta<'_>,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if meta.strategy == Some(PatchStrategy::Merge) || is_delete_list {
        merge_slice(original, patch, schema, meta.merge_key, is_delete_list)
    } else {
        Ok(patch)
    }
}

/// `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: TypeSchema<'_>,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (original, patch, merged) = if kind != Kind::Object {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let (merged, server_order) = merge_scalars(&original, &patch);
        (server_order, patch, merged)
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::NoMergeKeyForList(schema.kind_name().to_owned()));
        }
        let (original, patch) = merge_slice_with_special_elements(original, patch, merge_key)?;
        let merged =
            merge_slice_without_special_elements(original.clone(), &patch, merge_key, schema)?;
        (original, patch, merged)
    };

    let (in_patch, server_only) = if merge_key.is_empty() {
        partition_primitives(merged, &patch)
    } else {
        partition_maps(merged, &patch, merge_key)?
    };
    normalize_element_order(in_patch, server_only, &patch, &original, merge_key, kind)
}

/// Merges two scalar lists as `append(original, patch...)` followed by `deduplicateScalars`;
/// also returns what `original` reads afterwards, since the append shares its array when the
/// capacity allows and the de-duplication then writes through it.
fn merge_scalars(original: &[Value], patch: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut both = original.to_vec();
    both.extend(patch.iter().cloned());
    let n = go_dedup_in_place(&mut both);
    let server_order = if original.len() + patch.len() <= go_capacity(original.len()) {
        both[..original.len()].to_vec()
    } else {
        original.to_vec()
    };
    both.truncate(n);
    (both, server_order)
}

/// What upstream's `originalFieldValue` in `mergePatchIntoOriginal` reads after `mergeSlice`
/// ran on the same array: `$patch: delete` items shift the array left in place, and new items
/// are appended into its spare capacity. The result orders the server-only items, so upstream's
/// own fixtures depend on it ("add map and delete map from merging list").
fn aliased_original(original: &[Value], patch: &[Value], merge_key: &str) -> Vec<Value> {
    match slice_element_type(&[original, patch]) {
        Ok(Kind::Object) => {}
        Ok(_) => return merge_scalars(original, patch).1,
        // mergeSlice returned before touching anything.
        Err(_) => return original.to_vec(),
    }
    let key_of = |v: &Value| v.as_object().and_then(|m| m.get(merge_key)).cloned();
    let visible = original.len();
    let capacity = go_capacity(visible);
    let mut array = original.to_vec();
    let mut len = visible;
    let mut replaced = false;
    for item in patch {
        let Some(m) = item.as_object() else { continue };
        match m.get(DIRECTIVE_MARKER).and_then(Value::as_str) {
            Some(DELETE_DIRECTIVE) => {
                let Some(value) = m.get(merge_key) else {
                    continue;
                };
                while let Some(k) = array[..len]
                    .iter()
                    .position(|v| key_of(v).as_ref() == Some(value))
                {
                    // append(original[:k], original[k+1:]...): the last slot keeps its value.
                    for i in k..len - 1 {
                        array[i] = array[i + 1].clone();
                    }
                    len -= 1;
                }
            }
            Some(REPLACE_DIRECTIVE) => replaced = true,
            _ => {}
        }
    }
    if !replaced {
        // Keys of the list mergeSliceWithoutSpecialElements grows, to tell merges from appends.
        let mut keys: Vec<Option<Value>> = array[..len].iter().map(key_of).collect();
        let mut in_place = true;
        for item in patch {
            if item
                .as_object()
                .is_none_or(|m| m.contains_key(DIRECTIVE_MARKER))
            {
                continue;
            }
            let key = key_of(item);
            if key.is_some() && keys.contains(&key) {
                continue;
            }
            keys.push(key);
            if in_place && len < capacity {
                if len < visible {
                    array[len] = item.clone();
                }
                len += 1;
            } else {
                in_place = false;
            }
        }
    }
    array.truncate(visible);
    array
}

/// `mergeSliceWithSpecialElements`: applies `$patch: delete` items and detects
/// `$patch: replace`; returns the (possibly replaced) original and the plain patch items.
fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
        let Some(directive) = m.get(DIRECTIVE_MARKER) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
                original = delete_matching_entries(original, merge_key, value)?;
            }
            // Keep going: later items may still carry directives to prune.
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => return Err(PatchError::MergeDirectiveInList),
            _ => {
                return Err(PatchError::BadPatchType {
                    directive: go_s(directive),
                    map: go_v_map(m),
                })
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// `deleteMatchingEntries`: removes every item whose merge key matches.
fn delete_matching_entries(
    original: Vec<Value>,
    merge_key: &str,
    value: &Value,
) -> Result<Vec<Value>, PatchError> {
    let mut kept = Vec::with_capacity(original.len());
    for (i, v) in original.into_iter().enumerate() {
        let m = v.as_object().ok_or(PatchError::NotAMap(i))?;
        if m.get(merge_key) != Some(value) {
            kept.push(v);
        }
    }
    Ok(kept)
}

/// `mergeSliceWithoutSpecialElements`: merges each patch item into the original item with the
/// same key, or appends it.
fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    schema: TypeSchema<'_>,
) -> Result<Vec<Value>, PatchError> {
    for v in patch {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
        let value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
        match find_map_by_key(&original, merge_key, value)? {
            Some(i) => {
                let o = match std::mem::take(&mut original[i]) {
                    Value::Object(o) => o,
                    other => return Err(bad_arg_type(MAP_TYPE, &other)),
                };
                original[i] = Value::Object(merge_map(o, m.clone(), schema)?);
            }
            None => original.push(v.clone()),
        }
    }
    Ok(original)
}

/// `sliceElementType`: the common Go type of the items of `slices`.
pub(crate) fn slice_element_type(slices: &[&[Value]]) -> Result<Kind, PatchError> {
    let mut prev: Option<Kind> = None;
    for v in slices.iter().flat_map(|s| s.iter()) {
        let k = kind(v);
        match prev {
            None if k == Kind::Array => return Err(PatchError::NoListOfLists),
            None => prev = Some(k),
            Some(p) if p != k => {
                let lists: Vec<Value> = slices.iter().map(|s| Value::Array(s.to_vec())).collect();
                return Err(PatchError::ListElementTypesNotIdentical(go_v_list(&lists)));
            }
            Some(_) => {}
        }
    }
    prev.ok_or(PatchError::NoElements)
}

/// `removeDirectives`: drops every map that carries `$patch` (returns `None` when `v` is one).
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(
                m.into_iter()
                    .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                    .collect(),
            ))
        }
        Value::Array(l) => Some(Value::Array(remove_directives_from_list(l))),
        other => Some(other),
    }
}

fn remove_directives_from_list(l: Vec<Value>) -> Vec<Value> {
    l.into_iter().filter_map(remove_directives).collect()
}

/// `discardNullValuesFromPatch`: removes null-valued keys at any depth (list items included).
fn discard_null_values(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            for v in m.values_mut() {
                discard_null_values(v);
            }
        }
        Value::Array(l) => l.iter_mut().for_each(discard_null_values),
        _ => {}
    }
}
