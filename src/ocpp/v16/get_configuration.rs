//! GetConfiguration, sent by the central system to read configuration keys.

use actors::server_call::{CallReply, ConfigurationEntry};
use serde::{Deserialize, Serialize};

use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// GetConfiguration.req.
#[derive(Debug, Clone, Serialize)]
pub struct GetConfigurationReq {
    /// Keys asked for (at most 50 characters each); absent asks for every key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
}

/// One `KeyValue` of GetConfiguration.conf.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    /// The key (at most 50 characters).
    pub key: String,
    /// Whether the key cannot be changed.
    pub readonly: bool,
    /// Its value (at most 500 characters), if it has one.
    #[serde(default)]
    pub value: Option<String>,
}

/// GetConfiguration.conf.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConfigurationConf {
    /// The known keys asked for.
    #[serde(default)]
    pub configuration_key: Option<Vec<KeyValue>>,
    /// Keys asked for that the charge point does not know.
    #[serde(default)]
    pub unknown_key: Option<Vec<String>>,
}

impl GetConfigurationConf {
    /// Checks the schema constraints and builds the domain reply.
    pub(crate) fn into_reply(self) -> Result<CallReply, PayloadError> {
        let known = self.configuration_key.unwrap_or_default();
        for (i, kv) in known.iter().enumerate() {
            check::max_len(&format!("configurationKey[{i}].key"), &kv.key, 50)?;
            check::max_len_opt(
                &format!("configurationKey[{i}].value"),
                kv.value.as_deref(),
                500,
            )?;
        }
        let unknown = self.unknown_key.unwrap_or_default();
        for (i, key) in unknown.iter().enumerate() {
            check::max_len(&format!("unknownKey[{i}]"), key, 50)?;
        }
        Ok(CallReply::Configuration {
            known: known
                .into_iter()
                .map(|kv| ConfigurationEntry {
                    key: kv.key,
                    readonly: kv.readonly,
                    value: kv.value,
                })
                .collect(),
            unknown,
        })
    }
}
