//! Readings answered versus readings stored, for the fault tests (tests/crash.rs,
//! tests/cluster.rs): numbered readings one second apart (energy register and power), the set of
//! those a charge point got a CALLRESULT for, and a check of what Redis then holds, read from
//! the raw chunks' bytes so that "stored once" is judged on Redis, not on a de-duplicating read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::redis_pool::Pool;
use actors::sample::{Measurand, Sample};
use actors::store::{chunk, keys};
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

use super::{eventually, get, meter_values};

/// Readings answered with a CALLRESULT, per charge point: their steps (see [`reading`]).
pub type Acked = Arc<Mutex<BTreeMap<String, BTreeSet<u32>>>>;

/// First reading's time: far enough back that a few thousand one-second steps stay in the past
/// (the roll-ups leave out readings more than `max_clock_skew_secs` ahead). One value per test
/// process, so the loads and the checks agree on it.
pub fn base() -> DateTime<Utc> {
    static BASE: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("valid time")
    })
}

/// Register value (Wh) of reading `step`: 10 Wh a second, always plausible.
pub fn register(step: u32) -> f64 {
    1000.0 + f64::from(step) * 10.0
}

/// MeterValues of reading `step`: the energy register and the power, one second apart.
pub fn reading(base: DateTime<Utc>, step: u32) -> Value {
    let at = (base + chrono::Duration::seconds(i64::from(step)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    meter_values(
        1,
        None,
        &at,
        json!([
            {"value": format!("{:.1}", register(step)), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": format!("{}", 7000 + step % 100), "measurand": "Power.Active.Import", "unit": "W"}
        ]),
    )
}

/// Readings answered so far, all charge points.
pub fn acked_total(acked: &Acked) -> usize {
    acked.lock().unwrap().values().map(BTreeSet::len).sum()
}

/// Waits up to `timeout` until the server holds nothing unwritten (buffers and writer).
pub async fn writer_drained(server: &RunningServer, timeout: Duration) -> bool {
    eventually(timeout, || async {
        server.counters.buffered_samples.load(Ordering::SeqCst) == 0
            && server.writer_stats.samples_pending.load(Ordering::SeqCst) == 0
            && server.writer_stats.batches_pending.load(Ordering::SeqCst) == 0
    })
    .await
}

/// Every raw sample Redis holds for `cp` (all chunk hours the readings can fall in), decoded
/// from the stored bytes: repeats included. One `GET` per chunk, so it works on a cluster too.
pub async fn raw_samples(pool: &Pool, cp: &str) -> Vec<Sample> {
    let mut conn = pool.get().await.unwrap();
    let first = base().timestamp().div_euclid(3600);
    let mut samples = Vec::new();
    for hour in first..first + 3 {
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(keys::raw_chunk(cp, hour))
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(bytes) = bytes {
            let (decoded, error) = chunk::decode_chunk(&bytes);
            assert!(error.is_none(), "{cp}: chunk {hour} unreadable: {error:?}");
            samples.extend(decoded);
        }
    }
    samples
}

/// Step of each register reading in `samples` whose value is right (see [`register`]).
fn stored_steps(samples: &[Sample]) -> BTreeSet<u32> {
    let base = base().timestamp();
    samples
        .iter()
        .filter(|s| s.measurand == Measurand::EnergyActiveImportRegister)
        .filter_map(|s| {
            let step = u32::try_from(s.timestamp.timestamp() - base).ok()?;
            (s.number() == Some(register(step))).then_some(step)
        })
        .collect()
}

/// The raw samples of `cp` once every step of `steps` is among them, or after 10 s.
///
/// The drain wait ([`writer_drained`]) reads gauges that a batch passes between without being
/// counted: the buffer has let go of it and the writer has not yet taken it from its mailbox (or
/// a Push is still queued for the buffer when the charge point already has its answer). On a
/// loaded machine the wait can see that instant and pass early. What the tests promise is that
/// an answered reading reaches Redis, so they look for it there; a reading that never arrives
/// still fails the check below.
async fn settled_samples(pool: &Pool, cp: &str, steps: &BTreeSet<u32>) -> Vec<Sample> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let samples = raw_samples(pool, cp).await;
        if std::time::Instant::now() >= deadline || stored_steps(&samples).is_superset(steps) {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks what Redis holds for every charge point of `acked`: each answered reading's two
/// samples are in the raw chunks and, with `rollups`, the hourly roll-ups hold each stored
/// register reading once and exactly its energy (last - first, the first reading being the
/// baseline). With `once`, no sample is in the raw chunks twice; without, repeats are counted
/// (a write whose answer a failover cut off is written again: Redis gives at-least-once there,
/// and reads de-duplicate). Returns the distinct samples stored and the repeats.
pub async fn assert_stored(
    server: &RunningServer,
    pool: &Pool,
    acked: &Acked,
    once: bool,
    rollups: bool,
) -> (usize, usize) {
    let base = base();
    let acked = acked.lock().unwrap().clone();
    let mut stored = 0;
    let mut repeats = 0;
    // Per charge point: samples (a register and a power per reading) and energy that the fleet
    // roll-up must hold too.
    let mut fleet_expected: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for (cp, steps) in &acked {
        let samples = settled_samples(pool, cp, steps).await;
        let identities: BTreeSet<_> = samples.iter().map(Sample::identity).collect();
        if once {
            assert_eq!(
                identities.len(),
                samples.len(),
                "{cp}: {} samples stored more than once",
                samples.len() - identities.len()
            );
        }
        repeats += samples.len() - identities.len();
        stored += identities.len();
        let registers: BTreeMap<i64, f64> = samples
            .iter()
            .filter(|s| s.measurand == Measurand::EnergyActiveImportRegister)
            .map(|s| (s.timestamp.timestamp(), s.number().unwrap()))
            .collect();
        let powers: BTreeSet<i64> = samples
            .iter()
            .filter(|s| s.measurand == Measurand::PowerActiveImport)
            .map(|s| s.timestamp.timestamp())
            .collect();
        let missing: Vec<u32> = steps
            .iter()
            .copied()
            .filter(|step| {
                registers.get(&(base.timestamp() + i64::from(*step))) != Some(&register(*step))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{cp}: {} answered readings are not in Redis, e.g. steps {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(
            powers.len(),
            registers.len(),
            "{cp}: a reading lost one sample"
        );
        if !rollups {
            continue;
        }
        let from = DateTime::from_timestamp(base.timestamp().div_euclid(3600) * 3600, 0).unwrap();
        let to = from + chrono::Duration::hours(3);
        let path = format!(
            "/api/v1/charge-points/{cp}/aggregates?period=hour&measurand=Energy.Active.Import.Register&from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        );
        // Like the raw samples (see `settled_samples`), the roll-ups of what the drain wait
        // saw go by may still be on their way: judged once they count every stored reading,
        // or after 10 s. Too many counts, or too few that never arrive, still fail below.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (count, energy) = loop {
            let (code, body) = get(server, &path).await;
            assert_eq!(code, 200, "{body}");
            let buckets = body["buckets"].as_array().unwrap();
            let count: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
            let energy: f64 = buckets
                .iter()
                .map(|b| b["energy_wh"].as_f64().unwrap_or(0.0))
                .sum();
            if count == registers.len() as u64 || std::time::Instant::now() >= deadline {
                break (count, energy);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            count,
            registers.len() as u64,
            "{cp}: register readings rolled up {count} times, {} stored",
            registers.len()
        );
        let (first, last) = (
            registers.values().next().unwrap(),
            registers.values().next_back().unwrap(),
        );
        assert!(
            (energy - (last - first)).abs() < 1e-6,
            "{cp}: roll-ups hold {energy} Wh, the register moved {} Wh",
            last - first
        );
        fleet_expected.insert(cp.clone(), (2 * count, energy));
    }
    if !fleet_expected.is_empty() {
        assert_fleet_rollup(server, base, &fleet_expected).await;
    }
    (stored, repeats)
}

/// The fleet roll-up (read through `/fleet/top`) holds, per charge point, the samples and
/// energy its own roll-ups hold: the fleet update of every flush arrived, through crashes,
/// failovers and replays (the start-up repair covers a crash between the two writes).
async fn assert_fleet_rollup(
    server: &RunningServer,
    base: DateTime<Utc>,
    expected: &BTreeMap<String, (u64, f64)>,
) {
    let from = DateTime::from_timestamp(base.timestamp().div_euclid(3600) * 3600, 0).unwrap();
    let to = from + chrono::Duration::hours(3);
    let top = |metric: &str| {
        format!(
            "/api/v1/fleet/top?metric={metric}&limit=1000&from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        )
    };
    let values = |body: &Value| -> BTreeMap<String, f64> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["charge_point_id"].as_str().unwrap().to_owned(),
                    i["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    // Another instance's fleet update follows its merge by a moment: judged once it matches,
    // or after 10 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (samples, energy) = loop {
        let (code, samples) = get(server, &top("samples")).await;
        assert_eq!(code, 200, "{samples}");
        let (code, energy) = get(server, &top("energy_wh")).await;
        assert_eq!(code, 200, "{energy}");
        let (samples, energy) = (values(&samples), values(&energy));
        let matches = expected.iter().all(|(cp, (count, wh))| {
            samples.get(cp) == Some(&(*count as f64))
                && (energy.get(cp).copied().unwrap_or(0.0) - wh).abs() < 1e-6
        });
        if matches || std::time::Instant::now() >= deadline {
            break (samples, energy);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for (cp, (count, wh)) in expected {
        assert_eq!(
            samples.get(cp).copied(),
            Some(*count as f64),
            "{cp}: the fleet roll-up's samples differ from its own roll-ups'"
        );
        let seen = energy.get(cp).copied().unwrap_or(0.0);
        assert!(
            (seen - wh).abs() < 1e-6,
            "{cp}: the fleet roll-up holds {seen} Wh, its own roll-ups {wh} Wh"
        );
    }
}
