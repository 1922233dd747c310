//! List ordering after a strategic merge, ported from upstream's `normalizeElementOrder`.
//!
//! SMP guarantees an order: items named by the patch (or its `$setElementOrder` list) come in
//! the patch's order, items only the server has keep their relative live order, and the two are
//! interleaved by their live positions. kubectl relies on this (`apply` and `set image` send
//! `$setElementOrder/containers`), and users see it in `get -o yaml`, so the port keeps upstream's
//! exact algorithm, including `sort.SliceStable` with its non-strict comparator.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::govalue::{bad_arg_type, no_merge_key, Kind, MAP_TYPE};
use super::strategic::{DELETE_DIRECTIVE, DIRECTIVE_MARKER};

/// `normalizeElementOrder`: sorts `patch` by `patch_order` and `server_only` by `server_order`,
/// then interleaves them.
pub(crate) fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

/// `normalizeSliceOrder`: stable-sorts `to_sort` by the positions of its items in `order`;
/// `$patch: delete` items go last.
pub(crate) fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, PatchError> {
    let (mut to_sort, to_delete) = if kind == Kind::Object {
        validate_merge_key_in_lists(merge_key, &[&to_sort, order])?;
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    go_slice_stable(&mut to_sort, |a, b| {
        let ia = index(order, a, merge_key, kind);
        if ia >= 0 {
            let ib = index(order, b, merge_key, kind);
            if ib >= 0 {
                return ia < ib;
            }
        }
        true
    });
    to_sort.extend(to_delete);
    Ok(to_sort)
}

/// `mergeSortedSlice`: inserts each `left` (server-only) item into `right` (patch items) before
/// the first patch item that comes after it in the live list.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                let li = index(server_order, l, merge_key, kind);
                let ri = index(server_order, r, merge_key, kind);
                li >= 0 && ri >= 0 && li < ri
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(v) = next {
            out.push(v);
        }
    }
    out
}

/// `index`: position of `val` in `list` (by merge key for objects), or -1.
fn index(list: &[Value], val: &Value, merge_key: &str, kind: Kind) -> isize {
    let wanted = key_of(val, merge_key, kind);
    list.iter()
        .position(|v| key_of(v, merge_key, kind) == wanted)
        .map_or(-1, |i| i as isize)
}

static NULL: Value = Value::Null;

/// What upstream's `index` compares: the merge-key value for objects (a missing key and a
/// non-map both read as Go's nil), the item itself otherwise.
fn key_of<'v>(item: &'v Value, merge_key: &str, kind: Kind) -> &'v Value {
    if kind == Kind::Object {
        item.as_object()
            .and_then(|m| m.get(merge_key))
            .unwrap_or(&NULL)
    } else {
        item
    }
}

/// `validateMergeKeyInLists`.
pub(crate) fn validate_merge_key_in_lists(
    merge_key: &str,
    lists: &[&[Value]],
) -> Result<(), PatchError> {
    for list in lists {
        for item in list.iter() {
            let m = item
                .as_object()
                .ok_or_else(|| bad_arg_type(MAP_TYPE, item))?;
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
    }
    Ok(())
}

/// `extractToDeleteItems`: splits off the `$patch: delete` items.
pub(crate) fn extract_to_delete_items(
    list: Vec<Value>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for v in list {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
        if is_delete_directive(m) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

fn is_delete_directive(m: &Map<String, Value>) -> bool {
    m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE)
}

/// `partitionPrimitivesByPresentInList`.
pub(crate) fn partition_primitives(
    items: Vec<Value>,
    partition_by: &[Value],
) -> (Vec<Value>, Vec<Value>) {
    items.into_iter().partition(|v| partition_by.contains(v))
}

/// `partitionMapsByPresentInList`.
pub(crate) fn partition_maps(
    items: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present = Vec::new();
    let mut server_only = Vec::new();
    for v in items {
        let m = v.as_object().ok_or_else(|| bad_arg_type(MAP_TYPE, &v))?;
        let key_value = m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))?;
        if find_map_by_key(partition_by, merge_key, key_value)?.is_some() {
            present.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((present, server_only))
}

/// `findMapInSliceBasedOnKeyValue`: index of the first object whose `key` equals `value`.
pub(crate) fn find_map_by_key(
    list: &[Value],
    key: &str,
    value: &Value,
) -> Result<Option<usize>, PatchError> {
    for (i, v) in list.iter().enumerate() {
        let m = v.as_object().ok_or(PatchError::NotAMap(i))?;
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Go's `sort.SliceStable`: insertion sort over blocks of 20, then SymMerge.
///
/// Upstream's comparator answers "less" for any pair it cannot place, which is not an ordering,
/// so a different stable sort could give a different result; replaying Go's algorithm keeps the
/// outcome identical for every input.
pub(crate) fn go_slice_stable<T>(data: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let n = data.len();
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, &mut less);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, &mut less);
    while block < n {
        a = 0;
        b = 2 * block;
        while b <= n {
            sym_merge(data, a, a + block, b, &mut less);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, &mut less);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(data: &mut [T], a: usize, b: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(&data[j], &data[j - 1]) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sym_merge<T>(
    data: &mut [T],
    a: usize,
    m: usize,
    b: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(&data[h], &data[a]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = a;
        while k + 1 < i {
            data.swap(k, k + 1);
            k += 1;
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(&data[m], &data[h]) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(&data[p - c], &data[c]) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(data, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

fn rotate<T>(data: &mut [T], a: usize, m: usize, b: usize) {
    let mut i = m - a;
    let mut j = b - m;
    while i != j {
        if i > j {
            swap_range(data, m - i, m, j);
            i -= j;
        } else {
            swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(data, m - i, m, i);
}

fn swap_range<T>(data: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_stable_is_stable_on_long_inputs() {
        // 100 items, keys 0..10: a stable sort keeps the original order within each key.
        let mut v: Vec<(u32, u32)> = (0..100).map(|i| ((i * 7) % 10, i)).collect();
        go_slice_stable(&mut v, |a, b| a.0 < b.0);
        for w in v.windows(2) {
            assert!(w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1));
        }
    }
}
