//! The Kubernetes CEL libraries (upstream `k8s.io/apiserver/pkg/cel/library`): [`lists`],
//! [`regex`], [`urls`], [`quantity`], [`net`] (IP and CIDR), [`format`] and [`authz`] (the
//! admission policies' `authorizer`); and [`ext`], the cel-go extensions Kubernetes
//! enables that cel-rust lacks (`cel.bind`, `sets`). Each function's doc comment upstream lists examples
//! with their results; the tests here are those examples.

pub mod authz;
pub mod ext;
pub mod format;
pub mod lists;
pub mod net;
pub mod quantity;
pub mod regex;
pub mod urls;

use cel::common::types::{CelInt, CelString};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Registers every Kubernetes library on `env`.
pub fn register(env: &mut Env) -> Result<(), DeclarationError> {
    lists::register(env)?;
    regex::register(env)?;
    urls::register(env)?;
    quantity::register(env)?;
    net::register(env)?;
    ext::register(env)?;
    format::register(env)?;
    authz::register(env)?;
    Ok(())
}

/// The string form of a library value (URL, Quantity, IP, CIDR), as upstream serializes it.
pub(crate) fn to_text(v: &dyn Val) -> Option<String> {
    if let Some(url) = v.downcast_ref::<urls::Url>() {
        return Some(url.as_str().to_owned());
    }
    if let Some(q) = v.downcast_ref::<quantity::Quantity>() {
        return Some(q.to_canonical());
    }
    if let Some(ip) = v.downcast_ref::<net::Ip>() {
        return Some(ip.0.to_string());
    }
    v.downcast_ref::<net::Cidr>().map(|c| c.to_string())
}

/// A library value copied out of an evaluation (library values own all their data).
pub(crate) fn to_static(v: &dyn Val) -> Option<Box<dyn Val>> {
    if let Some(url) = v.downcast_ref::<urls::Url>() {
        return Some(Box::new(url.clone()));
    }
    if let Some(q) = v.downcast_ref::<quantity::Quantity>() {
        return Some(Box::new(*q));
    }
    if let Some(ip) = v.downcast_ref::<net::Ip>() {
        return Some(Box::new(*ip));
    }
    if let Some(c) = v.downcast_ref::<net::Cidr>() {
        return Some(Box::new(*c));
    }
    authz::to_static(v)
}

/// The elements of a list (or the keys of a map) argument.
fn elements<'a, 'v>(
    function: &str,
    v: &'a (dyn Val + 'v),
) -> Result<Vec<&'a (dyn Val + 'v)>, ExecutionError> {
    let Some(iterable) = v.as_iterable() else {
        return Err(no_overload(function, &[v]));
    };
    let mut it = iterable.iter();
    let mut out = Vec::new();
    while let Some(item) = it.next() {
        out.push(item);
    }
    Ok(out)
}

/// A string argument.
pub(crate) fn string<'a>(function: &str, v: &'a dyn Val) -> Result<&'a str, ExecutionError> {
    v.downcast_ref::<CelString>()
        .map(|s| s.inner())
        .ok_or_else(|| no_overload(function, &[v]))
}

/// An int argument.
fn int(function: &str, v: &dyn Val) -> Result<i64, ExecutionError> {
    v.downcast_ref::<CelInt>()
        .map(|i| *i.inner())
        .ok_or_else(|| no_overload(function, &[v]))
}

fn no_overload(function: &str, args: &[&dyn Val]) -> ExecutionError {
    ExecutionError::no_such_member_overload(
        function,
        args.iter()
            .map(|a| a.get_type().name().to_owned())
            .collect(),
    )
}

fn owned<'b, 'v, T: Val + 'v>(v: T) -> CowVal<'b, 'v> {
    CowVal::owned(v)
}

/// The arguments of a call, checked for count (the interpreter only dispatches by type, so this
/// cannot fail for a registered overload; an error rather than a panic all the same).
pub(crate) fn args<'a, 'b, 'v, const N: usize>(
    args: &'a [CowVal<'b, 'v>],
) -> Result<[&'a (dyn Val + 'v); N], ExecutionError> {
    if args.len() != N {
        return Err(ExecutionError::invalid_argument_count(N, args.len()));
    }
    Ok(std::array::from_fn(|i| &*args[i]))
}
