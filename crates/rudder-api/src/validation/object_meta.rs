//! ObjectMeta validation, modelled on upstream `k8s.io/apimachinery/pkg/api/validation`
//! (`objectmeta.go`, `generic.go`) and `k8s.io/apimachinery/pkg/apis/meta/v1/validation`.
//!
//! Every built-in strategy runs these on create and update, so a bad name or label is rejected
//! with the same 422 causes (`metadata.name`, `metadata.labels`, ...) that upstream produces.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference,
};

use super::{
    is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, is_valid_path_segment_name, is_valid_path_segment_prefix,
};
use crate::field::{BadValue, ErrorList, FieldError, Path};
use crate::gofmt;

/// Upstream `TotalAnnotationSizeLimitB`: the sum of all annotation key and value lengths may not
/// exceed 256 KiB.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;

/// Upstream `FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";

/// Upstream `IsNegativeErrorMsg`.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";

/// The finalizer that orphans dependents on delete.
pub const FINALIZER_ORPHAN_DEPENDENTS: &str = "orphan";
/// The finalizer that deletes dependents in the foreground.
pub const FINALIZER_DELETE_DEPENDENTS: &str = "foregroundDeletion";

/// Maximum length of a field manager name (upstream `FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// Maximum length of a managed-fields subresource name (upstream `MaxSubresourceNameLength`).
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

/// Upstream `ValidateNameFunc`: validates a name (or, with `prefix = true`, a `generateName`
/// prefix, which may end in `-`) and returns the problems as messages.
pub type NameValidator = fn(name: &str, prefix: bool) -> Vec<String>;

/// Upstream `maskTrailingDash`: a generateName prefix may end in `-`, so the tail is replaced by
/// an alphanumeric before validating. Upstream drops two bytes and appends `a`; that is kept,
/// guarded so a one-byte prefix cannot underflow.
fn mask_trailing_dash(name: &str) -> String {
    match name.strip_suffix('-') {
        // Byte `len-2` starts a char only if the char before the dash is ASCII; otherwise fall
        // back to dropping just the dash.
        Some(without_dash) => {
            let head = name
                .get(..name.len().saturating_sub(2))
                .unwrap_or(without_dash);
            format!("{head}a")
        }
        None => name.to_owned(),
    }
}

/// Upstream `NameIsDNSSubdomain`: the rule for most object names.
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// Upstream `NameIsDNSLabel`: the rule for namespaces and some other names.
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// Upstream `NameIsDNS1035Label`: the rule for Service names.
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// Upstream `ValidateNamespaceName`.
pub fn validate_namespace_name(name: &str, prefix: bool) -> Vec<String> {
    name_is_dns_label(name, prefix)
}

/// Upstream `path.ValidatePathSegmentName`: the generic store's own name rule, which is all a
/// kind whose strategy checks no name format gets (core/v1 Events, CertificateSigningRequests).
pub fn validate_path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_valid_path_segment_prefix(name)
    } else {
        is_valid_path_segment_name(name)
    }
}

/// Upstream RBAC `minimalNameRequirements`: `path.IsValidPathSegmentName` whether or not the
/// name is a prefix, so `testing-CR` or `system:controller:foo` are legal role names.
pub fn minimal_name_requirements(name: &str, _prefix: bool) -> Vec<String> {
    is_valid_path_segment_name(name)
}

/// Upstream `ValidateLabelName`: a label key must be a qualified name.
pub fn validate_label_name(name: &str, path: &Path) -> ErrorList {
    is_qualified_name(name)
        .into_iter()
        .map(|msg| FieldError::invalid(path, name, msg))
        .collect()
}

/// Upstream `ValidateLabels`: every key a qualified name, every value a valid label value. All
/// errors carry the path of the map itself (`metadata.labels`), as upstream's do.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (k, v) in labels {
        errs.extend(validate_label_name(k, path));
        for msg in is_valid_label_value(v) {
            errs.push(FieldError::invalid(path, v.as_str(), msg));
        }
    }
    errs
}

/// Upstream `ValidateAnnotationsSize`: `Err` with upstream's message when the total size of keys
/// and values exceeds [`TOTAL_ANNOTATION_SIZE_LIMIT_BYTES`].
pub fn validate_annotations_size(annotations: &BTreeMap<String, String>) -> Result<(), String> {
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        return Err(format!(
            "annotations size {total} is larger than limit {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES}"
        ));
    }
    Ok(())
}

/// Upstream `ValidateAnnotations`: keys are qualified names compared case-insensitively, and the
/// total size is limited.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for k in annotations.keys() {
        // Upstream lower-cases before checking, but reports the key as written.
        for msg in is_qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), msg));
        }
    }
    if validate_annotations_size(annotations).is_err() {
        errs.push(FieldError::too_long(
            path,
            TOTAL_ANNOTATION_SIZE_LIMIT_BYTES as i64,
        ));
    }
    errs
}

/// An owner reference rendered as Go's `json.Marshal` would (struct field order, `omitempty`
/// pointers), for use as a bad value.
fn owner_reference_json(r: &OwnerReference) -> String {
    let mut s = format!(
        "{{\"apiVersion\":{},\"kind\":{},\"name\":{},\"uid\":{}",
        gofmt::json_string(&r.api_version),
        gofmt::json_string(&r.kind),
        gofmt::json_string(&r.name),
        gofmt::json_string(&r.uid)
    );
    if let Some(c) = r.controller {
        s.push_str(&format!(",\"controller\":{c}"));
    }
    if let Some(b) = r.block_owner_deletion {
        s.push_str(&format!(",\"blockOwnerDeletion\":{b}"));
    }
    s.push('}');
    s
}

/// Splits an apiVersion into group and version as upstream `ParseGroupVersion` does; `None` for
/// a malformed string (more than one `/`).
fn parse_group_version(api_version: &str) -> Option<(&str, &str)> {
    if api_version.is_empty() || api_version == "/" {
        return Some(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Some(("", api_version)),
        1 => api_version.split_once('/'),
        _ => None,
    }
}

fn validate_owner_reference(r: &OwnerReference, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let (group, version) = parse_group_version(&r.api_version).unwrap_or(("", ""));
    if version.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("apiVersion"),
            r.api_version.as_str(),
            "version must not be empty",
        ));
    }
    if r.kind.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("kind"),
            r.kind.as_str(),
            "must not be empty",
        ));
    }
    if r.name.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("name"),
            r.name.as_str(),
            "must not be empty",
        ));
    }
    if r.uid.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("uid"),
            r.uid.as_str(),
            "must not be empty",
        ));
    }
    // Upstream `BannedOwners`: core/v1 Events may not own anything.
    if group.is_empty() && version == "v1" && r.kind == "Event" {
        errs.push(FieldError::invalid(
            path,
            BadValue::Raw(owner_reference_json(r)),
            format!(
                "{group}/{version}, Kind={} is disallowed from being an owner",
                r.kind
            ),
        ));
    }
    errs
}

/// Upstream `ValidateOwnerReferences`: each reference complete, and at most one controller.
pub fn validate_owner_references(refs: &[OwnerReference], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let mut first_controller: Option<String> = None;
    for r in refs {
        errs.extend(validate_owner_reference(r, path));
        if r.controller == Some(true) {
            let current = format!("{}/{}", r.kind, r.name);
            match &first_controller {
                Some(first) => {
                    let all: Vec<String> = refs.iter().map(owner_reference_json).collect();
                    errs.push(FieldError::invalid(
                        path,
                        BadValue::Raw(format!("[{}]", all.join(","))),
                        format!(
                            "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                        ),
                    ));
                }
                None => first_controller = Some(current),
            }
        }
    }
    errs
}

/// Upstream `ValidateFinalizers`: each a qualified name, and not both `orphan` and
/// `foregroundDeletion`.
pub fn validate_finalizers(finalizers: &[String], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for f in finalizers {
        for msg in is_qualified_name(f) {
            errs.push(FieldError::invalid(path, f.as_str(), msg));
        }
    }
    let has = |name: &str| finalizers.iter().any(|f| f == name);
    if has(FINALIZER_ORPHAN_DEPENDENTS) && has(FINALIZER_DELETE_DEPENDENTS) {
        errs.push(FieldError::invalid(
            path,
            finalizers,
            format!(
                "finalizer {FINALIZER_ORPHAN_DEPENDENTS} and {FINALIZER_DELETE_DEPENDENTS} cannot be both set"
            ),
        ));
    }
    errs
}

/// Upstream `ValidateFieldManager`: at most 128 bytes, printable characters only.
pub fn validate_field_manager(manager: &str, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(FieldError::too_long(path, FIELD_MANAGER_MAX_LENGTH as i64));
    }
    for (i, c) in manager.char_indices() {
        if !gofmt::is_print(c) {
            // Go's `%#U` of a non-printable rune.
            errs.push(FieldError::invalid(
                path,
                manager,
                format!("invalid character U+{:04X} (at position {i})", c as u32),
            ));
        }
    }
    errs
}

/// Upstream `ValidateManagedFields`.
pub fn validate_managed_fields(entries: &[ManagedFieldsEntry], path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    for (i, e) in entries.iter().enumerate() {
        let p = path.index(i);
        let op = e.operation.as_deref().unwrap_or_default();
        if op != "Apply" && op != "Update" {
            errs.push(FieldError::invalid(
                &p.child("operation"),
                op,
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = e.fields_type.as_deref().unwrap_or_default();
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            errs.push(FieldError::invalid(
                &p.child("fieldsType"),
                fields_type,
                "must be `FieldsV1`",
            ));
        }
        errs.extend(validate_field_manager(
            e.manager.as_deref().unwrap_or_default(),
            &p.child("manager"),
        ));
        if e.subresource.as_deref().unwrap_or_default().len() > MAX_SUBRESOURCE_NAME_LENGTH {
            errs.push(FieldError::too_long(
                &p.child("subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH as i64,
            ));
        }
    }
    errs
}

fn validate_common(meta: &ObjectMeta, namespaced: bool, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(&path.child("namespace"), ""));
        } else {
            for msg in validate_namespace_name(namespace, false) {
                errs.push(FieldError::invalid(
                    &path.child("namespace"),
                    namespace,
                    msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    let generation = meta.generation.unwrap_or_default();
    if generation < 0 {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            generation,
            IS_NEGATIVE_ERROR_MSG,
        ));
    }
    if let Some(labels) = &meta.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &meta.annotations {
        errs.extend(validate_annotations(
            annotations,
            &path.child("annotations"),
        ));
    }
    errs.extend(validate_owner_references(
        meta.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_finalizers(
        meta.finalizers.as_deref().unwrap_or_default(),
        &path.child("finalizers"),
    ));
    errs.extend(validate_managed_fields(
        meta.managed_fields.as_deref().unwrap_or_default(),
        &path.child("managedFields"),
    ));
    errs
}

/// Upstream `ValidateObjectMeta`: validates metadata on create. `name_fn` is the type's name
/// rule (usually [`name_is_dns_subdomain`], a closure where it depends on the object); `namespaced` says whether the type lives in a
/// namespace. Name generation is expected to have happened already, but a `generateName` is
/// still checked as a prefix, as upstream does.
pub fn validate_object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    name_fn: impl Fn(&str, bool) -> Vec<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = ErrorList::new();
    let generate_name = meta.generate_name.as_deref().unwrap_or_default();
    if !generate_name.is_empty() {
        for msg in name_fn(generate_name, true) {
            errs.push(FieldError::invalid(
                &path.child("generateName"),
                generate_name,
                msg,
            ));
        }
    }
    let name = meta.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errs.push(FieldError::required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in name_fn(name, false) {
            errs.push(FieldError::invalid(&path.child("name"), name, msg));
        }
    }
    errs.extend(validate_common(meta, namespaced, path));
    errs
}

/// Renders an optional serializable field as Go's `json.Marshal` would (`null` when absent).
fn json_bad_value<T: serde::Serialize>(v: &Option<T>) -> BadValue {
    BadValue::Json(
        v.as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or(serde_json::Value::Null),
    )
}

/// Upstream `ValidateObjectMetaUpdate`: validates metadata on update against the stored object.
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();

    // Finalizers cannot be added once the object is being deleted.
    if old.deletion_timestamp.is_some() {
        let old_set: BTreeSet<&String> = old.finalizers.iter().flatten().collect();
        let extra: BTreeSet<&String> = new
            .finalizers
            .iter()
            .flatten()
            .filter(|f| !old_set.contains(f))
            .collect();
        if !extra.is_empty() {
            let quoted: Vec<String> = extra.iter().map(|f| gofmt::quote(f)).collect();
            errs.push(FieldError::forbidden(
                &path.child("finalizers"),
                format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    quoted.join(", ")
                ),
            ));
        }
    }

    let rv = new.resource_version.as_deref().unwrap_or_default();
    if rv.is_empty() {
        errs.push(FieldError::invalid(
            &path.child("resourceVersion"),
            rv,
            "must be specified for an update",
        ));
    }

    let (new_gen, old_gen) = (
        new.generation.unwrap_or_default(),
        old.generation.unwrap_or_default(),
    );
    if new_gen < old_gen {
        errs.push(FieldError::invalid(
            &path.child("generation"),
            new_gen,
            "must not be decremented",
        ));
    }

    let immutable_str =
        |errs: &mut ErrorList, field: &str, n: &Option<String>, o: &Option<String>| {
            let (n, o) = (
                n.as_deref().unwrap_or_default(),
                o.as_deref().unwrap_or_default(),
            );
            if n != o {
                errs.push(FieldError::invalid(
                    &path.child(field),
                    n,
                    FIELD_IMMUTABLE_ERROR_MSG,
                ));
            }
        };
    immutable_str(&mut errs, "name", &new.name, &old.name);
    immutable_str(&mut errs, "namespace", &new.namespace, &old.namespace);
    // `types.UID` is a named string type, which upstream renders as JSON rather than `%q`; for
    // UIDs (ASCII) the two are identical.
    immutable_str(&mut errs, "uid", &new.uid, &old.uid);
    if new.creation_timestamp != old.creation_timestamp {
        errs.push(FieldError::invalid(
            &path.child("creationTimestamp"),
            json_bad_value(&new.creation_timestamp),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if new.deletion_timestamp != old.deletion_timestamp {
        errs.push(FieldError::invalid(
            &path.child("deletionTimestamp"),
            json_bad_value(&new.deletion_timestamp),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }
    if new.deletion_grace_period_seconds != old.deletion_grace_period_seconds {
        errs.push(FieldError::invalid(
            &path.child("deletionGracePeriodSeconds"),
            json_bad_value(&new.deletion_grace_period_seconds),
            FIELD_IMMUTABLE_ERROR_MSG,
        ));
    }

    if let Some(labels) = &new.labels {
        errs.extend(validate_labels(labels, &path.child("labels")));
    }
    if let Some(annotations) = &new.annotations {
        errs.extend(validate_annotations(
            annotations,
            &path.child("annotations"),
        ));
    }
    errs.extend(validate_owner_references(
        new.owner_references.as_deref().unwrap_or_default(),
        &path.child("ownerReferences"),
    ));
    errs.extend(validate_managed_fields(
        new.managed_fields.as_deref().unwrap_or_default(),
        &path.child("managedFields"),
    ));
    errs
}

fn validate_label_selector_requirement(r: &LabelSelectorRequirement, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let n_values = r.values.as_ref().map_or(0, Vec::len);
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if n_values == 0 {
                errs.push(FieldError::required(
                    &path.child("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if n_values > 0 {
                errs.push(FieldError::forbidden(
                    &path.child("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        op => errs.push(FieldError::invalid(
            &path.child("operator"),
            op,
            "not a valid selector operator",
        )),
    }
    errs.extend(validate_label_name(&r.key, &path.child("key")));
    errs
}

/// Upstream `ValidateLabelSelector`: what workload validation (Deployment, ReplicaSet, ...)
/// checks in `spec.selector`.
pub fn validate_label_selector(selector: Option<&LabelSelector>, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let Some(s) = selector else {
        return errs;
    };
    if let Some(labels) = &s.match_labels {
        errs.extend(validate_labels(labels, &path.child("matchLabels")));
    }
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_label_selector_requirement(
            r,
            &path.child("matchExpressions").index(i),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    fn meta_path() -> Path {
        Path::new("metadata")
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: ns.map(str::to_owned),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn invalid_name_message_matches_upstream() {
        let errs = validate_object_meta(
            &meta("Foo", Some("default")),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            messages(&errs),
            vec![format!(
                "metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}"
            )]
        );
        assert_eq!(errs.0[0].field, "metadata.name");
    }

    #[test]
    fn name_or_generate_name_required() {
        let errs = validate_object_meta(
            &ObjectMeta {
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            messages(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn generate_name_prefix_may_end_in_dash() {
        let mut m = meta("web-abcde", Some("default"));
        m.generate_name = Some("web-".into());
        assert!(validate_object_meta(&m, true, name_is_dns_subdomain, &meta_path()).is_empty());
        m.generate_name = Some("Web-".into());
        let errs = validate_object_meta(&m, true, name_is_dns_subdomain, &meta_path());
        assert_eq!(errs.len(), 1);
        assert_eq!(errs.0[0].field, "metadata.generateName");
        // One-character prefixes must not panic.
        assert!(name_is_dns_subdomain("-", true).is_empty());
        assert!(name_is_dns_label("é-", true).len() == 1);
    }

    #[test]
    fn namespace_rules() {
        let errs =
            validate_object_meta(&meta("a", None), true, name_is_dns_subdomain, &meta_path());
        assert_eq!(messages(&errs), vec!["metadata.namespace: Required value"]);
        let errs = validate_object_meta(
            &meta("a", Some("x")),
            false,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            messages(&errs),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
        let errs = validate_object_meta(
            &meta("a", Some("a.b")),
            true,
            name_is_dns_subdomain,
            &meta_path(),
        );
        assert_eq!(
            messages(&errs),
            vec!["metadata.namespace: Invalid value: \"a.b\": must not contain dots"]
        );
    }

    #[test]
    fn generation_and_labels_and_annotations() {
        let mut m = meta("a", Some("default"));
        m.generation = Some(-1);
        m.labels = Some(BTreeMap::from([("app".to_owned(), "-bad".to_owned())]));
        m.annotations = Some(BTreeMap::from([(
            "Example.com/OK".to_owned(),
            "v".to_owned(),
        )]));
        let errs = validate_object_meta(&m, true, name_is_dns_subdomain, &meta_path());
        let msgs = messages(&errs);
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
        );
        assert!(msgs[1].starts_with(
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
        ));

        let big = BTreeMap::from([(
            "k".to_owned(),
            "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES),
        )]);
        assert_eq!(
            messages(&validate_annotations(
                &big,
                &meta_path().child("annotations")
            )),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
        assert_eq!(
            validate_annotations_size(&big),
            Err("annotations size 262145 is larger than limit 262144".to_owned())
        );
        let bad_key = BTreeMap::from([("a/b/c".to_owned(), String::new())]);
        let errs = validate_annotations(&bad_key, &meta_path().child("annotations"));
        assert_eq!(errs.len(), 1);
        assert!(errs.0[0]
            .to_string()
            .starts_with("metadata.annotations: Invalid value: \"a/b/c\": a valid label key"));
    }

    #[test]
    fn owner_references() {
        let ok = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let path = meta_path().child("ownerReferences");
        assert!(validate_owner_references(std::slice::from_ref(&ok), &path).is_empty());
        let empty = OwnerReference::default();
        assert_eq!(
            messages(&validate_owner_references(&[empty], &path)),
            vec![
                "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
                "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.name: Invalid value: \"\": must not be empty",
                "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            ]
        );
        let event = OwnerReference {
            api_version: "v1".into(),
            kind: "Event".into(),
            name: "e".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        };
        assert_eq!(
            messages(&validate_owner_references(&[event], &path)),
            vec![
                r#"metadata.ownerReferences: Invalid value: {"apiVersion":"v1","kind":"Event","name":"e","uid":"u"}: /v1, Kind=Event is disallowed from being an owner"#
            ]
        );
        let mut second = ok.clone();
        second.name = "rs2".into();
        second.block_owner_deletion = None;
        let errs = validate_owner_references(&[ok, second], &path);
        assert_eq!(
            messages(&errs),
            vec![
                r#"metadata.ownerReferences: Invalid value: [{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"u1","controller":true,"blockOwnerDeletion":true},{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs2","uid":"u1","controller":true}]: Only one reference can have Controller set to true. Found "true" in references for ReplicaSet/rs and ReplicaSet/rs2"#
            ]
        );
    }

    #[test]
    fn finalizers() {
        let path = meta_path().child("finalizers");
        assert!(validate_finalizers(&["kubernetes.io/pv-protection".into()], &path).is_empty());
        let both = vec!["orphan".to_owned(), "foregroundDeletion".to_owned()];
        assert_eq!(
            messages(&validate_finalizers(&both, &path)),
            vec![
                r#"metadata.finalizers: Invalid value: ["orphan","foregroundDeletion"]: finalizer orphan and foregroundDeletion cannot be both set"#
            ]
        );
        assert_eq!(validate_finalizers(&["a/b/c".into()], &path).len(), 1);
    }

    #[test]
    fn managed_fields() {
        let entries = vec![ManagedFieldsEntry {
            operation: Some("Patch".into()),
            fields_type: Some("FieldsV2".into()),
            manager: Some("kube\u{7}ctl".into()),
            ..ManagedFieldsEntry::default()
        }];
        assert_eq!(
            messages(&validate_managed_fields(&entries, &meta_path().child("managedFields"))),
            vec![
                "metadata.managedFields[0].operation: Invalid value: \"Patch\": must be `Apply` or `Update`",
                "metadata.managedFields[0].fieldsType: Invalid value: \"FieldsV2\": must be `FieldsV1`",
                "metadata.managedFields[0].manager: Invalid value: \"kube\\actl\": invalid character U+0007 (at position 4)",
            ]
        );
        assert_eq!(
            messages(&validate_field_manager(
                &"m".repeat(129),
                &Path::new("fieldManager")
            )),
            vec!["fieldManager: Too long: may not be more than 128 bytes"]
        );
    }

    #[test]
    fn update_rules() {
        let mut old = meta("a", Some("default"));
        old.uid = Some("u1".into());
        old.generation = Some(3);
        old.resource_version = Some("5".into());
        let mut new = old.clone();
        assert!(validate_object_meta_update(&new, &old, &meta_path()).is_empty());

        new.resource_version = None;
        new.generation = Some(2);
        new.name = Some("b".into());
        new.uid = Some("u2".into());
        new.deletion_grace_period_seconds = Some(30);
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &meta_path())),
            vec![
                "metadata.resourceVersion: Invalid value: \"\": must be specified for an update",
                "metadata.generation: Invalid value: 2: must not be decremented",
                "metadata.name: Invalid value: \"b\": field is immutable",
                "metadata.uid: Invalid value: \"u2\": field is immutable",
                "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
            ]
        );
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let old: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "a", "resourceVersion": "1", "finalizers": ["x"],
            "deletionTimestamp": "2024-01-01T00:00:00Z"
        }))
        .unwrap_or_default();
        let mut new = old.clone();
        new.finalizers = Some(vec!["x".into(), "z".into(), "y".into()]);
        assert_eq!(
            messages(&validate_object_meta_update(&new, &old, &meta_path())),
            vec![
                r#"metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"y", "z"}"#
            ]
        );
        let mut moved = old.clone();
        moved.deletion_timestamp = None;
        assert_eq!(
            messages(&validate_object_meta_update(&moved, &old, &meta_path())),
            vec!["metadata.deletionTimestamp: Invalid value: null: field is immutable"]
        );
    }

    #[test]
    fn label_selector_validation() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "k".into(),
                    operator: "In".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "k".into(),
                    operator: "Exists".into(),
                    values: Some(vec!["v".into()]),
                },
                LabelSelectorRequirement {
                    key: "-k".into(),
                    operator: "Matches".into(),
                    values: None,
                },
            ]),
        };
        let msgs = messages(&validate_label_selector(
            Some(&sel),
            &Path::new("spec").child("selector"),
        ));
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert_eq!(
            msgs[0],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            msgs[1],
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            msgs[2],
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Matches\": not a valid selector operator"
        );
        assert!(msgs[3].starts_with(
            "spec.selector.matchExpressions[2].key: Invalid value: \"-k\": name part must consist"
        ));
        assert!(validate_label_selector(None, &Path::new("s")).is_empty());
    }
}
