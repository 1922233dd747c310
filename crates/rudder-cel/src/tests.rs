use super::*;
use serde_json::json;

pub(crate) fn eval(expr: &str, vars: &Vars) -> Result<serde_json::Value, EvalError> {
    Program::compile(expr)
        .map_err(|e| EvalError::Runtime(e.to_string()))?
        .eval_json(vars)
}

pub(crate) fn eval_err(expr: &str) -> String {
    match eval(expr, &Vars::new()) {
        Ok(v) => panic!("{expr}: expected an error, got {v}"),
        Err(e) => e.to_string(),
    }
}

pub(crate) fn ok(expr: &str) -> serde_json::Value {
    eval(expr, &Vars::new()).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn holds(expr: &str, vars: &Vars) {
    let p = Program::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    assert_eq!(p.eval_bool(vars), Ok(true), "{expr}");
}

#[test]
fn json_numbers_keep_their_cel_types() {
    let vars = Vars::new().with_json(
        "self",
        &json!({"replicas": 3, "ratio": 0.5, "big": 18446744073709551615u64, "port": "http", "p2": 8080}),
    );
    holds("type(self.replicas) == int", &vars);
    holds("type(self.ratio) == double", &vars);
    holds("type(self.big) == double", &vars);
    holds("self.replicas + 1 == 4", &vars);
    holds("self.ratio * 2.0 == 1.0", &vars);
    // int-or-string is whichever the JSON holds
    holds("type(self.port) == string && type(self.p2) == int", &vars);
}

#[test]
fn core_cel_over_json() {
    let vars = Vars::new()
        .with_json(
            "self",
            &json!({"spec": {"replicas": 3, "minReplicas": 1, "maxReplicas": 5,
                "containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis:7"}],
                "labels": {"app": "web"}, "nullable": null}}),
        )
        .with_json("oldSelf", &json!({"spec": {"replicas": 2}}));
    holds("self.spec.minReplicas <= self.spec.replicas && self.spec.replicas <= self.spec.maxReplicas", &vars);
    holds("has(self.spec.labels) && !has(self.spec.selector)", &vars);
    holds(
        "has(self.spec.labels.app) && 'app' in self.spec.labels",
        &vars,
    );
    holds("self.spec.containers.all(c, c.image != '')", &vars);
    holds("self.spec.containers.exists(c, c.name == 'b')", &vars);
    holds(
        "self.spec.containers.exists_one(c, c.image.startsWith('redis'))",
        &vars,
    );
    holds("self.spec.containers.map(c, c.name) == ['a', 'b']", &vars);
    holds(
        "self.spec.containers.filter(c, c.name == 'a').size() == 1",
        &vars,
    );
    holds("size(self.spec.containers) == 2", &vars);
    holds(
        "self.spec.containers[1].image.matches('^redis:[0-9]+$')",
        &vars,
    );
    holds("self.spec.replicas >= oldSelf.spec.replicas", &vars);
    holds("self.spec.nullable == null", &vars);
    holds("self.spec.labels.all(k, k.size() > 0)", &vars);
    holds("self.spec.?selector.orValue({}) == {}", &vars);
    holds("self.spec.?labels.app.orValue('') == 'web'", &vars);
    holds("self.spec.replicas == 3 ? true : false", &vars);
}

#[test]
fn standard_conversions_and_time() {
    assert_eq!(ok("int('42') + 1"), json!(43));
    assert_eq!(ok("uint(3) + 4u"), json!(7));
    assert_eq!(ok("double(1) / 4.0"), json!(0.25));
    assert_eq!(ok("string(12) + 'a'"), json!("12a"));
    assert_eq!(ok("b'abc'"), json!("YWJj"));
    assert_eq!(ok("string(b'abc')"), json!("abc"));
    assert_eq!(ok("bool('true')"), json!(true));
    assert_eq!(
        ok("timestamp('2024-01-02T03:04:05Z') + duration('1h')"),
        json!("2024-01-02T04:04:05Z")
    );
    assert_eq!(ok("duration('90m')"), json!("1h30m0s"));
    assert_eq!(ok("duration('1.5s')"), json!("1.5s"));
    assert_eq!(ok("duration('1ms')"), json!("1ms"));
    assert_eq!(
        ok("timestamp('2024-01-02T03:04:05Z').getFullYear()"),
        json!(2024)
    );
    assert_eq!(
        ok("timestamp('2024-01-02T03:04:05Z') < timestamp('2025-01-01T00:00:00Z')"),
        json!(true)
    );
    assert_eq!(ok("duration('1h') > duration('59m')"), json!(true));
    assert_eq!(ok("null"), json!(null));
    assert_eq!(
        ok("{'a': [1, 2.5, 'x', true]}"),
        json!({"a": [1, 2.5, "x", true]})
    );
}

#[test]
fn strings_extension() {
    assert_eq!(ok("'TacoCat'.lowerAscii()"), json!("tacocat"));
    assert_eq!(ok("'TacoCat'.upperAscii()"), json!("TACOCAT"));
    assert_eq!(ok("'a,b,c'.split(',')"), json!(["a", "b", "c"]));
    assert_eq!(ok("['a', 'b'].join('-')"), json!("a-b"));
    assert_eq!(ok("'  x  '.trim()"), json!("x"));
    assert_eq!(ok("'hello'.replace('l', 'L')"), json!("heLLo"));
    assert_eq!(ok("'hello'.substring(1, 3)"), json!("el"));
    assert_eq!(ok("'hello'.indexOf('l')"), json!(2));
    assert_eq!(ok("'hello'.lastIndexOf('l')"), json!(3));
    assert_eq!(ok("'hello'.charAt(1)"), json!("e"));
    assert_eq!(ok("'%s is %d'.format(['x', 3])"), json!("x is 3"));
}

#[test]
fn runtime_errors_are_errors_with_upstream_messages() {
    let vars = Vars::new().with_json("self", &json!({"a": 1, "s": "x", "l": [1]}));
    let err = |e: &str| eval(e, &vars).unwrap_err().to_string();
    assert_eq!(err("self.missing == 1"), "no such key: missing");
    assert_eq!(err("self.a / 0"), "division by zero");
    assert_eq!(err("self.a % 0"), "modulus by zero");
    assert_eq!(err("self.l[3]"), "index out of range: 3");
    assert_eq!(err("9223372036854775807 + self.a"), "integer overflow");
    assert_eq!(
        err("self.a > 's'"),
        "found no matching overload for '_>_' applied to '(int, string)'"
    );
    assert_eq!(
        err("nope == 1"),
        "undeclared reference to 'nope' (in container '')"
    );
    assert_eq!(
        Program::compile("self.a").unwrap().eval_string(&vars),
        Err(EvalError::WrongType {
            want: "string",
            got: "int".into()
        })
    );
    assert!(Program::compile("self.s")
        .unwrap()
        .eval_bool(&vars)
        .is_err());
}

#[test]
fn compile_errors() {
    let e = Program::compile("self.a +").unwrap_err().to_string();
    assert!(e.starts_with("ERROR: <input>:1:"), "{e}");
    assert!(matches!(
        Program::compile(&"1+".repeat(60_000)),
        Err(CompileError::TooLong { .. })
    ));
    assert_eq!(
        Program::compile_with("self.a == other", &["self", "oldSelf"])
            .unwrap_err()
            .to_string(),
        "ERROR: <input>:1:11: undeclared reference to 'other' (in container '')\n | self.a == other\n | ..........^"
    );
    let p = Program::compile_with("self.a == oldSelf.a && int('1') == 1", &["self", "oldSelf"])
        .unwrap();
    assert!(p.references("oldSelf"));
    assert!(!Program::compile("self.x").unwrap().references("oldSelf"));
}

/// cel-go's checker resolves every free identifier against the declarations; the variables a
/// comprehension or `cel.bind` introduces are bound in its body, not free.
#[test]
fn undeclared_references_are_refused_scope_aware() {
    let declared = ["self", "oldSelf"];
    for ok in [
        "self.all(x, x > 0)",
        "self.exists(x, x == 'a') && self.exists_one(y, y == 'b')",
        "self.map(x, x * 2).filter(y, y > 2).size() > 0",
        "cel.bind(n, self.size(), n > 1 && n < 5)",
        "self.items.all(i, i.sub.all(j, j > i.min))",
        "self.all(x, self.exists(y, y == x))",
        "has(self.a) && type(self) == map && int('1') == 1",
        "sets.contains(self, [1]) && optional.of(1).hasValue() && strings.quote('a') != ''",
        "oldSelf.map(x, x).size() <= self.size()",
    ] {
        Program::compile_with(ok, &declared).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let err = |e: &str| Program::compile_with(e, &declared).unwrap_err();
    assert_eq!(
        err("x > 0").to_string(),
        "ERROR: <input>:1:1: undeclared reference to 'x' (in container '')\n | x > 0\n | ^"
    );
    // A comprehension variable is not visible after its comprehension.
    assert_eq!(
        err("self.all(x, x > 0) && x == 1").to_string(),
        "ERROR: <input>:1:23: undeclared reference to 'x' (in container '')\n | self.all(x, x > 0) && x == 1\n | ......................^"
    );
    // Nor in its own range.
    assert!(matches!(
        err("x.all(x, x > 0)"),
        CompileError::UndeclaredReference { name, .. } if name == "x"
    ));
    // Every undeclared name is reported, as cel-go does.
    assert_eq!(
        err("a + b").to_string(),
        "ERROR: <input>:1:1: undeclared reference to 'a' (in container '')\n | a + b\n | ^\n\
         ERROR: <input>:1:5: undeclared reference to 'b' (in container '')\n | a + b\n | ....^"
    );
    // The position is on the line the identifier is on.
    assert_eq!(
        err("self.a ==\n  other").to_string(),
        "ERROR: <input>:2:3: undeclared reference to 'other' (in container '')\n |   other\n | ..^"
    );
    // The variables a program reports are the free ones.
    let p = Program::compile("self.all(oldSelf, oldSelf > 0)").unwrap();
    assert!(!p.references("oldSelf"));
    assert_eq!(p.variables().collect::<Vec<_>>(), ["self"]);
}

#[test]
fn hostile_nesting_is_refused_not_a_crash() {
    for deep in [
        "(".repeat(5000) + "1" + &")".repeat(5000),
        "[".repeat(5000) + &"]".repeat(5000),
        "!".repeat(5000) + "true",
        "-".repeat(5000) + "1",
        "a".to_string() + &".b".repeat(5000),
    ] {
        assert!(Program::compile(&deep).is_err());
    }
}

#[test]
fn deepest_accepted_expressions_fit_a_small_stack() {
    // A 1 MiB thread: compile and eval switch to their own stack segment.
    let worst = [
        "1".to_string() + &"+1".repeat(240),
        "x".to_string() + &".all(a, x".repeat(120) + &")".repeat(120),
        "(".repeat(90) + "1" + &")".repeat(90),
        "x".to_string() + &".map(a, [a".repeat(80) + &"])".repeat(80) + " == []",
    ];
    std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let vars = Vars::new().with_json("x", &json!([1]));
            for e in &worst {
                if let Ok(p) = Program::compile(e) {
                    let _ = p.eval(&vars);
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn odd_input_never_panics() {
    let vars = Vars::new().with_json(
        "self",
        &json!({"a": [1, "x", null, {"b": []}], "m": {"": 1}, "f": 1e308, "n": -0.0}),
    );
    let exprs = [
        "self.a.all(x, x > 0)",
        "self.a.map(x, x + 1)",
        "self.a.sort()",
        "self.m[''] / 0",
        "self.f * self.f",
        "int(self.f)",
        "self.a[-1]",
        "self.a['x']",
        "self.m[1]",
        "size(self)",
        "self.a.join(',')",
        "'x'.substring(5)",
        "'x'.charAt(-1)",
        "'%d'.format(['a'])",
        "self.a[3].b[0]",
        "timestamp('nope')",
        "duration('99999999999999h')",
        "int('9999999999999999999999')",
        "'x'.matches('(')",
        "self.a.exists_one(x, x)",
        "uint(-1)",
        "-9223372036854775808 / -1",
        "dyn(self).nope",
        "self.n == 0.0",
        "type(self) == map",
        "{1: 2, 1: 3}",
        "[1][0u]",
        "self.?a[?9].orValue(0)",
        "optional.none().value()",
        "b'\\xff'.size()",
        "string(b'\\xff')",
    ];
    for e in exprs {
        // Any result is fine; what matters is that it returns.
        let _ = eval(e, &vars);
    }
}

#[test]
fn cost_limit_stops_hostile_loops() {
    let list: Vec<i64> = (0..1000).collect();
    let vars = Vars::new().with_json("self", &json!({"l": list}));
    // 1000 × 1000 × 1000 iterations: refused long before.
    let p =
        Program::compile("self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))").unwrap();
    assert_eq!(p.eval_bool(&vars), Err(EvalError::CostLimitExceeded));
    // 1000 + 400 × 1000 is within the default budget.
    holds(
        "self.l.filter(x, x < 400).all(a, self.l.exists(b, b == a))",
        &vars,
    );
    // A tighter budget for a single loop.
    let p = Program::compile("self.l.all(a, a >= 0)")
        .unwrap()
        .with_cost_limit(100);
    assert_eq!(p.eval_bool(&vars), Err(EvalError::CostLimitExceeded));
    // Doubling a string cannot run away.
    let big = "x".repeat(1 << 20);
    let vars = Vars::new().with_json("s", &json!(big));
    let p = Program::compile("size(s + s + s + s) > 0").unwrap();
    assert!(
        matches!(p.eval_bool(&vars), Err(EvalError::Runtime(m)) if m.contains("exceeds the maximum"))
    );
}

#[test]
fn lazy_composition_variables() {
    let programs: Arc<[(String, Program)]> = vec![
        (
            "replicas".to_string(),
            Program::compile("object.spec.replicas").unwrap(),
        ),
        (
            "double".to_string(),
            Program::compile("variables.replicas * 2").unwrap(),
        ),
        (
            "broken".to_string(),
            Program::compile("object.nope").unwrap(),
        ),
        (
            "selfRef".to_string(),
            Program::compile("variables.selfRef").unwrap(),
        ),
    ]
    .into();
    let vars = Vars::new()
        .with_json("object", &json!({"spec": {"replicas": 3}}))
        .with_variables(programs);
    holds("variables.double == 6 && variables.replicas == 3", &vars);
    // A failing variable only fails the expressions that use it.
    assert_eq!(
        eval("variables.broken", &vars).unwrap_err().to_string(),
        "composited variable \"broken\" fails to evaluate: no such key: nope"
    );
    holds("variables.replicas == 3", &vars);
    // A variable cannot see itself (nor later ones).
    assert!(eval("variables.selfRef", &vars).is_err());
    assert_eq!(
        eval("variables.unknown", &vars).unwrap_err().to_string(),
        "no such key: unknown"
    );
}

#[test]
fn programs_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Program>();
    let p = Program::compile("self.n * 2").unwrap();
    std::thread::scope(|s| {
        for n in 0..4 {
            let p = &p;
            s.spawn(move || {
                let vars = Vars::new().with_json("self", &json!({"n": n}));
                assert_eq!(p.eval_json(&vars), Ok(json!(n * 2)));
            });
        }
    });
}

#[test]
fn composition_variables_keep_library_values() {
    let programs: Arc<[(String, Program)]> = vec![
        (
            "mem".to_string(),
            Program::compile("quantity(object.mem)").unwrap(),
        ),
        (
            "net".to_string(),
            Program::compile("cidr(object.net)").unwrap(),
        ),
    ]
    .into();
    let vars = Vars::new()
        .with_json("object", &json!({"mem": "512Mi", "net": "10.0.0.0/8"}))
        .with_variables(programs);
    holds(
        "variables.mem.isLessThan(quantity('1Gi')) && variables.net.containsIP('10.1.2.3')",
        &vars,
    );
    assert_eq!(eval("variables.mem", &vars), Ok(json!("536870912")));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of CEL, so that random sequences are often valid enough to reach evaluation.
    const TOKENS: &[&str] = &[
        "self",
        "oldSelf",
        "x",
        "self.a",
        "self.l",
        "self.m",
        "self.s",
        ".",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "?",
        "!",
        "-",
        "+",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "&&",
        "||",
        " in ",
        "0",
        "1",
        "-1",
        "2u",
        "1.5",
        "1e308",
        "9223372036854775807",
        "'a'",
        "''",
        "b'x'",
        "\"s\"",
        "true",
        "false",
        "null",
        "size(",
        "has(",
        "int(",
        "uint(",
        "double(",
        "string(",
        "bytes(",
        "duration(",
        "timestamp(",
        "type(",
        "dyn(",
        ".all(e, ",
        ".exists(e, ",
        ".exists_one(e, ",
        ".map(e, ",
        ".filter(e, ",
        "e",
        ".size()",
        ".startsWith(",
        ".matches(",
        ".find(",
        ".findAll(",
        ".split(",
        ".join(",
        ".substring(",
        ".charAt(",
        ".indexOf(",
        ".lowerAscii()",
        ".format(",
        ".isSorted()",
        ".sum()",
        ".min()",
        ".max()",
        "quantity(",
        "url(",
        "ip(",
        "cidr(",
        "isQuantity(",
        ".add(",
        ".sub(",
        ".compareTo(",
        ".getHost()",
        ".getQuery()",
        ".containsIP(",
        ".masked()",
        "cel.bind(v, ",
        "sets.contains(",
        "v",
        ".?a",
        "[?0]",
        ".orValue(",
        "optional.of(",
        "optional.none()",
        "'1Gi'",
        "'10.0.0.0/8'",
        "'https://a/b?c=d'",
        "'[0-9]+'",
        "'('",
        "'%s'",
    ];

    fn expression() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(TOKENS), 1..24).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Whatever the expression, compiling and evaluating it returns: a value or an error.
        #[test]
        fn random_expressions_never_panic(e in expression()) {
            let vars = Vars::new()
                .with_json("self", &json!({"a": 1, "l": [3, 1, 2], "m": {"k": "v"}, "s": "10.1.2.3"}))
                .with_json("oldSelf", &json!({"a": "x", "l": []}))
                .with_json("x", &json!([[1], {"a": null}, "s", 1.5]));
            if let Ok(p) = Program::compile(&e) {
                let _ = p.eval_json(&vars);
                let _ = p.eval_bool(&vars);
            }
        }

        /// Arbitrary text, too.
        #[test]
        fn random_text_never_panics(e in "\\PC{0,80}") {
            if let Ok(p) = Program::compile(&e) {
                let _ = p.eval(&Vars::new());
            }
        }
    }
}

/// MutatingAdmissionPolicy's initializers: `Object{...}` apply configurations and `JSONPatch`
/// operations build structs whose JSON is the patch.
#[test]
fn object_initializers_build_apply_configurations_and_patches() {
    let vars = Vars::new().with_json("object", &json!({"metadata": {"name": "a/b~c"}}));
    assert_eq!(
        eval(
            "Object{metadata: Object.metadata{labels: {'team': 'x'}, ?annotations: optional.none()}, \
             spec: Object.spec{containers: [Object.spec.containers{name: 'c', ports: [Object.spec.containers.ports{containerPort: 80}]}]}}",
            &vars
        )
        .unwrap(),
        json!({"metadata": {"labels": {"team": "x"}},
               "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}})
    );
    assert_eq!(
        eval(
            "[JSONPatch{op: 'add', path: '/metadata/labels/' + jsonpatch.escapeKey(object.metadata.name), value: 'v'}, \
              JSONPatch{op: 'test', path: '/a', value: Object.spec{x: [1]}}]",
            &vars
        )
        .unwrap(),
        json!([{"op": "add", "path": "/metadata/labels/a~1b~0c", "value": "v"},
               {"op": "test", "path": "/a", "value": {"x": [1]}}])
    );
    // Fields read back as a struct's.
    holds(
        "Object{a: 1}.a == 1 && has(Object{a: 1}.a) && !has(Object{a: 1}.b)",
        &vars,
    );
    holds(
        "Object{a: 1} == Object{a: 1} && Object{a: 1} != Object{a: 2}",
        &vars,
    );
    // JSONPatch has upstream's four fields.
    assert!(eval("JSONPatch{op: 'add', pth: '/a'}", &vars)
        .unwrap_err()
        .to_string()
        .contains("pth"));
    assert!(eval("JSONPatch{op: 1, path: '/a'}", &vars).is_err());

    let declared = ["object", "Object", "JSONPatch"];
    Program::compile_with(
        "Object{spec: Object.spec{x: [JSONPatch{op: 'remove', path: '/x'}].size()}}",
        &declared,
    )
    .unwrap();
    // Only an environment declaring the types may build them, and only those.
    assert_eq!(
        Program::compile_with("Object{spec: Object.spec{}}", &["object"])
            .unwrap_err()
            .to_string(),
        "ERROR: <input>:1:7: undeclared reference to 'Object' (in container '')\n | Object{spec: Object.spec{}}\n | ......^\n\
         ERROR: <input>:1:25: undeclared reference to 'Object.spec' (in container '')\n | Object{spec: Object.spec{}}\n | ........................^"
    );
    assert!(matches!(
        Program::compile_with("Other{a: 1}", &declared),
        Err(CompileError::UndeclaredReference { name, .. }) if name == "Other"
    ));
}

#[test]
fn object_type_names_must_follow_field_paths() {
    let value = |e: &str| Program::compile(e).unwrap().eval(&Vars::new()).unwrap();
    assert_eq!(
        objects::check_type_names(&value(
            "Object{spec: Object.spec{template: Object.spec.template{}, c: [Object.spec.c{}]}}"
        )),
        Ok(())
    );
    assert_eq!(
        objects::check_type_names(&value("Object{spec: Object.spec{selector: Object.spec.wrong{}}}")),
        Err("unexpected type name \"Object.spec.wrong\", expected \"Object.spec.selector\", which matches field name path from root Object type".into())
    );
    assert_eq!(
        objects::check_type_names(&value("Object.spec{x: Object.spec.x{}}")),
        Ok(())
    );
}
