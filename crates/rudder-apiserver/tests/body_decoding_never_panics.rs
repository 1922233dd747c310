//! Fuzz-style property test: a create or update body is decoded by its Content-Type before any
//! validation, so whatever a client sends as JSON or YAML (anchors, aliases, tags, flow and block
//! styles, broken indentation, random bytes) must give a value or a 400, never a panic.

use proptest::prelude::*;
use rudder_apiserver::encode::decode_body;

/// Fragments that steer the YAML parser into its less common paths.
const YAML: &[&str] = &[
    "apiVersion: v1\n",
    "kind: ConfigMap\n",
    "metadata:\n",
    "  name: a\n",
    "data:\n",
    "  k: v\n",
    "- ",
    "  - ",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!!binary ",
    "!tag ",
    "? ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "|\n",
    ">-\n",
    "'",
    "\"",
    "\\u00e9",
    "#c\n",
    "---\n",
    "...\n",
    "\t",
    "\n",
    "  ",
    "%YAML 1.2\n",
    "~",
    "null",
    "1e400",
    "0x1F",
    ".inf",
    "yes",
];

const JSON: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"a\"",
    "\"\\ud800\"",
    "\"\\u00e9\"",
    "1e400",
    "-0",
    "123456789012345678901234567890",
    "null",
    "true",
    " ",
    "\"apiVersion\"",
    "\"v1\"",
];

fn assembled(parts: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(parts), 0..40).prop_map(|v| v.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn yaml_bodies_never_panic(body in prop_oneof![
        assembled(YAML),
        prop::collection::vec(any::<u8>(), 0..128),
    ]) {
        let _ = decode_body(Some("application/yaml"), &body);
    }

    #[test]
    fn json_bodies_never_panic(body in prop_oneof![
        assembled(JSON),
        prop::collection::vec(any::<u8>(), 0..128),
    ]) {
        let _ = decode_body(Some("application/json; charset=utf-8"), &body);
        let _ = decode_body(None, &body);
    }

    #[test]
    fn content_types_never_panic(ct in "[ -~]{0,40}", body in prop::collection::vec(any::<u8>(), 0..32)) {
        let _ = decode_body(Some(&ct), &body);
    }
}

/// An alias bomb (9^10 nodes from 10 lines) is refused by the YAML decoder's node budget with a
/// 400 instead of expanding until the server runs out of memory.
#[test]
fn yaml_alias_bomb_is_a_bad_request() {
    let lols = ["\"lol\""; 9].join(",");
    let mut doc = format!("a0: &a0 [{lols}]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(",");
        doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let err = decode_body(Some("application/yaml"), doc.as_bytes()).expect_err("bomb refused");
    assert_eq!(err.code, 400, "{}", err.message);
    assert!(err.message.contains("budget"), "{}", err.message);
}
