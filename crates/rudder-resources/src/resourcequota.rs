//! The `ResourceQuota` admission plugin (upstream's
//! `apiserver/pkg/admission/plugin/resourcequota`): a namespaced create (or an update that
//! grows usage) is checked against every ResourceQuota of its namespace that covers it, refused
//! with upstream's 403 when it would exceed one, and otherwise charged into the quotas'
//! `status.used` before the object is stored, so concurrent creates cannot overshoot. The
//! resourcequota controller later recalculates the true usage (releasing what was charged for
//! writes that then failed, as upstream).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rudder_api::quota::{self, Evaluator};
use rudder_api::status::{ApiError, GroupResource};
use rudder_registry::{object, Admission, Attributes, Entry, Operation, WatchCache};
use rudder_store::{Store, StoreError, WriteOptions};
use serde_json::Value;

/// Upstream retries a batch whose quota update conflicted this many times.
const RETRIES: usize = 3;

pub struct ResourceQuotaAdmission {
    cache: Arc<WatchCache>,
    store: Arc<dyn Store>,
    /// The store prefix of ResourceQuotas.
    prefix: String,
    /// Upstream evaluates a namespace's requests one batch at a time; here one check-and-charge
    /// at a time per namespace, so this server's own writes never conflict with each other.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A quota as read, with the revision its status update must match.
struct Read {
    value: Value,
    revision: i64,
}

impl ResourceQuotaAdmission {
    pub fn new(
        cache: Arc<WatchCache>,
        store: Arc<dyn Store>,
        resource_quota_prefix: String,
    ) -> ResourceQuotaAdmission {
        ResourceQuotaAdmission {
            cache,
            store,
            prefix: resource_quota_prefix,
            locks: Default::default(),
        }
    }

    fn cached(&self, ns: &str) -> Vec<Read> {
        let (items, _) = self
            .cache
            .list(&self.prefix, &format!("{}/{ns}/", self.prefix));
        items
            .iter()
            .map(|o| Read {
                value: o.value(),
                revision: o.revision,
            })
            .collect()
    }

    /// The named quotas as stored now (a retry after a conflict must not see the cache's
    /// possibly older copy).
    async fn fresh(&self, ns: &str, names: &[String]) -> Result<Vec<Read>, ApiError> {
        let mut out = Vec::new();
        for name in names {
            let key = format!("{}/{ns}/{name}", self.prefix);
            let (kv, _) = self
                .store
                .get(&key, None)
                .await
                .map_err(ApiError::internal_error)?;
            if let Some(kv) = kv {
                let value = serde_json::from_slice(&kv.value).map_err(ApiError::internal_error)?;
                out.push(Read {
                    value,
                    revision: kv.mod_revision,
                });
            }
        }
        Ok(out)
    }

    /// Writes a quota's new `status.used`; false when it changed meanwhile.
    async fn charge(
        &self,
        ns: &str,
        q: &Read,
        used: &quota::ResourceList,
    ) -> Result<bool, ApiError> {
        let name = object::name(&q.value).to_string();
        let mut v = q.value.clone();
        object::remove_meta(&mut v, "resourceVersion");
        if let Some(status) = v.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("used".into(), quota::to_json(used));
        }
        let bytes = serde_json::to_vec(&v).map_err(ApiError::internal_error)?;
        let key = format!("{}/{ns}/{name}", self.prefix);
        match self
            .store
            .update(
                &key,
                Bytes::from(bytes),
                q.revision,
                WriteOptions::default(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal_error(e)),
        }
    }
}

/// `admission.NewForbidden` from a validating plugin: upstream validates after the name was
/// generated, so the message names the object by its full name.
pub(crate) fn validation_forbidden(entry: &Entry, obj: &Value, err: String) -> ApiError {
    ApiError::forbidden(&entry.info.group_resource(), object::name(obj), err)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[async_trait::async_trait]
impl Admission for ResourceQuotaAdmission {
    fn handles(&self, entry: &Entry) -> bool {
        // Every namespaced kind can be counted (`count/<resource>.<group>`); events are
        // upstream's one ignored resource.
        entry.info.namespaced && !(entry.info.group.is_empty() && entry.info.plural == "events")
    }

    async fn validate(&self, attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
        let (entry, old, dry_run) = (attrs.entry, attrs.old, attrs.dry_run);
        if !matches!(attrs.operation, Operation::Create | Operation::Update)
            || !attrs.is_main_resource()
        {
            return Ok(());
        }
        let ns = object::namespace(obj);
        if ns.is_empty() {
            return Ok(());
        }
        let evaluator = Evaluator::for_resource(&entry.info.group, &entry.info.plural);
        if old.is_some() && !evaluator.handles_update() {
            return Ok(());
        }
        // Most namespaces have no quota: no decoding, no lock.
        let (present, _) = self
            .cache
            .list(&self.prefix, &format!("{}/{ns}/", self.prefix));
        if present.is_empty() {
            return Ok(());
        }
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(ns.to_string())
            .or_default()
            .clone();
        let _serial = lock.lock().await;
        let mut quotas = self.cached(ns);
        for attempt in 0..=RETRIES {
            let values: Vec<Value> = quotas.iter().map(|q| q.value.clone()).collect();
            let changes = quota::check_request(&values, &evaluator, obj, old, false, now())
                .map_err(|d| validation_forbidden(entry, obj, d.0))?;
            if dry_run || changes.is_empty() {
                return Ok(());
            }
            let mut failed = Vec::new();
            for (i, used) in &changes {
                if !self.charge(ns, &quotas[*i], used).await? {
                    failed.push(object::name(&quotas[*i].value).to_string());
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if attempt == RETRIES {
                return Err(ApiError::conflict(
                    &GroupResource::new("", "resourcequotas"),
                    &failed[0],
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            // Only the quotas whose update failed are checked again (what succeeded stays
            // charged), as upstream's retry does.
            quotas = self.fresh(ns, &failed).await?;
        }
        Ok(())
    }
}
