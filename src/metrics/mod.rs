//! Prometheus metrics, served as text at `GET /metrics` on the admin listener (see
//! `api::metrics`). Built on `prometheus-client`, the official Rust client: the exposition format
//! is its job. Most values are read from the server's existing atomics when Prometheus scrapes
//! ([`collector`]); only what nothing else counts is counted here (OCPP messages by action and
//! result, alerts raised by rule, client certificates refused by reason) or in the writer (its
//! histograms).

pub mod alerts;
pub mod certificates;
pub mod collector;
pub mod hostile;
pub mod ocpp;

use prometheus_client::registry::Registry;

pub use alerts::{AlertCounter, AlertsRaised};
pub use certificates::{CertificateRefusal, CertificateRefusals};
pub use collector::{Sources, StatsCollector};
pub use hostile::HostileClosed;
pub use ocpp::OcppMessages;

/// Every metric of one server; shared by the HTTP handler (reads) and the parts that count.
#[derive(Debug)]
pub struct Metrics {
    /// What `/metrics` encodes.
    registry: Registry,
    /// Counted by the WebSocket sessions.
    pub ocpp_messages: OcppMessages,
    /// Counted by [`AlertCounter`] from the alert stream.
    pub alerts_raised: AlertsRaised,
    /// Counted by the charge point listener's TLS verifier and the WebSocket upgrade
    /// (`tls.client_ca`, security profile 3).
    pub certificate_refusals: CertificateRefusals,
    /// Counted where the `[limits]` bounds on slow and hostile peers trip.
    pub hostile_closed: HostileClosed,
}

impl Metrics {
    /// Registers every metric: the counting families, the writer's histograms and the
    /// read-at-scrape collector over `sources`.
    pub fn new(sources: Sources) -> Metrics {
        let mut registry = Registry::default();
        let ocpp_messages = OcppMessages::default();
        registry.register(
            "ocpp_messages",
            "OCPP CALLs received from charge points, by action and by answer (CALLRESULT or the CALLERROR code)",
            ocpp_messages.0.clone(),
        );
        let alerts_raised = AlertsRaised::new();
        registry.register(
            "alerts_raised",
            "Alerts raised, by rule",
            alerts_raised.0.clone(),
        );
        let certificate_refusals = CertificateRefusals::new();
        registry.register(
            "charge_point_certificate_refusals",
            "Charge point client certificates refused (tls.client_ca), by reason: in the TLS handshake (unknown_ca, expired, not_yet_valid, invalid) or at the WebSocket upgrade (cn_mismatch, no_certificate)",
            certificate_refusals.0.clone(),
        );
        let hostile_closed = HostileClosed::new();
        registry.register(
            "ocpp_hostile_closed",
            "Charge point connections refused or closed by a [limits] bound on slow and hostile peers, by reason: connect_rate (429 before the upgrade), handshake_incomplete (no request head within handshake_timeout_secs, or abandoned), write_timeout (peer stopped reading), ping_flood, call_flood",
            hostile_closed.0.clone(),
        );
        registry.register(
            "flush_batch_samples",
            "Samples per batch a charge point buffer flushed to the Redis writer",
            sources.writer.flush_batch_samples.clone(),
        );
        registry.register(
            "redis_pipeline_duration_seconds",
            "Duration of successful Redis write pipelines (raw samples)",
            sources.writer.pipeline_seconds.clone(),
        );
        registry.register_collector(Box::new(StatsCollector(sources)));
        Metrics {
            registry,
            ocpp_messages,
            alerts_raised,
            certificate_refusals,
            hostile_closed,
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
