//! The threshold rules as pure functions of a batch of readings: no state, no clock, no Redis,
//! so every rule, the hysteresis and the phase arithmetic are tested on their own.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::exchange::{Rule, Thresholds};
use crate::sample::{Measurand, Phase, Sample, Unit};

/// What one reading says about one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Beyond the threshold: raise, or keep active.
    Breach,
    /// Inside the threshold, but not by the hysteresis margin: keeps an active alert active and
    /// raises nothing, so a reading hovering at the limit does not flap.
    Margin,
    /// Inside the threshold by at least the margin: clears an active alert.
    Clear,
}

/// One reading (or sum of readings) checked against one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Connector of the reading.
    pub connector_id: u32,
    /// The rule checked.
    pub rule: Rule,
    /// Phase of the reading; `None` for totals and sums of phases.
    pub phase: Option<Phase>,
    /// Measurand of the reading, when the rule is about one.
    pub measurand: Option<Measurand>,
    /// The reading, normalised.
    pub value: f64,
    /// The limit it was compared with (the bound nearest to it for a band).
    pub threshold: f64,
    /// Unit of value and threshold.
    pub unit: &'static str,
    /// What the comparison says.
    pub verdict: Verdict,
    /// When the reading was taken; a reading older than the last one checked for the same
    /// alert is ignored so a replay of old data does not flip a current alert.
    pub at: DateTime<Utc>,
}

fn margin(limit: f64, hysteresis_pct: f64) -> f64 {
    limit.abs() * hysteresis_pct / 100.0
}

/// A reading that must stay at or below `limit`: breached above it, cleared at or below
/// `limit` minus the hysteresis margin (50 kW at 2 %: clears at 49 kW).
pub fn above(value: f64, limit: f64, hysteresis_pct: f64) -> Verdict {
    if value > limit {
        Verdict::Breach
    } else if value <= limit - margin(limit, hysteresis_pct) {
        Verdict::Clear
    } else {
        Verdict::Margin
    }
}

/// A reading that must stay at or above `limit`: breached below it, cleared at or above
/// `limit` plus the margin (-10 C at 2 %: clears at -9.8 C).
pub fn below(value: f64, limit: f64, hysteresis_pct: f64) -> Verdict {
    if value < limit {
        Verdict::Breach
    } else if value >= limit + margin(limit, hysteresis_pct) {
        Verdict::Clear
    } else {
        Verdict::Margin
    }
}

/// A reading that must stay within `[min, max]`; returns the verdict and the bound it is
/// compared with (the crossed one, or the nearest).
pub fn band(value: f64, min: f64, max: f64, hysteresis_pct: f64) -> (Verdict, f64) {
    let nearest = if (value - min).abs() < (max - value).abs() {
        min
    } else {
        max
    };
    if value > max || value < min {
        (Verdict::Breach, nearest)
    } else if value <= max - margin(max, hysteresis_pct)
        && value >= min + margin(min, hysteresis_pct)
    {
        (Verdict::Clear, nearest)
    } else {
        (Verdict::Margin, nearest)
    }
}

/// Index of a line-to-neutral phase (L1 and L1-N are the same conductor), `None` for
/// line-to-line phases, which are never summed.
fn phase_slot(phase: Phase) -> Option<usize> {
    match phase {
        Phase::L1 | Phase::L1N => Some(0),
        Phase::L2 | Phase::L2N => Some(1),
        Phase::L3 | Phase::L3N => Some(2),
        _ => None,
    }
}

/// Power readings of one connector at one instant: the total if reported, else the phases.
#[derive(Default)]
struct PowerAt {
    total: Option<f64>,
    phases: [Option<f64>; 3],
}

/// Checks a batch (one MeterValues) against the safety rules. `Power.Active.Import` is taken
/// from the total reading of a connector and instant, or, when only per-phase readings are
/// there, from the sum of its line-to-neutral phases. Readings in an unexpected unit are
/// skipped rather than compared with a limit in another unit.
pub fn safety_checks(samples: &[Sample], t: &Thresholds) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut power: BTreeMap<(u32, DateTime<Utc>), PowerAt> = BTreeMap::new();
    let sqrt3 = 3f64.sqrt();
    for sample in samples {
        let Some(value) = sample.number() else {
            continue;
        };
        let check = |rule, threshold, unit, verdict| Check {
            connector_id: sample.connector_id,
            rule,
            phase: sample.phase,
            measurand: Some(sample.measurand),
            value,
            threshold,
            unit,
            verdict,
            at: sample.timestamp,
        };
        match (sample.measurand, &sample.unit) {
            (Measurand::Temperature, Unit::Celsius) => {
                let (max, min, h) = (t.temperature_max_c, t.temperature_min_c, t.hysteresis_pct);
                checks.push(check(
                    Rule::HighTemperature,
                    max,
                    "Celsius",
                    above(value, max, h),
                ));
                checks.push(check(
                    Rule::LowTemperature,
                    min,
                    "Celsius",
                    below(value, min, h),
                ));
            }
            (Measurand::Voltage, Unit::V) => {
                let factor = if sample.phase.is_some_and(Phase::is_line_to_line) {
                    sqrt3
                } else {
                    1.0
                };
                let (min, max) = (t.voltage_min_v * factor, t.voltage_max_v * factor);
                let (verdict, bound) = band(value, min, max, t.hysteresis_pct);
                checks.push(check(Rule::VoltageOutOfRange, bound, "V", verdict));
            }
            (Measurand::CurrentImport, Unit::A) => {
                let verdict = above(value, t.current_max_a, t.hysteresis_pct);
                checks.push(check(Rule::HighCurrent, t.current_max_a, "A", verdict));
            }
            (Measurand::PowerActiveImport, Unit::W) => {
                let at = power
                    .entry((sample.connector_id, sample.timestamp))
                    .or_default();
                match sample.phase {
                    None => at.total = Some(value),
                    Some(phase) => {
                        if let Some(slot) = phase_slot(phase) {
                            at.phases[slot] = Some(value);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for ((connector_id, at), readings) in power {
        let value = match readings.total {
            Some(total) => total,
            None if readings.phases.iter().any(Option::is_some) => {
                readings.phases.iter().flatten().sum()
            }
            None => continue,
        };
        checks.push(Check {
            connector_id,
            rule: Rule::HighPower,
            phase: None,
            measurand: Some(Measurand::PowerActiveImport),
            value,
            threshold: t.power_max_w,
            unit: "W",
            verdict: above(value, t.power_max_w, t.hysteresis_pct),
            at,
        });
    }
    worst_per_instant(checks)
}

fn severity_rank(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Clear => 0,
        Verdict::Margin => 1,
        Verdict::Breach => 2,
    }
}

/// Keeps one check per alert (connector, rule, phase) and instant: the worst one. Two readings
/// of the same instant that only differ in location (a body and an outlet temperature sensor)
/// belong to one alert, and the one in range must not clear what the other raised.
fn worst_per_instant(checks: Vec<Check>) -> Vec<Check> {
    let mut index: HashMap<(u32, Rule, Option<Phase>, DateTime<Utc>), usize> = HashMap::new();
    let mut kept: Vec<Check> = Vec::with_capacity(checks.len());
    for check in checks {
        let key = (check.connector_id, check.rule, check.phase, check.at);
        match index.get(&key) {
            Some(&i) => {
                if severity_rank(check.verdict) >= severity_rank(kept[i].verdict) {
                    kept[i] = check;
                }
            }
            None => {
                index.insert(key, kept.len());
                kept.push(check);
            }
        }
    }
    kept
}

/// Checks the timestamps of a batch against the server clock: per connector, the newest
/// timestamp more than `max_skew_secs` ahead of `now` is a breach (value: seconds ahead).
pub fn clock_skew_checks(samples: &[Sample], now: DateTime<Utc>, max_skew_secs: u64) -> Vec<Check> {
    let mut newest: BTreeMap<u32, DateTime<Utc>> = BTreeMap::new();
    for sample in samples {
        let entry = newest
            .entry(sample.connector_id)
            .or_insert(sample.timestamp);
        if sample.timestamp > *entry {
            *entry = sample.timestamp;
        }
    }
    let limit = max_skew_secs as f64;
    newest
        .into_iter()
        .map(|(connector_id, newest)| {
            let ahead = (newest - now).num_milliseconds() as f64 / 1000.0;
            Check {
                connector_id,
                rule: Rule::ClockSkew,
                phase: None,
                measurand: None,
                value: ahead,
                threshold: limit,
                unit: "s",
                verdict: if ahead > limit {
                    Verdict::Breach
                } else {
                    Verdict::Clear
                },
                at: now,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sample::{Location, ReadingContext, SampleValue};

    pub(crate) fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    pub(crate) fn sample(
        measurand: Measurand,
        phase: Option<Phase>,
        unit: Unit,
        value: f64,
        secs: i64,
    ) -> Sample {
        Sample {
            timestamp: at(secs),
            connector_id: 1,
            transaction_id: None,
            measurand,
            phase,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit,
            value: SampleValue::Number(value),
        }
    }

    fn verdicts(samples: &[Sample], rule: Rule) -> Vec<(Option<Phase>, f64, Verdict)> {
        safety_checks(samples, &Thresholds::default())
            .into_iter()
            .filter(|c| c.rule == rule)
            .map(|c| (c.phase, c.value, c.verdict))
            .collect()
    }

    #[test]
    fn hysteresis_of_an_upper_limit() {
        assert_eq!(above(50_001.0, 50_000.0, 2.0), Verdict::Breach);
        assert_eq!(above(50_000.0, 50_000.0, 2.0), Verdict::Margin);
        assert_eq!(above(49_500.0, 50_000.0, 2.0), Verdict::Margin);
        assert_eq!(above(49_000.0, 50_000.0, 2.0), Verdict::Clear);
        assert_eq!(above(50_000.0, 50_000.0, 0.0), Verdict::Clear);
    }

    #[test]
    fn hysteresis_of_a_lower_limit_uses_the_magnitude() {
        assert_eq!(below(-10.5, -10.0, 2.0), Verdict::Breach);
        assert_eq!(below(-10.0, -10.0, 2.0), Verdict::Margin);
        assert_eq!(below(-9.9, -10.0, 2.0), Verdict::Margin);
        assert_eq!(below(-9.8, -10.0, 2.0), Verdict::Clear);
    }

    #[test]
    fn hysteresis_of_a_band() {
        assert_eq!(band(254.0, 207.0, 253.0, 2.0), (Verdict::Breach, 253.0));
        assert_eq!(band(200.0, 207.0, 253.0, 2.0), (Verdict::Breach, 207.0));
        assert_eq!(band(250.0, 207.0, 253.0, 2.0).0, Verdict::Margin);
        assert_eq!(band(209.0, 207.0, 253.0, 2.0).0, Verdict::Margin);
        assert_eq!(band(230.0, 207.0, 253.0, 2.0).0, Verdict::Clear);
    }

    #[test]
    fn high_power_uses_the_total_or_the_sum_of_phases() {
        let total = [sample(
            Measurand::PowerActiveImport,
            None,
            Unit::W,
            51_000.0,
            0,
        )];
        assert_eq!(
            verdicts(&total, Rule::HighPower),
            [(None, 51_000.0, Verdict::Breach)]
        );

        let phases: Vec<Sample> = [Phase::L1, Phase::L2N, Phase::L3]
            .into_iter()
            .map(|p| sample(Measurand::PowerActiveImport, Some(p), Unit::W, 17_000.0, 0))
            .collect();
        assert_eq!(
            verdicts(&phases, Rule::HighPower),
            [(None, 51_000.0, Verdict::Breach)]
        );

        // With a total present, the phases are not added to it.
        let mut both = phases.clone();
        both.push(sample(
            Measurand::PowerActiveImport,
            None,
            Unit::W,
            30_000.0,
            0,
        ));
        assert_eq!(
            verdicts(&both, Rule::HighPower),
            [(None, 30_000.0, Verdict::Clear)]
        );

        // Line-to-line power readings are never summed.
        let mut with_ll = phases.clone();
        with_ll.push(sample(
            Measurand::PowerActiveImport,
            Some(Phase::L1L2),
            Unit::W,
            40_000.0,
            0,
        ));
        assert_eq!(verdicts(&with_ll, Rule::HighPower)[0].1, 51_000.0);

        // Different instants are separate sums.
        let split = [
            sample(
                Measurand::PowerActiveImport,
                Some(Phase::L1),
                Unit::W,
                30_000.0,
                0,
            ),
            sample(
                Measurand::PowerActiveImport,
                Some(Phase::L2),
                Unit::W,
                30_000.0,
                10,
            ),
        ];
        let sums: Vec<f64> = verdicts(&split, Rule::HighPower)
            .iter()
            .map(|v| v.1)
            .collect();
        assert_eq!(sums, [30_000.0, 30_000.0]);
    }

    #[test]
    fn readings_in_an_unexpected_unit_are_not_compared() {
        let odd = [sample(
            Measurand::PowerActiveImport,
            None,
            Unit::Other("hp".into()),
            1e9,
            0,
        )];
        assert!(safety_checks(&odd, &Thresholds::default()).is_empty());
    }

    #[test]
    fn voltage_line_to_line_uses_the_band_times_sqrt3() {
        let v = |phase, value| sample(Measurand::Voltage, phase, Unit::V, value, 0);
        let ll = verdicts(&[v(Some(Phase::L1L2), 400.0)], Rule::VoltageOutOfRange);
        assert_eq!(ll, [(Some(Phase::L1L2), 400.0, Verdict::Clear)]);
        let ln = verdicts(&[v(Some(Phase::L1N), 400.0)], Rule::VoltageOutOfRange);
        assert_eq!(ln[0].2, Verdict::Breach);
        let none = verdicts(&[v(None, 400.0)], Rule::VoltageOutOfRange);
        assert_eq!(none[0].2, Verdict::Breach);
        assert_eq!(
            verdicts(&[v(Some(Phase::L2L3), 440.0)], Rule::VoltageOutOfRange)[0].2,
            Verdict::Breach
        );
        assert_eq!(
            verdicts(&[v(Some(Phase::L3L1), 357.0)], Rule::VoltageOutOfRange)[0].2,
            Verdict::Breach
        );
        assert_eq!(
            verdicts(&[v(Some(Phase::L3), 206.0)], Rule::VoltageOutOfRange)[0].2,
            Verdict::Breach
        );
    }

    #[test]
    fn one_instant_keeps_the_worst_reading_of_an_alert() {
        let mut body = sample(Measurand::Temperature, None, Unit::Celsius, 71.0, 0);
        body.location = Location::Body;
        let outlet = sample(Measurand::Temperature, None, Unit::Celsius, 20.0, 0);
        assert_eq!(
            verdicts(&[body.clone(), outlet.clone()], Rule::HighTemperature),
            [(None, 71.0, Verdict::Breach)]
        );
        assert_eq!(
            verdicts(&[outlet, body], Rule::HighTemperature),
            [(None, 71.0, Verdict::Breach)]
        );
    }

    #[test]
    fn current_is_checked_per_phase() {
        let samples = [
            sample(Measurand::CurrentImport, Some(Phase::L1), Unit::A, 50.0, 0),
            sample(Measurand::CurrentImport, Some(Phase::L2), Unit::A, 81.0, 0),
        ];
        assert_eq!(
            verdicts(&samples, Rule::HighCurrent),
            [
                (Some(Phase::L1), 50.0, Verdict::Clear),
                (Some(Phase::L2), 81.0, Verdict::Breach)
            ]
        );
    }

    #[test]
    fn temperature_has_both_limits() {
        let hot = [sample(Measurand::Temperature, None, Unit::Celsius, 71.0, 0)];
        assert_eq!(verdicts(&hot, Rule::HighTemperature)[0].2, Verdict::Breach);
        assert_eq!(verdicts(&hot, Rule::LowTemperature)[0].2, Verdict::Clear);
        let cold = [sample(
            Measurand::Temperature,
            None,
            Unit::Celsius,
            -11.0,
            0,
        )];
        assert_eq!(verdicts(&cold, Rule::LowTemperature)[0].2, Verdict::Breach);
        assert_eq!(verdicts(&cold, Rule::HighTemperature)[0].2, Verdict::Clear);
    }

    #[test]
    fn clock_skew_looks_at_the_newest_timestamp_per_connector() {
        let now = at(0);
        let samples = [
            sample(Measurand::Voltage, None, Unit::V, 230.0, 10),
            sample(Measurand::Voltage, None, Unit::V, 230.0, 400),
        ];
        let checks = clock_skew_checks(&samples, now, 300);
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].verdict, Verdict::Breach);
        assert_eq!(checks[0].value, 400.0);
        let fine = clock_skew_checks(&samples[..1], now, 300);
        assert_eq!(fine[0].verdict, Verdict::Clear);
    }
}
