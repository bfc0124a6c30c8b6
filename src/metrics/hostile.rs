//! `ocpp_hostile_closed_total{reason}`: connections refused or closed because one of the
//! `[limits]` bounds on slow and hostile peers tripped. Counted where each bound is enforced
//! (`ws.rs`, the connect limiter, the connection guard); every reason starts at 0 so a dashboard
//! and an alert rule see the full list before the first attack.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Which bound tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An upgrade refused with 429 by `limits.connects_per_address_per_sec` / `connect_burst`.
    ConnectRate,
    /// A connection that ended before its request head reached the WebSocket handler: timed out
    /// by `limits.handshake_timeout_secs` (408) or abandoned by the peer.
    HandshakeIncomplete,
    /// A session dropped because a write waited longer than `limits.write_timeout_secs`.
    WriteTimeout,
    /// A session closed for sending more than `limits.control_frames_per_minute` pings/pongs.
    PingFlood,
    /// A session closed for having more than `limits.max_inflight_calls` frames unanswered.
    CallFlood,
}

impl Reason {
    /// Every reason, for the zero series.
    pub const ALL: [Reason; 5] = [
        Reason::ConnectRate,
        Reason::HandshakeIncomplete,
        Reason::WriteTimeout,
        Reason::PingFlood,
        Reason::CallFlood,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConnectRate => "connect_rate",
            Reason::HandshakeIncomplete => "handshake_incomplete",
            Reason::WriteTimeout => "write_timeout",
            Reason::PingFlood => "ping_flood",
            Reason::CallFlood => "call_flood",
        }
    }
}

/// Label of one series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The bound that tripped.
    pub reason: &'static str,
}

/// The counter family, shared by every worker (cheap to clone: an `Arc` inside).
#[derive(Debug, Clone, Default)]
pub struct HostileClosed(pub Family<ReasonLabels, Counter>);

impl HostileClosed {
    /// A family with a zero series for every reason.
    pub fn new() -> Self {
        let family = HostileClosed::default();
        for reason in Reason::ALL {
            drop(family.0.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            }));
        }
        family
    }

    /// Counts one connection refused or closed for `reason`.
    pub fn record(&self, reason: Reason) {
        self.0
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }
}
