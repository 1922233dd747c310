//! Sets of field paths (upstream's `fieldpath.Set`) and their FieldsV1 encoding.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::error::FieldManagerError;
use crate::path::{go_json, Path, PathElement};

/// A set of paths, stored as a trie: `members` are the paths that end here, `children` the
/// subsets below each element. A path can be both a member and have children (FieldsV1's `"."`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// The empty set.
    pub fn new() -> Self {
        FieldSet::default()
    }

    /// A set of the given paths.
    pub fn from_paths<I: IntoIterator<Item = Path>>(paths: I) -> Self {
        let mut set = FieldSet::new();
        for p in paths {
            set.insert(&p);
        }
        set
    }

    /// Whether the set holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds a path (the empty path is ignored, as the root is never a member).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether the path is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// The paths below `pe`, relative to it (upstream's `WithPrefix`).
    pub fn with_prefix(&self, pe: &PathElement) -> Option<&FieldSet> {
        self.children.get(pe)
    }

    pub(crate) fn members(&self) -> &BTreeSet<PathElement> {
        &self.members
    }

    pub(crate) fn children(&self) -> &BTreeMap<PathElement, FieldSet> {
        &self.children
    }

    pub(crate) fn insert_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn child_mut(&mut self, pe: PathElement) -> &mut FieldSet {
        self.children.entry(pe).or_default()
    }

    /// Every member path, in upstream's iteration order (members before children, each in
    /// path-element order).
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for m in &self.members {
            let mut p = prefix.clone();
            p.push(m.clone());
            out.push(p);
        }
        for (pe, child) in &self.children {
            prefix.push(pe.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// Every path in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, child) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    /// The paths of `self` that are not in `other` (not recursive: removing a member keeps the
    /// paths below it, as upstream's `Difference`).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            let rest = match other.children.get(pe) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// The paths of `self` that are neither in `other` nor below one of its members
    /// (upstream's `RecursiveDifference`).
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            let rest = match other.children.get(pe) {
                Some(theirs) => child.recursive_difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(pe.clone(), rest);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, child) in &self.children {
            if let Some(theirs) = other.children.get(pe) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(pe.clone(), both);
                }
            }
        }
        out
    }

    /// Encodes the set as FieldsV1 JSON text, byte for byte as upstream's
    /// `Set.ToJSON` (elements in upstream's order, `"."` for a path that is both a member and
    /// has children).
    pub fn to_fields_v1_string(&self) -> String {
        let mut out = String::new();
        self.emit(false, &mut out);
        out
    }

    /// Encodes the set as a FieldsV1 JSON value. The key order of the value is whatever
    /// `serde_json::Map` keeps; use [`FieldSet::to_fields_v1_string`] for upstream's bytes.
    pub fn to_fields_v1(&self) -> Value {
        serde_json::from_str(&self.to_fields_v1_string()).unwrap_or(Value::Null)
    }

    fn emit(&self, include_self: bool, out: &mut String) {
        let mut first = true;
        let mut pre = |out: &mut String| {
            if first {
                out.push('{');
                first = false;
            } else {
                out.push(',');
            }
        };
        let has_content = !self.members.is_empty() || !self.children.is_empty();
        if include_self && has_content {
            pre(out);
            out.push_str("\".\":{}");
        }
        let mut members = self.members.iter().peekable();
        let mut children = self.children.iter().peekable();
        loop {
            let take_member = match (members.peek(), children.peek()) {
                (None, None) => break,
                (Some(_), None) => Some(true),
                (None, Some(_)) => Some(false),
                (Some(m), Some((c, _))) => match (*m).cmp(*c) {
                    std::cmp::Ordering::Less => Some(true),
                    std::cmp::Ordering::Greater => Some(false),
                    std::cmp::Ordering::Equal => None,
                },
            };
            pre(out);
            match take_member {
                Some(true) => {
                    if let Some(m) = members.next() {
                        write_key(out, m);
                        out.push_str("{}");
                    }
                }
                Some(false) => {
                    if let Some((pe, child)) = children.next() {
                        write_key(out, pe);
                        child.emit(false, out);
                    }
                }
                None => {
                    members.next();
                    if let Some((pe, child)) = children.next() {
                        write_key(out, pe);
                        child.emit(true, out);
                    }
                }
            }
        }
        if first {
            out.push_str("{}");
        } else {
            out.push('}');
        }
    }

    /// Decodes FieldsV1 JSON text.
    pub fn from_fields_v1_str(text: &str) -> Result<FieldSet, FieldManagerError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| FieldManagerError::InvalidFieldsV1 {
                message: e.to_string(),
            })?;
        FieldSet::from_fields_v1(&value)
    }

    /// Decodes a FieldsV1 JSON value.
    pub fn from_fields_v1(value: &Value) -> Result<FieldSet, FieldManagerError> {
        let (set, _) = decode(value)?;
        Ok(set)
    }
}

fn write_key(out: &mut String, pe: &PathElement) {
    out.push_str(&go_json(&Value::String(pe.to_fields_v1_key())));
    out.push(':');
}

/// Returns the set below an object and whether it contained `"."`.
fn decode(value: &Value) -> Result<(FieldSet, bool), FieldManagerError> {
    let Value::Object(map) = value else {
        return Err(FieldManagerError::InvalidFieldsV1 {
            message: "expected an object".to_owned(),
        });
    };
    let mut set = FieldSet::new();
    let mut is_self = false;
    for (key, child) in map {
        if key == "." {
            is_self = true;
            continue;
        }
        let pe = PathElement::from_fields_v1_key(key)?;
        let (sub, sub_self) = decode(child)?;
        let leaf = matches!(child, Value::Object(m) if m.is_empty());
        if leaf || sub_self {
            set.members.insert(pe.clone());
        }
        if !sub.is_empty() {
            set.children.insert(pe, sub);
        }
    }
    Ok((set, is_self))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::field(name)
    }

    fn k(name: &str) -> PathElement {
        PathElement::key(vec![("name".to_owned(), json!(name))])
    }

    const BRIEF_EXAMPLE: &str = r#"{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{}}}}}"#;

    #[test]
    fn round_trips_fields_v1_byte_for_byte() {
        let set = FieldSet::from_fields_v1_str(BRIEF_EXAMPLE).unwrap();
        assert!(set.has(&[f("metadata"), f("labels"), f("app")]));
        assert!(set.has(&[f("spec"), f("containers"), k("web")]));
        assert!(set.has(&[f("spec"), f("containers"), k("web"), f("image")]));
        assert!(!set.has(&[f("spec")]));
        assert_eq!(set.to_fields_v1_string(), BRIEF_EXAMPLE);
    }

    #[test]
    fn upstream_order_is_field_key_value_index() {
        // Serde would sort "i:" before "k:"; upstream sorts by element kind.
        let text = r#"{"f:a":{},"k:{\"name\":\"x\"}":{},"v:\"y\"":{},"i:0":{}}"#;
        let set = FieldSet::from_fields_v1_str(text).unwrap();
        assert_eq!(set.to_fields_v1_string(), text);
        assert_eq!(FieldSet::new().to_fields_v1_string(), "{}");
    }

    #[test]
    fn set_algebra() {
        let a = FieldSet::from_paths([
            vec![f("spec"), f("replicas")],
            vec![f("spec"), f("containers"), k("web")],
            vec![f("spec"), f("containers"), k("web"), f("image")],
        ]);
        let b =
            FieldSet::from_paths([vec![f("spec"), f("replicas")], vec![f("spec"), f("paused")]]);
        let u = a.union(&b);
        assert_eq!(u.paths().len(), 4);
        let d = a.difference(&b);
        assert!(!d.has(&[f("spec"), f("replicas")]));
        assert!(d.has(&[f("spec"), f("containers"), k("web"), f("image")]));
        let i = a.intersection(&b);
        assert_eq!(i.paths(), vec![vec![f("spec"), f("replicas")]]);
        assert!(a.difference(&a).is_empty());
        assert!(a.intersection(&FieldSet::new()).is_empty());
        // Removing the item member keeps its fields; the recursive form drops them too.
        let item = FieldSet::from_paths([vec![f("spec"), f("containers"), k("web")]]);
        assert!(a
            .difference(&item)
            .has(&[f("spec"), f("containers"), k("web"), f("image")]));
        assert_eq!(a.recursive_difference(&item).paths().len(), 1);
    }
}
