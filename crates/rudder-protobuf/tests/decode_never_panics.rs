//! Fuzz-style property tests: protobuf request bodies come straight from clients, so decoding
//! arbitrary bytes (and valid bodies with bytes flipped, cut or inserted, which reach the deep
//! paths random bytes never do) must give an error or a value, never a panic or a hang.

use proptest::prelude::*;
use rudder_protobuf::{decode_object, encode_object, MAGIC};
use serde_json::json;

fn seeds() -> Vec<Vec<u8>> {
    let objects = [
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"},
                "annotations": {"k": "v"}, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep", "1"],
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                "env": [{"name": "A", "value": "b"}]}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                    "tolerationSeconds": 30}]}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
            "data": {"a": "b"}, "binaryData": {"bin": "AAEC"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "a"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
    ];
    objects
        .iter()
        .map(|o| encode_object(o).expect("seed encodes"))
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Cut(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Cut),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        // Keep the envelope's magic so the mutations reach the message decoder.
        let len = body.len().max(MAGIC.len() + 1);
        let at = |i: usize| MAGIC.len() + i % (len - MAGIC.len());
        match m {
            Mutation::Flip(i, b) => {
                let i = at(*i).min(body.len().saturating_sub(1));
                if let Some(x) = body.get_mut(i) {
                    *x ^= b | 1;
                }
            }
            Mutation::Cut(i) => body.truncate(at(*i)),
            Mutation::Insert(i, bytes) => {
                let i = at(*i).min(body.len());
                body.splice(i..i, bytes.iter().copied());
            }
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_object(&body);
        let mut enveloped = MAGIC.to_vec();
        enveloped.extend_from_slice(&body);
        let _ = decode_object(&enveloped);
    }

    #[test]
    fn mutated_bodies_never_panic(
        seed in 0usize..3,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let body = mutate(seeds()[seed].clone(), &mutations);
        if let Ok(value) = decode_object(&body) {
            // Whatever decodes must encode again without a panic (errors are allowed: a
            // mutated body may carry fields the encoder refuses).
            let _ = encode_object(&value);
        }
    }
}
