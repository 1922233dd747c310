//! Upstream's serviceaccount-token-controller (pkg/controller/serviceaccount/tokens_controller.go)
//! as it is since 1.24: it never creates token Secrets itself; a `kubernetes.io/service-account-token`
//! Secret that a user creates (annotated `kubernetes.io/service-account.name`) is filled with a
//! legacy token, `ca.crt` and `namespace`, and such Secrets are deleted with their account.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, Client};
use rudder_auth::serviceaccount::{legacy_claims, TokenGenerator};

use crate::controller::{
    ignore_not_found, is_not_found, run_workers, Next, ReconcileResult, Reconciler,
};
use crate::informer::{key_of, split_key, Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const SERVICE_ACCOUNT_NAME_KEY: &str = "kubernetes.io/service-account.name";
pub const SERVICE_ACCOUNT_UID_KEY: &str = "kubernetes.io/service-account.uid";
pub const TOKEN_KEY: &str = "token";
pub const CA_KEY: &str = "ca.crt";
pub const NAMESPACE_KEY: &str = "namespace";

struct TokensController {
    client: Client,
    generator: Arc<TokenGenerator>,
    root_ca: Option<String>,
    accounts: Arc<Informer<ServiceAccount>>,
    secrets: Arc<Informer<Secret>>,
    queue: Arc<WorkQueue>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let Some(generator) = cx.credentials.token_generator.clone() else {
        // kube-controller-manager without --service-account-private-key-file.
        tracing::warn!(
            "serviceaccount-token-controller is disabled because there is no private key"
        );
        return;
    };
    let c = Arc::new(TokensController {
        client: cx.client.clone(),
        generator,
        root_ca: cx.credentials.root_ca.clone(),
        accounts: cx.informers.get::<ServiceAccount>(),
        secrets: cx.informers.get::<Secret>(),
        queue: WorkQueue::new("serviceaccount_tokens_secret", cx.metrics.clone()),
    });
    let this = c.clone();
    c.secrets.add_handler(move |ch| match ch {
        Change::Added(s) | Change::Updated { new: s, .. } if is_token_secret(s) => {
            this.queue.add(key_of(s.as_ref()))
        }
        _ => {}
    });
    let this = c.clone();
    // A deleted (or replaced) account's token Secrets are looked at again: they go with it.
    c.accounts.add_handler(move |ch| {
        let sa = match ch {
            Change::Deleted(sa) | Change::Updated { new: sa, .. } => sa,
            Change::Added(_) => return,
        };
        let ns = sa.metadata.namespace.as_deref().unwrap_or_default();
        let name = sa.metadata.name.as_deref().unwrap_or_default();
        for s in this.secrets.list(ns) {
            if is_token_secret(&s) && annotation(&s, SERVICE_ACCOUNT_NAME_KEY) == name {
                this.queue.add(key_of(s.as_ref()));
            }
        }
    });
    let (accounts, secrets, queue) = (c.accounts.clone(), c.secrets.clone(), c.queue.clone());
    tasks.spawn(async move {
        accounts.wait_synced().await;
        secrets.wait_synced().await;
        run_workers(queue, c, 1).await;
    });
}

fn is_token_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(SECRET_TYPE)
}

fn annotation<'a>(s: &'a Secret, key: &str) -> &'a str {
    s.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

fn data<'a>(s: &'a Secret, key: &str) -> &'a [u8] {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map_or(&[][..], |b| b.0.as_slice())
}

/// What the Secret lacks (upstream's `generateTokenIfNeeded` checks): the CA (when there is
/// one), the namespace, a token. An existing token is never replaced.
pub fn needs(s: &Secret, root_ca: Option<&str>) -> bool {
    let ns = s.metadata.namespace.as_deref().unwrap_or_default();
    let needs_ca = root_ca.is_some_and(|ca| data(s, CA_KEY) != ca.as_bytes());
    needs_ca || data(s, NAMESPACE_KEY) != ns.as_bytes() || data(s, TOKEN_KEY).is_empty()
}

/// The filled Secret: CA, namespace, the token if missing, and the account's name and UID
/// annotations.
pub fn fill(
    mut s: Secret,
    sa: &ServiceAccount,
    root_ca: Option<&str>,
    generator: &TokenGenerator,
) -> Result<Secret, String> {
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let sa_name = sa.metadata.name.clone().unwrap_or_default();
    let sa_uid = sa.metadata.uid.clone().unwrap_or_default();
    let secret_name = s.metadata.name.clone().unwrap_or_default();
    let needs_token = data(&s, TOKEN_KEY).is_empty();
    let d = s.data.get_or_insert_with(BTreeMap::new);
    if let Some(ca) = root_ca.filter(|ca| !ca.is_empty()) {
        d.insert(CA_KEY.into(), ByteString(ca.as_bytes().to_vec()));
    }
    d.insert(NAMESPACE_KEY.into(), ByteString(ns.as_bytes().to_vec()));
    if needs_token {
        let token = generator
            .legacy_token(&legacy_claims(&ns, &sa_name, &sa_uid, &secret_name))
            .map_err(|e| format!("failed to generate token: {e}"))?;
        d.insert(TOKEN_KEY.into(), ByteString(token.into_bytes()));
    }
    let a = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
    a.insert(SERVICE_ACCOUNT_NAME_KEY.into(), sa_name);
    a.insert(SERVICE_ACCOUNT_UID_KEY.into(), sa_uid);
    Ok(s)
}

impl TokensController {
    /// The account a Secret names (and, when it records one, with that UID); on a cache miss
    /// the API is asked, as upstream's `getServiceAccount(…, fetchOnCacheMiss)`.
    async fn account_of(&self, s: &Secret) -> Result<Option<ServiceAccount>, kube::Error> {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        let name = annotation(s, SERVICE_ACCOUNT_NAME_KEY);
        let uid = annotation(s, SERVICE_ACCOUNT_UID_KEY);
        let matches =
            |sa: &ServiceAccount| uid.is_empty() || sa.metadata.uid.as_deref() == Some(uid);
        if let Some(sa) = self.accounts.get(ns, name) {
            if matches(&sa) {
                return Ok(Some(sa.as_ref().clone()));
            }
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        match api.get(name).await {
            Ok(sa) if matches(&sa) => Ok(Some(sa)),
            Ok(_) => Ok(None),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Reconciler for TokensController {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let (ns, name) = split_key(&key);
            let Some(cached) = self.secrets.get(ns, name) else {
                return Ok(Next::Done);
            };
            if !is_token_secret(&cached) {
                return Ok(Next::Done);
            }
            let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
            let Some(sa) = self.account_of(&cached).await? else {
                // The account is gone (or is another one now): so is its token.
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: cached.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                return ignore_not_found(api.delete(name, &dp).await).map(|_| Next::Done);
            };
            let root_ca = self.root_ca.as_deref();
            if !needs(&cached, root_ca) {
                return Ok(Next::Done);
            }
            // The cache may lag our own last write: decide on the live Secret.
            let live = match api.get(name).await {
                Ok(s) => s,
                Err(e) if is_not_found(&e) => return Ok(Next::Done),
                Err(e) => return Err(e.into()),
            };
            if !needs(&live, root_ca) {
                return Ok(Next::Done);
            }
            let filled = fill(live, &sa, root_ca, &self.generator)
                .map_err(crate::controller::ReconcileError::Other)?;
            ignore_not_found(api.replace(name, &PostParams::default(), &filled).await)?;
            Ok(Next::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use rudder_auth::serviceaccount::SigningKey;

    fn generator() -> TokenGenerator {
        let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .unwrap()
            .serialize_pem();
        TokenGenerator::new(
            rudder_auth::serviceaccount::LEGACY_ISSUER,
            SigningKey::from_pem(pem.as_bytes()).unwrap(),
        )
    }

    fn secret(data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("tok".into()),
                namespace: Some("ns".into()),
                annotations: Some(BTreeMap::from([(
                    SERVICE_ACCOUNT_NAME_KEY.to_string(),
                    "default".to_string(),
                )])),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.into()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// tokens_controller_test.go's secret cases: an empty token Secret is filled; one missing
    /// only the CA or namespace gets those and keeps its token; a complete one is left alone.
    #[test]
    fn fills_as_upstream() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some("ns".into()),
                uid: Some("12345".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let g = generator();
        let empty = secret(&[]);
        assert!(needs(&empty, Some("CA")));
        let filled = fill(empty, &sa, Some("CA"), &g).unwrap();
        assert_eq!(data(&filled, CA_KEY), b"CA");
        assert_eq!(data(&filled, NAMESPACE_KEY), b"ns");
        assert!(!data(&filled, TOKEN_KEY).is_empty());
        assert_eq!(annotation(&filled, SERVICE_ACCOUNT_UID_KEY), "12345");
        assert!(!needs(&filled, Some("CA")));

        let missing_ca = secret(&[("token", "t"), ("namespace", "ns")]);
        assert!(needs(&missing_ca, Some("CA")));
        assert!(!needs(&missing_ca, None));
        let fixed = fill(missing_ca, &sa, Some("CA"), &g).unwrap();
        assert_eq!(data(&fixed, TOKEN_KEY), b"t");
        assert_eq!(data(&fixed, CA_KEY), b"CA");

        let wrong_ns = secret(&[("token", "t"), ("namespace", "other"), ("ca.crt", "CA")]);
        assert!(needs(&wrong_ns, Some("CA")));
        assert_eq!(
            data(&fill(wrong_ns, &sa, Some("CA"), &g).unwrap(), NAMESPACE_KEY),
            b"ns"
        );
    }
}
