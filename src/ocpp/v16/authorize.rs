//! Authorize.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use super::id_tag_info::{IdTagInfo, ID_TOKEN_MAX};
use crate::ocpp::check;
use crate::ocpp::error::PayloadError;

/// Authorize.req.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeReq {
    /// The identifier that needs to be authorized (at most 20 characters).
    pub id_tag: String,
}

impl AuthorizeReq {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        check::max_len("idTag", &self.id_tag, ID_TOKEN_MAX)?;
        Ok(Request::Authorize {
            id_tag: self.id_tag,
        })
    }
}

/// Authorize.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeConf {
    /// Authorization status and optional expiry and parent id.
    pub id_tag_info: IdTagInfo,
}
