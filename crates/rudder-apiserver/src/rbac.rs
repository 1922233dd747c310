//! RBAC and the Node authorizer in the API server: their indexes follow the watch cache, and writes of roles
//! and bindings are checked for privilege escalation (upstream's `policybased` storages in
//! `pkg/registry/rbac`).

use std::sync::Arc;
use std::time::Duration;

use rudder_api::status::{ApiError, GroupResource};
use rudder_auth::node::NodeGraph;
use rudder_auth::rbac::{self, RbacIndex, RbacKind, RoleRef};
use rudder_auth::{Attributes, Authorizer, UserInfo};
use rudder_registry::{object, EventKind, GenericStore, WatchFrom};
use serde_json::Value;

const KINDS: [(&str, RbacKind); 4] = [
    ("roles", RbacKind::Role),
    ("clusterroles", RbacKind::ClusterRole),
    ("rolebindings", RbacKind::RoleBinding),
    ("clusterrolebindings", RbacKind::ClusterRoleBinding),
];

/// Load every Role, ClusterRole and binding into `index` and keep it current. Returns once the
/// index holds what the cache holds now, so the first request is authorized against it.
pub async fn follow(gs: &GenericStore, index: Arc<RbacIndex>) -> Result<(), ApiError> {
    for (resource, kind) in KINDS {
        let (reset, change) = (index.clone(), index.clone());
        follow_resource(
            gs,
            rbac::GROUP,
            resource,
            move |objs| reset.replace(kind, objs),
            move |ev, obj| match ev {
                EventKind::Added | EventKind::Modified => change.apply(kind, obj),
                EventKind::Deleted => {
                    change.remove(kind, object::namespace(obj), object::name(obj))
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Feed the Node authorizer's graph from the pods and claims in the watch cache.
pub async fn follow_node_graph(gs: &GenericStore, graph: Arc<NodeGraph>) -> Result<(), ApiError> {
    let (reset, change) = (graph.clone(), graph.clone());
    follow_resource(
        gs,
        "",
        "pods",
        move |objs| {
            reset.clear_pods();
            objs.iter().for_each(|p| reset.apply_pod(p));
        },
        move |ev, obj| match ev {
            EventKind::Deleted => change.remove_pod(object::namespace(obj), object::name(obj)),
            _ => change.apply_pod(obj),
        },
    )
    .await?;
    let (reset, change) = (graph.clone(), graph);
    follow_resource(
        gs,
        "",
        "persistentvolumeclaims",
        move |objs| {
            reset.clear_claims();
            objs.iter().for_each(|c| reset.apply_claim(c));
        },
        move |ev, obj| match ev {
            EventKind::Deleted => change.remove_claim(object::namespace(obj), object::name(obj)),
            _ => change.apply_claim(obj),
        },
    )
    .await
}

/// Calls `reset` with every object of a resource now, then `change` with each later event, in
/// a task; a watch that closes (its follower fell behind) starts over with `reset`.
async fn follow_resource(
    gs: &GenericStore,
    group: &str,
    resource: &'static str,
    reset: impl Fn(&[Value]) + Send + 'static,
    change: impl Fn(EventKind, &Value) + Send + 'static,
) -> Result<(), ApiError> {
    let entry = gs
        .registry
        .get(group, "v1", resource)
        .ok_or_else(|| ApiError::internal_error(format!("{resource} are not registered")))?;
    let watch = gs.watch(&entry, None, WatchFrom::Now).await?;
    let initial: Vec<Value> = watch.initial.iter().map(|e| e.object.value()).collect();
    reset(&initial);
    let cache = gs.cache.clone();
    let (prefix, key_prefix) = (entry.prefix.clone(), entry.list_prefix(None));
    tokio::spawn(async move {
        let mut watch = watch;
        loop {
            while let Some(ev) = watch.live.recv().await {
                change(ev.kind, &ev.object.value());
            }
            loop {
                match cache.watch(&prefix, &key_prefix, WatchFrom::Now).await {
                    Ok(w) => {
                        let objs: Vec<Value> = w.initial.iter().map(|e| e.object.value()).collect();
                        reset(&objs);
                        watch = w;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, resource, "authorizer watch failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    });
    Ok(())
}

/// Upstream's `EscalationAllowed`: system:masters (and the API server itself) write any role.
fn escalation_allowed(user: &UserInfo) -> bool {
    user.in_group(rudder_auth::user::SYSTEM_PRIVILEGED_GROUP)
}

fn rbac_attrs(verb: &str, resource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes {
        verb: verb.into(),
        api_group: rbac::GROUP.into(),
        api_version: "*".into(),
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        resource_request: true,
        ..Default::default()
    }
}

fn rules_of(obj: &Value) -> Vec<rbac::PolicyRule> {
    obj.get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

fn role_ref_of(obj: &Value) -> RoleRef {
    obj.get("roleRef")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

/// The escalation check of a write of `new` (replacing `old`) to an RBAC resource: a user may
/// only write a role granting what they hold (or with `escalate` on it), and a binding to a
/// role whose permissions they hold (or with `bind` on it).
pub fn check_escalation(
    index: &RbacIndex,
    authz: &dyn Authorizer,
    user: &UserInfo,
    resource: &str,
    namespace: &str,
    new: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(kind) = RbacKind::from_resource(resource) else {
        return Ok(());
    };
    if escalation_allowed(user) {
        return Ok(());
    }
    let name = rudder_registry::object::name(new);
    let gr = GroupResource::new(rbac::GROUP, resource);
    let forbidden = |msg: String| ApiError::forbidden(&gr, name, msg);
    match kind {
        RbacKind::Role | RbacKind::ClusterRole => {
            let rules = rules_of(new);
            let aggregation = new.get("aggregationRule").is_some_and(|a| !a.is_null());
            // Only the fields the garbage collector writes changing is no escalation.
            if old.is_some_and(|o| {
                rules_of(o) == rules && o.get("aggregationRule") == new.get("aggregationRule")
            }) {
                return Ok(());
            }
            if authz
                .authorize(user, &rbac_attrs("escalate", resource, namespace, name))
                .allowed()
            {
                return Ok(());
            }
            let (owner, errors) = index.rules_for(user, namespace);
            rbac::confirm_no_escalation(user, &owner, &errors, &rules).map_err(forbidden)?;
            if aggregation && kind == RbacKind::ClusterRole {
                let full = vec![
                    rbac::PolicyRule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Default::default()
                    },
                    rbac::PolicyRule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Default::default()
                    },
                ];
                rbac::confirm_no_escalation(user, &owner, &errors, &full).map_err(|_| {
                    forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    )
                })?;
            }
            Ok(())
        }
        RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
            let role_ref = role_ref_of(new);
            if old.is_some_and(|o| role_ref_of(o) == role_ref) {
                return Ok(());
            }
            let role_resource = if role_ref.kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            // Upstream's `BindingAuthorized`: `bind` on the referenced role.
            if authz
                .authorize(
                    user,
                    &rbac_attrs("bind", role_resource, namespace, &role_ref.name),
                )
                .allowed()
            {
                return Ok(());
            }
            let rules = index.role_ref_rules(&role_ref, namespace).map_err(|_| {
                ApiError::not_found(
                    &GroupResource::new(rbac::GROUP, role_resource),
                    &role_ref.name,
                )
            })?;
            let (owner, errors) = index.rules_for(user, namespace);
            rbac::confirm_no_escalation(user, &owner, &errors, &rules).map_err(forbidden)
        }
    }
}
