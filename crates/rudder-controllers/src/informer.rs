//! Shared informers (client-go's `SharedInformerFactory`): one kube-runtime watcher per resource
//! type for the whole controller manager, a cache indexed by namespace that every controller
//! reads, and event handlers (add, update with the old object, delete) through which each
//! controller maps changes to the keys it queues. A re-list after a broken watch is diffed
//! against the cache, so handlers see the deletions they missed.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What changed.
pub enum Change<'a, K> {
    Added(&'a Arc<K>),
    Updated { old: &'a Arc<K>, new: &'a Arc<K> },
    Deleted(&'a Arc<K>),
}

type Handler<K> = Box<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// `namespace` → `name` → object (cluster-scoped objects under ""), and the same objects by
/// their controller (upstream's `controllerUIDIndex`, which lets the ReplicaSet controller read
/// its own pods and the orphans of its namespace instead of every pod there).
struct Index<K> {
    by_ns: HashMap<String, BTreeMap<String, Arc<K>>>,
    by_controller: HashMap<String, BTreeMap<(String, String), Arc<K>>>,
    len: usize,
}

/// The controller index's key: the controller's UID, or `<namespace>/` for an object without
/// a controller (upstream's `OrphanPodIndexKeyForNamespace`; UIDs hold no `/`).
fn controller_key<K: Resource>(obj: &K) -> String {
    obj.meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
        .unwrap_or_else(|| format!("{}/", obj.meta().namespace.as_deref().unwrap_or("")))
}

impl<K: Resource> Index<K> {
    fn unindex(&mut self, ns: &str, name: &str, obj: &K) {
        let key = controller_key(obj);
        if let Some(m) = self.by_controller.get_mut(&key) {
            m.remove(&(ns.to_string(), name.to_string()));
            if m.is_empty() {
                self.by_controller.remove(&key);
            }
        }
    }
}

pub struct Informer<K> {
    index: RwLock<Index<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced_tx: watch::Sender<bool>,
    synced: watch::Receiver<bool>,
}

pub trait Object:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Object for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K: Object> Informer<K> {
    fn new() -> Informer<K> {
        let (synced_tx, synced) = watch::channel(false);
        Informer {
            index: RwLock::new(Index {
                by_ns: HashMap::new(),
                by_controller: HashMap::new(),
                len: 0,
            }),
            handlers: RwLock::new(Vec::new()),
            synced_tx,
            synced,
        }
    }

    /// Registers a handler; it sees every later change (and is called for the initial list).
    pub fn add_handler(&self, f: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.by_ns.get(namespace).and_then(|m| m.get(name)).cloned()
    }

    /// Every object in `namespace`, by name.
    pub fn list(&self, namespace: &str) -> Vec<Arc<K>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.by_ns
            .get(namespace)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The objects whose controller (ownerReference with `controller: true`) has `uid`.
    pub fn list_controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.by_controller_key(uid)
    }

    /// The objects of `namespace` that have no controller.
    pub fn list_orphans(&self, namespace: &str) -> Vec<Arc<K>> {
        self.by_controller_key(&format!("{namespace}/"))
    }

    fn by_controller_key(&self, key: &str) -> Vec<Arc<K>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.by_controller
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn list_all(&self) -> Vec<Arc<K>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        idx.by_ns
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|e| e.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    fn notify(&self, change: Change<'_, K>) {
        for h in self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h(&change);
        }
    }

    fn upsert(&self, obj: K) {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let new = Arc::new(obj);
        let old = {
            let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
            let old = idx
                .by_ns
                .entry(ns.clone())
                .or_default()
                .insert(name.clone(), new.clone());
            match &old {
                Some(old) => idx.unindex(&ns, &name, old),
                None => idx.len += 1,
            }
            idx.by_controller
                .entry(controller_key(new.as_ref()))
                .or_default()
                .insert((ns, name), new.clone());
            old
        };
        match old {
            Some(old) => self.notify(Change::Updated {
                old: &old,
                new: &new,
            }),
            None => self.notify(Change::Added(&new)),
        }
    }

    fn remove(&self, ns: &str, name: &str, last: Option<K>) {
        let old = {
            let mut idx = self.index.write().unwrap_or_else(|e| e.into_inner());
            let old = idx.by_ns.get_mut(ns).and_then(|m| m.remove(name));
            if let Some(old) = &old {
                idx.len -= 1;
                idx.unindex(ns, name, old);
            }
            old
        };
        // The final state the watch reported is the freshest copy.
        if let Some(old) = last.map(Arc::new).or(old) {
            self.notify(Change::Deleted(&old));
        }
    }

    async fn run(self: Arc<Self>, api: Api<K>, config: watcher::Config) {
        let mut stream = watcher(api, config).boxed();
        // By namespace, the names a relist delivered: what the index holds beyond them is gone.
        let mut seen: Option<HashMap<String, HashSet<String>>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Init) => seen = Some(HashMap::new()),
                Ok(watcher::Event::InitApply(obj)) => {
                    if let Some(seen) = seen.as_mut() {
                        seen.entry(obj.namespace().unwrap_or_default())
                            .or_default()
                            .insert(obj.name_any());
                    }
                    self.upsert(obj);
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(seen) = seen.take() {
                        let gone: Vec<(String, String)> = {
                            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
                            idx.by_ns
                                .iter()
                                .flat_map(|(ns, m)| {
                                    let keep = seen.get(ns);
                                    m.keys()
                                        .filter(move |n| !keep.is_some_and(|k| k.contains(*n)))
                                        .map(move |n| (ns.clone(), n.clone()))
                                })
                                .collect()
                        };
                        for (ns, name) in gone {
                            self.remove(&ns, &name, None);
                        }
                    }
                    let _ = self.synced_tx.send(true);
                }
                Ok(watcher::Event::Apply(obj)) => self.upsert(obj),
                Ok(watcher::Event::Delete(obj)) => {
                    let (ns, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
                    self.remove(&ns, &name, Some(obj));
                }
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// The shared informers of one controller manager: `get::<Pod>()` returns the same informer to
/// every controller; `start` runs every informer requested so far.
pub struct Informers {
    client: Client,
    map: Mutex<HashMap<TypeId, Registered>>,
}

/// An informer (as `Any`) and, until started, what starts it.
type Registered = (Arc<dyn Any + Send + Sync>, Option<Starter>);
type Starter = Box<dyn FnOnce(&Client) -> futures::future::BoxFuture<'static, ()> + Send>;

impl Informers {
    pub fn new(client: Client) -> Arc<Informers> {
        Arc::new(Informers {
            client,
            map: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn get<K: Object>(&self) -> Arc<Informer<K>> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((any, _)) = map.get(&TypeId::of::<K>()) {
            if let Ok(inf) = any.clone().downcast::<Informer<K>>() {
                return inf;
            }
        }
        let inf = Arc::new(Informer::<K>::new());
        let runner = inf.clone();
        let starter: Starter = Box::new(move |client: &Client| {
            let api: Api<K> = Api::all(client.clone());
            Box::pin(runner.run(api, watcher::Config::default()))
        });
        map.insert(TypeId::of::<K>(), (inf.clone(), Some(starter)));
        inf
    }

    /// Starts every informer not started yet; their tasks end with the returned set.
    pub fn start(&self, tasks: &mut tokio::task::JoinSet<()>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for (_, starter) in map.values_mut() {
            if let Some(s) = starter.take() {
                tasks.spawn(s(&self.client));
            }
        }
    }
}

/// `namespace/name` (or `name` for cluster-scoped objects): the key controllers queue.
pub fn key_of<K: Resource>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", obj.meta().name.as_deref().unwrap_or("")),
        _ => obj.meta().name.clone().unwrap_or_default(),
    }
}

/// Splits a key back into (namespace, name).
pub fn split_key(key: &str) -> (&str, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => ("", key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, controller: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "namespace": "ns",
                "ownerReferences": controller.map(|uid| vec![serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                    "uid": uid, "controller": true,
                })]).unwrap_or_default(),
            }
        }))
        .unwrap()
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        pods.iter().map(|p| p.name_any()).collect()
    }

    /// Adoption, release and deletion move an object between its controller's bucket and its
    /// namespace's orphans.
    #[test]
    fn controller_index_follows_owner_changes() {
        let inf = Informer::<Pod>::new();
        inf.upsert(pod("a", Some("uid-1")));
        inf.upsert(pod("b", None));
        inf.upsert(pod("c", Some("uid-2")));
        assert_eq!(names(inf.list_controlled_by("uid-1")), ["a"]);
        assert_eq!(names(inf.list_orphans("ns")), ["b"]);
        assert!(inf.list_orphans("other").is_empty());
        inf.upsert(pod("b", Some("uid-1")));
        assert_eq!(names(inf.list_controlled_by("uid-1")), ["a", "b"]);
        assert!(inf.list_orphans("ns").is_empty());
        inf.upsert(pod("a", None));
        assert_eq!(names(inf.list_controlled_by("uid-1")), ["b"]);
        assert_eq!(names(inf.list_orphans("ns")), ["a"]);
        inf.remove("ns", "b", None);
        assert!(inf.list_controlled_by("uid-1").is_empty());
        assert_eq!(names(inf.list_controlled_by("uid-2")), ["c"]);
        assert_eq!(inf.len(), 2);
    }
}
