//! The one reconcile shape every controller uses: event handlers map informer changes to keys on
//! the controller's work queue; workers take a key, reconcile it against the shared caches, and
//! requeue it with backoff on error (or after a delay when the controller asks to look again).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::workqueue::WorkQueue;

/// What a successful reconcile wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Look again after this long (e.g. minReadySeconds elapsing, a deadline).
    After(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{}", api_message(.0))]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

pub type ReconcileResult = Result<Next, ReconcileError>;

pub trait Reconciler: Send + Sync + 'static {
    fn reconcile(self: Arc<Self>, key: String) -> BoxFuture<'static, ReconcileResult>;
}

/// Runs `workers` workers over `queue` until it shuts down.
pub async fn run_workers<R: Reconciler>(queue: Arc<WorkQueue>, reconciler: Arc<R>, workers: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (q, r) = (queue.clone(), reconciler.clone());
        set.spawn(async move {
            while let Some(key) = q.get().await {
                match r.clone().reconcile(key.clone()).await {
                    Ok(Next::Done) => q.forget(&key),
                    Ok(Next::After(d)) => {
                        q.forget(&key);
                        q.add_after(key.clone(), d);
                    }
                    Err(e) => {
                        tracing::info!(queue = q.name(), %key, error = %e, "reconcile failed; retrying with backoff");
                        q.add_rate_limited(key.clone());
                    }
                }
                q.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// An error as client-go's `err.Error()` reads: a server's `Status` by its message alone (what
/// upstream puts in events and conditions), anything else as kube describes it.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        e => e.to_string(),
    }
}

/// Whether an API error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A write whose object may already be gone: a 404 is success (the object's deletion is what
/// the controller will see next), any other error is the reconcile's.
pub fn ignore_not_found<T>(r: Result<T, kube::Error>) -> Result<(), ReconcileError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether an API error is a 409 (conflict or already exists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
