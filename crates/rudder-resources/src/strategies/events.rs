//! Events, served as core/v1 and events.k8s.io/v1 and stored once, in the core/v1 form.
//!
//! Upstream pieces this module follows:
//! - `pkg/registry/core/event/strategy.go`: one strategy for both groups (no-op prepare hooks,
//!   create on update, unconditional updates, `ToSelectableFields`), validating with the
//!   request's group/version;
//! - `pkg/apis/core/validation/events.go`: `ValidateEventCreate` / `ValidateEventUpdate`, which
//!   run `legacyValidateEvent` for every version and the strict checks only for
//!   events.k8s.io/v1 (and newer) requests;
//! - `pkg/apis/events/v1/conversion.go` plus the generated conversions: events.k8s.io/v1 ⇄ the
//!   internal core Event (`regarding`⇄`involvedObject`, `note`⇄`message`,
//!   `deprecatedSource`⇄`source`, `deprecatedFirstTimestamp`⇄`firstTimestamp`,
//!   `deprecatedLastTimestamp`⇄`lastTimestamp`, `deprecatedCount`⇄`count`,
//!   `reportingController`⇄`reportingComponent`, the rest by name);
//! - `k8s.io/api` `core/v1` and `events/v1` `types.go`: which JSON fields Go always writes
//!   (`reportingComponent: ""`, `eventTime: null`, `regarding: {}`, ...) and which it omits, and
//!   `metav1.Time` (RFC 3339, whole seconds) / `metav1.MicroTime` (exactly six fractional
//!   digits on input and output).
//!
//! Both versions decode into [`Event`] (the internal type), so conversion, validation and
//! the canonical JSON of each version are each written once.

use std::fmt::Write as _;

use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::validation::object_meta::FIELD_IMMUTABLE_ERROR_MSG;
use rudder_api::validation::{
    is_dns1123_subdomain, is_qualified_name, name_is_dns_subdomain, validate_path_segment_name,
    NameValidator,
};
use rudder_registry::{OpCx, Strategy};
use serde_json::{json, Map, Value};

const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
const ACTION_LENGTH_LIMIT: usize = 128;
const REASON_LENGTH_LIMIT: usize = 128;
const NOTE_LENGTH_LIMIT: usize = 1024;

const EVENT_TYPE_NORMAL: &str = "Normal";
const EVENT_TYPE_WARNING: &str = "Warning";

/// core/v1 Events (`/api/v1/.../events`), the stored form.
pub struct EventStrategy(Version);

impl EventStrategy {
    /// core/v1 Events: the stored form.
    pub const CORE: EventStrategy = EventStrategy(Version::Core);
    /// events.k8s.io/v1 Events: the same objects, converted to and from the core form.
    pub const V1: EventStrategy = EventStrategy(Version::EventsV1);

    /// The internal event of an object of this strategy's version.
    fn read(&self, obj: &Value) -> Result<Event, String> {
        match self.0 {
            Version::Core => Event::from_core(obj),
            Version::EventsV1 => Event::from_events_v1(obj),
        }
    }

    fn write(&self, ev: &Event) -> Value {
        match self.0 {
            Version::Core => ev.to_core(),
            Version::EventsV1 => ev.to_events_v1(),
        }
    }
}

impl Strategy for EventStrategy {
    fn decode(&self, obj: Value) -> Result<Value, String> {
        let ev = self.read(&obj).map_err(|e| decode_error(self.0, &e))?;
        Ok(self.write(&ev))
    }

    fn validate(&self, _cx: &OpCx, obj: &Value) -> ErrorList {
        match self.read(obj) {
            Ok(ev) => validate_event_create(&ev, self.0),
            Err(e) => undecodable(e),
        }
    }

    fn validate_update(&self, _cx: &OpCx, new: &Value, old: &Value) -> ErrorList {
        match (self.read(new), self.read(old)) {
            (Ok(n), Ok(o)) => validate_event_update(&n, &o, self.0),
            (Err(e), _) | (_, Err(e)) => undecodable(e),
        }
    }

    /// Upstream validates core/v1 events without `ValidateObjectMeta` ("for backwards
    /// compatibility"), so only the generic store's path-segment rule applies; events.k8s.io/v1
    /// names are DNS subdomains.
    fn name_validator(&self) -> NameValidator {
        match self.0 {
            Version::Core => validate_path_segment_name,
            Version::EventsV1 => name_is_dns_subdomain,
        }
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    /// The watch cache computes fields from the stored (core) form, whichever version's
    /// entry it finds for the key; upstream selects events.k8s.io events by the same fields.
    fn selectable_fields(&self, obj: &Value, out: &mut Vec<(String, String)>) {
        selectable_fields(obj, out);
    }

    fn converts(&self) -> bool {
        self.0 == Version::EventsV1
    }

    fn version_to_storage(&self, obj: Value) -> Result<Value, String> {
        let ev = self.read(&obj).map_err(|e| decode_error(self.0, &e))?;
        Ok(ev.to_core())
    }

    fn storage_to_version(&self, obj: Value) -> Value {
        // The stored form was written by the core decoder, so it decodes; a field that somehow
        // does not reads as its zero value, as it would after Go's decoder skipped it.
        self.write(&Event::from_core_lenient(&obj))
    }
}

/// Upstream `ToSelectableFields`, over the stored core/v1 JSON. `metadata.name` and
/// `metadata.namespace` are the cache's own.
fn selectable_fields(obj: &Value, out: &mut Vec<(String, String)>) {
    let s = |path: &[&str]| -> String {
        let mut v = obj;
        for p in path {
            match v.get(p) {
                Some(next) => v = next,
                None => return String::new(),
            }
        }
        v.as_str().unwrap_or_default().to_string()
    };
    let reporting = s(&["reportingComponent"]);
    let mut source = s(&["source", "component"]);
    if source.is_empty() {
        source = reporting.clone();
    }
    for (field, path) in [
        ("involvedObject.kind", &["involvedObject", "kind"][..]),
        ("involvedObject.namespace", &["involvedObject", "namespace"]),
        ("involvedObject.name", &["involvedObject", "name"]),
        ("involvedObject.uid", &["involvedObject", "uid"]),
        (
            "involvedObject.apiVersion",
            &["involvedObject", "apiVersion"],
        ),
        (
            "involvedObject.resourceVersion",
            &["involvedObject", "resourceVersion"],
        ),
        ("involvedObject.fieldPath", &["involvedObject", "fieldPath"]),
        ("reason", &["reason"]),
        ("type", &["type"]),
    ] {
        out.push((field.to_string(), s(path)));
    }
    out.push(("reportingComponent".to_string(), reporting));
    out.push(("source".to_string(), source));
}

// ---------------------------------------------------------------------------------------------
// The internal type and its two external forms.

/// The group/version a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    Core,
    EventsV1,
}

impl Version {
    fn api_version(self) -> &'static str {
        match self {
            Version::Core => "v1",
            Version::EventsV1 => "events.k8s.io/v1",
        }
    }

    /// The qualified kind upstream's decode errors name.
    fn qualified_kind(self) -> &'static str {
        match self {
            Version::Core => "Event",
            Version::EventsV1 => "Event.events.k8s.io",
        }
    }
}

/// upstream `transformDecodeError`: `<Kind.group> in version "v1" cannot be handled as a
/// <Kind>: <decoder error>`.
fn decode_error(v: Version, err: &str) -> String {
    format!(
        "{} in version \"v1\" cannot be handled as a Event: {err}",
        v.qualified_kind()
    )
}

fn undecodable(err: String) -> ErrorList {
    ErrorList(vec![FieldError::internal(&Path::new("metadata"), err)])
}

/// `core.ObjectReference`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ObjectRef {
    kind: String,
    namespace: String,
    name: String,
    uid: String,
    api_version: String,
    resource_version: String,
    field_path: String,
}

/// `core.EventSource`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EventSource {
    component: String,
    host: String,
}

/// `core.EventSeries` (events.k8s.io/v1 has the same fields).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct EventSeries {
    count: i32,
    last_observed_time: Option<Instant>,
}

/// The internal `core.Event`. `None` times are Go's zero time.
#[derive(Clone, Debug, Default, PartialEq)]
struct Event {
    metadata: Option<Value>,
    involved_object: ObjectRef,
    reason: String,
    message: String,
    source: EventSource,
    first_timestamp: Option<Instant>,
    last_timestamp: Option<Instant>,
    count: i32,
    type_: String,
    event_time: Option<Instant>,
    series: Option<EventSeries>,
    action: String,
    related: Option<ObjectRef>,
    reporting_controller: String,
    reporting_instance: String,
}

impl Event {
    fn namespace(&self) -> &str {
        self.metadata
            .as_ref()
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Decode a core/v1 Event as upstream's JSON decoder would (unknown fields dropped).
    fn from_core(obj: &Value) -> Result<Event, String> {
        let mut d = Decoder::default();
        let ev = d.core(obj);
        d.finish().map(|()| ev)
    }

    fn from_core_lenient(obj: &Value) -> Event {
        Decoder::default().core(obj)
    }

    /// Decode an events.k8s.io/v1 Event into the internal type (`Convert_v1_Event_To_core_Event`).
    fn from_events_v1(obj: &Value) -> Result<Event, String> {
        let mut d = Decoder::default();
        let ev = d.events_v1(obj);
        d.finish().map(|()| ev)
    }

    /// The core/v1 JSON Go writes for this Event.
    fn to_core(&self) -> Value {
        let mut m = Map::new();
        m.insert("apiVersion".into(), json!(Version::Core.api_version()));
        m.insert("kind".into(), json!("Event"));
        if let Some(meta) = &self.metadata {
            m.insert("metadata".into(), meta.clone());
        }
        m.insert("involvedObject".into(), self.involved_object.to_json());
        put_str(&mut m, "reason", &self.reason);
        put_str(&mut m, "message", &self.message);
        m.insert("source".into(), self.source.to_json());
        m.insert("firstTimestamp".into(), time_json(self.first_timestamp));
        m.insert("lastTimestamp".into(), time_json(self.last_timestamp));
        put_int(&mut m, "count", self.count);
        put_str(&mut m, "type", &self.type_);
        m.insert("eventTime".into(), micro_time_json(self.event_time));
        if let Some(s) = &self.series {
            // core/v1 EventSeries: both fields `omitempty` (a zero MicroTime still writes null).
            let mut sm = Map::new();
            put_int(&mut sm, "count", s.count);
            sm.insert(
                "lastObservedTime".into(),
                micro_time_json(s.last_observed_time),
            );
            m.insert("series".into(), Value::Object(sm));
        }
        put_str(&mut m, "action", &self.action);
        if let Some(r) = &self.related {
            m.insert("related".into(), r.to_json());
        }
        // Not `omitempty` in core/v1.
        m.insert(
            "reportingComponent".into(),
            json!(self.reporting_controller),
        );
        m.insert("reportingInstance".into(), json!(self.reporting_instance));
        Value::Object(m)
    }

    /// The events.k8s.io/v1 JSON Go writes for this Event (`Convert_core_Event_To_v1_Event`).
    fn to_events_v1(&self) -> Value {
        let mut m = Map::new();
        m.insert("apiVersion".into(), json!(Version::EventsV1.api_version()));
        m.insert("kind".into(), json!("Event"));
        if let Some(meta) = &self.metadata {
            m.insert("metadata".into(), meta.clone());
        }
        // Not `omitempty`: a singleton core event reads `eventTime: null`.
        m.insert("eventTime".into(), micro_time_json(self.event_time));
        if let Some(s) = &self.series {
            // events.k8s.io/v1 EventSeries: both fields required, never omitted.
            m.insert(
                "series".into(),
                json!({"count": s.count, "lastObservedTime": micro_time_json(s.last_observed_time)}),
            );
        }
        put_str(&mut m, "reportingController", &self.reporting_controller);
        put_str(&mut m, "reportingInstance", &self.reporting_instance);
        put_str(&mut m, "action", &self.action);
        put_str(&mut m, "reason", &self.reason);
        m.insert("regarding".into(), self.involved_object.to_json());
        if let Some(r) = &self.related {
            m.insert("related".into(), r.to_json());
        }
        put_str(&mut m, "note", &self.message);
        put_str(&mut m, "type", &self.type_);
        m.insert("deprecatedSource".into(), self.source.to_json());
        m.insert(
            "deprecatedFirstTimestamp".into(),
            time_json(self.first_timestamp),
        );
        m.insert(
            "deprecatedLastTimestamp".into(),
            time_json(self.last_timestamp),
        );
        put_int(&mut m, "deprecatedCount", self.count);
        Value::Object(m)
    }
}

impl ObjectRef {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put_str(&mut m, "kind", &self.kind);
        put_str(&mut m, "namespace", &self.namespace);
        put_str(&mut m, "name", &self.name);
        put_str(&mut m, "uid", &self.uid);
        put_str(&mut m, "apiVersion", &self.api_version);
        put_str(&mut m, "resourceVersion", &self.resource_version);
        put_str(&mut m, "fieldPath", &self.field_path);
        Value::Object(m)
    }

    /// Go's `%#v` of the internal struct, as upstream field errors print struct values.
    fn go_syntax(&self) -> String {
        format!(
            "core.ObjectReference{{Kind:{}, Namespace:{}, Name:{}, UID:{}, APIVersion:{}, ResourceVersion:{}, FieldPath:{}}}",
            go_quote(&self.kind),
            go_quote(&self.namespace),
            go_quote(&self.name),
            go_quote(&self.uid),
            go_quote(&self.api_version),
            go_quote(&self.resource_version),
            go_quote(&self.field_path)
        )
    }
}

impl EventSource {
    fn to_json(&self) -> Value {
        let mut m = Map::new();
        put_str(&mut m, "component", &self.component);
        put_str(&mut m, "host", &self.host);
        Value::Object(m)
    }

    fn go_syntax(&self) -> String {
        format!(
            "core.EventSource{{Component:{}, Host:{}}}",
            go_quote(&self.component),
            go_quote(&self.host)
        )
    }
}

/// An `omitempty` string.
fn put_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if !v.is_empty() {
        m.insert(key.into(), json!(v));
    }
}

/// An `omitempty` int32.
fn put_int(m: &mut Map<String, Value>, key: &str, v: i32) {
    if v != 0 {
        m.insert(key.into(), json!(v));
    }
}

/// `metav1.Time`: a struct, so written even when `omitempty`; zero is `null`.
fn time_json(t: Option<Instant>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.format(false)))
}

/// `metav1.MicroTime`, likewise.
fn micro_time_json(t: Option<Instant>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.format(true)))
}

// ---------------------------------------------------------------------------------------------
// Decoding with Go's `encoding/json` semantics: `null` leaves the zero value, a value of the
// wrong JSON type is an `UnmarshalTypeError` (the first one is reported, decoding goes on), a
// malformed time aborts at once, unknown fields are dropped.

#[derive(Default)]
struct Decoder {
    /// The first type error, reported unless a fatal error comes along.
    saved: Option<String>,
    /// An error from a field's own `UnmarshalJSON` (times), which Go returns at once.
    fatal: Option<String>,
}

/// The JSON kind Go names in type errors.
fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(n) => format!("number {n}"),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

impl Decoder {
    fn finish(self) -> Result<(), String> {
        match self.fatal.or(self.saved) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `json: cannot unmarshal <kind> into Go struct field <Struct>.<path> of type <type>`.
    fn type_error(&mut self, v: &Value, strct: &str, path: &str, ty: &str) {
        if self.saved.is_none() {
            let kind = match v {
                // Go names a number's literal only when it is the number that does not fit.
                Value::Number(_) if ty != "int32" => "number".to_string(),
                other => json_kind(other),
            };
            self.saved = Some(format!(
                "json: cannot unmarshal {kind} into Go struct field {strct}.{path} of type {ty}"
            ));
        }
    }

    fn string(&mut self, m: &Map<String, Value>, key: &str, strct: &str, path: &str) -> String {
        match m.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                self.type_error(other, strct, &join(path, key), "string");
                String::new()
            }
        }
    }

    fn int32(&mut self, m: &Map<String, Value>, key: &str, strct: &str, path: &str) -> i32 {
        match m.get(key) {
            None | Some(Value::Null) => 0,
            Some(v @ Value::Number(n)) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                Some(i) => i,
                None => {
                    self.type_error(v, strct, &join(path, key), "int32");
                    0
                }
            },
            Some(other) => {
                self.type_error(other, strct, &join(path, key), "int32");
                0
            }
        }
    }

    /// A `metav1.Time` (`micro = false`) or `metav1.MicroTime` field.
    fn time(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        strct: &str,
        path: &str,
        micro: bool,
    ) -> Option<Instant> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Instant::parse(s, micro) {
                Ok(t) => (!t.is_go_zero()).then_some(t),
                Err(e) => {
                    if self.fatal.is_none() {
                        self.fatal = Some(e);
                    }
                    None
                }
            },
            // The type's UnmarshalJSON decodes a string first; Go names the field it was for.
            Some(other) => {
                self.type_error(other, strct, &join(path, key), "string");
                None
            }
        }
    }

    /// A struct-valued field: its object, or `None` for absent / `null` / a type error.
    fn object<'a>(
        &mut self,
        m: &'a Map<String, Value>,
        key: &str,
        strct: &str,
        path: &str,
        ty: &str,
    ) -> Option<&'a Map<String, Value>> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                self.type_error(other, strct, &join(path, key), ty);
                None
            }
        }
    }

    fn object_ref(&mut self, m: &Map<String, Value>, path: &str) -> ObjectRef {
        const S: &str = "ObjectReference";
        ObjectRef {
            kind: self.string(m, "kind", S, path),
            namespace: self.string(m, "namespace", S, path),
            name: self.string(m, "name", S, path),
            uid: self.string(m, "uid", S, path),
            api_version: self.string(m, "apiVersion", S, path),
            resource_version: self.string(m, "resourceVersion", S, path),
            field_path: self.string(m, "fieldPath", S, path),
        }
    }

    fn source(&mut self, m: &Map<String, Value>, path: &str) -> EventSource {
        const S: &str = "EventSource";
        EventSource {
            component: self.string(m, "component", S, path),
            host: self.string(m, "host", S, path),
        }
    }

    fn series(&mut self, m: &Map<String, Value>, path: &str) -> EventSeries {
        const S: &str = "EventSeries";
        EventSeries {
            count: self.int32(m, "count", S, path),
            last_observed_time: self.time(m, "lastObservedTime", S, path, true),
        }
    }

    /// The fields both versions share by name.
    fn common(&mut self, m: &Map<String, Value>, ev: &mut Event) {
        const E: &str = "Event";
        ev.metadata = m.get("metadata").cloned();
        ev.reason = self.string(m, "reason", E, "");
        ev.type_ = self.string(m, "type", E, "");
        ev.event_time = self.time(m, "eventTime", E, "", true);
        ev.action = self.string(m, "action", E, "");
        ev.reporting_instance = self.string(m, "reportingInstance", E, "");
        if let Some(s) = self.object(m, "series", E, "", "v1.EventSeries") {
            ev.series = Some(self.series(s, "series"));
        }
        if let Some(r) = self.object(m, "related", E, "", "v1.ObjectReference") {
            ev.related = Some(self.object_ref(r, "related"));
        }
    }

    fn core(&mut self, obj: &Value) -> Event {
        const E: &str = "Event";
        let mut ev = Event::default();
        let Some(m) = obj.as_object() else {
            return ev;
        };
        self.common(m, &mut ev);
        if let Some(o) = self.object(m, "involvedObject", E, "", "v1.ObjectReference") {
            ev.involved_object = self.object_ref(o, "involvedObject");
        }
        ev.message = self.string(m, "message", E, "");
        if let Some(s) = self.object(m, "source", E, "", "v1.EventSource") {
            ev.source = self.source(s, "source");
        }
        ev.first_timestamp = self.time(m, "firstTimestamp", E, "", false);
        ev.last_timestamp = self.time(m, "lastTimestamp", E, "", false);
        ev.count = self.int32(m, "count", E, "");
        ev.reporting_controller = self.string(m, "reportingComponent", E, "");
        ev
    }

    fn events_v1(&mut self, obj: &Value) -> Event {
        const E: &str = "Event";
        let mut ev = Event::default();
        let Some(m) = obj.as_object() else {
            return ev;
        };
        self.common(m, &mut ev);
        if let Some(o) = self.object(m, "regarding", E, "", "v1.ObjectReference") {
            ev.involved_object = self.object_ref(o, "regarding");
        }
        ev.message = self.string(m, "note", E, "");
        if let Some(s) = self.object(m, "deprecatedSource", E, "", "v1.EventSource") {
            ev.source = self.source(s, "deprecatedSource");
        }
        ev.first_timestamp = self.time(m, "deprecatedFirstTimestamp", E, "", false);
        ev.last_timestamp = self.time(m, "deprecatedLastTimestamp", E, "", false);
        ev.count = self.int32(m, "deprecatedCount", E, "");
        ev.reporting_controller = self.string(m, "reportingController", E, "");
        ev
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Go's `strconv.Quote`, for the printable strings field errors show.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Validation (pkg/apis/core/validation/events.go).

fn validate_event_create(ev: &Event, version: Version) -> ErrorList {
    let mut errs = legacy_validate_event(ev);
    if version == Version::Core {
        // No further validation for backwards compatibility.
        return errs;
    }
    // Strict validation for events.k8s.io/v1. (ObjectMeta is validated by the generic store.)
    validate_v1_event_series(ev, &mut errs);
    if ev.event_time.is_none() {
        errs.push(FieldError::required(&Path::new("eventTime"), ""));
    }
    if ev.type_ != EVENT_TYPE_NORMAL && ev.type_ != EVENT_TYPE_WARNING {
        errs.push(FieldError::invalid(
            &Path::new("type"),
            "",
            format!("has invalid value: {}", ev.type_),
        ));
    }
    for (set, path) in [
        (ev.first_timestamp.is_some(), "firstTimestamp"),
        (ev.last_timestamp.is_some(), "lastTimestamp"),
        (ev.count != 0, "count"),
        (
            !ev.source.component.is_empty() || !ev.source.host.is_empty(),
            "source",
        ),
    ] {
        if set {
            errs.push(FieldError::invalid(
                &Path::new(path),
                "",
                "needs to be unset",
            ));
        }
    }
    errs
}

fn validate_event_update(new: &Event, old: &Event, version: Version) -> ErrorList {
    let mut errs = legacy_validate_event(new);
    if version == Version::Core {
        return errs;
    }
    // (ObjectMeta updates are validated by the generic store.)
    if new.series != old.series {
        validate_v1_event_series(new, &mut errs);
    }
    let mut immutable = |changed: bool, path: &str, value: BadValue| {
        if changed {
            errs.push(FieldError::invalid(
                &Path::new(path),
                value,
                FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
    };
    let time_value = |t: Option<Instant>| BadValue::Raw(Instant::go_string(t));
    immutable(
        new.involved_object != old.involved_object,
        "involvedObject",
        BadValue::Raw(new.involved_object.go_syntax()),
    );
    immutable(
        new.reason != old.reason,
        "reason",
        new.reason.as_str().into(),
    );
    immutable(
        new.message != old.message,
        "message",
        new.message.as_str().into(),
    );
    immutable(
        new.source != old.source,
        "source",
        BadValue::Raw(new.source.go_syntax()),
    );
    immutable(
        new.first_timestamp != old.first_timestamp,
        "firstTimestamp",
        time_value(new.first_timestamp),
    );
    immutable(
        new.last_timestamp != old.last_timestamp,
        "lastTimestamp",
        time_value(new.last_timestamp),
    );
    immutable(new.count != old.count, "count", new.count.into());
    // Upstream checks reason twice.
    immutable(
        new.reason != old.reason,
        "reason",
        new.reason.as_str().into(),
    );
    immutable(new.type_ != old.type_, "type", new.type_.as_str().into());
    immutable(
        new.event_time != old.event_time,
        "eventTime",
        time_value(new.event_time),
    );
    immutable(
        new.action != old.action,
        "action",
        new.action.as_str().into(),
    );
    immutable(
        new.related != old.related,
        "related",
        new.related
            .as_ref()
            .map_or_else(|| "null".into(), |r| BadValue::Raw(r.go_syntax())),
    );
    immutable(
        new.reporting_controller != old.reporting_controller,
        "reportingController",
        new.reporting_controller.as_str().into(),
    );
    immutable(
        new.reporting_instance != old.reporting_instance,
        "reportingInstance",
        new.reporting_instance.as_str().into(),
    );
    errs
}

fn validate_v1_event_series(ev: &Event, errs: &mut ErrorList) {
    if let Some(s) = &ev.series {
        if s.count < 2 {
            errs.push(FieldError::invalid(
                &Path::new("series.count"),
                "",
                "should be at least 2",
            ));
        }
        if s.last_observed_time.is_none() {
            errs.push(FieldError::required(
                &Path::new("series.lastObservedTime"),
                "",
            ));
        }
    }
}

/// upstream `legacyValidateEvent`, which every version's events pass.
fn legacy_validate_event(ev: &Event) -> ErrorList {
    let mut errs = ErrorList::new();
    let ns = ev.namespace();
    let involved_ns = ev.involved_object.namespace.as_str();
    let ns_mismatch = || {
        FieldError::invalid(
            &Path::new("involvedObject").child("namespace"),
            involved_ns,
            "does not match event.namespace",
        )
    };
    if ev.event_time.is_none() {
        // "Old" events: the event's namespace and the involved object's must agree (an
        // involved object without one may be reported in "default", for old clients).
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(ns_mismatch());
            }
        } else if ns != involved_ns {
            errs.push(ns_mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(ns_mismatch());
        }
        let rc = ev.reporting_controller.as_str();
        if rc.is_empty() {
            errs.push(FieldError::required(&Path::new("reportingController"), ""));
        }
        for msg in is_qualified_name(rc) {
            errs.push(FieldError::invalid(
                &Path::new("reportingController"),
                rc,
                msg,
            ));
        }
        let limited = [
            (
                "reportingInstance",
                ev.reporting_instance.len(),
                REPORTING_INSTANCE_LENGTH_LIMIT,
                true,
            ),
            ("action", ev.action.len(), ACTION_LENGTH_LIMIT, true),
            ("reason", ev.reason.len(), REASON_LENGTH_LIMIT, true),
            ("message", ev.message.len(), NOTE_LENGTH_LIMIT, false),
        ];
        for (field, len, limit, required) in limited {
            if required && len == 0 {
                errs.push(FieldError::required(&Path::new(field), ""));
            }
            if len > limit {
                errs.push(FieldError::invalid(
                    &Path::new(field),
                    "",
                    format!("can have at most {limit} characters"),
                ));
            }
        }
    }
    for msg in is_dns1123_subdomain(ns) {
        errs.push(FieldError::invalid(&Path::new("namespace"), ns, msg));
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Times: Go's `time.Parse` with the layouts `metav1.Time` and `metav1.MicroTime` decode with,
// including its error messages, and their UTC output forms.

const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
const RFC3339_MICRO: &str = "2006-01-02T15:04:05.000000Z07:00";

/// An instant in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Instant {
    secs: i64,
    nanos: u32,
}

/// Go's `time.ParseError`, rendered.
fn parse_error(value: &str, layout: &str, value_elem: &str, layout_elem: &str) -> String {
    format!(
        "parsing time {} as {}: cannot parse {} as {}",
        go_quote(value),
        go_quote(layout),
        go_quote(value_elem),
        go_quote(layout_elem)
    )
}

/// Go's `getnum`: one or (`fixed`: exactly) two leading digits.
fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    let d0 = b.first().filter(|c| c.is_ascii_digit())?;
    match b.get(1).filter(|c| c.is_ascii_digit()) {
        Some(d1) => Some((i64::from(d0 - b'0') * 10 + i64::from(d1 - b'0'), &s[2..])),
        None if fixed => None,
        None => Some((i64::from(d0 - b'0'), &s[1..])),
    }
}

impl Instant {
    /// Go's zero time, 0001-01-01T00:00:00Z, which marshals as `null`.
    const GO_ZERO_SECS: i64 = -62_135_596_800;

    fn is_go_zero(self) -> bool {
        self.secs == Self::GO_ZERO_SECS && self.nanos == 0
    }

    /// `time.Parse(RFC3339 or RFC3339Micro, s)`, with Go's error messages.
    fn parse(s: &str, micro: bool) -> Result<Instant, String> {
        let layout = if micro { RFC3339_MICRO } else { RFC3339 };
        let bad = |value_elem: &str, layout_elem: &str| {
            Err(parse_error(s, layout, value_elem, layout_elem))
        };
        let range = |what: &str| Err(format!("parsing time {}: {what} out of range", go_quote(s)));
        // 2006
        let v = s;
        if v.len() < 4 || !v.is_char_boundary(4) {
            return bad(v, "2006");
        }
        let year: i64 = match v[..4].parse::<i64>() {
            Ok(y) if v.as_bytes()[..4].iter().all(u8::is_ascii_digit) => y,
            _ => return bad(v, "2006"),
        };
        let Some(v) = v[4..].strip_prefix('-') else {
            return bad(&s[4..], "-");
        };
        // 01
        let Some((month, rest)) = getnum(v, true) else {
            return bad(v, "01");
        };
        if !(1..=12).contains(&month) {
            return range("month");
        }
        let Some(v) = rest.strip_prefix('-') else {
            return bad(rest, "-");
        };
        // 02 (range checked at the end, as Go does)
        let Some((day, rest)) = getnum(v, true) else {
            return bad(v, "02");
        };
        let Some(v) = rest.strip_prefix('T') else {
            return bad(rest, "T");
        };
        // 15
        let Some((hour, rest)) = getnum(v, false) else {
            return bad(v, "15");
        };
        if hour >= 24 {
            return range("hour");
        }
        let Some(v) = rest.strip_prefix(':') else {
            return bad(rest, ":");
        };
        // 04
        let Some((minute, rest)) = getnum(v, true) else {
            return bad(v, "04");
        };
        if minute >= 60 {
            return range("minute");
        }
        let Some(v) = rest.strip_prefix(':') else {
            return bad(rest, ":");
        };
        // 05, and for RFC 3339 an optional fraction of any length
        let Some((second, mut rest)) = getnum(v, true) else {
            return bad(v, "05");
        };
        if second >= 60 {
            return range("second");
        }
        let mut nanos: i64 = 0;
        let frac_digits =
            |r: &str| -> usize { r.bytes().skip(1).take_while(u8::is_ascii_digit).count() };
        let frac_value = |digits: &str| -> i64 {
            let mut n: i64 = 0;
            for (i, c) in digits.bytes().enumerate() {
                if i < 9 {
                    n = n * 10 + i64::from(c - b'0');
                }
            }
            for _ in digits.len()..9 {
                n *= 10;
            }
            n
        };
        let starts_frac = |r: &str| r.starts_with(['.', ',']);
        if micro {
            // `.000000`: exactly six digits.
            let n = frac_digits(rest);
            if !starts_frac(rest) || rest.len() < 7 || n < 6 {
                return bad(rest, ".000000");
            }
            nanos = frac_value(&rest[1..7]);
            rest = &rest[7..];
        } else if starts_frac(rest) && frac_digits(rest) > 0 {
            let n = frac_digits(rest);
            nanos = frac_value(&rest[1..=n]);
            rest = &rest[1 + n..];
        }
        // Z07:00
        let offset_secs: i64;
        if let Some(r) = rest.strip_prefix('Z') {
            offset_secs = 0;
            rest = r;
        } else {
            let b = rest.as_bytes();
            if b.len() < 6 || b[3] != b':' || !rest.is_char_boundary(6) {
                return bad(rest, "Z07:00");
            }
            let (Some((oh, "")), Some((om, ""))) =
                (getnum(&rest[1..3], true), getnum(&rest[4..6], true))
            else {
                return bad(rest, "Z07:00");
            };
            if oh > 24 {
                return Err(format!(
                    "parsing time {}: time zone offset hour out of range",
                    go_quote(s)
                ));
            }
            if om > 60 {
                return Err(format!(
                    "parsing time {}: time zone offset minute out of range",
                    go_quote(s)
                ));
            }
            let off = (oh * 60 + om) * 60;
            offset_secs = match b[0] {
                b'+' => off,
                b'-' => -off,
                _ => return bad(rest, "Z07:00"),
            };
            rest = &rest[6..];
        }
        if !rest.is_empty() {
            return Err(format!(
                "parsing time {}: extra text: {}",
                go_quote(s),
                go_quote(rest)
            ));
        }
        if day < 1 || day > days_in_month(year, month) {
            return range("day");
        }
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset_secs;
        Ok(Instant {
            secs,
            nanos: u32::try_from(nanos).unwrap_or(0),
        })
    }

    /// `t.UTC().Format(RFC3339)` (whole seconds) or `RFC3339Micro`.
    fn format(self, micro: bool) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if micro {
            let _ = write!(out, ".{:06}", self.nanos / 1000);
        }
        out.push('Z');
        out
    }

    /// Go's `Time.String()` of a time in UTC (the zero time for `None`), as field errors print
    /// times: `2006-01-02 15:04:05.999999999 +0000 UTC`.
    fn go_string(t: Option<Instant>) -> String {
        let t = t.unwrap_or(Instant {
            secs: Self::GO_ZERO_SECS,
            nanos: 0,
        });
        let (y, mo, d, h, mi, s) = t.civil();
        let mut out = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
        if t.nanos != 0 {
            let frac = format!("{:09}", t.nanos);
            let _ = write!(out, ".{}", frac.trim_end_matches('0'));
        }
        out.push_str(" +0000 UTC");
        out
    }

    fn civil(self) -> (i64, i64, i64, i64, i64, i64) {
        let days = self.secs.div_euclid(86_400);
        let sod = self.secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (y, m, d, sod / 3600, sod % 3600 / 60, sod % 60)
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> OpCx {
        OpCx {
            now: "2024-05-01T10:00:00Z".into(),
        }
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn core_event() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "cm.1", "namespace": "default"},
            "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "cm",
                               "uid": "u-1", "apiVersion": "v1", "resourceVersion": "7",
                               "fieldPath": "data"},
            "reason": "Boom",
            "message": "it broke",
            "source": {"component": "tester", "host": "node-1"},
            "firstTimestamp": "2024-05-01T09:00:00Z",
            "lastTimestamp": "2024-05-01T09:30:00Z",
            "count": 3,
            "type": "Warning",
        })
    }

    fn v1_event() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "new.1", "namespace": "default"},
            "eventTime": "2024-05-01T09:00:00.123456Z",
            "series": {"count": 2, "lastObservedTime": "2024-05-01T09:05:00.000000Z"},
            "reportingController": "example.com/ctrl",
            "reportingInstance": "ctrl-1",
            "action": "Reconcile",
            "reason": "Synced",
            "regarding": {"kind": "ConfigMap", "namespace": "default", "name": "cm"},
            "related": {"kind": "Pod", "namespace": "default", "name": "p"},
            "note": "all good",
            "type": "Normal",
        })
    }

    #[test]
    fn core_to_events_v1_renames_as_upstream() {
        let v1 =
            EventStrategy::V1.storage_to_version(EventStrategy::CORE.decode(core_event()).unwrap());
        assert_eq!(
            v1,
            json!({
                "apiVersion": "events.k8s.io/v1",
                "kind": "Event",
                "metadata": {"name": "cm.1", "namespace": "default"},
                "eventTime": null,
                "reason": "Boom",
                "regarding": {"kind": "ConfigMap", "namespace": "default", "name": "cm",
                              "uid": "u-1", "apiVersion": "v1", "resourceVersion": "7",
                              "fieldPath": "data"},
                "note": "it broke",
                "type": "Warning",
                "deprecatedSource": {"component": "tester", "host": "node-1"},
                "deprecatedFirstTimestamp": "2024-05-01T09:00:00Z",
                "deprecatedLastTimestamp": "2024-05-01T09:30:00Z",
                "deprecatedCount": 3,
            })
        );
        // And back: the same core event, in Go's canonical JSON.
        let core = EventStrategy::V1.version_to_storage(v1).unwrap();
        let mut want = core_event();
        want["eventTime"] = Value::Null;
        want["reportingComponent"] = json!("");
        want["reportingInstance"] = json!("");
        assert_eq!(core, want);
    }

    #[test]
    fn events_v1_to_core_renames_as_upstream() {
        let s = EventStrategy::V1;
        let v1 = s.decode(v1_event()).unwrap();
        let core = s.version_to_storage(v1.clone()).unwrap();
        assert_eq!(
            core,
            json!({
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "new.1", "namespace": "default"},
                "involvedObject": {"kind": "ConfigMap", "namespace": "default", "name": "cm"},
                "reason": "Synced",
                "message": "all good",
                "source": {},
                "firstTimestamp": null,
                "lastTimestamp": null,
                "type": "Normal",
                "eventTime": "2024-05-01T09:00:00.123456Z",
                "series": {"count": 2, "lastObservedTime": "2024-05-01T09:05:00.000000Z"},
                "action": "Reconcile",
                "related": {"kind": "Pod", "namespace": "default", "name": "p"},
                "reportingComponent": "example.com/ctrl",
                "reportingInstance": "ctrl-1",
            })
        );
        let mut back = v1_event();
        back["deprecatedSource"] = json!({});
        back["deprecatedFirstTimestamp"] = Value::Null;
        back["deprecatedLastTimestamp"] = Value::Null;
        assert_eq!(s.storage_to_version(core), back);
        assert_eq!(v1, back);
    }

    #[test]
    fn decode_normalises_times_and_drops_unknown_fields() {
        let mut ev = core_event();
        ev["firstTimestamp"] = json!("2024-05-01T11:00:00.987+02:00");
        ev["eventTime"] = json!("2024-05-01T09:00:00.000001-01:30");
        ev["bogus"] = json!(1);
        let out = EventStrategy::CORE.decode(ev).unwrap();
        assert_eq!(out["firstTimestamp"], "2024-05-01T09:00:00Z");
        assert_eq!(out["eventTime"], "2024-05-01T10:30:00.000001Z");
        assert!(out.get("bogus").is_none());
        let mut zero = core_event();
        zero["lastTimestamp"] = json!("0001-01-01T00:00:00Z");
        assert_eq!(
            EventStrategy::CORE.decode(zero).unwrap()["lastTimestamp"],
            Value::Null
        );
    }

    #[test]
    fn decode_errors_read_like_upstream() {
        let mut ev = v1_event();
        ev["eventTime"] = json!("2024-05-01T09:00:00Z");
        assert_eq!(
            EventStrategy::V1.decode(ev).unwrap_err(),
            "Event.events.k8s.io in version \"v1\" cannot be handled as a Event: parsing time \
             \"2024-05-01T09:00:00Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \
             \"Z\" as \".000000\""
        );
        let mut ev = core_event();
        ev["count"] = json!("3");
        assert_eq!(
            EventStrategy::CORE.decode(ev).unwrap_err(),
            "Event in version \"v1\" cannot be handled as a Event: json: cannot unmarshal string \
             into Go struct field Event.count of type int32"
        );
        let mut ev = core_event();
        ev["involvedObject"]["name"] = json!(5);
        assert_eq!(
            EventStrategy::CORE.decode(ev).unwrap_err(),
            "Event in version \"v1\" cannot be handled as a Event: json: cannot unmarshal number \
             into Go struct field ObjectReference.involvedObject.name of type string"
        );
        let mut ev = core_event();
        ev["firstTimestamp"] = json!("2024-13-01T00:00:00Z");
        assert_eq!(
            EventStrategy::CORE.decode(ev).unwrap_err(),
            "Event in version \"v1\" cannot be handled as a Event: parsing time \
             \"2024-13-01T00:00:00Z\": month out of range"
        );
        let mut ev = core_event();
        ev["firstTimestamp"] = json!("2024-02-30T00:00:00Z");
        assert!(EventStrategy::CORE
            .decode(ev)
            .unwrap_err()
            .ends_with("parsing time \"2024-02-30T00:00:00Z\": day out of range"));
        let mut ev = core_event();
        ev["firstTimestamp"] = json!("yesterday");
        assert!(EventStrategy::CORE.decode(ev).unwrap_err().ends_with(
            "parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \
             \"yesterday\" as \"2006\""
        ));
        let mut ev = core_event();
        ev["count"] = json!(1.5);
        assert!(EventStrategy::CORE.decode(ev).unwrap_err().ends_with(
            "cannot unmarshal number 1.5 into Go struct field Event.count of type int32"
        ));
    }

    #[test]
    fn legacy_validation_of_core_events() {
        let s = EventStrategy::CORE;
        let ok = s.decode(core_event()).unwrap();
        assert!(s.validate(&cx(), &ok).is_empty());
        // The involved object's namespace must be the event's.
        let mut other = ok.clone();
        other["involvedObject"]["namespace"] = json!("team");
        assert_eq!(
            messages(&s.validate(&cx(), &other)),
            ["involvedObject.namespace: Invalid value: \"team\": does not match event.namespace"]
        );
        // Without one, only "default" (or no namespace) will do.
        let mut cluster = ok.clone();
        cluster["involvedObject"]["namespace"] = json!("");
        assert!(s.validate(&cx(), &cluster).is_empty());
        cluster["metadata"]["namespace"] = json!("team");
        assert_eq!(s.validate(&cx(), &cluster).len(), 1);
        // core/v1 stops there: any type, long messages, no reporting fields.
        let mut lax = ok.clone();
        lax["type"] = json!("Odd");
        lax["message"] = json!("x".repeat(5000));
        assert!(s.validate(&cx(), &lax).is_empty());
        // But a core event with eventTime is a "new" event and needs the new fields.
        let mut new_style = ok;
        new_style["eventTime"] = json!("2024-05-01T09:00:00.000000Z");
        new_style["message"] = json!("x".repeat(1025));
        assert_eq!(
            messages(&s.validate(&cx(), &new_style)),
            [
                "reportingController: Required value",
                "reportingController: Invalid value: \"\": name part must be non-empty",
                "reportingController: Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "reportingInstance: Required value",
                "action: Required value",
                "message: Invalid value: \"\": can have at most 1024 characters",
            ]
        );
    }

    #[test]
    fn strict_validation_of_events_k8s_io() {
        let s = EventStrategy::V1;
        let ok = s.decode(v1_event()).unwrap();
        assert!(
            s.validate(&cx(), &ok).is_empty(),
            "{:?}",
            s.validate(&cx(), &ok)
        );
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("eventTime");
        bad["type"] = json!("Odd");
        bad["note"] = json!("x".repeat(1025));
        bad["deprecatedCount"] = json!(4);
        bad["deprecatedSource"] = json!({"component": "old"});
        bad["series"]["count"] = json!(1);
        assert_eq!(
            messages(&s.validate(&cx(), &bad)),
            [
                "series.count: Invalid value: \"\": should be at least 2",
                "eventTime: Required value",
                "type: Invalid value: \"\": has invalid value: Odd",
                "count: Invalid value: \"\": needs to be unset",
                "source: Invalid value: \"\": needs to be unset",
            ]
        );
        let mut long = ok.clone();
        long["note"] = json!("x".repeat(1025));
        long["action"] = json!("");
        long["regarding"]["namespace"] = json!("");
        long["metadata"]["namespace"] = json!("team");
        assert_eq!(
            messages(&s.validate(&cx(), &long)),
            [
                "involvedObject.namespace: Invalid value: \"\": does not match event.namespace",
                "action: Required value",
                "message: Invalid value: \"\": can have at most 1024 characters",
            ]
        );
    }

    #[test]
    fn events_k8s_io_updates_keep_the_event_immutable() {
        let s = EventStrategy::V1;
        let old = s.decode(v1_event()).unwrap();
        let mut series = old.clone();
        series["series"] = json!({"count": 3, "lastObservedTime": "2024-05-01T09:10:00.000000Z"});
        series["metadata"]["labels"] = json!({"a": "b"});
        assert!(s.validate_update(&cx(), &series, &old).is_empty());
        let mut changed = old.clone();
        changed["note"] = json!("other");
        changed["regarding"]["name"] = json!("cm2");
        changed["eventTime"] = json!("2024-05-01T09:00:01.500000Z");
        changed.as_object_mut().unwrap().remove("related");
        assert_eq!(
            messages(&s.validate_update(&cx(), &changed, &old)),
            [
                "involvedObject: Invalid value: core.ObjectReference{Kind:\"ConfigMap\", Namespace:\"default\", Name:\"cm2\", UID:\"\", APIVersion:\"\", ResourceVersion:\"\", FieldPath:\"\"}: field is immutable",
                "message: Invalid value: \"other\": field is immutable",
                "eventTime: Invalid value: 2024-05-01 09:00:01.5 +0000 UTC: field is immutable",
                "related: Invalid value: \"null\": field is immutable",
            ]
        );
        // core/v1 updates only re-run the legacy checks.
        let c = EventStrategy::CORE;
        let old = c.decode(core_event()).unwrap();
        let mut new = old.clone();
        new["message"] = json!("changed");
        new["count"] = json!(4);
        assert!(c.validate_update(&cx(), &new, &old).is_empty());
    }

    #[test]
    fn selectable_fields_come_from_the_core_form() {
        let mut f = Vec::new();
        EventStrategy::CORE
            .selectable_fields(&EventStrategy::CORE.decode(core_event()).unwrap(), &mut f);
        let get = |f: &[(String, String)], k: &str| {
            f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        };
        assert_eq!(get(&f, "involvedObject.kind").as_deref(), Some("ConfigMap"));
        assert_eq!(get(&f, "involvedObject.uid").as_deref(), Some("u-1"));
        assert_eq!(get(&f, "involvedObject.fieldPath").as_deref(), Some("data"));
        assert_eq!(
            get(&f, "involvedObject.resourceVersion").as_deref(),
            Some("7")
        );
        assert_eq!(get(&f, "type").as_deref(), Some("Warning"));
        assert_eq!(get(&f, "reason").as_deref(), Some("Boom"));
        assert_eq!(get(&f, "source").as_deref(), Some("tester"));
        assert_eq!(get(&f, "reportingComponent").as_deref(), Some(""));
        // A new-style event has no source; `source` falls back to the reporting controller.
        let stored = EventStrategy::V1
            .version_to_storage(EventStrategy::V1.decode(v1_event()).unwrap())
            .unwrap();
        let mut f = Vec::new();
        EventStrategy::V1.selectable_fields(&stored, &mut f);
        assert_eq!(get(&f, "source").as_deref(), Some("example.com/ctrl"));
        assert_eq!(
            get(&f, "reportingComponent").as_deref(),
            Some("example.com/ctrl")
        );
        assert_eq!(get(&f, "involvedObject.name").as_deref(), Some("cm"));
    }

    #[test]
    fn times_parse_and_print_like_go() {
        let t = Instant::parse("2024-02-29T23:59:59.5-00:30", false).unwrap();
        assert_eq!(t.format(false), "2024-03-01T00:29:59Z");
        assert_eq!(t.format(true), "2024-03-01T00:29:59.500000Z");
        assert_eq!(
            Instant::go_string(Some(t)),
            "2024-03-01 00:29:59.5 +0000 UTC"
        );
        assert_eq!(Instant::go_string(None), "0001-01-01 00:00:00 +0000 UTC");
        assert!(Instant::parse("0001-01-01T00:00:00Z", false)
            .unwrap()
            .is_go_zero());
        assert_eq!(
            Instant::parse("1969-12-31T23:59:59Z", false).unwrap().secs,
            -1
        );
        // `.000000` takes exactly six digits; the seventh is left for the zone.
        assert_eq!(
            Instant::parse("2024-05-01T09:00:00.1234567Z", true).unwrap_err(),
            "parsing time \"2024-05-01T09:00:00.1234567Z\" as \"2006-01-02T15:04:05.000000Z07:00\": \
             cannot parse \"7Z\" as \"Z07:00\""
        );
        assert_eq!(
            Instant::parse("2024-05-01T09:00:00Zjunk", false).unwrap_err(),
            "parsing time \"2024-05-01T09:00:00Zjunk\": extra text: \"junk\""
        );
        assert_eq!(
            Instant::parse("2024-05-01 09:00:00Z", false).unwrap_err(),
            "parsing time \"2024-05-01 09:00:00Z\" as \"2006-01-02T15:04:05Z07:00\": cannot \
             parse \" 09:00:00Z\" as \"T\""
        );
        assert_eq!(
            Instant::parse("2024-05-01T09:00:00", false).unwrap_err(),
            "parsing time \"2024-05-01T09:00:00\" as \"2006-01-02T15:04:05Z07:00\": cannot \
             parse \"\" as \"Z07:00\""
        );
    }
}
