//! A watcher that cannot keep up is ended with a resumable error, never silently skipped, and
//! the store's memory for it stays bounded by the configured backlog.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{Store, StoreError, WriteOptions};
use rudder_store_redb::{RedbOptions, RedbStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_watcher_gets_watcher_lagged() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RedbOptions {
        watch_backlog: 4,
        watcher_buffer: 2,
        ..RedbOptions::default()
    };
    let store = RedbStore::open(dir.path().join("s.redb"), opts)
        .await
        .unwrap();
    let start = store.current_revision().await.unwrap();
    let mut w = store.watch("/", start).await.unwrap();
    // Sequential writes: one committed batch each, far more than the backlog holds.
    for i in 0..100 {
        store
            .create(&format!("/k{i}"), Bytes::from("v"), WriteOptions::default())
            .await
            .unwrap();
    }
    let mut last = start;
    let err = loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(ev)) => {
                assert_eq!(ev.revision(), last + 1, "no gap before the error");
                last = ev.revision();
            }
            Some(Err(e)) => break e,
            None => panic!("stream ended without an error"),
        }
    };
    assert_eq!(err, StoreError::WatcherLagged);
    assert!(last < start + 100, "the watcher really fell behind");
    assert!(w.next().await.is_none(), "the stream ends after the error");
    // Resuming from the last revision seen delivers everything else.
    let mut w = store.watch("/", last).await.unwrap();
    while last < start + 100 {
        let ev = w.next().await.unwrap().unwrap();
        assert_eq!(ev.revision(), last + 1);
        last = ev.revision();
    }
}
