//! InterPodAffinity (upstream's `plugins/interpodaffinity`): required pod affinity and
//! anti-affinity as a filter, including the required anti-affinity of pods already placed against
//! the incoming pod; preferred terms (the incoming pod's and the placed pods') and placed pods'
//! required affinity (`hardPodAffinityWeight`) as a score, by topology domain.
//!
//! PreFilter walks the snapshot once per cycle and counts, per topology pair (`key=value`), the
//! pods matching the incoming pod's required terms and the placed pods whose required
//! anti-affinity matches the incoming pod; Filter then only looks the node's labels up in those
//! counts. Preemption's what-ifs move the counts through `add_pod`/`remove_pod`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use kube::runtime::reflector::{ObjectRef, Store};
use rayon::prelude::*;
use rudder_api::selector::{Operator, Requirement, Selector};
use serde::Deserialize;

use super::memo::{KeyedMemo, Tally};
use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "InterPodAffinity";
pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

const PRE_FILTER_KEY: &str = "PreFilterInterPodAffinity";
const PRE_SCORE_KEY: &str = "PreScoreInterPodAffinity";

/// Below this many nodes a walk is cheaper on the scheduling thread than spread over the pool.
const PARALLEL_MIN_NODES: usize = 256;

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

pub(crate) fn labels_of(pod: &Pod) -> &BTreeMap<String, String> {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

fn node_labels(node: &NodeInfo) -> &BTreeMap<String, String> {
    node.labels().unwrap_or(&NO_LABELS)
}

/// `InterPodAffinityArgs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterPodAffinityArgs {
    #[serde(default = "one")]
    pub hard_pod_affinity_weight: i32,
    #[serde(default)]
    pub ignore_preferred_terms_of_existing_pods: bool,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

fn one() -> i32 {
    1
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
            api_version: None,
            kind: None,
        }
    }
}

impl InterPodAffinityArgs {
    /// Upstream's `ValidateInterPodAffinityArgs`.
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let w = self.hard_pod_affinity_weight;
        if !(0..=100).contains(&w) {
            return Err(format!(
                "{path}.hardPodAffinityWeight: Invalid value: {w}: not in valid range [0, 100]"
            ));
        }
        Ok(())
    }
}

/// A parsed `PodAffinityTerm` (upstream's `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    pub namespaces: HashSet<String, FxBuild>,
    pub selector: Selector,
    pub namespace_selector: Selector,
    pub topology_key: String,
}

#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    pub term: AffinityTerm,
    pub weight: i32,
}

impl AffinityTerm {
    fn new(pod: &Pod, term: &PodAffinityTerm) -> Result<AffinityTerm, String> {
        let mut selector =
            Selector::from_label_selector(term.label_selector.as_ref()).map_err(|e| e.0)?;
        // matchLabelKeys/mismatchLabelKeys: upstream's API server folds them into the label
        // selector when the pod is created (`key in (v)` / `key notin (v)` with the pod's own
        // value, only for a non-nil selector). Folding here gives the same selector whether or
        // not the server did it (the requirement would only repeat).
        if term.label_selector.is_some() {
            let labels = labels_of(pod);
            let mut extra = Vec::new();
            let keys = term
                .match_label_keys
                .iter()
                .flatten()
                .map(|k| (k, Operator::In))
                .chain(
                    term.mismatch_label_keys
                        .iter()
                        .flatten()
                        .map(|k| (k, Operator::NotIn)),
                );
            for (key, op) in keys {
                if let Some(v) = labels.get(key) {
                    extra.push(Requirement::new(key, op, vec![v.clone()]).map_err(|e| e.0)?);
                }
            }
            if !extra.is_empty() {
                selector = selector.with_requirements(extra);
            }
        }
        let namespace_selector =
            Selector::from_label_selector(term.namespace_selector.as_ref()).map_err(|e| e.0)?;
        let listed = term.namespaces.as_deref().unwrap_or(&[]);
        // No namespaces and no namespace selector: the pod's own namespace.
        let namespaces = if listed.is_empty() && term.namespace_selector.is_none() {
            std::iter::once(pod.metadata.namespace.clone().unwrap_or_default()).collect()
        } else {
            listed.iter().cloned().collect()
        };
        Ok(AffinityTerm {
            namespaces,
            selector,
            namespace_selector,
            topology_key: term.topology_key.clone(),
        })
    }

    /// Upstream's `AffinityTerm.Matches`: the pod is in one of the term's namespaces (listed, or
    /// selected through `ns_labels`, the labels of the pod's namespace) and its labels match.
    pub fn matches(&self, pod: &Pod, ns_labels: &BTreeMap<String, String>) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        (self.namespaces.contains(ns) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(labels_of(pod))
    }
}

/// A pod's affinity and anti-affinity terms, parsed once per pod.
#[derive(Clone, Debug, Default)]
pub struct PodAffinityTerms {
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<WeightedAffinityTerm>,
    pub preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    /// Why a list could not be parsed (that list is left empty, as upstream's `PodInfo.Update`).
    pub parse_error: Option<String>,
}

fn required_terms(
    pod: &Pod,
    terms: Option<&Vec<PodAffinityTerm>>,
    what: &str,
    errs: &mut Vec<String>,
) -> Vec<AffinityTerm> {
    let parsed: Result<Vec<_>, String> = terms
        .into_iter()
        .flatten()
        .map(|t| AffinityTerm::new(pod, t))
        .collect();
    parsed.unwrap_or_else(|e| {
        errs.push(format!("{what}: {e}"));
        Vec::new()
    })
}

fn weighted_terms(
    pod: &Pod,
    terms: Option<&Vec<WeightedPodAffinityTerm>>,
    what: &str,
    errs: &mut Vec<String>,
) -> Vec<WeightedAffinityTerm> {
    let parsed: Result<Vec<_>, String> = terms
        .into_iter()
        .flatten()
        .map(|t| {
            Ok(WeightedAffinityTerm {
                term: AffinityTerm::new(pod, &t.pod_affinity_term)?,
                weight: t.weight,
            })
        })
        .collect();
    parsed.unwrap_or_else(|e| {
        errs.push(format!("{what}: {e}"));
        Vec::new()
    })
}

impl PodAffinityTerms {
    /// The pod's terms; `None` when it has neither pod affinity nor anti-affinity.
    pub fn parse(pod: &Pod) -> Option<Box<PodAffinityTerms>> {
        let affinity = pod.spec.as_ref()?.affinity.as_ref()?;
        if affinity.pod_affinity.is_none() && affinity.pod_anti_affinity.is_none() {
            return None;
        }
        let mut errs = Vec::new();
        let pa = affinity.pod_affinity.as_ref();
        let paa = affinity.pod_anti_affinity.as_ref();
        let out = PodAffinityTerms {
            required_affinity: required_terms(
                pod,
                pa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                "requiredAffinityTerms",
                &mut errs,
            ),
            required_anti_affinity: required_terms(
                pod,
                paa.and_then(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                "requiredAntiAffinityTerms",
                &mut errs,
            ),
            preferred_affinity: weighted_terms(
                pod,
                pa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                "preferredAffinityTerms",
                &mut errs,
            ),
            preferred_anti_affinity: weighted_terms(
                pod,
                paa.and_then(|a| {
                    a.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
                "preferredAntiAffinityTerms",
                &mut errs,
            ),
            parse_error: match errs.len() {
                0 => None,
                1 => errs.pop(),
                _ => Some(format!("[{}]", errs.join(", "))),
            },
        };
        Some(Box::new(out))
    }
}

/// rustc's FxHash. The per-cycle counting is bound by hashing topology values, which come from
/// node labels (set by administrators, not by the pods being scheduled), so a fast unkeyed hash
/// is safe here where std's SipHash would dominate the cycle.
#[derive(Clone, Copy, Default)]
pub struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuild = std::hash::BuildHasherDefault<FxHasher>;
pub type FxMap<V> = HashMap<String, V, FxBuild>;

/// Matching pods (or a score) per topology pair: topology key → value → count. The keys are few
/// (one per distinct `topologyKey`), so they sit in a list; a node's labels are looked up without
/// building pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopologyCounts(Vec<(String, FxMap<i64>)>);

impl TopologyCounts {
    /// Adds `delta` to `key=value`, dropping pairs that fall to zero (as upstream's maps do).
    pub fn add(&mut self, key: &str, value: &str, delta: i64) {
        if let Some(i) = self.0.iter().position(|(k, _)| k == key) {
            let values = &mut self.0[i].1;
            if let Some(c) = values.get_mut(value) {
                *c += delta;
                if *c == 0 {
                    values.remove(value);
                }
            } else if delta != 0 {
                values.insert(value.to_string(), delta);
            }
            if values.is_empty() {
                self.0.swap_remove(i);
            }
        } else if delta != 0 {
            let mut values = FxMap::default();
            values.insert(value.to_string(), delta);
            self.0.push((key.to_string(), values));
        }
    }

    /// Adds `delta` to the node's pair for `key`, if the node has that label.
    fn add_for_node(&mut self, labels: &BTreeMap<String, String>, key: &str, delta: i64) {
        if let Some(value) = labels.get(key) {
            self.add(key, value, delta);
        }
    }

    fn from_pairs(pairs: Pairs<'_>) -> TopologyCounts {
        let mut out = TopologyCounts::default();
        for (k, v, n) in pairs.0 {
            out.add(k, v, n);
        }
        out
    }

    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.get(value))
            .copied()
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sum, over the node's labels, of the counts of its pairs.
    fn node_total(&self, labels: &BTreeMap<String, String>) -> i64 {
        self.0
            .iter()
            .filter_map(|(key, values)| labels.get(key).and_then(|v| values.get(v)))
            .sum()
    }

    /// Whether any of the node's pairs has a positive count.
    fn any_positive(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().any(|(key, values)| {
            labels
                .get(key)
                .and_then(|v| values.get(v))
                .is_some_and(|n| *n > 0)
        })
    }
}

/// Matches found by a walk, borrowed from the snapshot and the terms: (key, value, delta).
/// Counting them happens once, after the (parallel) walk, so no strings are copied per thread.
#[derive(Default)]
struct Pairs<'a>(Vec<(&'a str, &'a str, i64)>);

impl<'a> Pairs<'a> {
    fn add_for_node(&mut self, labels: &'a BTreeMap<String, String>, key: &'a str, delta: i64) {
        if let Some(value) = labels.get(key) {
            self.0.push((key, value.as_str(), delta));
        }
    }

    fn append(mut self, mut other: Pairs<'a>) -> Pairs<'a> {
        self.0.append(&mut other.0);
        self
    }
}

/// Runs `f` over the nodes into per-thread accumulators and merges them; in parallel (on the
/// scheduler's pool, when called from a cycle) once there are enough nodes to pay for it.
fn walk<'a, T, F, M>(nodes: &[&'a Arc<NodeInfo>], f: F, merge: M) -> T
where
    T: Default + Send,
    F: Fn(&'a NodeInfo, &mut T) + Sync,
    M: Fn(T, T) -> T + Sync,
{
    if nodes.len() < PARALLEL_MIN_NODES {
        let mut acc = T::default();
        for n in nodes {
            f(n, &mut acc);
        }
        return acc;
    }
    nodes
        .par_iter()
        .fold(T::default, |mut acc, n| {
            f(n, &mut acc);
            acc
        })
        .reduce(T::default, &merge)
}

/// Upstream's `podMatchesAllAffinityTerms`: false for no terms. The incoming pod's terms have
/// their namespace selectors resolved into namespaces already, hence no namespace labels.
fn pod_matches_all_terms(terms: &[AffinityTerm], pod: &Pod) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, &NO_LABELS))
}

#[derive(Clone, Debug)]
struct PreFilterState {
    /// Placed pods whose required anti-affinity matches the incoming pod, per pair.
    existing_anti_affinity: TopologyCounts,
    /// Pods matching all of the incoming pod's required affinity terms, per pair of each term.
    affinity: TopologyCounts,
    /// Pods matching each of the incoming pod's required anti-affinity terms, per pair.
    anti_affinity: TopologyCounts,
    /// The incoming pod's required terms, namespace selectors resolved.
    required_affinity: Arc<Vec<AffinityTerm>>,
    required_anti_affinity: Arc<Vec<AffinityTerm>>,
    /// The labels of the incoming pod's namespace.
    namespace_labels: Arc<BTreeMap<String, String>>,
    pod: Arc<Pod>,
}

impl PreFilterState {
    /// Upstream's `updateWithPod`: what `other` (added or removed on `node`) changes.
    fn update_with_pod(&mut self, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let labels = node_labels(node);
        if let Some(terms) = other.affinity.as_deref() {
            for t in &terms.required_anti_affinity {
                if t.matches(&self.pod, &self.namespace_labels) {
                    self.existing_anti_affinity
                        .add_for_node(labels, &t.topology_key, delta);
                }
            }
        }
        if pod_matches_all_terms(&self.required_affinity, &other.pod) {
            for t in self.required_affinity.iter() {
                self.affinity.add_for_node(labels, &t.topology_key, delta);
            }
        }
        for t in self.required_anti_affinity.iter() {
            if t.matches(&other.pod, &NO_LABELS) {
                self.anti_affinity
                    .add_for_node(labels, &t.topology_key, delta);
            }
        }
    }

    /// Upstream's `satisfyPodAffinity`, with the exception for the first pod of a group whose
    /// affinity selects itself: when no pod anywhere matches, a node with every topology label
    /// is accepted.
    fn satisfies_pod_affinity(&self, labels: &BTreeMap<String, String>) -> bool {
        let mut pods_exist = true;
        for t in self.required_affinity.iter() {
            match labels.get(&t.topology_key) {
                Some(v) => {
                    if self.affinity.get(&t.topology_key, v) <= 0 {
                        pods_exist = false;
                    }
                }
                None => return false,
            }
        }
        pods_exist
            || (self.affinity.is_empty()
                && pod_matches_all_terms(&self.required_affinity, &self.pod))
    }

    fn satisfies_pod_anti_affinity(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.anti_affinity.is_empty() {
            return true;
        }
        !self.required_anti_affinity.iter().any(|t| {
            labels
                .get(&t.topology_key)
                .is_some_and(|v| self.anti_affinity.get(&t.topology_key, v) > 0)
        })
    }

    fn satisfies_existing_pods_anti_affinity(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.existing_anti_affinity.any_positive(labels)
    }
}

#[derive(Clone, Debug)]
struct PreScoreState {
    topology_score: TopologyCounts,
}

pub struct InterPodAffinity {
    pub args: InterPodAffinityArgs,
    pub namespaces: Store<Namespace>,
    /// Existing pods' required anti-affinity terms that match an incoming pod, per (namespace,
    /// labels, namespace labels) of the incoming pod.
    existing_anti: KeyedMemo<ExistingKey, TopologyCounts>,
    /// Existing pods matching an incoming pod's required terms, per those terms.
    incoming: KeyedMemo<String, TermTotals>,
}

type ExistingKey = (String, BTreeMap<String, String>, BTreeMap<String, String>);

impl Tally for TopologyCounts {
    type Part = Vec<(String, String, i64)>;
    fn add(&mut self, part: &Self::Part, sign: i64) {
        for (key, value, n) in part {
            TopologyCounts::add(self, key, value, sign * n);
        }
    }
}

/// Matches of an incoming pod's required affinity and anti-affinity terms.
#[derive(Default)]
struct TermTotals {
    affinity: TopologyCounts,
    anti_affinity: TopologyCounts,
}

impl Tally for TermTotals {
    type Part = (
        <TopologyCounts as Tally>::Part,
        <TopologyCounts as Tally>::Part,
    );
    fn add(&mut self, part: &Self::Part, sign: i64) {
        Tally::add(&mut self.affinity, &part.0, sign);
        Tally::add(&mut self.anti_affinity, &part.1, sign);
    }
}

/// The pair `key=<the node's value>` for a node that has the label.
fn pair(labels: &BTreeMap<String, String>, key: &str) -> Option<(String, String, i64)> {
    labels.get(key).map(|v| (key.to_string(), v.clone(), 1))
}

/// Resolved terms as a memo key: equal terms give equal text.
fn terms_key(affinity: &[AffinityTerm], anti_affinity: &[AffinityTerm]) -> String {
    let one = |t: &AffinityTerm| {
        let mut ns: Vec<&str> = t.namespaces.iter().map(String::as_str).collect();
        ns.sort_unstable();
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{}",
            t.topology_key,
            t.selector,
            t.namespace_selector,
            ns.join(",")
        )
    };
    let list = |ts: &[AffinityTerm]| ts.iter().map(one).collect::<Vec<_>>().join("\u{1}");
    format!("{}\u{2}{}", list(affinity), list(anti_affinity))
}

impl InterPodAffinity {
    pub fn new(args: InterPodAffinityArgs, namespaces: Store<Namespace>) -> InterPodAffinity {
        InterPodAffinity {
            args,
            namespaces,
            existing_anti: KeyedMemo::default(),
            incoming: KeyedMemo::default(),
        }
    }

    /// Upstream's `GetNamespaceLabelsSnapshot`: no labels when the namespace is unknown.
    fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        self.namespaces
            .get(&ObjectRef::new(ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// Upstream's `mergeAffinityTermNamespacesIfNotEmpty`: the namespaces a term's selector
    /// picks now join its namespace list, and the selector then matches nothing.
    fn resolve_namespaces(&self, term: &mut AffinityTerm) {
        if term.namespace_selector.is_empty() {
            return;
        }
        if !term.namespace_selector.matches_nothing() {
            let sel = &term.namespace_selector;
            let picked: Vec<String> = self
                .namespaces
                .state_filter(|n| sel.matches(n.metadata.labels.as_ref().unwrap_or(&NO_LABELS)))
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .collect();
            term.namespaces.extend(picked);
        }
        term.namespace_selector = Selector::nothing();
    }

    fn resolved(&self, terms: &[AffinityTerm]) -> Vec<AffinityTerm> {
        terms
            .iter()
            .map(|t| {
                let mut t = t.clone();
                self.resolve_namespaces(&mut t);
                t
            })
            .collect()
    }

    fn resolved_weighted(&self, terms: &[WeightedAffinityTerm]) -> Vec<WeightedAffinityTerm> {
        terms
            .iter()
            .map(|t| {
                let mut t = t.clone();
                self.resolve_namespaces(&mut t.term);
                t
            })
            .collect()
    }
}

fn state_error(key: &str) -> Status {
    Status::error(format!("reading {key:?} from cycleState: not found"))
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
    fn points(&self) -> &'static [Point] {
        &[
            Point::PreFilter,
            Point::Filter,
            Point::PreScore,
            Point::Score,
        ]
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            // A placed pod added (affinity), deleted (anti-affinity) or relabelled.
            ClusterEvent::new(EventResource::AssignedPod, ALL),
            ClusterEvent::new(EventResource::Pod, &[ActionType::Update]),
            ClusterEvent::new(EventResource::Node, ADD_UPDATE),
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let empty = PodAffinityTerms::default();
        let terms = pod.affinity.as_deref().unwrap_or(&empty);
        if let Some(e) = &terms.parse_error {
            return (
                None,
                Status::new(
                    Code::UnschedulableAndUnresolvable,
                    format!("parsing pod: {e}"),
                ),
            );
        }
        let required_affinity = self.resolved(&terms.required_affinity);
        let required_anti_affinity = self.resolved(&terms.required_anti_affinity);
        let namespace_labels = self.namespace_labels(pod.namespace());

        // Both sums are kept across cycles and redone only at nodes whose pods changed.
        let existing_key = (
            pod.namespace().to_string(),
            labels_of(&pod.pod).clone(),
            namespace_labels.clone(),
        );
        let existing_anti_affinity = self.existing_anti.with(existing_key, |memo| {
            memo.update(&snapshot.nodes, |node| {
                if node.pods_with_required_anti_affinity == 0 {
                    return Vec::new();
                }
                let labels = node_labels(node);
                node.pods
                    .iter()
                    .filter_map(|p| p.affinity.as_deref())
                    .flat_map(|t| &t.required_anti_affinity)
                    .filter(|term| term.matches(&pod.pod, &namespace_labels))
                    .filter_map(|term| pair(labels, &term.topology_key))
                    .collect()
            })
            .clone()
        });

        let (affinity, anti_affinity) =
            if required_affinity.is_empty() && required_anti_affinity.is_empty() {
                Default::default()
            } else {
                let key = terms_key(&required_affinity, &required_anti_affinity);
                self.incoming.with(key, |memo| {
                    let totals = memo.update(&snapshot.nodes, |node| {
                        let labels = node_labels(node);
                        let mut part = (Vec::new(), Vec::new());
                        for p in &node.pods {
                            if pod_matches_all_terms(&required_affinity, &p.pod) {
                                part.0.extend(
                                    required_affinity
                                        .iter()
                                        .filter_map(|t| pair(labels, &t.topology_key)),
                                );
                            }
                            part.1.extend(
                                required_anti_affinity
                                    .iter()
                                    .filter(|t| t.matches(&p.pod, &NO_LABELS))
                                    .filter_map(|t| pair(labels, &t.topology_key)),
                            );
                        }
                        part
                    });
                    (totals.affinity.clone(), totals.anti_affinity.clone())
                })
            };

        if existing_anti_affinity.is_empty()
            && required_affinity.is_empty()
            && required_anti_affinity.is_empty()
        {
            return (None, Status::skip());
        }
        state.write(
            PRE_FILTER_KEY,
            PreFilterState {
                existing_anti_affinity,
                affinity,
                anti_affinity,
                required_affinity: Arc::new(required_affinity),
                required_anti_affinity: Arc::new(required_anti_affinity),
                namespace_labels: Arc::new(namespace_labels),
                pod: pod.pod.clone(),
            },
        );
        (None, Status::success())
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        // No state: PreFilter skipped this plugin for the pod, and nothing here applies.
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(added, node, 1);
        }
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(removed, node, -1);
        }
        Status::success()
    }

    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return state_error(PRE_FILTER_KEY);
        };
        let labels = node_labels(node);
        if !s.satisfies_pod_affinity(labels) {
            return Status::new(Code::UnschedulableAndUnresolvable, ERR_REASON_AFFINITY);
        }
        if !s.satisfies_pod_anti_affinity(labels) {
            return Status::new(Code::Unschedulable, ERR_REASON_ANTI_AFFINITY);
        }
        if !s.satisfies_existing_pods_anti_affinity(labels) {
            return Status::new(Code::Unschedulable, ERR_REASON_EXISTING_ANTI_AFFINITY);
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        if nodes.is_empty() {
            return Status::skip();
        }
        let empty = PodAffinityTerms::default();
        let terms = pod.affinity.as_deref().unwrap_or(&empty);
        let has_constraints =
            !terms.preferred_affinity.is_empty() || !terms.preferred_anti_affinity.is_empty();
        if self.args.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        // Unless the incoming pod has preferred terms, only pods with affinity can score.
        let walked: Vec<&Arc<NodeInfo>> = snapshot
            .nodes
            .iter()
            .filter(|n| has_constraints || n.pods_with_affinity > 0)
            .collect();
        let preferred_affinity = self.resolved_weighted(&terms.preferred_affinity);
        let preferred_anti_affinity = self.resolved_weighted(&terms.preferred_anti_affinity);
        let namespace_labels = self.namespace_labels(pod.namespace());
        let hard_weight = i64::from(self.args.hard_pod_affinity_weight);

        let topology_score = walk(
            &walked,
            |node, acc: &mut Pairs| {
                let labels = node_labels(node);
                if labels.is_empty() {
                    return;
                }
                for existing in &node.pods {
                    let theirs = existing.affinity.as_deref();
                    if !has_constraints && theirs.is_none() {
                        continue;
                    }
                    for t in &preferred_affinity {
                        if t.term.matches(&existing.pod, &NO_LABELS) {
                            acc.add_for_node(labels, &t.term.topology_key, i64::from(t.weight));
                        }
                    }
                    for t in &preferred_anti_affinity {
                        if t.term.matches(&existing.pod, &NO_LABELS) {
                            acc.add_for_node(labels, &t.term.topology_key, -i64::from(t.weight));
                        }
                    }
                    let Some(theirs) = theirs else { continue };
                    if hard_weight > 0 {
                        for t in &theirs.required_affinity {
                            if t.matches(&pod.pod, &namespace_labels) {
                                acc.add_for_node(labels, &t.topology_key, hard_weight);
                            }
                        }
                    }
                    for t in &theirs.preferred_affinity {
                        if t.term.matches(&pod.pod, &namespace_labels) {
                            acc.add_for_node(labels, &t.term.topology_key, i64::from(t.weight));
                        }
                    }
                    for t in &theirs.preferred_anti_affinity {
                        if t.term.matches(&pod.pod, &namespace_labels) {
                            acc.add_for_node(labels, &t.term.topology_key, -i64::from(t.weight));
                        }
                    }
                }
            },
            Pairs::append,
        );
        let topology_score = TopologyCounts::from_pairs(topology_score);
        if topology_score.is_empty() {
            return Status::skip();
        }
        state.write(PRE_SCORE_KEY, PreScoreState { topology_score });
        Status::success()
    }

    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (0, state_error(PRE_SCORE_KEY));
        };
        (
            s.topology_score.node_total(node_labels(node)),
            Status::success(),
        )
    }

    /// Upstream: scaled linearly from the lowest (0) to the highest (100) raw score.
    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return state_error(PRE_SCORE_KEY);
        };
        if s.topology_score.is_empty() {
            return Status::success();
        }
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            s.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((s.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::snapshot;
    use serde_json::{json, Value};

    fn scores(pl: &InterPodAffinity, p: &PodInfo, snap: &Snapshot) -> Option<Vec<i64>> {
        crate::plugins::testing::scores(pl, p, &snap.nodes, snap)
    }

    fn pod(name: &str, ns: &str, labels: Value, affinity: Value) -> PodInfo {
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns, "uid": name, "labels": labels},
                "spec": {"containers": [{"name": "c"}], "affinity": affinity}
            }))
            .unwrap(),
        ))
    }

    fn node(name: &str, labels: Value, pods: Vec<PodInfo>) -> Arc<NodeInfo> {
        let mut n = NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        ));
        for p in pods {
            n.add_pod(Arc::new(p));
        }
        Arc::new(n)
    }

    fn plugin_with(args: InterPodAffinityArgs, namespaces: Vec<Value>) -> InterPodAffinity {
        let mut w = kube::runtime::reflector::store::Writer::<Namespace>::default();
        for ns in namespaces {
            let ns: Namespace = serde_json::from_value(ns).unwrap();
            w.apply_watcher_event(&kube::runtime::watcher::Event::Apply(ns));
        }
        InterPodAffinity::new(args, w.as_reader())
    }

    fn plugin() -> InterPodAffinity {
        plugin_with(InterPodAffinityArgs::default(), Vec::new())
    }

    /// The Filter status of every node, `None` where it fits.
    fn filter_all(
        pl: &InterPodAffinity,
        p: &PodInfo,
        snap: &Snapshot,
    ) -> Vec<Option<(Code, String)>> {
        let mut st = CycleState::default();
        let (_, s) = pl.pre_filter(&mut st, p, snap);
        if s.code == Code::Skip {
            return snap.nodes.iter().map(|_| None).collect();
        }
        assert!(s.is_success(), "{s:?}");
        snap.nodes
            .iter()
            .map(|n| {
                let s = pl.filter(&st, p, n);
                (!s.is_success()).then(|| (s.code, s.message()))
            })
            .collect()
    }

    fn term(key: &str, op: &str, values: Value, topology: &str) -> Value {
        json!({"labelSelector": {"matchExpressions": [{"key": key, "operator": op, "values": values}]},
               "topologyKey": topology})
    }

    fn affinity_fail() -> Option<(Code, String)> {
        Some((
            Code::UnschedulableAndUnresolvable,
            ERR_REASON_AFFINITY.to_string(),
        ))
    }
    fn anti_fail() -> Option<(Code, String)> {
        Some((Code::Unschedulable, ERR_REASON_ANTI_AFFINITY.to_string()))
    }
    fn existing_fail() -> Option<(Code, String)> {
        Some((
            Code::Unschedulable,
            ERR_REASON_EXISTING_ANTI_AFFINITY.to_string(),
        ))
    }

    #[test]
    fn no_affinity_anywhere_skips() {
        let p = pod("p", "default", json!({}), json!(null));
        let snap = snapshot(vec![node("n1", json!({}), vec![])]);
        let (_, s) = plugin().pre_filter(&mut CycleState::default(), &p, &snap);
        assert_eq!(s.code, Code::Skip);
    }

    #[test]
    fn required_affinity_matches_existing_pod_in_its_namespace_only() {
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("service", "In", json!(["securityscan", "value2"]), "region")]}});
        let p = pod("p", "default", json!({}), aff.clone());
        let existing = pod(
            "e",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
        );
        let snap = snapshot(vec![
            node("n1", json!({"region": "r1"}), vec![existing]),
            node("n2", json!({"region": "r1"}), vec![]),
            node("n3", json!({"region": "r2"}), vec![]),
        ]);
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![None, None, affinity_fail()]
        );
        // The same pod in another namespace: the term means the incoming pod's namespace.
        let other_ns = pod(
            "e",
            "other",
            json!({"service": "securityscan"}),
            json!(null),
        );
        let snap = snapshot(vec![node("n1", json!({"region": "r1"}), vec![other_ns])]);
        assert_eq!(filter_all(&plugin(), &p, &snap), vec![affinity_fail()]);
        // A node without the topology label never satisfies affinity.
        let existing = pod(
            "e",
            "default",
            json!({"service": "securityscan"}),
            json!(null),
        );
        let snap = snapshot(vec![node("n1", json!({}), vec![existing])]);
        assert_eq!(filter_all(&plugin(), &p, &snap), vec![affinity_fail()]);
    }

    #[test]
    fn all_required_affinity_terms_must_match_one_pod() {
        // Upstream: affinity looks for a single existing pod matching every term.
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("app", "In", json!(["web"]), "zone"),
            term("tier", "In", json!(["front"]), "kubernetes.io/hostname")]}});
        let p = pod("p", "default", json!({}), aff);
        let both = pod(
            "b",
            "default",
            json!({"app": "web", "tier": "front"}),
            json!(null),
        );
        let app_only = pod("a", "default", json!({"app": "web"}), json!(null));
        let tier_only = pod("t", "default", json!({"tier": "front"}), json!(null));
        let labels = |zone: &str, host: &str| json!({"zone": zone, "kubernetes.io/hostname": host});
        let snap = snapshot(vec![
            node("n1", labels("z1", "n1"), vec![both]),
            node("n2", labels("z1", "n2"), vec![]),
            node("n3", labels("z2", "n3"), vec![app_only, tier_only]),
        ]);
        // n2 shares the zone but not the host of the pod matching both terms.
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![None, affinity_fail(), affinity_fail()]
        );
    }

    #[test]
    fn first_pod_of_a_self_affine_group_may_go_anywhere_with_the_topology() {
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("app", "In", json!(["web"]), "zone")]}});
        let p = pod("p", "default", json!({"app": "web"}), aff.clone());
        let snap = snapshot(vec![
            node("n1", json!({"zone": "a"}), vec![]),
            node("n2", json!({}), vec![]),
        ]);
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![None, affinity_fail()]
        );
        // Once one exists, the group is bound to its zone.
        let first = pod("w1", "default", json!({"app": "web"}), aff.clone());
        let snap = snapshot(vec![
            node("n1", json!({"zone": "a"}), vec![first]),
            node("n2", json!({"zone": "b"}), vec![]),
        ]);
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![None, affinity_fail()]
        );
        // A pod not matching its own selector gets no exception.
        let q = pod("q", "default", json!({"app": "db"}), aff);
        let snap = snapshot(vec![node("n1", json!({"zone": "a"}), vec![])]);
        assert_eq!(filter_all(&plugin(), &q, &snap), vec![affinity_fail()]);
    }

    #[test]
    fn required_anti_affinity_by_zone_and_hostname() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("app", "In", json!(["web"]), "zone")]}});
        let p = pod("p", "default", json!({"app": "web"}), anti);
        let existing = pod("e", "default", json!({"app": "web"}), json!(null));
        let snap = snapshot(vec![
            node("n1", json!({"zone": "a"}), vec![existing]),
            node("n2", json!({"zone": "a"}), vec![]),
            node("n3", json!({"zone": "b"}), vec![]),
            // No zone label: anti-affinity cannot be violated there.
            node("n4", json!({}), vec![]),
        ]);
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![anti_fail(), anti_fail(), None, None]
        );
    }

    /// Both PreFilter sums are kept per node generation: a node whose generation moved is
    /// recounted, one whose generation stayed is not (the cache bumps it on every pod change).
    #[test]
    fn counts_follow_node_generations() {
        let host = "kubernetes.io/hostname";
        let anti = |v: &str| {
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                term("app", "In", json!([v]), host)]}})
        };
        let at = |n: Arc<NodeInfo>, generation: u64| {
            let mut n = Arc::unwrap_or_clone(n);
            n.generation = generation;
            Arc::new(n)
        };
        let web = |name: &str| pod(name, "default", json!({"app": "web"}), json!(null));
        let guard = |name: &str| pod(name, "default", json!({}), anti("web"));
        let pl = plugin();
        let p = pod("p", "default", json!({"app": "web"}), anti("web"));
        let snap = |n1: (u64, Vec<PodInfo>), n2: (u64, Vec<PodInfo>)| {
            snapshot(vec![
                at(node("n1", json!({host: "n1"}), n1.1), n1.0),
                at(node("n2", json!({host: "n2"}), n2.1), n2.0),
            ])
        };
        // The incoming pod's own term rules out n1; n2's guard (whose term matches the pod)
        // rules out n2.
        let s = snap((1, vec![web("a")]), (2, vec![guard("g")]));
        assert_eq!(filter_all(&pl, &p, &s), vec![anti_fail(), existing_fail()]);
        // n1 loses its pod (generation 3): it fits again.
        let s = snap((3, vec![]), (2, vec![guard("g")]));
        assert_eq!(filter_all(&pl, &p, &s), vec![None, existing_fail()]);
        // n2 at generation 2 is taken from memory even though this snapshot's n2 (built
        // outside the cache, which would have bumped it) has no guard; a fresh plugin counts it.
        let s = snap((3, vec![]), (2, vec![]));
        assert_eq!(filter_all(&pl, &p, &s), vec![None, existing_fail()]);
        assert_eq!(filter_all(&plugin(), &p, &s), vec![None, None]);
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("security", "In", json!(["S1"]), "kubernetes.io/hostname")]}});
        let existing = pod("e", "default", json!({}), anti);
        let p = pod("p", "default", json!({"security": "S1"}), json!(null));
        let snap = snapshot(vec![
            node(
                "n1",
                json!({"kubernetes.io/hostname": "n1"}),
                vec![existing],
            ),
            node("n2", json!({"kubernetes.io/hostname": "n2"}), vec![]),
        ]);
        assert_eq!(
            filter_all(&plugin(), &p, &snap),
            vec![existing_fail(), None]
        );
        // In another namespace the existing pod's term does not reach the incoming pod.
        let q = pod("q", "other", json!({"security": "S1"}), json!(null));
        let (_, s) = plugin().pre_filter(&mut CycleState::default(), &q, &snap);
        assert_eq!(s.code, Code::Skip);
    }

    #[test]
    fn namespace_selector_uses_namespace_labels() {
        let namespaces = vec![
            json!({"metadata": {"name": "team-a", "labels": {"team": "a"}}}),
            json!({"metadata": {"name": "team-b", "labels": {"team": "b"}}}),
        ];
        let pl = plugin_with(InterPodAffinityArgs::default(), namespaces);
        let aff = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "db"}},
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "topologyKey": "zone"}]}});
        let p = pod("p", "default", json!({}), aff);
        let in_a = pod("a", "team-a", json!({"app": "db"}), json!(null));
        let in_b = pod("b", "team-b", json!({"app": "db"}), json!(null));
        let snap = snapshot(vec![
            node("n1", json!({"zone": "z1"}), vec![in_a]),
            node("n2", json!({"zone": "z2"}), vec![in_b]),
        ]);
        assert_eq!(filter_all(&pl, &p, &snap), vec![None, affinity_fail()]);

        // An existing pod's anti-affinity selecting namespaces by label reaches an incoming pod
        // whose namespace carries the label.
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}},
            "namespaceSelector": {"matchLabels": {"team": "b"}},
            "topologyKey": "zone"}]}});
        let guard = pod("g", "default", json!({}), anti);
        let snap = snapshot(vec![
            node("n1", json!({"zone": "z1"}), vec![guard]),
            node("n2", json!({"zone": "z2"}), vec![]),
        ]);
        let web_b = pod("w", "team-b", json!({"app": "web"}), json!(null));
        assert_eq!(filter_all(&pl, &web_b, &snap), vec![existing_fail(), None]);
        let web_a = pod("w", "team-a", json!({"app": "web"}), json!(null));
        assert_eq!(filter_all(&pl, &web_a, &snap), vec![None, None]);
    }

    #[test]
    fn match_label_keys_narrow_the_selector_to_the_pods_own_value() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "web"}},
            "matchLabelKeys": ["rev"],
            "topologyKey": "kubernetes.io/hostname"}]}});
        let p = pod("p", "default", json!({"app": "web", "rev": "2"}), anti);
        let old = pod(
            "o",
            "default",
            json!({"app": "web", "rev": "1"}),
            json!(null),
        );
        let new = pod(
            "n",
            "default",
            json!({"app": "web", "rev": "2"}),
            json!(null),
        );
        let snap = snapshot(vec![
            node("n1", json!({"kubernetes.io/hostname": "n1"}), vec![old]),
            node("n2", json!({"kubernetes.io/hostname": "n2"}), vec![new]),
        ]);
        assert_eq!(filter_all(&plugin(), &p, &snap), vec![None, anti_fail()]);
    }

    #[test]
    fn add_and_remove_pod_move_the_counts() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("app", "In", json!(["web"]), "kubernetes.io/hostname")]}});
        let p = pod("p", "default", json!({"app": "web"}), anti.clone());
        let victim = pod("v", "default", json!({"app": "web"}), json!(null));
        let n1 = node("n1", json!({"kubernetes.io/hostname": "n1"}), vec![victim]);
        let snap = snapshot(vec![n1.clone()]);
        let pl = plugin();
        let mut st = CycleState::default();
        let (_, s) = pl.pre_filter(&mut st, &p, &snap);
        assert!(s.is_success());
        assert_eq!(pl.filter(&st, &p, &n1).message(), ERR_REASON_ANTI_AFFINITY);
        let mut what_if = st.clone();
        pl.remove_pod(&mut what_if, &p, &n1.pods[0], &n1);
        assert!(pl.filter(&what_if, &p, &n1).is_success());
        // The original state is untouched by the copy.
        assert!(!pl.filter(&st, &p, &n1).is_success());
        // A pod with anti-affinity against the incoming pod, added by a what-if.
        let guard = pod("g", "default", json!({}), anti);
        let q = pod("q", "default", json!({"app": "web"}), json!(null));
        let mut st = CycleState::default();
        let empty = node("n2", json!({"kubernetes.io/hostname": "n2"}), vec![]);
        let guard_node = node("n3", json!({"kubernetes.io/hostname": "n3"}), vec![guard]);
        let (_, s) = pl.pre_filter(&mut st, &q, &snapshot(vec![guard_node.clone()]));
        assert!(s.is_success());
        assert!(pl.filter(&st, &q, &empty).is_success());
        pl.remove_pod(&mut st, &q, &guard_node.pods[0], &guard_node);
        assert!(pl.filter(&st, &q, &guard_node).is_success());
        pl.add_pod(&mut st, &q, &guard_node.pods[0], &guard_node);
        assert_eq!(
            pl.filter(&st, &q, &guard_node).message(),
            ERR_REASON_EXISTING_ANTI_AFFINITY
        );
    }

    #[test]
    fn many_nodes_count_the_same_in_parallel() {
        let anti = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("app", "In", json!(["web"]), "zone")]}});
        let p = pod("p", "default", json!({"app": "web"}), anti.clone());
        let nodes: Vec<Arc<NodeInfo>> = (0..1000)
            .map(|i| {
                let pods = if i % 100 == 0 {
                    vec![pod(
                        &format!("w{i}"),
                        "default",
                        json!({"app": "web"}),
                        anti.clone(),
                    )]
                } else {
                    vec![]
                };
                node(
                    &format!("n{i}"),
                    json!({"zone": format!("z{}", i % 20)}),
                    pods,
                )
            })
            .collect();
        let snap = snapshot(nodes);
        let fits = filter_all(&plugin(), &p, &snap)
            .iter()
            .filter(|s| s.is_none())
            .count();
        // Pods in zone z0 only (i % 100 == 0 ⇒ i % 20 == 0): its 50 nodes are out.
        assert_eq!(fits, 950);
    }

    #[test]
    fn preferred_affinity_scores_matching_topologies_highest() {
        // Upstream's "pod that matches topology key & pods in nodes will get high score".
        let aff = json!({"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": term("security", "In", json!(["S1"]), "region")}]}});
        let p = pod("p", "default", json!({}), aff);
        let s1 = pod("e", "default", json!({"security": "S1"}), json!(null));
        let snap = snapshot(vec![
            node("n1", json!({"region": "China"}), vec![s1]),
            node("n2", json!({"region": "China"}), vec![]),
            node("n3", json!({"region": "India"}), vec![]),
            node("n4", json!({"az": "az1"}), vec![]),
        ]);
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![100, 100, 0, 0]));
    }

    #[test]
    fn preferred_anti_affinity_and_weights_normalize_between_min_and_max() {
        let aff = json!({
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 8, "podAffinityTerm": term("security", "In", json!(["S1"]), "region")}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": term("security", "In", json!(["S2"]), "region")}]}});
        let p = pod("p", "default", json!({}), aff);
        let s1 = pod("a", "default", json!({"security": "S1"}), json!(null));
        let s2 = pod("b", "default", json!({"security": "S2"}), json!(null));
        let snap = snapshot(vec![
            node("n1", json!({"region": "China"}), vec![s1]),
            node("n2", json!({"region": "India"}), vec![s2]),
            node("n3", json!({"region": "Japan"}), vec![]),
        ]);
        // Raw 8, -5, 0: (8+5)/13, 0, 5/13.
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![100, 0, 38]));
    }

    #[test]
    fn existing_pods_terms_score_unless_ignored() {
        let hard = json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            term("security", "In", json!(["S1"]), "region")]}});
        let existing = pod("e", "default", json!({}), hard);
        let p = pod("p", "default", json!({"security": "S1"}), json!(null));
        let snap = snapshot(vec![
            node("n1", json!({"region": "China"}), vec![existing]),
            node("n2", json!({"region": "India"}), vec![]),
        ]);
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![100, 0]));
        let zero = InterPodAffinityArgs {
            hard_pod_affinity_weight: 0,
            ..Default::default()
        };
        assert_eq!(scores(&plugin_with(zero, vec![]), &p, &snap), None);
        let ignore = InterPodAffinityArgs {
            ignore_preferred_terms_of_existing_pods: true,
            ..Default::default()
        };
        assert_eq!(scores(&plugin_with(ignore, vec![]), &p, &snap), None);

        let soft_anti = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "podAffinityTerm": term("security", "In", json!(["S1"]), "region")}]}});
        let existing = pod("e", "default", json!({}), soft_anti);
        let snap = snapshot(vec![
            node("n1", json!({"region": "China"}), vec![existing]),
            node("n2", json!({"region": "India"}), vec![]),
        ]);
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![0, 100]));
    }

    #[test]
    fn args_default_and_validate() {
        let a: InterPodAffinityArgs = serde_json::from_value(json!({})).unwrap();
        assert_eq!(a.hard_pod_affinity_weight, 1);
        let a: InterPodAffinityArgs =
            serde_json::from_value(json!({"hardPodAffinityWeight": 101})).unwrap();
        assert_eq!(
            a.validate("profiles[0].pluginConfig[0].args").unwrap_err(),
            "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]"
        );
    }
}
