//! The DaemonSet controller's pure helpers (upstream's `pkg/controller/daemon/util` and the
//! node-eligibility half of `daemon_controller.go`): the tolerations every daemon pod gets,
//! `NodeShouldRunDaemonPod` (nodeName, nodeSelector, required node affinity, taints), the
//! node-name affinity that hands a daemon pod to the default scheduler, template
//! generation/hash labels, surge and unavailability counts, and the failed-pod back-off.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, RollingUpdateDaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use rudder_api::selector::node::{selector_matches as node_selector_matches, tolerates};

use crate::deployment::util::{scaled_value, BadIntOrString};

/// `apps.DefaultDaemonSetUniqueLabelKey` (= `ControllerRevisionHashLabelKey`).
pub const HASH_LABEL: &str = "controller-revision-hash";
/// `extensions.DaemonSetTemplateGenerationKey`: the pre-hash way pods were matched to templates.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// `apps.DeprecatedTemplateGeneration`: the annotation the API server keeps the template
/// generation in.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// `GetTemplateGeneration`: the deprecated annotation, `None` if absent or unparsable.
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()?
        .get(TEMPLATE_GENERATION_ANNOTATION)?
        .parse()
        .ok()
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// `Toleration.MatchToleration`: same key, operator, value and effect (tolerationSeconds aside).
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    s(&a.key) == s(&b.key)
        && s(&a.operator) == s(&b.operator)
        && s(&a.value) == s(&b.value)
        && s(&a.effect) == s(&b.effect)
}

/// `v1helper.AddOrUpdateTolerationInPodSpec`: replaces a matching toleration (so a user's
/// bounded `tolerationSeconds` becomes the unbounded one), else appends.
fn add_or_update_toleration(spec: &mut PodSpec, t: Toleration) {
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|x| same_toleration(x, &t)) {
        Some(x) => *x = t,
        None => list.push(t),
    }
}

/// `AddOrUpdateDaemonPodTolerations`: daemon pods survive not-ready/unreachable nodes and
/// schedule onto nodes under pressure or cordoned (and without a network, for hostNetwork pods).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(
        spec,
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
    );
    add_or_update_toleration(
        spec,
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
    );
    for key in [
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        add_or_update_toleration(spec, toleration(key, "NoSchedule"));
    }
    if spec.host_network == Some(true) {
        add_or_update_toleration(
            spec,
            toleration("node.kubernetes.io/network-unavailable", "NoSchedule"),
        );
    }
}

/// `CreatePodTemplate`: the template with the daemon tolerations, the template-generation label
/// (when the DaemonSet has one) and the revision hash label.
pub fn create_pod_template(
    template: &PodTemplateSpec,
    generation: Option<i64>,
    hash: &str,
) -> PodTemplateSpec {
    let mut t = template.clone();
    add_daemon_tolerations(t.spec.get_or_insert_with(Default::default));
    let labels = t
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    if let Some(g) = generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.into());
    }
    t
}

fn name_term(node: &str) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
        match_expressions: None,
    }
}

/// `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes exactly
/// `metadata.name In [node]`, so the default scheduler places the pod there (preferred terms
/// and pod (anti-)affinity are kept).
pub fn replace_node_name_affinity(affinity: Option<Affinity>, node: &str) -> Affinity {
    let mut a = affinity.unwrap_or_default();
    let na = a.node_affinity.get_or_insert_with(NodeAffinity::default);
    match na
        .required_during_scheduling_ignored_during_execution
        .as_mut()
    {
        Some(req) => req.node_selector_terms = vec![name_term(node)],
        None => {
            na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
                node_selector_terms: vec![name_term(node)],
            })
        }
    }
    a
}

/// `GetTargetNodeName`: `spec.nodeName`, else the single `metadata.name In` value of the
/// required node affinity (a pod not scheduled yet).
pub fn target_node_name(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for r in term.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let values = r.values.as_deref().unwrap_or(&[]);
                return (values.len() == 1).then(|| values[0].clone());
            }
        }
    }
    None
}

/// `IsPodUpdated`: the pod carries the current revision hash (or, for pods from before hashes,
/// the current template generation).
pub fn is_pod_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let label = |k: &str| pod.metadata.labels.as_ref().and_then(|l| l.get(k));
    let generation_matches =
        generation.is_some_and(|g| label(TEMPLATE_GENERATION_LABEL) == Some(&g.to_string()));
    let hash_matches = !hash.is_empty() && label(HASH_LABEL).map(String::as_str) == Some(hash);
    hash_matches || generation_matches
}

pub fn is_rolling_update(ds: &DaemonSet) -> bool {
    ds.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

fn rolling_update(ds: &DaemonSet) -> Option<&RollingUpdateDaemonSet> {
    if !is_rolling_update(ds) {
        return None;
    }
    ds.spec.update_strategy.as_ref()?.rolling_update.as_ref()
}

/// `SurgeCount`: 0 unless a RollingUpdate asks for `maxSurge` (rounded up).
pub fn surge_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, BadIntOrString> {
    match rolling_update(ds).and_then(|r| r.max_surge.as_ref()) {
        Some(v) => scaled_value(v, number_to_schedule, true),
        None => Ok(0),
    }
}

/// `UnavailableCount`: 0 unless a RollingUpdate sets `maxUnavailable` (rounded up).
pub fn unavailable_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, BadIntOrString> {
    match rolling_update(ds).and_then(|r| r.max_unavailable.as_ref()) {
        Some(v) => scaled_value(v, number_to_schedule, true),
        None => Ok(0),
    }
}

/// `AllowsSurge`: more than one pod per node may exist during an update.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n > 0)
}

// ---------- eligibility ----------

/// `FindMatchingUntoleratedTaint` restricted to the taints `include` selects.
fn has_untolerated_taint(
    taints: &[Taint],
    tolerations: &[Toleration],
    include: impl Fn(&Taint) -> bool,
) -> bool {
    taints
        .iter()
        .filter(|t| include(t))
        .any(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`: the `nodeSelector` labels and any
/// one of the required node-affinity terms.
pub fn required_node_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| {
            node_selector_matches(r, labels, node.metadata.name.as_deref().unwrap_or(""))
        })
}

/// `NodeShouldRunDaemonPod`: (shouldRun, shouldContinueRunning). A node the pod would not
/// schedule onto only for a NoSchedule taint keeps the daemon pods already there.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let mut spec = ds.spec.template.spec.clone().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return (false, false);
    }
    add_daemon_tolerations(&mut spec);
    if !required_node_affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let fits_taints = !has_untolerated_taint(taints, tolerations, |t| {
        t.effect == "NoExecute" || t.effect == "NoSchedule"
    });
    if !fits_taints {
        let keeps = !has_untolerated_taint(taints, tolerations, |t| t.effect == "NoExecute");
        return (false, keeps);
    }
    (true, true)
}

/// `nodeInSameCondition`: the same set of conditions is True on both.
fn same_true_conditions(old: &Node, new: &Node) -> bool {
    let trues = |n: &Node| {
        let mut v: Vec<String> = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.status == "True")
            .map(|c| c.type_.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    trues(old) == trues(new)
}

/// `shouldIgnoreNodeUpdate`: nothing but heartbeats (condition timestamps, resourceVersion)
/// changed.
pub fn should_ignore_node_update(old: &Node, new: &Node) -> bool {
    if !same_true_conditions(old, new) {
        return false;
    }
    let strip = |n: &Node| {
        let mut n = n.clone();
        n.metadata.resource_version = None;
        n.metadata.managed_fields = None;
        if let Some(s) = n.status.as_mut() {
            s.conditions = None;
        }
        n
    };
    strip(old) == strip(new)
}

/// `podByCreationTimestampAndPhase`: scheduled pods first, then oldest, then by name.
pub fn by_creation_and_phase(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

// ---------- failed-pod back-off ----------

/// client-go's `flowcontrol.Backoff` as kube-controller-manager configures it for DaemonSets
/// (1 s doubling to 15 min): a failed daemon pod on a node is deleted at most once per back-off
/// period, so the controller does not hot-loop against a kubelet that keeps rejecting it.
pub struct FailedPodsBackoff {
    initial: Duration,
    max: Duration,
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl Default for FailedPodsBackoff {
    fn default() -> Self {
        FailedPodsBackoff::new(Duration::from_secs(1), Duration::from_secs(15 * 60))
    }
}

impl FailedPodsBackoff {
    pub fn new(initial: Duration, max: Duration) -> FailedPodsBackoff {
        FailedPodsBackoff {
            initial,
            max,
            entries: Mutex::default(),
        }
    }

    /// An entry untouched for twice the maximum is forgotten.
    fn expired(&self, now: Instant, last: Instant) -> bool {
        now.saturating_duration_since(last) > self.max * 2
    }

    /// `IsInBackOffSinceUpdate`.
    pub fn in_backoff(&self, key: &str, now: Instant) -> bool {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|&(backoff, last)| {
            !self.expired(now, last) && now.saturating_duration_since(last) < backoff
        })
    }

    /// The current delay of `key` (zero if none).
    pub fn get(&self, key: &str) -> Duration {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).map(|e| e.0).unwrap_or_default()
    }

    /// `Next`: starts at the initial delay, else doubles up to the maximum.
    pub fn next(&self, key: &str, now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let backoff = match map.get(key) {
            Some(&(b, last)) if !self.expired(now, last) => (b * 2).min(self.max),
            _ => self.initial,
        };
        map.insert(key.to_string(), (backoff, now));
    }

    /// `GC`: drops entries untouched for twice the maximum.
    pub fn gc(&self, now: Instant) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, &mut (_, last)| now.saturating_duration_since(last) <= self.max * 2);
    }
}

/// `failedPodsBackoffKey`.
pub fn failed_pods_backoff_key(ds: &DaemonSet, node: &str) -> String {
    format!(
        "{}/{}/{}",
        ds.metadata.uid.as_deref().unwrap_or(""),
        ds.status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0),
        node
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemonset::tests::merge;
    use serde_json::json;

    fn ds(v: serde_json::Value) -> DaemonSet {
        let mut base = json!({"metadata": {"name": "ds", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"name": "simple-daemon"}},
                "template": {"metadata": {"labels": {"name": "simple-daemon"}},
                    "spec": {"containers": [{"name": "c", "image": "foo/bar"}]}}}});
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn node(v: serde_json::Value) -> Node {
        let mut base = json!({"metadata": {"name": "node-0"}});
        merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn daemon_tolerations_are_added_once_and_replace_bounded_ones() {
        let mut spec: PodSpec = serde_json::from_value(json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]}))
        .unwrap();
        add_daemon_tolerations(&mut spec);
        add_daemon_tolerations(&mut spec);
        let t = spec.tolerations.as_ref().unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].toleration_seconds, None);
        let keys: Vec<_> = t.iter().map(|t| t.key.clone().unwrap()).collect();
        assert_eq!(keys[1], "node.kubernetes.io/unreachable");
        assert!(!keys.contains(&"node.kubernetes.io/network-unavailable".to_string()));
        spec.host_network = Some(true);
        add_daemon_tolerations(&mut spec);
        assert_eq!(spec.tolerations.as_ref().unwrap().len(), 7);
    }

    /// Upstream's `TestReplaceDaemonSetPodNodeNameNodeAffinity` cases.
    #[test]
    fn node_name_affinity_replaces_required_terms_only() {
        let a = replace_node_name_affinity(None, "host_1");
        let req = a
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(req.node_selector_terms, vec![name_term("host_1")]);

        let with_pref: Affinity = serde_json::from_value(json!({"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}}],
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["host_1", "host_2"]}]},
                {"matchExpressions": [{"key": "x", "operator": "Exists"}]}]}}}))
        .unwrap();
        let a = replace_node_name_affinity(Some(with_pref), "host_1");
        let na = a.node_affinity.unwrap();
        assert_eq!(
            na.preferred_during_scheduling_ignored_during_execution
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            na.required_during_scheduling_ignored_during_execution
                .unwrap()
                .node_selector_terms,
            vec![name_term("host_1")]
        );
    }

    /// Upstream's `TestGetTargetNodeName` cases.
    #[test]
    fn target_node_from_node_name_or_affinity() {
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
        };
        assert_eq!(
            target_node_name(&pod(json!({"containers": [], "nodeName": "node-1"}))).as_deref(),
            Some("node-1")
        );
        let mut p = pod(json!({"containers": []}));
        p.spec.as_mut().unwrap().affinity = Some(replace_node_name_affinity(None, "node-2"));
        assert_eq!(target_node_name(&p).as_deref(), Some("node-2"));
        let ambiguous = pod(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}}),
        );
        assert_eq!(target_node_name(&ambiguous), None);
        assert_eq!(target_node_name(&pod(json!({"containers": []}))), None);
    }

    /// Upstream's `TestIsPodUpdated` cases.
    #[test]
    fn pod_updated_by_hash_or_generation() {
        let pod = |labels: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels}})).unwrap()
        };
        let hash = "55555";
        assert!(is_pod_updated(
            &pod(json!({"controller-revision-hash": hash})),
            hash,
            Some(5)
        ));
        assert!(is_pod_updated(
            &pod(json!({"pod-template-generation": "5"})),
            hash,
            Some(5)
        ));
        assert!(is_pod_updated(
            &pod(json!({"pod-template-generation": "4", "controller-revision-hash": hash})),
            hash,
            Some(5)
        ));
        assert!(!is_pod_updated(
            &pod(json!({"pod-template-generation": "4", "controller-revision-hash": "x"})),
            hash,
            Some(5)
        ));
        assert!(!is_pod_updated(&pod(json!({})), "", None));
        assert!(!is_pod_updated(
            &pod(json!({"controller-revision-hash": ""})),
            "",
            None
        ));
    }

    #[test]
    fn pod_template_gets_labels_and_tolerations() {
        let d = ds(json!({}));
        let t = create_pod_template(&d.spec.template, Some(3), "abc");
        let l = t.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(l[HASH_LABEL], "abc");
        assert_eq!(l[TEMPLATE_GENERATION_LABEL], "3");
        assert_eq!(l["name"], "simple-daemon");
        assert_eq!(
            t.spec.as_ref().unwrap().tolerations.as_ref().unwrap().len(),
            6
        );
    }

    /// Upstream's `TestSurgeCount`/`TestUnavailableCount` and `AllowsSurge`.
    #[test]
    fn surge_and_unavailable_counts() {
        let d = |ru: serde_json::Value| {
            ds(json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}}}))
        };
        assert_eq!(surge_count(&d(json!({"maxSurge": "10%"})), 15).unwrap(), 2);
        assert_eq!(surge_count(&d(json!({"maxSurge": 3})), 15).unwrap(), 3);
        assert_eq!(surge_count(&d(json!({})), 15).unwrap(), 0);
        assert_eq!(
            unavailable_count(&d(json!({"maxUnavailable": "25%"})), 5).unwrap(),
            2
        );
        assert_eq!(unavailable_count(&d(json!({})), 5).unwrap(), 0);
        assert!(surge_count(&d(json!({"maxSurge": "x%"})), 15).is_err());
        assert!(allows_surge(&d(json!({"maxSurge": 1}))));
        assert!(!allows_surge(&d(json!({"maxSurge": 0}))));
        let on_delete = ds(json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}));
        assert_eq!(surge_count(&on_delete, 10).unwrap(), 0);
        assert_eq!(unavailable_count(&on_delete, 10).unwrap(), 0);
    }

    /// Upstream's `TestNodeShouldRunDaemonPod` cases.
    #[test]
    fn node_should_run_as_upstream() {
        let plain = ds(json!({}));
        assert_eq!(node_should_run(&node(json!({})), &plain), (true, true));
        // nodeName in the template.
        let named = ds(json!({"spec": {"template": {"spec": {"nodeName": "other"}}}}));
        assert_eq!(node_should_run(&node(json!({})), &named), (false, false));
        // nodeSelector.
        let sel = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}));
        assert_eq!(node_should_run(&node(json!({})), &sel), (false, false));
        assert_eq!(
            node_should_run(
                &node(json!({"metadata": {"labels": {"disk": "ssd"}}})),
                &sel
            ),
            (true, true)
        );
        // Required node affinity, by label and by field.
        let aff = ds(
            json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "type", "operator": "In", "values": ["production"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-9"]}]}]}}}}}}}),
        );
        assert_eq!(node_should_run(&node(json!({})), &aff), (false, false));
        assert_eq!(
            node_should_run(
                &node(json!({"metadata": {"labels": {"type": "production"}}})),
                &aff
            ),
            (true, true)
        );
        assert_eq!(
            node_should_run(&node(json!({"metadata": {"name": "node-9"}})), &aff),
            (true, true)
        );
        // A NoSchedule taint: no new pod, existing ones stay.
        let tainted = node(
            json!({"spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(node_should_run(&tainted, &plain), (false, true));
        // A NoExecute taint: no pod at all.
        let evict = node(json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}));
        assert_eq!(node_should_run(&evict, &plain), (false, false));
        // Tolerated taints.
        let tol = ds(
            json!({"spec": {"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "x", "effect": "NoSchedule"}]}}}}),
        );
        assert_eq!(node_should_run(&tainted, &tol), (true, true));
        // The automatic tolerations: a cordoned, not-ready or pressured node still runs daemons.
        for (key, effect) in [
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ] {
            let n = node(json!({"spec": {"taints": [{"key": key, "effect": effect}]}}));
            assert_eq!(node_should_run(&n, &plain), (true, true), "{key}");
        }
        // network-unavailable only for hostNetwork pods.
        let net = node(
            json!({"spec": {"taints": [{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(node_should_run(&net, &plain), (false, true));
        let host = ds(json!({"spec": {"template": {"spec": {"hostNetwork": true}}}}));
        assert_eq!(node_should_run(&net, &host), (true, true));
    }

    #[test]
    fn heartbeats_are_ignored_condition_flips_are_not() {
        let a = node(
            json!({"metadata": {"resourceVersion": "1"}, "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}]}}),
        );
        let b = node(
            json!({"metadata": {"resourceVersion": "2"}, "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:01:00Z"}]}}),
        );
        assert!(should_ignore_node_update(&a, &b));
        let c = node(
            json!({"metadata": {"resourceVersion": "3"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert!(!should_ignore_node_update(&a, &c));
        let d = node(
            json!({"metadata": {"resourceVersion": "4", "labels": {"x": "y"}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert!(!should_ignore_node_update(&a, &d));
    }

    /// client-go's `TestSlowBackoff`/`TestBackoffGC` behaviour with the controller's settings.
    #[test]
    fn failed_pod_backoff_doubles_and_expires() {
        let b = FailedPodsBackoff::default();
        let t0 = Instant::now();
        assert!(!b.in_backoff("k", t0));
        b.next("k", t0);
        assert_eq!(b.get("k"), Duration::from_secs(1));
        assert!(b.in_backoff("k", t0 + Duration::from_millis(500)));
        assert!(!b.in_backoff("k", t0 + Duration::from_secs(1)));
        b.next("k", t0 + Duration::from_secs(1));
        assert_eq!(b.get("k"), Duration::from_secs(2));
        for i in 0..20 {
            b.next("k", t0 + Duration::from_secs(2 + i));
        }
        assert_eq!(b.get("k"), Duration::from_secs(900));
        // Quiet for more than twice the maximum: starts over, and GC forgets it.
        let later = t0 + Duration::from_secs(22 + 1801);
        assert!(!b.in_backoff("k", later));
        b.gc(later);
        assert_eq!(b.get("k"), Duration::ZERO);
    }

    #[test]
    fn ordering_scheduled_then_oldest() {
        let p = |name: &str, node: Option<&str>, t: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name, "creationTimestamp": t},
                "spec": {"containers": [], "nodeName": node}}))
            .unwrap()
        };
        let mut pods = [
            p("c", None, "2020-01-01T00:00:00Z"),
            p("b", Some("n"), "2020-01-01T00:00:02Z"),
            p("a", Some("n"), "2020-01-01T00:00:02Z"),
            p("d", Some("n"), "2020-01-01T00:00:01Z"),
        ];
        pods.sort_by(by_creation_and_phase);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["d", "a", "b", "c"]);
    }
}
