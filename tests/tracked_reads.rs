//! Large reads answered from memory under Redis's client tracking (`reads.tracked_secs`,
//! `actors::store::tracked_reads`), over a real redis-server: a repeated read asks Redis
//! nothing; a change by anyone else (another instance's late readings, a deleted chunk) is in
//! the next read; a reading this instance answers is never hidden behind a kept read; and a
//! lost tracking connection forgets every kept read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use common::late::*;
use common::reference::*;
use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

/// A server whose kept reads live long enough that only a forget can explain a fresh read.
async fn server(redis: &RedisServer) -> RunningServer {
    let mut config = test_config(redis);
    config.reads.tracked_secs = 600;
    start_server(config).await
}

/// [`server`], after another instance stored `readings` Voltage readings of `id`, a minute
/// apart, from the start of the hour two days back; returns it, the test's "now" and that hour.
async fn seeded(redis: &RedisServer, id: &str, readings: i64) -> (RunningServer, i64, i64) {
    let server = server(redis).await;
    let now = Utc::now().timestamp_millis();
    let hour = (now - 2 * D).div_euclid(H) * H;
    let times: Vec<i64> = (0..readings).map(|i| hour + i * 60_000).collect();
    store_through_another_instance(redis, id, vec![voltages(&times, 230.0)]).await;
    (server, now, hour)
}

/// Calls Redis served of the commands only the large reads send.
fn read_commands(redis: &RedisServer) -> u64 {
    let calls = redis.command_calls();
    ["strlen", "getrange", "hgetall"]
        .iter()
        .map(|c| calls.get(*c).copied().unwrap_or(0))
        .sum()
}

fn answered(server: &RunningServer) -> u64 {
    server.tracked_stats.answered.load(Ordering::Relaxed)
}

#[actix_web::test]
async fn a_repeated_read_asks_redis_nothing_until_someone_changes_what_it_read() {
    let redis = RedisServer::start();
    let (server, now, hour) = seeded(&redis, "CP-TR", 10).await;

    // The first reads ask Redis over the tracked connection and are kept.
    assert_eq!(meter_values_of(&server, "CP-TR", now).await.len(), 10);
    assert_eq!(
        count_at(&buckets_of(&server, "CP-TR", "hour", now).await, hour),
        10
    );
    assert!(
        redis.cli(&["CLIENT", "LIST"]).lines().any(|client| client
            .split(' ')
            .any(|field| field.starts_with("flags=") && field.contains('t'))),
        "a connection reads with tracking on: {}",
        redis.cli(&["CLIENT", "LIST"])
    );
    // The same reads again: answered from memory, no read command reaches Redis.
    let (before, commands) = (answered(&server), read_commands(&redis));
    assert_eq!(meter_values_of(&server, "CP-TR", now).await.len(), 10);
    assert_eq!(
        count_at(&buckets_of(&server, "CP-TR", "hour", now).await, hour),
        10
    );
    assert_eq!(answered(&server), before + 2, "both reads from memory");
    assert_eq!(read_commands(&redis), commands, "Redis was asked nothing");
    assert!(
        metric_value(&server, "ocpp_read_tracked_answers_total").await >= 2.0,
        "answers are counted in /metrics"
    );
    // A range ending now (the default) is the same read until the next bucket starts.
    let today = "/api/v1/charge-points/CP-TR/aggregates?period=day";
    assert_eq!(get(&server, today).await.0, 200);
    let before = answered(&server);
    assert_eq!(get(&server, today).await.0, 200);
    assert_eq!(answered(&server), before + 1, "a moving range is kept too");

    // Another instance writes a late reading into the hour: Redis tells, the next reads have it.
    let late = hour + 30 * 60_000;
    store_through_another_instance(&redis, "CP-TR", vec![voltages(&[late], 240.0)]).await;
    let read = meter_values_of(&server, "CP-TR", now).await;
    assert_eq!(read.len(), 11, "the late raw reading is read: {read:?}");
    assert!(read.iter().any(|s| s["value"] == json!(240.0)), "{read:?}");
    let buckets = buckets_of(&server, "CP-TR", "hour", now).await;
    assert_eq!(count_at(&buckets, hour), 11, "{buckets:?}");
    assert!(
        server
            .tracked_stats
            .invalidated_keys
            .load(Ordering::Relaxed)
            > 0
    );

    // Kept again, then the chunk goes (an expiry, an operator's DEL): the next read lacks it.
    assert_eq!(meter_values_of(&server, "CP-TR", now).await.len(), 11);
    let before = answered(&server);
    assert_eq!(meter_values_of(&server, "CP-TR", now).await.len(), 11);
    assert_eq!(answered(&server), before + 1);
    let chunk = actors::store::keys::raw_chunk("CP-TR", hour / H);
    assert_eq!(redis.cli(&["DEL", &chunk]).trim(), "1");
    assert_eq!(
        meter_values_of(&server, "CP-TR", now).await,
        Vec::<Value>::new(),
        "the deleted chunk is not served from memory"
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn a_reading_answered_here_is_never_hidden_behind_a_kept_read() {
    let redis = RedisServer::start();
    let (server, now, hour) = seeded(&redis, "CP-RW", 10).await;
    for _ in 0..2 {
        assert_eq!(meter_values_of(&server, "CP-RW", now).await.len(), 10);
        assert_eq!(
            count_at(&buckets_of(&server, "CP-RW", "hour", now).await, hour),
            10
        );
    }
    let kept = answered(&server);
    assert_eq!(kept, 2, "the second reads were kept ones");

    // Redis holds writes back; the charge point sends 100 readings into the same hour here
    // (a full buffer: handed to the writer and the aggregator at once), then leaves.
    redis.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    let mut cp = ChargePoint::connect(&server, "CP-RW").await;
    let more: Vec<i64> = (0..100).map(|i| hour + 20 * 60_000 + i * 1_000).collect();
    assert_eq!(
        cp.call("MeterValues", voltages(&more, 231.0)).await,
        json!({})
    );
    drop(cp);
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(&server, "writer_pending_samples").await >= 100.0
        })
        .await,
        "the readings wait in the writer"
    );
    // Counted on their way to Redis, they forgot the kept reads: both reads ask again and
    // show them (from the writer's queue and the aggregator's flush, which waits for Redis).
    assert_eq!(meter_values_of(&server, "CP-RW", now).await.len(), 110);
    assert_eq!(answered(&server), kept, "not answered from memory");
    redis.cli(&["CLIENT", "UNPAUSE"]);
    assert_eq!(
        count_at(&buckets_of(&server, "CP-RW", "hour", now).await, hour),
        110
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(&server, "writer_pending_samples").await == 0.0
        })
        .await,
        "the writer wrote them"
    );
    // Once in Redis they are kept like the rest: read, then answered from memory.
    for _ in 0..2 {
        assert_eq!(meter_values_of(&server, "CP-RW", now).await.len(), 110);
        assert_eq!(
            count_at(&buckets_of(&server, "CP-RW", "hour", now).await, hour),
            110
        );
    }
    assert!(answered(&server) >= kept + 2);
    server.shutdown().await;
}

#[actix_web::test]
async fn a_lost_tracking_connection_forgets_every_kept_read() {
    let mut redis = RedisServer::start();
    let (server, now, _) = seeded(&redis, "CP-LOST", 10).await;
    for _ in 0..2 {
        assert_eq!(meter_values_of(&server, "CP-LOST", now).await.len(), 10);
    }
    assert_eq!(answered(&server), 1);

    // Redis drops the tracking connection: its pushes are gone, and so are the kept reads.
    let list = redis.cli(&["CLIENT", "LIST"]);
    let tracking = list
        .lines()
        .find(|client| {
            client
                .split(' ')
                .any(|field| field.starts_with("flags=") && field.contains('t'))
        })
        .and_then(|client| client.split(' ').find_map(|f| f.strip_prefix("id=")))
        .expect("a tracking connection")
        .to_owned();
    assert_eq!(redis.cli(&["CLIENT", "KILL", "ID", &tracking]).trim(), "1");
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .tracked_stats
                .lost_connections
                .load(Ordering::Relaxed)
                > 0
        })
        .await,
        "the loss is noticed"
    );
    let commands = read_commands(&redis);
    assert_eq!(meter_values_of(&server, "CP-LOST", now).await.len(), 10);
    assert_eq!(answered(&server), 1, "asked Redis again");
    assert!(read_commands(&redis) > commands);
    // A new tracking connection keeps reads again.
    assert_eq!(meter_values_of(&server, "CP-LOST", now).await.len(), 10);
    assert_eq!(answered(&server), 2);

    // Redis restarts, empty: the connection's loss forgets the kept read, which now finds
    // nothing, and a read after that is kept again.
    redis.restart();
    assert!(
        eventually(Duration::from_secs(10), || async {
            meter_values_of(&server, "CP-LOST", now).await.is_empty()
        })
        .await,
        "nothing is served from before the restart"
    );
    let before = answered(&server);
    assert!(meter_values_of(&server, "CP-LOST", now).await.is_empty());
    assert!(meter_values_of(&server, "CP-LOST", now).await.is_empty());
    assert!(answered(&server) > before, "kept again after the restart");
    server.shutdown().await;
}

#[actix_web::test]
async fn a_tracking_connection_that_stops_answering_forgets_every_kept_read() {
    let redis = RedisServer::start();
    let (server, now, _) = seeded(&redis, "CP-MUTE", 1).await;
    for _ in 0..2 {
        assert_eq!(meter_values_of(&server, "CP-MUTE", now).await.len(), 1);
    }
    assert_eq!(answered(&server), 1);
    // Redis answers nobody for 2.5 s, as a stalled server or a cut network would: the
    // connection still stands, but its pushes could be held back, so its kept reads go.
    redis.cli(&["CLIENT", "PAUSE", "2500", "ALL"]);
    assert!(
        eventually(Duration::from_secs(4), || async {
            server
                .tracked_stats
                .lost_connections
                .load(Ordering::Relaxed)
                > 0
        })
        .await,
        "a ping went unanswered"
    );
    assert_eq!(meter_values_of(&server, "CP-MUTE", now).await.len(), 1);
    assert_eq!(answered(&server), 1, "asked Redis again");
    server.shutdown().await;
}

#[actix_web::test]
async fn reads_go_through_the_pool_when_redis_refuses_tracking() {
    let redis = RedisServer::start();
    // An ACL that refuses `CLIENT TRACKING` (as a Redis without RESP3 would fail the
    // connection): reads answer as before, through the pool.
    assert_eq!(
        redis
            .cli(&["ACL", "SETUSER", "default", "-client|tracking"])
            .trim(),
        "OK"
    );
    let (server, now, hour) = seeded(&redis, "CP-ACL", 1).await;
    for _ in 0..3 {
        assert_eq!(meter_values_of(&server, "CP-ACL", now).await.len(), 1);
        assert_eq!(
            count_at(&buckets_of(&server, "CP-ACL", "hour", now).await, hour),
            1
        );
    }
    assert_eq!(answered(&server), 0);
    server.shutdown().await;
}

#[actix_web::test]
async fn with_tracked_secs_0_every_read_asks_redis() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.reads.tracked_secs = 0;
    let server = start_server(config).await;
    let now = Utc::now().timestamp_millis();
    let hour = (now - 2 * D).div_euclid(H) * H;
    store_through_another_instance(&redis, "CP-OFF", vec![voltages(&[hour], 230.0)]).await;
    let commands = read_commands(&redis);
    for _ in 0..3 {
        assert_eq!(meter_values_of(&server, "CP-OFF", now).await.len(), 1);
    }
    assert_eq!(answered(&server), 0);
    assert!(read_commands(&redis) >= commands + 3);
    server.shutdown().await;
}
