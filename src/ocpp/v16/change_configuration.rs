//! ChangeConfiguration, sent by the central system to set one configuration key.

use actors::server_call::CallReply;
use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// The `ConfigurationStatus` values.
pub const CONFIGURATION_STATUSES: &[&str] =
    &["Accepted", "Rejected", "RebootRequired", "NotSupported"];

/// ChangeConfiguration.req.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeConfigurationReq<'a> {
    /// The key to change (at most 50 characters).
    pub key: &'a str,
    /// Its new value (at most 500 characters).
    pub value: &'a str,
}

/// ChangeConfiguration.conf.
#[derive(Debug, Clone, Deserialize)]
pub struct ChangeConfigurationConf {
    /// Whether the change was accepted.
    pub status: String,
}

impl ChangeConfigurationConf {
    /// Checks the schema constraints and builds the domain reply.
    pub(crate) fn into_reply(self) -> Result<CallReply, PayloadError> {
        let status = check::one_of("status", &self.status, CONFIGURATION_STATUSES)?;
        Ok(CallReply::Change {
            status: status.to_owned(),
        })
    }
}
