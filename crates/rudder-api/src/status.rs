//! API errors and their `metav1.Status` form, modelled on upstream
//! `k8s.io/apimachinery/pkg/api/errors`.
//!
//! Every failure the API server returns is an [`ApiError`]. Clients never see Rust error text:
//! they see the `Status` object built by [`ApiError::to_status`], and kubectl derives its output
//! from `reason`, `message` and `details` (e.g. `Error from server (NotFound): pods "nope" not
//! found`). The constructors therefore reproduce upstream's codes, reasons and message formats
//! exactly; each says which upstream function it mirrors.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, Status, StatusCause, StatusDetails,
};

use crate::field::ErrorList;

/// Upstream's `OptimisticLockErrorMsg`: the detail of the 409 Conflict returned when a write's
/// `resourceVersion` precondition is stale.
pub const OPTIMISTIC_LOCK_ERROR_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// `metav1.StatusReason`: the machine-readable reason of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusReason {
    /// `""`: no more specific reason.
    Unknown,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 409 on create.
    AlreadyExists,
    /// 409 on a stale update.
    Conflict,
    /// 410, deprecated in favour of [`StatusReason::Expired`].
    Gone,
    /// 422.
    Invalid,
    /// 500 that the client should retry.
    ServerTimeout,
    /// 500 when stored data cannot be decoded.
    StoreReadError,
    /// 504.
    Timeout,
    /// 429.
    TooManyRequests,
    /// 400.
    BadRequest,
    /// 405.
    MethodNotAllowed,
    /// 406.
    NotAcceptable,
    /// 413.
    RequestEntityTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 500.
    InternalError,
    /// 410: the requested resourceVersion is no longer available.
    Expired,
    /// 503.
    ServiceUnavailable,
}

impl StatusReason {
    /// The wire string (`NotFound`, `AlreadyExists`, ...; `""` for [`StatusReason::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            StatusReason::Unknown => "",
            StatusReason::Unauthorized => "Unauthorized",
            StatusReason::Forbidden => "Forbidden",
            StatusReason::NotFound => "NotFound",
            StatusReason::AlreadyExists => "AlreadyExists",
            StatusReason::Conflict => "Conflict",
            StatusReason::Gone => "Gone",
            StatusReason::Invalid => "Invalid",
            StatusReason::ServerTimeout => "ServerTimeout",
            StatusReason::StoreReadError => "StorageReadError",
            StatusReason::Timeout => "Timeout",
            StatusReason::TooManyRequests => "TooManyRequests",
            StatusReason::BadRequest => "BadRequest",
            StatusReason::MethodNotAllowed => "MethodNotAllowed",
            StatusReason::NotAcceptable => "NotAcceptable",
            StatusReason::RequestEntityTooLarge => "RequestEntityTooLarge",
            StatusReason::UnsupportedMediaType => "UnsupportedMediaType",
            StatusReason::InternalError => "InternalError",
            StatusReason::Expired => "Expired",
            StatusReason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// Parses a wire string; unknown strings map to [`StatusReason::Unknown`].
    pub fn parse(s: &str) -> StatusReason {
        const ALL: [StatusReason; 19] = [
            StatusReason::Unauthorized,
            StatusReason::Forbidden,
            StatusReason::NotFound,
            StatusReason::AlreadyExists,
            StatusReason::Conflict,
            StatusReason::Gone,
            StatusReason::Invalid,
            StatusReason::ServerTimeout,
            StatusReason::StoreReadError,
            StatusReason::Timeout,
            StatusReason::TooManyRequests,
            StatusReason::BadRequest,
            StatusReason::MethodNotAllowed,
            StatusReason::NotAcceptable,
            StatusReason::RequestEntityTooLarge,
            StatusReason::UnsupportedMediaType,
            StatusReason::InternalError,
            StatusReason::Expired,
            StatusReason::ServiceUnavailable,
        ];
        ALL.into_iter()
            .find(|r| r.as_str() == s)
            .unwrap_or(StatusReason::Unknown)
    }
}

impl fmt::Display for StatusReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Well-known `StatusCause.reason` values that are not field error types.
pub mod cause_type {
    /// The server response was not a Status (client side).
    pub const UNEXPECTED_SERVER_RESPONSE: &str = "UnexpectedServerResponse";
    /// A field-manager conflict in server-side apply.
    pub const FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";
    /// A requested minimum resourceVersion is newer than the server has.
    pub const RESOURCE_VERSION_TOO_LARGE: &str = "ResourceVersionTooLarge";
}

/// A group and a resource, e.g. `deployments.apps` (upstream `schema.GroupResource`).
///
/// Upstream messages name resources in this qualified form (`configmaps "x" not found`,
/// `deployments.apps "x" already exists`), and `details.kind` carries the resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, possibly with a subresource (`pods/status`).
    pub resource: String,
}

impl GroupResource {
    /// Builds a group/resource pair.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        GroupResource {
            group: group.into(),
            resource: resource.into(),
        }
    }

    /// True when both parts are empty (upstream `Empty()`).
    pub fn is_empty(&self) -> bool {
        self.group.is_empty() && self.resource.is_empty()
    }
}

impl fmt::Display for GroupResource {
    /// `resource` for the core group, `resource.group` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A group and a kind, e.g. `Deployment.apps` (upstream `schema.GroupKind`); used by
/// [`ApiError::invalid`], whose message names the kind rather than the resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKind {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

impl GroupKind {
    /// Builds a group/kind pair.
    pub fn new(group: impl Into<String>, kind: impl Into<String>) -> Self {
        GroupKind {
            group: group.into(),
            kind: kind.into(),
        }
    }
}

impl fmt::Display for GroupKind {
    /// `Kind` for the core group, `Kind.group` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// One entry of `details.causes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable cause type (`FieldValueRequired`, ...); serialized as `reason`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The field the cause refers to, e.g. `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    fn to_wire(&self) -> StatusCause {
        StatusCause {
            reason: non_empty(&self.reason),
            message: non_empty(&self.message),
            field: non_empty(&self.field),
        }
    }

    fn from_wire(c: &StatusCause) -> Self {
        Cause {
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
            field: c.field.clone().unwrap_or_default(),
        }
    }
}

/// `details` of a Status: which object the error is about, why, and when to retry.
///
/// Empty strings and zero stand for "absent", exactly as Go's `omitempty` treats them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    /// Object name.
    pub name: String,
    /// API group of the object.
    pub group: String,
    /// The resource (for most errors) or kind (for `Invalid`) of the object.
    pub kind: String,
    /// Object UID.
    pub uid: String,
    /// Individual causes, e.g. one per invalid field.
    pub causes: Vec<Cause>,
    /// Suggested client delay in seconds; 0 means none.
    pub retry_after_seconds: i32,
}

impl ErrorDetails {
    fn for_resource(gr: &GroupResource, name: &str) -> Self {
        ErrorDetails {
            group: gr.group.clone(),
            kind: gr.resource.clone(),
            name: name.to_owned(),
            ..ErrorDetails::default()
        }
    }

    fn to_wire(&self) -> StatusDetails {
        StatusDetails {
            causes: (!self.causes.is_empty())
                .then(|| self.causes.iter().map(Cause::to_wire).collect()),
            group: non_empty(&self.group),
            kind: non_empty(&self.kind),
            name: non_empty(&self.name),
            retry_after_seconds: (self.retry_after_seconds != 0)
                .then_some(self.retry_after_seconds),
            uid: non_empty(&self.uid),
        }
    }

    fn from_wire(d: &StatusDetails) -> Self {
        ErrorDetails {
            name: d.name.clone().unwrap_or_default(),
            group: d.group.clone().unwrap_or_default(),
            kind: d.kind.clone().unwrap_or_default(),
            uid: d.uid.clone().unwrap_or_default(),
            causes: d
                .causes
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(Cause::from_wire)
                .collect(),
            retry_after_seconds: d.retry_after_seconds.unwrap_or_default(),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A failed API request: HTTP code, reason, message and optional details.
///
/// `Display` is the message, as upstream's `StatusError.Error()` is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason.
    pub reason: StatusReason,
    /// Human-readable message; kubectl prints it verbatim.
    pub message: String,
    /// Structured details; `None` serializes as no `details` key, `Some(default)` as `{}`,
    /// matching upstream's nil versus empty pointer.
    pub details: Option<Box<ErrorDetails>>,
    /// `metadata.continue` of the Status: set only on the 410 that lets a paginated list resume
    /// inconsistently (upstream `handleCompactedErrorForPaging`).
    pub continue_token: Option<String>,
}

impl ApiError {
    /// Any code, reason and message, with no details. For the rare failure no named
    /// constructor covers.
    pub fn new_generic(code: u16, reason: StatusReason, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    /// Attaches details (builder style).
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// 404 `NotFound`: `<resource> "<name>" not found` (upstream `NewNotFound`).
    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        ApiError::new_generic(
            404,
            StatusReason::NotFound,
            format!("{gr} {} not found", crate::gofmt::quote(name)),
        )
        .with_details(ErrorDetails::for_resource(gr, name))
    }

    /// 409 `AlreadyExists`: `<resource> "<name>" already exists` (upstream `NewAlreadyExists`).
    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        ApiError::new_generic(
            409,
            StatusReason::AlreadyExists,
            format!("{gr} {} already exists", crate::gofmt::quote(name)),
        )
        .with_details(ErrorDetails::for_resource(gr, name))
    }

    /// 409 `AlreadyExists` after generateName retries ran out (upstream
    /// `NewGenerateNameConflict`).
    pub fn generate_name_conflict(
        gr: &GroupResource,
        name: &str,
        retry_after_seconds: i32,
    ) -> Self {
        let mut details = ErrorDetails::for_resource(gr, name);
        details.retry_after_seconds = retry_after_seconds;
        ApiError::new_generic(
            409,
            StatusReason::AlreadyExists,
            format!(
                "{gr} {} already exists, the server was not able to generate a unique name for the object",
                crate::gofmt::quote(name)
            ),
        )
        .with_details(details)
    }

    /// 401 `Unauthorized`; an empty reason becomes `not authorized` (upstream
    /// `NewUnauthorized`).
    pub fn unauthorized(reason: &str) -> Self {
        let message = if reason.is_empty() {
            "not authorized"
        } else {
            reason
        };
        ApiError::new_generic(401, StatusReason::Unauthorized, message)
    }

    /// 403 `Forbidden` (upstream `NewForbidden`): `forbidden: <err>` without a resource,
    /// `<resource> is forbidden: <err>` without a name, `<resource> "<name>" is forbidden: <err>`
    /// otherwise.
    pub fn forbidden(gr: &GroupResource, name: &str, err: impl fmt::Display) -> Self {
        let message = if gr.is_empty() {
            format!("forbidden: {err}")
        } else if name.is_empty() {
            format!("{gr} is forbidden: {err}")
        } else {
            format!("{gr} {} is forbidden: {err}", crate::gofmt::quote(name))
        };
        ApiError::new_generic(403, StatusReason::Forbidden, message)
            .with_details(ErrorDetails::for_resource(gr, name))
    }

    /// 409 `Conflict`: `Operation cannot be fulfilled on <resource> "<name>": <err>` (upstream
    /// `NewConflict`).
    pub fn conflict(gr: &GroupResource, name: &str, err: impl fmt::Display) -> Self {
        ApiError::new_generic(
            409,
            StatusReason::Conflict,
            format!(
                "Operation cannot be fulfilled on {gr} {}: {err}",
                crate::gofmt::quote(name)
            ),
        )
        .with_details(ErrorDetails::for_resource(gr, name))
    }

    /// The 409 for a stale `resourceVersion` precondition: [`ApiError::conflict`] with
    /// [`OPTIMISTIC_LOCK_ERROR_MSG`], as the generic registry store returns it.
    pub fn optimistic_lock_conflict(gr: &GroupResource, name: &str) -> Self {
        ApiError::conflict(gr, name, OPTIMISTIC_LOCK_ERROR_MSG)
    }

    /// 409 `Conflict` for server-side apply, carrying one cause per conflicting field (upstream
    /// `NewApplyConflict`).
    pub fn apply_conflict(causes: Vec<Cause>, message: impl Into<String>) -> Self {
        ApiError::new_generic(409, StatusReason::Conflict, message).with_details(ErrorDetails {
            causes,
            ..ErrorDetails::default()
        })
    }

    /// 410 `Gone` (upstream `NewGone`, deprecated upstream in favour of
    /// [`ApiError::resource_expired`]).
    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new_generic(410, StatusReason::Gone, message)
    }

    /// 410 `Expired` (upstream `NewResourceExpired`): the requested resourceVersion or continue
    /// token is no longer available.
    pub fn resource_expired(message: impl Into<String>) -> Self {
        ApiError::new_generic(410, StatusReason::Expired, message)
    }

    /// The watch cache's 410: `too old resource version: <requested> (<oldest available>)`.
    pub fn too_old_resource_version(requested: i64, oldest: i64) -> Self {
        ApiError::resource_expired(format!("too old resource version: {requested} ({oldest})"))
    }

    /// 422 `Invalid` (upstream `NewInvalid`): `<Kind> "<name>" is invalid: <aggregate>` with one
    /// cause per field error; `details.kind` is the kind, not the resource.
    pub fn invalid(gk: &GroupKind, name: &str, errs: &ErrorList) -> Self {
        let quoted = crate::gofmt::quote(name);
        let message = match errs.aggregate_message() {
            None => format!("{gk} {quoted} is invalid"),
            Some(agg) => format!("{gk} {quoted} is invalid: {agg}"),
        };
        let causes = errs
            .iter()
            .map(|e| Cause {
                reason: e.error_type.as_str().to_owned(),
                message: e.body(),
                field: e.field.clone(),
            })
            .collect();
        ApiError::new_generic(422, StatusReason::Invalid, message).with_details(ErrorDetails {
            group: gk.group.clone(),
            kind: gk.kind.clone(),
            name: name.to_owned(),
            causes,
            ..ErrorDetails::default()
        })
    }

    /// 400 `BadRequest` with the given message (upstream `NewBadRequest`).
    pub fn bad_request(reason: impl Into<String>) -> Self {
        ApiError::new_generic(400, StatusReason::BadRequest, reason)
    }

    /// 429 `TooManyRequests` with a retry hint (upstream `NewTooManyRequests`); kubectl retries
    /// these.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Self {
        ApiError::new_generic(429, StatusReason::TooManyRequests, message).with_details(
            ErrorDetails {
                retry_after_seconds,
                ..ErrorDetails::default()
            },
        )
    }

    /// 429 `TooManyRequests`: `Too many requests: <message>`, no details (upstream
    /// `NewTooManyRequestsError`, used by the max-in-flight filter).
    pub fn too_many_requests_error(message: &str) -> Self {
        ApiError::new_generic(
            429,
            StatusReason::TooManyRequests,
            format!("Too many requests: {message}"),
        )
    }

    /// 503 `ServiceUnavailable` (upstream `NewServiceUnavailable`).
    pub fn service_unavailable(reason: impl Into<String>) -> Self {
        ApiError::new_generic(503, StatusReason::ServiceUnavailable, reason)
    }

    /// 405 `MethodNotAllowed`: `<action> is not supported on resources of kind "<resource>"`
    /// (upstream `NewMethodNotSupported`).
    pub fn method_not_supported(gr: &GroupResource, action: &str) -> Self {
        ApiError::new_generic(
            405,
            StatusReason::MethodNotAllowed,
            format!(
                "{action} is not supported on resources of kind {}",
                crate::gofmt::quote(&gr.to_string())
            ),
        )
        .with_details(ErrorDetails::for_resource(gr, ""))
    }

    /// 500 `ServerTimeout`: the operation could not complete and should be retried (upstream
    /// `NewServerTimeout`); `details.name` carries the operation, as upstream does.
    pub fn server_timeout(gr: &GroupResource, operation: &str, retry_after_seconds: i32) -> Self {
        let mut details = ErrorDetails::for_resource(gr, operation);
        details.retry_after_seconds = retry_after_seconds;
        ApiError::new_generic(
            500,
            StatusReason::ServerTimeout,
            format!(
                "The {operation} operation against {gr} could not be completed at this time, please try again."
            ),
        )
        .with_details(details)
    }

    /// 500 `InternalError`: `Internal error occurred: <err>`, with the error as the only cause
    /// (upstream `NewInternalError`).
    pub fn internal_error(err: impl fmt::Display) -> Self {
        let text = err.to_string();
        ApiError::new_generic(
            500,
            StatusReason::InternalError,
            format!("Internal error occurred: {text}"),
        )
        .with_details(ErrorDetails {
            causes: vec![Cause {
                message: text,
                ..Cause::default()
            }],
            ..ErrorDetails::default()
        })
    }

    /// 504 `Timeout`: `Timeout: <message>` (upstream `NewTimeoutError`); the operation may still
    /// complete.
    pub fn timeout(message: &str, retry_after_seconds: i32) -> Self {
        ApiError::new_generic(504, StatusReason::Timeout, format!("Timeout: {message}"))
            .with_details(ErrorDetails {
                retry_after_seconds,
                ..ErrorDetails::default()
            })
    }

    /// 504 for a list or watch asking for a resourceVersion newer than the store has (upstream
    /// `storage.NewTooLargeResourceVersionError`); clients recognise it by the
    /// `ResourceVersionTooLarge` cause and retry.
    pub fn too_large_resource_version(
        minimum: i64,
        current: i64,
        retry_after_seconds: i32,
    ) -> Self {
        let mut err = ApiError::timeout(
            &format!("Too large resource version: {minimum}, current: {current}"),
            retry_after_seconds,
        );
        if let Some(d) = err.details.as_mut() {
            d.causes = vec![Cause {
                reason: cause_type::RESOURCE_VERSION_TOO_LARGE.to_owned(),
                message: "Too large resource version".to_owned(),
                field: String::new(),
            }];
        }
        err
    }

    /// 413 `RequestEntityTooLarge`: `Request entity too large: <message>` (upstream
    /// `NewRequestEntityTooLargeError`).
    pub fn request_entity_too_large(message: &str) -> Self {
        ApiError::new_generic(
            413,
            StatusReason::RequestEntityTooLarge,
            format!("Request entity too large: {message}"),
        )
    }

    /// 415 `UnsupportedMediaType` listing the accepted types (upstream apiserver
    /// `negotiation.NewUnsupportedMediaTypeError`).
    pub fn unsupported_media_type<S: AsRef<str>>(accepted: &[S]) -> Self {
        ApiError::new_generic(
            415,
            StatusReason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                join(accepted)
            ),
        )
    }

    /// 406 `NotAcceptable` listing the types the server can produce (upstream apiserver
    /// `negotiation.NewNotAcceptableError`).
    pub fn not_acceptable<S: AsRef<str>>(accepted: &[S]) -> Self {
        ApiError::new_generic(
            406,
            StatusReason::NotAcceptable,
            format!(
                "only the following media types are accepted: {}",
                join(accepted)
            ),
        )
    }

    /// The suggested retry delay: always for `ServerTimeout`, otherwise when positive (upstream
    /// `SuggestsClientDelay`).
    pub fn retry_after_seconds(&self) -> Option<i32> {
        let d = self.details.as_deref()?;
        if self.reason == StatusReason::ServerTimeout || d.retry_after_seconds > 0 {
            Some(d.retry_after_seconds)
        } else {
            None
        }
    }

    /// True for 404 `NotFound` (or an unknown reason with code 404), like upstream `IsNotFound`.
    pub fn is_not_found(&self) -> bool {
        self.is(StatusReason::NotFound, 404)
    }

    /// True for `AlreadyExists`.
    pub fn is_already_exists(&self) -> bool {
        self.reason == StatusReason::AlreadyExists
    }

    /// True for `Conflict` (or an unknown reason with code 409).
    pub fn is_conflict(&self) -> bool {
        self.is(StatusReason::Conflict, 409)
    }

    /// True for `Invalid` (or an unknown reason with code 422).
    pub fn is_invalid(&self) -> bool {
        self.is(StatusReason::Invalid, 422)
    }

    /// True for `Expired` (the reason for a too-old resourceVersion).
    pub fn is_resource_expired(&self) -> bool {
        self.reason == StatusReason::Expired
    }

    /// True for `Gone` (or an unknown reason with code 410).
    pub fn is_gone(&self) -> bool {
        self.is(StatusReason::Gone, 410)
    }

    fn is(&self, reason: StatusReason, code: u16) -> bool {
        self.reason == reason || (self.reason == StatusReason::Unknown && self.code == code)
    }

    /// The `metav1.Status` object to send to the client: kind `Status`, apiVersion `v1`,
    /// status `Failure`, exactly the fields upstream's `StatusError.ErrStatus` would serialize.
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            details: self.details.as_deref().map(ErrorDetails::to_wire),
            message: non_empty(&self.message),
            metadata: ListMeta {
                continue_: self.continue_token.clone(),
                ..ListMeta::default()
            },
            reason: non_empty(self.reason.as_str()),
            status: Some("Failure".to_owned()),
        }
    }

    /// Rebuilds an error from a Status received from a server (the inverse of
    /// [`ApiError::to_status`] for failures). A missing or out-of-range code becomes 500.
    pub fn from_status(status: &Status) -> Self {
        ApiError {
            code: status
                .code
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500),
            reason: StatusReason::parse(status.reason.as_deref().unwrap_or_default()),
            message: status.message.clone().unwrap_or_default(),
            details: status
                .details
                .as_ref()
                .map(|d| Box::new(ErrorDetails::from_wire(d))),
            continue_token: status.metadata.continue_.clone(),
        }
    }

    /// The Status as JSON, ready to be written as a response body.
    pub fn to_json(&self) -> serde_json::Value {
        // Serializing k8s-openapi's Status cannot fail (it is plain data); fall back to a
        // minimal hand-built body rather than panicking if that ever changes.
        serde_json::to_value(self.to_status()).unwrap_or_else(|_| {
            serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": self.message,
                "reason": self.reason.as_str(),
                "code": self.code,
            })
        })
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.to_status()
    }
}

fn join<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| s.as_ref())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::{FieldError, Path};
    use serde_json::json;

    fn core(resource: &str) -> GroupResource {
        GroupResource::new("", resource)
    }

    #[test]
    fn not_found_matches_upstream_json() {
        let e = ApiError::not_found(&core("pods"), "nope");
        assert_eq!(e.to_string(), r#"pods "nope" not found"#);
        assert!(e.is_not_found());
        // The exact body upstream kube-apiserver returns for `kubectl get pod nope`.
        assert_eq!(
            e.to_json(),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "pods \"nope\" not found",
                "reason": "NotFound",
                "details": {"name": "nope", "kind": "pods"},
                "code": 404
            })
        );
    }

    #[test]
    fn qualified_resource_names() {
        assert_eq!(
            ApiError::already_exists(&GroupResource::new("apps", "deployments"), "x").to_string(),
            r#"deployments.apps "x" already exists"#
        );
        assert_eq!(
            ApiError::already_exists(&core("configmaps"), "cm2").to_string(),
            r#"configmaps "cm2" already exists"#
        );
        let e = ApiError::not_found(&GroupResource::new("apps", "deployments"), "web");
        let s = e.to_status();
        let d = s.details.unwrap_or_default();
        assert_eq!(d.group.as_deref(), Some("apps"));
        assert_eq!(d.kind.as_deref(), Some("deployments"));
        assert_eq!(s.code, Some(404));
    }

    #[test]
    fn conflict_messages() {
        let e = ApiError::optimistic_lock_conflict(&core("configmaps"), "x");
        assert_eq!(e.code, 409);
        assert_eq!(e.reason, StatusReason::Conflict);
        assert_eq!(
            e.message,
            "Operation cannot be fulfilled on configmaps \"x\": the object has been modified; \
             please apply your changes to the latest version and try again"
        );
        assert!(e.is_conflict());
        let g = ApiError::generate_name_conflict(&core("pods"), "web-abcde", 1);
        assert_eq!(
            g.message,
            "pods \"web-abcde\" already exists, the server was not able to generate a unique name for the object"
        );
        assert_eq!(g.reason, StatusReason::AlreadyExists);
        assert_eq!(g.retry_after_seconds(), Some(1));
    }

    #[test]
    fn invalid_single_and_multiple_causes() {
        let gk = GroupKind::new("", "Pod");
        let errs: ErrorList = vec![FieldError::required(
            &Path::new("spec")
                .child("containers")
                .index(0)
                .child("image"),
            "",
        )]
        .into();
        let e = ApiError::invalid(&gk, "invalid-x", &errs);
        assert_eq!(
            e.message,
            r#"Pod "invalid-x" is invalid: spec.containers[0].image: Required value"#
        );
        assert_eq!(
            e.to_json(),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Pod \"invalid-x\" is invalid: spec.containers[0].image: Required value",
                "reason": "Invalid",
                "details": {
                    "name": "invalid-x",
                    "kind": "Pod",
                    "causes": [{
                        "reason": "FieldValueRequired",
                        "message": "Required value",
                        "field": "spec.containers[0].image"
                    }]
                },
                "code": 422
            })
        );

        let mut two = errs.clone();
        two.push(FieldError::invalid(
            &Path::new("metadata").child("name"),
            "Foo",
            "bad name",
        ));
        let e = ApiError::invalid(&GroupKind::new("apps", "Deployment"), "Foo", &two);
        assert_eq!(
            e.message,
            r#"Deployment.apps "Foo" is invalid: [spec.containers[0].image: Required value, metadata.name: Invalid value: "Foo": bad name]"#
        );
        let d = e.details.clone().unwrap_or_default();
        assert_eq!(d.group, "apps");
        assert_eq!(d.causes.len(), 2);

        let none = ApiError::invalid(&gk, "x", &ErrorList::new());
        assert_eq!(none.message, r#"Pod "x" is invalid"#);
    }

    #[test]
    fn forbidden_message_forms() {
        assert_eq!(
            ApiError::forbidden(
                &GroupResource::default(),
                "",
                "User \"bob\" cannot get path \"/\""
            )
            .message,
            "forbidden: User \"bob\" cannot get path \"/\""
        );
        assert_eq!(
            ApiError::forbidden(
                &core("pods"),
                "",
                "User \"bob\" cannot list resource \"pods\""
            )
            .message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\""
        );
        assert_eq!(
            ApiError::forbidden(&core("pods"), "p", "nope").message,
            "pods \"p\" is forbidden: nope"
        );
        assert_eq!(ApiError::forbidden(&core("pods"), "p", "x").code, 403);
    }

    #[test]
    fn simple_constructors() {
        let u = ApiError::unauthorized("");
        assert_eq!((u.code, u.message.as_str()), (401, "not authorized"));
        assert_eq!(u.to_json()["reason"], "Unauthorized");
        assert!(u.to_json().get("details").is_none());

        let b = ApiError::bad_request("bad");
        assert_eq!((b.code, b.reason.as_str()), (400, "BadRequest"));

        let m = ApiError::method_not_supported(&core("bindings"), "list");
        assert_eq!(m.code, 405);
        assert_eq!(
            m.message,
            r#"list is not supported on resources of kind "bindings""#
        );
        assert_eq!(m.to_json()["details"], json!({"kind": "bindings"}));

        let g = ApiError::too_old_resource_version(5, 10);
        assert_eq!(g.code, 410);
        assert_eq!(g.reason, StatusReason::Expired);
        assert_eq!(g.message, "too old resource version: 5 (10)");
        assert!(g.is_resource_expired());
        assert_eq!(ApiError::gone("x").reason.as_str(), "Gone");

        let t = ApiError::timeout("request did not complete within requested timeout", 0);
        assert_eq!(t.code, 504);
        assert_eq!(
            t.message,
            "Timeout: request did not complete within requested timeout"
        );
        // Upstream allocates details even with no retry hint: `"details": {}`.
        assert_eq!(t.to_json()["details"], json!({}));

        let i = ApiError::internal_error("boom");
        assert_eq!(i.message, "Internal error occurred: boom");
        assert_eq!(
            i.to_json()["details"],
            json!({"causes": [{"message": "boom"}]})
        );

        let s = ApiError::service_unavailable("apiserver is shutting down");
        assert_eq!((s.code, s.reason.as_str()), (503, "ServiceUnavailable"));

        let st = ApiError::server_timeout(&core("pods"), "list", 2);
        assert_eq!(
            st.message,
            "The list operation against pods could not be completed at this time, please try again."
        );
        assert_eq!(st.code, 500);
        assert_eq!(
            st.to_json()["details"],
            json!({"name": "list", "kind": "pods", "retryAfterSeconds": 2})
        );

        let r = ApiError::request_entity_too_large("limit is 3145728");
        assert_eq!(
            (r.code, r.message.as_str()),
            (413, "Request entity too large: limit is 3145728")
        );

        let tm = ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            10,
        );
        assert_eq!(tm.code, 429);
        assert_eq!(tm.to_json()["details"], json!({"retryAfterSeconds": 10}));
        let tme = ApiError::too_many_requests_error("please try again later");
        assert_eq!(tme.message, "Too many requests: please try again later");

        let u = ApiError::unsupported_media_type(&["application/json", "application/yaml"]);
        assert_eq!(u.code, 415);
        assert_eq!(
            u.message,
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"
        );
        let n = ApiError::not_acceptable(&["application/json"]);
        assert_eq!(
            (n.code, n.reason.as_str(), n.message.as_str()),
            (
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json"
            )
        );

        let big = ApiError::too_large_resource_version(100, 50, 1);
        assert_eq!(big.code, 504);
        assert_eq!(
            big.message,
            "Timeout: Too large resource version: 100, current: 50"
        );
        assert_eq!(
            big.to_json()["details"],
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1})
        );

        let generic = ApiError::new_generic(418, StatusReason::Unknown, "teapot");
        assert!(generic.to_json().get("reason").is_none());
        assert_eq!(generic.to_json()["code"], 418);
    }

    #[test]
    fn status_round_trip() {
        let mut e = ApiError::invalid(
            &GroupKind::new("apps", "Deployment"),
            "d",
            &FieldError::required(&Path::new("spec"), "").into(),
        );
        e.continue_token = Some("tok".into());
        let back = ApiError::from_status(&e.to_status());
        assert_eq!(back, e);
        let json = serde_json::to_string(&e.to_status()).unwrap_or_default();
        let parsed: Status = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(ApiError::from_status(&parsed), e);
        assert_eq!(StatusReason::parse("Bogus"), StatusReason::Unknown);
        assert_eq!(StatusReason::parse("Expired"), StatusReason::Expired);
    }

    #[test]
    fn is_helpers_fall_back_to_code_for_unknown_reasons() {
        let e = ApiError::new_generic(404, StatusReason::Unknown, "x");
        assert!(e.is_not_found());
        let e = ApiError::new_generic(404, StatusReason::BadRequest, "x");
        assert!(!e.is_not_found());
        assert!(ApiError::new_generic(422, StatusReason::Unknown, "").is_invalid());
        assert!(ApiError::new_generic(410, StatusReason::Unknown, "").is_gone());
    }
}
