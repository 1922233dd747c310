//! Upstream's rate-limited work queue (client-go `workqueue`): a key is queued at most once
//! (dirty set), never handed to two workers at once (processing set; re-added keys wait until
//! `done`), retried with per-item exponential backoff (5 ms doubling to 1000 s) combined with an
//! overall token bucket (10 qps, burst 100) as `DefaultControllerRateLimiter`, and instrumented
//! with upstream's `workqueue_*` metrics per queue name.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueName {
    pub name: String,
}

/// `workqueue_*` for every queue of the process.
pub struct QueueMetrics {
    pub depth: Family<QueueName, Gauge>,
    pub adds: Family<QueueName, Counter>,
    pub queue_duration: Family<QueueName, Histogram>,
    pub work_duration: Family<QueueName, Histogram>,
    pub retries: Family<QueueName, Counter>,
    pub unfinished_work: Family<QueueName, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub longest_running: Family<QueueName, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for QueueMetrics {
    fn default() -> Self {
        // Upstream: exponential buckets from 10 ns, factor 10, 10 buckets.
        let buckets = || Histogram::new(exponential_buckets(1e-8, 10.0, 10));
        QueueMetrics {
            depth: Family::default(),
            adds: Family::default(),
            queue_duration: Family::new_with_constructor(buckets),
            work_duration: Family::new_with_constructor(buckets),
            retries: Family::default(),
            unfinished_work: Family::default(),
            longest_running: Family::default(),
        }
    }
}

impl QueueMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "workqueue_depth",
            "Current depth of workqueue",
            self.depth.clone(),
        );
        r.register(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            self.adds.clone(),
        );
        r.register(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            self.queue_duration.clone(),
        );
        r.register(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            self.work_duration.clone(),
        );
        r.register(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            self.retries.clone(),
        );
        r.register(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
            self.unfinished_work.clone(),
        );
        r.register(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
            self.longest_running.clone(),
        );
    }
}

/// Upstream's `ItemExponentialFailureRateLimiter` + `BucketRateLimiter`, the larger delay wins.
struct RateLimiter {
    failures: HashMap<String, u32>,
    base: Duration,
    max: Duration,
    /// Token bucket: tokens available at `last`.
    tokens: f64,
    last: Instant,
    qps: f64,
    burst: f64,
}

impl RateLimiter {
    fn when(&mut self, key: &str) -> Duration {
        let n = self.failures.entry(key.to_string()).or_insert(0);
        let exp = *n;
        *n += 1;
        let backoff = self
            .base
            .checked_mul(2u32.saturating_pow(exp.min(40)))
            .unwrap_or(self.max)
            .min(self.max);
        // Token bucket (golang.org/x/time/rate reservation semantics).
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        let bucket = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        };
        backoff.max(bucket)
    }
}

struct State {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashMap<String, Instant>,
    added_at: HashMap<String, Instant>,
    limiter: RateLimiter,
    shutting_down: bool,
}

pub struct WorkQueue {
    name: QueueName,
    state: Mutex<State>,
    notify: Notify,
    metrics: Arc<QueueMetrics>,
}

impl WorkQueue {
    pub fn new(name: &str, metrics: Arc<QueueMetrics>) -> Arc<WorkQueue> {
        Self::with_backoff(
            name,
            metrics,
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )
    }

    pub fn with_backoff(
        name: &str,
        metrics: Arc<QueueMetrics>,
        base: Duration,
        max: Duration,
    ) -> Arc<WorkQueue> {
        Arc::new(WorkQueue {
            name: QueueName {
                name: name.to_string(),
            },
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashMap::new(),
                added_at: HashMap::new(),
                limiter: RateLimiter {
                    failures: HashMap::new(),
                    base,
                    max,
                    tokens: 100.0,
                    last: Instant::now(),
                    qps: 10.0,
                    burst: 100.0,
                },
                shutting_down: false,
            }),
            notify: Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.name.name
    }

    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut s = self.lock();
        if s.shutting_down || !s.dirty.insert(key.clone()) {
            return;
        }
        self.metrics.adds.get_or_create(&self.name).inc();
        s.added_at.entry(key.clone()).or_insert_with(Instant::now);
        if s.processing.contains_key(&key) {
            // Handed out again after `done`.
            return;
        }
        s.queue.push_back(key);
        self.metrics
            .depth
            .get_or_create(&self.name)
            .set(s.queue.len() as i64);
        drop(s);
        self.notify.notify_one();
    }

    pub fn add_after(self: &Arc<Self>, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            q.add(key);
        });
    }

    /// Requeue after the item's backoff (a failed reconcile).
    pub fn add_rate_limited(self: &Arc<Self>, key: impl Into<String>) {
        let key = key.into();
        let delay = self.lock().limiter.when(&key);
        self.metrics.retries.get_or_create(&self.name).inc();
        self.add_after(key, delay);
    }

    /// The item succeeded: its backoff starts over.
    pub fn forget(&self, key: &str) {
        self.lock().limiter.failures.remove(key);
    }

    pub fn num_requeues(&self, key: &str) -> u32 {
        self.lock().limiter.failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next key; `None` once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    let now = Instant::now();
                    if let Some(t) = s.added_at.remove(&key) {
                        self.metrics
                            .queue_duration
                            .get_or_create(&self.name)
                            .observe(now.duration_since(t).as_secs_f64());
                    }
                    s.processing.insert(key.clone(), now);
                    self.metrics
                        .depth
                        .get_or_create(&self.name)
                        .set(s.queue.len() as i64);
                    if !s.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
                if s.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// The worker finished `key`; if it was added meanwhile, it is queued again now.
    pub fn done(&self, key: &str) {
        let mut s = self.lock();
        if let Some(started) = s.processing.remove(key) {
            self.metrics
                .work_duration
                .get_or_create(&self.name)
                .observe(started.elapsed().as_secs_f64());
        }
        if s.dirty.contains(key) {
            s.queue.push_back(key.to_string());
            self.metrics
                .depth
                .get_or_create(&self.name)
                .set(s.queue.len() as i64);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Refreshes the in-progress gauges (called on scrape).
    pub fn update_unfinished(&self) {
        let s = self.lock();
        let now = Instant::now();
        let total: f64 = s
            .processing
            .values()
            .map(|t| now.duration_since(*t).as_secs_f64())
            .sum();
        let longest = s
            .processing
            .values()
            .map(|t| now.duration_since(*t).as_secs_f64())
            .fold(0.0, f64::max);
        self.metrics
            .unfinished_work
            .get_or_create(&self.name)
            .set(total);
        self.metrics
            .longest_running
            .get_or_create(&self.name)
            .set(longest);
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn shut_down(&self) {
        self.lock().shutting_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_never_processed_twice_at_once() {
        let q = WorkQueue::new("t", Arc::default());
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await.unwrap();
        assert_eq!(a, "a");
        // Added while processing: held back until done.
        q.add("a");
        assert_eq!(q.get().await.unwrap(), "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s() {
        let mut l = RateLimiter {
            failures: HashMap::new(),
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
            tokens: 1e9,
            last: Instant::now(),
            qps: 10.0,
            burst: 1e9,
        };
        assert_eq!(l.when("k"), Duration::from_millis(5));
        assert_eq!(l.when("k"), Duration::from_millis(10));
        assert_eq!(l.when("k"), Duration::from_millis(20));
        for _ in 0..30 {
            l.when("k");
        }
        assert_eq!(l.when("k"), Duration::from_secs(1000));
        assert_eq!(l.when("other"), Duration::from_millis(5));
    }

    #[test]
    fn the_bucket_limits_overall_retries() {
        let mut l = RateLimiter {
            failures: HashMap::new(),
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
            tokens: 100.0,
            last: Instant::now(),
            qps: 10.0,
            burst: 100.0,
        };
        for i in 0..100 {
            assert!(l.when(&format!("k{i}")) <= Duration::from_millis(5));
        }
        // The 101st distinct item waits for a token: about 100 ms at 10 qps.
        let d = l.when("k100");
        assert!(d >= Duration::from_millis(90), "{d:?}");
    }
}
