//! Upstream's `flowcontrol.Backoff` as the kubelet uses it for container restarts and image
//! pulls: 10 s doubling to 5 min per key, forgotten after twice the maximum without activity.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Backoffs {
    entries: Mutex<HashMap<String, (Duration, SystemTime)>>,
}

impl Backoffs {
    fn expired(event: SystemTime, last: SystemTime) -> bool {
        event.duration_since(last).unwrap_or_default() > MAX * 2
    }

    /// Upstream's `IsInBackOffSince`: the key backs off for its current delay after `event`.
    /// Returns the remaining wait.
    pub fn in_backoff_since(&self, key: &str, event: SystemTime) -> Option<(Duration, Duration)> {
        let entries = self.entries.lock().ok()?;
        let (delay, last) = *entries.get(key)?;
        if Self::expired(event, last) {
            return None;
        }
        let since = SystemTime::now().duration_since(event).unwrap_or_default();
        (since < delay).then(|| (delay, delay - since))
    }

    /// Upstream's `Next`: starts at 10 s, doubles up to 5 min; restarts after a quiet period.
    pub fn next(&self, key: &str, event: SystemTime) {
        if let Ok(mut e) = self.entries.lock() {
            let entry = e.entry(key.to_string()).or_insert((Duration::ZERO, event));
            if entry.0.is_zero() || Self::expired(event, entry.1) {
                *entry = (INITIAL, event);
            } else {
                *entry = ((entry.0 * 2).min(MAX), event);
            }
        }
    }

    pub fn forget_prefix(&self, prefix: &str) {
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|k, _| !k.starts_with(prefix));
        }
    }
}

pub fn since_instant(i: Instant) -> SystemTime {
    SystemTime::now() - i.elapsed()
}

/// Formats like Go's `time.Duration.String()` for whole seconds: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_five_minutes() {
        let b = Backoffs::default();
        let now = SystemTime::now();
        assert!(
            b.in_backoff_since("k", now).is_none(),
            "first failure restarts at once"
        );
        b.next("k", now);
        let (d, _) = b.in_backoff_since("k", now).unwrap();
        assert_eq!(d, INITIAL);
        for _ in 0..10 {
            b.next("k", now);
        }
        assert_eq!(b.in_backoff_since("k", now).unwrap().0, MAX);
        // An exit long after the last restart (> 10 min of running) is not backed off.
        let later = now + Duration::from_secs(601);
        assert!(b.in_backoff_since("k", later).is_none());
        b.next("k", later);
        assert_eq!(b.in_backoff_since("k", later).unwrap().0, INITIAL);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
