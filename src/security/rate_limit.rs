//! Per-address limit on failed charge point authentications: after `max` failures within one
//! window, the address is refused (429) until the window has passed, so nobody can try
//! passwords (or burn the server's CPU on argon2) at line rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most addresses tracked at once; beyond this, expired windows are swept and, if none has
/// expired, new addresses go untracked (bounded memory beats perfect accounting in a flood).
const MAX_TRACKED: usize = 100_000;

/// Failures of one address in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Fixed-window failure counter per source address; shared by every worker.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl FailureLimiter {
    /// `max` failures per `window` per address.
    pub fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its failures in the current window (as of `now`).
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        windows
            .get(&ip)
            .is_some_and(|w| now.duration_since(w.started) < self.window && w.failures >= self.max)
    }

    /// Counts one failure of `ip` at `now`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&ip) {
            let window = self.window;
            windows.retain(|_, w| now.duration_since(w.started) < window);
            if windows.len() >= MAX_TRACKED {
                return;
            }
        }
        let entry = windows.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(entry.started) >= self.window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(!limiter.is_blocked(ip, t0), "blocked after {i} failures");
            limiter.record_failure(ip, t0 + Duration::from_secs(i));
        }
        assert!(limiter.is_blocked(ip, t0 + Duration::from_secs(59)));
        assert!(!limiter.is_blocked(other, t0 + Duration::from_secs(59)));
        assert!(!limiter.is_blocked(ip, t0 + Duration::from_secs(60)));
        // A failure after the window starts a new one.
        limiter.record_failure(ip, t0 + Duration::from_secs(61));
        assert!(!limiter.is_blocked(ip, t0 + Duration::from_secs(61)));
    }
}
