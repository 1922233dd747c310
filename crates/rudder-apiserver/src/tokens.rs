//! Service-account tokens in the API server: the TokenRequest subresource
//! (`POST serviceaccounts/<name>/token`, upstream's `pkg/registry/core/serviceaccount/storage/
//! token.go`), the watch-cache lookups the token authenticators validate against (upstream's
//! informer-backed `ServiceAccountTokenGetter`), and the OIDC discovery documents
//! (`pkg/routes/openidmetadata.go`).

use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use rudder_api::field::{BadValue, ErrorList, FieldError, Path};
use rudder_api::status::{ApiError, GroupKind, GroupResource};
use rudder_auth::bootstrap as sa_bootstrap;
use rudder_auth::serviceaccount::{
    self as sa, BoundObject, ObjectInfo, PublicKey, Ref, TokenGenerator, TokenGetter,
};
use rudder_registry::{object, Registry, WatchCache};
use serde_json::{json, Value};

use crate::encode;
use crate::gojson::Gvk;
use crate::rest::Call;

/// Upstream's OIDC paths.
pub const OPENID_CONFIG_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The media type upstream serves the key set as.
const JWKS_MIME: &str = "application/jwk-set+json";
/// How long clients may cache both documents (the static key getter's `GetCacheAgeMaxSeconds`).
const MAX_AGE_SECONDS: u32 = 3600;

/// The token issuer's configuration and pre-rendered discovery documents.
pub struct ServiceAccountTokens {
    generator: TokenGenerator,
    /// The API server's audiences (`--api-audiences`, the first issuer by default).
    pub audiences: Vec<String>,
    /// `--service-account-max-token-expiration` in seconds; 0 for none.
    pub max_expiration_seconds: i64,
    /// `--service-account-extend-token-expiration`.
    pub extend_expiration: bool,
    /// `None` when the issuer is not a URL discovery can serve (upstream then logs and serves
    /// no documents).
    discovery: Option<(Bytes, Bytes)>,
}

impl ServiceAccountTokens {
    /// `jwks_uri` defaults to `https://<external address>/openid/v1/jwks`, as upstream.
    pub fn new(
        generator: TokenGenerator,
        audiences: Vec<String>,
        verification_keys: &[PublicKey],
        jwks_uri: Option<String>,
        external_address: &str,
    ) -> ServiceAccountTokens {
        let issuer = generator.issuer().to_string();
        let discovery = match sa::check_discovery_issuer(&issuer) {
            Ok(()) => {
                let uri =
                    jwks_uri.unwrap_or_else(|| format!("https://{external_address}{JWKS_PATH}"));
                Some((
                    Bytes::from(sa::openid_configuration(&issuer, &uri, verification_keys)),
                    Bytes::from(sa::jwks(verification_keys)),
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "not serving the service-account issuer discovery documents");
                None
            }
        };
        ServiceAccountTokens {
            generator,
            audiences,
            max_expiration_seconds: 0,
            extend_expiration: true,
            discovery,
        }
    }

    /// `/.well-known/openid-configuration` or `/openid/v1/jwks`, if `path` is one of them.
    pub fn discovery_document(&self, path: &str) -> Option<Response> {
        let (config, keys) = self.discovery.as_ref()?;
        let (body, mime) = match path {
            OPENID_CONFIG_PATH => (config.clone(), encode::JSON),
            JWKS_PATH => (keys.clone(), JWKS_MIME),
            _ => return None,
        };
        let mut resp = encode::bytes_response(StatusCode::OK, mime, body);
        if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}")) {
            resp.headers_mut().insert(header::CACHE_CONTROL, v);
        }
        Some(resp)
    }
}

/// Reads what tokens name from the watch cache, as upstream's validators read informers.
pub struct CacheTokenGetter {
    pub cache: Arc<WatchCache>,
    pub registry: Arc<Registry>,
}

impl CacheTokenGetter {
    fn lookup(&self, resource: &str, ns: Option<&str>, name: &str) -> Result<ObjectInfo, String> {
        let entry = self
            .registry
            .get("", "v1", resource)
            .ok_or_else(|| format!("{resource} are not served"))?;
        let key = entry.key(ns, name).map_err(|e| e.message)?;
        let obj = self
            .cache
            .get(&entry.prefix, &key)
            .ok_or_else(|| format!("{resource} \"{name}\" not found"))?;
        Ok(object_info(&obj.value()))
    }
}

fn object_info(v: &Value) -> ObjectInfo {
    ObjectInfo {
        uid: object::meta_str(v, "uid").to_string(),
        deletion_timestamp: v
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second()),
        token: v
            .pointer("/data/token")
            .and_then(Value::as_str)
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok()),
        labels: object::labels(v),
    }
}

impl TokenGetter for CacheTokenGetter {
    fn service_account(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String> {
        self.lookup("serviceaccounts", Some(namespace), name)
    }
    fn pod(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String> {
        self.lookup("pods", Some(namespace), name)
    }
    fn secret(&self, namespace: &str, name: &str) -> Result<ObjectInfo, String> {
        self.lookup("secrets", Some(namespace), name)
    }
    fn node(&self, name: &str) -> Result<ObjectInfo, String> {
        self.lookup("nodes", None, name)
    }
}

/// Bootstrap token Secrets from the watch cache, as upstream's bootstrap authenticator reads
/// its Secret lister.
impl sa_bootstrap::BootstrapSecretGetter for CacheTokenGetter {
    fn bootstrap_secret(&self, name: &str) -> Option<sa_bootstrap::BootstrapSecret> {
        let entry = self.registry.get("", "v1", "secrets")?;
        let key = entry.key(Some(sa_bootstrap::NAMESPACE), name).ok()?;
        let v = self.cache.get(&entry.prefix, &key)?.value();
        let data = v
            .get("data")
            .and_then(Value::as_object)
            .map(|d| {
                d.iter()
                    .filter_map(|(k, b)| {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(b.as_str()?)
                            .ok()?;
                        Some((k.clone(), bytes))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(sa_bootstrap::BootstrapSecret {
            type_: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            data,
            deleting: v.pointer("/metadata/deletionTimestamp").is_some(),
        })
    }
}

const TOKEN_REQUEST: (&str, &str) = ("authentication.k8s.io", "TokenRequest");

fn token_request_kind() -> GroupKind {
    GroupKind::new(TOKEN_REQUEST.0, TOKEN_REQUEST.1)
}

/// Upstream's `ValidateTokenRequest` (the expiration bounds).
fn validate_expiration(seconds: i64) -> ErrorList {
    let path = Path::new("spec").child("expirationSeconds");
    let mut errs = Vec::new();
    if seconds < 10 * 60 {
        errs.push(FieldError::invalid(
            &path,
            BadValue::Int(seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if seconds > 1 << 32 {
        errs.push(FieldError::invalid(
            &path,
            BadValue::Int(seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    ErrorList(errs)
}

/// `POST …/serviceaccounts/<name>/token`.
pub async fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let Some(tokens) = call.server.service_accounts.clone() else {
        return Err(crate::rest::not_found_route());
    };
    let output = call.output()?;
    let mut req = call.decode_object(&Gvk::new("authentication.k8s.io", "v1", "TokenRequest"))?;
    if !req.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a JSON object",
        ));
    }
    let namespace = call.info.namespace.as_str();
    let name = call.info.name.as_str();
    let meta_path = Path::new("metadata");
    let body_name = object::meta_str(&req, "name").to_string();
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::invalid(
            &token_request_kind(),
            name,
            &ErrorList(vec![FieldError::invalid(
                &meta_path.child("name"),
                BadValue::Str(body_name),
                "must match the service account name if specified",
            )]),
        ));
    }
    let body_ns = object::meta_str(&req, "namespace").to_string();
    if !body_ns.is_empty() && body_ns != namespace {
        return Err(ApiError::invalid(
            &token_request_kind(),
            name,
            &ErrorList(vec![FieldError::invalid(
                &meta_path.child("namespace"),
                BadValue::Str(body_ns),
                "must match the service account namespace if specified",
            )]),
        ));
    }
    let account = call.gs().get(&call.entry, Some(namespace), name).await?;
    let sa_uid = object::meta_str(&account, "uid").to_string();
    let body_uid = object::meta_str(&req, "uid").to_string();
    if !body_uid.is_empty() && body_uid != sa_uid {
        return Err(ApiError::conflict(
            &GroupResource::new(TOKEN_REQUEST.0, TOKEN_REQUEST.1),
            name,
            format!(
                "the UID in the token request ({body_uid}) does not match the UID of the service account ({sa_uid})"
            ),
        ));
    }

    // Admission sees the TokenRequest (serviceaccounts/token), as upstream's: webhooks,
    // policies and NodeRestriction (a node's tokens are bound to its own pods).
    call.gs()
        .admit_subresource_create(
            &call.entry,
            namespace,
            name,
            &mut req,
            &call.admission_opts(),
        )
        .await?;

    // Defaults (`SetDefaults_TokenRequestSpec`, then the REST handler's audiences).
    let spec = req["spec"].as_object().cloned().unwrap_or_default();
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = tokens.audiences.clone();
    }
    let mut expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds must be an integer"))?,
    };
    let now = jiff::Timestamp::now();
    let errs = validate_expiration(expiration);
    if !errs.0.is_empty() {
        return Err(ApiError::invalid(&token_request_kind(), "", &errs));
    }

    let bound_ref = spec
        .get("boundObjectRef")
        .filter(|v| v.is_object())
        .cloned();
    let mut bound = BoundObject::None;
    if let Some(r) = &bound_ref {
        bound = bound_object(call, namespace, name, r).await?;
    }
    if tokens.max_expiration_seconds > 0 && expiration > tokens.max_expiration_seconds {
        expiration = tokens.max_expiration_seconds;
    }
    // The kubelet's default projected token (3607 s, API server audiences, pod-bound) is issued
    // for a year and merely warned about after the hour, as upstream.
    let (mut exp, mut warnafter) = (expiration, 0);
    let kube_audiences = audiences.iter().all(|a| tokens.audiences.contains(a));
    if tokens.extend_expiration
        && matches!(bound, BoundObject::Pod { .. })
        && expiration == sa::WARN_ONLY_BOUND_TOKEN_EXPIRATION_SECONDS
        && kube_audiences
    {
        warnafter = exp;
        exp = sa::EXPIRATION_EXTENSION_SECONDS;
    }
    let claims = sa::claims(
        namespace,
        name,
        &sa_uid,
        &bound,
        exp,
        warnafter,
        &audiences,
        now.as_second(),
    );
    let token = tokens
        .generator
        .bound_token(&claims)
        .map_err(|e| ApiError::internal_error(format!("failed to generate token: {e}")))?;

    let expires = jiff::Timestamp::from_second(now.as_second() + expiration)
        .map_err(ApiError::internal_error)?;
    let body = json!({
        "kind": TOKEN_REQUEST.1,
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": sa_uid,
            "creationTimestamp": object::format_time(now),
        },
        "spec": {
            "audiences": audiences,
            "expirationSeconds": expiration,
            "boundObjectRef": bound_ref,
        },
        "status": {
            "token": token,
            "expirationTimestamp": object::format_time(expires),
        },
    });
    req = body;
    encode::object_response(&call.entry, StatusCode::CREATED, &req, output)
}

/// Resolves `spec.boundObjectRef` to the object the token will be bound to.
async fn bound_object(
    call: &Call<'_>,
    namespace: &str,
    sa_name: &str,
    r: &Value,
) -> Result<BoundObject, ApiError> {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let kind = r["kind"].as_str().unwrap_or("");
    let ref_name = r["name"].as_str().unwrap_or("");
    let ref_uid = r["uid"].as_str().unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let get = |resource: &'static str, ns: Option<&'static str>| async move {
        let entry = call
            .gs()
            .registry
            .get("", "v1", resource)
            .ok_or_else(crate::rest::not_found_route)?;
        let ns = ns.map(|_| namespace);
        call.gs().get(&entry, ns, ref_name).await
    };
    let (obj, bound) = match (group, kind) {
        ("", "Pod") => {
            let pod = get("pods", Some("")).await?;
            let pod_sa = pod
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if pod_sa != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            // The node the pod runs on, recorded in the token (`ServiceAccountTokenPodNodeInfo`);
            // by name alone when the Node object is gone.
            let node_name = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let node = if node_name.is_empty() {
                None
            } else {
                let getter = CacheTokenGetter {
                    cache: call.gs().cache.clone(),
                    registry: call.gs().registry.clone(),
                };
                let uid = getter.node(&node_name).map(|n| n.uid).unwrap_or_default();
                Some(Ref::new(node_name, uid))
            };
            let uid = object::meta_str(&pod, "uid").to_string();
            let b = BoundObject::Pod {
                pod: Ref::new(ref_name, uid),
                node,
            };
            (pod, b)
        }
        ("", "Node") => {
            let node = get("nodes", None).await?;
            let uid = object::meta_str(&node, "uid").to_string();
            (node, BoundObject::Node(Ref::new(ref_name, uid)))
        }
        ("", "Secret") => {
            let secret = get("secrets", Some("")).await?;
            let uid = object::meta_str(&secret, "uid").to_string();
            (secret, BoundObject::Secret(Ref::new(ref_name, uid)))
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )))
        }
    };
    let uid = object::meta_str(&obj, "uid");
    if !ref_uid.is_empty() && uid != ref_uid {
        return Err(ApiError::conflict(
            &GroupResource::new(group, kind),
            ref_name,
            format!("the UID in the bound object reference ({ref_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        ));
    }
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_bounds_as_upstream() {
        assert!(validate_expiration(600).0.is_empty());
        assert!(validate_expiration(1 << 32).0.is_empty());
        let short = validate_expiration(60);
        assert_eq!(
            short.0[0].to_string(),
            "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        let long = validate_expiration((1 << 32) + 1);
        assert_eq!(
            long.0[0].to_string(),
            "spec.expirationSeconds: Invalid value: 4294967297: may not specify a duration larger than 2^32 seconds"
        );
    }

    #[test]
    fn object_info_from_json() {
        let v = json!({"metadata": {"uid": "u", "deletionTimestamp": "2024-01-01T00:00:00Z",
                       "labels": {"a": "b"}}, "data": {"token": "dG9r"}});
        let info = object_info(&v);
        assert_eq!(info.uid, "u");
        assert_eq!(info.deletion_timestamp, Some(1_704_067_200));
        assert_eq!(info.token.as_deref(), Some(&b"tok"[..]));
        assert_eq!(info.labels["a"], "b");
    }
}
