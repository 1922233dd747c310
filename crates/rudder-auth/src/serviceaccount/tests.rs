//! Cases from upstream's pkg/serviceaccount/jwt_test.go (`TestTokenGenerateAndValidate`) and
//! claims_test.go (`TestClaims`, `TestValidatePrivateClaims`), over our own keys and objects.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;

use super::*;

static RSA_PEM: LazyLock<String> = LazyLock::new(|| {
    rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap()
        .serialize_pem()
});
static OTHER_RSA_PEM: LazyLock<String> = LazyLock::new(|| {
    rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap()
        .serialize_pem()
});
static EC_PEM: LazyLock<String> = LazyLock::new(|| {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem()
});

const NOW: i64 = 1_700_000_000;

/// Objects by `kind/namespace/name`.
#[derive(Default)]
struct Objects(HashMap<String, ObjectInfo>);

impl Objects {
    fn with(mut self, key: &str, uid: &str) -> Self {
        self.0.insert(
            key.into(),
            ObjectInfo {
                uid: uid.into(),
                ..Default::default()
            },
        );
        self
    }
    fn edit(mut self, key: &str, f: impl FnOnce(&mut ObjectInfo)) -> Self {
        f(self.0.get_mut(key).unwrap());
        self
    }
    fn find(&self, key: String) -> Result<ObjectInfo, String> {
        self.0.get(&key).cloned().ok_or(format!("{key} not found"))
    }
}

impl TokenGetter for Objects {
    fn service_account(&self, ns: &str, name: &str) -> Result<ObjectInfo, String> {
        self.find(format!("sa/{ns}/{name}"))
    }
    fn pod(&self, ns: &str, name: &str) -> Result<ObjectInfo, String> {
        self.find(format!("pod/{ns}/{name}"))
    }
    fn secret(&self, ns: &str, name: &str) -> Result<ObjectInfo, String> {
        self.find(format!("secret/{ns}/{name}"))
    }
    fn node(&self, name: &str) -> Result<ObjectInfo, String> {
        self.find(format!("node//{name}"))
    }
}

fn generator(pem: &str, issuer: &str) -> TokenGenerator {
    TokenGenerator::new(issuer, SigningKey::from_pem(pem.as_bytes()).unwrap())
}

fn auth(kind: TokenKind, issuer: &str, pems: &[&str], objects: Objects) -> JwtAuthenticator {
    let keys = pems
        .iter()
        .flat_map(|p| public_keys_from_pem(p.as_bytes()).unwrap())
        .collect();
    JwtAuthenticator::new(
        kind,
        vec![issuer.into()],
        keys,
        vec![DEFAULT_ISSUER.into()],
        Arc::new(objects),
    )
    .with_clock(|| NOW)
}

fn base() -> Objects {
    Objects::default()
        .with("sa/ns/my-sa", "12345")
        .with("secret/ns/my-secret", "67890")
        .with("pod/ns/my-pod", "p-uid")
        .with("node//my-node", "n-uid")
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn bound(b: &BoundObject, exp: i64) -> BoundClaims {
    claims(
        "ns",
        "my-sa",
        "12345",
        b,
        exp,
        0,
        &[DEFAULT_ISSUER.into()],
        NOW,
    )
}

fn err(r: Result<Option<UserInfo>, AuthError>) -> String {
    match r {
        Err(e) => e.to_string(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn claims_as_upstream() {
    let pod = BoundObject::Pod {
        pod: Ref::new("my-pod", "p-uid"),
        node: Some(Ref::new("my-node", "n-uid")),
    };
    let c = claims(
        "ns",
        "my-sa",
        "12345",
        &pod,
        100,
        60,
        &["1".into(), "2".into()],
        NOW,
    );
    let mut v = serde_json::to_value(&c).unwrap();
    assert!(v["jti"].as_str().is_some_and(|j| j.len() == 36));
    v.as_object_mut().unwrap().remove("jti");
    assert_eq!(
        v,
        serde_json::json!({
            "aud": ["1", "2"], "exp": NOW + 100, "iat": NOW, "nbf": NOW,
            "sub": "system:serviceaccount:ns:my-sa",
            "kubernetes.io": {
                "namespace": "ns",
                "serviceaccount": {"name": "my-sa", "uid": "12345"},
                "pod": {"name": "my-pod", "uid": "p-uid"},
                "node": {"name": "my-node", "uid": "n-uid"},
                "warnafter": NOW + 60,
            }
        })
    );
    // Keys come out sorted, as go-jose writes them.
    let text = serde_json::to_string(&bound(&BoundObject::Secret(Ref::new("s", "u")), 1)).unwrap();
    let order: Vec<usize> = [
        "\"aud\"",
        "\"exp\"",
        "\"iat\"",
        "\"jti\"",
        "\"kubernetes.io\"",
        "\"nbf\"",
        "\"sub\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains(
        r#""secret":{"name":"s","uid":"u"},"serviceaccount":{"name":"my-sa","uid":"12345"}"#
    ));
}

#[test]
fn bound_token_round_trip_rsa_and_ecdsa() {
    for pem in [RSA_PEM.as_str(), EC_PEM.as_str()] {
        let g = generator(pem, DEFAULT_ISSUER);
        let token = g.bound_token(&bound(&BoundObject::None, 3600)).unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], g.key().public_key().key_id.as_str());
        assert!(header.get("typ").is_none());
        assert_eq!(payload(&token)["iss"], DEFAULT_ISSUER);
        let user = auth(TokenKind::Bound, DEFAULT_ISSUER, &[pem], base())
            .authenticate_token(&token)
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:my-sa");
        assert_eq!(user.uid, "12345");
        assert_eq!(
            user.groups,
            ["system:serviceaccounts", "system:serviceaccounts:ns"]
        );
        let jti = payload(&token)["jti"].as_str().unwrap().to_string();
        assert_eq!(user.extra[CREDENTIAL_ID_KEY], [format!("JTI={jti}")]);
    }
}

#[test]
fn keys_and_issuers() {
    let g = generator(&RSA_PEM, DEFAULT_ISSUER);
    let token = g.bound_token(&bound(&BoundObject::None, 3600)).unwrap();
    // Another issuer's token is not ours: the chain goes on.
    let other = auth(TokenKind::Bound, "https://other", &[&RSA_PEM], base());
    assert_eq!(other.authenticate_token(&token).unwrap(), None);
    assert_eq!(other.authenticate_token("not-a-jwt").unwrap(), None);
    // Right issuer, wrong key: the kid names no key we have.
    let wrong = auth(TokenKind::Bound, DEFAULT_ISSUER, &[&OTHER_RSA_PEM], base());
    assert_eq!(
        err(wrong.authenticate_token(&token)),
        "invalid signature, no keys found"
    );
    // Several keys: the one the kid names verifies.
    let many = auth(
        TokenKind::Bound,
        DEFAULT_ISSUER,
        &[&OTHER_RSA_PEM, &EC_PEM, &RSA_PEM],
        base(),
    );
    assert!(many.authenticate_token(&token).unwrap().is_some());
    // A tampered payload fails verification.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut p = payload(&token);
    p["sub"] = "system:serviceaccount:ns:admin".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(p.to_string());
    assert!(err(many.authenticate_token(&parts.join("."))).contains("InvalidSignature"));
}

#[test]
fn time_and_audience_checks() {
    let g = generator(&RSA_PEM, DEFAULT_ISSUER);
    let a = auth(TokenKind::Bound, DEFAULT_ISSUER, &[&RSA_PEM], base());
    let mut c = bound(&BoundObject::None, 600);
    c.exp = Some(NOW - LEEWAY_SECONDS - 1);
    assert_eq!(
        err(a.authenticate_token(&g.bound_token(&c).unwrap())),
        "service account token has expired"
    );
    // Within the leeway it still works.
    c.exp = Some(NOW - LEEWAY_SECONDS + 1);
    assert!(a
        .authenticate_token(&g.bound_token(&c).unwrap())
        .unwrap()
        .is_some());
    let mut c = bound(&BoundObject::None, 600);
    c.nbf = Some(NOW + 120);
    assert_eq!(
        err(a.authenticate_token(&g.bound_token(&c).unwrap())),
        "service account token is not valid yet"
    );
    let mut c = bound(&BoundObject::None, 600);
    c.iat = Some(NOW + 120);
    assert_eq!(
        err(a.authenticate_token(&g.bound_token(&c).unwrap())),
        "service account token is issued in the future"
    );
    let mut c = bound(&BoundObject::None, 600);
    c.aud = vec!["vault".into()];
    assert_eq!(
        err(a.authenticate_token(&g.bound_token(&c).unwrap())),
        "token audiences [\"vault\"] is invalid for the target audiences [\"https://kubernetes.default.svc.cluster.local\"]"
    );
    // One matching audience among several is enough.
    c.aud = vec!["vault".into(), DEFAULT_ISSUER.into()];
    assert!(a
        .authenticate_token(&g.bound_token(&c).unwrap())
        .unwrap()
        .is_some());
}

#[test]
fn bound_objects_must_still_exist() {
    let g = generator(&RSA_PEM, DEFAULT_ISSUER);
    let pod = BoundObject::Pod {
        pod: Ref::new("my-pod", "p-uid"),
        node: Some(Ref::new("my-node", "n-uid")),
    };
    let token = g.bound_token(&bound(&pod, 600)).unwrap();
    let user = auth(TokenKind::Bound, DEFAULT_ISSUER, &[&RSA_PEM], base())
        .authenticate_token(&token)
        .unwrap()
        .unwrap();
    assert_eq!(user.extra[POD_NAME_KEY], ["my-pod"]);
    assert_eq!(user.extra[POD_UID_KEY], ["p-uid"]);
    assert_eq!(user.extra[NODE_NAME_KEY], ["my-node"]);
    assert_eq!(user.extra[NODE_UID_KEY], ["n-uid"]);

    let cases: Vec<(BoundObject, Objects, &str)> = vec![
        (
            BoundObject::None,
            Objects::default(),
            "sa/ns/my-sa not found",
        ),
        (
            BoundObject::None,
            base().with("sa/ns/my-sa", "other"),
            "service account UID (other) does not match claim (12345)",
        ),
        (
            BoundObject::None,
            base().edit("sa/ns/my-sa", |o| o.deletion_timestamp = Some(NOW - 61)),
            "service account ns/my-sa has been deleted",
        ),
        (
            pod.clone(),
            base().with("pod/ns/my-pod", "new"),
            "pod UID (new) does not match service account pod ref claim (p-uid)",
        ),
        (
            pod.clone(),
            Objects::default().with("sa/ns/my-sa", "12345"),
            "service account token has been invalidated",
        ),
        (
            pod.clone(),
            base().edit("pod/ns/my-pod", |o| o.deletion_timestamp = Some(NOW - 61)),
            "service account token has been invalidated",
        ),
        (
            BoundObject::Secret(Ref::new("my-secret", "67890")),
            Objects::default().with("sa/ns/my-sa", "12345"),
            "service account token has been invalidated",
        ),
        (
            BoundObject::Secret(Ref::new("my-secret", "67890")),
            base().with("secret/ns/my-secret", "x"),
            "secret UID (x) does not match service account secret ref claim (67890)",
        ),
        (
            BoundObject::Node(Ref::new("my-node", "n-uid")),
            base().with("node//my-node", "y"),
            "node UID (y) does not match service account node ref claim (n-uid)",
        ),
    ];
    for (b, objects, want) in cases {
        let token = g.bound_token(&bound(&b, 600)).unwrap();
        let a = auth(TokenKind::Bound, DEFAULT_ISSUER, &[&RSA_PEM], objects);
        assert_eq!(err(a.authenticate_token(&token)), want, "{b:?}");
    }
    // A pod deleted within the leeway still authenticates (graceful deletion).
    let objects = base().edit("pod/ns/my-pod", |o| o.deletion_timestamp = Some(NOW - 10));
    let token = g.bound_token(&bound(&pod, 600)).unwrap();
    assert!(auth(TokenKind::Bound, DEFAULT_ISSUER, &[&RSA_PEM], objects)
        .authenticate_token(&token)
        .unwrap()
        .is_some());
}

#[test]
fn legacy_tokens() {
    let g = generator(&RSA_PEM, LEGACY_ISSUER);
    let token = g
        .legacy_token(&legacy_claims("ns", "my-sa", "12345", "my-secret"))
        .unwrap();
    assert_eq!(
        payload(&token),
        serde_json::json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "ns",
            "kubernetes.io/serviceaccount/secret.name": "my-secret",
            "kubernetes.io/serviceaccount/service-account.name": "my-sa",
            "kubernetes.io/serviceaccount/service-account.uid": "12345",
            "sub": "system:serviceaccount:ns:my-sa",
        })
    );
    let stored = |t: &str| {
        let t = t.as_bytes().to_vec();
        base().edit("secret/ns/my-secret", move |o| o.token = Some(t))
    };
    let user = auth(
        TokenKind::Legacy,
        LEGACY_ISSUER,
        &[&RSA_PEM],
        stored(&token),
    )
    .authenticate_token(&token)
    .unwrap()
    .unwrap();
    assert_eq!(user.name, "system:serviceaccount:ns:my-sa");
    assert_eq!(user.uid, "12345");
    assert!(user.extra.is_empty());
    // Bound-token authenticators ignore legacy tokens and the other way round.
    let bound_auth = auth(
        TokenKind::Bound,
        DEFAULT_ISSUER,
        &[&RSA_PEM],
        stored(&token),
    );
    assert_eq!(bound_auth.authenticate_token(&token).unwrap(), None);

    let cases: Vec<(Objects, &str)> = vec![
        (base(), "Token does not match server's copy"),
        (stored("other"), "Token does not match server's copy"),
        (
            Objects::default().with("sa/ns/my-sa", "12345"),
            "Token has been invalidated",
        ),
        (
            stored(&token).edit("secret/ns/my-secret", |o| o.deletion_timestamp = Some(NOW)),
            "Token has been invalidated",
        ),
        (
            stored(&token).with("sa/ns/my-sa", "other"),
            "ServiceAccount UID (other) does not match claim (12345)",
        ),
        (
            stored(&token).edit("secret/ns/my-secret", |o| {
                o.labels.insert(INVALID_SINCE_LABEL_KEY.into(), "2024-01-01".into());
            }),
            "the token in secret ns/my-secret for service account ns/my-sa has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the 'kubernetes.io/legacy-token-invalid-since' label from the secret to temporarily allow use of this token",
        ),
    ];
    for (objects, want) in cases {
        let a = auth(TokenKind::Legacy, LEGACY_ISSUER, &[&RSA_PEM], objects);
        assert_eq!(err(a.authenticate_token(&token)), want);
    }
    // Missing claims, from a token signed with a valid key.
    let mut c = legacy_claims("ns", "my-sa", "12345", "my-secret");
    c.sub = "system:serviceaccount:other:my-sa".into();
    let bad = g.legacy_token(&c).unwrap();
    let a = auth(TokenKind::Legacy, LEGACY_ISSUER, &[&RSA_PEM], stored(&bad));
    assert_eq!(err(a.authenticate_token(&bad)), "sub claim is invalid");
    let mut c = legacy_claims("ns", "my-sa", "12345", "my-secret");
    c.secret_name.clear();
    let bad = g.legacy_token(&c).unwrap();
    assert_eq!(
        err(a.authenticate_token(&bad)),
        "secretName claim is missing"
    );
}

#[test]
fn discovery_documents() {
    let rsa = SigningKey::from_pem(RSA_PEM.as_bytes()).unwrap();
    let ec = SigningKey::from_pem(EC_PEM.as_bytes()).unwrap();
    let keys = [rsa.public_key().clone(), ec.public_key().clone()];
    let cfg: serde_json::Value = serde_json::from_slice(&openid_configuration(
        DEFAULT_ISSUER,
        "https://127.0.0.1:6443/openid/v1/jwks",
        &keys,
    ))
    .unwrap();
    assert_eq!(
        cfg,
        serde_json::json!({
            "issuer": DEFAULT_ISSUER,
            "jwks_uri": "https://127.0.0.1:6443/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        })
    );
    let text = String::from_utf8(jwks(&keys)).unwrap();
    assert!(text.starts_with(&format!(
        r#"{{"keys":[{{"use":"sig","kty":"RSA","kid":"{}","alg":"RS256","n":""#,
        rsa.public_key().key_id
    )));
    assert!(text.contains(r#","e":"AQAB"}"#));
    assert!(text.contains(&format!(
        r#"{{"use":"sig","kty":"EC","kid":"{}","crv":"P-256","alg":"ES256","x":""#,
        ec.public_key().key_id
    )));
    // A verifier built from the published n and e accepts our tokens (what an OIDC relying
    // party does).
    let set: serde_json::Value = serde_json::from_str(&text).unwrap();
    let n = set["keys"][0]["n"].as_str().unwrap();
    let e = set["keys"][0]["e"].as_str().unwrap();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(n, e).unwrap();
    let token = TokenGenerator::new(DEFAULT_ISSUER, rsa)
        .bound_token(&bound(&BoundObject::None, 600))
        .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[DEFAULT_ISSUER]);
    v.validate_exp = false;
    assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).is_ok());
    assert!(check_discovery_issuer(DEFAULT_ISSUER).is_ok());
    assert_eq!(
        check_discovery_issuer("http://x").unwrap_err(),
        "issuer URL must use https scheme, got: http://x"
    );
}

#[test]
fn key_ids_match_upstream_derivation() {
    let k = SigningKey::from_pem(RSA_PEM.as_bytes()).unwrap();
    let spki =
        rcgen::PublicKeyData::subject_public_key_info(&rcgen::KeyPair::from_pem(&RSA_PEM).unwrap());
    assert_eq!(k.public_key().key_id, key_id(&spki));
    assert_eq!(k.public_key().key_id.len(), 43);
    assert!(matches!(
        SigningKey::from_pem(b"nothing"),
        Err(KeyError::NoPrivateKey)
    ));
    assert!(matches!(
        public_keys_from_pem(b""),
        Err(KeyError::NoPublicKey)
    ));
}

#[test]
fn usernames() {
    assert_eq!(
        split_username("system:serviceaccount:ns:name"),
        Some(("ns", "name"))
    );
    assert_eq!(split_username("system:serviceaccount:ns"), None);
    assert_eq!(split_username("system:serviceaccount:ns:a:b"), None);
    assert_eq!(split_username("alice"), None);
}
