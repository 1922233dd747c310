//! Leases for keys written with a TTL, shared the way kube-apiserver's `leaseManager` shares
//! them.
//!
//! A key with a TTL needs a lease, and a `LeaseGrant` is a raft round trip of its own. Events
//! (the only TTL'd objects upstream, one hour) are among the most frequent writes in a cluster,
//! so granting one lease per write would double their cost and fill etcd with leases. Instead
//! one lease per TTL is reused for a short window: it is granted with the TTL *plus* that
//! window, so every key attached during the window still lives at least its TTL, and at most
//! the window longer. As upstream, the window is 5% of the TTL capped at 60 s (3 minutes of an
//! Event's hour would be too long), which makes short TTLs (under 20 s) get a lease each, and
//! a lease carries at most 1,000 keys so that its expiry stays a modest raft entry.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::Client;
use tokio::time::Instant;

use crate::error::EtcdFailure;

/// Longest reuse window, as kube-apiserver's `--lease-reuse-duration-seconds` default.
const MAX_REUSE: Duration = Duration::from_secs(60);
/// Reuse window as a share of the TTL (percent), as upstream.
const REUSE_PERCENT: u64 = 5;
/// Most keys attached to one lease, as upstream's `leaseMaxAttachedObjectCount`.
const MAX_KEYS_PER_LEASE: usize = 1000;

struct Slot {
    id: i64,
    /// When the lease runs out at the latest, measured from before the grant was sent, so the
    /// estimate can only err early.
    expires: Instant,
    attached: usize,
}

#[derive(Default)]
pub(crate) struct LeaseManager {
    /// One reusable lease per TTL (whole seconds). The lock is held across a grant, so a burst
    /// of writes with a new TTL waits for one grant instead of each sending its own.
    slots: tokio::sync::Mutex<HashMap<i64, Slot>>,
}

/// A TTL in whole etcd seconds, rounded up so a key never expires early.
pub(crate) fn ttl_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

fn reuse_window(ttl_secs: i64) -> i64 {
    let by_share = ttl_secs.saturating_mul(REUSE_PERCENT as i64) / 100;
    by_share.min(MAX_REUSE.as_secs() as i64)
}

impl LeaseManager {
    /// A lease that keeps a key written now alive for at least `ttl_secs`.
    pub(crate) async fn lease_for(
        &self,
        client: &Client,
        ttl_secs: i64,
        timeout: Duration,
    ) -> Result<i64, EtcdFailure> {
        let mut slots = self.slots.lock().await;
        let now = Instant::now();
        if let Some(slot) = slots.get_mut(&ttl_secs) {
            if now + Duration::from_secs(ttl_secs as u64) <= slot.expires
                && slot.attached < MAX_KEYS_PER_LEASE
            {
                slot.attached += 1;
                return Ok(slot.id);
            }
        }
        // Drop leases that can no longer be handed out so odd TTLs do not accumulate.
        slots.retain(|_, s| s.expires > now);
        let grant_ttl = ttl_secs + reuse_window(ttl_secs);
        // A grant retried after an ambiguous failure can only leak a lease, which expires.
        let resp = crate::call(timeout, crate::Retry::Idempotent, || {
            let mut lease = client.lease_client();
            async move { lease.grant(grant_ttl, None).await }
        })
        .await?;
        if !resp.error().is_empty() {
            return Err(EtcdFailure::Other(rudder_store::StoreError::Internal(
                format!("etcd lease grant: {}", resp.error()),
            )));
        }
        // etcd may raise the TTL to its minimum (about 2 s); the expiry follows what it granted.
        tracing::debug!(
            lease = resp.id(),
            ttl = ttl_secs,
            granted = resp.ttl(),
            "granted etcd lease for TTL keys"
        );
        slots.insert(
            ttl_secs,
            Slot {
                id: resp.id(),
                expires: now + Duration::from_secs(resp.ttl().max(0) as u64),
                attached: 1,
            },
        );
        Ok(resp.id())
    }

    /// Stop handing out `id`: etcd no longer knows it (it expired early, or was revoked).
    pub(crate) async fn forget(&self, ttl_secs: i64, id: i64) {
        let mut slots = self.slots.lock().await;
        if slots.get(&ttl_secs).is_some_and(|s| s.id == id) {
            slots.remove(&ttl_secs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ttl_seconds(Duration::ZERO), 1);
        assert_eq!(ttl_seconds(Duration::from_secs(2)), 2);
        assert_eq!(ttl_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn reuse_window_is_a_capped_share_of_the_ttl() {
        assert_eq!(reuse_window(2), 0, "short TTLs get a lease per write");
        assert_eq!(reuse_window(100), 5);
        assert_eq!(
            reuse_window(3600),
            60,
            "an Event's hour reuses for a minute"
        );
    }
}
