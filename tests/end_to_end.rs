//! The whole path over real sockets: boot -> status -> start -> meter values -> stop, read back
//! through the admin API, against a private redis-server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[actix_web::test]
async fn a_charging_session_is_stored_and_read_back() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-E2E").await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let at = |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    assert_eq!(cp.protocol.as_deref(), Some("ocpp1.6"));

    let boot = cp.boot().await;
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 300);

    let status = cp
        .call(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Preparing"}),
        )
        .await;
    assert_eq!(status, json!({}));
    let auth = cp.call("Authorize", json!({"idTag": "TAG1"})).await;
    assert_eq!(auth["idTagInfo"]["status"], "Accepted");

    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": at(0)}),
        )
        .await;
    let txn = start["transactionId"].as_i64().expect("transaction id");

    let meter = meter_values(
        1,
        Some(txn),
        &at(10),
        json!([
            {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
            {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"}
        ]),
    );
    assert_eq!(cp.call("MeterValues", meter).await, json!({}));

    let stop = cp
        .call(
            "StopTransaction",
            json!({
                "transactionId": txn, "meterStop": 1600, "timestamp": at(300),
                "idTag": "TAG1", "reason": "Local",
                "transactionData": [{"timestamp": at(300), "sampledValue": [
                    {"value": "1600", "measurand": "Energy.Active.Import.Register", "context": "Transaction.End"}
                ]}]
            }),
        )
        .await;
    assert_eq!(stop["idTagInfo"]["status"], "Accepted");
    let heartbeat = cp.call("Heartbeat", json!({})).await;
    assert!(heartbeat["currentTime"].is_string());

    // Read back: the samples are visible at once (read-your-writes), before any flush.
    let range = format!("from={}&to={}", at(-60), at(600));
    let (code, body) = get(
        &server,
        &format!("/api/v1/charge-points/CP-E2E/meter-values?{range}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let samples = body["samples"].as_array().expect("samples");
    assert_eq!(samples.len(), 5, "{body}");
    let energy = &samples[0];
    assert_eq!(energy["measurand"], "Energy.Active.Import.Register");
    assert_eq!(energy["unit"], "Wh");
    assert_eq!(energy["value"], 1500.0);
    assert_eq!(energy["transaction_id"], txn);
    assert_eq!(energy["connector_id"], 1);
    let power = samples
        .iter()
        .find(|s| s["measurand"] == "Power.Active.Import")
        .unwrap();
    assert_eq!(power["value"], 7400.0);
    assert_eq!(power["unit"], "W");
    let end = samples.last().unwrap();
    assert_eq!(end["context"], "Transaction.End");
    assert_eq!(
        end["connector_id"], 1,
        "transactionData takes the transaction's connector"
    );

    let (_, filtered) = get(
        &server,
        &format!("/api/v1/charge-points/CP-E2E/meter-values?{range}&measurand=Voltage&phase=L1-N"),
    )
    .await;
    assert_eq!(filtered["samples"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["samples"][0]["value"], 230.1);

    let (code, cps) = get(&server, "/api/v1/charge-points").await;
    assert_eq!(code, 200);
    let me = cps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "CP-E2E")
        .expect("listed");
    assert_eq!(me["connected"], true);
    assert_eq!(me["vendor"], "TestVendor");
    assert_eq!(me["firmware_version"], "1.2.3");
    assert_eq!(me["connectors"][0]["status"], "Preparing");

    // The transaction record reaches Redis through the writer.
    let txn_path = format!("/api/v1/transactions/{txn}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&server, &txn_path).await.1["state"] == "stopped"
        })
        .await
    );
    let (_, record) = get(&server, &txn_path).await;
    assert_eq!(record["energy_wh"], 600);
    assert_eq!(record["charge_point_id"], "CP-E2E");
    assert_eq!(record["id_tag"], "TAG1");

    // After disconnect the buffer is flushed and everything is still readable from Redis.
    drop(cp);
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&server, "/api/v1/charge-points/CP-E2E").await.1["connected"] == false
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            !redis
                .cli(&["KEYS", "ocpp:{CP-E2E}:raw:*"])
                .trim()
                .is_empty()
        })
        .await,
        "the buffer was flushed to a raw chunk: {}",
        redis.cli(&["KEYS", "*"])
    );
    let (_, again) = get(
        &server,
        &format!("/api/v1/charge-points/CP-E2E/meter-values?{range}"),
    )
    .await;
    assert_eq!(again["samples"], body["samples"]);
    let (_, latest) = get(&server, "/api/v1/charge-points/CP-E2E/meter-values/latest").await;
    let latest = latest["samples"].as_array().unwrap();
    let energy = latest
        .iter()
        .find(|s| s["measurand"] == "Energy.Active.Import.Register")
        .unwrap();
    assert_eq!(energy["value"], 1600.0, "the newest register reading wins");

    server.shutdown().await;
}

#[actix_web::test]
async fn transaction_ids_are_unique_across_restarts() {
    let redis = RedisServer::start();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2 {
        let server = start_server(test_config(&redis)).await;
        let mut cp = ChargePoint::connect(&server, "CP-TXN").await;
        for _ in 0..3 {
            let start = cp
                .call(
                    "StartTransaction",
                    json!({"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2025-01-01T10:00:00Z"}),
                )
                .await;
            assert!(seen.insert(start["transactionId"].as_i64().unwrap()));
        }
        drop(cp);
        server.shutdown().await;
    }
    assert_eq!(seen.len(), 6);
}

#[actix_web::test]
async fn a_charge_points_transactions_are_listed_newest_first() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-TXNS").await;
    cp.boot().await;
    let base = chrono::Utc::now() - chrono::Duration::minutes(10);
    let at = |secs: i64| {
        (base + chrono::Duration::seconds(secs))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let start = |tag: &str, meter: i64, secs: i64| json!({"connectorId": 1, "idTag": tag, "meterStart": meter, "timestamp": at(secs)});
    let older = cp.call("StartTransaction", start("OLD", 1000, 0)).await["transactionId"]
        .as_i64()
        .expect("transaction id");
    cp.call(
        "StopTransaction",
        json!({"transactionId": older, "meterStop": 1600, "timestamp": at(120), "reason": "Local"}),
    )
    .await;
    let newer = cp.call("StartTransaction", start("NEW", 2000, 300)).await["transactionId"]
        .as_i64()
        .expect("transaction id");
    assert_ne!(older, newer);

    let list = "/api/v1/charge-points/CP-TXNS/transactions";
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, body) = get(&server, list).await;
            body["transactions"].as_array().map(Vec::len) == Some(2)
                && body["transactions"][1]["state"] == "stopped"
        })
        .await,
        "both transactions are listed: {}",
        get(&server, list).await.1
    );
    let (code, body) = get(&server, list).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["charge_point_id"], "CP-TXNS");
    let rows = body["transactions"].as_array().unwrap();
    assert_eq!(rows[0]["transaction_id"], newer, "newest start first");
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[0]["id_tag"], "NEW");
    assert_eq!(rows[0]["energy_wh"], serde_json::Value::Null);
    assert_eq!(rows[1]["transaction_id"], older);
    assert_eq!(rows[1]["state"], "stopped");
    assert_eq!(rows[1]["energy_wh"], 600);
    assert_eq!(rows[1]["stop_reason"], "Local");
    for row in rows {
        let (_, one) = get(
            &server,
            &format!("/api/v1/transactions/{}", row["transaction_id"]),
        )
        .await;
        assert_eq!(row, &one, "a row is the transaction's own document");
    }

    let ids = |body: &serde_json::Value| -> Vec<i64> {
        body["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .map(|t| t["transaction_id"].as_i64().unwrap())
            .collect()
    };
    let (_, active) = get(&server, &format!("{list}?state=active")).await;
    assert_eq!(ids(&active), vec![newer]);
    let (_, stopped) = get(&server, &format!("{list}?state=stopped")).await;
    assert_eq!(ids(&stopped), vec![older]);
    let (_, all) = get(&server, &format!("{list}?state=all&limit=1")).await;
    assert_eq!(ids(&all), vec![newer], "limit keeps the newest");
    let (_, one_stopped) = get(&server, &format!("{list}?state=stopped&limit=1")).await;
    assert_eq!(
        ids(&one_stopped),
        vec![older],
        "limit counts after the filter"
    );

    for (query, names) in [
        ("state=open", "state"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
    ] {
        let (code, body) = get(&server, &format!("{list}?{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{query}: {error}");
    }
    let (code, body) = get(&server, "/api/v1/charge-points/NEVER-SEEN/transactions").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = get(&server, "/api/v1/charge-points/bad%7Bid/transactions").await;
    assert_eq!(code, 400, "{body}");

    // A charge point that was seen but never charged has an empty list, not a 404.
    let mut idle = ChargePoint::connect(&server, "CP-IDLE").await;
    idle.boot().await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&server, "/api/v1/charge-points/CP-IDLE/transactions")
                .await
                .0
                == 200
        })
        .await
    );
    let (_, empty) = get(&server, "/api/v1/charge-points/CP-IDLE/transactions").await;
    assert_eq!(empty["transactions"], json!([]));
    drop((cp, idle));
    server.shutdown().await;
}

/// A raw read asks the writer for a charge point's queued samples only while some are counted
/// as not yet in Redis (each batch counts itself until the writer has written it). With Redis
/// holding writes back, a reading flushed to the writer must still be in the read; once it is
/// written the charge point is counted off, and the read, now without the writer, serves the
/// same from Redis.
#[actix_web::test]
async fn a_reading_queued_in_the_writer_is_read_until_redis_has_it() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.max_age_secs = 1;
    let server = start_server(config).await;
    let pending = "writer_pending_charge_points";
    let mut cp = ChargePoint::connect(&server, "CP-UNW").await;
    cp.boot().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(&server, "writer_pending_samples").await == 0.0
        })
        .await
    );
    assert_eq!(metric_value(&server, pending).await, 0.0);

    // Writes wait (reads go on) until unpaused, 30 s at most.
    redis.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    let at = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let payload = meter_values(
        1,
        None,
        &at,
        json!([{"value": "231.5", "measurand": "Voltage", "unit": "V"}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    // The session ends: its buffer goes to the writer, which cannot write it yet.
    drop(cp);
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(&server, "writer_pending_samples").await == 1.0
        })
        .await,
        "the reading waits in the writer"
    );
    assert_eq!(metric_value(&server, pending).await, 1.0);
    let read = "/api/v1/charge-points/CP-UNW/meter-values?measurand=Voltage";
    let (code, body) = get(&server, read).await;
    assert_eq!(code, 200, "{body}");
    let samples = body["samples"].as_array().unwrap().clone();
    assert_eq!(
        samples.len(),
        1,
        "read-your-writes from the writer's queue: {body}"
    );
    assert_eq!(samples[0]["value"], json!(231.5), "{body}");

    redis.cli(&["CLIENT", "UNPAUSE"]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(&server, pending).await == 0.0
        })
        .await,
        "counted off once written"
    );
    assert_eq!(metric_value(&server, "writer_pending_samples").await, 0.0);
    let (_, again) = get(&server, read).await;
    assert_eq!(again["samples"], json!(samples), "the same, now from Redis");
    server.shutdown().await;
}
