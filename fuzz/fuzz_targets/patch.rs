//! Patch bodies against stored objects, as the API server applies them: JSON merge patch,
//! strategic merge patch (Pod and Deployment schemas) and its two-way diff, JSON patch. The
//! input is two JSON documents separated by a NUL byte: the object and the patch.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_api::patch::{create_two_way_merge_patch, merge_patch, strategic_merge, SchemaTable};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(original), Ok(patch)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    let _ = merge_patch(&original, &patch);
    if let Ok(table) = SchemaTable::builtin() {
        for (api_version, kind) in [("v1", "Pod"), ("apps/v1", "Deployment")] {
            if let Some(schema) = table.kind(api_version, kind) {
                let _ = strategic_merge(&original, &patch, schema);
                let _ = create_two_way_merge_patch(&original, &patch, schema);
            }
        }
    }
    if let Ok(ops) = serde_json::from_value::<json_patch::Patch>(patch) {
        let mut doc = original;
        let _ = json_patch::patch(&mut doc, &ops);
    }
});
