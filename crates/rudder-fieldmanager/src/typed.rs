//! Schema-aware operations over JSON values (upstream's `typed` package): the field set of a
//! value, comparison, merge, and item removal.

use serde_json::{Map, Value};

use rudder_api::patch::{FieldShape, ListType, MapType, PatchStrategy, StructType, TypeSchema};

use crate::error::FieldManagerError;
use crate::path::{path_string, Path, PathElement};
use crate::set::FieldSet;

/// How the items of a list are identified.
#[derive(Debug, Clone, Copy)]
enum ListKind<'a> {
    /// Replaced whole: a leaf.
    Atomic,
    /// Associative without keys: scalars by value, anything else by index.
    Set,
    /// Associative with key fields (`+listMapKeys`).
    Map(&'a [String]),
    /// Associative by `patchMergeKey` alone (no `+listType` marker).
    MergeKey(&'a str),
}

/// The type at one position of a value.
#[derive(Debug, Clone, Copy)]
enum Ty<'a> {
    /// A granular struct.
    Struct(TypeSchema<'a>),
    /// A granular `map[string]T`; `values` is the schema its values take.
    Map(TypeSchema<'a>),
    /// A list.
    List(ListKind<'a>, TypeSchema<'a>),
    /// A scalar, an atomic struct or an atomic map: always a leaf.
    Leaf,
    /// No schema: maps are granular (every key is a map entry), lists atomic.
    Deduced,
}

impl<'a> Ty<'a> {
    /// The type of a root object.
    fn root(schema: TypeSchema<'a>) -> Self {
        if schema.is_known() {
            Ty::Struct(schema)
        } else {
            Ty::Deduced
        }
    }

    /// The type of the value under `key` of a map-shaped value of this type.
    fn child(&self, key: &str) -> Ty<'a> {
        match self {
            Ty::Struct(ts) => {
                let Some(f) = ts.field(key) else {
                    return Ty::Deduced;
                };
                match f.shape() {
                    FieldShape::Scalar => Ty::Leaf,
                    FieldShape::Struct => {
                        let (child, _) = ts.lookup_map(key);
                        struct_ty(child)
                    }
                    FieldShape::Map => {
                        if f.map_type() == Some(MapType::Atomic) {
                            Ty::Leaf
                        } else {
                            Ty::Map(ts.lookup_map(key).0)
                        }
                    }
                    FieldShape::List => {
                        let (item, _) = ts.lookup_list(key);
                        let kind = match f.list_type() {
                            Some(ListType::Map) if !f.list_map_keys().is_empty() => {
                                ListKind::Map(f.list_map_keys())
                            }
                            Some(ListType::Map) | Some(ListType::Set) => ListKind::Set,
                            Some(ListType::Atomic) => ListKind::Atomic,
                            // No +listType: kube-openapi's schemaconv derives it from the
                            // patch strategy (merge with a key: map; merge alone: set).
                            None if f.patch_strategy() == Some(PatchStrategy::Merge) => {
                                match f.patch_merge_key() {
                                    Some(key) => ListKind::MergeKey(key),
                                    None => ListKind::Set,
                                }
                            }
                            None => ListKind::Atomic,
                        };
                        Ty::List(kind, item)
                    }
                }
            }
            Ty::Map(values) => {
                let (child, _) = values.lookup_map(key);
                if child.type_def().is_some() {
                    struct_ty(child)
                } else {
                    Ty::Deduced
                }
            }
            Ty::List(..) | Ty::Leaf | Ty::Deduced => Ty::Deduced,
        }
    }

    /// Whether a key of a map-shaped value of this type is a declared struct field (upstream
    /// inserts the paths of map entries, but not of non-empty struct fields).
    fn is_declared_field(&self, key: &str) -> bool {
        match self {
            Ty::Struct(ts) => ts.field(key).is_some(),
            _ => false,
        }
    }
}

fn struct_ty(schema: TypeSchema<'_>) -> Ty<'_> {
    match schema.type_def() {
        Some(def) if def.struct_type() == Some(StructType::Atomic) => Ty::Leaf,
        Some(_) => Ty::Struct(schema),
        None => Ty::Deduced,
    }
}

/// Key fields with a schema default, used when an item omits them (upstream reads them from
/// the OpenAPI `default`; among the built-in list-map keys only `protocol` has one).
fn key_default(name: &str) -> Option<Value> {
    (name == "protocol").then(|| Value::String("TCP".to_owned()))
}

fn invalid(path: &[PathElement], message: impl Into<String>) -> FieldManagerError {
    FieldManagerError::InvalidObject {
        path: path_string(path),
        message: message.into(),
    }
}

/// The path element of a list item (upstream's `listItemToPathElement`).
fn item_element(
    kind: ListKind<'_>,
    index: usize,
    item: &Value,
    path: &[PathElement],
) -> Result<PathElement, FieldManagerError> {
    let one;
    let keys: &[String] = match kind {
        ListKind::Map(keys) => keys,
        ListKind::MergeKey(key) => {
            one = [key.to_owned()];
            &one
        }
        ListKind::Set | ListKind::Atomic => &[],
    };
    match kind {
        ListKind::Map(_) | ListKind::MergeKey(_) => {
            let Value::Object(map) = item else {
                return Err(invalid(
                    path,
                    "associative list with keys may not have non-map elements",
                ));
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match map.get(key) {
                    Some(Value::Null) => return Err(invalid(path, "key value was null")),
                    Some(v) => fields.push((key.clone(), v.clone())),
                    None => match key_default(key) {
                        Some(v) => fields.push((key.clone(), v)),
                        None => {
                            return Err(invalid(
                                path,
                                format!(
                                    "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                                ),
                            ))
                        }
                    },
                }
            }
            Ok(PathElement::key(fields))
        }
        ListKind::Set => match item {
            Value::Object(_) | Value::Array(_) => Ok(PathElement::Index(index as i64)),
            v => Ok(PathElement::Value(v.clone())),
        },
        ListKind::Atomic => Ok(PathElement::Index(index as i64)),
    }
}

fn is_empty_map(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty())
}

/// The fields a value sets (upstream's `TypedValue.ToFieldSet`): scalars, atomic lists, maps
/// and structs are leaves; list items are members themselves; map entries and null or empty
/// struct fields are members.
pub fn to_field_set(value: &Value, schema: TypeSchema<'_>) -> Result<FieldSet, FieldManagerError> {
    let mut set = FieldSet::new();
    let mut path = Path::new();
    walk_set(value, Ty::root(schema), &mut path, &mut set)?;
    Ok(set)
}

fn walk_set(
    value: &Value,
    ty: Ty<'_>,
    path: &mut Path,
    set: &mut FieldSet,
) -> Result<(), FieldManagerError> {
    match (ty, value) {
        (Ty::Struct(_) | Ty::Map(_) | Ty::Deduced, Value::Object(map)) => {
            for (key, child) in map {
                let child_ty = ty.child(key);
                path.push(PathElement::field(key.clone()));
                walk_set(child, child_ty, path, set)?;
                if child.is_null() || is_empty_map(child) || !ty.is_declared_field(key) {
                    set.insert(path);
                }
                path.pop();
            }
            Ok(())
        }
        (Ty::List(ListKind::Atomic, _), _) => {
            set.insert(path);
            Ok(())
        }
        (Ty::List(kind, item_schema), Value::Array(items)) => {
            let item_ty = struct_or_deduced(item_schema);
            for (i, item) in items.iter().enumerate() {
                let pe = item_element(kind, i, item, path)?;
                path.push(pe);
                walk_set(item, item_ty, path, set)?;
                set.insert(path);
                path.pop();
            }
            Ok(())
        }
        (Ty::List(..), _) | (Ty::Struct(_) | Ty::Map(_), _) => {
            // null or a scalar where a list or map is expected: a leaf.
            set.insert(path);
            Ok(())
        }
        (Ty::Leaf | Ty::Deduced, _) => {
            set.insert(path);
            Ok(())
        }
    }
}

/// The paths at which `value` sets an atomic list, map or struct (upstream's `findAtomics`):
/// a MutatingAdmissionPolicy's apply configuration may not set them, since merging would
/// replace them whole and drop what the object had there. Lists without a schema are atomic.
pub fn atomic_paths(value: &Value, schema: TypeSchema<'_>) -> Vec<String> {
    let mut out = Vec::new();
    walk_atomics(value, Ty::root(schema), &mut Path::new(), &mut out);
    out
}

fn walk_atomics(value: &Value, ty: Ty<'_>, path: &mut Path, out: &mut Vec<String>) {
    match (ty, value) {
        (Ty::Leaf, Value::Object(_) | Value::Array(_))
        | (Ty::List(ListKind::Atomic, _) | Ty::Deduced, Value::Array(_)) => {
            out.push(path_string(path))
        }
        (Ty::Struct(_) | Ty::Map(_) | Ty::Deduced, Value::Object(map)) => {
            for (key, child) in map {
                path.push(PathElement::field(key.clone()));
                walk_atomics(child, ty.child(key), path, out);
                path.pop();
            }
        }
        (Ty::List(_, item_schema), Value::Array(items)) => {
            let item_ty = struct_or_deduced(item_schema);
            for (i, item) in items.iter().enumerate() {
                path.push(PathElement::Index(i as i64));
                walk_atomics(item, item_ty, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn struct_or_deduced(schema: TypeSchema<'_>) -> Ty<'_> {
    if schema.type_def().is_some() {
        struct_ty(schema)
    } else {
        Ty::Deduced
    }
}

/// What changed between two values (upstream's `typed.Comparison`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present in the old value only.
    pub removed: FieldSet,
    /// Leaves present in both with different values.
    pub modified: FieldSet,
    /// Paths present in the new value only.
    pub added: FieldSet,
}

impl Comparison {
    /// Whether nothing changed.
    pub fn is_same(&self) -> bool {
        self.removed.is_empty() && self.modified.is_empty() && self.added.is_empty()
    }
}

/// Compares two values (upstream's `TypedValue.Compare`). `None` stands for an absent value.
pub fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: TypeSchema<'_>,
) -> Result<Comparison, FieldManagerError> {
    let mut c = Comparison::default();
    if old.is_none() && new.is_none() {
        return Ok(c);
    }
    let mut path = Path::new();
    walk_compare(old, new, Ty::root(schema), &mut path, &mut c)?;
    Ok(c)
}

fn walk_compare(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    ty: Ty<'_>,
    path: &mut Path,
    c: &mut Comparison,
) -> Result<(), FieldManagerError> {
    let leaf = |c: &mut Comparison, path: &Path| match (lhs, rhs) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(a), Some(b)) if !values_equal(a, b) => c.modified.insert(path),
        _ => {}
    };
    let is_leaf = match ty {
        Ty::Leaf => true,
        Ty::List(ListKind::Atomic, _) => true,
        Ty::Deduced => {
            !matches!(lhs, Some(Value::Object(_))) && !matches!(rhs, Some(Value::Object(_)))
        }
        Ty::Struct(_) | Ty::Map(_) => {
            !matches!(lhs, Some(Value::Object(_))) && !matches!(rhs, Some(Value::Object(_)))
        }
        Ty::List(..) => {
            !matches!(lhs, Some(Value::Array(_))) && !matches!(rhs, Some(Value::Array(_)))
        }
    };
    // Both empty or null: a leaf, preserving the empty/null distinction.
    let empty_leaf = match ty {
        Ty::List(..) => is_empty_or_absent_list(lhs) && is_empty_or_absent_list(rhs),
        _ => is_empty_or_absent_map(lhs) && is_empty_or_absent_map(rhs),
    };
    if is_leaf || empty_leaf {
        leaf(c, path);
        return Ok(());
    }
    match ty {
        Ty::List(kind, item_schema) => {
            let item_ty = struct_or_deduced(item_schema);
            let l = index_items(kind, lhs, path)?;
            let r = index_items(kind, rhs, path)?;
            for (pe, lv) in &l {
                let rv = r.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
                path.push(pe.clone());
                walk_compare(Some(lv), rv, item_ty, path, c)?;
                path.pop();
            }
            for (pe, rv) in &r {
                if l.iter().any(|(p, _)| p == pe) {
                    continue;
                }
                path.push(pe.clone());
                walk_compare(None, Some(rv), item_ty, path, c)?;
                path.pop();
            }
        }
        _ => {
            let empty = Map::new();
            let lm = as_map(lhs).unwrap_or(&empty);
            let rm = as_map(rhs).unwrap_or(&empty);
            let zero_struct = Value::Object(Map::new());
            // A side that lacks a field Go always serializes has its zero value there.
            let side = |present: bool, v: Option<&'_ Value>, key: &str| -> bool {
                present && v.is_none() && go_always_present(ty, key)
            };
            for (key, lv) in lm {
                let child_ty = ty.child(key);
                let zero = zero_of(child_ty, &zero_struct);
                let rv = rm.get(key);
                let rv = if side(rhs.is_some(), rv, key) {
                    zero
                } else {
                    rv
                };
                path.push(PathElement::field(key.clone()));
                walk_compare(Some(lv), rv, child_ty, path, c)?;
                path.pop();
            }
            for (key, rv) in rm {
                if lm.contains_key(key) {
                    continue;
                }
                let child_ty = ty.child(key);
                let zero = zero_of(child_ty, &zero_struct);
                let lv = if side(lhs.is_some(), None, key) {
                    zero
                } else {
                    None
                };
                path.push(PathElement::field(key.clone()));
                walk_compare(lv, Some(rv), child_ty, path, c)?;
                path.pop();
            }
        }
    }
    // Upstream's post-item hook: a non-leaf node present on one side only.
    match (lhs, rhs) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        _ => {}
    }
    Ok(())
}

/// Struct fields of the built-in types that Go declares as pointers (absent from a zero
/// value), among those commonly set; the schema table does not record pointers.
const POINTER_STRUCT_FIELDS: &[&str] = &[
    "rollingUpdate",
    "securityContext",
    "affinity",
    "dnsConfig",
    "sessionAffinityConfig",
    "podFailurePolicy",
    "successPolicy",
    "persistentVolumeClaimRetentionPolicy",
    "ordinals",
    "os",
];

/// List fields without `omitempty`: Go serializes them as `null` when unset.
const NON_OMITEMPTY_LISTS: &[&str] = &["containers", "rules"];

/// Whether Go's JSON encoding of a struct always writes `key` (a non-pointer struct field, or
/// a list without `omitempty`). Upstream compares Go values, in which such fields exist even
/// when empty, so they are never "added" as nodes; Rudder's stored JSON may omit them.
fn go_always_present(parent: Ty<'_>, key: &str) -> bool {
    let Ty::Struct(ts) = parent else {
        return false;
    };
    let Some(f) = ts.field(key) else {
        return false;
    };
    match f.shape() {
        FieldShape::Struct => {
            !POINTER_STRUCT_FIELDS.contains(&key) && matches!(parent.child(key), Ty::Struct(_))
        }
        FieldShape::List => NON_OMITEMPTY_LISTS.contains(&key),
        _ => false,
    }
}

/// The Go zero value standing in for an always-present field.
fn zero_of<'v>(ty: Ty<'_>, zero_struct: &'v Value) -> Option<&'v Value> {
    match ty {
        Ty::List(..) => Some(&Value::Null),
        _ => Some(zero_struct),
    }
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    match v {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn is_empty_or_absent_map(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        _ => false,
    }
}

fn is_empty_or_absent_list(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// The items of a list by path element, first occurrence of each element kept.
fn index_items<'v>(
    kind: ListKind<'_>,
    list: Option<&'v Value>,
    path: &[PathElement],
) -> Result<Vec<(PathElement, &'v Value)>, FieldManagerError> {
    let mut out: Vec<(PathElement, &'v Value)> = Vec::new();
    if let Some(Value::Array(items)) = list {
        for (i, item) in items.iter().enumerate() {
            let pe = item_element(kind, i, item, path)?;
            if out.iter().any(|(p, _)| *p == pe) {
                continue;
            }
            out.push((pe, item));
        }
    }
    Ok(out)
}

/// Value equality as upstream's `value.Equals` (numbers compare numerically).
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| values_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Merges `rhs` into `lhs` (upstream's `TypedValue.Merge`): structs and granular maps key by
/// key, `listType: map` and set lists item by item (upstream's ordering of shared items), and
/// everything else replaced by `rhs`.
pub fn merge(lhs: &Value, rhs: &Value, schema: TypeSchema<'_>) -> Result<Value, FieldManagerError> {
    let mut path = Path::new();
    merge_at(Some(lhs), Some(rhs), Ty::root(schema), &mut path).map(|v| v.unwrap_or(Value::Null))
}

fn merge_at(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    ty: Ty<'_>,
    path: &mut Path,
) -> Result<Option<Value>, FieldManagerError> {
    let keep_rhs = || Ok(rhs.or(lhs).cloned());
    match ty {
        Ty::Leaf | Ty::List(ListKind::Atomic, _) => keep_rhs(),
        Ty::List(kind, item_schema) => {
            let (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None) = (lhs, rhs) else {
                return keep_rhs();
            };
            if is_empty_or_absent_list(lhs) && is_empty_or_absent_list(rhs) {
                return keep_rhs();
            }
            let item_ty = struct_or_deduced(item_schema);
            let l = index_items(kind, lhs, path)?;
            let r = index_items(kind, rhs, path)?;
            let in_l = |pe: &PathElement| l.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
            let in_r = |pe: &PathElement| r.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
            let mut shared: std::collections::VecDeque<&PathElement> = r
                .iter()
                .map(|(p, _)| p)
                .filter(|p| in_l(p).is_some())
                .collect();
            let mut next_shared = shared.pop_front();
            let mut out = Vec::with_capacity(l.len().max(r.len()));
            let mut merged_rhs: Vec<&PathElement> = Vec::new();
            let (mut li, mut ri) = (0, 0);
            while li < l.len() || ri < r.len() {
                if li < l.len() && ri < r.len() {
                    let pe = &l[li].0;
                    if *pe == r[ri].0 {
                        merged_rhs.push(pe);
                        path.push(pe.clone());
                        let m = merge_at(Some(l[li].1), Some(r[ri].1), item_ty, path)?;
                        path.pop();
                        out.extend(m);
                        li += 1;
                        ri += 1;
                        next_shared = shared.pop_front();
                        continue;
                    }
                    if in_r(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                        li += 1;
                        continue;
                    }
                }
                if li < l.len() {
                    let pe = &l[li].0;
                    if in_r(pe).is_none() {
                        path.push(pe.clone());
                        let m = merge_at(Some(l[li].1), None, item_ty, path)?;
                        path.pop();
                        out.extend(m);
                        li += 1;
                        continue;
                    } else if merged_rhs.contains(&pe) {
                        li += 1;
                        continue;
                    }
                }
                if ri < r.len() {
                    let pe = &r[ri].0;
                    merged_rhs.push(pe);
                    path.push(pe.clone());
                    let m = merge_at(in_l(pe), Some(r[ri].1), item_ty, path)?;
                    path.pop();
                    out.extend(m);
                    ri += 1;
                    if next_shared.is_some_and(|n| n == pe) {
                        next_shared = shared.pop_front();
                    }
                }
            }
            Ok(Some(Value::Array(out)))
        }
        Ty::Struct(_) | Ty::Map(_) | Ty::Deduced => {
            let (Some(Value::Object(lm)), Some(Value::Object(rm))) = (lhs, rhs) else {
                return keep_rhs();
            };
            let mut out = lm.clone();
            for (key, rv) in rm {
                path.push(PathElement::field(key.clone()));
                let m = merge_at(lm.get(key), Some(rv), ty.child(key), path)?;
                path.pop();
                if let Some(v) = m {
                    out.insert(key.clone(), v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
    }
}

/// Removes every member path of `items` from the value, with everything below it (upstream's
/// `TypedValue.RemoveItems`).
pub fn remove_items(
    value: &Value,
    items: &FieldSet,
    schema: TypeSchema<'_>,
) -> Result<Value, FieldManagerError> {
    let mut path = Path::new();
    remove_at(value, items, Ty::root(schema), &mut path)
}

fn remove_at(
    value: &Value,
    items: &FieldSet,
    ty: Ty<'_>,
    path: &mut Path,
) -> Result<Value, FieldManagerError> {
    match (ty, value) {
        (Ty::List(kind, item_schema), Value::Array(list)) if !matches!(kind, ListKind::Atomic) => {
            let item_ty = struct_or_deduced(item_schema);
            let mut out = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let pe = item_element(kind, i, item, path)?;
                if items.members().contains(&pe) {
                    continue;
                }
                match items.with_prefix(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        path.push(pe);
                        out.push(remove_at(item, sub, item_ty, path)?);
                        path.pop();
                    }
                    _ => out.push(item.clone()),
                }
            }
            Ok(Value::Array(out))
        }
        (Ty::Struct(_) | Ty::Map(_) | Ty::Deduced, Value::Object(map)) => {
            let mut out = Map::new();
            for (key, child) in map {
                let pe = PathElement::field(key.clone());
                if items.members().contains(&pe) {
                    continue;
                }
                match items.with_prefix(&pe) {
                    Some(sub) if !sub.is_empty() => {
                        path.push(pe);
                        out.insert(key.clone(), remove_at(child, sub, ty.child(key), path)?);
                        path.pop();
                    }
                    _ => {
                        out.insert(key.clone(), child.clone());
                    }
                }
            }
            Ok(Value::Object(out))
        }
        _ => Ok(value.clone()),
    }
}

/// Adds the declared struct fields that have children as members (upstream's
/// `Set.EnsureNamedFieldsAreMembers`), so that removing them removes the field itself.
pub(crate) fn ensure_named_fields_are_members(set: &FieldSet, schema: TypeSchema<'_>) -> FieldSet {
    ensure_at(set, Ty::root(schema))
}

fn ensure_at(set: &FieldSet, ty: Ty<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    for m in set.members() {
        out.insert_member(m.clone());
    }
    for (pe, child) in set.children() {
        let child_ty = match (ty, pe) {
            (Ty::List(_, item_schema), _) => struct_or_deduced(item_schema),
            (_, PathElement::Field(name)) => {
                if ty.is_declared_field(name) {
                    out.insert_member(pe.clone());
                }
                ty.child(name)
            }
            _ => Ty::Deduced,
        };
        *out.child_mut(pe.clone()) = ensure_at(child, child_ty);
    }
    out
}
