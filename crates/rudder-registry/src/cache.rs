//! The watch cache: every object of every resource, decoded once, kept current by **one** store
//! watch over `/registry/`, and every API watch served from it.
//!
//! Like upstream's cacher it is a read-side decorator: writes go to the store and the cache
//! learns of them only from the store's watch, so its order is the store's order. Each object
//! is decoded and serialised once per change (JSON bytes with `resourceVersion` filled in), so a
//! list is a concatenation of shared bytes and a watch event is sent to every watcher without
//! re-encoding. History is kept per resource, so a quiet resource's old resourceVersions stay
//! watchable even while a busy one churns.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rudder_api::status::ApiError;
use rudder_store::{RangeRequest, Store, StoreError, WatchEvent};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::object;
use crate::registry::Registry;

/// Events kept per resource for watches that resume from an older resourceVersion, at least.
pub const DEFAULT_HISTORY: usize = 4096;
/// Beyond that, events younger than this are kept, up to `MAX_HISTORY` (upstream's watch cache
/// grows its capacity the same way: `eventFreshDuration` 75 s, upper bound 100 Ki events). A
/// client that lists a few thousand objects while thousands are written each second must
/// still find its list's resourceVersion in the history when it starts watching, or it gets
/// 410 Expired, lists again and never catches up.
const FRESH: std::time::Duration = std::time::Duration::from_secs(75);
const MAX_HISTORY: usize = 100 * 1024;
/// Events buffered per watcher; a watcher further behind is closed and must re-watch.
const WATCHER_BUFFER: usize = 1024;

/// One object as served: its resourceVersion, its JSON, and what selectors read. The decoded
/// form is not kept: a `serde_json::Value` costs several times its JSON in memory, and the hot
/// paths (JSON gets, lists and watches) splice the JSON in as it is.
#[derive(Debug)]
pub struct CachedObject {
    pub key: String,
    pub revision: i64,
    pub json: Bytes,
    pub labels: BTreeMap<String, String>,
    /// Selectable fields (`metadata.name`, `metadata.namespace` and the strategy's own).
    pub fields: Vec<(String, String)>,
}

impl CachedObject {
    /// Build from a stored value (JSON without resourceVersion, as upstream stores objects).
    pub fn from_store(
        registry: &Registry,
        key: &str,
        raw: &[u8],
        revision: i64,
    ) -> Result<CachedObject, String> {
        let mut value: Value =
            serde_json::from_slice(raw).map_err(|e| format!("undecodable object at {key}: {e}"))?;
        object::set_resource_version(&mut value, revision);
        let json = Bytes::from(serde_json::to_vec(&value).map_err(|e| e.to_string())?);
        let labels = object::labels(&value);
        let mut fields = vec![
            (
                "metadata.name".to_string(),
                object::name(&value).to_string(),
            ),
            (
                "metadata.namespace".to_string(),
                object::namespace(&value).to_string(),
            ),
        ];
        if let Some(entry) = registry.for_key(key) {
            entry.strategy.selectable_fields(&value, &mut fields);
        }
        Ok(CachedObject {
            key: key.to_string(),
            revision,
            json,
            labels,
            fields,
        })
    }

    /// The object decoded (from JSON this cache wrote, so it always decodes).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change. For a delete, `object` is the last state with the deletion's resourceVersion.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventKind,
    pub object: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
    pub revision: i64,
}

#[derive(Default)]
struct ResourceState {
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// With when each event arrived (for the time-based retention).
    history: VecDeque<(std::time::Instant, Arc<CacheEvent>)>,
    /// Every event of this resource after this revision is in `history`.
    history_from: i64,
    watchers: Vec<Watcher>,
}

struct Watcher {
    id: u64,
    key_prefix: String,
    tx: mpsc::Sender<Arc<CacheEvent>>,
}

struct State {
    revision: i64,
    /// The revision of the last full load: a resource with no state since has had no events
    /// since, so its history is complete from here.
    loaded_at: i64,
    resources: HashMap<String, ResourceState>,
    next_watcher: u64,
}

/// Where a watch starts.
#[derive(Clone, Copy, Debug)]
pub enum WatchFrom {
    /// The current state as synthetic ADDED events, then every later change (RV unset or "0").
    Now,
    /// Every change after this resourceVersion.
    Revision(i64),
}

/// A registered watch: the events to send first, then live ones.
pub struct CacheWatch {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: mpsc::Receiver<Arc<CacheEvent>>,
    /// The cache revision at registration (for the initial-events-end bookmark).
    pub revision: i64,
}

pub struct WatchCache {
    history: usize,
    fresh: std::time::Duration,
    max_history: usize,
    state: RwLock<State>,
    revision: watch::Sender<i64>,
    registry: Arc<Registry>,
}

impl WatchCache {
    /// Load every object from the store and start following its changes.
    pub async fn start(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
    ) -> Result<Arc<WatchCache>, StoreError> {
        Self::start_inner(store, registry, DEFAULT_HISTORY, FRESH, MAX_HISTORY).await
    }

    /// [`WatchCache::start`] keeping exactly `history` events per resource, however recent.
    pub async fn start_with_history(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        history: usize,
    ) -> Result<Arc<WatchCache>, StoreError> {
        Self::start_inner(store, registry, history, std::time::Duration::ZERO, history).await
    }

    async fn start_inner(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        history: usize,
        fresh: std::time::Duration,
        max_history: usize,
    ) -> Result<Arc<WatchCache>, StoreError> {
        let (tx, _) = watch::channel(0);
        let cache = Arc::new(WatchCache {
            history: history.max(1),
            fresh,
            max_history: max_history.max(history).max(1),
            state: RwLock::new(State {
                revision: 0,
                loaded_at: 0,
                resources: HashMap::new(),
                next_watcher: 0,
            }),
            revision: tx,
            registry,
        });
        let revision = cache.load(store.as_ref()).await?;
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move { follow(weak, store, revision).await });
        Ok(cache)
    }

    /// Replace the whole state with a fresh list of the store; returns its revision.
    async fn load(&self, store: &dyn Store) -> Result<i64, StoreError> {
        let mut objects: HashMap<String, BTreeMap<String, Arc<CachedObject>>> = HashMap::new();
        let mut start_after = None;
        let mut revision = None;
        loop {
            let page = store
                .range(RangeRequest {
                    prefix: "/registry/".into(),
                    start_after: start_after.take(),
                    limit: 10_000,
                    revision,
                })
                .await?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let Some(entry) = self.registry.for_key(&kv.key) else {
                    continue;
                };
                match CachedObject::from_store(&self.registry, &kv.key, &kv.value, kv.mod_revision)
                {
                    Ok(obj) => {
                        objects
                            .entry(entry.prefix.clone())
                            .or_default()
                            .insert(kv.key.clone(), Arc::new(obj));
                    }
                    Err(err) => tracing::error!(%err, "skipping object in watch cache"),
                }
            }
            if !page.more {
                break;
            }
            start_after = page.kvs.last().map(|kv| kv.key.clone());
        }
        let revision = revision.unwrap_or(0);
        let mut state = self.write_state();
        state.revision = revision;
        state.loaded_at = revision;
        // Watchers of the old state cannot be continued: closing them makes clients relist.
        state.resources = objects
            .into_iter()
            .map(|(prefix, objects)| {
                (
                    prefix,
                    ResourceState {
                        objects,
                        history_from: revision,
                        ..Default::default()
                    },
                )
            })
            .collect();
        drop(state);
        self.revision.send_replace(revision);
        Ok(revision)
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.revision.borrow()
    }

    /// Wait until the cache reflects `revision`, as upstream's consistent reads from cache do
    /// (`blockTimeout` 3 s, then 504 "Too large resource version").
    pub async fn wait_for(&self, revision: i64) -> Result<(), ApiError> {
        let mut rx = self.revision.subscribe();
        let reached = tokio::time::timeout(Duration::from_secs(3), async {
            rx.wait_for(|r| *r >= revision).await.is_ok()
        })
        .await;
        if reached == Ok(true) {
            return Ok(());
        }
        Err(ApiError::too_large_resource_version(
            revision,
            self.revision(),
            1,
        ))
    }

    /// Every object under `key_prefix` of the resource stored at `prefix`, in key order, and the
    /// revision they reflect.
    pub fn list(&self, prefix: &str, key_prefix: &str) -> (Vec<Arc<CachedObject>>, i64) {
        let state = self.read_state();
        let items = state
            .resources
            .get(prefix)
            .map(|r| {
                r.objects
                    .range(key_prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(key_prefix))
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default();
        (items, state.revision)
    }

    /// One object by key.
    pub fn get(&self, prefix: &str, key: &str) -> Option<Arc<CachedObject>> {
        self.read_state()
            .resources
            .get(prefix)
            .and_then(|r| r.objects.get(key).cloned())
    }

    /// Start a watch of the objects under `key_prefix` of the resource at `prefix`.
    pub async fn watch(
        &self,
        prefix: &str,
        key_prefix: &str,
        from: WatchFrom,
    ) -> Result<CacheWatch, ApiError> {
        if let WatchFrom::Revision(rev) = from {
            self.wait_for(rev).await?;
        }
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let mut state = self.write_state();
        let revision = state.revision;
        let loaded_at = state.loaded_at;
        let id = state.next_watcher;
        state.next_watcher += 1;
        let res = state
            .resources
            .entry(prefix.to_string())
            .or_insert_with(|| ResourceState {
                history_from: loaded_at,
                ..Default::default()
            });
        let initial = match from {
            WatchFrom::Now => res
                .objects
                .range(key_prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(key_prefix))
                .map(|(_, o)| {
                    Arc::new(CacheEvent {
                        kind: EventKind::Added,
                        object: o.clone(),
                        prev: None,
                        revision: o.revision,
                    })
                })
                .collect(),
            WatchFrom::Revision(rev) => {
                if rev < res.history_from {
                    return Err(ApiError::too_old_resource_version(rev, res.history_from));
                }
                res.history
                    .iter()
                    .map(|(_, e)| e)
                    .filter(|e| e.revision > rev && e.object.key.starts_with(key_prefix))
                    .cloned()
                    .collect()
            }
        };
        res.watchers.push(Watcher {
            id,
            key_prefix: key_prefix.to_string(),
            tx,
        });
        Ok(CacheWatch {
            initial,
            live: rx,
            revision,
        })
    }

    /// Apply one store event and fan it out.
    fn apply(&self, ev: WatchEvent) {
        let revision = ev.revision();
        let key = ev.key().to_string();
        let Some(entry) = self.registry.for_key(&key) else {
            self.advance(revision);
            return;
        };
        let prefix = entry.prefix.clone();
        // Decode outside the lock.
        let (kind, object) = match &ev {
            WatchEvent::Put { kv, prev } => {
                let kind = if prev.is_some() {
                    EventKind::Modified
                } else {
                    EventKind::Added
                };
                match CachedObject::from_store(&self.registry, &kv.key, &kv.value, kv.mod_revision)
                {
                    Ok(o) => (kind, Some(Arc::new(o))),
                    Err(err) => {
                        tracing::error!(%err, "undecodable object in watch cache");
                        (kind, None)
                    }
                }
            }
            WatchEvent::Delete { revision, prev } => {
                // The deleted object is reported with the deletion's resourceVersion, as upstream.
                match CachedObject::from_store(&self.registry, &prev.key, &prev.value, *revision) {
                    Ok(o) => (EventKind::Deleted, Some(Arc::new(o))),
                    Err(err) => {
                        tracing::error!(%err, "undecodable object in watch cache");
                        (EventKind::Deleted, None)
                    }
                }
            }
        };
        let mut state = self.write_state();
        let loaded_at = state.loaded_at;
        let res = state
            .resources
            .entry(prefix)
            .or_insert_with(|| ResourceState {
                history_from: loaded_at,
                ..Default::default()
            });
        let prev = match (kind, &object) {
            (EventKind::Deleted, _) => res.objects.remove(&key),
            (_, Some(o)) => res.objects.insert(key.clone(), o.clone()),
            (_, None) => res.objects.remove(&key),
        };
        if let Some(object) = object {
            let event = Arc::new(CacheEvent {
                kind,
                object,
                prev,
                revision,
            });
            let now = std::time::Instant::now();
            while let Some((at, _)) = res.history.front() {
                let full = res.history.len() >= self.max_history;
                let stale = res.history.len() >= self.history
                    && now.saturating_duration_since(*at) >= self.fresh;
                if !(full || stale) {
                    break;
                }
                if let Some((_, old)) = res.history.pop_front() {
                    res.history_from = old.revision;
                }
            }
            res.history.push_back((now, event.clone()));
            // A watcher that cannot take the event is closed (upstream: "forcing watcher close
            // due to unresponsiveness"); its client re-watches from the last revision it saw.
            res.watchers.retain(|w| {
                if !event.object.key.starts_with(&w.key_prefix) {
                    return !w.tx.is_closed();
                }
                match w.tx.try_send(event.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::debug!(watcher = w.id, "closing a watcher that fell behind");
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
        }
        state.revision = state.revision.max(revision);
        drop(state);
        self.revision.send_replace(revision);
    }

    fn advance(&self, revision: i64) {
        let mut state = self.write_state();
        state.revision = state.revision.max(revision);
        drop(state);
        self.revision.send_replace(revision);
    }

    /// Close every watcher (after a relist they would miss changes).
    fn close_watchers(&self) {
        let mut state = self.write_state();
        for res in state.resources.values_mut() {
            res.watchers.clear();
        }
    }
}

/// Follow the store from `revision`, re-watching after resumable errors and relisting after a
/// compaction overtook us. Ends when the cache is dropped.
async fn follow(cache: std::sync::Weak<WatchCache>, store: Arc<dyn Store>, mut revision: i64) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let stream = store.watch("/registry/", revision).await;
        let mut stream = match stream {
            Ok(s) => s,
            Err(err) => {
                let Some(c) = cache.upgrade() else { return };
                revision = recover(&c, store.as_ref(), err, revision, &mut backoff).await;
                continue;
            }
        };
        while let Some(item) = stream.next().await {
            let Some(c) = cache.upgrade() else { return };
            match item {
                Ok(ev) => {
                    revision = ev.revision();
                    c.apply(ev);
                    backoff = Duration::from_millis(50);
                }
                Err(err) => {
                    revision = recover(&c, store.as_ref(), err, revision, &mut backoff).await;
                    break;
                }
            }
        }
        if cache.strong_count() == 0 {
            return;
        }
    }
}

async fn recover(
    cache: &WatchCache,
    store: &dyn Store,
    err: StoreError,
    revision: i64,
    backoff: &mut Duration,
) -> i64 {
    tracing::warn!(%err, revision, "watch cache lost its store watch");
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
    if matches!(err, StoreError::Compacted { .. }) {
        cache.close_watchers();
        match cache.load(store).await {
            Ok(rev) => return rev,
            Err(err) => tracing::warn!(%err, "watch cache relist failed"),
        }
    }
    revision
}
