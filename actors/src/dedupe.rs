//! Recognises readings a charge point sends twice (a MeterValues retried after a lost reply), so
//! that storage, roll-ups and alert rules see each reading once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::sample::{Sample, SampleIdentity};
use crate::FastHashSet;

/// The identities of the last `window` readings of one station, received within `max_age`.
///
/// The age bound is what keeps a fleet's memory flat: a retry follows its lost reply within
/// the charge point's call timeout (tens of seconds), while a count alone fills up over a long
/// session (4,096 identities are ~200 KB, reached after about an hour at one value a second).
#[derive(Debug)]
pub struct RecentSamples {
    /// How many identities are remembered; 0 disables de-duplication.
    window: usize,
    /// How long an identity is remembered after it arrived.
    max_age: Duration,
    /// Membership test.
    seen: FastHashSet<SampleIdentity>,
    /// Arrival order (with the arrival time), to forget the oldest first.
    order: VecDeque<(Instant, SampleIdentity)>,
}

impl RecentSamples {
    /// Remembers up to `window` identities, each for at most `max_age`.
    pub fn new(window: usize, max_age: Duration) -> Self {
        RecentSamples {
            window,
            max_age,
            // Grown on demand rather than reserved up front: a reserved 4096-entry set is about
            // 200 KB per charge point and its pages are touched by the first few inserts (hashing
            // spreads them), which made an idle fleet cost ~170 KiB per connection (issue 5).
            seen: FastHashSet::default(),
            order: VecDeque::new(),
        }
    }

    /// Removes the readings seen recently (or twice within `samples`) and remembers the rest.
    pub fn retain_new(&mut self, samples: &mut Vec<Sample>) -> usize {
        self.retain_new_at(samples, Instant::now())
    }

    /// Forgets readings [`Self::retain_new`] just remembered, because they were not taken
    /// after all (the write-ahead log refused them): the charge point's resend is new.
    pub fn forget(&mut self, samples: &[Sample]) {
        for sample in samples {
            self.seen.remove(&sample.identity());
        }
    }

    /// Forgets the identities older than `max_age` without a new reading: called by the
    /// station's actor on its periodic timer, so a charge point that has gone quiet does not
    /// keep its last `max_age` of identities (and their tables) for as long as it stays
    /// connected (issue 13: memory per idle charge point).
    pub fn expire(&mut self) {
        self.forget_older_than(Instant::now());
    }

    /// [`Self::retain_new`] with the arrival time given (tests).
    fn retain_new_at(&mut self, samples: &mut Vec<Sample>, now: Instant) -> usize {
        if self.window == 0 {
            return 0;
        }
        self.forget_older_than(now);
        let before = samples.len();
        samples.retain(|sample| self.first_sighting(sample.identity(), now));
        before - samples.len()
    }

    fn forget_older_than(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.max_age) else {
            return;
        };
        let before = self.order.len();
        while self.order.front().is_some_and(|(at, _)| *at < cutoff) {
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.order.len() < before && self.order.len() * 4 < self.order.capacity() {
            // A burst (a backfill) is over: give its memory back.
            self.order.shrink_to_fit();
            self.seen.shrink_to_fit();
        }
    }

    fn first_sighting(&mut self, identity: SampleIdentity, now: Instant) -> bool {
        if !self.seen.insert(identity) {
            return false;
        }
        self.order.push_back((now, identity));
        if self.order.len() > self.window {
            if let Some((_, old)) = self.order.pop_front() {
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

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn repeats_are_dropped_within_the_window() {
        let mut recent = RecentSamples::new(3, LONG);
        let mut first = vec![sample(0), sample(1), sample(1)];
        assert_eq!(recent.retain_new(&mut first), 1);
        assert_eq!(first.len(), 2);
        let mut again = vec![sample(0), sample(1), sample(2)];
        assert_eq!(recent.retain_new(&mut again), 2);
        assert_eq!(again, vec![sample(2)]);
    }

    #[test]
    fn the_oldest_identities_are_forgotten() {
        let mut recent = RecentSamples::new(2, LONG);
        recent.retain_new(&mut vec![sample(0), sample(1), sample(2)]);
        let mut replay = vec![sample(0)];
        assert_eq!(
            recent.retain_new(&mut replay),
            0,
            "sample 0 left the window"
        );
    }

    #[test]
    fn identities_are_forgotten_after_max_age() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut recent = RecentSamples::new(4096, secs(300));
        recent.retain_new_at(&mut vec![sample(0), sample(1)], t0);
        recent.retain_new_at(&mut vec![sample(2)], t0 + secs(200));
        let mut retry = vec![sample(0), sample(2)];
        assert_eq!(recent.retain_new_at(&mut retry, t0 + secs(299)), 2);
        assert_eq!(recent.order.len(), 3);
        let mut late = vec![sample(0), sample(2)];
        assert_eq!(
            recent.retain_new_at(&mut late, t0 + secs(301)),
            1,
            "sample 0 arrived over 300 s ago and is forgotten; sample 2 is not"
        );
        assert_eq!(late, vec![sample(0)]);
        assert_eq!(
            recent.order.len(),
            2,
            "sample 1 forgotten, 0 remembered again"
        );
        recent.retain_new_at(&mut vec![], t0 + secs(1000));
        assert!(recent.order.is_empty() && recent.seen.is_empty());
    }

    #[test]
    fn a_quiet_station_gives_its_identities_and_tables_back() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut recent = RecentSamples::new(4096, secs(300));
        recent.retain_new_at(&mut (0..100).map(sample).collect(), t0);
        assert!(recent.order.capacity() >= 100 && recent.seen.capacity() >= 100);
        recent.forget_older_than(t0 + secs(299));
        assert_eq!(recent.order.len(), 100, "nothing is max_age old yet");
        recent.forget_older_than(t0 + secs(301));
        assert!(recent.order.is_empty() && recent.seen.is_empty());
        assert_eq!(
            (recent.order.capacity(), recent.seen.capacity()),
            (0, 0),
            "the memory is freed, not only the entries"
        );
    }

    #[test]
    fn a_zero_window_keeps_everything() {
        let mut recent = RecentSamples::new(0, LONG);
        let mut samples = vec![sample(0), sample(0)];
        assert_eq!(recent.retain_new(&mut samples), 0);
        assert_eq!(samples.len(), 2);
    }
}
