//! Upstream's `kubernetes.regex` library: `find` and `findAll` (RE2 syntax; Rust's `regex` crate
//! is an RE2-family engine with the same linear-time guarantee).

use super::{args, int, owned, string};
use cel::common::types::{CelBool, CelList, CelString, DYN_TYPE, INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

/// What `matches` calls are rewritten to: the same test with the compiled pattern cached (the
/// standard `matches` compiles its pattern on every call).
pub(crate) const MATCHES: &str = "@rudder.matches";

pub(crate) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(MATCHES, MATCHES, vec![DYN_TYPE, DYN_TYPE], matches)?;
    env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )?;
    Ok(())
}

/// Compiled patterns, as upstream compiles a constant pattern once per program.
static CACHE: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_SIZE: usize = 256;
/// Bounds what one pattern may compile to, so a hostile pattern cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

pub(crate) fn compile(function: &str, pattern: &str) -> Result<Arc<regex::Regex>, ExecutionError> {
    if let Some(re) = CACHE.lock().ok().and_then(|c| c.get(pattern).cloned()) {
        return Ok(re);
    }
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ExecutionError::function_error(function, format!("Illegal regex: {e}")))?;
    let re = Arc::new(re);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), Arc::clone(&re));
    }
    Ok(re)
}

fn matches<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s, pattern] = args::<2>(&a)?;
    let (Ok(text), Ok(pattern)) = (string("matches", s), string("matches", pattern)) else {
        return Err(super::no_overload("matches", &[s, pattern]));
    };
    Ok(owned(CelBool::from(
        compile("matches", pattern)?.is_match(text),
    )))
}

/// Checks a constant pattern when the expression is compiled, as cel-go's regex optimisation
/// does, so that a rule with a broken pattern is refused up front.
pub(crate) fn check_constant(pattern: &str) -> Result<(), String> {
    compile("matches", pattern)
        .map(|_| ())
        .map_err(|e| match e {
            ExecutionError::FunctionError { message, .. } => message,
            other => other.to_string(),
        })
}

fn find<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s, pattern] = args::<2>(&a)?;
    let re = compile("find", string("find", pattern)?)?;
    let s = string("find", s)?;
    let found = re.find(s).map(|m| m.as_str()).unwrap_or("");
    Ok(owned(CelString::from(found.to_owned())))
}

fn find_all<'b, 'v>(a: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (s, pattern, limit) = match a.as_slice() {
        [s, p] => (&**s, &**p, -1),
        [s, p, n] => (&**s, &**p, int("findAll", &**n)?),
        _ => return Err(ExecutionError::invalid_argument_count(2, a.len())),
    };
    let re = compile("findAll", string("findAll", pattern)?)?;
    let s = string("findAll", s)?;
    // Go's FindAllString: a negative limit means all matches.
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let found: Vec<Box<dyn Val>> = re
        .find_iter(s)
        .take(limit)
        .map(|m| Box::new(CelString::from(m.as_str().to_owned())) as Box<dyn Val>)
        .collect();
    Ok(owned(CelList::from(found)))
}

#[cfg(test)]
mod tests {
    use crate::tests::{eval_err, ok};
    use serde_json::json;

    #[test]
    fn upstream_examples() {
        assert_eq!(ok("'abc 123'.find('[0-9]+')"), json!("123"));
        assert_eq!(ok("'abc 123'.find('xyz')"), json!(""));
        assert_eq!(ok("'123 abc 456'.findAll('[0-9]+')"), json!(["123", "456"]));
        assert_eq!(ok("'123 abc 456'.findAll('[0-9]+', 1)"), json!(["123"]));
        assert_eq!(ok("'123 abc 456'.findAll('[0-9]+', 0)"), json!([]));
        assert_eq!(
            ok("'123 abc 456'.findAll('[0-9]+', -1)"),
            json!(["123", "456"])
        );
        assert_eq!(ok("'123 abc 456'.findAll('xyz')"), json!([]));
        // Empty matches next to a previous match are skipped, as Go's FindAllString does.
        assert_eq!(ok("'12 a'.findAll('[0-9]*')"), json!(["12", "", ""]));
        assert!(eval_err("'x'.find('(')").starts_with("Illegal regex: "));
        assert_eq!(ok("'abc'.matches('^a.c$')"), json!(true));
        assert_eq!(ok("matches('abc', 'b')"), json!(true));
        assert_eq!(
            ok("['a1', 'b2'].all(s, s.matches('[a-z][0-9]'))"),
            json!(true)
        );
        let vars = crate::Vars::new().with_json("p", &json!("^x+$"));
        assert_eq!(
            crate::tests::eval("'xxx'.matches(p) && !'xy'.matches(p)", &vars),
            Ok(json!(true))
        );
        assert!(eval_err("'x'.matches(1)").contains("no matching overload for 'matches'"));
        assert_eq!(
            crate::Program::compile("self.matches('(')").unwrap_err().to_string(),
            "ERROR: <input>:1:1: Illegal regex: regex parse error:\n    (\n    ^\nerror: unclosed group"
        );
    }
}
