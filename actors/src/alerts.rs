//! Alerts: what an operator is told when a reading crosses a threshold or cannot be right.
//!
//! The [`Alert`] document below is the one shape shared by the admin API, the live event stream
//! and the webhook, so they can never disagree.

use actix::prelude::*;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::id::ChargePointId;
use crate::sample::{Measurand, Phase};

/// Which rule raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `Power.Active.Import` above `power_max_w` (total, or the sum of the phases).
    HighPower,
    /// `Temperature` above `temperature_max_c`.
    HighTemperature,
    /// `Temperature` below `temperature_min_c`.
    LowTemperature,
    /// `Voltage` outside its band (line-to-line readings: the band times sqrt(3)).
    VoltageOutOfRange,
    /// `Current.Import` of a phase above `current_max_a`.
    HighCurrent,
    /// An energy register went down within a transaction.
    EnergyRegisterDecrease,
    /// A sample timestamped too far in the future.
    ClockSkew,
    /// An open transaction without MeterValues for 3x the sample interval.
    StaleMeterData,
}

impl Rule {
    /// Every rule.
    pub const ALL: &'static [Rule] = &[
        Rule::HighPower,
        Rule::HighTemperature,
        Rule::LowTemperature,
        Rule::VoltageOutOfRange,
        Rule::HighCurrent,
        Rule::EnergyRegisterDecrease,
        Rule::ClockSkew,
        Rule::StaleMeterData,
    ];

    /// The name used in the API, the event stream and the webhook.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::HighPower => "high_power",
            Rule::HighTemperature => "high_temperature",
            Rule::LowTemperature => "low_temperature",
            Rule::VoltageOutOfRange => "voltage_out_of_range",
            Rule::HighCurrent => "high_current",
            Rule::EnergyRegisterDecrease => "energy_register_decrease",
            Rule::ClockSkew => "clock_skew",
            Rule::StaleMeterData => "stale_meter_data",
        }
    }

    /// Inverse of [`Rule::as_str`].
    pub fn parse(text: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.as_str() == text)
    }
}

/// How urgent an alert is: safety limits are critical, data quality is a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// Safety: someone should act now.
    Critical,
    /// Data quality: billing or monitoring may be wrong.
    Warning,
}

impl Severity {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// Whether the condition still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// The condition holds (or held until the last reading).
    Active,
    /// The reading came back inside the threshold by the hysteresis margin.
    Cleared,
}

impl AlertState {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Active => "active",
            AlertState::Cleared => "cleared",
        }
    }
}

/// One alert, raised once per incident (per charge point, connector, rule and phase).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Unique across restarts.
    pub id: String,
    /// What raised it.
    pub rule: Rule,
    /// How urgent.
    pub severity: Severity,
    /// Whose reading.
    pub charge_point_id: ChargePointId,
    /// Which connector (0: the charge point as a whole).
    pub connector_id: u32,
    /// The measurand checked, when the rule is about one.
    pub measurand: Option<Measurand>,
    /// The phase, when the reading was per phase.
    pub phase: Option<Phase>,
    /// The reading that raised it (normalised unit), or the latest one while active.
    pub value: f64,
    /// The threshold crossed (normalised unit).
    pub threshold: f64,
    /// Unit of `value` and `threshold` (W, V, A, Celsius, Wh, s).
    pub unit: String,
    /// Active or cleared.
    pub state: AlertState,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// When it cleared.
    pub cleared_at: Option<DateTime<Utc>>,
    /// When an operator acknowledged it.
    pub acknowledged_at: Option<DateTime<Utc>>,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Serialize for Alert {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(15))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("rule", self.rule.as_str())?;
        map.serialize_entry("severity", self.severity.as_str())?;
        map.serialize_entry("charge_point_id", self.charge_point_id.as_str())?;
        map.serialize_entry("connector_id", &self.connector_id)?;
        map.serialize_entry("measurand", &self.measurand.map(|m| m.as_str()))?;
        map.serialize_entry("phase", &self.phase.map(|p| p.as_str()))?;
        map.serialize_entry("value", &self.value)?;
        map.serialize_entry("threshold", &self.threshold)?;
        map.serialize_entry("unit", &self.unit)?;
        map.serialize_entry("state", self.state.as_str())?;
        map.serialize_entry("raised_at", &time(self.raised_at))?;
        map.serialize_entry("cleared_at", &self.cleared_at.map(time))?;
        map.serialize_entry("acknowledged_at", &self.acknowledged_at.map(time))?;
        map.end()
    }
}

/// An alert was raised or cleared (its `state` says which); sent to every alert subscriber
/// (event stream, webhook) the moment it happens.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AlertNotice(pub Alert);
