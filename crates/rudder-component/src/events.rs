//! Events as kube-controller-manager writes them: core/v1 Events (client-go's `record`
//! package), `source.component` the controller's name (`replicaset-controller`, …), passed
//! through client-go's `EventCorrelator` first:
//! - the same event again (object, type, reason, message) patches the first one's `count`;
//! - the 10th distinct message of one object, type and reason within 10 minutes starts one
//!   event `(combined from similar events): <message>` that later ones count into;
//! - a source may write 25 events about one object at once, then one per 5 minutes (a token
//!   bucket per object); the rest are dropped, so a ReplicaSet creating 1,000 pods writes 25
//!   events, not 1,000, as upstream.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use lru::LruCache;

/// client-go's `maxLruCacheEntries`: how many events, aggregates and objects are remembered.
const REMEMBERED: usize = 4096;
/// client-go's `defaultAggregateMaxEvents` and `defaultAggregateIntervalInSeconds`.
const AGGREGATE_MAX_EVENTS: usize = 10;
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// client-go's `defaultSpamBurst` and `defaultSpamQPS` (one event per 5 minutes).
const SPAM_BURST: f64 = 25.0;
const SPAM_QPS: f64 = 1.0 / 300.0;
const COMBINED: &str = "(combined from similar events): ";

/// What to write for an event that passed the correlator.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// A new Event object.
    Create { name: String, message: String },
    /// The Event written for an earlier occurrence, counted up.
    Patch {
        name: String,
        namespace: String,
        count: i32,
        message: String,
    },
}

/// An earlier occurrence's Event, by the key it folds under.
#[derive(Clone)]
struct Observation {
    namespace: String,
    name: String,
    count: i32,
}

struct AggregateRecord {
    messages: HashSet<String>,
    last: Instant,
}

struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn try_accept(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * SPAM_QPS).min(SPAM_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// client-go's `EventCorrelator` (aggregate, then observe, then filter), for one source.
struct Correlator {
    aggregates: LruCache<String, AggregateRecord>,
    observed: LruCache<String, Observation>,
    spam: LruCache<String, TokenBucket>,
}

impl Correlator {
    fn new() -> Correlator {
        let size = NonZeroUsize::new(REMEMBERED).unwrap_or(NonZeroUsize::MIN);
        Correlator {
            aggregates: LruCache::new(size),
            observed: LruCache::new(size),
            spam: LruCache::new(size),
        }
    }

    /// `None` when the spam filter drops the event.
    fn correlate(
        &mut self,
        regarding: &ObjectReference,
        namespace: &str,
        type_: &str,
        reason: &str,
        message: String,
        (now, name_suffix): (Instant, u128),
    ) -> Option<Write> {
        let object = [
            regarding.kind.as_deref(),
            regarding.namespace.as_deref(),
            regarding.name.as_deref(),
            regarding.uid.as_deref(),
            regarding.api_version.as_deref(),
        ]
        .map(Option::unwrap_or_default)
        .join("\0");
        let aggregate_key = format!("{object}\0{type_}\0{reason}");
        let record = self
            .aggregates
            .get_or_insert_mut(aggregate_key.clone(), || AggregateRecord {
                messages: HashSet::new(),
                last: now,
            });
        if now.saturating_duration_since(record.last) > AGGREGATE_INTERVAL {
            record.messages.clear();
        }
        record.messages.insert(message.clone());
        record.last = now;
        let (key, message) = if record.messages.len() < AGGREGATE_MAX_EVENTS {
            let field_path = regarding.field_path.as_deref().unwrap_or_default();
            (format!("{aggregate_key}\0{field_path}\0{message}"), message)
        } else {
            // Keep the set at its bound, as client-go pops one.
            if let Some(any) = record.messages.iter().next().cloned() {
                record.messages.remove(&any);
            }
            (
                format!("{aggregate_key}\0combined"),
                format!("{COMBINED}{message}"),
            )
        };
        // Observed before the filter, as client-go: a dropped occurrence still counts.
        let write = match self.observed.get_mut(&key) {
            Some(seen) => {
                seen.count += 1;
                Write::Patch {
                    name: seen.name.clone(),
                    namespace: seen.namespace.clone(),
                    count: seen.count,
                    message,
                }
            }
            None => {
                let name = format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or_default(),
                    name_suffix
                );
                self.observed.put(
                    key,
                    Observation {
                        namespace: namespace.to_string(),
                        name: name.clone(),
                        count: 1,
                    },
                );
                Write::Create { name, message }
            }
        };
        let bucket = self.spam.get_or_insert_mut(object, || TokenBucket {
            tokens: SPAM_BURST,
            last: now,
        });
        bucket.try_accept(now).then_some(write)
    }
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    host: String,
    correlator: Arc<Mutex<Correlator>>,
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
            correlator: Arc::new(Mutex::new(Correlator::new())),
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
        let now = jiff::Timestamp::now();
        let write = self
            .correlator
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .correlate(
                &regarding,
                &namespace,
                type_,
                reason,
                message,
                (Instant::now(), now.as_nanosecond().unsigned_abs()),
            );
        let Some(write) = write else {
            return;
        };
        let this = self.clone();
        let type_ = type_.to_string();
        let reason = reason.to_string();
        tokio::spawn(async move {
            let Ok(_permit) = this.writes.clone().acquire_owned().await else {
                return;
            };
            if let Err(e) = this
                .write(regarding, namespace, &type_, &reason, write, now)
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
        write: Write,
        now: jiff::Timestamp,
    ) -> Result<(), kube::Error> {
        let (name, message, count) = match write {
            Write::Patch {
                name,
                namespace: ns,
                count,
                message,
            } => {
                let patch = serde_json::json!({
                    "count": count, "lastTimestamp": Time(now), "message": message,
                });
                let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    // Gone (expired, deleted): written anew, as client-go's sink does.
                    Err(kube::Error::Api(e)) if e.code == 404 => (name, message, count),
                    other => return other.map(|_| ()),
                }
            }
            Write::Create { name, message } => (name, message, 1),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name),
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
            count: Some(count),
            event_time: None::<MicroTime>,
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn create(c: &mut Correlator, obj: &str, message: &str, now: Instant) -> Option<Write> {
        c.correlate(
            &rs(obj),
            "default",
            "Normal",
            "SuccessfulCreate",
            message.into(),
            (now, 7),
        )
    }

    // Cases after client-go's events_cache_test.go and what kube-controller-manager writes
    // for a ReplicaSet that creates many pods.
    #[test]
    fn distinct_messages_combine_after_ten_and_the_object_is_rate_limited() {
        let mut c = Correlator::new();
        let t0 = Instant::now();
        let writes: Vec<_> = (0..40)
            .map(|i| create(&mut c, "web", &format!("Created pod: web-{i}"), t0))
            .collect();
        // The first nine as they are.
        for (i, w) in writes.iter().take(9).enumerate() {
            assert!(
                matches!(w, Some(Write::Create { message, .. }) if *message == format!("Created pod: web-{i}")),
                "{i}: {w:?}"
            );
        }
        // The tenth starts the combined event; the next ones count into it.
        let Some(Write::Create { name, message }) = &writes[9] else {
            panic!("{:?}", writes[9])
        };
        assert_eq!(
            message,
            "(combined from similar events): Created pod: web-9"
        );
        for (i, w) in writes.iter().enumerate().take(25).skip(10) {
            assert_eq!(
                w,
                &Some(Write::Patch {
                    name: name.clone(),
                    namespace: "default".into(),
                    count: i as i32 - 8,
                    message: format!("(combined from similar events): Created pod: web-{i}"),
                })
            );
        }
        // 25 writes about one object, then nothing until the bucket refills.
        assert!(
            writes[25..].iter().all(Option::is_none),
            "{:?}",
            &writes[25..]
        );
        // Another object has its own budget.
        assert!(create(&mut c, "api", "Created pod: api-0", t0).is_some());
        // One token per five minutes; the counts dropped meanwhile still add up.
        let later = t0 + Duration::from_secs(301);
        assert_eq!(
            create(&mut c, "web", "Created pod: web-40", later),
            Some(Write::Patch {
                name: name.clone(),
                namespace: "default".into(),
                count: 32,
                message: "(combined from similar events): Created pod: web-40".into(),
            })
        );
        assert_eq!(create(&mut c, "web", "Created pod: web-41", later), None);
    }

    #[test]
    fn the_same_event_counts_up_and_aggregation_forgets_after_ten_minutes() {
        let mut c = Correlator::new();
        let t0 = Instant::now();
        let Some(Write::Create { name, .. }) = create(&mut c, "db", "Scaled up", t0) else {
            panic!()
        };
        assert_eq!(name, "db.7");
        let Some(Write::Patch {
            name: again, count, ..
        }) = create(&mut c, "db", "Scaled up", t0)
        else {
            panic!()
        };
        assert_eq!((again.as_str(), count), ("db.7", 2));
        for i in 0..8 {
            create(&mut c, "db", &format!("m{i}"), t0);
        }
        // Ten distinct messages within the interval: combined.
        let Some(Write::Create { message, .. }) = create(&mut c, "db", "m8", t0) else {
            panic!()
        };
        assert!(message.starts_with(COMBINED), "{message}");
        // After ten quiet minutes a new message is written as it is again.
        let later = t0 + AGGREGATE_INTERVAL + Duration::from_secs(1);
        let Some(Write::Create { message, .. }) = create(&mut c, "db", "fresh", later) else {
            panic!()
        };
        assert_eq!(message, "fresh");
    }
}
