//! The scheduling framework (upstream's `pkg/scheduler/framework`): plugins at named extension
//! points, the per-cycle state they share, and the `Status` each returns.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};
use crate::nominator::NominatedPods;

/// Upstream's `MaxNodeScore`.
pub const MAX_NODE_SCORE: i64 = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success,
    Error,
    /// The node does not fit now; preemption may help.
    Unschedulable,
    /// The node does not fit and preemption cannot change that.
    UnschedulableAndUnresolvable,
    Wait,
    /// The plugin has nothing to do for this pod (later calls at the same point are skipped).
    Skip,
    Pending,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    /// The plugin that returned it.
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Status {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Status {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn with_reasons(code: Code, reasons: Vec<String>) -> Status {
        Status {
            code,
            reasons,
            plugin: "",
        }
    }

    pub fn skip() -> Status {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn error(msg: impl Into<String>) -> Status {
        Status::new(Code::Error, msg)
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable | Code::Pending
        )
    }

    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }

    pub fn from_plugin(mut self, plugin: &'static str) -> Status {
        if self.plugin.is_empty() {
            self.plugin = plugin;
        }
        self
    }
}

/// Plugin data in the cycle state. Cloneable, because preemption evaluates "what if these pods
/// were gone" on a copy of the state per candidate node (upstream's `CycleState.Clone`).
pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Any + Send + Sync + Clone> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Data plugins pass from one extension point to the next within one scheduling cycle,
/// keyed by plugin name. Filter and Score run on many nodes in parallel and only read it.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn StateData>>,
    /// Plugins that returned Skip at PreFilter / PreScore (their Filter / Score are not run).
    pub skip_filter: HashSet<&'static str>,
    pub skip_score: HashSet<&'static str>,
    /// Plugins whose PreFilter narrowed the nodes (named in the rejection of the others).
    pub narrowed_by: Vec<&'static str>,
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        CycleState {
            data: self
                .data
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
            skip_filter: self.skip_filter.clone(),
            skip_score: self.skip_score.clone(),
            narrowed_by: self.narrowed_by.clone(),
        }
    }
}

impl CycleState {
    pub fn write<T: Any + Send + Sync + Clone>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data
            .get(key)
            .and_then(|v| (**v).as_any().downcast_ref::<T>())
    }

    pub fn read_mut<T: Any + Send + Sync>(&mut self, key: &'static str) -> Option<&mut T> {
        self.data
            .get_mut(key)
            .and_then(|v| (**v).as_any_mut().downcast_mut::<T>())
    }
}

/// The kinds of objects whose changes can make an unschedulable pod schedulable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventResource {
    Pod,
    /// Another pod assigned to a node (added, changed, deleted).
    AssignedPod,
    Node,
    PersistentVolume,
    PersistentVolumeClaim,
    StorageClass,
    CSINode,
    Namespace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionType {
    Add,
    Update,
    Delete,
}

/// A cluster event a plugin registers for: when one happens, pods that plugin rejected are
/// moved out of the unschedulable queue (upstream's `EventsToRegister`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClusterEvent {
    pub resource: EventResource,
    pub actions: &'static [ActionType],
}

impl ClusterEvent {
    pub const fn new(resource: EventResource, actions: &'static [ActionType]) -> ClusterEvent {
        ClusterEvent { resource, actions }
    }

    pub fn matches(&self, resource: EventResource, action: ActionType) -> bool {
        self.resource == resource && self.actions.contains(&action)
    }
}

pub const ALL: &[ActionType] = &[ActionType::Add, ActionType::Update, ActionType::Delete];
pub const ADD_UPDATE: &[ActionType] = &[ActionType::Add, ActionType::Update];
pub const DELETE: &[ActionType] = &[ActionType::Delete];

/// Nodes PreFilter narrowed the cycle to (`None`: all nodes).
pub type PreFilterResult = Option<HashSet<String>>;

/// One node's score from one plugin.
#[derive(Clone, Debug)]
pub struct NodeScore {
    pub name: String,
    pub score: i64,
}

/// A pod queued for scheduling, with its history.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    pub pod_info: Arc<PodInfo>,
    /// When it was (re)added to the queue: the QueueSort tie-breaker.
    pub timestamp: std::time::Instant,
    pub initial_attempt: Option<std::time::Instant>,
    pub attempts: u32,
    /// Plugins that rejected it in its last attempt; only events they registered for requeue it.
    pub unschedulable_plugins: HashSet<&'static str>,
    /// PreEnqueue rejected it (scheduling gates): it waits for an update of the pod itself.
    pub gated: bool,
}

/// What preemption decided: the node to nominate and the pods to evict there.
#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    pub nominated_node: Option<String>,
    pub victims: Vec<Arc<Pod>>,
}

/// Statuses of the nodes that did not pass Filter in one cycle, by node name.
pub type NodeToStatus = HashMap<String, Status>;

/// Where a plugin runs. A plugin implements the methods of the points it lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    PreEnqueue,
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
}

impl Point {
    /// The field name in `KubeSchedulerConfiguration`'s `plugins`.
    pub fn config_name(self) -> &'static str {
        match self {
            Point::PreEnqueue => "preEnqueue",
            Point::QueueSort => "queueSort",
            Point::PreFilter => "preFilter",
            Point::Filter => "filter",
            Point::PostFilter => "postFilter",
            Point::PreScore => "preScore",
            Point::Score => "score",
            Point::Reserve => "reserve",
            Point::Permit => "permit",
            Point::PreBind => "preBind",
            Point::Bind => "bind",
        }
    }

    pub const ALL: [Point; 11] = [
        Point::PreEnqueue,
        Point::QueueSort,
        Point::PreFilter,
        Point::Filter,
        Point::PostFilter,
        Point::PreScore,
        Point::Score,
        Point::Reserve,
        Point::Permit,
        Point::PreBind,
        Point::Bind,
    ];
}

/// What a PostFilter plugin may look at besides the failed cycle.
pub struct PostFilterContext<'a> {
    pub snapshot: &'a Snapshot,
    pub statuses: &'a NodeToStatus,
    pub framework: &'a Profile,
    /// Pods nominated to nodes by earlier preemptions.
    pub nominated: &'a NominatedPods,
}

/// A scheduler plugin. Every method has a neutral default; `points` says which ones the
/// framework calls. Plugins are pure over the snapshot: API calls (binding, evicting victims)
/// happen in the scheduler, asynchronously, from what plugins return.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
    fn points(&self) -> &'static [Point];
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        Vec::new()
    }

    fn pre_enqueue(&self, _pod: &PodInfo) -> Status {
        Status::success()
    }
    /// QueueSort: whether `a` goes before `b`.
    fn less(&self, _a: &QueuedPodInfo, _b: &QueuedPodInfo) -> bool {
        false
    }
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        (None, Status::success())
    }
    /// Whether a pod `added` to (or removed from) a node during preemption's what-if changes
    /// this plugin's pre-filter state; plugins whose state depends on other pods update it here.
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _added: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        Status::success()
    }
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::success()
    }
    fn post_filter(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _cx: &PostFilterContext<'_>,
    ) -> (PostFilterResult, Status) {
        (
            PostFilterResult::default(),
            Status::new(Code::Unschedulable, ""),
        )
    }
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        Status::success()
    }
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> (i64, Status) {
        (0, Status::success())
    }
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }
    fn reserve(&self, _state: &mut CycleState, _pod: &PodInfo, _node: &str) -> Status {
        Status::success()
    }
    fn unreserve(&self, _state: &mut CycleState, _pod: &PodInfo, _node: &str) {}
    fn permit(&self, _state: &mut CycleState, _pod: &PodInfo, _node: &str) -> Status {
        Status::success()
    }
    fn pre_bind(&self, _pod: &PodInfo, _node: &str) -> BoxFuture<'static, Status> {
        Box::pin(async { Status::success() })
    }
    fn bind(&self, _pod: Arc<PodInfo>, _node: String) -> BoxFuture<'static, Status> {
        Box::pin(async { Status::skip() })
    }
}

/// A plugin at a point with its score weight.
#[derive(Clone)]
pub struct Weighted {
    pub plugin: Arc<dyn Plugin>,
    pub weight: i64,
}

/// One scheduler profile: a `schedulerName` and the plugins at each point, in order.
#[derive(Clone)]
pub struct Profile {
    pub scheduler_name: String,
    pub pre_enqueue: Vec<Arc<dyn Plugin>>,
    pub queue_sort: Option<Arc<dyn Plugin>>,
    pub pre_filter: Vec<Arc<dyn Plugin>>,
    pub filter: Vec<Arc<dyn Plugin>>,
    pub post_filter: Vec<Arc<dyn Plugin>>,
    pub pre_score: Vec<Arc<dyn Plugin>>,
    pub score: Vec<Weighted>,
    pub reserve: Vec<Arc<dyn Plugin>>,
    pub permit: Vec<Arc<dyn Plugin>>,
    pub pre_bind: Vec<Arc<dyn Plugin>>,
    pub bind: Vec<Arc<dyn Plugin>>,
    pub percentage_of_nodes_to_score: Option<i32>,
}

impl Profile {
    pub fn new(scheduler_name: &str) -> Profile {
        Profile {
            scheduler_name: scheduler_name.to_string(),
            pre_enqueue: Vec::new(),
            queue_sort: None,
            pre_filter: Vec::new(),
            filter: Vec::new(),
            post_filter: Vec::new(),
            pre_score: Vec::new(),
            score: Vec::new(),
            reserve: Vec::new(),
            permit: Vec::new(),
            pre_bind: Vec::new(),
            bind: Vec::new(),
            percentage_of_nodes_to_score: None,
        }
    }

    /// Every plugin of the profile, once each.
    pub fn plugins(&self) -> Vec<Arc<dyn Plugin>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let all = self
            .pre_enqueue
            .iter()
            .chain(self.queue_sort.iter())
            .chain(&self.pre_filter)
            .chain(&self.filter)
            .chain(&self.post_filter)
            .chain(&self.pre_score)
            .chain(self.score.iter().map(|w| &w.plugin))
            .chain(&self.reserve)
            .chain(&self.permit)
            .chain(&self.pre_bind)
            .chain(&self.bind);
        for p in all {
            if seen.insert(p.name()) {
                out.push(p.clone());
            }
        }
        out
    }

    pub fn run_pre_enqueue(&self, pod: &PodInfo) -> Status {
        for p in &self.pre_enqueue {
            let s = p.pre_enqueue(pod);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        match &self.queue_sort {
            Some(p) => p.less(a, b),
            None => a.timestamp < b.timestamp,
        }
    }

    /// PreFilter: the nodes the cycle is narrowed to, or the first rejection.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut result: PreFilterResult = None;
        for p in &self.pre_filter {
            let (r, s) = p.pre_filter(state, pod, snapshot);
            if s.code == Code::Skip {
                state.skip_filter.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return (None, s.from_plugin(p.name()));
            }
            if let Some(names) = r {
                state.narrowed_by.push(p.name());
                let merged: HashSet<String> = match result {
                    None => names,
                    Some(prev) => prev.intersection(&names).cloned().collect(),
                };
                if merged.is_empty() {
                    // Upstream's message when the PreFilter results leave no node.
                    let msg = match state.narrowed_by.as_slice() {
                        [one] => format!("node(s) didn't satisfy plugin {one}"),
                        many => format!(
                            "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                            many.join(" ")
                        ),
                    };
                    return (
                        Some(merged),
                        Status::new(Code::UnschedulableAndUnresolvable, msg).from_plugin(p.name()),
                    );
                }
                result = Some(merged);
            }
        }
        (result, Status::success())
    }

    /// Filter on one node: the first plugin that rejects it decides.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for p in &self.filter {
            if state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.filter(state, pod, node);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    /// PreFilter extensions: `added` now counts on `node` (upstream's
    /// `RunPreFilterExtensionAddPod`).
    pub fn run_pre_filter_add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        for p in &self.pre_filter {
            if state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.add_pod(state, pod, added, node);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    /// PreFilter extensions: `removed` no longer counts on `node`.
    pub fn run_pre_filter_remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        for p in &self.pre_filter {
            if state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.remove_pod(state, pod, removed, node);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Filter with the pods nominated to this node that are at least as important as `pod`
    /// counted as if they ran there, then without them: the pod must fit both ways (upstream's
    /// `RunFilterPluginsWithNominatedPods`; without such pods, one plain Filter).
    pub fn run_filter_with_nominated_pods(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        nominated: &NominatedPods,
    ) -> Status {
        let others: Vec<&Arc<PodInfo>> = nominated
            .on_node(node.name())
            .iter()
            .filter(|p| p.uid != pod.uid && p.priority >= pod.priority)
            .collect();
        if others.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let mut state_with = state.clone();
        let mut node_with = node.clone();
        for p in others {
            node_with.add_pod(p.clone());
            let s = self.run_pre_filter_add_pod(&mut state_with, pod, p, &node_with);
            if !s.is_success() {
                return s;
            }
        }
        let s = self.run_filter(&state_with, pod, &node_with);
        if !s.is_success() {
            return s;
        }
        self.run_filter(state, pod, node)
    }

    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        for p in &self.pre_score {
            let s = p.pre_score(state, pod, nodes, snapshot);
            if s.code == Code::Skip {
                state.skip_score.insert(p.name());
                continue;
            }
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Score, NormalizeScore and weights: each node's total.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<i64>, Status> {
        let mut totals = vec![0i64; nodes.len()];
        for w in &self.score {
            if state.skip_score.contains(w.plugin.name()) {
                continue;
            }
            let mut scores = Vec::with_capacity(nodes.len());
            for n in nodes {
                let (score, s) = w.plugin.score(state, pod, n);
                if !s.is_success() {
                    return Err(s.from_plugin(w.plugin.name()));
                }
                scores.push(NodeScore {
                    name: n.name().to_string(),
                    score,
                });
            }
            let s = w.plugin.normalize_score(state, pod, &mut scores);
            if !s.is_success() {
                return Err(s.from_plugin(w.plugin.name()));
            }
            for (t, s) in totals.iter_mut().zip(&scores) {
                if s.score < 0 || s.score > MAX_NODE_SCORE {
                    return Err(Status::error(format!(
                        "plugin {:?} returns an invalid score {}, it should in the range of [0, 100] after normalizing",
                        w.plugin.name(),
                        s.score
                    )));
                }
                *t += s.score * w.weight;
            }
        }
        Ok(totals)
    }

    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.reserve {
            let s = p.reserve(state, pod, node);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for p in self.reserve.iter().rev() {
            p.unreserve(state, pod, node);
        }
    }

    pub fn run_permit(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for p in &self.permit {
            let s = p.permit(state, pod, node);
            if !s.is_success() {
                return s.from_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn has_post_filter(&self) -> bool {
        !self.post_filter.is_empty()
    }
}

/// Upstream's `helper.DefaultNormalizeScore`: scale to [0, max] by the highest score, reversed
/// when lower is better.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        s.score = max_priority * s.score / max;
        if reverse {
            s.score = max_priority - s.score;
        }
    }
}
