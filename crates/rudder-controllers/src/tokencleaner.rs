//! Upstream's token-cleaner-controller (`pkg/controller/bootstrap/tokencleaner.go`): deletes
//! bootstrap token Secrets in kube-system once their `expiration` has passed (with a UID
//! precondition), and looks again at the expiry of those not yet expired.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::Client;
use rudder_auth::bootstrap as bt;

use crate::controller::{
    is_conflict, is_not_found, run_workers, Next, ReconcileResult, Reconciler,
};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

struct TokenCleaner {
    client: Client,
    secrets: Arc<Informer<Secret>>,
}

fn is_bootstrap_token(s: &Secret) -> bool {
    s.metadata.namespace.as_deref() == Some(bt::NAMESPACE)
        && s.type_.as_deref() == Some(bt::SECRET_TYPE)
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let secrets = cx.informers.get::<Secret>();
    let queue = WorkQueue::new("token_cleaner", cx.metrics.clone());
    let q = queue.clone();
    secrets.add_handler(move |ch| {
        if let Change::Added(s) | Change::Updated { new: s, .. } = ch {
            if is_bootstrap_token(s) {
                q.add(s.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    let c = Arc::new(TokenCleaner {
        client: cx.client.clone(),
        secrets: secrets.clone(),
    });
    tasks.spawn(async move {
        secrets.wait_synced().await;
        run_workers(queue, c, 1).await;
    });
}

/// `bootstrapsecretutil.GetExpiration`: time left, or `None` when expired (an unparseable
/// expiration counts as expired); `Some(None)` for a token that never expires.
pub fn time_left(s: &Secret, now: jiff::Timestamp) -> Option<Option<Duration>> {
    let exp = s
        .data
        .as_ref()
        .and_then(|d| d.get(bt::KEY_EXPIRATION))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(bt::KEY_EXPIRATION).cloned())
        })
        .unwrap_or_default();
    if exp.is_empty() {
        return Some(None);
    }
    let Ok(t) = exp.parse::<jiff::Timestamp>() else {
        return None;
    };
    let left = t.as_millisecond() - now.as_millisecond();
    (left > 0).then(|| Some(Duration::from_millis(left.unsigned_abs())))
}

impl Reconciler for TokenCleaner {
    fn reconcile(self: Arc<Self>, name: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let Some(secret) = self.secrets.get(bt::NAMESPACE, &name) else {
                return Ok(Next::Done);
            };
            if !is_bootstrap_token(&secret) {
                return Ok(Next::Done);
            }
            match time_left(&secret, jiff::Timestamp::now()) {
                Some(None) => Ok(Next::Done),
                Some(Some(left)) => Ok(Next::After(left)),
                None => {
                    tracing::info!(secret = %format!("{}/{name}", bt::NAMESPACE), "Deleting expired secret");
                    let dp = DeleteParams {
                        preconditions: secret.metadata.uid.clone().map(|uid| Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }),
                        ..Default::default()
                    };
                    match Api::<Secret>::namespaced(self.client.clone(), bt::NAMESPACE)
                        .delete(&name, &dp)
                        .await
                    {
                        // Gone already, or the UID precondition failed: not errors.
                        Err(e) if !is_conflict(&e) && !is_not_found(&e) => {
                            tracing::info!(error = %e, "Error deleting secret");
                        }
                        _ => {}
                    }
                    Ok(Next::Done)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn secret(exp: Option<&str>) -> Secret {
        let mut data = BTreeMap::new();
        if let Some(e) = exp {
            data.insert(
                bt::KEY_EXPIRATION.to_string(),
                k8s_openapi::ByteString(e.as_bytes().to_vec()),
            );
        }
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    // tokencleaner_test.go: no expiration stays, past is deleted, future waits.
    #[test]
    fn expiry_as_upstream() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(time_left(&secret(None), now), Some(None));
        assert_eq!(time_left(&secret(Some("2025-12-31T23:00:00Z")), now), None);
        assert_eq!(time_left(&secret(Some("garbage")), now), None);
        assert_eq!(
            time_left(&secret(Some("2026-01-01T01:00:00Z")), now),
            Some(Some(Duration::from_secs(3600)))
        );
    }
}
