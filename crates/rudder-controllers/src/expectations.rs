//! Upstream's `ControllerExpectations`: a controller that issued N creates (or deletes) for a key
//! does not act on that key again until its informer has seen them, so it never double-creates
//! while its own writes are in flight. Expectations expire after 5 minutes (a lost watch event
//! must not wedge a controller forever). Deletions are tracked by the deleted objects' keys
//! (upstream's `UIDTrackingControllerExpectations`), since a pod is seen going away twice: when
//! it gets a deletion timestamp and when it is removed.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upstream's `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
struct Expectation {
    add: i64,
    del: HashSet<String>,
    at: Instant,
}

#[derive(Default)]
pub struct Expectations {
    map: Mutex<HashMap<String, Expectation>>,
}

impl Expectations {
    /// Whether the controller may sync `key`: no expectations, all observed, or expired.
    pub fn satisfied(&self, key: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            None => true,
            Some(e) => (e.add <= 0 && e.del.is_empty()) || e.at.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Records that `adds` creates and the deletion of `dels` (object keys) are about to be
    /// issued.
    pub fn expect(&self, key: &str, adds: i64, dels: impl IntoIterator<Item = String>) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).insert(
            key.to_string(),
            Expectation {
                add: adds,
                del: dels.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// The informer saw one of the creates (or a create failed and will not be seen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
        {
            e.add -= 1;
        }
    }

    /// The object `child` is going away (or its deletion failed and will not be seen).
    pub fn deletion_observed(&self, key: &str, child: &str) {
        if let Some(e) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(key)
        {
            e.del.remove(child);
        }
    }

    pub fn delete(&self, key: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satisfied_once_everything_is_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("a"));
        e.expect("a", 2, ["ns/p1".to_string()]);
        assert!(!e.satisfied("a"));
        e.creation_observed("a");
        e.creation_observed("a");
        assert!(!e.satisfied("a"));
        e.deletion_observed("a", "ns/p1");
        assert!(e.satisfied("a"));
        // Seen twice (deletion timestamp, then removal): counted once.
        e.deletion_observed("a", "ns/p1");
        assert!(e.satisfied("a"));
    }
}
