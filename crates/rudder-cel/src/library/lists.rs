//! Upstream's `kubernetes.lists` library: `isSorted`, `sum`, `min`, `max`, `indexOf`,
//! `lastIndexOf` on lists, and `includes`.

use super::{args, elements, owned};
use cel::common::types::{CelBool, CelInt, DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::cmp::Ordering;

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        "isSorted",
        "list_is_sorted_bool",
        LIST_TYPE,
        vec![],
        is_sorted,
    )?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_a_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_a_last_index_of_int",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    env.add_member_overload(
        "includes",
        "list_includes_dyn_dyn",
        DYN_TYPE,
        vec![DYN_TYPE],
        includes,
    )?;
    Ok(())
}

fn compare(function: &str, a: &dyn Val, b: &dyn Val) -> Result<Ordering, ExecutionError> {
    match a.as_comparer() {
        Some(c) => c
            .compare(b)
            .map_err(|_| super::no_overload(function, &[a, b])),
        None => Err(super::no_overload(function, &[a])),
    }
}

fn is_sorted<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = args::<1>(&a)?;
    let items = elements("isSorted", list)?;
    for pair in items.windows(2) {
        if compare("isSorted", pair[0], pair[1])? == Ordering::Greater {
            return Ok(owned(CelBool::from(false)));
        }
    }
    // A single element must still be comparable, as upstream's overloads require.
    if let [only] = items.as_slice() {
        if only.as_comparer().is_none() {
            return Err(super::no_overload("isSorted", &[*only]));
        }
    }
    Ok(owned(CelBool::from(true)))
}

fn sum<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = args::<1>(&a)?;
    let items = elements("sum", list)?;
    let Some((first, rest)) = items.split_first() else {
        // The element type of an empty list is not known at run time: upstream's `dyn` list
        // sums to int 0.
        return Ok(owned(CelInt::from(0)));
    };
    let mut acc: Box<dyn Val + 'v> = first.clone_as_boxed();
    for item in rest {
        let next = match acc.as_adder() {
            Some(adder) => adder.add(*item)?.into_owned(),
            None => return Err(super::no_overload("sum", &[&*acc])),
        };
        acc = next;
    }
    Ok(CowVal::Owned(acc))
}

fn extreme<'b, 'v>(
    function: &str,
    a: Vec<CowVal<'b, 'v>>,
    prefer: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = args::<1>(&a)?;
    let items = elements(function, list)?;
    let Some((&first, rest)) = items.split_first() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    if first.as_comparer().is_none() {
        return Err(super::no_overload(function, &[first]));
    }
    let mut best = first;
    for &item in rest {
        if compare(function, item, best)? == prefer {
            best = item;
        }
    }
    Ok(CowVal::Owned(best.clone_as_boxed()))
}

fn min<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("min", a, Ordering::Less)
}

fn max<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("max", a, Ordering::Greater)
}

fn index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, item] = args::<2>(&a)?;
    let items = elements("indexOf", list)?;
    let found = items.iter().position(|e| e.equals(item));
    Ok(owned(CelInt::from(found.map_or(-1, |i| i as i64))))
}

fn last_index_of<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, item] = args::<2>(&a)?;
    let items = elements("lastIndexOf", list)?;
    let found = items.iter().rposition(|e| e.equals(item));
    Ok(owned(CelInt::from(found.map_or(-1, |i| i as i64))))
}

fn includes<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [target, item] = args::<2>(&a)?;
    let found = if target.get_type().kind() == cel::common::types::Kind::List {
        elements("includes", target)?.iter().any(|e| e.equals(item))
    } else {
        target.equals(item)
    };
    Ok(owned(CelBool::from(found)))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval_err, ok};
    use serde_json::json;

    #[test]
    fn upstream_examples() {
        assert_eq!(ok("[1, 2, 3].isSorted()"), json!(true));
        assert_eq!(ok("['a', 'b', 'b', 'c'].isSorted()"), json!(true));
        assert_eq!(ok("[2.0, 1.0].isSorted()"), json!(false));
        assert_eq!(ok("[1].isSorted()"), json!(true));
        assert_eq!(ok("[].isSorted()"), json!(true));
        assert_eq!(ok("[1, 3].sum()"), json!(4));
        assert_eq!(ok("[1.0, 3.0].sum()"), json!(4.0));
        assert_eq!(ok("[duration('1m'), duration('1s')].sum()"), json!("1m1s"));
        assert_eq!(ok("[].sum()"), json!(0));
        assert_eq!(ok("[1, 3].min()"), json!(1));
        assert_eq!(ok("[1, 3].max()"), json!(3));
        assert_eq!(eval_err("[].min()"), "min called on empty list");
        assert_eq!(ok("[1].min()"), json!(1));
        assert_eq!(ok("([0] + []).min()"), json!(0));
        assert_eq!(ok("['b', 'a', 'c'].max()"), json!("c"));
        assert_eq!(ok("[1, 2, 2, 3].indexOf(2)"), json!(1));
        assert_eq!(ok("['a', 'b', 'b', 'c'].lastIndexOf('b')"), json!(2));
        assert_eq!(ok("[1.0].indexOf(1.1)"), json!(-1));
        assert_eq!(ok("[].indexOf('string')"), json!(-1));
        // CEL equality: numbers compare by value across int, uint and double.
        assert_eq!(ok("[1, 2].indexOf(2.0)"), json!(1));
        assert_eq!(ok("[1u, 2u].lastIndexOf(1)"), json!(0));
        assert_eq!(ok("[1, 2, 3].includes(2)"), json!(true));
        assert_eq!(ok("[1, 2, 3].includes(4)"), json!(false));
        assert_eq!(ok("'model-a'.includes('model-a')"), json!(true));
        assert_eq!(ok("'model-a'.includes('model-b')"), json!(false));
        // The strings extension's indexOf still works beside the list one.
        assert_eq!(ok("'hello'.indexOf('l')"), json!(2));
    }

    #[test]
    fn mixed_lists_are_errors() {
        assert!(eval_err("[1, 'a'].isSorted()").contains("no matching overload"));
        assert!(
            eval_err("[1, 'a'].sum()").contains("'a'") || !eval_err("[1, 'a'].sum()").is_empty()
        );
        assert!(!eval_err("[{}, {}].max()").is_empty());
        assert!(!eval_err("[[1]].isSorted()").is_empty());
    }
}
