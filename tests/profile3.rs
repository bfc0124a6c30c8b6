//! OCPP 1.6 security profile 3 end to end over real sockets: `[tls] client_ca` set, a CA, a
//! server certificate and client certificates made with rcgen at test time, the real server
//! against a private redis-server, and a real TLS WebSocket client (tokio-tungstenite on rustls)
//! that presents (or does not present) a client certificate.
//!
//! Right certificate: upgraded and BootNotification answered. Certificate for another charge
//! point: 403 before the upgrade. Unknown CA, expired, no certificate: no TLS handshake, so no
//! HTTP at all. The admin listener asks for no client certificate (mixed profiles per
//! listener), and a charge point with a password still has to send it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{connect_request, start_server, test_config, RedisServer};
use ocpp_meter::config::UnknownChargePoints;
use ocpp_meter::{Config, RunningServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::Connector;

const PASSWORD: &str = "s3cret-passw0rd-for-cp";

/// A client certificate chain and its key, as the charge point holds them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A certificate authority made for one test.
fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A client certificate for `cn` signed by `ca`, valid from `valid.0` to `valid.1` (default:
/// rcgen's 1975 to 4096).
fn client_identity(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    valid: Option<(i32, i32)>,
) -> Identity {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if let Some((from, to)) = valid {
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
    }
    let cert = params.signed_by(&key, ca).unwrap();
    Identity {
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// The test's PKI: one CA for the server and the charge points, written as the PEM files the
/// server's `[tls]` section names.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = authority("ocpp-meter test CA");
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server-key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    /// The test configuration with `[tls] cert`, `key` and `client_ca`.
    fn config(&self, redis: &RedisServer) -> Config {
        let mut config = test_config(redis);
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        config.tls.cert = path("server.pem");
        config.tls.key = path("server-key.pem");
        config.tls.client_ca = path("ca.pem");
        config.validate().unwrap();
        config
    }

    /// A valid client certificate for `cn` from this CA.
    fn client(&self, cn: &str) -> Identity {
        client_identity(&self.ca, cn, None)
    }

    /// A client TLS configuration that trusts this CA and presents `identity`, if any.
    fn tls(&self, identity: Option<Identity>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain, identity.key)
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// An https client for the admin listener, presenting no client certificate.
    fn admin_client(&self) -> awc::Client {
        let mut tls = (*self.tls(None)).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)))
            .timeout(Duration::from_secs(30))
            .finish()
    }
}

/// An upgrade request for charge point `id` offering ocpp1.6, with Basic credentials if given.
fn upgrade_request(server: &RunningServer, id: &str, basic: Option<&str>) -> Request {
    let url = format!("wss://127.0.0.1:{}/ocpp/{id}", server.ws_addr.port());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("ocpp1.6"),
    );
    if let Some(password) = basic {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{password}"));
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
    }
    request
}

/// Connects and expects the TLS handshake to fail: no HTTP answer (neither an upgrade nor a
/// refusal status). Returns the TLS alert the server sent when the client got to read it (with
/// TLS 1.3 the client may instead see the connection reset, as the server closes with the
/// client's request unread).
async fn handshake_refused(
    request: Request,
    tls: Arc<rustls::ClientConfig>,
) -> Option<rustls::AlertDescription> {
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(Connector::Rustls(tls)),
        ),
    )
    .await
    .expect("the server answers within 10 s");
    use tokio_tungstenite::tungstenite::error::TlsError;
    use tokio_tungstenite::tungstenite::Error;
    let rustls_error = match attempt {
        Ok(_) => panic!("upgraded: the TLS handshake should have failed"),
        Err(Error::Http(response)) => panic!(
            "refused with HTTP {}: the TLS handshake should have failed before any HTTP",
            response.status()
        ),
        Err(Error::Tls(TlsError::Rustls(error))) => Some(*error),
        Err(Error::Io(error)) => error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
            .or_else(|| {
                assert!(
                    matches!(
                        error.kind(),
                        std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                            | std::io::ErrorKind::BrokenPipe
                            | std::io::ErrorKind::UnexpectedEof
                    ),
                    "unexpected I/O error: {error}"
                );
                None
            }),
        Err(Error::ConnectionClosed | Error::AlreadyClosed) => None,
        Err(other) => panic!("unexpected error: {other}"),
    };
    rustls_error.map(|error| match error {
        rustls::Error::AlertReceived(alert) => alert,
        other => panic!("the client failed with {other}, not an alert from the server"),
    })
}

/// The value of `charge_point_certificate_refusals_total{reason}` from the admin listener's
/// `/metrics`, fetched without a client certificate.
async fn refusals(pki: &Pki, server: &RunningServer, reason: &str) -> u64 {
    let url = format!("https://127.0.0.1:{}/metrics", server.http_addr.port());
    let mut response = pki.admin_client().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body().limit(1 << 22).await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    let series = format!("charge_point_certificate_refusals_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn a_certificate_whose_cn_is_the_id_is_accepted() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let mut config = pki.config(&redis);
    // The certificate alone authenticates a charge point without a password, even where
    // password-less charge points are otherwise refused.
    config.ocpp.unknown_charge_points = UnknownChargePoints::Reject;
    let server = start_server(config).await;

    let tls = pki.tls(Some(pki.client("CP-1")));
    let mut cp = connect_request(
        upgrade_request(&server, "CP-1", None),
        Some(Connector::Rustls(tls)),
    )
    .await
    .unwrap_or_else(|r| panic!("upgrade refused with {}", r.status()));
    assert_eq!(cp.protocol.as_deref(), Some("ocpp1.6"));
    let boot = cp.boot().await;
    assert_eq!(boot["status"], "Accepted", "{boot}");
    assert!(server
        .registry
        .get(&actors::id::ChargePointId::parse("CP-1").unwrap())
        .is_some());
    assert_eq!(refusals(&pki, &server, "cn_mismatch").await, 0);
    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn a_certificate_for_another_charge_point_is_refused_before_the_upgrade() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let server = start_server(pki.config(&redis)).await;

    // A valid certificate of the same CA, but for CP-2, used to connect as CP-1.
    let tls = pki.tls(Some(pki.client("CP-2")));
    let refused = connect_request(
        upgrade_request(&server, "CP-1", None),
        Some(Connector::Rustls(tls.clone())),
    )
    .await
    .err()
    .expect("CP-2's certificate must not connect as CP-1");
    assert_eq!(refused.status().as_u16(), 403);
    let body = String::from_utf8(refused.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("CN"), "{body}");
    assert!(server.registry.is_empty(), "nothing was upgraded");
    assert_eq!(refusals(&pki, &server, "cn_mismatch").await, 1);

    // Ids are compared exactly: cp-2 is another charge point than CP-2.
    let refused = connect_request(
        upgrade_request(&server, "cp-2", None),
        Some(Connector::Rustls(tls.clone())),
    )
    .await
    .err()
    .expect("ids are case-sensitive");
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(refusals(&pki, &server, "cn_mismatch").await, 2);

    // The same certificate is fine for its own id.
    let cp = connect_request(
        upgrade_request(&server, "CP-2", None),
        Some(Connector::Rustls(tls)),
    )
    .await
    .unwrap_or_else(|r| panic!("CP-2 refused with {}", r.status()));
    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn a_certificate_from_an_unknown_ca_is_refused_in_the_handshake() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let server = start_server(pki.config(&redis)).await;

    // Right CN, but signed by a CA the server does not trust.
    let rogue = authority("rogue CA");
    let tls = pki.tls(Some(client_identity(&rogue, "CP-1", None)));
    let alert = handshake_refused(upgrade_request(&server, "CP-1", None), tls).await;
    if let Some(alert) = alert {
        assert_eq!(alert, rustls::AlertDescription::UnknownCA);
    }
    assert_eq!(refusals(&pki, &server, "unknown_ca").await, 1);
    assert!(server.registry.is_empty());
    server.shutdown().await;
}

#[actix_web::test]
async fn an_expired_certificate_is_refused_in_the_handshake() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let server = start_server(pki.config(&redis)).await;

    let tls = pki.tls(Some(client_identity(&pki.ca, "CP-1", Some((2020, 2021)))));
    let alert = handshake_refused(upgrade_request(&server, "CP-1", None), tls).await;
    if let Some(alert) = alert {
        assert_eq!(alert, rustls::AlertDescription::CertificateExpired);
    }
    assert_eq!(refusals(&pki, &server, "expired").await, 1);
    assert_eq!(refusals(&pki, &server, "unknown_ca").await, 0);
    assert!(server.registry.is_empty());
    server.shutdown().await;
}

#[actix_web::test]
async fn a_charge_point_without_a_certificate_is_refused_in_the_handshake() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let server = start_server(pki.config(&redis)).await;

    // Even with the right password: profile 3 needs the certificate.
    let admin = pki.admin_client();
    let url = format!(
        "https://127.0.0.1:{}/api/v1/charge-points/CP-1/password",
        server.http_addr.port()
    );
    let response = admin
        .put(&url)
        .send_json(&json!({ "password": PASSWORD }))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let alert = handshake_refused(
        upgrade_request(&server, "CP-1", Some(PASSWORD)),
        pki.tls(None),
    )
    .await;
    if let Some(alert) = alert {
        assert_eq!(alert, rustls::AlertDescription::CertificateRequired);
    }
    assert!(server.registry.is_empty());
    server.shutdown().await;
}

#[actix_web::test]
async fn the_admin_listener_asks_for_no_certificate_and_passwords_still_count() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let server = start_server(pki.config(&redis)).await;

    // Mixed profiles per listener: https:// admin API without a client certificate.
    let admin = pki.admin_client();
    let base = format!("https://127.0.0.1:{}", server.http_addr.port());
    let response = admin.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let response = admin
        .put(format!("{base}/api/v1/charge-points/CP-1/password"))
        .send_json(&json!({ "password": PASSWORD }))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);

    // CP-1 has a password: its certificate alone is not enough, certificate and password are.
    let tls = pki.tls(Some(pki.client("CP-1")));
    let refused = connect_request(
        upgrade_request(&server, "CP-1", None),
        Some(Connector::Rustls(tls.clone())),
    )
    .await
    .err()
    .expect("a charge point with a password must send it");
    assert_eq!(refused.status().as_u16(), 401);
    let refused = connect_request(
        upgrade_request(&server, "CP-1", Some("wrong-passw0rd-for-cp!")),
        Some(Connector::Rustls(tls.clone())),
    )
    .await
    .err()
    .expect("a wrong password is refused");
    assert_eq!(refused.status().as_u16(), 401);
    let mut cp = connect_request(
        upgrade_request(&server, "CP-1", Some(PASSWORD)),
        Some(Connector::Rustls(tls)),
    )
    .await
    .unwrap_or_else(|r| panic!("certificate and password refused with {}", r.status()));
    assert_eq!(cp.boot().await["status"], "Accepted");

    // The CN is checked before the password: the right password does not help CP-2's
    // certificate in.
    let other = pki.tls(Some(pki.client("CP-2")));
    let refused = connect_request(
        upgrade_request(&server, "CP-1", Some(PASSWORD)),
        Some(Connector::Rustls(other)),
    )
    .await
    .err()
    .expect("wrong CN");
    assert_eq!(refused.status().as_u16(), 403);
    drop(cp);
    server.shutdown().await;
}

/// Security profile 3 does not depend on the OCPP version: a 2.0.1 station with its own
/// certificate is let in and speaks 2.0.1; one presenting another station's is refused with
/// 403 before the upgrade, exactly as a 1.6 one.
#[actix_web::test]
async fn a_2_0_1_station_is_checked_like_a_1_6_one() {
    let redis = RedisServer::start();
    let pki = Pki::new();
    let mut config = pki.config(&redis);
    config.ocpp.unknown_charge_points = UnknownChargePoints::Reject;
    let server = start_server(config).await;
    let offering_201 = |id: &str| {
        let mut request = upgrade_request(&server, id, None);
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("ocpp2.0.1"),
        );
        request
    };

    let tls = pki.tls(Some(pki.client("CP-201")));
    let mut cp = connect_request(offering_201("CP-201"), Some(Connector::Rustls(tls)))
        .await
        .unwrap_or_else(|r| panic!("upgrade refused with {}", r.status()));
    assert_eq!(cp.protocol.as_deref(), Some("ocpp2.0.1"));
    let boot = cp
        .call_frame(
            "BootNotification",
            serde_json::json!({"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}}),
        )
        .await;
    assert_eq!(boot[0], 3, "{boot}");
    assert_eq!(boot[2]["status"], "Accepted", "{boot}");
    drop(cp);

    let tls = pki.tls(Some(pki.client("CP-OTHER")));
    let refused = connect_request(offering_201("CP-201"), Some(Connector::Rustls(tls)))
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(refusals(&pki, &server, "cn_mismatch").await, 1);
    server.shutdown().await;
}
