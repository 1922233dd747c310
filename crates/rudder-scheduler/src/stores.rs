//! Listers whose changes requeue pods: a reflector that also reports each change as a cluster
//! event (upstream's informer event handlers that call `MoveAllToActiveOrBackoffQueue`).

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use tokio::sync::mpsc::UnboundedSender;

use crate::framework::{ActionType, EventResource};

/// A store of every `K` in the cluster and the informer future that keeps it current; each
/// change is sent as `(resource, action)`.
pub fn reflect_notify<K>(
    client: &kube::Client,
    informers: &mut Vec<futures::future::BoxFuture<'static, ()>>,
    resource: EventResource,
    events: UnboundedSender<(EventResource, ActionType)>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, mut writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    informers.push(Box::pin(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let action = match &ev {
                watcher::Event::Apply(o) => {
                    let known = writer.as_reader().get(&ObjectRef::from_obj(o)).is_some();
                    Some(if known {
                        ActionType::Update
                    } else {
                        ActionType::Add
                    })
                }
                watcher::Event::Delete(_) => Some(ActionType::Delete),
                _ => None,
            };
            writer.apply_watcher_event(&ev);
            if let Some(a) = action {
                let _ = events.send((resource, a));
            }
        }
    }));
    store
}
