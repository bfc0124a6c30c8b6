//! Several instances, one fleet: two real servers on one private redis-server, charge points on
//! real WebSockets (OCPP-J), the admin API and its Server-Sent Events over real HTTP. Each test
//! starts both instances, waits until each sees the other's lease, and checks one promise of the
//! fleet: calls routed to the instance holding a charge point (and 409/504 as if local), the
//! takeover of a session that reconnects elsewhere (old session closed, its buffer in Redis
//! before the new one starts), events of the whole fleet on either instance's stream, each once,
//! alerts raised once per condition across a move, and roll-ups across a move equal to the
//! single-instance figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::web::Bytes;
use chrono::{DateTime, Timelike, Utc};
use common::*;
use futures_util::{Stream, StreamExt};
use ocpp_meter::{Config, RunningServer};
use serde_json::{json, Value};

/// An instance's configuration: its own id and write-ahead log, a short lease (renewed every
/// second) so the two instances see each other quickly, a short call timeout, and buffers that
/// keep readings until a flush is forced (so a takeover's flush is what puts them in Redis).
fn instance_config(redis: &RedisServer, name: &str, wal: &tempfile::TempDir) -> Config {
    let mut config = test_config(redis);
    config.server.instance_id = name.into();
    config.server.instance_lease_secs = 3;
    config.wal.dir = wal.path().display().to_string();
    config.ocpp.call_timeout_secs = 1;
    config.buffer.max_age_secs = 3600;
    config.validate().expect("instance config is valid");
    config
}

/// Two instances, `inst-a` and `inst-b`, on `redis`, each seeing the other alive.
struct Pair {
    a: RunningServer,
    b: RunningServer,
    _wals: (tempfile::TempDir, tempfile::TempDir),
}

async fn start_pair(redis: &RedisServer) -> Pair {
    let wals = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_server(instance_config(redis, "inst-a", &wals.0)).await;
    let b = start_server(instance_config(redis, "inst-b", &wals.1)).await;
    let peers = |s: &RunningServer| s.fleet.counters().peers.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(10), || async {
            peers(&a) == 1 && peers(&b) == 1
        })
        .await,
        "each instance sees the other's lease"
    );
    Pair { a, b, _wals: wals }
}

/// RFC 3339 of a time.
fn rfc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One sampled value.
fn value(measurand: &str, unit: &str, v: f64) -> Value {
    json!({"value": v.to_string(), "measurand": measurand, "unit": unit})
}

/// The next CALL the server sends the charge point: (uniqueId, action, payload).
async fn next_call(cp: &mut ChargePoint) -> (String, String, Value) {
    let frame = cp.recv().await;
    assert_eq!(frame[0], json!(2), "expected a CALL, got {frame}");
    (
        frame[1].as_str().unwrap().to_owned(),
        frame[2].as_str().unwrap().to_owned(),
        frame[3].clone(),
    )
}

/// `GET /metrics` as text.
async fn metrics_text(server: &RunningServer) -> String {
    let url = format!("http://{}/metrics", server.http_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client.get(&url).send().await.expect("metrics");
    let body = response.body().await.expect("body");
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of one metric line (exact name with labels), 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn calls_are_routed_to_the_instance_holding_the_charge_point() {
    let redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    let mut cp = ChargePoint::connect(a, "CP-R").await;
    cp.boot().await;

    // Presence names the owner, on either instance.
    for server in [a, b] {
        let (status, doc) = get(server, "/api/v1/charge-points/CP-R").await;
        assert_eq!(status, 200);
        assert_eq!(doc["instance"], json!("inst-a"), "{doc}");
        assert_eq!(doc["connected"], json!(true), "{doc}");
    }

    // A TriggerMessage asked of instance B reaches the charge point on A; its answer comes back.
    let request = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/CP-R/trigger",
        Some(json!({"message": "Heartbeat"})),
    );
    let (unique_id, action, payload) = next_call(&mut cp).await;
    assert_eq!(action, "TriggerMessage");
    assert_eq!(payload["requestedMessage"], json!("Heartbeat"));
    cp.send_text(&json!([3, unique_id, {"status": "Rejected"}]).to_string())
        .await;
    assert_eq!(request.await.unwrap(), (200, json!({"status": "Rejected"})));

    // GetConfiguration the same way.
    let request = spawn_request(
        b.http_addr,
        "GET",
        "/api/v1/charge-points/CP-R/configuration?key=HeartbeatInterval",
        None,
    );
    let (unique_id, action, _) = next_call(&mut cp).await;
    assert_eq!(action, "GetConfiguration");
    let known = json!([{"key": "HeartbeatInterval", "readonly": false, "value": "300"}]);
    cp.send_text(&json!([3, unique_id, {"configurationKey": known, "unknownKey": []}]).to_string())
        .await;
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["configurationKey"], known);

    // A CALLERROR from the charge point is the owner's 502, passed through with its code.
    let request = spawn_request(
        b.http_addr,
        "PUT",
        "/api/v1/charge-points/CP-R/configuration",
        Some(json!({"key": "HeartbeatInterval", "value": "60"})),
    );
    let (unique_id, _, _) = next_call(&mut cp).await;
    cp.send_text(&json!([4, unique_id, "NotSupported", "no", {}]).to_string())
        .await;
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error_code"], json!("NotSupported"));

    // A charge point that never answers: the owner's call timeout (1 s) is B's 504.
    let started = std::time::Instant::now();
    let request = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/CP-R/trigger",
        Some(json!({"message": "Heartbeat"})),
    );
    let (_, action, _) = next_call(&mut cp).await;
    assert_eq!(action, "TriggerMessage");
    let (status, body) = request.await.unwrap();
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the owner's own timeout"
    );

    // Nobody holds it: 409, as locally.
    let (status, body) = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/NOBODY/trigger",
        Some(json!({"message": "Heartbeat"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 409, "{body}");

    // An owner record naming an instance whose lease ran out: nobody holds it, 409.
    let ghost = json!({"instance": "ghost", "incarnation": 1, "session": 1, "since": "2026-01-01T00:00:00Z", "connected": true});
    redis.cli(&["SET", "ocpp:{CP-G}:owner", &ghost.to_string()]);
    redis.cli(&["HSET", "ocpp:{CP-G}:info", "vendor", "Ghost"]);
    let trigger = Some(json!({"message": "Heartbeat"}));
    let (status, _) = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/CP-G/trigger",
        trigger.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 409);
    let (status, doc) = get(b, "/api/v1/charge-points/CP-G").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["instance"], Value::Null, "{doc}");
    assert_eq!(doc["connected"], json!(false), "{doc}");

    // Its lease alive but nobody listening on its channel (it is gone): 409, asked once.
    let expiry = (Utc::now().timestamp_millis() + 600_000).to_string();
    redis.cli(&["ZADD", "ocpp:instances", &expiry, "ghost@1"]);
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(b, "/api/v1/charge-points/CP-G").await.1["instance"] == json!("ghost")
        })
        .await,
        "B sees the ghost's lease at its next renewal"
    );
    let (status, _) = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/CP-G/trigger",
        trigger.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, 409);

    // An owner that listens but never answers: B gives up after the call timeout plus its
    // margin (1 + 2 s) with 504.
    let mut listener = Command::new("redis-cli")
        .arg("-s")
        .arg(redis.socket())
        .args(["SUBSCRIBE", "ocpp:instance:ghost:control"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli");
    assert!(
        eventually(Duration::from_secs(5), || async {
            redis
                .cli(&["PUBSUB", "NUMSUB", "ocpp:instance:ghost:control"])
                .lines()
                .nth(1)
                == Some("1")
        })
        .await
    );
    let started = std::time::Instant::now();
    let (status, _) = spawn_request(
        b.http_addr,
        "POST",
        "/api/v1/charge-points/CP-G/trigger",
        trigger,
    )
    .await
    .unwrap();
    let waited = started.elapsed();
    assert_eq!(status, 504);
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(6),
        "{waited:?}"
    );

    // The charge point reconnects to B while that owner still never answers: B asks it to
    // hand over, waits the bounded takeover wait, and goes on.
    let started = std::time::Instant::now();
    let mut taken = ChargePoint::connect(b, "CP-G").await;
    let waited = started.elapsed();
    assert!(
        waited >= ocpp_meter::TAKEOVER_WAIT && waited < ocpp_meter::TAKEOVER_WAIT * 2,
        "{waited:?}"
    );
    taken.boot().await;
    let (_, doc) = get(a, "/api/v1/charge-points/CP-G").await;
    assert_eq!(doc["instance"], json!("inst-b"), "{doc}");
    let _ = listener.kill();
    let _ = listener.wait();

    let text = metrics_text(b).await;
    assert_eq!(
        metric(&text, r#"ocpp_meter_instance_info{instance="inst-b"}"#),
        1.0
    );
    assert_eq!(
        metric(&text, r#"fleet_remote_calls_total{result="sent"}"#),
        6.0
    );
    assert_eq!(
        metric(&text, r#"fleet_remote_calls_total{result="timeout"}"#),
        1.0
    );
    let text = metrics_text(a).await;
    assert_eq!(
        metric(&text, r#"fleet_remote_calls_total{result="served"}"#),
        4.0
    );

    // A clean shutdown removes the instance's lease.
    drop(cp);
    let Pair { a, b, _wals } = pair;
    assert!(a.shutdown().await.drained);
    assert_eq!(redis.cli(&["EXISTS", "ocpp:instance:inst-a"]).trim(), "0");
    let live = redis.cli(&["ZRANGE", "ocpp:instances", "0", "-1"]);
    assert!(!live.contains("inst-a@"), "{live}");
    assert!(live.contains("inst-b@"), "{live}");
    b.shutdown().await;
}

#[actix_web::test]
async fn after_a_redis_restart_owner_records_and_routed_calls_come_back() {
    let mut redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    let mut cp = ChargePoint::connect(a, "CP-RR").await;
    cp.boot().await;
    // Redis restarts empty (no persistence in the tests): the records and leases are gone.
    redis.restart();
    let subscriptions =
        |s: &RunningServer| s.fleet.counters().subscriptions.load(Ordering::Relaxed);
    assert!(
        eventually(Duration::from_secs(15), || async {
            subscriptions(a) >= 2 && subscriptions(b) >= 2
        })
        .await,
        "both instances subscribe again"
    );
    // A's lease renewal finds its lease gone and writes the owner record again.
    assert!(
        eventually(Duration::from_secs(15), || async {
            redis
                .cli(&["GET", "ocpp:{CP-RR}:owner"])
                .contains(r#""instance":"inst-a""#)
        })
        .await,
        "the owner record is back"
    );
    // B routes a call to A once its renewal has seen A's lease again (409 until then).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut request = spawn_request(
            b.http_addr,
            "POST",
            "/api/v1/charge-points/CP-RR/trigger",
            Some(json!({"message": "StatusNotification", "connector_id": 1})),
        );
        tokio::select! {
            (unique_id, action, _) = next_call(&mut cp) => {
                assert_eq!(action, "TriggerMessage");
                cp.send_text(&json!([3, unique_id, {"status": "Accepted"}]).to_string())
                    .await;
                assert_eq!(request.await.unwrap(), (200, json!({"status": "Accepted"})));
                break;
            }
            answered = &mut request => {
                let (status, body) = answered.unwrap();
                assert_eq!(status, 409, "{body}");
                assert!(std::time::Instant::now() < deadline, "B never routed the call");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[actix_web::test]
async fn a_reconnect_elsewhere_takes_over_after_the_old_instance_flushed() {
    let redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    let mut old = ChargePoint::connect(a, "CP-T").await;
    old.boot().await;
    let base = Utc::now() - chrono::Duration::minutes(2);
    for i in 0..5 {
        let sampled = json!([
            value("Energy.Active.Import.Register", "Wh", 1000.0 + f64::from(i)),
            value("Power.Active.Import", "W", 7000.0 + f64::from(i)),
        ]);
        let at = rfc(base + chrono::Duration::seconds(i64::from(i) * 10));
        old.call("MeterValues", meter_values(1, None, &at, sampled))
            .await;
    }
    // Answered (in the write-ahead log) and still in A's buffer: nothing in Redis yet.
    assert_eq!(a.writer_stats.samples_stored.load(Ordering::Relaxed), 0);

    // The charge point reconnects to B: the upgrade completes once A closed and flushed.
    let mut new = ChargePoint::connect(b, "CP-T").await;
    assert_eq!(
        a.writer_stats.samples_stored.load(Ordering::Relaxed),
        10,
        "acked == stored before the new session starts"
    );
    assert_eq!(
        old.close_code().await,
        Some(1008),
        "the old session is replaced"
    );
    assert_eq!(b.fleet.counters().takeovers.load(Ordering::Relaxed), 1);
    assert_eq!(a.fleet.counters().handovers.load(Ordering::Relaxed), 1);
    assert!(eventually(Duration::from_secs(5), || async { a.registry.is_empty() }).await);

    // Every instance now names B, and reads the ten readings from Redis.
    new.boot().await;
    for server in [a, b] {
        let (_, doc) = get(server, "/api/v1/charge-points/CP-T").await;
        assert_eq!(doc["instance"], json!("inst-b"), "{doc}");
        assert_eq!(doc["connected"], json!(true), "{doc}");
    }
    let from = rfc(base - chrono::Duration::minutes(1));
    let (status, body) = get(
        b,
        &format!("/api/v1/charge-points/CP-T/meter-values?from={from}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["samples"].as_array().unwrap().len(), 10, "{body}");
    assert_eq!(body["instance"], json!("inst-b"));
    assert_eq!(body["buffered_elsewhere_secs"], Value::Null);

    // Read on A, the answer says what B may still buffer (buffer.max_age_secs).
    let at = rfc(base + chrono::Duration::seconds(60));
    new.call(
        "MeterValues",
        meter_values(
            1,
            None,
            &at,
            json!([value("Power.Active.Import", "W", 1.0)]),
        ),
    )
    .await;
    let (_, body) = get(
        a,
        &format!("/api/v1/charge-points/CP-T/meter-values?from={from}"),
    )
    .await;
    assert_eq!(body["instance"], json!("inst-b"));
    assert_eq!(body["buffered_elsewhere_secs"], json!(3600));
    assert_eq!(
        body["samples"].as_array().unwrap().len(),
        10,
        "the reading B buffers is not in Redis yet, as the answer says: {body}"
    );
    let (_, latest) = get(a, "/api/v1/charge-points/CP-T/meter-values/latest").await;
    assert_eq!(latest["instance"], json!("inst-b"));
    assert_eq!(latest["buffered_elsewhere_secs"], json!(3600 + 10));
    let (_, stats) = get(a, "/api/v1/charge-points/CP-T/stats").await;
    assert_eq!(stats["connected"], json!(true), "{stats}");
    assert_eq!(stats["instance"], json!("inst-b"), "{stats}");

    // Nobody streams events: neither instance published any.
    for server in [a, b] {
        assert!(!server.fleet.publishing());
        let published = server
            .fleet
            .counters()
            .events_published
            .load(Ordering::Relaxed);
        assert_eq!(published, 0);
    }

    // B's clean stop stores the rest; A's reads then have everything.
    drop(new);
    let Pair { a, b, _wals } = pair;
    assert!(b.shutdown().await.drained);
    let (_, body) = get(
        &a,
        &format!("/api/v1/charge-points/CP-T/meter-values?from={from}"),
    )
    .await;
    assert_eq!(body["samples"].as_array().unwrap().len(), 11, "{body}");
    assert_eq!(body["instance"], Value::Null);
    a.shutdown().await;
}

/// A Server-Sent Events client, parsing `event:`/`data:` frames.
struct SseClient {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>,
    buffer: String,
}

impl SseClient {
    async fn open(server: &RunningServer) -> SseClient {
        let url = format!("http://{}/api/v1/events", server.http_addr);
        let client = awc::Client::builder().disable_timeout().finish();
        let response = client.get(&url).send().await.expect("events request");
        assert_eq!(response.status().as_u16(), 200);
        SseClient {
            body: Box::pin(response),
            buffer: String::new(),
        }
    }

    /// The next event (name, data); comments skipped; panics after 10 s.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                if let Some(name) = name {
                    return (name, serde_json::from_str(&data).expect("JSON data"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")
                .expect("stream open")
                .expect("body chunk");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Events of each of `cps`, each up to and including its first `status` event.
    async fn until_status(&mut self, cps: &[&str]) -> HashMap<String, Vec<(String, Value)>> {
        let mut events: HashMap<String, Vec<(String, Value)>> = HashMap::new();
        let mut open: Vec<&str> = cps.to_vec();
        while !open.is_empty() {
            let (name, data) = self.next().await;
            let Some(cp) = data["charge_point_id"].as_str().map(str::to_owned) else {
                continue;
            };
            if !cps.contains(&cp.as_str()) {
                continue;
            }
            if name == "status" {
                open.retain(|c| *c != cp);
            }
            events.entry(cp).or_default().push((name, data));
        }
        events
    }
}

#[actix_web::test]
async fn either_instance_streams_the_whole_fleet_each_event_once() {
    let redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    let mut on_a = SseClient::open(a).await;
    let mut on_b = SseClient::open(b).await;
    // Each instance has heard that the other has stream clients: both publish.
    assert!(
        eventually(Duration::from_secs(5), || async {
            a.fleet.publishing() && b.fleet.publishing()
        })
        .await
    );
    let mut cp = ChargePoint::connect(a, "CP-S").await;
    let mut other = ChargePoint::connect(b, "CP-S2").await;
    let base = Utc::now() - chrono::Duration::minutes(1);
    for i in 0..3 {
        let at = rfc(base + chrono::Duration::seconds(i));
        let sampled = json!([value("Power.Active.Import", "W", 100.0 + i as f64)]);
        cp.call("MeterValues", meter_values(1, None, &at, sampled.clone()))
            .await;
        other
            .call("MeterValues", meter_values(1, None, &at, sampled))
            .await;
    }
    let status = json!({"connectorId": 1, "errorCode": "NoError", "status": "Available"});
    cp.call("StatusNotification", status.clone()).await;
    other.call("StatusNotification", status).await;

    for (client, name) in [(&mut on_a, "A"), (&mut on_b, "B")] {
        let mut events = client.until_status(&["CP-S", "CP-S2"]).await;
        for (id, instance) in [("CP-S", "inst-a"), ("CP-S2", "inst-b")] {
            let events = events.remove(id).unwrap_or_default();
            let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(
                names,
                ["connected", "sample", "sample", "sample", "status"],
                "{id} on {name}'s stream"
            );
            assert_eq!(events[0].1["instance"], json!(instance));
            let watts: Vec<f64> = events[1..4]
                .iter()
                .map(|(_, d)| d["samples"][0]["value"].as_f64().unwrap())
                .collect();
            assert_eq!(watts, [100.0, 101.0, 102.0], "in order, once each");
        }
    }
    // No late echo: a second fence arrives with nothing of CP-S before it.
    cp.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}),
    )
    .await;
    for client in [&mut on_a, &mut on_b] {
        let events = client.until_status(&["CP-S"]).await;
        assert_eq!(events["CP-S"].len(), 1, "{events:?}");
    }
    assert!(a.fleet.counters().events_received.load(Ordering::Relaxed) >= 5);
    assert!(b.fleet.counters().events_received.load(Ordering::Relaxed) >= 6);
    assert_eq!(a.fleet.counters().events_dropped.load(Ordering::Relaxed), 0);
}

/// Every alert of `cp` (all states), newest first.
async fn alerts_of(server: &RunningServer, cp: &str) -> Vec<Value> {
    let (status, body) = get(
        server,
        &format!("/api/v1/alerts?charge_point={cp}&state=all"),
    )
    .await;
    assert_eq!(status, 200);
    body["alerts"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn a_condition_holding_across_a_move_is_raised_once() {
    let redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    let base = Utc::now() - chrono::Duration::minutes(1);
    let power = |secs: i64, watts: f64| {
        meter_values(
            1,
            None,
            &rfc(base + chrono::Duration::seconds(secs)),
            json!([value("Power.Active.Import", "W", watts)]),
        )
    };
    let mut cp = ChargePoint::connect(a, "CP-AL").await;
    cp.call("MeterValues", power(0, 60_000.0)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts_of(a, "CP-AL").await.len() == 1
        })
        .await,
        "A raised high_power"
    );
    let raised = alerts_of(a, "CP-AL").await.remove(0);
    assert_eq!(raised["state"], json!("active"));

    // The charge point moves to B, the power still too high: no second alert.
    let mut moved = ChargePoint::connect(b, "CP-AL").await;
    assert_eq!(cp.close_code().await, Some(1008));
    moved.call("MeterValues", power(10, 61_000.0)).await;
    // Back to normal on B: B clears the alert A raised.
    moved.call("MeterValues", power(20, 1_000.0)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts_of(b, "CP-AL").await[0]["state"] == json!("cleared")
        })
        .await,
        "B clears the alert"
    );
    let alerts = alerts_of(b, "CP-AL").await;
    assert_eq!(alerts.len(), 1, "raised once fleet-wide: {alerts:?}");
    assert_eq!(alerts[0]["id"], raised["id"]);
    let text = metrics_text(b).await;
    assert_eq!(
        metric(&text, r#"alerts_raised_total{rule="high_power"}"#),
        0.0
    );

    // And back to A, power too high again: a new incident, raised once by A.
    let mut back = ChargePoint::connect(a, "CP-AL").await;
    assert_eq!(moved.close_code().await, Some(1008));
    back.call("MeterValues", power(30, 62_000.0)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            alerts_of(a, "CP-AL").await.len() == 2
        })
        .await
    );
    let alerts = alerts_of(a, "CP-AL").await;
    assert_eq!(alerts[0]["state"], json!("active"));
    assert_eq!(alerts[1]["state"], json!("cleared"));
}

/// The hourly and daily energy and count of `cp`'s import register in the hour starting at
/// `hour` (read from `server`).
async fn energy(server: &RunningServer, cp: &str, hour: DateTime<Utc>) -> (f64, f64, f64) {
    let day = hour.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let read = |period: &'static str, from: DateTime<Utc>, to: DateTime<Utc>| {
        format!(
            "/api/v1/charge-points/{cp}/aggregates?period={period}&measurand=Energy.Active.Import.Register&from={}&to={}",
            rfc(from),
            rfc(to)
        )
    };
    let (status, hourly) = get(
        server,
        &read("hour", hour, hour + chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(status, 200, "{hourly}");
    let (status, daily) = get(server, &read("day", day, day + chrono::Duration::days(1))).await;
    assert_eq!(status, 200, "{daily}");
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let bucket = &hourly["buckets"][0];
    (
        number(&bucket["energy_wh"]),
        number(&bucket["count"]),
        number(&daily["buckets"][0]["energy_wh"]),
    )
}

#[actix_web::test]
async fn roll_ups_across_a_move_mid_hour_equal_a_single_instance() {
    let redis = RedisServer::start();
    let pair = start_pair(&redis).await;
    let (a, b) = (&pair.a, &pair.b);
    // An hour two hours ago: every reading in it, none ahead of the clock.
    let now = Utc::now() - chrono::Duration::hours(2);
    let hour = now
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let reading = |i: i64| {
        meter_values(
            1,
            None,
            &rfc(hour + chrono::Duration::minutes(5 + 10 * i)),
            json!([value(
                "Energy.Active.Import.Register",
                "Wh",
                1000.0 * (i + 1) as f64
            )]),
        )
    };
    // CP-M1: three readings on A, then three on B. CP-M2: the same six, all on A.
    let mut moving = ChargePoint::connect(a, "CP-M1").await;
    let mut staying = ChargePoint::connect(a, "CP-M2").await;
    for i in 0..3 {
        moving.call("MeterValues", reading(i)).await;
        staying.call("MeterValues", reading(i)).await;
    }
    let mut moved = ChargePoint::connect(b, "CP-M1").await;
    assert_eq!(moving.close_code().await, Some(1008));
    // A stored CP-M1's three readings for the takeover (CP-M2's stay in its buffer).
    assert_eq!(a.writer_stats.samples_stored.load(Ordering::Relaxed), 3);
    for i in 3..6 {
        moved.call("MeterValues", reading(i)).await;
        staying.call("MeterValues", reading(i)).await;
    }

    let single = energy(a, "CP-M2", hour).await;
    assert_eq!(single, (5000.0, 6.0, 5000.0));
    // B holds it now: its read flushes its own roll-ups first (read-your-writes), A's were
    // flushed by the takeover. Once B has, A reads the same figures.
    for server in [b, a] {
        assert_eq!(
            energy(server, "CP-M1", hour).await,
            single,
            "moved mid-hour"
        );
    }
    // Samples stored once each: three by A at the takeover, three by B at its stop.
    let Pair { a, b, _wals } = pair;
    drop(moved);
    let b_stats = b.writer_stats.clone();
    assert!(b.shutdown().await.drained);
    assert_eq!(b_stats.samples_stored.load(Ordering::Relaxed), 3);
    assert_eq!(a.writer_stats.samples_stored.load(Ordering::Relaxed), 3);
    let path = format!(
        "/api/v1/charge-points/CP-M1/meter-values?from={}&to={}",
        rfc(hour),
        rfc(hour + chrono::Duration::hours(1))
    );
    let (_, body) = get(&a, &path).await;
    assert_eq!(body["samples"].as_array().unwrap().len(), 6, "{body}");
    drop(staying);
    assert!(a.shutdown().await.drained);
}
