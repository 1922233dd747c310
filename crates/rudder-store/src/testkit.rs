//! The store conformance suite. Every backend instantiates it with
//! [`store_conformance_tests!`](crate::store_conformance_tests), so all of them are held to the
//! same etcd semantics.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{RangeRequest, Store, StoreError, WatchEvent, WatchStream, WriteOptions};

/// How a test gets at a backend: a fresh, empty store, and a full restart on the same data.
#[async_trait::async_trait]
pub trait Harness: Send {
    /// The store. Each harness starts empty.
    async fn store(&mut self) -> Arc<dyn Store>;
    /// Stop the store completely (its watches end) and start it again on the same data.
    async fn restart(&mut self) -> Arc<dyn Store>;
}

/// Generates one `#[tokio::test]` per conformance case. `$harness` is an async function (path)
/// returning a [`Harness`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:path) => {
        $crate::store_conformance_tests!(@cases $harness;
            create_and_get, revisions_are_global_and_dense, update_is_compare_and_swap,
            delete_is_compare_and_swap, get_at_past_revision, range_pages_are_one_snapshot,
            range_respects_prefix_boundaries, count_counts_prefix, compaction_errors,
            future_revision_is_refused, invalid_key_is_refused, watch_sees_changes_in_order,
            watch_replays_from_past_revision, watch_filters_by_prefix, concurrent_cas_loses_no_update,
            watchers_see_every_event_under_concurrent_writes, watch_resumes_after_restart,
            data_survives_restart, ttl_keys_expire, slow_watcher_never_skips,
            compactor_discards_old_history);
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness().await;
                $crate::testkit::$case(harness).await;
            }
        )*
    };
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(w: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within 10s"),
    }
}

pub async fn create_and_get(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    assert!(start >= 1);
    let rev = s
        .create(
            "/registry/configmaps/default/a",
            b("v1"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(rev, start + 1);
    let (kv, read_rev) = s.get("/registry/configmaps/default/a", None).await.unwrap();
    let kv = kv.expect("created key is readable");
    assert_eq!(kv.value, b("v1"));
    assert_eq!(kv.create_revision, rev);
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(read_rev, rev);
    assert_eq!(s.current_revision().await.unwrap(), rev);
    let err = s
        .create(
            "/registry/configmaps/default/a",
            b("v2"),
            WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(
        s.current_revision().await.unwrap(),
        rev,
        "a failed write does not bump the revision"
    );
    let (missing, _) = s
        .get("/registry/configmaps/default/nope", None)
        .await
        .unwrap();
    assert!(missing.is_none());
    // Values are opaque bytes, including empty and non-UTF-8 ones.
    s.create(
        "/bin",
        Bytes::from_static(&[0, 159, 146, 150]),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.get("/bin", None).await.unwrap().0.unwrap().value.as_ref(),
        &[0, 159, 146, 150]
    );
    s.create("/empty", Bytes::new(), WriteOptions::default())
        .await
        .unwrap();
    assert!(s
        .get("/empty", None)
        .await
        .unwrap()
        .0
        .unwrap()
        .value
        .is_empty());
}

pub async fn revisions_are_global_and_dense(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let r1 = s
        .create("/a", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .create("/b", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let r3 = s
        .update("/a", b("2"), r1, WriteOptions::default())
        .await
        .unwrap();
    let (r4, _) = s.delete("/b", None).await.unwrap();
    assert_eq!(
        [r1, r2, r3, r4],
        [start + 1, start + 2, start + 3, start + 4]
    );
    let kv = s.get("/a", None).await.unwrap().0.unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision),
        (r1, r3),
        "update keeps create_revision"
    );
}

pub async fn update_is_compare_and_swap(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/k", b("v1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .update("/k", b("v2"), r1, WriteOptions::default())
        .await
        .unwrap();
    assert!(r2 > r1);
    match s
        .update("/k", b("stale"), r1, WriteOptions::default())
        .await
        .unwrap_err()
    {
        StoreError::Conflict {
            expected, current, ..
        } => {
            assert_eq!(expected, r1);
            let current = current.expect("conflict carries the current value");
            assert_eq!(current.value, b("v2"));
            assert_eq!(current.mod_revision, r2);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get("/k", None).await.unwrap().0.unwrap().value, b("v2"));
    let err = s
        .update("/missing", b("x"), r1, WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

pub async fn delete_is_compare_and_swap(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/k", b("v1"), WriteOptions::default())
        .await
        .unwrap();
    let err = s.delete("/k", Some(r1 + 100)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let (rd, prev) = s.delete("/k", Some(r1)).await.unwrap();
    assert!(rd > r1);
    assert_eq!(prev.value, b("v1"));
    assert_eq!(prev.mod_revision, r1);
    assert!(s.get("/k", None).await.unwrap().0.is_none());
    let err = s.delete("/k", None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let r3 = s
        .create("/k", b("again"), WriteOptions::default())
        .await
        .unwrap();
    let kv = s.get("/k", None).await.unwrap().0.unwrap();
    assert_eq!(
        kv.create_revision, r3,
        "a recreated key starts a new incarnation"
    );
}

pub async fn get_at_past_revision(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/k", b("v1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .update("/k", b("v2"), r1, WriteOptions::default())
        .await
        .unwrap();
    let (r3, _) = s.delete("/k", None).await.unwrap();
    s.create("/other", b("x"), WriteOptions::default())
        .await
        .unwrap();
    assert!(
        s.get("/k", Some(r1 - 1)).await.unwrap().0.is_none(),
        "not yet created"
    );
    let (kv, at) = s.get("/k", Some(r1)).await.unwrap();
    assert_eq!(at, r1);
    assert_eq!(kv.unwrap().value, b("v1"));
    let kv = s.get("/k", Some(r2)).await.unwrap().0.unwrap();
    assert_eq!((kv.value, kv.mod_revision), (b("v2"), r2));
    assert!(s.get("/k", Some(r3)).await.unwrap().0.is_none(), "deleted");
}

pub async fn range_pages_are_one_snapshot(mut h: impl Harness) {
    let s = h.store().await;
    for i in 0..25 {
        s.create(
            &format!("/registry/pods/ns/p{i:02}"),
            b(&format!("v{i}")),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    s.create("/registry/pods0", b("outside"), WriteOptions::default())
        .await
        .unwrap();
    s.create("/registry/pod", b("outside"), WriteOptions::default())
        .await
        .unwrap();
    let first = s
        .range(RangeRequest {
            prefix: "/registry/pods/".into(),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 10);
    assert!(first.more);
    assert_eq!(first.kvs[0].key, "/registry/pods/ns/p00");
    // Writes between pages must not show in later pages of the same list.
    let p15 = s
        .get("/registry/pods/ns/p15", None)
        .await
        .unwrap()
        .0
        .unwrap();
    s.update(
        "/registry/pods/ns/p15",
        b("changed"),
        p15.mod_revision,
        WriteOptions::default(),
    )
    .await
    .unwrap();
    s.delete("/registry/pods/ns/p20", None).await.unwrap();
    s.create("/registry/pods/ns/p12a", b("new"), WriteOptions::default())
        .await
        .unwrap();
    let mut all = first.kvs.clone();
    let mut last = first.kvs.last().unwrap().key.clone();
    loop {
        let page = s
            .range(RangeRequest {
                prefix: "/registry/pods/".into(),
                start_after: Some(last.clone()),
                limit: 10,
                revision: Some(first.revision),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        all.extend(page.kvs.iter().cloned());
        if !page.more {
            break;
        }
        last = page.kvs.last().unwrap().key.clone();
    }
    let keys: Vec<_> = all.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<_> = (0..25)
        .map(|i| format!("/registry/pods/ns/p{i:02}"))
        .collect();
    assert_eq!(keys, expected);
    let p15_seen = all.iter().find(|kv| kv.key.ends_with("p15")).unwrap();
    assert_eq!(p15_seen.value, b("v15"));
    assert_eq!(p15_seen.mod_revision, p15.mod_revision);
    // The latest view shows the changes.
    let latest = s
        .range(RangeRequest {
            prefix: "/registry/pods/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(latest.kvs.len(), 25);
    assert!(!latest.more);
    assert!(latest.kvs.iter().any(|kv| kv.key.ends_with("p12a")));
    assert!(!latest.kvs.iter().any(|kv| kv.key.ends_with("p20")));
    // A limit equal to the item count says there is no more.
    let exact = s
        .range(RangeRequest {
            prefix: "/registry/pods/".into(),
            limit: 25,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(exact.kvs.len(), 25);
    assert!(!exact.more);
}

pub async fn range_respects_prefix_boundaries(mut h: impl Harness) {
    let s = h.store().await;
    for k in [
        "/registry/a",
        "/registry/a/x",
        "/registry/a/y",
        "/registry/ab",
        "/registry/b",
    ] {
        s.create(k, b(k), WriteOptions::default()).await.unwrap();
    }
    let r = s
        .range(RangeRequest {
            prefix: "/registry/a/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/a/x", "/registry/a/y"]);
    assert_eq!(r.revision, s.current_revision().await.unwrap());
    let empty = s
        .range(RangeRequest {
            prefix: "/nothing/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(empty.kvs.is_empty() && !empty.more);
}

pub async fn count_counts_prefix(mut h: impl Harness) {
    let s = h.store().await;
    for i in 0..7 {
        s.create(
            &format!("/registry/secrets/x/{i}"),
            b("v"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    }
    s.create("/registry/secretsx", b("v"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(s.count("/registry/secrets/").await.unwrap(), 7);
    assert_eq!(s.count("/registry/none/").await.unwrap(), 0);
}

pub async fn compaction_errors(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/k", b("v1"), WriteOptions::default())
        .await
        .unwrap();
    let mut rev = r1;
    for i in 0..5 {
        rev = s
            .update(
                "/k",
                b(&format!("v{}", i + 2)),
                rev,
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    let compact_at = rev - 2;
    s.compact(compact_at).await.unwrap();
    let err = s.get("/k", Some(r1)).await.unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let err = s
        .range(RangeRequest {
            prefix: "/".into(),
            revision: Some(r1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");
    let watch_err = match s.watch("/", r1).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("watch from a compacted revision must fail, got {other:?}"),
        },
    };
    assert!(
        matches!(watch_err, StoreError::Compacted { .. }),
        "{watch_err:?}"
    );
    // The compaction point itself and later revisions stay readable and watchable.
    let kv = s.get("/k", Some(compact_at)).await.unwrap().0.unwrap();
    assert_eq!(kv.mod_revision, compact_at);
    let mut w = s.watch("/", compact_at).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), compact_at + 1);
    assert_eq!(next_event(&mut w).await.revision(), compact_at + 2);
    let err = s.compact(compact_at).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Compacted { .. }),
        "compacting again: {err:?}"
    );
    assert_eq!(
        s.get("/k", None).await.unwrap().0.unwrap().mod_revision,
        rev
    );
}

pub async fn future_revision_is_refused(mut h: impl Harness) {
    let s = h.store().await;
    s.create("/k", b("v"), WriteOptions::default())
        .await
        .unwrap();
    let cur = s.current_revision().await.unwrap();
    let err = s.get("/k", Some(cur + 100)).await.unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
    let err = s
        .range(RangeRequest {
            prefix: "/".into(),
            revision: Some(cur + 100),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FutureRevision { .. }), "{err:?}");
}

pub async fn invalid_key_is_refused(mut h: impl Harness) {
    let s = h.store().await;
    let err = s
        .create("", b("v"), WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
    let err = s.get("", None).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)), "{err:?}");
}

pub async fn watch_sees_changes_in_order(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/registry/", start).await.unwrap();
    let r1 = s
        .create("/registry/k", b("v1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .update("/registry/k", b("v2"), r1, WriteOptions::default())
        .await
        .unwrap();
    let (r3, _) = s.delete("/registry/k", None).await.unwrap();
    match next_event(&mut w).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(
                (
                    kv.key.as_str(),
                    kv.value.clone(),
                    kv.mod_revision,
                    kv.create_revision
                ),
                ("/registry/k", b("v1"), r1, r1)
            );
            assert!(prev.is_none());
        }
        e => panic!("expected put, got {e:?}"),
    }
    match next_event(&mut w).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(
                (kv.value.clone(), kv.mod_revision, kv.create_revision),
                (b("v2"), r2, r1)
            );
            assert_eq!(prev.unwrap().value, b("v1"));
        }
        e => panic!("expected put, got {e:?}"),
    }
    match next_event(&mut w).await {
        WatchEvent::Delete { revision, prev } => {
            assert_eq!(revision, r3);
            assert_eq!(
                (prev.key.as_str(), prev.value.clone(), prev.mod_revision),
                ("/registry/k", b("v2"), r2)
            );
        }
        e => panic!("expected delete, got {e:?}"),
    }
}

pub async fn watch_replays_from_past_revision(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/w/a", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .create("/w/b", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let r3 = s
        .update("/w/a", b("2"), r1, WriteOptions::default())
        .await
        .unwrap();
    let mut w = s.watch("/w/", r1).await.unwrap();
    assert_eq!(next_event(&mut w).await.revision(), r2);
    match next_event(&mut w).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(kv.mod_revision, r3);
            assert_eq!(prev.unwrap().mod_revision, r1);
        }
        e => panic!("{e:?}"),
    }
    // And then live events follow without a gap.
    let r4 = s
        .create("/w/c", b("1"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(next_event(&mut w).await.revision(), r4);
}

pub async fn watch_filters_by_prefix(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/registry/pods/", start).await.unwrap();
    s.create("/registry/pods0", b("x"), WriteOptions::default())
        .await
        .unwrap();
    s.create("/registry/services/a", b("x"), WriteOptions::default())
        .await
        .unwrap();
    let r = s
        .create("/registry/pods/default/a", b("x"), WriteOptions::default())
        .await
        .unwrap();
    let ev = next_event(&mut w).await;
    assert_eq!((ev.key(), ev.revision()), ("/registry/pods/default/a", r));
}

pub async fn concurrent_cas_loses_no_update(mut h: impl Harness) {
    let s = h.store().await;
    s.create("/counter", b("0"), WriteOptions::default())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u32;
                for _ in 0..25 {
                    loop {
                        let kv = s.get("/counter", None).await.unwrap().0.unwrap();
                        let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                        match s
                            .update(
                                "/counter",
                                b(&(n + 1).to_string()),
                                kv.mod_revision,
                                WriteOptions::default(),
                            )
                            .await
                        {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let kv = s.get("/counter", None).await.unwrap().0.unwrap();
    assert_eq!(std::str::from_utf8(&kv.value).unwrap(), "400");
}

pub async fn watchers_see_every_event_under_concurrent_writes(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut watchers = Vec::new();
    for _ in 0..4 {
        watchers.push(s.watch("/cw/", start).await.unwrap());
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..50 {
                    revs.push(
                        s.create(&format!("/cw/{w}/{i}"), b("x"), WriteOptions::default())
                            .await
                            .unwrap(),
                    );
                }
                revs
            })
        })
        .collect();
    let mut acked = HashSet::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert_eq!(acked.len(), 400);
    for mut w in watchers {
        let mut last = start;
        for _ in 0..400 {
            let ev = next_event(&mut w).await;
            assert_eq!(
                ev.revision(),
                last + 1,
                "events in order, with no gap or duplicate"
            );
            assert!(acked.contains(&ev.revision()));
            last = ev.revision();
        }
    }
}

pub async fn watch_resumes_after_restart(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/rs/", start).await.unwrap();
    let mut last_seen = start;
    for i in 0..5 {
        s.create(&format!("/rs/{i}"), b("x"), WriteOptions::default())
            .await
            .unwrap();
    }
    for _ in 0..5 {
        last_seen = next_event(&mut w).await.revision();
    }
    drop(s);
    let s = h.restart().await;
    // The old stream ends (with an error or plainly); it never invents events.
    match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
        Ok(Some(Ok(ev))) => panic!("unexpected event after restart: {ev:?}"),
        Ok(Some(Err(_))) | Ok(None) => {}
        Err(_) => panic!("watch did not end when its store stopped"),
    }
    // Writes made while nobody watched are replayed on resume.
    let mut expected = Vec::new();
    for i in 5..8 {
        expected.push(
            s.create(&format!("/rs/{i}"), b("x"), WriteOptions::default())
                .await
                .unwrap(),
        );
    }
    let mut w = s.watch("/rs/", last_seen).await.unwrap();
    for i in 8..10 {
        expected.push(
            s.create(&format!("/rs/{i}"), b("x"), WriteOptions::default())
                .await
                .unwrap(),
        );
    }
    for rev in expected {
        assert_eq!(next_event(&mut w).await.revision(), rev);
    }
}

pub async fn data_survives_restart(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/d/a", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let r2 = s
        .update("/d/a", b("2"), r1, WriteOptions::default())
        .await
        .unwrap();
    s.create("/d/b", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let (r4, _) = s.delete("/d/b", None).await.unwrap();
    drop(s);
    let s = h.restart().await;
    assert_eq!(s.current_revision().await.unwrap(), r4);
    let kv = s.get("/d/a", None).await.unwrap().0.unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision),
        (b("2"), r1, r2)
    );
    assert!(s.get("/d/b", None).await.unwrap().0.is_none());
    assert_eq!(
        s.get("/d/a", Some(r1)).await.unwrap().0.unwrap().value,
        b("1")
    );
    let r5 = s
        .create("/d/c", b("1"), WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(r5, r4 + 1, "revisions continue after a restart");
}

pub async fn ttl_keys_expire(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/events/", start).await.unwrap();
    // etcd's lease minimum is about 2 s; stay above it.
    let r1 = s
        .create(
            "/events/e1",
            b("v"),
            WriteOptions::ttl(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    s.create("/events/keep", b("v"), WriteOptions::default())
        .await
        .unwrap();
    assert!(s.get("/events/e1", None).await.unwrap().0.is_some());
    assert_eq!(next_event(&mut w).await.revision(), r1);
    next_event(&mut w).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if s.get("/events/e1", None).await.unwrap().0.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "TTL key never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match next_event(&mut w).await {
        WatchEvent::Delete { prev, .. } => assert_eq!(prev.key, "/events/e1"),
        e => panic!("expected the expiry as a delete event, got {e:?}"),
    }
    assert!(s.get("/events/keep", None).await.unwrap().0.is_some());
}

/// A watcher that stops reading while writes go on must either get every event in order or be
/// ended with an error; it must never silently skip.
pub async fn slow_watcher_never_skips(mut h: impl Harness) {
    let s = h.store().await;
    let start = s.current_revision().await.unwrap();
    let mut w = s.watch("/slow/", start).await.unwrap();
    let value = Bytes::from(vec![b'x'; 512]);
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let s = s.clone();
            let value = value.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    s.create(
                        &format!("/slow/{t}/{i}"),
                        value.clone(),
                        WriteOptions::default(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.await.unwrap();
    }
    let end = s.current_revision().await.unwrap();
    let mut last = start;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
            Ok(Some(Ok(ev))) => {
                assert_eq!(
                    ev.revision(),
                    last + 1,
                    "no gap before the watcher is ended"
                );
                last = ev.revision();
                if last == end {
                    break;
                }
            }
            Ok(Some(Err(e))) => {
                assert!(
                    e.is_resumable(),
                    "a lagging watcher gets a resumable error, got {e:?}"
                );
                // Resuming from the last revision seen delivers the rest.
                let mut w2 = s.watch("/slow/", last).await.unwrap();
                while last < end {
                    let ev = next_event(&mut w2).await;
                    assert_eq!(ev.revision(), last + 1);
                    last = ev.revision();
                }
                break;
            }
            Ok(None) => panic!("watch ended without an error at revision {last} of {end}"),
            Err(_) => panic!("watch stalled at revision {last} of {end}"),
        }
    }
}

/// The background compactor (upstream compacts every 5 minutes) discards history older than
/// its window and leaves the latest state alone.
pub async fn compactor_discards_old_history(mut h: impl Harness) {
    let s = h.store().await;
    let r1 = s
        .create("/c/a", b("1"), WriteOptions::default())
        .await
        .unwrap();
    let mut rev = r1;
    for i in 0..5 {
        rev = s
            .update("/c/a", b(&i.to_string()), rev, WriteOptions::default())
            .await
            .unwrap();
    }
    let compactor = crate::spawn_compactor(s.clone(), Duration::from_millis(300));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match s.get("/c/a", Some(r1)).await {
            Err(StoreError::Compacted { .. }) => break,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history was never compacted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    compactor.abort();
    let kv = s.get("/c/a", None).await.unwrap().0.unwrap();
    assert_eq!(kv.mod_revision, rev);
    let next = s
        .update("/c/a", b("after"), rev, WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(next, rev + 1);
}
