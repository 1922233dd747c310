//! Trying several authenticators in turn.

use crate::authn::{AuthError, AuthRequest, Authenticator};
use crate::user::{UserInfo, ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS};

/// The API server's authenticator chain: the first authenticator to return a user wins; if
/// none does, the errors of those that saw invalid credentials are returned together (401),
/// and if none saw any credentials the result is `Ok(None)` (anonymous, or 401 when anonymous
/// access is off). Like upstream's union, an error does not stop the chain: a request with a
/// valid client certificate and a stale token still authenticates.
///
/// Every user it returns is in `system:authenticated` (see [`add_authenticated_group`]), as
/// upstream wraps its chain in `AuthenticatedGroupAdder`.
#[derive(Default)]
pub struct UnionAuthenticator {
    authenticators: Vec<Box<dyn Authenticator>>,
}

impl UnionAuthenticator {
    pub fn new(authenticators: Vec<Box<dyn Authenticator>>) -> Self {
        UnionAuthenticator { authenticators }
    }

    pub fn push(&mut self, authenticator: impl Authenticator + 'static) -> &mut Self {
        self.authenticators.push(Box::new(authenticator));
        self
    }
}

impl std::fmt::Debug for UnionAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnionAuthenticator")
            .field("authenticators", &self.authenticators.len())
            .finish()
    }
}

impl Authenticator for UnionAuthenticator {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        let mut errors = Vec::new();
        for a in &self.authenticators {
            match a.authenticate(req) {
                Ok(Some(user)) => return Ok(Some(add_authenticated_group(user))),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Ok(None),
            1 => Err(errors.remove(0)),
            _ => Err(AuthError::Aggregate(errors)),
        }
    }
}

/// Adds `system:authenticated` to `user`'s groups, unless the user is `system:anonymous` or
/// already in `system:authenticated` or `system:unauthenticated` (upstream's
/// `AuthenticatedGroupAdder` rules).
pub fn add_authenticated_group(mut user: UserInfo) -> UserInfo {
    if user.name == ANONYMOUS
        || user
            .groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
    {
        return user;
    }
    user.groups.push(ALL_AUTHENTICATED.to_owned());
    user
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    struct Fixed(Result<Option<UserInfo>, AuthError>);
    impl Authenticator for Fixed {
        fn authenticate(&self, _: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
            self.0.clone()
        }
    }

    fn run(chain: Vec<Result<Option<UserInfo>, AuthError>>) -> Result<Option<UserInfo>, AuthError> {
        let union = UnionAuthenticator::new(
            chain
                .into_iter()
                .map(|r| Box::new(Fixed(r)) as Box<dyn Authenticator>)
                .collect(),
        );
        let h = HeaderMap::new();
        union.authenticate(&AuthRequest::new(&h))
    }

    #[test]
    fn first_success_wins_even_after_errors() {
        let got = run(vec![
            Ok(None),
            Err(AuthError::InvalidBearerToken),
            Ok(Some(UserInfo::new("alice").with_groups(["dev"]))),
            Ok(Some(UserInfo::new("bob"))),
        ]);
        assert_eq!(
            got,
            Ok(Some(
                UserInfo::new("alice").with_groups(["dev", "system:authenticated"])
            ))
        );
    }

    #[test]
    fn errors_are_aggregated_when_nobody_succeeds() {
        assert_eq!(run(vec![]), Ok(None));
        assert_eq!(run(vec![Ok(None), Ok(None)]), Ok(None));
        assert_eq!(
            run(vec![Ok(None), Err(AuthError::InvalidBearerToken)]),
            Err(AuthError::InvalidBearerToken)
        );
        let both = run(vec![
            Err(AuthError::InvalidCertificate("bad".into())),
            Err(AuthError::InvalidBearerToken),
        ]);
        assert_eq!(
            both,
            Err(AuthError::Aggregate(vec![
                AuthError::InvalidCertificate("bad".into()),
                AuthError::InvalidBearerToken
            ]))
        );
    }

    #[test]
    fn authenticated_group_rules() {
        let add = |name: &str, groups: &[&str]| {
            add_authenticated_group(UserInfo::new(name).with_groups(groups.iter().copied())).groups
        };
        assert_eq!(add("alice", &[]), ["system:authenticated"]);
        assert_eq!(add("alice", &["a"]), ["a", "system:authenticated"]);
        assert_eq!(
            add("alice", &["system:authenticated"]),
            ["system:authenticated"]
        );
        assert_eq!(
            add("alice", &["system:unauthenticated"]),
            ["system:unauthenticated"]
        );
        assert_eq!(add("system:anonymous", &[]), Vec::<String>::new());
    }
}
