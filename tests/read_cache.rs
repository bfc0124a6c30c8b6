//! The read cache (`reads.cache_bytes`, `actors::store::read_cache`) over a real redis-server:
//! a reading stored late into an hour or day the cache holds (here by another instance, the
//! way a charge point back from offline, a write-ahead log replay or a second server would) is
//! in the very next read, of raw samples and of hourly and daily roll-ups; and the cache stays
//! within its byte bound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::sync::atomic::Ordering;

use chrono::Utc;
use common::late::*;
use common::reference::*;
use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

#[actix_web::test]
async fn a_late_reading_into_a_cached_closed_hour_or_day_is_in_the_next_read() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let stats = server.read_cache_stats.clone();
    let now = Utc::now().timestamp_millis();
    // Two days back: the hour, and its day, closed well before the margin of the cache.
    let day = (now - 2 * D).div_euclid(D) * D;
    let hour = day + 5 * H;
    let first: Vec<i64> = (0..10).map(|i| hour + i * 60_000).collect();
    store_through_another_instance(&redis, "CP-LATE", vec![voltages(&first, 230.0)]).await;

    // First reads fill the cache, second reads come from it.
    for _ in 0..2 {
        assert_eq!(meter_values_of(&server, "CP-LATE", now).await.len(), 10);
        assert_eq!(
            count_at(&buckets_of(&server, "CP-LATE", "hour", now).await, hour),
            10
        );
        assert_eq!(
            count_at(&buckets_of(&server, "CP-LATE", "day", now).await, day),
            10
        );
    }
    let hits = stats.hits.load(Ordering::Relaxed);
    assert!(
        hits >= 3,
        "the repeated reads were served from the cache: {hits} hits"
    );
    let invalidated = stats.invalidated.load(Ordering::Relaxed);

    // A reading arrives late, into the same closed hour and day, through another instance.
    let late = hour + 30 * 60_000;
    store_through_another_instance(&redis, "CP-LATE", vec![voltages(&[late], 240.0)]).await;
    let samples = meter_values_of(&server, "CP-LATE", now).await;
    assert_eq!(
        samples.len(),
        11,
        "the late raw reading is read: {samples:?}"
    );
    assert!(
        samples.iter().any(|s| s["value"] == json!(240.0)),
        "{samples:?}"
    );
    let hourly = buckets_of(&server, "CP-LATE", "hour", now).await;
    assert_eq!(count_at(&hourly, hour), 11, "{hourly:?}");
    assert!(
        hourly.iter().any(|b| b["max"] == json!(240.0)),
        "{hourly:?}"
    );
    let daily = buckets_of(&server, "CP-LATE", "day", now).await;
    assert_eq!(count_at(&daily, day), 11, "{daily:?}");
    assert!(
        stats.invalidated.load(Ordering::Relaxed) > invalidated,
        "the cached buckets were dropped by the moved roll-up version"
    );

    // And the refreshed entries serve the next reads again.
    let hits = stats.hits.load(Ordering::Relaxed);
    assert_eq!(meter_values_of(&server, "CP-LATE", now).await.len(), 11);
    assert_eq!(
        count_at(&buckets_of(&server, "CP-LATE", "hour", now).await, hour),
        11
    );
    assert!(stats.hits.load(Ordering::Relaxed) > hits);
    server.shutdown().await;
}

#[actix_web::test]
async fn the_read_cache_stays_within_its_byte_bound() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.reads.cache_bytes = 1024 * 1024;
    let server = start_server(config).await;
    let stats = server.read_cache_stats.clone();
    let now = Utc::now().timestamp_millis();
    let first_hour = (now - D).div_euclid(H) * H;
    // Four charge points, ten hours of 500 readings each: 20,000 decoded samples, more than
    // 1 MiB once decoded (at 64 bytes or more each, ~200 more rendered), each hour well under a
    // quarter of it (an hour over a quarter is not cached at all).
    let ids = ["CP-BIG-1", "CP-BIG-2", "CP-BIG-3", "CP-BIG-4"];
    let sends = ids
        .iter()
        .map(|id| {
            let payloads = (0..5 * 10)
                .map(|batch| {
                    let times: Vec<i64> = (0..100)
                        .map(|i| first_hour + (batch * 100 + i) * 7_200)
                        .collect();
                    voltages(&times, 230.0)
                })
                .collect();
            (*id, payloads)
        })
        .collect();
    store_all_through_another_instance(&redis, sends).await;
    for id in ids {
        assert_eq!(meter_values_of(&server, id, now).await.len(), 5_000);
        let held = stats.bytes.load(Ordering::Relaxed);
        assert!(held <= 1024 * 1024, "{held} bytes held");
    }
    assert!(
        stats.evicted.load(Ordering::Relaxed) > 0,
        "the bound was reached and the oldest entries went"
    );
    // Evicted or not, every read is whole.
    for id in ids {
        assert_eq!(meter_values_of(&server, id, now).await.len(), 5_000);
    }
    let url = format!("http://{}/metrics", server.http_addr);
    let mut response = awc::Client::default().get(&url).send().await.unwrap();
    let body = response.body().limit(16 << 20).await.unwrap();
    let text = std::str::from_utf8(&body).unwrap();
    let bytes: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("ocpp_read_cache_bytes "))
        .expect("ocpp_read_cache_bytes in /metrics")
        .trim()
        .parse()
        .unwrap();
    assert!(bytes > 0 && bytes <= 1024 * 1024, "{bytes}");
    assert!(
        text.contains("ocpp_read_cache_lookups_total{result=\"hit\"}"),
        "{text}"
    );
    server.shutdown().await;
}

/// GET on the admin API: the body's bytes as sent, and its `Content-Length`.
async fn raw_body(server: &RunningServer, path: &str) -> (Vec<u8>, Option<usize>) {
    let url = format!("http://{}{}", server.http_addr, path);
    let mut response = awc::Client::default().get(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.body().limit(64 << 20).await.unwrap();
    (body.to_vec(), length)
}

/// MeterValues of several series per time: Voltage L1-N and L2-N and Power, values `base` + i.
fn readings(times: &[&str], base: f64) -> Value {
    json!({
        "connectorId": 1,
        "meterValue": times.iter().enumerate().map(|(i, t)| json!({
            "timestamp": t,
            "sampledValue": [
                {"value": (base + i as f64).to_string(), "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                {"value": (base + 0.5 + i as f64).to_string(), "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
                {"value": (7400.0 + base + i as f64).to_string(), "measurand": "Power.Active.Import", "unit": "W"},
            ],
        })).collect::<Vec<_>>(),
    })
}

#[actix_web::test]
async fn a_body_spliced_from_cached_hours_is_the_uncached_body_byte_for_byte() {
    let redis = RedisServer::start();
    let cached = start_server(test_config(&redis)).await;
    let wal = tempfile::tempdir().unwrap();
    let mut config = test_config(&redis);
    config.reads.cache_bytes = 0;
    config.server.instance_id = "uncached".into();
    config.wal.dir = wal.path().display().to_string();
    let uncached = start_server(config).await;
    let stats = cached.read_cache_stats.clone();
    let now = Utc::now().timestamp_millis();
    let h0 = (now - 2 * D).div_euclid(H) * H;
    let t = |ms: i64| iso(h0 + ms);
    // Three hours, out of order, a repeated reading with other values (the first stored is
    // shown), times below the millisecond (two of one millisecond: one reading).
    let sub_ms = |ms: i64, micros: &str| {
        let base = iso(h0 + ms);
        format!("{}{micros}Z", base.trim_end_matches('Z'))
    };
    store_through_another_instance(
        &redis,
        "CP-SPLICE",
        vec![
            readings(&[&t(60_000), &t(0), &t(30_000)], 230.0),
            readings(&[&t(30_000), &t(H + 5_000)], 250.0),
            readings(
                &[
                    &t(2 * H + 1_000),
                    &sub_ms(2 * H + 2_000, "250"),
                    &sub_ms(2 * H + 2_000, "750"),
                ],
                240.0,
            ),
        ],
    )
    .await;
    let from = iso(h0 - H);
    let to = iso(now + 60_000);
    let queries = [
        format!("measurand=Voltage&phase=L1-N&from={from}&to={to}&limit=10000"),
        format!("from={from}&to={to}&limit=10000"),
        format!(
            "connector=1&from={}&to={}&limit=10000",
            t(30_000),
            t(2 * H + 1_000)
        ),
        format!("measurand=Voltage&from={from}&to={to}&limit=3"),
        format!("from={from}&to={to}&limit=7"),
    ];
    let compare = |round: &'static str| {
        let (cached, uncached, queries) = (&cached, &uncached, &queries);
        async move {
            for query in queries {
                let path = format!("/api/v1/charge-points/CP-SPLICE/meter-values?{query}");
                let (expected, _) = raw_body(uncached, &path).await;
                // Twice: filling the cache, then from it.
                for _ in 0..2 {
                    let (body, length) = raw_body(cached, &path).await;
                    assert_eq!(
                        String::from_utf8_lossy(&body),
                        String::from_utf8_lossy(&expected),
                        "{round}: {query}"
                    );
                    assert_eq!(length, Some(body.len()), "{round}: {query}");
                }
            }
        }
    };
    compare("first").await;
    let hits = stats.hits.load(Ordering::Relaxed);
    assert!(hits > 0, "the second reads came from the cache");

    // Late readings into the cached hours: before, between and after the held ones, a repeat
    // of a held reading with another value, a new hour.
    store_through_another_instance(
        &redis,
        "CP-SPLICE",
        vec![
            readings(&[&t(15_000), &t(0), &t(90_000)], 300.0),
            readings(
                &[&t(H + 1_000), &sub_ms(2 * H + 2_000, "500"), &t(3 * H)],
                310.0,
            ),
        ],
    )
    .await;
    compare("after late readings").await;
    assert!(stats.hits.load(Ordering::Relaxed) > hits);
    let (body, _) = raw_body(
        &cached,
        &format!(
            "/api/v1/charge-points/CP-SPLICE/meter-values?{}",
            queries[0]
        ),
    )
    .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    let values: Vec<f64> = body["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    // Hour 0: 0 s (231 first stored, not 301), 15 s (300), 30 s (232, not 250), 60 s (230),
    // 90 s (302); hour 1: 1 s (310), 5 s (251); hour 2: 1 s (240), 2 s (241); hour 3 (312).
    assert_eq!(
        values,
        [231.0, 300.0, 232.0, 230.0, 302.0, 310.0, 251.0, 240.0, 241.0, 312.0]
    );
    cached.shutdown().await;
    uncached.shutdown().await;
}
