//! The alert lifecycle as plain state: which alerts are active, per charge point, connector,
//! rule and phase, and what a new check does to them. No actor, no clock, no Redis, so the
//! "raised once, updated while it holds, cleared with hysteresis" logic is tested directly.

use crate::FastHashMap as HashMap;

use chrono::{DateTime, Utc};

use super::rules::{Check, Verdict};
use super::small_map::SmallMap;
use crate::exchange::{Alert, AlertState, Rule, Severity};
use crate::id::ChargePointId;
use crate::sample::{Measurand, Phase, Sample};

/// One incident's identity within a charge point.
type Slot = (u32, Rule, Option<Phase>);

/// One energy register series within a charge point.
type Register = (u32, Measurand, Option<Phase>);

/// What a check did to the alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident: notify and store.
    Raised(Alert),
    /// An active alert got a newer reading: store, do not notify.
    Updated(Alert),
    /// An incident ended: notify and store.
    Cleared(Alert),
}

impl Change {
    /// The alert as it is now.
    pub fn alert(&self) -> &Alert {
        match self {
            Change::Raised(a) | Change::Updated(a) | Change::Cleared(a) => a,
        }
    }
}

/// State of one charge point.
#[derive(Debug, Default)]
struct ChargePointAlerts {
    /// Active alerts by slot.
    active: HashMap<Slot, Alert>,
    /// Time of the newest reading checked per slot, so older (replayed) readings are ignored.
    last_at: SmallMap<Slot, DateTime<Utc>>,
    /// Newest reading of each energy register, to see it go down.
    registers: SmallMap<Register, (DateTime<Utc>, f64)>,
}

/// Safety rules are critical, data quality is a warning.
fn severity(rule: Rule) -> Severity {
    match rule {
        Rule::EnergyRegisterDecrease | Rule::ClockSkew | Rule::StaleMeterData => Severity::Warning,
        _ => Severity::Critical,
    }
}

/// Every charge point's active alerts and the little history the rules need.
#[derive(Debug)]
pub struct AlertBook {
    /// By charge point, so a charge point's state is found (and dropped) in one step.
    charge_points: HashMap<ChargePointId, ChargePointAlerts>,
    /// Makes ids unique across restarts: the process's start time.
    id_prefix: String,
    /// Makes ids unique within the process.
    next_id: u64,
}

impl AlertBook {
    /// An empty book whose alert ids start with `id_prefix` (unique per process run).
    pub fn new(id_prefix: String) -> AlertBook {
        AlertBook {
            charge_points: HashMap::default(),
            id_prefix,
            next_id: 1,
        }
    }

    /// An id prefix from the current time, unique per process run.
    pub fn time_prefix(now: DateTime<Utc>) -> String {
        let nanos = now
            .timestamp_nanos_opt()
            .unwrap_or_else(|| now.timestamp_micros());
        format!("{nanos:x}")
    }

    fn new_id(&mut self) -> String {
        let id = format!("{}-{}", self.id_prefix, self.next_id);
        self.next_id += 1;
        id
    }

    /// Takes back alerts that were active before a restart, so the incident is not raised a
    /// second time. Alerts already known (raised since) win.
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for alert in alerts {
            if alert.state != AlertState::Active {
                continue;
            }
            let slot = (alert.connector_id, alert.rule, alert.phase);
            self.charge_points
                .entry(alert.charge_point_id.clone())
                .or_default()
                .active
                .entry(slot)
                .or_insert(alert);
        }
    }

    /// Replaces one charge point's active alerts with `alerts` (its active alerts as stored
    /// in Redis), when its session starts on this instance: the instance it was on before may
    /// have raised or cleared alerts this book has not seen. The rules' memory of readings
    /// stays.
    pub fn replace_active(&mut self, charge_point: &ChargePointId, alerts: Vec<Alert>) {
        let cp = self.charge_points.entry(charge_point.clone()).or_default();
        cp.active = alerts
            .into_iter()
            .filter(|a| a.state == AlertState::Active && a.charge_point_id == *charge_point)
            .map(|a| ((a.connector_id, a.rule, a.phase), a))
            .collect();
    }

    /// Forgets a charge point that moved to another instance, which from now on raises and
    /// clears its alerts; a stale copy here could otherwise overwrite them (acknowledge).
    pub fn forget(&mut self, charge_point: &ChargePointId) {
        self.charge_points.remove(charge_point);
    }

    /// Applies one check: raise, update, clear, or nothing.
    pub fn apply(
        &mut self,
        charge_point: &ChargePointId,
        check: &Check,
        now: DateTime<Utc>,
    ) -> Option<Change> {
        let slot = (check.connector_id, check.rule, check.phase);
        let id = match self.charge_points.get(charge_point) {
            Some(cp) if cp.active.contains_key(&slot) => None,
            _ if check.verdict == Verdict::Breach => Some(self.new_id()),
            _ => None,
        };
        let cp = self.charge_points.entry(charge_point.clone()).or_default();
        // A reading from the future (clock skew) counts as now, so it cannot hide the
        // readings that follow it.
        let taken = check.at.min(now);
        if let Some(last) = cp.last_at.get(&slot) {
            if taken < *last {
                return None;
            }
        }
        cp.last_at.insert(slot, taken);
        match (cp.active.get_mut(&slot), check.verdict) {
            (Some(alert), Verdict::Breach | Verdict::Margin) => {
                if alert.value == check.value {
                    return None;
                }
                alert.value = check.value;
                Some(Change::Updated(alert.clone()))
            }
            (Some(_), Verdict::Clear) => {
                let mut alert = cp.active.remove(&slot)?;
                alert.value = check.value;
                alert.state = AlertState::Cleared;
                alert.cleared_at = Some(now);
                Some(Change::Cleared(alert))
            }
            (None, Verdict::Breach) => {
                let alert = Alert {
                    id: id?,
                    rule: check.rule,
                    severity: severity(check.rule),
                    charge_point_id: charge_point.clone(),
                    connector_id: check.connector_id,
                    measurand: check.measurand,
                    phase: check.phase,
                    value: check.value,
                    threshold: check.threshold,
                    unit: check.unit.to_owned(),
                    state: AlertState::Active,
                    raised_at: now,
                    cleared_at: None,
                    acknowledged_at: None,
                };
                cp.active.insert(slot, alert.clone());
                Some(Change::Raised(alert))
            }
            (None, _) => None,
        }
    }

    /// Energy registers going down: a register reading lower than the previous (older) one of
    /// the same series breaches when it belongs to a transaction (`in_transaction` says whether
    /// the connector has one open, for samples without a transaction id); a reading that does
    /// not go down clears. Out-of-order readings are ignored.
    pub fn register_checks(
        &mut self,
        charge_point: &ChargePointId,
        samples: &[Sample],
        now: DateTime<Utc>,
        in_transaction: impl Fn(u32) -> bool,
    ) -> Vec<Check> {
        let cp = self.charge_points.entry(charge_point.clone()).or_default();
        let mut checks = Vec::new();
        for sample in samples {
            if !sample.measurand.is_energy_register() {
                continue;
            }
            let Some(value) = sample.number() else {
                continue;
            };
            let series = (sample.connector_id, sample.measurand, sample.phase);
            // A timestamp in the future (clock skew) counts as now, so it cannot hide the
            // readings that follow it.
            let taken = sample.timestamp.min(now);
            let previous = cp.registers.get(&series).copied();
            if previous.is_some_and(|(at, _)| taken <= at) {
                continue;
            }
            cp.registers.insert(series, (taken, value));
            let Some((_, before)) = previous else {
                continue;
            };
            let verdict = if value >= before {
                Verdict::Clear
            } else if sample.transaction_id.is_some() || in_transaction(sample.connector_id) {
                Verdict::Breach
            } else {
                continue;
            };
            checks.push(Check {
                connector_id: sample.connector_id,
                rule: Rule::EnergyRegisterDecrease,
                phase: sample.phase,
                measurand: Some(sample.measurand),
                value,
                threshold: before,
                unit: if sample.unit.as_str() == "varh" {
                    "varh"
                } else {
                    "Wh"
                },
                verdict,
                at: taken,
            });
        }
        checks
    }

    /// Clears every active alert of `rule` of a charge point (stale data once MeterValues
    /// resume, the transaction stops or the charge point leaves).
    pub fn clear_rule(
        &mut self,
        charge_point: &ChargePointId,
        rule: Rule,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let Some(cp) = self.charge_points.get_mut(charge_point) else {
            return Vec::new();
        };
        let slots: Vec<Slot> = cp.active.keys().filter(|s| s.1 == rule).copied().collect();
        slots
            .into_iter()
            .filter_map(|slot| {
                let mut alert = cp.active.remove(&slot)?;
                alert.state = AlertState::Cleared;
                alert.cleared_at = Some(now);
                Some(Change::Cleared(alert))
            })
            .collect()
    }

    /// Whether `charge_point` has an active alert of `rule`.
    pub fn is_active(&self, charge_point: &ChargePointId, rule: Rule) -> bool {
        self.charge_points
            .get(charge_point)
            .is_some_and(|cp| cp.active.keys().any(|s| s.1 == rule))
    }

    /// Sets `acknowledged_at` (once) on an active alert; `None` if no active alert has `id`.
    pub fn acknowledge(&mut self, id: &str, at: DateTime<Utc>) -> Option<Alert> {
        let alert = self
            .charge_points
            .values_mut()
            .flat_map(|cp| cp.active.values_mut())
            .find(|a| a.id == id)?;
        alert.acknowledged_at.get_or_insert(at);
        Some(alert.clone())
    }

    /// Number of active alerts (for logs and tests).
    pub fn active_count(&self) -> usize {
        self.charge_points.values().map(|cp| cp.active.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::safety_checks;
    use crate::alerts::rules::tests::{at, sample};
    use crate::exchange::Thresholds;
    use crate::sample::Unit;

    fn cp() -> ChargePointId {
        ChargePointId::parse("CP1").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Feeds one power reading per step and returns what each did.
    fn run(book: &mut AlertBook, values: &[f64]) -> Vec<&'static str> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let s = [sample(
                    Measurand::PowerActiveImport,
                    None,
                    Unit::W,
                    *v,
                    i as i64,
                )];
                let checks = safety_checks(&s, &Thresholds::default());
                match checks
                    .first()
                    .and_then(|c| book.apply(&cp(), c, at(i as i64)))
                {
                    Some(Change::Raised(_)) => "raised",
                    Some(Change::Updated(_)) => "updated",
                    Some(Change::Cleared(_)) => "cleared",
                    None => "-",
                }
            })
            .collect()
    }

    #[test]
    fn raised_once_updated_while_it_holds_cleared_past_the_hysteresis() {
        let mut book = AlertBook::new("t".into());
        let steps = run(
            &mut book,
            &[
                40_000.0, 51_000.0, 52_000.0, 52_000.0, 49_500.0, 50_500.0, 49_000.0, 49_000.0,
                60_000.0,
            ],
        );
        assert_eq!(
            steps,
            ["-", "raised", "updated", "-", "updated", "updated", "cleared", "-", "raised"]
        );
        assert_eq!(book.active_count(), 1);
    }

    #[test]
    fn ids_are_unique_and_carry_the_prefix() {
        let mut book = AlertBook::new("abc".into());
        let mut ids = Vec::new();
        for v in [51_000.0, 10_000.0, 51_000.0] {
            let s = [sample(
                Measurand::PowerActiveImport,
                None,
                Unit::W,
                v,
                ids.len() as i64,
            )];
            let checks = safety_checks(&s, &Thresholds::default());
            if let Some(Change::Raised(a)) = book.apply(&cp(), &checks[0], at(0)) {
                ids.push(a.id);
            }
            if ids.is_empty() {
                ids.push(String::new());
            }
        }
        let raised: Vec<&String> = ids.iter().filter(|i| !i.is_empty()).collect();
        assert_eq!(raised.len(), 2);
        assert_ne!(raised[0], raised[1]);
        assert!(raised.iter().all(|i| i.starts_with("abc-")));
        assert_ne!(AlertBook::time_prefix(at(0)), AlertBook::time_prefix(at(1)));
    }

    #[test]
    fn a_raised_alert_has_the_document_fields() {
        let mut book = AlertBook::new("t".into());
        let s = [sample(Measurand::Temperature, None, Unit::Celsius, 75.0, 0)];
        let checks = safety_checks(&s, &Thresholds::default());
        let changes: Vec<Change> = checks
            .iter()
            .filter_map(|c| book.apply(&cp(), c, at(5)))
            .collect();
        assert_eq!(changes.len(), 1);
        let Change::Raised(alert) = &changes[0] else {
            panic!("expected a raise: {changes:?}");
        };
        assert_eq!(alert.rule, Rule::HighTemperature);
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!((alert.value, alert.threshold), (75.0, 70.0));
        assert_eq!(alert.unit, "Celsius");
        assert_eq!(alert.raised_at, at(5));
        assert_eq!(alert.state, AlertState::Active);
    }

    #[test]
    fn older_readings_do_not_flip_an_alert() {
        let mut book = AlertBook::new("t".into());
        let t = Thresholds::default();
        let high = safety_checks(
            &[sample(Measurand::CurrentImport, None, Unit::A, 90.0, 10)],
            &t,
        );
        let old_low = safety_checks(
            &[sample(Measurand::CurrentImport, None, Unit::A, 10.0, 5)],
            &t,
        );
        assert!(matches!(
            book.apply(&cp(), &high[0], at(10)),
            Some(Change::Raised(_))
        ));
        assert_eq!(book.apply(&cp(), &old_low[0], at(11)), None);
        assert_eq!(book.active_count(), 1);
    }

    #[test]
    fn restored_alerts_are_not_raised_again() {
        let mut book = AlertBook::new("t".into());
        let t = Thresholds::default();
        let high = safety_checks(
            &[sample(Measurand::CurrentImport, None, Unit::A, 90.0, 0)],
            &t,
        );
        let Some(Change::Raised(alert)) = book.apply(&cp(), &high[0], at(0)) else {
            panic!("expected a raise");
        };
        let mut after_restart = AlertBook::new("u".into());
        after_restart.restore([alert.clone()]);
        let again = safety_checks(
            &[sample(Measurand::CurrentImport, None, Unit::A, 95.0, 1)],
            &t,
        );
        let change = after_restart.apply(&cp(), &again[0], at(1));
        assert!(matches!(&change, Some(Change::Updated(a)) if a.id == alert.id));
    }

    #[test]
    fn energy_register_decrease_within_a_transaction() {
        let mut book = AlertBook::new("t".into());
        let reg = |v, secs, txn| {
            let mut s = sample(
                Measurand::EnergyActiveImportRegister,
                None,
                Unit::Wh,
                v,
                secs,
            );
            s.transaction_id = txn;
            s
        };
        let samples = [
            reg(1000.0, 0, Some(1)),
            reg(1500.0, 10, Some(1)),
            reg(200.0, 20, Some(1)),
        ];
        let checks = book.register_checks(&cp(), &samples, at(100), |_| false);
        let verdicts: Vec<Verdict> = checks.iter().map(|c| c.verdict).collect();
        assert_eq!(verdicts, [Verdict::Clear, Verdict::Breach]);
        assert_eq!((checks[1].value, checks[1].threshold), (200.0, 1500.0));
        let change = book.apply(&cp(), &checks[1], at(20));
        assert!(matches!(&change, Some(Change::Raised(a)) if a.severity == Severity::Warning));

        // Outside a transaction a drop (meter replaced) is not flagged ...
        let mut idle = AlertBook::new("t".into());
        let no_txn = [reg(1000.0, 0, None), reg(10.0, 10, None)];
        assert!(idle
            .register_checks(&cp(), &no_txn, at(100), |_| false)
            .is_empty());
        // ... unless the connector has a transaction open.
        let mut open = AlertBook::new("t".into());
        let checks = open.register_checks(&cp(), &no_txn, at(100), |connector| connector == 1);
        assert_eq!(checks[0].verdict, Verdict::Breach);
        // An out-of-order reading is ignored.
        let late = [reg(5.0, 5, Some(1))];
        assert!(open
            .register_checks(&cp(), &late, at(100), |_| true)
            .is_empty());
    }

    #[test]
    fn clear_rule_and_acknowledge() {
        let mut book = AlertBook::new("t".into());
        let check = Check {
            connector_id: 1,
            rule: Rule::StaleMeterData,
            phase: None,
            measurand: None,
            value: 3.0,
            threshold: 3.0,
            unit: "s",
            verdict: Verdict::Breach,
            at: at(0),
        };
        let Some(Change::Raised(alert)) = book.apply(&cp(), &check, at(0)) else {
            panic!("expected a raise");
        };
        assert!(book.is_active(&cp(), Rule::StaleMeterData));
        let acked = book.acknowledge(&alert.id, at(3));
        assert_eq!(acked.and_then(|a| a.acknowledged_at), Some(at(3)));
        let again = book.acknowledge(&alert.id, at(4));
        assert_eq!(
            again.and_then(|a| a.acknowledged_at),
            Some(at(3)),
            "first ack kept"
        );
        let cleared = book.clear_rule(&cp(), Rule::StaleMeterData, at(9));
        assert_eq!(cleared.len(), 1);
        assert_eq!(cleared[0].alert().cleared_at, Some(at(9)));
        assert!(!book.is_active(&cp(), Rule::StaleMeterData));
        assert_eq!(book.acknowledge(&alert.id, at(10)), None);
    }
}
