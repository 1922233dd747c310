//! Helpers shared by the plugins' unit tests.

use std::sync::Arc;

use crate::framework::{Code, CycleState, NodeScore, Plugin};
use crate::nodeinfo::{NodeInfo, PodInfo, Snapshot};

pub fn snapshot(nodes: Vec<Arc<NodeInfo>>) -> Snapshot {
    let index = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name().to_string(), i))
        .collect();
    Snapshot {
        nodes,
        index,
        ..Default::default()
    }
}

/// PreScore over `candidates`, then Score and NormalizeScore: the normalized scores, or `None`
/// when PreScore skips the plugin.
pub fn scores(
    pl: &dyn Plugin,
    pod: &PodInfo,
    candidates: &[Arc<NodeInfo>],
    snap: &Snapshot,
) -> Option<Vec<i64>> {
    let mut st = CycleState::default();
    let s = pl.pre_score(&mut st, pod, candidates, snap);
    if s.code == Code::Skip {
        return None;
    }
    assert!(s.is_success(), "{s:?}");
    let mut out: Vec<NodeScore> = candidates
        .iter()
        .map(|n| NodeScore {
            name: n.name().into(),
            score: pl.score(&st, pod, n).0,
        })
        .collect();
    pl.normalize_score(&st, pod, &mut out);
    Some(out.iter().map(|s| s.score).collect())
}

/// A reflector store holding `objs` (what an informer would have listed).
pub fn store<K>(objs: Vec<serde_json::Value>) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    let (s, mut w) = kube::runtime::reflector::store();
    for o in objs {
        let o: K = serde_json::from_value(o).unwrap();
        w.apply_watcher_event(&kube::runtime::watcher::Event::Apply(o));
    }
    s
}
