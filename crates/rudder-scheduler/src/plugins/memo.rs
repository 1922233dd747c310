//! Cluster-wide tallies kept across scheduling cycles. PreFilter of PodTopologySpread and
//! InterPodAffinity sums, over every node, what the node's pods contribute (matching pods per
//! topology domain); upstream recomputes those sums each cycle on 16 goroutines. Here each
//! node's part is remembered with the node's generation — the cache bumps one counter on every
//! change of any node, so a generation names one node in one state — and a cycle recomputes
//! only the parts of nodes whose generation moved, retracting the old part from the total.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use crate::nodeinfo::NodeInfo;

/// A sum of per-node parts that parts can be added to and retracted from.
pub trait Tally: Default {
    type Part: Default;
    /// Adds `part` (`sign` 1) or takes it back out (`sign` -1).
    fn add(&mut self, part: &Self::Part, sign: i64);
}

/// One tally over the snapshot's nodes, with each node's part and the generation it is of.
#[derive(Default)]
pub struct NodeMemo<T: Tally> {
    generations: Vec<u64>,
    parts: Vec<T::Part>,
    total: T,
}

impl<T: Tally> NodeMemo<T> {
    /// The tally over `nodes`, recomputing with `part_of` only nodes that changed. Positions
    /// are the snapshot's; a different node count starts over. Generation 0 (a node built
    /// outside the cache, as tests do) is always recomputed.
    pub fn update(
        &mut self,
        nodes: &[Arc<NodeInfo>],
        mut part_of: impl FnMut(&NodeInfo) -> T::Part,
    ) -> &T {
        if self.generations.len() != nodes.len() {
            *self = NodeMemo {
                generations: vec![0; nodes.len()],
                parts: std::iter::repeat_with(T::Part::default)
                    .take(nodes.len())
                    .collect(),
                total: T::default(),
            };
        }
        for (j, node) in nodes.iter().enumerate() {
            if node.generation != 0 && self.generations[j] == node.generation {
                continue;
            }
            let old = std::mem::take(&mut self.parts[j]);
            self.total.add(&old, -1);
            let new = part_of(node);
            self.total.add(&new, 1);
            self.parts[j] = new;
            self.generations[j] = node.generation;
        }
        &self.total
    }
}

/// How many keys' tallies are kept before the memo starts over.
const MAX_KEYS: usize = 64;

/// Tallies per key (the selector, terms or labels that decide what a node contributes).
pub struct KeyedMemo<K, T: Tally> {
    memos: Mutex<HashMap<K, NodeMemo<T>>>,
}

impl<K, T: Tally> Default for KeyedMemo<K, T> {
    fn default() -> Self {
        KeyedMemo {
            memos: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, T: Tally> KeyedMemo<K, T> {
    /// Runs `f` on `key`'s memo (created empty if new).
    pub fn with<R>(&self, key: K, f: impl FnOnce(&mut NodeMemo<T>) -> R) -> R {
        let mut memos = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        if memos.len() >= MAX_KEYS && !memos.contains_key(&key) {
            memos.clear();
        }
        f(memos.entry(key).or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;

    #[derive(Default)]
    struct Sum(i64);
    impl Tally for Sum {
        type Part = i64;
        fn add(&mut self, part: &i64, sign: i64) {
            self.0 += sign * part;
        }
    }

    fn node(name: &str, generation: u64, pods: usize) -> Arc<NodeInfo> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        let mut ni = NodeInfo::new(Arc::new(n));
        ni.generation = generation;
        ni.allocatable.allowed_pod_number = pods as i64;
        Arc::new(ni)
    }

    #[test]
    fn only_changed_nodes_are_recomputed() {
        let mut memo = NodeMemo::<Sum>::default();
        let mut calls = 0;
        let mut part = |n: &NodeInfo| {
            calls += 1;
            n.allocatable.allowed_pod_number
        };
        let nodes = vec![node("a", 1, 2), node("b", 2, 3)];
        assert_eq!(memo.update(&nodes, &mut part).0, 5);
        assert_eq!(memo.update(&nodes, &mut part).0, 5);
        let nodes = vec![node("a", 1, 2), node("b", 3, 10)];
        assert_eq!(memo.update(&nodes, &mut part).0, 12);
        // A node removed: the memo starts over.
        let nodes = vec![node("b", 3, 10)];
        assert_eq!(memo.update(&nodes, &mut part).0, 10);
        assert_eq!(calls, 4);
    }
}
