//! `x-kubernetes-validations`: CEL rules on schema nodes (upstream `apiserver/schema/cel`).

use std::sync::Arc;

use cel::objects::OptionalValue;
use rudder_api::field::{BadValue, ErrorType, FieldError, Path};
use rudder_cel::{Program, Vars};
use serde_json::Value;

use crate::schema::{child, Additional, Node};

/// What a rule's environment declares (upstream's `self` and `oldSelf`).
const VARIABLES: &[&str] = &["self", "oldSelf"];

/// One compiled rule.
#[derive(Clone, Debug)]
pub struct Rule {
    rule: String,
    program: Program,
    message: String,
    message_expression: Option<Program>,
    /// `fieldPath` without its leading dot, appended to the node's path in errors.
    field_path: String,
    reason: String,
    /// The rule reads `oldSelf`: evaluated on updates that have an old value only.
    transition: bool,
    optional_old_self: bool,
}

impl Rule {
    /// Compile one `x-kubernetes-validations` entry; errors are CRD validation errors. As
    /// upstream's environment declares only `self` and `oldSelf`, a rule or messageExpression
    /// reading anything else is refused here (`undeclared reference to 'x'`), not at its first
    /// evaluation.
    pub(crate) fn compile(raw: &Value, at: &Path, errs: &mut Vec<FieldError>) -> Option<Rule> {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let rule = s("rule");
        if rule.trim().is_empty() {
            errs.push(FieldError::required(&at.child("rule"), ""));
            return None;
        }
        let program = match Program::compile_with(&rule, VARIABLES) {
            Ok(p) => p,
            Err(e) => {
                errs.push(FieldError::invalid(
                    &at.child("rule"),
                    BadValue::Json(raw.clone()),
                    format!("compilation failed: {e}"),
                ));
                return None;
            }
        };
        let message_expression = match s("messageExpression") {
            m if m.trim().is_empty() => None,
            m => match Program::compile_with(&m, VARIABLES) {
                Ok(p) => Some(p),
                Err(e) => {
                    errs.push(FieldError::invalid(
                        &at.child("messageExpression"),
                        BadValue::Json(raw.clone()),
                        format!("messageExpression compilation failed: {e}"),
                    ));
                    return None;
                }
            },
        };
        let message = s("message");
        if message.contains('\n') {
            errs.push(FieldError::invalid(
                &at.child("message"),
                message.as_str(),
                "message must not contain line breaks",
            ));
        }
        let reason = s("reason");
        const REASONS: [&str; 4] = [
            "FieldValueInvalid",
            "FieldValueForbidden",
            "FieldValueRequired",
            "FieldValueDuplicate",
        ];
        if !reason.is_empty() && !REASONS.contains(&reason.as_str()) {
            errs.push(FieldError::not_supported(
                &at.child("reason"),
                reason.as_str(),
                &REASONS,
            ));
        }
        let transition = program.references("oldSelf");
        Some(Rule {
            rule,
            program,
            message,
            message_expression,
            field_path: s("fieldPath").trim_start_matches('.').to_owned(),
            reason,
            transition,
            optional_old_self: raw.get("optionalOldSelf") == Some(&Value::Bool(true)),
        })
    }

    /// Upstream `ruleMessageOrDefault`, or the `messageExpression`'s result when it yields a
    /// non-blank string.
    fn message(&self, vars: &Vars) -> String {
        if let Some(m) = &self.message_expression {
            if let Ok(text) = m.eval_string(vars) {
                if !text.trim().is_empty() && !text.contains('\n') {
                    return text;
                }
            }
        }
        if self.message.trim().is_empty() {
            format!("failed rule: {}", self.rule.trim())
        } else {
            self.message.trim().to_owned()
        }
    }
}

/// The schema type a failing rule reports as its value (`"object"`, `"string"`, …).
fn type_value(s: &Node) -> BadValue {
    if s.int_or_string {
        BadValue::Str("integer,string".into())
    } else {
        BadValue::Str(s.type_.clone())
    }
}

fn error(path: &Path, s: &Node, reason: &str, detail: String) -> FieldError {
    let error_type = match reason {
        "FieldValueForbidden" => ErrorType::Forbidden,
        "FieldValueRequired" => ErrorType::Required,
        "FieldValueDuplicate" => ErrorType::Duplicate,
        _ => ErrorType::Invalid,
    };
    let (bad_value, detail) = match error_type {
        ErrorType::Forbidden | ErrorType::Required => (BadValue::Str(String::new()), detail),
        ErrorType::Duplicate => (type_value(s), String::new()),
        _ => (type_value(s), detail),
    };
    FieldError {
        error_type,
        field: path.to_string(),
        bad_value,
        detail,
    }
}

/// Evaluate every rule on `v` and below. `old` is the correlated old value (updates): rules
/// on unchanged values are not evaluated again (ratcheting), transition rules only run with
/// an old value.
pub(crate) fn validate(
    s: &Node,
    v: &Value,
    old: Option<&Value>,
    at: &Path,
    errs: &mut Vec<FieldError>,
) {
    if old == Some(v) {
        return;
    }
    // A null the schema allows has nothing for the rules to look at.
    let nothing_to_check = s.rules.is_empty() || (v.is_null() && s.nullable);
    if !nothing_to_check {
        let plain = Vars::new().with_json("self", v);
        let mut with_old = Vars::new().with_json("self", v);
        if let Some(o) = old {
            with_old.insert_json("oldSelf", o);
        }
        let mut optional = Vars::new().with_json("self", v);
        let old_opt = match old {
            Some(o) => OptionalValue::of(rudder_cel::json::to_value(o)),
            None => OptionalValue::none(),
        };
        // An optional holds any value, so binding it cannot fail.
        let _ = optional.insert_value("oldSelf", cel::Value::Opaque(Arc::new(old_opt)));
        for r in &s.rules {
            // Transition rules need an old value, unless `optionalOldSelf` makes `oldSelf` an
            // optional (none on create).
            let vars = match (r.transition, r.optional_old_self, old) {
                (false, _, _) => &plain,
                (true, true, _) => &optional,
                (true, false, Some(_)) => &with_old,
                (true, false, None) => continue,
            };
            let path = if r.field_path.is_empty() {
                at.clone()
            } else {
                child(at, &r.field_path)
            };
            match r.program.eval_bool(vars) {
                Ok(true) => {}
                Ok(false) => errs.push(error(&path, s, &r.reason, r.message(vars))),
                Err(e) => errs.push(FieldError::invalid(
                    at,
                    type_value(s),
                    format!("{e} evaluating rule: {}", r.rule.trim()),
                )),
            }
        }
    }
    match v {
        Value::Object(m) => {
            let old_map = old.and_then(Value::as_object);
            for (k, c) in m {
                let o = old_map.and_then(|o| o.get(k));
                if let Some(p) = s.properties.get(k) {
                    validate(p, c, o, &child(at, k), errs);
                } else if let Some(Additional::Schema(a)) = &s.additional {
                    let p = at.key(k.as_str());
                    validate(a, c, o, &p, errs);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = &s.items {
                let old_items = old.and_then(Value::as_array);
                for (i, item) in items.iter().enumerate() {
                    let o = crate::validate::correlate(s, item, old_items);
                    let p = at.index(i);
                    validate(is, item, o, &p, errs);
                }
            }
        }
        _ => {}
    }
}
