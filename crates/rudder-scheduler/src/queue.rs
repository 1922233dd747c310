//! The scheduling queue (upstream's `PriorityQueue`): an active heap ordered by the QueueSort
//! plugin, a backoff heap (1 s doubling to 10 s per attempt), and the unschedulable pods, which
//! move out only on a cluster event that a plugin that rejected them registered for (or after
//! five minutes, as upstream's leftover flush). Pods rejected by PreEnqueue (scheduling gates)
//! wait among the unschedulable until an update of the pod itself lets them in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::framework::{ActionType, ClusterEvent, EventResource, QueuedPodInfo, Status};
use crate::nodeinfo::PodInfo;

/// Upstream's `DefaultPodMaxInUnschedulablePodsDuration`.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(300);

/// How a queue orders and admits pods: the profile's QueueSort and PreEnqueue.
pub trait QueuePolicy: Send + Sync {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
    fn pre_enqueue(&self, pod: &PodInfo) -> Status;
    /// The events each plugin (by name) registered for.
    fn events(&self) -> &HashMap<&'static str, Vec<ClusterEvent>>;
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled (or bound).
    InFlight,
}

struct Entry {
    info: QueuedPodInfo,
    at: Where,
    /// Bumped whenever the pod moves; heap items with an older seq are stale.
    seq: u64,
    /// When it entered the unschedulable pods.
    since: Instant,
}

struct Inner {
    pods: HashMap<String, Entry>,
    /// Active heap: (key, seq), ordered by the policy through `sift`.
    active: Vec<(String, u64)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    policy: Arc<dyn QueuePolicy>,
    initial_backoff: Duration,
    max_backoff: Duration,
}

/// Counts per sub-queue, for `scheduler_pending_pods`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub active: usize,
    pub backoff: usize,
    pub unschedulable: usize,
    pub gated: usize,
}

impl SchedulingQueue {
    pub fn new(
        policy: Arc<dyn QueuePolicy>,
        initial_backoff: Duration,
        max_backoff: Duration,
    ) -> SchedulingQueue {
        SchedulingQueue {
            inner: Mutex::new(Inner {
                pods: HashMap::new(),
                active: Vec::new(),
                backoff: BinaryHeap::new(),
                seq: 0,
                scheduling_cycle: 0,
                move_request_cycle: 0,
                closed: false,
            }),
            ready: Condvar::new(),
            policy,
            initial_backoff,
            max_backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new pod to schedule (or one seen again after a re-list).
    pub fn add(&self, pod: Arc<PodInfo>) {
        let mut g = self.lock();
        if let Some(e) = g.pods.get_mut(&pod.key) {
            e.info.pod_info = pod;
            return;
        }
        let info = QueuedPodInfo {
            pod_info: pod,
            timestamp: Instant::now(),
            initial_attempt: None,
            attempts: 0,
            unschedulable_plugins: HashSet::new(),
            gated: false,
        };
        self.admit(&mut g, info);
    }

    /// PreEnqueue, then active or (gated) unschedulable.
    fn admit(&self, g: &mut Inner, mut info: QueuedPodInfo) {
        let status = self.policy.pre_enqueue(&info.pod_info);
        if status.is_success() {
            info.gated = false;
            self.push_active(g, info);
        } else {
            info.gated = true;
            info.unschedulable_plugins = [status.plugin].into_iter().collect();
            self.put(g, info, Where::Unschedulable);
        }
    }

    fn put(&self, g: &mut Inner, info: QueuedPodInfo, at: Where) -> u64 {
        g.seq += 1;
        let seq = g.seq;
        let key = info.pod_info.key.clone();
        g.pods.insert(
            key,
            Entry {
                info,
                at,
                seq,
                since: Instant::now(),
            },
        );
        seq
    }

    fn push_active(&self, g: &mut Inner, info: QueuedPodInfo) {
        let key = info.pod_info.key.clone();
        let seq = self.put(g, info, Where::Active);
        g.active.push((key, seq));
        let i = g.active.len() - 1;
        self.sift_up(g, i);
        self.ready.notify_one();
    }

    fn push_backoff(&self, g: &mut Inner, info: QueuedPodInfo) {
        let expiry = info.timestamp + self.backoff_duration(info.attempts);
        let key = info.pod_info.key.clone();
        let seq = self.put(g, info, Where::Backoff);
        g.backoff.push(Reverse((expiry, seq, key)));
    }

    /// Upstream's `calculateBackoffDuration`: initial × 2^(attempts−1), at most max.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut d = self.initial_backoff;
        for _ in 1..attempts {
            d = d.saturating_mul(2);
            if d >= self.max_backoff {
                return self.max_backoff;
            }
        }
        d.min(self.max_backoff)
    }

    fn is_backing_off(&self, info: &QueuedPodInfo) -> bool {
        info.timestamp + self.backoff_duration(info.attempts) > Instant::now()
    }

    fn entry_less(&self, g: &Inner, a: &(String, u64), b: &(String, u64)) -> bool {
        match (g.pods.get(&a.0), g.pods.get(&b.0)) {
            (Some(x), Some(y)) => self.policy.less(&x.info, &y.info),
            _ => false,
        }
    }

    fn sift_up(&self, g: &mut Inner, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.entry_less(g, &g.active[i], &g.active[parent]) {
                g.active.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&self, g: &mut Inner, mut i: usize) {
        let n = g.active.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < n && self.entry_less(g, &g.active[l], &g.active[best]) {
                best = l;
            }
            if r < n && self.entry_less(g, &g.active[r], &g.active[best]) {
                best = r;
            }
            if best == i {
                return;
            }
            g.active.swap(i, best);
            i = best;
        }
    }

    fn pop_active(&self, g: &mut Inner) -> Option<QueuedPodInfo> {
        while !g.active.is_empty() {
            let last = g.active.len() - 1;
            g.active.swap(0, last);
            let (key, seq) = g.active.pop()?;
            if !g.active.is_empty() {
                self.sift_down(g, 0);
            }
            let cycle = g.scheduling_cycle + 1;
            if let Some(e) = g.pods.get_mut(&key) {
                if e.seq == seq && e.at == Where::Active {
                    e.at = Where::InFlight;
                    e.info.attempts += 1;
                    e.info.initial_attempt.get_or_insert_with(Instant::now);
                    g.scheduling_cycle = cycle;
                    return Some(e.info.clone());
                }
            }
        }
        None
    }

    /// Blocks until a pod is ready to schedule; `None` once the queue is closed. Returns the
    /// pod with the scheduling cycle it is popped in.
    pub fn pop(&self) -> Option<(QueuedPodInfo, u64)> {
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            if let Some(info) = self.pop_active(&mut g) {
                return Some((info, g.scheduling_cycle));
            }
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like `pop` but waits at most `timeout` (for tests and shutdown checks).
    pub fn pop_timeout(&self, timeout: Duration) -> Option<(QueuedPodInfo, u64)> {
        let deadline = Instant::now() + timeout;
        let mut g = self.lock();
        loop {
            if g.closed {
                return None;
            }
            if let Some(info) = self.pop_active(&mut g) {
                return Some((info, g.scheduling_cycle));
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self
                .ready
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// A pod that failed its attempt: to backoff if the cluster changed while it was being
    /// scheduled (or it failed with an error), else among the unschedulable.
    pub fn requeue_failed(&self, mut info: QueuedPodInfo, cycle: u64, unschedulable: bool) {
        let mut g = self.lock();
        // Deleted while in flight: forget it.
        let Some(e) = g.pods.get(&info.pod_info.key) else {
            return;
        };
        if e.at != Where::InFlight {
            return;
        }
        // Keep the freshest copy of the pod seen while in flight.
        info.pod_info = e.info.pod_info.clone();
        info.timestamp = Instant::now();
        if !unschedulable || g.move_request_cycle >= cycle {
            self.push_backoff(&mut g, info);
        } else {
            self.put(&mut g, info, Where::Unschedulable);
        }
    }

    /// The pod was bound (or handed over): it leaves the queue.
    pub fn done(&self, key: &str) {
        let mut g = self.lock();
        if g.pods.get(key).is_some_and(|e| e.at == Where::InFlight) {
            g.pods.remove(key);
        }
    }

    /// An update of a pod that is still unscheduled.
    pub fn update(&self, pod: Arc<PodInfo>) {
        let mut g = self.lock();
        let Some(e) = g.pods.get_mut(&pod.key) else {
            drop(g);
            self.add(pod);
            return;
        };
        let spec_changed = e.info.pod_info.pod.spec != pod.pod.spec
            || e.info.pod_info.pod.metadata.labels != pod.pod.metadata.labels;
        e.info.pod_info = pod;
        if e.at != Where::Unschedulable || !spec_changed {
            return;
        }
        let mut info = e.info.clone();
        if info.gated {
            self.admit(&mut g, info);
            return;
        }
        info.unschedulable_plugins.clear();
        if self.is_backing_off(&info) {
            self.push_backoff(&mut g, info);
        } else {
            self.push_active(&mut g, info);
        }
    }

    pub fn delete(&self, key: &str) {
        self.lock().pods.remove(key);
    }

    pub fn contains(&self, key: &str) -> bool {
        self.lock().pods.contains_key(key)
    }

    /// A cluster event: unschedulable pods rejected by a plugin that registered for it move to
    /// backoff or active.
    pub fn on_event(&self, resource: EventResource, action: ActionType) {
        let mut g = self.lock();
        g.move_request_cycle = g.scheduling_cycle;
        let events = self.policy.events();
        let moving: Vec<String> = g
            .pods
            .iter()
            .filter(|(_, e)| e.at == Where::Unschedulable && !e.info.gated)
            .filter(|(_, e)| {
                e.info.unschedulable_plugins.is_empty()
                    || e.info.unschedulable_plugins.iter().any(|p| {
                        events
                            .get(p)
                            .is_some_and(|evs| evs.iter().any(|ev| ev.matches(resource, action)))
                    })
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in moving {
            if let Some(e) = g.pods.remove(&key) {
                self.requeue_moved(&mut g, e.info);
            }
        }
    }

    fn requeue_moved(&self, g: &mut Inner, info: QueuedPodInfo) {
        if self.is_backing_off(&info) {
            self.push_backoff(g, info);
        } else {
            self.push_active(g, info);
        }
    }

    /// Moves pods whose backoff expired to active, and pods unschedulable for too long back
    /// into scheduling (upstream runs these every second and every 30 s).
    pub fn flush(&self) {
        let mut g = self.lock();
        let now = Instant::now();
        while let Some(Reverse((expiry, seq, key))) = g.backoff.peek().cloned() {
            if expiry > now {
                break;
            }
            g.backoff.pop();
            let info = match g.pods.get(&key) {
                Some(e) if e.seq == seq && e.at == Where::Backoff => e.info.clone(),
                _ => continue,
            };
            self.push_active(&mut g, info);
        }
        let stale: Vec<String> = g
            .pods
            .iter()
            .filter(|(_, e)| e.at == Where::Unschedulable && !e.info.gated)
            .filter(|(_, e)| now.duration_since(e.since) > MAX_IN_UNSCHEDULABLE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(e) = g.pods.remove(&key) {
                self.requeue_moved(&mut g, e.info);
            }
        }
    }

    pub fn pending(&self) -> Pending {
        let g = self.lock();
        let mut p = Pending::default();
        for e in g.pods.values() {
            match e.at {
                Where::Active => p.active += 1,
                Where::Backoff => p.backoff += 1,
                Where::Unschedulable if e.info.gated => p.gated += 1,
                Where::Unschedulable => p.unschedulable += 1,
                Where::InFlight => {}
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Code, Plugin};
    use crate::plugins::basic::{PrioritySort, SchedulingGates};
    use serde_json::json;

    struct Policy(HashMap<&'static str, Vec<ClusterEvent>>);
    impl QueuePolicy for Policy {
        fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
            PrioritySort.less(a, b)
        }
        fn pre_enqueue(&self, pod: &PodInfo) -> Status {
            SchedulingGates
                .pre_enqueue(pod)
                .from_plugin("SchedulingGates")
        }
        fn events(&self) -> &HashMap<&'static str, Vec<ClusterEvent>> {
            &self.0
        }
    }

    fn queue() -> SchedulingQueue {
        let mut events = HashMap::new();
        events.insert(
            "NodeResourcesFit",
            vec![ClusterEvent::new(
                EventResource::Node,
                crate::framework::ADD_UPDATE,
            )],
        );
        SchedulingQueue::new(
            Arc::new(Policy(events)),
            Duration::from_millis(50),
            Duration::from_millis(200),
        )
    }

    fn pod(name: &str, priority: i32, gates: &[&str]) -> Arc<PodInfo> {
        let gates: Vec<_> = gates.iter().map(|g| json!({"name": g})).collect();
        Arc::new(PodInfo::new(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "ns", "uid": name},
                "spec": {"containers": [], "priority": priority, "schedulingGates": gates}}),
            )
            .unwrap(),
        )))
    }

    #[test]
    fn higher_priority_first_then_fifo() {
        let q = queue();
        q.add(pod("a", 0, &[]));
        q.add(pod("b", 10, &[]));
        q.add(pod("c", 0, &[]));
        let order: Vec<String> = (0..3)
            .map(|_| {
                q.pop_timeout(Duration::ZERO)
                    .unwrap()
                    .0
                    .pod_info
                    .key
                    .clone()
            })
            .collect();
        assert_eq!(order, vec!["ns/b", "ns/a", "ns/c"]);
    }

    #[test]
    fn gated_pods_wait_for_an_update_that_removes_the_gate() {
        let q = queue();
        q.add(pod("g", 0, &["wait"]));
        assert!(q.pop_timeout(Duration::ZERO).is_none());
        assert_eq!(q.pending().gated, 1);
        q.on_event(EventResource::Node, ActionType::Add);
        assert!(q.pop_timeout(Duration::ZERO).is_none());
        q.update(pod("g", 0, &[]));
        assert_eq!(
            q.pop_timeout(Duration::ZERO).unwrap().0.pod_info.key,
            "ns/g"
        );
    }

    #[test]
    fn unschedulable_pods_move_only_on_registered_events() {
        let q = queue();
        q.add(pod("u", 0, &[]));
        let (mut info, cycle) = q.pop_timeout(Duration::ZERO).unwrap();
        info.unschedulable_plugins = ["NodeResourcesFit"].into_iter().collect();
        q.requeue_failed(info, cycle, true);
        assert_eq!(q.pending().unschedulable, 1);
        q.on_event(EventResource::PersistentVolume, ActionType::Add);
        assert_eq!(q.pending().unschedulable, 1);
        q.on_event(EventResource::Node, ActionType::Add);
        // Still backing off (first attempt: 50 ms), then active.
        assert_eq!(q.pending().backoff, 1);
        std::thread::sleep(Duration::from_millis(60));
        q.flush();
        assert_eq!(q.pop_timeout(Duration::ZERO).unwrap().0.attempts, 2);
    }

    #[test]
    fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
        let q = queue();
        q.add(pod("r", 0, &[]));
        let (info, cycle) = q.pop_timeout(Duration::ZERO).unwrap();
        q.on_event(EventResource::Node, ActionType::Add);
        q.requeue_failed(info, cycle, true);
        assert_eq!(q.pending().backoff, 1);
    }

    #[test]
    fn backoff_doubles_to_the_max() {
        let q = queue();
        assert_eq!(q.backoff_duration(1), Duration::from_millis(50));
        assert_eq!(q.backoff_duration(2), Duration::from_millis(100));
        assert_eq!(q.backoff_duration(5), Duration::from_millis(200));
        let _ = Code::Success;
    }
}
