//! CRD schemas and the custom resources they check: an `openAPIV3Schema`, an object and an
//! old object (JSON, separated by NUL bytes) go through the structural check, pruning,
//! defaulting and validation (CEL rules included), as a CRD write and a custom resource
//! update do.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rudder_apiextensions::Structural;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let Some(Ok(schema)) = parts.next().map(serde_json::from_slice::<Value>) else {
        return;
    };
    let Ok(s) = Structural::from_schema(&schema) else {
        return;
    };
    let Some(Ok(mut obj)) = parts.next().map(serde_json::from_slice::<Value>) else {
        return;
    };
    let old = parts
        .next()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok());
    s.prune(&mut obj);
    s.default(&mut obj);
    let _ = s.validate(&obj, old.as_ref());
    let _ = s.validate_status(&obj, old.as_ref());
});
