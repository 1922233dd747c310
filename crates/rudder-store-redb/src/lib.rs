//! The embedded store (Rudder's default): etcd semantics on [redb].
//!
//! Layout (one redb file in the data directory):
//! - `kv`: the current value of every live key (`key -> create_rev | mod_rev | expiry | value`),
//!   so the latest get/list costs O(keys read), never O(history);
//! - `log`: one record per revision (`rev -> key, new value, previous value`), used to replay
//!   watches and to answer reads at a past revision; compaction deletes its old records;
//! - `expiry`: `(expires_at_ms, key)` for keys written with a TTL;
//! - `meta`: the current and compacted revisions.
//!
//! All writes go through one writer thread. It drains every request waiting, applies them in one
//! redb write transaction (each request gets its own revision, so commit order is revision
//! order), commits with fsync, and only then answers the callers and publishes the events to
//! watchers: group commit, with no polling.

mod codec;
mod wal;

use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codec::{Entry, LogRecord};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use rudder_store::{
    KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, StoreError, WatchEvent,
    WatchStream, WriteOptions,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use wal::{Wal, WalOp};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_CURRENT: &str = "current_revision";
const META_COMPACTED: &str = "compacted_revision";
/// Sequence number of the last write-ahead-log record redb contains.
const META_WAL_SEQ: &str = "wal_seq";

/// Tuning knobs; the defaults suit an API server.
#[derive(Clone, Debug)]
pub struct RedbOptions {
    /// Most write requests committed in one transaction.
    pub max_batch: usize,
    /// Committed batches kept for watchers that are behind; a watcher further behind is ended
    /// with [`StoreError::WatcherLagged`].
    pub watch_backlog: usize,
    /// Events buffered per watcher between the store and its consumer.
    pub watcher_buffer: usize,
    /// How often keys with a TTL are checked for expiry.
    pub expiry_interval: Duration,
    /// Size of the write-ahead log file; a batch's record must fit in a quarter of it.
    pub wal_size: u64,
    /// Longest time between durable redb commits (checkpoints); the log is replayed from the
    /// last one after a crash, so this bounds recovery time.
    pub checkpoint_interval: Duration,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            max_batch: 512,
            watch_backlog: 1024,
            watcher_buffer: 256,
            expiry_interval: Duration::from_millis(250),
            wal_size: 64 << 20,
            checkpoint_interval: Duration::from_secs(2),
        }
    }
}

type Batch = Arc<Vec<WatchEvent>>;

/// The embedded store. Cheap to clone; the database closes when the last clone is dropped or
/// [`RedbStore::close`] is called.
#[derive(Clone)]
pub struct RedbStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once closed.
    state: RwLock<Option<OpenState>>,
    writer: mpsc::Sender<Msg>,
    current: AtomicI64,
    /// Earliest TTL deadline known (ms since the epoch), `u64::MAX` when none.
    next_expiry: AtomicU64,
    opts: RedbOptions,
}

#[derive(Clone)]
struct OpenState {
    db: Arc<Database>,
    events: broadcast::Sender<Batch>,
}

enum Op {
    Create {
        key: String,
        value: Bytes,
        ttl: Option<Duration>,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
        ttl: Option<Duration>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact(Revision),
    Expire,
}

impl Op {
    /// Roughly the bytes this request adds to a log record.
    fn size(&self) -> usize {
        match self {
            Op::Create { key, value, .. } | Op::Update { key, value, .. } => {
                40 + key.len() + value.len()
            }
            Op::Delete { key, .. } => 16 + key.len(),
            Op::Compact(_) | Op::Expire => 16,
        }
    }
}

enum Done {
    Written(Revision),
    Deleted(Revision, KeyValue),
    Nothing,
}

enum Msg {
    Write(Op, oneshot::Sender<Result<Done>>),
    Shutdown(oneshot::Sender<()>),
}

impl RedbStore {
    /// Open (or create) the store in `path` (a file).
    pub async fn open(path: impl AsRef<Path>, opts: RedbOptions) -> Result<RedbStore> {
        let path = path.as_ref().to_path_buf();
        let wal_size = opts.wal_size.max(1 << 16);
        let (db, wal, seq) = tokio::task::spawn_blocking(move || -> Result<_> {
            let db = open_db(&path)?;
            let mut wal_path = path.into_os_string();
            wal_path.push(".wal");
            let wal = Wal::open(Path::new(&wal_path), wal_size).map_err(internal)?;
            let seq = recover(&db, &wal)?;
            Ok((db, wal, seq))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("open task failed: {e}")))??;
        let (current, compacted, next_expiry) = {
            let txn = db.begin_read().map_err(internal)?;
            let meta = txn.open_table(META).map_err(internal)?;
            let current = read_meta(&meta, META_CURRENT)?.unwrap_or(1);
            let compacted = read_meta(&meta, META_COMPACTED)?.unwrap_or(0);
            let expiry = txn.open_table(EXPIRY).map_err(internal)?;
            let next = expiry
                .first()
                .map_err(internal)?
                .map_or(u64::MAX, |(k, _)| k.value().0);
            (current, compacted, next)
        };
        let db = Arc::new(db);
        let (events, _) = broadcast::channel(opts.watch_backlog.max(1));
        let (tx, rx) = mpsc::channel(opts.max_batch.max(1) * 4);
        let inner = Arc::new(Inner {
            state: RwLock::new(Some(OpenState {
                db: db.clone(),
                events: events.clone(),
            })),
            writer: tx,
            current: AtomicI64::new(current),
            next_expiry: AtomicU64::new(next_expiry),
            opts: opts.clone(),
        });
        let writer = Writer {
            db,
            wal,
            events,
            current,
            compacted,
            seq,
            last_checkpoint: Instant::now(),
            checkpoint_interval: opts.checkpoint_interval,
            inner: Arc::downgrade(&inner),
            max_batch: opts.max_batch.max(1),
        };
        std::thread::Builder::new()
            .name("rudder-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Internal(format!("cannot start writer thread: {e}")))?;
        spawn_expiry(Arc::downgrade(&inner), opts.expiry_interval);
        Ok(RedbStore { inner })
    }

    /// Finish the writes in flight, end every watch and release the database file.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.writer.send(Msg::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        if let Ok(mut state) = self.inner.state.write() {
            state.take();
        }
    }

    fn state(&self) -> Result<OpenState> {
        self.inner
            .state
            .read()
            .map_err(|_| StoreError::Internal("store state lock poisoned".into()))?
            .clone()
            .ok_or_else(|| StoreError::Unavailable("store is closed".into()))
    }

    async fn write(&self, op: Op) -> Result<Done> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writer
            .send(Msg::Write(op, tx))
            .await
            .map_err(|_| StoreError::Unavailable("store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.state()?.db;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(internal)?;
            f(&txn)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}

fn open_db(path: &Path) -> Result<Database> {
    let db = Database::create(path).map_err(internal)?;
    // Create the tables up front so read transactions never meet a missing table.
    let txn = db.begin_write().map_err(internal)?;
    {
        txn.open_table(KV).map_err(internal)?;
        txn.open_table(LOG).map_err(internal)?;
        txn.open_table(EXPIRY).map_err(internal)?;
        txn.open_table(META).map_err(internal)?;
    }
    txn.commit().map_err(internal)?;
    Ok(db)
}

fn internal(err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(err.to_string())
}

fn read_meta(meta: &impl ReadableTable<&'static str, u64>, name: &str) -> Result<Option<i64>> {
    Ok(meta.get(name).map_err(internal)?.map(|v| v.value() as i64))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn check_revision(requested: Revision, current: Revision, compacted: Revision) -> Result<()> {
    if requested > current {
        return Err(StoreError::FutureRevision { requested, current });
    }
    if requested < compacted {
        return Err(StoreError::Compacted {
            requested,
            compacted,
        });
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidRequest("empty key".into()));
    }
    Ok(())
}

/// Far above what the API server accepts (3 MiB requests, like upstream); it keeps every batch
/// well inside the write-ahead log.
const MAX_VALUE: usize = 8 << 20;

fn validate_value(value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE {
        return Err(StoreError::InvalidRequest(format!(
            "value of {} bytes exceeds the {MAX_VALUE}-byte limit",
            value.len()
        )));
    }
    Ok(())
}

struct Snapshot {
    current: Revision,
    compacted: Revision,
}

fn snapshot(txn: &redb::ReadTransaction) -> Result<Snapshot> {
    let meta = txn.open_table(META).map_err(internal)?;
    Ok(Snapshot {
        current: read_meta(&meta, META_CURRENT)?.unwrap_or(1),
        compacted: read_meta(&meta, META_COMPACTED)?.unwrap_or(0),
    })
}

/// For every key under `prefix` (and after `start_after`) written after `revision`, its value at
/// `revision` (`None` if it did not exist then): the first log record after `revision` carries it.
fn values_at(
    txn: &redb::ReadTransaction,
    prefix: &str,
    start_after: Option<&str>,
    revision: Revision,
    current: Revision,
) -> Result<std::collections::BTreeMap<String, Option<KeyValue>>> {
    let mut out = std::collections::BTreeMap::new();
    let log = txn.open_table(LOG).map_err(internal)?;
    for item in log
        .range((revision + 1) as u64..=current as u64)
        .map_err(internal)?
    {
        let (_, raw) = item.map_err(internal)?;
        let rec = LogRecord::decode(raw.value())?;
        if !rec.key.starts_with(prefix) || start_after.is_some_and(|s| rec.key.as_str() <= s) {
            continue;
        }
        let prev = rec.prev_kv();
        out.entry(rec.key).or_insert(prev);
    }
    Ok(out)
}

fn range_in(txn: &redb::ReadTransaction, req: &RangeRequest) -> Result<RangeResponse> {
    let snap = snapshot(txn)?;
    let revision = req.revision.filter(|&r| r > 0).unwrap_or(snap.current);
    check_revision(revision, snap.current, snap.compacted)?;
    let limit = if req.limit == 0 {
        usize::MAX
    } else {
        req.limit
    };
    let kv = txn.open_table(KV).map_err(internal)?;
    let start: Bound<&str> = match req.start_after.as_deref() {
        Some(after) if after >= req.prefix.as_str() => Bound::Excluded(after),
        _ => Bound::Included(req.prefix.as_str()),
    };
    let changed = if revision < snap.current {
        values_at(
            txn,
            &req.prefix,
            req.start_after.as_deref(),
            revision,
            snap.current,
        )?
    } else {
        Default::default()
    };
    // Merge the current keys unchanged since `revision` with the past values of changed keys.
    let mut current = kv
        .range::<&str>((start, Bound::Unbounded))
        .map_err(internal)?;
    let mut past = changed.into_values().flatten().peekable();
    let mut next_current = || -> Result<Option<KeyValue>> {
        for item in current.by_ref() {
            let (k, v) = item.map_err(internal)?;
            let key = k.value();
            if !key.starts_with(req.prefix.as_str()) {
                return Ok(None);
            }
            let entry = Entry::decode(v.value())?;
            if entry.mod_revision <= revision {
                return Ok(Some(entry.into_kv(key)));
            }
        }
        Ok(None)
    };
    let mut kvs = Vec::new();
    let mut cur = next_current()?;
    let mut more = false;
    loop {
        let take_past = match (&cur, past.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some(c), Some(p)) => p.key < c.key,
        };
        if kvs.len() == limit {
            more = true;
            break;
        }
        if take_past {
            kvs.extend(past.next());
        } else {
            kvs.extend(cur.take());
            cur = next_current()?;
        }
    }
    Ok(RangeResponse {
        kvs,
        revision,
        more,
    })
}

fn get_in(
    txn: &redb::ReadTransaction,
    key: &str,
    revision: Option<Revision>,
) -> Result<(Option<KeyValue>, Revision)> {
    let snap = snapshot(txn)?;
    let kv = txn.open_table(KV).map_err(internal)?;
    let entry = kv
        .get(key)
        .map_err(internal)?
        .map(|v| Entry::decode(v.value()))
        .transpose()?;
    let revision = match revision.filter(|&r| r > 0) {
        None => return Ok((entry.map(|e| e.into_kv(key)), snap.current)),
        Some(r) => r,
    };
    check_revision(revision, snap.current, snap.compacted)?;
    if let Some(e) = entry.filter(|e| e.mod_revision <= revision) {
        return Ok((Some(e.into_kv(key)), revision));
    }
    let log = txn.open_table(LOG).map_err(internal)?;
    for item in log
        .range((revision + 1) as u64..=snap.current as u64)
        .map_err(internal)?
    {
        let (_, raw) = item.map_err(internal)?;
        let rec = LogRecord::decode(raw.value())?;
        if rec.key == key {
            return Ok((rec.prev_kv(), revision));
        }
    }
    Ok((None, revision))
}

#[async_trait::async_trait]
impl Store for RedbStore {
    fn backend_name(&self) -> &'static str {
        "redb"
    }

    async fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)> {
        validate_key(key)?;
        // Point reads are a few microseconds from redb's page cache: cheaper inline than a hop
        // to the blocking pool.
        let db = self.state()?.db;
        let txn = db.begin_read().map_err(internal)?;
        get_in(&txn, key, revision)
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        self.read(move |txn| range_in(txn, &req)).await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let prefix = prefix.to_string();
        self.read(move |txn| {
            let kv = txn.open_table(KV).map_err(internal)?;
            let mut n = 0;
            for item in kv.range::<&str>(prefix.as_str()..).map_err(internal)? {
                let (k, _) = item.map_err(internal)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    async fn create(&self, key: &str, value: Bytes, opts: WriteOptions) -> Result<Revision> {
        validate_key(key)?;
        validate_value(&value)?;
        let op = Op::Create {
            key: key.to_string(),
            value,
            ttl: opts.ttl,
        };
        match self.write(op).await? {
            Done::Written(rev) => Ok(rev),
            _ => Err(StoreError::Internal("unexpected writer answer".into())),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        opts: WriteOptions,
    ) -> Result<Revision> {
        validate_key(key)?;
        validate_value(&value)?;
        let op = Op::Update {
            key: key.to_string(),
            value,
            expected,
            ttl: opts.ttl,
        };
        match self.write(op).await? {
            Done::Written(rev) => Ok(rev),
            _ => Err(StoreError::Internal("unexpected writer answer".into())),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        validate_key(key)?;
        let op = Op::Delete {
            key: key.to_string(),
            expected,
        };
        match self.write(op).await? {
            Done::Deleted(rev, kv) => Ok((rev, kv)),
            _ => Err(StoreError::Internal("unexpected writer answer".into())),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.state()?;
        Ok(self.inner.current.load(Ordering::Acquire))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let state = self.state()?;
        // Subscribe before reading the snapshot: every batch committed after the snapshot is
        // then certain to arrive on the channel, and the ones already in it are skipped.
        let live = state.events.subscribe();
        let db = state.db;
        let snap = {
            let txn = db.begin_read().map_err(internal)?;
            snapshot(&txn)?
        };
        if after < snap.compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: snap.compacted,
            });
        }
        let (tx, rx) = mpsc::channel(self.inner.opts.watcher_buffer.max(1));
        tokio::spawn(forward_watch(
            db,
            live,
            prefix.to_string(),
            after,
            snap.current,
            tx,
        ));
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.write(Op::Compact(revision)).await.map(|_| ())
    }
}

/// Feed one watcher: replay the log from `after` up to `snapshot`, then pass on live batches.
async fn forward_watch(
    db: Arc<Database>,
    mut live: broadcast::Receiver<Batch>,
    prefix: String,
    after: Revision,
    snapshot_rev: Revision,
    tx: mpsc::Sender<Result<WatchEvent>>,
) {
    const CHUNK: usize = 512;
    let mut cursor = after;
    let mut db = Some(db);
    while cursor < snapshot_rev {
        let Some(chunk_db) = db.clone() else { break };
        let chunk_prefix = prefix.clone();
        let from = cursor;
        let read = tokio::task::spawn_blocking(move || -> Result<(Vec<WatchEvent>, Revision)> {
            let txn = chunk_db.begin_read().map_err(internal)?;
            let snap = snapshot(&txn)?;
            // Compaction may have run since the watch started: never skip what it removed.
            if from < snap.compacted {
                return Err(StoreError::Compacted {
                    requested: from,
                    compacted: snap.compacted,
                });
            }
            let log = txn.open_table(LOG).map_err(internal)?;
            let mut events = Vec::new();
            let mut last = from;
            for item in log
                .range((from + 1) as u64..=snapshot_rev as u64)
                .map_err(internal)?
                .take(CHUNK)
            {
                let (rev, raw) = item.map_err(internal)?;
                last = rev.value() as i64;
                let rec = LogRecord::decode(raw.value())?;
                if rec.key.starts_with(chunk_prefix.as_str()) {
                    events.push(rec.into_event(last)?);
                }
            }
            if last == from {
                // The log ends before the snapshot revision: only possible if it was truncated.
                return Err(StoreError::Internal(format!(
                    "revision log has no records after {from}"
                )));
            }
            Ok((events, last))
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Internal(format!("watch replay failed: {e}"))));
        match read {
            Ok((events, last)) => {
                for ev in events {
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                cursor = last;
            }
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
    // The live phase needs no database handle: release it so `close` can free the file.
    db.take();
    loop {
        match live.recv().await {
            Ok(batch) => {
                for ev in batch.iter() {
                    if ev.revision() <= cursor || !ev.key().starts_with(prefix.as_str()) {
                        continue;
                    }
                    if tx.send(Ok(ev.clone())).await.is_err() {
                        return;
                    }
                }
                if let Some(last) = batch.last() {
                    cursor = cursor.max(last.revision());
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let _ = tx.send(Err(StoreError::WatcherLagged)).await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => {
                let _ = tx
                    .send(Err(StoreError::Unavailable("store closed".into())))
                    .await;
                return;
            }
        }
    }
}

fn spawn_expiry(inner: Weak<Inner>, interval: Duration) {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            if inner.next_expiry.load(Ordering::Acquire) > now_ms() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if inner.writer.send(Msg::Write(Op::Expire, tx)).await.is_err() {
                return;
            }
            drop(inner);
            if let Ok(Err(err)) = rx.await {
                tracing::warn!(%err, "expiring keys failed");
            }
        }
    });
}

/// The single writer. Runs on its own thread because redb's API is blocking.
struct Writer {
    db: Arc<Database>,
    wal: Wal,
    events: broadcast::Sender<Batch>,
    current: Revision,
    compacted: Revision,
    /// Sequence number of the last write-ahead-log record applied to redb.
    seq: u64,
    last_checkpoint: Instant,
    checkpoint_interval: Duration,
    inner: Weak<Inner>,
    max_batch: usize,
}

struct Tables<'t> {
    kv: redb::Table<'t, &'static str, &'static [u8]>,
    log: redb::Table<'t, u64, &'static [u8]>,
    expiry: redb::Table<'t, (u64, &'static str), ()>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t redb::WriteTransaction) -> std::result::Result<Self, redb::Error> {
        Ok(Tables {
            kv: txn.open_table(KV)?,
            log: txn.open_table(LOG)?,
            expiry: txn.open_table(EXPIRY)?,
        })
    }

    fn entry(&self, key: &str) -> std::result::Result<Option<Result<Entry>>, redb::Error> {
        Ok(self.kv.get(key)?.map(|v| Entry::decode(v.value())))
    }

    /// Apply one decided change: the same code runs for live writes and for log replay, so a
    /// replayed change is exactly the change that was acknowledged.
    fn apply(
        &mut self,
        op: &WalOp,
        events: &mut Vec<WatchEvent>,
    ) -> std::result::Result<Option<KeyValue>, redb::Error> {
        match op {
            WalOp::Put {
                revision,
                key,
                create_revision,
                expires_at_ms,
                value,
            } => {
                let old = self.entry(key)?.and_then(|e| e.ok());
                if let Some(old) = old.as_ref().filter(|o| o.expires_at_ms != 0) {
                    self.expiry.remove((old.expires_at_ms, key.as_str()))?;
                }
                if *expires_at_ms != 0 {
                    self.expiry.insert((*expires_at_ms, key.as_str()), ())?;
                }
                let entry = Entry {
                    create_revision: *create_revision,
                    mod_revision: *revision,
                    expires_at_ms: *expires_at_ms,
                    value: value.clone(),
                };
                self.kv.insert(key.as_str(), entry.encode().as_slice())?;
                let rec = LogRecord {
                    key: key.clone(),
                    put: Some((*create_revision, value.clone())),
                    prev: old.map(|o| (o.create_revision, o.mod_revision, o.value)),
                };
                self.log.insert(*revision as u64, rec.encode().as_slice())?;
                events.push(WatchEvent::Put {
                    prev: rec.prev_kv(),
                    kv: entry.into_kv(key),
                });
                Ok(None)
            }
            WalOp::Delete { revision, key } => {
                let Some(Ok(old)) = self.entry(key)? else {
                    tracing::warn!(key, "replayed delete of a missing key");
                    return Ok(None);
                };
                if old.expires_at_ms != 0 {
                    self.expiry.remove((old.expires_at_ms, key.as_str()))?;
                }
                self.kv.remove(key.as_str())?;
                let rec = LogRecord {
                    key: key.clone(),
                    put: None,
                    prev: Some((old.create_revision, old.mod_revision, old.value.clone())),
                };
                self.log.insert(*revision as u64, rec.encode().as_slice())?;
                let prev = old.into_kv(key);
                events.push(WatchEvent::Delete {
                    revision: *revision,
                    prev: prev.clone(),
                });
                Ok(Some(prev))
            }
            WalOp::Compact { revision } => {
                // Reads at `revision` or later only need records after it.
                self.log.retain_in(..=*revision as u64, |_, _| false)?;
                Ok(None)
            }
        }
    }
}

/// The outcome of one write request inside a batch: the outer error aborts the transaction.
type Applied = std::result::Result<Result<Done>, redb::Error>;

/// Replay the write-ahead log records redb's last durable commit does not contain, and make
/// them durable. Returns the sequence number reached.
fn recover(db: &Database, wal: &Wal) -> Result<u64> {
    let txn = db.begin_write().map_err(internal)?;
    let (mut seq, mut current, mut compacted) = {
        let meta = txn.open_table(META).map_err(internal)?;
        (
            read_meta(&meta, META_WAL_SEQ)?.unwrap_or(0) as u64,
            read_meta(&meta, META_CURRENT)?.unwrap_or(1),
            read_meta(&meta, META_COMPACTED)?.unwrap_or(0),
        )
    };
    let mut replayed = 0usize;
    {
        let mut tables = Tables::open(&txn).map_err(internal)?;
        let mut sink = Vec::new();
        for raw in wal.read_all().map_err(internal)? {
            let Some((record_seq, ops)) = wal::decode_batch(&raw) else {
                break;
            };
            if record_seq <= seq {
                continue; // already in redb's durable state
            }
            if record_seq != seq + 1 {
                break; // stale: left over from before the log last wrapped
            }
            for op in &ops {
                tables.apply(op, &mut sink).map_err(internal)?;
                match op {
                    WalOp::Put { revision, .. } | WalOp::Delete { revision, .. } => {
                        current = current.max(*revision)
                    }
                    WalOp::Compact { revision } => compacted = compacted.max(*revision),
                }
                replayed += 1;
            }
            sink.clear();
            seq = record_seq;
        }
    }
    {
        let mut meta = txn.open_table(META).map_err(internal)?;
        meta.insert(META_CURRENT, current as u64)
            .map_err(internal)?;
        meta.insert(META_COMPACTED, compacted as u64)
            .map_err(internal)?;
        meta.insert(META_WAL_SEQ, seq).map_err(internal)?;
    }
    // Durable before the log is overwritten from its start.
    txn.commit().map_err(internal)?;
    if replayed > 0 {
        tracing::info!(
            replayed,
            revision = current,
            "replayed the store's write-ahead log"
        );
    }
    Ok(seq)
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        // Keep one batch's log record well inside the log.
        let max_batch_bytes = (self.wal.capacity() / 4) as usize;
        while let Some(first) = rx.blocking_recv() {
            let mut batch = Vec::with_capacity(16);
            let mut bytes = 0usize;
            let mut shutdown = None;
            let push = |msg: Msg, batch: &mut Vec<_>, bytes: &mut usize| match msg {
                Msg::Write(op, reply) => {
                    *bytes += op.size();
                    batch.push((op, reply));
                    None
                }
                Msg::Shutdown(done) => Some(done),
            };
            shutdown = shutdown.or(push(first, &mut batch, &mut bytes));
            while shutdown.is_none() && batch.len() < self.max_batch && bytes < max_batch_bytes {
                match rx.try_recv() {
                    Ok(msg) => shutdown = push(msg, &mut batch, &mut bytes),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
            if let Some(done) = shutdown {
                // Refuse whatever is still queued, checkpoint, then let go of the database.
                rx.close();
                while let Ok(msg) = rx.try_recv() {
                    if let Msg::Write(_, reply) = msg {
                        let _ = reply.send(Err(StoreError::Unavailable("store is closed".into())));
                    }
                }
                if let Err(err) = self.checkpoint() {
                    tracing::warn!(%err, "final checkpoint failed; the log will be replayed");
                }
                drop(self);
                let _ = done.send(());
                return;
            }
        }
    }

    /// A durable redb commit of everything applied so far; the log can then start over.
    fn checkpoint(&mut self) -> std::result::Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(META_WAL_SEQ, self.seq)?;
        }
        txn.commit()?;
        self.wal.rewind();
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn commit_batch(&mut self, batch: Vec<(Op, oneshot::Sender<Result<Done>>)>) {
        let start_rev = self.current;
        let start_compacted = self.compacted;
        let mut events = Vec::new();
        let mut results = Vec::with_capacity(batch.len());
        let mut ops = Vec::with_capacity(batch.len());
        let outcome = (|| -> std::result::Result<bool, redb::Error> {
            let mut txn = self.db.begin_write()?;
            {
                let mut tables = Tables::open(&txn)?;
                for (op, _) in &batch {
                    results.push(self.decide(&mut tables, op, &mut ops, &mut events)?);
                }
            }
            if ops.is_empty() {
                // Nothing changed (every request failed its precondition): no flush at all.
                txn.abort()?;
                return Ok(false);
            }
            let seq = self.seq + 1;
            let payload = wal::encode_batch(seq, &ops);
            let checkpoint = !self.wal.fits(Wal::record_len(payload.len()))
                || self.last_checkpoint.elapsed() >= self.checkpoint_interval;
            if checkpoint {
                // A durable redb commit instead of a log record: it also makes every earlier
                // non-durable commit durable, so the log can start over afterwards.
                txn.set_durability(Durability::Immediate)?;
            } else {
                self.wal.append(&payload).map_err(|e| {
                    redb::Error::Io(std::io::Error::other(format!("write-ahead log: {e}")))
                })?;
                txn.set_durability(Durability::None)?;
            }
            {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_CURRENT, self.current as u64)?;
                meta.insert(META_COMPACTED, self.compacted as u64)?;
                meta.insert(META_WAL_SEQ, seq)?;
            }
            txn.commit()?;
            self.seq = seq;
            if checkpoint {
                self.wal.rewind();
                self.last_checkpoint = Instant::now();
            }
            Ok(true)
        })();
        match outcome {
            Ok(committed) => {
                if committed {
                    if let Some(inner) = self.inner.upgrade() {
                        inner.current.store(self.current, Ordering::Release);
                    }
                }
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                if !events.is_empty() {
                    // No receivers is fine: nobody is watching.
                    let _ = self.events.send(Arc::new(events));
                }
            }
            Err(err) => {
                tracing::error!(%err, "store commit failed");
                self.current = start_rev;
                self.compacted = start_compacted;
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Internal(format!("commit failed: {err}"))));
                }
            }
        }
    }

    fn note_expiry(&self, at: u64) {
        if let Some(inner) = self.inner.upgrade() {
            inner.next_expiry.fetch_min(at, Ordering::AcqRel);
        }
    }

    /// Check one request against the current state and, if it passes, apply it.
    fn decide(
        &mut self,
        t: &mut Tables<'_>,
        op: &Op,
        ops: &mut Vec<WalOp>,
        events: &mut Vec<WatchEvent>,
    ) -> Applied {
        let expiry_of =
            |ttl: &Option<Duration>| ttl.map_or(0, |ttl| now_ms() + ttl.as_millis() as u64);
        match op {
            Op::Create { key, value, ttl } => {
                if t.entry(key)?.is_some() {
                    return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
                }
                let revision = self.current + 1;
                let expires_at_ms = expiry_of(ttl);
                self.write(
                    t,
                    WalOp::Put {
                        revision,
                        key: key.clone(),
                        create_revision: revision,
                        expires_at_ms,
                        value: value.clone(),
                    },
                    ops,
                    events,
                )?;
                Ok(Ok(Done::Written(revision)))
            }
            Op::Update {
                key,
                value,
                expected,
                ttl,
            } => {
                let old = match t.entry(key)? {
                    None => return Ok(Err(StoreError::NotFound { key: key.clone() })),
                    Some(Err(e)) => return Ok(Err(e)),
                    Some(Ok(old)) => old,
                };
                if old.mod_revision != *expected {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Some(Box::new(old.into_kv(key))),
                    }));
                }
                let revision = self.current + 1;
                self.write(
                    t,
                    WalOp::Put {
                        revision,
                        key: key.clone(),
                        create_revision: old.create_revision,
                        expires_at_ms: expiry_of(ttl),
                        value: value.clone(),
                    },
                    ops,
                    events,
                )?;
                Ok(Ok(Done::Written(revision)))
            }
            Op::Delete { key, expected } => {
                let old = match t.entry(key)? {
                    None => return Ok(Err(StoreError::NotFound { key: key.clone() })),
                    Some(Err(e)) => return Ok(Err(e)),
                    Some(Ok(old)) => old,
                };
                if let Some(expected) = expected.filter(|&e| e != old.mod_revision) {
                    return Ok(Err(StoreError::Conflict {
                        key: key.clone(),
                        expected,
                        current: Some(Box::new(old.into_kv(key))),
                    }));
                }
                let revision = self.current + 1;
                let prev = self.write(
                    t,
                    WalOp::Delete {
                        revision,
                        key: key.clone(),
                    },
                    ops,
                    events,
                )?;
                match prev {
                    Some(prev) => Ok(Ok(Done::Deleted(revision, prev))),
                    None => Ok(Err(StoreError::Internal("delete found no value".into()))),
                }
            }
            Op::Compact(revision) => {
                let revision = *revision;
                if revision <= self.compacted {
                    return Ok(Err(StoreError::Compacted {
                        requested: revision,
                        compacted: self.compacted,
                    }));
                }
                if revision > self.current {
                    return Ok(Err(StoreError::FutureRevision {
                        requested: revision,
                        current: self.current,
                    }));
                }
                self.write(t, WalOp::Compact { revision }, ops, events)?;
                Ok(Ok(Done::Nothing))
            }
            Op::Expire => {
                let now = now_ms();
                let due: Vec<(u64, String)> = t
                    .expiry
                    .range::<(u64, &str)>(..(now + 1, ""))?
                    .take(1024)
                    .map(|item| item.map(|(k, _)| (k.value().0, k.value().1.to_string())))
                    .collect::<std::result::Result<_, _>>()?;
                for (at, key) in &due {
                    match t.entry(key)? {
                        Some(Ok(old)) if old.expires_at_ms == *at => {
                            let revision = self.current + 1;
                            self.write(
                                t,
                                WalOp::Delete {
                                    revision,
                                    key: key.clone(),
                                },
                                ops,
                                events,
                            )?;
                        }
                        // A stale index row (the key was rewritten): drop it. Not logged: it
                        // changes nothing a reader can see, and replay rebuilds the index.
                        _ => {
                            t.expiry.remove((*at, key.as_str()))?;
                        }
                    }
                }
                let next = t.expiry.first()?.map_or(u64::MAX, |(k, _)| k.value().0);
                if let Some(inner) = self.inner.upgrade() {
                    inner.next_expiry.store(next, Ordering::Release);
                }
                Ok(Ok(Done::Nothing))
            }
        }
    }

    /// Apply a decided change and remember it for the log.
    fn write(
        &mut self,
        t: &mut Tables<'_>,
        op: WalOp,
        ops: &mut Vec<WalOp>,
        events: &mut Vec<WatchEvent>,
    ) -> std::result::Result<Option<KeyValue>, redb::Error> {
        let prev = t.apply(&op, events)?;
        match &op {
            WalOp::Put {
                revision,
                expires_at_ms,
                ..
            } => {
                self.current = *revision;
                if *expires_at_ms != 0 {
                    self.note_expiry(*expires_at_ms);
                }
            }
            WalOp::Delete { revision, .. } => self.current = *revision,
            WalOp::Compact { revision } => self.compacted = *revision,
        }
        ops.push(op);
        Ok(prev)
    }
}

/// The conformance-suite harness on this backend, optionally seen through a store wrapper.
#[cfg(feature = "testkit")]
pub mod testing {
    use std::sync::Arc;

    use rudder_store::testkit::Harness;
    use rudder_store::Store;

    use crate::{RedbOptions, RedbStore};

    /// A fresh store in a temporary directory; `restart` closes it and opens the same files.
    pub struct RedbHarness {
        dir: tempfile::TempDir,
        store: Option<RedbStore>,
        wrap: fn(Arc<dyn Store>) -> Arc<dyn Store>,
    }

    impl RedbHarness {
        /// The store as it is.
        pub fn new() -> RedbHarness {
            RedbHarness::wrapped(|s| s)
        }

        /// The store as `wrap` presents it (encryption, …), over the same files.
        pub fn wrapped(wrap: fn(Arc<dyn Store>) -> Arc<dyn Store>) -> RedbHarness {
            RedbHarness {
                dir: tempfile::tempdir().expect("temp dir"),
                store: None,
                wrap,
            }
        }

        async fn open(&mut self) -> Arc<dyn Store> {
            let store = RedbStore::open(self.dir.path().join("state.redb"), RedbOptions::default())
                .await
                .expect("open redb store");
            self.store = Some(store.clone());
            (self.wrap)(Arc::new(store))
        }
    }

    impl Default for RedbHarness {
        fn default() -> Self {
            Self::new()
        }
    }

    #[async_trait::async_trait]
    impl Harness for RedbHarness {
        async fn store(&mut self) -> Arc<dyn Store> {
            self.open().await
        }

        async fn restart(&mut self) -> Arc<dyn Store> {
            if let Some(old) = self.store.take() {
                old.close().await;
            }
            self.open().await
        }
    }
}
