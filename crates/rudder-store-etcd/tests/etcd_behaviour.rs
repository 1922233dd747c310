//! etcd-specific behaviour the shared conformance suite does not cover: failures of the
//! connection, lease sharing for TTL keys, the key prefix and lagging watchers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{Store, StoreError, WatchEvent, WriteOptions};
use rudder_store_etcd::testing::EtcdProcess;
use rudder_store_etcd::{EtcdConfig, EtcdStore};

async fn start() -> EtcdProcess {
    tokio::task::spawn_blocking(EtcdProcess::start)
        .await
        .expect("start task")
        .expect("start etcd")
}

async fn connect(etcd: &EtcdProcess, f: impl FnOnce(&mut EtcdConfig)) -> EtcdStore {
    let mut config = EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        ..Default::default()
    };
    f(&mut config);
    EtcdStore::connect(config).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_etcd_ends_watches_with_unavailable_and_fails_requests() {
    let mut etcd = start().await;
    let s = connect(&etcd, |c| c.request_timeout = Duration::from_secs(3)).await;
    let start_rev = s.current_revision().await.unwrap();
    let mut w = s.watch("/x/", start_rev).await.unwrap();
    s.create("/x/a", Bytes::from_static(b"1"), WriteOptions::default())
        .await
        .unwrap();
    assert!(matches!(w.next().await, Some(Ok(WatchEvent::Put { .. }))));
    etcd.stop();
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Err(StoreError::Unavailable(msg)))) => eprintln!("watch ended: {msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .is_none());
    let t = Instant::now();
    let err = s.get("/x/a", None).await.unwrap_err();
    eprintln!("get while down after {:?}: {err:?}", t.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = s.watch("/x/", start_rev).await.err();
    assert!(matches!(err, Some(StoreError::Unavailable(_))), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_etcd_comes_back() {
    let mut etcd = start().await;
    let s = connect(&etcd, |c| c.request_timeout = Duration::from_secs(3)).await;
    let r1 = s
        .create("/y", Bytes::from_static(b"1"), WriteOptions::default())
        .await
        .unwrap();
    let mut etcd = tokio::task::spawn_blocking(move || {
        etcd.restart().unwrap();
        etcd
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let kv = loop {
        match s.get("/y", None).await {
            Ok((kv, _)) => break kv.unwrap(),
            Err(e) if Instant::now() < deadline => {
                eprintln!("while reconnecting: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("never reconnected: {e}"),
        }
    };
    assert_eq!(kv.mod_revision, r1);
    etcd.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ttl_writes_share_one_lease() {
    let etcd = start().await;
    let s = connect(&etcd, |_| {}).await;
    let hour = WriteOptions::ttl(Duration::from_secs(3600));
    for i in 0..20 {
        s.create(&format!("/events/{i}"), Bytes::from_static(b"e"), hour)
            .await
            .unwrap();
    }
    let mut raw = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    let resp = raw
        .get(
            "/events/",
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let leases: std::collections::HashSet<i64> = resp.kvs().iter().map(|kv| kv.lease()).collect();
    assert_eq!(resp.kvs().len(), 20);
    assert_eq!(leases.len(), 1, "one lease for all: {leases:?}");
    let lease = *leases.iter().next().unwrap();
    assert_ne!(lease, 0);
    let ttl = raw.lease_time_to_live(lease, None).await.unwrap();
    assert!(
        ttl.granted_ttl() == 3660,
        "granted with the reuse window: {}",
        ttl.granted_ttl()
    );
    // A lease revoked behind the store's back is replaced, and the write still succeeds.
    raw.lease_revoke(lease).await.unwrap();
    s.create("/events/after", Bytes::from_static(b"e"), hour)
        .await
        .unwrap();
    let after = raw.get("/events/after", None).await.unwrap();
    assert_ne!(after.kvs()[0].lease(), lease);
    assert_ne!(after.kvs()[0].lease(), 0);
    // An update without a TTL detaches the key from its lease.
    let kv = s.get("/events/after", None).await.unwrap().0.unwrap();
    s.update(
        "/events/after",
        Bytes::from_static(b"f"),
        kv.mod_revision,
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let after = raw.get("/events/after", None).await.unwrap();
    assert_eq!(after.kvs()[0].lease(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_isolates_stores_sharing_etcd() {
    let etcd = start().await;
    let a = connect(&etcd, |c| c.prefix = Some("/cluster-a".into())).await;
    let b = connect(&etcd, |c| c.prefix = Some("/cluster-b".into())).await;
    let start_rev = a.current_revision().await.unwrap();
    let mut wa = a.watch("/", start_rev).await.unwrap();
    a.create(
        "/registry/k",
        Bytes::from_static(b"a"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    b.create(
        "/registry/k",
        Bytes::from_static(b"b"),
        WriteOptions::default(),
    )
    .await
    .unwrap();
    let r = a
        .create(
            "/registry/l",
            Bytes::from_static(b"a"),
            WriteOptions::default(),
        )
        .await
        .unwrap();
    let list = a
        .range(rudder_store::RangeRequest {
            prefix: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let keys: Vec<_> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/registry/k", "/registry/l"]);
    assert_eq!(a.count("").await.unwrap(), 2);
    // A continue key past the end of the prefix leaves nothing to list.
    let past = a
        .range(rudder_store::RangeRequest {
            prefix: "/registry/".into(),
            start_after: Some("/registry0".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(past.kvs.is_empty() && !past.more, "{past:?}");
    assert_eq!(
        b.get("/registry/k", None).await.unwrap().0.unwrap().value,
        "b"
    );
    let first = wa.next().await.unwrap().unwrap();
    assert_eq!(first.key(), "/registry/k");
    let second = wa.next().await.unwrap().unwrap();
    assert_eq!((second.key(), second.revision()), ("/registry/l", r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_is_ended_resumably() {
    let etcd = start().await;
    let s = connect(&etcd, |c| c.watch_buffer = 8).await;
    let start_rev = s.current_revision().await.unwrap();
    let mut w = s.watch("/lag/", start_rev).await.unwrap();
    let mut last = start_rev;
    for i in 0..50 {
        last = s
            .create(
                &format!("/lag/{i}"),
                Bytes::from_static(b"x"),
                WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut seen = start_rev;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
        {
            Some(Ok(ev)) => {
                assert_eq!(ev.revision(), seen + 1);
                seen = ev.revision();
            }
            Some(Err(StoreError::WatcherLagged)) => break,
            other => panic!("expected events then WatcherLagged, got {other:?}"),
        }
    }
    assert!(seen < last, "the buffer is smaller than the backlog");
    assert!(w.next().await.is_none(), "the stream ends after the error");
    let mut w = s.watch("/lag/", seen).await.unwrap();
    while seen < last {
        let ev = w.next().await.unwrap().unwrap();
        assert_eq!(ev.revision(), seen + 1);
        seen = ev.revision();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_for_an_unreachable_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let err = EtcdStore::connect(EtcdConfig {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        request_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .err()
    .expect("nothing listens there");
    eprintln!("after {:?}: {err:?}", t.elapsed());
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_cluster_survives_losing_a_member() {
    let mut cluster = tokio::task::spawn_blocking(|| EtcdProcess::start_cluster(3))
        .await
        .unwrap()
        .expect("start a 3-member cluster");
    let s = EtcdStore::connect(EtcdConfig {
        endpoints: cluster.iter().map(|m| m.endpoint()).collect(),
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    })
    .await
    .unwrap();
    let start_rev = s.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..6 {
        watches.push(s.watch("/ha/", start_rev).await.unwrap());
    }
    let r1 = s
        .create("/ha/a", Bytes::from_static(b"1"), WriteOptions::default())
        .await
        .unwrap();
    for m in cluster.iter_mut().take(1) {
        m.stop();
    }
    // Requests that were on the lost member fail once; later ones go to the others.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = 0;
    let r2 = loop {
        match s
            .update(
                "/ha/a",
                Bytes::from_static(b"2"),
                r1,
                WriteOptions::default(),
            )
            .await
        {
            Ok(rev) => break rev,
            Err(e) if Instant::now() < deadline => {
                failures += 1;
                eprintln!("while failing over: {e}");
                assert!(e.is_resumable(), "{e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("never failed over: {e}"),
        }
    };
    eprintln!("failed over after {failures} failures");
    for _ in 0..20 {
        s.get("/ha/a", None).await.unwrap();
    }
    // Each watch either goes on or ends resumably; resuming sees both writes.
    for mut w in watches {
        let mut last = start_rev;
        let mut resumed = false;
        while last < r2 {
            match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
                Ok(Some(Ok(ev))) => last = ev.revision(),
                Ok(Some(Err(e))) => {
                    assert!(e.is_resumable(), "{e:?}");
                    resumed = true;
                    w = s.watch("/ha/", last).await.unwrap();
                }
                other => panic!("watch neither went on nor failed: {other:?}"),
            }
        }
        eprintln!("watch reached r2 (resumed: {resumed})");
    }
}
