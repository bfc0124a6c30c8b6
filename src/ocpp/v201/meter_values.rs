//! MeterValues (2.0.1) and the `MeterValueType` / `SampledValueType` that TransactionEvent
//! shares. Strings are borrowed from the frame; every sampled value is converted on its own by
//! the protocol-neutral `readings`, so one bad value costs only itself.

use actors::charge_point::Request;
use serde::Deserialize;

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;
use crate::ocpp::readings::{self, InputValue, MeterValueInput, SampledInput};
use crate::ocpp::text::{Text, ValueText};

/// MeterValuesRequest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValuesRequest<'a> {
    /// The EVSE, i.e. the stored connector (0: the station's main meter).
    pub evse_id: i64,
    /// The sampled meter values, each with a timestamp.
    #[serde(borrow)]
    pub meter_value: Vec<MeterValue<'a>>,
}

impl MeterValuesRequest<'_> {
    /// Every sample gets the EVSE as its connector; 2.0.1 MeterValues carry no transaction
    /// (transaction readings come in TransactionEvent).
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let connector_id = check::connector_id("evseId", self.evse_id, 0)?;
        let readings = convert("meterValue", &self.meter_value, connector_id)?;
        Ok(Request::MeterValues {
            connector_id,
            transaction_id: None,
            readings,
        })
    }
}

/// Checks the unit lengths the schema limits (a structural fault, unlike an unknown measurand)
/// and converts the values into readings for `connector_id`.
pub(crate) fn convert(
    root: &str,
    values: &[MeterValue<'_>],
    connector_id: u32,
) -> Result<actors::sample::Readings, PayloadError> {
    for (i, mv) in values.iter().enumerate() {
        for (j, sv) in mv.sampled_value.iter().enumerate() {
            if let Some(unit) = sv.unit_of_measure.as_ref().and_then(|u| u.unit.as_ref()) {
                check::max_len(
                    &format!("{root}[{i}].sampledValue[{j}].unitOfMeasure.unit"),
                    unit.as_str(),
                    20,
                )?;
            }
            if let Some(multiplier) = sv.unit_of_measure.as_ref().and_then(|u| u.multiplier) {
                if !(-30..=30).contains(&multiplier) {
                    return Err(PayloadError::invalid(
                        format!("{root}[{i}].sampledValue[{j}].unitOfMeasure.multiplier"),
                        format!("{multiplier} is out of range (-30..=30)"),
                    ));
                }
            }
        }
    }
    readings::convert(root, values, connector_id, None)
}

/// `MeterValueType`: the values sampled at one instant.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue<'a> {
    /// When the values were sampled.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// One or more sampled values.
    #[serde(borrow)]
    pub sampled_value: Vec<SampledValue<'a>>,
}

/// `SampledValueType`. The enumerations stay text: an unknown one rejects this value only.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue<'a> {
    /// The value: a JSON number (a numeric string is accepted, as in 1.6).
    #[serde(borrow)]
    pub value: ValueText<'a>,
    /// Why it was sampled; default Sample.Periodic.
    #[serde(borrow, default)]
    pub context: Option<Text<'a>>,
    /// What was measured; default Energy.Active.Import.Register.
    #[serde(borrow, default)]
    pub measurand: Option<Text<'a>>,
    /// The phase, when the value is per phase.
    #[serde(borrow, default)]
    pub phase: Option<Text<'a>>,
    /// Where it was measured; default Outlet.
    #[serde(borrow, default)]
    pub location: Option<Text<'a>>,
    /// Unit and power of ten.
    #[serde(borrow, default)]
    pub unit_of_measure: Option<UnitOfMeasure<'a>>,
    /// The signed form of the reading (accepted; the reading is stored as its number).
    #[serde(default)]
    pub signed_meter_value: Option<serde::de::IgnoredAny>,
}

/// `UnitOfMeasureType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitOfMeasure<'a> {
    /// The unit; default depends on the measurand (`Wh` for energy).
    #[serde(borrow, default)]
    pub unit: Option<Text<'a>>,
    /// The value is to be multiplied by 10^multiplier; default 0.
    #[serde(default)]
    pub multiplier: Option<i32>,
}

// `#[inline]`: called per sampled value from the generic `readings::convert`, which may land in
// another codegen unit (the hot path of every MeterValues).
impl MeterValueInput for MeterValue<'_> {
    #[inline]
    fn timestamp(&self) -> &str {
        self.timestamp.as_str()
    }

    #[inline]
    fn len(&self) -> usize {
        self.sampled_value.len()
    }

    #[inline]
    fn sampled(&self, j: usize) -> SampledInput<'_> {
        let sv = &self.sampled_value[j];
        let unit = sv.unit_of_measure.as_ref();
        SampledInput {
            value: match &sv.value {
                ValueText::Text(text) => InputValue::Text(text),
                ValueText::Number(n) => InputValue::Number(*n),
            },
            measurand: sv.measurand.as_ref().map(Text::as_str),
            phase: sv.phase.as_ref().map(Text::as_str),
            location: sv.location.as_ref().map(Text::as_str),
            context: sv.context.as_ref().map(Text::as_str),
            unit: unit.and_then(|u| u.unit.as_ref()).map(Text::as_str),
            multiplier: unit.and_then(|u| u.multiplier).unwrap_or(0),
            format: None,
        }
    }
}
