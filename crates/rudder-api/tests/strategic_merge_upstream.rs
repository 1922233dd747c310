//! Upstream's own strategic merge patch test cases (k8s.io/apimachinery v0.36,
//! `pkg/util/strategicpatch/patch_test.go`), run against this port with upstream's test type
//! `MergeItem`, whose tags are given here in the formats of the crate's schema tables.

use rudder_api::patch::{
    create_two_way_merge_patch, strategic_merge, PatchStrategy, SchemaTable, TypeSchema,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// `MergeItem` and `RetainKeysMergeItem` from upstream's patch_test.go, as struct-fields.tsv rows.
const MERGE_ITEM_FIELDS: &str = "\
test/v1\tMergeItem\tname\tscalar\t\t
test/v1\tMergeItem\tvalue\tscalar\t\t
test/v1\tMergeItem\tother\tscalar\t\t
test/v1\tMergeItem\tmergingList\tlist\ttest/v1\tMergeItem
test/v1\tMergeItem\tnonMergingList\tlist\ttest/v1\tMergeItem
test/v1\tMergeItem\tmergingIntList\tlist\t\t
test/v1\tMergeItem\tnonMergingIntList\tlist\t\t
test/v1\tMergeItem\tmergeItemPtr\tstruct\ttest/v1\tMergeItem
test/v1\tMergeItem\tsimpleMap\tmap\t\t
test/v1\tMergeItem\treplacingItem\tscalar\t\t
test/v1\tMergeItem\tretainKeysMap\tstruct\ttest/v1\tRetainKeysMergeItem
test/v1\tMergeItem\tretainKeysMergingList\tlist\ttest/v1\tMergeItem
test/v1\tRetainKeysMergeItem\tname\tscalar\t\t
test/v1\tRetainKeysMergeItem\tvalue\tscalar\t\t
test/v1\tRetainKeysMergeItem\tother\tscalar\t\t
test/v1\tRetainKeysMergeItem\tsimpleMap\tmap\t\t
test/v1\tRetainKeysMergeItem\tmergingIntList\tlist\t\t
test/v1\tRetainKeysMergeItem\tmergingList\tlist\ttest/v1\tMergeItem
test/v1\tRetainKeysMergeItem\tnonMergingList\tlist\ttest/v1\tMergeItem
";

/// Their `patchStrategy`/`patchMergeKey` tags, as list-and-patch-semantics.tsv rows.
const MERGE_ITEM_SEMANTICS: &str = "\
test/v1\tMergeItem\tmergingList\t[]MergeItem\tmerge\tname
test/v1\tMergeItem\tmergingIntList\t[]int\tmerge\t
test/v1\tMergeItem\tmergeItemPtr\t*MergeItem\tmerge\tname
test/v1\tMergeItem\treplacingItem\truntime.RawExtension\treplace\t
test/v1\tMergeItem\tretainKeysMap\tRetainKeysMergeItem\tretainKeys\t
test/v1\tMergeItem\tretainKeysMergingList\t[]MergeItem\tmerge,retainKeys\tname
test/v1\tRetainKeysMergeItem\tmergingIntList\t[]int\tmerge\t
test/v1\tRetainKeysMergeItem\tmergingList\t[]MergeItem\tmerge\tname
";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    description: String,
    original: Option<Value>,
    two_way: Option<Value>,
    modified: Option<Value>,
    current: Option<Value>,
    three_way: Option<Value>,
    result: Option<Value>,
    two_way_result: Option<Value>,
    expected_error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedCases {
    create: Vec<Case>,
    custom: Vec<Case>,
    custom_raw: Vec<Case>,
}

fn merge_item_table() -> SchemaTable {
    SchemaTable::from_tsv(MERGE_ITEM_FIELDS, MERGE_ITEM_SEMANTICS, "", "")
        .expect("MergeItem schema parses")
}

fn raw_cases() -> Vec<Case> {
    serde_saphyr::from_str(include_str!("fixtures/smp-upstream-raw.yaml"))
        .expect("raw fixtures parse")
}

fn typed_cases() -> TypedCases {
    serde_saphyr::from_str(include_str!("fixtures/smp-upstream-typed.yaml"))
        .expect("typed fixtures parse")
}

fn empty() -> Value {
    json!({})
}

/// Upstream's `testTwoWayPatch` and `testThreeWayPatch` (the apply half of the latter), with
/// `prepare` standing for upstream's `sortMergeListsByName` (identity for the raw cases).
fn check_case(c: &Case, schema: TypeSchema<'_>, prepare: &dyn Fn(&Value) -> Value) -> Vec<String> {
    let mut failures = Vec::new();
    let d = &c.description;
    let original = prepare(c.original.as_ref().unwrap_or(&empty()));

    if let (Some(two_way), Some(modified)) = (&c.two_way, &c.modified) {
        let modified = prepare(modified);
        let expected_patch = prepare(two_way);
        match create_two_way_merge_patch(&original, &modified, schema) {
            Ok(actual) if actual == expected_patch => {}
            Ok(actual) => failures.push(format!(
                "{d}: two-way patch\n  expected {expected_patch}\n  got      {actual}"
            )),
            Err(e) => failures.push(format!("{d}: two-way patch failed: {e}")),
        }
        let expected = prepare(c.two_way_result.as_ref().unwrap_or(&modified));
        check_apply(
            &mut failures,
            d,
            "two-way",
            &original,
            &expected_patch,
            &expected,
            schema,
        );
    }

    if let (Some(current), Some(three_way), Some(result)) = (&c.current, &c.three_way, &c.result) {
        check_apply(
            &mut failures,
            d,
            "three-way",
            &prepare(current),
            &prepare(three_way),
            &prepare(result),
            schema,
        );
    }
    failures
}

fn check_apply(
    failures: &mut Vec<String>,
    d: &str,
    what: &str,
    original: &Value,
    patch: &Value,
    expected: &Value,
    schema: TypeSchema<'_>,
) {
    match strategic_merge(original, patch, schema) {
        Ok(actual) if actual == *expected => {}
        Ok(actual) => failures.push(format!(
            "{d}: applying the {what} patch {patch} to {original}\n  expected {expected}\n  got      {actual}"
        )),
        Err(e) => failures.push(format!("{d}: applying the {what} patch failed: {e}")),
    }
}

/// Apply-only cases (`TestCustomStrategicMergePatch`), with expected errors.
fn check_apply_only(
    c: &Case,
    schema: TypeSchema<'_>,
    prepare: &dyn Fn(&Value) -> Value,
) -> Vec<String> {
    let mut failures = Vec::new();
    let d = &c.description;
    let original = prepare(c.original.as_ref().unwrap_or(&empty()));
    let patch = prepare(c.two_way.as_ref().unwrap_or(&empty()));
    match (
        &c.expected_error,
        strategic_merge(&original, &patch, schema),
    ) {
        (Some(want), Err(e)) if e.to_string().contains(want.as_str()) => {}
        (Some(want), other) => failures.push(format!(
            "{d}: expected an error containing {want:?}, got {other:?}"
        )),
        (None, Err(e)) => failures.push(format!("{d}: failed: {e}")),
        (None, Ok(actual)) => {
            let expected = prepare(c.modified.as_ref().unwrap_or(&empty()));
            if actual != expected {
                failures.push(format!("{d}\n  expected {expected}\n  got      {actual}"));
            }
        }
    }
    failures
}

/// Upstream's `sortMergeListsByNameMap`: sorts merge lists by merge key (recursively), merge
/// lists of scalars, `$retainKeys` and `$deleteFromPrimitiveList` lists, so comparisons ignore
/// the order of merge lists.
fn sort_merge_lists(v: &Value, schema: TypeSchema<'_>) -> Value {
    let Value::Object(m) = v else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let sorted = if k == "$retainKeys" || k.starts_with("$deleteFromPrimitiveList") {
            sort_scalars(v)
        } else if k.starts_with("$setElementOrder") || k == "$patch" {
            v.clone()
        } else if v.is_object() {
            sort_merge_lists(v, schema.lookup_map(k).0)
        } else if let Value::Array(items) = v {
            let (elem, meta) = schema.lookup_list(k);
            if meta.strategy != Some(PatchStrategy::Merge) {
                v.clone()
            } else if items.iter().all(Value::is_object) {
                let mut items: Vec<Value> =
                    items.iter().map(|i| sort_merge_lists(i, elem)).collect();
                items.sort_by_key(|i| i.get(meta.merge_key).map(scalar_key).unwrap_or_default());
                Value::Array(items)
            } else {
                sort_scalars(v)
            }
        } else {
            v.clone()
        };
        out.insert(k.clone(), sorted);
    }
    Value::Object(out)
}

fn scalar_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sort_scalars(v: &Value) -> Value {
    let Value::Array(items) = v else {
        return v.clone();
    };
    let mut items = items.clone();
    items.sort_by_key(scalar_key);
    items.dedup();
    Value::Array(items)
}

#[test]
fn upstream_raw_cases() {
    let table = merge_item_table();
    let schema = table
        .type_schema("test/v1", "MergeItem")
        .expect("MergeItem");
    let cases = raw_cases();
    assert!(cases.len() > 90, "all raw cases load ({})", cases.len());
    // YAML scalars must arrive as upstream's YAML-to-JSON gives them (numbers, not strings).
    assert_eq!(
        cases[1].original,
        Some(json!({"mergingIntList": [1, 2, 3]}))
    );
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|c| check_case(c, schema, &|v| v.clone()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn upstream_typed_cases() {
    let table = merge_item_table();
    let schema = table
        .type_schema("test/v1", "MergeItem")
        .expect("MergeItem");
    let cases = typed_cases();
    let sort = |v: &Value| sort_merge_lists(v, schema);
    let mut failures: Vec<String> = cases
        .create
        .iter()
        .flat_map(|c| check_case(c, schema, &sort))
        .collect();
    failures.extend(
        cases
            .custom
            .iter()
            .flat_map(|c| check_apply_only(c, schema, &sort)),
    );
    failures.extend(
        cases
            .custom_raw
            .iter()
            .flat_map(|c| check_apply_only(c, schema, &|v| v.clone())),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn upstream_error_messages() {
    let table = merge_item_table();
    let schema = table
        .type_schema("test/v1", "MergeItem")
        .expect("MergeItem");
    let apply = |original: Value, patch: Value| {
        strategic_merge(&original, &patch, schema)
            .expect_err("patch must fail")
            .to_string()
    };
    assert_eq!(
        apply(
            json!({"mergingList": [{"name": 1, "value": "a"}]}),
            json!({"mergingList": [{"value": "b"}]})
        ),
        "map: map[value:b] does not contain declared merge key: name"
    );
    assert_eq!(
        apply(json!({}), json!({"simpleMap": {"a": 1}, "$patch": "bogus"})),
        "unknown patch type: bogus in map: map[$patch:bogus simpleMap:map[a:1]]"
    );
    assert_eq!(
        apply(
            json!({"mergingList": [{"name": 1}]}),
            json!({"mergingList": [{"$patch": "merge"}]})
        ),
        "merging lists cannot yet be specified in the patch"
    );
    assert_eq!(
        apply(
            json!({"mergingList": [{"name": 1}]}),
            json!({"mergingList": [1]})
        ),
        "list element types are not identical: [[map[name:1]] [1]]"
    );
    assert_eq!(
        apply(json!({"mergingList": [[1]]}), json!({"mergingList": [[2]]})),
        "lists of lists are not supported"
    );
    assert_eq!(
        apply(json!({}), json!({"$retainKeys": "name"})),
        "invalid patch format of retainKeys"
    );
    assert_eq!(
        apply(json!({}), json!({"$retainKeys": ["name"], "value": "x"})),
        "invalid patch format of retainKeys"
    );
    assert_eq!(
        apply(json!({}), json!({"$deleteFromPrimitiveList": [1]})),
        "invalid patch format of primitive list"
    );
    assert_eq!(
        apply(
            json!({"mergingList": [{"name": 1}]}),
            json!({"$setElementOrder/mergingList": {"name": 1}})
        ),
        "expected a []interface {}, but received a map[string]interface {}"
    );
    assert_eq!(
        apply(
            json!({"mergingList": [{"name": 1}, {"name": 3}, {"name": 2}]}),
            json!({"$setElementOrder/mergingList": [{"name": 1}, {"name": 2}, {"name": 3}],
                   "mergingList": [{"name": 3, "value": 3}, {"name": 1, "value": 1}]})
        ),
        "the order in patch list:\n[map[name:3 value:3] map[name:1 value:1]]\n doesn't match $setElementOrder list:\n[map[name:1] map[name:2] map[name:3]]"
    );
    assert!(strategic_merge(&json!([]), &json!({}), schema).is_err());
    assert!(strategic_merge(&json!({}), &json!("x"), schema).is_err());
}
