//! The generic store and watch cache over a real (embedded) store: upstream's generic REST
//! semantics, instantiated for a few resources.

use std::sync::Arc;
use std::time::Duration;

use rudder_registry::{
    CacheWatch, DefaultStrategy, DeleteOpts, Deleted, EventKind, GenericStore, ListOpts, Registry,
    Strategy, WatchCache, WatchFrom, WriteOpts,
};
use rudder_store_redb::{RedbOptions, RedbStore};
use serde_json::{json, Value};

struct Fixture {
    _dir: tempfile::TempDir,
    gs: GenericStore,
}

/// Deployments track generation (they have a spec) and delete gracefully when asked to, so the
/// generic paths for both are exercised.
struct TestStrategy {
    generation: bool,
    grace: bool,
}

impl Strategy for TestStrategy {
    fn tracks_generation(&self) -> bool {
        self.generation
    }
    fn graceful_delete_seconds(&self, _obj: &Value, requested: Option<i64>) -> Option<i64> {
        self.grace.then(|| requested.unwrap_or(30))
    }
}

async fn fixture_with_history(history: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("s.redb"), RedbOptions::default())
        .await
        .unwrap();
    let store: Arc<dyn rudder_store::Store> = Arc::new(store);
    let registry = Arc::new(
        Registry::builtin(|info| -> Arc<dyn Strategy> {
            match info.plural.as_str() {
                "deployments" => Arc::new(TestStrategy {
                    generation: true,
                    grace: false,
                }),
                "pods" => Arc::new(TestStrategy {
                    generation: false,
                    grace: true,
                }),
                _ => Arc::new(DefaultStrategy {
                    tracks_generation: false,
                }),
            }
        })
        .unwrap(),
    );
    let cache = WatchCache::start_with_history(store.clone(), registry.clone(), history)
        .await
        .unwrap();
    let gs = GenericStore {
        store,
        cache,
        registry,
        admission: vec![],
    };
    let ns = gs.registry.get("", "v1", "namespaces").unwrap().clone();
    for name in ["default", "other"] {
        gs.create(
            &ns,
            None,
            json!({"metadata": {"name": name}}),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    }
    Fixture { _dir: dir, gs }
}

async fn fixture() -> Fixture {
    fixture_with_history(rudder_registry::cache::DEFAULT_HISTORY).await
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

async fn next(w: &mut CacheWatch) -> Arc<rudder_registry::CacheEvent> {
    tokio::time::timeout(Duration::from_secs(5), w.live.recv())
        .await
        .expect("event in time")
        .expect("watch open")
}

#[tokio::test]
async fn create_get_and_system_fields() {
    let f = fixture().await;
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let created =
        f.gs.create(&e, Some("default"), cm("a"), &WriteOpts::default())
            .await
            .unwrap();
    let meta = &created["metadata"];
    assert_eq!(meta["namespace"], "default");
    assert!(meta["uid"].as_str().unwrap().len() == 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(
        meta["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert!(
        meta.get("generation").is_none(),
        "configmaps have no generation"
    );
    let got = f.gs.get(&e, Some("default"), "a").await.unwrap();
    assert_eq!(got, created);
    let err =
        f.gs.create(&e, Some("default"), cm("a"), &WriteOpts::default())
            .await
            .unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.message, "configmaps \"a\" already exists");
    let err = f.gs.get(&e, Some("default"), "nope").await.unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "configmaps \"nope\" not found")
    );
    // Missing namespace: NotFound for the namespace, as upstream's admission says.
    let err =
        f.gs.create(&e, Some("missing"), cm("b"), &WriteOpts::default())
            .await
            .unwrap_err();
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"missing\" not found")
    );
    // Body namespace disagreeing with the URL.
    let mut body = cm("c");
    body["metadata"]["namespace"] = json!("other");
    assert_eq!(
        f.gs.create(&e, Some("default"), body, &WriteOpts::default())
            .await
            .unwrap_err()
            .code,
        400
    );
    // Invalid name: 422 with a field cause.
    let err =
        f.gs.create(&e, Some("default"), cm("Bad_Name"), &WriteOpts::default())
            .await
            .unwrap_err();
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
        ),
        "{}",
        err.message
    );
    // generateName.
    let body = json!({"metadata": {"generateName": "gen-"}, "data": {}});
    let g =
        f.gs.create(&e, Some("default"), body, &WriteOpts::default())
            .await
            .unwrap();
    let name = g["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    // Dry run persists nothing.
    let d =
        f.gs.create(
            &e,
            Some("default"),
            cm("dry"),
            &WriteOpts {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d["metadata"]["name"], "dry");
    assert_eq!(
        f.gs.get(&e, Some("default"), "dry").await.unwrap_err().code,
        404
    );
}

#[tokio::test]
async fn update_conflicts_and_generation() {
    let f = fixture().await;
    let e =
        f.gs.registry
            .get("apps", "v1", "deployments")
            .unwrap()
            .clone();
    let d =
        json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
    let created =
        f.gs.create(&e, Some("default"), d, &WriteOpts::default())
            .await
            .unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    let rv1 = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // A spec change bumps generation; status sent to the main resource is ignored.
    let mut body = created.clone();
    body["spec"]["replicas"] = json!(3);
    body["status"] = json!({"replicas": 1});
    let (updated, _) =
        f.gs.update(
            &e,
            Some("default"),
            "web",
            |_| Ok(body.clone()),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["status"], created["status"]);
    // A label change does not bump generation.
    let mut body = updated.clone();
    body["metadata"]["labels"] = json!({"a": "b"});
    let (labelled, _) =
        f.gs.update(
            &e,
            Some("default"),
            "web",
            |_| Ok(body.clone()),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    assert_eq!(labelled["metadata"]["generation"], 2);
    // A stale resourceVersion: 409 with upstream's message.
    let mut stale = created.clone();
    stale["metadata"]["resourceVersion"] = json!(rv1);
    let err =
        f.gs.update(
            &e,
            Some("default"),
            "web",
            |_| Ok(stale.clone()),
            &WriteOpts::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("the object has been modified"),
        "{}",
        err.message
    );
    // No change: no write, same resourceVersion.
    let (same, _) =
        f.gs.update(
            &e,
            Some("default"),
            "web",
            |cur| Ok(cur.unwrap().clone()),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        same["metadata"]["resourceVersion"],
        labelled["metadata"]["resourceVersion"]
    );
    // The status subresource changes only status.
    let mut st = labelled.clone();
    st["status"] = json!({"replicas": 3});
    st["spec"]["replicas"] = json!(100);
    let (after, _) =
        f.gs.update(
            &e,
            Some("default"),
            "web",
            |_| Ok(st.clone()),
            &WriteOpts {
                status: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(after["status"]["replicas"], 3);
    assert_eq!(after["spec"]["replicas"], 3);
    // Updating a missing object is NotFound (deployments do not create on update).
    let err =
        f.gs.update(
            &e,
            Some("default"),
            "nope",
            |_| Ok(json!({"metadata": {"name": "nope"}})),
            &WriteOpts::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn finalizers_and_graceful_deletion() {
    let f = fixture().await;
    let cms = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let mut body = cm("held");
    body["metadata"]["finalizers"] = json!(["example.com/hold"]);
    f.gs.create(&cms, Some("default"), body, &WriteOpts::default())
        .await
        .unwrap();
    let pending = match f
        .gs
        .delete(&cms, Some("default"), "held", &DeleteOpts::default())
        .await
        .unwrap()
    {
        Deleted::Pending(v) => v,
        Deleted::Now(_) => panic!("finalizers must hold the object"),
    };
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    // Removing the last finalizer deletes it.
    let mut released = pending.clone();
    released["metadata"]["finalizers"] = json!([]);
    f.gs.update(
        &cms,
        Some("default"),
        "held",
        |_| Ok(released.clone()),
        &WriteOpts::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        f.gs.get(&cms, Some("default"), "held")
            .await
            .unwrap_err()
            .code,
        404
    );
    // propagationPolicy=Foreground adds its finalizer.
    f.gs.create(&cms, Some("default"), cm("fg"), &WriteOpts::default())
        .await
        .unwrap();
    let opts = DeleteOpts {
        propagation_policy: Some("Foreground".into()),
        ..Default::default()
    };
    match f
        .gs
        .delete(&cms, Some("default"), "fg", &opts)
        .await
        .unwrap()
    {
        Deleted::Pending(v) => {
            assert_eq!(v["metadata"]["finalizers"], json!(["foregroundDeletion"]))
        }
        Deleted::Now(_) => panic!("foreground deletion waits for the garbage collector"),
    }
    // Graceful pods stay until deleted with grace 0.
    let pods = f.gs.registry.get("", "v1", "pods").unwrap().clone();
    let pod =
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    f.gs.create(&pods, Some("default"), pod, &WriteOpts::default())
        .await
        .unwrap();
    match f
        .gs
        .delete(&pods, Some("default"), "p", &DeleteOpts::default())
        .await
        .unwrap()
    {
        Deleted::Pending(v) => assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], 30),
        Deleted::Now(_) => panic!("graceful"),
    }
    let now = DeleteOpts {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        f.gs.delete(&pods, Some("default"), "p", &now)
            .await
            .unwrap(),
        Deleted::Now(_)
    ));
    assert_eq!(
        f.gs.get(&pods, Some("default"), "p")
            .await
            .unwrap_err()
            .code,
        404
    );
    // A UID precondition that does not match is a conflict.
    f.gs.create(&cms, Some("default"), cm("pre"), &WriteOpts::default())
        .await
        .unwrap();
    let wrong = DeleteOpts {
        precondition_uid: Some("nope".into()),
        ..Default::default()
    };
    assert_eq!(
        f.gs.delete(&cms, Some("default"), "pre", &wrong)
            .await
            .err()
            .unwrap()
            .code,
        409
    );
}

#[tokio::test]
async fn lists_paginate_consistently_and_filter() {
    let f = fixture().await;
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    for i in 0..25 {
        let mut body = cm(&format!("c{i:02}"));
        body["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        f.gs.create(&e, Some("default"), body, &WriteOpts::default())
            .await
            .unwrap();
    }
    f.gs.create(&e, Some("other"), cm("elsewhere"), &WriteOpts::default())
        .await
        .unwrap();
    let all =
        f.gs.list(&e, Some("default"), &ListOpts::default())
            .await
            .unwrap();
    assert_eq!(all.items.len(), 25);
    assert_eq!(
        f.gs.list(&e, None, &ListOpts::default())
            .await
            .unwrap()
            .items
            .len(),
        26
    );
    let sel = ListOpts {
        label_selector: Some(rudder_api::selector::labels::Selector::parse("parity=even").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        f.gs.list(&e, Some("default"), &sel)
            .await
            .unwrap()
            .items
            .len(),
        13
    );
    let fsel = ListOpts {
        field_selector: Some(
            rudder_api::selector::fields::FieldSelector::parse("metadata.name=c03").unwrap(),
        ),
        ..Default::default()
    };
    assert_eq!(f.gs.list(&e, None, &fsel).await.unwrap().items.len(), 1);
    // Pages of 10 are one snapshot even while objects change between pages.
    let first =
        f.gs.list(
            &e,
            Some("default"),
            &ListOpts {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, Some(15));
    let token = first.continue_token.clone().unwrap();
    f.gs.delete(&e, Some("default"), "c20", &DeleteOpts::default())
        .await
        .unwrap();
    f.gs.create(&e, Some("default"), cm("c10a"), &WriteOpts::default())
        .await
        .unwrap();
    let mut names: Vec<String> = first
        .items
        .iter()
        .map(|o| o.value()["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut token = Some(token);
    while let Some(t) = token {
        let page =
            f.gs.list(
                &e,
                Some("default"),
                &ListOpts {
                    limit: 10,
                    continue_token: Some(t),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        names.extend(
            page.items
                .iter()
                .map(|o| o.value()["metadata"]["name"].as_str().unwrap().to_string()),
        );
        token = page.continue_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("c{i:02}")).collect();
    assert_eq!(names, expected);
    // A filtered page still fills up to the limit.
    let sel_page =
        f.gs.list(
            &e,
            Some("default"),
            &ListOpts {
                limit: 5,
                ..sel.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(sel_page.items.len(), 5);
    assert!(sel_page.continue_token.is_some());
}

#[tokio::test]
async fn watches_from_now_and_from_a_revision() {
    let f = fixture().await;
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let a =
        f.gs.create(&e, Some("default"), cm("a"), &WriteOpts::default())
            .await
            .unwrap();
    let rv_a: i64 = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    f.gs.create(&e, Some("other"), cm("b"), &WriteOpts::default())
        .await
        .unwrap();
    let mut w =
        f.gs.watch(&e, Some("default"), WatchFrom::Now)
            .await
            .unwrap();
    assert_eq!(w.initial.len(), 1);
    assert_eq!(w.initial[0].kind, EventKind::Added);
    let mut body = a.clone();
    body["data"] = json!({"k": "v2"});
    f.gs.update(
        &e,
        Some("default"),
        "a",
        |_| Ok(body.clone()),
        &WriteOpts::default(),
    )
    .await
    .unwrap();
    f.gs.create(&e, Some("other"), cm("c"), &WriteOpts::default())
        .await
        .unwrap();
    f.gs.delete(&e, Some("default"), "a", &DeleteOpts::default())
        .await
        .unwrap();
    let ev = next(&mut w).await;
    assert_eq!(ev.kind, EventKind::Modified);
    assert_eq!(ev.object.value()["data"]["k"], "v2");
    assert_eq!(ev.prev.as_ref().unwrap().value()["data"]["k"], "v");
    let ev = next(&mut w).await;
    assert_eq!(ev.kind, EventKind::Deleted);
    // From a revision: the history is replayed.
    let w2 =
        f.gs.watch(&e, None, WatchFrom::Revision(rv_a))
            .await
            .unwrap();
    let kinds: Vec<_> = w2
        .initial
        .iter()
        .map(|e| {
            (
                e.kind,
                e.object.value()["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Added, "b".to_string()),
            (EventKind::Modified, "a".to_string()),
            (EventKind::Added, "c".to_string()),
            (EventKind::Deleted, "a".to_string()),
        ]
    );
}

/// Waits until the watch cache reflects every write so far; returns that revision.
async fn caught_up(f: &Fixture) -> i64 {
    let current = f.gs.store.current_revision().await.unwrap();
    f.gs.cache.wait_for(current).await.unwrap();
    current
}

#[tokio::test]
async fn too_old_revision_is_gone() {
    let f = fixture_with_history(8).await;
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let first =
        f.gs.create(&e, Some("default"), cm("x0"), &WriteOpts::default())
            .await
            .unwrap();
    let rv: i64 = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for i in 1..20 {
        f.gs.create(
            &e,
            Some("default"),
            cm(&format!("x{i}")),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    }
    let current = caught_up(&f).await;
    let err =
        f.gs.watch(&e, None, WatchFrom::Revision(rv))
            .await
            .err()
            .unwrap();
    assert_eq!(err.code, 410);
    assert!(
        err.message.starts_with("too old resource version"),
        "{}",
        err.message
    );
    // Recent revisions are still in the window.
    let w =
        f.gs.watch(&e, None, WatchFrom::Revision(current - 3))
            .await
            .unwrap();
    assert_eq!(w.initial.len(), 3);
}

#[tokio::test]
async fn slow_watcher_is_closed_not_skipped() {
    let f = fixture().await;
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let mut w = f.gs.watch(&e, None, WatchFrom::Now).await.unwrap();
    // Far more events than a watcher buffers, without reading.
    let total = 1500;
    let tasks: Vec<_> = (0..10)
        .map(|t| {
            let gs = GenericStore {
                store: f.gs.store.clone(),
                cache: f.gs.cache.clone(),
                registry: f.gs.registry.clone(),
                admission: vec![],
            };
            let e = e.clone();
            tokio::spawn(async move {
                for i in 0..total / 10 {
                    gs.create(
                        &e,
                        Some("default"),
                        cm(&format!("s{t}-{i}")),
                        &WriteOpts::default(),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    caught_up(&f).await;
    let mut last = 0;
    let mut seen = 0;
    while let Some(ev) = w.live.recv().await {
        assert!(ev.revision > last, "in order, no duplicates");
        last = ev.revision;
        seen += 1;
    }
    assert!(
        seen < total,
        "the watcher was closed when it fell behind ({seen} events)"
    );
    // Re-watching from the last revision seen delivers the rest.
    let w2 =
        f.gs.watch(&e, None, WatchFrom::Revision(last))
            .await
            .unwrap();
    assert_eq!(seen + w2.initial.len(), total);
}

/// Records what admission saw: every plugin hook gets upstream's attributes, mutation is async
/// and runs after the synchronous hooks, and deletes are validated.
struct Recorder(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl rudder_registry::Admission for Recorder {
    fn handles(&self, entry: &rudder_registry::Entry) -> bool {
        entry.info.plural == "configmaps"
    }

    async fn mutate(
        &self,
        attrs: &rudder_registry::Attributes<'_>,
        obj: &mut Value,
    ) -> Result<(), rudder_api::status::ApiError> {
        obj["metadata"]["labels"]["mutated"] = json!(attrs.operation.as_str());
        Ok(())
    }

    async fn validate(
        &self,
        attrs: &rudder_registry::Attributes<'_>,
        obj: &Value,
    ) -> Result<(), rudder_api::status::ApiError> {
        self.0.lock().unwrap().push(format!(
            "{} {}/{} user={} sub={:?} old={} dry={} opts={}",
            attrs.operation.as_str(),
            attrs.namespace,
            attrs.name,
            attrs.user.map_or("-", |u| u.name.as_str()),
            attrs.subresource,
            attrs.old.is_some(),
            attrs.dry_run,
            attrs
                .options
                .and_then(|o| o["kind"].as_str())
                .unwrap_or("-"),
        ));
        if attrs.operation == rudder_registry::Operation::Delete
            && rudder_registry::object::name(obj) == "keep"
        {
            return Err(rudder_api::status::ApiError::forbidden(
                &attrs.entry.info.group_resource(),
                attrs.name,
                "kept",
            ));
        }
        Ok(())
    }
}

#[tokio::test]
async fn admission_sees_the_request_attributes_and_deletes() {
    let mut f = fixture().await;
    let rec = Arc::new(Recorder(Default::default()));
    f.gs.admission = vec![rec.clone()];
    let e = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let alice = rudder_registry::Requester {
        name: "alice".into(),
        ..Default::default()
    };
    let opts = WriteOpts {
        user: Some(alice.clone()),
        options: Some(json!({"kind": "CreateOptions"})),
        ..Default::default()
    };
    let created =
        f.gs.create(&e, Some("default"), cm("keep"), &opts)
            .await
            .unwrap();
    assert_eq!(created["metadata"]["labels"]["mutated"], "CREATE");
    let (updated, _) =
        f.gs.update(
            &e,
            Some("default"),
            "keep",
            |cur| {
                let mut v = cur.unwrap().clone();
                v["data"]["k"] = json!("w");
                Ok(v)
            },
            &WriteOpts {
                user: Some(alice.clone()),
                request_subresource: Some("scale".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated["metadata"]["labels"]["mutated"], "UPDATE");
    let del = DeleteOpts {
        user: Some(alice),
        dry_run: true,
        ..Default::default()
    };
    let err = match f.gs.delete(&e, Some("default"), "keep", &del).await {
        Err(e) => e,
        Ok(_) => panic!("the delete was admitted"),
    };
    assert_eq!(err.code, 403);
    assert_eq!(
        *rec.0.lock().unwrap(),
        vec![
            "CREATE default/keep user=alice sub=\"\" old=false dry=false opts=CreateOptions",
            "UPDATE default/keep user=alice sub=\"scale\" old=true dry=false opts=-",
            "DELETE default/keep user=alice sub=\"\" old=true dry=true opts=-",
        ]
    );
    f.gs.get(&e, Some("default"), "keep").await.unwrap();
}

/// A resource nothing was ever written to has a complete (empty) history since the cache's
/// load: a watch from a list's resourceVersion must not expire because other resources were
/// written meanwhile (it did: every informer of an empty resource relisted once, and a
/// resource's first object made watchers from before it expire).
#[tokio::test]
async fn watching_an_untouched_resource_from_an_older_revision_works() {
    let f = fixture().await;
    let secrets = f.gs.registry.get("", "v1", "secrets").unwrap().clone();
    let configmaps = f.gs.registry.get("", "v1", "configmaps").unwrap().clone();
    let listed_at = f.gs.store.current_revision().await.unwrap();
    for i in 0..5 {
        f.gs.create(
            &configmaps,
            Some("default"),
            cm(&format!("other-{i}")),
            &WriteOpts::default(),
        )
        .await
        .unwrap();
    }
    caught_up(&f).await;
    let w =
        f.gs.watch(&secrets, None, WatchFrom::Revision(listed_at))
            .await
            .unwrap();
    assert!(w.initial.is_empty());
    // The same after the resource's first object arrived.
    let mut s = cm("first");
    s["kind"] = json!("Secret");
    f.gs.create(&secrets, Some("default"), s, &WriteOpts::default())
        .await
        .unwrap();
    caught_up(&f).await;
    let w =
        f.gs.watch(&secrets, None, WatchFrom::Revision(listed_at))
            .await
            .unwrap();
    assert_eq!(w.initial.len(), 1);
}
