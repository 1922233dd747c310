//! The RBAC objects in memory, indexed by subject, and the authorizer over them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{applies_to, rule_allows, PolicyRule, RoleRef, Subject};
use crate::authz::{Attributes, Authorizer, Decision};
use crate::user::UserInfo;

/// The four RBAC kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// The kind stored under `resource` of `rbac.authorization.k8s.io`.
    pub fn from_resource(resource: &str) -> Option<RbacKind> {
        Some(match resource {
            "roles" => RbacKind::Role,
            "clusterroles" => RbacKind::ClusterRole,
            "rolebindings" => RbacKind::RoleBinding,
            "clusterrolebindings" => RbacKind::ClusterRoleBinding,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Binding {
    role_ref: RoleRef,
}

/// The bindings of one namespace ("" for ClusterRoleBindings) by the users and groups they name.
#[derive(Default, Debug)]
struct SubjectIndex {
    users: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, BTreeSet<String>>,
}

/// One binding: what it grants and to whom.
type BindingEntry = (Arc<Binding>, Vec<Subject>);

/// Nested by namespace then name, so the per-request lookups borrow the request's strings
/// instead of building an owned `(String, String)` key for every binding visited.
type ByNamespace<T> = HashMap<String, HashMap<String, T>>;

#[derive(Default, Debug)]
struct Inner {
    roles: ByNamespace<Arc<Vec<PolicyRule>>>,
    cluster_roles: HashMap<String, Arc<Vec<PolicyRule>>>,
    /// ClusterRoleBindings under namespace "".
    bindings: ByNamespace<BindingEntry>,
    by_subject: HashMap<String, SubjectIndex>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn rules_of(obj: &Value) -> Vec<PolicyRule> {
    obj.get("rules")
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default()
}

/// Where a subject is indexed: a ServiceAccount by the user name it authenticates as.
enum SubjectKey {
    User(String),
    Group(String),
}

fn subject_key(s: &Subject, binding_ns: &str) -> Option<SubjectKey> {
    match s.kind.as_str() {
        "User" => Some(SubjectKey::User(s.name.clone())),
        "Group" => Some(SubjectKey::Group(s.name.clone())),
        "ServiceAccount" => {
            let ns = if s.namespace.is_empty() {
                binding_ns
            } else {
                &s.namespace
            };
            (!ns.is_empty()).then(|| SubjectKey::User(super::service_account_username(ns, &s.name)))
        }
        _ => None,
    }
}

impl Inner {
    fn unindex(&mut self, ns: &str, name: &str) {
        let Some(in_ns) = self.bindings.get_mut(ns) else {
            return;
        };
        let Some((_, subjects)) = in_ns.remove(name) else {
            return;
        };
        if in_ns.is_empty() {
            self.bindings.remove(ns);
        }
        let Some(idx) = self.by_subject.get_mut(ns) else {
            return;
        };
        for s in &subjects {
            let (map, key) = match subject_key(s, ns) {
                Some(SubjectKey::User(u)) => (&mut idx.users, u),
                Some(SubjectKey::Group(g)) => (&mut idx.groups, g),
                None => continue,
            };
            if let Some(set) = map.get_mut(&key) {
                set.remove(name);
                if set.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    fn index(&mut self, ns: &str, name: &str, role_ref: RoleRef, subjects: Vec<Subject>) {
        self.unindex(ns, name);
        let idx = self.by_subject.entry(ns.to_string()).or_default();
        for s in &subjects {
            let (map, key) = match subject_key(s, ns) {
                Some(SubjectKey::User(u)) => (&mut idx.users, u),
                Some(SubjectKey::Group(g)) => (&mut idx.groups, g),
                None => continue,
            };
            map.entry(key).or_default().insert(name.to_string());
        }
        self.bindings
            .entry(ns.to_string())
            .or_default()
            .insert(name.to_string(), (Arc::new(Binding { role_ref }), subjects));
    }

    /// The rules a role reference grants in `ns` ("" for a ClusterRoleBinding), or upstream's
    /// not-found message.
    fn role_rules(&self, role_ref: &RoleRef, ns: &str) -> Result<Arc<Vec<PolicyRule>>, String> {
        match role_ref.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .get(&role_ref.name)
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io \"{}\" not found",
                        role_ref.name
                    )
                }),
            "Role" if !ns.is_empty() => self
                .roles
                .get(ns)
                .and_then(|in_ns| in_ns.get(&role_ref.name))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "role.rbac.authorization.k8s.io \"{}\" not found",
                        role_ref.name
                    )
                }),
            kind => Err(format!("unsupported role reference kind: \"{kind}\"")),
        }
    }

    /// Visits the rules of every binding that applies to `user` in the cluster scope and then
    /// in `namespace`, as upstream's `VisitRulesFor`; stops when `visit` returns false.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(Result<&PolicyRule, String>) -> bool,
    ) {
        let scopes: &[&str] = if namespace.is_empty() {
            &[""]
        } else {
            &["", namespace]
        };
        for ns in scopes {
            let (Some(idx), Some(bindings)) = (self.by_subject.get(*ns), self.bindings.get(*ns))
            else {
                continue;
            };
            // The user's own bindings, then each group's; a binding naming several of them is
            // visited once (the earlier sets are asked, so no set of names is built per request).
            let set_at = |j: usize| match j {
                0 => idx.users.get(&user.name),
                j => user.groups.get(j - 1).and_then(|g| idx.groups.get(g)),
            };
            for j in 0..=user.groups.len() {
                let Some(set) = set_at(j) else { continue };
                for name in set {
                    if (0..j).any(|k| set_at(k).is_some_and(|s| s.contains(name))) {
                        continue;
                    }
                    let Some((binding, subjects)) = bindings.get(name) else {
                        continue;
                    };
                    // The index is by name; the check keeps upstream's matching the one truth.
                    if !subjects.iter().any(|s| applies_to(s, user, ns)) {
                        continue;
                    }
                    match self.role_rules(&binding.role_ref, ns) {
                        Ok(rules) => {
                            for r in rules.iter() {
                                if !visit(Ok(r)) {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            if !visit(Err(e)) {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Roles, ClusterRoles and bindings as the API server's watch cache holds them.
#[derive(Default, Debug)]
pub struct RbacIndex {
    inner: RwLock<Inner>,
}

impl RbacIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Add or replace an object.
    pub fn apply(&self, kind: RbacKind, obj: &Value) {
        let ns = str_at(obj, "/metadata/namespace").to_string();
        let name = str_at(obj, "/metadata/name").to_string();
        let mut inner = self.write();
        match kind {
            RbacKind::Role => {
                inner
                    .roles
                    .entry(ns)
                    .or_default()
                    .insert(name, Arc::new(rules_of(obj)));
            }
            RbacKind::ClusterRole => {
                inner.cluster_roles.insert(name, Arc::new(rules_of(obj)));
            }
            RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                let ns = if kind == RbacKind::ClusterRoleBinding {
                    String::new()
                } else {
                    ns
                };
                let role_ref = obj
                    .get("roleRef")
                    .and_then(|r| serde_json::from_value(r.clone()).ok())
                    .unwrap_or_default();
                let subjects = obj
                    .get("subjects")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .unwrap_or_default();
                inner.index(&ns, &name, role_ref, subjects);
            }
        }
    }

    /// Replace every object of `kind` (after a watch had to restart).
    pub fn replace(&self, kind: RbacKind, objects: &[Value]) {
        {
            let mut inner = self.write();
            match kind {
                RbacKind::Role => inner.roles.clear(),
                RbacKind::ClusterRole => inner.cluster_roles.clear(),
                RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
                    let cluster = kind == RbacKind::ClusterRoleBinding;
                    let keys: Vec<(String, String)> = inner
                        .bindings
                        .iter()
                        .filter(|(ns, _)| ns.is_empty() == cluster)
                        .flat_map(|(ns, in_ns)| in_ns.keys().map(|n| (ns.clone(), n.clone())))
                        .collect();
                    for (ns, name) in keys {
                        inner.unindex(&ns, &name);
                    }
                }
            }
        }
        for o in objects {
            self.apply(kind, o);
        }
    }

    /// Forget an object.
    pub fn remove(&self, kind: RbacKind, namespace: &str, name: &str) {
        let mut inner = self.write();
        match kind {
            RbacKind::Role => {
                if let Some(in_ns) = inner.roles.get_mut(namespace) {
                    in_ns.remove(name);
                    if in_ns.is_empty() {
                        inner.roles.remove(namespace);
                    }
                }
            }
            RbacKind::ClusterRole => {
                inner.cluster_roles.remove(name);
            }
            RbacKind::RoleBinding => inner.unindex(namespace, name),
            RbacKind::ClusterRoleBinding => inner.unindex("", name),
        }
    }

    /// Whether some rule granted to `user` allows the request, and the errors met resolving
    /// role references on the way (upstream reports them in the 403's reason).
    pub fn allows(&self, user: &UserInfo, attrs: &Attributes) -> (bool, Vec<String>) {
        let mut allowed = false;
        let mut errors = Vec::new();
        self.read().visit(user, &attrs.namespace, &mut |r| match r {
            Ok(rule) => {
                allowed = rule_allows(attrs, rule);
                !allowed
            }
            Err(e) => {
                errors.push(e);
                true
            }
        });
        (allowed, errors)
    }

    /// Every rule granted to `user` in `namespace` (cluster-wide ones included), and the errors
    /// met resolving role references (upstream's `RulesFor`).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.read().visit(user, namespace, &mut |r| {
            match r {
                Ok(rule) => rules.push(rule.clone()),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }

    /// The rules a binding in `namespace` ("" for a ClusterRoleBinding) to `role_ref` grants.
    pub fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        namespace: &str,
    ) -> Result<Vec<PolicyRule>, String> {
        self.read()
            .role_rules(role_ref, namespace)
            .map(|r| r.as_ref().clone())
    }

    /// The rules of a ClusterRole, if it exists.
    pub fn cluster_role_rules(&self, name: &str) -> Option<Vec<PolicyRule>> {
        self.read()
            .cluster_roles
            .get(name)
            .map(|r| r.as_ref().clone())
    }

    /// How many bindings are indexed (for benchmarks and tests).
    pub fn binding_count(&self) -> usize {
        self.read().bindings.values().map(HashMap::len).sum()
    }
}

/// The RBAC authorizer: allows what a rule bound to the user allows, and has no opinion
/// otherwise (upstream's `RBACAuthorizer`), so a later authorizer may still allow.
#[derive(Clone, Debug)]
pub struct RbacAuthorizer {
    index: Arc<RbacIndex>,
}

impl RbacAuthorizer {
    pub fn new(index: Arc<RbacIndex>) -> Self {
        RbacAuthorizer { index }
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        match self.index.allows(user, attrs) {
            (true, _) => Decision::Allow,
            (false, errors) if errors.is_empty() => Decision::NoOpinion,
            (false, errors) => Decision::NoOpinionBecause(format!("RBAC: {}", aggregate(&errors))),
        }
    }
}

/// Several errors as upstream's `utilerrors.NewAggregate` prints them.
pub(crate) fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods(verb: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: "pods".into(),
            namespace: ns.into(),
            name: name.into(),
            resource_request: true,
            ..Default::default()
        }
    }

    fn view_role() -> Value {
        json!({"metadata": {"name": "view"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]})
    }

    #[test]
    fn bindings_grant_and_revoke() {
        let idx = RbacIndex::new();
        idx.apply(RbacKind::ClusterRole, &view_role());
        let alice = UserInfo::new("alice").with_groups(["system:authenticated"]);
        assert!(!idx.allows(&alice, &pods("get", "default", "web")).0);
        idx.apply(
            RbacKind::RoleBinding,
            &json!({"metadata": {"name": "alice-view", "namespace": "default"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "User", "name": "alice"}]}),
        );
        assert!(idx.allows(&alice, &pods("get", "default", "web")).0);
        assert!(idx.allows(&alice, &pods("list", "default", "")).0);
        assert!(!idx.allows(&alice, &pods("delete", "default", "web")).0);
        assert!(!idx.allows(&alice, &pods("get", "other", "web")).0);
        assert!(!idx.allows(&alice, &pods("list", "", "")).0);
        idx.remove(RbacKind::RoleBinding, "default", "alice-view");
        assert!(!idx.allows(&alice, &pods("get", "default", "web")).0);
        assert_eq!(idx.binding_count(), 0);
    }

    #[test]
    fn cluster_bindings_groups_and_missing_roles() {
        let idx = RbacIndex::new();
        idx.apply(
            RbacKind::ClusterRoleBinding,
            &json!({"metadata": {"name": "devs"},
                    "roleRef": {"kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "Group", "name": "dev"}]}),
        );
        let bob = UserInfo::new("bob").with_groups(["dev"]);
        let (allowed, errors) = idx.allows(&bob, &pods("get", "any", "x"));
        assert!(!allowed);
        assert_eq!(
            errors,
            vec![r#"clusterrole.rbac.authorization.k8s.io "view" not found"#.to_string()]
        );
        idx.apply(RbacKind::ClusterRole, &view_role());
        assert!(idx.allows(&bob, &pods("get", "any", "x")).0);
        assert!(idx.allows(&bob, &pods("list", "", "")).0);
        // Replacing a binding re-indexes its subjects.
        idx.apply(
            RbacKind::ClusterRoleBinding,
            &json!({"metadata": {"name": "devs"},
                    "roleRef": {"kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "User", "name": "carol"}]}),
        );
        assert!(!idx.allows(&bob, &pods("get", "any", "x")).0);
        assert!(
            idx.allows(&UserInfo::new("carol"), &pods("get", "any", "x"))
                .0
        );
    }

    #[test]
    fn a_binding_naming_the_user_and_its_groups_is_visited_once() {
        let idx = RbacIndex::new();
        idx.apply(RbacKind::ClusterRole, &view_role());
        idx.apply(
            RbacKind::RoleBinding,
            &json!({"metadata": {"name": "both", "namespace": "default"},
                    "roleRef": {"kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "Group", "name": "dev"}, {"kind": "User", "name": "dana"},
                                 {"kind": "Group", "name": "ops"}]}),
        );
        let dana = UserInfo::new("dana").with_groups(["ops", "dev"]);
        assert_eq!(idx.rules_for(&dana, "default").0.len(), 1);
        let erin = UserInfo::new("erin").with_groups(["ops", "dev"]);
        assert_eq!(idx.rules_for(&erin, "default").0.len(), 1);
        // A ServiceAccount subject matches only its exact user name.
        idx.apply(
            RbacKind::RoleBinding,
            &json!({"metadata": {"name": "sa", "namespace": "ns1"},
                    "roleRef": {"kind": "ClusterRole", "name": "view"},
                    "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
        );
        let sa = |n: &str| UserInfo::new(n);
        assert_eq!(
            idx.rules_for(&sa("system:serviceaccount:ns1:app"), "ns1")
                .0
                .len(),
            1
        );
        assert!(idx
            .rules_for(&sa("system:serviceaccount:ns1:apps"), "ns1")
            .0
            .is_empty());
        assert!(idx
            .rules_for(&sa("system:serviceaccount:ns1app"), "ns1")
            .0
            .is_empty());
        idx.remove(RbacKind::RoleBinding, "ns1", "sa");
        idx.remove(RbacKind::RoleBinding, "default", "both");
        assert_eq!(idx.binding_count(), 0);
    }

    #[test]
    fn service_accounts_and_roles() {
        let idx = RbacIndex::new();
        idx.apply(
            RbacKind::Role,
            &json!({"metadata": {"name": "cfg", "namespace": "ns1"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get"]}]}),
        );
        idx.apply(
            RbacKind::RoleBinding,
            &json!({"metadata": {"name": "cfg", "namespace": "ns1"},
                    "roleRef": {"kind": "Role", "name": "cfg"},
                    "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
        );
        let sa = UserInfo::new("system:serviceaccount:ns1:default");
        let cm = |name: &str| Attributes {
            verb: "get".into(),
            resource: "configmaps".into(),
            namespace: "ns1".into(),
            name: name.into(),
            resource_request: true,
            ..Default::default()
        };
        assert!(idx.allows(&sa, &cm("app")).0);
        assert!(!idx.allows(&sa, &cm("other")).0);
        let (rules, errors) = idx.rules_for(&sa, "ns1");
        assert_eq!(rules.len(), 1);
        assert!(errors.is_empty());
        assert!(idx.rules_for(&sa, "ns2").0.is_empty());
    }
}
