//! The cluster state store: a bytes-level MVCC key-value interface with etcd semantics.
//!
//! Everything above this crate (the API server's generic registry and its watch cache) sees only
//! [`Store`]. Backends (`rudder-store-redb`, the embedded default, and `rudder-store-etcd`) must
//! behave identically; the [`testkit`] conformance suite (feature `testkit`) is how that is checked.
//!
//! Semantics follow etcd v3, because kube-apiserver's storage layer is built on them:
//! - one cluster-wide revision, bumped by every successful write (it becomes `resourceVersion`);
//! - every key carries its `create_revision` and `mod_revision`;
//! - conditional writes compare against `mod_revision` (compare-and-swap);
//! - a watch from revision `r` replays every later change, in order, with the previous value;
//! - history older than the compaction point is gone, and asking for it fails with
//!   [`StoreError::Compacted`].

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

#[cfg(feature = "testkit")]
pub mod testkit;

/// A cluster-wide revision. Revision 1 is the empty store; the first write gets revision 2,
/// as in etcd.
pub type Revision = i64;

/// One key with its value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// A change observed by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or updated. `prev` is the value before this write, if any.
    Put {
        kv: KeyValue,
        prev: Option<KeyValue>,
    },
    /// The key was deleted (explicitly or by TTL expiry) at `revision`. `prev` is the last value.
    Delete { revision: Revision, prev: KeyValue },
}

impl WatchEvent {
    /// The revision at which the change happened.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv, .. } => &kv.key,
            WatchEvent::Delete { prev, .. } => &prev.key,
        }
    }
}

/// A stream of changes, in revision order. It ends after yielding an error; every error is
/// recoverable by watching again from the last revision seen (or relisting after `Compacted`).
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// A paginated read over the keys that start with `prefix`.
#[derive(Clone, Debug, Default)]
pub struct RangeRequest {
    pub prefix: String,
    /// Return keys strictly after this one (the continue key of the previous page).
    pub start_after: Option<String>,
    /// At most this many items; 0 means no limit.
    pub limit: usize,
    /// Read at this revision; `None` means the latest. Pages of one list pass the revision the
    /// first page returned, so the whole list is one consistent snapshot.
    pub revision: Option<Revision>,
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, Default)]
pub struct RangeResponse {
    /// Items in key order.
    pub kvs: Vec<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
    /// Whether more keys remain after the last item returned.
    pub more: bool,
}

/// Options for a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Delete the key automatically this long after the write (Events live 1 hour upstream).
    pub ttl: Option<Duration>,
}

impl WriteOptions {
    pub fn ttl(ttl: Duration) -> Self {
        WriteOptions { ttl: Some(ttl) }
    }
}

/// Errors of the store. The API server maps them onto `Status` reasons.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// `create` found the key present.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound { key: String },
    /// The key's `mod_revision` was not the expected one. `current` is what is there now.
    #[error("revision conflict on key {key:?}: expected {expected}")]
    Conflict {
        key: String,
        expected: Revision,
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision is older than the compaction point.
    #[error("required revision {requested} has been compacted (compacted at {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("required revision {requested} is a future revision (current {current})")]
    FutureRevision {
        requested: Revision,
        current: Revision,
    },
    /// A watcher fell too far behind and was ended; watch again from the last revision seen.
    #[error("watcher fell behind and was closed; resume from the last revision seen")]
    WatcherLagged,
    /// The store is shutting down or its connection was lost.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// An invalid request (for example an empty key).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Anything else from the backend.
    #[error("storage backend error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether watching again (from the last revision seen) can recover from this error without a relist.
    pub fn is_resumable(&self) -> bool {
        matches!(self, StoreError::WatcherLagged | StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store interface. All methods are cancellation-safe in the sense that a dropped future
/// either completed its write or did not start it; a write that was acknowledged is durable.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and benchmarks ("redb", "etcd").
    fn backend_name(&self) -> &'static str;

    /// Read one key, at the latest revision or at `revision`. Returns the key (if present at that
    /// revision) and the revision the read was served at.
    async fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)>;

    /// Read a page of keys under a prefix.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Count the keys under a prefix at the latest revision.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Create `key` if it is absent. Returns the new revision; `AlreadyExists` otherwise.
    async fn create(&self, key: &str, value: Bytes, opts: WriteOptions) -> Result<Revision>;

    /// Replace `key` if its `mod_revision` equals `expected`. Returns the new revision;
    /// `Conflict` (with the current value) or `NotFound` otherwise.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        opts: WriteOptions,
    ) -> Result<Revision>;

    /// Delete `key`, if `expected` is given only when its `mod_revision` matches. Returns the
    /// deletion revision and the deleted value.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)>;

    /// The latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Watch every key under `prefix` for changes after revision `after` (so `after` = the
    /// revision of a list gives exactly the changes not in it). Fails with `Compacted` if
    /// `after` is older than the compaction point (the error may also arrive as the stream's
    /// first item).
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Discard history before `revision`: reads at older revisions, and watches after older
    /// revisions, then fail with `Compacted`. Compacting to a revision at or below the current
    /// compaction point fails with `Compacted`, as in etcd.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// The end of the key range that shares `prefix` (etcd's "range end" for a prefix).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // An empty prefix, or one of all 0xff bytes, ranges to the end of the key space.
    vec![0]
}

/// Spawn a background loop that compacts history older than `window`, as kube-apiserver does
/// every 5 minutes. It records the current revision each tick and compacts to the revision it
/// recorded one tick earlier, so every revision stays readable for at least `window`.
pub fn spawn_compactor(
    store: std::sync::Arc<dyn Store>,
    window: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous: Option<Revision> = None;
        let mut ticker = tokio::time::interval(window);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let current = match store.current_revision().await {
                Ok(rev) => rev,
                Err(err) => {
                    tracing::warn!(%err, "compactor: cannot read current revision");
                    continue;
                }
            };
            if let Some(rev) = previous {
                match store.compact(rev).await {
                    Ok(()) => tracing::debug!(revision = rev, "compacted store history"),
                    // Somebody else (another API server sharing etcd) compacted further.
                    Err(StoreError::Compacted { .. }) => {}
                    Err(err) => tracing::warn!(%err, revision = rev, "compaction failed"),
                }
            }
            previous = Some(current);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/pods/"), b"/registry/pods0".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }
}
