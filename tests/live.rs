//! Real-time statistics and the live event stream over real sockets: charge points on real
//! WebSockets, the admin API and its Server-Sent Events over real HTTP, a private redis-server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::web::Bytes;
use actors::exchange::{Alert, AlertState, Rule, Severity};
use actors::id::ChargePointId;
use actors::sample::{Measurand, Phase};
use actors::stream::AlertNotice;
use common::*;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// RFC 3339 `secs` seconds after a base a few minutes ago (inside the default query ranges).
fn at(base: chrono::DateTime<chrono::Utc>, secs: i64) -> String {
    (base + chrono::Duration::seconds(secs))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Value,
}

/// A Server-Sent Events client on a real HTTP connection (awc), parsing `event:`/`data:` lines.
struct SseClient {
    body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, awc::error::PayloadError>>>>,
    buffer: String,
}

impl SseClient {
    async fn open(server: &ocpp_meter::RunningServer, query: &str) -> SseClient {
        let url = format!("http://{}/api/v1/events{query}", server.http_addr);
        let client = awc::Client::builder().disable_timeout().finish();
        let response = client.get(&url).send().await.expect("events request");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        SseClient {
            body: Box::pin(response),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped); panics after 10 s.
    async fn next(&mut self) -> Event {
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
                    let data = serde_json::from_str(&data).expect("event data is JSON");
                    return Event { name, data };
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
}

#[actix_web::test]
async fn statistics_come_from_memory_then_from_redis() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);

    let (code, body) = get(&server, "/api/v1/charge-points/CP-NEVER/stats").await;
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].is_string());

    let mut cp = ChargePoint::connect(&server, "CP-STATS").await;
    cp.boot().await;
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": at(base, 0)}),
        )
        .await;
    let txn = start["transactionId"].as_i64().expect("transaction id");
    let first = meter_values(
        1,
        Some(txn),
        &at(base, 10),
        json!([
            {"value": "1.2", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "2.0", "measurand": "Power.Active.Import", "phase": "L1-N", "unit": "kW"},
            {"value": "1000", "measurand": "Power.Active.Import", "phase": "L2-N", "unit": "W"}
        ]),
    );
    cp.call("MeterValues", first.clone()).await;
    // A retried MeterValues is de-duplicated and not counted.
    cp.call("MeterValues", first).await;
    let second = meter_values(
        1,
        Some(txn),
        &at(base, 20),
        json!([
            {"value": "1750", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "2.5", "measurand": "Power.Active.Import", "phase": "L1-N", "unit": "kW"},
            {"value": "3000", "measurand": "Power.Active.Import", "phase": "L2-N", "unit": "W"},
            {"value": "4000", "measurand": "Power.Active.Import", "phase": "L1-L2", "unit": "W"},
            {"value": "231", "measurand": "Voltage", "phase": "L1-N", "unit": "V"}
        ]),
    );
    cp.call("MeterValues", second).await;

    let (code, live) = get(&server, "/api/v1/charge-points/CP-STATS/stats").await;
    assert_eq!(code, 200, "{live}");
    assert_eq!(live["charge_point_id"], "CP-STATS");
    assert_eq!(live["connected"], true);
    assert_eq!(
        live["samples_total"], 8,
        "3 + 5, the repeat not counted: {live}"
    );
    assert_eq!(live["samples_last_minute"], 8);
    assert_eq!(live["messages_per_minute"], 5, "boot, start, 3 MeterValues");
    assert_eq!(
        live["active_power_w"], 5500.0,
        "latest line-to-neutral phases summed, line-to-line left out: {live}"
    );
    assert!(live["last_meter_values_at"].is_string());
    assert_eq!(
        live["open_transactions"],
        json!([{"transaction_id": txn, "connector_id": 1, "meter_start": 1000, "energy_wh": 750.0}])
    );
    let latest = live["latest"].as_array().expect("latest");
    assert_eq!(latest.len(), 5, "one per connector/measurand/phase: {live}");
    let energy = latest
        .iter()
        .find(|s| s["measurand"] == "Energy.Active.Import.Register")
        .expect("energy register");
    assert_eq!(energy["value"], 1750.0);
    assert_eq!(energy["unit"], "Wh");

    cp.send_message(Message::Close(None)).await;
    let stored = std::cell::RefCell::new(Value::Null);
    let compared = [
        "charge_point_id",
        "session_started_at",
        "samples_total",
        "samples_last_minute",
        "messages_per_minute",
        "active_power_w",
        "last_meter_values_at",
        "open_transactions",
        "latest",
    ];
    let same = eventually(Duration::from_secs(10), || async {
        let (code, body) = get(&server, "/api/v1/charge-points/CP-STATS/stats").await;
        let equal = code == 200
            && body["connected"] == false
            && compared.iter().all(|k| body[*k] == live[*k]);
        *stored.borrow_mut() = body;
        equal
    })
    .await;
    assert!(
        same,
        "after the disconnect the stored figures equal the live ones:\nlive   {live}\nstored {}",
        stored.borrow()
    );
    let ttl: i64 = redis
        .cli(&["TTL", "ocpp:{CP-STATS}:stats"])
        .trim()
        .parse()
        .expect("TTL");
    assert!(
        ttl > 23 * 3600 && ttl <= 24 * 3600,
        "kept retention.stats_hours: {ttl}"
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn samples_arrive_on_the_event_stream_in_order_after_connected() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut events = SseClient::open(&server, "").await;
    assert_eq!(server.event_hub.clients.load(Ordering::Relaxed), 1);

    let mut cp = ChargePoint::connect(&server, "CP-SSE").await;
    cp.boot().await;
    for (i, watts) in [1000, 2000, 3000].into_iter().enumerate() {
        let payload = meter_values(
            1,
            None,
            &at(base, i as i64),
            json!([
                {"value": watts.to_string(), "measurand": "Power.Active.Import", "unit": "W"},
                {"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"}
            ]),
        );
        cp.call("MeterValues", payload).await;
    }
    cp.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "Charging", "info": "go"}),
    )
    .await;

    let connected = events.next().await;
    assert_eq!(connected.name, "connected");
    assert_eq!(connected.data["charge_point_id"], "CP-SSE");
    assert!(connected.data["at"].is_string());
    for (i, watts) in [1000.0, 2000.0, 3000.0].into_iter().enumerate() {
        let event = events.next().await;
        assert_eq!(event.name, "sample", "{event:?}");
        assert_eq!(event.data["charge_point_id"], "CP-SSE");
        let samples = event.data["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 2, "one event per MeterValues batch");
        assert_eq!(samples[0]["measurand"], "Power.Active.Import");
        assert_eq!(samples[0]["value"], watts);
        assert_eq!(samples[0]["unit"], "W");
        assert_eq!(
            samples[0]["timestamp"],
            format!("{}.000Z", &at(base, i as i64)[..19])
        );
        assert_eq!(samples[1]["phase"], "L1-N");
        assert_eq!(samples[1]["format"], "Raw");
    }
    let status = events.next().await;
    assert_eq!(status.name, "status");
    assert_eq!(status.data["charge_point_id"], "CP-SSE");
    assert_eq!(status.data["connector_id"], 1);
    assert_eq!(status.data["status"], "Charging");
    assert_eq!(status.data["error_code"], "NoError");
    assert_eq!(status.data["info"], "go");

    cp.send_message(Message::Close(None)).await;
    let gone = events.next().await;
    assert_eq!(gone.name, "disconnected");
    assert_eq!(gone.data["charge_point_id"], "CP-SSE");
    server.shutdown().await;
}

#[actix_web::test]
async fn the_charge_point_filter_excludes_other_charge_points() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);
    let (code, body) = get(&server, "/api/v1/events?charge_point=bad%7Bid").await;
    assert_eq!(code, 400, "{body}");

    let mut only_a = SseClient::open(&server, "?charge_point=CP-A").await;
    let mut everyone = SseClient::open(&server, "").await;
    let mut b = ChargePoint::connect(&server, "CP-B").await;
    let mut a = ChargePoint::connect(&server, "CP-A").await;
    for cp in [&mut b, &mut a] {
        let payload = meter_values(
            1,
            None,
            &at(base, 0),
            json!([{"value": "5", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]),
        );
        cp.call("MeterValues", payload).await;
    }

    let seen: Vec<Event> = vec![only_a.next().await, only_a.next().await];
    assert_eq!(seen[0].name, "connected");
    assert_eq!(seen[1].name, "sample");
    for event in &seen {
        assert_eq!(event.data["charge_point_id"], "CP-A", "{event:?}");
    }
    let mut all = Vec::new();
    for _ in 0..4 {
        all.push(everyone.next().await);
    }
    let from_b = all
        .iter()
        .filter(|e| e.data["charge_point_id"] == "CP-B")
        .count();
    assert_eq!(from_b, 2, "the unfiltered client sees CP-B: {all:?}");

    // Alerts travel the same way (the AlertSupervisor publishes them on the stream).
    let mut alert = Alert {
        id: "a-1".into(),
        rule: Rule::HighPower,
        severity: Severity::Critical,
        charge_point_id: ChargePointId::parse("CP-A").expect("id"),
        connector_id: 1,
        measurand: Some(Measurand::PowerActiveImport),
        phase: None::<Phase>,
        value: 51_000.0,
        threshold: 50_000.0,
        unit: "W".into(),
        state: AlertState::Active,
        raised_at: chrono::Utc::now(),
        cleared_at: None,
        acknowledged_at: None,
    };
    let other = Alert {
        charge_point_id: ChargePointId::parse("CP-B").expect("id"),
        ..alert.clone()
    };
    server.sample_stream.publish_alert(AlertNotice(other));
    server
        .sample_stream
        .publish_alert(AlertNotice(alert.clone()));
    alert.state = AlertState::Cleared;
    alert.cleared_at = Some(chrono::Utc::now());
    server
        .sample_stream
        .publish_alert(AlertNotice(alert.clone()));
    let raised = only_a.next().await;
    assert_eq!(raised.name, "alert");
    assert_eq!(raised.data["charge_point_id"], "CP-A");
    assert_eq!(raised.data["rule"], "high_power");
    assert_eq!(raised.data["state"], "active");
    let cleared = only_a.next().await;
    assert_eq!(cleared.name, "alert_cleared");
    assert_eq!(
        cleared.data,
        serde_json::to_value(&alert).expect("alert JSON")
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn a_slow_consumer_is_dropped_without_slowing_the_charge_point() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let base = chrono::Utc::now() - chrono::Duration::hours(2);

    // A client that asks for the stream and never reads a byte of it.
    let mut stalled = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("request");
    let joined = eventually(Duration::from_secs(10), || async {
        server.event_hub.clients.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(joined, "the stalled client joined the hub");

    let mut cp = ChargePoint::connect(&server, "CP-FLOOD").await;
    let sampled: Vec<Value> = (0..10)
        .flat_map(|connector| {
            [
                ("Power.Active.Import", "L1-N", "W"),
                ("Power.Active.Import", "L2-N", "W"),
                ("Power.Active.Import", "L3-N", "W"),
                ("Current.Import", "L1", "A"),
                ("Current.Import", "L2", "A"),
                ("Current.Import", "L3", "A"),
                ("Voltage", "L1-N", "V"),
                ("Voltage", "L2-N", "V"),
                ("Voltage", "L3-N", "V"),
                ("Voltage", "L1-L2", "V"),
            ]
            .into_iter()
            .map(move |(measurand, phase, unit)| {
                json!({"value": format!("{connector}.5"), "measurand": measurand, "phase": phase, "unit": unit})
            })
        })
        .collect();
    let mut calls = 0;
    while server.event_hub.dropped_slow.load(Ordering::Relaxed) == 0 && calls < 5000 {
        // Every call gets its CALLRESULT (`call` asserts it) however full the client is.
        let payload = meter_values(1, None, &at(base, calls), json!(sampled));
        assert_eq!(cp.call("MeterValues", payload).await, json!({}));
        calls += 1;
    }
    assert_eq!(
        server.event_hub.dropped_slow.load(Ordering::Relaxed),
        1,
        "the stalled client was dropped after {calls} MeterValues"
    );
    let left = eventually(Duration::from_secs(5), || async {
        server.event_hub.clients.load(Ordering::Relaxed) == 0
    })
    .await;
    assert!(left, "the hub forgot the dropped client");
    // The charge point carries on.
    let payload = meter_values(1, None, &at(base, calls), json!(sampled));
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    drop(stalled);
    server.shutdown().await;
}

/// Events of the stream until (and including) the `sample` event whose first reading is
/// `watts`.
async fn events_until_sample(events: &mut SseClient, watts: f64) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let event = events.next().await;
        let done = event.name == "sample" && event.data["samples"][0]["value"] == watts;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

#[actix_web::test]
async fn an_alert_follows_the_sample_that_raised_it_on_the_event_stream() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut events = SseClient::open(&server, "?charge_point=CP-SSE-AL").await;
    let mut cp = ChargePoint::connect(&server, "CP-SSE-AL").await;
    cp.boot().await;
    // 60 kW raises high_power (50 kW); 55 kW only updates it; 48 kW clears it (<= 49 kW); 47 kW
    // marks the end. Each MeterValues is sent after the CALLRESULT of the one before.
    for (i, kw) in ["60", "55", "48", "47"].into_iter().enumerate() {
        let payload = meter_values(
            1,
            None,
            &at(base, i as i64),
            json!([{"value": kw, "measurand": "Power.Active.Import", "unit": "kW"}]),
        );
        assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    }

    let raised = events_until_sample(&mut events, 55000.0).await;
    let names: Vec<&str> = raised.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["connected", "sample", "alert", "sample"],
        "the alert comes right after the 60 kW sample, before the next one: {raised:?}"
    );
    assert_eq!(raised[1].data["samples"][0]["value"], 60000.0);
    let alert = &raised[2].data;
    assert!(
        alert["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{alert}"
    );
    assert_eq!(alert["rule"], "high_power");
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["charge_point_id"], "CP-SSE-AL");
    assert_eq!(alert["connector_id"], 1);
    assert_eq!(alert["measurand"], "Power.Active.Import");
    assert_eq!(alert["value"], 60000.0);
    assert_eq!(alert["threshold"], 50000.0);
    assert_eq!(alert["unit"], "W");
    assert_eq!(alert["state"], "active");
    assert!(
        alert["raised_at"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        "{alert}"
    );
    assert_eq!(alert["cleared_at"], Value::Null);

    let cleared = events_until_sample(&mut events, 47000.0).await;
    let names: Vec<&str> = cleared.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["sample", "alert_cleared", "sample"],
        "the clear comes right after the 48 kW sample, before the next one: {cleared:?}"
    );
    assert_eq!(cleared[0].data["samples"][0]["value"], 48000.0);
    let clear = &cleared[1].data;
    assert_eq!(clear["id"], alert["id"]);
    assert_eq!(clear["rule"], "high_power");
    assert_eq!(clear["state"], "cleared");
    assert_eq!(clear["value"], 48000.0);
    assert_eq!(clear["raised_at"], alert["raised_at"]);
    assert!(clear["cleared_at"].is_string(), "{clear}");
    drop(events);
    server.shutdown().await;
}
