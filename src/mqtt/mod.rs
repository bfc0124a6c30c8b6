//! MQTT publication (`[mqtt] url`, off by default): every MeterValues' normalised samples and
//! every alert raise and clear go to an MQTT broker, retained with QoS 1, so dashboards, home
//! automation and other services read the fleet's latest values without polling the admin API;
//! Home Assistant finds the power, energy and temperature sensors of each charge point through
//! its MQTT discovery messages.
//!
//! An MQTT broker is one more wire protocol, so it lives here in `src/`, not in the `actors`
//! core: [`publisher::MqttPublisher`] subscribes to the live stream like the event hub and the
//! webhook do. It never slows ingest: the stream hands it batches without waiting, and what the
//! broker cannot take waits in a bounded queue that drops its oldest message when full.
//!
//! # Layout
//!
//! - [`payload`]: topics and JSON documents (meter, alert, discovery); pure functions.
//! - [`publisher`]: the actor that queues, publishes and reconnects.

pub mod payload;
pub mod publisher;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub use publisher::MqttPublisher;

/// Largest payload published; rumqttc refuses a larger packet by dropping the connection, so a
/// document past this is dropped (and counted) instead. A MeterValues frame is at most
/// `limits.max_frame_bytes` (64 KiB by default), and its JSON here a few times that.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Why an `[mqtt] url` cannot be used; config validation shows it with the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `mqtt://` or `tcp://` (TLS brokers are not supported: no TLS feature is built in).
    #[error("{0:?} must start with mqtt:// or tcp:// (mqtts:// is not supported)")]
    Scheme(String),
    /// No host, or a port that is not a number from 1 to 65535.
    #[error("{0:?} must be mqtt://HOST[:PORT]")]
    Address(String),
}

/// The broker's host and port from `mqtt://host[:port]` (port 1883 when left out). A path or
/// query is refused rather than ignored, so a typo does not silently connect elsewhere.
pub fn parse_url(url: &str) -> Result<(String, u16), UrlError> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || UrlError::Address(url.to_owned());
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    // [v6]:port, host:port, host.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(bad)?,
        None => 1883,
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// What the publisher needs from `[mqtt]`. Its `Debug` hides the password.
#[derive(Clone)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id; two clients with one id keep disconnecting each other.
    pub client_id: String,
    /// User name, empty for an anonymous connection.
    pub username: String,
    /// Password (never logged).
    pub password: String,
    /// First level of the meter and alert topics.
    pub topic_prefix: String,
    /// Home Assistant discovery prefix; empty sends no discovery messages.
    pub discovery_prefix: String,
    /// Messages waiting for the broker at most; past this the oldest is dropped.
    pub max_queue: usize,
    /// MQTT keep-alive (ping interval): a dead broker connection is noticed within twice this.
    pub keep_alive: Duration,
    /// Longest wait between reconnection attempts (the wait doubles from 100 ms up to this).
    pub reconnect_max: Duration,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("max_queue", &self.max_queue)
            .field("keep_alive", &self.keep_alive)
            .field("reconnect_max", &self.reconnect_max)
            .finish_non_exhaustive()
    }
}

/// Counters `/metrics` reads (`ocpp_mqtt_*`); atomics so a scrape never waits on the publisher.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Messages the broker acknowledged (PUBACK).
    pub published: AtomicU64,
    /// Messages given up: dropped from the full queue, or larger than [`MAX_PAYLOAD_BYTES`].
    pub dropped: AtomicU64,
    /// Failed connection attempts and lost connections.
    pub errors: AtomicU64,
    /// 1 while connected to the broker, else 0.
    pub connected: AtomicU64,
    /// Messages waiting or in flight (not yet acknowledged).
    pub queued: AtomicU64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn urls_name_host_and_port() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".to_owned(), 1884)
        );
        assert_eq!(
            parse_url("tcp://broker.local").unwrap(),
            ("broker.local".to_owned(), 1883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1885/").unwrap(),
            ("::1".to_owned(), 1885)
        );
        assert!(matches!(
            parse_url("mqtts://b:8883"),
            Err(UrlError::Scheme(_))
        ));
        for bad in [
            "mqtt://",
            "mqtt://:1883",
            "mqtt://b:0",
            "mqtt://b:x",
            "mqtt://b/t",
            "mqtt://u:p@b",
        ] {
            assert!(matches!(parse_url(bad), Err(UrlError::Address(_))), "{bad}");
        }
    }
}
