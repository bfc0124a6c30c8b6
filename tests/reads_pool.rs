//! The admin API's large reads and their Redis pool (issue 13 reads, third round): a warm read
//! is one round trip to Redis (no `PING` at the hand-out of a connection used within the last
//! second, the owner record in the data's pipeline), and skipping the `PING` never costs a
//! failed read when Redis restarts between two reads.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::time::Duration;

use actors::redis_pool::{build_pool, PoolSettings, RedisTarget};
use common::*;
use deadpool_redis::redis;
use ocpp_meter::RunningServer;

fn settings(redis: &RedisServer) -> PoolSettings {
    PoolSettings {
        target: RedisTarget::Standalone(redis.url()),
        pool_size: 2,
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_secs(2),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
    }
}

#[actix_web::test]
async fn a_reads_pool_skips_the_ping_of_a_fresh_connection_and_survives_a_restart() {
    let mut redis = RedisServer::start();
    let settings = settings(&redis);
    let shared = build_pool(&settings).unwrap();
    let reads = shared.reads_sibling(&settings).unwrap();
    redis.cli(&["SET", "k", "v"]);
    let get = |pool: actors::redis_pool::Pool| async move {
        let mut conn = pool.get().await?;
        redis::cmd("GET")
            .arg("k")
            .query_async::<Option<String>>(&mut conn)
            .await
            .map_err(deadpool_redis::PoolError::from)
    };
    assert_eq!(get(reads.clone()).await.unwrap().as_deref(), Some("v"));
    assert_eq!(get(shared.clone()).await.unwrap().as_deref(), Some("v"));
    redis.cli(&["CONFIG", "RESETSTAT"]);
    // Handed out again at once: no PING (the shared pool's deadpool-redis manager sends one).
    assert_eq!(get(reads.clone()).await.unwrap().as_deref(), Some("v"));
    assert_eq!(redis.command_calls().get("ping"), None);
    assert_eq!(get(shared.clone()).await.unwrap().as_deref(), Some("v"));
    assert_eq!(redis.command_calls().get("ping"), Some(&1));

    // Redis restarts (empty) right after a read: the next read, handed the dropped connection
    // without a PING, is sent again on a new one and answers.
    redis.restart();
    redis.cli(&["SET", "k", "w"]);
    assert_eq!(get(reads.clone()).await.unwrap().as_deref(), Some("w"));
    assert_eq!(get(reads.clone()).await.unwrap().as_deref(), Some("w"));

    // A write on a dropped connection is not sent twice: it fails once, and the connection is
    // not handed out again.
    redis.restart();
    let set = |pool: actors::redis_pool::Pool| async move {
        let mut conn = pool.get().await.unwrap();
        redis::cmd("SET")
            .arg("k")
            .arg("x")
            .query_async::<()>(&mut conn)
            .await
    };
    assert!(set(reads.clone()).await.is_err());
    set(reads.clone()).await.unwrap();
    assert_eq!(get(reads).await.unwrap().as_deref(), Some("x"));
}

/// GET on the admin API; the status.
async fn status_of(server: &RunningServer, path: &str) -> u16 {
    let url = format!("http://{}{}", server.http_addr, path);
    let mut response = awc::Client::default().get(&url).send().await.unwrap();
    let _ = response.body().limit(64 << 20).await.unwrap();
    response.status().as_u16()
}

#[actix_web::test]
async fn a_warm_large_read_is_one_round_trip_and_reads_answer_across_a_redis_restart() {
    let mut redis = RedisServer::start();
    let mut config = test_config(&redis);
    // Written within a second or two, raw samples and roll-ups.
    config.buffer.max_age_secs = 1;
    config.buffer.rollup_interval_secs = 1;
    // The pool's path: a read Redis's client tracking vouches for makes no round trip at all
    // (tests/tracked_reads.rs), so this test of the one round trip turns that off, as a
    // cluster or `reads.tracked_secs = 0` does.
    config.reads.tracked_secs = 0;
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-POOL").await;
    cp.boot().await;
    let now = chrono::Utc::now();
    let times: Vec<String> = (1..=5)
        .map(|m| (now - chrono::Duration::minutes(m)).to_rfc3339())
        .collect();
    let reply = cp
        .call(
            "MeterValues",
            serde_json::json!({
                "connectorId": 1,
                "meterValue": times.iter().map(|t| serde_json::json!({
                    "timestamp": t,
                    "sampledValue": [{"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"}],
                })).collect::<Vec<_>>(),
            }),
        )
        .await;
    assert!(reply.is_object(), "{reply}");
    drop(cp);
    let from = (now - chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M:%SZ");
    let to = (now + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let raw = format!(
        "/api/v1/charge-points/CP-POOL/meter-values?measurand=Voltage&phase=L1-N&from={from}&to={to}"
    );
    let hourly =
        format!("/api/v1/charge-points/CP-POOL/aggregates?period=hour&from={from}&to={to}");
    // Everything written, both routes warm.
    assert!(
        eventually(Duration::from_secs(20), || async {
            let calls = redis.command_calls();
            calls.contains_key("append") && calls.contains_key("evalsha")
        })
        .await
    );
    // Hours of the raw range: each cached one is a STRLEN, each without a chunk a GET.
    let ms = |t: &dyn std::fmt::Display| {
        chrono::DateTime::parse_from_rfc3339(&t.to_string())
            .unwrap()
            .timestamp_millis()
    };
    let (from_ms, to_ms) = (ms(&from), ms(&to));
    let hours = (to_ms - 1).div_euclid(3_600_000) - from_ms.div_euclid(3_600_000) + 1;
    for path in [&raw, &hourly] {
        assert_eq!(status_of(&server, path).await, 200);
        assert_eq!(status_of(&server, path).await, 200);
        redis.cli(&["CONFIG", "RESETSTAT"]);
        assert_eq!(status_of(&server, path).await, 200, "{path}");
        let calls = redis.command_calls();
        // No PING at the hand-out, the owner record's GET in the data's pipeline.
        assert_eq!(calls.get("ping"), None, "{path}: {calls:?}");
        let chunks = if path == &raw {
            hours as u64 - calls.get("strlen").copied().unwrap_or(0)
        } else {
            0
        };
        assert_eq!(calls.get("get"), Some(&(1 + chunks)), "{path}: {calls:?}");
    }
    // Redis restarts (empty) between reads: they answer (nothing stored any more), no 503.
    redis.restart();
    assert_eq!(status_of(&server, &raw).await, 200);
    assert_eq!(status_of(&server, &hourly).await, 200);
    server.shutdown().await;
}
