//! The CALL payloads ocpp-loadgen sends, in OCPP 1.6J and OCPP 2.0.1 form.
//!
//! Both protocols' readings come from one list of sampled values ([`samples`]), so a 1.6
//! MeterValues and the 2.0.1 TransactionEvent `Updated` built for the same instant carry the same
//! number of values with the same figures, and samples per second compare one to one between the
//! two protocols. Kept apart from the connection logic so the unit tests below can check every
//! payload against the official JSON schemas without a server.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// One measured series: its measurand in each protocol, phase and unit.
struct Series {
    /// The OCPP 1.6 measurand.
    v16: &'static str,
    /// The OCPP 2.0.1 measurand: the same as `v16` except where 2.0.1 dropped it (Temperature
    /// left the measurands for the device model; `Current.Offered` takes its place so a 2.0.1
    /// message still carries as many distinct series as the 1.6 one).
    v201: &'static str,
    /// Phase, `None` for an overall value.
    phase: Option<&'static str>,
    /// Unit (`unit` in 1.6, `unitOfMeasure.unit` in 2.0.1).
    unit: &'static str,
}

/// Measurand and phase of the n-th sampled value; cycled when more are asked for.
const SERIES: &[Series] = &[
    series("Energy.Active.Import.Register", None, "Wh"),
    series("Power.Active.Import", None, "W"),
    series("Voltage", Some("L1-N"), "V"),
    series("Voltage", Some("L2-N"), "V"),
    series("Voltage", Some("L3-N"), "V"),
    series("Current.Import", Some("L1"), "A"),
    series("Current.Import", Some("L2"), "A"),
    series("Current.Import", Some("L3"), "A"),
    Series {
        v16: "Temperature",
        v201: "Current.Offered",
        phase: None,
        unit: "Celsius",
    },
    series("SoC", None, "Percent"),
    series("Frequency", None, "Hz"),
    series("Power.Offered", None, "W"),
];

/// A series whose measurand is spelled the same in both protocols.
const fn series(
    measurand: &'static str,
    phase: Option<&'static str>,
    unit: &'static str,
) -> Series {
    Series {
        v16: measurand,
        v201: measurand,
        phase,
        unit,
    }
}

/// Past the series list the same measurands repeat on these locations, so every sampled value
/// of one message is a distinct series.
const LOCATIONS: [&str; 4] = ["Inlet", "Outlet", "Body", "EV"];

/// One sampled value of a message, before it is spelled in either protocol.
struct Sample {
    /// What is measured.
    series: &'static Series,
    /// The reading.
    value: f64,
    /// Where, for the values past the series list (`None`: the protocol default, Outlet).
    location: Option<&'static str>,
}

/// The `n` sampled values of one message: `energy` is the register, `breach` makes the power
/// 60 kW (above the 50 kW default threshold) so the alert path is exercised.
fn samples(n: u32, energy: u64, breach: bool) -> impl Iterator<Item = Sample> {
    (0..n as usize).map(move |i| {
        let series = &SERIES[i % SERIES.len()];
        let value = match series.v16 {
            "Energy.Active.Import.Register" => energy as f64,
            "Power.Active.Import" if breach => 60000.0,
            "Power.Active.Import" => 7400.0,
            "Voltage" => 230.0,
            "Current.Import" => 10.7,
            "Temperature" => 31.5,
            "SoC" => 42.0,
            "Frequency" => 50.0,
            _ => 11000.0,
        };
        let location = (i >= SERIES.len()).then(|| LOCATIONS[(i / SERIES.len() - 1) % 4]);
        Sample {
            series,
            value,
            location,
        }
    })
}

/// An OCPP date-time: RFC 3339, UTC, milliseconds.
fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// 1.6 BootNotification.
pub fn boot_v16() -> Value {
    json!({"chargePointVendor": "ocpp-loadgen", "chargePointModel": "sim"})
}

/// 1.6 StartTransaction on connector 1.
pub fn start_transaction_v16(at: DateTime<Utc>) -> Value {
    json!({"connectorId": 1, "idTag": "LOADGEN", "meterStart": 0, "timestamp": timestamp(at)})
}

/// One 1.6 MeterValues payload with `n` sampled values of a single instant (values as strings,
/// as 1.6 has them).
pub fn meter_values_v16(n: u32, tx: i64, at: DateTime<Utc>, energy: u64, breach: bool) -> Value {
    let sampled: Vec<Value> = samples(n, energy, breach)
        .map(|s| {
            let mut v = Map::new();
            v.insert("value".into(), Value::from(format!("{}", s.value)));
            v.insert("measurand".into(), Value::from(s.series.v16));
            v.insert("unit".into(), Value::from(s.series.unit));
            v.insert("context".into(), Value::from("Sample.Periodic"));
            if let Some(phase) = s.series.phase {
                v.insert("phase".into(), Value::from(phase));
            }
            if let Some(location) = s.location {
                v.insert("location".into(), Value::from(location));
            }
            Value::Object(v)
        })
        .collect();
    json!({"connectorId": 1, "transactionId": tx, "meterValue": [{
        "timestamp": timestamp(at),
        "sampledValue": sampled}]})
}

/// 2.0.1 BootNotificationRequest.
pub fn boot_v201() -> Value {
    json!({"reason": "PowerUp",
        "chargingStation": {"vendorName": "ocpp-loadgen", "model": "sim"}})
}

/// 2.0.1 StatusNotificationRequest: connector 1 of EVSE 1 occupied (the 2.0.1 station reports
/// its connector before the transaction, where the 1.6 generator sends nothing).
pub fn status_notification_v201(at: DateTime<Utc>) -> Value {
    json!({"timestamp": timestamp(at), "connectorStatus": "Occupied", "evseId": 1,
        "connectorId": 1})
}

/// The 2.0.1 sampled values of one message: numbers, `unitOfMeasure` instead of `unit`.
fn sampled_values_v201(n: u32, energy: u64, breach: bool) -> Vec<Value> {
    samples(n, energy, breach)
        .map(|s| {
            let mut v = Map::new();
            v.insert("value".into(), Value::from(s.value));
            v.insert("measurand".into(), Value::from(s.series.v201));
            v.insert("unitOfMeasure".into(), json!({"unit": s.series.unit}));
            v.insert("context".into(), Value::from("Sample.Periodic"));
            if let Some(phase) = s.series.phase {
                v.insert("phase".into(), Value::from(phase));
            }
            if let Some(location) = s.location {
                v.insert("location".into(), Value::from(location));
            }
            Value::Object(v)
        })
        .collect()
}

/// The longest `transactionId` 2.0.1 allows.
const TRANSACTION_ID_MAX: usize = 36;

/// One 2.0.1 transaction of a charging station: its string id and the `seqNo` of its next
/// TransactionEvent (0 for Started, one more for each event after it, as the spec numbers them).
pub struct Transaction201 {
    /// `transactionInfo.transactionId`.
    id: String,
    /// `seqNo` of the next event.
    seq_no: u64,
}

impl Transaction201 {
    /// A transaction of charging station `station` begun at `started_ms` (milliseconds since
    /// the epoch), so ids differ between stations and between runs on the same Redis. Cut to
    /// its last 36 characters (the schema's limit) if a long `--id-prefix` made it longer.
    pub fn new(station: &str, started_ms: i64) -> Self {
        let id = format!("{station}-{started_ms}");
        let cut = id
            .char_indices()
            .rev()
            .nth(TRANSACTION_ID_MAX - 1)
            .map_or(0, |(at, _)| at);
        Self {
            id: id[cut..].to_string(),
            seq_no: 0,
        }
    }

    /// The fields every event of the transaction has, with the next `seqNo`.
    fn event(
        &mut self,
        event_type: &str,
        trigger: &str,
        at: DateTime<Utc>,
        offline: bool,
    ) -> Map<String, Value> {
        let mut e = Map::new();
        e.insert("eventType".into(), Value::from(event_type));
        e.insert("timestamp".into(), Value::from(timestamp(at)));
        e.insert("triggerReason".into(), Value::from(trigger));
        e.insert("seqNo".into(), Value::from(self.seq_no));
        e.insert(
            "transactionInfo".into(),
            json!({"transactionId": self.id, "chargingState": "Charging"}),
        );
        if offline {
            e.insert("offline".into(), Value::from(true));
        }
        self.seq_no += 1;
        e
    }

    /// TransactionEvent `Started` on EVSE 1, connector 1, authorized by the generator's token
    /// (the 2.0.1 StartTransaction; `offline` for a backfilled run, whose events are history).
    pub fn started(&mut self, at: DateTime<Utc>, offline: bool) -> Value {
        let mut e = self.event("Started", "Authorized", at, offline);
        e.insert("evse".into(), json!({"id": 1, "connectorId": 1}));
        e.insert(
            "idToken".into(),
            json!({"idToken": "LOADGEN", "type": "Central"}),
        );
        Value::Object(e)
    }

    /// TransactionEvent `Updated` with one meterValue of `n` sampled values: the same values as
    /// [`meter_values_v16`] for the same arguments.
    pub fn updated(
        &mut self,
        n: u32,
        at: DateTime<Utc>,
        energy: u64,
        breach: bool,
        offline: bool,
    ) -> Value {
        let mut e = self.event("Updated", "MeterValuePeriodic", at, offline);
        let sampled = sampled_values_v201(n, energy, breach);
        e.insert(
            "meterValue".into(),
            json!([{"timestamp": timestamp(at), "sampledValue": sampled}]),
        );
        Value::Object(e)
    }

    /// TransactionEvent `Ended`, stopped locally. No meterValue: only `Updated` events carry
    /// readings, so what the generator counts as acknowledged is what the server stores.
    pub fn ended(&mut self, at: DateTime<Utc>, offline: bool) -> Value {
        let mut e = self.event("Ended", "StopAuthorized", at, offline);
        if let Some(Value::Object(info)) = e.get_mut("transactionInfo") {
            info.insert("chargingState".into(), Value::from("EVConnected"));
            info.insert("stoppedReason".into(), Value::from("Local"));
        }
        Value::Object(e)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocpp-schemas");

    /// Every schema error of `instance` against `<dir>/<file>.json`.
    fn schema_errors(dir: &str, file: &str, instance: &Value) -> Vec<String> {
        let path = format!("{SCHEMAS}/{dir}/{file}.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: Value = serde_json::from_str(&text).unwrap();
        let draft = if dir == "v201" {
            jsonschema::Draft::Draft6
        } else {
            jsonschema::Draft::Draft4
        };
        let validator = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect()
    }

    fn assert_valid_v201(action: &str, payload: &Value) {
        let errors = schema_errors("v201", &format!("{action}Request"), payload);
        assert!(errors.is_empty(), "{action}: {payload} -> {errors:?}");
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(7)
    }

    #[test]
    fn every_v201_request_matches_its_schema() {
        assert_valid_v201("BootNotification", &boot_v201());
        assert_valid_v201("StatusNotification", &status_notification_v201(at()));
        for offline in [false, true] {
            let mut tx = Transaction201::new("LG000001", 1_796_637_600_000);
            assert_valid_v201("TransactionEvent", &tx.started(at(), offline));
            // 1, the default 10, the whole series list, past it (locations), and many.
            for n in [1, 10, 12, 13, 60] {
                for breach in [false, true] {
                    let updated = tx.updated(n, at(), 4711, breach, offline);
                    assert_valid_v201("TransactionEvent", &updated);
                }
            }
            assert_valid_v201("TransactionEvent", &tx.ended(at(), offline));
        }
    }

    #[test]
    fn the_schema_check_sees_a_broken_payload() {
        // The validator in use rejects what the 2.0.1 schema forbids: a string value, a 1.6
        // measurand 2.0.1 dropped, a missing seqNo.
        let mut tx = Transaction201::new("LG000001", 0);
        let mut updated = tx.updated(9, at(), 1, false, false);
        updated["meterValue"][0]["sampledValue"][0]["value"] = Value::from("10");
        updated["meterValue"][0]["sampledValue"][8]["measurand"] = Value::from("Temperature");
        updated.as_object_mut().unwrap().remove("seqNo");
        let errors = schema_errors("v201", "TransactionEventRequest", &updated);
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn v16_payloads_match_their_schemas_and_keep_their_wire_form() {
        // Up to the default 10 values. The 11th is Frequency in "Hz", a unit the 1.6 schema's
        // enumeration lacks (ocpp-meter takes it); kept, so the 1.6 load stays what it was.
        for n in [1, 10] {
            let payload = meter_values_v16(n, 7, at(), 120, true);
            let errors = schema_errors("v16", "MeterValues", &payload);
            assert!(errors.is_empty(), "{payload} -> {errors:?}");
        }
        assert!(schema_errors("v16", "BootNotification", &boot_v16()).is_empty());
        let start = start_transaction_v16(at());
        assert!(schema_errors("v16", "StartTransaction", &start).is_empty());
        // The 1.6 wire form is what the generator sent before 2.0.1 existed.
        let expected = json!({"connectorId": 1, "transactionId": 7, "meterValue": [{
        "timestamp": "2026-12-07T10:00:00.007Z",
        "sampledValue": [
            {"value": "120", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
                "context": "Sample.Periodic"},
            {"value": "60000", "measurand": "Power.Active.Import", "unit": "W",
                "context": "Sample.Periodic"},
            {"value": "230", "measurand": "Voltage", "unit": "V",
                "context": "Sample.Periodic", "phase": "L1-N"},
        ]}]});
        assert_eq!(meter_values_v16(3, 7, at(), 120, true), expected);
        let thirteenth =
            &meter_values_v16(13, 7, at(), 120, false)["meterValue"][0]["sampledValue"][12];
        assert_eq!(
            thirteenth,
            &json!({"value": "120", "measurand": "Energy.Active.Import.Register", "unit": "Wh",
                "context": "Sample.Periodic", "location": "Inlet"})
        );
    }

    #[test]
    fn both_protocols_carry_the_same_sampled_values() {
        let n = 30;
        let v16 = meter_values_v16(n, 7, at(), 990, true);
        let mut tx = Transaction201::new("LG000001", 0);
        let v201 = tx.updated(n, at(), 990, true, false);
        let a = v16["meterValue"][0]["sampledValue"].as_array().unwrap();
        let b = v201["meterValue"][0]["sampledValue"].as_array().unwrap();
        assert_eq!(a.len(), n as usize);
        assert_eq!(b.len(), n as usize);
        assert_eq!(
            v16["meterValue"][0]["timestamp"],
            v201["meterValue"][0]["timestamp"]
        );
        for (x, y) in a.iter().zip(b) {
            let text = x["value"].as_str().unwrap();
            assert_eq!(text.parse::<f64>().unwrap(), y["value"].as_f64().unwrap());
            assert_eq!(x["unit"], y["unitOfMeasure"]["unit"]);
            assert_eq!(x["phase"], y["phase"]);
            assert_eq!(x["location"], y["location"]);
            assert_eq!(x["context"], y["context"]);
            if x["measurand"] == "Temperature" {
                assert_eq!(y["measurand"], "Current.Offered");
            } else {
                assert_eq!(x["measurand"], y["measurand"]);
            }
        }
        // Every value of a message is its own series, in both protocols.
        let keys = |v: &[Value]| {
            let mut k: Vec<String> = v
                .iter()
                .map(|s| format!("{}|{}|{}", s["measurand"], s["phase"], s["location"]))
                .collect();
            k.sort();
            k.dedup();
            k.len()
        };
        assert_eq!(keys(a), n as usize);
        assert_eq!(keys(b), n as usize);
    }

    #[test]
    fn a_transaction_numbers_its_events_and_keeps_its_id() {
        let mut tx = Transaction201::new("LG000042", 1_796_637_600_000);
        let started = tx.started(at(), false);
        let updated = tx.updated(10, at(), 10, false, false);
        let ended = tx.ended(at(), false);
        let events = [&started, &updated, &ended];
        let seq: Vec<u64> = events
            .iter()
            .map(|e| e["seqNo"].as_u64().unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2]);
        for e in events {
            assert_eq!(
                e["transactionInfo"]["transactionId"],
                "LG000042-1796637600000"
            );
            assert!(e.get("offline").is_none());
        }
        assert_eq!(
            [
                &started["eventType"],
                &updated["eventType"],
                &ended["eventType"]
            ],
            ["Started", "Updated", "Ended"]
        );
        assert_eq!(started["evse"], json!({"id": 1, "connectorId": 1}));
        assert_eq!(tx.updated(1, at(), 1, false, true)["offline"], true);
        // A long prefix still gives a schema-valid id: its last 36 characters.
        let long = Transaction201::new(&format!("{}000001", "P".repeat(40)), 1_796_637_600_000);
        assert_eq!(long.id.len(), 36);
        assert!(long.id.ends_with("000001-1796637600000"));
    }
}
