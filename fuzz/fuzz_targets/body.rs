//! Request bodies as `decode_body` (rudder-apiserver's `encode.rs`) decodes them: the first
//! byte picks the content type (JSON, YAML, Kubernetes protobuf), the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 3 {
        0 => {
            let _ = serde_json::from_slice::<Value>(body);
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = serde_saphyr::from_str::<Value>(text);
            }
        }
        _ => {
            let _ = rudder_protobuf::decode_object(body);
        }
    }
});
