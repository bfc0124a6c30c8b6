//! Real-time statistics of one charge point: counters and rates the `ChargePointActor` keeps in
//! memory while the charge point is connected, and the snapshot it persists to Redis (at most
//! every [`PERSIST_INTERVAL`] and on disconnect) so the figures survive the session.
//!
//! Everything here takes the current time as an argument, so the windows are tested with
//! made-up clocks instead of sleeps.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exchange::OpenTransaction;
use crate::sample::{Measurand, Phase, Sample};

/// Shortest time between two snapshots of one charge point in Redis: often enough that a
/// crashed server leaves figures at most this old (no older than the raw samples a crash can
/// lose, `buffer.max_age_secs`, 30 s), rare enough that statistics cost one `SET` per charge
/// point per interval whatever the sample rate. At 10 s a fleet of 19,000 charge points spent
/// 1,900 JSON snapshots and `SET`s a second on it (issue 5). Session end always writes one.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(30);

/// Length of the "last minute" windows, in seconds.
const WINDOW_SECS: i64 = 60;

/// Counts per second over the last minute: at most 60 entries, so a rate costs no more memory
/// at 100 messages a second than at one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MinuteWindow {
    /// (unix second, count), oldest first.
    buckets: VecDeque<(i64, u64)>,
}

impl MinuteWindow {
    /// Counts `n` events at `now`.
    pub fn add(&mut self, now: DateTime<Utc>, n: u64) {
        let second = now.timestamp();
        self.evict(second);
        match self.buckets.back_mut() {
            // A clock stepping back a little counts into the newest bucket rather than
            // breaking the ordering the eviction relies on.
            Some((last, count)) if *last >= second => *count += n,
            _ => self.buckets.push_back((second, n)),
        }
    }

    /// Events counted in the 60 seconds up to `now`.
    pub fn total(&self, now: DateTime<Utc>) -> u64 {
        let oldest = now.timestamp() - WINDOW_SECS;
        self.buckets
            .iter()
            .filter(|(second, _)| *second > oldest)
            .map(|(_, count)| count)
            .sum()
    }

    fn evict(&mut self, second: i64) {
        while self
            .buckets
            .front()
            .is_some_and(|(first, _)| *first <= second - WINDOW_SECS)
        {
            self.buckets.pop_front();
        }
    }
}

/// Energy delivered so far by one open transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionEnergy {
    /// Server-assigned id.
    pub transaction_id: i32,
    /// Connector it runs on.
    pub connector_id: u32,
    /// Register at start, Wh.
    pub meter_start: i64,
    /// Latest `Energy.Active.Import.Register` of the connector (taken at or after the start)
    /// minus `meter_start`; `None` until such a reading arrives.
    pub energy_wh: Option<f64>,
}

/// The statistics as persisted in Redis (JSON under `keys::stats`): the counters plus the raw
/// per-second windows, so that a reader can still compute "last minute" figures for its own
/// "now" after the charge point left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredStats {
    /// When the session these figures belong to began.
    pub session_started_at: DateTime<Utc>,
    /// When the figures were taken.
    pub updated_at: DateTime<Utc>,
    /// Samples accepted in the session (repeats dropped by de-duplication not counted).
    pub samples_total: u64,
    /// Samples per second, last minute.
    pub samples_window: MinuteWindow,
    /// OCPP messages per second, last minute.
    pub messages_window: MinuteWindow,
    /// Active power at `updated_at` (see [`active_power_w`]).
    pub active_power_w: Option<f64>,
    /// When the server last received a MeterValues.
    pub last_meter_values_at: Option<DateTime<Utc>>,
    /// Transactions open at `updated_at`.
    pub open_transactions: Vec<TransactionEnergy>,
}

/// The statistics the admin API shows, from memory or from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargePointStats {
    /// Whether they come from a live session (true) or from the snapshot in Redis.
    pub connected: bool,
    /// The counters and windows.
    pub stored: StoredStats,
    /// Samples in the minute before the figures were read.
    pub samples_last_minute: u64,
    /// OCPP messages in the minute before the figures were read.
    pub messages_per_minute: u64,
    /// Newest sample per (connector, measurand, phase).
    pub latest: Vec<Sample>,
}

impl StoredStats {
    /// The API view of these figures as seen at `now`, with the given latest samples.
    pub fn view(
        &self,
        now: DateTime<Utc>,
        connected: bool,
        latest: Vec<Sample>,
    ) -> ChargePointStats {
        ChargePointStats {
            connected,
            samples_last_minute: self.samples_window.total(now),
            messages_per_minute: self.messages_window.total(now),
            stored: self.clone(),
            latest,
        }
    }
}

/// What the `ChargePointActor` keeps; fed from its request handling.
#[derive(Debug, Clone)]
pub struct LiveStats {
    /// Session start.
    session_started_at: DateTime<Utc>,
    /// Samples accepted this session.
    samples_total: u64,
    /// Samples per second.
    samples: MinuteWindow,
    /// Messages per second.
    messages: MinuteWindow,
    /// Receive time of the last MeterValues.
    last_meter_values_at: Option<DateTime<Utc>>,
    /// Whether anything changed since the last snapshot was taken for Redis.
    changed: bool,
}

impl LiveStats {
    /// Statistics of a session that began at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        LiveStats {
            session_started_at: now,
            samples_total: 0,
            samples: MinuteWindow::default(),
            messages: MinuteWindow::default(),
            last_meter_values_at: None,
            changed: true,
        }
    }

    /// An OCPP message arrived.
    pub fn record_message(&mut self, now: DateTime<Utc>) {
        self.messages.add(now, 1);
        self.changed = true;
    }

    /// `count` new (not repeated) samples were accepted.
    pub fn record_samples(&mut self, count: usize, now: DateTime<Utc>) {
        self.samples_total += count as u64;
        self.samples.add(now, count as u64);
        self.changed = true;
    }

    /// A MeterValues request arrived.
    pub fn record_meter_values(&mut self, now: DateTime<Utc>) {
        self.last_meter_values_at = Some(now);
        self.changed = true;
    }

    /// Whether a snapshot is due (something changed since the last one); clears the mark.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The figures at `now`, given the actor's newest sample per series and open transactions.
    pub fn snapshot<'a, 'b>(
        &self,
        now: DateTime<Utc>,
        latest: impl IntoIterator<Item = &'a Sample> + Clone,
        open: impl IntoIterator<Item = &'b OpenTransaction>,
    ) -> StoredStats {
        let mut open_transactions: Vec<TransactionEnergy> = open
            .into_iter()
            .map(|txn| TransactionEnergy {
                transaction_id: txn.transaction_id,
                connector_id: txn.connector_id,
                meter_start: txn.meter_start,
                energy_wh: energy_so_far(latest.clone(), txn),
            })
            .collect();
        open_transactions.sort_by_key(|t| t.transaction_id);
        StoredStats {
            session_started_at: self.session_started_at,
            updated_at: now,
            samples_total: self.samples_total,
            samples_window: self.samples.clone(),
            messages_window: self.messages.clone(),
            active_power_w: active_power_w(latest),
            last_meter_values_at: self.last_meter_values_at,
            open_transactions,
        }
    }
}

/// Index 0..3 of a line-to-neutral phase, and whether it was spelt explicitly (`L1-N`), which
/// wins over the bare `L1` when a charge point sends both.
fn line_to_neutral(phase: Phase) -> Option<(usize, bool)> {
    match phase {
        Phase::L1 => Some((0, false)),
        Phase::L2 => Some((1, false)),
        Phase::L3 => Some((2, false)),
        Phase::L1N => Some((0, true)),
        Phase::L2N => Some((1, true)),
        Phase::L3N => Some((2, true)),
        Phase::N | Phase::L1L2 | Phase::L2L3 | Phase::L3L1 => None,
    }
}

/// Current active power of the charge point in W from the newest samples: per connector the
/// latest `Power.Active.Import` total, or the sum of its latest line-to-neutral phase readings
/// when it reports only phases (line-to-line readings are never summed). Connector 0 (the
/// charge point's own meter) is the answer when it reports power; otherwise the connectors'
/// powers are added up. `None` when no power was reported.
pub fn active_power_w<'a>(latest: impl IntoIterator<Item = &'a Sample>) -> Option<f64> {
    #[derive(Default)]
    struct Connector {
        total: Option<f64>,
        phases: [Option<(f64, bool)>; 3],
    }
    let mut connectors: BTreeMap<u32, Connector> = BTreeMap::new();
    for sample in latest {
        if sample.measurand != Measurand::PowerActiveImport {
            continue;
        }
        let Some(value) = sample.number() else {
            continue;
        };
        let connector = connectors.entry(sample.connector_id).or_default();
        match sample.phase {
            None => connector.total = Some(value),
            Some(phase) => {
                if let Some((index, explicit)) = line_to_neutral(phase) {
                    let slot = &mut connector.phases[index];
                    if slot.is_none_or(|(_, was_explicit)| explicit || !was_explicit) {
                        *slot = Some((value, explicit));
                    }
                }
            }
        }
    }
    let power = |c: &Connector| {
        c.total.or_else(|| {
            let phases: Vec<f64> = c.phases.iter().flatten().map(|(v, _)| *v).collect();
            (!phases.is_empty()).then(|| phases.iter().sum())
        })
    };
    if let Some(main) = connectors.get(&0).and_then(power) {
        return Some(main);
    }
    let powers: Vec<f64> = connectors
        .iter()
        .filter(|(id, _)| **id != 0)
        .filter_map(|(_, c)| power(c))
        .collect();
    (!powers.is_empty()).then(|| powers.iter().sum())
}

/// Energy of `txn` so far: its connector's newest whole-meter `Energy.Active.Import.Register`
/// taken during the transaction (named by it, or not older than its start) minus `meter_start`.
fn energy_so_far<'a>(
    latest: impl IntoIterator<Item = &'a Sample>,
    txn: &OpenTransaction,
) -> Option<f64> {
    latest
        .into_iter()
        .filter(|s| {
            s.connector_id == txn.connector_id
                && s.measurand == Measurand::EnergyActiveImportRegister
                && s.phase.is_none()
                && (s.transaction_id == Some(txn.transaction_id) || s.timestamp >= txn.started_at)
        })
        .filter_map(|s| s.number().map(|v| (s.timestamp, v)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, register)| register - txn.meter_start as f64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sample::{Location, ReadingContext, SampleValue};

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn sample(connector: u32, measurand: Measurand, phase: Option<Phase>, value: f64) -> Sample {
        Sample {
            timestamp: at(100),
            connector_id: connector,
            transaction_id: None,
            measurand,
            phase,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: measurand.default_unit(),
            value: SampleValue::Number(value),
        }
    }

    #[test]
    fn the_minute_window_forgets_what_is_older_than_a_minute() {
        let mut window = MinuteWindow::default();
        window.add(at(0), 3);
        window.add(at(0), 2);
        window.add(at(30), 1);
        assert_eq!(window.total(at(30)), 6);
        assert_eq!(window.total(at(59)), 6);
        assert_eq!(window.total(at(60)), 1, "second 0 is out at second 60");
        assert_eq!(window.total(at(90)), 0);
        window.add(at(200), 4);
        assert_eq!(window.buckets.len(), 1, "old buckets are evicted on add");
        window.add(at(199), 1);
        assert_eq!(window.total(at(200)), 5, "a clock step back counts as now");
    }

    #[test]
    fn power_is_the_total_or_the_sum_of_line_to_neutral_phases() {
        use Measurand::PowerActiveImport as P;
        let total = [
            sample(1, P, None, 7400.0),
            sample(1, P, Some(Phase::L1), 2000.0),
        ];
        assert_eq!(active_power_w(&total), Some(7400.0));
        let phases = [
            sample(1, P, Some(Phase::L1), 1000.0),
            sample(1, P, Some(Phase::L2N), 2000.0),
            sample(1, P, Some(Phase::L3N), 3000.0),
            sample(1, P, Some(Phase::L3), 9999.0),
            sample(1, P, Some(Phase::L1L2), 5000.0),
        ];
        assert_eq!(
            active_power_w(&phases),
            Some(6000.0),
            "L3-N wins over L3, L1-L2 ignored"
        );
        let two = [sample(1, P, None, 1000.0), sample(2, P, None, 500.0)];
        assert_eq!(active_power_w(&two), Some(1500.0), "connectors add up");
        let main = [sample(0, P, None, 1600.0), sample(1, P, None, 1000.0)];
        assert_eq!(
            active_power_w(&main),
            Some(1600.0),
            "connector 0 is the whole charge point"
        );
        let none = [sample(1, Measurand::Voltage, None, 230.0)];
        assert_eq!(active_power_w(&none), None);
        let signed = Sample {
            value: SampleValue::Signed("x".into()),
            ..sample(1, P, None, 0.0)
        };
        assert_eq!(active_power_w([&signed]), None);
    }

    #[test]
    fn energy_of_an_open_transaction_counts_from_meter_start() {
        let txn = OpenTransaction {
            transaction_id: 7,
            connector_id: 1,
            id_tag: "T".into(),
            meter_start: 1000,
            started_at: at(50),
        };
        let mut stats = LiveStats::new(at(0));
        let register = sample(1, Measurand::EnergyActiveImportRegister, None, 1500.0);
        let other = sample(2, Measurand::EnergyActiveImportRegister, None, 9000.0);
        let snapshot = stats.snapshot(at(101), [&register, &other], [&txn]);
        assert_eq!(snapshot.open_transactions[0].energy_wh, Some(500.0));
        let before_start = Sample {
            timestamp: at(10),
            ..register.clone()
        };
        let snapshot = stats.snapshot(at(101), [&before_start], [&txn]);
        assert_eq!(snapshot.open_transactions[0].energy_wh, None);
        assert!(stats.take_changed(), "a new session is worth a snapshot");
        assert!(!stats.take_changed());
        stats.record_samples(4, at(100));
        stats.record_message(at(100));
        stats.record_meter_values(at(100));
        assert!(stats.take_changed());
        let snapshot = stats.snapshot(at(101), [&register], [&txn]);
        assert_eq!(snapshot.samples_total, 4);
        assert_eq!(snapshot.last_meter_values_at, Some(at(100)));
        let view = snapshot.view(at(101), true, Vec::new());
        assert_eq!((view.samples_last_minute, view.messages_per_minute), (4, 1));
        let later = snapshot.view(at(200), false, Vec::new());
        assert_eq!(
            (later.samples_last_minute, later.messages_per_minute),
            (0, 0)
        );
    }

    #[test]
    fn the_snapshot_survives_json() {
        let mut stats = LiveStats::new(at(0));
        stats.record_samples(2, at(5));
        let register = sample(1, Measurand::EnergyActiveImportRegister, None, 1500.0);
        let snapshot = stats.snapshot(at(6), [&register], []);
        let text = serde_json::to_string(&snapshot).unwrap();
        let back: StoredStats = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snapshot);
    }
}
