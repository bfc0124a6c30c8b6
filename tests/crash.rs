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

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::redis_pool::{build_pool, PoolSettings, RedisTarget};
use actors::sample::{Measurand, Sample};
use actors::store::{chunk, keys};
use chrono::{DateTime, Utc};
use common::*;
use deadpool_redis::redis;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

/// Readings answered with a CALLRESULT, per charge point: the steps (see [`reading`]).
type Acked = Arc<Mutex<BTreeMap<String, BTreeSet<u32>>>>;

/// First reading's time: far enough back that a few thousand one-second steps stay in the past
/// (the roll-ups leave out readings more than `max_clock_skew_secs` ahead).
/// One value per test process, so the loads and the checks agree on it.
fn base() -> DateTime<Utc> {
    static BASE: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        DateTime::from_timestamp(Utc::now().timestamp() - 3600, 0).expect("valid time")
    })
}

/// Register value (Wh) of reading `step`: 10 Wh a second, always plausible.
fn register(step: u32) -> f64 {
    1000.0 + f64::from(step) * 10.0
}

/// MeterValues of reading `step`: the energy register and the power, one second apart.
fn reading(base: DateTime<Utc>, step: u32) -> Value {
    let at = (base + chrono::Duration::seconds(i64::from(step)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    meter_values(
        1,
        None,
        &at,
        json!([
            {"value": format!("{:.1}", register(step)), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": format!("{}", 7000 + step % 100), "measurand": "Power.Active.Import", "unit": "W"}
        ]),
    )
}

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

fn acked_total(acked: &Acked) -> usize {
    acked.lock().unwrap().values().map(BTreeSet::len).sum()
}

/// Every raw sample Redis holds for `cp` (all chunk hours the readings can fall in), decoded
/// from the stored bytes: repeats included.
async fn raw_samples(redis: &RedisServer, cp: &str) -> Vec<Sample> {
    let pool = build_pool(&PoolSettings {
        target: RedisTarget::Standalone(redis.url()),
        pool_size: 1,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        wait_replicas: 0,
        wait_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let mut conn = pool.get().await.unwrap();
    let first = base().timestamp().div_euclid(3600);
    let mut samples = Vec::new();
    for hour in first..first + 3 {
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(keys::raw_chunk(cp, hour))
            .query_async(&mut conn)
            .await
            .unwrap();
        if let Some(bytes) = bytes {
            let (decoded, error) = chunk::decode_chunk(&bytes);
            assert!(error.is_none(), "{cp}: chunk {hour} unreadable: {error:?}");
            samples.extend(decoded);
        }
    }
    samples
}

/// Checks what Redis holds for every charge point of `acked`: each answered reading's two
/// samples are in the raw chunks, no sample is there twice, and (with `rollups`) the hourly
/// roll-ups hold each stored register reading once and exactly its energy (last - first, the
/// first reading being the baseline). Returns the number of samples stored.
async fn assert_stored_once(
    server: &RunningServer,
    redis: &RedisServer,
    acked: &Acked,
    rollups: bool,
) -> usize {
    let base = base();
    let acked = acked.lock().unwrap().clone();
    let mut stored_total = 0;
    for (cp, steps) in &acked {
        let samples = raw_samples(redis, cp).await;
        let identities: BTreeSet<_> = samples.iter().map(Sample::identity).collect();
        assert_eq!(
            identities.len(),
            samples.len(),
            "{cp}: {} samples stored more than once",
            samples.len() - identities.len()
        );
        stored_total += samples.len();
        let registers: BTreeMap<i64, f64> = samples
            .iter()
            .filter(|s| s.measurand == Measurand::EnergyActiveImportRegister)
            .map(|s| (s.timestamp.timestamp(), s.number().unwrap()))
            .collect();
        let powers = samples
            .iter()
            .filter(|s| s.measurand == Measurand::PowerActiveImport)
            .count();
        let missing: Vec<u32> = steps
            .iter()
            .copied()
            .filter(|step| {
                registers.get(&(base.timestamp() + i64::from(*step))) != Some(&register(*step))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "{cp}: {} answered readings are not in Redis, e.g. steps {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        assert_eq!(powers, registers.len(), "{cp}: a reading lost one sample");
        if !rollups {
            continue;
        }
        let from = DateTime::from_timestamp(base.timestamp().div_euclid(3600) * 3600, 0).unwrap();
        let to = from + chrono::Duration::hours(3);
        let (code, body) = get(
            server,
            &format!(
                "/api/v1/charge-points/{cp}/aggregates?period=hour&measurand=Energy.Active.Import.Register&from={}&to={}",
                from.format("%Y-%m-%dT%H:%M:%SZ"),
                to.format("%Y-%m-%dT%H:%M:%SZ")
            ),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let buckets = body["buckets"].as_array().unwrap();
        let count: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        let energy: f64 = buckets
            .iter()
            .map(|b| b["energy_wh"].as_f64().unwrap_or(0.0))
            .sum();
        assert_eq!(
            count,
            registers.len() as u64,
            "{cp}: register readings rolled up {count} times, {} stored",
            registers.len()
        );
        let (first, last) = (
            registers.values().next().unwrap(),
            registers.values().next_back().unwrap(),
        );
        assert!(
            (energy - (last - first)).abs() < 1e-6,
            "{cp}: roll-ups hold {energy} Wh, the register moved {} Wh",
            last - first
        );
    }
    stored_total
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the server's writer holds nothing (every replayed or buffered batch written).
async fn writer_drained(server: &RunningServer) -> bool {
    eventually(Duration::from_secs(30), || async {
        server.counters.buffered_samples.load(Ordering::SeqCst) == 0
            && server.writer_stats.samples_pending.load(Ordering::SeqCst) == 0
            && server.writer_stats.batches_pending.load(Ordering::SeqCst) == 0
    })
    .await
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
    assert!(writer_drained(&server).await, "the replay was not written");
    let stored = assert_stored_once(&server, &redis, &acked, true).await;
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
    assert!(writer_drained(&server).await, "the backlog was not written");
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
    let stored = assert_stored_once(&server, &redis, &since_outage, false).await;
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
    assert!(writer_drained(&server).await, "the backlog was not written");
    let stored = assert_stored_once(&server, &redis, &acked, false).await;
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
    assert!(writer_drained(&server).await);
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
    assert!(writer_drained(&server).await);
    let acked: Acked = Arc::default();
    acked
        .lock()
        .unwrap()
        .insert("CP-FULL".into(), (0..=step).collect());
    assert_stored_once(&server, &redis, &acked, false).await;
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
    assert!(writer_drained(&server).await);
    let acked: Acked = Arc::default();
    acked
        .lock()
        .unwrap()
        .insert("CP-NOWAL".into(), (0..5).collect());
    assert_eq!(assert_stored_once(&server, &redis, &acked, false).await, 10);
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
