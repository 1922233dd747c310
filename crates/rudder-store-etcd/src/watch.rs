//! Turning one etcd watch into a [`WatchStream`].
//!
//! Every watch gets its own gRPC stream, read eagerly by a task of its own into a queue the
//! consumer drains. The consumer's pace never pushes back on the gRPC stream: hyper's HTTP/2
//! returns connection-level flow-control credit only as a stream's data is consumed, so a few
//! stalled watch streams would use up the connection's window and stall every other request to
//! etcd on it. Instead, a consumer that lets more than `watch_buffer` events pile up is ended
//! with [`StoreError::WatcherLagged`]; it recovers cheaply by watching again from the last
//! revision it saw, which etcd replays from its history.
//!
//! The bound is checked when a response arrives, not per event, because etcd delivers history
//! in responses of up to 1,000 revisions: a consumer that keeps up must not be ended just
//! because one response is larger than its buffer. The queue therefore holds at most
//! `watch_buffer` events plus one response.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use etcd_client::{EventType, WatchResponse};
use futures::Stream;
use rudder_store::{Revision, StoreError, WatchEvent, WatchStream};
use tokio::sync::mpsc;

use crate::error::watch_stream_error;
use crate::KeyCodec;

type Item = Result<WatchEvent, StoreError>;

/// What a watch task needs besides the etcd stream.
pub(crate) struct WatchTask {
    pub(crate) stream: etcd_client::WatchStream,
    pub(crate) watch_id: i64,
    pub(crate) codec: KeyCodec,
    /// The revision the watch was asked to start after, for `Compacted` errors.
    pub(crate) after: Revision,
    /// The store's best knowledge of the compaction point, raised when etcd reports one.
    pub(crate) compacted: Arc<AtomicI64>,
    /// Most events queued for the consumer before a new response ends the watch.
    pub(crate) buffer: usize,
}

/// The consumer's end: counts down the backlog as it takes events.
struct Events {
    rx: mpsc::UnboundedReceiver<Item>,
    backlog: Arc<AtomicUsize>,
}

impl Stream for Events {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
        polled
    }
}

impl WatchTask {
    /// Start the task; dropping the returned stream ends it, and with it etcd's watch.
    pub(crate) fn spawn(self, first: Option<WatchResponse>) -> WatchStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        tokio::spawn(self.run(first, tx, backlog.clone()));
        Box::pin(Events { rx, backlog })
    }

    async fn run(
        mut self,
        first: Option<WatchResponse>,
        tx: mpsc::UnboundedSender<Item>,
        backlog: Arc<AtomicUsize>,
    ) {
        let mut pending = first;
        let end = loop {
            let resp = match pending.take() {
                Some(resp) => resp,
                None => {
                    let msg = tokio::select! {
                        biased;
                        _ = tx.closed() => {
                            // The consumer is gone. Cancel politely; dropping the stream
                            // resets it anyway, which makes etcd drop the watcher too.
                            let _ = self.stream.cancel(self.watch_id).await;
                            return;
                        }
                        msg = self.stream.message() => msg,
                    };
                    match msg {
                        Ok(Some(resp)) => resp,
                        Ok(None) => {
                            break StoreError::Unavailable("etcd closed the watch stream".into())
                        }
                        Err(e) => break watch_stream_error(e),
                    }
                }
            };
            if !resp.events().is_empty() && backlog.load(Ordering::Acquire) > self.buffer {
                break StoreError::WatcherLagged;
            }
            match self.forward(&resp, &tx, &backlog) {
                Ok(()) => {}
                Err(Some(err)) => break err,
                Err(None) => return,
            }
        };
        drop(self.stream);
        match &end {
            StoreError::WatcherLagged => {
                tracing::debug!(after = self.after, "etcd watcher lagged; ending it")
            }
            StoreError::Compacted { .. } => {
                tracing::debug!(after = self.after, "etcd watch start compacted")
            }
            err => tracing::warn!(%err, "etcd watch ended"),
        }
        let _ = tx.send(Err(end));
    }

    /// Queue the events of one response. `Err(Some(e))` ends the watch with `e`; `Err(None)`
    /// ends it silently because nobody listens any more.
    fn forward(
        &self,
        resp: &WatchResponse,
        tx: &mpsc::UnboundedSender<Item>,
        backlog: &AtomicUsize,
    ) -> Result<(), Option<StoreError>> {
        if resp.compact_revision() > 0 {
            let compacted = resp.compact_revision();
            self.compacted.fetch_max(compacted, Ordering::AcqRel);
            return Err(Some(StoreError::Compacted {
                requested: self.after,
                compacted,
            }));
        }
        if resp.canceled() {
            return Err(Some(StoreError::Unavailable(format!(
                "etcd canceled the watch: {}",
                resp.cancel_reason()
            ))));
        }
        for ev in resp.events() {
            let event = self.convert(ev).map_err(Some)?;
            // Count before sending, so the consumer's decrement never comes first.
            backlog.fetch_add(1, Ordering::AcqRel);
            if tx.send(Ok(event)).is_err() {
                return Err(None);
            }
        }
        Ok(())
    }

    fn convert(&self, ev: &etcd_client::Event) -> Result<WatchEvent, StoreError> {
        let kv = ev
            .kv()
            .ok_or_else(|| StoreError::Internal("etcd watch event without a key".into()))?;
        let prev = ev.prev_kv().map(|p| self.codec.decode_kv(p)).transpose()?;
        match ev.event_type() {
            EventType::Put => Ok(WatchEvent::Put {
                kv: self.codec.decode_kv(kv)?,
                prev,
            }),
            EventType::Delete => {
                // etcd omits the previous value only if it was compacted away meanwhile; as in
                // kube-apiserver, a delete without it cannot be delivered.
                let prev = prev.ok_or_else(|| {
                    StoreError::Internal(format!(
                        "etcd delete event at revision {} without the previous value",
                        kv.mod_revision()
                    ))
                })?;
                Ok(WatchEvent::Delete {
                    revision: kv.mod_revision(),
                    prev,
                })
            }
        }
    }
}
