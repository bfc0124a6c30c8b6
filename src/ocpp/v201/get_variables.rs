//! GetVariables (OCPP 2.0.1, use case B06), sent by the CSMS to read device model variables:
//! the 2.0.1 form of GetConfiguration. The answer is read back into the 1.6-shaped
//! configuration reply under the keys that were asked for.

use actors::server_call::{CallReply, ConfigurationEntry};
use serde::{Deserialize, Serialize};

use super::component_variable::{check_echo, Component, ComponentVariable, Variable};
use super::status_info::StatusInfo;
use super::variables;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `GetVariableStatusEnumType` values.
pub const GET_VARIABLE_STATUSES: &[&str] = &[
    "Accepted",
    "Rejected",
    "UnknownComponent",
    "UnknownVariable",
    "NotSupportedAttributeType",
];

/// The `AttributeEnumType` values.
pub const ATTRIBUTE_TYPES: &[&str] = &["Actual", "Target", "MinSet", "MaxSet"];

/// Longest `attributeValue` of a GetVariableResult.
pub const VALUE_MAX_CHARS: usize = 2500;

/// One `GetVariableDataType`: a variable to read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetVariableData {
    /// "Attribute type for which value is requested. When absent, default Actual is
    /// assumed." Always sent as `Actual`: a configuration key's value is the actual one.
    pub attribute_type: &'static str,
    /// "Component for which the Variable is requested."
    pub component: Component,
    /// "Variable for which the attribute value is requested."
    pub variable: Variable,
}

/// GetVariablesRequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GetVariablesRequest {
    /// "List of requested variables." At least one.
    pub get_variable_data: Vec<GetVariableData>,
}

impl GetVariablesRequest {
    /// Reads the actual value of each of `targets` (which must not be empty).
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a ComponentVariable>) -> Self {
        GetVariablesRequest {
            get_variable_data: targets
                .into_iter()
                .map(|t| GetVariableData {
                    attribute_type: "Actual",
                    component: t.component.clone(),
                    variable: t.variable.clone(),
                })
                .collect(),
        }
    }
}

/// One `GetVariableResultType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetVariableResult {
    /// "Result status of getting the variable."
    pub attribute_status: String,
    /// "Detailed attribute status information."
    #[serde(default)]
    pub attribute_status_info: Option<StatusInfo>,
    /// "Attribute type for which value is requested. When absent, default Actual is assumed."
    #[serde(default)]
    pub attribute_type: Option<String>,
    /// "Value of requested attribute type of component-variable. This field can only be empty
    /// when the given status is NOT accepted." At most 2500 characters.
    #[serde(default)]
    pub attribute_value: Option<String>,
    /// "Component for which the Variable is requested."
    pub component: Component,
    /// "Variable for which the attribute value is requested."
    pub variable: Variable,
}

/// GetVariablesResponse.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetVariablesResponse {
    /// "List of requested variables and their values." At least one.
    pub get_variable_result: Vec<GetVariableResult>,
}

impl GetVariablesResponse {
    /// Checks the schema constraints and builds the configuration reply.
    ///
    /// `asked` pairs each key asked for with its variable; `unmapped` are keys asked for that
    /// reach no variable and were not sent. A result comes back under the key that asked for
    /// it (else under [`variables::key_of`]); an accepted one is a known key with its value
    /// as text (`readonly` false: GetVariables does not report mutability), any other status
    /// makes the key unknown, as does a key the station left out of its answer.
    pub(crate) fn into_reply(
        self,
        asked: &[(String, ComponentVariable)],
        unmapped: Vec<String>,
    ) -> Result<CallReply, PayloadError> {
        if self.get_variable_result.is_empty() {
            return Err(PayloadError::invalid(
                "getVariableResult",
                "an empty list, at least 1 item required",
            ));
        }
        let mut known = Vec::new();
        let mut unknown = unmapped;
        let mut answered = vec![false; asked.len()];
        for (i, result) in self.get_variable_result.into_iter().enumerate() {
            let path = format!("getVariableResult[{i}]");
            let status = check::one_of(
                &format!("{path}.attributeStatus"),
                &result.attribute_status,
                GET_VARIABLE_STATUSES,
            )?;
            if let Some(kind) = &result.attribute_type {
                check::one_of(&format!("{path}.attributeType"), kind, ATTRIBUTE_TYPES)?;
            }
            check::max_len_opt(
                &format!("{path}.attributeValue"),
                result.attribute_value.as_deref(),
                VALUE_MAX_CHARS,
            )?;
            if let Some(info) = &result.attribute_status_info {
                info.check(&format!("{path}.attributeStatusInfo"))?;
            }
            check_echo(&path, &result.component, &result.variable)?;
            let index = asked.iter().enumerate().position(|(j, (_, target))| {
                !answered[j] && target.matches(&result.component, &result.variable)
            });
            let key = match index {
                Some(j) => {
                    answered[j] = true;
                    asked[j].0.clone()
                }
                None => variables::key_of(&ComponentVariable {
                    component: result.component,
                    variable: result.variable,
                }),
            };
            if status == "Accepted" {
                known.push(ConfigurationEntry {
                    key,
                    readonly: false,
                    value: result.attribute_value,
                });
            } else {
                unknown.push(key);
            }
        }
        for (j, (key, _)) in asked.iter().enumerate() {
            if !answered[j] && !known.iter().any(|e| &e.key == key) && !unknown.contains(key) {
                unknown.push(key.clone());
            }
        }
        Ok(CallReply::Configuration { known, unknown })
    }
}
