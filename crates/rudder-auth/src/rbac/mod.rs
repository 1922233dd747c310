//! RBAC (`rbac.authorization.k8s.io/v1`): rule matching, the subject index over Roles,
//! ClusterRoles and their bindings, the authorizer, rule enumeration for
//! SelfSubjectRulesReview, and the escalation check, with upstream's semantics
//! (`plugin/pkg/auth/authorizer/rbac` and `pkg/registry/rbac/validation`).
//!
//! The index is fed object by object (the API server follows its watch cache) and answers a
//! request by looking up only the bindings naming the user or one of its groups, so its cost
//! does not grow with the number of bindings in the cluster.

pub mod bootstrap;
mod escalation;
mod index;

use serde::{Deserialize, Serialize};

use crate::authz::Attributes;
use crate::user::UserInfo;

pub use escalation::{compact_string, confirm_no_escalation, covers};
pub use index::{RbacAuthorizer, RbacIndex, RbacKind};

pub const GROUP: &str = "rbac.authorization.k8s.io";
const ALL: &str = "*";

/// One rule of a Role or ClusterRole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub verbs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// `resource` or `resource/subresource`; `*` matches everything and `*/sub` a subresource of
/// any resource (upstream's `ResourceMatches`).
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        if subresource.is_empty() {
            return r == resource;
        }
        r.strip_suffix(subresource)
            .and_then(|p| p.strip_suffix('/'))
            .is_some_and(|p| p == resource || p == ALL)
    })
}

fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    rule.resource_names.is_empty() || has(&rule.resource_names, name)
}

/// An exact path, `*`, or a prefix ending in `*` (upstream's `NonResourceURLMatches`).
fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().any(|u| {
        u == ALL
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// Whether `rule` allows the request (upstream's `RuleAllows`).
pub fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    if attrs.resource_request {
        verb_matches(rule, &attrs.verb)
            && api_group_matches(rule, &attrs.api_group)
            && resource_matches(rule, &attrs.resource, &attrs.subresource)
            && resource_name_matches(rule, &attrs.name)
    } else {
        verb_matches(rule, &attrs.verb) && non_resource_url_matches(rule, &attrs.path)
    }
}

/// The user name a service account authenticates as.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Whether a binding's subject names `user`; a ServiceAccount subject without a namespace is
/// in the binding's own (upstream's `appliesToUser`).
pub fn applies_to(subject: &Subject, user: &UserInfo, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = if subject.namespace.is_empty() {
                binding_namespace
            } else {
                &subject.namespace
            };
            // Compared piecewise: this runs for every binding on every request.
            !ns.is_empty()
                && user
                    .name
                    .strip_prefix("system:serviceaccount:")
                    .and_then(|rest| rest.strip_prefix(ns))
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(subject.name.as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: groups.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            namespace: "default".into(),
            resource_request: true,
            ..Default::default()
        }
    }

    #[test]
    fn resource_rules() {
        let r = rule(&["get", "list"], &[""], &["pods", "pods/log"]);
        assert!(rule_allows(&req("get", "", "pods", "", "web"), &r));
        assert!(rule_allows(&req("get", "", "pods", "log", "web"), &r));
        assert!(!rule_allows(&req("get", "", "pods", "exec", "web"), &r));
        assert!(!rule_allows(&req("delete", "", "pods", "", "web"), &r));
        assert!(!rule_allows(&req("get", "apps", "pods", "", "web"), &r));
        let any_status = rule(&["update"], &["*"], &["*/status"]);
        assert!(rule_allows(
            &req("update", "apps", "deployments", "status", "d"),
            &any_status
        ));
        assert!(!rule_allows(
            &req("update", "apps", "deployments", "", "d"),
            &any_status
        ));
        let all = rule(&["*"], &["*"], &["*"]);
        assert!(rule_allows(&req("escalate", "x", "y", "z", ""), &all));
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named.resource_names = vec!["cfg".into()];
        assert!(rule_allows(
            &req("get", "", "configmaps", "", "cfg"),
            &named
        ));
        assert!(!rule_allows(
            &req("get", "", "configmaps", "", "other"),
            &named
        ));
        // A list has no name, so a named rule does not allow it.
        assert!(!rule_allows(&req("get", "", "configmaps", "", ""), &named));
    }

    #[test]
    fn non_resource_rules() {
        let r = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz".into(), "/apis/*".into()],
            ..Default::default()
        };
        let at = |path: &str| Attributes {
            verb: "get".into(),
            path: path.into(),
            ..Default::default()
        };
        assert!(rule_allows(&at("/healthz"), &r));
        assert!(rule_allows(&at("/apis/apps/v1"), &r));
        assert!(!rule_allows(&at("/apis"), &r));
        assert!(!rule_allows(&at("/healthz/etcd"), &r));
        // Resource rules never match a non-resource request and the other way round.
        assert!(!rule_allows(&at("/api"), &rule(&["*"], &["*"], &["*"])));
        assert!(!rule_allows(&req("get", "", "pods", "", ""), &r));
    }

    #[test]
    fn subjects() {
        let sa = UserInfo::new("system:serviceaccount:ns1:builder")
            .with_groups(["system:serviceaccounts", "system:serviceaccounts:ns1"]);
        let s = |kind: &str, name: &str, ns: &str| Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        };
        assert!(applies_to(&s("ServiceAccount", "builder", "ns1"), &sa, ""));
        assert!(applies_to(&s("ServiceAccount", "builder", ""), &sa, "ns1"));
        assert!(!applies_to(&s("ServiceAccount", "builder", ""), &sa, "ns2"));
        assert!(applies_to(
            &s("Group", "system:serviceaccounts:ns1", ""),
            &sa,
            ""
        ));
        assert!(!applies_to(&s("User", "builder", ""), &sa, ""));
    }
}
