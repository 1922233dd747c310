//! The watches feeding the index: Services, EndpointSlices (those naming a service) and
//! Namespaces, as CoreDNS's `dnsControl` informers (pods are not watched: `pods insecure`
//! answers from the name alone), and Nodes for k3s's NodeHosts.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::index::{Index, SERVICE_NAME_LABEL};

/// How the index takes one kind's events.
struct Sink<K> {
    replace: fn(&Index, &[K]),
    apply: fn(&Index, &K),
    delete: fn(&Index, &K),
}

/// Keeps `index` up to date until the future is dropped.
pub async fn run(client: Client, index: Arc<Index>) {
    let services = follow(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        index.clone(),
        Sink {
            replace: Index::replace_services,
            apply: Index::apply_service,
            delete: Index::delete_service,
        },
    );
    let slices = follow(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
        index.clone(),
        Sink {
            replace: Index::replace_slices,
            apply: Index::apply_slice,
            delete: Index::delete_slice,
        },
    );
    let nodes = follow(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        index.clone(),
        Sink {
            replace: Index::replace_nodes,
            apply: Index::apply_node,
            delete: Index::delete_node,
        },
    );
    let namespaces = follow(
        Api::<Namespace>::all(client),
        watcher::Config::default(),
        index,
        Sink {
            replace: Index::replace_namespaces,
            apply: Index::apply_namespace,
            delete: Index::delete_namespace,
        },
    );
    tokio::join!(services, slices, namespaces, nodes);
}

async fn follow<K>(api: Api<K>, config: watcher::Config, index: Arc<Index>, sink: Sink<K>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    // A (re)list replaces the kind's objects as a whole once complete, so objects deleted
    // while the watch was down disappear.
    let mut listing: Vec<K> = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(o)) => listing.push(o),
            Ok(Event::InitDone) => (sink.replace)(&index, &std::mem::take(&mut listing)),
            Ok(Event::Apply(o)) => (sink.apply)(&index, &o),
            Ok(Event::Delete(o)) => (sink.delete)(&index, &o),
            Err(e) => tracing::warn!(error = %e, "cluster DNS watch failed; retrying"),
        }
    }
}
