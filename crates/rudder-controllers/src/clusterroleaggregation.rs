//! Upstream's clusterrole-aggregation controller (`pkg/controller/clusterroleaggregation`): a
//! ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its
//! `clusterRoleSelectors` select (in name order, each rule once), so `admin`, `edit` and `view`
//! grow with the roles charts label `rbac.authorization.k8s.io/aggregate-to-*`.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::controller::{ignore_not_found, run_workers, Next, ReconcileResult, Reconciler};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::podutil::selector_matches;
use crate::workqueue::WorkQueue;

struct AggregationController {
    client: Client,
    roles: Arc<Informer<ClusterRole>>,
    queue: Arc<WorkQueue>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let c = Arc::new(AggregationController {
        client: cx.client.clone(),
        roles: cx.informers.get::<ClusterRole>(),
        queue: WorkQueue::new("clusterrole-aggregation", cx.metrics.clone()),
    });
    let this = c.clone();
    // Any ClusterRole's change may change what an aggregated one selects: look at them all.
    c.roles.add_handler(move |ch| {
        let changed = match ch {
            Change::Added(r) | Change::Deleted(r) => r.metadata.name.clone(),
            Change::Updated { new, .. } => new.metadata.name.clone(),
        };
        if let Some(name) = changed {
            if this
                .roles
                .get("", &name)
                .is_some_and(|r| r.aggregation_rule.is_some())
            {
                this.queue.add(name);
            }
        }
        for r in this.roles.list_all() {
            if r.aggregation_rule.is_some() {
                this.queue.add(r.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    let (roles, queue) = (c.roles.clone(), c.queue.clone());
    tasks.spawn(async move {
        roles.wait_synced().await;
        run_workers(queue, c, 5).await;
    });
}

/// The rules `role` aggregates from `all`: every selected role's, in name order, each once.
pub fn aggregate(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let rule = role.aggregation_rule.as_ref()?;
    let selectors = rule.cluster_role_selectors.clone().unwrap_or_default();
    let mut selected: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|r| r.metadata.name != role.metadata.name)
        .filter(|r| {
            selectors
                .iter()
                .any(|s| selector_matches(s, r.metadata.labels.as_ref()))
        })
        .collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for r in selected {
        for rule in r.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

impl Reconciler for AggregationController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(role) = self.roles.get("", &key) else {
                return Ok(Next::Done);
            };
            let Some(rules) = aggregate(&role, &self.roles.list_all()) else {
                return Ok(Next::Done);
            };
            if role.rules.clone().unwrap_or_default() == rules {
                return Ok(Next::Done);
            }
            let api: Api<ClusterRole> = Api::all(self.client.clone());
            let patch = serde_json::json!({"rules": rules});
            ignore_not_found(
                api.patch(&key, &PatchParams::default(), &Patch::Merge(&patch))
                    .await,
            )?;
            Ok(Next::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::AggregationRule;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn role(name: &str, label: Option<&str>, verbs: &[&str]) -> Arc<ClusterRole> {
        let mut r = ClusterRole::default();
        r.metadata.name = Some(name.into());
        if let Some(l) = label {
            r.metadata.labels = Some([(l.to_string(), "true".to_string())].into());
        }
        r.rules = Some(vec![PolicyRule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["pods".into()]),
            ..Default::default()
        }]);
        Arc::new(r)
    }

    #[test]
    fn aggregates_selected_rules_once_in_name_order() {
        let mut view = ClusterRole::default();
        view.metadata.name = Some("view".into());
        view.aggregation_rule = Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some([("agg".to_string(), "true".to_string())].into()),
                ..Default::default()
            }]),
        });
        let all = vec![
            role("b", Some("agg"), &["list"]),
            role("a", Some("agg"), &["get"]),
            role("c", None, &["delete"]),
            role("d", Some("agg"), &["get"]),
        ];
        let rules = aggregate(&view, &all).unwrap();
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, vec!["get", "list"]);
        assert!(aggregate(&ClusterRole::default(), &all).is_none());
    }
}
