//! DefaultPreemption (upstream's `plugins/defaultpreemption` over `framework/preemption`): when
//! no node fits, find nodes where evicting lower-priority pods would make room, pick the one
//! where that costs least, and return it with the pods to evict.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::Store;
use rudder_api::selector::Selector;
use serde::Deserialize;

use crate::framework::*;
use crate::nodeinfo::{NodeInfo, PodInfo};
use crate::nominator::NominatedPods;
use crate::scheduler::{fit_error_message, Diagnosis};

/// `DefaultPreemptionArgs`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreemptionArgs {
    #[serde(default = "ten")]
    pub min_candidate_nodes_percentage: i32,
    #[serde(default = "hundred")]
    pub min_candidate_nodes_absolute: i32,
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

fn ten() -> i32 {
    10
}
fn hundred() -> i32 {
    100
}

impl Default for PreemptionArgs {
    fn default() -> Self {
        PreemptionArgs {
            min_candidate_nodes_percentage: ten(),
            min_candidate_nodes_absolute: hundred(),
            api_version: None,
            kind: None,
        }
    }
}

impl PreemptionArgs {
    /// Upstream's `ValidateDefaultPreemptionArgs`, with its messages.
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let pct = self.min_candidate_nodes_percentage;
        let abs = self.min_candidate_nodes_absolute;
        let mut errs = Vec::new();
        if !(0..=100).contains(&pct) {
            errs.push(format!(
                "{path}.minCandidateNodesPercentage: Invalid value: {pct}: not in valid range [0, 100]"
            ));
        }
        if abs < 0 {
            errs.push(format!(
                "{path}.minCandidateNodesAbsolute: Invalid value: {abs}: not in valid range [0, inf)"
            ));
        }
        if pct == 0 && abs == 0 {
            errs.push(format!("{path}.minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time as minCandidateNodesAbsolute"));
            errs.push(format!("{path}.minCandidateNodesAbsolute: Invalid value: 0: cannot be zero at the same time as minCandidateNodesPercentage"));
        }
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        }
    }

    /// Upstream's `calculateNumCandidates`.
    pub fn num_candidates(&self, nodes: usize) -> usize {
        let nodes = nodes as i64;
        let n = (nodes * i64::from(self.min_candidate_nodes_percentage) / 100)
            .max(i64::from(self.min_candidate_nodes_absolute));
        n.min(nodes) as usize
    }
}

pub struct DefaultPreemption {
    pub args: PreemptionArgs,
    pub pdbs: Store<PodDisruptionBudget>,
}

/// A node where the preemptor would fit once `victims` are gone.
#[derive(Debug)]
pub struct Candidate {
    pub node: String,
    /// Most important first.
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        "DefaultPreemption"
    }
    fn points(&self) -> &'static [Point] {
        &[Point::PostFilter]
    }
    fn post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        cx: &PostFilterContext<'_>,
    ) -> (PostFilterResult, Status) {
        let pdbs: Vec<Arc<PodDisruptionBudget>> = self.pdbs.state();
        let (result, status) = self.preempt(state, pod, cx, &pdbs);
        let msg = status.message();
        if msg.is_empty() {
            return (result, status);
        }
        (
            result,
            Status::new(status.code, format!("preemption: {msg}")).from_plugin(self.name()),
        )
    }
}

/// The victim's start time, or now for pods that have not started (upstream's
/// `GetPodStartTime`).
fn start_time(p: &PodInfo) -> jiff::Timestamp {
    p.pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(jiff::Timestamp::now)
}

/// Upstream's `util.MoreImportantPod`: higher priority, then the earlier start.
pub fn more_important(a: &PodInfo, b: &PodInfo) -> bool {
    if a.priority != b.priority {
        return a.priority > b.priority;
    }
    start_time(a) < start_time(b)
}

fn sort_by_importance(pods: &mut [Arc<PodInfo>]) {
    pods.sort_by(|a, b| {
        if more_important(a, b) {
            std::cmp::Ordering::Less
        } else if more_important(b, a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

/// Whether a pod is being deleted because a scheduler preempted it.
fn terminating_by_preemption(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "DisruptionTarget"))
            .is_some_and(|c| {
                c.status == "True" && c.reason.as_deref() == Some("PreemptionByScheduler")
            })
}

/// Splits pods (kept in order) into those whose eviction would exceed a matching PDB's
/// `disruptionsAllowed` and the others (upstream's `filterPodsWithPDBViolation`).
pub fn split_by_pdb_violation(
    pods: &[Arc<PodInfo>],
    pdbs: &[Arc<PodDisruptionBudget>],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.disruptions_allowed)
                .unwrap_or(0)
        })
        .collect();
    let selectors: Vec<Option<Selector>> = pdbs
        .iter()
        .map(|p| {
            Selector::from_label_selector(p.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .ok()
                .filter(|s| !s.is_empty())
        })
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violated = false;
        if let Some(labels) = p.pod.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace.as_deref() != Some(p.namespace()) {
                    continue;
                }
                let Some(sel) = &selectors[i] else {
                    continue;
                };
                if !sel.matches(labels) {
                    continue;
                }
                // Already counted by the API server's eviction.
                let disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(p.name()));
                if disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(p.clone());
        } else {
            fine.push(p.clone());
        }
    }
    (violating, fine)
}

impl DefaultPreemption {
    /// Upstream's `PodEligibleToPreemptOthers`.
    fn eligible(&self, pod: &PodInfo, cx: &PostFilterContext<'_>) -> Result<(), &'static str> {
        let spec = pod.spec();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return Err("not eligible due to preemptionPolicy=Never.");
        }
        // The status patch recording a nomination may not be back yet.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
            .or_else(|| cx.nominated.node_of.get(&pod.uid).map(String::as_str))
            .unwrap_or("");
        if nominated.is_empty() {
            return Ok(());
        }
        if cx
            .statuses
            .get(nominated)
            .is_some_and(|s| s.code == Code::UnschedulableAndUnresolvable)
        {
            return Ok(());
        }
        if let Some(node) = cx.snapshot.get(nominated) {
            let terminating = node.pods.iter().any(|p| {
                p.priority < pod.priority
                    && (terminating_by_preemption(&p.pod) || cx.nominated.evicting.contains(&p.uid))
            });
            if terminating {
                return Err("not eligible due to a terminating pod on the nominated node.");
            }
        }
        Ok(())
    }

    /// Upstream's `Evaluator.Preempt`.
    pub fn preempt(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        cx: &PostFilterContext<'_>,
        pdbs: &[Arc<PodDisruptionBudget>],
    ) -> (PostFilterResult, Status) {
        if let Err(msg) = self.eligible(pod, cx) {
            // The nomination stays as it is.
            return (
                PostFilterResult::default(),
                Status::new(Code::Unschedulable, msg),
            );
        }
        let all = cx.snapshot.len();
        // Nodes where removing pods may help: those Filter found merely Unschedulable.
        let potential: Vec<&Arc<NodeInfo>> = cx
            .snapshot
            .nodes
            .iter()
            .filter(|n| {
                cx.statuses
                    .get(n.name())
                    .is_some_and(|s| s.code == Code::Unschedulable)
            })
            .collect();
        let mut statuses = NodeToStatus::new();
        let mut candidates = Vec::new();
        if !potential.is_empty() {
            let offset = fastrand::usize(0..potential.len());
            let want = self.args.num_candidates(potential.len());
            let (found, node_statuses) =
                self.dry_run(state, pod, cx, pdbs, &potential, offset, want);
            candidates = found;
            statuses = node_statuses;
        }
        if candidates.is_empty() {
            if let Some(err) = statuses.values().find(|s| s.code == Code::Error) {
                return (PostFilterResult::default(), err.clone());
            }
            let mut d = Diagnosis::default();
            for n in &cx.snapshot.nodes {
                let st = statuses.remove(n.name()).unwrap_or_else(|| {
                    Status::new(
                        Code::UnschedulableAndUnresolvable,
                        "Preemption is not helpful for scheduling",
                    )
                });
                d.statuses.insert(n.name().to_string(), st);
            }
            // An empty nomination clears a stale one.
            return (
                PostFilterResult {
                    nominated_node: Some(String::new()),
                    victims: Vec::new(),
                },
                Status::new(Code::Unschedulable, fit_error_message(all, &d)),
            );
        }
        let best = pick_one_node(&candidates);
        let c = &candidates[best];
        (
            PostFilterResult {
                nominated_node: Some(c.node.clone()),
                victims: c.victims.iter().map(|v| v.pod.clone()).collect(),
            },
            Status::success(),
        )
    }

    /// Upstream's `DryRunPreemption`: victims per node from `offset` on, until enough
    /// candidates are found (at least one without PDB violations). Candidates without
    /// violations come first.
    #[allow(clippy::too_many_arguments)]
    fn dry_run(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        cx: &PostFilterContext<'_>,
        pdbs: &[Arc<PodDisruptionBudget>],
        potential: &[&Arc<NodeInfo>],
        offset: usize,
        want: usize,
    ) -> (Vec<Candidate>, NodeToStatus) {
        let mut fine = Vec::new();
        let mut violating = Vec::new();
        let mut statuses = NodeToStatus::new();
        for i in 0..potential.len() {
            let node = potential[(offset + i) % potential.len()];
            let mut state = state.clone();
            let mut info = (**node).clone();
            match select_victims_on_node(
                cx.framework,
                &mut state,
                pod,
                &mut info,
                pdbs,
                cx.nominated,
            ) {
                Ok((victims, _)) if victims.is_empty() => {
                    statuses.insert(
                        node.name().to_string(),
                        Status::error(format!(
                            "expected at least one victim pod on node {:?}",
                            node.name()
                        )),
                    );
                }
                Ok((victims, pdb_violations)) => {
                    let c = Candidate {
                        node: node.name().to_string(),
                        victims,
                        pdb_violations,
                    };
                    if pdb_violations == 0 {
                        fine.push(c);
                    } else {
                        violating.push(c);
                    }
                    if !fine.is_empty() && fine.len() + violating.len() >= want {
                        break;
                    }
                }
                Err(st) => {
                    statuses.insert(node.name().to_string(), st);
                }
            }
        }
        fine.extend(violating);
        (fine, statuses)
    }
}

/// Upstream's `SelectVictimsOnNode`: remove every lower-priority pod; if the pod then fits,
/// put back (reprieve) as many as still let it fit, PDB-violating ones first, most important
/// first. Returns the victims (most important first) and how many of them violate a PDB.
pub fn select_victims_on_node(
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    node: &mut NodeInfo,
    pdbs: &[Arc<PodDisruptionBudget>],
    nominated: &NominatedPods,
) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    for p in &potential {
        node.remove_pod(&p.uid);
        let s = profile.run_pre_filter_remove_pod(state, pod, p, node);
        if !s.is_success() {
            return Err(Status::error(s.message()));
        }
    }
    if potential.is_empty() {
        return Err(Status::new(
            Code::UnschedulableAndUnresolvable,
            "No preemption victims found for incoming pod",
        ));
    }
    // Affinity of the pod to a victim is not considered (as upstream: not worth the cost).
    let s = profile.run_filter_with_nominated_pods(state, pod, node, nominated);
    if !s.is_success() {
        return Err(s);
    }
    sort_by_importance(&mut potential);
    let (violating, fine) = split_by_pdb_violation(&potential, pdbs);
    let mut victims = Vec::new();
    let mut reprieve =
        |p: &Arc<PodInfo>, state: &mut CycleState, node: &mut NodeInfo| -> Result<bool, Status> {
            node.add_pod(p.clone());
            let s = profile.run_pre_filter_add_pod(state, pod, p, node);
            if !s.is_success() {
                return Err(Status::error(s.message()));
            }
            let fits = profile
                .run_filter_with_nominated_pods(state, pod, node, nominated)
                .is_success();
            if !fits {
                node.remove_pod(&p.uid);
                let s = profile.run_pre_filter_remove_pod(state, pod, p, node);
                if !s.is_success() {
                    return Err(Status::error(s.message()));
                }
                victims.push(p.clone());
            }
            Ok(fits)
        };
    let mut violations = 0;
    for p in &violating {
        if !reprieve(p, state, node)? {
            violations += 1;
        }
    }
    for p in &fine {
        reprieve(p, state, node)?;
    }
    if !violating.is_empty() && !fine.is_empty() {
        sort_by_importance(&mut victims);
    }
    Ok((victims, violations))
}

/// Upstream's `pickOneNodeForPreemption`: fewest PDB violations, then the lowest
/// highest-priority victim, the smallest sum of priorities, the fewest victims, the latest
/// start among the highest-priority victims; then the first.
pub fn pick_one_node(candidates: &[Candidate]) -> usize {
    type ScoreFn = fn(&Candidate) -> i128;
    let scores: [ScoreFn; 5] = [
        |c| -(c.pdb_violations as i128),
        |c| -i128::from(c.victims.first().map_or(0, |v| v.priority)),
        |c| {
            // Shifted to be non-negative, so that a few negative-priority victims do not
            // beat fewer victims of the same priority.
            -c.victims
                .iter()
                .map(|v| i128::from(v.priority) + i128::from(i32::MAX) + 1)
                .sum::<i128>()
        },
        |c| -(c.victims.len() as i128),
        |c| {
            let top = c.victims.first().map_or(0, |v| v.priority);
            c.victims
                .iter()
                .filter(|v| v.priority == top)
                .map(|v| start_time(v).as_nanosecond())
                .min()
                .unwrap_or(i128::MIN)
        },
    ];
    let mut remaining: Vec<usize> = (0..candidates.len()).collect();
    for f in scores {
        let best = remaining
            .iter()
            .map(|i| f(&candidates[*i]))
            .max()
            .unwrap_or(0);
        remaining.retain(|i| f(&candidates[*i]) == best);
        if remaining.len() == 1 {
            break;
        }
    }
    remaining.first().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeinfo::Snapshot;
    use crate::plugins::fit::{FitArgs, NodeResourcesFit};
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    // Upstream's test priorities.
    const LOWEST: i32 = -100;
    const LOW: i32 = 0;
    const MID: i32 = 100;
    const HIGH: i32 = 1000;

    fn pod(
        name: &str,
        prio: i32,
        cpu: &str,
        start: &str,
        labels: serde_json::Value,
    ) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name, "labels": labels},
                "spec": {"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
                "status": {"startTime": start},
            }))
            .unwrap(),
        )))
    }

    fn node(name: &str, cpu: &str, pods: &[Arc<PodInfo>]) -> Arc<NodeInfo> {
        let mut n = NodeInfo::new(Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"allocatable": {"cpu": cpu, "memory": "100Gi", "pods": "110"}}}))
            .unwrap(),
        ));
        for p in pods {
            n.add_pod(p.clone());
        }
        Arc::new(n)
    }

    fn snapshot(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
        Snapshot {
            index: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name().to_string(), i))
                .collect(),
            nodes,
            ..Default::default()
        }
    }

    fn profile() -> Profile {
        let mut p = Profile::new("default-scheduler");
        let fit: Arc<dyn Plugin> = Arc::new(NodeResourcesFit {
            args: FitArgs::default(),
        });
        p.pre_filter.push(fit.clone());
        p.filter.push(fit);
        p
    }

    fn plugin(pdbs: Vec<PodDisruptionBudget>) -> DefaultPreemption {
        let (store, mut w) = reflector::store();
        for pdb in pdbs {
            w.apply_watcher_event(&watcher::Event::Apply(pdb));
        }
        DefaultPreemption {
            args: PreemptionArgs::default(),
            pdbs: store,
        }
    }

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-01T00:01:00Z";

    /// Runs Filter over every node as a cycle would, then PostFilter.
    fn run(
        preemptor: &PodInfo,
        nodes: Vec<Arc<NodeInfo>>,
        pl: &DefaultPreemption,
    ) -> (PostFilterResult, Status) {
        let prof = profile();
        let snap = snapshot(nodes);
        let mut state = CycleState::default();
        let (_, st) = prof.run_pre_filter(&mut state, preemptor, &snap);
        assert!(st.is_success());
        let mut statuses = NodeToStatus::new();
        for n in &snap.nodes {
            let st = prof.run_filter(&state, preemptor, n);
            assert!(!st.is_success(), "{} should not fit", n.name());
            statuses.insert(n.name().to_string(), st);
        }
        let nominated = NominatedPods::default();
        let cx = PostFilterContext {
            snapshot: &snap,
            statuses: &statuses,
            framework: &prof,
            nominated: &nominated,
        };
        pl.post_filter(&state, preemptor, &cx)
    }

    fn victim_names(r: &PostFilterResult) -> Vec<String> {
        r.victims
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn preempts_the_fewest_lower_priority_pods() {
        // Upstream's "a pod that would fit on the node when lower priority pods are removed":
        // the larger low-priority pod goes, the mid-priority one is reprieved.
        let n1 = node(
            "node1",
            "4",
            &[
                pod("p1.1", MID, "1", T1, json!({})),
                pod("p1.2", LOW, "2", T1, json!({})),
            ],
        );
        let n2 = node("node2", "4", &[pod("p2.1", MID, "3", T1, json!({}))]);
        let preemptor = pod("p", HIGH, "2", T2, json!({}));
        let (r, st) = run(&preemptor, vec![n1, n2], &plugin(vec![]));
        assert!(st.is_success(), "{st:?}");
        // node2 also works (evicting p2.1, of higher priority): node1 has the lower victim.
        assert_eq!(r.nominated_node.as_deref(), Some("node1"));
        assert_eq!(victim_names(&r), vec!["p1.2"]);
    }

    #[test]
    fn no_victims_and_not_helpful_messages() {
        // Equal-priority pods are no victims.
        let n1 = node("node1", "2", &[pod("a", HIGH, "2", T1, json!({}))]);
        let n2 = node("node2", "2", &[pod("b", HIGH, "2", T1, json!({}))]);
        let preemptor = pod("p", HIGH, "1", T2, json!({}));
        let (r, st) = run(&preemptor, vec![n1.clone(), n2.clone()], &plugin(vec![]));
        assert_eq!(st.code, Code::Unschedulable);
        assert_eq!(
            st.message(),
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        assert_eq!(r.nominated_node.as_deref(), Some(""));
        // A pod bigger than any node: Filter says unresolvable, preemption does not help.
        let huge = pod("p", HIGH, "10", T2, json!({}));
        let (_, st) = run(&huge, vec![n1, n2], &plugin(vec![]));
        assert_eq!(
            st.message(),
            "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn preemption_policy_never_is_not_eligible() {
        let n1 = node("node1", "2", &[pod("a", LOW, "2", T1, json!({}))]);
        let mut p: Pod = (*pod("p", HIGH, "1", T2, json!({})).pod).clone();
        if let Some(s) = p.spec.as_mut() {
            s.preemption_policy = Some("Never".into());
        }
        let preemptor = PodInfo::new(Arc::new(p));
        let (r, st) = run(&preemptor, vec![n1], &plugin(vec![]));
        assert_eq!(
            st.message(),
            "preemption: not eligible due to preemptionPolicy=Never."
        );
        assert!(r.nominated_node.is_none() && r.victims.is_empty());
    }

    #[test]
    fn pdb_violating_victims_are_avoided_and_counted() {
        // Upstream's "pod with PDB violation is not preempted when another candidate exists".
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "pdb", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "foo"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}
        }))
        .unwrap();
        let n1 = node(
            "node1",
            "2",
            &[pod("guarded", LOW, "2", T1, json!({"app": "foo"}))],
        );
        let n2 = node(
            "node2",
            "2",
            &[pod("free", MID, "2", T1, json!({"app": "bar"}))],
        );
        let preemptor = pod("p", HIGH, "1", T2, json!({}));
        let pl = plugin(vec![pdb]);
        let (r, st) = run(&preemptor, vec![n1.clone(), n2], &pl);
        assert!(st.is_success());
        // Fewer PDB violations beats a lower-priority victim.
        assert_eq!(r.nominated_node.as_deref(), Some("node2"));
        // Only the guarded node: it is still a candidate, with one violation.
        let (r, st) = run(&preemptor, vec![n1], &pl);
        assert!(st.is_success());
        assert_eq!(victim_names(&r), vec!["guarded"]);
    }

    #[test]
    fn split_by_pdb_keeps_order_and_honours_disrupted_pods() {
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "pdb", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "foo"}}},
            "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3,
                "disruptedPods": {"c": "2024-01-01T00:00:00Z"}}
        }))
        .unwrap();
        let pods = vec![
            pod("a", LOW, "1", T1, json!({"app": "foo"})),
            pod("b", LOW, "1", T1, json!({"app": "foo"})),
            pod("c", LOW, "1", T1, json!({"app": "foo"})),
            pod("d", LOW, "1", T1, json!({"app": "bar"})),
        ];
        let (violating, fine) = split_by_pdb_violation(&pods, &[Arc::new(pdb)]);
        let names = |v: &[Arc<PodInfo>]| v.iter().map(|p| p.name().to_string()).collect::<Vec<_>>();
        assert_eq!(names(&violating), vec!["b"]);
        assert_eq!(names(&fine), vec!["a", "c", "d"]);
    }

    fn cand(node: &str, pdb: usize, victims: &[(i32, &str)]) -> Candidate {
        Candidate {
            node: node.into(),
            victims: victims
                .iter()
                .enumerate()
                .map(|(i, (p, t))| pod(&format!("{node}-{i}"), *p, "1", t, json!({})))
                .collect(),
            pdb_violations: pdb,
        }
    }

    // Cases from upstream's TestPickOneNodeForPreemption.
    #[test]
    fn pick_one_node_as_upstream() {
        let pick = |c: Vec<Candidate>| c[pick_one_node(&c)].node.clone();
        // Minimum highest-priority victim.
        assert_eq!(
            pick(vec![
                cand("node1", 0, &[(MID, T1), (LOW, T1)]),
                cand("node2", 0, &[(MID, T1), (MID, T1)]),
                cand("node3", 0, &[(LOW, T1), (LOW, T1)]),
            ]),
            "node3"
        );
        // Same highest priority: smallest sum.
        assert_eq!(
            pick(vec![
                cand("node1", 0, &[(MID, T1), (LOW, T1), (LOW, T1)]),
                cand("node2", 0, &[(MID, T1), (MID, T1), (LOW, T1)]),
                cand("node3", 0, &[(MID, T1), (LOWEST, T1)]),
            ]),
            "node3"
        );
        // Negative priorities are shifted: fewer pods of the same priority win.
        assert_eq!(
            pick(vec![
                cand("node1", 0, &[(MID, T1), (LOWEST, T1), (LOWEST, T1)]),
                cand("node2", 0, &[(MID, T1), (LOWEST, T1)]),
            ]),
            "node2"
        );
        // Same sum and count: the latest start of the highest-priority victims.
        assert_eq!(
            pick(vec![
                cand("node1", 0, &[(MID, T1)]),
                cand("node2", 0, &[(MID, T2)]),
            ]),
            "node2"
        );
        // Fewer PDB violations first.
        assert_eq!(
            pick(vec![
                cand("node1", 1, &[(LOW, T1)]),
                cand("node2", 0, &[(MID, T1)]),
            ]),
            "node2"
        );
    }

    // Upstream's RunFilterPluginsWithNominatedPods: a nominated pod takes its room on the node
    // for pods of at most its priority.
    #[test]
    fn nominated_pods_hold_their_room() {
        let prof = profile();
        let n = node("node1", "2", &[pod("running", LOW, "1", T1, json!({}))]);
        let mut nominated = NominatedPods::default();
        nominated.by_node.insert(
            "node1".into(),
            vec![pod("nominee", MID, "1", T1, json!({}))],
        );
        let run = |p: &PodInfo| {
            let mut state = CycleState::default();
            let snap = snapshot(vec![n.clone()]);
            prof.run_pre_filter(&mut state, p, &snap);
            prof.run_filter_with_nominated_pods(&state, p, &n, &nominated)
        };
        // Pods not more important than the nominee must leave it its room.
        for p in [
            pod("same", MID, "500m", T2, json!({})),
            pod("lower", LOW, "500m", T2, json!({})),
        ] {
            assert_eq!(run(&p).reasons, vec!["Insufficient cpu"]);
        }
        // A more important pod does not count it.
        let st = run(&pod("higher", HIGH, "500m", T2, json!({})));
        assert!(st.is_success(), "{st:?}");
        // The nominee itself is not counted twice.
        assert!(run(&pod("nominee", MID, "1", T2, json!({}))).is_success());
    }

    #[test]
    fn candidates_count_and_args_validation() {
        let a = PreemptionArgs::default();
        assert_eq!(a.num_candidates(50), 50);
        assert_eq!(a.num_candidates(5000), 500);
        assert_eq!(a.num_candidates(500), 100);
        let bad = PreemptionArgs {
            min_candidate_nodes_percentage: 0,
            min_candidate_nodes_absolute: 0,
            ..Default::default()
        };
        assert_eq!(bad.validate("profiles[0].pluginConfig[0].args").unwrap_err(), "[profiles[0].pluginConfig[0].args.minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time as minCandidateNodesAbsolute, profiles[0].pluginConfig[0].args.minCandidateNodesAbsolute: Invalid value: 0: cannot be zero at the same time as minCandidateNodesPercentage]");
        let bad = PreemptionArgs {
            min_candidate_nodes_percentage: 101,
            ..Default::default()
        };
        assert!(bad
            .validate("a")
            .unwrap_err()
            .contains("not in valid range [0, 100]"));
    }
}
