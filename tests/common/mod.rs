//! Shared test harness: a private `redis-server` per test on a unix socket in a temporary
//! directory (never the machine's Redis on 6379), the real server on ephemeral ports, an OCPP-J
//! WebSocket client and an HTTP client, and validation against the official OCPP 1.6 and 2.0.1 schemas.

#![allow(dead_code)] // each test binary uses a different part of the harness
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed set-up should stop the test loudly

pub mod cluster;
pub mod late;
pub mod reference;
pub mod stored;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ocpp_meter::{Config, RunningServer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// A private redis-server listening only on a unix socket.
pub struct RedisServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a fresh, empty redis-server and waits until it answers.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut redis = RedisServer { dir, child: None };
        redis.spawn();
        redis
    }

    /// Path of the unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// A write-ahead log directory beside this Redis's socket, so a server restarted on the
    /// same Redis (as a real one restarts on the same disk) finds what it left.
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.path().join("wal")
    }

    /// URL for `redis.url`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .try_cli(&["PING"])
                .is_some_and(|out| out.trim() == "PONG")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }

    /// Stops the server (data is lost: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Stops and starts it again on the same socket.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Starts it again after [`RedisServer::stop`].
    pub fn start_again(&mut self) {
        self.spawn();
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .arg("-s")
            .arg(self.socket())
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs one command through redis-cli and returns its raw output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).expect("redis-cli failed")
    }

    /// `INFO commandstats` calls per command name (e.g. "append" -> 3).
    pub fn command_calls(&self) -> std::collections::HashMap<String, u64> {
        let mut calls = std::collections::HashMap::new();
        for line in self.cli(&["INFO", "commandstats"]).lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, stats)) = rest.split_once(':') else {
                continue;
            };
            let count = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            calls.insert(name.to_owned(), count);
        }
        calls
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test configuration: ephemeral loopback ports, the private Redis, short timeouts.
pub fn test_config(redis: &RedisServer) -> Config {
    let mut config = Config::default();
    config.server.ws_addr = "127.0.0.1:0".into();
    config.server.http_addr = "127.0.0.1:0".into();
    config.server.workers = 1;
    config.server.shutdown_timeout_secs = 10;
    config.redis.url = redis.url();
    config.wal.dir = redis.wal_dir().display().to_string();
    config.redis.connect_timeout_ms = 500;
    config.redis.response_timeout_ms = 2000;
    config.redis.retry_initial_ms = 20;
    config.redis.retry_max_ms = 200;
    // The boot metering profile sends the charge point CALLs after BootNotification; tests that
    // script those answers turn it back on (tests/commands.rs).
    config.ocpp.metering.enabled = false;
    config.validate().expect("test config is valid");
    config
}

/// Starts the real server.
pub async fn start_server(config: Config) -> RunningServer {
    ocpp_meter::start(config).await.expect("server starts")
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes; for waiting on
/// asynchronous effects without fixed sleeps.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An OCPP-J client over a real WebSocket.
pub struct ChargePoint {
    ws: WsStream,
    next_id: AtomicU64,
    /// The subprotocol the server answered with.
    pub protocol: Option<String>,
}

/// Opens a WebSocket to `url` offering `protocols`; returns the HTTP error status on refusal.
pub async fn connect_with(url: &str, protocols: Option<&str>) -> Result<ChargePoint, u16> {
    let mut request = url.into_client_request().expect("valid url");
    if let Some(protocols) = protocols {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocols).expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => Ok(ChargePoint {
            ws,
            next_id: AtomicU64::new(1),
            protocol: response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Opens a WebSocket with a prepared request (extra headers such as `Authorization`) and an
/// optional TLS connector (wss://); returns the whole HTTP response on refusal, so tests can
/// check its status and headers.
pub async fn connect_request(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    connector: Option<tokio_tungstenite::Connector>,
) -> Result<ChargePoint, tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>> {
    match tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector).await {
        Ok((ws, response)) => Ok(ChargePoint {
            ws,
            next_id: AtomicU64::new(1),
            protocol: response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(*response),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

impl ChargePoint {
    /// Connects as charge point `id` at `/ocpp/{id}` with subprotocol ocpp1.6.
    pub async fn connect(server: &RunningServer, id: &str) -> ChargePoint {
        let url = format!("ws://{}/ocpp/{}", server.ws_addr, id);
        connect_with(&url, Some("ocpp1.6"))
            .await
            .expect("connection accepted")
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .expect("send");
    }

    /// Sends a raw message.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Writes bytes to the socket under the WebSocket as they are: frames a test builds itself,
    /// such as one frame split over several TCP writes with pauses between them.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let socket = self.ws.get_mut();
        socket.write_all(bytes).await.expect("write");
        socket.flush().await.expect("flush");
    }

    /// The next text frame as JSON (pings are answered by tungstenite itself). Panics after 10 s.
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.recv_message().await {
                Some(Message::Text(text)) => {
                    return serde_json::from_str(text.as_str()).expect("server sends JSON")
                }
                Some(Message::Close(frame)) => panic!("connection closed: {frame:?}"),
                Some(_) => continue,
                None => panic!("connection ended"),
            }
        }
    }

    /// The next WebSocket message of any kind, `None` when the stream ended.
    pub async fn recv_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no message from the server within 10 s"),
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.recv_message().await {
                Some(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }

    /// Sends a CALL and returns the answer frame, or `None` once the connection is gone (a
    /// killed server): for load loops that must end, not panic, when the server dies.
    pub async fn try_call_frame(&mut self, action: &str, payload: Value) -> Option<Value> {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let text = json!([2, id, action, payload]).to_string();
        self.ws.send(Message::text(text)).await.ok()?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Sends a CALL and returns the whole answer frame (CALLRESULT or CALLERROR).
    pub async fn call_frame(&mut self, action: &str, payload: Value) -> Value {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.send_text(&json!([2, id, action, payload]).to_string())
            .await;
        let answer = self.recv().await;
        assert_eq!(
            answer[1],
            json!(id),
            "answer carries the uniqueId: {answer}"
        );
        answer
    }

    /// Sends a CALL, expects a CALLRESULT, validates its payload against the official response
    /// schema, and returns the payload.
    pub async fn call(&mut self, action: &str, payload: Value) -> Value {
        let answer = self.call_frame(action, payload).await;
        assert_eq!(
            answer[0],
            json!(3),
            "expected CALLRESULT to {action}, got {answer}"
        );
        let payload = answer[2].clone();
        assert_valid(&format!("{action}Response"), &payload);
        payload
    }

    /// BootNotification with a plausible identity.
    pub async fn boot(&mut self) -> Value {
        self.call(
            "BootNotification",
            json!({"chargePointVendor": "TestVendor", "chargePointModel": "TM-1", "firmwareVersion": "1.2.3"}),
        )
        .await
    }
}

/// Directory of the vendored official OCPP 1.6 schemas.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ocpp-schemas/v16")
}

/// Panics unless `payload` validates against `<name>.json` of the official OCPP 1.6 schemas.
pub fn assert_valid(name: &str, payload: &Value) {
    let path = schema_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{name} payload {payload} violates the schema: {errors:?}"
    );
}

/// Panics unless `payload` validates against `<name>.json` of the official OCPP 2.0.1 schemas
/// (draft-06, `XRequest` / `XResponse`), vendored in tests/ocpp-schemas/v201.
pub fn assert_valid_201(name: &str, payload: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ocpp-schemas/v201")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft6)
        .build(&schema)
        .expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(payload)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{name} payload {payload} violates the OCPP 2.0.1 schema: {errors:?}"
    );
}

/// GET on the admin API: status and JSON body.
pub async fn get(server: &RunningServer, path: &str) -> (u16, Value) {
    let url = format!("http://{}{}", server.http_addr, path);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client.get(&url).send().await.expect("http request");
    let status = response.status().as_u16();
    let body = response.body().limit(64 << 20).await.expect("body");
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{url} answered {status} with non-JSON: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

/// An unlabelled metric's value in the Prometheus text of `/metrics`; panics when it is
/// missing.
pub async fn metric_value(server: &RunningServer, name: &str) -> f64 {
    let url = format!("http://{}/metrics", server.http_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client.get(&url).send().await.expect("http request");
    let body = response.body().limit(16 << 20).await.expect("body");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

/// A MeterValues payload with one meterValue of the given sampled values.
pub fn meter_values(
    connector: u32,
    transaction: Option<i64>,
    timestamp: &str,
    sampled: Value,
) -> Value {
    let mut payload = json!({
        "connectorId": connector,
        "meterValue": [{"timestamp": timestamp, "sampledValue": sampled}],
    });
    if let Some(transaction) = transaction {
        payload["transactionId"] = json!(transaction);
    }
    payload
}

/// An admin API request from its own task, so a test charge point can answer meanwhile.
pub fn spawn_request(
    addr: SocketAddr,
    method: &'static str,
    path: &str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let url = format!("http://{addr}{path}");
    actix_web::rt::spawn(async move {
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(20))
            .finish();
        let request = match method {
            "PUT" => client.put(&url),
            "POST" => client.post(&url),
            "DELETE" => client.delete(&url),
            _ => client.get(&url),
        };
        let mut response = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        }
        .expect("http request");
        let status = response.status().as_u16();
        let bytes = response.body().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}
