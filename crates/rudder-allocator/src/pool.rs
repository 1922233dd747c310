//! One allocation range (IPs or ports), indexed from 0: which values are taken, and by whom.
//!
//! Upstream keeps a bitmap per range; this also remembers, per taken value, the service that
//! holds it and whether that service's write is still in flight, so that releasing a value on
//! behalf of one service can never free a value another service holds.

use std::collections::HashMap;
use std::sync::Arc;

/// Who holds a value: a service (`namespace/name`), and whether its write is still in flight
/// (`pending`: reserved by admission, not yet persisted) or persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub key: Arc<str>,
    pub pending: bool,
}

#[derive(Debug)]
pub(crate) struct Pool {
    size: u32,
    /// Values below this index are kept for static assignment: dynamic allocation uses them
    /// only once the upper part is full (KEP-3070).
    offset: u32,
    used: HashMap<u32, Holder>,
}

impl Pool {
    pub fn new(size: u32, offset: u32) -> Pool {
        Pool {
            size,
            offset: offset.min(size),
            used: HashMap::new(),
        }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn used(&self) -> usize {
        self.used.len()
    }

    pub fn holder(&self, index: u32) -> Option<&Holder> {
        self.used.get(&index)
    }

    pub fn holder_mut(&mut self, index: u32) -> Option<&mut Holder> {
        self.used.get_mut(&index)
    }

    /// Take `index` for `holder`; false if it is taken already.
    pub fn take(&mut self, index: u32, holder: Holder) -> bool {
        if index >= self.size || self.used.contains_key(&index) {
            return false;
        }
        self.used.insert(index, holder);
        true
    }

    /// Take a free index as upstream's random-scan-with-offset strategy does: start at a random
    /// point of the upper part and scan (wrapping) for a free value; if the upper part is full,
    /// do the same in the lower part. `None` when the range is full.
    pub fn take_next(&mut self, holder: Holder, rng: &mut fastrand::Rng) -> Option<u32> {
        let upper = self.size - self.offset;
        let found = scan(rng, upper, |i| self.offset + i, &self.used)
            .or_else(|| scan(rng, self.offset, |i| i, &self.used))?;
        self.used.insert(found, holder);
        Some(found)
    }

    pub fn release(&mut self, index: u32) -> Option<Holder> {
        self.used.remove(&index)
    }
}

/// The first free index of a subrange of `len` values (mapped to pool indices by `at`),
/// scanning from a random start.
fn scan(
    rng: &mut fastrand::Rng,
    len: u32,
    at: impl Fn(u32) -> u32,
    used: &HashMap<u32, Holder>,
) -> Option<u32> {
    if len == 0 {
        return None;
    }
    let start = rng.u32(0..len);
    (0..len)
        .map(|i| at((start + i) % len))
        .find(|index| !used.contains_key(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(key: &str) -> Holder {
        Holder {
            key: Arc::from(key),
            pending: false,
        }
    }

    #[test]
    fn dynamic_allocation_prefers_the_upper_part() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pool = Pool::new(32, 16);
        let mut got: Vec<u32> = (0..16)
            .map(|_| pool.take_next(holder("a"), &mut rng).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, (16..32).collect::<Vec<_>>());
        // Upper part full: now the lower part.
        assert!(pool.take_next(holder("a"), &mut rng).unwrap() < 16);
        for _ in 0..15 {
            pool.take_next(holder("a"), &mut rng).unwrap();
        }
        assert_eq!(pool.take_next(holder("a"), &mut rng), None);
        assert_eq!(pool.used(), 32);
    }

    #[test]
    fn take_release_and_reuse() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut pool = Pool::new(1, 0);
        assert!(pool.take(0, holder("a")));
        assert!(!pool.take(0, holder("b")));
        assert!(!pool.take(1, holder("b")), "out of range");
        assert_eq!(pool.take_next(holder("b"), &mut rng), None);
        assert_eq!(pool.release(0).map(|h| h.key), Some(Arc::from("a")));
        assert_eq!(pool.take_next(holder("b"), &mut rng), Some(0));
        assert_eq!(pool.holder(0), Some(&holder("b")));
    }
}
