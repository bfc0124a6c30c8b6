//! Per-address limit on WebSocket upgrades: a token bucket per source address, checked first in
//! the upgrade handler, so 10,000 connects a second from one address are answered 429 before any
//! password is hashed or any actor started. Loopback is not exempt (tests and a local proxy are
//! limited like anyone else); the defaults leave room for a whole NAT'ed site reconnecting at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most addresses tracked at once; beyond this, buckets that have refilled completely are swept
/// and, if none has, new addresses go unlimited (bounded memory beats perfect accounting when
/// the flood comes from everywhere; `limits.max_connections` still holds).
const MAX_TRACKED: usize = 100_000;

/// The tokens of one address as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Whether the last upgrade was refused, so only the first refusal of a run is logged: a
    /// flood must not turn into a flood of log lines.
    refusing: bool,
}

/// What [`ConnectLimiter::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go on with the upgrade.
    Allowed,
    /// Refuse with 429; `first` for the first refusal after an allowed upgrade (log it).
    Refused {
        /// The address was allowed last time.
        first: bool,
    },
}

/// Token buckets per source address; shared by every worker.
#[derive(Debug)]
pub struct ConnectLimiter {
    /// Tokens added per second (the sustained rate).
    per_sec: f64,
    /// Bucket size (the burst).
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl ConnectLimiter {
    /// `per_sec` sustained upgrades per address, `burst` at once.
    pub fn new(per_sec: u32, burst: u32) -> ConnectLimiter {
        ConnectLimiter {
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `ip` at `now`; refused when its bucket is empty.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Admission {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| refilled(b, now, per_sec, burst) < burst);
            if buckets.len() >= MAX_TRACKED {
                return Admission::Allowed;
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            refusing: false,
        });
        bucket.tokens = refilled(bucket, now, self.per_sec, self.burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.refusing = false;
            Admission::Allowed
        } else {
            let first = !bucket.refusing;
            bucket.refusing = true;
            Admission::Refused { first }
        }
    }
}

/// The tokens of `bucket` at `now`, capped at `burst`.
fn refilled(bucket: &Bucket, now: Instant, per_sec: f64, burst: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_sec).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate_per_address() {
        let limiter = ConnectLimiter::new(10, 5);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        let allowed = |at| limiter.admit(ip, at) == Admission::Allowed;
        for i in 0..5 {
            assert!(allowed(t0), "refused within the burst at {i}");
        }
        assert_eq!(limiter.admit(ip, t0), Admission::Refused { first: true });
        assert_eq!(limiter.admit(ip, t0), Admission::Refused { first: false });
        assert_eq!(limiter.admit(other, t0), Admission::Allowed, "own bucket");
        // 10 per second: one token every 100 ms.
        assert!(!allowed(t0 + Duration::from_millis(50)));
        assert!(allowed(t0 + Duration::from_millis(150)));
        assert_eq!(
            limiter.admit(ip, t0 + Duration::from_millis(160)),
            Admission::Refused { first: true }
        );
        // A long pause refills up to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(allowed(later));
        }
        assert!(!allowed(later));
    }
}
