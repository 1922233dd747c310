//! Impersonation (`Impersonate-User`, `-Group`, `-Uid`, `-Extra-<key>` headers; `kubectl --as`),
//! as upstream's `WithImpersonation` filter: each requested identity needs the `impersonate`
//! verb on `users`, `groups`, `serviceaccounts`, `uids` or `userextras`, and the request then
//! proceeds as the impersonated user.

use http::HeaderMap;
use rudder_api::status::{ApiError, GroupResource};
use rudder_auth::{Attributes, Authorizer, Decision, UserInfo};

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";
const SA_PREFIX: &str = "system:serviceaccount:";

/// Whether the request asks to impersonate anyone.
pub fn requested(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

/// Remove the impersonation headers (upstream does, so nothing downstream acts on them).
pub fn strip(headers: &mut HeaderMap) {
    let keys: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("impersonate-"))
        .cloned()
        .collect();
    for k in keys {
        headers.remove(k);
    }
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Percent-decoding of an extra key (its header name is escaped, as client-go writes it).
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn attrs(group: &str, resource: &str, subresource: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        verb: "impersonate".into(),
        api_group: group.into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: ns.into(),
        name: name.into(),
        resource_request: true,
        ..Default::default()
    }
}

fn forbidden(requestor: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let mut resource = a.resource.clone();
    if !a.subresource.is_empty() {
        resource = format!("{resource}/{}", a.subresource);
    }
    let mut msg = if a.namespace.is_empty() {
        format!(
            "User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{}\" at the cluster scope",
            requestor.name, a.api_group
        )
    } else {
        format!(
            "User \"{}\" cannot impersonate resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
            requestor.name, a.api_group, a.namespace
        )
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    ApiError::forbidden(
        &GroupResource::new(a.api_group.clone(), a.resource.clone()),
        &a.name,
        msg,
    )
}

/// The user a request acts as: `requestor` itself, or whom its headers impersonate if
/// `requestor` may; a refusal is upstream's 403 (500 for groups without a user, as upstream).
pub fn impersonate(
    authz: &dyn Authorizer,
    requestor: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let user = values(headers, USER);
    let groups: Vec<String> = values(headers, GROUP)
        .iter()
        .map(|s| s.to_string())
        .collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX) {
            if let Ok(v) = v.to_str() {
                extra.entry(unescape(key)).or_default().push(v.to_string());
            }
        }
    }
    let Some(username) = user.first().map(|s| s.to_string()) else {
        return Err(ApiError::internal_error(format!(
            "requested impersonation of groups {groups:?}, uid {uid:?} or extras {:?} without impersonating a user",
            extra.keys().collect::<Vec<_>>()
        )));
    };
    let mut checks = Vec::new();
    let mut groups_out = groups.clone();
    if let Some((ns, name)) = username
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'))
    {
        checks.push(attrs("", "serviceaccounts", "", ns, name));
        if groups.is_empty() {
            groups_out = vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
    } else {
        checks.push(attrs("", "users", "", "", &username));
    }
    for g in &groups {
        checks.push(attrs("", "groups", "", "", g));
    }
    if let Some(u) = &uid {
        checks.push(attrs("authentication.k8s.io", "uids", "", "", u));
    }
    for (k, vs) in &extra {
        for v in vs {
            checks.push(attrs("authentication.k8s.io", "userextras", k, "", v));
        }
    }
    for a in &checks {
        match authz.authorize(requestor, a) {
            Decision::Allow => {}
            Decision::NoOpinion => return Err(forbidden(requestor, a, "")),
            Decision::Deny(r) | Decision::NoOpinionBecause(r) => {
                return Err(forbidden(requestor, a, &r))
            }
        }
    }
    // Upstream adds system:authenticated unless a group says otherwise.
    if username == rudder_auth::user::ANONYMOUS {
        if !groups_out
            .iter()
            .any(|g| g == rudder_auth::user::ALL_UNAUTHENTICATED)
        {
            groups_out.push(rudder_auth::user::ALL_UNAUTHENTICATED.to_string());
        }
    } else if !groups_out.iter().any(|g| {
        g == rudder_auth::user::ALL_AUTHENTICATED || g == rudder_auth::user::ALL_UNAUTHENTICATED
    }) {
        groups_out.push(rudder_auth::user::ALL_AUTHENTICATED.to_string());
    }
    Ok(UserInfo {
        name: username,
        uid: uid.unwrap_or_default(),
        groups: groups_out,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_auth::{AlwaysAllow, PrivilegedGroups};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn admins_impersonate_and_others_are_refused() {
        let admin = UserInfo::new("admin").with_groups(["system:masters"]);
        let h = headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Extra-Scopes%2Fone", "x"),
        ]);
        let u = impersonate(&PrivilegedGroups::default(), &admin, &h).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["devs", "system:authenticated"]);
        assert_eq!(u.extra.get("scopes/one"), Some(&vec!["x".to_string()]));
        let bob = UserInfo::new("bob");
        let err = impersonate(&PrivilegedGroups::default(), &bob, &h).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "users \"alice\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let sa = impersonate(
            &AlwaysAllow,
            &bob,
            &headers(&[("Impersonate-User", "system:serviceaccount:ns1:app")]),
        )
        .unwrap();
        assert_eq!(
            sa.groups,
            vec![
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
        let err =
            impersonate(&AlwaysAllow, &bob, &headers(&[("Impersonate-Group", "g")])).unwrap_err();
        assert_eq!(err.code, 500);
    }
}
