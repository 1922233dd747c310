//! The cel-go extensions Kubernetes adds to its base environment that cel-rust lacks:
//! `cel.bind` (ext.Bindings) and `sets.contains`, `sets.equivalent`, `sets.intersects`
//! (ext.Sets).

use super::{args, elements, owned};
use cel::common::ast::{ComprehensionExpr, Expr, ListExpr, LiteralValue};
use cel::common::types::{CelBool, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::parser::Macro;
use cel::{DeclarationError, Env, ExecutionError};

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_macro(Macro::receiver("bind", 3, |helper, target, args| {
        if !matches!(target.as_ref().map(|t| &t.expr), Some(Expr::Ident(name)) if name == "cel") {
            return Ok(None);
        }
        let Some(Expr::Ident(var)) = args.first().map(|a| &a.expr) else {
            let id = args.first().map_or(0, |a| a.id);
            return Err(
                helper.new_error(id, "cel.bind() variable names must be simple identifiers")
            );
        };
        let var = var.clone();
        let (Some(body), Some(init)) = (args.pop(), args.pop()) else {
            return Ok(None);
        };
        target.take();
        // cel-go's expansion: a comprehension over nothing whose accumulator is the binding.
        let range = helper.next_expr(Expr::List(ListExpr {
            elements: vec![],
            optional_indices: vec![],
        }));
        let cond = helper.next_expr(Expr::Literal(LiteralValue::Boolean(false.into())));
        let step = helper.next_expr(Expr::Ident(var.clone()));
        Ok(Some(helper.next_expr(Expr::Comprehension(Box::new(
            ComprehensionExpr {
                iter_range: range,
                iter_var: "#unused".to_owned(),
                iter_var2: None,
                accu_var: var,
                accu_init: init,
                loop_cond: cond,
                loop_step: step,
                result: body,
            },
        )))))
    }))?;
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        vec![LIST_TYPE, LIST_TYPE],
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        vec![LIST_TYPE, LIST_TYPE],
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        vec![LIST_TYPE, LIST_TYPE],
        intersects,
    )?;
    Ok(())
}

/// Whether every element of `sub` is in `set`, with CEL equality (`1 == 1.0`, as `Val::equals`).
fn includes_all(function: &str, set: &dyn Val, sub: &dyn Val) -> Result<bool, ExecutionError> {
    let set = elements(function, set)?;
    let sub = elements(function, sub)?;
    Ok(sub.iter().all(|e| set.iter().any(|s| s.equals(*e))))
}

fn contains<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [set, sub] = args::<2>(&a)?;
    Ok(owned(CelBool::from(includes_all(
        "sets.contains",
        set,
        sub,
    )?)))
}

fn equivalent<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x, y] = args::<2>(&a)?;
    let both = includes_all("sets.equivalent", x, y)? && includes_all("sets.equivalent", y, x)?;
    Ok(owned(CelBool::from(both)))
}

fn intersects<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x, y] = args::<2>(&a)?;
    let xs = elements("sets.intersects", x)?;
    let ys = elements("sets.intersects", y)?;
    Ok(owned(CelBool::from(
        xs.iter().any(|a| ys.iter().any(|b| a.equals(*b))),
    )))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval, ok};
    use crate::Vars;
    use serde_json::json;

    #[test]
    fn bind_upstream_examples() {
        assert_eq!(
            ok("cel.bind(a, 'hello', cel.bind(b, 'world', a + b + b + a))"),
            json!("helloworldworldhello")
        );
        assert_eq!(
            ok("cel.bind(valid_elems, [1, 2, 3], [3, 4, 5].exists(e, e in valid_elems))"),
            json!(true)
        );
        assert_eq!(ok("cel.bind(x, 2, x * x) == 4"), json!(true));
        let vars = Vars::new().with_json("self", &json!({"spec": {"a": {"b": 3}}}));
        assert_eq!(
            eval("cel.bind(s, self.spec.a, s.b + s.b)", &vars),
            Ok(json!(6))
        );
        assert!(crate::Program::compile("cel.bind(a.b, 1, 2)").is_err());
    }

    #[test]
    fn sets_upstream_examples() {
        assert_eq!(ok("sets.contains([], [])"), json!(true));
        assert_eq!(ok("sets.contains([], [1])"), json!(false));
        assert_eq!(ok("sets.contains([1, 2, 3, 4], [2, 3])"), json!(true));
        assert_eq!(ok("sets.contains([1, 2.0, 3u], [1.0, 2u, 3])"), json!(true));
        assert_eq!(ok("sets.equivalent([], [])"), json!(true));
        assert_eq!(ok("sets.equivalent([1], [1, 1])"), json!(true));
        assert_eq!(ok("sets.equivalent([1], [1u, 1.0])"), json!(true));
        assert_eq!(ok("sets.equivalent([1, 2, 3], [3u, 2.0, 1])"), json!(true));
        assert_eq!(ok("sets.intersects([1], [])"), json!(false));
        assert_eq!(ok("sets.intersects([1], [1, 2])"), json!(true));
        assert_eq!(
            ok("sets.intersects([[1], [2, 3]], [[1, 2], [2, 3.0]])"),
            json!(true)
        );
        assert_eq!(ok("sets.contains(['a', 'b'], ['b'])"), json!(true));
    }
}
