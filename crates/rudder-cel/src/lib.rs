//! Rudder's sans-IO Kubernetes CEL.
//!
//! [`Program::compile`] parses an expression once (CRD `x-kubernetes-validations` rules,
//! ValidatingAdmissionPolicy validations and variables, admission webhooks' `matchConditions`);
//! [`Program::eval`] evaluates it many times over [`Vars`] built from JSON (`self`, `oldSelf`,
//! `object`, `oldObject`, `request`, `params`, `namespaceObject`, and the policy's
//! `variables.<name>`, evaluated lazily and at most once per [`Vars`]).
//!
//! # The interpreter
//!
//! Built on [`cel`](https://crates.io/crates/cel) 0.15 (cel-rust, formerly `cel-interpreter`), the
//! maintained Rust CEL implementation: the full CEL syntax (incl. optional field syntax `a.?b`
//! and two-variable comprehensions), the standard macros (`has`, `all`, `exists`, `exists_one`,
//! `map`, `filter`), the standard functions (`size`, `matches`, `startsWith`, conversions,
//! `timestamp`/`duration` and their accessors) and cel-go's strings extension (`lowerAscii`,
//! `upperAscii`, `split`, `join`, `trim`, `replace`, `substring`, `indexOf`, `lastIndexOf`,
//! `charAt`, `format`, `reverse`, `strings.quote`). On top of it this crate adds the Kubernetes
//! libraries of upstream's `k8s.io/apiserver/pkg/cel/library` (see the [`library`] modules).
//!
//! There is no type checker: an expression is only parsed when compiled, so a type mismatch or a
//! missing field is an evaluation error (as upstream reports it for dynamically typed data such
//! as `params` or `x-kubernetes-preserve-unknown-fields`), and an unknown variable is refused at
//! compile time only when the caller names the variables ([`Program::compile_with`]).
//!
//! # Limits
//!
//! A hostile expression cannot hang or crash the server: expressions longer than
//! [`MAX_EXPRESSION_LEN`] are refused; so are expressions that may nest deeper than
//! [`MAX_DEPTH`] (cel-go's limit), bounded from the characters before parsing, since the parser
//! and the interpreter recurse once per level; compiling runs on a stack segment of its own and
//! an evaluation switches to one when its tree is deeper than the calling thread's remaining
//! stack allows. Each evaluation has a cost budget ([`DEFAULT_COST_LIMIT`] units: one per
//! element each time a comprehension runs over a list or map, one per 64 bytes or elements built
//! by `+`), beyond which it fails with upstream's `operation cancelled: actual cost limit
//! exceeded`; `+` never builds a value larger than [`MAX_CONCAT_SIZE`]. Regular expressions
//! (`matches`, `find`, `findAll`) are compiled once and cached, with a size limit; a constant
//! pattern that does not compile fails the compilation, as in cel-go.

mod cost;
mod depth;
pub mod json;
pub mod library;
pub mod objects;
mod references;

use cel::common::types::DYN_TYPE;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, IdedExpr};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, OnceLock};

pub use cel::Value;
pub use cost::MAX_CONCAT_SIZE;
pub use depth::MAX_DEPTH;

/// The longest expression accepted, in bytes (cel-go's default expression size limit is 100,000
/// code points).
pub const MAX_EXPRESSION_LEN: usize = 100_000;

/// The evaluation budget of one [`Program::eval`] (upstream's per-call limit for CRD validation
/// rules is 1,000,000 cost units).
pub const DEFAULT_COST_LIMIT: u64 = 1_000_000;

/// An expression that does not compile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// Longer than [`MAX_EXPRESSION_LEN`].
    #[error("expression of {len} bytes exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    /// A syntax error, formatted as cel-go does (`ERROR: <input>:1:5: Syntax error: …`).
    #[error("{0}")]
    Syntax(String),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("ERROR: <input>:1:1: expression recursion limit exceeded: {max}")]
    TooDeep { max: usize },
    /// A variable the environment does not declare: `message` is cel-go's report of every
    /// undeclared name, `name` the first of them.
    #[error("{message}")]
    UndeclaredReference { name: String, message: String },
}

/// An evaluation that failed; its `Display` is cel-go's message where one exists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The budget of the evaluation is spent.
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    /// The expression evaluated to something other than what the caller asked for.
    #[error("expected {want}, got {got}")]
    WrongType { want: &'static str, got: String },
    /// Any other runtime error: no such key, no matching overload, division by zero, …
    #[error("{0}")]
    Runtime(String),
}

impl From<ExecutionError> for EvalError {
    fn from(e: ExecutionError) -> Self {
        match e {
            ExecutionError::FunctionError { message, .. } if message == cost::EXCEEDED => {
                EvalError::CostLimitExceeded
            }
            ExecutionError::NoSuchKey(k) => EvalError::Runtime(format!("no such key: {k}")),
            ExecutionError::UndeclaredReference(name) => EvalError::Runtime(format!(
                "undeclared reference to '{name}' (in container '')"
            )),
            ExecutionError::DivisionByZero(_) => EvalError::Runtime("division by zero".into()),
            ExecutionError::RemainderByZero(_) => EvalError::Runtime("modulus by zero".into()),
            ExecutionError::Overflow(..) => EvalError::Runtime("integer overflow".into()),
            ExecutionError::IndexOutOfBounds(i) => {
                EvalError::Runtime(format!("index out of range: {}", display_value(&i)))
            }
            ExecutionError::FunctionError { message, .. } => EvalError::Runtime(message),
            ExecutionError::UnexpectedType { got, want } => {
                EvalError::Runtime(format!("type conversion error from '{got}' to '{want}'"))
            }
            other => EvalError::Runtime(other.to_string()),
        }
    }
}

fn display_value(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// The environment every program is compiled and evaluated in: the standard library, cel-go's
/// strings extension and the Kubernetes libraries. Built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(build_env()));

fn build_env() -> Env {
    let mut env = Env::stdlib();
    // A failed registration is a programming error in this crate (a duplicate overload), caught
    // by every test; the environment stays usable without the offending library.
    type Library = fn(&mut Env) -> Result<(), cel::DeclarationError>;
    let libraries: [(&str, Library); 3] = [
        ("strings", cel::extensions::strings),
        ("kubernetes", library::register),
        ("mutation", objects::register),
    ];
    for (name, lib) in libraries {
        if let Err(e) = env.add_extension(lib) {
            debug_assert!(false, "CEL library {name}: {e}");
        }
    }
    let cost: [(&str, cel::common::functions::Function); 2] =
        [(cost::RANGE, cost::range), (cost::SIZE, cost::size)];
    for (name, f) in cost {
        if let Err(e) = env.add_overload(name, name, vec![DYN_TYPE], f) {
            debug_assert!(false, "{name}: {e}");
        }
    }
    env
}

/// A compiled expression: compiled once, evaluated many times, from any thread.
#[derive(Debug, Clone)]
pub struct Program {
    expr: Arc<Expr>,
    /// The stack an evaluation needs (see [`stack_for_depth`]).
    stack: usize,
    variables: Arc<[String]>,
    cost_limit: u64,
}

impl Program {
    /// Parses `expr` (macros expanded). Any variable may be referenced; see
    /// [`Program::compile_with`] to refuse undeclared ones at compile time.
    pub fn compile(expr: &str) -> Result<Program, CompileError> {
        Program::compile_checked(expr, None)
    }

    /// Like [`Program::compile`], refusing references to variables other than `declared`
    /// (e.g. `["self", "oldSelf"]` for a CRD rule), as upstream's type checker does: every
    /// free identifier (not a comprehension's own variable, not a type or function namespace)
    /// must be declared. The error is cel-go's, one per undeclared name:
    /// `ERROR: <input>:1:6: undeclared reference to 'x' (in container '')` with the source
    /// line and a caret under the identifier.
    pub fn compile_with(expr: &str, declared: &[&str]) -> Result<Program, CompileError> {
        Program::compile_checked(expr, Some(declared))
    }

    fn compile_checked(expr: &str, declared: Option<&[&str]>) -> Result<Program, CompileError> {
        if expr.len() > MAX_EXPRESSION_LEN {
            return Err(CompileError::TooLong {
                len: expr.len(),
                max: MAX_EXPRESSION_LEN,
            });
        }
        if depth::bound(expr) > MAX_DEPTH {
            return Err(CompileError::TooDeep { max: MAX_DEPTH });
        }
        let parsed = std::panic::catch_unwind(|| on_big_stack(|| ENV.compile(expr)));
        let program = match parsed {
            Ok(parsed) => parsed.map_err(|e| CompileError::Syntax(e.to_string()))?,
            // As for evaluation: an error, should the parser ever panic.
            Err(_) => {
                return Err(CompileError::Syntax(
                    "ERROR: <input>:1:1: internal error parsing the expression".into(),
                ))
            }
        };
        let free = on_big_stack(|| references::free_identifiers(program.expression()));
        if let Some(declared) = declared {
            let is_declared = |f: &references::Free| match f.kind {
                references::Kind::Variable => {
                    declared.contains(&f.name.as_str()) || is_builtin_identifier(&f.name)
                }
                // `Object.spec` is declared with `Object`, as upstream's mutating environment
                // declares the types of every field path of the resource.
                references::Kind::Type => {
                    objects::is_object_type(&f.name)
                        && declared.contains(&f.name.split('.').next().unwrap_or_default())
                }
            };
            let undeclared: Vec<&references::Free> =
                free.iter().filter(|f| !is_declared(f)).collect();
            if let Some(first) = undeclared.first() {
                let message: Vec<String> = undeclared
                    .iter()
                    .map(|f| {
                        references::error_at(
                            program.source_info(),
                            f.id,
                            &format!("undeclared reference to '{}' (in container '')", f.name),
                        )
                    })
                    .collect();
                return Err(CompileError::UndeclaredReference {
                    name: first.name.clone(),
                    message: message.join("\n"),
                });
            }
        }
        let variables: Vec<String> = free
            .into_iter()
            .filter(|f| f.kind == references::Kind::Variable)
            .map(|f| f.name)
            .collect();
        let (ast, depth) = on_big_stack(|| {
            let mut ast = program.expression().clone();
            drop(program);
            let instrumented = cost::instrument(&mut ast);
            let depth = cost::depth(&ast);
            instrumented.map(|()| (ast, depth))
        })
        .map_err(|e| CompileError::Syntax(format!("ERROR: <input>:1:1: {e}")))?;
        Ok(Program {
            expr: Arc::new(Expr(ast)),
            stack: stack_for_depth(depth),
            variables: variables.into(),
            cost_limit: DEFAULT_COST_LIMIT,
        })
    }

    /// Sets the evaluation budget (cost units, see the crate docs).
    pub fn with_cost_limit(mut self, limit: u64) -> Program {
        self.cost_limit = limit;
        self
    }

    /// The top-level variables the expression references (`self`, `object`, …), not the
    /// variables its comprehensions bind.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(String::as_str)
    }

    /// Whether the expression references `name` (e.g. `oldSelf`, which makes a CRD rule a
    /// transition rule).
    pub fn references(&self, name: &str) -> bool {
        self.variables.iter().any(|v| v == name)
    }

    /// Evaluates the expression over `vars`.
    pub fn eval(&self, vars: &Vars) -> Result<Value, EvalError> {
        self.eval_with(vars, to_value)
    }

    /// Evaluates the expression and converts the result to JSON (bytes as base64, timestamps
    /// RFC 3339, durations as Go prints them).
    pub fn eval_json(&self, vars: &Vars) -> Result<serde_json::Value, EvalError> {
        let value = self.eval(vars)?;
        json::from_value(&value).map_err(|e| EvalError::Runtime(e.0))
    }

    /// Evaluates an expression that must yield a bool (a validation rule, a match condition).
    pub fn eval_bool(&self, vars: &Vars) -> Result<bool, EvalError> {
        self.eval_with(vars, |v| {
            match v.downcast_ref::<cel::common::types::CelBool>() {
                Some(b) => Ok(*b.inner()),
                None => Err(EvalError::WrongType {
                    want: "bool",
                    got: v.get_type().name().to_owned(),
                }),
            }
        })
    }

    /// Evaluates an expression that must yield a string (a `messageExpression`).
    pub fn eval_string(&self, vars: &Vars) -> Result<String, EvalError> {
        self.eval_with(vars, |v| {
            match v.downcast_ref::<cel::common::types::CelString>() {
                Some(s) => Ok(s.inner().to_string()),
                None => Err(EvalError::WrongType {
                    want: "string",
                    got: v.get_type().name().to_owned(),
                }),
            }
        })
    }

    fn eval_with<T>(
        &self,
        vars: &Vars,
        convert: impl FnOnce(&dyn Val) -> Result<T, EvalError>,
    ) -> Result<T, EvalError> {
        let run = || {
            stacker::maybe_grow(self.stack, self.stack + STACK_MARGIN, || {
                let _budget = cost::Budget::start(self.cost_limit);
                let mut ctx = Context::with_env(Arc::clone(&ENV));
                ctx.set_variable_resolver(vars);
                let result = Value::resolve_val(&self.expr.0, &ctx)?;
                convert(&*result)
            })
        };
        // No input is known to make the interpreter panic (the tests fuzz it); should one, the
        // request gets an error rather than losing its task.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
            Err(EvalError::Runtime(
                "internal error evaluating the expression".into(),
            ))
        })
    }
}

/// Runs `f` (parsing, rewriting or dropping a tree) with enough stack for an expression
/// [`MAX_DEPTH`] deep, on a fresh stack segment unless the calling thread has that much left.
/// Switching costs about 0.1 ms, nothing next to compiling.
fn on_big_stack<T>(f: impl FnOnce() -> T) -> T {
    const RED_ZONE: usize = 16 * 1024 * 1024;
    const STACK: usize = 32 * 1024 * 1024;
    stacker::maybe_grow(RED_ZONE, STACK, f)
}

/// Stack beyond an evaluation's estimate, when it runs on a segment of its own.
const STACK_MARGIN: usize = 1024 * 1024;

/// The stack an evaluation of a tree `depth` deep needs: the interpreter recurses once per
/// level, at up to ~25 KiB a level in a debug build (measured; a few KiB optimised). An
/// evaluation whose thread (a 2 MiB tokio worker, say) has that much left runs in place; a
/// deeper one switches to a segment of its own (~0.1 ms).
fn stack_for_depth(depth: usize) -> usize {
    let per_level = if cfg!(debug_assertions) {
        48 * 1024
    } else {
        16 * 1024
    };
    256 * 1024 + depth.saturating_mul(per_level)
}

/// An expression tree, dropped on a big stack: dropping recurses once per level too.
#[derive(Debug, Default)]
struct Expr(IdedExpr);

impl Drop for Expr {
    fn drop(&mut self) {
        let tree = std::mem::take(&mut self.0);
        on_big_stack(move || drop(tree));
    }
}

/// Identifiers that are not variables: type names (`int`, `string`, …) usable as values, and
/// the namespaces of functions (`strings.quote`, `optional.of`).
fn is_builtin_identifier(name: &str) -> bool {
    matches!(
        name,
        "bool"
            | "bytes"
            | "double"
            | "duration"
            | "dyn"
            | "int"
            | "list"
            | "map"
            | "null_type"
            | "string"
            | "timestamp"
            | "type"
            | "uint"
            | "optional"
            | "strings"
            | "math"
            | "base64"
            | "kubernetes"
            | "net"
            | "ip"
            | "cel"
            | "sets"
            | "format"
            | "jsonpatch"
    )
}

/// An evaluation result as an owned value: the Kubernetes library types (URL, Quantity) become
/// their string form, as upstream serializes them.
fn to_value(v: &dyn Val) -> Result<Value, EvalError> {
    if let Some(text) = library::to_text(v) {
        return Ok(Value::from(text));
    }
    Value::try_from(v).map_err(EvalError::from)
}

/// The named values an expression is evaluated over.
#[derive(Default)]
pub struct Vars {
    values: BTreeMap<String, Box<dyn Val>>,
    variables: Option<Composition>,
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vars")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Vars {
    pub fn new() -> Vars {
        Vars::default()
    }

    /// Binds `name` to a JSON value (converted once; evaluations borrow it).
    pub fn with_json(mut self, name: &str, value: &serde_json::Value) -> Vars {
        self.insert_json(name, value);
        self
    }

    /// Binds `name` to a JSON value.
    pub fn insert_json(&mut self, name: &str, value: &serde_json::Value) {
        self.values.insert(name.to_owned(), json::to_val(value));
    }

    /// Binds `name` to a CEL value (e.g. one of schema-aware conversion: a `date-time` string as
    /// a timestamp).
    pub fn insert_value(&mut self, name: &str, value: Value) -> Result<(), EvalError> {
        let value: Box<dyn Val> = value.try_into()?;
        self.values.insert(name.to_owned(), value);
        Ok(())
    }

    /// Binds `authorizer` (admission policies), see [`library::authz`].
    pub fn with_authorizer(mut self, authorizer: library::authz::AuthorizerVal) -> Vars {
        self.values
            .insert("authorizer".to_owned(), Box::new(authorizer));
        self
    }

    /// Whether `name` is bound.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Makes `variables.<name>` available: each of `variables` (a ValidatingAdmissionPolicy's
    /// `spec.variables`, in order; each may use the ones before it) is evaluated on first use
    /// and at most once for these [`Vars`].
    pub fn with_variables(mut self, variables: Arc<[(String, Program)]>) -> Vars {
        let cache = (0..variables.len()).map(|_| OnceLock::new()).collect();
        self.variables = Some(Composition {
            programs: variables,
            cache,
        });
        self
    }
}

impl VariableResolver for Vars {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if variable == "variables" {
            if let Some(composition) = &self.variables {
                return Some(CowVal::Owned(Box::new(VariablesView {
                    vars: self,
                    composition,
                    visible: composition.programs.len(),
                })));
            }
        }
        self.values
            .get(variable)
            .map(|v| CowVal::Borrowed(v.as_ref()))
    }
}

/// The compiled composition variables of a policy, with their values once evaluated.
struct Composition {
    programs: Arc<[(String, Program)]>,
    cache: Vec<OnceLock<Result<Box<dyn Val>, EvalError>>>,
}

/// `variables` as an expression sees it: the first `visible` composition variables.
#[derive(Clone)]
struct VariablesView<'a> {
    vars: &'a Vars,
    composition: &'a Composition,
    visible: usize,
}

impl std::fmt::Debug for VariablesView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "variables")
    }
}

impl VariablesView<'_> {
    fn lookup(&self, name: &str) -> Result<&(dyn Val + 'static), ExecutionError> {
        let Some(index) = self.composition.programs[..self.visible]
            .iter()
            .position(|(n, _)| n == name)
        else {
            return Err(ExecutionError::no_such_key(name));
        };
        let cached = self.composition.cache[index].get_or_init(|| {
            let (_, program) = &self.composition.programs[index];
            let view = VariablesView {
                visible: index,
                ..self.clone()
            };
            let scoped = ScopedVars {
                vars: self.vars,
                view,
            };
            let _budget = cost::Budget::start(program.cost_limit);
            let mut ctx = Context::with_env(Arc::clone(&ENV));
            ctx.set_variable_resolver(&scoped);
            // Library values (a quantity) stay what they are for the expressions that use
            // the variable; the rest is copied out of the evaluation.
            stacker::maybe_grow(program.stack, program.stack + STACK_MARGIN, || {
                Value::resolve_val(&program.expr.0, &ctx).and_then(|v| {
                    match library::to_static(&*v) {
                        Some(owned) => Ok(owned),
                        None => Value::try_from(&*v).and_then(Box::<dyn Val>::try_from),
                    }
                })
            })
            .map_err(EvalError::from)
            .map_err(|e| match e {
                EvalError::CostLimitExceeded => e,
                e => EvalError::Runtime(format!(
                    "composited variable \"{name}\" fails to evaluate: {e}"
                )),
            })
        });
        match cached {
            Ok(v) => Ok(v.as_ref()),
            Err(EvalError::CostLimitExceeded) => {
                Err(ExecutionError::function_error(cost::RANGE, cost::EXCEEDED))
            }
            Err(e) => Err(ExecutionError::function_error("variables", e.to_string())),
        }
    }
}

/// The resolver of a composition variable's own evaluation: the request's values, and the
/// variables declared before it.
struct ScopedVars<'a> {
    vars: &'a Vars,
    view: VariablesView<'a>,
}

impl VariableResolver for ScopedVars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if variable == "variables" && self.vars.variables.is_some() {
            return Some(CowVal::Owned(Box::new(self.view.clone())));
        }
        self.vars
            .values
            .get(variable)
            .map(|v| CowVal::Borrowed(v.as_ref()))
    }
}

static VARIABLES_TYPE: cel::common::types::Type =
    cel::common::types::Type::new_unspecified_type("kubernetes.variables");

impl Val for VariablesView<'_> {
    fn get_type(&self) -> &cel::common::types::Type {
        &VARIABLES_TYPE
    }

    fn cel_type() -> &'static cel::common::types::Type
    where
        Self: Sized,
    {
        &VARIABLES_TYPE
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(self.clone())
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn cel::common::traits::Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }
}

impl cel::common::traits::Indexer for VariablesView<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        let Some(name) = idx.downcast_ref::<cel::common::types::CelString>() else {
            return Err(ExecutionError::UnexpectedType {
                got: idx.get_type().name().to_owned(),
                want: "string".to_owned(),
            });
        };
        self.lookup(name.inner()).map(CowVal::Borrowed)
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

#[cfg(test)]
mod tests;
