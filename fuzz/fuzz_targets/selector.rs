//! What clients send in query strings and label selectors: `labelSelector` and
//! `fieldSelector` strings, resource quantities, and `LabelSelector` objects (as JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_api::quantity;
use rudder_api::selector::{FieldSelector, Selector};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Selector::parse(text);
        let _ = FieldSelector::parse(text);
        let _ = quantity::parse(text);
        // Printing exercises the canonical form's scaling of whatever parsed.
        let _ = quantity::Amount::parse(text).map(|a| a.to_string());
    }
    if let Ok(n) = serde_json::from_slice::<serde_json::Number>(data) {
        let _ = quantity::canonical_number(&n);
    }
    if let Ok(sel) = serde_json::from_slice(data) {
        let _ = Selector::from_label_selector(Some(&sel));
    }
});
