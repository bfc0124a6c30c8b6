//! Security, end to end over real sockets: HTTP Basic on the WebSocket upgrade (passwords,
//! unknown charge points, the per-address failure limit), TLS on both listeners with a
//! certificate generated at test time, and bearer tokens on the admin API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use common::{connect_request, start_server, test_config, ChargePoint, RedisServer};
use ocpp_meter::config::UnknownChargePoints;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const PASSWORD: &str = "s3cret-passw0rd-for-cp";
const TOKEN: &str = "admin-token-for-tests-0123456789";

/// An upgrade request to `url` offering ocpp1.6, with Basic credentials when given.
fn upgrade_request(url: &str, credentials: Option<(&str, &str)>) -> Request {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("ocpp1.6"),
    );
    if let Some((user, password)) = credentials {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
    }
    request
}

/// Connects as `id` over ws://, with optional credentials; the refusal status otherwise.
async fn connect(
    server: &RunningServer,
    id: &str,
    credentials: Option<(&str, &str)>,
) -> Result<ChargePoint, u16> {
    let url = format!("ws://{}/ocpp/{id}", server.ws_addr);
    connect_request(upgrade_request(&url, credentials), None)
        .await
        .map_err(|response| response.status().as_u16())
}

/// One admin API request: status and body (JSON when it is JSON, `Null` when empty).
async fn call_api(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await.unwrap(),
        None => request.send().await.unwrap(),
    };
    let status = response.status().as_u16();
    let bytes = response.body().limit(1 << 20).await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{url}: non-JSON body {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn set_password(
    server: &RunningServer,
    id: &str,
    password: &str,
    token: Option<&str>,
) -> u16 {
    let url = format!(
        "http://{}/api/v1/charge-points/{id}/password",
        server.http_addr
    );
    call_api(
        &http_client(),
        "PUT",
        &url,
        token,
        Some(json!({ "password": password })),
    )
    .await
    .0
}

#[actix_web::test]
async fn basic_auth_guards_the_upgrade() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    assert!(
        server.admin_token.is_none(),
        "loopback admin API: no generated token"
    );

    // Passwords: 16 to 40 characters, 204, stored only as an argon2 hash.
    assert_eq!(set_password(&server, "CP-A", "too-short", None).await, 400);
    assert_eq!(
        set_password(&server, "CP-A", &"x".repeat(41), None).await,
        400
    );
    assert_eq!(set_password(&server, "CP-A", PASSWORD, None).await, 204);

    // A charge point with a password must present it: 401 before the upgrade otherwise.
    let url = format!("ws://{}/ocpp/CP-A", server.ws_addr);
    let refused = connect_request(upgrade_request(&url, None), None)
        .await
        .err()
        .expect("refused without credentials");
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        refused.headers().get("www-authenticate").unwrap(),
        "Basic realm=\"ocpp-meter\""
    );
    assert_eq!(
        connect(&server, "CP-A", Some(("CP-A", "wrong-password-123456")))
            .await
            .err(),
        Some(401)
    );
    assert_eq!(
        connect(&server, "CP-A", Some(("CP-B", PASSWORD)))
            .await
            .err(),
        Some(401),
        "the Basic user must be the charge point id"
    );
    assert_eq!(server.counters.auth_failures.load(Ordering::Relaxed), 3);

    // The right password gets in, and again (from the verification cache).
    for _ in 0..2 {
        let mut cp = connect(&server, "CP-A", Some(("CP-A", PASSWORD)))
            .await
            .expect("right password accepted");
        assert_eq!(cp.boot().await["status"], "Accepted");
    }

    // A charge point without a password is accepted by default ("accept").
    let mut unknown = connect(&server, "CP-NEW", None).await.expect("accept mode");
    assert_eq!(unknown.boot().await["status"], "Accepted");

    // A new password replaces the old one at once, even though the old one was cached.
    let new_password = "another-password-0987654321";
    assert_eq!(set_password(&server, "CP-A", new_password, None).await, 204);
    assert_eq!(
        connect(&server, "CP-A", Some(("CP-A", PASSWORD)))
            .await
            .err(),
        Some(401)
    );
    connect(&server, "CP-A", Some(("CP-A", new_password)))
        .await
        .expect("new password accepted");

    // Never returned by the API, never in Redis in clear.
    let (status, body) = common::get(&server, "/api/v1/charge-points/CP-A").await;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(
        !text.contains(new_password) && !text.contains("argon2"),
        "{text}"
    );
    let (_, list) = common::get(&server, "/api/v1/charge-points").await;
    assert!(!list.to_string().contains(new_password));
    let stored = redis.cli(&["GET", "ocpp:{CP-A}:password"]);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    for key in redis.cli(&["KEYS", "*"]).lines().filter(|k| !k.is_empty()) {
        let kind = redis.cli(&["TYPE", key]);
        let dump = match kind.trim() {
            "string" => redis.cli(&["GET", key]),
            "hash" => redis.cli(&["HGETALL", key]),
            "set" => redis.cli(&["SMEMBERS", key]),
            "zset" => redis.cli(&["ZRANGE", key, "0", "-1"]),
            _ => String::new(),
        };
        assert!(
            !dump.contains(new_password) && !dump.contains(PASSWORD),
            "{key} holds a password in clear"
        );
    }

    // Removing the password lets it in without credentials again (accept mode).
    let url = format!(
        "http://{}/api/v1/charge-points/CP-A/password",
        server.http_addr
    );
    assert_eq!(
        call_api(&http_client(), "DELETE", &url, None, None).await.0,
        204
    );
    assert_eq!(
        call_api(&http_client(), "DELETE", &url, None, None).await.0,
        404
    );
    connect(&server, "CP-A", None)
        .await
        .expect("no password any more");
    server.shutdown().await;
}

#[actix_web::test]
async fn reject_mode_refuses_charge_points_without_a_password() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.ocpp.unknown_charge_points = UnknownChargePoints::Reject;
    let server = start_server(config).await;
    assert_eq!(connect(&server, "CP-X", None).await.err(), Some(401));
    assert_eq!(
        connect(&server, "CP-X", Some(("CP-X", PASSWORD)))
            .await
            .err(),
        Some(401),
        "credentials do not help a charge point that has no password"
    );
    assert_eq!(set_password(&server, "CP-X", PASSWORD, None).await, 204);
    let mut cp = connect(&server, "CP-X", Some(("CP-X", PASSWORD)))
        .await
        .expect("known charge point with its password");
    assert_eq!(cp.boot().await["status"], "Accepted");
    server.shutdown().await;
}

#[actix_web::test]
async fn repeated_failures_from_one_address_are_rate_limited() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.limits.auth_failures_max = 3;
    config.limits.auth_failure_window_secs = 3600;
    let server = start_server(config).await;
    assert_eq!(set_password(&server, "CP-R", PASSWORD, None).await, 204);
    for _ in 0..3 {
        assert_eq!(
            connect(&server, "CP-R", Some(("CP-R", "guess-guess-guess-1")))
                .await
                .err(),
            Some(401)
        );
    }
    assert_eq!(
        connect(&server, "CP-R", Some(("CP-R", "guess-guess-guess-2")))
            .await
            .err(),
        Some(429)
    );
    assert_eq!(
        connect(&server, "CP-R", Some(("CP-R", PASSWORD)))
            .await
            .err(),
        Some(429),
        "the address is blocked until the window passes, even with the right password"
    );
    assert_eq!(server.counters.auth_failures.load(Ordering::Relaxed), 3);
    assert_eq!(server.counters.auth_rate_limited.load(Ordering::Relaxed), 2);
    server.shutdown().await;
}

/// A self-signed certificate for 127.0.0.1 written as PEM files, and a client config that
/// trusts exactly it.
fn generated_certificate(dir: &std::path::Path) -> (String, String, Arc<rustls::ClientConfig>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        Arc::new(client),
    )
}

#[actix_web::test]
async fn tls_on_both_listeners() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, client_tls) = generated_certificate(dir.path());
    let mut config = test_config(&redis);
    config.tls.cert = cert;
    config.tls.key = key;
    let server = start_server(config).await;

    // https:// admin API, trusting only the generated certificate.
    let mut client_tls_http = (*client_tls).clone();
    client_tls_http.alpn_protocols = vec![b"http/1.1".to_vec()];
    let https = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(client_tls_http)))
        .timeout(Duration::from_secs(30))
        .finish();
    let base = format!("https://127.0.0.1:{}", server.http_addr.port());
    let (status, _) = call_api(&https, "GET", &format!("{base}/health"), None, None).await;
    assert_eq!(status, 200);
    let (status, _) = call_api(
        &https,
        "PUT",
        &format!("{base}/api/v1/charge-points/CP-TLS/password"),
        None,
        Some(json!({ "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, 204);

    // wss:// with Basic auth (OCPP security profile 2) and an OCPP call over it.
    let url = format!("wss://127.0.0.1:{}/ocpp/CP-TLS", server.ws_addr.port());
    let connector = || Some(tokio_tungstenite::Connector::Rustls(client_tls.clone()));
    let refused = connect_request(upgrade_request(&url, None), connector())
        .await
        .err()
        .expect("no credentials over TLS either");
    assert_eq!(refused.status().as_u16(), 401);
    let mut cp = connect_request(
        upgrade_request(&url, Some(("CP-TLS", PASSWORD))),
        connector(),
    )
    .await
    .unwrap_or_else(|r| panic!("wss upgrade refused: {}", r.status()));
    assert_eq!(cp.boot().await["status"], "Accepted");
    let (status, body) = call_api(
        &https,
        "GET",
        &format!("{base}/api/v1/charge-points/CP-TLS"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["vendor"], "TestVendor", "{body}");

    // Plain ws:// to the TLS listener gets nowhere.
    let plain = format!("ws://127.0.0.1:{}/ocpp/CP-TLS", server.ws_addr.port());
    let attempt = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(upgrade_request(&plain, Some(("CP-TLS", PASSWORD)))),
    )
    .await
    .expect("the TLS listener answers a plain request quickly");
    assert!(
        attempt.is_err(),
        "plain WebSocket accepted on the TLS listener"
    );
    drop(cp);
    server.shutdown().await;
}

#[actix_web::test]
async fn admin_api_requires_a_configured_bearer_token() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.admin.tokens = vec![TOKEN.to_owned()];
    let server = start_server(config).await;
    assert!(
        server.admin_token.is_none(),
        "configured tokens: nothing generated"
    );
    let client = http_client();
    let base = format!("http://{}", server.http_addr);
    let list = format!("{base}/api/v1/charge-points");

    let (status, body) = call_api(&client, "GET", &list, None, None).await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(
        call_api(&client, "GET", &list, Some("not-the-token-at-all"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call_api(&client, "GET", &list, Some(TOKEN), None).await.0,
        200
    );
    assert_eq!(set_password(&server, "CP-T", PASSWORD, None).await, 401);
    assert_eq!(
        set_password(&server, "CP-T", PASSWORD, Some(TOKEN)).await,
        204
    );
    for open in ["/health", "/ready"] {
        let (status, _) = call_api(&client, "GET", &format!("{base}{open}"), None, None).await;
        assert_eq!(status, 200, "{open} stays open");
    }
    server.shutdown().await;
}

#[actix_web::test]
async fn a_token_is_generated_when_the_admin_api_is_not_loopback() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.server.http_addr = "0.0.0.0:0".into();
    let server = start_server(config).await;
    let token = server.admin_token.clone().expect("a generated token");
    assert!(token.len() >= 32);
    let client = http_client();
    let base = format!("http://127.0.0.1:{}", server.http_addr.port());
    let list = format!("{base}/api/v1/charge-points");
    let (status, body) = call_api(&client, "GET", &list, None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        call_api(&client, "GET", &list, Some(&token), None).await.0,
        200
    );
    assert_eq!(
        call_api(&client, "GET", &format!("{base}/health"), None, None)
            .await
            .0,
        200
    );
    server.shutdown().await;
}
