//! `metadata.managedFields` entries: decoding, encoding and upstream's ordering.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::FieldManagerError;
use crate::set::FieldSet;

/// `ManagedFieldsEntry.operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply (`"Apply"`; sorts before `Update`, as the strings do).
    Apply,
    /// Any other write (`"Update"`).
    Update,
}

impl Operation {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedFieldsEntry {
    /// `manager`.
    pub manager: String,
    /// `operation`.
    pub operation: Operation,
    /// `apiVersion`.
    pub api_version: String,
    /// `time` (RFC 3339, seconds), if any.
    pub time: Option<String>,
    /// `fieldsV1`.
    pub fields: FieldSet,
    /// `subresource`, empty for the main resource.
    pub subresource: String,
}

impl ManagedFieldsEntry {
    /// Whether `other` is the same manager as upstream's `BuildManagerIdentifier` decides:
    /// manager, operation and subresource, plus the apiVersion for `Update` entries.
    pub fn same_manager(&self, other: &ManagedFieldsEntry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How conflicts name this manager (upstream's `printManager`).
    pub fn display_name(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s = format!("{s} with subresource {:?}", self.subresource);
        }
        if self.operation == Operation::Update {
            s = format!("{s} using {}", self.api_version);
        }
        s
    }

    /// Decodes one entry.
    pub fn from_json(value: &Value) -> Result<Self, FieldManagerError> {
        let bad = |message: String| FieldManagerError::InvalidManagedFields { message };
        let Value::Object(map) = value else {
            return Err(bad("entry is not an object".to_owned()));
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let operation = match text("operation").as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            other => return Err(bad(format!("invalid operation {other:?}"))),
        };
        let fields_type = text("fieldsType");
        if fields_type != "FieldsV1" {
            return Err(bad(format!(
                "error decoding managed fields: invalid fieldsType {fields_type:?}"
            )));
        }
        let fields = match map.get("fieldsV1") {
            Some(v) if !v.is_null() => FieldSet::from_fields_v1(v)?,
            _ => FieldSet::new(),
        };
        Ok(ManagedFieldsEntry {
            manager: text("manager"),
            operation,
            api_version: text("apiVersion"),
            time: map.get("time").and_then(Value::as_str).map(str::to_owned),
            fields,
            subresource: text("subresource"),
        })
    }

    /// Encodes the entry with upstream's field order.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("manager".to_owned(), Value::String(self.manager.clone()));
        map.insert(
            "operation".to_owned(),
            Value::String(self.operation.as_str().to_owned()),
        );
        if !self.api_version.is_empty() {
            map.insert(
                "apiVersion".to_owned(),
                Value::String(self.api_version.clone()),
            );
        }
        if let Some(time) = &self.time {
            map.insert("time".to_owned(), Value::String(time.clone()));
        }
        map.insert(
            "fieldsType".to_owned(),
            Value::String("FieldsV1".to_owned()),
        );
        map.insert("fieldsV1".to_owned(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            map.insert(
                "subresource".to_owned(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(map)
    }

    /// Reads `metadata.managedFields` of an object (absent: none).
    pub fn decode_object(object: &Value) -> Result<Vec<ManagedFieldsEntry>, FieldManagerError> {
        match object.pointer("/metadata/managedFields") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(Self::from_json).collect(),
            Some(_) => Err(FieldManagerError::InvalidManagedFields {
                message: "managedFields is not a list".to_owned(),
            }),
        }
    }

    /// Writes `metadata.managedFields` (sorted as upstream; removed when empty).
    pub fn encode_object(object: &mut Value, entries: &mut [ManagedFieldsEntry]) {
        sort_entries(entries);
        let Value::Object(root) = object else {
            return;
        };
        let meta = root
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            if entries.is_empty() {
                meta.remove("managedFields");
            } else {
                let list = entries.iter().map(ManagedFieldsEntry::to_json).collect();
                meta.insert("managedFields".to_owned(), Value::Array(list));
            }
        }
    }
}

/// Upstream's `sortEncodedManagedFields`: by operation (`Apply` first), time (absent first),
/// manager, apiVersion, subresource.
pub fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| compare_times(p.time.as_deref(), q.time.as_deref()))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
}

/// RFC 3339 times at second precision in UTC compare as strings; an absent time is zero.
fn compare_times(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    }
}
