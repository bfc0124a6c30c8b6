//! The thresholds document: one shape for `config.toml` `[alerts]`, `GET`/`PUT
//! /api/v1/thresholds` and the per charge point overrides, so an operator copies it between them
//! unchanged.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::id::ChargePointId;

/// Limits the safety rules compare readings with, in normalised units (W, Celsius, V, A).
/// Every field is required and unknown fields are refused, so a typo in a PUT is a 400 rather
/// than a silently ignored limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// `Power.Active.Import` above this (W, total or sum of the phases) raises `high_power`.
    pub power_max_w: f64,
    /// `Temperature` above this raises `high_temperature`.
    pub temperature_max_c: f64,
    /// `Temperature` below this raises `low_temperature`.
    pub temperature_min_c: f64,
    /// Lower bound of line-to-neutral `Voltage` (line-to-line: times sqrt(3)).
    pub voltage_min_v: f64,
    /// Upper bound of line-to-neutral `Voltage` (line-to-line: times sqrt(3)).
    pub voltage_max_v: f64,
    /// `Current.Import` per phase above this raises `high_current`.
    pub current_max_a: f64,
    /// An alert clears only once the reading is back inside its threshold by this percentage
    /// of the threshold, so a reading hovering at the limit does not flap.
    pub hysteresis_pct: f64,
}

impl Default for Thresholds {
    /// The seed's defaults, equal to the shipped `config.toml`.
    fn default() -> Self {
        Thresholds {
            power_max_w: 50_000.0,
            temperature_max_c: 70.0,
            temperature_min_c: -10.0,
            voltage_min_v: 207.0,
            voltage_max_v: 253.0,
            current_max_a: 80.0,
            hysteresis_pct: 2.0,
        }
    }
}

/// A thresholds document that cannot work, naming the field so the API's 400 says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ThresholdError {
    /// The offending field, as spelled in the document.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Thresholds {
    /// Checks that the limits are finite and consistent; the first bad field is named.
    pub fn validate(&self) -> Result<(), ThresholdError> {
        let bad = |field, reason| Err(ThresholdError { field, reason });
        let fields = [
            ("power_max_w", self.power_max_w),
            ("temperature_max_c", self.temperature_max_c),
            ("temperature_min_c", self.temperature_min_c),
            ("voltage_min_v", self.voltage_min_v),
            ("voltage_max_v", self.voltage_max_v),
            ("current_max_a", self.current_max_a),
            ("hysteresis_pct", self.hysteresis_pct),
        ];
        for (field, value) in fields {
            if !value.is_finite() {
                return bad(field, "must be a finite number");
            }
        }
        if self.power_max_w <= 0.0 {
            return bad("power_max_w", "must be greater than 0");
        }
        if self.temperature_min_c >= self.temperature_max_c {
            return bad("temperature_min_c", "must be below temperature_max_c");
        }
        if self.voltage_min_v <= 0.0 {
            return bad("voltage_min_v", "must be greater than 0");
        }
        if self.voltage_max_v <= self.voltage_min_v {
            return bad("voltage_max_v", "must be above voltage_min_v");
        }
        if self.current_max_a <= 0.0 {
            return bad("current_max_a", "must be greater than 0");
        }
        if !(0.0..50.0).contains(&self.hysteresis_pct) {
            return bad("hysteresis_pct", "must be at least 0 and below 50");
        }
        Ok(())
    }
}

/// Which document applies to a charge point, as the per charge point GET reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdSource {
    /// An override stored for this charge point.
    ChargePoint,
    /// The global document (API-set, or `config.toml`).
    Global,
}

impl ThresholdSource {
    /// The API spelling of `"source"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdSource::ChargePoint => "charge_point",
            ThresholdSource::Global => "global",
        }
    }
}

/// The global document plus the per charge point overrides: what the rules consult per batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThresholdSet {
    /// Applies to every charge point without an override.
    pub global: Thresholds,
    /// Overrides, by charge point.
    pub overrides: HashMap<ChargePointId, Thresholds>,
}

impl ThresholdSet {
    /// The document that applies to `charge_point`, and where it comes from.
    pub fn for_charge_point(&self, charge_point: &ChargePointId) -> (Thresholds, ThresholdSource) {
        match self.overrides.get(charge_point) {
            Some(t) => (*t, ThresholdSource::ChargePoint),
            None => (self.global, ThresholdSource::Global),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_document_round_trips_and_is_valid() {
        let text = r#"{"power_max_w": 50000, "temperature_max_c": 70, "temperature_min_c": -10,
            "voltage_min_v": 207, "voltage_max_v": 253, "current_max_a": 80, "hysteresis_pct": 2}"#;
        let parsed: Thresholds = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, Thresholds::default());
        assert_eq!(parsed.validate(), Ok(()));
    }

    #[test]
    fn unknown_and_missing_fields_are_refused() {
        let unknown = r#"{"power_max_w": 1, "temperature_max_c": 70, "temperature_min_c": -10,
            "voltage_min_v": 207, "voltage_max_v": 253, "current_max_a": 80, "hysteresis_pct": 2,
            "bogus": 1}"#;
        assert!(serde_json::from_str::<Thresholds>(unknown).is_err());
        let missing = r#"{"power_max_w": 1}"#;
        assert!(serde_json::from_str::<Thresholds>(missing).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let check = |f: fn(&mut Thresholds)| {
            let mut t = Thresholds::default();
            f(&mut t);
            t.validate().map_err(|e| e.field)
        };
        assert_eq!(check(|t| t.power_max_w = 0.0), Err("power_max_w"));
        assert_eq!(
            check(|t| t.temperature_min_c = 80.0),
            Err("temperature_min_c")
        );
        assert_eq!(check(|t| t.voltage_max_v = 100.0), Err("voltage_max_v"));
        assert_eq!(check(|t| t.voltage_min_v = -1.0), Err("voltage_min_v"));
        assert_eq!(check(|t| t.current_max_a = -5.0), Err("current_max_a"));
        assert_eq!(check(|t| t.hysteresis_pct = 60.0), Err("hysteresis_pct"));
        assert_eq!(
            check(|t| t.temperature_max_c = f64::NAN),
            Err("temperature_max_c")
        );
    }
}
