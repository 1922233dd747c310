//! End to end: service-account tokens as kubectl and curl see them, on both store backends —
//! `kubectl create token` (TokenRequest), requests made with those tokens, legacy token Secrets
//! filled by the tokens controller, `kube-root-ca.crt` in every namespace, and the issuer's OIDC
//! discovery documents.

mod support;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{wait_for, Backend, Cluster};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn b64url(part: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap()
}

/// The JWT's payload (not verified; the server does that).
fn claims(token: &str) -> Value {
    serde_json::from_slice(&b64url(token.split('.').nth(1).unwrap())).unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&b64url(token.split('.').next().unwrap())).unwrap()
}

fn uid(c: &Cluster, args: &[&str]) -> String {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "jsonpath={.metadata.uid}"]);
    c.ok(&a)
}

/// Runs kubectl as the holder of `token` instead of the admin.
fn with_token(c: &Cluster, token: &str, args: &[&str]) -> support::Run {
    let flag = format!("--token={token}");
    let mut a = vec![flag.as_str()];
    a.extend_from_slice(args);
    c.kubectl(&a)
}

/// RBAC is on: let service accounts read what these tests ask them to (`view` everywhere) and
/// create the CertificateSigningRequests [`whoami`] reads their identity from.
fn let_service_accounts_read(c: &Cluster) {
    for (name, role) in [("sa-view", "view"), ("sa-csr", "system:node-bootstrapper")] {
        c.ok(&[
            "create",
            "clusterrolebinding",
            name,
            &format!("--clusterrole={role}"),
            "--group=system:serviceaccounts",
        ]);
    }
    wait_for("service accounts may read", || {
        let r = c.kubectl(&[
            "auth",
            "can-i",
            "list",
            "serviceaccounts",
            "--as=system:serviceaccount:x:y",
        ]);
        (r.stdout == "yes\n").then_some(())
    });
}

const UNAUTHORIZED: &str = "error: You must be logged in to the server (Unauthorized)";

fn rejected(c: &Cluster, token: &str) -> bool {
    let r = with_token(c, token, &["get", "sa"]);
    r.code != 0 && r.stderr.trim() == UNAUTHORIZED
}

/// Who `token` authenticates as: a CertificateSigningRequest records its creator's user name,
/// UID, groups and extra (upstream's CSR strategy), which is what `kubectl auth whoami` would
/// print.
fn whoami(c: &Cluster, token: &str, name: &str) -> Value {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "whoami");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    let csr = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "signerName": "example.com/signer",
            "usages": ["client auth"],
        },
    });
    let flag = format!("--token={token}");
    let r = c.kubectl_stdin(&[&flag, "create", "-f", "-"], &csr.to_string());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got: Value = serde_json::from_str(&c.ok(&["get", "csr", name, "-o", "json"])).unwrap();
    got["spec"].clone()
}

fn token_request_and_authentication(b: Backend) {
    let mut c = Cluster::start(b);
    let_service_accounts_read(&c);
    wait_for("the default ServiceAccount", || {
        (c.kubectl(&["get", "sa", "default"]).code == 0).then_some(())
    });
    let sa_uid = uid(&c, &["sa", "default"]);

    // `kubectl create token default`: one hour, for the API server's audience, by our issuer.
    let token = c.ok(&["create", "token", "default"]).trim().to_string();
    let cl = claims(&token);
    assert_eq!(cl["iss"], ISSUER);
    assert_eq!(cl["aud"], json!([ISSUER]));
    assert_eq!(cl["sub"], "system:serviceaccount:default:default");
    assert_eq!(
        cl["kubernetes.io"],
        json!({"namespace": "default", "serviceaccount": {"name": "default", "uid": sa_uid}})
    );
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        3600
    );
    assert_eq!(cl["nbf"], cl["iat"]);
    assert_eq!(header(&token)["alg"], "RS256");
    let jti = cl["jti"].as_str().unwrap().to_string();

    // The token authenticates as the account.
    assert_eq!(
        with_token(&c, &token, &["get", "sa", "default", "-o", "name"])
            .stdout
            .trim(),
        "serviceaccount/default"
    );
    let me = whoami(&c, &token, "sa-default");
    assert_eq!(me["username"], "system:serviceaccount:default:default");
    assert_eq!(me["uid"], sa_uid.as_str());
    assert_eq!(
        me["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        me["extra"],
        json!({"authentication.kubernetes.io/credential-id": [format!("JTI={jti}")]})
    );

    // --duration and its lower bound (upstream's validation message, via kubectl).
    let two_hours = c.ok(&["create", "token", "default", "--duration", "2h"]);
    let cl = claims(two_hours.trim());
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        7200
    );
    assert_eq!(
        c.fails(&["create", "token", "default", "--duration", "1m"]).trim(),
        "error: failed to create token: TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
    );
    // Another audience: a fine token, but not for the API server.
    let vault = c.ok(&["create", "token", "default", "--audience", "vault"]);
    assert_eq!(claims(vault.trim())["aud"], json!(["vault"]));
    assert!(rejected(&c, vault.trim()));
    assert_eq!(
        c.fails(&["create", "token", "nope"]).trim(),
        "error: failed to create token: serviceaccounts \"nope\" not found"
    );

    // The TokenRequest object itself, as upstream returns it.
    let tr: Value =
        serde_json::from_str(&c.ok(&["create", "token", "default", "-o", "json"])).unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(tr["metadata"]["uid"], sa_uid.as_str());
    assert_eq!(
        tr["spec"],
        json!({"audiences": [ISSUER], "boundObjectRef": null, "expirationSeconds": 3600})
    );
    assert!(tr["status"]["expirationTimestamp"].as_str().is_some());

    // A tampered or expired token is refused with 401.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut forged = claims(&token);
    forged["sub"] = json!("system:serviceaccount:kube-system:default");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    assert!(rejected(&c, &parts.join(".")));
    // Signed with the cluster's own key, but expired: only the expiry is wrong.
    let key_pem =
        std::fs::read_to_string(c.dir.path().join("data/server/tls/service.key")).unwrap();
    let generator = rudder_auth::serviceaccount::TokenGenerator::new(
        ISSUER,
        rudder_auth::serviceaccount::SigningKey::from_pem(key_pem.as_bytes()).unwrap(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = generator
        .bound_token(&rudder_auth::serviceaccount::claims(
            "default",
            "default",
            &sa_uid,
            &Default::default(),
            600,
            0,
            &[ISSUER.to_string()],
            now - 3600,
        ))
        .unwrap();
    assert!(rejected(&c, &expired));
    let out = c.curl(&[
        "-H",
        &format!("Authorization: Bearer {expired}"),
        &format!("{}/api", c.url()),
    ]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );

    // Bound to a pod: the pod's name and UID are in the token and the user's extra; the token
    // dies with the pod.
    c.ok(&["run", "p1", "--image=busybox"]);
    let pod_uid = uid(&c, &["pod", "p1"]);
    let bound = c
        .ok(&[
            "create",
            "token",
            "default",
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "p1",
        ])
        .trim()
        .to_string();
    assert_eq!(
        claims(&bound)["kubernetes.io"]["pod"],
        json!({"name": "p1", "uid": pod_uid})
    );
    let me = whoami(&c, &bound, "sa-pod");
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["p1"])
    );
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );
    c.ok(&["create", "sa", "other"]);
    assert_eq!(
        c.fails(&["create", "token", "other", "--bound-object-kind", "Pod", "--bound-object-name", "p1"]).trim(),
        "error: failed to create token: cannot bind token for serviceaccount \"other\" to pod running with different serviceaccount name."
    );
    c.ok(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    wait_for("the pod-bound token to be refused", || {
        rejected(&c, &bound).then_some(())
    });

    // The signing key outlives a restart, and so do the tokens; deleting the account ends them.
    c.restart();
    wait_for("the token to work after a restart", || {
        (with_token(&c, &token, &["get", "sa"]).code == 0).then_some(())
    });
    let other = c.ok(&["create", "token", "other"]).trim().to_string();
    assert_eq!(with_token(&c, &other, &["get", "sa"]).code, 0);
    c.ok(&["delete", "sa", "other"]);
    wait_for("the deleted account's token to be refused", || {
        rejected(&c, &other).then_some(())
    });
}

fn configmap(c: &Cluster, ns: &str) -> Option<Value> {
    let r = c.kubectl(&["get", "cm", "kube-root-ca.crt", "-n", ns, "-o", "json"]);
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
}

fn legacy_tokens_root_ca_and_discovery(b: Backend) {
    let c = Cluster::start(b);
    let_service_accounts_read(&c);
    let ca = std::fs::read_to_string(c.dir.path().join("data/server/tls/ca.crt")).unwrap();

    // kube-root-ca.crt in a new namespace, restored when edited, recreated when deleted.
    c.ok(&["create", "ns", "team"]);
    let cm = wait_for("kube-root-ca.crt in team", || configmap(&c, "team"));
    assert_eq!(cm["data"], json!({"ca.crt": ca}));
    assert_eq!(
        cm["metadata"]["annotations"]["kubernetes.io/description"],
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
    );
    c.ok(&[
        "patch",
        "cm",
        "kube-root-ca.crt",
        "-n",
        "team",
        "-p",
        r#"{"data":{"ca.crt":"edited"}}"#,
    ]);
    wait_for("kube-root-ca.crt restored", || {
        configmap(&c, "team").filter(|cm| cm["data"]["ca.crt"] == ca.as_str())
    });
    let before = uid(&c, &["cm", "kube-root-ca.crt", "-n", "team"]);
    c.ok(&["delete", "cm", "kube-root-ca.crt", "-n", "team"]);
    wait_for("kube-root-ca.crt recreated", || {
        configmap(&c, "team").filter(|cm| cm["metadata"]["uid"] != before.as_str())
    });

    // A legacy token Secret a user creates is filled by the tokens controller, and works.
    wait_for("the default ServiceAccount in team", || {
        (c.kubectl(&["get", "sa", "default", "-n", "team"]).code == 0).then_some(())
    });
    let sa_uid = uid(&c, &["sa", "default", "-n", "team"]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: legacy\n  namespace: team\n  annotations:\n    kubernetes.io/service-account.name: default\ntype: kubernetes.io/service-account-token\n",
    );
    let secret: Value = wait_for("the token Secret filled", || {
        let r = c.kubectl(&["get", "secret", "legacy", "-n", "team", "-o", "json"]);
        let v: Value = serde_json::from_str(&r.stdout).ok()?;
        v["data"]["token"].is_string().then_some(v)
    });
    let data = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(data("ca.crt"), ca);
    assert_eq!(data("namespace"), "team");
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa_uid.as_str()
    );
    let legacy = data("token");
    assert_eq!(
        claims(&legacy),
        json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "team",
            "kubernetes.io/serviceaccount/secret.name": "legacy",
            "kubernetes.io/serviceaccount/service-account.name": "default",
            "kubernetes.io/serviceaccount/service-account.uid": sa_uid,
            "sub": "system:serviceaccount:team:default",
        })
    );
    wait_for("the legacy token to authenticate", || {
        (with_token(&c, &legacy, &["get", "sa", "-n", "team"]).code == 0).then_some(())
    });
    assert_eq!(
        whoami(&c, &legacy, "legacy")["username"],
        "system:serviceaccount:team:default"
    );
    // Only Secrets a user creates are filled: the controller makes none of its own.
    assert_eq!(
        c.ok(&["get", "secrets", "-n", "team", "-o", "name"]).trim(),
        "secret/legacy"
    );
    // Its account deleted, the Secret goes too, and the token stops working.
    c.ok(&["delete", "sa", "default", "-n", "team"]);
    wait_for("the token Secret deleted with its account", || {
        (c.kubectl(&["get", "secret", "legacy", "-n", "team"]).code != 0).then_some(())
    });
    wait_for("the legacy token refused", || {
        rejected(&c, &legacy).then_some(())
    });

    // The subresource in discovery, as upstream lists it.
    let v1: Value = serde_json::from_str(&c.ok(&["get", "--raw", "/api/v1"])).unwrap();
    let sub = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            &sub["group"],
            &sub["version"],
            &sub["kind"],
            &sub["verbs"],
            &sub["namespaced"]
        ),
        (
            &json!("authentication.k8s.io"),
            &json!("v1"),
            &json!("TokenRequest"),
            &json!(["create"]),
            &json!(true)
        )
    );

    // The issuer's discovery documents, as upstream serves them, to any authenticated client.
    let token = c.ok(&["create", "token", "default"]).trim().to_string();
    let get = |path: &str, bearer: &str| {
        let out = c.curl(&[
            "-i",
            "-H",
            &format!("Authorization: Bearer {bearer}"),
            &format!("{}{path}", c.url()),
        ]);
        String::from_utf8(out.stdout).unwrap()
    };
    let cfg = get("/.well-known/openid-configuration", &token);
    assert!(
        cfg.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with(" 200")),
        "{cfg}"
    );
    assert!(cfg.contains("content-type: application/json\r\n"), "{cfg}");
    assert!(
        cfg.contains("cache-control: public, max-age=3600\r\n"),
        "{cfg}"
    );
    let body: Value = serde_json::from_str(cfg.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body,
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("https://127.0.0.1:{}/openid/v1/jwks", c.port),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })
    );
    let jwks = get("/openid/v1/jwks", &c.admin_token());
    assert!(
        jwks.contains("content-type: application/jwk-set+json\r\n"),
        "{jwks}"
    );
    assert!(
        jwks.contains("cache-control: public, max-age=3600\r\n"),
        "{jwks}"
    );
    let keys: Value = serde_json::from_str(jwks.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let key = &keys["keys"][0];
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kid"], header(&token)["kid"]);
    assert_eq!(
        (
            key["use"].as_str(),
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["e"].as_str()
        ),
        (Some("sig"), Some("RSA"), Some("RS256"), Some("AQAB"))
    );
    // Without credentials: 401, as every non-public path.
    let anon = c.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{}/openid/v1/jwks", c.url()),
    ]);
    assert_eq!(String::from_utf8_lossy(&anon.stdout), "401");
}

on_both_backends!(
    token_request_and_authentication,
    legacy_tokens_root_ca_and_discovery
);
