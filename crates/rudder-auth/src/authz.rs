//! The authorizer seam; the shapes follow upstream's `authorizer.Attributes` and `Decision`.
//! RBAC is in [`crate::rbac`].

use crate::user::{UserInfo, SYSTEM_PRIVILEGED_GROUP};

/// What a request wants to do, in the terms RBAC rules are written in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`,
    /// or for non-resource requests the lowercased HTTP method.
    pub verb: String,
    /// `""` for the core group.
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    /// `""` for cluster-scoped resources and for lists across all namespaces.
    pub namespace: String,
    pub name: String,
    /// The URL path, which non-resource rules (`/healthz`, `/version`) match on.
    pub path: String,
    /// Whether this is a request for an API resource, as opposed to a non-resource URL.
    pub resource_request: bool,
}

/// An authorizer's answer. `NoOpinion` lets the next authorizer decide; if none allows, the
/// request is forbidden (403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the reason reported in the 403 message.
    Deny(String),
    NoOpinion,
    /// No opinion, with what the 403 should add if nobody allows (RBAC's unresolvable role
    /// references, the Node authorizer's missing relationship).
    NoOpinionBecause(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision;
}

impl<T: Authorizer + ?Sized> Authorizer for Box<T> {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        (**self).authorize(user, attrs)
    }
}

impl<T: Authorizer + ?Sized> Authorizer for std::sync::Arc<T> {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        (**self).authorize(user, attrs)
    }
}

/// Allows everything (`--authorization-mode=AlwaysAllow`): the default until RBAC exists.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &UserInfo, _: &Attributes) -> Decision {
        Decision::Allow
    }
}

/// Denies everything (`--authorization-mode=AlwaysDeny`); useful in tests of the 403 path.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysDeny;

impl Authorizer for AlwaysDeny {
    fn authorize(&self, _: &UserInfo, _: &Attributes) -> Decision {
        Decision::Deny("all requests are denied".to_owned())
    }
}

/// Allows everything to members of the given groups and has no opinion otherwise. Upstream
/// puts this first in the chain for `system:masters`, so the admin works before any RBAC
/// object exists and cannot be locked out by a bad binding.
#[derive(Clone, Debug)]
pub struct PrivilegedGroups {
    groups: Vec<String>,
}

impl PrivilegedGroups {
    pub fn new<I, S>(groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PrivilegedGroups {
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

impl Default for PrivilegedGroups {
    fn default() -> Self {
        PrivilegedGroups::new([SYSTEM_PRIVILEGED_GROUP])
    }
}

impl Authorizer for PrivilegedGroups {
    fn authorize(&self, user: &UserInfo, _: &Attributes) -> Decision {
        if self.groups.iter().any(|g| user.in_group(g)) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

/// Asks each authorizer in turn; the first `Allow` or `Deny` is the answer, and `NoOpinion`
/// if all abstain (upstream's `union` authorizer).
#[derive(Default)]
pub struct UnionAuthorizer {
    authorizers: Vec<Box<dyn Authorizer>>,
}

impl UnionAuthorizer {
    pub fn new(authorizers: Vec<Box<dyn Authorizer>>) -> Self {
        UnionAuthorizer { authorizers }
    }

    pub fn push(&mut self, authorizer: impl Authorizer + 'static) -> &mut Self {
        self.authorizers.push(Box::new(authorizer));
        self
    }
}

impl std::fmt::Debug for UnionAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionAuthorizer")
            .field("authorizers", &self.authorizers.len())
            .finish()
    }
}

impl Authorizer for UnionAuthorizer {
    fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        let mut reasons: Vec<String> = Vec::new();
        for a in &self.authorizers {
            match a.authorize(user, attrs) {
                Decision::NoOpinion => continue,
                Decision::NoOpinionBecause(r) => reasons.push(r),
                decided => return decided,
            }
        }
        // Upstream joins the reasons of the authorizers that abstained.
        if reasons.is_empty() {
            Decision::NoOpinion
        } else {
            Decision::NoOpinionBecause(reasons.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_pods() -> Attributes {
        Attributes {
            verb: "get".into(),
            api_version: "v1".into(),
            resource: "pods".into(),
            namespace: "default".into(),
            name: "web".into(),
            path: "/api/v1/namespaces/default/pods/web".into(),
            resource_request: true,
            ..Default::default()
        }
    }

    #[test]
    fn simple_authorizers() {
        let alice = UserInfo::new("alice");
        assert_eq!(AlwaysAllow.authorize(&alice, &get_pods()), Decision::Allow);
        assert!(matches!(
            AlwaysDeny.authorize(&alice, &get_pods()),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn privileged_groups_then_fallthrough() {
        let mut chain = UnionAuthorizer::default();
        chain.push(PrivilegedGroups::default());
        let admin = UserInfo::new("system:admin").with_groups(["system:masters"]);
        let alice = UserInfo::new("alice").with_groups(["dev"]);
        assert_eq!(chain.authorize(&admin, &get_pods()), Decision::Allow);
        assert_eq!(chain.authorize(&alice, &get_pods()), Decision::NoOpinion);
        chain.push(AlwaysDeny);
        chain.push(AlwaysAllow);
        assert!(matches!(
            chain.authorize(&alice, &get_pods()),
            Decision::Deny(_)
        ));
        assert_eq!(chain.authorize(&admin, &get_pods()), Decision::Allow);
    }
}
