//! The Kubernetes CEL libraries (upstream `k8s.io/apiserver/pkg/cel/library`): [`lists`],
//! [`regex`], [`urls`] and [`quantity`]. Each function's doc comment upstream lists examples
//! with their results; the tests here are those examples.

pub mod lists;
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
    Ok(())
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
fn string<'a>(function: &str, v: &'a dyn Val) -> Result<&'a str, ExecutionError> {
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
fn args<'a, 'b, 'v, const N: usize>(
    args: &'a [CowVal<'b, 'v>],
) -> Result<[&'a (dyn Val + 'v); N], ExecutionError> {
    if args.len() != N {
        return Err(ExecutionError::invalid_argument_count(N, args.len()));
    }
    Ok(std::array::from_fn(|i| &*args[i]))
}
