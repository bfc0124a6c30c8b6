//! Where the time of a large read went: the phases of one `/meter-values` or `/aggregates`
//! read, logged at debug level when the read took longer than [`SLOW_READ`] (issue 13: the
//! p99 of these reads is the target, and a tail is only fixed once a phase owns it). Costs a
//! few `Instant::now()` calls per read; nothing is logged for a fast one.

use std::time::{Duration, Instant};

/// A read slower than this (in the handler, from its first line to the finished body) logs its
/// phases: the p99 target for the 24 h and 30-day reads.
pub const SLOW_READ: Duration = Duration::from_millis(10);

/// Most phases a read has; more are folded into the last.
const PHASES: usize = 8;

/// The clock of one read: phases in order, each the time since the previous mark.
pub struct ReadTiming {
    /// When the handler started.
    begun: Instant,
    /// End of the previous phase.
    last: Instant,
    /// Name and length of each phase marked so far.
    phases: [(&'static str, Duration); PHASES],
    /// Phases in `phases`.
    len: usize,
}

impl ReadTiming {
    /// Starts the clock (first line of the handler).
    pub fn start() -> Self {
        let now = Instant::now();
        Self {
            begun: now,
            last: now,
            phases: [("", Duration::ZERO); PHASES],
            len: 0,
        }
    }

    /// Ends the phase `name`: the time since the previous mark (or the start) is its.
    pub fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        let took = now - self.last;
        self.last = now;
        if self.len < PHASES {
            self.phases[self.len] = (name, took);
            self.len += 1;
        } else {
            self.phases[PHASES - 1].1 += took;
        }
    }

    /// Time since the start.
    pub fn total(&self) -> Duration {
        self.begun.elapsed()
    }

    /// Logs the phases at debug level when the read was slow; `what` names the read.
    pub fn finish(&self, charge_point: &str, what: &str) {
        let total = self.total();
        if total < SLOW_READ || !log::log_enabled!(log::Level::Debug) {
            return;
        }
        log::debug!(
            "{charge_point}: slow {what} read, {:.1} ms in the handler ({}).",
            ms(total),
            self.phases()
        );
    }

    /// `name 1.2 ms, ...` of the phases marked.
    fn phases(&self) -> String {
        self.phases[..self.len]
            .iter()
            .map(|(name, took)| format!("{name} {:.1} ms", ms(*took)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_listed_in_order_and_extra_ones_fold_into_the_last() {
        let mut timing = ReadTiming::start();
        for name in ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"] {
            timing.mark(name);
        }
        let listed = timing.phases();
        assert!(listed.starts_with("a "), "{listed}");
        assert_eq!(listed.matches(" ms").count(), PHASES, "{listed}");
        assert!(listed.contains("h "), "{listed}");
        assert!(!listed.contains("i "), "{listed}");
    }
}
