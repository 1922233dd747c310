//! The API server's CustomResourceDefinition controllers (upstream's apiextensions naming,
//! establishing and finalizer controllers, run in-process as upstream runs them inside the
//! API server): grant names, mark CRDs `Established`, swap the registry so their resources are
//! served at once, and empty a deleted CRD of its objects before letting it go.

use std::sync::Arc;
use std::time::Duration;

use rudder_api::status::ApiError;
use rudder_registry::{
    object, DeleteOpts, Entry, GenericStore, ListOpts, OpCx, Registry, WatchFrom, WriteOpts,
};
use rudder_resources::custom;

use crate::conversion::Conversions;
use rudder_store::{RangeRequest, Store, StoreError};
use serde_json::{json, Value};

const CRD_PREFIX: &str = "/registry/apiextensions.k8s.io/customresourcedefinitions/";

/// Serve the resources of the stored, established CRDs. Run before the watch cache loads, so
/// it keeps their objects from the start.
pub async fn register_stored(
    store: &dyn Store,
    registry: &Registry,
    conversions: &Arc<Conversions>,
) -> Result<(), StoreError> {
    let mut crds = Vec::new();
    let mut start_after = None;
    loop {
        let page = store
            .range(RangeRequest {
                prefix: CRD_PREFIX.into(),
                start_after: start_after.take(),
                limit: 1000,
                revision: None,
            })
            .await?;
        for kv in &page.kvs {
            match serde_json::from_slice::<Value>(&kv.value) {
                Ok(v) => crds.push(v),
                Err(err) => tracing::error!(key = %kv.key, %err, "undecodable CRD"),
            }
        }
        if !page.more {
            break;
        }
        start_after = page.kvs.last().map(|kv| kv.key.clone());
    }
    registry.set_dynamic(crds.iter().flat_map(|c| conversions.entries(c)).collect());
    Ok(())
}

/// Follow CRDs for as long as the server runs.
pub fn spawn(server: Arc<crate::ApiServer>, conversions: Arc<Conversions>) {
    crate::run_controller(server, "customresourcedefinitions", move |s| {
        let conversions = conversions.clone();
        async move { follow(&s.gs, &conversions).await }
    });
}

fn crd_entry(gs: &GenericStore) -> Result<Arc<Entry>, ApiError> {
    crate::builtin_entry(gs, "apiextensions.k8s.io", "customresourcedefinitions")
}

async fn follow(gs: &GenericStore, conversions: &Arc<Conversions>) -> Result<(), ApiError> {
    let entry = crd_entry(gs)?;
    let mut watch = gs.watch(&entry, None, WatchFrom::Now).await?;
    sync(gs, &entry, conversions).await;
    // A terminating CRD whose objects are still going (finalizers) is looked at again on a
    // tick, as nothing about the CRD itself changes meanwhile.
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            ev = watch.live.recv() => {
                if ev.is_none() {
                    return Ok(());
                }
                // Coalesce a burst of events into one pass.
                while watch.live.try_recv().is_ok() {}
            }
            _ = tick.tick() => {}
        }
        sync(gs, &entry, conversions).await;
    }
}

/// One pass over every CRD: status, the registry, cleanup of deleted ones. The registry is
/// swapped before `Established` is written, so a client that sees the condition finds the
/// resource served.
async fn sync(gs: &GenericStore, entry: &Arc<Entry>, conversions: &Arc<Conversions>) {
    let (items, _) = gs.cache.list(&entry.prefix, &entry.list_prefix(None));
    let crds: Vec<Value> = items.iter().map(|o| o.value()).collect();
    let others: Vec<&Value> = crds.iter().collect();
    let is_deleting = |crd: &Value| {
        crd.pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
    };
    let desired: Vec<Option<Value>> = crds
        .iter()
        .map(|crd| {
            if is_deleting(crd) {
                return None;
            }
            let status = desired_status(crd, &others);
            (crd.get("status") != Some(&status)).then_some(status)
        })
        .collect();
    let serving: Vec<Entry> = crds
        .iter()
        .zip(&desired)
        .flat_map(|(crd, status)| match status {
            Some(status) => {
                let mut next = crd.clone();
                next["status"] = status.clone();
                conversions.entries(&next)
            }
            None => conversions.entries(crd),
        })
        .collect();
    gs.registry.set_dynamic(serving);
    for (crd, status) in crds.iter().zip(desired) {
        let name = object::name(crd).to_string();
        let result = match status {
            Some(_) => write_status(gs, entry, &name, |cur| desired_status(cur, &others)).await,
            None if is_deleting(crd)
                && object::finalizers(crd)
                    .iter()
                    .any(|f| f == custom::CLEANUP_FINALIZER) =>
            {
                cleanup(gs, entry, crd).await
            }
            None => Ok(()),
        };
        if let Err(err) = result {
            if !err.is_not_found() && err.code != 409 {
                tracing::warn!(crd = %name, %err, "CRD controller");
            }
        }
    }
}

/// The status the naming and establishing controllers give a CRD.
fn desired_status(crd: &Value, others: &[&Value]) -> Value {
    let now = OpCx::now().now;
    let mut out = crd.clone();
    match custom::accept_names(crd, others) {
        Ok(names) => {
            out["status"]["acceptedNames"] = names.to_json();
            custom::set_condition(
                &mut out,
                &now,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
            custom::set_condition(
                &mut out,
                &now,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            );
        }
        Err((reason, message)) => {
            if out["status"]["acceptedNames"].is_null() {
                out["status"]["acceptedNames"] = json!({"plural": "", "kind": ""});
            }
            custom::set_condition(&mut out, &now, "NamesAccepted", "False", reason, &message);
            if !custom::condition_true(&out, "Established") {
                custom::set_condition(
                    &mut out,
                    &now,
                    "Established",
                    "False",
                    "NotAccepted",
                    "not all names are accepted",
                );
            }
        }
    }
    let mut stored: Vec<Value> = out
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(storage) = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v.get("name"))
    {
        if !stored.contains(storage) {
            stored.push(storage.clone());
        }
    }
    out["status"]["storedVersions"] = Value::Array(stored);
    out["status"].clone()
}

async fn write_status(
    gs: &GenericStore,
    entry: &Entry,
    name: &str,
    status: impl Fn(&Value) -> Value,
) -> Result<(), ApiError> {
    let opts = WriteOpts {
        status: true,
        ..Default::default()
    };
    gs.update(
        entry,
        None,
        name,
        |cur| {
            let cur = cur.ok_or_else(|| ApiError::not_found(&entry.info.group_resource(), name))?;
            let mut new = cur.clone();
            new["status"] = status(cur);
            Ok(new)
        },
        &opts,
    )
    .await
    .map(|_| ())
}

/// Upstream's finalizer controller: delete every object of the CRD's resource, then drop the
/// finalizer so the CRD goes.
async fn cleanup(gs: &GenericStore, entry: &Entry, crd: &Value) -> Result<(), ApiError> {
    let name = object::name(crd).to_string();
    let set = |status: &'static str, reason: &'static str, message: String| {
        move |cur: &Value| {
            let mut c = cur.clone();
            custom::set_condition(
                &mut c,
                &OpCx::now().now,
                "Terminating",
                status,
                reason,
                &message,
            );
            c["status"].clone()
        }
    };
    // The resource as the CRD last served it; all versions share one prefix.
    let served = custom::entries(crd).into_iter().next();
    if let Some(cr) = &served {
        if gs
            .cache
            .list(&cr.prefix, &cr.list_prefix(None))
            .0
            .is_empty()
        {
            // Nothing left.
        } else {
            write_status(
                gs,
                entry,
                &name,
                set(
                    "True",
                    "InstanceDeletionInProgress",
                    "CustomResource deletion is in progress".into(),
                ),
            )
            .await?;
            gs.delete_collection(cr, None, &ListOpts::default(), &DeleteOpts::default())
                .await?;
            let left = gs.cache.list(&cr.prefix, &cr.list_prefix(None)).0.len();
            if left > 0 {
                // Objects held by finalizers; the next tick looks again.
                return Ok(());
            }
        }
    }
    write_status(
        gs,
        entry,
        &name,
        set(
            "False",
            "InstanceDeletionCompleted",
            "removed all instances".into(),
        ),
    )
    .await?;
    gs.update(
        entry,
        None,
        &name,
        |cur| {
            let mut new = cur
                .ok_or_else(|| ApiError::not_found(&entry.info.group_resource(), &name))?
                .clone();
            let mut f = object::finalizers(&new);
            f.retain(|f| f != custom::CLEANUP_FINALIZER);
            object::set_finalizers(&mut new, &f);
            Ok(new)
        },
        &WriteOpts::default(),
    )
    .await
    .map(|_| ())
}

/// `openapi` also describing every established CRD's served versions, as upstream's
/// apiextensions OpenAPI controller publishes them. The documents are keyed by each CRD's
/// store key and revision, so any change to a CRD rebuilds them on the next request.
pub(crate) fn with_openapi(
    gs: &GenericStore,
    openapi: rudder_openapi::OpenApi,
) -> rudder_openapi::OpenApi {
    let Some(entry) = gs
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    else {
        return openapi;
    };
    let cache = gs.cache.clone();
    let list = Arc::new(move || cache.list(&entry.prefix, &entry.list_prefix(None)).0);
    let for_key = list.clone();
    openapi.with_custom(
        move || {
            for_key()
                .iter()
                .map(|o| format!("{}@{}", o.key, o.revision))
                .collect()
        },
        move || {
            let mut kinds = Vec::new();
            for crd in list().iter().map(|o| o.value()) {
                for e in custom::entries(&crd) {
                    let schema = crd
                        .pointer("/spec/versions")
                        .and_then(Value::as_array)
                        .and_then(|vs| vs.iter().find(|v| v["name"] == e.info.version.as_str()))
                        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    kinds.push(rudder_openapi::CustomKind {
                        info: e.info,
                        schema,
                    });
                }
            }
            kinds
        },
    )
}
