//! Upstream's `format` library: named Kubernetes string formats (`format.dns1123Label()`,
//! `format.named('uuid')`, …) whose `validate(s)` yields `optional.none()` for a valid string
//! and otherwise the list of upstream's validation messages (from rudder-api's validators).

use super::{args, owned, string};
use cel::common::types::{CelList, CelOptional, CelString, Type, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use rudder_api::validation as v;
use std::any::Any;

pub(crate) static FORMAT_TYPE: Type = Type::new_unspecified_type("kubernetes.NamedFormat");

/// A named format; `validate` returns its error messages (none when valid).
#[derive(Debug, Clone, Copy)]
pub struct Format {
    name: &'static str,
    validate: fn(&str) -> Vec<String>,
}

impl Val for Format {
    fn get_type(&self) -> &Type {
        &FORMAT_TYPE
    }

    fn cel_type() -> &'static Type {
        &FORMAT_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other
            .downcast_ref::<Format>()
            .is_some_and(|o| o.name == self.name)
    }

    fn clone_as_boxed<'b>(&self) -> Box<dyn Val + 'b> {
        Box::new(*self)
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Format {}

fn one(message: &str, ok: bool) -> Vec<String> {
    if ok {
        Vec::new()
    } else {
        vec![message.to_owned()]
    }
}

/// Upstream's `ConstantFormats`, by CEL name.
const FORMATS: &[Format] = &[
    Format {
        name: "dns1123Label",
        validate: |s| v::name_is_dns_label(s, false),
    },
    Format {
        name: "dns1123Subdomain",
        validate: |s| v::name_is_dns_subdomain(s, false),
    },
    Format {
        name: "dns1035Label",
        validate: |s| v::name_is_dns1035_label(s, false),
    },
    Format {
        name: "qualifiedName",
        validate: v::is_qualified_name,
    },
    Format {
        name: "dns1123LabelPrefix",
        validate: |s| v::name_is_dns_label(s, true),
    },
    Format {
        name: "dns1123SubdomainPrefix",
        validate: |s| v::name_is_dns_subdomain(s, true),
    },
    Format {
        name: "dns1035LabelPrefix",
        validate: |s| v::name_is_dns1035_label(s, true),
    },
    Format {
        name: "labelValue",
        validate: v::is_valid_label_value,
    },
    Format {
        name: "uri",
        validate: |s| match super::urls::parse_request_uri(s) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("parse {s:?}: {e}")],
        },
    },
    Format {
        name: "uuid",
        validate: |s| one("does not match the UUID format", is_uuid(s)),
    },
    Format {
        name: "byte",
        validate: |s| {
            use base64::Engine as _;
            one(
                "invalid base64",
                base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
            )
        },
    },
    Format {
        name: "date",
        validate: |s| {
            one(
                "invalid date",
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            )
        },
    },
    Format {
        name: "datetime",
        validate: |s| {
            one(
                "invalid datetime",
                chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            )
        },
    },
];

/// strfmt's UUID pattern: 8-4-4-4-12 hex digits, the dashes optional, any case.
fn is_uuid(s: &str) -> bool {
    const UUID: &str = "(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$";
    super::regex::compile("validate", UUID).is_ok_and(|re| re.is_match(s))
}

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(FORMAT_TYPE.to_owned())?;
    env.add_overload("format.named", "format-named", vec![STRING_TYPE], named)?;
    env.add_member_overload(
        "validate",
        "format-validate",
        FORMAT_TYPE.to_owned(),
        vec![STRING_TYPE],
        validate,
    )?;
    let constants: [(&str, cel::common::functions::Function); 13] = [
        ("format.dns1123Label", |_| constant("dns1123Label")),
        ("format.dns1123Subdomain", |_| constant("dns1123Subdomain")),
        ("format.dns1035Label", |_| constant("dns1035Label")),
        ("format.qualifiedName", |_| constant("qualifiedName")),
        ("format.dns1123LabelPrefix", |_| {
            constant("dns1123LabelPrefix")
        }),
        ("format.dns1123SubdomainPrefix", |_| {
            constant("dns1123SubdomainPrefix")
        }),
        ("format.dns1035LabelPrefix", |_| {
            constant("dns1035LabelPrefix")
        }),
        ("format.labelValue", |_| constant("labelValue")),
        ("format.uri", |_| constant("uri")),
        ("format.uuid", |_| constant("uuid")),
        ("format.byte", |_| constant("byte")),
        ("format.date", |_| constant("date")),
        ("format.datetime", |_| constant("datetime")),
    ];
    for (name, f) in constants {
        env.add_overload(name, name, vec![], f)?;
    }
    Ok(())
}

fn lookup(name: &str) -> Option<Format> {
    FORMATS.iter().find(|f| f.name == name).copied()
}

fn constant<'b, 'v>(name: &str) -> Result<CowVal<'b, 'v>, ExecutionError> {
    lookup(name)
        .map(owned)
        .ok_or_else(|| ExecutionError::function_error("format", format!("unknown format {name}")))
}

fn named<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [name] = args::<1>(&a)?;
    Ok(owned(match lookup(string("format.named", name)?) {
        Some(f) => CelOptional::of(Box::new(f)),
        None => CelOptional::none(),
    }))
}

fn validate<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [f, s] = args::<2>(&a)?;
    let Some(f) = f.downcast_ref::<Format>() else {
        return Err(super::no_overload("validate", &[f, s]));
    };
    let errors = (f.validate)(string("validate", s)?);
    if errors.is_empty() {
        return Ok(owned(CelOptional::none()));
    }
    let list: Vec<Box<dyn Val>> = errors
        .into_iter()
        .map(|e| Box::new(CelString::from(e)) as Box<dyn Val>)
        .collect();
    Ok(owned(CelOptional::of(Box::new(CelList::from(list)))))
}

#[cfg(test)]
mod tests {
    use crate::tests::ok;
    use serde_json::json;

    #[test]
    fn upstream_examples() {
        assert_eq!(
            ok("format.dns1123Label().validate('my-label-name')"),
            json!(null)
        );
        assert_eq!(
            ok("!format.dns1123Label().validate('my-label-name').hasValue()"),
            json!(true)
        );
        assert_eq!(
            ok("format.dns1123Subdomain().validate('apiextensions.k8s.io').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.dns1035Label().validate('my-label-name').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.qualifiedName().validate('apiextensions.k8s.io/v1beta1').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.dns1123LabelPrefix().validate('my-label-prefix-').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.dns1123SubdomainPrefix().validate('mysubdomain.prefix.-').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.dns1035LabelPrefix().validate('my-label-prefix-').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.uri().validate('http://example.com').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.byte().validate('aGVsbG8=').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.date().validate('2021-01-01').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.datetime().validate('2021-01-01T00:00:00Z').hasValue()"),
            json!(false)
        );
        assert_eq!(
            ok("format.labelValue().validate('a b').value().size() > 0"),
            json!(true)
        );
        assert_eq!(
            ok("format.dns1123Label().validate('Not_A_Label').value()"),
            json!(["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"])
        );
        assert_eq!(
            ok("format.uuid().validate('nope').value()"),
            json!(["does not match the UUID format"])
        );
        assert_eq!(
            ok("format.byte().validate('!!').value()"),
            json!(["invalid base64"])
        );
        assert_eq!(
            ok("format.date().validate('2021-13-01').value()"),
            json!(["invalid date"])
        );
        assert_eq!(
            ok("format.datetime().validate('yesterday').value()"),
            json!(["invalid datetime"])
        );
        assert_eq!(
            ok("format.uri().validate('../x').value()"),
            json!(["parse \"../x\": invalid URI for request"])
        );
        assert_eq!(
            ok("format.named('uuid').hasValue() && !format.named('nope').hasValue()"),
            json!(true)
        );
        assert_eq!(
            ok("format.named('dns1123Label').value().validate('ok').hasValue()"),
            json!(false)
        );
    }
}
