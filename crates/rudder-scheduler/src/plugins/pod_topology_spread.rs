//! PodTopologySpread (upstream's `plugins/podtopologyspread`): `topologySpreadConstraints` with
//! `whenUnsatisfiable: DoNotSchedule` as a filter (skew against the emptiest eligible domain,
//! `minDomains`), `ScheduleAnyway` as a score, node inclusion policies, `matchLabelKeys`, and the
//! cluster-level default constraints for pods that have none but belong to a Service,
//! ReplicaSet, StatefulSet or ReplicationController.
//!
//! PreFilter counts the matching pods per domain once per cycle and keeps the two emptiest
//! domains per constraint (upstream's critical paths), so Filter is a lookup per constraint.
//! Upstream recounts every node's pods in every cycle on 16 goroutines; here a node's count is
//! remembered with the node's generation (which moves whenever its pods change), so a cycle
//! recounts only the nodes that changed since the last pod with the same selector. On 2 cores at
//! 5,000 nodes the recount was most of a cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use kube::runtime::reflector::ObjectRef;
use rayon::prelude::*;
use rudder_api::selector::Selector;
use serde::Deserialize;

use super::basic::{tolerates, tolerations};
use super::inter_pod_affinity::{labels_of, FxMap};
use super::memo::{KeyedMemo, Tally};
use super::node_affinity::pod_matches_node_selector_and_affinity;
use super::Listers;
use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "PodTopologySpread";
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";

const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";
const PRE_FILTER_KEY: &str = "PreFilterPodTopologySpread";
const PRE_SCORE_KEY: &str = "PreScorePodTopologySpread";

/// Below this many nodes a walk is cheaper on the scheduling thread than spread over the pool.
const PARALLEL_MIN_NODES: usize = 256;

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

fn node_labels(node: &NodeInfo) -> &BTreeMap<String, String> {
    node.labels().unwrap_or(&NO_LABELS)
}

/// A constraint of `PodTopologySpreadArgs.defaultConstraints`, decoded leniently so that
/// validation (not decoding) names what is wrong, as upstream's does.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultConstraint {
    #[serde(default)]
    pub max_skew: i32,
    #[serde(default)]
    pub topology_key: String,
    #[serde(default)]
    pub when_unsatisfiable: String,
    #[serde(default)]
    pub label_selector: Option<serde_json::Value>,
    #[serde(default)]
    pub min_domains: Option<i32>,
    #[serde(default)]
    pub node_affinity_policy: Option<String>,
    #[serde(default)]
    pub node_taints_policy: Option<String>,
    #[serde(default)]
    pub match_label_keys: Option<Vec<String>>,
}

/// `PodTopologySpreadArgs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTopologySpreadArgs {
    #[serde(default)]
    pub default_constraints: Vec<DefaultConstraint>,
    /// `System` (upstream's default) or `List`.
    #[serde(default)]
    pub defaulting_type: Option<String>,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl PodTopologySpreadArgs {
    fn defaulting_type(&self) -> &str {
        self.defaulting_type
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("System")
    }

    /// Upstream's `ValidatePodTopologySpreadArgs` (the first error).
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let dt = self.defaulting_type();
        if dt != "System" && dt != "List" {
            return Err(format!(
                "{path}.defaultingType: Unsupported value: \"{dt}\": supported values: \"System\", \"List\""
            ));
        }
        if dt == "System" && !self.default_constraints.is_empty() {
            return Err(format!(
                "{path}.defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty"
            ));
        }
        for (i, c) in self.default_constraints.iter().enumerate() {
            let p = format!("{path}.defaultConstraints[{i}]");
            if c.max_skew <= 0 {
                return Err(format!(
                    "{p}.maxSkew: Invalid value: {}: not in valid range (0, inf)",
                    c.max_skew
                ));
            }
            if c.topology_key.is_empty() {
                return Err(format!("{p}.topologyKey: Required value: can not be empty"));
            }
            if let Some(msg) = rudder_api::validation::is_qualified_name(&c.topology_key)
                .into_iter()
                .next()
            {
                return Err(format!(
                    "{p}.topologyKey: Invalid value: \"{}\": {msg}",
                    c.topology_key
                ));
            }
            match c.when_unsatisfiable.as_str() {
                "" => {
                    return Err(format!(
                        "{p}.whenUnsatisfiable: Required value: can not be empty"
                    ))
                }
                DO_NOT_SCHEDULE | SCHEDULE_ANYWAY => {}
                other => {
                    return Err(format!(
                        "{p}.whenUnsatisfiable: Unsupported value: \"{other}\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
                    ))
                }
            }
            if c.label_selector.is_some() {
                return Err(format!(
                    "{p}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                ));
            }
            let repeated = self.default_constraints[..i].iter().any(|o| {
                o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
            });
            if repeated {
                return Err(format!(
                    "{path}.defaultConstraints[{i}]: Duplicate value: \"{{{}, {}}}\"",
                    c.topology_key, c.when_unsatisfiable
                ));
            }
        }
        Ok(())
    }
}

/// A constraint with its selector parsed and upstream's defaults applied.
#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    topology_key: String,
    selector: Selector,
    min_domains: usize,
    /// `nodeAffinityPolicy: Honor` (the default).
    honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (the default is Ignore).
    honor_node_taints: bool,
}

impl Constraint {
    /// Upstream's `matchNodeInclusionPolicies`: whether the node counts for this constraint.
    fn includes(&self, pod: &PodInfo, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !pod_matches_node_selector_and_affinity(pod, node) {
            return false;
        }
        if self.honor_node_taints && has_untolerated_do_not_schedule_taint(pod, node) {
            return false;
        }
        true
    }
}

/// A NoSchedule or NoExecute taint the pod does not tolerate.
fn has_untolerated_do_not_schedule_taint(pod: &PodInfo, node: &NodeInfo) -> bool {
    let taints = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tols = tolerations(pod);
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .any(|t| !tols.iter().any(|tol| tolerates(tol, t)))
}

/// Upstream's `filterTopologySpreadConstraints`: the constraints for `action`, with the pod's
/// values of `matchLabelKeys` folded into the selector.
fn parse_constraints(
    constraints: &[TopologySpreadConstraint],
    pod_labels: &BTreeMap<String, String>,
    action: &str,
) -> Result<Vec<Constraint>, String> {
    let mut out = Vec::new();
    for c in constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
    {
        let mut selector =
            Selector::from_label_selector(c.label_selector.as_ref()).map_err(|e| e.0)?;
        let match_labels: BTreeMap<String, String> = c
            .match_label_keys
            .iter()
            .flatten()
            .filter_map(|k| pod_labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        // Upstream's `mergeLabelSetWithSelector`: a nil selector (matching nothing) stays so.
        if !match_labels.is_empty() && !selector.matches_nothing() {
            selector = Selector::from_set(&match_labels)
                .with_requirements(selector.requirements().iter().cloned());
        }
        out.push(Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.map_or(1, |m| m.max(0) as usize),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        });
    }
    Ok(out)
}

/// Upstream's `nodeLabelsMatchSpreadConstraints`: the node has every topology key.
fn node_has_all_keys(labels: &BTreeMap<String, String>, constraints: &[Constraint]) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// Upstream's `countPodsMatchSelector`: pods of the namespace matching, terminating ones aside.
/// An empty selector counts nothing.
fn count_matching(pods: &[Arc<PodInfo>], selector: &Selector, ns: &str) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.iter()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.namespace() == ns
                && selector.matches(labels_of(&p.pod))
        })
        .count() as i64
}

/// The two domains with the fewest matching pods (upstream's `criticalPaths`): `[0]` always
/// holds the minimum. Two suffice because preemption only removes pods from one node.
#[derive(Clone, Debug, PartialEq)]
struct CriticalPaths([(String, i64); 2]);

impl CriticalPaths {
    fn new() -> CriticalPaths {
        let none = (String::new(), i64::from(i32::MAX));
        CriticalPaths([none.clone(), none])
    }

    fn update(&mut self, value: &str, num: i64) {
        let p = &mut self.0;
        let i = if value == p[0].0 {
            Some(0)
        } else if value == p[1].0 {
            Some(1)
        } else {
            None
        };
        match i {
            Some(i) => {
                p[i].1 = num;
                if p[0].1 > p[1].1 {
                    p.swap(0, 1);
                }
            }
            None => {
                if num < p[0].1 {
                    p[1] = p[0].clone();
                    p[0] = (value.to_string(), num);
                } else if num < p[1].1 {
                    p[1] = (value.to_string(), num);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
struct PreFilterState {
    constraints: Arc<Vec<Constraint>>,
    critical_paths: Vec<CriticalPaths>,
    /// Per constraint: matching pods per domain (every eligible domain, zeros included).
    match_num: Vec<FxMap<i64>>,
}

impl PreFilterState {
    /// The global minimum for the skew: 0 while there are fewer eligible domains than
    /// `minDomains`.
    fn min_match_num(&self, i: usize) -> i64 {
        if self.match_num[i].len() < self.constraints[i].min_domains {
            return 0;
        }
        self.critical_paths[i].0[0].1
    }

    /// Upstream's `updateWithPod`.
    fn update_with_pod(&mut self, other: &PodInfo, pod: &PodInfo, node: &NodeInfo, delta: i64) {
        if other.namespace() != pod.namespace() {
            return;
        }
        let labels = node_labels(node);
        if !node_has_all_keys(labels, &self.constraints) {
            return;
        }
        let other_labels = labels_of(&other.pod);
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.selector.matches(other_labels) || !c.includes(pod, node) {
                continue;
            }
            let value = labels.get(&c.topology_key).map_or("", String::as_str);
            let n = self.match_num[i].entry(value.to_string()).or_insert(0);
            *n += delta;
            let n = *n;
            self.critical_paths[i].update(value, n);
        }
    }
}

#[derive(Clone, Debug)]
struct PreScoreState {
    constraints: Vec<Constraint>,
    /// Nodes missing a topology key: scored 0.
    ignored: HashSet<String>,
    /// Per constraint (hostname ones aside): matching pods per domain.
    pod_counts: Vec<FxMap<i64>>,
    /// Per hostname constraint: matching pods per scored node. Upstream counts them in Score,
    /// node by node; counted here, they come from the per-node memo, so a cycle recounts only
    /// the nodes whose pods changed since.
    host_counts: Vec<FxMap<i64>>,
    /// Per constraint: ln(domains + 2), so that small topologies are not drowned by big ones.
    normalizing_weight: Vec<f64>,
}

pub struct PodTopologySpread {
    default_constraints: Vec<TopologySpreadConstraint>,
    system_defaulted: bool,
    listers: Listers,
    counts: MatchMemo,
    domains: DomainMemo,
}

/// Whether the pod's nodeSelector or required node affinity leaves some nodes out (so
/// `nodeAffinityPolicy: Honor` counts fewer nodes than all).
fn pod_restricts_nodes(pod: &PodInfo) -> bool {
    pod.spec().is_some_and(|s| {
        s.node_selector.as_ref().is_some_and(|m| !m.is_empty())
            || s.affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .is_some_and(|a| {
                    a.required_during_scheduling_ignored_during_execution
                        .is_some()
                })
    })
}

/// Per domain of one constraint: matching pods and how many nodes the domain has (a domain goes
/// with its last node). A node's part is its domain and its matching pods, or nothing when it
/// lacks one of the pod's topology keys.
#[derive(Default)]
struct DomainTotals(FxMap<(i64, usize)>);

impl Tally for DomainTotals {
    type Part = Option<(String, i64)>;
    fn add(&mut self, part: &Self::Part, sign: i64) {
        let Some((domain, n)) = part else { return };
        let d = self.0.entry(domain.clone()).or_insert((0, 0));
        d.0 += sign * n;
        d.1 = d.1.saturating_add_signed(sign as isize);
        if d.1 == 0 {
            self.0.remove(domain);
        }
    }
}

/// Per-domain totals per (namespace, selector, topology key, all the pod's keys).
#[derive(Default)]
struct DomainMemo(KeyedMemo<(String, Selector, String, String), DomainTotals>);

impl DomainMemo {
    /// Matching pods per domain of `c` over every node that has all of `keys`.
    fn totals(
        &self,
        ns: &str,
        c: &Constraint,
        keys: &[&str],
        nodes: &[Arc<NodeInfo>],
    ) -> FxMap<i64> {
        let key = (
            ns.to_string(),
            c.selector.clone(),
            c.topology_key.clone(),
            keys.join("\n"),
        );
        self.0.with(key, |memo| {
            let totals = memo.update(nodes, |node| {
                let labels = node_labels(node);
                keys.iter().all(|k| labels.contains_key(*k)).then(|| {
                    let domain = labels.get(&c.topology_key).cloned().unwrap_or_default();
                    (domain, count_matching(&node.pods, &c.selector, ns))
                })
            });
            totals.0.iter().map(|(d, (n, _))| (d.clone(), *n)).collect()
        })
    }
}

/// Per node name: its generation when counted, and how many of its pods matched.
type NodeCounts = FxMap<(u64, i64)>;

/// How many selectors' counts are remembered before the memo starts over.
const MEMO_SELECTORS: usize = 64;

/// Matching-pod counts per (namespace, selector) and node, valid while the node's generation
/// is unchanged.
#[derive(Default)]
struct MatchMemo {
    memos: Mutex<HashMap<(String, Selector), Arc<NodeCounts>>>,
}

impl MatchMemo {
    fn get(&self, ns: &str, selector: &Selector) -> Arc<NodeCounts> {
        let memos = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        memos
            .get(&(ns.to_string(), selector.clone()))
            .cloned()
            .unwrap_or_default()
    }

    /// Records counts made this cycle. The caller has dropped what `get` gave it, so the map is
    /// updated in place rather than copied.
    fn put(&self, ns: &str, selector: &Selector, fresh: Vec<(String, u64, i64)>, nodes: usize) {
        if fresh.is_empty() {
            return;
        }
        let mut memos = self.memos.lock().unwrap_or_else(|e| e.into_inner());
        let key = (ns.to_string(), selector.clone());
        if memos.len() >= MEMO_SELECTORS && !memos.contains_key(&key) {
            memos.clear();
        }
        let counts = Arc::make_mut(memos.entry(key).or_default());
        // Entries of nodes that are gone would otherwise stay forever.
        if counts.len() > 2 * nodes {
            counts.clear();
        }
        for (name, generation, n) in fresh {
            counts.insert(name, (generation, n));
        }
    }
}

/// The node's matching pods, from `memo` when the node has not changed since; the second value
/// says the count was made now (and should be remembered). Generation 0 is a node built outside
/// the scheduler's cache (tests, simulations) and never remembered.
fn memo_count(memo: &NodeCounts, node: &NodeInfo, selector: &Selector, ns: &str) -> (i64, bool) {
    if node.generation != 0 {
        if let Some((generation, n)) = memo.get(node.name()) {
            if *generation == node.generation {
                return (*n, false);
            }
        }
    }
    (
        count_matching(&node.pods, selector, ns),
        node.generation != 0,
    )
}

/// Per-node results of a counting pass: constraint index, domain, count, and the node's name
/// and generation when the count is new.
type Counted<'a> = Vec<(usize, &'a str, i64, Option<(&'a str, u64)>)>;

impl PodTopologySpread {
    fn memos(&self, constraints: &[Constraint], ns: &str) -> Vec<Arc<NodeCounts>> {
        constraints
            .iter()
            .map(|c| self.counts.get(ns, &c.selector))
            .collect()
    }

    /// One counting pass over `nodes`: for every constraint `pick` gives a node a domain for,
    /// the node's matching pods, from the memo when the node is unchanged since (so only nodes
    /// whose pods changed are recounted); fresh counts are remembered. Gives (constraint
    /// index, domain, count) per pick.
    fn count_pass<'a>(
        &self,
        constraints: &[Constraint],
        ns: &str,
        nodes: &'a [Arc<NodeInfo>],
        all_nodes: usize,
        pick: impl Fn(&'a NodeInfo, usize, &Constraint) -> Option<&'a str> + Sync,
    ) -> Vec<(usize, &'a str, i64)> {
        let memos = self.memos(constraints, ns);
        let counted: Vec<Counted<'a>> = per_node(nodes, |node| {
            constraints
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let value = pick(node, i, c)?;
                    let (n, new) = memo_count(&memos[i], node, &c.selector, ns);
                    Some((i, value, n, new.then(|| (node.name(), node.generation))))
                })
                .collect()
        });
        drop(memos);
        self.remember(constraints, ns, &counted, all_nodes);
        counted
            .into_iter()
            .flatten()
            .map(|(i, value, n, _)| (i, value, n))
            .collect()
    }

    /// Remembers the counts a pass made, after its memos were dropped.
    fn remember(
        &self,
        constraints: &[Constraint],
        ns: &str,
        counted: &[Counted<'_>],
        nodes: usize,
    ) {
        let mut fresh: Vec<Vec<(String, u64, i64)>> = vec![Vec::new(); constraints.len()];
        for (i, _, n, new) in counted.iter().flatten() {
            if let Some((name, generation)) = new {
                fresh[*i].push((name.to_string(), *generation, *n));
            }
        }
        for (c, fresh) in constraints.iter().zip(fresh) {
            self.counts.put(ns, &c.selector, fresh, nodes);
        }
    }
}

impl PodTopologySpread {
    pub fn new(args: &PodTopologySpreadArgs, listers: Listers) -> PodTopologySpread {
        let system = args.defaulting_type() == "System";
        let default_constraints = if system {
            vec![
                system_constraint(LABEL_HOSTNAME, 3),
                system_constraint(LABEL_ZONE, 5),
            ]
        } else {
            args.default_constraints
                .iter()
                .map(|c| TopologySpreadConstraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    when_unsatisfiable: c.when_unsatisfiable.clone(),
                    min_domains: c.min_domains,
                    node_affinity_policy: c.node_affinity_policy.clone(),
                    node_taints_policy: c.node_taints_policy.clone(),
                    match_label_keys: c.match_label_keys.clone(),
                    label_selector: None,
                })
                .collect()
        };
        PodTopologySpread {
            default_constraints,
            system_defaulted: system,
            listers,
            counts: MatchMemo::default(),
            domains: DomainMemo::default(),
        }
    }

    /// The pod's own constraints for `action`, or the default ones when it has none.
    fn constraints(&self, pod: &PodInfo, action: &str) -> Result<Vec<Constraint>, String> {
        let own = pod
            .spec()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or(&[]);
        if !own.is_empty() {
            return parse_constraints(own, labels_of(&pod.pod), action);
        }
        let mut constraints =
            parse_constraints(&self.default_constraints, labels_of(&pod.pod), action)?;
        if constraints.is_empty() {
            return Ok(constraints);
        }
        let selector = self.default_selector(&pod.pod);
        if selector.is_empty() {
            return Ok(Vec::new());
        }
        for c in &mut constraints {
            c.selector = selector.clone();
        }
        Ok(constraints)
    }

    /// Upstream's `helper.DefaultSelector`: the selectors of the Services selecting the pod,
    /// and of its controller when that is a ReplicationController, ReplicaSet or StatefulSet.
    fn default_selector(&self, pod: &Pod) -> Selector {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = labels_of(pod);
        let mut set = BTreeMap::new();
        let services = self.listers.services.state_filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.spec
                    .as_ref()
                    .and_then(|sp| sp.selector.as_ref())
                    // A nil selector matches nothing; an empty one everything.
                    .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
        });
        for s in &services {
            if let Some(sel) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        let mut selector = Selector::from_set(&set);
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            return selector;
        };
        match (owner.api_version.as_str(), owner.kind.as_str()) {
            ("v1", "ReplicationController") => {
                let rc = self
                    .listers
                    .replication_controllers
                    .get(&ObjectRef::new(&owner.name).within(ns));
                if let Some(rc) = rc {
                    if let Some(sel) = rc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
                        set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                    selector = Selector::from_set(&set);
                }
            }
            ("apps/v1", "ReplicaSet") => {
                let rs = self
                    .listers
                    .replica_sets
                    .get(&ObjectRef::new(&owner.name).within(ns));
                let sel = rs.map(|rs| rs.spec.selector.clone());
                if let Some(Ok(other)) = sel.map(|s| Selector::from_label_selector(Some(&s))) {
                    selector = selector.with_requirements(other.requirements().iter().cloned());
                }
            }
            ("apps/v1", "StatefulSet") => {
                let ss = self
                    .listers
                    .stateful_sets
                    .get(&ObjectRef::new(&owner.name).within(ns));
                let sel = ss.map(|ss| ss.spec.selector.clone());
                if let Some(Ok(other)) = sel.map(|s| Selector::from_label_selector(Some(&s))) {
                    selector = selector.with_requirements(other.requirements().iter().cloned());
                }
            }
            _ => {}
        }
        selector
    }
}

fn system_constraint(key: &str, max_skew: i32) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew,
        topology_key: key.to_string(),
        when_unsatisfiable: SCHEDULE_ANYWAY.to_string(),
        ..Default::default()
    }
}

/// `f` per node, in parallel once there are enough nodes to pay for it.
fn per_node<'a, T, F>(nodes: &'a [Arc<NodeInfo>], f: F) -> Vec<T>
where
    T: Send,
    F: Fn(&'a NodeInfo) -> T + Sync,
{
    if nodes.len() < PARALLEL_MIN_NODES {
        nodes.iter().map(|n| f(n)).collect()
    } else {
        nodes.par_iter().map(|n| f(n)).collect()
    }
}

fn state_error(key: &str) -> Status {
    Status::error(format!("reading {key:?} from cycleState: not found"))
}

impl Plugin for PodTopologySpread {
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
            ClusterEvent::new(EventResource::AssignedPod, ALL),
            ClusterEvent::new(EventResource::Pod, &[ActionType::Update]),
            // A node added, removed or relabelled changes the domains.
            ClusterEvent::new(EventResource::Node, ALL),
        ]
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let constraints = match self.constraints(pod, DO_NOT_SCHEDULE) {
            Ok(c) => c,
            Err(e) => {
                return (
                    None,
                    Status::error(format!("get constraints from pod: {e}")),
                )
            }
        };
        if constraints.is_empty() {
            return (None, Status::skip());
        }
        let ns = pod.namespace();
        // Constraints that count every node with the keys keep their per-domain totals across
        // cycles; the others are counted node by node.
        let every_node = !pod_restricts_nodes(pod);
        let keys: Vec<&str> = constraints
            .iter()
            .map(|c| c.topology_key.as_str())
            .collect();
        let kept: Vec<Option<FxMap<i64>>> = constraints
            .iter()
            .map(|c| {
                ((every_node || !c.honor_node_affinity) && !c.honor_node_taints)
                    .then(|| self.domains.totals(ns, c, &keys, &snapshot.nodes))
            })
            .collect();
        // Nothing left to count node by node: skip the walk.
        let nodes: &[Arc<NodeInfo>] = if kept.iter().all(Option::is_some) {
            &[]
        } else {
            &snapshot.nodes
        };
        let counted = self.count_pass(
            &constraints,
            ns,
            nodes,
            snapshot.nodes.len(),
            |node, i, c| {
                let labels = node_labels(node);
                (kept[i].is_none()
                    && node_has_all_keys(labels, &constraints)
                    && c.includes(pod, node))
                .then(|| labels.get(&c.topology_key).map_or("", String::as_str))
            },
        );
        let mut match_num: Vec<FxMap<i64>> =
            kept.into_iter().map(Option::unwrap_or_default).collect();
        for (i, value, n) in counted {
            match match_num[i].get_mut(value) {
                Some(c) => *c += n,
                None => {
                    match_num[i].insert(value.to_string(), n);
                }
            }
        }
        let critical_paths = match_num
            .iter()
            .map(|m| {
                let mut p = CriticalPaths::new();
                for (v, n) in m {
                    p.update(v, *n);
                }
                p
            })
            .collect();
        state.write(
            PRE_FILTER_KEY,
            PreFilterState {
                constraints: Arc::new(constraints),
                critical_paths,
                match_num,
            },
        );
        (None, Status::success())
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        // No state: PreFilter skipped this plugin for the pod.
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(added, pod, node, 1);
        }
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        if let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_KEY) {
            s.update_with_pod(removed, pod, node, -1);
        }
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_KEY) else {
            return state_error(PRE_FILTER_KEY);
        };
        let labels = node_labels(node);
        let pod_labels = labels_of(&pod.pod);
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                return Status::new(
                    Code::UnschedulableAndUnresolvable,
                    ERR_REASON_NODE_LABEL_NOT_MATCH,
                );
            };
            let self_match = i64::from(c.selector.matches(pod_labels));
            let matched = s.match_num[i].get(value).copied().unwrap_or(0);
            if matched + self_match - s.min_match_num(i) > c.max_skew {
                return Status::new(Code::Unschedulable, ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
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
        if snapshot.is_empty() {
            return Status::skip();
        }
        let has_own = pod
            .spec()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        // With the system defaults, nodes without a zone label still get hostname spreading.
        let require_all = has_own || !self.system_defaulted;
        let constraints = match self.constraints(pod, SCHEDULE_ANYWAY) {
            Ok(c) => c,
            Err(e) => return Status::error(format!("calculating preScoreState: {e}")),
        };
        if constraints.is_empty() {
            return Status::skip();
        }
        let mut ignored = HashSet::new();
        let mut pod_counts: Vec<FxMap<i64>> = vec![FxMap::default(); constraints.len()];
        for node in nodes {
            let labels = node_labels(node);
            if require_all && !node_has_all_keys(labels, &constraints) {
                ignored.insert(node.name().to_string());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                let value = labels.get(&c.topology_key).map_or("", String::as_str);
                if !pod_counts[i].contains_key(value) {
                    pod_counts[i].insert(value.to_string(), 0);
                }
            }
        }
        let normalizing_weight = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    nodes.len() - ignored.len()
                } else {
                    pod_counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let wanted = pod_counts.iter().any(|m| !m.is_empty());
        if wanted {
            let ns = pod.namespace();
            let domains = &pod_counts;
            let all = &snapshot.nodes;
            let counted = self.count_pass(&constraints, ns, all, all.len(), |node, i, c| {
                let labels = node_labels(node);
                if require_all && !node_has_all_keys(labels, &constraints) {
                    return None;
                }
                let value = labels.get(&c.topology_key).map_or("", String::as_str);
                (domains[i].contains_key(value) && c.includes(pod, node)).then_some(value)
            });
            for (i, value, n) in counted {
                if let Some(c) = pod_counts[i].get_mut(value) {
                    *c += n;
                }
            }
        }
        let mut host_counts: Vec<FxMap<i64>> = vec![FxMap::default(); constraints.len()];
        if constraints.iter().any(|c| c.topology_key == LABEL_HOSTNAME) {
            let ns = pod.namespace();
            let ignored = &ignored;
            let all = snapshot.nodes.len();
            let counted = self.count_pass(&constraints, ns, nodes, all, |node, _, c| {
                (c.topology_key == LABEL_HOSTNAME
                    && !ignored.contains(node.name())
                    && node_labels(node).contains_key(LABEL_HOSTNAME))
                .then(|| node.name())
            });
            for (i, name, n) in counted {
                host_counts[i].insert(name.to_string(), n);
            }
        }
        state.write(
            PRE_SCORE_KEY,
            PreScoreState {
                constraints,
                ignored,
                pod_counts,
                host_counts,
                normalizing_weight,
            },
        );
        Status::success()
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> (i64, Status) {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return (0, state_error(PRE_SCORE_KEY));
        };
        if s.ignored.contains(node.name()) {
            return (0, Status::success());
        }
        let labels = node_labels(node);
        let mut score = 0f64;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                match s.host_counts[i].get(node.name()) {
                    Some(n) => *n,
                    // A node PreScore was not given (upstream scores only those it was).
                    None => count_matching(&node.pods, &c.selector, pod.namespace()),
                }
            } else {
                s.pod_counts[i].get(value).copied().unwrap_or(0)
            };
            // `maxSkew - 1` waters differences down: the tolerance of the score to skew.
            score += count as f64 * s.normalizing_weight[i] + (c.max_skew - 1) as f64;
        }
        (score.round() as i64, Status::success())
    }

    /// Upstream: fewer matching pods is better; ignored nodes get 0.
    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_KEY) else {
            return state_error(PRE_SCORE_KEY);
        };
        let mut min = i64::MAX;
        let mut max = 0i64;
        for sc in scores.iter() {
            if s.ignored.contains(&sc.name) {
                continue;
            }
            min = min.min(sc.score);
            max = max.max(sc.score);
        }
        for sc in scores.iter_mut() {
            sc.score = if s.ignored.contains(&sc.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - sc.score) / max
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

    fn scores(pl: &PodTopologySpread, p: &PodInfo, snap: &Snapshot) -> Option<Vec<i64>> {
        crate::plugins::testing::scores(pl, p, &snap.nodes, snap)
    }

    /// Scores of the candidate nodes (the first `candidates` of the cluster).
    fn candidate_scores(
        pl: &PodTopologySpread,
        p: &PodInfo,
        all: Vec<Arc<NodeInfo>>,
        candidates: usize,
    ) -> Vec<i64> {
        let snap = snapshot(all);
        crate::plugins::testing::scores(pl, p, &snap.nodes[..candidates], &snap).unwrap_or_default()
    }

    fn pod_with(
        name: &str,
        labels: Value,
        constraints: Value,
        extra_spec: Value,
        meta: Value,
    ) -> PodInfo {
        let mut spec =
            json!({"containers": [{"name": "c"}], "topologySpreadConstraints": constraints});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        let mut metadata =
            json!({"name": name, "namespace": "default", "uid": name, "labels": labels});
        if let (Some(m), Some(e)) = (metadata.as_object_mut(), meta.as_object()) {
            m.extend(e.clone());
        }
        PodInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": metadata, "spec": spec})).unwrap(),
        ))
    }

    fn pod(name: &str, labels: Value, constraints: Value) -> PodInfo {
        pod_with(name, labels, constraints, json!({}), json!({}))
    }

    fn foo(name: &str) -> PodInfo {
        pod(name, json!({"foo": ""}), json!(null))
    }

    fn node(name: &str, labels: Value, pods: Vec<PodInfo>) -> Arc<NodeInfo> {
        node_spec(name, labels, json!({}), pods)
    }

    fn node_spec(name: &str, labels: Value, spec: Value, pods: Vec<PodInfo>) -> Arc<NodeInfo> {
        let mut n = NodeInfo::new(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "labels": labels}, "spec": spec}),
            )
            .unwrap(),
        ));
        for p in pods {
            n.add_pod(Arc::new(p));
        }
        Arc::new(n)
    }

    fn zoned(name: &str, zone: &str, pods: Vec<PodInfo>) -> Arc<NodeInfo> {
        node(name, json!({"zone": zone, "node": name}), pods)
    }

    fn spread(key: &str, skew: i32, when: &str) -> Value {
        json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
               "labelSelector": {"matchExpressions": [{"key": "foo", "operator": "Exists"}]}})
    }

    fn plugin() -> PodTopologySpread {
        PodTopologySpread::new(&PodTopologySpreadArgs::default(), Listers::empty())
    }

    /// Names of the nodes that pass, or the status of the PreFilter when it does not succeed.
    fn feasible(pl: &PodTopologySpread, p: &PodInfo, snap: &Snapshot) -> Vec<String> {
        let mut st = CycleState::default();
        let (_, s) = pl.pre_filter(&mut st, p, snap);
        if s.code == Code::Skip {
            return snap.nodes.iter().map(|n| n.name().to_string()).collect();
        }
        assert!(s.is_success(), "{s:?}");
        snap.nodes
            .iter()
            .filter(|n| pl.filter(&st, p, n).is_success())
            .map(|n| n.name().to_string())
            .collect()
    }

    #[test]
    fn no_constraints_and_no_owner_skip() {
        let p = foo("p");
        let (_, s) = plugin().pre_filter(
            &mut CycleState::default(),
            &p,
            &snapshot(vec![zoned("a", "z1", vec![])]),
        );
        assert_eq!(s.code, Code::Skip);
    }

    #[test]
    fn max_skew_one_across_zones() {
        // Upstream's "normal case with two spreadConstraints" shape, one constraint: zone1 holds 3
        // matching pods, zone2 holds 2.
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("zone", 1, DO_NOT_SCHEDULE)]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![foo("p-a1"), foo("p-a2")]),
            zoned("node-b", "zone1", vec![foo("p-b1")]),
            zoned("node-x", "zone2", vec![foo("p-x1"), foo("p-x2")]),
            zoned("node-y", "zone2", vec![]),
        ]);
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-x", "node-y"]);
        // A node without the key: unresolvable, with upstream's reason.
        let mut st = CycleState::default();
        plugin().pre_filter(&mut st, &p, &snap);
        let bare = node("bare", json!({}), vec![]);
        let s = plugin().filter(&st, &p, &bare);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), ERR_REASON_NODE_LABEL_NOT_MATCH);
        let s = plugin().filter(&st, &p, &snap.nodes[0]);
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.message(), ERR_REASON_CONSTRAINTS_NOT_MATCH);
    }

    /// Counts are remembered per node generation: a node whose generation moved is recounted,
    /// one whose generation stayed is not (the cache bumps it on every change of its pods).
    #[test]
    fn counts_follow_node_generations() {
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("zone", 1, DO_NOT_SCHEDULE)]),
        );
        let at = |n: Arc<NodeInfo>, generation: u64| {
            let mut n = Arc::unwrap_or_clone(n);
            n.generation = generation;
            Arc::new(n)
        };
        let pl = plugin();
        let snap = snapshot(vec![
            at(zoned("node-a", "zone1", vec![foo("p-a1")]), 1),
            at(zoned("node-x", "zone2", vec![]), 2),
        ]);
        assert_eq!(feasible(&pl, &p, &snap), vec!["node-x"]);
        // node-x gains two pods (generation 3): zone2 is now the fuller one.
        let snap = snapshot(vec![
            at(zoned("node-a", "zone1", vec![foo("p-a1")]), 1),
            at(zoned("node-x", "zone2", vec![foo("p-x1"), foo("p-x2")]), 3),
        ]);
        assert_eq!(feasible(&pl, &p, &snap), vec!["node-a"]);
        // The memo answers for node-a at generation 1 although this snapshot's node-a (built
        // outside the cache, which would have bumped it) holds three pods: proof that an
        // unchanged node is not recounted. A fresh plugin counts them and decides otherwise.
        let snap = snapshot(vec![
            at(
                zoned(
                    "node-a",
                    "zone1",
                    vec![foo("p-a1"), foo("p-a2"), foo("p-a3")],
                ),
                1,
            ),
            at(zoned("node-x", "zone2", vec![foo("p-x1"), foo("p-x2")]), 3),
        ]);
        assert_eq!(feasible(&pl, &p, &snap), vec!["node-a"]);
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-x"]);
        let snap = snapshot(vec![
            at(zoned("node-a", "zone1", vec![foo("p-a1"), foo("p-a2")]), 4),
            at(zoned("node-x", "zone2", vec![foo("p-x1"), foo("p-x2")]), 3),
        ]);
        assert_eq!(feasible(&pl, &p, &snap), vec!["node-a", "node-x"]);
    }

    #[test]
    fn hostname_scores_follow_node_generations() {
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY)]),
        );
        let host = |name: &str, pods: Vec<PodInfo>, generation: u64| {
            let mut n = Arc::unwrap_or_clone(node(name, json!({ LABEL_HOSTNAME: name }), pods));
            n.generation = generation;
            Arc::new(n)
        };
        let pl = plugin();
        let snap = snapshot(vec![
            host("node-a", vec![foo("a1")], 1),
            host("node-b", vec![], 1),
        ]);
        let s = scores(&pl, &p, &snap).unwrap();
        assert!(s[1] > s[0], "{s:?}");
        // node-b gains two pods (generation 2): node-a is now the emptier one.
        let snap = snapshot(vec![
            host("node-a", vec![foo("a1")], 1),
            host("node-b", vec![foo("b1"), foo("b2")], 2),
        ]);
        let s = scores(&pl, &p, &snap).unwrap();
        assert!(s[0] > s[1], "{s:?}");
        // node-a at generation 1 is not recounted although this snapshot's node-a (built
        // outside the cache, which would have bumped it) holds three pods; a fresh plugin
        // counts them.
        let snap = snapshot(vec![
            host("node-a", vec![foo("a1"), foo("a2"), foo("a3")], 1),
            host("node-b", vec![foo("b1"), foo("b2")], 2),
        ]);
        let s = scores(&pl, &p, &snap).unwrap();
        assert!(s[0] > s[1], "{s:?}");
        let s = scores(&plugin(), &p, &snap).unwrap();
        assert!(s[1] > s[0], "{s:?}");
    }

    #[test]
    fn two_constraints_must_both_hold() {
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([
                spread("zone", 1, DO_NOT_SCHEDULE),
                spread("node", 1, DO_NOT_SCHEDULE)
            ]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![foo("a1")]),
            zoned("node-b", "zone1", vec![foo("b1")]),
            zoned("node-x", "zone2", vec![foo("x1")]),
            zoned("node-y", "zone2", vec![]),
        ]);
        // zone2 has fewer (1 vs 2); within it node-y is empty.
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-y"]);
    }

    #[test]
    fn pod_not_matching_its_own_selector_and_other_namespaces() {
        // The incoming pod does not match the selector: it adds no skew.
        let p = pod(
            "p",
            json!({"bar": ""}),
            json!([spread("zone", 1, DO_NOT_SCHEDULE)]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![foo("a1")]),
            zoned("node-x", "zone2", vec![]),
        ]);
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-a", "node-x"]);
        // Pods of other namespaces and terminating pods do not count.
        let other = pod_with(
            "o",
            json!({"foo": ""}),
            json!(null),
            json!({}),
            json!({"namespace": "other"}),
        );
        let gone = pod_with(
            "g",
            json!({"foo": ""}),
            json!(null),
            json!({}),
            json!({"deletionTimestamp": "2024-01-01T00:00:00Z"}),
        );
        let q = pod(
            "q",
            json!({"foo": ""}),
            json!([spread("zone", 1, DO_NOT_SCHEDULE)]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![other, gone]),
            zoned("node-x", "zone2", vec![foo("x1")]),
        ]);
        assert_eq!(feasible(&plugin(), &q, &snap), vec!["node-a"]);
    }

    #[test]
    fn min_domains_treats_the_minimum_as_zero() {
        // Two zones with 2 and 1 pods; maxSkew 1. Without minDomains zone2 fits; with
        // minDomains 3 (only 2 domains exist) the global minimum is 0 and nothing fits.
        let base = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": DO_NOT_SCHEDULE,
            "labelSelector": {"matchLabels": {"foo": ""}}});
        let mut with_min = base.clone();
        with_min["minDomains"] = json!(3);
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![foo("a1"), foo("a2")]),
            zoned("node-x", "zone2", vec![foo("x1")]),
        ]);
        let p = pod("p", json!({"foo": ""}), json!([base]));
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-x"]);
        let p = pod("p", json!({"foo": ""}), json!([with_min]));
        assert!(feasible(&plugin(), &p, &snap).is_empty());
    }

    #[test]
    fn node_inclusion_policies() {
        // node-b is excluded by the pod's nodeSelector (Honor by default), so its pods and its
        // domain do not count; node-c's taint only matters with nodeTaintsPolicy: Honor.
        let snap = snapshot(vec![
            node(
                "node-a",
                json!({"zone": "z1", "disk": "ssd"}),
                vec![foo("a1")],
            ),
            node("node-b", json!({"zone": "z2"}), vec![]),
            node_spec(
                "node-c",
                json!({"zone": "z3", "disk": "ssd"}),
                json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
                vec![],
            ),
        ]);
        let sel = json!({"nodeSelector": {"disk": "ssd"}});
        let c = spread("zone", 1, DO_NOT_SCHEDULE);
        let p = pod_with(
            "p",
            json!({"foo": ""}),
            json!([c.clone()]),
            sel.clone(),
            json!({}),
        );
        // Domains z1 (1) and z3 (0): min 0, z1 would be 2 > 1.
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-b", "node-c"]);
        let mut honor = c.clone();
        honor["nodeTaintsPolicy"] = json!("Honor");
        let p = pod_with(
            "p",
            json!({"foo": ""}),
            json!([honor]),
            sel.clone(),
            json!({}),
        );
        // Only z1 is eligible: min is 1, so z1 fits again.
        assert_eq!(
            feasible(&plugin(), &p, &snap),
            vec!["node-a", "node-b", "node-c"]
        );
        let mut ignore = c;
        ignore["nodeAffinityPolicy"] = json!("Ignore");
        let p = pod_with("p", json!({"foo": ""}), json!([ignore]), sel, json!({}));
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-b", "node-c"]);
    }

    #[test]
    fn match_label_keys_restrict_to_the_pods_own_value() {
        let mut c = spread("zone", 1, DO_NOT_SCHEDULE);
        c["matchLabelKeys"] = json!(["rev"]);
        let p = pod("p", json!({"foo": "", "rev": "2"}), json!([c]));
        let old = |n: &str| pod(n, json!({"foo": "", "rev": "1"}), json!(null));
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![old("o1"), old("o2")]),
            zoned(
                "node-x",
                "zone2",
                vec![pod("n1", json!({"foo": "", "rev": "2"}), json!(null))],
            ),
        ]);
        // Only rev=2 counts: zone1 has 0, zone2 has 1.
        assert_eq!(feasible(&plugin(), &p, &snap), vec!["node-a"]);
    }

    #[test]
    fn add_and_remove_pod_update_the_critical_paths() {
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("zone", 1, DO_NOT_SCHEDULE)]),
        );
        let a = zoned("node-a", "zone1", vec![foo("a1")]);
        let x = zoned("node-x", "zone2", vec![]);
        let snap = snapshot(vec![a.clone(), x.clone()]);
        let pl = plugin();
        let mut st = CycleState::default();
        pl.pre_filter(&mut st, &p, &snap);
        assert!(!pl.filter(&st, &p, &a).is_success());
        let mut what_if = st.clone();
        pl.remove_pod(&mut what_if, &p, &a.pods[0], &a);
        assert!(pl.filter(&what_if, &p, &a).is_success());
        assert!(!pl.filter(&st, &p, &a).is_success());
        let extra = foo("x1");
        pl.add_pod(&mut st, &p, &extra, &x);
        assert!(pl.filter(&st, &p, &a).is_success());
        assert!(pl.filter(&st, &p, &x).is_success());
        pl.add_pod(&mut st, &p, &foo("x2"), &x);
        assert!(!pl.filter(&st, &p, &x).is_success());
    }

    #[test]
    fn critical_paths_keep_the_two_smallest() {
        let mut p = CriticalPaths::new();
        for (v, n) in [("a", 3), ("b", 1), ("c", 2), ("d", 0)] {
            p.update(v, n);
        }
        assert_eq!(p.0[0], ("d".to_string(), 0));
        assert_eq!(p.0[1], ("b".to_string(), 1));
        p.update("d", 5);
        assert_eq!(p.0[0], ("b".to_string(), 1));
    }

    #[test]
    fn score_prefers_emptier_domains() {
        // Upstream's "one constraint on node, all 4 nodes are candidates": node-a 2 pods,
        // node-b 1, node-c 0, node-d 0, maxSkew 1: raw = count * ln(6).
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("node", 1, SCHEDULE_ANYWAY)]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "z", vec![foo("a1"), foo("a2")]),
            zoned("node-b", "z", vec![foo("b1")]),
            zoned("node-c", "z", vec![]),
            zoned("node-d", "z", vec![]),
        ]);
        // Raw 4, 2, 0, 0 (rounded 3.58, 1.79): 100*(4+0-s)/4.
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![0, 50, 100, 100]));
        // Hostname constraints are counted per node in Score, other keys in PreScore.
        let q = pod(
            "q",
            json!({"foo": ""}),
            json!([spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY)]),
        );
        let snap = snapshot(vec![
            node(
                "n1",
                json!({LABEL_HOSTNAME: "n1"}),
                vec![foo("a1"), foo("a2")],
            ),
            node("n2", json!({LABEL_HOSTNAME: "n2"}), vec![]),
            node("n3", json!({}), vec![]),
        ]);
        // n3 lacks the key: ignored, scored 0. Raw n1 = round(2 * ln(4)) = 3.
        assert_eq!(scores(&plugin(), &q, &snap), Some(vec![0, 100, 0]));
    }

    /// Nodes named by `spec`: (name, labels, labels of each pod on it).
    fn cluster(spec: &[(&str, Value, &[Value])]) -> Vec<Arc<NodeInfo>> {
        spec.iter()
            .map(|(name, labels, pods)| {
                let pods = pods
                    .iter()
                    .enumerate()
                    .map(|(i, l)| pod(&format!("{name}-{i}"), l.clone(), json!(null)))
                    .collect();
                node(name, labels.clone(), pods)
            })
            .collect()
    }

    #[test]
    fn scores_match_upstreams_table() {
        let f = json!({"foo": ""});
        let b = json!({"bar": ""});
        let fb = json!({"foo": "", "bar": ""});
        let host = |n: &str| json!({LABEL_HOSTNAME: n});
        let zh = |z: &str, n: &str| json!({"zone": z, LABEL_HOSTNAME: n});
        let on_host = |skew| {
            pod(
                "p",
                json!({"foo": ""}),
                json!([spread(LABEL_HOSTNAME, skew, SCHEDULE_ANYWAY)]),
            )
        };
        let pl = plugin();
        let (f1, f2, f3, f4) = (
            &[f.clone()][..],
            &[f.clone(), f.clone()][..],
            &[f.clone(), f.clone(), f.clone()][..],
            &[f.clone(), f.clone(), f.clone(), f.clone()][..],
        );
        // "one constraint on node, all 4 nodes are candidates": 2/1/0/3.
        let spread_2103 = || {
            cluster(&[
                ("node-a", host("node-a"), f2),
                ("node-b", host("node-b"), f1),
                ("node-c", host("node-c"), &[]),
                ("node-d", host("node-d"), f3),
            ])
        };
        assert_eq!(
            candidate_scores(&pl, &on_host(1), spread_2103(), 4),
            vec![20, 60, 100, 0]
        );
        assert_eq!(
            candidate_scores(&pl, &on_host(2), spread_2103(), 4),
            vec![33, 66, 100, 16]
        );
        // "3 out of 4 nodes are candidates": 4/2/1/~3~.
        let spread_421 = |b_labels: Value| {
            cluster(&[
                ("node-a", host("node-a"), f4),
                ("node-b", b_labels, f2),
                ("node-x", host("node-x"), f1),
                ("node-y", host("node-y"), f3),
            ])
        };
        assert_eq!(
            candidate_scores(&pl, &on_host(1), spread_421(host("node-b")), 3),
            vec![33, 83, 100]
        );
        // "... one node doesn't match topology key": node-b is ignored.
        assert_eq!(
            candidate_scores(&pl, &on_host(1), spread_421(json!({"n": "node-b"})), 3),
            vec![16, 0, 100]
        );
        // "one constraint on zone, 3 out of 4 nodes are candidates".
        let on_zone = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("zone", 1, SCHEDULE_ANYWAY)]),
        );
        let zones = cluster(&[
            ("node-a", zh("zone1", "node-a"), f4),
            ("node-b", zh("zone1", "node-b"), f2),
            ("node-x", zh("zone2", "node-x"), f1),
            ("node-y", zh("zone2", "node-y"), f3),
        ]);
        assert_eq!(candidate_scores(&pl, &on_zone, zones, 3), vec![75, 75, 100]);
        // "two Constraints on zone and node, 2 out of 4 nodes are candidates".
        let both = pod(
            "p",
            json!({"foo": ""}),
            json!([
                spread("zone", 1, SCHEDULE_ANYWAY),
                spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY)
            ]),
        );
        let nodes = cluster(&[
            ("node-a", zh("zone1", "node-a"), f2),
            ("node-x", zh("zone2", "node-x"), f2),
            ("node-b", zh("zone1", "node-b"), f1),
            ("node-y", zh("zone2", "node-y"), f4),
        ]);
        assert_eq!(candidate_scores(&pl, &both, nodes, 2), vec![100, 63]);
        // "two Constraints on zone and node, with different labelSelectors".
        let mut on_bar = spread(LABEL_HOSTNAME, 1, SCHEDULE_ANYWAY);
        on_bar["labelSelector"] =
            json!({"matchExpressions": [{"key": "bar", "operator": "Exists"}]});
        let mixed = pod(
            "p",
            fb.clone(),
            json!([spread("zone", 1, SCHEDULE_ANYWAY), on_bar]),
        );
        let nodes = cluster(&[
            ("node-a", zh("zone1", "node-a"), std::slice::from_ref(&f)),
            ("node-b", zh("zone1", "node-b"), std::slice::from_ref(&fb)),
            ("node-x", zh("zone2", "node-x"), &[]),
            ("node-y", zh("zone2", "node-y"), &[f.clone(), b.clone()]),
        ]);
        assert_eq!(
            candidate_scores(&pl, &mixed, nodes, 4),
            vec![60, 20, 100, 60]
        );
        // "system defaulting, nodes don't have zone, pods match service": 4/3/2/1.
        let l = listers(vec![json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "default"}, "spec": {"selector": {"foo": ""}}})]);
        let sys = PodTopologySpread::new(&PodTopologySpreadArgs::default(), l);
        let nodes = cluster(&[
            ("node-a", host("node-a"), f4),
            ("node-b", host("node-b"), f3),
            ("node-c", host("node-c"), f2),
            ("node-d", host("node-d"), f1),
        ]);
        assert_eq!(
            candidate_scores(&sys, &foo("p"), nodes, 4),
            vec![44, 66, 77, 100]
        );
    }

    #[test]
    fn max_skew_waters_down_the_score() {
        let p = pod(
            "p",
            json!({"foo": ""}),
            json!([spread("zone", 3, SCHEDULE_ANYWAY)]),
        );
        let snap = snapshot(vec![
            zoned("node-a", "z1", vec![foo("a1")]),
            zoned("node-b", "z2", vec![]),
        ]);
        // Raw round(1*ln(4) + 2) = 3 and 2: 100*(3+2-s)/3.
        assert_eq!(scores(&plugin(), &p, &snap), Some(vec![66, 100]));
    }

    fn listers(objects: Vec<Value>) -> Listers {
        use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
        use k8s_openapi::api::core::v1::{ReplicationController, Service};
        use kube::runtime::reflector::store::Writer;
        use kube::runtime::watcher::Event;
        let mut svc = Writer::<Service>::default();
        let mut rs = Writer::<ReplicaSet>::default();
        let mut ss = Writer::<StatefulSet>::default();
        let mut rc = Writer::<ReplicationController>::default();
        for o in objects {
            match o["kind"].as_str() {
                Some("Service") => {
                    svc.apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap()))
                }
                Some("ReplicaSet") => {
                    rs.apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap()))
                }
                Some("StatefulSet") => {
                    ss.apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap()))
                }
                _ => rc.apply_watcher_event(&Event::Apply(serde_json::from_value(o).unwrap())),
            }
        }
        Listers {
            services: svc.as_reader(),
            replica_sets: rs.as_reader(),
            stateful_sets: ss.as_reader(),
            replication_controllers: rc.as_reader(),
            ..Listers::empty()
        }
    }

    #[test]
    fn system_default_constraints_spread_a_replica_sets_pods() {
        let l = listers(vec![json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
            "metadata": {"name": "rs", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}}})]);
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default(), l);
        let owner = json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "rs", "uid": "u", "controller": true}]});
        let web = |n: &str| {
            pod_with(
                n,
                json!({"app": "web"}),
                json!(null),
                json!({}),
                owner.clone(),
            )
        };
        let p = web("p");
        // Defaults are ScheduleAnyway only: nothing to filter.
        let (_, s) = pl.pre_filter(&mut CycleState::default(), &p, &snapshot(vec![]));
        assert_eq!(s.code, Code::Skip);
        let host = |n: &str, zone: Option<&str>, pods| {
            let mut labels = json!({LABEL_HOSTNAME: n});
            if let Some(z) = zone {
                labels[LABEL_ZONE] = json!(z);
            }
            node(n, labels, pods)
        };
        let snap = snapshot(vec![
            host(
                "n1",
                Some("z1"),
                vec![web("a"), web("b"), web("c"), web("d")],
            ),
            host("n2", Some("z1"), vec![]),
            // No zone label: with the system defaults it still gets hostname spreading.
            host("n3", None, vec![]),
        ]);
        let got = scores(&pl, &p, &snap).unwrap();
        assert!(got[0] < got[1], "{got:?}");
        assert!(got[2] > 0, "{got:?}");
        // A pod with no Service and no known controller gets no default constraints.
        let lone = pod("lone", json!({"app": "web"}), json!(null));
        assert_eq!(scores(&pl, &lone, &snap), None);
    }

    #[test]
    fn default_selector_merges_services_and_controllers() {
        let l = listers(vec![
            json!({"kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "s1", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}),
            json!({"kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "s2", "namespace": "default"}, "spec": {"selector": {"tier": "x"}}}),
            json!({"kind": "Service", "apiVersion": "v1",
                "metadata": {"name": "nil", "namespace": "default"}, "spec": {}}),
            json!({"kind": "ReplicationController", "apiVersion": "v1",
                "metadata": {"name": "rc", "namespace": "default"}, "spec": {"selector": {"rc": "1"}}}),
        ]);
        let pl = PodTopologySpread::new(&PodTopologySpreadArgs::default(), l);
        let owner = json!({"ownerReferences": [{"apiVersion": "v1", "kind": "ReplicationController",
            "name": "rc", "uid": "u", "controller": true}]});
        let p = pod_with(
            "p",
            json!({"app": "web", "rc": "1"}),
            json!(null),
            json!({}),
            owner,
        );
        assert_eq!(pl.default_selector(&p.pod).to_string(), "app=web,rc=1");
    }

    #[test]
    fn args_validation_names_the_field() {
        let path = "profiles[0].pluginConfig[0].args";
        let v = |a: Value| {
            serde_json::from_value::<PodTopologySpreadArgs>(a)
                .unwrap()
                .validate(path)
        };
        assert!(v(json!({})).is_ok());
        assert_eq!(
            v(json!({"defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]})).unwrap_err(),
            format!("{path}.defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty")
        );
        assert_eq!(
            v(json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]})).unwrap_err(),
            format!("{path}.defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)")
        );
        assert_eq!(
            v(json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Maybe"}]})).unwrap_err(),
            format!("{path}.defaultConstraints[0].whenUnsatisfiable: Unsupported value: \"Maybe\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"")
        );
        assert_eq!(
            v(json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "", "whenUnsatisfiable": "DoNotSchedule"}]})).unwrap_err(),
            format!("{path}.defaultConstraints[0].topologyKey: Required value: can not be empty")
        );
        assert_eq!(
            v(json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]})).unwrap_err(),
            format!("{path}.defaultConstraints[0].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod")
        );
        assert_eq!(
            v(json!({"defaultingType": "List", "defaultConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
                {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))
            .unwrap_err(),
            format!("{path}.defaultConstraints[1]: Duplicate value: \"{{zone, DoNotSchedule}}\"")
        );
        assert_eq!(
            v(json!({"defaultingType": "Other"})).unwrap_err(),
            format!("{path}.defaultingType: Unsupported value: \"Other\": supported values: \"System\", \"List\"")
        );
    }

    #[test]
    fn list_defaulting_applies_hard_default_constraints() {
        let l = listers(vec![json!({"kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "default"}, "spec": {"selector": {"foo": ""}}})]);
        let args: PodTopologySpreadArgs = serde_json::from_value(json!({"defaultingType": "List",
            "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}))
        .unwrap();
        let pl = PodTopologySpread::new(&args, l);
        let p = foo("p");
        let snap = snapshot(vec![
            zoned("node-a", "zone1", vec![foo("a1")]),
            zoned("node-x", "zone2", vec![]),
        ]);
        assert_eq!(feasible(&pl, &p, &snap), vec!["node-x"]);
    }
}
