//! The object initializers of MutatingAdmissionPolicy expressions (upstream
//! `k8s.io/apiserver/pkg/cel/mutation`): `Object{spec: Object.spec{replicas: 3}}` builds the
//! apply configuration, `JSONPatch{op: 'add', path: '/x', value: 1}` a JSON Patch operation, and
//! `jsonpatch.escapeKey(k)` escapes a key for a patch path.
//!
//! cel-rust parses message construction (`a.b.C{f: v}`) but builds only struct types registered
//! by exact name, and upstream's `Object.<field path>` names are open-ended (one per path in the
//! resource's schema). So the compiled tree is rewritten: every initializer of one of these
//! types becomes a call of [`STRUCT`] with the type name and a map literal of its fields, which
//! builds a [`CelStruct`] of that name. Field access, `has()` and equality work on it as on any
//! struct; [`crate::json`] turns it into a JSON object. Which names an expression may construct
//! is decided by [`crate::Program::compile_with`]: only environments that declare `Object`
//! (and `JSONPatch`) may use them, as upstream's mutating environment.

use cel::common::ast::{
    CallExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, LiteralValue, MapEntryExpr, MapExpr,
};
use cel::common::types::{CelMap, CelMapKey, CelString, CelStruct, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// The function initializers are rewritten to. Its name cannot be written in CEL.
pub(crate) const STRUCT: &str = "@rudder.struct";

/// The type of a JSON Patch operation.
pub const JSONPATCH: &str = "JSONPatch";
/// The type of an apply configuration's root; its fields' types are `Object.<field path>`.
pub const OBJECT: &str = "Object";

/// Whether `name` is one of the initializer types this module builds.
pub(crate) fn is_object_type(name: &str) -> bool {
    name == JSONPATCH || name == OBJECT || name.starts_with("Object.")
}

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    use cel::common::types::DYN_TYPE;
    env.add_overload(STRUCT, STRUCT, vec![STRING_TYPE, DYN_TYPE], build)?;
    env.add_overload(
        "jsonpatch.escapeKey",
        "jsonpatch_escape_key_string",
        vec![STRING_TYPE],
        escape_key,
    )?;
    Ok(())
}

/// `T{f: v, ?g: o}` becomes `@rudder.struct('T', {'f': v, ?'g': o})`.
pub(crate) fn to_call(expr: &mut IdedExpr, next_id: &mut u64) {
    let Expr::Struct(s) = &mut expr.expr else {
        return;
    };
    let mut id = || {
        let id = *next_id;
        *next_id += 1;
        id
    };
    let entries = std::mem::take(&mut s.entries)
        .into_iter()
        .filter_map(|e| match e.expr {
            EntryExpr::StructField(f) => Some(IdedEntryExpr {
                id: e.id,
                expr: EntryExpr::MapEntry(MapEntryExpr {
                    key: IdedExpr {
                        id: id(),
                        expr: Expr::Literal(LiteralValue::String(f.field.into())),
                    },
                    value: f.value,
                    optional: f.optional,
                }),
            }),
            // The parser builds struct fields only.
            EntryExpr::MapEntry(_) => None,
        })
        .collect();
    let name = std::mem::take(&mut s.type_name);
    let args = vec![
        IdedExpr {
            id: id(),
            expr: Expr::Literal(LiteralValue::String(name.into())),
        },
        IdedExpr {
            id: id(),
            expr: Expr::Map(MapExpr { entries }),
        },
    ];
    expr.expr = Expr::Call(CallExpr {
        func_name: STRUCT.to_owned(),
        target: None,
        args,
    });
}

fn build<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [name, fields] = super::library::args::<2>(&args)?;
    let Some(name) = name
        .downcast_ref::<CelString>()
        .map(|n| n.inner().to_owned())
    else {
        return Err(ExecutionError::function_error(STRUCT, "type name"));
    };
    let Some(map) = fields.downcast_ref::<CelMap>() else {
        return Err(ExecutionError::function_error(STRUCT, "fields"));
    };
    let mut out = CelStruct::new(name.clone());
    for (key, value) in map.iter() {
        let CelMapKey::String(field) = key else {
            return Err(ExecutionError::function_error(STRUCT, "field name"));
        };
        let field = field.inner();
        if name == JSONPATCH {
            check_patch_field(field, value.as_ref())?;
        }
        out.add_field_value(field.to_owned(), CowVal::Owned(value.clone_as_boxed()));
    }
    Ok(CowVal::Owned(Box::new(out)))
}

/// The fields of upstream's `JSONPatch` type: `op`, `path` and `from` strings, `value` of any
/// type.
fn check_patch_field(field: &str, value: &dyn Val) -> Result<(), ExecutionError> {
    match field {
        "op" | "path" | "from" if value.downcast_ref::<CelString>().is_none() => {
            Err(ExecutionError::UnexpectedType {
                got: value.get_type().name().to_owned(),
                want: format!("string for field {field} in {JSONPATCH}"),
            })
        }
        "op" | "path" | "from" | "value" => Ok(()),
        other => Err(ExecutionError::NoSuchKey(std::sync::Arc::new(format!(
            "field `{other}` on struct `{JSONPATCH}`"
        )))),
    }
}

/// Upstream `jsonpatch.escapeKey`: `~` → `~0`, `/` → `~1` (RFC 6901).
fn escape_key<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [key] = super::library::args::<1>(&args)?;
    let key = super::library::string("jsonpatch.escapeKey", key)?;
    Ok(CowVal::owned(CelString::from(
        key.replace('~', "~0").replace('/', "~1"),
    )))
}

/// Upstream's `CheckTypeNamesMatchFieldPathNames`: a nested initializer's type must be its
/// parent's type name and the field it is set on (`Object.spec{selector: Object.spec.selector{}}`;
/// list items take the list field's name), so a misplaced initializer is caught before it is
/// applied. Works on the JSON-free value tree of an evaluation result.
pub fn check_type_names(value: &cel::Value) -> Result<(), String> {
    fn walk(value: &cel::Value, expected: &str) -> Result<(), String> {
        match value {
            cel::Value::Struct(s) => {
                if s.name() != expected {
                    return Err(format!(
                        "unexpected type name \"{}\", expected \"{expected}\", which matches field name path from root Object type",
                        s.name()
                    ));
                }
                for (field, v) in s.field_values() {
                    let v = cel::Value::try_from(v.as_ref()).map_err(|e| e.to_string())?;
                    walk(&v, &format!("{expected}.{field}"))?;
                }
                Ok(())
            }
            cel::Value::List(items) => items.iter().try_for_each(|i| walk(i, expected)),
            cel::Value::Map(m) => m.map.values().try_for_each(|v| walk(v, expected)),
            _ => Ok(()),
        }
    }
    match value {
        cel::Value::Struct(s) if s.name() == JSONPATCH => Ok(()),
        cel::Value::Struct(s) => walk(value, s.name()),
        _ => Ok(()),
    }
}
