//! What the brute-force tests (roll-ups, fleet, transactions) compute their expectations with,
//! written independently of the server: times, a reproducible random source, the energy rule.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Milliseconds in an hour.
pub const H: i64 = 3_600_000;
/// Milliseconds in a day.
pub const D: i64 = 86_400_000;

/// RFC 3339 with milliseconds and `Z`, as the API writes times (and as query strings can
/// carry them: no `+`).
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Unix ms of an RFC 3339 string.
pub fn ms_of_str(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp_millis()
}

/// Unix ms of an RFC 3339 JSON string.
pub fn ms_of(text: &Value) -> i64 {
    ms_of_str(text.as_str().unwrap())
}

/// Equal within floating-point noise of sums in a different order.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
}

/// xorshift64: reproducible randomness without a dependency.
pub struct Rng(pub u64);

impl Rng {
    /// The next raw value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }
}

/// The reference energy rule: consecutive processed readings, the difference split linearly at
/// bucket boundaries (`len` ms buckets), added to `out` per bucket start; drops and > 1 MW
/// jumps count 0.
pub fn split_energy(len: i64, readings: &[(i64, f64)], out: &mut BTreeMap<i64, f64>) {
    for pair in readings.windows(2) {
        let ((t0, v0), (t1, v1)) = (pair[0], pair[1]);
        let d = v1 - v0;
        if d <= 0.0 || d > 1_000_000.0 * (t1 - t0) as f64 / H as f64 {
            continue;
        }
        let mut b = t0.div_euclid(len) * len;
        while b < t1 {
            let overlap = (b + len).min(t1) - b.max(t0);
            *out.entry(b).or_insert(0.0) += d * overlap as f64 / (t1 - t0) as f64;
            b += len;
        }
    }
}

/// Timestamps a little in the past, one second apart, so readings are never repeats.
pub struct Clock {
    base: DateTime<Utc>,
    step: i64,
}

impl Clock {
    /// Starts ten minutes ago.
    pub fn new() -> Clock {
        Clock {
            base: Utc::now() - chrono::Duration::minutes(10),
            step: 0,
        }
    }

    /// The next second, RFC 3339.
    pub fn next(&mut self) -> String {
        self.step += 1;
        (self.base + chrono::Duration::seconds(self.step))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }
}

/// The order in which `n` frames arrive: mostly as sent, `late_pct` % held back and sent
/// 1 to `late_max` sends later, `twice_pct` % sent twice in a row (a retried MeterValues).
pub fn arrival_order(
    rng: &mut Rng,
    n: usize,
    late_pct: u64,
    late_max: u64,
    twice_pct: u64,
) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    let mut held: Vec<(usize, usize)> = Vec::new(); // (frame, release after this many sends)
    for i in 0..n {
        if rng.below(100) < late_pct {
            held.push((i, order.len() + 1 + rng.below(late_max) as usize));
        } else {
            order.push(i);
            if rng.below(100) < twice_pct {
                order.push(i);
            }
        }
        let due: Vec<usize> = held
            .iter()
            .filter(|(_, at)| *at <= order.len())
            .map(|(f, _)| *f)
            .collect();
        held.retain(|(_, at)| *at > order.len());
        order.extend(due);
    }
    order.extend(held.iter().map(|(f, _)| *f));
    order
}
