//! A reflector of every object of one kind that tells its owner what changed. The proxy, the
//! network policy controller and the scheduler each keep such caches and recompute (or requeue)
//! on a change; one implementation keeps their retry and event handling the same.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

/// What a watcher event did to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Deleted,
    /// A (re)list finished: the store was replaced as a whole.
    Relisted,
}

/// What a kind must be to be reflected: a typed, cluster-listable API object.
pub trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A store of every `K` in the cluster and the future that keeps it current, calling
/// `on_change` after each change is in the store (so a woken reader sees it). A failed watch is
/// retried after a second, as an informer's reflector does.
pub fn reflect<K: Watched>(
    client: &kube::Client,
    mut on_change: impl FnMut(Change) + Send + 'static,
) -> (Store<K>, BoxFuture<'static, ()>) {
    let (store, mut writer) = reflector::store();
    let api: kube::Api<K> = kube::Api::all(client.clone());
    let run = Box::pin(async move {
        let mut stream = watcher(api, watcher::Config::default()).boxed();
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let change = match &ev {
                watcher::Event::Apply(o) => {
                    let known = writer.as_reader().get(&ObjectRef::from_obj(o)).is_some();
                    Some(if known {
                        Change::Updated
                    } else {
                        Change::Added
                    })
                }
                watcher::Event::Delete(_) => Some(Change::Deleted),
                watcher::Event::InitDone => Some(Change::Relisted),
                watcher::Event::Init | watcher::Event::InitApply(_) => None,
            };
            writer.apply_watcher_event(&ev);
            if let Some(c) = change {
                on_change(c);
            }
        }
    });
    (store, run)
}
