//! Heartbeat.

use serde::{Deserialize, Serialize};

/// Heartbeat.req: no fields (any sent are ignored).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HeartbeatReq {}

/// Heartbeat.conf.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatConf {
    /// The central system's current time (RFC 3339, UTC).
    pub current_time: String,
}
