//! Authorize (2.0.1), and the `IdTokenType` / `IdTokenInfoType` that TransactionEvent shares.

use actors::charge_point::Request;
use serde::{Deserialize, Serialize};

use crate::ocpp::check::{max_len, one_of};
use crate::ocpp::error::PayloadError;

/// `IdTokenEnumType`.
const ID_TOKEN_TYPES: &[&str] = &[
    "Central",
    "eMAID",
    "ISO14443",
    "ISO15693",
    "KeyCode",
    "Local",
    "MacAddress",
    "NoAuthorization",
];

/// `IdTokenType`: the token and how it was presented.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdToken {
    /// The token (at most 36 characters; case-insensitive in 2.0.1).
    pub id_token: String,
    /// How it was read (`ISO14443`, `NoAuthorization`, ...).
    #[serde(rename = "type")]
    pub kind: String,
}

impl IdToken {
    /// Checks the token at `path` and returns it as the domain's idTag; `None` for a
    /// `NoAuthorization` token with no text (a station that charges without authorisation).
    pub(crate) fn into_id_tag(self, path: &str) -> Result<Option<String>, PayloadError> {
        max_len(&format!("{path}.idToken"), &self.id_token, 36)?;
        let kind = one_of(&format!("{path}.type"), &self.kind, ID_TOKEN_TYPES)?;
        if kind == "NoAuthorization" && self.id_token.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.id_token))
    }
}

/// AuthorizeRequest (certificate fields of ISO 15118 are accepted and ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeRequest {
    /// The token to authorise.
    pub id_token: IdToken,
}

impl AuthorizeRequest {
    /// Checks the schema constraints and builds the domain request.
    pub(crate) fn into_request(self) -> Result<Request, PayloadError> {
        let id_tag = self.id_token.into_id_tag("idToken")?.unwrap_or_default();
        Ok(Request::Authorize { id_tag })
    }
}

/// `IdTokenInfoType`: the verdict on a token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTokenInfo {
    /// `AuthorizationStatusEnumType`.
    pub status: &'static str,
}

/// AuthorizeResponse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    /// The verdict.
    pub id_token_info: IdTokenInfo,
}
