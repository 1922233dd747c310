//! Listers whose changes requeue pods: a reflector that also reports each change as a cluster
//! event (upstream's informer event handlers that call `MoveAllToActiveOrBackoffQueue`).

use kube::runtime::reflector::Store;
use rudder_component::reflect::{reflect, Change, Watched};
use tokio::sync::mpsc::UnboundedSender;

use crate::framework::{ActionType, EventResource};

/// A store of every `K` in the cluster and the informer future that keeps it current; each
/// change is sent as `(resource, action)`.
pub fn reflect_notify<K: Watched>(
    client: &kube::Client,
    informers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
    resource: EventResource,
    events: UnboundedSender<(EventResource, ActionType)>,
) -> Store<K> {
    let (store, run) = reflect(client, move |change| {
        let action = match change {
            Change::Added => ActionType::Add,
            Change::Updated => ActionType::Update,
            Change::Deleted => ActionType::Delete,
            Change::Relisted => return,
        };
        let _ = events.send((resource, action));
    });
    informers.push(run);
    store
}
