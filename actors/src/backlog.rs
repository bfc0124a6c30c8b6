//! Which charge points have sample batches on their way to Redis through the roll-up
//! aggregator (published to it, perhaps still in its mailbox, folded into its partials, or in
//! a flush not yet answered) or through the raw-sample writer (a [`Ticket`] in each batch).
//!
//! A read of a charge point's roll-ups must show every reading answered before it began
//! (read-your-writes), so it used to ask the aggregator to flush that charge point first, even
//! when the aggregator held nothing of it: a round trip through a mailbox that 19,000 charge
//! points keep busy, which was the part of a warm 30-day read's tail not spent in Redis
//! (docs/performance.md, issue 13); a raw read asked the writer for its queued samples the
//! same way. With this count a read asks only when something is on its way. The count is
//! raised before the batch is sent, so a reading that has been answered is always counted, and
//! lowered only once Redis has it: an error leaves a charge point counted (reads ask, as
//! before), never uncounted too early.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::id::ChargePointId;
use crate::store::tracked_reads::TrackedReads;
use crate::FastHashMap;

/// Shards, so the two workers' sessions and the aggregator rarely meet on one lock.
const SHARDS: usize = 64;

/// A shard left empty with more room than this gives its memory back: after a fleet's burst
/// the idle process keeps no table sized for every charge point.
const SHRINK_ABOVE: usize = 256;

/// Batches handed to one actor (the aggregator, or the writer) and not yet in Redis, per charge
/// point; a charge point with none has no entry.
pub struct Backlog {
    shards: Box<[Mutex<FastHashMap<ChargePointId, u32>>]>,
    hasher: foldhash::fast::RandomState,
    /// Reads answered from memory, forgotten for a charge point as soon as one more of its
    /// batches is counted (see [`crate::store::tracked_reads`]).
    marks: OnceLock<Arc<TrackedReads>>,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            marks: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backlog")
            .field("charge_points", &self.charge_points())
            .finish()
    }
}

impl Backlog {
    /// Reads of a charge point answered from memory are forgotten when one more of its
    /// batches is counted here; set once, at start.
    pub fn forget_marks_in(&self, marks: Arc<TrackedReads>) {
        let _ = self.marks.set(marks);
    }

    /// One more batch of `cp` is on its way; called before it is sent. Counted first, then
    /// the charge point's reads answered from memory are forgotten: a read that opened its
    /// mark before this finds the mark gone, one that opens it after finds the count.
    pub fn add(&self, cp: &ChargePointId) {
        {
            let mut shard = self.shard(cp);
            match shard.get_mut(cp) {
                Some(count) => *count = count.saturating_add(1),
                None => {
                    shard.insert(cp.clone(), 1);
                }
            }
        }
        if let Some(marks) = self.marks.get() {
            marks.forget(cp.as_str());
        }
    }

    /// `batches` of `cp` are in Redis (or will never be: dropped, or nothing in them to
    /// write).
    pub fn done(&self, cp: &ChargePointId, batches: u32) {
        if batches == 0 {
            return;
        }
        let mut shard = self.shard(cp);
        let Some(count) = shard.get_mut(cp) else {
            return;
        };
        *count = count.saturating_sub(batches);
        if *count == 0 {
            shard.remove(cp);
            if shard.is_empty() && shard.capacity() > SHRINK_ABOVE {
                shard.shrink_to_fit();
            }
        }
    }

    /// Whether nothing of `cp` is on its way: a read may then skip asking the actor that would
    /// hold it.
    pub fn is_clear(&self, cp: &ChargePointId) -> bool {
        !self.shard(cp).contains_key(cp)
    }

    /// How many charge points have batches on their way (for `/metrics`).
    pub fn charge_points(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |s| s.len()))
            .sum()
    }

    fn shard(&self, cp: &ChargePointId) -> MutexGuard<'_, FastHashMap<ChargePointId, u32>> {
        let index = (self.hasher.hash_one(cp.as_str()) % SHARDS as u64) as usize;
        // A panic while holding a shard leaves a count that is at worst too high (reads ask).
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One batch counted in a [`Backlog`] for as long as it lives: counted when made, counted off
/// when dropped, which the writer does once Redis has the batch (or the batch is given up).
/// Carried inside the batch, so no path that ends a batch can forget to count it off; a clone
/// (a copied batch) counts once more.
pub struct Ticket {
    backlog: Arc<Backlog>,
    cp: ChargePointId,
}

impl Ticket {
    /// Counts a batch of `cp` in `backlog`; made before the batch is sent.
    pub fn new(backlog: &Arc<Backlog>, cp: &ChargePointId) -> Self {
        backlog.add(cp);
        Ticket {
            backlog: backlog.clone(),
            cp: cp.clone(),
        }
    }
}

impl Clone for Ticket {
    fn clone(&self) -> Self {
        Ticket::new(&self.backlog, &self.cp)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.backlog.done(&self.cp, 1);
    }
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Ticket").field(&self.cp).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ChargePointId {
        ChargePointId::parse(s).unwrap()
    }

    #[test]
    fn a_charge_point_is_clear_once_every_batch_is_done() {
        let backlog = Backlog::default();
        let (a, b) = (id("CP-A"), id("CP-B"));
        assert!(backlog.is_clear(&a));
        backlog.add(&a);
        backlog.add(&a);
        backlog.add(&b);
        assert!(!backlog.is_clear(&a));
        assert_eq!(backlog.charge_points(), 2);
        backlog.done(&a, 1);
        assert!(
            !backlog.is_clear(&a),
            "one batch of two is still on its way"
        );
        backlog.done(&a, 1);
        assert!(backlog.is_clear(&a));
        assert!(
            !backlog.is_clear(&b),
            "another charge point's batch is its own"
        );
        assert_eq!(backlog.charge_points(), 1);
    }

    #[test]
    fn counting_a_batch_forgets_its_charge_points_kept_reads() {
        use crate::store::read_cache::SeriesSelection;
        use crate::store::tracked_reads::{Confirmed, Held, ReadKey, TrackedSettings};
        let marks = Arc::new(TrackedReads::new(&TrackedSettings {
            url: Some("redis://127.0.0.1:1".into()),
            max_age: std::time::Duration::from_secs(60),
            budget_bytes: 1 << 20,
            connect_timeout: std::time::Duration::from_secs(1),
            response_timeout: std::time::Duration::from_secs(1),
        }));
        let backlog = Backlog::default();
        backlog.forget_marks_in(marks.clone());
        let key = ReadKey::Hours {
            selection: SeriesSelection {
                measurand: None,
                connector_id: None,
                phase: None,
            },
            first_hour: 1,
            last_hour: 2,
            rendered: true,
        };
        let kept = || Confirmed {
            held: Held::Hours(Arc::from(Vec::new())),
            beside: None,
        };
        for cp in ["CP-A", "CP-B"] {
            let opened = marks.open(cp, key).unwrap();
            marks.confirm(opened, kept());
        }
        backlog.add(&id("CP-A"));
        assert!(marks.confirmed("CP-A", &key).is_none());
        assert!(marks.confirmed("CP-B", &key).is_some());

        // A read at Redis while a batch is counted is not kept.
        let opened = marks.open("CP-B", key).unwrap();
        backlog.add(&id("CP-B"));
        marks.confirm(opened, kept());
        assert!(marks.confirmed("CP-B", &key).is_none());
    }

    #[test]
    fn done_for_a_charge_point_with_nothing_counted_changes_nothing() {
        let backlog = Backlog::default();
        let a = id("CP-A");
        backlog.done(&a, 3);
        assert!(backlog.is_clear(&a));
        backlog.add(&a);
        backlog.done(&a, 0);
        assert!(!backlog.is_clear(&a));
    }

    #[test]
    fn a_ticket_counts_its_batch_while_it_lives_and_a_clone_counts_again() {
        let backlog = Arc::new(Backlog::default());
        let a = id("CP-A");
        let ticket = Ticket::new(&backlog, &a);
        assert!(!backlog.is_clear(&a));
        let copy = ticket.clone();
        drop(ticket);
        assert!(!backlog.is_clear(&a), "the copy still counts");
        drop(copy);
        assert!(backlog.is_clear(&a));
    }

    #[test]
    fn an_emptied_shard_gives_its_room_back() {
        let backlog = Backlog::default();
        let ids: Vec<ChargePointId> = (0..20_000).map(|i| id(&format!("CP-{i}"))).collect();
        for cp in &ids {
            backlog.add(cp);
        }
        for cp in &ids {
            backlog.done(cp, 1);
        }
        assert_eq!(backlog.charge_points(), 0);
        for shard in backlog.shards.iter() {
            assert!(shard.lock().unwrap().capacity() <= SHRINK_ABOVE);
        }
    }
}
