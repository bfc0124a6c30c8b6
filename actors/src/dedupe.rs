//! Recognises readings a charge point sends twice (a MeterValues retried after a lost reply), so
//! that storage, roll-ups and alert rules see each reading once.

use std::collections::VecDeque;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::sample::{Sample, SampleIdentity};
use crate::FastHashSet;

/// The identities of the last `window` readings of one station, received within `max_age`.
///
/// The age bound is what keeps a fleet's memory flat: a retry follows its lost reply within
/// the charge point's call timeout (tens of seconds), while a count alone fills up over a long
/// session (4,096 identities are ~200 KB, reached after about an hour at one value a second).
///
/// An identity is remembered as one `u64` when it packs losslessly (see [`pack`]; every
/// reading of a charge point with connectors below 128 and a timestamp between 1970 and 2109),
/// and as the full [`SampleIdentity`] otherwise. Packing is a bijection, not a hash: two
/// different readings never share a key, so a new reading is never dropped as a repeat. With
/// the hash set left out of small tables ([`SCAN_UP_TO`]) this cuts what a station's last
/// `max_age` of identities costs (issue 13: 4.2 KiB per charge point after a minute of
/// readings; 1.9 KiB packed, 0.7 KiB packed and scanned).
#[derive(Debug)]
pub struct RecentSamples {
    /// How many identities of each kind (packed, full) are remembered; 0 disables
    /// de-duplication.
    window: usize,
    /// How long an identity is remembered after it arrived.
    max_age: Duration,
    /// The identities that pack into a `u64` (nearly all of them).
    packed: Recent<u64>,
    /// The identities that do not (a connector id of 128 or more, a timestamp outside
    /// 1970-2109).
    full: Recent<SampleIdentity>,
}

/// Up to this many identities a table has no hash set: the membership test scans `order`
/// (64 comparisons of 8 bytes, cheaper than hashing), which saves a quiet charge point's set
/// (128 buckets, 1.2 KiB for the fleet's minute of readings). Past it the set is built, and it
/// is dropped again once expiry leaves half of this.
const SCAN_UP_TO: usize = 64;

/// One kind of remembered identity: the arrival order to forget the oldest first, and beyond
/// [`SCAN_UP_TO`] identities a set for the membership test. `order` holds exactly the
/// identities remembered (a forgotten one leaves it), so the set can be built from it.
#[derive(Debug)]
struct Recent<K> {
    /// Membership test, when more than [`SCAN_UP_TO`] identities are remembered; empty
    /// otherwise.
    seen: FastHashSet<K>,
    /// Arrival order, oldest first: every identity remembered, once.
    order: VecDeque<K>,
    /// When the identities in `order` arrived, as runs (arrival time, how many) in the same
    /// order: a MeterValues brings its readings at one instant, so one run per message instead
    /// of a 16-byte time per identity.
    arrivals: VecDeque<(Instant, u32)>,
}

impl<K: Copy + Eq + Hash> Recent<K> {
    fn new() -> Self {
        // Grown on demand rather than reserved up front: a reserved 4096-entry set is about
        // 200 KB per charge point and its pages are touched by the first few inserts (hashing
        // spreads them), which made an idle fleet cost ~170 KiB per connection (issue 5).
        Recent {
            seen: FastHashSet::default(),
            order: VecDeque::new(),
            arrivals: VecDeque::new(),
        }
    }

    /// Remembers `key` (arrived at `now`) unless it is remembered already; `false` for a
    /// repeat.
    fn first_sighting(&mut self, key: K, now: Instant, window: usize) -> bool {
        if self.seen.is_empty() {
            if self.order.contains(&key) {
                return false;
            }
            if self.order.len() >= SCAN_UP_TO {
                self.seen.extend(self.order.iter().copied());
                self.seen.insert(key);
            }
        } else if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        match self.arrivals.back_mut() {
            Some((at, count)) if *at == now && *count < u32::MAX => *count += 1,
            _ => self.arrivals.push_back((now, 1)),
        }
        if self.order.len() > window {
            self.pop_oldest();
        }
        true
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            self.seen.remove(&old);
        }
        if let Some((_, count)) = self.arrivals.front_mut() {
            *count -= 1;
            if *count == 0 {
                self.arrivals.pop_front();
            }
        }
    }

    fn forget_older_than(&mut self, cutoff: Instant) {
        let before = self.order.len();
        while let Some(&(at, count)) = self.arrivals.front() {
            if at >= cutoff {
                break;
            }
            for _ in 0..count {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
            self.arrivals.pop_front();
        }
        if self.order.len() <= SCAN_UP_TO / 2 && !self.seen.is_empty() {
            self.seen = FastHashSet::default();
        }
        if self.order.len() < before && self.order.len() * 4 < self.order.capacity() {
            // A burst (a backfill) is over, or the station went quiet: give the memory back.
            self.order.shrink_to_fit();
            self.arrivals.shrink_to_fit();
            self.seen.shrink_to_fit();
        }
    }

    /// Forgets `key` altogether (the write-ahead log refused its reading). Linear in the
    /// identities remembered, which only the refusal path pays; the key is usually among the
    /// newest, where the search starts.
    fn forget(&mut self, key: &K) {
        let Some(position) = self.order.iter().rposition(|k| k == key) else {
            return;
        };
        self.order.remove(position);
        self.seen.remove(key);
        // The run that held it is one shorter.
        let mut start = 0;
        for index in 0..self.arrivals.len() {
            let count = self.arrivals[index].1 as usize;
            if position < start + count {
                self.arrivals[index].1 -= 1;
                if self.arrivals[index].1 == 0 {
                    self.arrivals.remove(index);
                }
                return;
            }
            start += count;
        }
    }

    /// Bytes of heap the tables hold (their capacity, not their length).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        let key = std::mem::size_of::<K>();
        // hashbrown: one control byte per bucket beside the key, buckets a power of two
        // above capacity * 8 / 7 (only an estimate of the layout, good to a few bytes).
        let buckets = match self.seen.capacity() {
            0 => 0,
            c => (c * 8 / 7).next_power_of_two(),
        };
        buckets * (key + 1)
            + self.order.capacity() * key
            + self.arrivals.capacity() * std::mem::size_of::<(Instant, u32)>()
    }
}

/// An identity as one `u64` when it fits, losslessly: 42 bits of milliseconds since the epoch,
/// 7 of connector id, then the storage codes of measurand (5 bits), phase (4, 0 for none),
/// location (3) and context (3). `None` when a field does not fit its bits (a future variant
/// whose code outgrows them takes the full path, never a shared key).
fn pack(id: &SampleIdentity) -> Option<u64> {
    fn field(value: u64, bits: u32) -> Option<u64> {
        (value < 1 << bits).then_some(value)
    }
    let timestamp = field(u64::try_from(id.timestamp_ms).ok()?, 42)?;
    let connector = field(u64::from(id.connector_id), 7)?;
    let measurand = field(u64::from(id.measurand.code()), 5)?;
    let phase = field(id.phase.map_or(0, |p| u64::from(p.code())), 4)?;
    let location = field(u64::from(id.location.code()), 3)?;
    let context = field(u64::from(id.context.code()), 3)?;
    if id.phase.is_some_and(|p| p.code() == 0) {
        return None; // 0 stands for "no phase"
    }
    Some(timestamp << 22 | connector << 15 | measurand << 10 | phase << 6 | location << 3 | context)
}

impl RecentSamples {
    /// Remembers up to `window` identities, each for at most `max_age`.
    pub fn new(window: usize, max_age: Duration) -> Self {
        RecentSamples {
            window,
            max_age,
            packed: Recent::new(),
            full: Recent::new(),
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
            let identity = sample.identity();
            match pack(&identity) {
                Some(key) => self.packed.forget(&key),
                None => self.full.forget(&identity),
            }
        }
    }

    /// Forgets the identities older than `max_age` without a new reading: called by the
    /// station's actor on its periodic timer, so a charge point that has gone quiet does not
    /// keep its last `max_age` of identities (and their tables) for as long as it stays
    /// connected (issue 13: memory per idle charge point).
    pub fn expire(&mut self) {
        self.forget_older_than(Instant::now());
    }

    /// Bytes of heap the remembered identities hold (tests).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.packed.heap_bytes() + self.full.heap_bytes()
    }

    /// [`Self::retain_new`] with the arrival time given (tests).
    fn retain_new_at(&mut self, samples: &mut Vec<Sample>, now: Instant) -> usize {
        if self.window == 0 {
            return 0;
        }
        self.forget_older_than(now);
        let before = samples.len();
        let window = self.window;
        samples.retain(|sample| {
            let identity = sample.identity();
            match pack(&identity) {
                Some(key) => self.packed.first_sighting(key, now, window),
                None => self.full.first_sighting(identity, now, window),
            }
        });
        before - samples.len()
    }

    fn forget_older_than(&mut self, now: Instant) {
        let Some(cutoff) = now.checked_sub(self.max_age) else {
            return;
        };
        self.packed.forget_older_than(cutoff);
        self.full.forget_older_than(cutoff);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.packed.order.len() + self.full.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, Phase, ReadingContext, SampleValue, Unit};
    use std::mem::size_of;

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
        assert_eq!(recent.len(), 3);
        let mut late = vec![sample(0), sample(2)];
        assert_eq!(
            recent.retain_new_at(&mut late, t0 + secs(301)),
            1,
            "sample 0 arrived over 300 s ago and is forgotten; sample 2 is not"
        );
        assert_eq!(late, vec![sample(0)]);
        assert_eq!(recent.len(), 2, "sample 1 forgotten, 0 remembered again");
        recent.retain_new_at(&mut vec![], t0 + secs(1000));
        assert!(recent.packed.order.is_empty() && recent.packed.seen.is_empty());
        assert!(recent.packed.arrivals.is_empty());
    }

    #[test]
    fn a_quiet_station_gives_its_identities_and_tables_back() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut recent = RecentSamples::new(4096, secs(300));
        let mut first: Vec<Sample> = (0..100).map(sample).collect();
        first.push(wide(0));
        recent.retain_new_at(&mut first, t0);
        assert!(recent.packed.order.capacity() >= 100 && recent.packed.seen.capacity() >= 100);
        assert_eq!(recent.full.order.len(), 1);
        let mut retry: Vec<Sample> = (0..100).map(sample).chain([wide(0)]).collect();
        assert_eq!(
            recent.retain_new_at(&mut retry, t0 + secs(299)),
            101,
            "nothing is max_age old yet: the retry is caught on both paths"
        );
        assert_eq!(recent.len(), 101);
        recent.forget_older_than(t0 + secs(301));
        assert_eq!(recent.len(), 0);
        assert_eq!(
            recent.heap_bytes(),
            0,
            "the memory is freed, not only the entries"
        );
    }

    /// A sample on connector 200, which does not pack into a `u64`.
    fn wide(second: i64) -> Sample {
        Sample {
            connector_id: 200,
            ..sample(second)
        }
    }

    #[test]
    fn packing_keeps_every_field_apart() {
        let base = sample(0).identity();
        let key = pack(&base).unwrap();
        let variants = [
            SampleIdentity {
                timestamp_ms: base.timestamp_ms + 1,
                ..base
            },
            SampleIdentity {
                connector_id: 2,
                ..base
            },
            SampleIdentity {
                measurand: Measurand::Rpm,
                ..base
            },
            SampleIdentity {
                phase: Some(Phase::L3L1),
                ..base
            },
            SampleIdentity {
                location: Location::Inlet,
                ..base
            },
            SampleIdentity {
                context: ReadingContext::Other,
                ..base
            },
        ];
        for other in variants {
            assert_ne!(pack(&other), Some(key), "{other:?} shares {base:?}'s key");
        }
        // Every value each field can take, at the edges of the bits: distinct keys.
        let mut keys = std::collections::HashSet::new();
        let mut count = 0;
        for &measurand in Measurand::ALL {
            for phase in std::iter::once(None).chain(Phase::ALL.iter().copied().map(Some)) {
                for &location in Location::ALL {
                    for &context in ReadingContext::ALL {
                        for (timestamp_ms, connector_id) in [(0, 0), ((1 << 42) - 1, 127)] {
                            let id = SampleIdentity {
                                timestamp_ms,
                                connector_id,
                                measurand,
                                phase,
                                location,
                                context,
                            };
                            keys.insert(pack(&id).expect("fits"));
                            count += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(keys.len(), count, "no two identities share a key");
        for too_wide in [
            SampleIdentity {
                timestamp_ms: 1 << 42,
                ..base
            },
            SampleIdentity {
                timestamp_ms: -1,
                ..base
            },
            SampleIdentity {
                connector_id: 128,
                ..base
            },
        ] {
            assert_eq!(
                pack(&too_wide),
                None,
                "{too_wide:?} must take the full path"
            );
        }
    }

    #[test]
    fn identities_that_differ_only_above_the_packed_bits_are_both_kept() {
        let mut recent = RecentSamples::new(4096, LONG);
        // Connector 1 and 129 would share a key if the connector were truncated to 7 bits.
        let mut first = vec![sample(0)];
        assert_eq!(recent.retain_new(&mut first), 0);
        let mut other = vec![Sample {
            connector_id: 129,
            ..sample(0)
        }];
        assert_eq!(recent.retain_new(&mut other), 0, "a new reading, kept");
        let mut retry = vec![
            sample(0),
            Sample {
                connector_id: 129,
                ..sample(0)
            },
        ];
        assert_eq!(recent.retain_new(&mut retry), 2, "both retries caught");
    }

    #[test]
    fn a_minute_of_readings_costs_half_what_full_identities_did() {
        // The issue 13 fleet: 10 values every 10 s for a minute, then quiet.
        let t0 = Instant::now();
        let mut recent = RecentSamples::new(4096, Duration::from_secs(300));
        let mut full = Recent::<SampleIdentity>::new();
        for message in 0..6 {
            let at = t0 + Duration::from_secs(10 * message);
            let mut readings: Vec<Sample> = (0..10)
                .map(|i| Sample {
                    measurand: Measurand::ALL[i],
                    ..sample(10 * message as i64)
                })
                .collect();
            for s in &readings {
                full.first_sighting(s.identity(), at, 4096);
            }
            assert_eq!(recent.retain_new_at(&mut readings, at), 0);
        }
        assert_eq!(recent.len(), 60);
        // The layout before packing: the same set of full identities, and an arrival time
        // beside each identity in the order queue instead of one run per message.
        let before = full.heap_bytes() - full.arrivals.capacity() * size_of::<(Instant, u32)>()
            + full.order.capacity() * size_of::<Instant>();
        assert!(
            recent.heap_bytes() * 2 <= before,
            "{} bytes packed, {before} before",
            recent.heap_bytes(),
        );
        assert!(
            recent.heap_bytes() <= 1024,
            "{} bytes: no hash set below SCAN_UP_TO",
            recent.heap_bytes()
        );
    }

    #[test]
    fn a_small_table_scans_and_a_large_one_hashes_both_catch_retries() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut recent = RecentSamples::new(4096, secs(300));
        // Six MeterValues of 10 readings, the fleet's minute: no hash set.
        for message in 0..6 {
            let mut readings: Vec<Sample> = (0..10).map(|i| sample(10 * message + i)).collect();
            recent.retain_new_at(&mut readings, t0 + secs(message as u64));
        }
        assert_eq!(recent.len(), 60);
        assert_eq!(
            recent.packed.seen.capacity(),
            0,
            "60 identities are scanned"
        );
        let mut retry: Vec<Sample> = (50..60).chain([1000]).map(sample).collect();
        assert_eq!(recent.retain_new_at(&mut retry, t0 + secs(7)), 10);
        assert_eq!(retry, vec![sample(1000)], "the new reading is kept");
        // Past SCAN_UP_TO the set is built from every identity remembered.
        let mut more: Vec<Sample> = (100..110).map(sample).collect();
        recent.retain_new_at(&mut more, t0 + secs(100));
        assert_eq!(recent.len(), 71);
        assert_eq!(recent.packed.seen.len(), 71);
        let mut retry: Vec<Sample> = [0, 59, 105, 1000, 2000].into_iter().map(sample).collect();
        assert_eq!(recent.retain_new_at(&mut retry, t0 + secs(101)), 4);
        assert_eq!(retry, vec![sample(2000)]);
        // Expiry down to half of SCAN_UP_TO drops the set; retries are still caught.
        recent.forget_older_than(t0 + secs(300 + 8));
        assert_eq!(recent.len(), 11, "the two newest messages are left");
        assert_eq!(recent.packed.seen.capacity(), 0, "the set is dropped");
        let mut retry: Vec<Sample> = [105, 2000, 0].into_iter().map(sample).collect();
        assert_eq!(recent.retain_new_at(&mut retry, t0 + secs(302)), 2);
        assert_eq!(
            retry,
            vec![sample(0)],
            "sample 0 expired; 105 and 2000 did not"
        );
    }

    #[test]
    fn a_forgotten_reading_is_new_again_in_either_table_and_expiry_still_empties_it() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        for size in [10, 200] {
            let mut recent = RecentSamples::new(4096, secs(300));
            let mut first: Vec<Sample> = (0..size).map(sample).collect();
            recent.retain_new_at(&mut first, t0);
            // The write-ahead log refuses the next message: its readings are forgotten.
            let refused: Vec<Sample> = (size..size + 10).map(sample).collect();
            recent.retain_new_at(&mut refused.clone(), t0 + secs(1));
            recent.forget(&refused);
            assert_eq!(recent.len(), size as usize, "size {size}");
            let mut resend = refused.clone();
            assert_eq!(
                recent.retain_new_at(&mut resend, t0 + secs(2)),
                0,
                "size {size}: the resend is new"
            );
            let mut retry = refused.clone();
            assert_eq!(recent.retain_new_at(&mut retry, t0 + secs(3)), 10);
            recent.forget_older_than(t0 + secs(303));
            assert_eq!((recent.len(), recent.heap_bytes()), (0, 0), "size {size}");
        }
    }

    #[test]
    fn a_zero_window_keeps_everything() {
        let mut recent = RecentSamples::new(0, LONG);
        let mut samples = vec![sample(0), sample(0)];
        assert_eq!(recent.retain_new(&mut samples), 0);
        assert_eq!(samples.len(), 2);
    }
}
