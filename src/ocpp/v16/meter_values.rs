//! MeterValues: the hot path. Strings are borrowed from the
//! frame text and every sampled value is converted on its own, so one bad value costs nothing
//! but itself.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use super::text::{Text, ValueText};
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;
use crate::ocpp::readings::{self, InputValue, MeterValueInput, SampledInput};

/// MeterValues.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValuesReq<'a> {
    /// Connector the values belong to; 0 is the main meter of the whole charge point.
    pub connector_id: i64,
    /// The transaction the values relate to, if any.
    #[serde(default)]
    pub transaction_id: Option<i64>,
    /// The sampled meter values, each with a timestamp.
    #[serde(borrow)]
    pub meter_value: Vec<MeterValue<'a>>,
}

impl MeterValuesReq<'_> {
    /// Every sample gets the request's connector and transaction.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let connector_id = check::connector_id("connectorId", self.connector_id, 0)?;
        let transaction_id = self
            .transaction_id
            .map(|t| check::int32("transactionId", t))
            .transpose()?;
        let readings = readings::convert(
            "meterValue",
            &self.meter_value,
            connector_id,
            transaction_id,
        )?;
        Ok(Request::MeterValues {
            connector_id,
            transaction_id,
            readings,
        })
    }
}

/// One `MeterValue`: the values sampled at one instant.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue<'a> {
    /// When the values were sampled.
    #[serde(borrow)]
    pub timestamp: Text<'a>,
    /// One or more measured values (an empty list is accepted: it carries nothing).
    #[serde(borrow)]
    pub sampled_value: Vec<SampledValue<'a>>,
}

/// One `SampledValue`. The enumerations stay text here: an unknown one rejects this value only,
/// which a typed enum would turn into an error for the whole message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue<'a> {
    /// The value, as a string (or, leniently, a number).
    #[serde(borrow)]
    pub value: ValueText<'a>,
    /// Why it was sampled; default Sample.Periodic.
    #[serde(borrow, default)]
    pub context: Option<Text<'a>>,
    /// Raw or SignedData; default Raw.
    #[serde(borrow, default)]
    pub format: Option<Text<'a>>,
    /// What was measured; default Energy.Active.Import.Register.
    #[serde(borrow, default)]
    pub measurand: Option<Text<'a>>,
    /// The phase, when the value is per phase.
    #[serde(borrow, default)]
    pub phase: Option<Text<'a>>,
    /// Where it was measured; default Outlet.
    #[serde(borrow, default)]
    pub location: Option<Text<'a>>,
    /// Unit of the value; default depends on the measurand.
    #[serde(borrow, default)]
    pub unit: Option<Text<'a>>,
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
        SampledInput {
            value: match &sv.value {
                ValueText::Text(text) => InputValue::Text(text),
                ValueText::Number(n) => InputValue::Number(*n),
            },
            measurand: sv.measurand.as_ref().map(Text::as_str),
            phase: sv.phase.as_ref().map(Text::as_str),
            location: sv.location.as_ref().map(Text::as_str),
            context: sv.context.as_ref().map(Text::as_str),
            unit: sv.unit.as_ref().map(Text::as_str),
            multiplier: 0,
            format: sv.format.as_ref().map(Text::as_str),
        }
    }
}

/// MeterValues.conf: empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MeterValuesConf {}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn unescaped_strings_are_borrowed_from_the_frame() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:00:00Z",
                "sampledValue":[{"value":"1.5","measurand":"Voltage","unit":"V\u0020"}]}]}"#,
        )
        .unwrap();
        let req: MeterValuesReq<'_> = check::parse(raw).unwrap();
        let mv = &req.meter_value[0];
        assert!(matches!(mv.timestamp.0, Cow::Borrowed(_)));
        let sv = &mv.sampled_value[0];
        assert!(matches!(sv.value, ValueText::Text(Cow::Borrowed("1.5"))));
        assert!(matches!(
            sv.measurand.as_ref().unwrap().0,
            Cow::Borrowed("Voltage")
        ));
        // An escape forces a copy, which must still be the unescaped text.
        assert!(matches!(&sv.unit.as_ref().unwrap().0, Cow::Owned(u) if u == "V "));
    }
}
