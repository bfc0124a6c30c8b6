//! SetVariables (OCPP 2.0.1, use case B05), sent by the CSMS to set device model variables:
//! the 2.0.1 form of ChangeConfiguration, one variable per call.

use actors::server_call::CallReply;
use serde::{Deserialize, Serialize};

use super::component_variable::{check_echo, Component, ComponentVariable, Variable};
use super::get_variables::ATTRIBUTE_TYPES;
use super::status_info::StatusInfo;
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `SetVariableStatusEnumType` values.
pub const SET_VARIABLE_STATUSES: &[&str] = &[
    "Accepted",
    "Rejected",
    "UnknownComponent",
    "UnknownVariable",
    "NotSupportedAttributeType",
    "RebootRequired",
];

/// Longest `attributeValue` of a SetVariableData.
pub const VALUE_MAX_CHARS: usize = 1000;

/// One `SetVariableDataType`: a value to set.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVariableData<'a> {
    /// "Type of attribute: Actual, Target, MinSet, MaxSet. Default is Actual when omitted."
    /// Always sent as `Actual`, what a 1.6 ChangeConfiguration sets.
    pub attribute_type: &'static str,
    /// "Value to be assigned to attribute of variable." At most 1000 characters; lists are
    /// comma-separated, as in 1.6.
    pub attribute_value: &'a str,
    /// "The component for which the variable data is set."
    pub component: &'a Component,
    /// "Specifies the variable for which the attribute value is set."
    pub variable: &'a Variable,
}

/// SetVariablesRequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVariablesRequest<'a> {
    /// "List of Component-Variable pairs and attribute values to set." At least one; this
    /// server sends exactly one (ChangeConfiguration sets one key).
    pub set_variable_data: Vec<SetVariableData<'a>>,
}

impl<'a> SetVariablesRequest<'a> {
    /// Sets the actual value of `target` to `value`.
    pub fn new(target: &'a ComponentVariable, value: &'a str) -> Self {
        SetVariablesRequest {
            set_variable_data: vec![SetVariableData {
                attribute_type: "Actual",
                attribute_value: value,
                component: &target.component,
                variable: &target.variable,
            }],
        }
    }
}

/// One `SetVariableResultType`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVariableResult {
    /// "Type of attribute: Actual, Target, MinSet, MaxSet. Default is Actual when omitted."
    #[serde(default)]
    pub attribute_type: Option<String>,
    /// "Result status of setting the variable."
    pub attribute_status: String,
    /// "Detailed attribute status information."
    #[serde(default)]
    pub attribute_status_info: Option<StatusInfo>,
    /// "The component for which result is returned."
    pub component: Component,
    /// "The variable for which the result is returned."
    pub variable: Variable,
}

/// SetVariablesResponse.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetVariablesResponse {
    /// "List of result statuses per Component-Variable." At least one.
    pub set_variable_result: Vec<SetVariableResult>,
}

/// The 1.6 ChangeConfiguration status of a 2.0.1 `attributeStatus`, so the API and the boot
/// metering run (which remembers refusals per key) read both versions alike: a variable the
/// station lacks, or whose Actual attribute it cannot set, is `NotSupported`.
pub fn configuration_status(attribute_status: &str) -> &'static str {
    match attribute_status {
        "Accepted" => "Accepted",
        "RebootRequired" => "RebootRequired",
        "Rejected" => "Rejected",
        _ => "NotSupported",
    }
}

impl SetVariablesResponse {
    /// Checks the schema constraints and builds the ChangeConfiguration reply from the result
    /// for `target` (the first result when the station echoes it differently).
    pub(crate) fn into_reply(self, target: &ComponentVariable) -> Result<CallReply, PayloadError> {
        let mut statuses = Vec::with_capacity(self.set_variable_result.len());
        for (i, result) in self.set_variable_result.iter().enumerate() {
            let path = format!("setVariableResult[{i}]");
            let status = check::one_of(
                &format!("{path}.attributeStatus"),
                &result.attribute_status,
                SET_VARIABLE_STATUSES,
            )?;
            if let Some(kind) = &result.attribute_type {
                check::one_of(&format!("{path}.attributeType"), kind, ATTRIBUTE_TYPES)?;
            }
            if let Some(info) = &result.attribute_status_info {
                info.check(&format!("{path}.attributeStatusInfo"))?;
            }
            check_echo(&path, &result.component, &result.variable)?;
            statuses.push((status, target.matches(&result.component, &result.variable)));
        }
        let status = statuses
            .iter()
            .find(|(_, mine)| *mine)
            .or(statuses.first())
            .map(|(status, _)| *status)
            .ok_or_else(|| {
                PayloadError::invalid(
                    "setVariableResult",
                    "an empty list, at least 1 item required",
                )
            })?;
        Ok(CallReply::Change {
            status: configuration_status(status).to_owned(),
        })
    }
}
