//! Bodies written byte by byte from the field numbers in upstream's `generated.proto`, so these
//! tests depend on neither this crate's encoder nor its generated schema being right.

use rudder_protobuf::{decode_object, encode_object, is_supported, ProtobufError};
use serde_json::json;

/// `k8s\0` + runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}, as client-go
/// writes it.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = vec![0x0a, api_version.len() as u8];
    type_meta.extend_from_slice(api_version.as_bytes());
    type_meta.extend_from_slice(&[0x12, kind.len() as u8]);
    type_meta.extend_from_slice(kind.as_bytes());
    let mut out = b"k8s\0".to_vec();
    out.extend_from_slice(&[0x0a, type_meta.len() as u8]);
    out.extend_from_slice(&type_meta);
    out.extend_from_slice(&[0x12, raw.len() as u8]);
    out.extend_from_slice(raw);
    out.extend_from_slice(&[0x1a, 0x00, 0x22, 0x00]);
    out
}

#[test]
fn minimal_namespace() {
    #[rustfmt::skip]
    let body = [
        0x6b, 0x38, 0x73, 0x00,                                     // "k8s\0"
        0x0a, 0x0f,                                                 // 1: typeMeta, 15 bytes
            0x0a, 0x02, b'v', b'1',                                 //   1: apiVersion "v1"
            0x12, 0x09, b'N', b'a', b'm', b'e', b's', b'p', b'a', b'c', b'e', // 2: kind
        0x12, 0x05,                                                 // 2: raw, 5 bytes
            0x0a, 0x03,                                             //   Namespace.metadata
                0x0a, 0x01, b'x',                                   //     ObjectMeta.name "x"
        0x1a, 0x00,                                                 // 3: contentEncoding ""
        0x22, 0x00,                                                 // 4: contentType ""
    ];
    assert_eq!(
        body.to_vec(),
        envelope("v1", "Namespace", &[0x0a, 0x03, 0x0a, 0x01, b'x'])
    );
    assert_eq!(
        decode_object(&body).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})
    );
}

/// `kubectl create namespace x`: gogo writes every non-pointer field, zeros included.
#[test]
fn namespace_with_gogo_zero_values() {
    #[rustfmt::skip]
    let raw = [
        0x0a, 0x11,                 // 1: metadata, 17 bytes
            0x0a, 0x01, b'x',       //   1: name "x"
            0x12, 0x00,             //   2: generateName ""
            0x1a, 0x00,             //   3: namespace ""
            0x22, 0x00,             //   4: selfLink ""
            0x2a, 0x00,             //   5: uid ""
            0x32, 0x00,             //   6: resourceVersion ""
            0x38, 0x00,             //   7: generation 0
            0x42, 0x00,             //   8: creationTimestamp {} (the zero time)
        0x12, 0x00,                 // 2: spec {}
        0x1a, 0x02,                 // 3: status
            0x0a, 0x00,             //   1: phase ""
    ];
    assert_eq!(
        decode_object(&envelope("v1", "Namespace", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "x"},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn configmap_with_maps_and_binary_data() {
    #[rustfmt::skip]
    let raw = [
        0x0a, 0x10,                                         // 1: metadata
            0x0a, 0x02, b'c', b'm',                         //   1: name "cm"
            0x5a, 0x0a,                                     //   11: labels entry
                0x0a, 0x03, b'a', b'p', b'p',               //     key "app"
                0x12, 0x03, b'w', b'e', b'b',               //     value "web"
        0x12, 0x06,                                         // 2: data entry
            0x0a, 0x01, b'k', 0x12, 0x01, b'v',
        0x1a, 0x0a,                                         // 3: binaryData entry
            0x0a, 0x03, b'b', b'i', b'n',
            0x12, 0x03, 0x00, 0x01, 0xff,
        0x20, 0x00,                                         // 4: immutable false (*bool)
    ];
    assert_eq!(
        decode_object(&envelope("v1", "ConfigMap", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"app": "web"}},
            "data": {"k": "v"},
            "binaryData": {"bin": "AAH/"},
            "immutable": false,
        })
    );
}

#[test]
fn service_port_with_named_target_port() {
    #[rustfmt::skip]
    let raw = [
        0x12, 0x1c,                                 // 2: spec
            0x0a, 0x1a,                             //   1: ports[0]
                0x0a, 0x04, b'h', b't', b't', b'p', //     1: name
                0x12, 0x03, b'T', b'C', b'P',       //     2: protocol
                0x18, 0x50,                         //     3: port 80
                0x22, 0x09,                         //     4: targetPort
                    0x08, 0x01,                     //       type String
                    0x10, 0x00,                     //       intVal 0
                    0x1a, 0x03, b'w', b'e', b'b',   //       strVal "web"
                0x28, 0x00,                         //     5: nodePort 0
    ];
    assert_eq!(
        decode_object(&envelope("v1", "Service", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "web"}]},
        })
    );
}

#[test]
fn encoder_matches_hand_written_bytes() {
    let body =
        encode_object(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}))
            .unwrap();
    assert_eq!(
        body,
        envelope("v1", "Namespace", &[0x0a, 0x03, 0x0a, 0x01, b'x'])
    );
}

#[test]
fn rejects_bodies_without_the_magic() {
    assert_eq!(decode_object(b""), Err(ProtobufError::Empty));
    assert_eq!(decode_object(b"k8s\0"), Err(ProtobufError::Empty));
    assert_eq!(
        decode_object(b"k8s\x01\x0a\x00"),
        Err(ProtobufError::MissingMagic)
    );
    assert_eq!(
        decode_object(br#"{"kind":"Namespace"}"#),
        Err(ProtobufError::MissingMagic)
    );
    assert_eq!(decode_object(b"k8"), Err(ProtobufError::MissingMagic));
}

#[test]
fn rejects_truncated_varints() {
    // The envelope's first length never ends.
    let err = decode_object(b"k8s\0\x0a\x80").unwrap_err();
    assert!(
        matches!(&err, ProtobufError::Malformed { reason, .. } if reason == "truncated varint"),
        "{err}"
    );
    // Inside the object: ObjectMeta.generation is a varint cut short.
    let err = decode_object(&envelope("v1", "Namespace", &[0x0a, 0x02, 0x38, 0x80])).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::Malformed {
            path: "metadata.generation".into(),
            reason: "truncated varint".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "malformed protobuf at metadata.generation: truncated varint"
    );
}

#[test]
fn rejects_lengths_past_the_end() {
    let err = decode_object(&envelope("v1", "Namespace", &[0x0a, 0x05, 0x0a])).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::Malformed {
            path: "metadata".into(),
            reason: "field wants 5 bytes but only 1 are left".into()
        }
    );
}

#[test]
fn unknown_kind_names_both_parts() {
    let err = decode_object(&envelope("example.com/v1", "Widget", &[])).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::UnsupportedKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        }
    );
    assert!(err.is_unsupported_media_type());
    assert_eq!(
        err.to_string(),
        "no protobuf schema for apiVersion \"example.com/v1\", kind \"Widget\""
    );
    assert!(!is_supported("example.com/v1", "Widget"));
    assert!(!is_supported("v1", "Deployment"));
}

#[test]
fn envelope_without_kind_or_version() {
    assert_eq!(
        decode_object(&envelope("v1", "", &[])),
        Err(ProtobufError::MissingKind)
    );
    assert_eq!(
        decode_object(&envelope("", "Pod", &[])),
        Err(ProtobufError::MissingApiVersion { kind: "Pod".into() })
    );
    let mut gz = envelope("v1", "Pod", &[]);
    let n = gz.len();
    gz[n - 3] = 0x04; // contentEncoding: replace the "" with a 4-byte string
    gz.truncate(n - 2);
    gz.extend_from_slice(b"gzip\x22\x00");
    assert_eq!(
        decode_object(&gz),
        Err(ProtobufError::UnsupportedContentEncoding("gzip".into()))
    );
}

#[test]
fn rejects_wrong_wire_types_and_groups() {
    // Namespace.metadata sent as a varint.
    let err = decode_object(&envelope("v1", "Namespace", &[0x08, 0x01])).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::Malformed { path, .. } if path == "metadata"),
        "{err}"
    );
    // Wire type 3 (start group) is never written by gogo.
    let err = decode_object(&envelope("v1", "Namespace", &[0x0b])).unwrap_err();
    assert!(
        matches!(&err, ProtobufError::Malformed { reason, .. } if reason == "invalid wire type 3")
    );
    assert!(!err.is_unsupported_media_type());
}

#[test]
fn skips_unknown_fields() {
    // Field 99 (a field newer than the schema) in ObjectMeta, then name.
    let raw = [0x0a, 0x08, 0x98, 0x06, 0x07, 0x0a, 0x03, b'a', b'b', b'c'];
    assert_eq!(
        decode_object(&envelope("v1", "Namespace", &raw)).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "abc"}})
    );
}

#[test]
fn garbage_never_panics() {
    // Deterministic xorshift so failures reproduce.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kinds = [
        ("v1", "Pod"),
        ("apps/v1", "Deployment"),
        ("v1", "Secret"),
        ("v1", "Event"),
    ];
    let mut failures = 0;
    for round in 0..4000 {
        let len = (next() % 120) as usize;
        let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let (v, k) = kinds[round % kinds.len()];
        if decode_object(&envelope(v, k, &raw)).is_err() {
            failures += 1;
        }
        let mut body = b"k8s\0".to_vec();
        body.extend_from_slice(&raw);
        let _ = decode_object(&body);
    }
    assert!(
        failures > 3000,
        "random bytes should mostly fail, only {failures} did"
    );
}

#[test]
fn raw_extension_may_hold_a_nested_protobuf_object() {
    let inner = envelope("v1", "Namespace", &[0x0a, 0x03, 0x0a, 0x01, b'x']);
    let mut raw_extension = vec![0x0a, inner.len() as u8];
    raw_extension.extend_from_slice(&inner);
    let mut raw = vec![0x12, raw_extension.len() as u8]; // ControllerRevision.data
    raw.extend_from_slice(&raw_extension);
    assert_eq!(
        decode_object(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap(),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "data": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
        })
    );
}

#[test]
fn times_distinguish_zero_from_epoch() {
    // Event: 6: firstTimestamp, 7: lastTimestamp, 10: eventTime (MicroTime).
    #[rustfmt::skip]
    let raw = [
        0x32, 0x00,                             // firstTimestamp: empty, the zero time
        0x3a, 0x04, 0x08, 0x00, 0x10, 0x00,     // lastTimestamp: explicit {0, 0}, the epoch
        0x52, 0x08,                             // eventTime
            0x08, 0x01,                         //   seconds 1
            0x10, 0x80, 0xde, 0xa0, 0xcb, 0x05, //   nanos 1_500_000_000 (time.Unix normalises)
    ];
    assert_eq!(
        decode_object(&envelope("v1", "Event", &raw)).unwrap(),
        json!({
            "apiVersion": "v1",
            "kind": "Event",
            "lastTimestamp": "1970-01-01T00:00:00Z",
            "eventTime": "1970-01-01T00:00:02.500000Z",
        })
    );
    // A varint cut short inside the MicroTime.
    let err = decode_object(&envelope("v1", "Event", &[0x52, 0x02, 0x08, 0x80])).unwrap_err();
    assert_eq!(
        err,
        ProtobufError::Malformed {
            path: "eventTime".into(),
            reason: "truncated varint".into()
        }
    );
}
