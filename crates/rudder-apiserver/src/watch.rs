//! Watch responses: a chunked stream of `{"type": …, "object": …}` lines fed by the watch cache,
//! with selector transitions (an object leaving a selector is DELETED for that watcher),
//! bookmarks, the WatchList protocol's initial-events-end bookmark, and timeouts.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use http::{header, HeaderValue, StatusCode};
use rudder_api::selector::fields::FieldSelector;
use rudder_api::selector::labels::Selector;
use rudder_api::status::ApiError;
use rudder_registry::{CacheEvent, CacheWatch, CachedObject, Entry, EventKind, WatchCache};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::encode::{self, Output};

/// How often an idle watch that allows bookmarks gets one (upstream: about every minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

pub struct WatchSpec {
    pub entry: Arc<Entry>,
    pub label_selector: Option<Selector>,
    pub field_selector: Option<FieldSelector>,
    pub output: Output,
    pub bookmarks: bool,
    /// The WatchList protocol: mark the end of the initial events with a bookmark.
    pub initial_events_end: bool,
    pub timeout: Duration,
}

fn matches(spec: &WatchSpec, o: &CachedObject) -> bool {
    spec.label_selector
        .as_ref()
        .is_none_or(|s| s.matches(&o.labels))
        && spec
            .field_selector
            .as_ref()
            .is_none_or(|s| s.matches(&Fields(o)))
}

struct Fields<'a>(&'a CachedObject);

impl rudder_api::selector::fields::Fields for Fields<'_> {
    fn get_field(&self, field: &str) -> Option<&str> {
        self.0.field(field)
    }
}

/// What one watcher sees of a cache event, after its selectors.
fn visible(spec: &WatchSpec, ev: &CacheEvent) -> Option<(&'static str, Arc<CachedObject>)> {
    let now = matches(spec, &ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| matches(spec, p));
    match ev.kind {
        EventKind::Added => now.then(|| ("ADDED", ev.object.clone())),
        EventKind::Deleted => now.then(|| ("DELETED", ev.object.clone())),
        EventKind::Modified => match (before, now) {
            (true, true) => Some(("MODIFIED", ev.object.clone())),
            (false, true) => Some(("ADDED", ev.object.clone())),
            (true, false) => Some(("DELETED", ev.object.clone())),
            (false, false) => None,
        },
    }
}

struct Encoder {
    entry: Arc<Entry>,
    output: Output,
    sent_table_header: bool,
}

impl Encoder {
    /// One event line, and whether the watch goes on: an object that cannot be converted to
    /// the watched version (its conversion webhook failed) gives an ERROR event and ends it.
    /// Upstream's watch server ends the stream without an event there (it logs the encode
    /// error); the ERROR event tells the client why its watch ended.
    async fn event(&mut self, kind: &str, o: &Arc<CachedObject>) -> (Bytes, bool) {
        // Every event of every watch passes here: only webhook-converted versions go
        // through the (async, batching) conversion call.
        if self.entry.converter.is_none() {
            let o = encode::in_version(&self.entry, o);
            return (self.encoded(kind, &o), true);
        }
        let o = match encode::in_version_all(&self.entry, std::slice::from_ref(o)).await {
            Ok(mut v) => match v.pop() {
                Some(o) => o,
                None => return (Bytes::new(), false),
            },
            Err(e) => {
                let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_json()}))
                    .unwrap_or_default();
                line.push(b'\n');
                return (Bytes::from(line), false);
            }
        };
        (self.encoded(kind, &o), true)
    }

    fn encoded(&mut self, kind: &str, o: &Arc<CachedObject>) -> Bytes {
        let line = match self.output {
            Output::Json | Output::Yaml => {
                // The object's cached JSON is spliced in, not re-encoded.
                let mut buf = Vec::with_capacity(o.json.len() + 32);
                buf.extend_from_slice(b"{\"type\":\"");
                buf.extend_from_slice(kind.as_bytes());
                buf.extend_from_slice(b"\",\"object\":");
                buf.extend_from_slice(&o.json);
                buf.extend_from_slice(b"}\n");
                return Bytes::from(buf);
            }
            Output::Table(include) => {
                let table = encode::table(
                    &self.entry,
                    &[&o.value()],
                    include,
                    Some(rudder_api::meta::format_resource_version(o.revision)),
                    None,
                );
                match table {
                    Ok(mut t) => {
                        // Column definitions only in the first event, as upstream's
                        // watchEmbeddedEncoder does.
                        if self.sent_table_header {
                            t["columnDefinitions"] = Value::Array(vec![]);
                        }
                        self.sent_table_header = true;
                        json!({"type": kind, "object": t})
                    }
                    Err(e) => json!({"type": "ERROR", "object": e.to_json()}),
                }
            }
            Output::PartialMetadata | Output::PartialMetadataList => {
                json!({"type": kind, "object": encode::partial_metadata(&o.value())})
            }
        };
        line_bytes(&line)
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Bytes {
        let mut meta =
            json!({"resourceVersion": rudder_api::meta::format_resource_version(revision)});
        if initial_events_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let (api_version, kind) = match self.output {
            Output::Table(_) => ("meta.k8s.io/v1".to_string(), "Table".to_string()),
            Output::PartialMetadata | Output::PartialMetadataList => (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadata".to_string(),
            ),
            _ => (self.entry.info.api_version(), self.entry.info.kind.clone()),
        };
        line_bytes(
            &json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": meta}}),
        )
    }
}

fn line_bytes(v: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// An ERROR event, for failures found once the stream is open (e.g. 410 Gone).
pub fn error_stream(err: &ApiError) -> Response {
    let body = line_bytes(&json!({"type": "ERROR", "object": err.to_json()}));
    stream_response(futures::stream::iter([Ok::<_, std::io::Error>(body)]))
}

fn stream_response<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
{
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(encode::JSON));
    // Tells the compression layer to leave the stream alone.
    resp.headers_mut()
        .insert("x-rudder-stream", HeaderValue::from_static("1"));
    resp
}

/// Serve a registered cache watch as a streaming response.
pub fn serve(cache: Arc<WatchCache>, watch: CacheWatch, spec: WatchSpec) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(pump(cache, watch, spec, tx));
    stream_response(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn pump(
    cache: Arc<WatchCache>,
    mut watch: CacheWatch,
    spec: WatchSpec,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut enc = Encoder {
        entry: spec.entry.clone(),
        output: spec.output,
        sent_table_header: false,
    };
    let mut last_sent = watch.revision;
    for ev in std::mem::take(&mut watch.initial) {
        if let Some((kind, obj)) = visible(&spec, &ev) {
            let (line, ok) = enc.event(kind, &obj).await;
            if tx.send(Ok(line)).await.is_err() || !ok {
                return;
            }
        }
    }
    if spec.initial_events_end
        && tx
            .send(Ok(enc.bookmark(watch.revision, true)))
            .await
            .is_err()
    {
        return;
    }
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut bookmark = tokio::time::interval_at(
        tokio::time::Instant::now() + BOOKMARK_INTERVAL,
        BOOKMARK_INTERVAL,
    );
    loop {
        tokio::select! {
            ev = watch.live.recv() => {
                let Some(ev) = ev else { return }; // closed: fell behind or the cache relisted
                last_sent = last_sent.max(ev.revision);
                if let Some((kind, obj)) = visible(&spec, &ev) {
                    let (line, ok) = enc.event(kind, &obj).await;
                    if tx.send(Ok(line)).await.is_err() || !ok {
                        return;
                    }
                }
            }
            _ = bookmark.tick(), if spec.bookmarks => {
                // Everything up to the cache's revision has been dispatched to our channel:
                // drain it, then the bookmark cannot overtake an event.
                let revision = cache.revision();
                while let Ok(ev) = watch.live.try_recv() {
                    if let Some((kind, obj)) = visible(&spec, &ev) {
                        let (line, ok) = enc.event(kind, &obj).await;
                        if tx.send(Ok(line)).await.is_err() || !ok {
                            return;
                        }
                    }
                }
                if revision > last_sent && tx.send(Ok(enc.bookmark(revision, false))).await.is_err() {
                    return;
                }
                last_sent = last_sent.max(revision);
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
        }
    }
}
