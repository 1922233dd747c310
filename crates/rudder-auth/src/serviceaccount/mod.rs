//! Service-account tokens, as upstream's `pkg/serviceaccount` (`claims.go`, `legacy.go`,
//! `jwt.go`, `openidmetadata.go`) and `k8s.io/apiserver/pkg/authentication/serviceaccount`.
//!
//! Two kinds of JWT: **bound** tokens (TokenRequest, projected volumes) carry audiences, an
//! expiry and a `kubernetes.io` claim naming the account and the pod, secret or node they are
//! bound to; **legacy** tokens (the tokens controller's, in `kubernetes.io/service-account-token`
//! Secrets) have issuer `kubernetes/serviceaccount`, no expiry, and are valid only while the
//! Secret holds exactly that token. Either way the account (and the bound object) must still
//! exist with the UID the token names: validation looks them up through a [`TokenGetter`] (the
//! API server's watch cache), as upstream's validators do through informers.

pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};

use crate::authn::{bearer_token, AuthError, AuthRequest, Authenticator, TokenAuthenticator};
use crate::user::{UserInfo, CREDENTIAL_ID_KEY};
pub use keys::{key_id, public_keys_from_pem, Jwk, KeyError, PublicKey, SigningKey};

/// The issuer of legacy Secret-based tokens (`serviceaccount.LegacyIssuer`).
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// `--service-account-issuer` when not given (k3s's default).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// A pod-bound token asked for with exactly this lifetime is the kubelet's default projected
/// token: it is issued for a year and only warned about after the hour (upstream's
/// `WarnOnlyBoundTokenExpirationSeconds`, `--service-account-extend-token-expiration`).
pub const WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// `ExpirationExtensionSeconds`: one year.
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// go-jose's `jwt.DefaultLeeway`: clock skew tolerated on exp, nbf and iat, and how long a
/// deleted object's tokens keep working.
pub const LEEWAY_SECONDS: i64 = 60;

pub const SERVICE_ACCOUNT_USERNAME_PREFIX: &str = "system:serviceaccount:";
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
/// Secret label whose presence makes a legacy token invalid (`InvalidSinceLabelKey`).
pub const INVALID_SINCE_LABEL_KEY: &str = "kubernetes.io/legacy-token-invalid-since";

/// `system:serviceaccount:<namespace>:<name>`.
pub fn make_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USERNAME_PREFIX}{namespace}:{name}")
}

/// The namespace and name of a service-account username (upstream's `SplitUsername`).
pub fn split_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_USERNAME_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// `system:serviceaccounts` and `system:serviceaccounts:<namespace>`.
pub fn make_group_names(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS_GROUP.to_string(),
        format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
    ]
}

/// A name and UID, as the `kubernetes.io` claim records objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl Ref {
    pub fn new(name: impl Into<String>, uid: impl Into<String>) -> Ref {
        Ref {
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// The `kubernetes.io` private claim. Fields are in the order go-jose writes them (it
/// round-trips claims through a Go map, so keys come out sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    /// Go's `omitempty` does not omit a struct, so this is always written.
    #[serde(default)]
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// A bound token's payload, in go-jose's (sorted) key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundClaims {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_or_list"
    )]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(rename = "kubernetes.io", default)]
    pub kubernetes: KubernetesClaims,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
}

/// go-jose accepts `aud` as one string or a list.
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => vec![],
        Some(Aud::One(s)) => vec![s],
        Some(Aud::Many(v)) => v,
    })
}

/// What a bound token is bound to besides its account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BoundObject {
    #[default]
    None,
    /// A pod, and the node it runs on when known (`ServiceAccountTokenPodNodeInfo`).
    Pod {
        pod: Ref,
        node: Option<Ref>,
    },
    Secret(Ref),
    Node(Ref),
}

/// Upstream's `Claims`: a token for `namespace/name` (UID `uid`) valid from `now` for
/// `expiration_seconds`, for `audiences`, bound to `bound`; `warnafter` (seconds from now) when
/// not zero; `jti` a fresh UUID (`ServiceAccountTokenJTI`).
#[allow(clippy::too_many_arguments)]
pub fn claims(
    namespace: &str,
    name: &str,
    uid: &str,
    bound: &BoundObject,
    expiration_seconds: i64,
    warnafter: i64,
    audiences: &[String],
    now: i64,
) -> BoundClaims {
    let mut k = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: Ref::new(name, uid),
        ..Default::default()
    };
    match bound {
        BoundObject::None => {}
        BoundObject::Pod { pod, node } => {
            k.pod = Some(pod.clone());
            k.node = node.clone();
        }
        BoundObject::Secret(s) => k.secret = Some(s.clone()),
        BoundObject::Node(n) => k.node = Some(n.clone()),
    }
    if warnafter != 0 {
        k.warnafter = Some(now + warnafter);
    }
    BoundClaims {
        aud: audiences.to_vec(),
        exp: Some(now + expiration_seconds),
        iat: Some(now),
        iss: String::new(),
        jti: Some(uuid::Uuid::new_v4().to_string()),
        kubernetes: k,
        nbf: Some(now),
        sub: make_username(namespace, name),
    }
}

/// A legacy token's payload (`legacyPrivateClaims` plus `sub`/`iss`), in go-jose's key order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    #[serde(default)]
    pub iss: String,
    #[serde(rename = "kubernetes.io/serviceaccount/namespace", default)]
    pub namespace: String,
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name", default)]
    pub secret_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name", default)]
    pub service_account_name: String,
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid", default)]
    pub service_account_uid: String,
    #[serde(default)]
    pub sub: String,
}

/// Upstream's `LegacyClaims`.
pub fn legacy_claims(namespace: &str, name: &str, uid: &str, secret_name: &str) -> LegacyClaims {
    LegacyClaims {
        iss: LEGACY_ISSUER.to_string(),
        namespace: namespace.to_string(),
        secret_name: secret_name.to_string(),
        service_account_name: name.to_string(),
        service_account_uid: uid.to_string(),
        sub: make_username(namespace, name),
    }
}

/// Signs tokens as one issuer (upstream's `JWTTokenGenerator`).
#[derive(Debug)]
pub struct TokenGenerator {
    issuer: String,
    key: SigningKey,
}

impl TokenGenerator {
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> TokenGenerator {
        TokenGenerator {
            issuer: issuer.into(),
            key,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `claims` with this generator's issuer (claims are applied under it, as upstream).
    pub fn bound_token(&self, claims: &BoundClaims) -> Result<String, KeyError> {
        let mut c = claims.clone();
        c.iss = self.issuer.clone();
        self.key.sign(&c)
    }

    pub fn legacy_token(&self, claims: &LegacyClaims) -> Result<String, KeyError> {
        let mut c = claims.clone();
        c.iss = self.issuer.clone();
        self.key.sign(&c)
    }
}

/// What validation needs to know about an object a token names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub uid: String,
    /// `metadata.deletionTimestamp`, Unix seconds.
    pub deletion_timestamp: Option<i64>,
    /// A Secret's `data.token`, decoded.
    pub token: Option<Vec<u8>>,
    pub labels: BTreeMap<String, String>,
}

/// Looks up what tokens refer to (upstream's `ServiceAccountTokenGetter`). `Err` carries the
/// lookup's error text (`serviceaccounts "x" not found`), which goes to the logs only.
pub trait TokenGetter: Send + Sync {
    fn service_account(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String>;
    fn pod(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String>;
    fn secret(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String>;
    fn node(&self, name: &str) -> Result<ObjectInfo, String>;
}

/// Who a valid token stands for (`ServiceAccountInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub node_name: String,
    pub node_uid: String,
    pub credential_id: String,
}

impl ServiceAccountInfo {
    /// Upstream's `ServiceAccountInfo.UserInfo`.
    pub fn user_info(&self) -> UserInfo {
        let mut u = UserInfo::new(make_username(&self.namespace, &self.name));
        u.uid = self.uid.clone();
        u.groups = make_group_names(&self.namespace);
        if !self.pod_name.is_empty() && !self.pod_uid.is_empty() {
            u.extra
                .insert(POD_NAME_KEY.into(), vec![self.pod_name.clone()]);
            u.extra
                .insert(POD_UID_KEY.into(), vec![self.pod_uid.clone()]);
        }
        if !self.credential_id.is_empty() {
            u.extra
                .insert(CREDENTIAL_ID_KEY.into(), vec![self.credential_id.clone()]);
        }
        if !self.node_name.is_empty() {
            u.extra
                .insert(NODE_NAME_KEY.into(), vec![self.node_name.clone()]);
            if !self.node_uid.is_empty() {
                u.extra
                    .insert(NODE_UID_KEY.into(), vec![self.node_uid.clone()]);
            }
        }
        u
    }
}

fn invalid(msg: impl Into<String>) -> AuthError {
    AuthError::ServiceAccountToken(msg.into())
}

/// Upstream's bound-token `validator.Validate`: time claims (with go-jose's leeway), then the
/// account, bound secret, pod or node, each by name and UID, deleted ones counted as gone once
/// past the leeway.
pub fn validate_bound(
    c: &BoundClaims,
    getter: &dyn TokenGetter,
    now: i64,
) -> Result<ServiceAccountInfo, AuthError> {
    if c.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
        return Err(invalid("service account token is not valid yet"));
    }
    if c.exp.is_some_and(|exp| now - LEEWAY_SECONDS > exp) {
        return Err(invalid("service account token has expired"));
    }
    if c.iat.is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
        return Err(invalid("service account token is issued in the future"));
    }
    let deleted = |o: &ObjectInfo| {
        o.deletion_timestamp
            .is_some_and(|t| t < now - LEEWAY_SECONDS)
    };
    let k = &c.kubernetes;
    let ns = &k.namespace;
    let sa_ref = &k.serviceaccount;
    let sa = getter.service_account(ns, &sa_ref.name).map_err(invalid)?;
    if sa.uid != sa_ref.uid {
        return Err(invalid(format!(
            "service account UID ({}) does not match claim ({})",
            sa.uid, sa_ref.uid
        )));
    }
    if deleted(&sa) {
        return Err(invalid(format!(
            "service account {ns}/{} has been deleted",
            sa_ref.name
        )));
    }
    let invalidated = || invalid("service account token has been invalidated");
    if let Some(r) = &k.secret {
        let secret = getter.secret(ns, &r.name).map_err(|_| invalidated())?;
        if secret.uid != r.uid {
            return Err(invalid(format!(
                "secret UID ({}) does not match service account secret ref claim ({})",
                secret.uid, r.uid
            )));
        }
        if deleted(&secret) {
            return Err(invalidated());
        }
    }
    let mut info = ServiceAccountInfo {
        namespace: ns.clone(),
        name: sa_ref.name.clone(),
        uid: sa_ref.uid.clone(),
        ..Default::default()
    };
    if let Some(r) = &k.pod {
        let pod = getter.pod(ns, &r.name).map_err(|_| invalidated())?;
        if pod.uid != r.uid {
            return Err(invalid(format!(
                "pod UID ({}) does not match service account pod ref claim ({})",
                pod.uid, r.uid
            )));
        }
        if deleted(&pod) {
            return Err(invalidated());
        }
        info.pod_name = r.name.clone();
        info.pod_uid = r.uid.clone();
    }
    if let Some(r) = &k.node {
        if k.pod.is_none() {
            let node = getter.node(&r.name).map_err(|_| invalidated())?;
            if node.uid != r.uid {
                return Err(invalid(format!(
                    "node UID ({}) does not match service account node ref claim ({})",
                    node.uid, r.uid
                )));
            }
            if deleted(&node) {
                return Err(invalidated());
            }
        }
        // For a pod-bound token the node is informational: recorded, not checked.
        info.node_name = r.name.clone();
        info.node_uid = r.uid.clone();
    }
    if let Some(jti) = c.jti.as_deref().filter(|j| !j.is_empty()) {
        info.credential_id = format!("JTI={jti}");
    }
    Ok(info)
}

/// Upstream's `legacyValidator.Validate` (with lookup, as kube-apiserver runs it).
pub fn validate_legacy(
    token: &str,
    c: &LegacyClaims,
    getter: &dyn TokenGetter,
) -> Result<ServiceAccountInfo, AuthError> {
    if c.sub.is_empty() {
        return Err(invalid("sub claim is missing"));
    }
    if c.namespace.is_empty() {
        return Err(invalid("namespace claim is missing"));
    }
    if c.secret_name.is_empty() {
        return Err(invalid("secretName claim is missing"));
    }
    if c.service_account_name.is_empty() {
        return Err(invalid("serviceAccountName claim is missing"));
    }
    if c.service_account_uid.is_empty() {
        return Err(invalid("serviceAccountUID claim is missing"));
    }
    match split_username(&c.sub) {
        Some((ns, name)) if ns == c.namespace && name == c.service_account_name => {}
        _ => return Err(invalid("sub claim is invalid")),
    }
    let (ns, secret_name, sa_name) = (&c.namespace, &c.secret_name, &c.service_account_name);
    let invalidated = || invalid("Token has been invalidated");
    let secret = getter.secret(ns, secret_name).map_err(|_| invalidated())?;
    if secret.deletion_timestamp.is_some() {
        return Err(invalidated());
    }
    // Constant-time, as upstream's `subtle.ConstantTimeCompare`.
    let matches = secret.token.as_deref().is_some_and(|t| {
        aws_lc_rs::constant_time::verify_slices_are_equal(t, token.as_bytes()).is_ok()
    });
    if !matches {
        return Err(invalid("Token does not match server's copy"));
    }
    let sa = getter.service_account(ns, sa_name).map_err(invalid)?;
    if sa.deletion_timestamp.is_some() {
        return Err(invalid(format!(
            "ServiceAccount {ns}/{sa_name} has been deleted"
        )));
    }
    if sa.uid != c.service_account_uid {
        return Err(invalid(format!(
            "ServiceAccount UID ({}) does not match claim ({})",
            sa.uid, c.service_account_uid
        )));
    }
    if secret
        .labels
        .get(INVALID_SINCE_LABEL_KEY)
        .is_some_and(|v| !v.is_empty())
    {
        return Err(invalid(format!(
            "the token in secret {ns}/{secret_name} for service account {ns}/{sa_name} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the '{INVALID_SINCE_LABEL_KEY}' label from the secret to temporarily allow use of this token"
        )));
    }
    Ok(ServiceAccountInfo {
        namespace: ns.clone(),
        name: sa_name.clone(),
        uid: c.service_account_uid.clone(),
        ..Default::default()
    })
}

/// The payload's `iss` before any verification, to pick the authenticator (upstream's
/// `hasCorrectIssuer`). Never trusted beyond that.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    if token.trim_start().starts_with('{') {
        return None;
    }
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        #[serde(default)]
        iss: String,
    }
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

fn unverified_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

/// Which claims an authenticator validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Bound,
    Legacy,
}

/// Upstream's `jwtTokenAuthenticator`: a token whose (unverified) issuer is one of `issuers` is
/// this authenticator's; its signature must verify with one of the keys (the `kid` picks them
/// when present), its issuer must match after verification, its audiences must meet the API
/// server's (`implicit_auds`; a token without audiences gets them), and the claims validate.
pub struct JwtAuthenticator {
    issuers: Vec<String>,
    keys: Vec<PublicKey>,
    implicit_auds: Vec<String>,
    getter: Arc<dyn TokenGetter>,
    kind: TokenKind,
    clock: fn() -> i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl JwtAuthenticator {
    pub fn new(
        kind: TokenKind,
        issuers: Vec<String>,
        keys: Vec<PublicKey>,
        implicit_auds: Vec<String>,
        getter: Arc<dyn TokenGetter>,
    ) -> JwtAuthenticator {
        JwtAuthenticator {
            issuers,
            keys,
            implicit_auds,
            getter,
            kind,
            clock: unix_now,
        }
    }

    #[cfg(test)]
    fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// The payload, verified against one of the keys.
    fn verified_payload(&self, token: &str) -> Result<serde_json::Value, AuthError> {
        let kid = unverified_kid(token);
        let keys: Vec<&PublicKey> = self
            .keys
            .iter()
            .filter(|k| kid.as_deref().is_none_or(|kid| k.key_id == kid))
            .collect();
        if keys.is_empty() {
            return Err(invalid("invalid signature, no keys found"));
        }
        let mut errors = Vec::new();
        for key in keys {
            let mut v = jsonwebtoken::Validation::new(key.alg);
            // Time, audience and issuer are judged below with upstream's rules and messages.
            v.required_spec_claims.clear();
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(invalid(if errors.len() == 1 {
            errors.remove(0)
        } else {
            format!("[{}]", errors.join(", "))
        }))
    }
}

impl TokenAuthenticator for JwtAuthenticator {
    fn authenticate_token(&self, token: &str) -> Result<Option<UserInfo>, AuthError> {
        match unverified_issuer(token) {
            Some(iss) if self.issuers.contains(&iss) => {}
            _ => return Ok(None),
        }
        let payload = self.verified_payload(token)?;
        let iss = payload["iss"].as_str().unwrap_or_default();
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(invalid(format!("token issuer {iss:?} is invalid")));
        }
        let info = match self.kind {
            TokenKind::Bound => {
                let c: BoundClaims = serde_json::from_value(payload)
                    .map_err(|e| invalid(format!("invalid claims: {e}")))?;
                let token_auds = if c.aud.is_empty() {
                    self.implicit_auds.clone()
                } else {
                    c.aud.clone()
                };
                let met = token_auds.iter().any(|a| self.implicit_auds.contains(a));
                if !met && !self.implicit_auds.is_empty() {
                    return Err(invalid(format!(
                        "token audiences {} is invalid for the target audiences {}",
                        go_quoted_list(&token_auds),
                        go_quoted_list(&self.implicit_auds)
                    )));
                }
                validate_bound(&c, self.getter.as_ref(), (self.clock)())?
            }
            TokenKind::Legacy => {
                let c: LegacyClaims = serde_json::from_value(payload)
                    .map_err(|e| invalid(format!("invalid claims: {e}")))?;
                validate_legacy(token, &c, self.getter.as_ref())?
            }
        };
        Ok(Some(info.user_info()))
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, req: &AuthRequest<'_>) -> Result<Option<UserInfo>, AuthError> {
        match bearer_token(req.headers)? {
            Some(token) => self.authenticate_token(token),
            None => Ok(None),
        }
    }
}

/// The OIDC discovery document (`/.well-known/openid-configuration`) for `issuer`, whose keys
/// are at `jwks_uri`, as upstream's `openIDConfigJSON`.
pub fn openid_configuration(issuer: &str, jwks_uri: &str, keys: &[PublicKey]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Metadata<'a> {
        issuer: &'a str,
        jwks_uri: &'a str,
        response_types_supported: [&'static str; 1],
        subject_types_supported: [&'static str; 1],
        id_token_signing_alg_values_supported: Vec<&'static str>,
    }
    let mut algs: Vec<&'static str> = keys.iter().map(|k| k.jwk().alg).collect();
    algs.sort_unstable();
    algs.dedup();
    serde_json::to_vec(&Metadata {
        issuer,
        jwks_uri,
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: algs,
    })
    .unwrap_or_default()
}

/// The JWKS document (`/openid/v1/jwks`), as upstream's `openIDKeysetJSON`.
pub fn jwks(keys: &[PublicKey]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Set<'a> {
        keys: Vec<&'a Jwk>,
    }
    serde_json::to_vec(&Set {
        keys: keys.iter().map(PublicKey::jwk).collect(),
    })
    .unwrap_or_default()
}

/// Checks `--service-account-issuer` for the discovery document as upstream's
/// `NewOpenIDMetadataProvider` does (https, no query, no fragment).
pub fn check_discovery_issuer(issuer: &str) -> Result<(), String> {
    if !issuer.starts_with("https://") {
        return Err(format!("issuer URL must use https scheme, got: {issuer}"));
    }
    if issuer.contains('?') {
        return Err(format!("issuer URL may not include a query, got: {issuer}"));
    }
    if issuer.contains('#') {
        return Err(format!(
            "issuer URL may not include a fragment, got: {issuer}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
