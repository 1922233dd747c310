//! Mapping etcd client errors onto [`StoreError`].
//!
//! etcd reports most failures as gRPC statuses whose code alone is ambiguous (compaction and
//! future revisions are both `OutOfRange`), so the mapping looks at etcd's stable error messages
//! first and falls back to the status code.

use rudder_store::StoreError;

/// gRPC status codes, by number. The numbers are fixed by the gRPC specification; naming
/// `tonic::Code` instead would need a direct tonic dependency pinned to exactly the version
/// etcd-client uses.
mod code {
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const ABORTED: i32 = 10;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// What an etcd failure means to the store, before the caller adds the revisions it knows.
#[derive(Debug)]
pub(crate) enum EtcdFailure {
    /// "mvcc: required revision has been compacted".
    Compacted,
    /// "mvcc: required revision is a future revision".
    FutureRevision,
    /// "etcdserver: requested lease not found": a cached lease expired or was revoked.
    LeaseNotFound,
    /// No connection to the member could be made, so the request never left.
    Unsent(String),
    Other(StoreError),
}

impl EtcdFailure {
    /// The store error for a failure that carries no revision context. Callers that know the
    /// requested revision should build `Compacted` and `FutureRevision` themselves.
    pub(crate) fn into_store_error(self) -> StoreError {
        match self {
            EtcdFailure::Compacted => StoreError::Compacted {
                requested: 0,
                compacted: 0,
            },
            EtcdFailure::FutureRevision => StoreError::FutureRevision {
                requested: 0,
                current: 0,
            },
            EtcdFailure::LeaseNotFound => {
                StoreError::Internal("etcd: requested lease not found".into())
            }
            EtcdFailure::Unsent(m) => StoreError::Unavailable(m),
            EtcdFailure::Other(e) => e,
        }
    }
}

pub(crate) fn classify(err: etcd_client::Error) -> EtcdFailure {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => classify_status(status.code() as i32, status.message()),
        // Transport and I/O failures: the endpoint is unreachable or the connection broke.
        E::TransportError(e) => EtcdFailure::Other(StoreError::Unavailable(e.to_string())),
        E::IoError(e) => EtcdFailure::Other(StoreError::Unavailable(e.to_string())),
        // The watch request channel closed: the watch stream is gone.
        E::WatchError(e) => EtcdFailure::Other(StoreError::Unavailable(e)),
        E::InvalidArgs(e) => EtcdFailure::Other(StoreError::InvalidRequest(e)),
        E::InvalidUri(e) => EtcdFailure::Other(StoreError::InvalidRequest(e.to_string())),
        E::Utf8Error(e) => EtcdFailure::Other(StoreError::Internal(e.to_string())),
        other => EtcdFailure::Other(StoreError::Internal(other.to_string())),
    }
}

fn classify_status(code: i32, message: &str) -> EtcdFailure {
    if message.contains("required revision has been compacted") {
        return EtcdFailure::Compacted;
    }
    if message.contains("required revision is a future revision") {
        return EtcdFailure::FutureRevision;
    }
    if message.contains("requested lease not found") {
        return EtcdFailure::LeaseNotFound;
    }
    let text = format!("etcd: {message}");
    if code == code::UNAVAILABLE && never_sent(message) {
        return EtcdFailure::Unsent(text);
    }
    EtcdFailure::Other(match code {
        // Unavailable covers "no leader", "leader changed", "request timed out" and a broken
        // connection; ResourceExhausted covers "too many requests". All are worth retrying.
        code::UNAVAILABLE
        | code::DEADLINE_EXCEEDED
        | code::CANCELLED
        | code::ABORTED
        | code::RESOURCE_EXHAUSTED => StoreError::Unavailable(text),
        // tonic reports a connection that broke mid-request (an HTTP/2 or socket error) as
        // Unknown; etcd itself uses Unknown only for errors it has no mapping for.
        code::UNKNOWN if looks_like_transport(message) => StoreError::Unavailable(text),
        code::INVALID_ARGUMENT => StoreError::InvalidRequest(text),
        // NotFound (other than leases), PermissionDenied, Unauthenticated and the rest: a
        // retry will not help and the API server can only report it.
        _ => StoreError::Internal(text),
    })
}

/// Whether tonic failed to open a connection (hyper's "tcp connect error", "tcp open error",
/// "dns error"), which proves that the request was not sent.
fn never_sent(message: &str) -> bool {
    ["connect error", "open error", "dns error"]
        .iter()
        .any(|s| message.contains(s))
}

fn looks_like_transport(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "transport",
        "h2 protocol",
        "connection",
        "broken pipe",
        "stream",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// The error that ends a watch stream whose gRPC stream failed. Anything that broke the stream
/// itself is resumable by watching again; only authorization failures are not.
pub(crate) fn watch_stream_error(err: etcd_client::Error) -> StoreError {
    if let etcd_client::Error::GRpcStatus(status) = &err {
        let code = status.code() as i32;
        if code == code::PERMISSION_DENIED || code == code::UNAUTHENTICATED {
            return StoreError::Internal(format!("etcd: {}", status.message()));
        }
    }
    match classify(err) {
        EtcdFailure::Unsent(m) | EtcdFailure::Other(StoreError::Unavailable(m)) => {
            StoreError::Unavailable(m)
        }
        EtcdFailure::Other(other) => StoreError::Unavailable(other.to_string()),
        other => StoreError::Unavailable(other.into_store_error().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_messages_win_over_codes() {
        assert!(matches!(
            classify_status(11, "etcdserver: mvcc: required revision has been compacted"),
            EtcdFailure::Compacted
        ));
        assert!(matches!(
            classify_status(
                11,
                "etcdserver: mvcc: required revision is a future revision"
            ),
            EtcdFailure::FutureRevision
        ));
        assert!(matches!(
            classify_status(5, "etcdserver: requested lease not found"),
            EtcdFailure::LeaseNotFound
        ));
    }

    #[test]
    fn codes_map_to_store_errors() {
        assert!(matches!(
            classify_status(14, "etcdserver: no leader"),
            EtcdFailure::Other(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify_status(14, "tcp connect error"),
            EtcdFailure::Unsent(_)
        ));
        assert!(matches!(
            classify_status(3, "etcdserver: key is not provided"),
            EtcdFailure::Other(StoreError::InvalidRequest(_))
        ));
        assert!(matches!(
            classify_status(2, "h2 protocol error: error reading a body from connection"),
            EtcdFailure::Other(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            classify_status(2, "something odd"),
            EtcdFailure::Other(StoreError::Internal(_))
        ));
    }
}
