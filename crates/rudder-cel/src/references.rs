//! The variables an expression reads, scope-aware: a comprehension's own variables (`x` in
//! `self.all(x, x > 0)`, the accumulator of `map`/`filter`, the name `cel.bind` binds) are
//! bound inside its loop and result, so only the identifiers left free are the expression's
//! variables. This is what cel-go's checker resolves against the environment's declarations
//! (`undeclared reference to 'x'`); cel-rust's own reference list also holds the bound names.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, SourceInfo};

/// A free identifier and the expression node that reads it (for its position).
pub(crate) struct Free {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) kind: Kind,
}

/// What a free name is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A variable (or a type or namespace name written as an identifier).
    Variable,
    /// The type a message initializer (`T{f: v}`) builds.
    Type,
}

/// The free identifiers of `expr`, in the order a left-to-right walk meets them, each once.
pub(crate) fn free_identifiers(expr: &IdedExpr) -> Vec<Free> {
    let mut out: Vec<Free> = Vec::new();
    let mut scope: Vec<&str> = Vec::new();
    walk(expr, &mut scope, &mut out);
    out
}

fn walk<'a>(e: &'a IdedExpr, scope: &mut Vec<&'a str>, out: &mut Vec<Free>) {
    match &e.expr {
        Expr::Ident(name) => {
            if !scope.contains(&name.as_str()) && !out.iter().any(|f| f.name == *name) {
                out.push(Free {
                    name: name.clone(),
                    id: e.id,
                    kind: Kind::Variable,
                });
            }
        }
        Expr::Select(s) => walk(&s.operand, scope, out),
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, scope, out);
            }
            for a in &c.args {
                walk(a, scope, out);
            }
        }
        Expr::List(l) => {
            for el in &l.elements {
                walk(el, scope, out);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                walk_entry(&entry.expr, scope, out);
            }
        }
        Expr::Struct(s) => {
            if !out.iter().any(|f| f.name == s.type_name) {
                out.push(Free {
                    name: s.type_name.clone(),
                    id: e.id,
                    kind: Kind::Type,
                });
            }
            for entry in &s.entries {
                walk_entry(&entry.expr, scope, out);
            }
        }
        Expr::Comprehension(c) => {
            // The range and the accumulator's start are evaluated outside the loop.
            walk(&c.iter_range, scope, out);
            walk(&c.accu_init, scope, out);
            let depth = scope.len();
            scope.push(&c.iter_var);
            if let Some(v2) = &c.iter_var2 {
                scope.push(v2);
            }
            scope.push(&c.accu_var);
            walk(&c.loop_cond, scope, out);
            walk(&c.loop_step, scope, out);
            walk(&c.result, scope, out);
            scope.truncate(depth);
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn walk_entry<'a>(e: &'a EntryExpr, scope: &mut Vec<&'a str>, out: &mut Vec<Free>) {
    match e {
        EntryExpr::StructField(f) => walk(&f.value, scope, out),
        EntryExpr::MapEntry(m) => {
            walk(&m.key, scope, out);
            walk(&m.value, scope, out);
        }
    }
}

/// cel-go's rendering of an error at expression node `id`: `ERROR: <input>:L:C: message`, then
/// the source line and a caret under the column (`common.Error.ToDisplayString`).
pub(crate) fn error_at(source: &SourceInfo, id: u64, message: &str) -> String {
    let offset = source.offset_for(id).map_or(0, |(start, _)| start as usize);
    // The parser's offsets count characters (ANTLR's code point stream).
    let mut line_no = 1;
    let mut column = 0;
    let mut line_start = 0;
    for (i, (byte, ch)) in source.source.char_indices().enumerate() {
        if i == offset {
            break;
        }
        if ch == '\n' {
            line_no += 1;
            column = 0;
            line_start = byte + 1;
        } else {
            column += 1;
        }
    }
    let mut out = format!("ERROR: <input>:{line_no}:{}: {message}", column + 1);
    let line = source.source[line_start..].lines().next().unwrap_or("");
    let line = line.replace('\t', " ");
    out.push_str("\n | ");
    out.push_str(&line);
    out.push_str("\n | ");
    let mut chars = line.chars();
    for _ in 0..column {
        match chars.next() {
            Some(c) if c.len_utf8() > 1 => out.push('\u{ff0e}'),
            Some(_) => out.push('.'),
            None => break,
        }
    }
    match chars.next() {
        Some(c) if c.len_utf8() > 1 => out.push('\u{ff3e}'),
        _ => out.push('^'),
    }
    out
}
