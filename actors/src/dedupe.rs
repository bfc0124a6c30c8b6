//! Recognises readings a charge point sends twice (a MeterValues retried after a lost reply), so
//! that storage, roll-ups and alert rules see each reading once.

use std::collections::VecDeque;

use crate::sample::{Sample, SampleIdentity};
use crate::FastHashSet;

/// The identities of the last `window` readings of one station.
#[derive(Debug, Default)]
pub struct RecentSamples {
    /// How many identities are remembered; 0 disables de-duplication.
    window: usize,
    /// Membership test.
    seen: FastHashSet<SampleIdentity>,
    /// Insertion order, to forget the oldest first.
    order: VecDeque<SampleIdentity>,
}

impl RecentSamples {
    /// Remembers up to `window` identities.
    pub fn new(window: usize) -> Self {
        RecentSamples {
            window,
            // Grown on demand rather than reserved up front: a reserved 4096-entry set is about
            // 200 KB per charge point and its pages are touched by the first few inserts (hashing
            // spreads them), which made an idle fleet cost ~170 KiB per connection (issue 5).
            seen: FastHashSet::default(),
            order: VecDeque::new(),
        }
    }

    /// Removes the readings seen recently (or twice within `samples`) and remembers the rest.
    pub fn retain_new(&mut self, samples: &mut Vec<Sample>) -> usize {
        if self.window == 0 {
            return 0;
        }
        let before = samples.len();
        samples.retain(|sample| self.first_sighting(sample.identity()));
        before - samples.len()
    }

    fn first_sighting(&mut self, identity: SampleIdentity) -> bool {
        if !self.seen.insert(identity) {
            return false;
        }
        self.order.push_back(identity);
        if self.order.len() > self.window {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, ReadingContext, SampleValue, Unit};

    fn sample(second: i64) -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            connector_id: 1,
            transaction_id: None,
            measurand: Measurand::PowerActiveImport,
            phase: None,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::W,
            value: SampleValue::Number(second as f64),
        }
    }

    #[test]
    fn repeats_are_dropped_within_the_window() {
        let mut recent = RecentSamples::new(3);
        let mut first = vec![sample(0), sample(1), sample(1)];
        assert_eq!(recent.retain_new(&mut first), 1);
        assert_eq!(first.len(), 2);
        let mut again = vec![sample(0), sample(1), sample(2)];
        assert_eq!(recent.retain_new(&mut again), 2);
        assert_eq!(again, vec![sample(2)]);
    }

    #[test]
    fn the_oldest_identities_are_forgotten() {
        let mut recent = RecentSamples::new(2);
        recent.retain_new(&mut vec![sample(0), sample(1), sample(2)]);
        let mut replay = vec![sample(0)];
        assert_eq!(
            recent.retain_new(&mut replay),
            0,
            "sample 0 left the window"
        );
    }

    #[test]
    fn a_zero_window_keeps_everything() {
        let mut recent = RecentSamples::new(0);
        let mut samples = vec![sample(0), sample(0)];
        assert_eq!(recent.retain_new(&mut samples), 0);
        assert_eq!(samples.len(), 2);
    }
}
