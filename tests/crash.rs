//! Crash safety (issue 11): what a charge point was answered survives a SIGKILL of the server
//! under load, a Redis outage under load and a Redis at `maxmemory`, stored once and rolled up
//! once; a full write-ahead log answers CALLERROR `InternalError`, never a silent
//! acknowledgement, and `/ready` says why in every case.
//!
//! The load loops are charge points over real WebSockets sending one MeterValues after the other
//! (energy register and power), each remembering which readings were answered with a
//! CALLRESULT. Afterwards the raw chunks are read straight from Redis and decoded, so "stored
//! once" is judged on what Redis holds, not on what a de-duplicating read shows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actors::redis_pool::{build_pool, Pool, PoolSettings, RedisTarget};
use chrono::{DateTime, Utc};
use common::stored::*;
use common::*;
use serde_json::{json, Value};

/// How a load loop ended.
#[derive(Debug, Default)]
struct LoopEnd {
    /// CALLERRORs received (each reading is sent again until answered).
    refused: u64,
    /// The first CALLERROR, for the test's assertions.
    first_error: Option<Value>,
}

/// One charge point sending readings until `stop` (or the server is gone): a CALLRESULT adds
/// the step to `acked`; a CALLERROR is counted and the same reading sent again after `pause`,
/// as a charge point keeps a transaction-related message until it is answered.
async fn load(
    url: String,
    id: String,
    base: DateTime<Utc>,
    acked: Acked,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> LoopEnd {
    let mut end = LoopEnd::default();
    let Ok(mut cp) = connect_with(&format!("{url}/ocpp/{id}"), Some("ocpp1.6")).await else {
        return end;
    };
    let boot = json!({"chargePointVendor": "TestVendor", "chargePointModel": "TM-1"});
    if cp.try_call_frame("BootNotification", boot).await.is_none() {
        return end;
    }
    let mut step = 0u32;
    while !stop.load(Ordering::Relaxed) && step < 3000 {
        let Some(answer) = cp.try_call_frame("MeterValues", reading(base, step)).await else {
            break;
        };
        if answer[0] == json!(3) {
            acked
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_default()
                .insert(step);
            step += 1;
        } else {
            end.refused += 1;
            end.first_error.get_or_insert(answer);
            tokio::time::sleep(pause).await;
        }
    }
    end
}

/// Starts `count` load loops against `ws_url`.
fn start_loads(
    ws_url: &str,
    prefix: &str,
    count: usize,
    acked: &Acked,
    stop: &Arc<AtomicBool>,
    pause: Duration,
) -> Vec<tokio::task::JoinHandle<LoopEnd>> {
    let base = base();
    (0..count)
        .map(|i| {
            tokio::spawn(load(
                ws_url.to_owned(),
                format!("{prefix}-{i}"),
                base,
                acked.clone(),
                stop.clone(),
                pause,
            ))
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Every raw sample and roll-up check goes through this pool on the test's Redis.
fn pool(redis: &RedisServer) -> Pool {
    build_pool(&PoolSettings {
        target: RedisTarget::Standalone(redis.url()),
        pool_size: 1,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
    })
    .unwrap()
}

/// The headline promise: SIGKILL the server binary while six charge points send readings as
/// fast as they are answered, start it again on the same Redis and log: every answered reading
/// is in Redis, no sample twice, each register reading rolled up once and the energy exactly
/// the register's movement. Buffers flush at 64 samples and roll-ups every second, so at the
/// kill some readings are only in buffers, some in Redis, some rolled up and some not: the
/// replay has to tell them apart. Without the log, the buffered ones are lost; without the marks
/// the replay reads in Redis (the checkpoint is removed, as a power cut may), samples are
/// stored twice and rolled up twice.
#[actix_web::test]
async fn sigkill_under_load_loses_no_answered_reading_and_replays_each_once() {
    let redis = RedisServer::start();
    let (ws_port, http_port) = (free_port(), free_port());
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ocpp-meter"))
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .env("OCPP_METER_REDIS_URL", redis.url())
        .env("OCPP_METER_WAL_DIR", redis.wal_dir())
        .env("OCPP_METER_SERVER_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env(
            "OCPP_METER_SERVER_HTTP_ADDR",
            format!("127.0.0.1:{http_port}"),
        )
        .env("OCPP_METER_OCPP_METERING_ENABLED", "false")
        .env("OCPP_METER_BUFFER_MAX_SAMPLES", "64")
        .env("OCPP_METER_BUFFER_ROLLUP_INTERVAL_SECS", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let server_log = || std::fs::read_to_string(log.path()).unwrap_or_default();
    let health = format!("http://127.0.0.1:{http_port}/health");
    let client = awc::Client::default();
    assert!(
        eventually(Duration::from_secs(20), || async {
            client.get(&health).send().await.is_ok()
        })
        .await,
        "the server never answered:\n{}",
        server_log()
    );

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("ws://127.0.0.1:{ws_port}");
    let loads = start_loads(&url, "CP-KILL", 6, &acked, &stop, Duration::ZERO);
    // Past a few roll-up flushes and buffer flushes, then kill mid-stream.
    assert!(
        eventually(Duration::from_secs(30), || async {
            acked_total(&acked) >= 1500
        })
        .await,
        "load too slow: {} answered\n{}",
        acked_total(&acked),
        server_log()
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        load.await.unwrap();
    }
    let answered = acked_total(&acked);
    // The checkpoint is not fsynced, so a power cut may take it: without it the replay starts
    // at the oldest segment, and only the marks in Redis keep it from storing and rolling up
    // again what Redis already holds.
    std::fs::remove_file(redis.wal_dir().join("checkpoint")).unwrap();

    let server = start_server(test_config(&redis)).await;
    let replayed = server
        .wal_stats
        .as_ref()
        .unwrap()
        .records_replayed
        .load(Ordering::Relaxed);
    assert!(
        replayed > 0,
        "nothing was left to replay: the test proves nothing"
    );
    assert!(
        writer_drained(&server, Duration::from_secs(30)).await,
        "the replay was not written"
    );
    let stored = assert_stored(&server, &pool(&redis), &acked, true, true)
        .await
        .0;
    eprintln!("SIGKILL: {answered} readings answered, {replayed} records replayed, {stored} samples stored once");
    server.shutdown().await;
}

/// Redis goes away under load for `FAULT_REDIS_OUTAGE_SECS` (default 3; the 20 s with
/// `FAULT_REDIS_OUTAGE_SECS=20`) and comes back empty-handed (no persistence): `/ready` reports
/// the outage, readings keep being answered (from the log and the writer's backlog), and once
/// Redis is back everything answered from the outage on is stored, once. (What Redis held
/// before it died is gone with it: that is its persistence's job, AOF, not ours.)
#[actix_web::test]
async fn a_redis_outage_under_load_delays_writes_and_loses_nothing() {
    let outage = std::env::var("FAULT_REDIS_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3u64);
    let mut redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.max_samples = 20;
    config.buffer.max_age_secs = 1;
    let server = start_server(config).await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("ws://{}", server.ws_addr);
    let loads = start_loads(&url, "CP-OUT", 4, &acked, &stop, Duration::from_millis(50));
    assert!(
        eventually(Duration::from_secs(10), || async {
            acked_total(&acked) >= 200
        })
        .await
    );

    redis.stop();
    let before = acked_total(&acked);
    let acked_before = acked.lock().unwrap().clone();
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (code, body) = get(&server, "/ready").await;
            code == 503 && body["redis"] == "down"
        })
        .await,
        "/ready never reported the outage"
    );
    tokio::time::sleep(Duration::from_secs(outage)).await;
    let during = acked_total(&acked) - before;
    assert!(during > 0, "no reading was answered during the outage");
    redis.start_again();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for load in loads {
        load.await.unwrap();
    }
    assert!(
        writer_drained(&server, Duration::from_secs(30)).await,
        "the backlog was not written"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&server, "/ready").await.0 == 200
        })
        .await
    );
    // Check what was answered from the outage on (and, once each, everything stored).
    let since_outage: Acked = Arc::default();
    for (cp, steps) in acked.lock().unwrap().iter() {
        let old = acked_before.get(cp).cloned().unwrap_or_default();
        since_outage
            .lock()
            .unwrap()
            .insert(cp.clone(), steps.difference(&old).copied().collect());
    }
    let stored = assert_stored(&server, &pool(&redis), &since_outage, true, false)
        .await
        .0;
    eprintln!(
        "Redis outage of {outage} s: {during} readings answered during it, {stored} samples stored once"
    );
    server.shutdown().await;
}

/// Redis at `maxmemory` with `noeviction` refuses every write with OOM while still answering
/// PING: `/ready` names the OOM, the answered readings wait in the writer's backlog and the
/// log, and once the backlog reaches `buffer.max_pending_samples` new readings get CALLERROR
/// `InternalError` (never dropped after an answer). When memory frees, everything answered is
/// stored once, and the refused readings, sent again, too.
#[actix_web::test]
async fn redis_at_maxmemory_backs_up_then_refuses_and_loses_nothing() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.max_samples = 20;
    config.buffer.max_age_secs = 1;
    config.buffer.max_pending_samples = 400;
    let server = start_server(config).await;
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("ws://{}", server.ws_addr);
    let loads = start_loads(&url, "CP-OOM", 2, &acked, &stop, Duration::from_millis(100));
    assert!(
        eventually(Duration::from_secs(20), || async {
            let (code, body) = get(&server, "/ready").await;
            code == 503
                && body["reasons"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r.as_str().unwrap_or("").contains("OOM")))
        })
        .await,
        "/ready never named the OOM: {:?}",
        get(&server, "/ready").await
    );
    // The backlog fills up to its bound, then readings are refused.
    assert!(
        eventually(Duration::from_secs(30), || async {
            server.writer_stats.samples_pending.load(Ordering::SeqCst) >= 400
        })
        .await,
        "the backlog never filled"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut refused = 0;
    for load in loads {
        let end = load.await.unwrap();
        if let Some(error) = &end.first_error {
            assert_eq!(error[0], json!(4), "{error}");
            assert_eq!(error[2], json!("InternalError"), "{error}");
        }
        refused += end.refused;
    }
    assert!(refused > 0, "no reading was refused at the bound");
    assert_eq!(
        server.writer_stats.samples_dropped.load(Ordering::SeqCst),
        0,
        "the writer dropped answered samples"
    );
    assert!(
        writer_drained(&server, Duration::from_secs(30)).await,
        "the backlog was not written"
    );
    let stored = assert_stored(&server, &pool(&redis), &acked, true, false)
        .await
        .0;
    eprintln!("maxmemory: {refused} readings refused at the bound, {stored} samples stored once");
    server.shutdown().await;
}

/// A write-ahead log at `wal.max_disk_bytes` (here while buffers hold their samples, so nothing
/// can be retired) answers MeterValues with CALLERROR `InternalError` and fails `/ready`; once
/// the buffers flush and the log retires its segments, the same reading is answered and stored.
#[actix_web::test]
async fn a_full_write_ahead_log_refuses_with_internal_error_until_it_has_room() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.wal.segment_bytes = 65_536;
    config.wal.max_disk_bytes = 131_072;
    config.buffer.max_samples = 100_000;
    config.buffer.max_pending_samples = 1_000_000;
    config.buffer.max_age_secs = 600;
    config.validate().unwrap();
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-FULL").await;
    cp.boot().await;
    let base = base();
    let mut step = 0;
    let refusal = loop {
        let answer = cp.call_frame("MeterValues", reading(base, step)).await;
        if answer[0] != json!(3) {
            break answer;
        }
        step += 1;
        assert!(step < 5000, "the log never filled");
    };
    assert_eq!(refusal[0], json!(4), "{refusal}");
    assert_eq!(refusal[2], json!("InternalError"), "{refusal}");
    let (code, body) = get(&server, "/ready").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["wal"], "failing", "{body}");
    let failures = server
        .wal_stats
        .as_ref()
        .unwrap()
        .appends_failed
        .load(Ordering::SeqCst);
    assert!(failures >= 1);

    // The charge point goes away and comes back: its buffer flushes, and a read of its
    // roll-ups flushes them (they would go within buffer.rollup_interval_secs anyway); with
    // both paths in Redis the log retires its full segment.
    drop(cp);
    assert!(writer_drained(&server, Duration::from_secs(30)).await);
    let (code, _) = get(
        &server,
        "/api/v1/charge-points/CP-FULL/aggregates?period=hour",
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&server, "/ready").await.0 == 200
        })
        .await,
        "the log never made room: {:?}",
        get(&server, "/ready").await
    );
    let mut cp = ChargePoint::connect(&server, "CP-FULL").await;
    assert_eq!(cp.call("MeterValues", reading(base, step)).await, json!({}));
    drop(cp);
    assert!(writer_drained(&server, Duration::from_secs(30)).await);
    let acked: Acked = Arc::default();
    acked
        .lock()
        .unwrap()
        .insert("CP-FULL".into(), (0..=step).collect());
    assert_stored(&server, &pool(&redis), &acked, true, false).await;
    server.shutdown().await;
}

/// `wal.enabled = false` (benchmarks, throwaway set-ups) answers from memory as before the log:
/// readings are still stored, `/ready` says the log is disabled, no directory is made and no
/// `wal_*` metric is exported.
#[actix_web::test]
async fn with_the_log_off_readings_are_answered_from_memory_and_stored() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.wal.enabled = false;
    let server = start_server(config).await;
    assert!(server.wal_stats.is_none());
    let mut cp = ChargePoint::connect(&server, "CP-NOWAL").await;
    cp.boot().await;
    let base = base();
    for step in 0..5 {
        assert_eq!(cp.call("MeterValues", reading(base, step)).await, json!({}));
    }
    let (code, body) = get(&server, "/ready").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["wal"], "disabled");
    drop(cp);
    assert!(writer_drained(&server, Duration::from_secs(30)).await);
    let acked: Acked = Arc::default();
    acked
        .lock()
        .unwrap()
        .insert("CP-NOWAL".into(), (0..5).collect());
    assert_eq!(
        assert_stored(&server, &pool(&redis), &acked, true, false)
            .await
            .0,
        10
    );
    assert!(
        !redis.wal_dir().exists(),
        "a disabled log made its directory"
    );
    let mut response = awc::Client::default()
        .get(format!("http://{}/metrics", server.http_addr))
        .send()
        .await
        .unwrap();
    let metrics = response.body().limit(16 << 20).await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("samples_stored_total"), "{metrics}");
    assert!(!metrics.contains("wal_records"), "{metrics}");
    server.shutdown().await;
}
