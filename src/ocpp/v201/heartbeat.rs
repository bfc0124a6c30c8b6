//! Heartbeat (2.0.1): the station's keep-alive and clock source.

use serde::{Deserialize, Serialize};

/// HeartbeatRequest: no fields (customData is ignored).
#[derive(Debug, Clone, Deserialize)]
pub struct HeartbeatRequest {}

/// HeartbeatResponse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// The CSMS's current time (RFC 3339, UTC), so the station can set its clock.
    pub current_time: String,
}
