//! The etcd v3 backend of [`rudder_store::Store`], for running Rudder on an existing etcd
//! cluster as kube-apiserver does.
//!
//! The store interface was modelled on etcd, so most operations are one etcd request:
//! - conditional writes are single transactions comparing `create_revision` (create) or
//!   `mod_revision` (update, delete), whose failure branch reads the key, so a conflict costs no
//!   second round trip and reports the value that won;
//! - reads at a revision, paginated lists and counts are plain `Range` requests;
//! - a watch is an etcd watch from `after + 1` with previous values, one gRPC stream each;
//! - TTLs are etcd leases, shared between writes (see `lease.rs`).
//!
//! etcd's own revision is the store revision, so `resourceVersion`s stay meaningful if another
//! etcd client (or a second API server) writes to the same keys.
//!
//! Where etcd cannot match the embedded store exactly:
//! - `StoreError::Compacted::compacted` is a lower bound: etcd's error does not name the
//!   compaction point, so the store reports the highest one it has seen (or `requested + 1`);
//! - TTLs are whole seconds, at least etcd's minimum lease (1.5 election timeouts, about 2 s),
//!   and may run up to 5% (at most 60 s) long because leases are shared;
//! - a write that times out or loses its connection mid-flight fails with `Unavailable` though
//!   etcd may have applied it, as with any etcd client;
//! - a watch from a compacted revision fails with its first item rather than from `watch()`,
//!   since etcd acknowledges the watch before cancelling it.

mod error;
mod lease;
pub mod testing;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    GetResponse, KvClient, PutOptions, ResponseHeader, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchClient, WatchOptions,
};
use rudder_store::{
    KeyValue, RangeRequest, RangeResponse, Result, Revision, Store, StoreError, WatchStream,
    WriteOptions,
};

use crate::error::{classify, EtcdFailure};
use crate::lease::{ttl_seconds, LeaseManager};

/// Largest gRPC message accepted from etcd. A list of many objects or a watch response can
/// exceed tonic's 4 MiB default by far; kube-apiserver lifts the limit to `math.MaxInt32` for
/// the same reason.
const MAX_MESSAGE: usize = i32::MAX as usize;

/// Client certificates for an etcd cluster that serves TLS (endpoints `https://...`).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// PEM bundle of the CA that signed the etcd members' server certificates.
    pub ca_pem: PathBuf,
    /// PEM client certificate, for etcd's `--client-cert-auth`; needs `key_pem`.
    pub cert_pem: Option<PathBuf>,
    /// PEM private key of `cert_pem`.
    pub key_pem: Option<PathBuf>,
}

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs of the members, e.g. `http://127.0.0.1:2379`; list every member of a cluster
    /// so that requests move to another one when a member fails.
    pub endpoints: Vec<String>,
    /// Needed when the endpoints are `https://`; refused with `http://` ones, so that a
    /// certificate is never silently unused.
    pub tls: Option<EtcdTls>,
    /// Prepended to every key (kube-apiserver's `--etcd-prefix`), so that several clusters or
    /// tests can share one etcd. Keys returned are stripped of it.
    pub prefix: Option<String>,
    /// Bound on each request, retries included (for a watch: on its creation). Reads are
    /// retried within it while members are unreachable or leaderless, so this is how long an
    /// outage is ridden out before callers see `Unavailable`.
    pub request_timeout: Duration,
    /// Events buffered per watch before a consumer that does not keep up is ended with
    /// `WatcherLagged` (see `watch.rs` for why it is not slowed down instead).
    pub watch_buffer: usize,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            tls: None,
            prefix: None,
            request_timeout: Duration::from_secs(30),
            watch_buffer: 1024,
        }
    }
}

impl EtcdTls {
    async fn client_config(&self) -> Result<etcd_client::TlsOptions> {
        let ca = read_pem(&self.ca_pem).await?;
        let mut config =
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(ca));
        match (&self.cert_pem, &self.key_pem) {
            (Some(cert), Some(key)) => {
                let identity =
                    etcd_client::Identity::from_pem(read_pem(cert).await?, read_pem(key).await?);
                config = config.identity(identity);
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::InvalidRequest(
                    "an etcd client certificate needs its key, and the key its certificate".into(),
                ))
            }
        }
        Ok(config)
    }
}

async fn read_pem(path: &std::path::Path) -> Result<Vec<u8>> {
    tokio::fs::read(path)
        .await
        .map_err(|e| StoreError::InvalidRequest(format!("cannot read {}: {e}", path.display())))
}

/// The store on etcd. Cheap to clone: clones share one connection.
#[derive(Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    kv: KvClient,
    watch: WatchClient,
    codec: KeyCodec,
    timeout: Duration,
    watch_buffer: usize,
    leases: LeaseManager,
    /// The highest compaction point this store has seen. etcd's "compacted" error does not say
    /// where the compaction point is, so this is what `StoreError::Compacted` reports.
    compacted: Arc<AtomicI64>,
}

/// Maps store keys to etcd keys and back (the optional prefix).
#[derive(Clone)]
pub(crate) struct KeyCodec {
    prefix: Arc<str>,
}

impl KeyCodec {
    fn encode(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + key.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(key.as_bytes());
        out
    }

    /// The etcd key range `[start, end)` of the store keys starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let full = format!("{}{prefix}", self.prefix);
        if full.is_empty() {
            // etcd has no empty key: `\0` up to "end `\0`" is its spelling of every key.
            return (vec![0], vec![0]);
        }
        let end = rudder_store::prefix_end(&full);
        (full.into_bytes(), end)
    }

    /// Some key to read when only the response header matters.
    fn probe_key(&self) -> Vec<u8> {
        if self.prefix.is_empty() {
            b"/".to_vec()
        } else {
            self.prefix.as_bytes().to_vec()
        }
    }

    pub(crate) fn decode_key(&self, raw: &[u8]) -> Result<String> {
        let rest = raw.strip_prefix(self.prefix.as_bytes()).ok_or_else(|| {
            StoreError::Internal(format!(
                "etcd returned key {:?} outside the prefix {:?}",
                String::from_utf8_lossy(raw),
                self.prefix
            ))
        })?;
        String::from_utf8(rest.to_vec())
            .map_err(|_| StoreError::Internal("etcd returned a key that is not UTF-8".into()))
    }

    pub(crate) fn decode_kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        Ok(KeyValue {
            key: self.decode_key(kv.key())?,
            value: Bytes::copy_from_slice(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// As `decode_kv`, but takes the value's buffer instead of copying it (lists are large).
    fn decode_owned(&self, kv: etcd_client::KeyValue) -> Result<KeyValue> {
        let (create_revision, mod_revision) = (kv.create_revision(), kv.mod_revision());
        let (key, value) = kv.into_key_value();
        Ok(KeyValue {
            key: self.decode_key(&key)?,
            value: Bytes::from(value),
            create_revision,
            mod_revision,
        })
    }
}

/// Which failures of a request are worth sending it again for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Retry {
    /// A read: any sign of an unavailable member or a broken connection.
    Idempotent,
    /// A write: only failures that prove the request never left, since a write that may have
    /// been applied must not be applied twice.
    IfUnsent,
}

/// Run one etcd request under the request timeout, sending it again while that is safe and
/// useful. Retrying is what makes a list of endpoints fail over: tonic's balancer keeps
/// picking a member that is down, each pick failing at once with a connect error, so the next
/// attempt usually lands on a live member.
pub(crate) async fn call<T, F, Fut>(
    timeout: Duration,
    retry: Retry,
    mut request: F,
) -> std::result::Result<T, EtcdFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Duration::from_millis(5);
    loop {
        let failure = match tokio::time::timeout_at(deadline, request()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => classify(e),
            Err(_) => {
                return Err(EtcdFailure::Other(StoreError::Unavailable(format!(
                    "etcd did not answer within {timeout:?}"
                ))))
            }
        };
        let again = matches!(
            (&failure, retry),
            (EtcdFailure::Unsent(_), _)
                | (
                    EtcdFailure::Other(StoreError::Unavailable(_)),
                    Retry::Idempotent
                )
        );
        if !again || tokio::time::Instant::now() + backoff >= deadline {
            return Err(failure);
        }
        tracing::debug!(?failure, "etcd request failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

fn header_revision(header: Option<&ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Internal("etcd response without a header".into()))
}

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StoreError::InvalidRequest("empty key".into()));
    }
    Ok(())
}

impl EtcdStore {
    /// Connect to etcd and check that it answers, so that a wrong endpoint or certificate fails
    /// at startup instead of on the first request.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        if config.endpoints.is_empty() {
            return Err(StoreError::InvalidRequest("no etcd endpoints given".into()));
        }
        // Keepalive pings find a dead connection (a member that vanished without closing its
        // sockets) so that watches end instead of waiting forever; 30 s and 10 s are
        // kube-apiserver's values. Pings only while streams are open: etcd answers idle pings
        // more often than every 5 s with GOAWAY. Requiring a leader makes a partitioned member
        // fail requests and cancel watches instead of serving them stale.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10))
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls.client_config().await?);
        }
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|e| classify(e).into_store_error())?;
        let store = EtcdStore {
            inner: Arc::new(Inner {
                kv: client.kv_client().max_decoding_message_size(MAX_MESSAGE),
                watch: client.watch_client().max_decoding_message_size(MAX_MESSAGE),
                client,
                codec: KeyCodec {
                    prefix: config.prefix.unwrap_or_default().into(),
                },
                timeout: config.request_timeout,
                watch_buffer: config.watch_buffer,
                leases: LeaseManager::default(),
                compacted: Arc::new(AtomicI64::new(0)),
            }),
        };
        let revision = store.current_revision().await?;
        tracing::info!(endpoints = ?config.endpoints, revision, "connected to etcd");
        Ok(store)
    }

    async fn call<T, F, Fut>(&self, retry: Retry, request: F) -> std::result::Result<T, EtcdFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        call(self.inner.timeout, retry, request).await
    }

    /// A `Range` request; reads are always safe to retry.
    async fn get_raw(
        &self,
        key: Vec<u8>,
        options: GetOptions,
    ) -> std::result::Result<GetResponse, EtcdFailure> {
        self.call(Retry::Idempotent, || {
            let mut kv = self.inner.kv.clone();
            let (key, options) = (key.clone(), options.clone());
            async move { kv.get(key, Some(options)).await }
        })
        .await
    }

    /// A write transaction, sent again only if it certainly did not reach etcd.
    async fn txn_raw(&self, txn: Txn) -> std::result::Result<TxnResponse, EtcdFailure> {
        self.call(Retry::IfUnsent, || {
            let mut kv = self.inner.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// The store error for a failed read or compaction at `requested`, with the revisions
    /// etcd's message leaves out filled in as well as this store knows them.
    async fn revision_error(&self, failure: EtcdFailure, requested: Revision) -> StoreError {
        match failure {
            EtcdFailure::Compacted => StoreError::Compacted {
                requested,
                compacted: self.compaction_floor(requested),
            },
            EtcdFailure::FutureRevision => StoreError::FutureRevision {
                requested,
                current: self
                    .current_revision()
                    .await
                    .unwrap_or(requested.saturating_sub(1)),
            },
            other => other.into_store_error(),
        }
    }

    /// A lower bound of the compaction point, given that `requested` was refused as compacted
    /// (etcd refuses revisions strictly below it).
    fn compaction_floor(&self, requested: Revision) -> Revision {
        self.inner
            .compacted
            .load(Ordering::Acquire)
            .max(requested.saturating_add(1))
    }

    /// Send a write transaction built by `build` (given the put options carrying the lease, if
    /// any). A cached lease can vanish under us (etcd revoked it, or was restored from an older
    /// snapshot); etcd then refuses the whole transaction, so it is retried once with a new one.
    async fn write_txn(
        &self,
        ttl: Option<Duration>,
        build: impl Fn(Option<PutOptions>) -> Txn,
    ) -> Result<TxnResponse> {
        let ttl = ttl.map(ttl_seconds);
        let mut retried = false;
        loop {
            let lease = match ttl {
                Some(secs) => Some((
                    secs,
                    self.inner
                        .leases
                        .lease_for(&self.inner.client, secs, self.inner.timeout)
                        .await
                        .map_err(EtcdFailure::into_store_error)?,
                )),
                None => None,
            };
            let put = lease.map(|(_, id)| PutOptions::new().with_lease(id));
            match self.txn_raw(build(put)).await {
                Ok(resp) => return Ok(resp),
                Err(EtcdFailure::LeaseNotFound) if !retried => {
                    if let Some((secs, id)) = lease {
                        tracing::debug!(lease = id, "cached etcd lease is gone; granting anew");
                        self.inner.leases.forget(secs, id).await;
                    }
                    retried = true;
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
    }

    /// The result of a conditional write whose comparison failed: the failure branch read the
    /// key, so it says whether the key is missing or holds another revision.
    fn conflict(&self, resp: &TxnResponse, key: &str, expected: Revision) -> StoreError {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(mut get) => Some(get.take_kvs()),
            _ => None,
        });
        match current.and_then(|kvs| kvs.into_iter().next()) {
            None => StoreError::NotFound {
                key: key.to_string(),
            },
            Some(kv) => match self.inner.codec.decode_owned(kv) {
                Ok(kv) => StoreError::Conflict {
                    key: key.to_string(),
                    expected,
                    current: Some(Box::new(kv)),
                },
                Err(e) => e,
            },
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    fn backend_name(&self) -> &'static str {
        "etcd"
    }

    async fn get(
        &self,
        key: &str,
        revision: Option<Revision>,
    ) -> Result<(Option<KeyValue>, Revision)> {
        validate_key(key)?;
        let revision = revision.filter(|&r| r > 0);
        let mut options = GetOptions::new();
        if let Some(rev) = revision {
            options = options.with_revision(rev);
        }
        let mut resp = match self.get_raw(self.inner.codec.encode(key), options).await {
            Ok(resp) => resp,
            Err(failure) => return Err(self.revision_error(failure, revision.unwrap_or(0)).await),
        };
        let served_at = match revision {
            Some(rev) => rev,
            None => header_revision(resp.header())?,
        };
        let kv = resp
            .take_kvs()
            .into_iter()
            .next()
            .map(|kv| self.inner.codec.decode_owned(kv))
            .transpose()?;
        Ok((kv, served_at))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let codec = &self.inner.codec;
        let (mut start, end) = codec.prefix_range(&req.prefix);
        if let Some(after) = req.start_after.as_deref() {
            if after >= req.prefix.as_str() {
                // The smallest key after `after`.
                start = codec.encode(after);
                start.push(0);
            }
        }
        let revision = req.revision.filter(|&r| r > 0);
        let mut options = GetOptions::new().with_range(end);
        if req.limit > 0 {
            options = options.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        if let Some(rev) = revision {
            options = options.with_revision(rev);
        }
        let mut resp = match self.get_raw(start, options).await {
            Ok(resp) => resp,
            Err(failure) => return Err(self.revision_error(failure, revision.unwrap_or(0)).await),
        };
        let served_at = match revision {
            Some(rev) => rev,
            None => header_revision(resp.header())?,
        };
        let more = resp.more();
        let kvs = resp
            .take_kvs()
            .into_iter()
            .map(|kv| codec.decode_owned(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResponse {
            kvs,
            revision: served_at,
            more,
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let (start, end) = self.inner.codec.prefix_range(prefix);
        let options = GetOptions::new().with_range(end).with_count_only();
        let resp = self
            .get_raw(start, options)
            .await
            .map_err(EtcdFailure::into_store_error)?;
        Ok(u64::try_from(resp.count()).unwrap_or(0))
    }

    async fn create(&self, key: &str, value: Bytes, opts: WriteOptions) -> Result<Revision> {
        validate_key(key)?;
        let full = self.inner.codec.encode(key);
        let resp = self
            .write_txn(opts.ttl, |put| {
                Txn::new()
                    .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(full.clone(), value.to_vec(), put)])
            })
            .await?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists {
                key: key.to_string(),
            });
        }
        header_revision(resp.header())
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
        opts: WriteOptions,
    ) -> Result<Revision> {
        validate_key(key)?;
        let full = self.inner.codec.encode(key);
        let resp = self
            .write_txn(opts.ttl, |put| {
                Txn::new()
                    .when([
                        Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
                        // A missing key has mod_revision 0: without this, `expected` 0 would
                        // create it.
                        Compare::version(full.clone(), CompareOp::Greater, 0),
                    ])
                    .and_then([TxnOp::put(full.clone(), value.to_vec(), put)])
                    .or_else([TxnOp::get(full.clone(), None)])
            })
            .await?;
        if !resp.succeeded() {
            return Err(self.conflict(&resp, key, expected));
        }
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(Revision, KeyValue)> {
        validate_key(key)?;
        let full = self.inner.codec.encode(key);
        let compare: Vec<Compare> = expected
            .map(|rev| Compare::mod_revision(full.clone(), CompareOp::Equal, rev))
            .into_iter()
            .collect();
        let txn = Txn::new()
            .when(compare)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let resp = self
            .txn_raw(txn)
            .await
            .map_err(EtcdFailure::into_store_error)?;
        if !resp.succeeded() {
            return Err(self.conflict(&resp, key, expected.unwrap_or(0)));
        }
        let prev = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(mut del) => del.take_prev_kvs().pop(),
            _ => None,
        });
        // Deleting a missing key succeeds in etcd, without a new revision; here it is NotFound.
        let prev = prev.ok_or_else(|| StoreError::NotFound {
            key: key.to_string(),
        })?;
        Ok((
            header_revision(resp.header())?,
            self.inner.codec.decode_owned(prev)?,
        ))
    }

    async fn current_revision(&self) -> Result<Revision> {
        let options = GetOptions::new().with_count_only();
        let resp = self
            .get_raw(self.inner.codec.probe_key(), options)
            .await
            .map_err(EtcdFailure::into_store_error)?;
        header_revision(resp.header())
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        let (key, end) = self.inner.codec.prefix_range(prefix);
        // etcd's start revision is inclusive, and 0 would mean "from now".
        let start = after.saturating_add(1).max(1);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(start)
            .with_prev_key();
        // Wait for etcd to acknowledge the watch, so that an unreachable etcd fails here (after
        // the retries) and what the caller gets is a watch that exists.
        let (stream, first) = self
            .call(Retry::Idempotent, || {
                let mut client = self.inner.watch.clone();
                let (key, options) = (key.clone(), options.clone());
                async move {
                    let mut stream = client.watch(key, Some(options)).await?;
                    match stream.message().await? {
                        Some(first) => Ok((stream, first)),
                        None => Err(etcd_client::Error::WatchError(
                            "etcd closed the watch before creating it".into(),
                        )),
                    }
                }
            })
            .await
            .map_err(EtcdFailure::into_store_error)?;
        if first.compact_revision() > 0 {
            let compacted = first.compact_revision();
            self.inner.compacted.fetch_max(compacted, Ordering::AcqRel);
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        if first.canceled() {
            return Err(StoreError::Internal(format!(
                "etcd refused the watch: {}",
                first.cancel_reason()
            )));
        }
        let task = watch::WatchTask {
            stream,
            watch_id: first.watch_id(),
            codec: self.inner.codec.clone(),
            after,
            compacted: self.inner.compacted.clone(),
            buffer: self.inner.watch_buffer,
        };
        Ok(task.spawn(Some(first)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // A physical compaction returns once the history is gone from disk, which on a large
        // database takes longer than an ordinary request. Not retried after an ambiguous
        // failure: a second attempt would report the first one's success as `Compacted`.
        let timeout = self.inner.timeout.max(Duration::from_secs(300));
        let options = CompactionOptions::new().with_physical();
        let result = call(timeout, Retry::IfUnsent, || {
            let mut kv = self.inner.kv.clone();
            let options = options.clone();
            async move { kv.compact(revision, Some(options)).await }
        })
        .await;
        match result {
            Ok(_) => {
                self.inner.compacted.fetch_max(revision, Ordering::AcqRel);
                Ok(())
            }
            Err(EtcdFailure::Compacted) => Err(StoreError::Compacted {
                requested: revision,
                compacted: self.inner.compacted.load(Ordering::Acquire).max(revision),
            }),
            Err(failure) => Err(self.revision_error(failure, revision).await),
        }
    }
}
