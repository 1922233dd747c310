//! A bound on what one evaluation may do, so that a hostile rule cannot hang the API server.
//!
//! The interpreter (cel-rust) has no cost tracking of its own, so the compiled expression is
//! rewritten: the range of every comprehension (`all`, `exists`, `exists_one`, `map`, `filter`)
//! goes through [`RANGE`], which charges one unit per element each time the comprehension runs (an
//! upper bound on its iterations; a nested comprehension is charged once per outer iteration), and
//! every `+` (the only operator that can grow strings and lists) through [`SIZE`]. Both charge a
//! per-evaluation budget kept in a thread-local (evaluation is synchronous and never leaves its
//! thread); [`SIZE`] also caps the length of what `+` builds. The loop steps themselves are left
//! as the macros wrote them, so the interpreter still recognises them (in-place appends for `map`
//! and `filter`, error absorption for `all` and `exists`).

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::value::{CowVal, Val};
use cel::ExecutionError;
use std::cell::Cell;

/// The function every comprehension range is wrapped in. Its name cannot be written in CEL.
pub(crate) const RANGE: &str = "@rudder.range";
/// The function every `+` is wrapped in.
pub(crate) const SIZE: &str = "@rudder.size";

/// The longest string (bytes), list or bytes value `+` may build.
pub const MAX_CONCAT_SIZE: usize = 3 * 1024 * 1024;

/// Upstream's message when the runtime cost budget is spent.
pub(crate) const EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

thread_local! {
    /// What is left of the running evaluation's budget; `None` outside an evaluation.
    static REMAINING: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Arms the budget for one evaluation; an evaluation nested in another (a lazily evaluated
/// composition variable) shares the outer one's budget.
pub(crate) struct Budget {
    outer: bool,
}

impl Budget {
    pub(crate) fn start(limit: u64) -> Budget {
        let outer = REMAINING.with(|r| {
            if r.get().is_some() {
                false
            } else {
                r.set(Some(limit));
                true
            }
        });
        Budget { outer }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        if self.outer {
            REMAINING.with(|r| r.set(None));
        }
    }
}

fn charge(units: u64) -> Result<(), ExecutionError> {
    REMAINING.with(|r| match r.get() {
        // Outside an evaluation armed by us (cannot happen through `Program`): nothing to charge.
        None => Ok(()),
        Some(left) if left >= units => {
            r.set(Some(left - units));
            Ok(())
        }
        Some(_) => {
            r.set(Some(0));
            Err(ExecutionError::function_error(RANGE, EXCEEDED))
        }
    })
}

/// The comprehension range: a unit per element (and one for the loop), passed through untouched.
pub(crate) fn range<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(ExecutionError::missing_argument_or_target)?;
    let len = value.as_sizer().map(|s| *s.size().inner()).unwrap_or(0);
    charge(1 + u64::try_from(len).unwrap_or(0))?;
    Ok(value)
}

/// The result of `+`: charged by its size (a unit per 64 bytes or element), and capped.
pub(crate) fn size<'b, 'v>(
    mut args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args
        .pop()
        .ok_or_else(ExecutionError::missing_argument_or_target)?;
    let len = value_len(&*value);
    if len > MAX_CONCAT_SIZE {
        return Err(ExecutionError::function_error(
            "_+_",
            format!("result of size {len} exceeds the maximum of {MAX_CONCAT_SIZE}"),
        ));
    }
    charge(1 + len as u64 / 64)?;
    Ok(value)
}

fn value_len(value: &dyn Val) -> usize {
    use cel::common::types::{CelBytes, CelString};
    if let Some(s) = value.downcast_ref::<CelString>() {
        return s.inner().len();
    }
    if let Some(b) = value.downcast_ref::<CelBytes>() {
        return b.inner().len();
    }
    match value.as_sizer() {
        Some(sizer) => usize::try_from(*sizer.size().inner()).unwrap_or(usize::MAX),
        None => 0,
    }
}

/// Rewrites `expr` so that comprehensions and `+` charge the budget, `matches` uses cached
/// patterns and object initializers build their structs ([`crate::objects`]); fails on the
/// first constant pattern that does not compile.
pub(crate) fn instrument(expr: &mut IdedExpr) -> Result<(), String> {
    let mut next_id = max_id(expr) + 1;
    let mut bad_pattern = None;
    rewrite(expr, &mut next_id, &mut bad_pattern);
    bad_pattern.map_or(Ok(()), Err)
}

fn wrap(expr: &mut IdedExpr, func: &str, next_id: &mut u64) {
    let inner = std::mem::take(expr);
    let id = *next_id;
    *next_id += 1;
    *expr = IdedExpr {
        id,
        expr: Expr::Call(CallExpr {
            func_name: func.to_string(),
            target: None,
            args: vec![inner],
        }),
    };
}

fn rewrite(expr: &mut IdedExpr, next_id: &mut u64, bad: &mut Option<String>) {
    match &mut expr.expr {
        Expr::Call(call) => {
            if let Some(target) = call.target.as_mut() {
                rewrite(target, next_id, bad);
            }
            for arg in &mut call.args {
                rewrite(arg, next_id, bad);
            }
            // `@result + [x]`, the step of `map` and `filter`, grows by one element per
            // iteration, already charged by the range, and must keep its shape.
            let appends_to_accumulator = matches!(
                call.args.first().map(|a| &a.expr),
                Some(Expr::Ident(name)) if name.starts_with('@') || name == "__result__"
            );
            if call.func_name == "matches" {
                use_cached_regex(call, bad);
            }
            if call.func_name == cel::common::ast::operators::ADD && !appends_to_accumulator {
                wrap(expr, SIZE, next_id);
            }
        }
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range, next_id, bad);
            rewrite(&mut c.accu_init, next_id, bad);
            rewrite(&mut c.loop_cond, next_id, bad);
            rewrite(&mut c.loop_step, next_id, bad);
            rewrite(&mut c.result, next_id, bad);
            wrap(&mut c.iter_range, RANGE, next_id);
        }
        Expr::List(list) => {
            for e in &mut list.elements {
                rewrite(e, next_id, bad);
            }
        }
        Expr::Map(map) => {
            for e in &mut map.entries {
                rewrite_entry(&mut e.expr, next_id, bad);
            }
        }
        Expr::Struct(s) => {
            for e in &mut s.entries {
                rewrite_entry(&mut e.expr, next_id, bad);
            }
            if crate::objects::is_object_type(&s.type_name) {
                crate::objects::to_call(expr, next_id);
            }
        }
        Expr::Select(select) => rewrite(&mut select.operand, next_id, bad),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// `s.matches(p)` and `matches(s, p)` become `@rudder.matches(s, p)`.
fn use_cached_regex(call: &mut CallExpr, bad: &mut Option<String>) {
    if let Some(target) = call.target.take() {
        call.args.insert(0, *target);
    }
    if call.args.len() != 2 {
        // Not a `matches` overload: leave it for the interpreter to report.
        return;
    }
    if let Expr::Literal(LiteralValue::String(pattern)) = &call.args[1].expr {
        if let Err(e) = crate::library::regex::check_constant(pattern.inner()) {
            bad.get_or_insert(e);
        }
    }
    call.func_name = crate::library::regex::MATCHES.to_string();
}

fn rewrite_entry(entry: &mut EntryExpr, next_id: &mut u64, bad: &mut Option<String>) {
    match entry {
        EntryExpr::StructField(f) => rewrite(&mut f.value, next_id, bad),
        EntryExpr::MapEntry(m) => {
            rewrite(&mut m.key, next_id, bad);
            rewrite(&mut m.value, next_id, bad);
        }
    }
}

/// The direct subexpressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    let mut out = Vec::new();
    match &expr.expr {
        Expr::Call(call) => {
            out.extend(call.target.as_deref());
            out.extend(&call.args);
        }
        Expr::Comprehension(c) => {
            out.extend([
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ]);
        }
        Expr::List(list) => out.extend(&list.elements),
        Expr::Map(map) => map
            .entries
            .iter()
            .for_each(|e| entry_children(&e.expr, &mut out)),
        Expr::Struct(s) => s
            .entries
            .iter()
            .for_each(|e| entry_children(&e.expr, &mut out)),
        Expr::Select(select) => out.push(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
    out
}

fn entry_children<'a>(entry: &'a EntryExpr, out: &mut Vec<&'a IdedExpr>) {
    match entry {
        EntryExpr::StructField(f) => out.push(&f.value),
        EntryExpr::MapEntry(m) => {
            out.push(&m.key);
            out.push(&m.value);
        }
    }
}

fn max_id(expr: &IdedExpr) -> u64 {
    children(expr)
        .into_iter()
        .map(max_id)
        .fold(expr.id, u64::max)
}

/// The depth of the tree: how deep the interpreter will recurse.
pub(crate) fn depth(expr: &IdedExpr) -> usize {
    1 + children(expr).into_iter().map(depth).max().unwrap_or(0)
}
