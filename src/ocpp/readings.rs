//! Turns OCPP `MeterValue` lists (from MeterValues and StopTransaction) into domain samples.
//!
//! Structure is strict (a meterValue's timestamp is needed to place all of its values), values
//! are lenient: a sampled value that cannot be read is listed in `Readings::rejected` and its
//! siblings are kept.

use actors::sample::{
    Location, Measurand, Phase, ReadingContext, Readings, Sample, SampleValue, Unit,
};

use super::check;
use super::error::PayloadError;
use super::v16::meter_values::{MeterValue, SampledValue};
use super::v16::text::{Text, ValueText};

/// Converts `values` (found at `root`, e.g. "meterValue") into readings for one connector.
pub(crate) fn convert(
    root: &str,
    values: &[MeterValue<'_>],
    connector_id: u32,
    transaction_id: Option<i32>,
) -> Result<Readings, PayloadError> {
    let mut readings = Readings {
        samples: Vec::with_capacity(values.iter().map(|m| m.sampled_value.len()).sum()),
        ..Readings::default()
    };
    for (i, meter_value) in values.iter().enumerate() {
        let raw_time = meter_value.timestamp.as_str();
        let (timestamp, naive) = check::date_time(&format!("{root}[{i}].timestamp"), raw_time)?;
        if naive {
            readings.naive_timestamps += 1;
        }
        for (j, sampled) in meter_value.sampled_value.iter().enumerate() {
            let head = Sample {
                timestamp,
                connector_id,
                transaction_id,
                measurand: Measurand::EnergyActiveImportRegister,
                phase: None,
                location: Location::Outlet,
                context: ReadingContext::SamplePeriodic,
                unit: Unit::Wh,
                value: SampleValue::Number(0.0),
            };
            match sample(head, sampled) {
                Ok(s) => readings.samples.push(s),
                Err((field, reason)) => readings
                    .rejected
                    .push(format!("{root}[{i}].sampledValue[{j}].{field}: {reason}")),
            }
        }
    }
    Ok(readings)
}

/// Why one sampled value was skipped: the field at fault and the reason.
type Rejection = (&'static str, String);

/// Fills in `head` from one sampled value, applying the spec defaults.
fn sample(mut head: Sample, sv: &SampledValue<'_>) -> Result<Sample, Rejection> {
    if let Some(m) = field(&sv.measurand, "measurand", Measurand::parse)? {
        head.measurand = m;
    }
    head.phase = field(&sv.phase, "phase", Phase::parse)?;
    if let Some(l) = field(&sv.location, "location", Location::parse)? {
        head.location = l;
    }
    if let Some(c) = field(&sv.context, "context", ReadingContext::parse)? {
        head.context = c;
    }
    let signed = field(&sv.format, "format", parse_format)?.unwrap_or(false);
    let unit = sv.unit.as_ref().map(Text::as_str);
    if signed {
        let ValueText::Text(text) = &sv.value else {
            return Err(("value", "SignedData must be a string".to_owned()));
        };
        head.unit = Unit::normalise(unit, head.measurand, 0.0).0;
        head.value = SampleValue::Signed(text.clone().into_owned());
        return Ok(head);
    }
    let number = match &sv.value {
        ValueText::Number(n) => *n,
        ValueText::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| ("value", format!("{text:?} is not a number")))?,
    };
    let (unit, number) = Unit::normalise(unit, head.measurand, number);
    if !number.is_finite() {
        return Err(("value", format!("{number} is not a finite number")));
    }
    head.unit = unit;
    head.value = SampleValue::Number(number);
    Ok(head)
}

/// Reads an optional enumeration; an empty string counts as absent (some firmwares send `""`
/// for "not applicable"), an unknown one rejects the value.
fn field<T>(
    text: &Option<Text<'_>>,
    name: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, Rejection> {
    let Some(text) = text else { return Ok(None) };
    if text.as_str().trim().is_empty() {
        return Ok(None);
    }
    parse(text.as_str())
        .map(Some)
        .ok_or_else(|| (name, format!("unknown {name} {:?}", text.as_str())))
}

/// `ValueFormat`: true for SignedData.
fn parse_format(text: &str) -> Option<bool> {
    match text.trim() {
        "Raw" => Some(false),
        "SignedData" => Some(true),
        _ => None,
    }
}
