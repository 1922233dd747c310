//! Field paths and field-level validation errors, modelled on upstream
//! `k8s.io/apimachinery/pkg/util/validation/field`.
//!
//! Every validation in Rudder reports problems as a [`ErrorList`] of [`FieldError`]s. The API
//! server turns such a list into a 422 `Invalid` Status (see [`crate::status::ApiError::invalid`]),
//! and kubectl prints the messages verbatim (`The Pod "x" is invalid: spec.containers[0].image:
//! Required value`), so the rendering here follows upstream exactly.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause;

use crate::gofmt;

/// One element of a [`Path`]: a named field, or a subscript (list index or map key) of the
/// previous element. Mirrors upstream's `Path{name, index}` node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Elem {
    Field(String),
    Subscript(String),
}

/// The path from an object's root to one of its fields, e.g. `spec.containers[0].name`.
///
/// An empty path plays the role of upstream's `nil *Path`: it renders as `<nil>` (upstream's
/// label-selector parser really does put `<nil>` in some of its messages), and
/// [`Path::child`] on it starts a new root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path {
    elems: Vec<Elem>,
}

impl Path {
    /// A root path with the given field names (`Path::new("metadata").child("name")` is the same
    /// as `Path::from_names(["metadata", "name"])`).
    pub fn new(name: impl Into<String>) -> Self {
        Path {
            elems: vec![Elem::Field(name.into())],
        }
    }

    /// A root path built from several field names.
    pub fn from_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Path {
            elems: names.into_iter().map(|n| Elem::Field(n.into())).collect(),
        }
    }

    /// The "nil" path; see the type documentation.
    pub fn nil() -> Self {
        Path::default()
    }

    /// True for the nil path.
    pub fn is_nil(&self) -> bool {
        self.elems.is_empty()
    }

    /// This path extended by a field name.
    pub fn child(&self, name: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.elems.push(Elem::Field(name.into()));
        p
    }

    /// This path subscripted by a list index: `containers` → `containers[0]`.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.elems.push(Elem::Subscript(index.to_string()));
        p
    }

    /// This path subscripted by a map key: `labels` → `labels[app]`.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.elems.push(Elem::Subscript(key.into()));
        p
    }
}

impl fmt::Display for Path {
    /// Renders as upstream's `Path.String()`: dots between field names, brackets around
    /// subscripts, `<nil>` for the nil path.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.elems.is_empty() {
            return f.write_str("<nil>");
        }
        for (i, elem) in self.elems.iter().enumerate() {
            match elem {
                // Upstream treats an empty field name as a subscript with an empty index.
                Elem::Field(name) if name.is_empty() => f.write_str("[]")?,
                Elem::Field(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Elem::Subscript(idx) => write!(f, "[{idx}]")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for Path {
    fn from(s: &str) -> Self {
        Path::new(s)
    }
}

/// Why a field is invalid. The string forms are upstream's `field.ErrorType` values, which are
/// also the `reason` of the corresponding `StatusCause` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// A looked-up value does not exist (`FieldValueNotFound`).
    NotFound,
    /// A required value is missing (`FieldValueRequired`).
    Required,
    /// A value that must be unique is repeated (`FieldValueDuplicate`).
    Duplicate,
    /// A value is malformed (`FieldValueInvalid`).
    Invalid,
    /// A value is not one of an enumerated set (`FieldValueNotSupported`).
    NotSupported,
    /// A well-formed value is not allowed here (`FieldValueForbidden`).
    Forbidden,
    /// A value is too long; the value itself is not echoed (`FieldValueTooLong`).
    TooLong,
    /// A list has too many items (`FieldValueTooMany`).
    TooMany,
    /// A list has too few items (`FieldValueTooFew`).
    TooFew,
    /// A value is too short (`FieldValueTooShort`).
    TooShort,
    /// A server-side failure unrelated to the input (`InternalError`).
    Internal,
    /// A value has the wrong type for the schema (`FieldValueTypeInvalid`).
    TypeInvalid,
}

impl ErrorType {
    /// The machine-readable value (`FieldValueRequired`, ...), used as `StatusCause.reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::TooMany => "FieldValueTooMany",
            ErrorType::TooFew => "FieldValueTooFew",
            ErrorType::TooShort => "FieldValueTooShort",
            ErrorType::Internal => "InternalError",
            ErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human-readable phrase upstream prints (`Required value`, `Invalid value`, ...).
    pub fn description(self) -> &'static str {
        match self {
            ErrorType::NotFound => "Not found",
            ErrorType::Required => "Required value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::TooLong => "Too long",
            ErrorType::TooMany => "Too many",
            ErrorType::TooFew => "Too few",
            ErrorType::TooShort => "Too short",
            ErrorType::Internal => "Internal error",
            ErrorType::TypeInvalid => "Invalid value",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The offending value carried by a [`FieldError`], in the shapes upstream renders differently.
///
/// Upstream stores an `interface{}` and formats strings with `%q`, simple scalars with `%v`, and
/// everything else as JSON. These variants make that choice explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadValue {
    /// Rendered with Go's `%q`: `"Foo"`.
    Str(String),
    /// Rendered as a decimal integer.
    Int(i64),
    /// Rendered as `true` / `false`.
    Bool(bool),
    /// Rendered as compact JSON (Go's `json.Marshal` of maps, slices, nil, ...).
    Json(serde_json::Value),
    /// Rendered verbatim; for values whose Go JSON form the caller has already built (e.g. a
    /// struct, whose field order `serde_json` would not keep).
    Raw(String),
    /// Not rendered at all (upstream's `omitValue`): the body is just the type's phrase.
    Omitted,
}

impl BadValue {
    fn render(&self) -> String {
        match self {
            BadValue::Str(s) => gofmt::quote(s),
            BadValue::Int(i) => i.to_string(),
            BadValue::Bool(b) => b.to_string(),
            BadValue::Json(v) => gofmt::json_value(v),
            BadValue::Raw(s) => s.clone(),
            BadValue::Omitted => String::new(),
        }
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_owned())
    }
}

impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}

impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}

impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}

impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i64::from(i))
    }
}

impl From<bool> for BadValue {
    fn from(b: bool) -> Self {
        BadValue::Bool(b)
    }
}

impl From<serde_json::Value> for BadValue {
    fn from(v: serde_json::Value) -> Self {
        BadValue::Json(v)
    }
}

impl From<&[String]> for BadValue {
    /// A Go `[]string`, rendered as a JSON array.
    fn from(v: &[String]) -> Self {
        BadValue::Json(serde_json::Value::Array(
            v.iter().cloned().map(serde_json::Value::String).collect(),
        ))
    }
}

/// One field-level validation error (upstream `field.Error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Why the field is invalid.
    pub error_type: ErrorType,
    /// The rendered path of the field, e.g. `metadata.name`.
    pub field: String,
    /// The offending value.
    pub bad_value: BadValue,
    /// Extra explanation appended after the value.
    pub detail: String,
}

impl FieldError {
    fn build(
        error_type: ErrorType,
        path: &Path,
        bad_value: BadValue,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            error_type,
            field: path.to_string(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// `Required value`: a required field is missing or empty.
    pub fn required(path: &Path, detail: impl Into<String>) -> Self {
        Self::build(
            ErrorType::Required,
            path,
            BadValue::Str(String::new()),
            detail,
        )
    }

    /// `Invalid value: <value>: <detail>`: a malformed value.
    pub fn invalid(path: &Path, value: impl Into<BadValue>, detail: impl Into<String>) -> Self {
        Self::build(ErrorType::Invalid, path, value.into(), detail)
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`: a value outside an enumerated
    /// set. An empty `valid` list omits the detail, as upstream does.
    pub fn not_supported<S: AsRef<str>>(
        path: &Path,
        value: impl Into<BadValue>,
        valid: &[S],
    ) -> Self {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| gofmt::quote(v.as_ref())).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::build(ErrorType::NotSupported, path, value.into(), detail)
    }

    /// `Duplicate value: <value>`: a value that must be unique is repeated.
    pub fn duplicate(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::build(ErrorType::Duplicate, path, value.into(), "")
    }

    /// `Not found: <value>`: a looked-up value does not exist.
    pub fn not_found(path: &Path, value: impl Into<BadValue>) -> Self {
        Self::build(ErrorType::NotFound, path, value.into(), "")
    }

    /// `Forbidden: <detail>`: a well-formed value that is not allowed here.
    pub fn forbidden(path: &Path, detail: impl Into<String>) -> Self {
        Self::build(
            ErrorType::Forbidden,
            path,
            BadValue::Str(String::new()),
            detail,
        )
    }

    /// `Too long: may not be more than <n> bytes`. The value is never echoed. A negative
    /// `max_bytes` gives upstream's unbounded form `value is too long`.
    pub fn too_long(path: &Path, max_bytes: i64) -> Self {
        let detail = if max_bytes >= 0 {
            let unit = if max_bytes == 1 { "byte" } else { "bytes" };
            format!("may not be more than {max_bytes} {unit}")
        } else {
            "value is too long".to_owned()
        };
        Self::build(
            ErrorType::TooLong,
            path,
            BadValue::Str("<value omitted>".to_owned()),
            detail,
        )
    }

    /// Like [`FieldError::too_long`] but counting characters (upstream `TooLongCharacters`).
    pub fn too_long_characters(path: &Path, max_chars: i64) -> Self {
        let detail = if max_chars >= 0 {
            let unit = if max_chars == 1 {
                "character"
            } else {
                "characters"
            };
            format!("may not be more than {max_chars} {unit}")
        } else {
            "value is too long".to_owned()
        };
        Self::build(
            ErrorType::TooLong,
            path,
            BadValue::Str("<value omitted>".to_owned()),
            detail,
        )
    }

    /// `Too many: <actual>: must have at most <max> items`. `actual = None` omits the count and a
    /// negative `max` gives `has too many items`, as upstream does.
    pub fn too_many(path: &Path, actual: Option<i64>, max: i64) -> Self {
        let detail = if max >= 0 {
            let unit = if max == 1 { "item" } else { "items" };
            format!("must have at most {max} {unit}")
        } else {
            "has too many items".to_owned()
        };
        let value = actual.map_or(BadValue::Omitted, BadValue::Int);
        Self::build(ErrorType::TooMany, path, value, detail)
    }

    /// `Too few: <actual>: must have at least <min> items`.
    pub fn too_few(path: &Path, actual: i64, min: i64) -> Self {
        let detail = if min >= 0 {
            let unit = if min == 1 { "item" } else { "items" };
            format!("must have at least {min} {unit}")
        } else {
            "has too few items".to_owned()
        };
        Self::build(ErrorType::TooFew, path, BadValue::Int(actual), detail)
    }

    /// `Too short: must be at least <n> characters`.
    pub fn too_short(path: &Path, value: &str, min_chars: i64) -> Self {
        let detail = if min_chars >= 0 {
            let unit = if min_chars == 1 {
                "character"
            } else {
                "characters"
            };
            format!("must be at least {min_chars} {unit}")
        } else {
            "value is too short".to_owned()
        };
        Self::build(
            ErrorType::TooShort,
            path,
            BadValue::Str(value.to_owned()),
            detail,
        )
    }

    /// `Invalid value: <value>: <detail>` with type `FieldValueTypeInvalid`: the value has the
    /// wrong type for the schema.
    pub fn type_invalid(
        path: &Path,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::build(ErrorType::TypeInvalid, path, value.into(), detail)
    }

    /// `Internal error: <err>`: a failure that is not the client's fault.
    pub fn internal(path: &Path, err: impl fmt::Display) -> Self {
        Self::build(
            ErrorType::Internal,
            path,
            BadValue::Omitted,
            err.to_string(),
        )
    }

    /// The message without the field name (upstream `ErrorBody`), as used in
    /// `StatusCause.message`.
    pub fn body(&self) -> String {
        let mut s = match self.error_type {
            ErrorType::Required
            | ErrorType::Forbidden
            | ErrorType::TooLong
            | ErrorType::TooShort
            | ErrorType::Internal => self.error_type.description().to_owned(),
            _ => match &self.bad_value {
                BadValue::Omitted => self.error_type.description().to_owned(),
                v => format!("{}: {}", self.error_type.description(), v.render()),
            },
        };
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }

    /// This error as a `StatusCause` (reason = error type, message = body, field = path), which
    /// is what `NewInvalid` puts in `details.causes`.
    pub fn to_status_cause(&self) -> StatusCause {
        StatusCause {
            reason: Some(self.error_type.as_str().to_owned()),
            message: Some(self.body()),
            field: (!self.field.is_empty()).then(|| self.field.clone()),
        }
    }
}

impl fmt::Display for FieldError {
    /// `<field>: <body>`, upstream's `Error()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// A list of field errors (upstream `field.ErrorList`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorList(pub Vec<FieldError>);

impl ErrorList {
    /// An empty list.
    pub fn new() -> Self {
        ErrorList(Vec::new())
    }

    /// Appends one error.
    pub fn push(&mut self, err: FieldError) {
        self.0.push(err);
    }

    /// Appends every error of `other`.
    pub fn extend(&mut self, other: ErrorList) {
        self.0.extend(other.0);
    }

    /// True if there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// The aggregated message upstream's `ToAggregate().Error()` produces, or `None` for an
    /// empty list: duplicates (by message) are dropped, one error is printed alone, several are
    /// printed as `[a, b]`.
    pub fn aggregate_message(&self) -> Option<String> {
        let mut seen: Vec<String> = Vec::new();
        for e in &self.0 {
            let msg = e.to_string();
            if !seen.contains(&msg) {
                seen.push(msg);
            }
        }
        match seen.len() {
            0 => None,
            1 => seen.pop(),
            _ => Some(format!("[{}]", seen.join(", "))),
        }
    }

    /// The errors as `StatusCause`s, one per error and in order (upstream does not dedupe
    /// causes, only the message).
    pub fn to_status_causes(&self) -> Vec<StatusCause> {
        self.0.iter().map(FieldError::to_status_cause).collect()
    }
}

impl fmt::Display for ErrorList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.aggregate_message().unwrap_or_default())
    }
}

impl From<Vec<FieldError>> for ErrorList {
    fn from(v: Vec<FieldError>) -> Self {
        ErrorList(v)
    }
}

impl From<FieldError> for ErrorList {
    fn from(e: FieldError) -> Self {
        ErrorList(vec![e])
    }
}

impl IntoIterator for ErrorList {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ErrorList {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<FieldError> for ErrorList {
    fn from_iter<T: IntoIterator<Item = FieldError>>(iter: T) -> Self {
        ErrorList(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        Path::from_names(s.split('.'))
    }

    #[test]
    fn path_rendering_matches_upstream() {
        let containers = Path::new("spec").child("containers");
        assert_eq!(
            containers.index(0).child("name").to_string(),
            "spec.containers[0].name"
        );
        assert_eq!(
            Path::new("metadata").child("labels").key("app").to_string(),
            "metadata.labels[app]"
        );
        assert_eq!(Path::new("a").index(1).index(2).to_string(), "a[1][2]");
        assert_eq!(Path::nil().to_string(), "<nil>");
        assert_eq!(Path::nil().child("key").to_string(), "key");
        assert_eq!(
            Path::nil().child("values").index(0).key("k").to_string(),
            "values[0][k]"
        );
        assert_eq!(Path::from_names(["metadata", "name"]), p("metadata.name"));
        assert_eq!(Path::new("a").child("").to_string(), "a[]");
    }

    #[test]
    fn error_type_strings() {
        assert_eq!(ErrorType::Required.as_str(), "FieldValueRequired");
        assert_eq!(ErrorType::Invalid.as_str(), "FieldValueInvalid");
        assert_eq!(ErrorType::NotSupported.as_str(), "FieldValueNotSupported");
        assert_eq!(ErrorType::Duplicate.as_str(), "FieldValueDuplicate");
        assert_eq!(ErrorType::Forbidden.as_str(), "FieldValueForbidden");
        assert_eq!(ErrorType::TooLong.as_str(), "FieldValueTooLong");
        assert_eq!(ErrorType::TooMany.as_str(), "FieldValueTooMany");
        assert_eq!(ErrorType::NotFound.as_str(), "FieldValueNotFound");
        assert_eq!(ErrorType::Internal.as_str(), "InternalError");
        assert_eq!(ErrorType::TypeInvalid.description(), "Invalid value");
        assert_eq!(ErrorType::NotSupported.to_string(), "Unsupported value");
    }

    #[test]
    fn messages_match_upstream_formatting() {
        let name = p("metadata.name");
        assert_eq!(
            FieldError::required(&p("spec.containers").index(0).child("name"), "").to_string(),
            "spec.containers[0].name: Required value"
        );
        assert_eq!(
            FieldError::required(&name, "name or generateName is required").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            FieldError::invalid(&name, "Foo", "bad").to_string(),
            r#"metadata.name: Invalid value: "Foo": bad"#
        );
        assert_eq!(
            FieldError::invalid(
                &p("metadata.generation"),
                -1i64,
                "must be greater than or equal to 0"
            )
            .to_string(),
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            FieldError::invalid(&p("x"), true, "d").to_string(),
            "x: Invalid value: true: d"
        );
        assert_eq!(
            FieldError::invalid(
                &p("values"),
                BadValue::Json(serde_json::Value::Null),
                "empty"
            )
            .to_string(),
            "values: Invalid value: null: empty"
        );
        let vals = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(
            FieldError::invalid(&p("values"), vals.as_slice(), "d").to_string(),
            r#"values: Invalid value: ["a","b"]: d"#
        );
        assert_eq!(
            FieldError::not_supported(&p("spec.restartPolicy"), "Sometimes", &["Always", "Never"])
                .to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never""#
        );
        assert_eq!(
            FieldError::not_supported::<&str>(&p("f"), "x", &[]).to_string(),
            r#"f: Unsupported value: "x""#
        );
        assert_eq!(
            FieldError::duplicate(&p("spec.ports").index(1), "http").to_string(),
            r#"spec.ports[1]: Duplicate value: "http""#
        );
        assert_eq!(
            FieldError::not_found(&p("spec.x"), "y").to_string(),
            r#"spec.x: Not found: "y""#
        );
        assert_eq!(
            FieldError::forbidden(&p("metadata.namespace"), "not allowed on this type").to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        assert_eq!(
            FieldError::too_long(&p("metadata.annotations"), 262144).to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        assert_eq!(
            FieldError::too_long(&p("f"), 1).to_string(),
            "f: Too long: may not be more than 1 byte"
        );
        assert_eq!(
            FieldError::too_long(&p("f"), -1).to_string(),
            "f: Too long: value is too long"
        );
        assert_eq!(
            FieldError::too_long_characters(&p("f"), 5).to_string(),
            "f: Too long: may not be more than 5 characters"
        );
        assert_eq!(
            FieldError::too_many(&p("spec.items"), Some(5), 3).to_string(),
            "spec.items: Too many: 5: must have at most 3 items"
        );
        assert_eq!(
            FieldError::too_many(&p("spec.items"), None, 1).to_string(),
            "spec.items: Too many: must have at most 1 item"
        );
        assert_eq!(
            FieldError::too_many(&p("spec.items"), Some(2), -1).to_string(),
            "spec.items: Too many: 2: has too many items"
        );
        assert_eq!(
            FieldError::too_few(&p("spec.items"), 0, 1).to_string(),
            "spec.items: Too few: 0: must have at least 1 item"
        );
        assert_eq!(
            FieldError::too_short(&p("f"), "ab", 3).to_string(),
            "f: Too short: must be at least 3 characters"
        );
        assert_eq!(
            FieldError::internal(&p("f"), "boom").to_string(),
            "f: Internal error: boom"
        );
        assert_eq!(
            FieldError::type_invalid(&p("f"), "x", "must be integer").to_string(),
            r#"f: Invalid value: "x": must be integer"#
        );
    }

    #[test]
    fn value_quoting_uses_go_percent_q() {
        assert_eq!(
            FieldError::invalid(&p("f"), "a\"b\n", "d").to_string(),
            r#"f: Invalid value: "a\"b\n": d"#
        );
    }

    #[test]
    fn aggregate_and_causes() {
        let mut list = ErrorList::new();
        assert_eq!(list.aggregate_message(), None);
        list.push(FieldError::required(&p("a"), ""));
        assert_eq!(
            list.aggregate_message().as_deref(),
            Some("a: Required value")
        );
        list.push(FieldError::required(&p("a"), ""));
        // Duplicates by message collapse to the single form.
        assert_eq!(
            list.aggregate_message().as_deref(),
            Some("a: Required value")
        );
        list.push(FieldError::invalid(&p("b"), "x", "bad"));
        assert_eq!(
            list.to_string(),
            r#"[a: Required value, b: Invalid value: "x": bad]"#
        );
        let causes = list.to_status_causes();
        assert_eq!(causes.len(), 3);
        assert_eq!(causes[2].reason.as_deref(), Some("FieldValueInvalid"));
        assert_eq!(
            causes[2].message.as_deref(),
            Some(r#"Invalid value: "x": bad"#)
        );
        assert_eq!(causes[2].field.as_deref(), Some("b"));
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[0].message.as_deref(), Some("Required value"));
    }
}
