//! Per-field patch metadata of the built-in types, loaded from data.
//!
//! Strategic merge patch needs, at every field, what upstream's Go struct tags say:
//! `patchStrategy` (`merge`, `replace`, `retainKeys`, or `merge,retainKeys`), `patchMergeKey`,
//! and the Go type to descend into. Server-side apply needs the `+listType`, `+listMapKeys`,
//! `+mapType` and `+structType` markers of the same fields. A hand-written list would drift from
//! upstream, so the table is built from four files under `data/`:
//!
//! - `list-and-patch-semantics.tsv`: the tags and markers of every built-in field that has any
//!   (extracted from k8s.io/api and apimachinery's meta/v1 at about v1.37);
//! - `struct-fields.tsv`: every field of every type with its shape and element type, generated
//!   from k8s-openapi's v1.37 sources by `gen-struct-fields.py` (the semantics table only lists
//!   fields that carry semantics, so it cannot say that `Deployment.spec` is a `DeploymentSpec`);
//! - `kinds.tsv`: which type is the root of each `apiVersion`/`kind` (same generator);
//! - `inline.tsv`: Go structs embedded inline, whose tags apply to the outer type's fields.
//!
//! The files are compiled in and parsed once ([`SchemaTable::builtin`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

const SEMANTICS_TSV: &str = include_str!("../../data/list-and-patch-semantics.tsv");
const STRUCT_FIELDS_TSV: &str = include_str!("../../data/struct-fields.tsv");
const KINDS_TSV: &str = include_str!("../../data/kinds.tsv");
const INLINE_TSV: &str = include_str!("../../data/inline.tsv");

static BUILTIN: LazyLock<Result<SchemaTable, SchemaError>> = LazyLock::new(|| {
    SchemaTable::from_tsv(STRUCT_FIELDS_TSV, SEMANTICS_TSV, KINDS_TSV, INLINE_TSV)
});

/// A malformed row in one of the schema tables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} line {line}: {message}")]
pub struct SchemaError {
    /// Which table (`struct-fields`, `semantics`, `kinds`, `inline`).
    pub table: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// How a field's value is shaped in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldShape {
    /// A string, number, boolean, or an opaque value (Quantity, Time, RawExtension, ...).
    Scalar,
    /// A nested struct.
    Struct,
    /// A list.
    List,
    /// A map with string keys.
    Map,
}

/// The non-`retainKeys` part of a `patchStrategy` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// Lists merge item by item (by `patchMergeKey` for lists of objects).
    Merge,
    /// The value is replaced whole, never merged.
    Replace,
}

/// `+listType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// Items keyed by `listMapKeys`.
    Map,
}

/// `+mapType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    /// Replaced whole.
    Atomic,
    /// Merged key by key.
    Granular,
}

/// `+structType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructType {
    /// Replaced whole.
    Atomic,
    /// Merged field by field.
    Granular,
}

/// One field of a [`TypeDef`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    json_name: String,
    shape: FieldShape,
    elem: Option<usize>,
    go_type: Option<String>,
    strategy: Option<PatchStrategy>,
    retain_keys: bool,
    merge_key: Option<String>,
    list_type: Option<ListType>,
    list_map_keys: Vec<String>,
    map_type: Option<MapType>,
}

impl FieldDef {
    fn new(json_name: &str, shape: FieldShape) -> Self {
        FieldDef {
            json_name: json_name.to_owned(),
            shape,
            elem: None,
            go_type: None,
            strategy: None,
            retain_keys: false,
            merge_key: None,
            list_type: None,
            list_map_keys: Vec::new(),
            map_type: None,
        }
    }

    /// The JSON name.
    pub fn json_name(&self) -> &str {
        &self.json_name
    }

    /// The JSON shape.
    pub fn shape(&self) -> FieldShape {
        self.shape
    }

    /// The Go type as upstream declares it (`[]Container`), when the semantics table lists the
    /// field.
    pub fn go_type(&self) -> Option<&str> {
        self.go_type.as_deref()
    }

    /// `patchStrategy` without `retainKeys`.
    pub fn patch_strategy(&self) -> Option<PatchStrategy> {
        self.strategy
    }

    /// Whether `patchStrategy` includes `retainKeys`.
    pub fn retain_keys(&self) -> bool {
        self.retain_keys
    }

    /// `patchMergeKey`.
    pub fn patch_merge_key(&self) -> Option<&str> {
        self.merge_key.as_deref()
    }

    /// `+listType`.
    pub fn list_type(&self) -> Option<ListType> {
        self.list_type
    }

    /// `+listMapKeys`.
    pub fn list_map_keys(&self) -> &[String] {
        &self.list_map_keys
    }

    /// `+mapType`.
    pub fn map_type(&self) -> Option<MapType> {
        self.map_type
    }

    fn meta(&self) -> PatchMeta<'_> {
        PatchMeta {
            strategy: self.strategy,
            retain_keys: self.retain_keys,
            merge_key: self.merge_key.as_deref().unwrap_or(""),
        }
    }

    fn has_semantics(&self) -> bool {
        self.strategy.is_some()
            || self.retain_keys
            || self.merge_key.is_some()
            || self.list_type.is_some()
            || !self.list_map_keys.is_empty()
            || self.map_type.is_some()
    }
}

/// One Go struct type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDef {
    group_version: String,
    name: String,
    fields: BTreeMap<String, FieldDef>,
    struct_type: Option<StructType>,
}

impl TypeDef {
    /// The Go package as `group/version` (`core/v1`, `apps/v1`, `meta/v1`).
    pub fn group_version(&self) -> &str {
        &self.group_version
    }

    /// The Go type name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A field by JSON name.
    pub fn field(&self, json_name: &str) -> Option<&FieldDef> {
        self.fields.get(json_name)
    }

    /// All fields, by JSON name.
    pub fn fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.values()
    }

    /// `+structType`.
    pub fn struct_type(&self) -> Option<StructType> {
        self.struct_type
    }
}

/// The patch metadata upstream's `LookupPatchMetadataFor*` returns for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchMeta<'a> {
    /// `patchStrategy` without `retainKeys`.
    pub strategy: Option<PatchStrategy>,
    /// Whether `patchStrategy` includes `retainKeys`.
    pub retain_keys: bool,
    /// `patchMergeKey`, empty when there is none.
    pub merge_key: &'a str,
}

/// The built-in types, their fields' patch metadata, and the root type of each kind.
#[derive(Debug, Clone, Default)]
pub struct SchemaTable {
    types: Vec<TypeDef>,
    by_name: HashMap<(String, String), usize>,
    kinds: HashMap<(String, String), usize>,
}

/// A position in the schema: the Go type whose fields apply to the JSON object at hand.
///
/// Upstream walks Go types with reflection; this is the equivalent cursor. [`TypeSchema::unknown`]
/// stands for anything the table does not describe (custom resources, unknown fields), where
/// maps merge recursively and lists are replaced.
#[derive(Debug, Clone, Copy)]
pub struct TypeSchema<'a> {
    node: Node<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    Unknown,
    Struct(&'a SchemaTable, usize),
    /// A `map[string]T`; `None` for scalar values.
    MapOf(&'a SchemaTable, Option<usize>),
}

impl<'a> TypeSchema<'a> {
    /// No type information: JSON-merge semantics.
    pub fn unknown() -> Self {
        TypeSchema {
            node: Node::Unknown,
        }
    }

    /// Whether the table describes this position.
    pub fn is_known(&self) -> bool {
        !matches!(self.node, Node::Unknown)
    }

    /// The struct type at this position.
    pub fn type_def(&self) -> Option<&'a TypeDef> {
        match self.node {
            Node::Struct(table, i) => table.types.get(i),
            _ => None,
        }
    }

    /// A field of the struct at this position.
    ///
    /// Like `encoding/json`, upstream falls back to a case-insensitive match of the JSON name.
    pub fn field(&self, json_name: &str) -> Option<&'a FieldDef> {
        let def = self.type_def()?;
        def.fields.get(json_name).or_else(|| {
            def.fields
                .values()
                .find(|f| f.json_name.eq_ignore_ascii_case(json_name))
        })
    }

    /// The schema of an object-valued entry `key` and its patch metadata
    /// (upstream's `LookupPatchMetadataForStruct`).
    pub fn lookup_map(&self, key: &str) -> (TypeSchema<'a>, PatchMeta<'a>) {
        match self.node {
            Node::Struct(table, _) => match self.field(key) {
                Some(f) => {
                    let node = match (f.shape, f.elem) {
                        (FieldShape::Struct, Some(e)) => Node::Struct(table, e),
                        (FieldShape::Map, elem) => Node::MapOf(table, elem),
                        _ => Node::Unknown,
                    };
                    (TypeSchema { node }, f.meta())
                }
                None => (TypeSchema::unknown(), PatchMeta::default()),
            },
            // The values of a map[string]T have T's fields and no tags of their own.
            Node::MapOf(table, Some(e)) => (
                TypeSchema {
                    node: Node::Struct(table, e),
                },
                PatchMeta::default(),
            ),
            Node::MapOf(_, None) | Node::Unknown => (TypeSchema::unknown(), PatchMeta::default()),
        }
    }

    /// The schema of the items of a list-valued entry `key` and its patch metadata
    /// (upstream's `LookupPatchMetadataForSlice`).
    pub fn lookup_list(&self, key: &str) -> (TypeSchema<'a>, PatchMeta<'a>) {
        match self.node {
            Node::Struct(table, _) => match self.field(key) {
                Some(f) => {
                    // A pointer-to-struct field that holds a list is read as a list of that
                    // struct, as upstream does.
                    let node = match (f.shape, f.elem) {
                        (FieldShape::List | FieldShape::Struct, Some(e)) => Node::Struct(table, e),
                        _ => Node::Unknown,
                    };
                    (TypeSchema { node }, f.meta())
                }
                None => (TypeSchema::unknown(), PatchMeta::default()),
            },
            Node::MapOf(..) | Node::Unknown => (TypeSchema::unknown(), PatchMeta::default()),
        }
    }

    /// The Go kind upstream names in "cannot merge lists without merge key for ...".
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.node {
            Node::Struct(..) => "struct",
            Node::MapOf(..) => "map",
            Node::Unknown => "interface",
        }
    }
}

impl SchemaTable {
    /// The table of the built-in types, parsed on first use.
    pub fn builtin() -> Result<&'static SchemaTable, SchemaError> {
        BUILTIN.as_ref().map_err(Clone::clone)
    }

    /// The schema of a kind's root object, if it is a built-in kind.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<TypeSchema<'_>> {
        let i = *self.kinds.get(&(api_version.to_owned(), kind.to_owned()))?;
        Some(TypeSchema {
            node: Node::Struct(self, i),
        })
    }

    /// The schema of a Go type (`"core/v1"`, `"PodSpec"`).
    pub fn type_schema(&self, group_version: &str, name: &str) -> Option<TypeSchema<'_>> {
        let i = self.index(group_version, name)?;
        Some(TypeSchema {
            node: Node::Struct(self, i),
        })
    }

    /// A Go type.
    pub fn type_def(&self, group_version: &str, name: &str) -> Option<&TypeDef> {
        self.types.get(self.index(group_version, name)?)
    }

    /// A field of a Go type.
    pub fn field(
        &self,
        group_version: &str,
        type_name: &str,
        json_name: &str,
    ) -> Option<&FieldDef> {
        self.type_def(group_version, type_name)?.field(json_name)
    }

    /// The element type of a struct, list or map field.
    pub fn elem_type(&self, field: &FieldDef) -> Option<&TypeDef> {
        self.types.get(field.elem?)
    }

    /// Every type.
    pub fn types(&self) -> impl Iterator<Item = &TypeDef> {
        self.types.iter()
    }

    /// Every kind as (`apiVersion`, `kind`, root type).
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str, &TypeDef)> {
        self.kinds
            .iter()
            .filter_map(|((v, k), i)| self.types.get(*i).map(|t| (v.as_str(), k.as_str(), t)))
    }

    fn index(&self, group_version: &str, name: &str) -> Option<usize> {
        self.by_name
            .get(&(group_version.to_owned(), name.to_owned()))
            .copied()
    }

    fn ensure_type(&mut self, group_version: &str, name: &str) -> usize {
        if let Some(i) = self.index(group_version, name) {
            return i;
        }
        self.types.push(TypeDef {
            group_version: group_version.to_owned(),
            name: name.to_owned(),
            fields: BTreeMap::new(),
            struct_type: None,
        });
        let i = self.types.len() - 1;
        self.by_name
            .insert((group_version.to_owned(), name.to_owned()), i);
        i
    }

    /// Builds a table from TSV text in the formats of the files under `data/` (lines starting
    /// with `#` and each table's header line are skipped).
    ///
    /// Tests use this to build upstream's own test types (`MergeItem`) next to the built-in ones.
    pub fn from_tsv(
        struct_fields: &str,
        semantics: &str,
        kinds: &str,
        inline: &str,
    ) -> Result<SchemaTable, SchemaError> {
        let mut table = SchemaTable::default();
        table.load_struct_fields(struct_fields)?;
        let unresolved = table.load_semantics(semantics)?;
        table.resolve_go_types(unresolved);
        table.load_kinds(kinds)?;
        table.load_inline(inline)?;
        Ok(table)
    }

    fn load_struct_fields(&mut self, text: &str) -> Result<(), SchemaError> {
        for (line, cols) in rows(text, "group_version") {
            let err = |message: String| SchemaError {
                table: "struct-fields",
                line,
                message,
            };
            let [gv, ty, json, shape, elem_gv, elem_ty] = take_cols::<6>(&cols);
            if gv.is_empty() || ty.is_empty() || json.is_empty() {
                return Err(err("empty group_version, type or json_field".into()));
            }
            let shape = match shape {
                "scalar" => FieldShape::Scalar,
                "struct" => FieldShape::Struct,
                "list" => FieldShape::List,
                "map" => FieldShape::Map,
                other => return Err(err(format!("unknown shape {other:?}"))),
            };
            let elem = match (elem_gv.is_empty(), elem_ty.is_empty()) {
                (true, true) => None,
                (false, false) => Some(self.ensure_type(elem_gv, elem_ty)),
                _ => return Err(err("element type needs both group_version and type".into())),
            };
            if shape == FieldShape::Struct && elem.is_none() {
                return Err(err(format!("struct field {json} has no type")));
            }
            let t = self.ensure_type(gv, ty);
            let mut field = FieldDef::new(json, shape);
            field.elem = elem;
            if self.types[t]
                .fields
                .insert(json.to_owned(), field)
                .is_some()
            {
                return Err(err(format!("duplicate field {gv} {ty}.{json}")));
            }
        }
        Ok(())
    }

    /// Loads tags and markers; returns the fields the struct graph did not know, whose element
    /// type must be resolved from the Go type once every type is registered.
    fn load_semantics(&mut self, text: &str) -> Result<Vec<(usize, String)>, SchemaError> {
        let mut unresolved = Vec::new();
        for (line, cols) in rows(text, "group_version") {
            let err = |message: String| SchemaError {
                table: "semantics",
                line,
                message,
            };
            let [gv, ty, json, go_type, strategy, merge_key, list_type, map_keys, map_type, struct_type] =
                take_cols::<10>(&cols);
            if gv.is_empty() || ty.is_empty() || json.is_empty() {
                return Err(err("empty group_version, type or json_field".into()));
            }
            let t = self.ensure_type(gv, ty);
            if json == "(struct)" {
                self.types[t].struct_type = match struct_type {
                    "atomic" => Some(StructType::Atomic),
                    "granular" => Some(StructType::Granular),
                    other => return Err(err(format!("unknown structType {other:?}"))),
                };
                continue;
            }
            let (strategy, retain_keys) = parse_strategy(strategy).map_err(err)?;
            let list_type = match list_type {
                "" => None,
                "atomic" => Some(ListType::Atomic),
                "set" => Some(ListType::Set),
                "map" => Some(ListType::Map),
                other => return Err(err(format!("unknown listType {other:?}"))),
            };
            let map_type = match map_type {
                "" => None,
                "atomic" => Some(MapType::Atomic),
                "granular" => Some(MapType::Granular),
                other => return Err(err(format!("unknown mapType {other:?}"))),
            };
            let fields = &mut self.types[t].fields;
            let field = match fields.get_mut(json) {
                Some(f) => f,
                None => {
                    unresolved.push((t, json.to_owned()));
                    fields
                        .entry(json.to_owned())
                        .or_insert_with(|| FieldDef::new(json, shape_of_go_type(go_type)))
                }
            };
            if field.has_semantics() {
                return Err(err(format!("duplicate row for {gv} {ty}.{json}")));
            }
            field.go_type = (!go_type.is_empty()).then(|| go_type.to_owned());
            field.strategy = strategy;
            field.retain_keys = retain_keys;
            field.merge_key = (!merge_key.is_empty()).then(|| merge_key.to_owned());
            field.list_type = list_type;
            field.list_map_keys = map_keys
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            field.map_type = map_type;
        }
        Ok(unresolved)
    }

    /// Gives fields known only from the semantics table (types of API versions k8s-openapi does
    /// not ship) an element type from their Go type name, where that type is in the table.
    fn resolve_go_types(&mut self, unresolved: Vec<(usize, String)>) {
        for (t, json) in unresolved {
            let gv = self.types[t].group_version.clone();
            let Some(go_type) = self.types[t]
                .fields
                .get(&json)
                .and_then(|f| f.go_type.clone())
            else {
                continue;
            };
            let base = go_type_base(&go_type);
            let (elem_gv, elem_name) = match base.split_once('.') {
                Some(("metav1", name)) => ("meta/v1".to_owned(), name),
                Some(("v1" | "corev1", name)) => ("core/v1".to_owned(), name),
                Some(_) => continue,
                None => (gv, base),
            };
            let elem = self.index(&elem_gv, elem_name);
            if let Some(f) = self.types[t].fields.get_mut(&json) {
                f.elem = elem;
                if f.shape == FieldShape::Scalar && elem.is_some() {
                    f.shape = FieldShape::Struct;
                }
            }
        }
    }

    fn load_kinds(&mut self, text: &str) -> Result<(), SchemaError> {
        for (line, cols) in rows(text, "api_version") {
            let [api_version, kind, gv, ty] = take_cols::<4>(&cols);
            let Some(i) = self.index(gv, ty) else {
                return Err(SchemaError {
                    table: "kinds",
                    line,
                    message: format!("unknown type {gv} {ty}"),
                });
            };
            self.kinds
                .insert((api_version.to_owned(), kind.to_owned()), i);
        }
        Ok(())
    }

    fn load_inline(&mut self, text: &str) -> Result<(), SchemaError> {
        let mut pairs = Vec::new();
        for (line, cols) in rows(text, "group_version") {
            let [gv, outer, inner] = take_cols::<3>(&cols);
            let (Some(o), Some(i)) = (self.index(gv, outer), self.index(gv, inner)) else {
                return Err(SchemaError {
                    table: "inline",
                    line,
                    message: format!("unknown type {gv} {outer} or {inner}"),
                });
            };
            pairs.push((o, i));
        }
        // Embedding can nest (NamedRuleWithOperations > RuleWithOperations > Rule); copying
        // until nothing changes covers any depth.
        for _ in 0..=pairs.len() {
            let mut changed = false;
            for &(outer, inner) in &pairs {
                let inherited: Vec<FieldDef> = self.types[inner]
                    .fields
                    .values()
                    .filter(|f| f.has_semantics())
                    .cloned()
                    .collect();
                let fields = &mut self.types[outer].fields;
                for f in inherited {
                    match fields.get_mut(&f.json_name) {
                        Some(existing) if existing.has_semantics() => {}
                        Some(existing) => {
                            existing.go_type = f.go_type;
                            existing.strategy = f.strategy;
                            existing.retain_keys = f.retain_keys;
                            existing.merge_key = f.merge_key;
                            existing.list_type = f.list_type;
                            existing.list_map_keys = f.list_map_keys;
                            existing.map_type = f.map_type;
                            changed = true;
                        }
                        None => {
                            fields.insert(f.json_name.clone(), f);
                            changed = true;
                        }
                    }
                }
            }
            if !changed {
                break;
            }
        }
        Ok(())
    }
}

/// Parses `patchStrategy` the way upstream's `extractRetainKeysPatchStrategy` splits it.
fn parse_strategy(s: &str) -> Result<(Option<PatchStrategy>, bool), String> {
    let mut strategy = None;
    let mut retain_keys = false;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part {
            "retainKeys" if !retain_keys => retain_keys = true,
            "merge" if strategy.is_none() => strategy = Some(PatchStrategy::Merge),
            "replace" if strategy.is_none() => strategy = Some(PatchStrategy::Replace),
            _ => return Err(format!("unexpected patch strategy: {s:?}")),
        }
    }
    Ok((strategy, retain_keys))
}

fn shape_of_go_type(go_type: &str) -> FieldShape {
    let t = go_type.trim_start_matches('*');
    if t.starts_with("[]") {
        FieldShape::List
    } else if t.starts_with("map[") {
        FieldShape::Map
    } else {
        FieldShape::Scalar
    }
}

/// `[]*v1.Foo` -> `v1.Foo`, `map[string]Bar` -> `Bar`.
fn go_type_base(go_type: &str) -> &str {
    let mut t = go_type;
    loop {
        let before = t;
        t = t.trim_start_matches('*').trim_start_matches("[]");
        if let Some(rest) = t.strip_prefix("map[") {
            t = rest.split_once(']').map_or(rest, |(_, v)| v);
        }
        if t == before {
            return t;
        }
    }
}

/// Data rows of a TSV table: comments and the header (first column `header`) skipped, with
/// 1-based line numbers.
fn rows<'t>(text: &'t str, header: &'t str) -> impl Iterator<Item = (usize, Vec<&'t str>)> + 't {
    text.lines()
        .enumerate()
        .filter(move |(_, l)| {
            !l.trim().is_empty() && !l.starts_with('#') && l.split('\t').next() != Some(header)
        })
        .map(|(i, l)| (i + 1, l.split('\t').map(str::trim).collect()))
}

/// The first `N` columns, empty where the line is shorter (editors strip trailing tabs).
fn take_cols<'t, const N: usize>(cols: &[&'t str]) -> [&'t str; N] {
    let mut out = [""; N];
    for (slot, c) in out.iter_mut().zip(cols) {
        *slot = c;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses() {
        let table = SchemaTable::builtin().expect("builtin schema parses");
        assert!(table.types().count() > 500);
        let containers = table
            .field("core/v1", "PodSpec", "containers")
            .expect("containers");
        assert_eq!(containers.patch_strategy(), Some(PatchStrategy::Merge));
        assert_eq!(containers.patch_merge_key(), Some("name"));
        assert_eq!(
            table.elem_type(containers).map(TypeDef::name),
            Some("Container")
        );
    }

    #[test]
    fn kinds_resolve_to_their_root_types() {
        let table = SchemaTable::builtin().expect("builtin schema parses");
        let deploy = table.kind("apps/v1", "Deployment").expect("Deployment");
        assert_eq!(deploy.type_def().map(TypeDef::name), Some("Deployment"));
        let pod = table.kind("v1", "Pod").expect("Pod");
        let (spec, _) = pod.lookup_map("spec");
        let (container, meta) = spec.lookup_list("containers");
        assert_eq!(meta.merge_key, "name");
        assert_eq!(container.type_def().map(TypeDef::name), Some("Container"));
        assert!(table.kind("example.com/v1", "Widget").is_none());
    }

    #[test]
    fn inline_structs_lend_their_tags() {
        let table = SchemaTable::builtin().expect("builtin schema parses");
        let env = table
            .field("core/v1", "EphemeralContainer", "env")
            .expect("env");
        assert_eq!(env.patch_strategy(), Some(PatchStrategy::Merge));
        assert_eq!(env.patch_merge_key(), Some("name"));
        let groups = table
            .field(
                "admissionregistration/v1",
                "NamedRuleWithOperations",
                "apiGroups",
            )
            .expect("apiGroups");
        assert_eq!(groups.list_type(), Some(ListType::Atomic));
    }

    #[test]
    fn strategies_parse_like_upstream() {
        assert_eq!(parse_strategy(""), Ok((None, false)));
        assert_eq!(
            parse_strategy("merge,retainKeys"),
            Ok((Some(PatchStrategy::Merge), true))
        );
        assert_eq!(parse_strategy("retainKeys"), Ok((None, true)));
        assert!(parse_strategy("merge,replace").is_err());
        assert!(parse_strategy("bogus").is_err());
    }

    #[test]
    fn go_type_bases() {
        assert_eq!(
            go_type_base("[]*v1.PersistentVolumeClaim"),
            "v1.PersistentVolumeClaim"
        );
        assert_eq!(go_type_base("map[string]Counter"), "Counter");
        assert_eq!(
            go_type_base("*metav1.LabelSelector"),
            "metav1.LabelSelector"
        );
    }
}
