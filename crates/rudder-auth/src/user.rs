//! The authenticated identity, and the well-known names upstream gives special meaning.

use std::collections::BTreeMap;

/// The user a request is made as; the fields of upstream's `user.Info`, which is also what
/// SubjectAccessReview, `kubectl auth whoami` and audit report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn new(name: impl Into<String>) -> Self {
        UserInfo {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The user of requests that carry no credentials, when anonymous access is enabled.
pub const ANONYMOUS: &str = "system:anonymous";
/// Added to every authenticated user, so RBAC can grant something to "anyone logged in".
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of [`ANONYMOUS`].
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// Members may do anything, without any RBAC binding (upstream's `SystemPrivilegedGroup`).
pub const SYSTEM_PRIVILEGED_GROUP: &str = "system:masters";
/// The `extra` key under which upstream records which credential authenticated a request
/// (for x509: `X509SHA256=<hex fingerprint>`), shown by `kubectl auth whoami` and in audit.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";
