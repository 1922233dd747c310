//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's `leaderelection`
//! semantics: a candidate takes the lease when it is free or when the holder has not renewed it
//! for `lease_duration` *as observed locally* (clock skew between machines does not matter), the
//! leader renews every `retry_period` and gives up leadership when it could not renew within
//! `renew_deadline`, and a leader that stops releases the lease so another takes over at once.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// `leader_election_master_status{name}`: 1 while this process leads `name`.
#[derive(Clone, Default)]
pub struct LeaderMetrics {
    pub master_status: Family<Vec<(String, String)>, Gauge>,
}

/// One lease to contend for.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    pub namespace: String,
    pub name: String,
    /// Unique per process: upstream uses `<hostname>_<uuid>`.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

#[derive(Debug, thiserror::Error)]
enum TryError {
    #[error("lease is held by {0}")]
    HeldByOther(String),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// What a candidate last saw of the lease, and when it saw it change.
struct Observed {
    record: Option<(String, Option<MicroTime>, Option<i32>)>,
    at: Instant,
}

impl LeaderElection {
    /// Upstream's durations for kube-scheduler and kube-controller-manager: 15 s lease,
    /// 10 s renew deadline, 2 s retry.
    pub fn new(namespace: &str, name: &str, identity: String) -> LeaderElection {
        LeaderElection {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Contends for the lease until `shutdown` resolves; while leading, runs the future `lead`
    /// makes. When leadership is lost, that future is dropped (everything it started must stop
    /// with it) and the process becomes a candidate again. On shutdown the lease is released.
    pub async fn run<F, Fut>(
        &self,
        client: Client,
        metrics: LeaderMetrics,
        mut lead: F,
        shutdown: impl Future<Output = ()>,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let api: Api<Lease> = Api::namespaced(client, &self.namespace);
        let gauge = metrics
            .master_status
            .get_or_create(&vec![("name".to_string(), self.name.clone())])
            .clone();
        let mut observed = Observed {
            record: None,
            at: Instant::now(),
        };
        tokio::pin!(shutdown);
        loop {
            // Candidate: retry until the lease is ours.
            loop {
                match self.try_acquire_or_renew(&api, &mut observed).await {
                    Ok(()) => break,
                    Err(TryError::HeldByOther(holder)) => {
                        tracing::debug!(lease = %self.name, %holder, "lease held by another");
                    }
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "error acquiring the lease")
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(jitter(self.retry_period)) => {}
                }
            }
            tracing::info!(lease = %format!("{}/{}", self.namespace, self.name), identity = %self.identity, "successfully acquired lease");
            gauge.set(1);
            let work = lead();
            tokio::pin!(work);
            // The work ending by itself (a fatal error) ends the component, as upstream's
            // processes exit; contending again would only repeat the failure.
            let stopping = tokio::select! {
                _ = &mut shutdown => true,
                () = self.keep_renewing(&api, &mut observed) => false,
                () = &mut work => true,
            };
            gauge.set(0);
            if stopping {
                self.release(&api).await;
                return;
            }
            tracing::warn!(lease = %self.name, "leader election lost");
        }
    }

    /// Returns when leadership is lost: no successful renewal within `renew_deadline`.
    async fn keep_renewing(&self, api: &Api<Lease>, observed: &mut Observed) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            let attempt = tokio::time::timeout(
                self.renew_deadline,
                self.try_acquire_or_renew(api, observed),
            )
            .await;
            match attempt {
                Ok(Ok(())) => last_renew = Instant::now(),
                Ok(Err(TryError::HeldByOther(holder))) => {
                    tracing::warn!(lease = %self.name, %holder, "lease taken by another");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.name, error = %e, "failed to renew lease")
                }
                Err(_) => tracing::warn!(lease = %self.name, "renewing the lease timed out"),
            }
            if last_renew.elapsed() >= self.renew_deadline {
                return;
            }
        }
    }

    async fn try_acquire_or_renew(
        &self,
        api: &Api<Lease>,
        observed: &mut Observed,
    ) -> Result<(), TryError> {
        let now = MicroTime(jiff::Timestamp::now());
        let current = match api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(self.lease_duration.as_secs() as i32),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                api.create(&PostParams::default(), &lease).await?;
                observed.at = Instant::now();
                return Ok(());
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = Some((
            holder.clone(),
            spec.renew_time.clone(),
            spec.lease_transitions,
        ));
        if observed.record != record {
            observed.record = record;
            observed.at = Instant::now();
        }
        let lease_duration = spec
            .lease_duration_seconds
            .map_or(
                self.lease_duration,
                |s| Duration::from_secs(s.max(0) as u64),
            );
        if !holder.is_empty() && holder != self.identity && observed.at.elapsed() < lease_duration {
            return Err(TryError::HeldByOther(holder));
        }
        let mut next = spec.clone();
        if holder != self.identity {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(self.lease_duration.as_secs() as i32);
        next.renew_time = Some(now);
        let mut updated = current.clone();
        updated.spec = Some(next);
        // The resourceVersion in `updated` makes this a compare-and-swap: a racing candidate
        // gets 409 and retries.
        api.replace(&self.name, &PostParams::default(), &updated)
            .await?;
        observed.at = Instant::now();
        Ok(())
    }

    /// Gives the lease up (holder cleared, duration 1 s) so a standby takes over immediately.
    async fn release(&self, api: &Api<Lease>) {
        let Ok(Some(mut lease)) = api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let now = MicroTime(jiff::Timestamp::now());
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        if let Err(e) = api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(lease = %self.name, error = %e, "failed to release the lease");
        }
    }
}

/// client-go's `wait.Jitter(period, 1.2)`: up to 120 % extra, so candidates do not move in
/// lock step.
fn jitter(period: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let frac = f64::from(nanos % 1000) / 1000.0 * 1.2;
    period + period.mul_f64(frac)
}
