//! Upstream's root-ca-certificate-publisher-controller
//! (pkg/controller/certificates/rootcacertpublisher/publisher.go): the `kube-root-ca.crt`
//! ConfigMap with the cluster CA in every namespace, recreated when deleted and restored when
//! edited, so pods can verify the API server at its internal names.

use crate::podutil::namespace_terminating;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::controller::{run_workers, Next, ReconcileResult, Reconciler};
use crate::informer::{Change, Informer};
use crate::manager::Context;
use crate::workqueue::WorkQueue;

pub const ROOT_CA_CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

struct Publisher {
    client: Client,
    root_ca: String,
    config_maps: Arc<Informer<ConfigMap>>,
    queue: Arc<WorkQueue>,
}

pub fn start(cx: &Context, tasks: &mut tokio::task::JoinSet<()>) {
    let Some(root_ca) = cx.credentials.root_ca.clone() else {
        tracing::warn!("root-ca-certificate-publisher-controller is disabled: no root CA");
        return;
    };
    let namespaces = cx.informers.get::<Namespace>();
    let c = Arc::new(Publisher {
        client: cx.client.clone(),
        root_ca,
        config_maps: cx.informers.get::<ConfigMap>(),
        queue: WorkQueue::new("root_ca_cert_publisher", cx.metrics.clone()),
    });
    let this = c.clone();
    c.config_maps.add_handler(move |ch| {
        // Upstream reacts to deletes and updates of its ConfigMap. Adds are looked at too: after
        // a re-list an edit made while the watch was down arrives as an add, and a sync of a
        // correct ConfigMap writes nothing.
        let (Change::Added(cm) | Change::Deleted(cm) | Change::Updated { new: cm, .. }) = ch;
        if cm.metadata.name.as_deref() == Some(ROOT_CA_CONFIG_MAP_NAME) {
            this.queue
                .add(cm.metadata.namespace.clone().unwrap_or_default());
        }
    });
    let this = c.clone();
    namespaces.add_handler(move |ch| match ch {
        Change::Added(ns) => this.queue.add(ns.metadata.name.clone().unwrap_or_default()),
        Change::Updated { new, .. }
            if new.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active") =>
        {
            this.queue
                .add(new.metadata.name.clone().unwrap_or_default())
        }
        _ => {}
    });
    let (config_maps, queue) = (c.config_maps.clone(), c.queue.clone());
    tasks.spawn(async move {
        config_maps.wait_synced().await;
        run_workers(queue, c, 1).await;
    });
}

/// What the namespace's ConfigMap must become, or `None` when it is right: upstream compares the
/// whole `data` and only that the description annotation is non-empty.
pub fn desired(existing: &ConfigMap, root_ca: &str) -> Option<ConfigMap> {
    let data = BTreeMap::from([("ca.crt".to_string(), root_ca.to_string())]);
    let described = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if existing.data.as_ref() == Some(&data) && described {
        return None;
    }
    let mut cm = existing.clone();
    cm.data = Some(data);
    cm.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Some(cm)
}

pub fn new_config_map(root_ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CA_CONFIG_MAP_NAME.into()),
            annotations: Some(BTreeMap::from([(
                DESCRIPTION_ANNOTATION.to_string(),
                DESCRIPTION.to_string(),
            )])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "ca.crt".to_string(),
            root_ca.to_string(),
        )])),
        ..Default::default()
    }
}

impl Reconciler for Publisher {
    fn reconcile(self: Arc<Self>, ns: String) -> BoxFuture<'static, ReconcileResult> {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
            match self.config_maps.get(&ns, ROOT_CA_CONFIG_MAP_NAME) {
                None => match api
                    .create(&PostParams::default(), &new_config_map(&self.root_ca))
                    .await
                {
                    Ok(_) => Ok(Next::Done),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Next::Done),
                    Err(e) if namespace_terminating(&e) => Ok(Next::Done),
                    Err(e) => Err(e.into()),
                },
                Some(cm) => {
                    let Some(cm) = desired(&cm, &self.root_ca) else {
                        return Ok(Next::Done);
                    };
                    api.replace(ROOT_CA_CONFIG_MAP_NAME, &PostParams::default(), &cm)
                        .await?;
                    Ok(Next::Done)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// publisher_test.go's cases: an up-to-date ConfigMap is left alone; changed data, a
    /// missing or empty description, or extra keys are restored, other annotations kept.
    #[test]
    fn restores_as_upstream() {
        let ca = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";
        let good = new_config_map(ca);
        assert_eq!(desired(&good, ca), None);

        let mut edited = good.clone();
        edited
            .data
            .as_mut()
            .unwrap()
            .insert("ca.crt".into(), "changed".into());
        let fixed = desired(&edited, ca).unwrap();
        assert_eq!(fixed.data, good.data);

        let mut extra = good.clone();
        extra.data.as_mut().unwrap().insert("x".into(), "y".into());
        assert_eq!(desired(&extra, ca).unwrap().data, good.data);

        let mut undescribed = good.clone();
        undescribed.metadata.annotations = Some(BTreeMap::from([
            ("other".to_string(), "kept".to_string()),
            (DESCRIPTION_ANNOTATION.to_string(), String::new()),
        ]));
        let fixed = desired(&undescribed, ca).unwrap();
        let ann = fixed.metadata.annotations.unwrap();
        assert_eq!(ann[DESCRIPTION_ANNOTATION], DESCRIPTION);
        assert_eq!(ann["other"], "kept");

        // A different description is the operator's to keep (upstream only checks non-empty).
        let mut custom = good.clone();
        custom
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(DESCRIPTION_ANNOTATION.into(), "mine".into());
        assert_eq!(desired(&custom, ca), None);
    }
}
