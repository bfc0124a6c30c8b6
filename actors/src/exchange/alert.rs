//! The alert document: the one shape of an alert shared by the alert supervisor that raises
//! it, the store that keeps it, the live event stream, the webhook and the admin API, so they
//! can never disagree.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl Severity {
    /// Inverse of [`Severity::as_str`].
    pub fn parse(text: &str) -> Option<Severity> {
        [Severity::Critical, Severity::Warning]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

impl AlertState {
    /// Inverse of [`AlertState::as_str`]; the API's `?state=` filter and stored documents.
    pub fn parse(text: &str) -> Option<AlertState> {
        [AlertState::Active, AlertState::Cleared]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The stored JSON document, field by field, before its names are checked.
#[derive(Deserialize)]
struct AlertDoc {
    id: String,
    rule: String,
    severity: String,
    charge_point_id: String,
    connector_id: u32,
    measurand: Option<String>,
    phase: Option<String>,
    value: f64,
    threshold: f64,
    unit: String,
    state: String,
    raised_at: DateTime<Utc>,
    cleared_at: Option<DateTime<Utc>>,
    acknowledged_at: Option<DateTime<Utc>>,
}

/// Reads an alert back from the document [`Alert`] serialises to (Redis keeps that JSON), so
/// active alerts survive a restart.
impl<'de> Deserialize<'de> for Alert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let doc = AlertDoc::deserialize(deserializer)?;
        let unknown = |what: &str, text: &str| D::Error::custom(format!("unknown {what} {text:?}"));
        Ok(Alert {
            rule: Rule::parse(&doc.rule).ok_or_else(|| unknown("rule", &doc.rule))?,
            severity: Severity::parse(&doc.severity)
                .ok_or_else(|| unknown("severity", &doc.severity))?,
            charge_point_id: ChargePointId::parse(&doc.charge_point_id)
                .map_err(D::Error::custom)?,
            measurand: match doc.measurand.as_deref() {
                Some(m) => Some(Measurand::parse(m).ok_or_else(|| unknown("measurand", m))?),
                None => None,
            },
            phase: match doc.phase.as_deref() {
                Some(p) => Some(Phase::parse(p).ok_or_else(|| unknown("phase", p))?),
                None => None,
            },
            state: AlertState::parse(&doc.state).ok_or_else(|| unknown("state", &doc.state))?,
            id: doc.id,
            connector_id: doc.connector_id,
            value: doc.value,
            threshold: doc.threshold,
            unit: doc.unit,
            raised_at: doc.raised_at,
            cleared_at: doc.cleared_at,
            acknowledged_at: doc.acknowledged_at,
        })
    }
}

#[cfg(test)]
mod document_tests {
    use super::*;

    #[test]
    fn an_alert_reads_back_from_its_json() {
        let alert = Alert {
            id: "abc-1".into(),
            rule: Rule::VoltageOutOfRange,
            severity: Severity::Critical,
            charge_point_id: ChargePointId::parse("CP1").unwrap_or_else(|e| panic!("{e}")),
            connector_id: 2,
            measurand: Some(Measurand::Voltage),
            phase: Some(Phase::L2N),
            value: 260.5,
            threshold: 253.0,
            unit: "V".into(),
            state: AlertState::Cleared,
            raised_at: DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap_or_default(),
            cleared_at: DateTime::from_timestamp(1_700_000_100, 0),
            acknowledged_at: None,
        };
        let json = serde_json::to_string(&alert).unwrap_or_default();
        let back: Alert = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, alert);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(value["rule"], "voltage_out_of_range");
        assert_eq!(value["phase"], "L2-N");
        assert_eq!(value["state"], "cleared");
        assert_eq!(value["acknowledged_at"], serde_json::Value::Null);
    }
}
