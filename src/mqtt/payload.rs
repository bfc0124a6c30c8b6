//! The topics and JSON documents published to the broker, built apart from the connection so
//! they can be tested without one.
//!
//! - `{topic_prefix}/{cp}/meter`: the normalised samples of one MeterValues, in the same JSON
//!   form as the live event stream's `sample` event (`charge_point_id`, `samples`), plus
//!   `values`: the newest value of each measurand this process has seen from the charge point,
//!   so the retained message always holds every latest value and a Home Assistant template is
//!   one lookup.
//! - `{topic_prefix}/{cp}/alert`: the alert document as the alerts API and the event stream
//!   render it (`state` says raised or cleared).
//! - `{discovery_prefix}/sensor/ocpp-meter_{cp}_{power|energy|temperature}/config`: Home
//!   Assistant MQTT discovery of three sensors per charge point reading the meter topic.

use std::collections::BTreeMap;

use actors::exchange::Alert;
use actors::id::ChargePointId;
use actors::sample::{Measurand, Sample, SampleValue};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::api::json;

/// A charge point id as one topic level: MQTT forbids its wildcards `+` and `#` in a topic
/// name, so they become `_` (`/` cannot occur in an id).
pub fn topic_level(cp: &ChargePointId) -> String {
    cp.as_str().replace(['+', '#'], "_")
}

/// Where the samples of `cp` go.
pub fn meter_topic(prefix: &str, cp: &ChargePointId) -> String {
    format!("{prefix}/{}/meter", topic_level(cp))
}

/// Where the alerts of `cp` go.
pub fn alert_topic(prefix: &str, cp: &ChargePointId) -> String {
    format!("{prefix}/{}/alert", topic_level(cp))
}

/// The newest value per measurand of one charge point, kept by the publisher so that each meter
/// message carries all of them: a MeterValues with only the energy register must not blank the
/// power sensor that reads the same retained topic.
///
/// Only whole-charge-point readings count (no phase: a per-phase value is not the total), in
/// the measurand's normal unit (an unknown unit kept verbatim would mislabel the sensor), as
/// numbers; the newest timestamp wins across connectors, and a replayed older reading does not
/// overwrite a newer one.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LatestValues(BTreeMap<Measurand, (DateTime<Utc>, f64)>);

impl LatestValues {
    /// Takes the readings of one batch.
    pub fn update(&mut self, samples: &[Sample]) {
        for sample in samples {
            let SampleValue::Number(value) = sample.value else {
                continue;
            };
            if sample.phase.is_some()
                || !value.is_finite()
                || sample.unit != sample.measurand.default_unit()
            {
                continue;
            }
            let newer = self
                .0
                .get(&sample.measurand)
                .is_none_or(|(seen, _)| *seen <= sample.timestamp);
            if newer {
                self.0.insert(sample.measurand, (sample.timestamp, value));
            }
        }
    }

    /// The `values` object: OCPP measurand name -> number.
    pub fn to_json(&self) -> Value {
        let map: Map<String, Value> = self
            .0
            .iter()
            .map(|(measurand, (_, value))| (measurand.as_str().to_owned(), json!(value)))
            .collect();
        Value::Object(map)
    }
}

/// The meter document of one MeterValues (see the module documentation); `latest` already holds
/// this batch.
pub fn meter(cp: &ChargePointId, samples: &[Sample], latest: &LatestValues) -> Value {
    json!({
        "charge_point_id": cp.as_str(),
        "samples": samples.iter().map(json::sample).collect::<Vec<_>>(),
        "values": latest.to_json(),
    })
}

/// The alert document, exactly as `GET /api/v1/alerts` and the event stream show it.
pub fn alert(alert: &Alert) -> Value {
    serde_json::to_value(alert).unwrap_or(Value::Null)
}

/// One Home Assistant sensor announced per charge point.
struct Sensor {
    /// Last part of the object id and unique id.
    key: &'static str,
    /// Entity name (Home Assistant prefixes the device name).
    name: &'static str,
    /// Which value of `values` it shows.
    measurand: Measurand,
    /// Home Assistant's spelling of the normalised unit.
    unit: &'static str,
    /// Home Assistant device class.
    device_class: &'static str,
    /// `measurement`, or `total_increasing` for a register (long-term statistics, energy
    /// dashboard; a meter reset reads as a new cycle).
    state_class: &'static str,
}

/// The sensors Home Assistant is told about: what its energy dashboard and a charger card use.
const SENSORS: [Sensor; 3] = [
    Sensor {
        key: "power",
        name: "Power",
        measurand: Measurand::PowerActiveImport,
        unit: "W",
        device_class: "power",
        state_class: "measurement",
    },
    Sensor {
        key: "energy",
        name: "Energy",
        measurand: Measurand::EnergyActiveImportRegister,
        unit: "Wh",
        device_class: "energy",
        state_class: "total_increasing",
    },
    Sensor {
        key: "temperature",
        name: "Temperature",
        measurand: Measurand::Temperature,
        unit: "°C",
        device_class: "temperature",
        state_class: "measurement",
    },
];

/// A charge point id as a Home Assistant object id, which allows only `[a-zA-Z0-9_-]`.
fn object_id(cp: &ChargePointId) -> String {
    cp.as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The discovery messages of `cp`: (config topic, config document) for power, energy and
/// temperature, each reading its value from the meter topic's `values`.
pub fn discovery(
    discovery_prefix: &str,
    topic_prefix: &str,
    cp: &ChargePointId,
) -> Vec<(String, Value)> {
    let node = format!("ocpp-meter_{}", object_id(cp));
    let state_topic = meter_topic(topic_prefix, cp);
    SENSORS
        .iter()
        .map(|sensor| {
            let topic = format!("{discovery_prefix}/sensor/{node}_{}/config", sensor.key);
            // `value_json.values` would be the dict's method in Jinja, hence the brackets.
            let template = format!(
                "{{{{ value_json['values']['{}'] }}}}",
                sensor.measurand.as_str()
            );
            let config = json!({
                "name": sensor.name,
                "unique_id": format!("{node}_{}", sensor.key),
                "state_topic": state_topic,
                "value_template": template,
                "unit_of_measurement": sensor.unit,
                "device_class": sensor.device_class,
                "state_class": sensor.state_class,
                "device": {
                    "identifiers": [node],
                    "name": cp.as_str(),
                },
            });
            (topic, config)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use actors::exchange::{AlertState, Rule, Severity};
    use actors::sample::{Location, Phase, ReadingContext, Unit};

    fn id(text: &str) -> ChargePointId {
        ChargePointId::parse(text).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn sample(secs: i64, measurand: Measurand, unit: Option<&str>, value: f64) -> Sample {
        let (unit, value) = Unit::normalise(unit, measurand, value);
        Sample {
            timestamp: at(secs),
            connector_id: 1,
            transaction_id: Some(7),
            measurand,
            phase: None,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit,
            value: SampleValue::Number(value),
        }
    }

    #[test]
    fn the_meter_document_has_the_samples_and_every_latest_value() {
        let cp = id("CP-1");
        let mut latest = LatestValues::default();
        let first = [
            sample(0, Measurand::PowerActiveImport, Some("kW"), 7.4),
            sample(0, Measurand::EnergyActiveImportRegister, Some("kWh"), 12.5),
        ];
        latest.update(&first);
        let doc = meter(&cp, &first, &latest);
        assert_eq!(doc["charge_point_id"], "CP-1");
        let samples = doc["samples"].as_array().unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(
            samples[0],
            json::sample(&first[0]),
            "the event stream's form"
        );
        assert_eq!(samples[0]["unit"], "W");
        assert_eq!(samples[0]["value"], json!(7400.0));
        assert_eq!(samples[0]["transaction_id"], 7);
        assert_eq!(samples[0]["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            doc["values"],
            json!({"Power.Active.Import": 7400.0, "Energy.Active.Import.Register": 12500.0})
        );

        // A later batch with only the temperature keeps the others; per phase readings, odd
        // units, signed data and an older replay leave `values` alone.
        let mut phased = sample(1, Measurand::PowerActiveImport, Some("W"), 2300.0);
        phased.phase = Some(Phase::L1);
        let mut signed = sample(1, Measurand::Voltage, None, 0.0);
        signed.value = SampleValue::Signed("abc".into());
        let second = [
            sample(1, Measurand::Temperature, Some("Fahrenheit"), 212.0),
            phased,
            sample(1, Measurand::Frequency, Some("cycles"), 50.0),
            signed,
            sample(-5, Measurand::EnergyActiveImportRegister, Some("Wh"), 1.0),
        ];
        latest.update(&second);
        let doc = meter(&cp, &second, &latest);
        assert_eq!(doc["samples"].as_array().unwrap().len(), 5);
        assert_eq!(
            doc["values"],
            json!({
                "Power.Active.Import": 7400.0,
                "Energy.Active.Import.Register": 12500.0,
                "Temperature": 100.0,
            })
        );
    }

    #[test]
    fn topics_escape_mqtt_wildcards() {
        assert_eq!(
            meter_topic("ocpp-meter", &id("CP-1")),
            "ocpp-meter/CP-1/meter"
        );
        assert_eq!(alert_topic("site/a", &id("a+b#c")), "site/a/a_b_c/alert");
    }

    #[test]
    fn discovery_announces_power_energy_and_temperature() {
        let messages = discovery("homeassistant", "ocpp-meter", &id("CP.7"));
        let topics: Vec<&str> = messages.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "homeassistant/sensor/ocpp-meter_CP_7_power/config",
                "homeassistant/sensor/ocpp-meter_CP_7_energy/config",
                "homeassistant/sensor/ocpp-meter_CP_7_temperature/config",
            ]
        );
        let (_, power) = &messages[0];
        assert_eq!(power["state_topic"], "ocpp-meter/CP.7/meter");
        assert_eq!(
            power["value_template"],
            "{{ value_json['values']['Power.Active.Import'] }}"
        );
        assert_eq!(power["unit_of_measurement"], "W");
        assert_eq!(power["device_class"], "power");
        assert_eq!(power["state_class"], "measurement");
        assert_eq!(power["unique_id"], "ocpp-meter_CP_7_power");
        assert_eq!(power["device"]["identifiers"], json!(["ocpp-meter_CP_7"]));
        assert_eq!(power["device"]["name"], "CP.7");
        let (_, energy) = &messages[1];
        assert_eq!(energy["unit_of_measurement"], "Wh");
        assert_eq!(energy["device_class"], "energy");
        assert_eq!(energy["state_class"], "total_increasing");
        let (_, temperature) = &messages[2];
        assert_eq!(temperature["unit_of_measurement"], "°C");
        assert_eq!(temperature["device_class"], "temperature");
        assert_eq!(
            temperature["value_template"],
            "{{ value_json['values']['Temperature'] }}"
        );
    }

    #[test]
    fn the_alert_document_is_the_apis() {
        let raised = Alert {
            id: "a1".into(),
            rule: Rule::HighPower,
            severity: Severity::Critical,
            charge_point_id: id("CP-1"),
            connector_id: 1,
            measurand: Some(Measurand::PowerActiveImport),
            phase: None,
            value: 51_000.0,
            threshold: 50_000.0,
            unit: "W".into(),
            state: AlertState::Active,
            raised_at: at(0),
            cleared_at: None,
            acknowledged_at: None,
        };
        let doc = alert(&raised);
        assert_eq!(doc, serde_json::to_value(&raised).unwrap());
        assert_eq!(doc["rule"], "high_power");
        assert_eq!(doc["state"], "active");
        assert_eq!(doc["charge_point_id"], "CP-1");
    }
}
