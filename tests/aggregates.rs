//! Hourly and daily roll-ups over real WebSockets and a private redis-server: they must equal a
//! brute-force recomputation over the raw samples read back through the API, split a session's
//! energy at hour boundaries, and stay correct across flushes and a server restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::reference::*;
use common::*;
use serde_json::{json, Value};

const REGISTER: &str = "Energy.Active.Import.Register";

async fn send_register(cp: &mut ChargePoint, t: i64, wh: f64) {
    let payload = meter_values(
        1,
        None,
        &iso(t),
        json!([{"value": wh.to_string(), "measurand": REGISTER, "unit": "Wh"}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
}

async fn aggregates(server: &ocpp_meter::RunningServer, cp: &str, query: &str) -> Vec<Value> {
    let (code, body) = get(
        server,
        &format!("/api/v1/charge-points/{cp}/aggregates?{query}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["buckets"].as_array().unwrap().clone()
}

#[derive(Debug, Default)]
struct Expected {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    first: (i64, f64),
    last: (i64, f64),
}

#[actix_web::test]
async fn rollups_equal_a_brute_force_recomputation_of_the_raw_samples() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-AGG").await;
    cp.boot().await;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    // 120 readings, one per 15-minute slot of the last 30 hours (crossing hours and a UTC
    // midnight), each a MeterValues of five sampled values.
    let now = Utc::now().timestamp_millis();
    let start = now - 30 * H;
    let slot = 15 * 60_000;
    let mut register = 10_000.0;
    let mut frames: Vec<(i64, f64, Value)> = Vec::new();
    for i in 0..120 {
        let t = start + i * slot + rng.below(slot as u64 - 1) as i64;
        register += (rng.below(3000) as f64) / 2.0;
        if i == 60 {
            register = rng.below(100) as f64; // meter reset
        }
        if i == 90 {
            register += 50_000_000.0; // replaced meter far ahead: implausible, counts 0
        }
        let sampled = json!([
            {"value": register.to_string(), "measurand": REGISTER, "unit": "Wh"},
            {"value": format!("{}", rng.below(11_000)), "measurand": "Power.Active.Import", "unit": "W"},
            {"value": format!("{}.{}", 220 + rng.below(20), rng.below(10)), "measurand": "Voltage", "phase": "L1-N"},
            {"value": format!("{}", rng.below(32)), "measurand": "Current.Import", "phase": "L1"},
            {"value": format!("{}.5", rng.below(32)), "measurand": "Current.Import", "phase": "L2"},
        ]);
        frames.push((t, register, sampled));
    }

    // Arrival: mostly in order; some frames held back and sent late, some sent twice.
    let order = arrival_order(&mut rng, frames.len(), 15, 5, 10);

    let mut processed: Vec<(i64, f64)> = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        let (t, register, sampled) = &frames[i];
        let payload = meter_values(1, None, &iso(*t), sampled.clone());
        assert_eq!(cp.call("MeterValues", payload).await, json!({}));
        if processed.last().is_none_or(|(last, _)| t > last) {
            processed.push((*t, *register));
        }
        if n == order.len() / 3 {
            // A read in the middle forces a roll-up flush: later readings pair with the
            // baseline stored in Redis.
            aggregates(&server, "CP-AGG", "period=hour").await;
        }
    }
    assert!(order.len() > frames.len(), "some duplicates were sent");
    assert!(processed.len() < frames.len(), "some readings arrived late");

    // Brute force over the raw samples as stored.
    let (code, raw) = get(
        &server,
        &format!(
            "/api/v1/charge-points/CP-AGG/meter-values?from={}&to={}&limit=10000",
            iso(start - 1000),
            iso(now + 1000)
        ),
    )
    .await;
    assert_eq!(code, 200, "{raw}");
    let raw = raw["samples"].as_array().unwrap();
    assert_eq!(raw.len(), 5 * frames.len(), "duplicates are stored once");

    for (period, len, from) in [
        ("hour", H, start.div_euclid(H) * H),
        ("day", D, start.div_euclid(D) * D),
    ] {
        let mut expected: BTreeMap<(i64, String, Option<String>), Expected> = BTreeMap::new();
        for s in raw {
            let t = ms_of(&s["timestamp"]);
            let v = s["value"].as_f64().unwrap();
            let key = (
                t.div_euclid(len) * len,
                s["measurand"].as_str().unwrap().to_owned(),
                s["phase"].as_str().map(str::to_owned),
            );
            let e = expected.entry(key).or_insert(Expected {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                first: (i64::MAX, 0.0),
                last: (i64::MIN, 0.0),
                ..Expected::default()
            });
            e.count += 1;
            e.sum += v;
            e.min = e.min.min(v);
            e.max = e.max.max(v);
            if t < e.first.0 {
                e.first = (t, v);
            }
            if t > e.last.0 {
                e.last = (t, v);
            }
        }
        let mut energy = BTreeMap::new();
        split_energy(len, &processed, &mut energy);

        let query = format!("period={period}&from={}&to={}", iso(from), iso(now + len));
        let buckets = aggregates(&server, "CP-AGG", &query).await;
        let with_samples: Vec<&Value> = buckets.iter().filter(|b| b["count"] != 0).collect();
        assert_eq!(with_samples.len(), expected.len(), "{period}: {buckets:?}");
        let mut energy_seen = BTreeMap::new();
        for b in &buckets {
            let start = ms_of(&b["start"]);
            let measurand = b["measurand"].as_str().unwrap().to_owned();
            if measurand == REGISTER {
                energy_seen.insert(start, b["energy_wh"].as_f64().unwrap());
                assert_eq!(b["unit"], "Wh");
            } else {
                assert!(b.get("energy_wh").is_none(), "{b}");
            }
            if b["count"] == 0 {
                continue;
            }
            let key = (start, measurand, b["phase"].as_str().map(str::to_owned));
            let e = expected
                .get(&key)
                .unwrap_or_else(|| panic!("unexpected {b}"));
            assert_eq!(b["count"], e.count, "{period} {key:?}");
            assert!(close(b["sum"].as_f64().unwrap(), e.sum), "{b} vs {e:?}");
            let avg = e.sum / e.count as f64;
            assert!(close(b["avg"].as_f64().unwrap(), avg), "{b} vs {e:?}");
            assert_eq!(b["min"].as_f64().unwrap(), e.min, "{b}");
            assert_eq!(b["max"].as_f64().unwrap(), e.max, "{b}");
            assert_eq!(b["first"].as_f64().unwrap(), e.first.1, "{b}");
            assert_eq!(ms_of(&b["first_at"]), e.first.0, "{b}");
            assert_eq!(b["last"].as_f64().unwrap(), e.last.1, "{b}");
            assert_eq!(ms_of(&b["last_at"]), e.last.0, "{b}");
            assert_eq!(b["connector_id"], 1);
        }
        for (start, wh) in &energy {
            let seen = energy_seen.get(start).copied().unwrap_or(0.0);
            assert!(close(seen, *wh), "{period} {start}: {seen} vs {wh}");
        }
        for (start, seen) in &energy_seen {
            let wh = energy.get(start).copied().unwrap_or(0.0);
            assert!(close(*seen, wh), "{period} {start}: {seen} vs {wh}");
        }
        // Starts sorted.
        let starts: Vec<i64> = buckets.iter().map(|b| ms_of(&b["start"])).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    }

    // Filters and validation.
    let voltage = aggregates(
        &server,
        "CP-AGG",
        &format!(
            "period=day&from={}&measurand=Voltage&phase=L1-N&connector=1",
            iso(start - D)
        ),
    )
    .await;
    assert!(!voltage.is_empty());
    assert!(voltage.iter().all(|b| b["measurand"] == "Voltage"));
    for (query, name) in [
        ("period=week", "period"),
        ("measurand=Volts", "measurand"),
        ("phase=L4", "phase"),
        ("from=yesterday", "from"),
        ("to=2024-13-01T00:00:00Z", "to"),
    ] {
        let (code, body) = get(
            &server,
            &format!("/api/v1/charge-points/CP-AGG/aggregates?{query}"),
        )
        .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(name), "{body}");
    }
    let (code, _) = get(
        &server,
        &format!(
            "/api/v1/charge-points/CP-AGG/aggregates?period=hour&from={}",
            iso(now - 40 * D)
        ),
    )
    .await;
    assert_eq!(code, 400, "an hourly range is bounded");
    server.shutdown().await;
}

#[actix_web::test]
async fn a_session_spanning_two_hours_splits_its_energy_between_them() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-SPLIT").await;
    let boundary = Utc::now().timestamp_millis().div_euclid(H) * H - 2 * H;
    send_register(&mut cp, boundary - 10 * 60_000, 1000.0).await;
    send_register(&mut cp, boundary + 20 * 60_000, 4000.0).await;

    let query = format!(
        "period=hour&measurand={REGISTER}&from={}&to={}",
        iso(boundary - H),
        iso(boundary + H)
    );
    let buckets = aggregates(&server, "CP-SPLIT", &query).await;
    assert_eq!(buckets.len(), 2, "{buckets:?}");
    assert_eq!(ms_of(&buckets[0]["start"]), boundary - H);
    assert!(close(buckets[0]["energy_wh"].as_f64().unwrap(), 1000.0));
    assert!(close(buckets[1]["energy_wh"].as_f64().unwrap(), 2000.0));
    assert_eq!(buckets[0]["count"], 1);
    assert_eq!(buckets[1]["first"], 4000.0);

    // The buckets expire retention.hourly_days after their end.
    let key = format!("ocpp:{{CP-SPLIT}}:agg:hour:{}", boundary / 1000);
    let ttl: i64 = redis.cli(&["TTL", &key]).trim().parse().unwrap();
    let expected = (boundary + H) / 1000 + 30 * 86_400 - Utc::now().timestamp();
    assert!(
        (ttl - expected).abs() <= 5,
        "ttl {ttl}, expected {expected}"
    );
    let day_key = format!(
        "ocpp:{{CP-SPLIT}}:agg:day:{}",
        boundary.div_euclid(D) * D / 1000
    );
    let ttl: i64 = redis.cli(&["TTL", &day_key]).trim().parse().unwrap();
    assert!(ttl > 364 * 86_400, "daily ttl {ttl}");
    server.shutdown().await;
}

#[actix_web::test]
async fn energy_is_counted_once_across_a_restart_and_flushes() {
    let mut redis = RedisServer::start();
    let base = Utc::now().timestamp_millis() - 3 * H;
    let at = |minutes: i64| base + minutes * 60_000;
    let total = |buckets: &[Value]| -> f64 {
        buckets
            .iter()
            .map(|b| b["energy_wh"].as_f64().unwrap())
            .sum()
    };
    let query = format!(
        "period=day&measurand={REGISTER}&from={}",
        iso(base.div_euclid(D) * D - D)
    );

    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-RST").await;
    send_register(&mut cp, at(0), 500.0).await;
    send_register(&mut cp, at(10), 1500.0).await;
    // Flush boundary: this read writes the roll-ups; the next reading pairs with Redis' baseline.
    let buckets = aggregates(&server, "CP-RST", &query).await;
    assert!(close(total(&buckets), 1000.0), "{buckets:?}");
    send_register(&mut cp, at(20), 2500.0).await;
    let report = server.shutdown().await;
    assert!(report.drained);
    let state = redis.cli(&["HGETALL", "ocpp:{CP-RST}:agg:state"]);
    assert!(
        state.contains(&format!("e:1:{REGISTER}:-:Wh")),
        "the baseline lives in Redis: {state}"
    );

    // A new server on the same Redis: the baseline carries over; a replay of old readings
    // (which this session's de-duplication has never seen) adds no energy.
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-RST").await;
    send_register(&mut cp, at(30), 3000.0).await;
    send_register(&mut cp, at(10), 1500.0).await;
    send_register(&mut cp, at(20), 2500.0).await;
    send_register(&mut cp, at(40), 4000.0).await;
    let buckets = aggregates(&server, "CP-RST", &query).await;
    assert!(close(total(&buckets), 3500.0), "{buckets:?}");
    server.shutdown().await;
    redis.stop();
}

#[actix_web::test]
async fn rollups_cost_a_few_commands_per_charge_point_and_flush() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    // Keep the raw writer quiet during the measurement so every command counted is a roll-up's.
    config.buffer.max_samples = 10_000;
    config.buffer.max_age_secs = 600;
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-CMD").await;
    // Ten minutes into the previous hour: the eleven readings (100 s) fall in one hourly bucket
    // whatever the time of the run ("now - 30 min" straddled an hour boundary in runs between
    // xx:28 and xx:30, splitting the ten readings over two buckets).
    let hour_ms = 3_600_000;
    let base = Utc::now().timestamp_millis().div_euclid(hour_ms) * hour_ms - hour_ms + 10 * 60_000;
    // Warm up: the first flush also loads the script and sets expiries.
    send_register(&mut cp, base, 0.0).await;
    aggregates(&server, "CP-CMD", "period=hour").await;
    let before = redis.command_calls();

    let mut samples = 0;
    for i in 1..=10 {
        let mut sampled = vec![json!({"value": format!("{}", i * 100), "measurand": REGISTER})];
        for (measurand, phase) in [
            ("Voltage", "L1"),
            ("Voltage", "L2"),
            ("Voltage", "L3"),
            ("Current.Import", "L1"),
            ("Current.Import", "L2"),
            ("Current.Import", "L3"),
        ] {
            sampled.push(
                json!({"value": format!("{}", 200 + i), "measurand": measurand, "phase": phase}),
            );
        }
        for measurand in ["Power.Active.Import", "Temperature", "SoC"] {
            sampled.push(json!({"value": format!("{}", 30 + i), "measurand": measurand}));
        }
        let payload = meter_values(1, None, &iso(base + i * 10_000), json!(sampled));
        assert_eq!(cp.call("MeterValues", payload).await, json!({}));
        samples += sampled.len();
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .aggregator_stats
                .samples
                .load(std::sync::atomic::Ordering::Relaxed)
                > samples as u64
        })
        .await
    );
    let buckets = aggregates(&server, "CP-CMD", "period=hour").await;
    assert!(buckets.iter().any(|b| b["count"] == 10), "{buckets:?}");
    let after = redis.command_calls();
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);
    let scripts = delta("evalsha");
    let inner = delta("hmget") + delta("hset") + delta("expireat");
    let commands = scripts + inner;
    println!(
        "roll-ups of {samples} samples: {scripts} EVALSHA + {inner} commands inside = {:.3} per sample",
        commands as f64 / samples as f64
    );
    assert!(
        (1..=2).contains(&scripts),
        "one script call per flush: {scripts}"
    );
    assert!(inner <= 7 * scripts, "{inner} commands inside the script");
    server.shutdown().await;
}

#[actix_web::test]
async fn readings_from_a_clock_far_in_the_future_stay_out_of_the_rollups() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-SKEW").await;
    let now = Utc::now().timestamp_millis();
    send_register(&mut cp, now - 20 * 60_000, 1000.0).await;
    // Two hours ahead: well past alerts.max_clock_skew_secs (300 s).
    send_register(&mut cp, now + 2 * H, 900_000.0).await;
    send_register(&mut cp, now - 10 * 60_000, 1500.0).await;

    let query = format!(
        "period=day&measurand={REGISTER}&from={}&to={}",
        iso(now - 2 * D),
        iso(now + 2 * D)
    );
    let buckets = aggregates(&server, "CP-SKEW", &query).await;
    let count: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    let energy: f64 = buckets.iter().filter_map(|b| b["energy_wh"].as_f64()).sum();
    let max = buckets
        .iter()
        .filter_map(|b| b["max"].as_f64())
        .fold(f64::MIN, f64::max);
    assert_eq!(count, 2, "the future reading is not rolled up: {buckets:?}");
    assert!(close(energy, 500.0), "energy {energy}: {buckets:?}");
    assert_eq!(max, 1500.0);

    // It is stored raw all the same, and flagged.
    let raw = format!(
        "/api/v1/charge-points/CP-SKEW/meter-values?from={}&to={}",
        iso(now - H),
        iso(now + 3 * H)
    );
    let (_, body) = get(&server, &raw).await;
    assert_eq!(body["samples"].as_array().unwrap().len(), 3, "{body}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            let (_, alerts) = get(&server, "/api/v1/alerts?charge_point=CP-SKEW").await;
            alerts["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["rule"] == "clock_skew")
        })
        .await
    );
    server.shutdown().await;
}

/// The stream counts every batch it sends to the aggregator, and the aggregator counts it off
/// once Redis has it (or once nothing of it is to be written): a read skips asking the
/// aggregator only for a charge point with nothing counted, so the count must cover a reading
/// from the moment it is answered until the read that flushes it, and must not stay behind
/// for a batch with nothing to roll up. The production flush interval (30 s) is far longer
/// than this test, so only the read flushes.
#[actix_web::test]
async fn a_charge_point_is_pending_in_the_rollups_until_its_readings_are_in_redis() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let pending = "rollup_pending_charge_points";
    assert_eq!(metric_value(&server, pending).await, 0.0);
    let mut a = ChargePoint::connect(&server, "CP-PEND-A").await;
    let mut b = ChargePoint::connect(&server, "CP-PEND-B").await;
    let now = Utc::now().timestamp_millis();
    send_register(&mut a, now - 20 * 60_000, 1000.0).await;
    send_register(&mut a, now - 10 * 60_000, 1500.0).await;
    // Only a reading from a clock two hours ahead: nothing of it is rolled up.
    send_register(&mut b, now + 2 * H, 900_000.0).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric_value(&server, pending).await == 1.0
        })
        .await,
        "A is pending from its answer on, B's batch is counted off as it holds nothing: {}",
        metric_value(&server, pending).await
    );
    // Still pending a moment later: nothing flushes A but a read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric_value(&server, pending).await, 1.0);

    let query = format!(
        "period=day&measurand={REGISTER}&from={}&to={}",
        iso(now - 2 * D),
        iso(now + 2 * D)
    );
    let buckets = aggregates(&server, "CP-PEND-A", &query).await;
    let count: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(count, 2, "read-your-writes: {buckets:?}");
    assert_eq!(
        metric_value(&server, pending).await,
        0.0,
        "the read's flush counted A off"
    );
    // A later reading is counted again, and a read without it pending (skipping the
    // aggregator) still shows everything answered.
    send_register(&mut a, now - 5 * 60_000, 1700.0).await;
    assert_eq!(metric_value(&server, pending).await, 1.0);
    let buckets = aggregates(&server, "CP-PEND-A", &query).await;
    let count: i64 = buckets.iter().map(|b| b["count"].as_i64().unwrap()).sum();
    assert_eq!(count, 3, "{buckets:?}");
    let again = aggregates(&server, "CP-PEND-A", &query).await;
    assert_eq!(
        again, buckets,
        "a read that skips the aggregator serves the same"
    );
    assert!(aggregates(&server, "CP-PEND-B", &query).await.is_empty());
    server.shutdown().await;
}

/// Read-your-writes with per-charge-point flushes: a read flushes only its own charge point's
/// roll-ups, so a reading answered to any charge point must still be in that charge point's
/// aggregates at once, also when reads of other charge points (whose flushes are in flight) run
/// at the same time. The production flush interval (30 s) is far longer than this test, so no
/// timer flush hides a read that waited for the wrong flush.
#[actix_web::test]
async fn a_reading_just_answered_is_in_its_charge_points_aggregates_while_others_flush() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let ids = ["CP-RYW-A", "CP-RYW-B", "CP-RYW-C"];
    let mut cps = Vec::new();
    for id in ids {
        cps.push(ChargePoint::connect(&server, id).await);
    }
    let base = Utc::now().timestamp_millis() - 20 * 60_000;
    let query = format!("period=hour&measurand=Voltage&from={}", iso(base - 2 * H));
    let count =
        |buckets: &[Value]| -> u64 { buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum() };
    for round in 1..=6u64 {
        for (i, cp) in cps.iter_mut().enumerate() {
            // Charge point C only writes in odd rounds: its partials then wait in the
            // aggregator while A and B are flushed.
            if i == 2 && round % 2 == 0 {
                continue;
            }
            let t = base + (round as i64) * 60_000 + i as i64;
            let sampled = json!([{"value": format!("{}", 220 + round), "measurand": "Voltage"}]);
            let payload = meter_values(1, None, &iso(t), sampled);
            assert_eq!(cp.call("MeterValues", payload).await, json!({}));
        }
        // Alternate between one read at a time and all three at once.
        let (a, b, c) = if round % 2 == 1 {
            (
                aggregates(&server, ids[0], &query).await,
                aggregates(&server, ids[1], &query).await,
                aggregates(&server, ids[2], &query).await,
            )
        } else {
            tokio::join!(
                aggregates(&server, ids[0], &query),
                aggregates(&server, ids[1], &query),
                aggregates(&server, ids[2], &query),
            )
        };
        assert_eq!(count(&a), round, "round {round}, {}: {a:?}", ids[0]);
        assert_eq!(count(&b), round, "round {round}, {}: {b:?}", ids[1]);
        assert_eq!(
            count(&c),
            round.div_ceil(2),
            "round {round}, {}: {c:?}",
            ids[2]
        );
    }
    server.shutdown().await;
}

/// `buffer.rollup_interval_secs` drives the aggregator's own flush: with 1 s the buckets reach
/// Redis without any read or shutdown asking for them (the default, 30 s, would not within
/// this test's 5 s).
#[actix_web::test]
async fn rollups_are_written_every_rollup_interval_without_a_read() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.rollup_interval_secs = 1;
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "CP-TICK").await;
    let base = Utc::now().timestamp_millis() - 60_000;
    send_register(&mut cp, base, 100.0).await;
    send_register(&mut cp, base + 10_000, 150.0).await;
    let hour = (base / H) * (H / 1000);
    let key = format!("ocpp:{{CP-TICK}}:agg:hour:{hour}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            // The register's series (the bucket also holds its fleet summary, `/fleet`).
            redis
                .cli(&["HEXISTS", &key, "1:Energy.Active.Import.Register:-:Wh"])
                .trim()
                == "1"
        })
        .await,
        "no roll-up bucket {key} in Redis"
    );
    let field = redis.cli(&["HGETALL", &key]);
    assert!(field.contains("Energy.Active.Import.Register"), "{field}");
    server.shutdown().await;
}

/// MeterValues of one Voltage reading at `t`.
fn voltage(t: i64, volts: f64) -> Value {
    meter_values(
        1,
        None,
        &iso(t),
        json!([{"value": volts.to_string(), "measurand": "Voltage", "phase": "L1-N", "unit": "V"}]),
    )
}

#[actix_web::test]
async fn each_charge_point_is_rolled_up_an_interval_after_its_first_sample() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.buffer.rollup_interval_secs = 3;
    let server = start_server(config).await;
    let hour_key =
        |id: &str, t: i64| format!("ocpp:{{{id}}}:agg:hour:{}", t.div_euclid(H) * H / 1000);
    let mut a = ChargePoint::connect(&server, "CP-DUE-A").await;
    let mut b = ChargePoint::connect(&server, "CP-DUE-B").await;
    let t = Utc::now().timestamp_millis() - 60_000;
    let sent_a = Instant::now();
    assert_eq!(a.call("MeterValues", voltage(t, 230.0)).await, json!({}));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.call("MeterValues", voltage(t, 231.0)).await, json!({}));
    let (key_a, key_b) = (hour_key("CP-DUE-A", t), hour_key("CP-DUE-B", t));
    let exists = |key: &str| redis.cli(&["EXISTS", key]).trim() == "1";
    assert!(
        eventually(Duration::from_secs(10), || async { exists(&key_a) }).await,
        "A's roll-ups were written"
    );
    let waited = sent_a.elapsed();
    assert!(
        waited >= Duration::from_millis(2_900),
        "A waited its interval: {waited:?}"
    );
    assert!(!exists(&key_b), "B, due 0.7 s later, is not written with A");
    assert!(
        eventually(Duration::from_secs(10), || async { exists(&key_b) }).await,
        "B's roll-ups were written"
    );
    server.shutdown().await;
}
