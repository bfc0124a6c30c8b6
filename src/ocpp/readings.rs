//! Turns meter values, whichever OCPP version sent them, into domain samples.
//!
//! Each codec (`v16/meter_values.rs`, `v201/meter_value.rs`) describes its sampled values with
//! the protocol-neutral [`MeterValueInput`] / [`SampledInput`] below, borrowing the frame's
//! text; this module imports neither codec. Structure is strict (a meterValue's timestamp is
//! needed to place all of its values), values are lenient: a sampled value that cannot be read
//! is listed in `Readings::rejected` and its siblings are kept.

use actors::sample::{
    Location, Measurand, Phase, ReadingContext, Readings, Sample, SampleValue, Unit,
};

use super::check;
use super::error::PayloadError;

/// A sampled value's `value` as the frame holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum InputValue<'a> {
    /// Text: a decimal number to be parsed (OCPP 1.6), or signed data kept verbatim.
    Text(&'a str),
    /// A JSON number (OCPP 2.0.1, and lenient 1.6).
    Number(f64),
}

/// One sampled value in protocol-neutral form: every field borrowed, `None` where the frame
/// left it out (the OCPP defaults apply), enumerations still text so an unknown one costs this
/// value only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SampledInput<'a> {
    /// The reading.
    pub value: InputValue<'a>,
    /// Measurand; default Energy.Active.Import.Register.
    pub measurand: Option<&'a str>,
    /// Phase, when the value is per phase.
    pub phase: Option<&'a str>,
    /// Location; default Outlet.
    pub location: Option<&'a str>,
    /// Context; default Sample.Periodic.
    pub context: Option<&'a str>,
    /// Unit as sent; default depends on the measurand.
    pub unit: Option<&'a str>,
    /// Power of ten the value is to be multiplied with before the unit is normalised (OCPP
    /// 2.0.1 `unitOfMeasure.multiplier`; 0 for 1.6).
    pub multiplier: i32,
    /// The 1.6 `format` text (`Raw` or `SignedData`); `None` is Raw.
    pub format: Option<&'a str>,
}

/// What a codec's meterValue offers: its timestamp text and its sampled values.
pub(crate) trait MeterValueInput {
    /// The meterValue's `timestamp`, as sent.
    fn timestamp(&self) -> &str;
    /// How many sampled values it holds.
    fn len(&self) -> usize;
    /// The `j`th sampled value, in neutral form.
    fn sampled(&self, j: usize) -> SampledInput<'_>;
}

/// Converts `values` (found at `root`, e.g. "meterValue") into readings for one connector.
pub(crate) fn convert<M: MeterValueInput>(
    root: &str,
    values: &[M],
    connector_id: u32,
    transaction_id: Option<i32>,
) -> Result<Readings, PayloadError> {
    let mut readings = Readings {
        samples: Vec::with_capacity(values.iter().map(M::len).sum()),
        ..Readings::default()
    };
    for (i, meter_value) in values.iter().enumerate() {
        let raw_time = meter_value.timestamp();
        let (timestamp, naive) = check::date_time(&format!("{root}[{i}].timestamp"), raw_time)?;
        if naive {
            readings.naive_timestamps += 1;
        }
        for j in 0..meter_value.len() {
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
            match sample(head, &meter_value.sampled(j)) {
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
fn sample(mut head: Sample, sv: &SampledInput<'_>) -> Result<Sample, Rejection> {
    if let Some(m) = field(sv.measurand, "measurand", Measurand::parse)? {
        head.measurand = m;
    }
    head.phase = field(sv.phase, "phase", Phase::parse)?;
    if let Some(l) = field(sv.location, "location", Location::parse)? {
        head.location = l;
    }
    if let Some(c) = field(sv.context, "context", ReadingContext::parse)? {
        head.context = c;
    }
    let signed = field(sv.format, "format", parse_format)?.unwrap_or(false);
    if signed {
        let InputValue::Text(text) = sv.value else {
            return Err(("value", "SignedData must be a string".to_owned()));
        };
        head.unit = Unit::normalise(sv.unit, head.measurand, 0.0).0;
        head.value = SampleValue::Signed(text.to_owned());
        return Ok(head);
    }
    let number = match sv.value {
        InputValue::Number(n) => n,
        InputValue::Text(text) => text
            .trim()
            .parse::<f64>()
            .map_err(|_| ("value", format!("{text:?} is not a number")))?,
    };
    let number = if sv.multiplier == 0 {
        number
    } else {
        number * 10f64.powi(sv.multiplier)
    };
    let (unit, number) = Unit::normalise(sv.unit, head.measurand, number);
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
    text: Option<&str>,
    name: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, Rejection> {
    let Some(text) = text else { return Ok(None) };
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse(text)
        .map(Some)
        .ok_or_else(|| (name, format!("unknown {name} {text:?}")))
}

/// `ValueFormat`: true for SignedData.
fn parse_format(text: &str) -> Option<bool> {
    match text.trim() {
        "Raw" => Some(false),
        "SignedData" => Some(true),
        _ => None,
    }
}
