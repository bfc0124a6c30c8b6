//! `StatusInfoType`, the optional explanation a charging station may add to a response status
//! (read from the answers to TriggerMessage, GetVariables and SetVariables).

use serde::Deserialize;

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// `StatusInfoType`: "Element providing more information about the status."
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    /// "A predefined code for the reason why the status is returned in this response. The
    /// string is case-insensitive." At most 20 characters.
    pub reason_code: String,
    /// "Additional text to provide detailed information." At most 512 characters.
    #[serde(default)]
    pub additional_info: Option<String>,
}

impl StatusInfo {
    /// Checks the schema limits of a status info at `path`.
    pub(crate) fn check(&self, path: &str) -> Result<(), PayloadError> {
        check::max_len(&format!("{path}.reasonCode"), &self.reason_code, 20)?;
        check::max_len_opt(
            &format!("{path}.additionalInfo"),
            self.additional_info.as_deref(),
            512,
        )
    }
}
