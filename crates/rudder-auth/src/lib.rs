//! Who is making a request (authentication), and the seam where "may they do it"
//! (authorization) plugs in.
//!
//! Modelled on kube-apiserver's `pkg/authentication` and `pkg/authorization`: each
//! authenticator looks at one kind of credential and answers "not mine" (`Ok(None)`), "this
//! user" or "credentials present but invalid" (an error, which the server turns into 401).
//! [`UnionAuthenticator`] tries them in order and adds `system:authenticated`, exactly as the
//! upstream chain does, so RBAC bindings written for upstream clusters mean the same here.
//!
//! No async runtime and no HTTP server: authenticators are functions of a request's headers and
//! its TLS-verified peer certificates.

mod authn;
mod authz;
pub mod bootstrap;
mod csv;
pub mod node;
pub mod rbac;
pub mod serviceaccount;
mod tokenfile;
mod union;
pub mod user;
mod x509;

pub use authn::{bearer_token, AuthError, AuthRequest, Authenticator, TokenAuthenticator};
pub use authz::{
    AlwaysAllow, AlwaysDeny, Attributes, Authorizer, Decision, PrivilegedGroups, UnionAuthorizer,
};
pub use tokenfile::{TokenFileAuthenticator, TokenFileError};
pub use union::{add_authenticated_group, UnionAuthenticator};
pub use user::UserInfo;
pub use x509::X509Authenticator;
