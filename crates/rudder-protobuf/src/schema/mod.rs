//! The protobuf schema of the Kubernetes API as static tables.
//!
//! The tables live in `generated.rs`, written by `tests/schema_fresh.rs` from two crates the
//! workspace already trusts: `k8s-pb` (prost code generated from upstream's `generated.proto`,
//! which is where field numbers and wire types come from) and `k8s-openapi` (generated from
//! upstream's OpenAPI document, which is where JSON names and "required" come from). A table
//! instead of a descriptor pool means no protobuf runtime, no build script and no parsing at
//! start-up.

// The tables describe whole API groups, including messages that no supported kind reaches.
#[allow(dead_code)]
#[rustfmt::skip]
mod generated;

pub(crate) use generated::KINDS;
#[cfg(test)]
pub(crate) use generated::MESSAGES;

/// One protobuf message, with the fields sorted by number so the decoder can binary-search them.
/// Messages are separate statics that point at each other, so the tables need no index checks.
pub(crate) struct Message {
    pub name: &'static str,
    pub special: Special,
    pub fields: &'static [Field],
}

/// One field of a message.
pub(crate) struct Field {
    pub number: u32,
    pub json: &'static str,
    pub ty: Ty,
    pub card: Card,
    /// Whether a zero value on the wire must survive into JSON. gogo-protobuf writes every
    /// non-pointer Go field, so a zero on the wire usually means "unset"; it is kept only when
    /// the Go JSON would keep it too (no `omitempty`) or when the zero is a meaningful value of a
    /// pointer field (`replicas: 0`, `automountServiceAccountToken: false`).
    pub keep_zero: bool,
}

/// Wire-level type of a field (for maps: of the value; keys are always strings in Kubernetes).
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    String,
    Bytes,
    Bool,
    Int32,
    Int64,
    Message(&'static Message),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Card {
    One,
    Repeated,
    /// `map<string, ty>`, encoded as repeated entry messages `{1: key, 2: value}`.
    Map,
    /// A singular message whose Go field is embedded with `json:",inline"`: a nested message on
    /// the wire, its fields spliced into the parent object in JSON.
    Inline,
}

/// Messages whose JSON form is not an object of their fields (custom Go JSON marshallers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Special {
    None,
    /// `metav1.Time` `{1: seconds, 2: nanos}` ↔ RFC 3339 with whole seconds.
    Time,
    /// `metav1.MicroTime` ↔ RFC 3339 with six fractional digits.
    MicroTime,
    /// `metav1.Duration` `{1: nanoseconds}` ↔ Go's `time.Duration` string ("1m30s").
    Duration,
    /// `resource.Quantity` `{1: string}` ↔ the string.
    Quantity,
    /// `intstr.IntOrString` `{1: type, 2: intVal, 3: strVal}` ↔ number or string.
    IntOrString,
    /// `runtime.RawExtension` / `metav1.FieldsV1` `{1: raw}` ↔ the embedded JSON document.
    RawJson,
    /// `ExtraValue` / `Verbs` `{1: repeated string}` ↔ a JSON array of strings.
    StringList,
}

/// A top-level kind that may appear in a `runtime.Unknown` envelope.
pub(crate) struct Kind {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub message: &'static Message,
}

/// Shorthand used by the generated tables to keep one field per line.
pub(crate) const fn f(
    number: u32,
    json: &'static str,
    ty: Ty,
    card: Card,
    keep_zero: bool,
) -> Field {
    Field {
        number,
        json,
        ty,
        card,
        keep_zero,
    }
}

/// Kinds upstream registers in every group version (`metav1.AddToGroupVersion`): a typed client
/// sends `DeleteOptions` in an eviction or a delete body under its own group's apiVersion.
static OPTION_KINDS: [(&str, &Message); 6] = [
    (
        "CreateOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_CREATE_OPTIONS,
    ),
    (
        "DeleteOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_DELETE_OPTIONS,
    ),
    (
        "GetOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_GET_OPTIONS,
    ),
    (
        "ListOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_LIST_OPTIONS,
    ),
    (
        "PatchOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_PATCH_OPTIONS,
    ),
    (
        "UpdateOptions",
        &generated::APIMACHINERY_PKG_APIS_META_V1_UPDATE_OPTIONS,
    ),
];

/// Finds the message for a top-level kind.
pub(crate) fn lookup_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    // KINDS is sorted by apiVersion, then kind.
    if let Ok(i) = KINDS.binary_search_by(|k| (k.api_version, k.kind).cmp(&(api_version, kind))) {
        return KINDS.get(i).map(|k| k.message);
    }
    let (_, message) = OPTION_KINDS.iter().find(|(k, _)| *k == kind)?;
    let known_version = api_version.starts_with("meta.k8s.io/") || {
        let i = KINDS.partition_point(|k| k.api_version < api_version);
        KINDS.get(i).is_some_and(|k| k.api_version == api_version)
    };
    known_version.then_some(*message)
}

/// Every (apiVersion, kind) with a schema, except the option kinds' many aliases.
pub(crate) fn kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    KINDS
        .iter()
        .map(|k| (k.api_version, k.kind))
        .chain(OPTION_KINDS.iter().map(|(k, _)| ("meta.k8s.io/v1", *k)))
}

/// Finds a message by its OpenAPI-style name (e.g. `io.k8s.api.core.v1.Pod`).
#[cfg(test)]
pub(crate) fn lookup_message(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .and_then(|i| MESSAGES.get(i).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// JSON names a message contributes to its object, inlined structs flattened.
    fn json_names(msg: &'static Message, out: &mut Vec<&'static str>) {
        for f in msg.fields {
            match (f.card, f.ty) {
                (Card::Inline, Ty::Message(inner)) => json_names(inner, out),
                _ => out.push(f.json),
            }
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        assert!(KINDS
            .windows(2)
            .all(|w| (w[0].api_version, w[0].kind) < (w[1].api_version, w[1].kind)));
        for msg in MESSAGES {
            assert!(
                msg.fields.windows(2).all(|w| w[0].number < w[1].number),
                "{}",
                msg.name
            );
            let mut names = Vec::new();
            json_names(msg, &mut names);
            let unique: BTreeSet<_> = names.iter().collect();
            assert_eq!(
                unique.len(),
                names.len(),
                "duplicate JSON name in {}",
                msg.name
            );
        }
    }

    #[test]
    fn well_known_field_numbers() {
        // From the research notes (kubectl-wire.md §4), independent of the generator.
        let meta = lookup_message("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta").unwrap();
        let number =
            |m: &Message, json: &str| m.fields.iter().find(|f| f.json == json).map(|f| f.number);
        assert_eq!(number(meta, "name"), Some(1));
        assert_eq!(number(meta, "generateName"), Some(2));
        assert_eq!(number(meta, "namespace"), Some(3));
        assert_eq!(number(meta, "labels"), Some(11));
        assert_eq!(number(meta, "annotations"), Some(12));
        let spec = lookup_message("io.k8s.api.apps.v1.DeploymentSpec").unwrap();
        assert_eq!(number(spec, "replicas"), Some(1));
        assert_eq!(number(spec, "selector"), Some(2));
        assert_eq!(number(spec, "template"), Some(3));
        assert_eq!(number(spec, "paused"), Some(7));
        let container = lookup_message("io.k8s.api.core.v1.Container").unwrap();
        assert_eq!(number(container, "name"), Some(1));
        assert_eq!(number(container, "image"), Some(2));
    }

    #[test]
    fn json_names_keep_acronyms() {
        let status = lookup_message("io.k8s.api.core.v1.PodStatus").unwrap();
        let names: Vec<_> = status.fields.iter().map(|f| f.json).collect();
        assert!(names.contains(&"podIP") && names.contains(&"podIPs") && names.contains(&"hostIP"));
        let spec = lookup_message("io.k8s.api.core.v1.ServiceSpec").unwrap();
        assert!(spec.fields.iter().any(|f| f.json == "clusterIPs"));
    }

    #[test]
    fn special_types_are_recognised() {
        for (name, special) in [
            ("io.k8s.apimachinery.pkg.apis.meta.v1.Time", Special::Time),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
                Special::MicroTime,
            ),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.Duration",
                Special::Duration,
            ),
            (
                "io.k8s.apimachinery.pkg.api.resource.Quantity",
                Special::Quantity,
            ),
            (
                "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
                Special::IntOrString,
            ),
            (
                "io.k8s.apimachinery.pkg.runtime.RawExtension",
                Special::RawJson,
            ),
            (
                "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
                Special::RawJson,
            ),
            (
                "io.k8s.api.authentication.v1.ExtraValue",
                Special::StringList,
            ),
            (
                "io.k8s.api.authorization.v1.ExtraValue",
                Special::StringList,
            ),
        ] {
            assert_eq!(
                lookup_message(name).map(|m| m.special),
                Some(special),
                "{name}"
            );
        }
    }

    #[test]
    fn option_kinds_follow_known_group_versions() {
        assert!(lookup_kind("apps/v1", "DeleteOptions").is_some());
        assert!(lookup_kind("policy/v1", "DeleteOptions").is_some());
        assert!(lookup_kind("meta.k8s.io/v1", "CreateOptions").is_some());
        assert!(lookup_kind("v1", "DeleteOptions").is_some());
        assert!(lookup_kind("nope.example.com/v1", "DeleteOptions").is_none());
    }
}
