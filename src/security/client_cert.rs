//! Whose client certificate a charge point connection carries (OCPP 1.6 security profile 3):
//! read from the TLS connection when actix-web accepts it ([`on_connect`], registered with
//! `HttpServer::on_connect` on the charge point listener), kept as connection data, and compared
//! with the charge point id of the URL by the WebSocket upgrade (`ws::upgrade`).
//!
//! The certificate has already been verified against `tls.client_ca` in the TLS handshake
//! ([`super::tls`]); this module only answers "whose is it": the one CN of its subject. The
//! subject comes from rustls' own certificate parser (webpki); the few lines of DER walking
//! below read only the subject's attributes, strictly (definite lengths, known string types),
//! and refuse anything else rather than guess.

use std::any::Any;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::pki_types::CertificateDer;

/// The identity of a connection's verified client certificate, stored as connection data
/// (`HttpRequest::conn_data`) for every request on that connection. Absent when the connection
/// carries no certificate (plain TCP, or TLS without `tls.client_ca`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject CN, which must equal the charge point id; or why it cannot be used.
    pub common_name: Result<String, CommonNameError>,
}

/// Why a certificate's subject yields no usable CN. Each refuses the upgrade: a certificate
/// whose owner cannot be read authenticates no charge point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommonNameError {
    /// webpki cannot parse the certificate (cannot happen after a successful handshake).
    #[error("the certificate cannot be parsed ({0})")]
    Unparsable(String),
    /// The subject is not the DER a Name must be.
    #[error("its subject is not a valid DER Name")]
    BadSubject,
    /// The subject has no CN attribute.
    #[error("its subject has no CN")]
    Missing,
    /// The subject has several CN attributes: which charge point it names is ambiguous.
    #[error("its subject has more than one CN")]
    Ambiguous,
    /// The CN is a string type other than UTF8String, PrintableString or IA5String.
    #[error("its CN is not a UTF8String, PrintableString or IA5String")]
    UnsupportedString,
}

/// `HttpServer::on_connect` callback of the charge point listener: when the connection is TLS and
/// the client presented a certificate, stores its [`PeerCertificate`]. Runs once per connection,
/// after the handshake (which verified the certificate), before any request is read.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(|chain| chain.first()) {
        data.insert(PeerCertificate {
            common_name: common_name(leaf),
        });
    }
}

/// The one CN of the certificate's subject.
pub fn common_name(certificate: &CertificateDer<'_>) -> Result<String, CommonNameError> {
    let parsed = webpki::EndEntityCert::try_from(certificate)
        .map_err(|e| CommonNameError::Unparsable(e.to_string()))?;
    common_name_of_subject(parsed.subject())
}

/// DER tags the subject walk accepts.
const SET: u8 = 0x31;
const SEQUENCE: u8 = 0x30;
const OBJECT_IDENTIFIER: u8 = 0x06;
const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const IA5_STRING: u8 = 0x16;

/// id-at-commonName, 2.5.4.3, as DER contents.
const COMMON_NAME_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The CN of a subject Name given as webpki hands it: the contents of the outer SEQUENCE, i.e.
/// a series of RelativeDistinguishedName SETs of AttributeTypeAndValue SEQUENCEs.
fn common_name_of_subject(mut subject: &[u8]) -> Result<String, CommonNameError> {
    let mut found = None;
    while !subject.is_empty() {
        let (set, rest) = expect(subject, SET)?;
        subject = rest;
        let mut rdn = set;
        while !rdn.is_empty() {
            let (attribute, rest) = expect(rdn, SEQUENCE)?;
            rdn = rest;
            let (oid, value) = expect(attribute, OBJECT_IDENTIFIER)?;
            let (tag, text, rest) = split_tlv(value).ok_or(CommonNameError::BadSubject)?;
            if !rest.is_empty() {
                return Err(CommonNameError::BadSubject);
            }
            if oid != COMMON_NAME_OID {
                continue;
            }
            if found.is_some() {
                return Err(CommonNameError::Ambiguous);
            }
            if !matches!(tag, UTF8_STRING | PRINTABLE_STRING | IA5_STRING) {
                return Err(CommonNameError::UnsupportedString);
            }
            let text = std::str::from_utf8(text).map_err(|_| CommonNameError::UnsupportedString)?;
            found = Some(text.to_owned());
        }
    }
    found.ok_or(CommonNameError::Missing)
}

/// The contents of the TLV at the start of `input`, which must carry `tag`, and what follows it.
fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), CommonNameError> {
    match split_tlv(input) {
        Some((found, contents, rest)) if found == tag => Ok((contents, rest)),
        _ => Err(CommonNameError::BadSubject),
    }
}

/// Splits one DER TLV off `input`: (tag, contents, rest). Single-byte tags and definite lengths
/// of up to two bytes (64 KiB, far beyond any subject), in their shortest form as DER requires.
fn split_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            if len < 0x80 {
                return None;
            }
            (usize::from(len), rest)
        }
        0x82 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            if len < 0x100 {
                return None;
            }
            (len, rest)
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(dn: rcgen::DistinguishedName) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn the_cn_is_read_among_other_attributes() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Charging GmbH");
        dn.push(rcgen::DnType::CommonName, "CP-1");
        assert_eq!(common_name(&certificate(dn)), Ok("CP-1".to_owned()));

        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::PrintableString("CP-2".try_into().unwrap()),
        );
        assert_eq!(common_name(&certificate(dn)), Ok("CP-2".to_owned()));
    }

    #[test]
    fn a_subject_without_one_cn_is_refused() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::OrganizationName, "Charging GmbH");
        assert_eq!(common_name(&certificate(dn)), Err(CommonNameError::Missing));
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CommonName,
            rcgen::DnValue::BmpString("CP-1".try_into().unwrap()),
        );
        assert_eq!(
            common_name(&certificate(dn)),
            Err(CommonNameError::UnsupportedString)
        );
        assert!(matches!(
            common_name(&CertificateDer::from(vec![0x30, 0x00])),
            Err(CommonNameError::Unparsable(_))
        ));
    }

    /// One RDN SET holding one CN of `text` (UTF8String).
    fn cn_rdn(text: &str) -> Vec<u8> {
        let mut attribute = vec![0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, text.len() as u8];
        attribute.extend_from_slice(text.as_bytes());
        let mut sequence = vec![0x30, attribute.len() as u8];
        sequence.extend(attribute);
        let mut set = vec![0x31, sequence.len() as u8];
        set.extend(sequence);
        set
    }

    #[test]
    fn the_subject_walk_is_strict() {
        assert_eq!(common_name_of_subject(&cn_rdn("CP-1")), Ok("CP-1".into()));
        let two = [cn_rdn("CP-1"), cn_rdn("CP-2")].concat();
        assert_eq!(
            common_name_of_subject(&two),
            Err(CommonNameError::Ambiguous)
        );
        assert_eq!(common_name_of_subject(&[]), Err(CommonNameError::Missing));
        // Truncated, trailing garbage, wrong outer tag, non-minimal long-form length.
        let one = cn_rdn("CP-1");
        assert_eq!(
            common_name_of_subject(&one[..one.len() - 1]),
            Err(CommonNameError::BadSubject)
        );
        assert_eq!(
            common_name_of_subject(&[one.clone(), vec![0x31]].concat()),
            Err(CommonNameError::BadSubject)
        );
        let mut sequence = one.clone();
        sequence[0] = 0x30;
        assert_eq!(
            common_name_of_subject(&sequence),
            Err(CommonNameError::BadSubject)
        );
        assert_eq!(split_tlv(&[0x04, 0x81, 0x01, 0xff]), None);
        assert_eq!(
            split_tlv(&[0x04, 0x81, 0x80, 0xff]).map(|(tag, _, _)| tag),
            None,
            "declared length longer than the input"
        );
        let long = [vec![0x04, 0x82, 0x01, 0x00], vec![7; 256]].concat();
        assert_eq!(
            split_tlv(&long).map(|(_, c, r)| (c.len(), r.len())),
            Some((256, 0))
        );
    }
}
