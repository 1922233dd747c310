//! Upstream's `kubernetes.authz` library (`k8s.io/apiserver/pkg/cel/library/authz.go`): the
//! `authorizer` variable of admission policies asks the server's authorizer whether the
//! requesting user (or a service account) may do something.
//!
//! ```text
//! authorizer.group('apps').resource('deployments').namespace('ns').name('x').check('delete').allowed()
//! authorizer.path('/healthz').check('get').reason()
//! authorizer.serviceAccount('ns', 'sa').group('').resource('pods').check('list').allowed()
//! authorizer.requestResource.subresource('status').check('update').allowed()
//! ```
//!
//! The checks go through the [`Authorizer`] the caller binds with
//! [`Vars::with_authorizer`](crate::Vars::with_authorizer): this crate does no I/O and knows no
//! users; the API server answers with its authorizer chain.

use std::any::Any;
use std::sync::Arc;

use cel::common::types::{CelBool, CelString, Type, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

use super::{args, owned, string};

/// Who a check is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The user making the request being admitted.
    Requester,
    /// `authorizer.serviceAccount(namespace, name)`.
    ServiceAccount { namespace: String, name: String },
}

/// What a check asks about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceAttributes {
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// As written in `fieldSelector(..)` / `labelSelector(..)`; parsed by the authorizer.
    pub field_selector: String,
    pub label_selector: String,
}

/// One authorization question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A non-resource URL path (`authorizer.path(..)`).
    Path(String),
    Resource(ResourceAttributes),
}

/// The answer: upstream's `authorizer.Decision` with its reason and error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    pub error: Option<String>,
}

/// What the `authorizer` variable asks: implemented by the API server.
pub trait Authorizer: Send + Sync {
    fn authorize(&self, subject: &Subject, verb: &str, target: &Target) -> Decision;
}

static AUTHORIZER_TYPE: Type = Type::new_unspecified_type("kubernetes.authorization.Authorizer");
static PATH_CHECK_TYPE: Type = Type::new_unspecified_type("kubernetes.authorization.PathCheck");
static GROUP_CHECK_TYPE: Type = Type::new_unspecified_type("kubernetes.authorization.GroupCheck");
static RESOURCE_CHECK_TYPE: Type =
    Type::new_unspecified_type("kubernetes.authorization.ResourceCheck");
static DECISION_TYPE: Type = Type::new_unspecified_type("kubernetes.authorization.Decision");

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    for t in [
        &AUTHORIZER_TYPE,
        &PATH_CHECK_TYPE,
        &GROUP_CHECK_TYPE,
        &RESOURCE_CHECK_TYPE,
        &DECISION_TYPE,
    ] {
        env.add_type(t.to_owned())?;
    }
    type F = cel::common::functions::Function;
    let one_string: [(&str, &Type, F); 9] = [
        ("path", &AUTHORIZER_TYPE, authorizer_path),
        ("group", &AUTHORIZER_TYPE, authorizer_group),
        ("resource", &GROUP_CHECK_TYPE, group_resource),
        ("subresource", &RESOURCE_CHECK_TYPE, resource_subresource),
        ("namespace", &RESOURCE_CHECK_TYPE, resource_namespace),
        ("name", &RESOURCE_CHECK_TYPE, resource_name),
        (
            "fieldSelector",
            &RESOURCE_CHECK_TYPE,
            resource_field_selector,
        ),
        (
            "labelSelector",
            &RESOURCE_CHECK_TYPE,
            resource_label_selector,
        ),
        ("check", &PATH_CHECK_TYPE, path_check),
    ];
    for (name, target, f) in one_string {
        let id = format!("{}_{name}", target.name());
        env.add_member_overload(name, &id, target.to_owned(), vec![STRING_TYPE], f)?;
    }
    env.add_member_overload(
        "check",
        "resourcecheck_check",
        RESOURCE_CHECK_TYPE.to_owned(),
        vec![STRING_TYPE],
        resource_check,
    )?;
    env.add_member_overload(
        "serviceAccount",
        "authorizer_serviceaccount",
        AUTHORIZER_TYPE.to_owned(),
        vec![STRING_TYPE, STRING_TYPE],
        authorizer_service_account,
    )?;
    let decision: [(&str, F); 4] = [
        ("allowed", decision_allowed),
        ("reason", decision_reason),
        ("errored", decision_errored),
        ("error", decision_error),
    ];
    for (name, f) in decision {
        let id = format!("decision_{name}");
        env.add_member_overload(name, &id, DECISION_TYPE.to_owned(), vec![], f)?;
    }
    Ok(())
}

/// The authorizer and whom it checks for.
#[derive(Clone)]
struct Principal {
    authz: Arc<dyn Authorizer>,
    subject: Subject,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.subject)
    }
}

impl PartialEq for Principal {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.authz, &other.authz) && self.subject == other.subject
    }
}

/// The `authorizer` variable.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizerVal {
    principal: Principal,
    /// `authorizer.requestResource`: the resource of the request being admitted.
    request: Option<ResourceAttributes>,
}

impl AuthorizerVal {
    /// The `authorizer` of a request by the requesting user; `request` is what
    /// `authorizer.requestResource` checks.
    pub fn new(authz: Arc<dyn Authorizer>, request: Option<ResourceAttributes>) -> AuthorizerVal {
        AuthorizerVal {
            principal: Principal {
                authz,
                subject: Subject::Requester,
            },
            request,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct PathCheck {
    principal: Principal,
    path: String,
}

#[derive(Clone, Debug, PartialEq)]
struct GroupCheck {
    principal: Principal,
    group: String,
}

#[derive(Clone, Debug, PartialEq)]
struct ResourceCheck {
    principal: Principal,
    attrs: ResourceAttributes,
}

#[derive(Clone, Debug, PartialEq)]
struct DecisionVal(Decision);

macro_rules! opaque_val {
    ($t:ty, $ty:expr) => {
        impl Val for $t {
            fn get_type(&self) -> &Type {
                &$ty
            }

            fn cel_type() -> &'static Type {
                &$ty
            }

            fn equals(&self, other: &dyn Val) -> bool {
                other.downcast_ref::<$t>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
                Box::new(self.clone())
            }

            fn as_any(&self) -> Option<&dyn Any> {
                Some(self)
            }
        }

        impl StaticVal for $t {}
    };
}

opaque_val!(PathCheck, PATH_CHECK_TYPE);
opaque_val!(GroupCheck, GROUP_CHECK_TYPE);
opaque_val!(ResourceCheck, RESOURCE_CHECK_TYPE);
opaque_val!(DecisionVal, DECISION_TYPE);

impl Val for AuthorizerVal {
    fn get_type(&self) -> &Type {
        &AUTHORIZER_TYPE
    }

    fn cel_type() -> &'static Type {
        &AUTHORIZER_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other
            .downcast_ref::<AuthorizerVal>()
            .is_some_and(|o| o == self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn cel::common::traits::Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
}

impl StaticVal for AuthorizerVal {}

/// `authorizer.requestResource`, upstream's other variable of this library (cel-rust reads
/// it as a field of `authorizer`).
impl cel::common::traits::Indexer for AuthorizerVal {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match (
            idx.downcast_ref::<CelString>().map(|s| s.inner()),
            &self.request,
        ) {
            (Some("requestResource"), Some(attrs)) => Ok(owned(ResourceCheck {
                principal: self.principal.clone(),
                attrs: attrs.clone(),
            })),
            (Some(field), _) => Err(ExecutionError::no_such_key(field)),
            (None, _) => Err(ExecutionError::no_such_key(&format!("{idx:?}"))),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

fn target<'a, T: StaticVal + 'static>(
    function: &str,
    v: &'a dyn Val,
) -> Result<&'a T, ExecutionError> {
    v.downcast_ref::<T>()
        .ok_or_else(|| super::no_overload(function, &[v]))
}

fn authorizer_path<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [authz, path] = args::<2>(&a)?;
    let authz = target::<AuthorizerVal>("path", authz)?;
    let path = string("path", path)?;
    if path.trim().is_empty() {
        return Err(ExecutionError::function_error(
            "path",
            "path must not be empty",
        ));
    }
    Ok(owned(PathCheck {
        principal: authz.principal.clone(),
        path: path.to_owned(),
    }))
}

fn authorizer_group<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [authz, group] = args::<2>(&a)?;
    let authz = target::<AuthorizerVal>("group", authz)?;
    Ok(owned(GroupCheck {
        principal: authz.principal.clone(),
        group: string("group", group)?.to_owned(),
    }))
}

fn authorizer_service_account<'b, 'v>(
    a: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [authz, namespace, name] = args::<3>(&a)?;
    let authz = target::<AuthorizerVal>("serviceAccount", authz)?;
    let namespace = string("serviceAccount", namespace)?;
    let name = string("serviceAccount", name)?;
    if !rudder_api::validation::is_dns1123_subdomain(name).is_empty() {
        return Err(ExecutionError::function_error(
            "serviceAccount",
            "Invalid service account name",
        ));
    }
    if !rudder_api::validation::is_dns1123_label(namespace).is_empty() {
        return Err(ExecutionError::function_error(
            "serviceAccount",
            "Invalid service account namespace",
        ));
    }
    Ok(owned(AuthorizerVal {
        principal: Principal {
            authz: authz.principal.authz.clone(),
            subject: Subject::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
        },
        request: None,
    }))
}

fn group_resource<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [g, resource] = args::<2>(&a)?;
    let g = target::<GroupCheck>("resource", g)?;
    let resource = string("resource", resource)?;
    if resource.trim().is_empty() {
        return Err(ExecutionError::function_error(
            "resource",
            "resource must not be empty",
        ));
    }
    Ok(owned(ResourceCheck {
        principal: g.principal.clone(),
        attrs: ResourceAttributes {
            group: g.group.clone(),
            resource: resource.to_owned(),
            ..ResourceAttributes::default()
        },
    }))
}

/// A `ResourceCheck` with one attribute set.
fn with_attr<'b, 'v>(
    function: &str,
    a: Vec<CowVal<'b, 'v>>,
    set: fn(&mut ResourceAttributes, String),
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [r, value] = args::<2>(&a)?;
    let mut r = target::<ResourceCheck>(function, r)?.clone();
    set(&mut r.attrs, string(function, value)?.to_owned());
    Ok(owned(r))
}

fn resource_subresource<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    with_attr("subresource", a, |r, v| r.subresource = v)
}

fn resource_namespace<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    with_attr("namespace", a, |r, v| r.namespace = v)
}

fn resource_name<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    with_attr("name", a, |r, v| r.name = v)
}

fn resource_field_selector<'b, 'v>(
    a: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    with_attr("fieldSelector", a, |r, v| r.field_selector = v)
}

fn resource_label_selector<'b, 'v>(
    a: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    with_attr("labelSelector", a, |r, v| r.label_selector = v)
}

fn path_check<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [p, verb] = args::<2>(&a)?;
    let p = target::<PathCheck>("check", p)?;
    let verb = string("check", verb)?;
    let d = p
        .principal
        .authz
        .authorize(&p.principal.subject, verb, &Target::Path(p.path.clone()));
    Ok(owned(DecisionVal(d)))
}

fn resource_check<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [r, verb] = args::<2>(&a)?;
    let r = target::<ResourceCheck>("check", r)?;
    let verb = string("check", verb)?;
    let d = r.principal.authz.authorize(
        &r.principal.subject,
        verb,
        &Target::Resource(r.attrs.clone()),
    );
    Ok(owned(DecisionVal(d)))
}

fn decision<'a>(function: &str, a: &'a [CowVal<'_, '_>]) -> Result<&'a Decision, ExecutionError> {
    let [d] = args::<1>(a)?;
    Ok(&target::<DecisionVal>(function, d)?.0)
}

fn decision_allowed<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let allowed = decision("allowed", &a)?.allowed;
    Ok(owned(CelBool::from(allowed)))
}

fn decision_reason<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let reason = decision("reason", &a)?.reason.clone();
    Ok(owned(CelString::from(reason)))
}

fn decision_errored<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let errored = decision("errored", &a)?.error.is_some();
    Ok(owned(CelBool::from(errored)))
}

fn decision_error<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let error = decision("error", &a)?.error.clone().unwrap_or_default();
    Ok(owned(CelString::from(error)))
}

/// A library value of this module copied out of an evaluation (a composition variable holding a
/// check).
pub(crate) fn to_static(v: &dyn Val) -> Option<Box<dyn Val>> {
    fn boxed<T: StaticVal + Clone + 'static>(v: &dyn Val) -> Option<Box<dyn Val>> {
        v.downcast_ref::<T>()
            .map(|t| Box::new(t.clone()) as Box<dyn Val>)
    }
    boxed::<AuthorizerVal>(v)
        .or_else(|| boxed::<PathCheck>(v))
        .or_else(|| boxed::<GroupCheck>(v))
        .or_else(|| boxed::<ResourceCheck>(v))
        .or_else(|| boxed::<DecisionVal>(v))
}
