//! One deadline per key, ordered, so an actor can watch thousands of keys with one timer.
//!
//! The stale-data rule needs "no MeterValues for 3x the interval" per charge point with an
//! open transaction, re-armed by every reading. One actix timer per charge point made every
//! wake of the alert supervisor poll all of them (actix polls each item of a context on every
//! wake, and cancels by a linear search): with 19,000 charge points that was ~40 % of the
//! server's CPU in the fleet benchmark (issue 5). Here re-arming is two `O(log n)` tree
//! operations, and the actor keeps one timer for the earliest deadline.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::time::Instant;

use crate::FastHashMap as HashMap;

/// Keys with a deadline each.
#[derive(Debug)]
pub(crate) struct Deadlines<K> {
    by_key: HashMap<K, (Instant, u64)>,
    /// `(deadline, tie-breaker)` -> key, in deadline order; the tie-breaker keeps equal
    /// deadlines apart.
    queue: BTreeMap<(Instant, u64), K>,
    next_tie: u64,
}

impl<K: Clone + Eq + Hash> Deadlines<K> {
    /// No deadlines.
    pub(crate) fn new() -> Self {
        Deadlines {
            by_key: HashMap::default(),
            queue: BTreeMap::new(),
            next_tie: 0,
        }
    }

    /// Sets (or moves) the deadline of `key`.
    pub(crate) fn set(&mut self, key: K, at: Instant) {
        self.remove(&key);
        let tie = self.next_tie;
        self.next_tie += 1;
        self.queue.insert((at, tie), key.clone());
        self.by_key.insert(key, (at, tie));
    }

    /// Forgets the deadline of `key`, if it has one.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(slot) = self.by_key.remove(key) {
            self.queue.remove(&slot);
        }
    }

    /// Whether `key` has a deadline.
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|((at, _), _)| *at)
    }

    /// Removes and returns the keys whose deadline is at or before `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while self
            .queue
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= now)
        {
            if let Some((_, key)) = self.queue.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }

    /// Forgets every deadline.
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_keys_come_out_earliest_first_and_moved_deadlines_count_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::new();
        d.set("a", t0 + s(3));
        d.set("b", t0 + s(1));
        d.set("c", t0 + s(1));
        d.set("a", t0 + s(2)); // moved earlier
        d.set("b", t0 + s(5)); // moved later
        assert_eq!(d.next(), Some(t0 + s(1)));
        assert_eq!(d.pop_due(t0), Vec::<&str>::new());
        assert_eq!(d.pop_due(t0 + s(2)), vec!["c", "a"]);
        assert!(!d.contains(&"a") && d.contains(&"b"));
        assert_eq!(d.next(), Some(t0 + s(5)));
        d.remove(&"b");
        assert_eq!(d.next(), None);
        assert_eq!(d.pop_due(t0 + s(60)), Vec::<&str>::new());
        d.set("x", t0);
        d.clear();
        assert!(!d.contains(&"x") && d.next().is_none());
    }
}
