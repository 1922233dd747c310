//! The ownerReferences graph (upstream's `graph.go` and `graph_builder.go`'s
//! `processGraphChanges`): one node per UID with its owners and dependents; owners referenced
//! before they are seen get virtual nodes, which the collector verifies with a live GET. Each
//! change returns the work it implies instead of queueing it, so the logic is testable alone.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Upstream's `objectReference`: owner coordinates plus the namespace (empty = cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub namespace: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

impl Identity {
    /// The coordinates an owner reference gives, in the dependent's namespace.
    pub fn of_owner(r: &OwnerReference, namespace: &str) -> Identity {
        Identity {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
            namespace: namespace.to_string(),
        }
    }

    fn matches_ref(&self, r: &OwnerReference) -> bool {
        r.uid == self.uid
            && r.name == self.name
            && r.kind == self.kind
            && r.api_version == self.api_version
    }
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// Dependents' UIDs.
    pub dependents: BTreeSet<String>,
    /// Known only from a dependent's reference, not (yet) seen on a watch.
    pub virtual_: bool,
    pub observed: bool,
    pub being_deleted: bool,
    /// Deleting with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// Last seen deleting with the `orphan` finalizer.
    pub orphaning: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Add,
    Update,
    Delete,
}

/// One change seen on a watch (or a virtual delete the collector verified).
#[derive(Clone, Debug)]
pub struct Event {
    pub type_: EventType,
    pub virtual_: bool,
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Queue the node (by UID) on attemptToDelete.
    Delete(String),
    /// The same, with backoff.
    DeleteRateLimited(String),
    /// Queue the node on attemptToOrphan.
    Orphan(String),
    /// Upstream's `OwnerRefInvalidNamespace` warning about `dependent`.
    InvalidNamespace {
        dependent: Box<Identity>,
        owner: Box<Identity>,
    },
}

pub const FINALIZER_ORPHAN: &str = "orphan";
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

#[derive(Default)]
pub struct Graph {
    pub nodes: HashMap<String, Node>,
    /// Upstream's `absentOwnerCache` (bounded: cleared when full).
    absent: HashSet<Identity>,
}

const ABSENT_CACHE_SIZE: usize = 500;

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn add_absent(&mut self, id: Identity) {
        if self.absent.len() >= ABSENT_CACHE_SIZE {
            self.absent.clear();
        }
        self.absent.insert(id);
    }

    pub fn is_absent(&self, id: &Identity) -> bool {
        self.absent.contains(id)
    }

    /// Dependents whose reference to `owner` has `blockOwnerDeletion`.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<String> {
        let Some(n) = self.nodes.get(owner) else {
            return Vec::new();
        };
        n.dependents
            .iter()
            .filter(|d| {
                self.nodes.get(*d).is_some_and(|dn| {
                    dn.owners
                        .iter()
                        .any(|r| r.uid == owner && r.block_owner_deletion == Some(true))
                })
            })
            .cloned()
            .collect()
    }

    /// Upstream's `partitionDependents`: dependents whose reference matches `id` in every
    /// coordinate, and those that disagree.
    fn partition(&self, deps: &BTreeSet<String>, id: &Identity) -> (Vec<String>, Vec<String>) {
        let (mut matching, mut nonmatching) = (Vec::new(), Vec::new());
        for d in deps {
            let Some(dn) = self.nodes.get(d) else {
                continue;
            };
            let (mut found_match, mut found_mismatch) = (false, false);
            if !id.namespace.is_empty() && id.namespace != dn.identity.namespace {
                found_mismatch = true;
            } else {
                for r in dn.owners.iter().filter(|r| r.uid == id.uid) {
                    if id.matches_ref(r) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(d.clone());
            }
            if found_mismatch {
                nonmatching.push(d.clone());
            }
        }
        (matching, nonmatching)
    }

    fn add_dependent_to_owners(
        &mut self,
        dep: &str,
        owners: &[OwnerReference],
        out: &mut Vec<Action>,
    ) {
        let Some(dep_id) = self.nodes.get(dep).map(|n| n.identity.clone()) else {
            return;
        };
        for r in owners {
            match self.nodes.get_mut(&r.uid) {
                None => {
                    let mut owner = Node {
                        identity: Identity::of_owner(r, &dep_id.namespace),
                        virtual_: true,
                        ..Default::default()
                    };
                    owner.dependents.insert(dep.to_string());
                    self.nodes.insert(r.uid.clone(), owner);
                    // The collector confirms (or refutes) the owner with the API server.
                    out.push(Action::Delete(r.uid.clone()));
                }
                Some(owner) => {
                    owner.dependents.insert(dep.to_string());
                    let ns = &owner.identity.namespace;
                    if !ns.is_empty() && *ns != dep_id.namespace {
                        if owner.observed {
                            out.push(Action::InvalidNamespace {
                                dependent: Box::new(dep_id.clone()),
                                owner: Box::new(Identity::of_owner(r, &dep_id.namespace)),
                            });
                        }
                        out.push(Action::Delete(dep.to_string()));
                    }
                }
            }
        }
    }

    fn remove_dependent_from_owners(&mut self, dep: &str, owners: &[OwnerReference]) {
        for r in owners {
            if let Some(o) = self.nodes.get_mut(&r.uid) {
                o.dependents.remove(dep);
            }
        }
    }

    /// Upstream's `processTransitions`.
    fn transitions(&mut self, uid: &str, ev: &Event, out: &mut Vec<Action>) {
        let Some(n) = self.nodes.get_mut(uid) else {
            return;
        };
        let has = |f: &str| ev.finalizers.iter().any(|x| x == f);
        let orphaning = ev.deleting && has(FINALIZER_ORPHAN);
        let was_orphaning = std::mem::replace(&mut n.orphaning, orphaning);
        if orphaning && !was_orphaning {
            out.push(Action::Orphan(uid.to_string()));
            return;
        }
        let foreground = ev.deleting && has(FINALIZER_FOREGROUND);
        if foreground && !n.deleting_dependents {
            n.deleting_dependents = true;
            out.extend(n.dependents.iter().map(|d| Action::Delete(d.clone())));
            out.push(Action::Delete(uid.to_string()));
        }
    }

    /// Upstream's `processGraphChanges` for one event.
    pub fn process(&mut self, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        let uid = ev.identity.uid.clone();
        if !ev.virtual_ {
            if let Some(n) = self.nodes.get(&uid) {
                if !n.observed {
                    if n.identity != ev.identity {
                        // Dependents that named this owner wrongly get a second look.
                        let (_, bad) = self.partition(&n.dependents, &ev.identity);
                        for d in bad {
                            if let Some(dn) = self.nodes.get(&d) {
                                if !ev.identity.namespace.is_empty()
                                    && dn.identity.namespace != ev.identity.namespace
                                {
                                    if let Some(r) = dn.owners.iter().find(|r| r.uid == uid) {
                                        out.push(Action::InvalidNamespace {
                                            dependent: Box::new(dn.identity.clone()),
                                            owner: Box::new(Identity::of_owner(
                                                r,
                                                &dn.identity.namespace,
                                            )),
                                        });
                                    }
                                }
                            }
                            out.push(Action::Delete(d));
                        }
                    }
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.identity = ev.identity.clone();
                        n.observed = true;
                        n.virtual_ = false;
                    }
                }
            }
        }
        let found = self.nodes.contains_key(&uid);
        match ev.type_ {
            EventType::Add | EventType::Update if !found => {
                let n = Node {
                    identity: ev.identity.clone(),
                    owners: ev.owners.clone(),
                    observed: true,
                    being_deleted: ev.deleting,
                    ..Default::default()
                };
                self.nodes.insert(uid.clone(), n);
                self.add_dependent_to_owners(&uid, &ev.owners, &mut out);
                self.transitions(&uid, &ev, &mut out);
            }
            EventType::Add | EventType::Update => {
                let old = self
                    .nodes
                    .get(&uid)
                    .map(|n| n.owners.clone())
                    .unwrap_or_default();
                let (added, removed, changed) = references_diffs(&old, &ev.owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    // Owners waiting on this dependent may be unblocked.
                    for r in removed.iter().chain(changed.iter()) {
                        if let Some(o) = self.nodes.get(&r.uid) {
                            if o.deleting_dependents {
                                out.push(Action::Delete(r.uid.clone()));
                            }
                        }
                    }
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.owners = ev.owners.clone();
                    }
                    self.add_dependent_to_owners(&uid, &added, &mut out);
                    self.remove_dependent_from_owners(&uid, &removed);
                }
                if ev.deleting {
                    if let Some(n) = self.nodes.get_mut(&uid) {
                        n.being_deleted = true;
                    }
                }
                self.transitions(&uid, &ev, &mut out);
            }
            EventType::Delete => {
                let Some(existing) = self.nodes.get(&uid).cloned() else {
                    return out;
                };
                let mut remove = true;
                if ev.virtual_ {
                    let deleted = &ev.identity;
                    let (matching, nonmatching) = self.partition(&existing.dependents, deleted);
                    if existing.virtual_ {
                        if !nonmatching.is_empty() {
                            remove = false;
                            if !matching.is_empty() {
                                self.add_absent(deleted.clone());
                                out.extend(matching.into_iter().map(Action::Delete));
                            }
                            if existing.identity == *deleted {
                                // Try the coordinates another dependent gives.
                                let alt = nonmatching.iter().find_map(|d| {
                                    let dn = self.nodes.get(d)?;
                                    let r = dn.owners.iter().find(|r| r.uid == uid)?;
                                    let id = Identity::of_owner(r, &dn.identity.namespace);
                                    (id != *deleted).then_some(id)
                                });
                                if let Some(id) = alt {
                                    if let Some(n) = self.nodes.get_mut(&uid) {
                                        n.identity = id;
                                    }
                                    out.push(Action::DeleteRateLimited(uid.clone()));
                                }
                            }
                        }
                    } else if existing.identity != *deleted {
                        // A real node is never removed by a virtual delete of other coordinates.
                        remove = false;
                        if !matching.is_empty() {
                            self.add_absent(deleted.clone());
                            out.extend(matching.into_iter().map(Action::Delete));
                        }
                    }
                }
                if remove {
                    self.nodes.remove(&uid);
                    self.remove_dependent_from_owners(&uid, &existing.owners);
                    if !existing.dependents.is_empty() {
                        self.add_absent(ev.identity.clone());
                    }
                    out.extend(existing.dependents.iter().cloned().map(Action::Delete));
                    for r in &existing.owners {
                        if self
                            .nodes
                            .get(&r.uid)
                            .is_some_and(|o| o.deleting_dependents)
                        {
                            out.push(Action::Delete(r.uid.clone()));
                        }
                    }
                }
            }
        }
        out
    }
}

/// Upstream's `referencesDiffs`: added, removed, and changed (same UID, other fields).
fn references_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<OwnerReference>,
) {
    let added = new
        .iter()
        .filter(|n| !old.iter().any(|o| o.uid == n.uid))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .filter(|o| !new.iter().any(|n| n.uid == o.uid))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|n| old.iter().any(|o| o.uid == n.uid && o != *n))
        .cloned()
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, name: &str, uid: &str, ns: &str) -> Identity {
        Identity {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            namespace: ns.into(),
        }
    }

    fn oref(of: &Identity, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: of.api_version.clone(),
            kind: of.kind.clone(),
            name: of.name.clone(),
            uid: of.uid.clone(),
            block_owner_deletion: block.then_some(true),
            ..Default::default()
        }
    }

    fn ev(t: EventType, i: &Identity, owners: Vec<OwnerReference>) -> Event {
        Event {
            type_: t,
            virtual_: false,
            identity: i.clone(),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn owner_chain_links_both_ways_and_deletes_dependents_of_a_gone_owner() {
        let mut g = Graph::default();
        let a = id("ConfigMap", "a", "ua", "ns");
        let b = id("ConfigMap", "b", "ub", "ns");
        let c = id("ConfigMap", "c", "uc", "ns");
        assert!(g.process(ev(EventType::Add, &a, vec![])).is_empty());
        assert!(g
            .process(ev(EventType::Add, &b, vec![oref(&a, false)]))
            .is_empty());
        assert!(g
            .process(ev(EventType::Add, &c, vec![oref(&b, true)]))
            .is_empty());
        assert!(g.node("ua").is_some_and(|n| n.dependents.contains("ub")));
        assert!(g.node("ub").is_some_and(|n| n.dependents.contains("uc")));
        assert_eq!(g.blocking_dependents("ub"), vec!["uc".to_string()]);
        assert!(g.blocking_dependents("ua").is_empty());
        // The owner at the top goes: only its direct dependent is looked at; the chain follows.
        let acts = g.process(ev(EventType::Delete, &a, vec![]));
        assert_eq!(acts, vec![Action::Delete("ub".into())]);
        assert!(g.is_absent(&a));
        let acts = g.process(ev(EventType::Delete, &b, vec![oref(&a, false)]));
        assert_eq!(acts, vec![Action::Delete("uc".into())]);
        assert!(g.node("ub").is_none());
    }

    #[test]
    fn virtual_owner_created_then_observed_or_refuted() {
        let mut g = Graph::default();
        let owner = id("ConfigMap", "o", "uo", "ns");
        let dep = id("ConfigMap", "d", "ud", "ns");
        let acts = g.process(ev(EventType::Add, &dep, vec![oref(&owner, false)]));
        // The unseen owner becomes a virtual node the collector verifies.
        assert_eq!(acts, vec![Action::Delete("uo".into())]);
        assert!(g.node("uo").is_some_and(|n| n.virtual_ && !n.observed));
        // Seen on a watch later: a real node with the same dependents.
        assert!(g.process(ev(EventType::Add, &owner, vec![])).is_empty());
        let n = g.node("uo").cloned().unwrap_or_default();
        assert!(n.observed && !n.virtual_ && n.dependents.contains("ud"));

        // Another dependent of an owner that never existed: the verified virtual delete removes
        // the virtual node and queues the dependent.
        let ghost = id("ConfigMap", "ghost", "ug", "ns");
        let dep2 = id("ConfigMap", "d2", "ud2", "ns");
        g.process(ev(EventType::Add, &dep2, vec![oref(&ghost, false)]));
        let mut v = ev(EventType::Delete, &ghost, vec![]);
        v.virtual_ = true;
        assert_eq!(g.process(v), vec![Action::Delete("ud2".into())]);
        assert!(g.node("ug").is_none());
        assert!(g.is_absent(&ghost));
    }

    #[test]
    fn uid_mismatch_never_touches_the_live_object() {
        let mut g = Graph::default();
        // A live object "o" with UID u2; a dependent refers to an earlier "o" with UID u1.
        let live = id("ConfigMap", "o", "u2", "ns");
        let old = id("ConfigMap", "o", "u1", "ns");
        let dep = id("ConfigMap", "d", "ud", "ns");
        g.process(ev(EventType::Add, &live, vec![]));
        g.process(ev(EventType::Add, &dep, vec![oref(&old, false)]));
        // The reference is to u1: a virtual node of its own, not the live object's node.
        assert!(g.node("u1").is_some_and(|n| n.virtual_));
        assert!(g.node("u2").is_some_and(|n| n.dependents.is_empty()));
        // Deleting the live object queues nothing about "d".
        let acts = g.process(ev(EventType::Delete, &live, vec![]));
        assert!(acts.is_empty(), "{acts:?}");
        // A virtual delete with coordinates other than a real node's leaves that node alone.
        let real = id("ConfigMap", "r", "ur", "ns");
        g.process(ev(EventType::Add, &real, vec![]));
        let mut v = ev(EventType::Delete, &id("Secret", "r", "ur", "ns"), vec![]);
        v.virtual_ = true;
        assert!(g.process(v).is_empty());
        assert!(g.node("ur").is_some());
    }

    #[test]
    fn orphan_and_foreground_transitions() {
        let mut g = Graph::default();
        let o = id("ReplicaSet", "rs", "urs", "ns");
        let p = id("Pod", "p", "up", "ns");
        g.process(ev(EventType::Add, &o, vec![]));
        g.process(ev(EventType::Add, &p, vec![oref(&o, true)]));
        let mut del = ev(EventType::Update, &o, vec![]);
        del.deleting = true;
        del.finalizers = vec![FINALIZER_FOREGROUND.into()];
        assert_eq!(
            g.process(del.clone()),
            vec![Action::Delete("up".into()), Action::Delete("urs".into())]
        );
        assert!(g.node("urs").is_some_and(|n| n.deleting_dependents));
        // Seen again: no second transition.
        assert!(g.process(del).is_empty());
        // The dependent gone: the waiting owner is looked at again.
        assert_eq!(
            g.process(ev(EventType::Delete, &p, vec![oref(&o, true)])),
            vec![Action::Delete("urs".into())]
        );

        let o2 = id("ReplicaSet", "rs2", "urs2", "ns");
        g.process(ev(EventType::Add, &o2, vec![]));
        let mut orphan = ev(EventType::Update, &o2, vec![]);
        orphan.deleting = true;
        orphan.finalizers = vec![FINALIZER_ORPHAN.into()];
        assert_eq!(
            g.process(orphan.clone()),
            vec![Action::Orphan("urs2".into())]
        );
        assert!(g.process(orphan).is_empty());
    }

    #[test]
    fn namespace_rules() {
        let mut g = Graph::default();
        // A namespaced dependent of a cluster-scoped owner is fine.
        let node = id("Node", "n1", "un", "");
        g.process(ev(EventType::Add, &node, vec![]));
        let cm = id("ConfigMap", "c", "uc", "ns");
        assert!(g
            .process(ev(EventType::Add, &cm, vec![oref(&node, false)]))
            .is_empty());
        // A dependent in another namespace than its observed owner: warned and re-checked.
        let owner = id("ConfigMap", "o", "uo", "a");
        g.process(ev(EventType::Add, &owner, vec![]));
        let dep = id("ConfigMap", "d", "ud", "b");
        let acts = g.process(ev(EventType::Add, &dep, vec![oref(&owner, false)]));
        assert_eq!(
            acts,
            vec![
                Action::InvalidNamespace {
                    dependent: Box::new(dep.clone()),
                    owner: Box::new(id("ConfigMap", "o", "uo", "b")),
                },
                Action::Delete("ud".into()),
            ]
        );
        assert_eq!(
            id("ConfigMap", "o", "uo", "b").to_string(),
            "[v1/ConfigMap, namespace: b, name: o, uid: uo]"
        );
    }
}
