//! The newest reading of each series a charge point reports, for the latest-values API, the
//! statistics snapshot and a StopTransaction without a final register reading.
//!
//! A station reports a handful of series (the fleet benchmark's 10; rarely more than ~30), and
//! this state lives as long as its session, so it is kept as one vector of samples, searched
//! in order, instead of a hash map keyed by series: a map of 10 samples held 16 buckets of key
//! and sample plus control bytes, ~1.4 KiB per connected charge point, where the vector holds
//! the 10 samples, ~0.8 KiB (issue 13, memory per idle charge point). The series of a sample
//! is read from the sample itself, so no key is stored beside it.

use crate::sample::{Measurand, Phase, Sample};

/// See the module documentation.
#[derive(Debug, Default)]
pub struct LatestSamples(Vec<Sample>);

impl LatestSamples {
    /// Keeps each of `samples` that is at least as new as what its series holds (a replayed or
    /// late reading does not replace a newer one).
    pub fn record(&mut self, samples: &[Sample]) {
        for sample in samples {
            let held = self.0.iter_mut().find(|held| {
                held.connector_id == sample.connector_id
                    && held.measurand == sample.measurand
                    && held.phase == sample.phase
            });
            match held {
                Some(held) if held.timestamp > sample.timestamp => {}
                Some(held) => held.clone_from(sample),
                None => {
                    // A new series is rare (the first messages of a session): no spare slots.
                    self.0.reserve_exact(1);
                    self.0.push(sample.clone());
                }
            }
        }
    }

    /// The newest reading of one series.
    pub fn get(
        &self,
        connector_id: u32,
        measurand: Measurand,
        phase: Option<Phase>,
    ) -> Option<&Sample> {
        self.0.iter().find(|held| {
            held.connector_id == connector_id && held.measurand == measurand && held.phase == phase
        })
    }

    /// Every series' newest reading, in the order the series first appeared.
    pub fn iter(&self) -> std::slice::Iter<'_, Sample> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, ReadingContext, SampleValue, Unit};

    fn at(second: i64, connector_id: u32, measurand: Measurand, phase: Option<Phase>) -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap(),
            connector_id,
            transaction_id: None,
            measurand,
            phase,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::V,
            value: SampleValue::Number(second as f64),
        }
    }

    fn value(sample: Option<&Sample>) -> Option<f64> {
        sample.and_then(Sample::number)
    }

    #[test]
    fn keeps_the_newest_reading_of_each_series() {
        let mut latest = LatestSamples::default();
        let v = Measurand::Voltage;
        latest.record(&[
            at(10, 1, v, Some(Phase::L1N)),
            at(10, 1, v, Some(Phase::L2N)),
            at(10, 2, v, Some(Phase::L1N)),
            at(10, 1, Measurand::CurrentImport, Some(Phase::L1)),
        ]);
        // Newer replaces, older (a replay) does not, equal time replaces (a correction).
        latest.record(&[
            at(20, 1, v, Some(Phase::L1N)),
            at(5, 1, v, Some(Phase::L2N)),
        ]);
        assert_eq!(latest.iter().count(), 4, "one entry per series");
        assert_eq!(value(latest.get(1, v, Some(Phase::L1N))), Some(20.0));
        assert_eq!(value(latest.get(1, v, Some(Phase::L2N))), Some(10.0));
        assert_eq!(value(latest.get(2, v, Some(Phase::L1N))), Some(10.0));
        assert_eq!(
            value(latest.get(1, Measurand::CurrentImport, Some(Phase::L1))),
            Some(10.0)
        );
        assert_eq!(
            latest.get(1, v, None),
            None,
            "no phase is a series of its own"
        );
        let mut corrected = at(20, 1, v, Some(Phase::L1N));
        corrected.value = SampleValue::Number(230.5);
        latest.record(&[corrected]);
        assert_eq!(value(latest.get(1, v, Some(Phase::L1N))), Some(230.5));
    }

    #[test]
    fn holds_no_spare_slots() {
        let mut latest = LatestSamples::default();
        let samples: Vec<Sample> = (0..10)
            .map(|c| at(0, c, Measurand::Voltage, None))
            .collect();
        latest.record(&samples);
        assert_eq!(latest.0.capacity(), 10);
        latest.record(&samples);
        assert_eq!(latest.0.capacity(), 10, "a known series takes no slot");
    }
}
