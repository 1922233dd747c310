//! Events as kube-controller-manager writes them: core/v1 Events (client-go's `record`
//! package), `source.component` the controller's name (`replicaset-controller`, …), repeated
//! events of the same object, reason and message folded into one with a growing `count`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};

/// How many distinct events are remembered for folding (client-go's LRU is 4096).
const REMEMBERED: usize = 4096;

/// (regarding UID, reason, message): events that fold into one.
type EventKey = (String, String, String);
/// (namespace, name, count) of the Event written for a key.
type Recorded = (String, String, i32);

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: String,
    seen: Arc<Mutex<HashMap<EventKey, Recorded>>>,
    writes: Arc<tokio::sync::Semaphore>,
}

pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str, host: &str) -> Recorder {
        Recorder {
            client,
            component: component.to_string(),
            host: host.to_string(),
            seen: Arc::default(),
            writes: Arc::new(tokio::sync::Semaphore::new(16)),
        }
    }

    /// Records an event about `obj` in the background (never blocks or fails the caller).
    pub fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        self.event_for(
            object_reference(obj),
            obj.namespace().unwrap_or_else(|| "default".into()),
            type_,
            reason,
            message,
        );
    }

    pub fn event_for(
        &self,
        regarding: ObjectReference,
        namespace: String,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let this = self.clone();
        let type_ = type_.to_string();
        let reason = reason.to_string();
        tokio::spawn(async move {
            let Ok(_permit) = this.writes.clone().acquire_owned().await else {
                return;
            };
            if let Err(e) = this
                .write(regarding, namespace, &type_, &reason, message)
                .await
            {
                tracing::debug!(error = %e, "writing an event failed");
            }
        });
    }

    async fn write(
        &self,
        regarding: ObjectReference,
        namespace: String,
        type_: &str,
        reason: &str,
        message: String,
    ) -> Result<(), kube::Error> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let now = jiff::Timestamp::now();
        let key = (
            regarding.uid.clone().unwrap_or_default(),
            reason.to_string(),
            message.clone(),
        );
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some((ns, name, count)) = previous {
            let patch = serde_json::json!({"count": count + 1, "lastTimestamp": Time(now)});
            let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .is_ok()
            {
                self.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (ns, name, count + 1));
                return Ok(());
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(""),
            now.as_nanosecond()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding,
            reason: Some(reason.to_string()),
            message: Some(message),
            type_: Some(type_.to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            event_time: None::<MicroTime>,
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key, (namespace, name, 1));
        Ok(())
    }
}
