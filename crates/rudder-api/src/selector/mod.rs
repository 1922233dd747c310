//! Label and field selectors: parsing the `labelSelector` / `fieldSelector` query parameters,
//! converting `metav1.LabelSelector`, matching, and printing back in canonical form.
//!
//! The API server filters lists and watches with these, and the watch cache uses
//! [`labels::Selector::requires_exact_match`] / [`fields::FieldSelector::requires_exact_match`]
//! to serve indexed lookups (e.g. pods by `spec.nodeName`).

pub mod fields;
pub mod labels;
pub mod node;

pub use fields::{FieldOperator, FieldRequirement, FieldSelector, FieldSelectorError, Fields};
pub use labels::{Labels, Operator, Requirement, Selector, SelectorError};

#[cfg(test)]
mod proptests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::fields::{FieldOperator, FieldRequirement, FieldSelector};
    use super::labels::{Operator, Requirement, Selector};

    /// Valid label-value-ish names: alphanumeric ends, `-_.` inside, at most 63 bytes.
    fn name_part() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?"
    }

    fn label_key() -> impl Strategy<Value = String> {
        (
            prop::option::of("[a-z0-9]([-a-z0-9]{0,5}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
            name_part(),
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), name_part()]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let set = prop::collection::btree_set(label_value(), 1..4);
        (label_key(), 0u8..9, set, 0i64..1000).prop_map(|(key, op, values, n)| {
            let one = values.iter().next().cloned().unwrap_or_default();
            let (op, vals): (Operator, Vec<String>) = match op {
                0 => (Operator::Equals, vec![one]),
                1 => (Operator::DoubleEquals, vec![one]),
                2 => (Operator::NotEquals, vec![one]),
                3 => (Operator::In, values.into_iter().collect()),
                4 => (Operator::NotIn, values.into_iter().collect()),
                5 => (Operator::Exists, vec![]),
                6 => (Operator::DoesNotExist, vec![]),
                7 => (Operator::GreaterThan, vec![n.to_string()]),
                _ => (Operator::LessThan, vec![n.to_string()]),
            };
            Requirement::new(&key, op, vals).unwrap_or_else(|e| panic!("generator bug: {e}"))
        })
    }

    fn field_requirement() -> impl Strategy<Value = FieldRequirement> {
        (
            "[a-z][a-zA-Z0-9]{0,6}(\\.[a-z][a-zA-Z0-9]{0,6}){0,2}",
            any::<bool>(),
            // Any printable text, including the characters that need escaping.
            "[ -~\u{e9}\u{2603}]{0,12}",
        )
            .prop_map(|(field, eq, value)| {
                let op = if eq {
                    FieldOperator::Equals
                } else {
                    FieldOperator::NotEquals
                };
                FieldRequirement::new(field, op, value)
            })
    }

    proptest! {
        #[test]
        fn label_selector_display_parse_round_trips(reqs in prop::collection::vec(requirement(), 0..5)) {
            let sel = Selector::from_requirements(reqs);
            let text = sel.to_string();
            let parsed = Selector::parse(&text);
            prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
            let parsed = parsed.unwrap_or_default();
            prop_assert_eq!(&parsed, &sel, "{}", text);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn field_selector_display_parse_round_trips(terms in prop::collection::vec(field_requirement(), 0..5)) {
            let sel = FieldSelector::from_terms(terms);
            let text = sel.to_string();
            let parsed = FieldSelector::parse(&text);
            prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
            let parsed = parsed.unwrap_or_default();
            // Parsing sorts the terms by their text; the set of terms is what must survive.
            let want: BTreeSet<_> = sel.requirements().iter().cloned().collect();
            let got: BTreeSet<_> = parsed.requirements().iter().cloned().collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(FieldSelector::parse(&parsed.to_string()).ok(), Some(parsed));
        }

        #[test]
        fn label_parser_never_panics(s in "[ -~]{0,40}") {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn field_parser_never_panics(s in "[ -~\u{e9}]{0,40}") {
            let _ = FieldSelector::parse(&s);
        }
    }
}
