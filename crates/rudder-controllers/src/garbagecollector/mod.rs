//! The garbage collector (upstream's `pkg/controller/garbagecollector`): discovery finds every
//! resource that can be listed, watched and deleted (again every 30 s, so custom resources are
//! covered once served); each is watched as metadata only and fed into the ownerReferences
//! graph. Workers on the attemptToDelete queue delete dependents whose owners are all gone
//! (verified with a live GET: a same-name object with another UID is not the owner), wait out
//! foreground deletion (`foregroundDeletion`: dependents with `blockOwnerDeletion` first, then
//! the finalizer goes), and the attemptToOrphan queue strips references to an owner deleted with
//! the `orphan` finalizer before removing that finalizer.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::watcher;
use serde_json::json;

use crate::controller::{is_conflict, is_not_found};
use crate::events::Recorder;
use crate::manager::Context;
use crate::workqueue::WorkQueue;
use graph::{
    Action, Event, EventType, Graph, Identity, Node, FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
};

/// Upstream's discovery resync period for the collector.
const RESYNC: Duration = Duration::from_secs(30);
/// Upstream's `--concurrent-gc-syncs` default.
const WORKERS: usize = 20;

#[derive(Debug, thiserror::Error)]
enum GcError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// Upstream's `restMappingError`: the owner's kind is not (yet) served.
    #[error("unable to get REST mapping for {0}")]
    Mapping(String),
    /// A cluster-scoped object naming a namespaced owner: never resolves, not retried.
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScoped,
    /// The node's object is gone: a virtual delete event went to the graph.
    #[error("enqueued virtual delete event")]
    VirtualDelete,
    #[error("{0}")]
    Other(String),
}

type Mapper = HashMap<(String, String), (ApiResource, bool)>;

pub struct GarbageCollector {
    client: kube::Client,
    graph: Mutex<Graph>,
    mapper: RwLock<Mapper>,
    delete_q: Arc<WorkQueue>,
    orphan_q: Arc<WorkQueue>,
    recorder: Recorder,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let gc = Arc::new(GarbageCollector {
        client: cx.client.clone(),
        graph: Mutex::default(),
        mapper: RwLock::default(),
        delete_q: WorkQueue::new("garbage_collector_attempt_to_delete", cx.metrics.clone()),
        orphan_q: WorkQueue::new("garbage_collector_attempt_to_orphan", cx.metrics.clone()),
        recorder: Recorder::new(cx.client.clone(), "garbage-collector-controller", &cx.host),
    });
    tasks.spawn(gc.clone().discovery_loop());
    for _ in 0..WORKERS {
        tasks.spawn(gc.clone().delete_worker());
    }
    tasks.spawn(gc.orphan_worker());
}

/// A list for a merge patch: an empty one removes the field, as upstream never stores `[]`.
fn list_or_null<T: serde::Serialize>(items: &[T]) -> serde_json::Value {
    if items.is_empty() {
        serde_json::Value::Null
    } else {
        json!(items)
    }
}

fn identity_of(ar: &ApiResource, m: &ObjectMeta) -> Identity {
    Identity {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
        name: m.name.clone().unwrap_or_default(),
        uid: m.uid.clone().unwrap_or_default(),
        namespace: m.namespace.clone().unwrap_or_default(),
    }
}

impl GarbageCollector {
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Feeds one change through the graph and queues the work it implies.
    fn process(&self, ev: Event) {
        let actions = self.graph().process(ev);
        for a in actions {
            match a {
                Action::Delete(uid) => self.delete_q.add(uid),
                Action::DeleteRateLimited(uid) => self.delete_q.add_rate_limited(uid),
                Action::Orphan(uid) => self.orphan_q.add(uid),
                Action::InvalidNamespace { dependent, owner } => {
                    let ns = if dependent.namespace.is_empty() {
                        "default".to_string()
                    } else {
                        dependent.namespace.clone()
                    };
                    self.recorder.event_for(
                        ObjectReference {
                            api_version: Some(dependent.api_version.clone()),
                            kind: Some(dependent.kind.clone()),
                            name: Some(dependent.name.clone()),
                            namespace: (!dependent.namespace.is_empty())
                                .then(|| dependent.namespace.clone()),
                            uid: Some(dependent.uid.clone()),
                            ..Default::default()
                        },
                        ns,
                        "Warning",
                        "OwnerRefInvalidNamespace",
                        format!(
                            "ownerRef {owner} does not exist in namespace {:?}",
                            dependent.namespace
                        ),
                    );
                }
            }
        }
    }

    fn virtual_delete(&self, id: &Identity) {
        self.process(Event {
            type_: EventType::Delete,
            virtual_: true,
            identity: id.clone(),
            owners: Vec::new(),
            deleting: false,
            finalizers: Vec::new(),
        });
    }

    /// Upstream's `GetDeletableResources` every 30 s: watchers start for new resources and
    /// stop for resources no longer served.
    async fn discovery_loop(self: Arc<Self>) {
        let mut watchers: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        let mut set = tokio::task::JoinSet::new();
        loop {
            match Discovery::new(self.client.clone()).run().await {
                Ok(d) => {
                    let mut mapper = Mapper::new();
                    let mut want: HashMap<String, ApiResource> = HashMap::new();
                    for g in d.groups() {
                        for v in g.versions() {
                            for (ar, caps) in g.versioned_resources(v) {
                                let namespaced = caps.scope == Scope::Namespaced;
                                mapper.insert(
                                    (ar.api_version.clone(), ar.kind.clone()),
                                    (ar, namespaced),
                                );
                            }
                        }
                        for (ar, caps) in g.recommended_resources() {
                            // Upstream's ignoredResources: events are never owners or owned.
                            if ar.plural == "events" {
                                continue;
                            }
                            if [verbs::LIST, verbs::WATCH, verbs::DELETE]
                                .iter()
                                .all(|v| caps.supports_operation(v))
                            {
                                want.insert(format!("{}/{}", ar.api_version, ar.plural), ar);
                            }
                        }
                    }
                    *self.mapper.write().unwrap_or_else(|e| e.into_inner()) = mapper;
                    watchers.retain(|k, h| {
                        let keep = want.contains_key(k);
                        if !keep {
                            h.abort();
                        }
                        keep
                    });
                    for (k, ar) in want {
                        if let std::collections::hash_map::Entry::Vacant(e) = watchers.entry(k) {
                            e.insert(set.spawn(self.clone().watch_resource(ar)));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "garbage collector discovery failed"),
            }
            tokio::time::sleep(RESYNC).await;
            while set.try_join_next().is_some() {}
        }
    }

    /// One resource's metadata watch; a re-list is diffed so missed deletions still count.
    async fn watch_resource(self: Arc<Self>, ar: ApiResource) {
        // Metadata only (`as=PartialObjectMetadata`): the graph needs nothing else.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
        let mut known: HashMap<String, Identity> = HashMap::new();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => seen = Some(HashSet::new()),
                Ok(watcher::Event::InitApply(o)) => {
                    if let (Some(s), Some(uid)) = (seen.as_mut(), o.metadata.uid.clone()) {
                        s.insert(uid);
                    }
                    self.observe(&ar, o, &mut known);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(s) = seen.take() {
                        let gone: Vec<String> =
                            known.keys().filter(|u| !s.contains(*u)).cloned().collect();
                        for uid in gone {
                            if let Some(id) = known.remove(&uid) {
                                self.process(Event {
                                    type_: EventType::Delete,
                                    virtual_: false,
                                    identity: id,
                                    owners: Vec::new(),
                                    deleting: false,
                                    finalizers: Vec::new(),
                                });
                            }
                        }
                    }
                }
                Ok(watcher::Event::Apply(o)) => self.observe(&ar, o, &mut known),
                Ok(watcher::Event::Delete(o)) => {
                    let id = identity_of(&ar, &o.metadata);
                    known.remove(&id.uid);
                    self.process(Event {
                        type_: EventType::Delete,
                        virtual_: false,
                        identity: id,
                        owners: o.metadata.owner_references.unwrap_or_default(),
                        deleting: o.metadata.deletion_timestamp.is_some(),
                        finalizers: o.metadata.finalizers.unwrap_or_default(),
                    });
                }
                Err(e) => {
                    tracing::debug!(resource = %ar.plural, error = %e, "garbage collector watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn observe(
        &self,
        ar: &ApiResource,
        o: PartialObjectMeta<DynamicObject>,
        known: &mut HashMap<String, Identity>,
    ) {
        let id = identity_of(ar, &o.metadata);
        let type_ = if known.insert(id.uid.clone(), id.clone()).is_some() {
            EventType::Update
        } else {
            EventType::Add
        };
        self.process(Event {
            type_,
            virtual_: false,
            identity: id,
            owners: o.metadata.owner_references.unwrap_or_default(),
            deleting: o.metadata.deletion_timestamp.is_some(),
            finalizers: o.metadata.finalizers.unwrap_or_default(),
        });
    }

    fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
    ) -> Result<(Api<DynamicObject>, bool), GcError> {
        let mapper = self.mapper.read().unwrap_or_else(|e| e.into_inner());
        let (ar, namespaced) = mapper
            .get(&(api_version.to_string(), kind.to_string()))
            .ok_or_else(|| GcError::Mapping(format!("{api_version}, Kind={kind}")))?;
        let api = if *namespaced {
            Api::namespaced_with(self.client.clone(), ns, ar)
        } else {
            Api::all_with(self.client.clone(), ar)
        };
        Ok((api, *namespaced))
    }

    fn api_of(&self, id: &Identity) -> Result<(Api<DynamicObject>, bool), GcError> {
        self.api_for(&id.api_version, &id.kind, &id.namespace)
    }

    async fn get_object(&self, id: &Identity) -> Result<PartialObjectMeta<DynamicObject>, GcError> {
        let (api, _) = self.api_of(id)?;
        Ok(api.get_metadata(&id.name).await?)
    }

    async fn delete_worker(self: Arc<Self>) {
        while let Some(uid) = self.delete_q.get().await {
            let node = self.graph().node(&uid).cloned();
            let requeue = match node {
                None => false,
                Some(n) => match self.attempt_to_delete(&n).await {
                    Ok(()) => !n.observed,
                    Err(GcError::VirtualDelete | GcError::NamespacedOwnerOfClusterScoped) => false,
                    Err(e) => {
                        tracing::debug!(item = %n.identity, error = %e, "error syncing item");
                        true
                    }
                },
            };
            if requeue {
                self.delete_q.add_rate_limited(uid.clone());
            } else {
                self.delete_q.forget(&uid);
            }
            self.delete_q.done(&uid);
        }
    }

    /// Upstream's `attemptToDeleteItem`.
    async fn attempt_to_delete(&self, item: &Node) -> Result<(), GcError> {
        if item.being_deleted && !item.deleting_dependents {
            return Ok(());
        }
        let latest = match self.get_object(&item.identity).await {
            Ok(o) => o,
            Err(GcError::Api(e)) if is_not_found(&e) => {
                self.virtual_delete(&item.identity);
                return Err(GcError::VirtualDelete);
            }
            Err(e) => return Err(e),
        };
        if latest.metadata.uid.as_deref() != Some(item.identity.uid.as_str()) {
            self.virtual_delete(&item.identity);
            return Err(GcError::VirtualDelete);
        }
        if item.deleting_dependents {
            return self.process_deleting_dependents(item).await;
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(());
        }
        let (mut solid, mut dangling, mut waiting) = (Vec::new(), Vec::new(), Vec::new());
        for r in &owners {
            match self.dangling(r, item).await? {
                None => dangling.push(r.clone()),
                Some(owner) => {
                    let fins = owner.metadata.finalizers.unwrap_or_default();
                    if owner.metadata.deletion_timestamp.is_some()
                        && fins.iter().any(|f| f == FINALIZER_FOREGROUND)
                    {
                        waiting.push(r.clone());
                    } else {
                        solid.push(r.clone());
                    }
                }
            }
        }
        let fins = latest.metadata.finalizers.clone().unwrap_or_default();
        if !solid.is_empty() {
            if dangling.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // Dangling and waiting references go, or the waiting owners would be stuck.
            let drop: Vec<&str> = dangling
                .iter()
                .chain(&waiting)
                .map(|r| r.uid.as_str())
                .collect();
            let kept: Vec<&OwnerReference> = owners
                .iter()
                .filter(|r| !drop.contains(&r.uid.as_str()))
                .collect();
            return self
                .patch_owner_refs(item, &latest, list_or_null(&kept))
                .await;
        }
        if !waiting.is_empty() && !item.dependents.is_empty() {
            let dependent_deleting = {
                let g = self.graph();
                item.dependents
                    .iter()
                    .any(|d| g.node(d).is_some_and(|n| n.deleting_dependents))
            };
            if dependent_deleting {
                // A possible cycle: references become non-blocking first (upstream).
                let unblocked: Vec<OwnerReference> = owners
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        if r.block_owner_deletion == Some(true) {
                            r.block_owner_deletion = Some(false);
                        }
                        r
                    })
                    .collect();
                self.patch_owner_refs(item, &latest, json!(unblocked))
                    .await?;
            }
            return self.delete_object(item, &latest, "Foreground").await;
        }
        let policy = if fins.iter().any(|f| f == FINALIZER_ORPHAN) {
            "Orphan"
        } else if fins.iter().any(|f| f == FINALIZER_FOREGROUND) {
            "Foreground"
        } else {
            "Background"
        };
        tracing::debug!(item = %item.identity, policy, "deleting item");
        self.delete_object(item, &latest, policy).await
    }

    /// Upstream's `isDangling`: `None` when the owner is gone (absent, or its name now holds an
    /// object with another UID), else the owner's live metadata.
    async fn dangling(
        &self,
        r: &OwnerReference,
        item: &Node,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>, GcError> {
        let mut key = Identity::of_owner(r, "");
        let item_ns = item.identity.namespace.clone();
        {
            let g = self.graph();
            if g.is_absent(&key) {
                return Ok(None);
            }
            key.namespace = item_ns.clone();
            if g.is_absent(&key) {
                return Ok(None);
            }
        }
        let (api, namespaced) = self.api_for(&r.api_version, &r.kind, &item_ns)?;
        if !namespaced {
            key.namespace = String::new();
        }
        if item_ns.is_empty() && namespaced {
            return Err(GcError::NamespacedOwnerOfClusterScoped);
        }
        match api.get_metadata(&r.name).await {
            Err(e) if is_not_found(&e) => {
                self.graph().add_absent(key);
                Ok(None)
            }
            Err(e) => Err(e.into()),
            Ok(owner) if owner.metadata.uid.as_deref() != Some(r.uid.as_str()) => {
                self.graph().add_absent(key);
                Ok(None)
            }
            Ok(owner) => Ok(Some(owner)),
        }
    }

    /// Upstream's `processDeletingDependentsItem`.
    async fn process_deleting_dependents(&self, item: &Node) -> Result<(), GcError> {
        let blocking = self.graph().blocking_dependents(&item.identity.uid);
        if blocking.is_empty() {
            return self.remove_finalizer(item, FINALIZER_FOREGROUND).await;
        }
        let g = self.graph();
        for d in blocking {
            if !g.node(&d).is_some_and(|n| n.deleting_dependents) {
                self.delete_q.add(d);
            }
        }
        Ok(())
    }

    /// Deletes with UID and resourceVersion preconditions: what was judged is what goes.
    async fn delete_object(
        &self,
        item: &Node,
        latest: &PartialObjectMeta<DynamicObject>,
        policy: &str,
    ) -> Result<(), GcError> {
        let (api, _) = self.api_of(&item.identity)?;
        let mut dp = match policy {
            "Orphan" => DeleteParams::orphan(),
            "Foreground" => DeleteParams::foreground(),
            _ => DeleteParams::background(),
        };
        dp.preconditions = Some(Preconditions {
            uid: Some(item.identity.uid.clone()),
            resource_version: latest.metadata.resource_version.clone(),
        });
        match api.delete(&item.identity.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_conflict(&e) => Err(GcError::Other(format!(
                "{} changed since it was judged; looking again",
                item.identity
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// A JSON merge patch of `metadata.ownerReferences` guarded by the resourceVersion seen
    /// (works for custom resources, which take no strategic merge patches).
    async fn patch_owner_refs(
        &self,
        item: &Node,
        latest: &PartialObjectMeta<DynamicObject>,
        refs: serde_json::Value,
    ) -> Result<(), GcError> {
        let (api, _) = self.api_of(&item.identity)?;
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "resourceVersion": latest.metadata.resource_version,
            "uid": item.identity.uid,
        }});
        match api
            .patch_metadata(
                &item.identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Upstream's `removeFinalizer`.
    async fn remove_finalizer(&self, item: &Node, finalizer: &str) -> Result<(), GcError> {
        self.update_metadata(&item.identity, |m| {
            let fins = m.finalizers.clone().unwrap_or_default();
            fins.iter().any(|f| f == finalizer).then(|| {
                let kept: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
                json!({ "finalizers": list_or_null(&kept) })
            })
        })
        .await
    }

    /// A JSON merge patch of the metadata `change` computes from the latest copy (`None`:
    /// nothing to do), guarded by its resourceVersion and retried on conflicts; an object
    /// gone, or replaced under another UID, needs nothing.
    async fn update_metadata(
        &self,
        id: &Identity,
        change: impl Fn(&ObjectMeta) -> Option<serde_json::Value>,
    ) -> Result<(), GcError> {
        let (api, _) = self.api_of(id)?;
        for _ in 0..5 {
            let latest = match api.get_metadata(&id.name).await {
                Ok(o) => o,
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            if latest.metadata.uid.as_deref() != Some(id.uid.as_str()) {
                return Ok(());
            }
            let Some(mut patch) = change(&latest.metadata) else {
                return Ok(());
            };
            patch["resourceVersion"] = json!(latest.metadata.resource_version);
            match api
                .patch_metadata(
                    &id.name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({ "metadata": patch })),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(GcError::Other(format!("updating {id}: too many conflicts")))
    }

    async fn orphan_worker(self: Arc<Self>) {
        while let Some(uid) = self.orphan_q.get().await {
            let node = self.graph().node(&uid).cloned();
            let result = match node {
                None => Ok(()),
                Some(n) => self.attempt_to_orphan(&n).await,
            };
            match result {
                Ok(()) => self.orphan_q.forget(&uid),
                Err(e) => {
                    tracing::info!(%uid, error = %e, "orphaning dependents failed; retrying");
                    self.orphan_q.add_rate_limited(uid.clone());
                }
            }
            self.orphan_q.done(&uid);
        }
    }

    /// Upstream's `attemptToOrphanWorker`: references to the owner leave every dependent, then
    /// the owner's `orphan` finalizer goes.
    async fn attempt_to_orphan(&self, owner: &Node) -> Result<(), GcError> {
        let deps: Vec<Node> = {
            let g = self.graph();
            owner
                .dependents
                .iter()
                .filter_map(|d| g.node(d).cloned())
                .collect()
        };
        let results =
            futures::future::join_all(deps.iter().map(|d| self.orphan_one(d, &owner.identity.uid)))
                .await;
        let errs: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|e| e.to_string())
            .collect();
        if !errs.is_empty() {
            return Err(GcError::Other(format!(
                "failed to orphan dependents of owner {}, got errors: {}",
                owner.identity,
                errs.join(", ")
            )));
        }
        self.remove_finalizer(owner, FINALIZER_ORPHAN).await
    }

    async fn orphan_one(&self, dep: &Node, owner_uid: &str) -> Result<(), GcError> {
        self.update_metadata(&dep.identity, |m| {
            let refs = m.owner_references.clone().unwrap_or_default();
            refs.iter().any(|r| r.uid == owner_uid).then(|| {
                let kept: Vec<&OwnerReference> =
                    refs.iter().filter(|r| r.uid != owner_uid).collect();
                json!({ "ownerReferences": list_or_null(&kept) })
            })
        })
        .await
    }
}
