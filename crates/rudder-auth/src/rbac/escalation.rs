//! Whether a set of rules covers another (upstream's `validation.Covers`), and the check that
//! a user grants no permission they do not hold (`ConfirmNoEscalation`).

use super::{has, PolicyRule, ALL};
use crate::user::UserInfo;

/// One rule per (group, resource, verb, name) and per (URL, verb) (upstream's `BreakdownRule`).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    verbs: one(verb),
                    api_groups: one(group),
                    resources: one(resource),
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(n),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

fn resource_covers_all(set: &[String], wanted: &[String]) -> bool {
    if has(set, ALL) || has_all(set, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        has(set, path)
            || path
                .split_once('/')
                .is_some_and(|(_, sub)| has(set, &format!("*/{sub}")))
    })
}

fn non_resource_urls_cover_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|path| {
        set.iter().any(|owner| {
            owner == path
                || owner
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
        })
    })
}

fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, ALL) || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, ALL) || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resource_covers_all(&owner.resources, &sub.resources);
    let urls = non_resource_urls_cover_all(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && names && urls
}

/// Whether `owner` covers every permission in `servant`, and the simple rules it does not.
pub fn covers(owner: &[PolicyRule], servant: &[PolicyRule]) -> (bool, Vec<PolicyRule>) {
    let uncovered: Vec<PolicyRule> = servant
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner.iter().any(|o| rule_covers(o, sub)))
        .collect();
    (uncovered.is_empty(), uncovered)
}

/// Merges simple resource rules that differ only in their verb (upstream's `CompactRules`).
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    for r in rules {
        let simple = r.api_groups.len() == 1
            && r.resources.len() == 1
            && r.non_resource_urls.is_empty()
            && r.resource_names.len() <= 1;
        if simple {
            if let Some(existing) = out.iter_mut().find(|o| {
                o.api_groups == r.api_groups
                    && o.resources == r.resources
                    && o.resource_names == r.resource_names
                    && o.non_resource_urls.is_empty()
            }) {
                for v in r.verbs {
                    if !existing.verbs.contains(&v) {
                        existing.verbs.push(v);
                    }
                }
                continue;
            }
        }
        out.push(r);
    }
    out
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", items.join(" "))
}

/// A rule as upstream's `PolicyRule.CompactString` prints it.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    if !r.api_groups.is_empty() {
        parts.push(format!("APIGroups:{}", go_quoted(&r.api_groups)));
    }
    if !r.resources.is_empty() {
        parts.push(format!("Resources:{}", go_quoted(&r.resources)));
    }
    if !r.non_resource_urls.is_empty() {
        parts.push(format!(
            "NonResourceURLs:{}",
            go_quoted(&r.non_resource_urls)
        ));
    }
    if !r.resource_names.is_empty() {
        parts.push(format!("ResourceNames:{}", go_quoted(&r.resource_names)));
    }
    if !r.verbs.is_empty() {
        parts.push(format!("Verbs:{}", go_quoted(&r.verbs)));
    }
    format!("{{{}}}", parts.join(", "))
}

/// `Ok` when `owner_rules` (what `user` holds where the object applies) cover `rules`;
/// otherwise upstream's message listing what is missing.
pub fn confirm_no_escalation(
    user: &UserInfo,
    owner_rules: &[PolicyRule],
    resolution_errors: &[String],
    rules: &[PolicyRule],
) -> Result<(), String> {
    let (ok, missing) = covers(owner_rules, rules);
    if ok {
        return Ok(());
    }
    let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user \"{}\" (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        go_quoted(&user.groups),
        lines.join("\n")
    );
    if !resolution_errors.is_empty() {
        msg.push_str(&format!(
            "; resolution errors: [{}]",
            resolution_errors.join(" ")
        ));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn coverage() {
        let admin = vec![rule(&["*"], &["*"], &["*"], &[])];
        let view = vec![rule(&["get", "list"], &[""], &["pods", "pods/log"], &[])];
        assert!(covers(&admin, &view).0);
        assert!(covers(&view, &[rule(&["get"], &[""], &["pods"], &["web"])]).0);
        let (ok, missing) = covers(&view, &[rule(&["get", "delete"], &[""], &["pods"], &[])]);
        assert!(!ok);
        assert_eq!(missing, vec![rule(&["delete"], &[""], &["pods"], &[])]);
        // A named grant does not cover an unnamed one.
        let named = vec![rule(&["get"], &[""], &["pods"], &["web"])];
        assert!(!covers(&named, &[rule(&["get"], &[""], &["pods"], &[])]).0);
        let status = vec![rule(&["update"], &["apps"], &["*/status"], &[])];
        assert!(
            covers(
                &status,
                &[rule(&["update"], &["apps"], &["deployments/status"], &[])]
            )
            .0
        );
        let urls = vec![PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/*".into()],
            ..Default::default()
        }];
        let want = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/apis/apps".into()],
            ..Default::default()
        };
        assert!(covers(&urls, &[want]).0);
    }

    #[test]
    fn message_as_upstream() {
        let user = UserInfo::new("alice").with_groups(["system:authenticated"]);
        let owner = vec![rule(&["get"], &[""], &["pods"], &[])];
        let err = confirm_no_escalation(
            &user,
            &owner,
            &[],
            &[rule(
                &["get", "delete", "list"],
                &[""],
                &["pods", "secrets"],
                &[],
            )],
        )
        .unwrap_err();
        assert_eq!(
            err,
            "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC \
             permissions not currently held:\n\
             {APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\" \"list\"]}\n\
             {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\" \"list\"]}"
        );
    }
}
