//! Computing a strategic merge patch: a port of upstream's `CreateTwoWayMergePatch` (`diffMaps`
//! and friends, with `SetElementOrder` on), which `kubectl edit` and client-side `apply` use and
//! which the server needs for `kubectl diff`-style dry runs and for tests.
//!
//! The patch is minimal in upstream's sense: changed and added fields, `null` for removed ones,
//! `{key, $patch: delete}` for items removed from merge lists, `$deleteFromPrimitiveList` for
//! scalars removed from merge lists, `$setElementOrder` whenever a merge list's content or order
//! changed, and `$retainKeys` for `retainKeys` fields. A `replace`-strategy map is always sent
//! whole, as upstream does.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::govalue::{
    bad_arg_type, dedup_scalars, go_sort_by_key, go_v, kind, no_merge_key, sort_scalars, Kind,
    MAP_TYPE,
};
use super::order::normalize_slice_order;
use super::schema::{PatchStrategy, TypeSchema};
use super::strategic::{
    merge_key_value_equal, object_or_empty, slice_element_type, DELETE_DIRECTIVE,
    DELETE_FROM_PRIMITIVE_LIST_PREFIX, DIRECTIVE_MARKER, RETAIN_KEYS_DIRECTIVE,
    SET_ELEMENT_ORDER_PREFIX,
};

/// Computes the strategic merge patch that turns `original` into `modified` (upstream's
/// `CreateTwoWayMergePatch`), so that `strategic_merge(original, patch) == modified`.
///
/// The output matches upstream's byte for byte once serialized, quirks included: an unchanged
/// but unsorted merge list of scalars still gets a `$setElementOrder`, and reordering such a list
/// into sorted order gets none (upstream compares a sorted copy), so that one reorder is lost.
/// Fields the schema does not know are diffed like JSON merge patch where upstream errors.
///
/// Both documents must be JSON objects (`null` counts as empty).
pub fn create_two_way_merge_patch(
    original: &Value,
    modified: &Value,
    schema: TypeSchema<'_>,
) -> Result<Value, PatchError> {
    let original = object_or_empty(original)?;
    let modified = object_or_empty(modified)?;
    diff_maps(&original, &modified, schema, false).map(Value::Object)
}

/// `diffMaps`; `build_retain_keys` is upstream's `DiffOptions.BuildRetainKeysDirective`.
fn diff_maps(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
    schema: TypeSchema<'_>,
    build_retain_keys: bool,
) -> Result<Map<String, Value>, PatchError> {
    let mut patch = Map::new();
    let mut retain_keys = Vec::new();
    for (key, modified_v) in modified {
        if build_retain_keys && !modified_v.is_null() {
            retain_keys.push(Value::String(key.clone()));
        }
        let Some(original_v) = original.get(key) else {
            patch.insert(key.clone(), modified_v.clone());
            continue;
        };
        if key == DIRECTIVE_MARKER {
            // Only reachable when the documents themselves hold directives (patches).
            let (Some(o), Some(m)) = (original_v.as_str(), modified_v.as_str()) else {
                return Err(PatchError::InvalidDirectiveValue);
            };
            if o != m {
                patch.insert(key.clone(), modified_v.clone());
            }
            continue;
        }
        if kind(original_v) != kind(modified_v) {
            patch.insert(key.clone(), modified_v.clone());
            continue;
        }
        match (original_v, modified_v) {
            (Value::Object(o), Value::Object(m)) => {
                let (sub, meta) = schema.lookup_map(key);
                if meta.strategy == Some(PatchStrategy::Replace) {
                    patch.insert(key.clone(), modified_v.clone());
                } else {
                    let value = diff_maps(o, m, sub, meta.retain_keys)?;
                    if !value.is_empty() {
                        patch.insert(key.clone(), Value::Object(value));
                    }
                }
            }
            (Value::Array(o), Value::Array(m)) => {
                let (sub, meta) = schema.lookup_list(key);
                if meta.strategy == Some(PatchStrategy::Merge) {
                    let lists = diff_lists(o, m, sub, meta.merge_key, meta.retain_keys)?;
                    if !lists.patch.is_empty() {
                        patch.insert(key.clone(), Value::Array(lists.patch));
                    }
                    if !lists.deletions.is_empty() {
                        patch.insert(
                            format!("{DELETE_FROM_PRIMITIVE_LIST_PREFIX}/{key}"),
                            Value::Array(lists.deletions),
                        );
                    }
                    if !lists.order.is_empty() {
                        patch.insert(
                            format!("{SET_ELEMENT_ORDER_PREFIX}/{key}"),
                            Value::Array(lists.order),
                        );
                    }
                } else if o != m {
                    patch.insert(key.clone(), modified_v.clone());
                }
            }
            _ => {
                if original_v != modified_v {
                    patch.insert(key.clone(), modified_v.clone());
                }
            }
        }
    }
    for key in original.keys() {
        if !modified.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    // The directive also has to go out when only deletions (of non-null fields) happened: the
    // receiver clears what the list does not name.
    if !retain_keys.is_empty()
        && (!patch.is_empty() || has_additional_new_field(original, modified))
    {
        patch.insert(
            RETAIN_KEYS_DIRECTIVE.to_owned(),
            Value::Array(sort_scalars(retain_keys)),
        );
    }
    Ok(patch)
}

/// `hasAdditionalNewField`: `original` has a non-null key that `modified` lacks.
fn has_additional_new_field(original: &Map<String, Value>, modified: &Map<String, Value>) -> bool {
    original
        .iter()
        .any(|(k, v)| !v.is_null() && !modified.contains_key(k))
}

/// The three parallel lists `diffLists` returns for a merge list.
#[derive(Default)]
struct ListDiff {
    /// Added and changed items, then `$patch: delete` items.
    patch: Vec<Value>,
    /// `$deleteFromPrimitiveList` (scalars only).
    deletions: Vec<Value>,
    /// `$setElementOrder`.
    order: Vec<Value>,
}

/// `diffLists`.
fn diff_lists(
    original: &[Value],
    modified: &[Value],
    schema: TypeSchema<'_>,
    merge_key: &str,
    build_retain_keys: bool,
) -> Result<ListDiff, PatchError> {
    if original.is_empty() {
        // Nothing to order against: the new list goes out as it is.
        return Ok(ListDiff {
            patch: modified.to_vec(),
            ..ListDiff::default()
        });
    }
    match slice_element_type(&[original, modified])? {
        Kind::Object => {
            let (patch, deletions) =
                diff_lists_of_maps(original, modified, schema, merge_key, build_retain_keys)?;
            let mut patch = normalize_slice_order(patch, modified, merge_key, Kind::Object)?;
            let order_same = is_order_same(original, modified, merge_key)?;
            patch.extend(deletions);
            let order = if !patch.is_empty() || !order_same {
                modified
                    .iter()
                    .map(|v| {
                        let key_value = v
                            .as_object()
                            .and_then(|m| m.get(merge_key))
                            .cloned()
                            .unwrap_or(Value::Null);
                        let mut item = Map::new();
                        item.insert(merge_key.to_owned(), key_value);
                        Value::Object(item)
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Ok(ListDiff {
                patch,
                deletions: Vec::new(),
                order,
            })
        }
        Kind::Array => Err(PatchError::NoListOfLists),
        kind => {
            let (additions, deletions) = diff_lists_of_scalars(original, modified);
            let patch = normalize_slice_order(additions, modified, merge_key, kind)?;
            // Upstream's diffListsOfScalars sorts `original` in place before this comparison,
            // so an unchanged but unsorted list still gets a `$setElementOrder`.
            let original_sorted = sort_scalars(original.to_vec());
            let order = if !deletions.is_empty() || original_sorted != modified {
                modified.to_vec()
            } else {
                Vec::new()
            };
            Ok(ListDiff {
                patch,
                deletions,
                order,
            })
        }
    }
}

/// `isOrderSame`.
fn is_order_same(
    original: &[Value],
    modified: &[Value],
    merge_key: &str,
) -> Result<bool, PatchError> {
    if original.len() != modified.len() {
        return Ok(false);
    }
    for (o, m) in original.iter().zip(modified) {
        if !merge_key_value_equal(o, m, merge_key)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `diffListsOfScalars`: walks both lists sorted by their `%v` strings; returns additions (in
/// sorted order) and de-duplicated deletions.
fn diff_lists_of_scalars(original: &[Value], modified: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let original = sort_scalars(original.to_vec());
    let modified = sort_scalars(modified.to_vec());
    let (mut oi, mut mi) = (0, 0);
    let mut additions = Vec::new();
    let mut deletions = Vec::new();
    loop {
        match (original.get(oi), modified.get(mi)) {
            (None, None) => break,
            (Some(o), None) => {
                deletions.push(o.clone());
                oi += 1;
            }
            (None, Some(m)) => {
                additions.push(m.clone());
                mi += 1;
            }
            (Some(o), Some(m)) => {
                let (os, ms) = (go_v(o), go_v(m));
                if os == ms {
                    oi += 1;
                    mi += 1;
                } else if os > ms {
                    additions.push(m.clone());
                    mi += 1;
                } else {
                    deletions.push(o.clone());
                    oi += 1;
                }
            }
        }
    }
    (additions, dedup_scalars(deletions))
}

/// `diffListsOfMaps`: walks both lists sorted by the `%v` of their merge keys; returns changed
/// and added items (changed ones reduced to their diff plus the key) and delete directives.
fn diff_lists_of_maps(
    original: &[Value],
    modified: &[Value],
    schema: TypeSchema<'_>,
    merge_key: &str,
    build_retain_keys: bool,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let original = sort_by_merge_key(original, merge_key)?;
    let modified = sort_by_merge_key(modified, merge_key)?;
    let mut patch = Vec::new();
    let mut deletions = Vec::new();
    let (mut oi, mut mi) = (0, 0);
    loop {
        let o = original
            .get(oi)
            .map(|v| map_and_merge_key_value(v, merge_key))
            .transpose()?;
        let m = modified
            .get(mi)
            .map(|v| map_and_merge_key_value(v, merge_key))
            .transpose()?;
        match (o, m) {
            (None, None) => break,
            (Some((_, ov)), None) => {
                deletions.push(delete_directive(merge_key, ov));
                oi += 1;
            }
            (None, Some((mm, _))) => {
                patch.push(Value::Object(mm.clone()));
                mi += 1;
            }
            (Some((om, ov)), Some((mm, mv))) => {
                let (os, ms) = (go_v(ov), go_v(mv));
                if os == ms {
                    let mut value = diff_maps(om, mm, schema, build_retain_keys)?;
                    if !value.is_empty() {
                        value.insert(merge_key.to_owned(), mv.clone());
                        patch.push(Value::Object(value));
                    }
                    oi += 1;
                    mi += 1;
                } else if os > ms {
                    patch.push(Value::Object(mm.clone()));
                    mi += 1;
                } else {
                    deletions.push(delete_directive(merge_key, ov));
                    oi += 1;
                }
            }
        }
    }
    Ok((patch, deletions))
}

/// `getMapAndMergeKeyValueByIndex`.
fn map_and_merge_key_value<'v>(
    v: &'v Value,
    merge_key: &str,
) -> Result<(&'v Map<String, Value>, &'v Value), PatchError> {
    let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, v))?;
    let key_value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
    Ok((m, key_value))
}

/// `sortMergeListsByNameArray` without recursion: objects by the `%v` of their merge key
/// (a missing key sorts as `<nil>`), scalars de-duplicated and sorted.
fn sort_by_merge_key(list: &[Value], merge_key: &str) -> Result<Vec<Value>, PatchError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    if slice_element_type(&[list])? != Kind::Object {
        return Ok(sort_scalars(dedup_scalars(list.to_vec())));
    }
    Ok(go_sort_by_key(list.to_vec(), |v| {
        v.as_object()
            .and_then(|m| m.get(merge_key))
            .map_or_else(|| "<nil>".to_owned(), go_v)
    }))
}

/// `CreateDeleteDirective`.
fn delete_directive(merge_key: &str, value: &Value) -> Value {
    let mut m = Map::new();
    m.insert(merge_key.to_owned(), value.clone());
    m.insert(
        DIRECTIVE_MARKER.to_owned(),
        Value::String(DELETE_DIRECTIVE.to_owned()),
    );
    Value::Object(m)
}
