//! The JSON shapes of the API, in one place so every route renders a sample or a charge point
//! the same way.

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

use actors::charge_point::ChargePointState;
use actors::sample::{Sample, SampleValue};
use actors::store::reads::ChargePointRecord;

/// RFC 3339 in UTC with milliseconds, the API's one timestamp format.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A sample: normalised unit, numeric `value`, or `raw_value` for signed data.
pub fn sample(s: &Sample) -> Value {
    let mut v = json!({
        "timestamp": time(s.timestamp),
        "connector_id": s.connector_id,
        "transaction_id": s.transaction_id,
        "measurand": s.measurand.as_str(),
        "phase": s.phase.map(|p| p.as_str()),
        "location": s.location.as_str(),
        "context": s.context.as_str(),
        "unit": s.unit.as_str(),
    });
    match &s.value {
        SampleValue::Number(n) => {
            v["value"] = json!(n);
            v["format"] = json!("Raw");
        }
        SampleValue::Signed(text) => {
            v["raw_value"] = json!(text);
            v["format"] = json!("SignedData");
        }
    }
    v
}

/// [`sample`] serialised straight into the response, without a `Value` (a map and a few strings
/// allocated) per sample: a 24 h read of one series renders 8,640 of them (issue 5, target 5).
/// The keys come in the order a `serde_json::Value` map writes them (sorted), so both renderings
/// are byte for byte the same; a unit test holds them together.
pub struct SampleJson<'a>(pub &'a Sample);

impl Serialize for SampleJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.0;
        let mut map = serializer.serialize_map(Some(11))?;
        map.serialize_entry("connector_id", &s.connector_id)?;
        map.serialize_entry("context", s.context.as_str())?;
        let format = match s.value {
            SampleValue::Number(_) => "Raw",
            SampleValue::Signed(_) => "SignedData",
        };
        map.serialize_entry("format", format)?;
        map.serialize_entry("location", s.location.as_str())?;
        map.serialize_entry("measurand", s.measurand.as_str())?;
        map.serialize_entry("phase", &s.phase.map(|p| p.as_str()))?;
        if let SampleValue::Signed(text) = &s.value {
            map.serialize_entry("raw_value", text)?;
        }
        map.serialize_entry("timestamp", &time(s.timestamp))?;
        map.serialize_entry("transaction_id", &s.transaction_id)?;
        map.serialize_entry("unit", s.unit.as_str())?;
        if let SampleValue::Number(n) = &s.value {
            // As `json!(n)`: a non-finite number becomes null.
            map.serialize_entry("value", &Value::from(*n))?;
        }
        map.end()
    }
}

/// [`SampleJson`] appended to `out`: the renderer the read cache keeps hours of samples with
/// (`actors::store::hour_samples`), so a warm read splices them instead of serialising again.
pub fn render_sample(sample: &Sample, out: &mut Vec<u8>) {
    // Writing plain strings and numbers into a `Vec` cannot fail.
    let _ = serde_json::to_writer(out, &SampleJson(sample));
}

/// A list of samples serialised one by one, for [`SampleJson`].
pub struct SamplesJson<'a>(pub &'a [Sample]);

impl Serialize for SamplesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(SampleJson))
    }
}

/// `HttpResponse::Ok().json(body)`, but rendered into a buffer reserved for `size_hint` bytes:
/// the large reads (7,200 buckets, 8,640 samples: ~2 MB) otherwise spend a tenth of their time
/// regrowing the buffer (copies and fresh pages) as it doubles.
pub fn ok_sized<T: Serialize>(body: &T, size_hint: usize) -> HttpResponse {
    let mut bytes = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(bytes),
        Err(e) => {
            log::error!("cannot render a response: {e}");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// A charge point from its stored record, overlaid with live state when it is connected.
pub fn charge_point(
    id: &str,
    record: Option<&ChargePointRecord>,
    live: Option<&ChargePointState>,
    instance: Option<String>,
) -> Value {
    let info = |field: &str| record.and_then(|r| r.info.get(field)).cloned();
    let mut connectors: Vec<Value> = record
        .map(|r| {
            r.connectors
                .values()
                .filter_map(|doc| serde_json::from_str::<Value>(doc).ok())
                .map(|doc| {
                    json!({
                        "connector_id": doc["connector_id"],
                        "status": doc["status"],
                        "error_code": doc["error_code"],
                        "info": doc["info"],
                        "timestamp": doc["timestamp"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut vendor = info("vendor");
    let mut model = info("model");
    let mut firmware = info("firmware_version");
    let mut serial = info("serial_number");
    let mut ocpp_version = info("ocpp_version");
    let mut last_seen = info("last_seen");
    if let Some(live) = live {
        if let Some(boot) = &live.boot {
            vendor = Some(boot.vendor.clone());
            model = Some(boot.model.clone());
            firmware = boot.firmware_version.clone();
            serial = boot.serial_number.clone();
            ocpp_version = boot.ocpp_version.clone();
        }
        last_seen = Some(time(live.last_seen));
        for status in &live.connectors {
            connectors.retain(|c| c["connector_id"] != json!(status.connector_id));
            connectors.push(json!({
                "connector_id": status.connector_id,
                "status": status.status,
                "error_code": status.error_code,
                "info": status.info,
                "timestamp": status.timestamp.map(time),
            }));
        }
    }
    connectors.sort_by_key(|c| c["connector_id"].as_u64().unwrap_or(u64::MAX));
    json!({
        "id": id,
        "connected": live.is_some() || instance.is_some(),
        "instance": instance,
        "vendor": vendor,
        "model": model,
        "firmware_version": firmware,
        "serial_number": serial,
        "ocpp_version": ocpp_version,
        "last_seen": last_seen,
        "connectors": connectors,
    })
}

/// Real-time statistics of a charge point (`GET /api/v1/charge-points/{id}/stats`).
pub fn stats(id: &str, stats: &actors::stats::ChargePointStats) -> Value {
    let stored = &stats.stored;
    let mut latest: Vec<&Sample> = stats.latest.iter().collect();
    latest.sort_by_key(|s| (s.connector_id, s.measurand, s.phase, s.location));
    json!({
        "charge_point_id": id,
        "connected": stats.connected,
        "session_started_at": time(stored.session_started_at),
        "updated_at": time(stored.updated_at),
        "samples_total": stored.samples_total,
        "samples_last_minute": stats.samples_last_minute,
        "messages_per_minute": stats.messages_per_minute,
        "active_power_w": stored.active_power_w,
        "last_meter_values_at": stored.last_meter_values_at.map(time),
        "open_transactions": stored.open_transactions.iter().map(|t| json!({
            "transaction_id": t.transaction_id,
            "connector_id": t.connector_id,
            "meter_start": t.meter_start,
            "energy_wh": t.energy_wh,
        })).collect::<Vec<_>>(),
        "latest": latest.into_iter().map(sample).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::sample::{Location, Measurand, Phase, ReadingContext, Unit};

    fn at(value: SampleValue, phase: Option<Phase>, txn: Option<i32>) -> Sample {
        Sample {
            timestamp: DateTime::from_timestamp_millis(1_764_500_000_123).unwrap_or_default(),
            connector_id: 2,
            transaction_id: txn,
            measurand: Measurand::Voltage,
            phase,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::V,
            value,
        }
    }

    #[test]
    fn serialised_samples_equal_their_value_rendering() {
        let samples = [
            at(SampleValue::Number(231.5), Some(Phase::L1N), Some(7)),
            at(SampleValue::Number(0.1 + 0.2), None, None),
            at(SampleValue::Number(f64::NAN), None, Some(-3)),
            at(SampleValue::Number(1e21), Some(Phase::L2), None),
            at(SampleValue::Signed("sig\"ned".into()), Some(Phase::N), None),
        ];
        let direct = serde_json::to_string(&SamplesJson(&samples)).unwrap_or_default();
        let values: Vec<Value> = samples.iter().map(sample).collect();
        assert_eq!(direct, serde_json::to_string(&values).unwrap_or_default());
    }
}
