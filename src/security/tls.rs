//! TLS for both listeners (wss:// for charge points, OCPP security profile 2; https:// for the
//! admin API) with rustls on the `ring` provider (no C toolchain beyond cc, unlike aws-lc-rs),
//! and client certificates on the charge point listener only (`tls.client_ca`, profile 3).
//!
//! Profile 3 is enforced in two steps. The TLS handshake of the charge point listener requires
//! a client certificate that verifies against `tls.client_ca` (rustls' `WebPkiClientVerifier`:
//! chain, validity period, client-auth key usage), so no peer without one gets as far as HTTP.
//! Whose certificate it is (its CN must be the charge point id of the URL) can only be checked
//! once the URL is known, at the WebSocket upgrade (`ws::upgrade`, with
//! [`super::client_cert`]).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::metrics::{CertificateRefusal, CertificateRefusals};

/// Why the TLS configuration could not be built; names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no PEM certificate.
    #[error("cannot read a PEM certificate chain from tls.cert {path}: {reason}")]
    Cert {
        /// `tls.cert`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key file could not be read or holds no PEM private key.
    #[error("cannot read a PEM private key from tls.key {path}: {reason}")]
    Key {
        /// `tls.key`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The client CA bundle could not be read, holds no certificate, or one of its certificates
    /// cannot be a trust anchor.
    #[error("cannot use tls.client_ca {path} as the CAs of charge point certificates: {reason}")]
    ClientCa {
        /// `tls.client_ca`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (key does not match, unsupported algorithm...).
    #[error("tls.cert and tls.key cannot be used together: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every TLS configuration here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration from PEM files: TLS 1.2 and 1.3 with rustls' safe defaults,
/// no client certificates, ALPN http/1.1 (WebSocket upgrades need HTTP/1.1). The admin
/// listener's, and the charge point listener's without `tls.client_ca`.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let (certs, key) = identity(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The charge point listener's configuration with `tls.client_ca` (OCPP security profile 3):
/// as [`server_config`], but the handshake fails unless the client presents a certificate that
/// verifies against the CAs in `client_ca`. Refused certificates are logged and counted in
/// `refusals`.
pub fn server_config_with_client_ca(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    refusals: CertificateRefusals,
) -> Result<rustls::ServerConfig, TlsError> {
    let (certs, key) = identity(cert, key)?;
    let verifier = client_verifier(client_ca, refusals)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server's certificate chain and private key from `tls.cert` and `tls.key`.
fn identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = read_certificates(cert).map_err(|reason| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok((certs, key))
}

/// Every CERTIFICATE block of a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block".into());
    }
    Ok(certs)
}

/// A mandatory client certificate verifier trusting exactly the CAs in `client_ca`.
fn client_verifier(
    client_ca: &Path,
    refusals: CertificateRefusals,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let error = |reason: String| TlsError::ClientCa {
        path: client_ca.display().to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certificates(client_ca).map_err(error)? {
        roots
            .add(ca)
            .map_err(|e| error(format!("a certificate cannot be a trust anchor ({e})")))?;
    }
    // Anonymous clients are denied (the builder's default): the handshake itself refuses a
    // charge point without a certificate.
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| error(e.to_string()))?;
    Ok(Arc::new(CountingVerifier { inner, refusals }))
}

/// rustls' WebPKI client verifier, unchanged, plus a log line and a count for every certificate
/// it refuses: the handshake failure is otherwise invisible on the server (rustls and
/// actix-web report it to nobody), and the operator needs to see which charge point's
/// certificate expired.
#[derive(Debug)]
struct CountingVerifier {
    /// The verifier that decides.
    inner: Arc<dyn ClientCertVerifier>,
    /// `charge_point_certificate_refusals_total`.
    refusals: CertificateRefusals,
}

/// The `reason` label of a verification error.
fn refusal_reason(error: &rustls::Error) -> CertificateRefusal {
    match error {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => CertificateRefusal::UnknownCa,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => CertificateRefusal::Expired,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => CertificateRefusal::NotYetValid,
        _ => CertificateRefusal::Invalid,
    }
}

impl ClientCertVerifier for CountingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(error) = &verified {
            let reason = refusal_reason(error);
            self.refusals.record(reason);
            // The CN is unverified here: it is what the certificate claims, logged (quoted, so
            // nothing in it can forge a log line) to tell the operator which charge point it is.
            let claimed = super::client_cert::common_name(end_entity)
                .map_or_else(|_| "no readable CN".to_owned(), |cn| format!("CN {cn:?}"));
            log::warn!(
                "A client certificate ({claimed}) was refused in the TLS handshake of the charge point listener ({}): {error}.",
                reason.as_str()
            );
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_errors_map_to_reasons() {
        let invalid = |e| rustls::Error::InvalidCertificate(e);
        assert_eq!(
            refusal_reason(&invalid(CertificateError::UnknownIssuer)),
            CertificateRefusal::UnknownCa
        );
        assert_eq!(
            refusal_reason(&invalid(CertificateError::Expired)),
            CertificateRefusal::Expired
        );
        assert_eq!(
            refusal_reason(&invalid(CertificateError::NotValidYet)),
            CertificateRefusal::NotYetValid
        );
        assert_eq!(
            refusal_reason(&invalid(CertificateError::InvalidPurpose)),
            CertificateRefusal::Invalid
        );
    }

    #[test]
    fn a_client_ca_file_without_certificates_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = client_verifier(&empty, CertificateRefusals::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls.client_ca"), "{error}");
        let error = client_verifier(&dir.path().join("missing.pem"), CertificateRefusals::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("tls.client_ca"), "{error}");
    }
}
