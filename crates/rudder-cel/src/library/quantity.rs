//! Upstream's `kubernetes.quantity` library: `quantity()`, `isQuantity()` and the `Quantity`
//! methods (`compareTo`, `isGreaterThan`, `isLessThan`, `add`, `sub`, `sign`, `isInteger`,
//! `asInteger`, `asApproximateFloat`), on `rudder-api`'s quantity parsing.
//!
//! `rudder_api::quantity::Quantity` is exact to the nano-unit and offers addition but no
//! negation, so a CEL quantity carries its negation along (both parsed from the string, or both
//! built by the same additions): `a.sub(b)` is `a + (-b)`.

use super::{args, int, owned, string};
use cel::common::types::{CelBool, CelDouble, CelInt, Type, INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use rudder_api::quantity::{self as q, Quantity as Exact};
use std::any::Any;
use std::cmp::Ordering;

pub(crate) static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_type(QUANTITY_TYPE.to_owned())?;
    let qt = || QUANTITY_TYPE.to_owned();
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        to_quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    env.add_member_overload("sign", "quantity_sign", qt(), vec![], sign)?;
    env.add_member_overload(
        "isGreaterThan",
        "quantity_is_greater_than",
        qt(),
        vec![qt()],
        greater,
    )?;
    env.add_member_overload(
        "isLessThan",
        "quantity_is_less_than",
        qt(),
        vec![qt()],
        less,
    )?;
    env.add_member_overload(
        "compareTo",
        "quantity_compare_to",
        qt(),
        vec![qt()],
        compare_to,
    )?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_get_float",
        qt(),
        vec![],
        as_float,
    )?;
    env.add_member_overload("asInteger", "quantity_get_int", qt(), vec![], as_integer)?;
    env.add_member_overload("isInteger", "quantity_is_integer", qt(), vec![], is_integer)?;
    env.add_member_overload("add", "quantity_add", qt(), vec![qt()], add)?;
    env.add_member_overload("add", "quantity_add_int", qt(), vec![INT_TYPE], add)?;
    env.add_member_overload("sub", "quantity_sub", qt(), vec![qt()], sub)?;
    env.add_member_overload("sub", "quantity_sub_int", qt(), vec![INT_TYPE], sub)?;
    Ok(())
}

/// A CEL `Quantity`: the value and its negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    value: Exact,
    negated: Exact,
}

impl Quantity {
    /// Parses `s` as upstream's `resource.ParseQuantity`.
    pub fn parse(s: &str) -> Result<Quantity, &'static str> {
        let value = q::parse(s)?;
        let flipped = match s.as_bytes().first() {
            Some(b'-') => format!("+{}", &s[1..]),
            Some(b'+') => format!("-{}", &s[1..]),
            _ => format!("-{s}"),
        };
        let negated = q::parse(&flipped)?;
        Ok(Quantity { value, negated })
    }

    fn from_int(i: i64) -> Quantity {
        let exact = |n: i128| q::parse(&n.to_string()).unwrap_or_else(|_| Exact::zero());
        Quantity {
            value: exact(i128::from(i)),
            negated: exact(-i128::from(i)),
        }
    }

    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            value: self.value.add(other.value),
            negated: self.negated.add(other.negated),
        }
    }

    fn neg(self) -> Quantity {
        Quantity {
            value: self.negated,
            negated: self.value,
        }
    }

    /// The exact value in nano-units, found by bisection against parsed `<n>n` quantities
    /// (the parsed representation is not public).
    fn nanos(self) -> i128 {
        let nanos = |n: i128| q::parse(&format!("{n}n")).unwrap_or_else(|_| Exact::zero());
        let (mut lo, mut hi) = (i128::MIN / 2, i128::MAX / 2);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if nanos(mid) < self.value {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Upstream's `AsInt64`: whole units that fit an int64.
    fn as_i64(self) -> Option<i64> {
        if !self.value.is_integer() || self.value < i64::MIN || self.value > i64::MAX {
            return None;
        }
        Some(self.value.value())
    }

    /// The canonical string: whole units, else milli-, micro- or nano-units.
    pub fn to_canonical(self) -> String {
        if let Some(i) = self.as_i64() {
            return i.to_string();
        }
        let n = self.nanos();
        for (div, suffix) in [(1_000_000, "m"), (1_000, "u"), (1, "n")] {
            if n % div == 0 {
                return format!("{}{suffix}", n / div);
            }
        }
        format!("{n}n")
    }

    fn sign(self) -> i64 {
        match self.value.cmp(&Exact::zero()) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }
    }
}

impl Val for Quantity {
    fn get_type(&self) -> &Type {
        &QUANTITY_TYPE
    }

    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }

    fn equals(&self, other: &dyn Val) -> bool {
        other
            .downcast_ref::<Quantity>()
            .is_some_and(|o| o.value == self.value)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(*self)
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }
}

impl StaticVal for Quantity {}

fn quantity_arg(function: &str, v: &dyn Val) -> Result<Quantity, ExecutionError> {
    v.downcast_ref::<Quantity>()
        .copied()
        .ok_or_else(|| super::no_overload(function, &[v]))
}

/// A quantity or an int (as `add` and `sub` accept).
fn operand(function: &str, v: &dyn Val) -> Result<Quantity, ExecutionError> {
    match v.downcast_ref::<Quantity>() {
        Some(q) => Ok(*q),
        None => int(function, v).map(Quantity::from_int),
    }
}

fn to_quantity<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    let parsed = Quantity::parse(string("quantity", s)?)
        .map_err(|e| ExecutionError::function_error("quantity", e))?;
    Ok(owned(parsed))
}

fn is_quantity<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = args::<1>(&a)?;
    Ok(owned(CelBool::from(
        q::parse(string("isQuantity", s)?).is_ok(),
    )))
}

fn pair(function: &str, a: &[CowVal<'_, '_>]) -> Result<(Quantity, Quantity), ExecutionError> {
    let [x, y] = args::<2>(a)?;
    Ok((quantity_arg(function, x)?, quantity_arg(function, y)?))
}

fn greater<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (x, y) = pair("isGreaterThan", &a)?;
    Ok(owned(CelBool::from(x.value > y.value)))
}

fn less<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (x, y) = pair("isLessThan", &a)?;
    Ok(owned(CelBool::from(x.value < y.value)))
}

fn compare_to<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (x, y) = pair("compareTo", &a)?;
    Ok(owned(CelInt::from(x.value.cmp(&y.value) as i64)))
}

fn sign<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x] = args::<1>(&a)?;
    Ok(owned(CelInt::from(quantity_arg("sign", x)?.sign())))
}

fn as_float<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x] = args::<1>(&a)?;
    let nanos = quantity_arg("asApproximateFloat", x)?.nanos();
    Ok(owned(CelDouble::from(nanos as f64 / 1e9)))
}

fn as_integer<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x] = args::<1>(&a)?;
    match quantity_arg("asInteger", x)?.as_i64() {
        Some(i) => Ok(owned(CelInt::from(i))),
        None => Err(ExecutionError::function_error(
            "asInteger",
            "cannot convert value to integer",
        )),
    }
}

fn is_integer<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x] = args::<1>(&a)?;
    Ok(owned(CelBool::from(
        quantity_arg("isInteger", x)?.as_i64().is_some(),
    )))
}

fn add<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x, y] = args::<2>(&a)?;
    Ok(owned(quantity_arg("add", x)?.add(operand("add", y)?)))
}

fn sub<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [x, y] = args::<2>(&a)?;
    Ok(owned(quantity_arg("sub", x)?.add(operand("sub", y)?.neg())))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval_err, ok};
    use serde_json::json;

    #[test]
    fn upstream_examples() {
        assert_eq!(
            ok("type(quantity('1.5G')) == kubernetes.Quantity"),
            json!(true)
        );
        assert_eq!(ok("quantity('200k')"), json!("200000"));
        assert!(eval_err("quantity('200K')").contains("unable to parse quantity's suffix"));
        assert!(eval_err("quantity('Three')").starts_with("quantities must match"));
        assert!(!eval_err("quantity('Mi')").is_empty());
        assert_eq!(ok("isQuantity('1.3G')"), json!(true));
        assert_eq!(ok("isQuantity('1.3Gi')"), json!(true));
        assert_eq!(ok("isQuantity('1,3G')"), json!(false));
        assert_eq!(ok("isQuantity('10000k')"), json!(true));
        assert_eq!(ok("isQuantity('200K')"), json!(false));
        assert_eq!(ok("isQuantity('Three')"), json!(false));
        assert_eq!(ok("isQuantity('Mi')"), json!(false));
        assert_eq!(ok("quantity('50000000G').isInteger()"), json!(true));
        assert_eq!(ok("quantity('50k').isInteger()"), json!(true));
        assert_eq!(
            eval_err("quantity('9999999999999999999999999999999999999G').asInteger()"),
            "cannot convert value to integer"
        );
        assert_eq!(
            ok("quantity('9999999999999999999999999999999999999G').isInteger()"),
            json!(false)
        );
        assert_eq!(ok("quantity('50k').asInteger() == 50000"), json!(true));
        assert_eq!(
            ok("quantity('50k').sub(20000).asApproximateFloat() == 30000.0"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50k').add(quantity('20k')) == quantity('70k')"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50k').add(20) == quantity('50020')"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50k').sub(quantity('20k')) == quantity('30k')"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50k').sub(20000) == quantity('30k')"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')"),
            json!(true)
        );
        assert_eq!(ok("quantity('200M').compareTo(quantity('0.2G'))"), json!(0));
        assert_eq!(ok("quantity('50M').compareTo(quantity('50Mi'))"), json!(-1));
        assert_eq!(ok("quantity('50Mi').compareTo(quantity('50M'))"), json!(1));
        assert_eq!(
            ok("quantity('150Mi').isGreaterThan(quantity('100Mi'))"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('50Mi').isGreaterThan(quantity('100Mi'))"),
            json!(false)
        );
        assert_eq!(
            ok("quantity('50M').isLessThan(quantity('100M'))"),
            json!(true)
        );
        assert_eq!(
            ok("quantity('100M').isLessThan(quantity('50M'))"),
            json!(false)
        );
        assert_eq!(ok("quantity('-1.5').sign()"), json!(-1));
        assert_eq!(ok("quantity('0').sign()"), json!(0));
        assert_eq!(ok("quantity('1m').sign()"), json!(1));
        assert_eq!(ok("quantity('1.5').asApproximateFloat()"), json!(1.5));
        assert_eq!(ok("quantity('1u').asApproximateFloat()"), json!(0.000001));
        assert_eq!(ok("quantity('500m')"), json!("500m"));
        assert_eq!(ok("quantity('-1.5').sub(quantity('-2'))"), json!("500m"));
        assert_eq!(ok("quantity('1Ki').asInteger()"), json!(1024));
    }

    #[test]
    fn charts_compare_requests_to_limits() {
        let vars = crate::Vars::new().with_json(
            "object",
            &json!({"spec": {"containers": [
                {"resources": {"requests": {"memory": "64Mi", "cpu": "250m"}, "limits": {"memory": "128Mi", "cpu": "1"}}}
            ]}}),
        );
        let p = crate::Program::compile(
            "object.spec.containers.all(c, quantity(c.resources.requests.memory).isLessThan(quantity(c.resources.limits.memory)) \
             && quantity(c.resources.requests.cpu).compareTo(quantity(c.resources.limits.cpu)) <= 0)",
        )
        .unwrap();
        assert_eq!(p.eval_bool(&vars), Ok(true));
    }
}
