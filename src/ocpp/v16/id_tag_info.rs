//! `IdTagInfo`, shared by the Authorize, StartTransaction and
//! StopTransaction confirmations.

use actors::charge_point::AuthorizationStatus;
use serde::Serialize;

/// The verdict on an idTag. `expiryDate` and `parentIdTag` are optional and this server keeps
/// neither, so they are never sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTagInfo {
    /// Whether the idTag has been accepted or not by the central system.
    pub status: &'static str,
}

impl From<AuthorizationStatus> for IdTagInfo {
    fn from(status: AuthorizationStatus) -> Self {
        IdTagInfo {
            status: status.as_str(),
        }
    }
}

/// Maximum length of an `IdToken` (CiString20Type).
pub const ID_TOKEN_MAX: usize = 20;
