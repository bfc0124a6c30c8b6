//! `charge_point_certificate_refusals_total{reason}`: charge point client certificates refused
//! (OCPP security profile 3). Counted in two places, because the refusals happen in two: the TLS
//! handshake (the certificate does not verify, `security::tls`) and the WebSocket upgrade (its CN
//! is not the charge point id, `ws::upgrade`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Why a client certificate was refused; the `reason` label. A fixed set, so a peer cannot grow
/// the number of series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// The certificate does not chain to a CA of `tls.client_ca` (or its signature is bad).
    UnknownCa,
    /// The certificate's validity ended.
    Expired,
    /// The certificate's validity has not begun.
    NotYetValid,
    /// Any other verification failure (not for client authentication, malformed, ...).
    Invalid,
    /// The TLS connection carries no client certificate at the upgrade; the handshake makes this
    /// impossible, so a count here means the wiring is broken.
    NoCertificate,
    /// The certificate verified, but its subject CN is not the charge point id of the URL.
    CnMismatch,
}

impl CertificateRefusal {
    /// Every reason, so each series exists from the start.
    pub const ALL: [CertificateRefusal; 6] = [
        CertificateRefusal::UnknownCa,
        CertificateRefusal::Expired,
        CertificateRefusal::NotYetValid,
        CertificateRefusal::Invalid,
        CertificateRefusal::NoCertificate,
        CertificateRefusal::CnMismatch,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateRefusal::UnknownCa => "unknown_ca",
            CertificateRefusal::Expired => "expired",
            CertificateRefusal::NotYetValid => "not_yet_valid",
            CertificateRefusal::Invalid => "invalid",
            CertificateRefusal::NoCertificate => "no_certificate",
            CertificateRefusal::CnMismatch => "cn_mismatch",
        }
    }
}

/// Label of one series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// [`CertificateRefusal::as_str`].
    pub reason: &'static str,
}

/// Client certificates refused, by reason; shared (an `Arc` inside) by the TLS verifier of the
/// charge point listener and every WebSocket worker.
#[derive(Debug, Clone, Default)]
pub struct CertificateRefusals(pub Family<ReasonLabels, Counter>);

impl CertificateRefusals {
    /// A family with a zero series for every reason, so a dashboard sees the full list.
    pub fn new() -> Self {
        let refusals = CertificateRefusals::default();
        for reason in CertificateRefusal::ALL {
            drop(refusals.0.get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            }));
        }
        refusals
    }

    /// Counts one refusal.
    pub fn record(&self, reason: CertificateRefusal) {
        self.0
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// The count for one reason (tests and logs).
    pub fn get(&self, reason: CertificateRefusal) -> u64 {
        self.0
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .get()
    }
}
