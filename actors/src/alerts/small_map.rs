//! A map kept as a vector of pairs, searched in order, for the handful of keys the alert book
//! holds per charge point (one per connector, rule and phase checked; one per energy register).
//!
//! The book keeps this state for every connected charge point, so its size at rest is what
//! counts (issue 13, memory per idle charge point): a hash map of ~15 slots holds 32 buckets and
//! their control bytes, ~0.7 KiB, where the vector holds the 15 pairs, ~0.3 KiB. A lookup scans
//! at most a few dozen keys of 8 bytes.

/// See the module documentation.
#[derive(Debug)]
pub struct SmallMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Vec::new())
    }
}

impl<K: PartialEq, V> SmallMap<K, V> {
    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets the value of `key`. A new key takes exactly one more slot: new keys are rare (the
    /// first readings of a session), lookups and updates are every reading.
    pub fn insert(&mut self, key: K, value: V) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, held)) => *held = value,
            None => {
                self.0.reserve_exact(1);
                self.0.push((key, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_value_per_key_and_no_spare_slots() {
        let mut map = SmallMap::default();
        for key in 0..15u32 {
            map.insert(key, key * 10);
        }
        map.insert(3, 31);
        assert_eq!(map.get(&3), Some(&31));
        assert_eq!(map.get(&14), Some(&140));
        assert_eq!(map.get(&15), None);
        assert_eq!(map.0.len(), 15);
        assert_eq!(map.0.capacity(), 15);
    }
}
